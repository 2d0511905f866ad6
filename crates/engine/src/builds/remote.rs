//! What a build fetches: `ADD http(s)://…` files ([`download`]) and remote contexts ([`context`]: a
//! URL to a tar or a Dockerfile, or a git repository), read by the build thread as it reads an uploaded
//! context. HTTP goes through the registry crate's plain GET ([`registry::Client::get_url`]): redirects
//! followed, certificates verified, a status of 400 and more worded as dockerd (`failed to GET <url> with
//! status 404 Not Found: <body>`). Git is the `git` binary, as dockerd's classic builder runs it.

use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use build::backend::BackendError;
use bytes::Bytes;

use super::BuildCancel;
use crate::error::{Context, Error, Result};
use crate::Engine;

/// Fetches `url` into the new file `to` with mode 0600 and the modification time of the answer's
/// `Last-Modified`, else the epoch (dockerd's classic builder does both; the file's tarsum, the step's
/// cache key, is of the content and mode alone). Blocking, on the build's thread; a cancel stops
/// the transfer.
pub(super) fn download(
    client: &registry::Client,
    rt: &tokio::runtime::Handle,
    cancel: &BuildCancel,
    url: &str,
    to: &Path,
) -> std::result::Result<(), BackendError> {
    let fail =
        |e: io::Error| BackendError::Other(format!("ADD {url}: writing {}: {e}", to.display()));
    let fetch = async {
        let mut resp = client
            .get_url(url)
            .await
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(fail)?;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| BackendError::Other(e.to_string()))?
        {
            file.write_all(&chunk).map_err(fail)?;
        }
        // The umask may have taken bits off; dockerd's file is 0600 exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
        // Without a (readable) Last-Modified, dockerd sets Go's zero time, which lands on the epoch.
        let t = resp
            .header("last-modified")
            .and_then(parse_http_date)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        file.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
            .map_err(fail)?;
        Ok(())
    };
    rt.block_on(async {
        tokio::select! {
            r = fetch => r,
            () = cancel.cancelled() => Err(BackendError::Cancelled),
        }
    })
}

/// An HTTP date (`Last-Modified`): RFC 1123 as servers send it (`Wed, 21 Oct 2015 07:28:00 GMT`).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc2822(s.trim()).ok()?;
    Some(SystemTime::from(t.with_timezone(&chrono::Utc)))
}

/// A remote context's body as a blocking reader, for the build thread: each read waits for the
/// next piece on the runtime, and fails once the build is cancelled.
pub(super) struct BodyReader {
    resp: registry::WebResponse,
    rt: tokio::runtime::Handle,
    cancel: BuildCancel,
    pending: Bytes,
    done: bool,
}

