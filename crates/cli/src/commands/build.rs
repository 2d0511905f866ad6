//! `berth build` and `berth image build`: the docker CLI's classic build. The context directory goes to the
//! daemon as a tar with `.dockerignore` applied (the build crate's matcher, so the CLI and the daemon agree on
//! it), everything owned by root as the docker CLI sends it; the daemon's JSON-lines answer is printed as it
//! comes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hyper::Method;
use serde_json::Value;

use super::progress::stream_error;
use crate::client::{query, Client, JsonStream, ReqBody};
use crate::error::CliError;
use crate::format::size::human_size_4;
use crate::output::print;

/// Flags of `build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<String>,
    /// Set metadata for an image
    #[arg(long)]
    pub label: Vec<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    pub network: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Secret file to expose to the build: id=mysecret[,src=/local/secret]
    #[arg(long)]
    pub secret: Vec<String>,
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tag: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// The build context: a directory, `-` for a tar (or a Dockerfile alone) on STDIN, or a URL (a tar or
    /// a Dockerfile) or git repository (`URL#ref:dir`) for the daemon to fetch
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
}

/// Builds an image.
pub async fn build(client: &Client, args: BuildArgs) -> Result<(), CliError> {
    let secrets = secrets_header(&args.secret)?;
    let with_secrets;
    let client = match secrets {
        Some(h) => {
            with_secrets = client.with_header(SECRETS_HEADER, h);
            &with_secrets
        }
        None => client,
    };
    // A URL or a git repository is the daemon's to fetch (`remote=`, as docker-py sends it): the request
    // carries no context.
    let remote = ["http://", "https://", "git://", "git@", "github.com/"]
        .iter()
        .any(|p| args.context.starts_with(p));
    let (tar, dockerfile) = if remote {
        (Vec::new(), args.file.clone())
    } else {
        context_tar(&args)?
    };
    let size = tar.len();
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if remote {
        pairs.push(("remote", args.context.clone()));
    }
    for t in &args.tag {
        pairs.push(("t", t.clone()));
    }
    if let Some(f) = &dockerfile {
        pairs.push(("dockerfile", f.clone()));
    }
    pairs.push(("buildargs", build_args(&args.build_arg)?));
    pairs.push(("labels", labels(&args.label)?));
    if !args.cache_from.is_empty() {
        pairs.push((
            "cachefrom",
            serde_json::to_string(&args.cache_from).map_err(|e| CliError::Io(e.to_string()))?,
        ));
    }
    if let Some(t) = &args.target {
        pairs.push(("target", t.clone()));
    }
    if let Some(p) = &args.platform {
        pairs.push(("platform", p.clone()));
    }
    if let Some(n) = &args.network {
        pairs.push(("networkmode", n.clone()));
    }
    if !args.add_host.is_empty() {
        pairs.push(("extrahosts", args.add_host.join(",")));
    }
    for (flag, name) in [
        (args.no_cache, "nocache"),
        (args.pull, "pull"),
        (args.quiet, "q"),
        (args.force_rm, "forcerm"),
    ] {
        if flag {
            pairs.push((name, "1".into()));
        }
    }
    pairs.push(("rm", if args.rm { "1" } else { "0" }.into()));
    pairs.push(("version", "1".into()));
    let q: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = format!("/build{}", query(&q));
    // The docker CLI ends this line as its progress output does, with "\r\r\n".
    if !args.quiet && !remote {
        print(&format!(
            "Sending build context to Docker daemon  {}\r\r\n",
            human_size_4(size as f64)
        ))?;
    }
    let resp = client
        .request(
            Method::POST,
            &path,
            ReqBody::from_reader(std::io::Cursor::new(tar)),
            Some("application/x-tar"),
        )
        .await?;
    let mut stream = JsonStream::new(resp);
    let mut image_id = None;
    let mut quiet_text = String::new();
    while let Some(item) = stream.next().await {
        let (msg, _) = item?;
        if let Some(err) = stream_error(&msg) {
            return Err(CliError::Stream(err));
        }
        if let Some(text) = msg.get("stream").and_then(Value::as_str) {
            if args.quiet {
                quiet_text.push_str(text);
            } else {
                print(text)?;
            }
        }
        if let Some(id) = msg
            .get("aux")
            .and_then(|a| a.get("ID"))
            .and_then(Value::as_str)
        {
            image_id = Some(id.to_owned());
        }
    }
    // As the docker CLI: with -q the image ID is what the quiet stream said.
    if args.quiet {
        print(&quiet_text)?;
        image_id = Some(quiet_text.clone()).filter(|t| !t.is_empty());
    }
    if let Some(file) = &args.iidfile {
        let id = image_id.ok_or_else(|| {
            CliError::Io(format!(
                "Server did not provide an image ID. Cannot write {file}"
            ))
        })?;
        std::fs::write(file, id).map_err(|e| CliError::Io(format!("{file}: {e}")))?;
    }
    Ok(())
}

