//! COPY and ADD: sources resolved in the context (or the `--from` stage or image), checked,
//! hashed into dockerd's cache key (`COPY file:<hex> in <dest> `), then copied by the backend.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::backend::{CopySource, Feature, Owner, SourceKind};
use crate::context::{go_match, has_wildcards, hash_list, ContextError, SourceTree};
use crate::dockerignore::PatternMatcher;
use crate::instructions::{Add, Copy, SourcesAndDest};

use super::state::StageState;
use super::steps::clean_path;
use super::{BuildError, Builder};

/// One resolved source: its hash and where it is on the host.
struct Info {
    hash: String,
    host: PathBuf,
    kind: SourceKind,
    /// A downloaded file: ADD never extracts those.
    remote: bool,
    /// The path as matched, relative to the tree's root (after a `/./` pivot of `--parents`);
    /// empty for heredocs and downloads.
    path: String,
    /// The resolved path in the tree.
    rel: String,
}

/// A COPY or ADD, reduced to what both do.
struct Plan<'a> {
    name: &'static str,
    files: &'a SourcesAndDest,
    from: Option<&'a str>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    add: bool,
    checksum: Option<&'a str>,
    parents: bool,
    excludes: &'a [String],
}

impl Builder<'_> {
    /// COPY.
    pub(super) fn dispatch_copy(
        &mut self,
        st: &mut StageState,
        c: &Copy,
    ) -> Result<(), BuildError> {
        // `--link` only changes how BuildKit stores the layer (independent of its parent so
        // it can be rebased); the files are the same, so it copies as a plain COPY here.
        self.copy_step(
            st,
            Plan {
                name: "COPY",
                files: &c.files,
                from: c.from.as_deref(),
                chown: c.chown.as_deref(),
                chmod: c.chmod.as_deref(),
                add: false,
                checksum: None,
                parents: c.parents,
                excludes: &c.excludes,
            },
        )
    }

    /// ADD: COPY that also extracts local archives; remote URLs are refused for now.
    pub(super) fn dispatch_add(&mut self, st: &mut StageState, a: &Add) -> Result<(), BuildError> {
        if a.checksum.is_some() && !a.files.sources.iter().all(|s| is_url(s)) {
            return Err(BuildError::Invalid(
                "checksum can't be specified for non-HTTP(S) sources".into(),
            ));
        }
        self.copy_step(
            st,
            Plan {
                name: "ADD",
                files: &a.files,
                from: None,
                chown: a.chown.as_deref(),
                chmod: a.chmod.as_deref(),
                add: a.unpack != Some(false),
                checksum: a.checksum.as_deref(),
                parents: false,
                excludes: &a.excludes,
            },
        )
    }

    fn copy_step(&mut self, st: &mut StageState, plan: Plan<'_>) -> Result<(), BuildError> {
        if !plan.excludes.is_empty() {
            self.require(Feature::CopyExclude)?;
        }
        let mut image_tree = match plan.from {
            Some(from) => Some(SourceTree::new(self.source_root_of(from)?)),
            None => None,
        };
        let tree = image_tree.as_mut().unwrap_or(&mut self.context);
        let src_err = |source| BuildError::Source {
            instruction: plan.name,
            source,
        };
        let mut infos = Vec::new();
        let mut urls = Vec::new();
        for src in &plan.files.sources {
            if plan.add && is_url(src) {
                urls.push(src.as_str());
                continue;
            }
            infos.extend(copy_infos(tree, src).map_err(src_err)?);
        }
        if !plan.excludes.is_empty() {
            let pm = PatternMatcher::new(plan.excludes)
                .map_err(|e| BuildError::Invalid(format!("{} failed: {e}", plan.name)))?;
            infos.retain(|i| i.kind == SourceKind::Dir || !pm.matches_or_parent_matches(&i.path));
            for i in infos.iter_mut().filter(|i| i.kind == SourceKind::Dir) {
                i.hash = tree
                    .dir_hash_excluding(&i.rel, &|p| pm.matches_or_parent_matches(p))
                    .map_err(src_err)?;
            }
        }
        let _download_dir = if urls.is_empty() {
            None
        } else {
            self.require(Feature::Download)?;
            let (dir, remote) = self.download(&urls, plan.checksum)?;
            infos.extend(remote);
            Some(dir)
        };
        // Heredoc sources become files in a directory of their own, hashed like context files.
        let _inline_dir = if plan.files.contents.is_empty() {
            None
        } else {
            let (dir, inline) = inline_sources(plan.files).map_err(src_err)?;
            infos.extend(inline);
            Some(dir)
        };
        if infos.is_empty() {
            return Err(BuildError::Invalid(format!(
                "{} failed: no source files were specified",
                plan.name
            )));
        }
        let dest = &plan.files.dest;
        if infos.len() > 1 && !dest.ends_with('/') && !plan.parents {
            return Err(BuildError::Invalid(format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                plan.name
            )));
        }
        let src_hash = match infos.as_slice() {
            [one] => one.hash.clone(),
            many => hash_list(
                "multi",
                &many.iter().map(|i| i.hash.clone()).collect::<Vec<_>>(),
            ),
        };
        // dockerd's text, missing space after --chown included, so keys match its images.
        let mut flags = String::new();
        if plan.parents {
            flags.push_str("--parents ");
        }
        for e in plan.excludes {
            flags.push_str(&format!("--exclude={e} "));
        }
        if let Some(c) = plan.chown {
            flags.push_str(&format!("--chown={c}"));
        }
        if let Some(m) = plan.chmod {
            flags.push_str(&format!("--chmod={m}"));
        }
        let comment = format!("{} {flags}{src_hash} in {dest} ", plan.name);
        let step_config = st.nop_string_config(&comment);
        if self.probe(st, &step_config)? {
            return Ok(());
        }

        let owner = match plan.chown {
            Some(spec) => Some(self.resolve_owner(st, spec)?),
            None => None,
        };
        let mode = match plan.chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| BuildError::Invalid(format!("invalid chmod parameter: {m}")))?,
            ),
            None => None,
        };
        let dest_abs = {
            let joined = if dest.starts_with('/') {
                dest.clone()
            } else {
                format!("/{}/{dest}", st.run.working_dir)
            };
            let mut d = clean_path(&joined);
            // `.` is the working directory itself (dockerd keeps its trailing slash too).
            if (dest.ends_with('/') || dest == "." || plan.parents) && d != "/" {
                d.push('/');
            }
            d
        };
        // --parents: each source keeps its path (below a `/./` pivot) under the destination.
        let dest_of = |i: &Info| -> String {
            if !plan.parents || i.path.is_empty() {
                return dest_abs.clone();
            }
            let keep = match i.kind {
                SourceKind::Dir => i.path.as_str(),
                SourceKind::File => i.path.rsplit_once('/').map_or("", |(dir, _)| dir),
            };
            if keep.is_empty() {
                dest_abs.clone()
            } else {
                format!("{}{keep}/", dest_abs)
            }
        };
        let copies: Vec<CopySource> = infos
            .into_iter()
            .map(|i| {
                let dest = dest_of(&i);
                let src = i.host;
                CopySource {
                    extract: plan.add
                        && !i.remote
                        && i.kind == SourceKind::File
                        && is_archive(&src),
                    src,
                    kind: i.kind,
                    dest,
                    exclude: if i.kind == SourceKind::Dir {
                        plan.excludes.to_vec()
                    } else {
                        Vec::new()
                    },
                    owner,
                    mode,
                }
            })
            .collect();
        let step = self.backend.copy(st.image.as_deref(), &copies)?;
        let committed = self.commit_copy(st, &step, step_config);
        self.backend.remove(&step)?;
        committed
    }

    /// `ADD http(s)://...`: each URL fetched by the engine into a temporary directory as a
    /// file named after the URL's last path segment (mode 0600), checked against `--checksum`,
    /// and hashed like a context file (dockerd fetches on every build to compute the key too).
    fn download(
        &mut self,
        urls: &[&str],
        checksum: Option<&str>,
    ) -> Result<(tempfile::TempDir, Vec<Info>), BuildError> {
        let dir = tempfile::tempdir().map_err(|e| {
            BuildError::Invalid(format!("ADD failed: creating a download directory: {e}"))
        })?;
        let mut tree = SourceTree::new(dir.path());
        let mut infos = Vec::new();
        for url in urls {
            let name = url_file_name(url).ok_or_else(|| {
                BuildError::Invalid(format!("cannot determine filename from url: {url}"))
            })?;
            let host = dir.path().join(name);
            if host.exists() {
                return Err(BuildError::Invalid(format!(
                    "ADD failed: two sources download to the same file name {name}"
                )));
            }
            self.backend.download(url, &host)?;
            if let Some(want) = checksum {
                let data = fs::read(&host)
                    .map_err(|e| BuildError::Invalid(format!("ADD failed: reading {url}: {e}")))?;
                use sha2::Digest;
                let got = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
                if got != want {
                    return Err(BuildError::Invalid(format!(
                        "digest mismatch {got}: {want}"
                    )));
                }
            }
            let hash = tree.file_hash(name).map_err(|source| BuildError::Source {
                instruction: "ADD",
                source,
            })?;
            infos.push(Info {
                hash: format!("file:{hash}"),
                host,
                kind: SourceKind::File,
                remote: true,
                path: String::new(),
                rel: name.to_string(),
            });
        }
        Ok((dir, infos))
    }

    fn commit_copy(
        &mut self,
        st: &mut StageState,
        step: &crate::backend::StepContainer,
        step_config: crate::image_config::RunConfig,
    ) -> Result<(), BuildError> {
        let child = st.child(step_config, false);
        let committed = self
            .backend
            .commit(st.image.as_deref(), Some(step), &child)?;
        st.advance(committed.image, committed.config);
        Ok(())
    }

    /// The file system `--from` names: a finished stage (by name or index) or an image.
    pub(super) fn source_root_of(&mut self, from: &str) -> Result<std::path::PathBuf, BuildError> {
        let image = self.source_image_of(from)?;
        Ok(self.backend.mount_image(image.as_deref())?)
    }

    /// The image `--from` names (`None`: a stage `FROM scratch` with no step yet).
    pub(super) fn source_image_of(&mut self, from: &str) -> Result<Option<String>, BuildError> {
        let stage = self.finished_stage(super::StageRef::From(from))?;
        let image = match stage {
            Some(f) => f.image,
            None => {
                if from.parse::<i64>().is_ok() {
                    return Err(BuildError::Invalid(format!(
                        "invalid from flag value {from}: invalid stage index {from}"
                    )));
                }
                let base = self
                    .backend
                    .image(from, self.opts.platform.as_deref(), false)?;
                Some(base.id)
            }
        };
        Ok(image)
    }

    /// `--chown=user[:group]`: numbers as given, names looked up in the parent image's
    /// `/etc/passwd` and `/etc/group`; without a group, the user's spec is used for it too.
    fn resolve_owner(&mut self, st: &StageState, spec: &str) -> Result<Owner, BuildError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (user, group) = match parts.as_slice() {
            [u] => (*u, *u),
            [u, g] => (*u, *g),
            _ => {
                return Err(BuildError::Invalid(format!(
                    "invalid chown string format: {spec}"
                )))
            }
        };
        let numeric = |s: &str| s.parse::<u32>().ok();
        let root = if numeric(user).is_none() || numeric(group).is_none() {
            Some(SourceTree::new(
                self.backend.mount_image(st.image.as_deref())?,
            ))
        } else {
            None
        };
        let lookup = |name: &str, file: &str, what: &str| -> Result<u32, BuildError> {
            if let Some(n) = numeric(name) {
                return Ok(n);
            }
            let fail = |why: String| {
                BuildError::Invalid(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {what} for {}: {why}",
                    {
                    if what == "uid" {
                        format!("user {name}")
                    } else {
                        format!("group {name}")
                    }
                    }
                ))
            };
            let tree = root
                .as_ref()
                .ok_or_else(|| fail("no image to look in".into()))?;
            let rel = tree.resolve(file, true).map_err(|e| fail(e.to_string()))?;
            let text = fs::read_to_string(tree.host_path(&rel))
                .map_err(|e| fail(format!("open /{file}: {e}")))?;
            text.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[0] == name).then(|| f[2].parse::<u32>().ok())
                })
                .flatten()
                .next()
                .ok_or_else(|| {
                    fail(if what == "uid" {
                        format!("no such user: {name}")
                    } else {
                        format!("no such group: {name}")
                    })
                })
        };
        Ok(Owner {
            uid: lookup(user, "etc/passwd", "uid")?,
            gid: lookup(group, "etc/group", "gid")?,
        })
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The file name ADD gives a download: the last segment of the URL's path (dockerd's rule).
fn url_file_name(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// The sources one COPY argument names, as dockerd's `calcCopyInfo`: a wildcard pattern is
/// matched against every path of the tree (Go's `filepath.Match`, so `*` stays in one
/// directory); a directory's key covers everything in it.
fn copy_infos(tree: &mut SourceTree, orig: &str) -> Result<Vec<Info>, ContextError> {
    let mut path = orig;
    if path.len() > 1 {
        path = path.strip_prefix('/').unwrap_or(path);
    }
    let path = path.strip_prefix("./").unwrap_or(path);
    // `COPY --parents a/./b/c`: the kept path starts after the `/./` pivot.
    let pivot = path
        .find("/./")
        .map(|i| SourceTree::clean(&path[..i]))
        .transpose()?
        .map(|p| p.join("/"));
    let path = path.replacen("/./", "/", 1);
    let kept = |matched: &str| -> String {
        let clean = SourceTree::clean(matched)
            .map(|p| p.join("/"))
            .unwrap_or_default();
        match &pivot {
            Some(p) if !p.is_empty() => clean
                .strip_prefix(p.as_str())
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or(clean.clone()),
            _ => clean,
        }
    };
    if has_wildcards(&path) {
        let mut out = Vec::new();
        for rel in tree.walk("")? {
            if go_match(&path, &rel) {
                out.extend(copy_infos_at(tree, &rel, &rel, kept(&rel))?);
            }
        }
        return Ok(out);
    }
    let k = kept(&path);
    copy_infos_at(tree, &path, &path, k)
}

fn copy_infos_at(
    tree: &mut SourceTree,
    path: &str,
    shown: &str,
    kept: String,
) -> Result<Vec<Info>, ContextError> {
    let rel = tree.resolve(path, true)?;
    let host = tree.host_path(&rel);
    let meta = match fs::metadata(&host) {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(ContextError::NotFound(shown.to_string()))
        }
        Err(source) => return Err(ContextError::Io { path: host, source }),
    };
    Ok(vec![if meta.is_dir() {
        Info {
            hash: tree.dir_hash(&rel)?,
            host,
            kind: SourceKind::Dir,
            remote: false,
            path: kept,
            rel,
        }
    } else {
        Info {
            hash: format!("file:{}", tree.file_hash(&rel)?),
            host,
            kind: SourceKind::File,
            remote: false,
            path: kept,
            rel,
        }
    }])
}

