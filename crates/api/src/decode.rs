//! Request bodies and query strings decoded and checked as the handlers need them, before any of the
//! daemon's state is consulted. Public so that the fuzz targets (`fuzz/`) feed bytes through the very
//! functions the handlers call; nothing here reads the connection.

use std::collections::BTreeMap;

use bollard_stubs::models::{ContainerCreateBody, ContainerUpdateBody, VolumeCreateOptions};
use engine::builds::{BuildOptions, BuildRequest, BuildSecrets, RunHost, RunUlimit};
use engine::containers::check_raw_policy;
use http::StatusCode;

use crate::error::ApiError;
use crate::query::Query;
use crate::version::ApiVersion;

/// Whether a body holds nothing but whitespace: such a body reads as the type's default.
fn blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// A JSON body; an empty one reads as `T::default()` (exec create and start, network create and
/// connect, disconnect).
pub fn json_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if blank(bytes) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

/// A create or update body. An unknown restart policy name (at `policy`, a JSON pointer) fails the
/// model's parse: it is answered in dockerd's words.
fn parse_with_policy<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    policy: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Err(p) = check_raw_policy(&raw, policy) {
                return ApiError::from(p);
            }
        }
        ApiError::bad_request(format!("invalid JSON in the request body: {e}"))
    })
}

/// dockerd's refusal of an isolation that is not Linux's (a value the typed body cannot even hold, such as
/// `--isolation bogus`, gets the same words as `hyperv`), for a body that failed to decode.
fn isolation_refused(bytes: &[u8]) -> Option<ApiError> {
    let raw: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let isolation = raw.pointer("/HostConfig/Isolation")?.as_str()?;
    if isolation.is_empty() || isolation.eq_ignore_ascii_case("default") {
        return None;
    }
    Some(ApiError::bad_request(engine::containers::isolation_error(
        isolation,
    )))
}

/// `POST /containers/create`'s body, as a client speaking `version` sent it.
pub fn container_create(
    bytes: &[u8],
    version: ApiVersion,
) -> Result<ContainerCreateBody, ApiError> {
    let mut body: ContainerCreateBody = parse_with_policy(bytes, "/HostConfig/RestartPolicy")
        .map_err(|e| isolation_refused(bytes).unwrap_or(e))?;
    // Annotations came with API 1.43: dockerd drops what an older client sends.
    if version.before(43) {
        if let Some(h) = body.host_config.as_mut() {
            h.annotations = None;
        }
    }
    // Recursive read-only binds came with API 1.44 (Docker 25): older clients keep read-only binds
    // read-only at the top only, and cannot insist on recursion, as dockerd answers them.
    if version.before(44)
        && body
            .host_config
            .iter()
            .flat_map(|h| h.mounts.iter().flatten())
            .any(|m| {
                m.bind_options
                    .as_ref()
                    .is_some_and(|b| b.read_only_force_recursive == Some(true))
            })
    {
        return Err(ApiError::bad_request(
            "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer",
        ));
    }
    Ok(body)
}

/// `POST /containers/{id}/update`'s body.
pub fn container_update(bytes: &[u8]) -> Result<ContainerUpdateBody, ApiError> {
    parse_with_policy(bytes, "/RestartPolicy")
}

