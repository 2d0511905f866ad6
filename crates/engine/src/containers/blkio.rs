//! Block I/O limits: `--blkio-weight`, `--blkio-weight-device` and the `--device-{read,write}-{bps,iops}`
//! throttles, as dockerd applies them: the device is named in the spec by the major:minor of its node,
//! and a limit the host's cgroups cannot hold is discarded at create with dockerd's warning.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use bollard_stubs::models::{HostConfig, ResourcesBlkioWeightDevice, ThrottleDevice};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxBlockIoBuilder, LinuxThrottleDevice, LinuxThrottleDeviceBuilder,
    LinuxWeightDeviceBuilder,
};

use crate::error::{Error, Result};

/// Which block I/O limits the host's cgroups can hold (dockerd's `sysinfo` blkio fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Support {
    weight: bool,
    weight_device: bool,
    read_bps: bool,
    write_bps: bool,
    read_iops: bool,
    write_iops: bool,
}

impl Support {
    /// What this host's cgroups offer: on v2 everything once the `io` controller is there; on v1 the
    /// files of the blkio hierarchy (no `blkio.weight` without the CFQ or BFQ scheduler).
    pub(crate) fn probe() -> Support {
        if runtime::cgroups::is_v2() {
            let io = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"));
            return Support {
                weight: io,
                weight_device: io,
                read_bps: io,
                write_bps: io,
                read_iops: io,
                write_iops: io,
            };
        }
        let dir = Path::new("/sys/fs/cgroup/blkio");
        let has = |files: &[&str]| files.iter().any(|f| dir.join(f).exists());
        Support {
            weight: has(&["blkio.weight", "blkio.bfq.weight"]),
            weight_device: has(&["blkio.weight_device", "blkio.bfq.weight_device"]),
            read_bps: has(&["blkio.throttle.read_bps_device"]),
            write_bps: has(&["blkio.throttle.write_bps_device"]),
            read_iops: has(&["blkio.throttle.read_iops_device"]),
            write_iops: has(&["blkio.throttle.write_iops_device"]),
        }
    }
}

/// Takes out of `h` the limits `support` says the host cannot apply, and returns dockerd's warning for
/// each (dockerd discards them the same way, so that inspect shows what is applied).
pub(crate) fn discard_unsupported(h: &mut HostConfig, support: Support) -> Vec<String> {
    let mut warnings = Vec::new();
    if h.blkio_weight.is_some_and(|w| w > 0) && !support.weight {
        warnings.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
                .to_owned(),
        );
        h.blkio_weight = Some(0);
    }
    if h.blkio_weight_device
        .as_ref()
        .is_some_and(|d| !d.is_empty())
        && !support.weight_device
    {
        warnings.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".to_owned());
        h.blkio_weight_device = Some(Vec::new());
    }
    for (list, supported, warning) in [
        (
            &mut h.blkio_device_read_bps,
            support.read_bps,
            "Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.",
        ),
        (
            &mut h.blkio_device_write_bps,
            support.write_bps,
            "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.",
        ),
        (
            &mut h.blkio_device_read_iops,
            support.read_iops,
            "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded.",
        ),
        (
            &mut h.blkio_device_write_iops,
            support.write_iops,
            "Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded.",
        ),
    ] {
        if list.as_ref().is_some_and(|l| !l.is_empty()) && !supported {
            warnings.push(warning.to_owned());
            *list = Some(Vec::new());
        }
    }
    warnings
}

/// The values' own checks, which need no host (the docker CLI's words: it refuses these before sending).
pub(crate) fn check_values(h: &HostConfig) -> Result<()> {
    for d in h.blkio_weight_device.iter().flatten() {
        let w = d.weight.unwrap_or(0);
        // 0 is the kernel's "no weight of its own for this device".
        if w != 0 && !(10..=1000).contains(&w) {
            return Err(Error::InvalidParameter(format!(
                "invalid weight for device: {}:{w}",
                d.path.as_deref().unwrap_or("")
            )));
        }
    }
    for (list, unit) in throttle_lists(h) {
        for d in list {
            let rate = d.rate.unwrap_or(0);
            if rate < 0 {
                return Err(Error::InvalidParameter(format!(
                    "invalid rate for device: {}:{rate}. The number of {unit} must be a positive integer",
                    d.path.as_deref().unwrap_or("")
                )));
            }
        }
    }
    Ok(())
}

fn throttle_lists(h: &HostConfig) -> [(&[ThrottleDevice], &'static str); 4] {
    fn l(v: &Option<Vec<ThrottleDevice>>) -> &[ThrottleDevice] {
        v.as_deref().unwrap_or(&[])
    }
    [
        (l(&h.blkio_device_read_bps), "bytes per second"),
        (l(&h.blkio_device_write_bps), "bytes per second"),
        (l(&h.blkio_device_read_iops), "IO operations per second"),
        (l(&h.blkio_device_write_iops), "IO operations per second"),
    ]
}

/// The major and minor number of the block device at `path`. dockerd finds a missing node only at
/// start ("stat …: no such file or directory"); the same words come at create here. A node that is not a
/// block device is refused too: the kernel would refuse its numbers at start.
fn block_device(path: &str) -> Result<(i64, i64)> {
    let m = std::fs::metadata(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            _ => e.to_string(),
        };
        Error::InvalidParameter(format!("stat {path}: {why}"))
    })?;
    if !m.file_type().is_block_device() {
        return Err(Error::InvalidParameter(format!(
            "{path} is not a block device: block I/O limits take a block device"
        )));
    }
    Ok((libc::major(m.rdev()) as i64, libc::minor(m.rdev()) as i64))
}

