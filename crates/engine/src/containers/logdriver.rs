//! Log drivers as dockerd has them: which exist, their options checked with dockerd's messages, the
//! daemon's default (`--log-driver`, `--log-opt`, daemon.json) merged into a container's, and the
//! [`shim::LogDriver`] the shim writes with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard_stubs::models::HostConfigLogConfig;

use super::record::Container;
use crate::error::{Error, Result};

/// The drivers Berth has (besides `none`), as `/info`'s `Plugins.Log` lists them.
pub const DRIVERS: [&str; 4] = ["journald", "json-file", "local", "syslog"];

/// Berth's json-file bounds when the options give none (dockerd's json-file is unbounded; Berth is not).
const JSON_MAX_SIZE: u64 = 10 * 1024 * 1024;
const JSON_MAX_FILES: u32 = 3;
/// The local driver's defaults (dockerd's).
const LOCAL_MAX_SIZE: u64 = 20 * 1024 * 1024;
const LOCAL_MAX_FILES: u32 = 5;

/// Where the journal listens. Tests point it elsewhere with `BERTH_TEST_JOURNAL_SOCKET` (read by the
/// daemon), as no journald runs where they run.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The daemon's default log driver and options, for containers that name none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDefaults {
    /// The driver (`json-file` unless configured).
    pub driver: String,
    /// Its options.
    pub opts: HashMap<String, String>,
}

impl Default for LogDefaults {
    fn default() -> Self {
        LogDefaults {
            driver: "json-file".into(),
            opts: HashMap::new(),
        }
    }
}

/// A container's log config with the daemon's default merged in, as dockerd merges it: no type takes
/// the default's type, and a container of the default's type takes the default's options it does not set.
/// The `cache-*` options (dockerd's read cache for drivers that cannot be read) come from the default
/// whatever the driver.
pub(crate) fn merge(
    defaults: &LogDefaults,
    lc: Option<&HostConfigLogConfig>,
) -> HostConfigLogConfig {
    let mut typ = lc.and_then(|l| l.typ.clone()).unwrap_or_default();
    if typ.is_empty() {
        typ = defaults.driver.clone();
    }
    let mut config = lc.and_then(|l| l.config.clone()).unwrap_or_default();
    for (k, v) in &defaults.opts {
        if typ == defaults.driver || k.starts_with("cache-") {
            config.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    HostConfigLogConfig {
        typ: Some(typ),
        config: Some(config),
    }
}

/// Whether `docker logs` can read what the driver wrote.
pub(crate) fn readable(typ: &str) -> bool {
    matches!(typ, "json-file" | "local")
}

/// Checks a driver's options as dockerd does, with its messages (values too, which dockerd checks only
/// when the container starts).
pub fn validate(typ: &str, opts: &HashMap<String, String>) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidParameter(m));
    if typ == "none" {
        return Ok(());
    }
    let mode = opts.get("mode").map(String::as_str).unwrap_or("");
    if !matches!(mode, "" | "blocking" | "non-blocking") {
        return bad(format!("logger: logging mode not supported: {mode}"));
    }
    if let Some(s) = opts.get("max-buffer-size") {
        if mode != "non-blocking" {
            return bad(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'".into(),
            );
        }
        if crate::containers::lifecycle::parse_size(s).is_none() {
            return bad(format!(
                "error parsing option max-buffer-size: invalid size: '{s}'"
            ));
        }
    }
    if let Some(v) = opts.get("cache-disabled") {
        if parse_bool(v).is_none() {
            return bad(format!("invalid value for option cache-disabled: {v}"));
        }
    }
    if !DRIVERS.contains(&typ) {
        return bad(format!("logger: no log driver named '{typ}' is registered"));
    }
    // The options every driver shares (dockerd filters them out before the driver's own check).
    let own: HashMap<String, String> = opts
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "mode" | "max-buffer-size")
                && !k.strip_prefix("cache-").is_some_and(|o| {
                    matches!(o, "disabled" | "max-file" | "max-size" | "compress")
                        || COMMON.contains(&o)
                })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match typ {
        "json-file" => super::limits::check_json_file_options(&own),
        "local" => local_config(&own).map(drop),
        "syslog" => syslog_config(&own).map(drop),
        "journald" => {
            for key in own.keys() {
                if !COMMON.contains(&key.as_str()) {
                    return bad(format!("unknown log opt '{key}' for journald log driver"));
                }
            }
            Ok(())
        }
        _ => bad(format!("logger: no log driver named '{typ}' is registered")),
    }
}

