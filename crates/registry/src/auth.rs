//! Registry authentication: `WWW-Authenticate` challenges, credentials (including the API's
//! `X-Registry-Auth` header), the bearer token flow and a per-scope token cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme in lower case: `basic` or `bearer`.
    pub scheme: String,
    /// Parameters with lower-cased names, in the order given.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every challenge in the given `WWW-Authenticate` header values. A value may hold several
/// challenges (`Basic realm="a", Bearer realm="b"`); what cannot be parsed is skipped, as clients do.
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for v in values {
        parse_value(v, &mut out);
    }
    out
}

/// A hand-written scanner: the grammar (RFC 7235 auth-param lists with quoted strings) is small,
/// and no maintained crate parses challenges without pulling in a whole HTTP client.
fn parse_value(v: &str, out: &mut Vec<Challenge>) {
    let b = v.as_bytes();
    let mut i = 0;
    let is_token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c);
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let mut current: Option<Challenge> = None;
    loop {
        skip_ws(&mut i);
        while i < b.len() && b[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if i == start {
            // Not a token: give up on the rest of this value.
            break;
        }
        let word = &v[start..i];
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'=' && current.is_some() {
            i += 1;
            skip_ws(&mut i);
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut s = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    // Push the whole UTF-8 character, not a byte.
                    let ch = v[i..].chars().next().unwrap_or('\u{fffd}');
                    s.push(ch);
                    i += ch.len_utf8();
                }
                i += 1; // closing quote
                s
            } else {
                let vs = i;
                while i < b.len() && b[i] != b',' && b[i] != b' ' && b[i] != b'\t' {
                    i += 1;
                }
                v[vs..i].to_string()
            };
            if let Some(c) = current.as_mut() {
                c.params.push((word.to_ascii_lowercase(), value));
            }
        } else {
            // A new scheme (the token68 form, `Basic abc==`, is not used by registries).
            if let Some(c) = current.take() {
                out.push(c);
            }
            current = Some(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
}

/// Credentials for one registry, as the engine's API receives them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// User name.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub username: String,
    /// Password.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub password: String,
    /// `base64(username:password)`, as in the docker CLI's config.json.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth: String,
    /// Deprecated, still sent by old clients.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub email: String,
    /// The registry these credentials are for.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub serveraddress: String,
    /// A refresh token from an earlier login, used in the OAuth2 POST flow.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub identitytoken: String,
    /// A bearer token to send to the registry as is.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub registrytoken: String,
}

/// docker-py sends `"email": null` (and keeps it in the `X-Registry-Auth` it builds after a login):
/// a null reads as an empty string, as Go's decoder leaves the field empty.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl std::fmt::Debug for AuthConfig {
    // Secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .field("has_password", &!self.password.is_empty())
            .field("has_identitytoken", &!self.identitytoken.is_empty())
            .field("has_registrytoken", &!self.registrytoken.is_empty())
            .finish()
    }
}

