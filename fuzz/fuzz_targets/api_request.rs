//! Arbitrary bytes as the body (or query string) of the API requests that carry the most structure,
//! through the functions the daemon's handlers call to decode them (`api::decode`) and the engine's
//! checks that need no daemon state (host config, limits, restart policy, health check, exec config,
//! network name, IPAM and endpoint addresses, volume name and options), then, for a create that passes,
//! Docker's defaults and the OCI resources a start would apply. Never a panic; and a body that decodes
//! encodes to JSON that decodes to the same value.
//!
//! The first byte picks the request (`% 8`): container create, container update, exec create, exec
//! start, network create, network connect, volume create, build query string. Bit 7 makes the client
//! speak API 1.43 instead of the current version (it changes how create reads recursive read-only
//! binds). The rest is the body.
//!
//! Not reached from here: the checks that touch the host or the daemon's state (`-v` binds create
//! their missing host directories; `--device` reads the host node; names, images and networks are
//! looked up).
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Debug;

use api::{decode, ApiError, ApiVersion, Query};
use bollard_stubs::models::ContainerCreateBody;
use engine::containers::{
    check_exec_config, check_update, create_host_config, fill_host_defaults, merge_config,
    resources, ExecConfig, ExecStartConfig,
};
use engine::networks::{check_endpoint_config, check_network_create, ConnectRequest};
use engine::LogDefaults;
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

/// What decodes encodes to JSON that decodes, through the same function, to an equal value
/// (`normalize` puts the fields whose order is not kept in a fixed order first).
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug + Clone>(
    value: &T,
    decode: impl Fn(&[u8]) -> Result<T, ApiError>,
    normalize: impl Fn(&mut T),
) {
    let bytes = serde_json::to_vec(value).expect("a decoded value encodes");
    let mut again = decode(&bytes).unwrap_or_else(|e| {
        panic!(
            "{value:?} encodes as {}, which does not decode: {}",
            String::from_utf8_lossy(&bytes),
            e.message
        )
    });
    let mut first = value.clone();
    normalize(&mut again);
    normalize(&mut first);
    assert_eq!(
        first,
        again,
        "re-encoded as {}",
        String::from_utf8_lossy(&bytes)
    );
}

/// `ExposedPorts` and `Volumes` are JSON objects read into a `Vec` through a `HashMap`: their order is
/// the map's, not the body's.
fn sort_sets(b: &mut ContainerCreateBody) {
    for v in [b.exposed_ports.as_mut(), b.volumes.as_mut()]
        .into_iter()
        .flatten()
    {
        v.sort();
    }
}

fn no_op<T>(_: &mut T) {}

/// The image config create merges under the body: a command, so that a body without one gets as far
/// as the health check.
fn image_config() -> image::ContainerConfig {
    image::ContainerConfig {
        cmd: Some(vec!["sh".into()]),
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let version = if mode & 0x80 != 0 {
        ApiVersion { minor: 43 }
    } else {
        ApiVersion::current()
    };
    match mode % 8 {
        0 => {
            let decode = |b: &[u8]| decode::container_create(b, version);
            let Ok(req) = decode(body) else { return };
            round_trip(&req, decode, sort_sets);
            if let Ok(mut host) = create_host_config(&req, &LogDefaults::default()) {
                let _ = merge_config(&req, &image_config(), "busybox");
                // What a start then makes of the accepted values.
                fill_host_defaults(&mut host);
                // A memory limit that passed keeps its swap limit: -1 (unlimited swap, asked for),
                // or at least the memory; never a value that means "unlimited" by accident.
                let (memory, swap) = (host.memory.unwrap_or(0), host.memory_swap.unwrap_or(0));
                assert!(
                    memory <= 0 || swap == -1 || swap >= memory,
                    "memory {memory} accepted with swap {swap}"
                );
                let _ = resources(&host);
            }
        }
        1 => {
            let Ok(req) = decode::container_update(body) else {
                return;
            };
            round_trip(&req, decode::container_update, no_op);
            let _ = check_update(&req);
        }
        2 => {
            let Ok(req) = decode::json_body::<ExecConfig>(body) else {
                return;
            };
            round_trip(&req, decode::json_body, no_op);
            let _ = check_exec_config(&req);
        }
        3 => {
            let Ok(req) = decode::json_body::<ExecStartConfig>(body) else {
                return;
            };
            round_trip(&req, decode::json_body, no_op);
        }
        4 => {
            let Ok(req) = decode::json_body::<engine::networks::NetworkCreate>(body) else {
                return;
            };
            round_trip(&req, decode::json_body, no_op);
            let _ = check_network_create(&req);
        }
        5 => {
            let Ok(req) = decode::json_body::<ConnectRequest>(body) else {
                return;
            };
            round_trip(&req, decode::json_body, no_op);
            let _ = check_endpoint_config(&req.endpoint_config.unwrap_or_default());
        }
        6 => {
            let Ok(req) = decode::volume_create(body) else {
                return;
            };
            round_trip(&req, decode::volume_create, no_op);
            if let Some(name) = req.name.as_deref().filter(|n| !n.is_empty()) {
                let _ = engine::volumes::store::validate_name(name);
            }
            let opts: Option<BTreeMap<String, String>> =
                req.driver_opts.map(|m| m.into_iter().collect());
            let _ = engine::volumes::validate_local_options(opts.as_ref());
        }
        _ => {
            let Ok(raw) = std::str::from_utf8(body) else {
                return;
            };
            let _ = decode::build_request(&Query::parse(Some(raw)));
        }
    }
});
