//! Docker image references (`docker.io/library/busybox:latest`), parsed and normalised by Docker's rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{is_hex64, Digest};
use crate::error::{Error, Result};

/// The registry Docker assumes when a name has none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The repository namespace Docker assumes for one-component names on the default domain.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag Docker assumes when a name has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_MAX: usize = 255;

/// A normalised, fully qualified reference: domain, path, and a tag and/or digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses what a user typed and normalises it like Docker's `ParseNormalizedNamed`, then adds
    /// `:latest` when neither tag nor digest is given (Docker's `TagNameOnly`).
    pub fn parse_normalized(s: &str) -> Result<Reference> {
        let mut r = Reference::parse_normalized_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Like [`Reference::parse_normalized`] but leaves a missing tag missing.
    pub fn parse_normalized_named(s: &str) -> Result<Reference> {
        if is_hex64(s) {
            return Err(Error::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (domain, remainder) = split_domain(s);
        // Docker checks the name part (before any tag/digest) for uppercase with its own message.
        let name_part = remainder
            .split_once(['@', ':'])
            .map_or(remainder.as_str(), |(n, _)| n);
        if name_part.to_lowercase() != name_part {
            return Err(Error::InvalidReference(format!(
                "repository name ({name_part}) must be lowercase"
            )));
        }
        let full = format!("{domain}/{remainder}");
        parse_full(&full).map_err(|_| Error::InvalidReference(String::new()))
    }

    /// The registry host (and port), e.g. `docker.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short repository name Docker prints, e.g. `busybox` or `fixture/webapp`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The short form Docker prints, e.g. `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// This reference with its digest dropped and the given tag.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// This reference's repository with a digest and no tag.
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

/// Splits off the domain the way Docker's `splitDockerDomain` does.
fn split_domain(s: &str) -> (String, String) {
    let (mut domain, mut remainder) = match s.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), s.to_string()),
    };
    if domain == "index.docker.io" {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// Parses `domain/path[:tag][@digest]` with the domain already explicit.
fn parse_full(s: &str) -> std::result::Result<Reference, ()> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|_| ())?)),
        None => (s, None),
    };
    let last_slash = rest.rfind('/').ok_or(())?;
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(());
        }
    }
    if name.len() > NAME_TOTAL_MAX {
        return Err(());
    }
    let (domain, path) = name.split_once('/').ok_or(())?;
    if !valid_domain(domain) || path.is_empty() || !path.split('/').all(valid_component) {
        return Err(());
    }
    Ok(Reference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: tag.map(str::to_string),
        digest,
    })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A host name or IP with an optional port (bracketed IPv6 accepted loosely).
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, p)) => {
                return ip.parse::<std::net::Ipv6Addr>().is_ok() && (p.is_empty() || valid_port(p))
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if !valid_port(&format!(":{p}")) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

fn valid_port(p: &str) -> bool {
    p.strip_prefix(':')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse_normalized(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Reference, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse_normalized(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        match Reference::parse_normalized(s) {
            Ok(r) => r.to_string(),
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn parse_normalized_follows_docker_rules() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(norm("foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(norm("index.docker.io/foo"), "docker.io/library/foo:latest");
        assert_eq!(norm("localhost/foo"), "localhost/foo:latest");
        assert_eq!(norm("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(norm("quay.io/x/y:z"), "quay.io/x/y:z");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            norm("Busybox"),
            "ERR invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(norm("busybox:"), "ERR invalid reference format");
        assert_eq!(norm("a//b"), "ERR invalid reference format");
        assert!(norm(&d[7..]).starts_with("ERR"));
    }

    #[test]
    fn familiar_strips_default_domain_and_library() {
        let r = Reference::parse_normalized("fixture/webapp:1.0").ok();
        assert_eq!(
            r.as_ref().map(Reference::familiar).as_deref(),
            Some("fixture/webapp:1.0")
        );
        let r = Reference::parse_normalized("busybox").ok();
        assert_eq!(
            r.as_ref().map(Reference::familiar_name).as_deref(),
            Some("busybox")
        );
        let r = Reference::parse_normalized("localhost:5000/busybox").ok();
        assert_eq!(
            r.as_ref().map(Reference::familiar).as_deref(),
            Some("localhost:5000/busybox:latest")
        );
    }
}
