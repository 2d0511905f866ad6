//! dockerd's checks of resource values and log options (`verifyPlatformContainerResources`, the json-file
//! driver's option checks), shared by create and update: a limit can be set, never switched off by a value
//! that happens to mean "unlimited" further down (a negative memory, a zero log size).

use std::collections::HashMap;

use bollard_stubs::models::{ContainerUpdateBody, HostConfig};

use crate::error::{Error, Result};

/// The smallest memory limit or reservation the kernel accepts usefully (dockerd's `linuxMinMemory`).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The resource values both create and update carry.
#[derive(Debug, Default, Clone)]
pub(crate) struct Limits {
    memory: i64,
    memory_swap: i64,
    memory_reservation: i64,
    memory_swappiness: Option<i64>,
    nano_cpus: i64,
    cpu_period: i64,
    cpu_quota: i64,
    blkio_weight: i64,
    cpuset_cpus: String,
    cpuset_mems: String,
}

impl Limits {
    /// The values of a create's host config.
    pub(crate) fn of_host(h: &HostConfig) -> Limits {
        Limits {
            memory: h.memory.unwrap_or(0),
            memory_swap: h.memory_swap.unwrap_or(0),
            memory_reservation: h.memory_reservation.unwrap_or(0),
            memory_swappiness: h.memory_swappiness,
            nano_cpus: h.nano_cpus.unwrap_or(0),
            cpu_period: h.cpu_period.unwrap_or(0),
            cpu_quota: h.cpu_quota.unwrap_or(0),
            blkio_weight: h.blkio_weight.unwrap_or(0) as i64,
            cpuset_cpus: h.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: h.cpuset_mems.clone().unwrap_or_default(),
        }
    }

    /// The values of an update's body.
    pub(crate) fn of_update(b: &ContainerUpdateBody) -> Limits {
        Limits {
            memory: b.memory.unwrap_or(0),
            memory_swap: b.memory_swap.unwrap_or(0),
            memory_reservation: b.memory_reservation.unwrap_or(0),
            memory_swappiness: b.memory_swappiness,
            nano_cpus: b.nano_cpus.unwrap_or(0),
            cpu_period: b.cpu_period.unwrap_or(0),
            cpu_quota: b.cpu_quota.unwrap_or(0),
            blkio_weight: b.blkio_weight.unwrap_or(0) as i64,
            cpuset_cpus: b.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: b.cpuset_mems.clone().unwrap_or_default(),
        }
    }

    /// dockerd's checks, in its order and words; `create` adds the ones only a create makes (an update may
    /// set swap alone, on top of a memory limit set before).
    pub(crate) fn check(&self, create: bool) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidParameter(m));
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if self.memory != 0 && self.memory < MIN_MEMORY {
            return bad("Minimum memory limit allowed is 6MB".into());
        }
        if self.memory > 0 && self.memory_swap > 0 && self.memory_swap < self.memory {
            return bad(
                "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
            );
        }
        // -1 means unlimited swap; anything else below zero would mean it too, by accident.
        if self.memory_swap < -1 {
            return bad(format!(
                "Invalid value: {}, memory swap must be -1 (unlimited) or a positive number",
                self.memory_swap
            ));
        }
        if create && self.memory == 0 && self.memory_swap > 0 {
            return bad(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            );
        }
        if let Some(s) = self.memory_swappiness {
            // -1 is what clients send for "not set".
            if s != -1 && !(0..=100).contains(&s) {
                return bad(format!(
                    "Invalid value: {s}, valid memory swappiness range is 0-100"
                ));
            }
        }
        if self.memory_reservation != 0 && self.memory_reservation < MIN_MEMORY {
            return bad("Minimum memory reservation allowed is 6MB".into());
        }
        if self.memory > 0 && self.memory_reservation > 0 && self.memory < self.memory_reservation {
            return bad(
                "Minimum memory limit can not be less than memory reservation limit, see usage"
                    .into(),
            );
        }
        if self.nano_cpus > 0 && self.cpu_period > 0 {
            return bad("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
        }
        if self.nano_cpus > 0 && self.cpu_quota > 0 {
            return bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
        }
        if self.nano_cpus < 0 || self.nano_cpus > ncpu * 1_000_000_000 {
            return bad(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            ));
        }
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)".into());
        }
        if self.cpu_quota > 0 && self.cpu_quota < 1000 {
            return bad("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
        }
        check_cpuset(
            &self.cpuset_cpus,
            "cpus",
            "CPUs",
            "/sys/devices/system/cpu/online",
        )?;
        check_cpuset(
            &self.cpuset_mems,
            "mems",
            "memory nodes",
            "/sys/devices/system/node/online",
        )?;
        if self.blkio_weight > 0 && !(10..=1000).contains(&self.blkio_weight) {
            return bad("Range of blkio weight is from 10 to 1000".into());
        }
        Ok(())
    }
}