/// `--build-arg K=V` (or `K`, taking the value from the environment, as the docker CLI does) as the JSON
/// map the API takes.
fn build_args(args: &[String]) -> Result<String, CliError> {
    let mut map: BTreeMap<String, Option<String>> = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => map.insert(k.to_owned(), Some(v.to_owned())),
            None => map.insert(a.clone(), std::env::var(a).ok()),
        };
    }
    serde_json::to_string(&map).map_err(|e| CliError::Io(e.to_string()))
}

/// `--label K=V` as the JSON map the API takes.
fn labels(labels: &[String]) -> Result<String, CliError> {
    let map: BTreeMap<&str, &str> = labels
        .iter()
        .map(|l| l.split_once('=').unwrap_or((l.as_str(), "")))
        .collect();
    serde_json::to_string(&map).map_err(|e| CliError::Io(e.to_string()))
}

/// The context as a tar, and the Dockerfile's name in it when it is not `Dockerfile`.
fn context_tar(args: &BuildArgs) -> Result<(Vec<u8>, Option<String>), CliError> {
    if args.context == "-" {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .map_err(|e| CliError::Io(format!("reading the context from STDIN: {e}")))?;
        // A tar has `ustar` at offset 257; anything else is a Dockerfile alone.
        if input.len() > 262 && &input[257..262] == b"ustar" {
            return Ok((input, args.file.clone()));
        }
        return Ok((single_file_tar("Dockerfile", &input)?, None));
    }
    let dir = PathBuf::from(&args.context);
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "unable to prepare context: path \"{}\" not found",
            args.context
        )));
    }
    // The Dockerfile: in the context (sent as it is), or from elsewhere or STDIN (added under a name of
    // its own, as the docker CLI does).
    let mut extra: Option<(String, Vec<u8>)> = None;
    let name = match args.file.as_deref() {
        None => None,
        Some("-") => {
            let mut df = Vec::new();
            std::io::stdin()
                .read_to_end(&mut df)
                .map_err(|e| CliError::Io(format!("reading the Dockerfile from STDIN: {e}")))?;
            extra = Some((".dockerfile.stdin".into(), df));
            Some(".dockerfile.stdin".to_owned())
        }
        Some(f) => {
            let p = Path::new(f);
            let inside = std::fs::canonicalize(p)
                .ok()
                .zip(std::fs::canonicalize(&dir).ok())
                .and_then(|(p, d)| p.strip_prefix(&d).ok().map(Path::to_path_buf));
            match inside {
                Some(rel) => Some(rel.to_string_lossy().into_owned()),
                None => {
                    let df = std::fs::read(p).map_err(|_| {
                        CliError::Usage(format!(
                            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {f}: no such file or directory"
                        ))
                    })?;
                    extra = Some((".dockerfile.outside".into(), df));
                    Some(".dockerfile.outside".to_owned())
                }
            }
        }
    };
    let dockerfile = name.clone().unwrap_or_else(|| "Dockerfile".into());
    let patterns = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => build::dockerignore::read_patterns(&text),
        Err(_) => Vec::new(),
    };
    let patterns = build::dockerignore::keep_build_files(&patterns, &dockerfile, extra.is_some());
    let matcher = build::dockerignore::PatternMatcher::new(&patterns)
        .map_err(|e| CliError::Usage(format!("error checking context: {e}")))?;
    // Owned by root, as the docker CLI sends a context: COPY's cache keys then do not depend on who owns the
    // files on the client.
    let mut w = archive::Writer::new(
        Vec::new(),
        archive::WriteOptions {
            owner: Some((0, 0)),
            ..archive::WriteOptions::default()
        },
    );
    // A Dockerfile of its own goes with a `.dockerignore` that lists it (and, when the context has
    // none, lists itself), as the docker CLI does: the daemon reads both, then drops what it lists.
    let skip = extra.as_ref().map(|_| ".dockerignore");
    walk(&mut w, &dir, "", &matcher, &Default::default(), skip)?;
    if let Some((n, data)) = &extra {
        append_file(&mut w, n, data)?;
        let mut ignore =
            std::fs::read(dir.join(".dockerignore")).unwrap_or_else(|_| b".dockerignore".to_vec());
        ignore.extend_from_slice(format!("\n{n}\n").as_bytes());
        append_file(&mut w, ".dockerignore", &ignore)?;
    }
    let tar = w.finish().map_err(|e| CliError::Io(e.to_string()))?;
    Ok((tar, name))
}

