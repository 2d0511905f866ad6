//! Source trees of COPY/ADD (the build context, or an image's file system for `--from`):
//! path resolution that never leaves the tree, wildcard matching, and the content hashes that
//! make the classic builder's cache keys (`file:<hex>`, `dir:<hex>`, `multi:<hex>`).
//!
//! A file's hash is dockerd's "tarsum v1" of the file as the docker CLI puts it in the context
//! tar: SHA-256 over the header fields `name mode uid gid size typeflag linkname uname gname
//! devmajor devminor` (each written as key then value, `uname`/`gname` always empty, no
//! `mtime`), then the content. So `touch` keeps the cache and a change of content, mode or owner
//! misses. A directory's hash is SHA-256 of the sorted hashes of everything in it (itself
//! included), joined with commas. Of the extended attributes only `security.capability` is
//! hashed, as only it is in the CLI's tar. Hard links are hashed as plain files (the CLI sends a
//! hard link's second name as a link entry, which dockerd hashes differently; that only affects
//! cache hits against images dockerd built).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// A source path that cannot be used, worded as dockerd words it.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// `..` leads out of the tree.
    #[error("Forbidden path outside the build context: {0} ()")]
    Outside(String),
    /// Nothing at that path.
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    /// Too many symlinks on the way.
    #[error("too many links in {0}")]
    Loop(String),
    /// The file system failed.
    #[error("{path}: {source}")]
    Io {
        /// The path on the host.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The tar header fields a file's hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashHeader {
    /// Path relative to the tree's root, `/`-separated, with a trailing `/` for a directory.
    pub name: String,
    /// Permission bits with setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Content size (regular files; 0 for others).
    pub size: u64,
    /// Tar type flag: `0` file, `1` hard link (to an earlier entry), `2` symlink, `3` char
    /// device, `4` block device, `5` dir, `6` fifo. Computed from a tar entry, it is the entry's
    /// own flag.
    pub typeflag: u8,
    /// Symlink target, or for a hard link the name of the entry it links to.
    pub linkname: String,
    /// Device major number.
    pub devmajor: u64,
    /// Device minor number.
    pub devminor: u64,
    /// Extended attributes as the docker CLI puts them in the context tar (it sends only
    /// `security.capability`), sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// A file's tarsum, fed the header then the content; the engine can compute it while it
/// extracts the context tar (see [`SourceTree::with_sums`]) so no file is read twice.
pub struct FileSum(Sha256);

impl FileSum {
    /// Starts a hash with `header`.
    pub fn new(header: &HashHeader) -> Self {
        let mut h = Sha256::new();
        let fields: [(&str, String); 11] = [
            ("name", header.name.clone()),
            ("mode", header.mode.to_string()),
            ("uid", header.uid.to_string()),
            ("gid", header.gid.to_string()),
            ("size", header.size.to_string()),
            ("typeflag", char::from(header.typeflag).to_string()),
            ("linkname", header.linkname.clone()),
            ("uname", String::new()),
            ("gname", String::new()),
            ("devmajor", header.devmajor.to_string()),
            ("devminor", header.devminor.to_string()),
        ];
        for (k, v) in fields {
            h.update(k.as_bytes());
            h.update(v.as_bytes());
        }
        for (k, v) in &header.xattrs {
            h.update(k.as_bytes());
            h.update(v);
        }
        FileSum(h)
    }

    /// Adds content bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash, in lowercase hex.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The `security.capability` attribute of `path` (not following a symlink), if it has one;
/// file systems without extended attributes simply have none.
fn security_capability(path: &Path) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    let n = rustix::fs::lgetxattr(path, "security.capability", &mut buf).ok()?;
    buf.get(..n).map(<[u8]>::to_vec)
}

/// `prefix:` + SHA-256 of `parts` joined with commas (dockerd's `hashStringSlice`).
pub fn hash_list(prefix: &str, parts: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(parts.join(",").as_bytes());
    format!("{prefix}:{}", hex::encode(h.finalize()))
}

fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

/// A directory tree COPY/ADD read from, with memoised hashes.
#[derive(Debug, Clone)]
pub struct SourceTree {
    root: PathBuf,
    sums: HashMap<String, String>,
}

impl SourceTree {
    /// A tree rooted at `root`; hashes are computed from disk when first needed.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SourceTree {
            root: root.into(),
            sums: HashMap::new(),
        }
    }

    /// A tree with hashes already known, keyed by the path relative to the root without a
    /// trailing slash (`site`, `site/index.html`), as computed with [`FileSum`] by whoever
    /// extracted it (header name as in the tar without a leading `./`, a directory's with its
    /// trailing `/`; content fed as it streams); the others are computed from disk. This is
    /// what dockerd does (its context is hashed while it is extracted), so a build never reads
    /// a big file twice and hard links hash exactly as dockerd hashes them.
    pub fn with_sums(root: impl Into<PathBuf>, sums: HashMap<String, String>) -> Self {
        SourceTree {
            root: root.into(),
            sums,
        }
    }

    /// The tree's root on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Cleans `path` (relative to the root; a leading `/` is ignored) into root-relative
    /// components, refusing a `..` that climbs above the root (dockerd's "Forbidden path").
    pub fn clean(path: &str) -> Result<Vec<String>, ContextError> {
        let mut parts: Vec<String> = Vec::new();
        for c in Path::new(path.trim_start_matches('/')).components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(ContextError::Outside(path.to_string()));
                    }
                }
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        Ok(parts)
    }

    /// Resolves `path` inside the tree, following symlinks as if the root were `/` (an
    /// absolute target or a `..` never leaves the tree), as dockerd's `FollowSymlinkInScope`.
    /// Returns the resolved root-relative path (`""` for the root itself). The last component
    /// is followed too unless `follow_last` is false.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, ContextError> {
        let mut pending: Vec<String> = Self::clean(path)?;
        pending.reverse();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            if part == "." || part.is_empty() {
                continue;
            }
            let mut host = self.root.clone();
            host.extend(&done);
            host.push(&part);
            let is_last = pending.is_empty();
            let meta = match fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    done.push(part);
                    done.extend(pending.drain(..).rev());
                    break;
                }
                Err(e) => return Err(io_err(&host)(e)),
            };
            if meta.file_type().is_symlink() && (follow_last || !is_last) {
                links += 1;
                if links > 255 {
                    return Err(ContextError::Loop(path.to_string()));
                }
                let target = fs::read_link(&host).map_err(io_err(&host))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                let mut more: Vec<String> = target
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                more.reverse();
                pending.extend(more);
                continue;
            }
            done.push(part);
        }
        Ok(done.join("/"))
    }

    /// The host path of a resolved root-relative path.
    pub fn host_path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// The hash of the entry at the resolved root-relative path `rel`, not following a final
    /// symlink.
    pub fn file_hash(&mut self, rel: &str) -> Result<String, ContextError> {
        if let Some(sum) = self.sums.get(rel) {
            return Ok(sum.clone());
        }
        let host = self.host_path(rel);
        let meta = fs::symlink_metadata(&host).map_err(io_err(&host))?;
        let ft = meta.file_type();
        let mut header = HashHeader {
            name: rel.to_string(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: 0,
            typeflag: b'0',
            linkname: String::new(),
            devmajor: 0,
            devminor: 0,
            xattrs: security_capability(&host)
                .map(|v| vec![("security.capability".to_string(), v)])
                .unwrap_or_default(),
        };
        if ft.is_dir() {
            header.typeflag = b'5';
            header.name.push('/');
        } else if ft.is_symlink() {
            header.typeflag = b'2';
            header.linkname = fs::read_link(&host)
                .map_err(io_err(&host))?
                .to_string_lossy()
                .into_owned();
        } else if ft.is_char_device() || ft.is_block_device() {
            header.typeflag = if ft.is_char_device() { b'3' } else { b'4' };
            header.devmajor = dev_major(meta.rdev());
            header.devminor = dev_minor(meta.rdev());
        } else if ft.is_fifo() {
            header.typeflag = b'6';
        } else if ft.is_file() {
            header.size = meta.len();
        }
        let mut sum = FileSum::new(&header);
        if ft.is_file() {
            let mut f = fs::File::open(&host).map_err(io_err(&host))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(io_err(&host))?;
                if n == 0 {
                    break;
                }
                sum.update(&buf[..n]);
            }
        }
        let sum = sum.finish();
        self.sums.insert(rel.to_string(), sum.clone());
        Ok(sum)
    }

    /// Every entry under the resolved directory `rel` (itself included unless it is the
    /// root), root-relative, in Go's `filepath.Walk` order (lexical per directory); symlinks
    /// are not followed.
    pub fn walk(&self, rel: &str) -> Result<Vec<String>, ContextError> {
        let mut out = Vec::new();
        if !rel.is_empty() {
            out.push(rel.to_string());
        }
        self.walk_into(rel, &mut out)?;
        Ok(out)
    }

    fn walk_into(&self, rel: &str, out: &mut Vec<String>) -> Result<(), ContextError> {
        let host = self.host_path(rel);
        let mut names: Vec<String> = fs::read_dir(&host)
            .map_err(io_err(&host))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(io_err(&host))?;
        names.sort();
        for name in names {
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let child_host = self.host_path(&child);
            let is_dir = fs::symlink_metadata(&child_host)
                .map_err(io_err(&child_host))?
                .is_dir();
            out.push(child.clone());
            if is_dir {
                self.walk_into(&child, out)?;
            }
        }
        Ok(())
    }

    /// `dir:<hex>` of the resolved directory `rel` without the entries `skip` accepts (given
    /// their path relative to `rel`), for `COPY --exclude`.
    pub fn dir_hash_excluding(
        &mut self,
        rel: &str,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<String, ContextError> {
        let mut sums = Vec::new();
        for entry in self.walk(rel)? {
            let inner = if rel.is_empty() {
                entry.as_str()
            } else {
                entry
                    .strip_prefix(rel)
                    .map_or("", |r| r.trim_start_matches('/'))
            };
            if !inner.is_empty() && skip(inner) {
                continue;
            }
            sums.push(self.file_hash(&entry)?);
        }
        sums.sort();
        Ok(hash_list("dir", &sums))
    }

    /// `dir:<hex>` of the resolved directory `rel`.
    pub fn dir_hash(&mut self, rel: &str) -> Result<String, ContextError> {
        let mut sums = Vec::new();
        for entry in self.walk(rel)? {
            sums.push(self.file_hash(&entry)?);
        }
        sums.sort();
        Ok(hash_list("dir", &sums))
    }
}