impl BodyReader {
    /// Reads `resp`'s body on `rt`.
    pub(super) fn new(
        resp: registry::WebResponse,
        rt: tokio::runtime::Handle,
        cancel: BuildCancel,
    ) -> Self {
        BodyReader {
            resp,
            rt,
            cancel,
            pending: Bytes::new(),
            done: false,
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() && !self.done {
            let (resp, cancel) = (&mut self.resp, &self.cancel);
            let next = self.rt.block_on(async {
                tokio::select! {
                    r = resp.chunk() => r.map_err(io::Error::other),
                    () = cancel.cancelled() => Err(io::Error::other("build cancelled")),
                }
            })?;
            match next {
                Some(b) => self.pending = b,
                None => self.done = true,
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        Ok(n)
    }
}

/// How much of a remote context's answer is sniffed for its type (Go's `http.DetectContentType` reads as
/// much).
const SNIFF_LEN: usize = 512;

/// A Dockerfile served alone is read into memory; beyond this it is refused (no Dockerfile is that big, a
/// text answer of unbounded length could be).
const MAX_DOCKERFILE: u64 = 16 << 20;

/// A remote context, made ready to be read as an uploaded one.
pub(super) struct Remote {
    /// The context as a tar (compressed or not), as [`super::context::extract`] takes it.
    pub(super) tar: Box<dyn Read + Send>,
    /// The Dockerfile's name when the remote decided it (a URL serving a Dockerfile alone).
    pub(super) dockerfile: Option<String>,
}

/// Whether `remote` names a git repository, by dockerd's rules: `git://`, `git@`, `github.com/`, or an
/// http(s) URL whose path ends in `.git` (before a `#ref:dir` fragment).
fn is_git_url(remote: &str) -> bool {
    let base = remote.split('#').next().unwrap_or(remote);
    remote.starts_with("git://")
        || remote.starts_with("git@")
        || remote.starts_with("github.com/")
        || (is_http_url(remote) && base.ends_with(".git"))
}

fn is_http_url(remote: &str) -> bool {
    remote.starts_with("http://") || remote.starts_with("https://")
}

/// `POST /build?remote=`: fetches the context `remote` names. `work` is the build's directory (a git clone
/// goes below it, and goes with it).
pub(super) fn context(
    engine: &Engine,
    remote: &str,
    work: &Path,
    cancel: &BuildCancel,
) -> Result<Remote> {
    if is_git_url(remote) {
        let dir = git::clone(remote, &work.join("git"), cancel)?;
        return Ok(Remote {
            tar: Box::new(tar_of_dir(dir)?),
            dockerfile: None,
        });
    }
    if !is_http_url(remote) {
        return Err(Error::InvalidParameter(format!(
            "remoteURL ({remote}) could not be recognized as URL"
        )));
    }
    let rt = tokio::runtime::Handle::current();
    let failed = |e: String| {
        Error::InvalidParameter(format!("error downloading remote context {remote}: {e}"))
    };
    let resp = rt
        .block_on(async {
            tokio::select! {
                r = engine.registry.get_url(remote) => r.map_err(|e| e.to_string()),
                () = cancel.cancelled() => Err("build cancelled".to_owned()),
            }
        })
        .map_err(failed)?;
    let content_type = resp.header("content-type").map(str::to_owned);
    let mut body = BodyReader::new(resp, rt, cancel.clone());
    let mut head = vec![0u8; SNIFF_LEN];
    let n = archive::read_up_to(&mut body, &mut head).map_err(|e| failed(e.to_string()))?;
    head.truncate(n);
    if n == 0 {
        return Err(failed("empty response".into()));
    }
    if is_dockerfile(content_type.as_deref(), &head) {
        // dockerd takes a text answer as the Dockerfile alone, named `Dockerfile` whatever the request
        // said, in a context of its own.
        let mut text = head;
        (&mut body)
            .take(MAX_DOCKERFILE + 1)
            .read_to_end(&mut text)
            .map_err(|e| failed(e.to_string()))?;
        if text.len() as u64 > MAX_DOCKERFILE {
            return Err(failed(format!(
                "a Dockerfile larger than {MAX_DOCKERFILE} bytes"
            )));
        }
        let mut w = archive::Writer::new(Vec::new(), archive::WriteOptions::default());
        let mut h = archive::EntryHeader::new(archive::EntryType::Regular, 0o600);
        h.size = text.len() as u64;
        w.append(&h, b"Dockerfile", None, &text[..])
            .and_then(|()| w.finish())
            .map(|tar| Remote {
                tar: Box::new(io::Cursor::new(tar)),
                dockerfile: Some("Dockerfile".into()),
            })
            .map_err(|e| Error::system("making the Dockerfile's context", e))
    } else {
        Ok(Remote {
            tar: Box::new(io::Cursor::new(head).chain(body)),
            dockerfile: None,
        })
    }
}

/// Whether a remote context's answer is a Dockerfile rather than an archive: its content type is
/// `text/plain` (when the server gave none, or `application/octet-stream` as servers say of files without
/// an extension, the first bytes decide, as Go's content sniffing: no archive magic and no binary bytes).
fn is_dockerfile(content_type: Option<&str>, head: &[u8]) -> bool {
    let declared = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty() && c != "application/octet-stream");
    match declared {
        Some(c) => c == "text/plain",
        None => looks_like_text(head),
    }
}

fn looks_like_text(head: &[u8]) -> bool {
    let archive = head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.get(257..262) == Some(b"ustar");
    // Go's sniffer calls "binary" any control byte other than tab, newlines, form feed and escape.
    !archive
        && !head
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | 0x1b))
}