/// Options every driver takes (labels and env as extra attributes, and the tag).
const COMMON: [&str; 5] = ["labels", "labels-regex", "env", "env-regex", "tag"];

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// dockerd checks option values when the driver starts, and says so; Berth checks them at create, with
/// the same words.
const INIT_FAILED: &str = "failed to initialize logging driver: ";

/// The local driver's settings: (max size, max files, compress).
fn local_config(opts: &HashMap<String, String>) -> Result<(u64, u32, bool)> {
    let bad = |m: String| Err(Error::InvalidParameter(format!("{INIT_FAILED}{m}")));
    for key in opts.keys() {
        if !(COMMON.contains(&key.as_str())
            || matches!(key.as_str(), "max-size" | "max-file" | "compress"))
        {
            return Err(Error::InvalidParameter(format!(
                "unknown log opt '{key}' for log driver local"
            )));
        }
    }
    let mut size = LOCAL_MAX_SIZE;
    if let Some(v) = opts.get("max-size") {
        size = match super::limits::human_size(v) {
            None => {
                return bad(format!(
                    "invalid value for max-size: {v}: invalid size: '{v}'"
                ))
            }
            // dockerd takes 0 as "no rotation"; Berth refuses to switch the bound off, as for json-file.
            Some(0) => return bad("max-size must be a positive number".into()),
            Some(n) => n,
        };
    }
    let mut files = LOCAL_MAX_FILES;
    if let Some(v) = opts.get("max-file") {
        files = match v.parse::<i64>() {
            Err(_) => {
                return bad(format!(
                    "invalid value for max-file: {v}: strconv.Atoi: parsing \"{v}\": invalid syntax"
                ))
            }
            Ok(n) if n < 0 => return bad("max-file must not be negative".into()),
            Ok(0) => return bad("max-file cannot be less than 1".into()),
            Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
        };
    }
    let mut compress = true;
    if let Some(v) = opts.get("compress") {
        compress = match parse_bool(v) {
            Some(b) => b,
            None => {
                return bad(format!(
                    "invalid boolean value for compress: strconv.ParseBool: parsing \"{v}\": invalid syntax"
                ))
            }
        };
    }
    if compress && files <= 1 {
        return bad("compression cannot be enabled when max file count is 1".into());
    }
    Ok((size, files, compress))
}

/// Facilities by name, as syslog(3) numbers them.
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The syslog driver's settings: (address, facility, format).
fn syslog_config(
    opts: &HashMap<String, String>,
) -> Result<(
    shim::drivers::SyslogAddress,
    u8,
    shim::drivers::SyslogFormat,
)> {
    use shim::drivers::{SyslogAddress, SyslogFormat};
    let bad = |m: String| Err(Error::InvalidParameter(m));
    for key in opts.keys() {
        let known = COMMON.contains(&key.as_str())
            || matches!(
                key.as_str(),
                "syslog-address"
                    | "syslog-facility"
                    | "syslog-tls-ca-cert"
                    | "syslog-tls-cert"
                    | "syslog-tls-key"
                    | "syslog-tls-skip-verify"
                    | "syslog-format"
            );
        if !known {
            return bad(format!("unknown log opt '{key}' for syslog log driver"));
        }
    }
    let address = match opts.get("syslog-address").map(String::as_str).unwrap_or("") {
        "" => SyslogAddress::Local,
        a => {
            let (scheme, rest) = a.split_once("://").unwrap_or(("", a));
            match scheme {
                "unix" | "unixgram" => {
                    if let Err(e) = std::fs::metadata(rest) {
                        return bad(format!(
                            "stat {rest}: {}",
                            runtime::error::go_errno_text(&e)
                        ));
                    }
                    if scheme == "unix" {
                        SyslogAddress::Unix(PathBuf::from(rest))
                    } else {
                        SyslogAddress::Unixgram(PathBuf::from(rest))
                    }
                }
                "tcp" | "udp" => {
                    let host = rest.split('/').next().unwrap_or("");
                    // A port is optional (514); an IPv6 address comes in brackets.
                    let has_port = match host.rsplit_once(':') {
                        Some((h, _)) => !h.is_empty() && (!h.contains(':') || h.ends_with(']')),
                        None => false,
                    };
                    let host = if has_port {
                        host.to_owned()
                    } else {
                        format!("{host}:514")
                    };
                    if scheme == "tcp" {
                        SyslogAddress::Tcp(host)
                    } else {
                        SyslogAddress::Udp(host)
                    }
                }
                "tcp+tls" => return Err(Error::NotImplemented(
                    "syslog-address tcp+tls:// is not supported by Berth (use tcp:// or udp://)"
                        .into(),
                )),
                other => return bad(format!("unsupported scheme: '{other}'")),
            }
        }
    };
    let facility = match opts
        .get("syslog-facility")
        .map(String::as_str)
        .unwrap_or("")
    {
        "" => 3,
        f => match FACILITIES.iter().find(|(n, _)| *n == f) {
            Some((_, n)) => *n,
            None => match f.parse::<u8>() {
                Ok(n) if n <= 23 => n,
                _ => return bad("invalid syslog facility".into()),
            },
        },
    };
    let format = match opts.get("syslog-format").map(String::as_str).unwrap_or("") {
        "" => SyslogFormat::Unix,
        "rfc3164" => SyslogFormat::Rfc3164,
        "rfc5424" => SyslogFormat::Rfc5424,
        "rfc5424micro" => SyslogFormat::Rfc5424micro,
        _ => return bad("Invalid syslog format".into()),
    };
    Ok((address, facility, format))
}

