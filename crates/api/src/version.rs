//! API version negotiation: `/v1.NN/…` prefixes, the oldest and newest versions Berth speaks.

use crate::error::ApiError;

/// An API version such as 1.41, ordered by its minor number (Docker's API is 1.x forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// The `x` in `1.x`.
    pub minor: u32,
}

impl ApiVersion {
    /// Parses `1.NN`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let minor = s.strip_prefix("1.")?;
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        minor.parse().ok().map(|minor| ApiVersion { minor })
    }

    /// The newest version Berth implements (what unversioned paths get).
    pub fn current() -> ApiVersion {
        ApiVersion::parse(engine::API_VERSION).unwrap_or(ApiVersion { minor: 50 })
    }

    /// The oldest version Berth accepts.
    pub fn minimum() -> ApiVersion {
        ApiVersion::parse(engine::MIN_API_VERSION).unwrap_or(ApiVersion { minor: 24 })
    }

    /// True when this version is older than `1.minor`.
    pub fn before(self, minor: u32) -> bool {
        self.minor < minor
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

/// Splits `/v1.41/images/json` into the version and `/images/json`; unversioned paths get the current
/// version. Versions outside the supported range get Docker's errors.
pub fn split(path: &str) -> Result<(ApiVersion, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((ApiVersion::current(), path));
    };
    let (v, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // `/version`, `/volumes`: not a version prefix at all.
        return Ok((ApiVersion::current(), path));
    }
    let Some(version) = ApiVersion::parse(v) else {
        // Digits and dots but not `1.NN` (dockerd's router has no such route).
        return Err(ApiError::page_not_found());
    };
    if version < ApiVersion::minimum() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            ApiVersion::minimum()
        )));
    }
    if version > ApiVersion::current() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {}",
            ApiVersion::current()
        )));
    }
    Ok((version, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unversioned_paths_get_the_current_version() {
        let (v, p) = split("/images/json").unwrap();
        assert_eq!(v, ApiVersion::current());
        assert_eq!(p, "/images/json");
    }

    #[test]
    fn paths_starting_with_v_are_not_versions() {
        assert_eq!(split("/version").unwrap().1, "/version");
        assert_eq!(split("/volumes/x").unwrap().1, "/volumes/x");
    }

    #[test]
    fn versioned_paths_are_split() {
        let (v, p) = split("/v1.41/images/fixture/webapp:1.0/json").unwrap();
        assert_eq!(v.minor, 41);
        assert_eq!(p, "/images/fixture/webapp:1.0/json");
    }

    #[test]
    fn too_old_versions_get_dockers_message() {
        let e = split("/v1.23/version").unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
    }

    #[test]
    fn too_new_versions_are_refused() {
        let e = split("/v1.99/version").unwrap_err();
        assert!(e.message.contains("too new"), "{}", e.message);
    }
}