/// A tar of the directory `dir`, written on a thread as it is read; a failure of the writer is the
/// reader's error at the end.
fn tar_of_dir(dir: PathBuf) -> Result<TarPipe> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        &dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))?;
    let (rx, tx) = std::io::pipe().context("making a pipe for the git context")?;
    let writer = std::thread::spawn(move || -> archive::Result<()> {
        let mut w = archive::Writer::new(tx, archive::WriteOptions::default());
        w.append_dir(&fd, b"", None)?;
        w.finish().map(drop)
    });
    Ok(TarPipe {
        rx,
        writer: Some(writer),
    })
}

/// The reading end of [`tar_of_dir`].
struct TarPipe {
    rx: std::io::PipeReader,
    writer: Option<std::thread::JoinHandle<archive::Result<()>>>,
}

impl Read for TarPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.rx.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(w) = self.writer.take() {
                match w.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return Err(io::Error::other(format!("archiving the git context: {e}")))
                    }
                    Err(_) => {
                        return Err(io::Error::other(
                            "archiving the git context: the writer panicked",
                        ))
                    }
                }
            }
        }
        Ok(n)
    }
}

/// Git repositories as dockerd's classic builder fetches them.
mod git {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use super::BuildCancel;
    use crate::error::{Context, Error, Result};