/// Docker's log tag: the `tag` option as a template over the container (`{{.ID}}` by default), as
/// dockerd's `ParseLogTag` renders it. Berth renders field references (`{{.Name}}`, `{{.ID}}`,
/// `{{.FullID}}`, `{{.ImageID}}`, `{{.ImageFullID}}`, `{{.ImageName}}`, `{{.Command}}`,
/// `{{.DaemonName}}`, `{{.Hostname}}`) mixed with text, not Go template functions.
pub(crate) fn tag(c: &Container, opts: &HashMap<String, String>, default: &str) -> Result<String> {
    let template = match opts.get("tag").map(String::as_str) {
        Some(t) if !t.is_empty() => t,
        _ => default,
    };
    let short = |id: &str| {
        let id = id.strip_prefix("sha256:").unwrap_or(id);
        id.chars().take(12).collect::<String>()
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(Error::InvalidParameter(format!(
                "template: log-tag:1: unclosed action in {template}"
            )));
        };
        let action = after[..close]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let value = match action {
            ".ID" => short(&c.id),
            ".FullID" => c.id.clone(),
            ".Name" => c.name.trim_start_matches('/').to_owned(),
            ".ImageID" => short(&c.image_id),
            ".ImageFullID" => c.image_id.clone(),
            ".ImageName" => c.config.image.clone().unwrap_or_default(),
            ".Command" => {
                let mut terms = vec![c
                    .config
                    .entrypoint
                    .as_ref()
                    .map(|e| e.join(" "))
                    .unwrap_or_default()];
                terms.extend(c.config.cmd.iter().flatten().cloned());
                terms.join(" ")
            }
            ".DaemonName" => "docker".to_owned(),
            ".Hostname" => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            other => {
                return Err(Error::InvalidParameter(format!(
                    "template: log-tag:1:{}: executing \"log-tag\" at <{other}>: can't evaluate field {} in type *logger.Info",
                    open + 2,
                    other.trim_start_matches('.')
                )))
            }
        };
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An error of a driver's start, as dockerd words it.
fn init_failed(e: Error) -> Error {
    Error::InvalidParameter(format!("{INIT_FAILED}{e}"))
}

/// The attributes the `labels`, `labels-regex`, `env` and `env-regex` options pick from the container's
/// labels and environment, keys passed through `key` (journald's field names), sorted by key; as
/// dockerd's `ExtraAttributes`.
fn extra_attrs(
    c: &Container,
    opts: &HashMap<String, String>,
    key: fn(&str) -> String,
) -> Result<Vec<(String, String)>> {
    let mut extra = std::collections::BTreeMap::new();
    let labels = c.config.labels.clone().unwrap_or_default();
    let env: HashMap<&str, &str> = c
        .config
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .collect();
    let regex = |r: &str| {
        regex::Regex::new(r)
            .map_err(|e| Error::InvalidParameter(format!("{INIT_FAILED}error parsing regexp: {e}")))
    };
    if let Some(names) = opts.get("labels").filter(|s| !s.is_empty()) {
        for n in names.split(',') {
            if let Some(v) = labels.get(n) {
                extra.insert(key(n), v.clone());
            }
        }
    }
    if let Some(r) = opts.get("labels-regex").filter(|s| !s.is_empty()) {
        let re = regex(r)?;
        for (k, v) in labels.iter().filter(|(k, _)| re.is_match(k)) {
            extra.insert(key(k), v.clone());
        }
    }
    if let Some(names) = opts.get("env").filter(|s| !s.is_empty()) {
        for n in names.split(',') {
            if let Some(v) = env.get(n) {
                extra.insert(key(n), (*v).to_owned());
            }
        }
    }
    if let Some(r) = opts.get("env-regex").filter(|s| !s.is_empty()) {
        let re = regex(r)?;
        for (k, v) in env.iter().filter(|(k, _)| re.is_match(k)) {
            extra.insert(key(k), (*v).to_owned());
        }
    }
    Ok(extra.into_iter().collect())
}

/// The attributes json-file and local store with every entry: the labels and variables the options pick,
/// and the tag when the options give one (these drivers have no default tag).
fn file_attrs(c: &Container, opts: &HashMap<String, String>) -> Result<Vec<(String, String)>> {
    let mut attrs = extra_attrs(c, opts, str::to_owned)?;
    if opts.get("tag").is_some_and(|t| !t.is_empty()) {
        let tag = tag(c, opts, "").map_err(init_failed)?;
        attrs.retain(|(k, _)| k != "tag");
        attrs.push(("tag".into(), tag));
        attrs.sort();
    }
    Ok(attrs)
}

/// A label or variable name as a journal field name, as dockerd makes it: upper case, anything but
/// letters and digits an underscore, leading underscores dropped (the journal keeps those for itself).
fn journal_key(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        let ch = if ch.is_ascii_lowercase() {
            ch.to_ascii_uppercase()
        } else if ch.is_ascii_uppercase() || ch.is_ascii_digit() {
            ch
        } else {
            '_'
        };
        if out.is_empty() && ch == '_' {
            continue;
        }
        out.push(ch);
    }
    out
}

