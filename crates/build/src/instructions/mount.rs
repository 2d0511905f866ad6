//! `RUN --mount=...` specifications.
//!
//! Docker checks a mount twice: when the Dockerfile is parsed only the `from` field is read (it
//! decides stage dependencies and may not use variables), and when the `RUN` is dispatched the
//! whole specification is parsed after variable expansion. [`MountSpec`] is the first step and
//! [`MountSpec::resolve`] the second.

use super::suggest::with_suggestion;

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// A read-only (by default) bind of the context or another stage.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// A fresh tmpfs.
    Tmpfs,
    /// A build secret file.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// Used by all writers at once.
    Shared,
    /// Each writer gets its own copy when busy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// A fully parsed `--mount` (after expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount kind (`bind` unless `type=` says otherwise).
    pub kind: MountType,
    /// `from=`: the stage or image to take the source from.
    pub from: Option<String>,
    /// `source=`/`src=`.
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`.
    pub target: Option<String>,
    /// Read-only (default true for bind, secret and ssh; false for cache and tmpfs).
    pub read_only: bool,
    /// `id=` of a cache, secret or ssh mount.
    pub id: Option<String>,
    /// `sharing=` of a cache mount.
    pub sharing: Option<CacheSharing>,
    /// `required` for secret and ssh mounts.
    pub required: bool,
    /// `size=` of a tmpfs, in bytes.
    pub size: Option<u64>,
    /// `mode=` (octal) for cache, secret and ssh mounts.
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `env=`: expose a secret as this environment variable.
    pub env: Option<String>,
}

/// A `--mount` value as written, with the `from` field read at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The flag value as written.
    pub raw: String,
    /// The `from=` field, if any (stage dependencies are computed from it before expansion).
    pub from: Option<String>,
}

impl MountSpec {
    /// Reads the parse-time part of a `--mount` value.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut from = None;
        for field in csv_fields(raw)? {
            if let Some((key, value)) = field.split_once('=') {
                if key.eq_ignore_ascii_case("from") {
                    if let Some(i) = value.find('$') {
                        if i != value.len() - 1 {
                            return Err("'from' doesn't support variable expansion, define alias stage instead".into());
                        }
                    }
                    from = Some(value.to_string());
                }
            }
        }
        Ok(MountSpec {
            raw: raw.to_string(),
            from,
        })
    }

    /// Parses the whole specification, each value passed through `expand` first.
    pub fn resolve(
        &self,
        expand: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Mount, String> {
        parse_mount(&self.raw, expand)
    }
}

/// Splits a CSV record (`a=b,"c=d,e"`): fields separated by commas, double quotes group and `""`
/// inside quotes is a literal quote.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            }
            '"' if cur.is_empty() => in_quotes = true,
            ',' if !in_quotes => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if in_quotes {
        return Err(format!(
            "failed to parse csv mounts: unterminated quote in {s:?}"
        ));
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    // Go's strconv.ParseBool spellings.
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

/// Parses a size like `64m`, `1g`, `512k` or plain bytes (docker/go-units `RAMInBytes`: binary
/// multiples, optional `b`/`ib` suffix, case-insensitive).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

fn parse_mount(
    raw: &str,
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Mount, String> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: false,
        id: None,
        sharing: None,
        required: false,
        size: None,
        mode: None,
        uid: None,
        gid: None,
        env: None,
    };
    let mut ro_auto = true;
    for field in csv_fields(raw)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.to_string()),
            None => {
                match field.to_ascii_lowercase().as_str() {
                    "readonly" | "ro" => {
                        m.read_only = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.read_only = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                        m.required = true
                    }
                    "required" => {
                        return Err(format!(
                            "unexpected key 'required' for mount type '{}'",
                            m.kind.name()
                        ))
                    }
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            }
        };
        let value = expand(&value)?;
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(with_suggestion(
                            format!("unsupported mount type {value:?}"),
                            &value,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                            true,
                        ))
                    }
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.name()
                    ));
                }
                m.required = parse_bool(&key, &value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.name()
                    ));
                }
                m.size = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| format!("invalid value for {key}: {value}"))?,
                );
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => {
                        return Err(with_suggestion(
                            format!("unsupported sharing value {value:?}"),
                            &value,
                            &["shared", "private", "locked"],
                            true,
                        ))
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => {
                return Err(with_suggestion(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    ALL_KEYS,
                    true,
                ))
            }
        }
    }
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        let kind = m.kind.name();
        if m.mode.is_some() {
            return Err(format!("mode not allowed for \"{kind}\" type mounts"));
        }
        if m.uid.is_some() {
            return Err(format!("uid not allowed for \"{kind}\" type mounts"));
        }
        if m.gid.is_some() {
            return Err(format!("gid not allowed for \"{kind}\" type mounts"));
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.name()
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(s: &str) -> Result<String, String> {
        Ok(s.to_string())
    }

    #[test]
    fn cache_mount_with_options_parses() {
        let spec = MountSpec::parse(
            "type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.from, None);
        let m = spec.resolve(&literal).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(
            (m.sharing, m.mode, m.uid, m.read_only),
            (Some(CacheSharing::Locked), Some(0o755), Some(1000), false)
        );
    }

    #[test]
    fn bind_mount_from_a_stage_is_read_only_by_default() {
        let spec = MountSpec::parse("from=builder,source=/out,target=/in")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.from.as_deref(), Some("builder"));
        let m = spec.resolve(&literal).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.read_only);
        assert_eq!(
            MountSpec::parse("type=bind,rw,target=/x")
                .and_then(|s| s.resolve(&literal))
                .map(|m| m.read_only),
            Ok(false)
        );
    }

    #[test]
    fn mount_errors_use_dockers_words() {
        let err = |s: &str| {
            MountSpec::parse(s)
                .and_then(|m| m.resolve(&literal))
                .unwrap_err()
        };
        assert_eq!(
            err("from=$STAGE/x"),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert_eq!(
            err("type=cach"),
            "unsupported mount type \"cach\" (did you mean cache?)"
        );
        assert_eq!(
            err("type=bind,mode=0700"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            err("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            err("target=/x,bogus=1"),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            err("type=tmpfs,size=64m,sharing=shared"),
            "invalid cache sharing set for tmpfs mount"
        );
        assert_eq!(
            err("type=bind,required"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(err("junk"), "invalid field 'junk' must be a key=value pair");
    }

    #[test]
    fn tmpfs_size_and_quoted_csv_fields() {
        let m = MountSpec::parse("type=tmpfs,\"target=/a,b\",size=64m")
            .and_then(|s| s.resolve(&literal))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert_eq!(m.size, Some(64 << 20));
    }
}
