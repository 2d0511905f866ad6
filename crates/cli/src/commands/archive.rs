//! `cp`, `diff` and `export`: files between a container and the local filesystem, with Docker's rules for
//! trailing `/` and `/.` and for file-versus-directory destinations.
//!
//! Archives from the daemon are extracted locally with every entry opened below the destination through
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a hostile container cannot make `cp` write outside
//! the destination (`..` entries, absolute names, or a symlink entry written through).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use http_body_util::BodyExt;
use hyper::Method;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::client::{query, Client, ReqBody};
use crate::error::{os_error_text, CliError};
use crate::format::size::human_size;
use crate::output::stdout_is_terminal;

/// Flags of `cp`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    #[arg(value_name = "SRC")]
    pub source: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    #[arg(value_name = "DEST")]
    pub destination: String,
}

/// Flags of `diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Flags of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `diff CONTAINER`.
pub async fn diff(client: &Client, args: DiffArgs) -> Result<(), CliError> {
    #[derive(serde::Deserialize)]
    struct Change {
        #[serde(rename = "Path")]
        path: String,
        #[serde(rename = "Kind")]
        kind: u8,
    }
    let changes: Option<Vec<Change>> = client
        .get_json(&format!("/containers/{}/changes", args.container))
        .await?;
    let mut out = String::new();
    for c in changes.unwrap_or_default() {
        let k = match c.kind {
            0 => "C",
            1 => "A",
            2 => "D",
            _ => "?",
        };
        out.push_str(&format!("{k} {}\n", c.path));
    }
    io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

/// `export [-o FILE] CONTAINER`.
pub async fn export(client: &Client, args: ExportArgs) -> Result<(), CliError> {
    if args.output.is_none() && stdout_is_terminal() {
        return Err(CliError::Io(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    if let Some(path) = &args.output {
        let dir = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Err(e) = std::fs::metadata(dir) {
            return Err(CliError::Io(format!(
                "failed to export container: invalid output path: stat {}: {}",
                dir.display(),
                os_error_text(&e)
            )));
        }
    }
    let resp = client
        .request(
            Method::GET,
            &format!("/containers/{}/export", args.container),
            ReqBody::Empty,
            None,
        )
        .await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(File::create(path).map_err(|e| {
            CliError::Io(format!("failed to export container: {}", os_error_text(&e)))
        })?),
        None => Box::new(io::stdout().lock()),
    };
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::Http(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `cp SRC DEST`: one side is `CONTAINER:PATH`.
pub async fn cp(client: &Client, args: CpArgs) -> Result<(), CliError> {
    if args.source.is_empty() {
        return Err(CliError::Io("source can not be empty".into()));
    }
    if args.destination.is_empty() {
        return Err(CliError::Io("destination can not be empty".into()));
    }
    let quiet = args.quiet || !stdout_is_terminal();
    match (split_cp_arg(&args.source), split_cp_arg(&args.destination)) {
        ((Some(_), _), (Some(_), _)) => Err(CliError::Io(
            "copying between containers is not supported".into(),
        )),
        ((Some(ctr), src), (None, dst)) => {
            from_container(client, ctr, src, dst, args.follow_link, quiet).await
        }
        ((None, src), (Some(ctr), dst)) => to_container(client, ctr, src, dst, &args, quiet).await,
        _ => Err(CliError::Io(
            "must specify at least one container source".into(),
        )),
    }
}

/// Docker's `splitCpArg`: `CONTAINER:PATH`, unless the argument is an explicit local path.
fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((ctr, path)) if !ctr.starts_with('.') => (Some(ctr), path),
        _ => (None, arg),
    }
}

/// What the daemon says about a container path.
#[derive(Debug, Default, serde::Deserialize)]
struct PathStat {
    #[serde(default)]
    size: i64,
    #[serde(default)]
    mode: u32,
    #[serde(default, rename = "linkTarget")]
    link_target: String,
}

const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

fn decode_stat(headers: &hyper::HeaderMap) -> PathStat {
    headers
        .get("x-docker-container-path-stat")
        .and_then(|v| v.to_str().ok())
        .and_then(base64_decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

async fn stat_path(client: &Client, ctr: &str, path: &str) -> Result<PathStat, CliError> {
    let resp = client
        .request(
            Method::HEAD,
            &format!("/containers/{ctr}/archive{}", query(&[("path", path)])),
            ReqBody::Empty,
            None,
        )
        .await;
    match resp {
        Ok(r) => Ok(decode_stat(r.headers())),
        // A HEAD answer has no body: say what Docker's client says for a missing path.
        Err(CliError::Daemon { status: 404, .. }) => Err(CliError::Daemon {
            status: 404,
            message: format!("Could not find the file {path} in container {ctr}"),
        }),
        Err(e) => Err(e),
    }
}

// ---- paths, as Go's filepath and Docker's archive package treat them ----

fn clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn base(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return if path.is_empty() { "." } else { "/" }.into();
    }
    t.rsplit('/').next().unwrap_or(t).into()
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned.
fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".into(),
    }
}

fn specifies_current_dir(path: &str) -> bool {
    base(path) == "." && (path == "." || path.ends_with("/."))
}

/// Docker's `SplitPathDirEntry`.
fn split_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean(path);
    if specifies_current_dir(path) {
        cleaned.push_str("/.");
    }
    (dir(&cleaned), base(&cleaned))
}

/// Docker's `PreserveTrailingDotOrSeparator`.
fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut c = cleaned.to_owned();
    if !specifies_current_dir(&c) && specifies_current_dir(original) {
        if !c.ends_with('/') {
            c.push('/');
        }
        c.push('.');
    }
    if !c.ends_with('/') && original.ends_with('/') {
        c.push('/');
    }
    c
}

fn local_abs(path: &str) -> Result<String, CliError> {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        let cwd = std::env::current_dir()?;
        format!("{}/{path}", cwd.display())
    };
    Ok(preserve_trailing(&clean(&joined), path))
}