/// Checks that every device a limit names is a block device on this host.
pub(crate) fn check_devices(h: &HostConfig) -> Result<()> {
    block_io(h).map(|_| ())
}

/// `linux.resources.blockIO` for `h`'s limits; none when it sets none.
pub(crate) fn block_io(h: &HostConfig) -> Result<Option<LinuxBlockIo>> {
    let oci = |e: oci_spec::OciSpecError| Error::system("building the OCI spec's blockIO", e);
    let mut b = LinuxBlockIoBuilder::default();
    let mut any = false;
    if let Some(w) = h.blkio_weight.filter(|w| *w > 0) {
        b = b.weight(w);
        any = true;
    }
    let weights = h
        .blkio_weight_device
        .iter()
        .flatten()
        .map(|d: &ResourcesBlkioWeightDevice| {
            let (major, minor) = block_device(d.path.as_deref().unwrap_or(""))?;
            let weight = u16::try_from(d.weight.unwrap_or(0)).map_err(|_| {
                Error::InvalidParameter(format!(
                    "invalid weight for device: {}",
                    d.path.as_deref().unwrap_or("")
                ))
            })?;
            LinuxWeightDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .weight(weight)
                .build()
                .map_err(oci)
        })
        .collect::<Result<Vec<_>>>()?;
    if !weights.is_empty() {
        b = b.weight_device(weights);
        any = true;
    }
    let throttle = |list: &[ThrottleDevice]| -> Result<Vec<LinuxThrottleDevice>> {
        list.iter()
            .map(|d| {
                let (major, minor) = block_device(d.path.as_deref().unwrap_or(""))?;
                LinuxThrottleDeviceBuilder::default()
                    .major(major)
                    .minor(minor)
                    .rate(d.rate.unwrap_or(0).max(0) as u64)
                    .build()
                    .map_err(oci)
            })
            .collect()
    };
    let [rbps, wbps, riops, wiops] = throttle_lists(h).map(|(l, _)| l);
    let (rbps, wbps, riops, wiops) = (
        throttle(rbps)?,
        throttle(wbps)?,
        throttle(riops)?,
        throttle(wiops)?,
    );
    any |= !(rbps.is_empty() && wbps.is_empty() && riops.is_empty() && wiops.is_empty());
    if !rbps.is_empty() {
        b = b.throttle_read_bps_device(rbps);
    }
    if !wbps.is_empty() {
        b = b.throttle_write_bps_device(wbps);
    }
    if !riops.is_empty() {
        b = b.throttle_read_iops_device(riops);
    }
    if !wiops.is_empty() {
        b = b.throttle_write_iops_device(wiops);
    }
    if !any {
        return Ok(None);
    }
    b.build().map(Some).map_err(oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only write IOPS throttling, as on a host without the others.
    const ONLY_WRITE_IOPS: Support = Support {
        weight: false,
        weight_device: false,
        read_bps: false,
        write_bps: false,
        read_iops: false,
        write_iops: true,
    };

    fn dev(path: &str, rate: i64) -> ThrottleDevice {
        ThrottleDevice {
            path: Some(path.into()),
            rate: Some(rate),
        }
    }

    #[test]
    fn unsupported_limits_are_discarded_with_dockerds_warnings() {
        let mut h = HostConfig {
            blkio_weight: Some(300),
            blkio_device_read_bps: Some(vec![dev("/dev/x", 1)]),
            blkio_device_write_iops: Some(vec![dev("/dev/x", 1)]),
            ..Default::default()
        };
        let w = discard_unsupported(&mut h, ONLY_WRITE_IOPS);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("Block I/O weight or the cgroup is not mounted. Weight discarded."));
        assert!(w[1].contains("Block I/O BPS read limit discarded."));
        assert_eq!(h.blkio_weight, Some(0));
        assert_eq!(h.blkio_device_read_bps, Some(vec![]));
        // Supported: kept.
        assert_eq!(h.blkio_device_write_iops.map(|l| l.len()), Some(1));
    }

    #[test]
    fn bad_values_and_devices_are_refused() {
        let h = HostConfig {
            blkio_device_read_bps: Some(vec![dev("/dev/x", -1)]),
            ..Default::default()
        };
        assert!(check_values(&h)
            .unwrap_err()
            .to_string()
            .contains("invalid rate for device: /dev/x:-1"));
        let h = HostConfig {
            blkio_weight_device: Some(vec![ResourcesBlkioWeightDevice {
                path: Some("/dev/x".into()),
                weight: Some(5),
            }]),
            ..Default::default()
        };
        assert_eq!(
            check_values(&h).unwrap_err().to_string(),
            "invalid weight for device: /dev/x:5"
        );
        let h = HostConfig {
            blkio_device_write_bps: Some(vec![dev("/dev/berth-no-such-disk", 1)]),
            ..Default::default()
        };
        assert_eq!(
            check_devices(&h).unwrap_err().to_string(),
            "stat /dev/berth-no-such-disk: no such file or directory"
        );
        let h = HostConfig {
            blkio_device_write_bps: Some(vec![dev("/dev/null", 1)]),
            ..Default::default()
        };
        assert!(check_devices(&h)
            .unwrap_err()
            .to_string()
            .contains("/dev/null is not a block device"));
        assert_eq!(block_io(&HostConfig::default()).unwrap(), None);
    }
}
