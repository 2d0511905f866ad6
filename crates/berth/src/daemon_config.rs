//! The daemon's configuration file (`--config-file`, dockerd's daemon.json): the settings Berth reads
//! from it, merged with the flags as dockerd merges them (a setting given both ways is an error).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Where the file is looked for when `--config-file` is not given (a missing file there is no error).
pub const DEFAULT_PATH: &str = "/etc/berth/daemon.json";

/// The keys Berth reads; others are left alone with a warning (dockerd has many Berth does not).
const KNOWN: [&str; 7] = [
    "userns-remap",
    "log-driver",
    "log-opts",
    "bridge",
    "bip",
    "ipv6",
    "fixed-cidr-v6",
];

/// The file's settings.
#[derive(Debug, Default)]
pub struct FileConfig {
    /// `log-driver`.
    pub log_driver: Option<String>,
    /// `log-opts`.
    pub log_opts: Option<HashMap<String, String>>,
    /// `bridge`.
    pub bridge: Option<String>,
    /// `bip`.
    pub bip: Option<String>,
    /// `ipv6`.
    pub ipv6: Option<bool>,
    /// `fixed-cidr-v6`.
    pub fixed_cidr_v6: Option<String>,
    /// `userns-remap`.
    pub userns_remap: Option<String>,
}

/// Reads the file: `explicit` is `--config-file`, whose absence is an error; without it a missing
/// default file is an empty configuration.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<FileConfig> {
    let path = explicit.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_path_buf);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(FileConfig::default())
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "unable to configure the daemon with file {}",
                    path.display()
                )
            })
        }
    };
    parse(&text).with_context(|| {
        format!(
            "unable to configure the daemon with file {}",
            path.display()
        )
    })
}

fn parse(text: &str) -> anyhow::Result<FileConfig> {
    let v: serde_json::Value = serde_json::from_str(text).context("invalid JSON")?;
    let Some(map) = v.as_object() else {
        bail!("the configuration is not a JSON object");
    };
    for key in map.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        tracing::warn!(key = %key, "daemon.json: Berth does not read this setting; it is ignored");
    }
    let log_driver = match map.get("log-driver") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => bail!("log-driver: a string is expected"),
    };
    let log_opts = match map.get("log-opts") {
        None => None,
        Some(serde_json::Value::Object(o)) => Some(
            o.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => bail!("log-opts: the value of {k} must be a string"),
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        Some(_) => bail!("log-opts: an object of strings is expected"),
    };
    let string = |k: &str| -> anyhow::Result<Option<String>> {
        match map.get(k) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => bail!("{k}: a string is expected"),
        }
    };
    Ok(FileConfig {
        log_driver,
        log_opts,
        bridge: string("bridge")?,
        bip: string("bip")?,
        ipv6: match map.get("ipv6") {
            None => None,
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(_) => bail!("ipv6: true or false is expected"),
        },
        fixed_cidr_v6: string("fixed-cidr-v6")?,
        userns_remap: string("userns-remap")?,
    })
}