    /// A repository URL split as dockerd splits `URL#ref:subdir`.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct GitRef {
        pub(super) url: String,
        pub(super) reference: String,
        pub(super) subdir: String,
    }

    /// Splits `remote`; `github.com/…` becomes `https://github.com/…`, as dockerd has it.
    pub(super) fn parse(remote: &str) -> Result<GitRef> {
        let (url, fragment) = remote.split_once('#').unwrap_or((remote, ""));
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let url = if url.starts_with("github.com/") {
            format!("https://{url}")
        } else {
            url.to_owned()
        };
        // Neither may pass for one of git's options.
        if reference.starts_with('-') {
            return Err(Error::InvalidParameter(format!(
                "invalid refspec: {reference}"
            )));
        }
        if url.starts_with('-') {
            return Err(Error::InvalidParameter(format!("invalid git URL: {url}")));
        }
        Ok(GitRef {
            url,
            reference: reference.to_owned(),
            subdir: subdir.to_owned(),
        })
    }

    /// Clones `remote` into the new directory `dir` (shallow where the server allows it, submodules too)
    /// and returns the context directory: `dir`, or its `subdir` (which must stay inside it).
    pub(super) fn clone(remote: &str, dir: &Path, cancel: &BuildCancel) -> Result<PathBuf> {
        let r = parse(remote)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        git(dir, &["init", "-q"], cancel)
            .map_err(|e| fail(format!("failed to init repo at {}: {e}", dir.display())))?;
        git(dir, &["remote", "add", "origin", &r.url], cancel)
            .map_err(|e| fail(format!("failed to add remote: {e}")))?;
        let want = if r.reference.is_empty() {
            "HEAD"
        } else {
            r.reference.as_str()
        };
        // Shallow first; dumb HTTP servers and references a server will not fetch by name (a commit ID)
        // need the full history.
        let shallow = git(
            dir,
            &["fetch", "-q", "--depth", "1", "origin", "--", want],
            cancel,
        );
        let target = match shallow {
            Ok(_) => "FETCH_HEAD".to_owned(),
            Err(_) if cancel.is_cancelled() => return Err(cancelled()),
            Err(_) => match git(dir, &["fetch", "-q", "origin", "--", want], cancel) {
                Ok(_) => "FETCH_HEAD".to_owned(),
                Err(_) if cancel.is_cancelled() => return Err(cancelled()),
                // A commit ID: the whole repository, then the commit checked out by ID.
                Err(first) if is_commit_id(want) => {
                    git(dir, &["fetch", "-q", "--tags", "origin"], cancel)
                        .map_err(|_| fail(format!("error fetching: {first}")))?;
                    want.to_owned()
                }
                Err(first) => return Err(fail(format!("error fetching: {first}"))),
            },
        };
        git(dir, &["checkout", "-q", &target, "--"], cancel)
            .map_err(|e| fail(format!("error checking out {want}: {e}")))?;
        git(
            dir,
            &[
                "submodule",
                "update",
                "-q",
                "--init",
                "--recursive",
                "--depth=1",
            ],
            cancel,
        )
        .map_err(|e| fail(format!("error initializing submodules: {e}")))?;
        if r.subdir.is_empty() {
            return Ok(dir.to_path_buf());
        }
        let root = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
        let sub = std::fs::canonicalize(dir.join(&r.subdir))
            .map_err(|e| fail(format!("error setting git context, {:?}: {e}", r.subdir)))?;
        if !sub.starts_with(&root) {
            return Err(fail(format!(
                "error setting git context, {:?} not within git root",
                r.subdir
            )));
        }
        if !sub.is_dir() {
            return Err(fail(format!(
                "error setting git context, not a directory: {}",
                r.subdir
            )));
        }
        Ok(sub)
    }

    fn is_commit_id(r: &str) -> bool {
        (7..=64).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit())
    }

    fn fail(msg: String) -> Error {
        Error::InvalidParameter(msg)
    }

    fn cancelled() -> Error {
        Error::System("build cancelled".into())
    }

    /// Runs `git ARGS` in `dir`, never prompting; a failure is git's own output. A cancel kills it.
    fn git(dir: &Path, args: &[&str], cancel: &BuildCancel) -> std::result::Result<(), String> {
        let log = dir.with_extension("log");
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        // As dockerd: no repository on the daemon's file system (a hostile repository's submodule could
        // name one), no transport only a user may ask for, none of the host's git configuration (its
        // URL rewrites and credential helpers are not the client's), and never a prompt.
        let mut child = Command::new("git")
            .args(["-c", "protocol.file.allow=never"])
            .args(args)
            .current_dir(dir)
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("running git: {e}"))?;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if cancel.is_cancelled() {
                let _ = child.kill();
                let _ = child.wait();
                return Err("build cancelled".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if status.success() {
            return Ok(());
        }
        // Git's output first, then how it ended, in Go's words, as dockerd's errors read.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let ended = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => "signal: killed".to_owned(),
        };
        Err(format!("{}: {ended}", text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_dates_parse_as_servers_send_them() {
        let t = parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT");
        let want = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_445_412_480);
        assert_eq!(t, Some(want));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn git_urls_are_told_apart_and_split_as_dockerd() {
        for git in [
            "git://example.com/repo",
            "git@github.com:owner/repo.git",
            "github.com/owner/repo",
            "https://example.com/repo.git",
            "http://127.0.0.1:8080/repo.git#main:sub/dir",
        ] {
            assert!(is_git_url(git), "{git}");
        }
        for not in [
            "http://example.com/ctx.tar",
            "https://example.com/Dockerfile",
            "ctx.git",
        ] {
            assert!(!is_git_url(not), "{not}");
        }
        let r = git::parse("github.com/owner/repo#v1:docker").unwrap();
        assert_eq!(
            r,
            git::GitRef {
                url: "https://github.com/owner/repo".into(),
                reference: "v1".into(),
                subdir: "docker".into(),
            }
        );
        let r = git::parse("git://h/r.git").unwrap();
        assert_eq!((r.reference.as_str(), r.subdir.as_str()), ("", ""));
        assert!(git::parse("git://h/r.git#--upload-pack=x").is_err());
    }

    #[test]
    fn a_text_answer_is_a_dockerfile_and_an_archive_is_a_context() {
        assert!(is_dockerfile(
            Some("text/plain; charset=utf-8"),
            b"FROM x\n"
        ));
        assert!(is_dockerfile(None, b"FROM busybox\nRUN true\n"));
        assert!(is_dockerfile(Some("application/octet-stream"), b"FROM x\n"));
        assert!(!is_dockerfile(Some("application/x-tar"), b"FROM x\n"));
        assert!(!is_dockerfile(None, &[0x1f, 0x8b, 8, 0]));
        assert!(!is_dockerfile(None, b"BZh91AY&SY"));
        let mut tar = vec![0u8; 512];
        tar[..4].copy_from_slice(b"file");
        tar[257..262].copy_from_slice(b"ustar");
        assert!(!is_dockerfile(Some("application/octet-stream"), &tar));
    }
}