/// Docker's `GetRebaseName`: the name the entries must take after a symlink was followed.
fn rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_owned();
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    let (src, res) = (base(path), base(&resolved));
    let name = (src != res).then_some(src);
    (resolved, name)
}

/// Docker's `PrepareArchiveCopy`: where to extract, and how to rename the archive's top entry.
fn prepare_copy(
    src_path: &str,
    src_is_dir: bool,
    src_rebase: Option<&str>,
    dst_path: &str,
    dst_exists: bool,
    dst_is_dir: bool,
) -> Result<(String, Option<(String, String)>), CliError> {
    let (dst_dir, dst_base) = split_dir_entry(dst_path);
    let (_, mut src_base) = split_dir_entry(src_path);
    if dst_exists && dst_is_dir {
        return Ok((dst_path.to_owned(), None));
    }
    if dst_exists && src_is_dir {
        return Err(CliError::Io("cannot copy directory".into()));
    }
    if !dst_exists && !src_is_dir && (dst_path.ends_with('/') || specifies_current_dir(dst_path)) {
        return Err(CliError::Io("no such directory".into()));
    }
    if let Some(r) = src_rebase {
        src_base = r.to_owned();
    }
    Ok((dst_dir, Some((src_base, dst_base))))
}

/// Go's `strings.Replace(name, old, new, 1)` as Docker's `RebaseArchiveEntries` uses it.
fn rebase(name: &str, rule: &Option<(String, String)>) -> String {
    match rule {
        None => name.to_owned(),
        Some((old, new)) => {
            let old = if old == "/" { "" } else { old.as_str() };
            if old.is_empty() {
                return format!("{new}{name}");
            }
            name.replacen(old, new, 1)
        }
    }
}

// ---- from a container ----