/// `COPY <<EOF /dest`: each heredoc written as a file named after its delimiter (0644), in a
/// temporary directory that must live until the backend has copied it.
fn inline_sources(files: &SourcesAndDest) -> Result<(tempfile::TempDir, Vec<Info>), ContextError> {
    let dir = tempfile::tempdir().map_err(|source| ContextError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut tree = SourceTree::new(dir.path());
    let mut infos = Vec::new();
    for c in &files.contents {
        let name = SourceTree::clean(&c.path)?.join("/");
        if name.is_empty() || name.contains('/') {
            return Err(ContextError::Outside(c.path.clone()));
        }
        let host = dir.path().join(&name);
        let io = |source| ContextError::Io {
            path: host.clone(),
            source,
        };
        fs::write(&host, c.data.as_bytes()).map_err(io)?;
        fs::set_permissions(&host, fs::Permissions::from_mode(0o644)).map_err(io)?;
        infos.push(Info {
            hash: format!("file:{}", tree.file_hash(&name)?),
            host,
            kind: SourceKind::File,
            remote: false,
            path: String::new(),
            rel: name,
        });
    }
    Ok((dir, infos))
}

/// Whether ADD should extract `path`: a tar archive, plain or compressed (gzip, bzip2, xz,
/// zstd), recognised by its first bytes as Docker's `DecompressStream` does.
fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    let h = &head[..n];
    if h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(b"BZh")
        || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
    {
        return true;
    }
    n == 512 && tar_checksum_ok(&head)
}

// A tar header's checksum field (octal at 148..156) equals the byte sum of the header with
// that field read as spaces; true for ustar, GNU and v7 archives alike.
fn tar_checksum_ok(h: &[u8; 512]) -> bool {
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == ' ' || c == '\0'), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == want && h.iter().any(|&b| b != 0)
}
