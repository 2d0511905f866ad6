//! The daemon's configuration file (`--config-file`, dockerd's daemon.json): the settings Berth reads
//! from it, merged with the flags as dockerd merges them (a setting given both ways is an error).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Where the file is looked for when `--config-file` is not given (a missing file there is no error).
pub const DEFAULT_PATH: &str = "/etc/berth/daemon.json";

/// The keys Berth reads; others are left alone with a warning (dockerd has many Berth does not).
const KNOWN: [&str; 2] = ["log-driver", "log-opts"];

/// The file's settings.
#[derive(Debug, Default)]
pub struct FileConfig {
    /// `log-driver`.
    pub log_driver: Option<String>,
    /// `log-opts`.
    pub log_opts: Option<HashMap<String, String>>,
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
    Ok(FileConfig {
        log_driver,
        log_opts,
    })
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