/// `POST /volumes/create`'s body; an empty one creates an anonymous volume.
pub fn volume_create(bytes: &[u8]) -> Result<VolumeCreateOptions, ApiError> {
    if blank(bytes) {
        return Ok(VolumeCreateOptions::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// `POST /build`'s query as dockerd reads it (the context tar is the body, read by the engine).
pub fn build_request(q: &Query) -> Result<BuildRequest, ApiError> {
    // BuildKit mode (the docker CLI with DOCKER_BUILDKIT=1): the files and secrets come over the session
    // the client opened; the build itself is Berth's, with the classic builder's semantics.
    let buildkit = q.get("version") == Some("2");
    if buildkit {
        if q.get("session").unwrap_or_default().is_empty() {
            return Err(ApiError::bad_request(
                "BuildKit (version=2) builds need a session (POST /session), which this client did not \
                 give: build with the classic builder (DOCKER_BUILDKIT=0)",
            ));
        }
        if q.get("outputs")
            .is_some_and(|o| !matches!(o, "" | "null" | "[]"))
        {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "--output is not supported by Berth: the build's result is an image in the daemon",
            ));
        }
    }
    let json_map = |key: &str| -> Result<BTreeMap<String, Option<String>>, ApiError> {
        match q.get(key).filter(|v| !v.is_empty() && *v != "null") {
            None => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_str(v)
                .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
        }
    };
    let int = |key: &str| -> Result<i64, ApiError> {
        match q.get(key).filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid {key}: {v}"))),
        }
    };
    let extra_hosts = match q.get("extrahosts").filter(|v| !v.is_empty()) {
        None => Vec::new(),
        // The docker CLI sends them comma-separated; the API also knows a JSON list.
        Some(v) if v.starts_with('[') => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid extrahosts: {e}")))?,
        Some(v) => v.split(',').map(str::to_owned).collect(),
    };
    // The classic builder on Linux: dockerd's checks and words (security options are Windows' credential
    // specs only; isolation is the default only).
    if q.all("securityopt").iter().any(|o| !o.is_empty()) {
        return Err(ApiError::bad_request(
            "The daemon on this platform does not support setting security options on build",
        ));
    }
    if let Some(i) = q.get("isolation").filter(|i| !i.is_empty()) {
        if !i.eq_ignore_ascii_case("default") {
            return Err(ApiError::bad_request(format!(
                "unsupported isolation: {i:?}"
            )));
        }
    }
    let ulimits = match q.get("ulimits").filter(|v| !v.is_empty() && *v != "null") {
        None => Vec::new(),
        Some(v) => serde_json::from_str::<Vec<bollard_stubs::models::ResourcesUlimits>>(v)
            .map_err(|e| ApiError::bad_request(format!("error reading ulimit settings: {e}")))?
            .into_iter()
            .map(|u| RunUlimit {
                name: u.name.unwrap_or_default(),
                soft: u.soft.unwrap_or(0),
                hard: u.hard.unwrap_or(0),
            })
            .collect(),
    };
    let cache_from: Vec<String> = match q.get("cachefrom").filter(|v| !v.is_empty() && *v != "null")
    {
        None => Vec::new(),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?,
    };
    let options = BuildOptions {
        cache_from,
        build_args: json_map("buildargs")?,
        target: q.get("target").filter(|t| !t.is_empty()).map(str::to_owned),
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        labels: json_map("labels")?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        // `rm` is on unless the client says otherwise.
        rm: q.get("rm").is_none() || q.bool("rm"),
        force_rm: q.bool("forcerm"),
        quiet: q.bool("q"),
        host: RunHost {
            network_mode: q.get("networkmode").unwrap_or_default().to_owned(),
            extra_hosts,
            memory: int("memory")?,
            memory_swap: int("memswap")?,
            cpu_shares: int("cpushares")?,
            cpuset_cpus: q.get("cpusetcpus").unwrap_or_default().to_owned(),
            cpu_period: int("cpuperiod")?,
            cpu_quota: int("cpuquota")?,
            shm_size: int("shmsize")?,
            cpuset_mems: q.get("cpusetmems").unwrap_or_default().to_owned(),
            cgroup_parent: q.get("cgroupparent").unwrap_or_default().to_owned(),
            ulimits,
        },
    };
    Ok(BuildRequest {
        dockerfile: q.get("dockerfile").unwrap_or_default().to_owned(),
        options,
        build_id: q.get("buildid").unwrap_or_default().to_owned(),
        // In BuildKit mode `remote=client-session` names the session's context, not a URL.
        remote: match q.get("remote").unwrap_or_default() {
            "client-session" if buildkit => String::new(),
            r => r.to_owned(),
        },
        ..BuildRequest::default()
    })
}

/// The header by which `berth build --secret` sends a build's secrets (the docker CLI sends them over a
/// BuildKit session instead).
pub const BUILD_SECRETS_HEADER: &str = "x-berth-build-secrets";

/// The secrets of [`BUILD_SECRETS_HEADER`]: standard base64 of a JSON object mapping each secret's ID to
/// the standard base64 of its value. The request's head bounds them (`head_limits::MAX_HEAD_BYTES`, 256
/// KiB with every header; the berth CLI sends at most 192 KiB of secrets, about 100 KiB of values).
pub fn build_secrets(header: &[u8]) -> Result<BuildSecrets, ApiError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |what: String| {
        ApiError::bad_request(format!("invalid {BUILD_SECRETS_HEADER} header: {what}"))
    };
    let json = b64
        .decode(header.trim_ascii())
        .map_err(|e| bad(format!("not base64: {e}")))?;
    let map: std::collections::HashMap<String, String> = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("not a JSON object of IDs and base64 values: {e}")))?;
    let mut secrets = std::collections::HashMap::with_capacity(map.len());
    for (id, value) in map {
        if id.is_empty() {
            return Err(bad("a secret without an ID".into()));
        }
        let value = b64
            .decode(value)
            .map_err(|e| bad(format!("secret {id}: not base64: {e}")))?;
        secrets.insert(id, value);
    }
    Ok(BuildSecrets::from_map(secrets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn build_secrets_decodes_ids_and_binary_values() {
        let json = format!(r#"{{"tok":"{}","e":""}}"#, b64(b"s3\x00\xff"));
        let s = build_secrets(b64(json.as_bytes()).as_bytes()).unwrap();
        assert_eq!(s.get("tok").unwrap().as_deref(), Some(&b"s3\x00\xff"[..]));
        assert_eq!(s.get("e").unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(s.get("other").unwrap(), None);
    }

    #[test]
    fn build_secrets_rejects_a_malformed_header_with_400() {
        for (header, why) in [
            ("%%%".to_owned(), "not base64"),
            (b64(b"[1]"), "not a JSON object"),
            (b64(br#"{"a":"%%"}"#), "secret a: not base64"),
            (b64(br#"{"":"YQ=="}"#), "a secret without an ID"),
        ] {
            let e = build_secrets(header.as_bytes()).err().unwrap();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(why), "{}", e.message);
            assert!(e
                .message
                .starts_with("invalid x-berth-build-secrets header"));
        }
    }
}
