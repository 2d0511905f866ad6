//! `daemon.json`, dockerd's configuration file (`--config-file`, by default `/etc/berth/daemon.json`): the
//! daemon settings Berth understands, merged with the flags as dockerd merges them (a setting given both ways
//! is an error naming both values).

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// The default configuration file (dockerd's is `/etc/docker/daemon.json`).
pub const DEFAULT_PATH: &str = "/etc/berth/daemon.json";

/// The keys of `daemon.json` Berth applies.
const KNOWN: &[&str] = &["bridge", "bip", "ipv6", "fixed-cidr-v6"];

/// The settings read from a configuration file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// `bridge`.
    pub bridge: Option<String>,
    /// `bip`.
    pub bip: Option<String>,
    /// `ipv6`.
    pub ipv6: Option<bool>,
    /// `fixed-cidr-v6`.
    pub fixed_cidr_v6: Option<String>,
}

/// Reads `path`; a missing file is no configuration when it is the default path (`explicit` false), an error
/// when the user named it, as in dockerd.
pub fn load(path: &Path, explicit: bool) -> anyhow::Result<FileConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileConfig::default())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(&text).with_context(|| {
        format!(
            "unable to configure the Berth daemon with file {}",
            path.display()
        )
    })
}

/// Parses the text of a configuration file.
pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let map: Map<String, Value> = serde_json::from_str(text).context("invalid JSON")?;
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !unknown.is_empty() {
        // dockerd refuses keys it does not know; Berth only knows a few of dockerd's, so the others are
        // named in the log rather than keeping the daemon from starting.
        tracing::warn!(keys = ?unknown, "daemon.json settings Berth does not apply");
    }
    let string = |k: &str| -> anyhow::Result<Option<String>> {
        match map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => bail!("{k}: want a string, got {other}"),
        }
    };
    Ok(FileConfig {
        bridge: string("bridge")?,
        bip: string("bip")?,
        ipv6: match map.get("ipv6") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => bail!("ipv6: want true or false, got {other}"),
        },
        fixed_cidr_v6: string("fixed-cidr-v6")?,
    })
}

/// Merges one string setting: the flag or the file, an error if both (dockerd's wording).
pub fn merge(
    name: &str,
    flag: Option<String>,
    file: Option<String>,
    conflicts: &mut Vec<String>,
) -> Option<String> {
    match (flag, file) {
        (Some(f), Some(c)) => {
            conflicts.push(format!("{name}: (from flag: {f}, from file: {c})"));
            Some(f)
        }
        (f, c) => f.or(c),
    }
}

/// The error for settings given both as flags and in the file, if any.
pub fn check_conflicts(conflicts: &[String]) -> anyhow::Result<()> {
    if conflicts.is_empty() {
        return Ok(());
    }
    bail!(
        "the following directives are specified both as a flag and in the configuration file: {}",
        conflicts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_are_read_and_bad_types_refused() {
        let c = parse(r#"{"ipv6": true, "fixed-cidr-v6": "fd00:1::/64", "bip": "10.9.0.1/24", "log-driver": "x"}"#)
            .unwrap();
        assert_eq!(c.ipv6, Some(true));
        assert_eq!(c.fixed_cidr_v6.as_deref(), Some("fd00:1::/64"));
        assert_eq!(c.bip.as_deref(), Some("10.9.0.1/24"));
        assert!(parse(r#"{"ipv6": "yes"}"#).is_err());
        assert!(parse("{").is_err());
        assert_eq!(parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn a_setting_given_twice_is_an_error_naming_both() {
        let mut c = Vec::new();
        assert_eq!(
            merge("bip", None, Some("b".into()), &mut c).as_deref(),
            Some("b")
        );
        assert!(check_conflicts(&c).is_ok());
        merge("bip", Some("a".into()), Some("b".into()), &mut c);
        assert_eq!(
            check_conflicts(&c).unwrap_err().to_string(),
            "the following directives are specified both as a flag and in the configuration file: bip: (from flag: a, from file: b)"
        );
    }
}