async fn from_container(
    client: &Client,
    ctr: &str,
    src: &str,
    dst: &str,
    follow: bool,
    quiet: bool,
) -> Result<(), CliError> {
    let dst_path = if dst == "-" {
        dst.to_owned()
    } else {
        local_abs(dst)?
    };
    let mut src_path = src.to_owned();
    let mut rebase_to = None;
    if follow {
        if let Ok(st) = stat_path(client, ctr, src).await {
            if st.mode & MODE_SYMLINK != 0 {
                let mut target = st.link_target.clone();
                if !target.starts_with('/') {
                    let (parent, _) = split_dir_entry(src);
                    target = clean(&format!("{parent}/{target}"));
                }
                let (resolved, name) = rebase_name(src, &target);
                src_path = resolved;
                rebase_to = name;
            }
        }
    }
    let resp = client
        .request(
            Method::GET,
            &format!("/containers/{ctr}/archive{}", query(&[("path", &src_path)])),
            ReqBody::Empty,
            None,
        )
        .await?;
    let stat = decode_stat(resp.headers());
    let mut body = resp.into_body();
    if dst_path == "-" {
        let mut out = io::stdout().lock();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CliError::Http(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data)?;
            }
        }
        out.flush()?;
        return Ok(());
    }
    // The local destination, as Docker's `CopyInfoDestinationPath` finds it.
    let (dst_exists, dst_is_dir) = local_destination(&dst_path)?;
    let src_is_dir = stat.mode & MODE_DIR != 0;
    let (extract_dir, rule) = prepare_copy(
        &src_path,
        src_is_dir,
        rebase_to.as_deref(),
        &dst_path,
        dst_exists,
        dst_is_dir,
    )?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<bytes::Bytes>>(8);
    let extract_dir2 = extract_dir.clone();
    let worker = std::thread::spawn(move || {
        let reader = ChannelRead {
            rx,
            cur: bytes::Bytes::new(),
        };
        extract_local(reader, &extract_dir2, &rule)
    });
    let mut copied: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::Http(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            copied += data.len() as u64;
            if tx.send(Ok(data)).is_err() {
                break;
            }
        }
    }
    drop(tx);
    let result = worker
        .join()
        .map_err(|_| CliError::Io("extraction failed".into()))?;
    if !quiet {
        let shown = if src_is_dir { copied } else { stat.size as u64 };
        eprintln!(
            "Successfully copied {} to {dst_path}",
            human_size(shown as f64)
        );
    }
    result
}

fn local_destination(path: &str) -> Result<(bool, bool), CliError> {
    match std::fs::metadata(path.trim_end_matches("/.")) {
        Ok(m) => Ok((true, m.is_dir())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (parent, _) = split_dir_entry(path);
            match std::fs::metadata(&parent) {
                Ok(m) if m.is_dir() => Ok((false, false)),
                Ok(_) => Err(CliError::Io("not a directory".into())),
                Err(e) => Err(CliError::Io(format!(
                    "stat {parent}: {}",
                    os_error_text(&e)
                ))),
            }
        }
        Err(e) => Err(CliError::Io(format!("stat {path}: {}", os_error_text(&e)))),
    }
}

struct ChannelRead {
    rx: std::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    cur: bytes::Bytes,
}