impl AuthConfig {
    /// Decodes an `X-Registry-Auth` header: base64url (padded or not; standard alphabet accepted
    /// too, as some clients send it) of a JSON object. An empty header means anonymous.
    pub fn from_header(value: &str) -> Result<AuthConfig> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(AuthConfig::default());
        }
        let trimmed = value.trim_end_matches('=');
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| Error::InvalidAuthHeader(e.to_string()))?;
        let mut a: AuthConfig =
            serde_json::from_slice(&raw).map_err(|e| Error::InvalidAuthHeader(e.to_string()))?;
        a.fill_from_auth()?;
        Ok(a)
    }

    /// Decodes an `X-Registry-Config` header (`POST /build`): base64url (padded or not; the standard
    /// alphabet too) of a JSON object mapping each registry, as the client names it, to its credentials.
    pub fn map_from_header(value: &str) -> Result<std::collections::BTreeMap<String, AuthConfig>> {
        let trimmed = value.trim().trim_end_matches('=');
        if trimmed.is_empty() {
            return Ok(Default::default());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| Error::InvalidAuthHeader(e.to_string()))?;
        // The docker CLI sends `null` when it has no logins (BuildKit mode).
        let mut map: std::collections::BTreeMap<String, AuthConfig> =
            serde_json::from_slice::<Option<_>>(&raw)
                .map_err(|e| Error::InvalidAuthHeader(e.to_string()))?
                .unwrap_or_default();
        for a in map.values_mut() {
            a.fill_from_auth()?;
        }
        Ok(map)
    }

    /// Encodes as an `X-Registry-Auth` header value (base64url JSON), as the docker CLI sends it.
    pub fn to_header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    /// Splits `auth` into username and password when those are empty.
    fn fill_from_auth(&mut self) -> Result<()> {
        if self.auth.is_empty() || !self.username.is_empty() {
            return Ok(());
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .map_err(|e| Error::InvalidAuthHeader(format!("auth field: {e}")))?;
        let s = String::from_utf8(raw)
            .map_err(|e| Error::InvalidAuthHeader(format!("auth field: {e}")))?;
        let (u, p) = s.split_once(':').ok_or_else(|| {
            Error::InvalidAuthHeader("auth field: no ':' between username and password".into())
        })?;
        self.username = u.to_string();
        self.password = p.to_string();
        Ok(())
    }

    /// True when nothing is set (anonymous access).
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.auth.is_empty()
            && self.identitytoken.is_empty()
            && self.registrytoken.is_empty()
    }

    /// `Basic base64(user:pass)` when a username is set.
    pub(crate) fn basic_header(&self) -> Option<String> {
        if self.username.is_empty() {
            return None;
        }
        let pair = format!("{}:{}", self.username, self.password);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }
}

/// One access scope, `repository:<name>:<actions>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The resource type, `repository` for all of this crate's requests.
    pub resource_type: String,
    /// The repository path, e.g. `library/busybox`.
    pub name: String,
    /// Sorted actions, e.g. `["pull", "push"]`.
    pub actions: Vec<String>,
}

impl Scope {
    /// `repository:<name>:pull`.
    pub fn pull(name: &str) -> Scope {
        Scope::repository(name, &["pull"])
    }

    /// `repository:<name>:pull,push`.
    pub fn push(name: &str) -> Scope {
        Scope::repository(name, &["pull", "push"])
    }

    /// A repository scope with the given actions.
    pub fn repository(name: &str, actions: &[&str]) -> Scope {
        let mut actions: Vec<String> = actions.iter().map(|s| s.to_string()).collect();
        actions.sort();
        actions.dedup();
        Scope {
            resource_type: "repository".into(),
            name: name.into(),
            actions,
        }
    }

    /// Parses `type:name:actions` (the name may contain `:` for a registry with a port).
    pub fn parse(s: &str) -> Option<Scope> {
        let (rest, actions) = s.rsplit_once(':')?;
        let (ty, name) = rest.split_once(':')?;
        let mut actions: Vec<String> = actions.split(',').map(str::to_string).collect();
        actions.sort();
        Some(Scope {
            resource_type: ty.into(),
            name: name.into(),
            actions,
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            self.actions.join(",")
        )
    }
}

/// A token server's answer. Docker Hub sends both `token` and `access_token`; others send one.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenResponse {
    /// The bearer token (Docker's registry token spec).
    #[serde(default)]
    pub token: String,
    /// The bearer token (OAuth2 spelling).
    #[serde(default)]
    pub access_token: String,
    /// Seconds the token is valid; distribution's spec says 60 when absent.
    #[serde(default)]
    pub expires_in: u64,
    /// When the token was issued (RFC 3339).
    #[serde(default)]
    pub issued_at: Option<String>,
    /// A refresh token, returned when asked for an offline token (login): the identity token.
    #[serde(default)]
    pub refresh_token: String,
}