/// The local driver's file for a container whose directory is `dir`.
pub(crate) fn local_path(dir: &Path) -> PathBuf {
    dir.join(shim::drivers::local::FILE)
}

/// The json-file driver's file.
pub(crate) fn json_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

/// What the shim of container `c` (whose directory is `dir`) logs with.
pub(crate) fn shim_driver(c: &Container, dir: &Path) -> Result<shim::LogDriver> {
    let lc = c.host_config.log_config.clone().unwrap_or_default();
    let typ = lc.typ.as_deref().unwrap_or("json-file");
    let opts = lc.config.unwrap_or_default();
    Ok(match typ {
        "none" => shim::LogDriver::None,
        "" | "json-file" => shim::LogDriver::JsonFile {
            path: json_path(dir, &c.id),
            max_size: opts
                .get("max-size")
                // dockerd's json-file reads it with `units.FromHumanSize`: `10m` is 10,000,000 bytes.
                .and_then(|s| super::limits::human_size(s))
                .unwrap_or(JSON_MAX_SIZE),
            max_files: opts
                .get("max-file")
                .and_then(|s| s.parse().ok())
                .unwrap_or(JSON_MAX_FILES),
            attrs: file_attrs(c, &opts)?,
        },
        "local" => {
            let (max_size, max_files, compress) = local_config(&opts)?;
            let attrs = file_attrs(c, &opts)?;
            shim::LogDriver::Local {
                path: local_path(dir),
                max_size,
                max_files,
                compress,
                attrs,
            }
        }
        "syslog" => {
            let (address, facility, format) = syslog_config(&opts)?;
            shim::LogDriver::Syslog {
                address,
                facility,
                format,
                tag: tag(c, &opts, "{{.ID}}").map_err(init_failed)?,
            }
        }
        "journald" => {
            let tag = tag(c, &opts, "{{.ID}}").map_err(init_failed)?;
            let socket = std::env::var_os("BERTH_TEST_JOURNAL_SOCKET")
                .map_or_else(|| PathBuf::from(JOURNAL_SOCKET), PathBuf::from);
            let mut fields = extra_attrs(c, &opts, journal_key)?;
            fields.extend([
                ("CONTAINER_ID".into(), c.id.chars().take(12).collect()),
                ("CONTAINER_ID_FULL".into(), c.id.clone()),
                (
                    "CONTAINER_NAME".into(),
                    c.name.trim_start_matches('/').to_owned(),
                ),
                ("CONTAINER_TAG".into(), tag.clone()),
                (
                    "IMAGE_NAME".into(),
                    c.config.image.clone().unwrap_or_default(),
                ),
                ("SYSLOG_IDENTIFIER".into(), tag),
            ]);
            shim::LogDriver::Journald { socket, fields }
        }
        other => {
            return Err(Error::InvalidParameter(format!(
                "logger: no log driver named '{other}' is registered"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn msg(typ: &str, kv: &[(&str, &str)]) -> String {
        validate(typ, &opts(kv)).expect_err("refused").to_string()
    }

    #[test]
    fn drivers_and_options_are_checked_with_dockers_messages() {
        assert_eq!(
            msg("x", &[]),
            "logger: no log driver named 'x' is registered"
        );
        assert!(validate("none", &opts(&[("anything", "1")])).is_ok());
        assert_eq!(
            msg("local", &[("nope", "1")]),
            "unknown log opt 'nope' for log driver local"
        );
        assert_eq!(
            msg("syslog", &[("nope", "1")]),
            "unknown log opt 'nope' for syslog log driver"
        );
        assert_eq!(
            msg("journald", &[("max-size", "1")]),
            "unknown log opt 'max-size' for journald log driver"
        );
        let init = |m: &str| format!("failed to initialize logging driver: {m}");
        for (kv, want) in [
            (("max-size", "0"), "max-size must be a positive number"),
            (
                ("max-size", "-1"),
                "invalid value for max-size: -1: invalid size: '-1'",
            ),
            (("max-file", "-2"), "max-file must not be negative"),
            (("max-file", "0"), "max-file cannot be less than 1"),
            (
                ("max-file", "1"),
                "compression cannot be enabled when max file count is 1",
            ),
            (
                ("compress", "maybe"),
                "invalid boolean value for compress: strconv.ParseBool: parsing \"maybe\": invalid syntax",
            ),
        ] {
            assert_eq!(msg("local", &[kv]), init(want), "{kv:?}");
        }
        assert!(validate("local", &opts(&[("max-file", "1"), ("compress", "false")])).is_ok());
        assert!(validate(
            "local",
            &opts(&[
                ("max-size", "10m"),
                ("tag", "x"),
                ("mode", "non-blocking"),
                ("max-buffer-size", "4m")
            ])
        )
        .is_ok());
        assert_eq!(
            msg("local", &[("mode", "sometimes")]),
            "logger: logging mode not supported: sometimes"
        );
        assert_eq!(
            msg("syslog", &[("syslog-facility", "nope")]),
            "invalid syslog facility"
        );
        assert_eq!(
            msg("syslog", &[("syslog-format", "rfc1")]),
            "Invalid syslog format"
        );
        assert_eq!(
            msg("syslog", &[("syslog-address", "ftp://x")]),
            "unsupported scheme: 'ftp'"
        );
        assert_eq!(
            msg("syslog", &[("syslog-address", "unix:///nonexistent/sock")]),
            "stat /nonexistent/sock: no such file or directory"
        );
        assert!(validate(
            "syslog",
            &opts(&[
                ("syslog-address", "udp://127.0.0.1"),
                ("syslog-facility", "local3")
            ])
        )
        .is_ok());
        assert!(validate("json-file", &opts(&[("cache-disabled", "true")])).is_ok());
        assert_eq!(
            msg("json-file", &[("cache-disabled", "maybe")]),
            "invalid value for option cache-disabled: maybe"
        );
    }

    #[test]
    fn syslog_addresses_get_dockers_default_port() {
        use shim::drivers::SyslogAddress;
        let addr = |a: &str| syslog_config(&opts(&[("syslog-address", a)])).unwrap().0;
        assert_eq!(
            addr("udp://127.0.0.1"),
            SyslogAddress::Udp("127.0.0.1:514".into())
        );
        assert_eq!(
            addr("tcp://127.0.0.1:601"),
            SyslogAddress::Tcp("127.0.0.1:601".into())
        );
        assert_eq!(addr("tcp://[::1]"), SyslogAddress::Tcp("[::1]:514".into()));
        assert_eq!(addr("tcp://[::1]:9"), SyslogAddress::Tcp("[::1]:9".into()));
    }

    #[test]
    fn the_daemon_default_fills_what_the_container_leaves_out() {
        let d = LogDefaults {
            driver: "local".into(),
            opts: opts(&[("max-size", "1m"), ("cache-disabled", "true")]),
        };
        let m = merge(&d, None);
        assert_eq!(m.typ.as_deref(), Some("local"));
        assert_eq!(
            m.config
                .as_ref()
                .unwrap()
                .get("max-size")
                .map(String::as_str),
            Some("1m")
        );
        let own = HostConfigLogConfig {
            typ: Some("syslog".into()),
            config: Some(opts(&[("tag", "t")])),
        };
        let m = merge(&d, Some(&own));
        let c = m.config.unwrap();
        assert_eq!(m.typ.as_deref(), Some("syslog"));
        assert!(
            !c.contains_key("max-size"),
            "another driver's options stay out"
        );
        assert_eq!(c.get("cache-disabled").map(String::as_str), Some("true"));
    }

    #[test]
    fn labels_and_env_become_attributes_as_dockerd_picks_them() {
        let c = Container::for_test(
            "0123456789abcdef0123",
            "web",
            "",
            bollard_stubs::models::ContainerConfig {
                labels: Some(HashMap::from([
                    ("com.example.app".to_owned(), "shop".to_owned()),
                    ("tier".to_owned(), "front".to_owned()),
                    ("other".to_owned(), "x".to_owned()),
                ])),
                env: Some(vec!["REGION=eu".into(), "_PRIV=1".into(), "NOVALUE".into()]),
                ..Default::default()
            },
        );
        let o = opts(&[
            ("labels", "tier,missing"),
            ("labels-regex", "^com\\."),
            ("env", "REGION,NOVALUE"),
            ("env-regex", "^_"),
        ]);
        let kv = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            extra_attrs(&c, &o, str::to_owned).unwrap(),
            kv(&[
                ("REGION", "eu"),
                ("_PRIV", "1"),
                ("com.example.app", "shop"),
                ("tier", "front")
            ])
        );
        assert_eq!(
            extra_attrs(&c, &o, journal_key).unwrap(),
            kv(&[
                ("COM_EXAMPLE_APP", "shop"),
                ("PRIV", "1"),
                ("REGION", "eu"),
                ("TIER", "front")
            ])
        );
        let bad = extra_attrs(&c, &opts(&[("labels-regex", "(")]), str::to_owned);
        assert!(bad
            .unwrap_err()
            .to_string()
            .starts_with("failed to initialize logging driver: error parsing regexp"));
    }

    #[test]
    fn json_file_max_size_is_decimal_as_dockerds() {
        let mut c = Container::for_test(
            "0123456789abcdef0123",
            "web",
            "",
            bollard_stubs::models::ContainerConfig::default(),
        );
        c.host_config.log_config = Some(bollard_stubs::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(opts(&[("max-size", "10m"), ("max-file", "3")])),
        });
        match shim_driver(&c, Path::new("/nonexistent")).unwrap() {
            shim::LogDriver::JsonFile {
                max_size,
                max_files,
                ..
            } => {
                assert_eq!(max_size, 10_000_000);
                assert_eq!(max_files, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tags_render_the_container_fields() {
        let c = Container::for_test(
            "0123456789abcdef0123",
            "web",
            "sha256:fedcba9876543210",
            bollard_stubs::models::ContainerConfig {
                image: Some("busybox".into()),
                ..Default::default()
            },
        );
        let t = |tpl: &str| tag(&c, &opts(&[("tag", tpl)]), "{{.ID}}");
        assert_eq!(tag(&c, &HashMap::new(), "{{.ID}}").unwrap(), "0123456789ab");
        assert_eq!(
            t("{{.Name}}/{{ .FullID }}").unwrap(),
            "web/0123456789abcdef0123"
        );
        assert_eq!(
            t("x-{{.ImageName}}-{{.ImageID}}").unwrap(),
            "x-busybox-fedcba987654"
        );
        assert!(t("{{.Nope}}")
            .unwrap_err()
            .to_string()
            .contains("can't evaluate field Nope"));
    }
}