impl Read for ChannelRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// Extracts a tar from the daemon into the local directory `dest` (Docker's `Untar` with `NoLchown` and
/// `NoOverwriteDirNonDir`): nothing is written outside `dest`, and no symlink is ever written through.
fn extract_local(
    tar: impl Read,
    dest: &str,
    rule: &Option<(String, String)>,
) -> Result<(), CliError> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CliError::Io(format!("open {dest}: {}", os_error_text(&e.into()))))?;
    let mut archive = tar::Archive::new(tar);
    let mut dirs: Vec<(String, i64)> = Vec::new();
    let entries = archive.entries().map_err(|e| CliError::Io(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| CliError::Io(e.to_string()))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = rebase(&raw, rule);
        let mut comps: Vec<String> = Vec::new();
        for c in name.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if comps.pop().is_none() {
                        return Err(CliError::Io(format!("{name:?} is outside of {dest:?}")));
                    }
                }
                c => comps.push(c.to_owned()),
            }
        }
        let Some((leaf, parent)) = comps.split_last() else {
            continue;
        };
        let kind = entry.header().entry_type();
        let full = format!("{dest}/{}", comps.join("/"));
        let fail =
            |op: &str, e: Errno| CliError::Io(format!("{op} {full}: {}", os_error_text(&e.into())));
        let dir = open_parent(&root, parent).map_err(|e| fail("mkdir", e))?;
        let mode = Mode::from_bits_truncate(entry.header().mode().unwrap_or(0o644) & 0o7777);
        let mtime = i64::try_from(entry.header().mtime().unwrap_or(0)).unwrap_or(0);
        let is_dir = kind == tar::EntryType::Directory;
        if let Ok(st) = rustix::fs::statat(&dir, leaf.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if existing_dir && !is_dir {
                return Err(CliError::Io(format!(
                    "cannot overwrite directory {full:?} with non-directory {dest:?}"
                )));
            }
            if !existing_dir && is_dir {
                return Err(CliError::Io(format!(
                    "cannot overwrite non-directory {full:?} with directory {dest:?}"
                )));
            }
            if !existing_dir {
                rustix::fs::unlinkat(&dir, leaf.as_str(), AtFlags::empty())
                    .map_err(|e| fail("unlink", e))?;
            }
        }
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&dir, leaf.as_str(), mode) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(fail("mkdir", e)),
                }
                dirs.push((comps.join("/"), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &dir,
                    leaf.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| fail("open", e))?;
                let mut f = File::from(fd);
                io::copy(&mut entry, &mut f)?;
                let fd = OwnedFd::from(f);
                rustix::fs::fchmod(&fd, mode).map_err(|e| fail("chmod", e))?;
                let _ = rustix::fs::futimens(&fd, &times(mtime));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                // Go's check: a relative target may not point above the destination.
                if !target.starts_with('/') {
                    let depth = parent.len() as i64;
                    let mut level = depth;
                    for c in target.split('/') {
                        match c {
                            "" | "." => {}
                            ".." => level -= 1,
                            _ => level += 1,
                        }
                        if level < 0 {
                            return Err(CliError::Io(format!(
                                "invalid symlink {full:?} -> {target:?}"
                            )));
                        }
                    }
                }
                rustix::fs::symlinkat(target.as_str(), &dir, leaf.as_str())
                    .map_err(|e| fail("symlink", e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let target = rebase(&target, rule);
                let t = clean(&format!("/{target}"));
                let (tparent, tleaf) = split_dir_entry(&t);
                let tdir = rustix::fs::openat2(
                    &root,
                    tparent.trim_start_matches('/').to_owned()
                        + if tparent == "/" { "." } else { "" },
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    beneath(),
                )
                .map_err(|e| fail("link", e))?;
                rustix::fs::linkat(&tdir, tleaf.as_str(), &dir, leaf.as_str(), AtFlags::empty())
                    .map_err(|e| fail("link", e))?;
            }
            tar::EntryType::Fifo => {
                rustix::fs::mknodat(&dir, leaf.as_str(), FileType::Fifo, mode, 0)
                    .map_err(|e| fail("mkfifo", e))?;
            }
            // Device nodes need privileges a copy should not use; other types carry no file.
            _ => {}
        }
    }
    for (rel, mtime) in dirs.iter().rev() {
        if let Ok(fd) = rustix::fs::openat2(
            &root,
            rel.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            beneath(),
        ) {
            let _ = rustix::fs::futimens(&fd, &times(*mtime));
        }
    }
    Ok(())
}