/// Tokens are never considered valid for less than this, as in distribution's client.
const MIN_TOKEN_LIFETIME: u64 = 60;

impl TokenResponse {
    /// The token to send: `access_token` when present, otherwise `token`.
    pub fn bearer(&self) -> Option<&str> {
        [&self.access_token, &self.token]
            .into_iter()
            .find(|t| !t.is_empty())
            .map(String::as_str)
    }

    /// How long from now the token stays valid: `expires_in` (at least 60 s) counted from
    /// `issued_at` when that is given and in the past, from now otherwise.
    pub fn lifetime(&self) -> Duration {
        let total = self.expires_in.max(MIN_TOKEN_LIFETIME);
        let elapsed = self
            .issued_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
            .filter(|&e| e > 0)
            .unwrap_or(0) as u64;
        Duration::from_secs(total.saturating_sub(elapsed))
    }
}

/// The key of a cached token: which server, for which service and scopes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TokenKey {
    realm: String,
    service: String,
    scopes: Vec<String>,
}

/// Bearer tokens cached per (realm, service, scopes) until shortly before they expire.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

/// Tokens are dropped this long before they expire so a request is never sent with one that dies
/// in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

impl TokenCache {
    fn key(realm: &str, service: &str, scopes: &[Scope]) -> TokenKey {
        let mut scopes: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        scopes.sort();
        scopes.dedup();
        TokenKey {
            realm: realm.into(),
            service: service.into(),
            scopes,
        }
    }

    /// A still-valid token for these scopes.
    pub fn get(&self, realm: &str, service: &str, scopes: &[Scope]) -> Option<String> {
        let key = Self::key(realm, service, scopes);
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key) {
            Some((t, exp)) if Instant::now() + EXPIRY_MARGIN < *exp => Some(t.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Stores a token valid for `lifetime`.
    pub fn put(
        &self,
        realm: &str,
        service: &str,
        scopes: &[Scope],
        token: &str,
        lifetime: Duration,
    ) {
        let key = Self::key(realm, service, scopes);
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, (token.to_string(), Instant::now() + lifetime));
    }

    /// Forgets the token for these scopes (after the registry called it invalid).
    pub fn invalidate(&self, realm: &str, service: &str, scopes: &[Scope]) {
        let key = Self::key(realm, service, scopes);
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quotes_and_several_params() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:library/busybox:pull,push")
        );

        let c = parse_challenges([
            r#"Basic realm="Registry Realm""#,
            "bearer Realm=x, Error=invalid_token",
        ]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].param("realm"), Some("x"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));