/// Adds the context below `dir` (relative path `rel`) as the docker CLI's archiver would, skipping what
/// `.dockerignore` excludes.
fn walk(
    w: &mut archive::Writer<Vec<u8>>,
    dir: &Path,
    rel: &str,
    matcher: &build::dockerignore::PatternMatcher,
    parent: &build::dockerignore::MatchInfo,
    skip: Option<&str>,
) -> Result<(), CliError> {
    use build::dockerignore::WalkDecision;
    let io = |e: std::io::Error| CliError::Io(format!("error checking context: {e}"));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    let fd = std::fs::File::open(dir).map_err(io)?;
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if skip == Some(name.as_str()) {
            continue;
        }
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let ft = e.file_type().map_err(io)?;
        let (decision, info) = matcher
            .walk_decision(&path, ft.is_dir(), parent)
            .map_err(|e| CliError::Usage(format!("error checking context: {e}")))?;
        match decision {
            WalkDecision::SkipDir => continue,
            WalkDecision::Include if ft.is_dir() => {
                let st = e.metadata().map_err(io)?;
                append_dir(w, &path, &st)?;
                walk(w, &e.path(), &path, matcher, &info, None)?;
            }
            WalkDecision::Include => w
                .append_at(&fd, name.as_bytes(), path.as_bytes())
                .map_err(|e| CliError::Io(format!("error checking context: {e}")))?,
            WalkDecision::Exclude if ft.is_dir() => {
                walk(w, &e.path(), &path, matcher, &info, None)?
            }
            WalkDecision::Exclude => {}
        }
    }
    Ok(())
}

fn append_dir(
    w: &mut archive::Writer<Vec<u8>>,
    name: &str,
    st: &std::fs::Metadata,
) -> Result<(), CliError> {
    use std::os::unix::fs::MetadataExt;
    let mut h = archive::EntryHeader::new(archive::EntryType::Directory, st.mode() & 0o7777);
    h.mtime = st.mtime().max(0) as u64;
    w.append(&h, format!("{name}/").as_bytes(), None, std::io::empty())
        .map_err(|e| CliError::Io(e.to_string()))
}

fn append_file(w: &mut archive::Writer<Vec<u8>>, name: &str, data: &[u8]) -> Result<(), CliError> {
    let mut h = archive::EntryHeader::new(archive::EntryType::Regular, 0o600);
    h.size = data.len() as u64;
    w.append(&h, name.as_bytes(), None, data)
        .map_err(|e| CliError::Io(e.to_string()))
}