/// `--cpuset-cpus`/`--cpuset-mems`: a list such as `0-2,4`, naming only what the host has online (dockerd's
/// `IsCpusetCpusAvailable`); a bad list would otherwise fail only when the cgroup is written at start.
fn check_cpuset(requested: &str, what: &str, plural: &str, online: &str) -> Result<()> {
    if requested.is_empty() {
        return Ok(());
    }
    let Some(ranges) = cpu_list(requested) else {
        return Err(Error::InvalidParameter(format!(
            "Invalid value {requested} for cpuset {what}: invalid format: {requested}"
        )));
    };
    // Where the host does not say what it has (no sysfs), the kernel is left to judge at start.
    let Some((text, available)) = std::fs::read_to_string(online).ok().and_then(|s| {
        let text = s.trim().to_owned();
        cpu_list(&text).map(|l| (text, l))
    }) else {
        return Ok(());
    };
    let has = |n: u32| available.iter().any(|&(a, b)| (a..=b).contains(&n));
    let max = available.iter().map(|&(_, b)| b).max().unwrap_or(0);
    // Bounded by the host's highest number, so a request of `0-4000000000` costs nothing to check.
    if !ranges.iter().all(|&(a, b)| b <= max && (a..=b).all(has)) {
        return Err(Error::InvalidParameter(format!(
            "Requested {plural} are not available - requested {requested}, available: {text}"
        )));
    }
    Ok(())
}

/// A kernel CPU or node list (`0-2,4`) as inclusive ranges; `None` for anything else (an empty item, a
/// reversed range, a sign, a number past `u32`).
fn cpu_list(s: &str) -> Option<Vec<(u32, u32)>> {
    let num = |t: &str| {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse::<u32>().ok()
    };
    s.split(',')
        .map(|item| match item.split_once('-') {
            None => num(item).map(|n| (n, n)),
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                (a <= b).then_some((a, b))
            }
        })
        .collect()
}

/// The json-file driver's options, checked at create (dockerd checks the values only when the container
/// starts; an error then is later and no clearer).
pub(crate) fn check_json_file_options(opts: &HashMap<String, String>) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidParameter(m));
    for (key, value) in opts {
        match key.as_str() {
            "max-size" => match human_size(value) {
                None => return bad(format!("invalid size: '{value}'")),
                Some(0) => return bad("max-size must be a positive number".into()),
                Some(_) => {}
            },
            "max-file" => match value.parse::<i64>() {
                Err(_) => return bad(format!("strconv.Atoi: parsing \"{value}\": invalid syntax")),
                Ok(n) if n < 1 => return bad("max-file cannot be less than 1".into()),
                Ok(_) => {}
            },
            "compress" => {
                if !matches!(
                    value.as_str(),
                    "1" | "t"
                        | "T"
                        | "true"
                        | "TRUE"
                        | "True"
                        | "0"
                        | "f"
                        | "F"
                        | "false"
                        | "FALSE"
                        | "False"
                ) {
                    return bad(format!(
                        "error enabling log compression: strconv.ParseBool: parsing \"{value}\": invalid syntax"
                    ));
                }
            }
            "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {}
            other => {
                return bad(format!(
                    "unknown log opt '{other}' for json-file log driver"
                ))
            }
        }
    }
    Ok(())
}