/// The default network's settings from the flags (`flags`) and the file, as dockerd merges them: each from
/// one or the other, and an error naming both values when a setting is given both ways.
pub fn network_config(
    flags: engine::networks::NetworkConfig,
    file: &FileConfig,
) -> anyhow::Result<engine::networks::NetworkConfig> {
    let mut conflicts = Vec::new();
    let mut merge =
        |name: &str, flag: Option<String>, from_file: &Option<String>| match (flag, from_file) {
            (Some(f), Some(c)) => {
                conflicts.push(format!("{name}: (from flag: {f}, from file: {c})"));
                Some(f)
            }
            (f, c) => f.or_else(|| c.clone()),
        };
    let bridge = merge("bridge", flags.bridge, &file.bridge);
    let bip = merge("bip", flags.bip, &file.bip);
    let fixed_cidr_v6 = merge("fixed-cidr-v6", flags.fixed_cidr_v6, &file.fixed_cidr_v6);
    let ipv6 = match (flags.ipv6, file.ipv6) {
        (true, Some(f)) => {
            conflicts.push(format!("ipv6: (from flag: true, from file: {f})"));
            true
        }
        (flag, f) => flag || f.unwrap_or(false),
    };
    if !conflicts.is_empty() {
        bail!(
            "unable to configure the daemon: the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        );
    }
    Ok(engine::networks::NetworkConfig {
        bridge,
        bip,
        ipv6,
        fixed_cidr_v6,
    })
}

/// `--userns-remap` from the flag or the file (not both, as dockerd), resolved onto the user's
/// subordinate ids; `None` without remapping (or remapping onto root, which dockerd turns off).
pub fn userns_remap(
    flag: Option<&str>,
    file: &FileConfig,
) -> anyhow::Result<Option<engine::userns::Remap>> {
    let spec = match (flag, &file.userns_remap) {
        (Some(f), Some(c)) => bail!(
            "unable to configure the daemon: the following directives are specified both as a flag and in the configuration file: userns-remap: (from flag: {f}, from file: {c})"
        ),
        (Some(f), None) => f.to_owned(),
        (None, Some(c)) => c.clone(),
        (None, None) => return Ok(None),
    };
    if spec.is_empty() {
        return Ok(None);
    }
    Ok(engine::userns::resolve(
        &spec,
        &engine::userns::Files::host(),
    )?)
}

/// The default log config from `--log-driver`/`--log-opt` and the file, checked as dockerd checks it.
pub fn log_defaults(
    flag_driver: Option<&str>,
    flag_opts: &[String],
    file: &FileConfig,
) -> anyhow::Result<engine::LogDefaults> {
    let mut conflicts = Vec::new();
    if let (Some(f), Some(d)) = (flag_driver, &file.log_driver) {
        conflicts.push(format!("log-driver: (from flag: {f}, from file: {d})"));
    }
    let mut opts = HashMap::new();
    for kv in flag_opts {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid argument \"{kv}\" for \"--log-opt\" flag: bad format for log-opt, expected key=value");
        };
        opts.insert(k.to_owned(), v.to_owned());
    }
    if let (false, Some(o)) = (flag_opts.is_empty(), &file.log_opts) {
        let mut from_flag: Vec<_> = opts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        from_flag.sort();
        let mut from_file: Vec<_> = o.iter().map(|(k, v)| format!("{k}={v}")).collect();
        from_file.sort();
        conflicts.push(format!(
            "log-opts: (from flag: map[{}], from file: map[{}])",
            from_flag.join(" "),
            from_file.join(" ")
        ));
    }
    if !conflicts.is_empty() {
        bail!(
            "unable to configure the daemon: the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        );
    }
    if flag_opts.is_empty() {
        opts = file.log_opts.clone().unwrap_or_default();
    }
    let driver = flag_driver
        .map(str::to_owned)
        .or_else(|| file.log_driver.clone())
        .unwrap_or_else(|| "json-file".to_owned());
    engine::containers::logdriver::validate(&driver, &opts)
        .map_err(|e| anyhow::anyhow!("failed to set log opts: {e}"))?;
    Ok(engine::LogDefaults { driver, opts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_settings_come_from_the_flags_or_the_file_not_both() {
        let file = parse(r#"{"ipv6": true, "fixed-cidr-v6": "fd00:1::/64", "bip": "10.9.0.1/24"}"#)
            .unwrap();
        let c = network_config(engine::networks::NetworkConfig::default(), &file).unwrap();
        assert!(c.ipv6);
        assert_eq!(c.fixed_cidr_v6.as_deref(), Some("fd00:1::/64"));
        assert_eq!(c.bip.as_deref(), Some("10.9.0.1/24"));
        assert!(parse(r#"{"ipv6": "yes"}"#).is_err());
        let flags = engine::networks::NetworkConfig {
            bip: Some("10.8.0.1/24".into()),
            ..Default::default()
        };
        let e = network_config(flags, &file).unwrap_err().to_string();
        assert!(
            e.ends_with("specified both as a flag and in the configuration file: bip: (from flag: 10.8.0.1/24, from file: 10.9.0.1/24)"),
            "{e}"
        );
    }

    #[test]
    fn userns_remap_comes_from_the_flag_or_the_file_not_both() {
        let file = parse(r#"{"userns-remap": "a:b:c"}"#).unwrap();
        assert_eq!(file.userns_remap.as_deref(), Some("a:b:c"));
        let e = userns_remap(None, &file).unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid user/group specification in --userns-remap: \"a:b:c\""
        );
        let e = userns_remap(Some("default"), &file)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("userns-remap: (from flag: default, from file: a:b:c)"),
            "{e}"
        );
        assert!(userns_remap(None, &FileConfig::default())
            .unwrap()
            .is_none());
        assert!(userns_remap(Some(""), &FileConfig::default())
            .unwrap()
            .is_none());
        assert!(parse(r#"{"userns-remap": 1}"#).is_err());
    }

    #[test]
    fn the_file_and_the_flags_make_the_default_and_may_not_both_set_it() {
        let file =
            parse(r#"{"log-driver":"local","log-opts":{"max-size":"1m"},"debug":true}"#).unwrap();
        let d = log_defaults(None, &[], &file).unwrap();
        assert_eq!(d.driver, "local");
        assert_eq!(d.opts.get("max-size").map(String::as_str), Some("1m"));
        let e = log_defaults(Some("syslog"), &[], &file)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("log-driver: (from flag: syslog, from file: local)"),
            "{e}"
        );
        let d = log_defaults(
            Some("local"),
            &["max-file=2".into()],
            &FileConfig::default(),
        )
        .unwrap();
        assert_eq!(d.opts.get("max-file").map(String::as_str), Some("2"));
        let e = log_defaults(Some("nope"), &[], &FileConfig::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "failed to set log opts: logger: no log driver named 'nope' is registered"
        );
    }
}