fn open_parent(root: &OwnedFd, comps: &[String]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut cur = rustix::fs::openat2(root, ".", flags, Mode::empty(), beneath())?;
    for c in comps {
        match rustix::fs::mkdirat(&cur, c.as_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        cur = rustix::fs::openat2(&cur, c.as_str(), flags, Mode::empty(), beneath())?;
    }
    Ok(cur)
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

// ---- into a container ----

async fn to_container(
    client: &Client,
    ctr: &str,
    src: &str,
    dst: &str,
    args: &CpArgs,
    quiet: bool,
) -> Result<(), CliError> {
    let mut dst_path = dst.to_owned();
    let (mut dst_exists, mut dst_is_dir) = (false, false);
    if let Ok(mut st) = stat_path(client, ctr, dst).await {
        let mut known = true;
        if st.mode & MODE_SYMLINK != 0 {
            let mut target = st.link_target.clone();
            if !target.starts_with('/') {
                let (parent, _) = split_dir_entry(dst);
                target = clean(&format!("{parent}/{target}"));
            }
            dst_path = target.clone();
            match stat_path(client, ctr, &target).await {
                Ok(s) => st = s,
                Err(_) => known = false,
            }
        }
        if known {
            dst_exists = true;
            dst_is_dir = st.mode & MODE_DIR != 0;
        }
    }
    let copy_uid = if args.archive { "true" } else { "false" };
    let (body, put_path, counted) = if src == "-" {
        if !dst_is_dir {
            return Err(CliError::Io(format!(
                "destination \"{ctr}:{dst}\" must be a directory"
            )));
        }
        (ReqBody::from_reader(io::stdin()), dst_path.clone(), None)
    } else {
        let src_abs = local_abs(src)?;
        // Docker's `CopyInfoSourcePath`: the last component is only followed with -L.
        let (src_path, src_rebase) = if args.follow_link {
            let resolved = std::fs::canonicalize(src_abs.trim_end_matches("/."))
                .map_err(|e| CliError::Io(format!("lstat {src_abs}: {}", os_error_text(&e))))?;
            let (r, name) = rebase_name(&src_abs, &resolved.display().to_string());
            (r, name)
        } else {
            (src_abs.clone(), None)
        };
        let meta = std::fs::symlink_metadata(src_path.trim_end_matches("/."))
            .map_err(|e| CliError::Io(format!("lstat {src_path}: {}", os_error_text(&e))))?;
        let (put_dir, rule) = prepare_copy(
            &src_path,
            meta.is_dir(),
            src_rebase.as_deref(),
            &dst_path,
            dst_exists,
            dst_is_dir,
        )?;
        let (reader, mut writer) = io::pipe()?;
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c2 = std::sync::Arc::clone(&counter);
        let src_path2 = src_path.clone();
        std::thread::spawn(move || {
            let mut w = CountingWriter {
                inner: &mut writer,
                count: c2,
            };
            let _ = write_local_tar(&mut w, &src_path2, &src_rebase, &rule);
        });
        let content = if meta.is_dir() {
            regular_size(Path::new(src_path.trim_end_matches("/.")))
        } else {
            meta.len()
        };
        (
            ReqBody::from_reader(reader),
            put_dir,
            Some((counter, content)),
        )
    };
    client
        .request(
            Method::PUT,
            &format!(
                "/containers/{ctr}/archive{}",
                query(&[
                    ("path", &put_path),
                    ("noOverwriteDirNonDir", "true"),
                    ("copyUIDGID", copy_uid),
                ])
            ),
            body,
            Some("application/x-tar"),
        )
        .await?;
    if !quiet {
        let size = counted.map_or(0, |(_, content)| content);
        eprintln!(
            "Successfully copied {} to {ctr}:{dst_path}",
            human_size(size as f64)
        );
    }
    Ok(())
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Total size of the regular files below `path`.
fn regular_size(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if m.is_file() {
        return m.len();
    }
    if !m.is_dir() {
        return 0;
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| regular_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Docker's `TarResource`: the source's last component (or its contents for `dir/.`) with names rebased
/// for the destination.
fn write_local_tar(
    w: &mut dyn Write,
    src: &str,
    src_rebase: &Option<String>,
    rule: &Option<(String, String)>,
) -> io::Result<()> {
    let (src_dir, src_base) = split_dir_entry(src);
    let mut b = tar::Builder::new(w);
    let path = if src_base == "." {
        Path::new(&src_dir).to_path_buf()
    } else {
        Path::new(&src_dir).join(&src_base)
    };
    let first = match src_rebase {
        Some(r) if src_base != "." => r.clone(),
        _ => src_base.clone(),
    };
    let mut links = std::collections::HashMap::new();
    append_local(&mut b, &path, &first, rule, &mut links)?;
    b.finish()
}

fn append_local(
    b: &mut tar::Builder<&mut dyn Write>,
    path: &Path,
    name: &str,
    rule: &Option<(String, String)>,
    links: &mut std::collections::HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let m = std::fs::symlink_metadata(path)?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(u64::from(m.uid()));
    h.set_gid(u64::from(m.gid()));
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(0);
    let ft = m.file_type();
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        let shown = if name.ends_with('/') {
            name.to_owned()
        } else {
            format!("{name}/")
        };
        put(b, h, &rebase(&shown, rule), None, io::empty())?;
        let mut children: Vec<String> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        children.sort();
        for c in children {
            let child_name = if name.ends_with('/') {
                format!("{name}{c}")
            } else {
                format!("{name}/{c}")
            };
            append_local(b, &path.join(&c), &child_name, rule, links)?;
        }
        return Ok(());
    }
    let shown = rebase(name, rule);
    if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = std::fs::read_link(path)?;
        return put(
            b,
            h,
            &shown,
            Some(target.to_string_lossy().as_bytes()),
            io::empty(),
        );
    }
    if !ft.is_file() {
        // Sockets, devices and fifos are left out of a copy.
        return Ok(());
    }
    if m.nlink() > 1 {
        let key = (m.dev(), m.ino());
        if let Some(first) = links.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            let first = first.clone();
            return put(b, h, &shown, Some(first.as_bytes()), io::empty());
        }
        links.insert(key, shown.clone());
    }
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(m.len());
    let f = File::open(path)?;
    let size = m.len();
    put(
        b,
        h,
        &shown,
        None,
        f.take(size).chain(io::repeat(0)).take(size),
    )
}

/// Appends an entry with its name written as given (`./x` must stay `./x`); long names go in PAX records.
fn put(
    b: &mut tar::Builder<&mut dyn Write>,
    mut h: tar::Header,
    name: &str,
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    let mut pax: Vec<(&str, &[u8])> = Vec::new();
    if name.len() > 100 {
        pax.push(("path", name.as_bytes()));
    }
    if let Some(l) = link.filter(|l| l.len() > 100) {
        pax.push(("linkpath", l));
    }
    if !pax.is_empty() {
        b.append_pax_extensions(pax)?;
    }
    if let Some(g) = h.as_gnu_mut() {
        let n = name.len().min(100);
        g.name = [0; 100];
        g.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        if let Some(l) = link {
            let n = l.len().min(100);
            g.linkname = [0; 100];
            g.linkname[..n].copy_from_slice(&l[..n]);
        }
    }
    h.set_cksum();
    b.append(&h, data)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments_and_paths_follow_docker() {
        assert_eq!(split_cp_arg("web:/etc"), (Some("web"), "/etc"));
        assert_eq!(split_cp_arg("/abs:x"), (None, "/abs:x"));
        assert_eq!(split_cp_arg("./f:x"), (None, "./f:x"));
        assert_eq!(split_dir_entry("/etc/."), ("/etc".into(), ".".into()));
        assert_eq!(
            split_dir_entry("/etc/passwd"),
            ("/etc".into(), "passwd".into())
        );
        assert_eq!(split_dir_entry("/"), ("/".into(), "/".into()));
        assert_eq!(preserve_trailing("/a/b", "a/b/."), "/a/b/.");
        assert_eq!(
            rebase("tree/a", &Some(("tree".into(), "copy".into()))),
            "copy/a"
        );
        assert_eq!(
            rebase("/bin", &Some(("/".into(), "root".into()))),
            "root/bin"
        );
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
    }

    #[test]
    fn destinations_pick_dockers_extraction_point() {
        // Existing directory: extract into it.
        let (d, r) = prepare_copy("/s/f", false, None, "/d", true, true).unwrap();
        assert_eq!((d.as_str(), r), ("/d", None));
        // Missing destination for a directory: extract into its parent, renamed.
        let (d, r) = prepare_copy("/s/tree", true, None, "/d/new", false, false).unwrap();
        assert_eq!(d, "/d");
        assert_eq!(r, Some(("tree".into(), "new".into())));
        assert!(prepare_copy("/s/tree", true, None, "/d/file", true, false).is_err());
        assert!(prepare_copy("/s/f", false, None, "/d/new/", false, false).is_err());
    }

    #[test]
    fn local_extraction_stays_in_the_destination() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link) in [
            ("ok/", tar::EntryType::Directory, None),
            ("ok/link", tar::EntryType::Symlink, Some("/")),
            ("ok/link/pwned", tar::EntryType::Regular, None),
        ] {
            let mut h = tar::Header::new_gnu();
            if let Some(g) = h.as_gnu_mut() {
                g.name[..name.len()].copy_from_slice(name.as_bytes());
                if let Some(l) = link {
                    g.linkname[..l.len()].copy_from_slice(l.as_bytes());
                }
            }
            h.set_entry_type(kind);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let dest_s = dest.display().to_string();
        assert!(extract_local(&tar[..], &dest_s, &None).is_err());
        assert!(!Path::new("/pwned").exists());
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let name = "../escape";
        if let Some(g) = h.as_gnu_mut() {
            g.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
        let tar = b.into_inner().unwrap();
        assert!(extract_local(&tar[..], &dest_s, &None).is_err());
        assert!(!d.path().join("escape").exists());
    }
}
