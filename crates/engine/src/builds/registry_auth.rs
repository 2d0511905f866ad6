//! `X-Registry-Config` on `POST /build`: the client's credentials for every registry it knows (the docker
//! CLI sends all of its config file's), of which a build's pulls use the one for the image's registry.

use std::collections::BTreeMap;

/// A build's registry credentials, by registry as the client names them (`https://index.docker.io/v1/`,
/// `127.0.0.1:5000`, `https://registry.example/`).
#[derive(Clone, Default)]
pub struct RegistryAuths {
    map: BTreeMap<String, registry::AuthConfig>,
    /// Asks the client for a registry's login when the map has none (a BuildKit session's `Auth`).
    lookup: Option<std::sync::Arc<AuthLookup>>,
}

/// Looks up the login for a registry by its domain (`docker.io`, `127.0.0.1:5000`); it may block.
pub type AuthLookup = dyn Fn(&str) -> Option<registry::AuthConfig> + Send + Sync;

impl RegistryAuths {
    /// Reads an `X-Registry-Config` header: base64url (padded or not; the standard alphabet too) of a JSON
    /// object `{registry: authconfig}`. As dockerd, a header it cannot read gives no credentials rather
    /// than failing the build (the pulls go anonymous and fail on their own if they must).
    pub fn from_header(value: &str) -> Self {
        match registry::AuthConfig::map_from_header(value) {
            Ok(map) => RegistryAuths { map, lookup: None },
            Err(e) => {
                tracing::warn!(error = %e, "X-Registry-Config ignored");
                RegistryAuths::default()
            }
        }
    }

    /// The `X-Registry-Auth` value a pull of `image` uses: the credentials whose key names the image's
    /// registry (a key's scheme and path are ignored, and docker.io's legacy `https://index.docker.io/v1/`
    /// is docker.io, as dockerd resolves them). `None`: anonymous.
    pub(crate) fn header_for(&self, image: &str) -> Option<String> {
        let domain = image::Reference::parse_normalized_named(image).ok()?;
        let domain = domain.domain().to_ascii_lowercase();
        // An exact key first, as dockerd looks it up before normalising the others.
        let auth = self.map.get(&domain).or_else(|| {
            self.map
                .iter()
                .find(|(k, _)| crate::distribution::login_domain(k) == domain)
                .map(|(_, a)| a)
        });
        match auth {
            Some(a) => Some(a.to_header()),
            None => self.lookup.as_ref()?(&domain).map(|a| a.to_header()),
        }
    }

    /// Credentials asked for as pulls need them, by the registry's domain.
    pub fn from_lookup(lookup: std::sync::Arc<AuthLookup>) -> Self {
        RegistryAuths {
            map: BTreeMap::new(),
            lookup: Some(lookup),
        }
    }

    /// Whether the client sent no credentials.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.lookup.is_none()
    }
}

impl std::fmt::Debug for RegistryAuths {
    // The registries only: never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RegistryAuths")
            .field(&self.map.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credentials_of_the_images_registry_are_chosen() {
        // base64url of {"https://index.docker.io/v1/":{"username":"hub","password":"h"},
        // "127.0.0.1:5000":{"auth":"dTpw","serveraddress":"127.0.0.1:5000"},
        // "https://Registry.Example/v2/":{"username":"ex","password":"e","email":null}}
        let auths = RegistryAuths::from_header(
            "eyJodHRwczovL2luZGV4LmRvY2tlci5pby92MS8iOnsidXNlcm5hbWUiOiJodWIiLCJwYXNzd29yZCI6ImgifSwiMTI3LjAuMC4xOjUwMDAiOnsiYXV0aCI6ImRUcHciLCJzZXJ2ZXJhZGRyZXNzIjoiMTI3LjAuMC4xOjUwMDAifSwiaHR0cHM6Ly9SZWdpc3RyeS5FeGFtcGxlL3YyLyI6eyJ1c2VybmFtZSI6ImV4IiwicGFzc3dvcmQiOiJlIiwiZW1haWwiOm51bGx9fQ==",
        );
        let user = |image: &str| {
            auths.header_for(image).map(|h| {
                registry::AuthConfig::from_header(&h)
                    .map(|a| a.username)
                    .ok()
            })
        };
        assert_eq!(user("busybox"), Some(Some("hub".into())));
        assert_eq!(user("docker.io/library/alpine:3"), Some(Some("hub".into())));
        assert_eq!(user("127.0.0.1:5000/app:1"), Some(Some("u".into())));
        assert_eq!(user("registry.example/x/y:2"), Some(Some("ex".into())));
        assert_eq!(user("other.example:443/z"), None);
        assert!(format!("{auths:?}").contains("127.0.0.1:5000"));
        assert!(!format!("{auths:?}").contains("dTpw"));
    }

    #[test]
    fn an_unreadable_header_gives_no_credentials() {
        assert!(RegistryAuths::from_header("").is_empty());
        assert!(RegistryAuths::from_header("!!!").is_empty());
        // base64url of [1,2]
        assert!(RegistryAuths::from_header("WzEsMl0=").is_empty());
    }
}