        let c = parse_challenges([r#"Basic realm="a \"b\" c", Bearer realm="r",scope="s""#]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some(r#"a "b" c"#));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("scope"), Some("s"));
        assert!(parse_challenges([""]).is_empty());
    }

    #[test]
    fn registry_auth_header_takes_nulls_as_docker_py_sends_them() {
        use base64::Engine as _;
        let json = r#"{"username":"u","password":"p","email":null,"serveraddress":"r:5000"}"#;
        let h = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = AuthConfig::from_header(&h).ok();
        assert_eq!(a.as_ref().map(|a| a.email.as_str()), Some(""));
        assert_eq!(a.as_ref().map(|a| a.password.as_str()), Some("p"));
    }

    #[test]
    fn registry_auth_header_decodes_each_form() {
        let json = r#"{"username":"u","password":"p+/?","serveraddress":"localhost:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = AuthConfig::from_header(&url).ok();
        assert_eq!(a.as_ref().map(|a| a.username.as_str()), Some("u"));
        assert_eq!(a.as_ref().map(|a| a.password.as_str()), Some("p+/?"));
        let std_nopad = base64::engine::general_purpose::STANDARD_NO_PAD.encode(json);
        assert_eq!(AuthConfig::from_header(&std_nopad).ok(), a);

        let auth = base64::engine::general_purpose::STANDARD.encode("x:y:z");
        let json = format!(r#"{{"auth":"{auth}","identitytoken":"it","registrytoken":"rt"}}"#);
        let a = AuthConfig::from_header(&base64::engine::general_purpose::URL_SAFE.encode(json));
        let a = a.unwrap_or_default();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("x", "y:z"));
        assert_eq!(a.identitytoken, "it");
        assert_eq!(a.registrytoken, "rt");

        assert!(AuthConfig::from_header("").is_ok_and(|a| a.is_anonymous()));
        assert!(matches!(
            AuthConfig::from_header("!!!"),
            Err(Error::InvalidAuthHeader(_))
        ));
        let round = AuthConfig {
            username: "a".into(),
            password: "b".into(),
            ..Default::default()
        };
        assert_eq!(
            AuthConfig::from_header(&round.to_header()).ok(),
            Some(round)
        );
    }

    #[test]
    fn registry_config_header_decodes_a_map_of_credentials() {
        use base64::Engine as _;
        let json = r#"{"https://index.docker.io/v1/":{"auth":"dTpwOnE=","email":null},"r:5000":{"username":"a","password":"b"}}"#;
        for enc in [
            base64::engine::general_purpose::URL_SAFE.encode(json),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
        ] {
            let map = AuthConfig::map_from_header(&enc).unwrap_or_default();
            assert_eq!(map.len(), 2);
            let hub = &map["https://index.docker.io/v1/"];
            assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u", "p:q"));
            assert_eq!(map["r:5000"].password, "b");
        }
        assert!(AuthConfig::map_from_header("").is_ok_and(|m| m.is_empty()));
        let null = base64::engine::general_purpose::URL_SAFE.encode("null");
        assert!(AuthConfig::map_from_header(&null).is_ok_and(|m| m.is_empty()));
        assert!(AuthConfig::map_from_header("!!!").is_err());
        let list = base64::engine::general_purpose::URL_SAFE.encode("[1]");
        assert!(AuthConfig::map_from_header(&list).is_err());
    }

    #[test]
    fn token_answers_and_lifetimes() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"token":"a","access_token":"b","expires_in":300}"#)
                .unwrap_or_default();
        assert_eq!(t.bearer(), Some("b"));
        assert_eq!(t.lifetime(), Duration::from_secs(300));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"a"}"#).unwrap_or_default();
        assert_eq!(t.bearer(), Some("a"));
        assert_eq!(t.lifetime(), Duration::from_secs(60));
        let issued = (chrono::Utc::now() - chrono::Duration::seconds(100)).to_rfc3339();
        let t = TokenResponse {
            token: "x".into(),
            expires_in: 300,
            issued_at: Some(issued),
            ..Default::default()
        };
        let l = t.lifetime().as_secs();
        assert!((198..=200).contains(&l), "{l}");
        assert_eq!(TokenResponse::default().bearer(), None);
    }

    #[test]
    fn token_cache_keys_by_scope_and_expires() {
        let c = TokenCache::default();
        let s = [Scope::pull("a/b")];
        c.put("r", "svc", &s, "tok", Duration::from_secs(60));
        assert_eq!(c.get("r", "svc", &s).as_deref(), Some("tok"));
        assert_eq!(c.get("r", "svc", &[Scope::push("a/b")]), None);
        assert_eq!(c.get("r", "other", &s), None);
        c.put("r", "svc", &s, "short", Duration::from_secs(2));
        assert_eq!(
            c.get("r", "svc", &s),
            None,
            "a token about to expire is not used"
        );
        c.put("r", "svc", &s, "tok", Duration::from_secs(60));
        c.invalidate("r", "svc", &s);
        assert_eq!(c.get("r", "svc", &s), None);
        assert_eq!(Scope::push("x").to_string(), "repository:x:pull,push");
        assert_eq!(
            Scope::parse("repository:localhost:5000/x:push,pull"),
            Some(Scope::repository("localhost:5000/x", &["push", "pull"]))
        );
    }
}
