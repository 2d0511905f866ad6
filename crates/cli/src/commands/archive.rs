//! `cp`, `diff` and `export`: files between a container and the local filesystem, with Docker's rules for
//! trailing `/` and `/.` and for file-versus-directory destinations.
//!
//! Archives from the daemon are extracted locally by the archive crate's host mode (every entry opened
//! below the destination through `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`), so a hostile container
//! cannot make `cp` write outside the destination (`..` entries, absolute names, or a symlink entry
//! written through).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use http_body_util::BodyExt;
use hyper::Method;
use rustix::fs::{Mode, OFlags};

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
            out.write_all(&data).map_err(crate::output::stdout_error)?;
        }
    }
    out.flush().map_err(crate::output::stdout_error)?;
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
) -> Result<(String, Option<archive::Rebase>), CliError> {
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
    Ok((
        dst_dir,
        Some(archive::Rebase {
            old: src_base,
            new: dst_base,
        }),
    ))
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
                out.write_all(&data).map_err(crate::output::stdout_error)?;
            }
        }
        out.flush().map_err(crate::output::stdout_error)?;
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

/// Extracts a tar from the daemon into the local directory `dest` (Docker's `Untar` with `NoLchown` and
/// `NoOverwriteDirNonDir`), through the archive crate's host mode: nothing is written outside `dest`, and
/// no symlink is ever written through.
fn extract_local(
    tar: impl Read,
    dest: &str,
    rule: &Option<archive::Rebase>,
) -> Result<(), CliError> {
    let opts = archive::Options {
        rebase: rule.clone(),
        ..archive::Options::host(dest)
    };
    archive::extract_into(Path::new(dest), tar, &opts).map_err(|e| match e {
        archive::Error::Io { op, path, source } => {
            CliError::Io(format!("{op} {path}: {}", os_error_text(&source)))
        }
        archive::Error::Read(e) => CliError::Io(e.to_string()),
        e => CliError::Io(e.to_string()),
    })?;
    Ok(())
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
/// for the destination. Fifos, devices and sockets are left out, as Docker's client leaves them out.
fn write_local_tar(
    w: &mut dyn Write,
    src: &str,
    src_rebase: &Option<String>,
    rule: &Option<archive::Rebase>,
) -> Result<(), archive::Error> {
    let (src_dir, src_base) = split_dir_entry(src);
    let opts = archive::WriteOptions {
        skip_special: true,
        rebase: rule.clone(),
        ..Default::default()
    };
    let mut tw = archive::Writer::new(w, opts);
    let open = |p: &str| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| archive::Error::Io {
            op: "open",
            path: p.to_owned(),
            source: e.into(),
        })
    };
    let dir = open(&src_dir)?;
    if src_base == "." {
        tw.append_dir(&dir, src_base.as_bytes(), None)?;
    } else {
        let first = src_rebase.as_deref().unwrap_or(&src_base);
        tw.append_at(&dir, src_base.as_bytes(), first.as_bytes())?;
    }
    tw.finish()?;
    Ok(())
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
        assert_eq!(
            r,
            Some(archive::Rebase {
                old: "tree".into(),
                new: "new".into()
            })
        );
        assert!(prepare_copy("/s/tree", true, None, "/d/file", true, false).is_err());
        assert!(prepare_copy("/s/f", false, None, "/d/new/", false, false).is_err());
    }
}