fn single_file_tar(name: &str, data: &[u8]) -> Result<Vec<u8>, CliError> {
    let mut w = archive::Writer::new(Vec::new(), archive::WriteOptions::default());
    append_file(&mut w, name, data)?;
    let mut out = w.finish().map_err(|e| CliError::Io(e.to_string()))?;
    out.flush().map_err(|e| CliError::Io(e.to_string()))?;
    Ok(out)
}

/// The header carrying `--secret`s to the daemon: standard base64 of a JSON object mapping each secret's ID
/// to the standard base64 of its value. A header rather than the body, which is the context tar, as
/// `X-Registry-Config` carries a build's credentials.
pub const SECRETS_HEADER: &str = "x-berth-build-secrets";

/// The most the secrets header may take: the daemon takes at most 256 KiB of request head, and the rest
/// (`X-Registry-Config` among it) needs room too. Values are encoded twice (base64 in JSON in base64), so
/// about 100 KiB of secret values fit.
const MAX_SECRETS_HEADER: usize = 192 * 1024;

/// BuildKit's bound on one secret (its `MaxSecretSize`), which the docker CLI checks before a build.
const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// Where one `--secret`'s value comes from.
#[derive(Debug, PartialEq, Eq)]
struct SecretSource {
    id: String,
    /// `src=`/`source=`: a file.
    file: Option<String>,
    /// `env=` (or `type=env`'s source): an environment variable.
    env: Option<String>,
}

