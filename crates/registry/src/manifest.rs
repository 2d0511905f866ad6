//! Manifests as registries serve them: OCI manifest and index, docker schema2 manifest and
//! manifest list; media types; platform selection.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable (foreign) gzip layer.
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (Windows base) layer, never pulled.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema1 manifest (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker signed schema1 manifest (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: the four formats this client reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// True for an image manifest media type (OCI or docker schema2).
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// True for an index media type (OCI index or docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// True for a foreign or non-distributable layer, which Docker neither pulls nor pushes.
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type == DOCKER_LAYER_FOREIGN || media_type.contains(".nondistributable.")
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    #[serde(default)]
    pub media_type: String,
    /// `algorithm:hex` digest of the content.
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Where a foreign layer may be fetched from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// A platform as manifests write it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's spelling (`amd64`, `arm64`, `arm`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// OS features (Windows).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// An image manifest (OCI or docker schema2: the same JSON shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type (required for docker schema2, optional in OCI).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The artifact type, for OCI artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An index (OCI image index or docker manifest list: the same JSON shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The manifests, usually one per platform.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest as fetched, parsed by its media type.
#[derive(Clone, Debug, PartialEq)]
pub enum Manifest {
    /// An image manifest (boxed: it is several times the size of an index).
    Image(Box<ImageManifest>),
    /// An index / manifest list.
    Index(ImageIndex),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sniff {
    #[serde(default)]
    schema_version: u32,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses manifest bytes. The media type is the answer's Content-Type, else the JSON's
    /// `mediaType`, else guessed from the shape (OCI allows leaving it out). `reference` is only for
    /// the error texts.
    pub fn parse(content_type: &str, bytes: &[u8], reference: &str) -> Result<(String, Manifest)> {
        let sniff: Sniff = serde_json::from_slice(bytes).map_err(|e| Error::Json {
            what: format!("manifest for {reference}"),
            source: e,
        })?;
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if ct == DOCKER_SCHEMA1
            || ct == DOCKER_SCHEMA1_SIGNED
            || sniff.schema_version == 1
            || sniff.media_type == DOCKER_SCHEMA1
            || sniff.media_type == DOCKER_SCHEMA1_SIGNED
        {
            return Err(Error::Schema1 {
                reference: reference.to_string(),
            });
        }
        let media_type = if is_index(&ct) || is_image_manifest(&ct) {
            ct
        } else if !sniff.media_type.is_empty() {
            sniff.media_type.clone()
        } else if sniff.manifests.is_some() {
            OCI_INDEX.to_string()
        } else if sniff.config.is_some() {
            OCI_MANIFEST.to_string()
        } else {
            ct
        };
        let json_err = |e| Error::Json {
            what: format!("manifest for {reference}"),
            source: e,
        };
        if is_index(&media_type) {
            let idx: ImageIndex = serde_json::from_slice(bytes).map_err(json_err)?;
            Ok((media_type, Manifest::Index(idx)))
        } else if is_image_manifest(&media_type) {
            let m: ImageManifest = serde_json::from_slice(bytes).map_err(json_err)?;
            Ok((media_type, Manifest::Image(Box::new(m))))
        } else {
            Err(Error::UnsupportedManifest {
                media_type,
                reference: reference.to_string(),
            })
        }
    }
}

/// A wanted platform, normalised (`x86_64` → `amd64`, `aarch64` → `arm64`, arm variants filled in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformSpec {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant, empty when the architecture has none.
    pub variant: String,
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

/// Normalises an architecture and variant as containerd's platform code does.
fn normalize_arch(arch: &str, variant: &str) -> Option<(String, String)> {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (a, v) = match arch.as_str() {
        "i386" | "386" => ("386", String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64",
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "" => "v8".to_string(),
                _ => variant,
            },
        ),
        "armhf" => ("arm", "v7".to_string()),
        "armel" => ("arm", "v6".to_string()),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        "ppc64le" | "s390x" | "riscv64" | "mips64le" | "mips64" | "mipsle" | "mips" | "loong64"
        | "ppc64" | "wasm" => (arch.as_str(), variant),
        _ => return None,
    };
    Some((a.to_string(), v))
}

impl PlatformSpec {
    /// The platform of this machine: `linux/amd64` on x86-64, `linux/arm64/v8` on aarch64.
    pub fn host() -> PlatformSpec {
        let (architecture, variant) = normalize_arch(std::env::consts::ARCH, "")
            .unwrap_or_else(|| (std::env::consts::ARCH.to_string(), String::new()));
        PlatformSpec {
            os: "linux".into(),
            architecture,
            variant,
        }
    }

    /// Parses `os[/arch[/variant]]` or a bare architecture, as `--platform` takes it.
    pub fn parse(s: &str) -> Result<PlatformSpec> {
        let bad = || Error::InvalidPlatform(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let host = PlatformSpec::host();
        let (os, arch, variant) = match parts.as_slice() {
            [one] => {
                let one = one.to_ascii_lowercase();
                if KNOWN_OS.contains(&one.as_str()) {
                    // An OS alone means that OS on this machine's architecture.
                    (one, host.architecture.clone(), host.variant.clone())
                } else {
                    (host.os.clone(), one, String::new())
                }
            }
            [os, arch] => (os.to_ascii_lowercase(), arch.to_string(), String::new()),
            [os, arch, variant] => (
                os.to_ascii_lowercase(),
                arch.to_string(),
                variant.to_string(),
            ),
            _ => return Err(bad()),
        };
        if !KNOWN_OS.contains(&os.as_str()) {
            return Err(bad());
        }
        let (architecture, variant) = normalize_arch(&arch, &variant).ok_or_else(bad)?;
        Ok(PlatformSpec {
            os,
            architecture,
            variant,
        })
    }

    /// The (architecture, variant) pairs this platform runs, best first: itself, then for arm the
    /// older variants it executes (arm64/v8 also runs 32-bit arm v8..v5).
    fn compatible(&self) -> Vec<(String, String)> {
        let mut out = vec![(self.architecture.clone(), self.variant.clone())];
        let arm_from = |v: u32, out: &mut Vec<(String, String)>| {
            for n in (5..=v).rev() {
                let p = ("arm".to_string(), format!("v{n}"));
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        };
        match self.architecture.as_str() {
            "arm64" => arm_from(8, &mut out),
            "arm" => {
                let v = self
                    .variant
                    .trim_start_matches('v')
                    .parse::<u32>()
                    .unwrap_or(7);
                arm_from(v, &mut out);
            }
            "amd64" => {
                // amd64/v3 runs v2 and plain amd64 images too; any amd64 runs 386 ones, which
                // containerd's matcher (and so Docker) falls back to last.
                if !self.variant.is_empty() {
                    let v = self
                        .variant
                        .trim_start_matches('v')
                        .parse::<u32>()
                        .unwrap_or(1);
                    for n in (2..v).rev() {
                        out.push(("amd64".into(), format!("v{n}")));
                    }
                    out.push(("amd64".into(), String::new()));
                }
                out.push(("386".into(), String::new()));
            }
            _ => {}
        }
        out
    }

    /// True when an index entry's platform is exactly this one (after normalisation).
    fn rank(&self, p: &Platform) -> Option<usize> {
        if !p.os.eq_ignore_ascii_case(&self.os) {
            return None;
        }
        let (arch, variant) = normalize_arch(&p.architecture, &p.variant)?;
        self.compatible()
            .iter()
            .position(|(a, v)| *a == arch && *v == variant)
    }

    /// True when an image built for `p` runs on this platform (itself or a compatible variant), as
    /// containerd's matcher decides it for `--platform` at create.
    pub fn runs(&self, p: &Platform) -> bool {
        self.rank(p).is_some()
    }

    /// The platform as dockerd names it in errors (containerd's format: no `v8` for arm64).
    pub fn docker_format(&self) -> String {
        if self.architecture == "arm64" && self.variant == "v8" {
            format!("{}/{}", self.os, self.architecture)
        } else {
            self.to_string()
        }
    }

    /// Picks the index entry for this platform: an exact match first, then the closest compatible
    /// variant; entries without a platform (attestations, artifacts) are never chosen.
    pub fn select<'a>(&self, index: &'a ImageIndex) -> Result<&'a Descriptor> {
        index
            .manifests
            .iter()
            .filter(|d| is_image_manifest(&d.media_type) || d.media_type.is_empty())
            .filter_map(|d| Some((self.rank(d.platform.as_ref()?)?, d)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, d)| d)
            .ok_or_else(|| Error::NoMatchingPlatform {
                platform: self.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: &str, digest: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            urls: vec![],
            annotations: BTreeMap::new(),
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.into(),
                ..Default::default()
            }),
            artifact_type: None,
        }
    }

    fn index(entries: Vec<Descriptor>) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: OCI_INDEX.into(),
            manifests: entries,
            annotations: BTreeMap::new(),
        }
    }

    fn pick(platform: &str, idx: &ImageIndex) -> String {
        match PlatformSpec::parse(platform).and_then(|p| p.select(idx).map(|d| d.digest.clone())) {
            Ok(d) => d,
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_platform_runs_its_own_and_older_variants_only() {
        let image = |arch: &str, variant: &str| Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.into(),
            ..Default::default()
        };
        let arm64 = PlatformSpec::parse("linux/arm64").unwrap();
        assert!(arm64.runs(&image("aarch64", "")));
        assert!(arm64.runs(&image("arm", "v7")));
        assert!(!arm64.runs(&image("amd64", "")));
        assert_eq!(arm64.docker_format(), "linux/arm64");
        let v6 = PlatformSpec::parse("linux/arm/v6").unwrap();
        assert!(!v6.runs(&image("arm", "v7")));
        assert_eq!(v6.docker_format(), "linux/arm/v6");
        assert!(PlatformSpec::parse("linux/amd64")
            .unwrap()
            .runs(&image("amd64", "")));
    }

    #[test]
    fn platform_parse_normalises() {
        let p = |s: &str| {
            PlatformSpec::parse(s)
                .map(|p| p.to_string())
                .unwrap_or_else(|e| e.to_string())
        };
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("linux/aarch64"), "linux/arm64/v8");
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/arm/6"), "linux/arm/v6");
        assert_eq!(p("Linux/ARM64"), "linux/arm64/v8");
        assert_eq!(
            p("foo/bar"),
            "\"foo/bar\": unknown operating system or architecture: invalid argument"
        );
        assert!(p("linux//").contains("invalid argument"));
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(PlatformSpec::host().to_string(), "linux/amd64");
            assert_eq!(p("linux"), "linux/amd64");
            assert_eq!(p("arm64"), "linux/arm64/v8");
        }
    }

    #[test]
    fn select_prefers_exact_then_compatible_variants() {
        let idx = index(vec![
            entry("amd64", "", "sha256:amd"),
            entry("arm", "v6", "sha256:v6"),
            entry("arm", "v7", "sha256:v7"),
            entry("arm64", "v8", "sha256:a64"),
            {
                let mut d = entry("unknown", "", "sha256:att");
                if let Some(p) = d.platform.as_mut() {
                    p.os = "unknown".into();
                }
                d
            },
        ]);
        assert_eq!(pick("linux/amd64", &idx), "sha256:amd");
        assert_eq!(pick("linux/arm64", &idx), "sha256:a64");
        assert_eq!(pick("linux/arm/v7", &idx), "sha256:v7");
        assert_eq!(pick("linux/arm/v8", &idx), "sha256:v7");
        assert_eq!(pick("linux/arm/v6", &idx), "sha256:v6");
        assert_eq!(
            pick("linux/arm/v5", &idx),
            "no matching manifest for linux/arm/v5 in the manifest list entries"
        );
        assert_eq!(
            pick("linux/s390x", &idx),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        // arm64 without a variant in the list still matches arm64/v8; 32-bit arm is the fallback.
        let idx = index(vec![
            entry("arm", "v7", "sha256:v7"),
            entry("arm64", "", "sha256:a"),
        ]);
        assert_eq!(pick("linux/arm64/v8", &idx), "sha256:a");
        let idx = index(vec![entry("arm", "v7", "sha256:v7")]);
        assert_eq!(pick("linux/arm64", &idx), "sha256:v7");
        // amd64 falls back to 386, and a v3 host takes v2 before plain amd64.
        let idx = index(vec![
            entry("386", "", "sha256:386"),
            entry("arm64", "", "sha256:a"),
        ]);
        assert_eq!(pick("linux/amd64", &idx), "sha256:386");
        let idx = index(vec![
            entry("386", "", "sha256:386"),
            entry("amd64", "", "sha256:v1"),
            entry("amd64", "v2", "sha256:v2"),
        ]);
        assert_eq!(pick("linux/amd64/v3", &idx), "sha256:v2");
        assert_eq!(pick("linux/amd64", &idx), "sha256:v1");
    }

    #[test]
    fn parse_by_content_type_shape_and_schema1() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":2},"layers":[]}"#;
        let (mt, parsed) = Manifest::parse("", m, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mt, OCI_MANIFEST);
        assert!(matches!(parsed, Manifest::Image(ref i) if i.config.size == 2));
        let (mt, _) = Manifest::parse(&format!("{DOCKER_MANIFEST}; charset=utf-8"), m, "x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mt, DOCKER_MANIFEST);
        let i = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        let (mt, parsed) =
            Manifest::parse("application/json", i, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mt, DOCKER_MANIFEST_LIST);
        assert!(matches!(parsed, Manifest::Index(_)));
        let s1 = br#"{"schemaVersion":1,"name":"library/ubuntu","tag":"old","fsLayers":[]}"#;
        let e = Manifest::parse(DOCKER_SCHEMA1_SIGNED, s1, "docker.io/library/ubuntu:old")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of docker.io/library/ubuntu:old to upgrade"), "{e}");
        assert!(Manifest::parse("", b"nope", "x").is_err());
        assert!(matches!(
            Manifest::parse("text/plain", br#"{"schemaVersion":2}"#, "x"),
            Err(Error::UnsupportedManifest { .. })
        ));
        assert!(is_foreign_layer(DOCKER_LAYER_FOREIGN));
        assert!(is_foreign_layer(OCI_LAYER_NONDIST_GZIP));
        assert!(!is_foreign_layer(OCI_LAYER_GZIP));
    }
}
