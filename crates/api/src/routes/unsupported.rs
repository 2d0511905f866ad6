//! Swarm, services, nodes, tasks, secrets, configs and plugins: Berth is a single-node engine without
//! plugins, so these answer 503 with a message saying so (as Podman does), instead of a confusing 404.

use http::StatusCode;

use crate::error::ApiError;

const SWARM: &[&str] = &[
    "/swarm",
    "/services",
    "/nodes",
    "/tasks",
    "/secrets",
    "/configs",
];

/// Whether `path` belongs to swarm mode or the plugin system.
pub fn is_swarm_or_plugin(path: &str) -> bool {
    SWARM.iter().chain(&["/plugins"]).any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The 503 for such a path.
pub fn error(path: &str) -> ApiError {
    let message = if path.starts_with("/plugins") {
        "Berth does not support plugins".to_owned()
    } else {
        "This node is not a swarm manager. Berth does not support swarm mode (swarm, services, nodes, tasks, secrets and configs).".to_owned()
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_and_plugin_paths_are_recognised() {
        assert!(is_swarm_or_plugin("/swarm"));
        assert!(is_swarm_or_plugin("/services/abc/update"));
        assert!(is_swarm_or_plugin("/plugins"));
        assert!(!is_swarm_or_plugin("/servicesx"));
        assert!(!is_swarm_or_plugin("/images/json"));
        assert_eq!(error("/nodes").status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