/// One `--secret id=x[,src=F|source=F][,type=file|env][,env=VAR]`, read as the docker CLI (20.10) and
/// buildx read it: keys are case-insensitive, `type=env` takes `src` as the variable's name, and with
/// neither a file nor a variable named, the variable `id` is used when it is set, else the file `id`.
fn parse_secret(value: &str) -> Result<SecretSource, String> {
    let (mut id, mut file, mut env, mut typ) = (None, None, None, None);
    for field in value.split(',') {
        let Some((key, v)) = field.split_once('=') else {
            return Err(format!("invalid field '{field}' must be a key=value pair"));
        };
        match key.to_ascii_lowercase().as_str() {
            "type" if v == "file" || v == "env" => typ = Some(v.to_owned()),
            "type" => return Err(format!("unsupported secret type {v:?}")),
            "id" => id = Some(v.to_owned()),
            "source" | "src" => file = Some(v.to_owned()),
            "env" => env = Some(v.to_owned()),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if typ.as_deref() == Some("env") && env.is_none() {
        env = file.take();
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| "secret missing ID".to_owned())?;
    if env.is_none() && file.is_none() {
        if std::env::var_os(&id).is_some() {
            env = Some(id.clone());
        } else {
            file = Some(id.clone());
        }
    }
    Ok(SecretSource { id, file, env })
}

/// The value of a secret: its file's content, or its variable's (`None` when the variable is not set:
/// the daemon then has no such secret, and a step that requires it fails with BuildKit's `secret <id>:
/// not found`).
fn read_secret(s: &SecretSource) -> Result<Option<Vec<u8>>, String> {
    if let Some(var) = &s.env {
        use std::os::unix::ffi::OsStringExt;
        return Ok(std::env::var_os(var).map(OsStringExt::into_vec));
    }
    let Some(path) = &s.file else {
        return Ok(None);
    };
    let meta = std::fs::metadata(path).map_err(|e| format!("failed to stat {path}: {e}"))?;
    if meta.len() > MAX_SECRET_SIZE {
        return Err(format!("secret {} too big. max size 500KB", s.id));
    }
    std::fs::read(path)
        .map(Some)
        .map_err(|e| format!("failed to read secret {}: {path}: {e}", s.id))
}

/// The [`SECRETS_HEADER`] value for `--secret`s, `None` without any.
fn secrets_header(specs: &[String]) -> Result<Option<String>, CliError> {
    use base64::Engine as _;
    if specs.is_empty() {
        return Ok(None);
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut map = BTreeMap::new();
    for spec in specs {
        let source = parse_secret(spec)
            .map_err(|e| CliError::Usage(format!("could not parse secrets: {spec}: {e}")))?;
        // A later --secret of the same ID replaces an earlier one, as in the docker CLI's store.
        match read_secret(&source).map_err(CliError::Io)? {
            Some(value) => map.insert(source.id, b64.encode(value)),
            None => map.remove(&source.id),
        };
    }
    let json = serde_json::to_vec(&map).map_err(|e| CliError::Io(e.to_string()))?;
    let header = b64.encode(json);
    if header.len() > MAX_SECRETS_HEADER {
        return Err(CliError::Usage(format!(
            "build secrets too large: they take {} KiB encoded, and at most {} KiB fit in the request \
             (about 100 KiB of secret values)",
            header.len().div_ceil(1024),
            MAX_SECRETS_HEADER / 1024
        )));
    }
    Ok(Some(header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(id: &str, file: Option<&str>, env: Option<&str>) -> SecretSource {
        SecretSource {
            id: id.into(),
            file: file.map(Into::into),
            env: env.map(Into::into),
        }
    }

    #[test]
    fn parse_secret_reads_docker_forms() {
        assert_eq!(
            parse_secret("id=tok,src=/f").unwrap(),
            source("tok", Some("/f"), None)
        );
        assert_eq!(
            parse_secret("ID=tok,Source=/f,type=file").unwrap(),
            source("tok", Some("/f"), None)
        );
        assert_eq!(
            parse_secret("id=tok,env=VAR").unwrap(),
            source("tok", None, Some("VAR"))
        );
        // type=env takes src as the variable's name.
        assert_eq!(
            parse_secret("id=tok,type=env,src=VAR").unwrap(),
            source("tok", None, Some("VAR"))
        );
    }

    #[test]
    fn parse_secret_without_source_uses_the_id() {
        // No variable of that name: the file named by the ID.
        let id = "BERTH_TEST_SURELY_UNSET_SECRET";
        assert_eq!(
            parse_secret(&format!("id={id}")).unwrap(),
            source(id, Some(id), None)
        );
        // A variable of that name (PATH is always set in a test).
        assert_eq!(
            parse_secret("id=PATH").unwrap(),
            source("PATH", None, Some("PATH"))
        );
    }

    #[test]
    fn parse_secret_rejects_bad_specs_in_dockers_words() {
        assert_eq!(parse_secret("src=/f").unwrap_err(), "secret missing ID");
        assert_eq!(
            parse_secret("id=x,type=ssh").unwrap_err(),
            "unsupported secret type \"ssh\""
        );
        assert_eq!(
            parse_secret("id=x,bogus=1").unwrap_err(),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            parse_secret("id=x,src").unwrap_err(),
            "invalid field 'src' must be a key=value pair"
        );
    }

    #[test]
    fn secrets_header_encodes_values_and_bounds_its_size() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, b"v\x00\xff").unwrap();
        let h = secrets_header(&[format!("id=a,src={}", f.display())])
            .unwrap()
            .unwrap();
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&b64.decode(h).unwrap()).unwrap();
        assert_eq!(b64.decode(&map["a"]).unwrap(), b"v\x00\xff");
        assert!(secrets_header(&[]).unwrap().is_none());
        // Three files of 80 KiB: within BuildKit's bound each, too much for the request's head.
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 80 * 1024]).unwrap();
        let specs: Vec<String> = (0..3)
            .map(|i| format!("id=b{i},src={}", big.display()))
            .collect();
        let err = secrets_header(&specs).unwrap_err().to_string();
        assert!(err.contains("build secrets too large"), "{err}");
        let missing = secrets_header(&["id=m,src=/nonexistent/berth".into()])
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("failed to stat /nonexistent/berth"),
            "{missing}"
        );
    }
}