/// Go's `filepath.Match`: `*` matches any run of non-`/` characters, `?` one non-`/`
/// character, `[...]` a class (`^` negates, `a-z` ranges), `\` escapes. A malformed pattern
/// matches nothing (dockerd ignores the error too).
pub fn go_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n).unwrap_or(false)
}

/// Whether a source path has wildcard characters (dockerd's `containsWildcards`).
pub fn has_wildcards(path: &str) -> bool {
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

// Iterative with one backtrack point for `*`, as Go's matcher: a `*` never crosses `/`, so
// a later `*` makes earlier choices final and the work stays linear in practice.
fn match_at(p: &[char], n: &[char]) -> Option<bool> {
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() && n[ni] != '/' => {
                    let (ok, next) = class(p, pi + 1, n[ni])?;
                    if ok {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && ni < n.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                '\\' if pi + 1 >= p.len() => return None,
                c if c != '?' && c != '[' && c != '\\' && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Some(true);
        }
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return Some(false),
        }
    }
}

// A `[...]` class starting after `[` at `i`: whether `c` is in it, and where the pattern
// continues; `None` for a malformed class.
fn class(p: &[char], mut i: usize, c: char) -> Option<(bool, usize)> {
    let negate = p.get(i) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let (lo, next) = if lo == '\\' {
            (*p.get(i + 1)?, i + 2)
        } else {
            (lo, i + 1)
        };
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            let h = *p.get(i + 1)?;
            let (h, next) = if h == '\\' {
                (*p.get(i + 2)?, i + 3)
            } else {
                (h, i + 2)
            };
            hi = h;
            i = next;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tree() -> (tempfile::TempDir, SourceTree) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let t = SourceTree::new(dir.path());
        (dir, t)
    }

    fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(&p, data).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The webapp fixture's `COPY site/ ./site/` was keyed `dir:90d628dd…` by dockerd 20.10;
    /// the same files (root-owned, 0644 in a 0755 directory, as the CLI sends them) must give
    /// the same key.
    #[test]
    fn dir_hash_matches_dockerd_for_the_webapp_fixture() {
        let (dir, mut t) = tree();
        let index = include_bytes!("../testdata/webapp-site/index.html");
        let style = include_bytes!("../testdata/webapp-site/style.css");
        write(dir.path(), "site/index.html", index, 0o644);
        write(dir.path(), "site/style.css", style, 0o644);
        fs::set_permissions(dir.path().join("site"), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let rel = t.resolve("site/", true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.dir_hash(&rel).unwrap_or_else(|e| panic!("{e}")),
            "dir:90d628dd61211b238d553c5e4497fbfc4eb65af2ce2612dafe1fd31620233cf9"
        );
    }

    #[test]
    fn sums_from_extraction_are_used_and_match_disk() {
        let (dir, mut t) = tree();
        write(dir.path(), "d/f", b"data", 0o644);
        fs::set_permissions(dir.path().join("d"), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let meta = fs::metadata(dir.path().join("d/f")).unwrap_or_else(|e| panic!("{e}"));
        // What an extractor computes from the tar entry `d/f` as it streams.
        let mut sum = FileSum::new(&HashHeader {
            name: "d/f".into(),
            mode: 0o644,
            uid: meta.uid(),
            gid: meta.gid(),
            size: 4,
            typeflag: b'0',
            linkname: String::new(),
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        });
        sum.update(b"da");
        sum.update(b"ta");
        let streamed = sum.finish();
        assert_eq!(
            t.file_hash("d/f").unwrap_or_else(|e| panic!("{e}")),
            streamed
        );
        let mut given = SourceTree::with_sums(
            dir.path(),
            HashMap::from([("d/f".to_string(), "feed".to_string())]),
        );
        assert_eq!(
            given.file_hash("d/f").unwrap_or_else(|e| panic!("{e}")),
            "feed"
        );
        assert_ne!(
            given.dir_hash("d").unwrap_or_else(|e| panic!("{e}")),
            t.dir_hash("d").unwrap_or_else(|e| panic!("{e}")),
            "the directory key is built from the given sums"
        );
    }

    #[test]
    fn file_hash_ignores_mtime_but_not_content_or_mode() {
        let (dir, mut t) = tree();
        write(dir.path(), "a.txt", b"one", 0o644);
        let first = t.file_hash("a.txt").unwrap_or_else(|e| panic!("{e}"));
        let fresh = |root: &Path| SourceTree::new(root).file_hash("a.txt");
        let f = fs::File::options()
            .write(true)
            .open(dir.path().join("a.txt"))
            .unwrap_or_else(|e| panic!("{e}"));
        f.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fresh(dir.path()).unwrap_or_else(|e| panic!("{e}")), first);
        write(dir.path(), "a.txt", b"one", 0o755);
        assert_ne!(fresh(dir.path()).unwrap_or_else(|e| panic!("{e}")), first);
        write(dir.path(), "a.txt", b"two", 0o644);
        assert_ne!(fresh(dir.path()).unwrap_or_else(|e| panic!("{e}")), first);
    }

    #[test]
    fn file_capabilities_are_hashed() {
        let (dir, mut t) = tree();
        write(dir.path(), "ping", b"elf", 0o755);
        let plain = t.file_hash("ping").unwrap_or_else(|e| panic!("{e}"));
        // cap_net_raw+ep as setcap writes it (VFS_CAP_REVISION_2).
        let cap: [u8; 20] = [
            0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        rustix::fs::lsetxattr(
            dir.path().join("ping"),
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap_or_else(|e| panic!("setting a capability needs root and xattr support: {e}"));
        let capped = SourceTree::new(dir.path())
            .file_hash("ping")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(plain, capped);
    }

    #[test]
    fn resolve_stays_inside_the_root() {
        let (dir, t) = tree();
        write(dir.path(), "real/f", b"x", 0o644);
        symlink("/real", dir.path().join("abs")).unwrap_or_else(|e| panic!("{e}"));
        symlink("../../../../etc", dir.path().join("up")).unwrap_or_else(|e| panic!("{e}"));
        symlink("real/f", dir.path().join("lnk")).unwrap_or_else(|e| panic!("{e}"));
        let r = |p: &str, f: bool| t.resolve(p, f).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(r("abs/f", true), "real/f");
        assert_eq!(r("./up/passwd", true), "etc/passwd", "clamped at the root");
        assert_eq!(r("lnk", true), "real/f");
        assert_eq!(r("lnk", false), "lnk");
        assert_eq!(r("/", true), "");
        assert_eq!(
            t.resolve("../x", true).unwrap_err().to_string(),
            "Forbidden path outside the build context: ../x ()"
        );
        assert!(t.resolve("a/../../x", true).is_err());
    }

    #[test]
    fn symlinks_hash_as_links_and_walk_does_not_follow_them() {
        let (dir, mut t) = tree();
        write(dir.path(), "d/f", b"x", 0o644);
        symlink("/etc", dir.path().join("d/l")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.walk("d").unwrap_or_else(|e| panic!("{e}")),
            vec!["d", "d/f", "d/l"]
        );
        let before = t.dir_hash("d").unwrap_or_else(|e| panic!("{e}"));
        fs::remove_file(dir.path().join("d/l")).unwrap_or_else(|e| panic!("{e}"));
        symlink("/usr", dir.path().join("d/l")).unwrap_or_else(|e| panic!("{e}"));
        let after = SourceTree::new(dir.path())
            .dir_hash("d")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(before, after, "the link target is hashed");
    }

    #[test]
    fn go_match_follows_filepath_match() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "d/a.txt", false),
            ("d/*", "d/a", true),
            ("d/*", "d/a/b", false),
            ("?", "a", true),
            ("?", "/", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a]", "!", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("*a*b", "xaxxb", true),
            ("[", "[", false),
            ("", "", true),
        ] {
            assert_eq!(go_match(p, n), want, "{p} vs {n}");
        }
        assert!(has_wildcards("a/*.txt") && !has_wildcards("a\\*b") && !has_wildcards("plain"));
    }
}
