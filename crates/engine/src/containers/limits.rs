//! dockerd's checks of resource values and log options (`verifyPlatformContainerResources`, the json-file
//! driver's option checks), shared by create and update: a limit can be set, never switched off by a value
//! that happens to mean "unlimited" further down (a negative memory, a zero log size).

use std::collections::HashMap;

use bollard_stubs::models::{ContainerUpdateBody, HostConfig};

use crate::error::{Error, Result};

/// The smallest memory limit or reservation the kernel accepts usefully (dockerd's `linuxMinMemory`).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The resource values both create and update carry.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Limits {
    memory: i64,
    memory_swap: i64,
    memory_reservation: i64,
    memory_swappiness: Option<i64>,
    nano_cpus: i64,
    cpu_period: i64,
    cpu_quota: i64,
    blkio_weight: i64,
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
        if self.blkio_weight > 0 && !(10..=1000).contains(&self.blkio_weight) {
            return bad("Range of blkio weight is from 10 to 1000".into());
        }
        Ok(())
    }
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