/// Docker's `units.FromHumanSize` (decimal units: `10m` is 10,000,000 bytes), as the json-file driver reads
/// `max-size`; `None` for what it refuses (negative numbers among them).
pub(crate) fn human_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(f: impl FnOnce(&mut HostConfig)) -> Result<()> {
        let mut h = HostConfig::default();
        f(&mut h);
        Limits::of_host(&h).check(true)
    }

    fn msg(r: Result<()>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn values_that_would_switch_a_limit_off_are_refused() {
        assert!(msg(host(|h| h.memory = Some(-1))).contains("Minimum memory limit allowed is 6MB"));
        assert!(msg(host(|h| h.memory = Some(1024))).contains("6MB"));
        assert!(host(|h| h.memory = Some(64 << 20)).is_ok());
        assert!(msg(host(|h| {
            h.memory = Some(64 << 20);
            h.memory_swap = Some(-5);
        }))
        .contains("memory swap must be -1"));
        assert!(host(|h| {
            h.memory = Some(64 << 20);
            h.memory_swap = Some(-1);
        })
        .is_ok());
        assert!(msg(host(|h| h.memory_swap = Some(64 << 20))).contains("always set the Memory"));
        assert!(msg(host(|h| h.memory_swappiness = Some(101))).contains("0-100"));
        assert!(host(|h| h.memory_swappiness = Some(-1)).is_ok());
        assert!(msg(host(|h| h.nano_cpus = Some(-1))).contains("Range of CPUs"));
        assert!(msg(host(|h| h.cpu_period = Some(10))).contains("cfs period"));
        assert!(msg(host(|h| h.blkio_weight = Some(5))).contains("blkio weight"));
    }

    #[test]
    fn cpusets_are_lists_of_what_the_host_has() {
        let cpus = |v: &str| {
            host(|h| h.cpuset_cpus = Some(v.into()))
                .err()
                .map(|e| e.to_string())
        };
        let mems = |v: &str| {
            host(|h| h.cpuset_mems = Some(v.into()))
                .err()
                .map(|e| e.to_string())
        };
        // CPU 0 and node 0 exist on every host.
        for ok in ["", "0", "0-0", "0,0"] {
            assert_eq!(cpus(ok), None, "{ok}");
            assert_eq!(mems(ok), None, "{ok}");
        }
        for bad in [
            "a",
            "-1",
            "1-0",
            "0-",
            ",",
            "0,",
            " 0",
            "0-1-2",
            "99999999999",
        ] {
            assert_eq!(
                cpus(bad).as_deref(),
                Some(
                    format!("Invalid value {bad} for cpuset cpus: invalid format: {bad}").as_str()
                )
            );
            assert!(
                mems(bad).is_some_and(|e| e.contains("for cpuset mems")),
                "{bad}"
            );
        }
        for absent in ["4095", "0-4000000000", "0,4095"] {
            let e = cpus(absent).expect("refused");
            assert!(
                e.starts_with(&format!(
                    "Requested CPUs are not available - requested {absent}, available: 0"
                )),
                "{e}"
            );
            let e = mems(absent).expect("refused");
            assert!(
                e.starts_with("Requested memory nodes are not available"),
                "{e}"
            );
        }
        // `docker update` checks the same lists.
        let b = ContainerUpdateBody {
            cpuset_cpus: Some("4095".into()),
            ..Default::default()
        };
        assert!(msg(Limits::of_update(&b).check(false)).contains("Requested CPUs"));
        assert_eq!(cpu_list("0-2,4"), Some(vec![(0, 2), (4, 4)]));
    }

    /// A change to an update's body.
    type Edit = fn(&mut ContainerUpdateBody);

    #[test]
    fn update_checks_the_values_create_checks() {
        let upd = |f: Edit| {
            let mut b = ContainerUpdateBody::default();
            f(&mut b);
            Limits::of_update(&b)
                .check(false)
                .err()
                .map(|e| e.to_string())
        };
        let cases: [(Edit, &str); 9] = [
            (|b| b.memory = Some(1 << 20), "Minimum memory limit allowed is 6MB"),
            (|b| b.memory = Some(-2), "Minimum memory limit allowed is 6MB"),
            (
                |b| {
                    b.memory = Some(64 << 20);
                    b.memory_swap = Some(32 << 20);
                },
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ),
            (
                |b| b.memory_reservation = Some(1),
                "Minimum memory reservation allowed is 6MB",
            ),
            (
                |b| b.memory_swappiness = Some(200),
                "Invalid value: 200, valid memory swappiness range is 0-100",
            ),
            (
                |b| b.cpu_quota = Some(10),
                "CPU cfs quota can not be less than 1ms (i.e. 1000)",
            ),
            (
                |b| b.cpu_period = Some(2_000_000),
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ),
            (
                |b| b.blkio_weight = Some(1001),
                "Range of blkio weight is from 10 to 1000",
            ),
            (
                |b| {
                    b.nano_cpus = Some(1_000_000_000);
                    b.cpu_quota = Some(50_000);
                },
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(upd(f).as_deref(), Some(want));
        }
        // An update may set swap alone (over a memory limit set before).
        assert_eq!(upd(|b| b.memory_swap = Some(256 << 20)), None);
    }

    #[test]
    fn json_file_options_are_checked_as_dockerd_does() {
        let opts = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
        let m = |k: &str, v: &str| msg(check_json_file_options(&opts(k, v)));
        assert_eq!(m("max-size", "0"), "max-size must be a positive number");
        assert_eq!(m("max-size", "-1"), "invalid size: '-1'");
        assert_eq!(m("max-file", "0"), "max-file cannot be less than 1");
        assert_eq!(m("max-file", "-1"), "max-file cannot be less than 1");
        assert_eq!(
            m("bogus", "1"),
            "unknown log opt 'bogus' for json-file log driver"
        );
        assert!(check_json_file_options(&opts("max-size", "10m")).is_ok());
        assert!(check_json_file_options(&opts("max-file", "5")).is_ok());
        assert_eq!(human_size("10m"), Some(10_000_000));
        assert_eq!(human_size("1.5k"), Some(1500));
        assert_eq!(human_size("12"), Some(12));
        assert_eq!(human_size("x"), None);
    }
}
