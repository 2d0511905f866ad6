//! Docker's image configuration JSON, as the classic builder reads and writes it: the image
//! (`architecture`, `config`, `container`, `container_config`, `created`, `docker_version`,
//! `history`, `os`, `rootfs`, ...) and the container configuration (`Hostname` ... `Shell`).
//!
//! Field order and `null`/omitted rules follow dockerd 20.10's Go structs, so a config serialised
//! from these types is byte-for-byte what dockerd writes for the same values (maps are
//! `BTreeMap`s because Go sorts map keys when it encodes them). Fields this crate does not know
//! are kept in `extra` so a base image's config survives a round trip.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `{}` value of Docker's set-like maps (`ExposedPorts`, `Volumes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A container's configuration (`config` and `container_config` of an image).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// The container's host name (dockerd writes the step container's short ID here).
    #[serde(default)]
    pub hostname: String,
    /// The container's domain name.
    #[serde(default)]
    pub domainname: String,
    /// `USER`.
    #[serde(default)]
    pub user: String,
    /// Attach standard input.
    #[serde(default)]
    pub attach_stdin: bool,
    /// Attach standard output.
    #[serde(default)]
    pub attach_stdout: bool,
    /// Attach standard error.
    #[serde(default)]
    pub attach_stderr: bool,
    /// `EXPOSE`: `port/proto` keys.
    #[serde(default, skip_serializing_if = "is_empty_set")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    /// Allocate a terminal.
    #[serde(default)]
    pub tty: bool,
    /// Keep standard input open.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close standard input after the first attach.
    #[serde(default)]
    pub stdin_once: bool,
    /// `KEY=value` entries.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// The command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Windows only; never set on Linux, kept for round trips.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    /// The image the container was made from.
    #[serde(default)]
    pub image: String,
    /// `VOLUME`: paths.
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, Empty>>,
    /// `WORKDIR`.
    #[serde(default)]
    pub working_dir: String,
    /// `ENTRYPOINT`.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Disable networking.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network_disabled: bool,
    /// A MAC address (old API versions).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// `ONBUILD` triggers.
    #[serde(default)]
    pub on_build: Option<Vec<String>>,
    /// `LABEL`s.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Seconds to wait for the stop signal to work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `SHELL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

fn is_empty_set(v: &Option<BTreeMap<String, Empty>>) -> bool {
    v.as_ref().is_none_or(BTreeMap::is_empty)
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `HEALTHCHECK` settings; durations in nanoseconds, zero meaning "inherit the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["CMD", ...]`, `["CMD-SHELL", cmd]` or `["NONE"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Time a check may take.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Failures before unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// One `history` entry of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran (RFC 3339 with nanoseconds, as Go prints it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    /// `MAINTAINER` in effect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// The step's command, e.g. `/bin/sh -c #(nop)  CMD ["sh"]`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// A free comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// True when the step added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The layers of an image, as diff IDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `sha256:` digests of the uncompressed layers, base first (omitted when none, as Go's
    /// `omitempty` does for an image of config-only steps on scratch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// An image configuration (the JSON whose digest is the image ID).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// A free comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The configuration containers of this image start with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// The step container's ID (empty for a COPY/ADD step, as dockerd).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// The step's configuration: what the classic builder's cache compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<RunConfig>,
    /// Creation time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    /// The engine version that made it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    /// One entry per step, base image's first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Operating system (`linux`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// The layers.
    #[serde(default)]
    pub rootfs: RootFs,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Fields this crate does not model, kept as they came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ImageConfig {
    /// The JSON bytes as dockerd writes them (what an image ID is the digest of): compact, top-level
    /// keys sorted, and `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`-style sequences, as
    /// Go does by default.
    pub fn to_go_json(&self) -> Result<String, serde_json::Error> {
        // dockerd re-marshals the image through a map, so its top-level keys come out sorted
        // (the fields here are declared in that order; this also places kept unknown ones).
        let mut top: Vec<(String, serde_json::Value)> = match serde_json::to_value(self)? {
            serde_json::Value::Object(map) => map.into_iter().collect(),
            other => return Ok(go_escape(&serde_json::to_string(&other)?)),
        };
        top.sort_by(|a, b| a.0.cmp(&b.0));
        let sorted: serde_json::Map<String, serde_json::Value> = top.into_iter().collect();
        Ok(go_escape(&serde_json::to_string(&sorted)?))
    }
}

/// Applies Go's HTML-safe escaping to compact JSON text. The escaped characters can only occur
/// inside strings, so replacing them anywhere is exact.
pub fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dockerd 20.10's config of the webapp fixture image (tests/fixtures/dockerd-webapp), as it
    /// is inside `docker save`: it must parse and serialise back to the same bytes.
    const WEBAPP_CONFIG: &str = include_str!("../testdata/webapp-config.json");

    #[test]
    fn unknown_top_level_fields_are_kept_in_sorted_place() {
        let text = r#"{"architecture":"amd64","os":"linux","os.version":"10.0","rootfs":{"type":"layers"},"variant":"v8"}"#;
        let parsed: ImageConfig = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.to_go_json().unwrap_or_else(|e| panic!("{e}")), text);
    }

    #[test]
    fn dockerd_config_round_trips_byte_for_byte() {
        let parsed: ImageConfig =
            serde_json::from_str(WEBAPP_CONFIG.trim_end()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.history.len(), 14);
        assert_eq!(parsed.config.as_ref().map(|c| c.user.as_str()), Some("app"));
        let again = parsed.to_go_json().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, WEBAPP_CONFIG.trim_end());
    }
}
