//! The routes of what Berth does not have, answered as dockerd answers them in the same state where it has
//! one, otherwise with a 501 naming the feature, never a bare "page not found" on a path the docker CLI
//! calls:
//!
//! - swarm mode (swarm, services, nodes, tasks, secrets, configs): Berth is a node that is in no swarm, so
//!   these get dockerd's 503s for that state ("not a swarm manager", "not part of a swarm"), except `swarm
//!   init` and `join`, which dockerd would carry out: 501.
//! - plugins: none is installed, so the list is empty and a named plugin is not found (dockerd's 404, which
//!   also lets `docker inspect NAME` go on to the other kinds of object); installing one (`pull`,
//!   `create`, `privileges`) is a 501.
//! - BuildKit's gRPC endpoint (buildx), checkpoints and websocket attach: 501.

use http::{Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::error::{ApiError, ApiResult};

/// dockerd's answer to leaving a swarm the node never joined.
const NOT_IN_SWARM: &str = "This node is not part of a swarm";

/// One route of dockerd's swarm API: method and path, `*` standing for one path segment (an ID or name).
const SWARM_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/swarm"),
    (Method::POST, "/swarm/init"),
    (Method::POST, "/swarm/join"),
    (Method::POST, "/swarm/leave"),
    (Method::POST, "/swarm/update"),
    (Method::GET, "/swarm/unlockkey"),
    (Method::POST, "/swarm/unlock"),
    (Method::GET, "/services"),
    (Method::POST, "/services/create"),
    (Method::GET, "/services/*"),
    (Method::DELETE, "/services/*"),
    (Method::POST, "/services/*/update"),
    (Method::GET, "/services/*/logs"),
    (Method::GET, "/nodes"),
    (Method::GET, "/nodes/*"),
    (Method::DELETE, "/nodes/*"),
    (Method::POST, "/nodes/*/update"),
    (Method::GET, "/tasks"),
    (Method::GET, "/tasks/*"),
    (Method::GET, "/tasks/*/logs"),
    (Method::GET, "/secrets"),
    (Method::POST, "/secrets/create"),
    (Method::GET, "/secrets/*"),
    (Method::DELETE, "/secrets/*"),
    (Method::POST, "/secrets/*/update"),
    (Method::GET, "/configs"),
    (Method::POST, "/configs/create"),
    (Method::GET, "/configs/*"),
    (Method::DELETE, "/configs/*"),
    (Method::POST, "/configs/*/update"),
];

fn matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.split('/');
    let mut x = path.split('/');
    loop {
        match (p.next(), x.next()) {
            (None, None) => return true,
            (Some("*"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The answer for `method path` (path without its `/vX.Y` prefix) if it is one of the routes this module
/// covers outside `/containers/…`; `None` leaves it to the rest of the router.
pub fn answer(method: &Method, path: &str) -> Option<ApiResult<Response<Body>>> {
    if let Some(route) = SWARM_ROUTES
        .iter()
        .find(|(m, p)| m == method && matches(p, path))
        .map(|(_, p)| *p)
    {
        return Some(Err(match route {
            "/swarm/init" | "/swarm/join" => not_implemented(
                "Berth does not support swarm mode: a Berth node cannot create or join a swarm",
            ),
            "/swarm/leave" => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_IN_SWARM),
            _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, engine::NOT_SWARM_MANAGER),
        }));
    }
    if let Some(rest) = path.strip_prefix("/plugins") {
        return plugin(method, rest);
    }
    match (method, path) {
        (&Method::POST, "/grpc") => Some(Err(not_implemented(
            "Berth does not support BuildKit's gRPC API (buildx's docker driver): build with the docker CLI's own builder",
        ))),
        _ => None,
    }
}

/// `/plugins…` (`rest` is what follows `/plugins`): no plugin is installed, and none can be.
fn plugin(method: &Method, rest: &str) -> Option<ApiResult<Response<Body>>> {
    let install = || {
        Some(Err(not_implemented(
            "Berth does not support plugins: they cannot be installed",
        )))
    };
    match (method, rest) {
        (&Method::GET, "") => Some(Ok(body::json(&Vec::<serde_json::Value>::new()))),
        (&Method::GET, "/privileges") | (&Method::POST, "/pull" | "/create") => install(),
        (m, r) => {
            let r = r.strip_prefix('/').filter(|r| !r.is_empty())?;
            let name = if *m == Method::DELETE {
                r
            } else {
                let (name, action) = r.rsplit_once('/')?;
                let known = match *m {
                    Method::GET => action == "json",
                    Method::POST => {
                        matches!(action, "enable" | "disable" | "push" | "upgrade" | "set")
                    }
                    _ => false,
                };
                if !known || name.is_empty() {
                    return None;
                }
                name
            };
            Some(Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("plugin \"{name}\" not found"),
            )))
        }
    }
}

/// `/containers/{name}/checkpoints[/{id}]`: checkpoint and restore (CRIU).
pub fn checkpoints() -> ApiError {
    not_implemented("Berth does not support checkpoint and restore")
}

/// `/containers/{name}/attach/ws`.
pub fn attach_websocket() -> ApiError {
    not_implemented(
        "Berth does not support attaching over a websocket: use POST /containers/{id}/attach",
    )
}

fn not_implemented(message: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: Method, path: &str) -> Option<StatusCode> {
        answer(&method, path).map(|r| match r {
            Ok(resp) => resp.status(),
            Err(e) => e.status,
        })
    }

    #[test]
    fn swarm_routes_answer_as_a_node_in_no_swarm() {
        let unavailable = Some(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(Method::GET, "/swarm"), unavailable);
        assert_eq!(status(Method::POST, "/services/abc/update"), unavailable);
        assert_eq!(status(Method::GET, "/tasks/t1/logs"), unavailable);
        assert_eq!(status(Method::POST, "/swarm/leave"), unavailable);
        assert_eq!(
            status(Method::POST, "/swarm/init"),
            Some(StatusCode::NOT_IMPLEMENTED)
        );
        // Not dockerd routes: left to the router's 404.
        assert_eq!(status(Method::GET, "/servicesx"), None);
        assert_eq!(status(Method::GET, "/services/a/b/c"), None);
        assert_eq!(status(Method::GET, "/images/json"), None);
    }

    #[test]
    fn plugins_are_none_and_cannot_be_installed() {
        assert_eq!(status(Method::GET, "/plugins"), Some(StatusCode::OK));
        assert_eq!(
            status(Method::GET, "/plugins/vieux/sshfs:latest/json"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(Method::DELETE, "/plugins/x"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(Method::POST, "/plugins/x/enable"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(Method::POST, "/plugins/pull"),
            Some(StatusCode::NOT_IMPLEMENTED)
        );
        assert_eq!(status(Method::POST, "/plugins/x/bogus"), None);
    }
}
