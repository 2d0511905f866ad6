//! `pull`, `push`, `login`, `logout`: the daemon talks to the registry; this side keeps credentials
//! where the docker CLI keeps them (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`:
//! `auths.<registry>.auth` = base64 of `user:password`), so both CLIs share their logins, and sends
//! them as `X-Registry-Auth`. A `credsStore` or `credHelpers` entry sends them to a
//! `docker-credential-<name>` helper instead (`store`, `get`, `erase` with JSON on stdin/stdout).

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::progress;
use crate::client::{query, read_all, Client, JsonStream};
use crate::error::CliError;
use crate::output::{print, stdin_is_terminal, stdout_is_terminal};

/// The key docker.io's credentials are stored under (the docker CLI's legacy index address).
const DOCKER_IO_KEY: &str = "https://index.docker.io/v1/";

/// Flags of `pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

/// Flags of `push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG]
    pub name: String,
}

/// Flags of `login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// SERVER
    pub server: Option<String>,
}

/// Flags of `logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// SERVER
    pub server: Option<String>,
}

/// `berth pull`.
pub async fn pull(client: &Client, args: PullArgs) -> Result<(), CliError> {
    let (name, tag) = super::split_tag(&args.name);
    let by_digest = args.name.contains('@');
    let mut params = vec![("fromImage", name.to_string())];
    if let Some(p) = &args.platform {
        params.push(("platform", p.clone()));
    }
    let shown = if by_digest {
        // The daemon takes the digest in `tag`.
        let (n, d) = args.name.split_once('@').unwrap_or((name, ""));
        params[0].1 = n.to_string();
        params.push(("tag", d.to_string()));
        args.name.clone()
    } else if args.all_tags {
        if tag.is_some() {
            return Err(CliError::Usage(
                "tag can't be used with --all-tags/-a".into(),
            ));
        }
        name.to_string()
    } else {
        let tag = match tag {
            Some(t) => t,
            None => {
                if !args.quiet {
                    print("Using default tag: latest\n")?;
                }
                "latest"
            }
        };
        params.push(("tag", tag.to_string()));
        format!("{name}:{tag}")
    };
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let authed = client.with_registry_auth(registry_auth(name)?);
    let resp = authed
        .post(&format!("/images/create{}", query(&pairs)))
        .await?;
    show(resp, args.quiet).await?;
    print(&format!("{}\n", full_name(&shown)))?;
    Ok(())
}

/// `berth push`.
pub async fn push(client: &Client, args: PushArgs) -> Result<(), CliError> {
    let (name, tag) = super::split_tag(&args.name);
    let tag = match (tag, args.all_tags) {
        (Some(_), true) => {
            return Err(CliError::Usage(
                "tag can't be used with --all-tags/-a".into(),
            ))
        }
        (Some(t), false) => Some(t),
        (None, true) => None,
        (None, false) => {
            if !args.quiet {
                print("Using default tag: latest\n")?;
            }
            Some("latest")
        }
    };
    let path = format!(
        "/images/{}/push{}",
        super::path_escape(name),
        query(&[("tag", tag.unwrap_or(""))])
    );
    let authed = client.with_registry_auth(registry_auth(name)?);
    let resp = authed.post(&path).await?;
    show(resp, args.quiet).await?;
    Ok(())
}

/// Shows a pull or push stream (bars on a terminal, status lines otherwise); `quiet` only fails.
async fn show(resp: hyper::Response<hyper::body::Incoming>, quiet: bool) -> Result<(), CliError> {
    let mut stream = JsonStream::new(resp);
    if quiet {
        while let Some(doc) = stream.next().await {
            let (doc, _) = doc?;
            if let Some(err) = doc["error"].as_str() {
                return Err(CliError::Stream(err.to_string()));
            }
        }
        return Ok(());
    }
    progress::display(stream, stdout_is_terminal()).await?;
    Ok(())
}

/// The fully qualified reference the docker CLI prints after a pull (`docker.io/library/busybox:latest`).
fn full_name(shown: &str) -> String {
    super::run::normalize_name(shown)
}

/// `berth login`.
pub async fn login(client: &Client, args: LoginArgs) -> Result<(), CliError> {
    let server = args.server.clone().unwrap_or_else(|| DOCKER_IO_KEY.into());
    let key = config_key(&server);
    let username = match args.username {
        Some(u) => u,
        None => return Err(CliError::Usage(
            "Must provide --username with --password-stdin or --password; reading a username interactively is not supported".into(),
        )),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => {
            return Err(CliError::Usage(
                "--password and --password-stdin are mutually exclusive".into(),
            ))
        }
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_line(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            if stdin_is_terminal() {
                return Err(CliError::Usage(
                    "Must provide --password or --password-stdin; reading a password interactively is not supported".into(),
                ));
            }
            let mut p = String::new();
            std::io::stdin().read_line(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    let body = json!({"username": username, "password": password, "serveraddress": key});
    let resp = client.post_json("/auth", &body).await?;
    let answer: Value = serde_json::from_slice(&read_all(resp).await?)
        .map_err(|e| CliError::Decode(e.to_string()))?;
    let token = answer["IdentityToken"].as_str().unwrap_or("");
    let path = config_path();
    let mut config = read_config(&path)?;
    if let Some(helper) = helper_for(&config, &key) {
        // As the docker CLI: a refresh token goes to the helper under the user `<token>`.
        let (user, secret) = if token.is_empty() {
            (username.as_str(), password.as_str())
        } else {
            (TOKEN_USER, token)
        };
        let creds = json!({"ServerURL": key, "Username": user, "Secret": secret});
        run_helper(&helper, "store", creds.to_string().as_bytes())?;
        // The docker CLI keeps an empty entry so that `docker info` lists the registry.
        auths_mut(&mut config, &path)?.insert(key, Value::Object(Map::new()));
        write_config(&path, &config)?;
        return print(&format!(
            "{}\n",
            answer["Status"].as_str().unwrap_or("Login Succeeded")
        ));
    }
    let mut entry = Map::new();
    let pair = if token.is_empty() {
        format!("{username}:{password}")
    } else {
        // A refresh token replaces the password, as the docker CLI stores it.
        entry.insert("identitytoken".into(), Value::from(token));
        format!("{username}:")
    };
    entry.insert(
        "auth".into(),
        Value::from(base64::engine::general_purpose::STANDARD.encode(pair)),
    );
    auths_mut(&mut config, &path)?.insert(key, Value::Object(entry));
    write_config(&path, &config)?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
        path.display()
    );
    print(&format!(
        "{}\n",
        answer["Status"].as_str().unwrap_or("Login Succeeded")
    ))
}

/// `berth logout`.
pub async fn logout(args: LogoutArgs) -> Result<(), CliError> {
    let server = args.server.unwrap_or_else(|| DOCKER_IO_KEY.into());
    let key = config_key(&server);
    let path = config_path();
    let mut config = read_config(&path)?;
    if let Some(helper) = helper_for(&config, &key) {
        // A helper that does not know the server is fine: logging out twice is not an error.
        if let Err(e) = run_helper(&helper, "erase", key.as_bytes()) {
            eprintln!("WARNING: could not erase credentials: {key}: {e}");
        }
    }
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(&key))
        .is_some();
    if !removed {
        print(&format!("Not logged in to {key}\n"))?;
        return Ok(());
    }
    print(&format!("Removing login credentials for {key}\n"))?;
    write_config(&path, &config)
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_path() -> PathBuf {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker"),
    };
    dir.join("config.json")
}

fn read_config(path: &std::path::Path) -> Result<Map<String, Value>, CliError> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map_err(|e| CliError::Io(format!("loading config file {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(CliError::Io(format!("{}: {e}", path.display()))),
    }
}

/// Writes the config as the docker CLI does: a temp file (mode 0600, it holds secrets) renamed over.
fn write_config(path: &std::path::Path, config: &Map<String, Value>) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| CliError::Io(format!("{}: no parent directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let data = serde_json::to_vec_pretty(config).map_err(|e| CliError::Decode(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    f.write_all(&data)
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
}

/// The `auths` key of a server as the docker CLI writes it: docker.io's legacy address, else the
/// host without scheme or path.
fn config_key(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_IO_KEY.into(),
        h => h.to_string(),
    }
}

/// The `X-Registry-Auth` value for an image's registry from the stored logins (`None`:
/// anonymous): base64url of the JSON the daemon reads.
pub fn registry_auth(image: &str) -> Result<Option<String>, CliError> {
    let full = super::run::normalize_name(image);
    let domain = full.split('/').next().unwrap_or("docker.io");
    let key = config_key(domain);
    let config = read_config(&config_path())?;
    if let Some(helper) = helper_for(&config, &key) {
        let Some(creds) = helper_get(&helper, &key)? else {
            return Ok(None);
        };
        let user = creds["Username"].as_str().unwrap_or("");
        let secret = creds["Secret"].as_str().unwrap_or("");
        let auth = if user == TOKEN_USER {
            json!({"serveraddress": key, "identitytoken": secret})
        } else {
            json!({"serveraddress": key, "username": user, "password": secret})
        };
        let data = serde_json::to_vec(&auth).map_err(|e| CliError::Decode(e.to_string()))?;
        return Ok(Some(base64::engine::general_purpose::URL_SAFE.encode(data)));
    }
    let Some(entry) = config
        .get("auths")
        .and_then(|a| a.get(&key).or_else(|| a.get(format!("https://{key}"))))
    else {
        return Ok(None);
    };
    let mut auth = json!({"serveraddress": key});
    for field in ["auth", "identitytoken", "registrytoken"] {
        if let Some(v) = entry.get(field).and_then(Value::as_str) {
            auth[field] = Value::from(v);
        }
    }
    let data = serde_json::to_vec(&auth).map_err(|e| CliError::Decode(e.to_string()))?;
    Ok(Some(base64::engine::general_purpose::URL_SAFE.encode(data)))
}

/// The user name a credential helper stores an identity token under (the docker CLI's convention).
const TOKEN_USER: &str = "<token>";

fn auths_mut<'a>(
    config: &'a mut Map<String, Value>,
    path: &std::path::Path,
) -> Result<&'a mut Map<String, Value>, CliError> {
    config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| CliError::Io(format!("{}: \"auths\" is not an object", path.display())))
}

/// The credential helper for a registry: `credHelpers.<registry>`, else `credsStore`.
fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
    config
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; answers its stdout.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>, CliError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CliError::Io(format!(
                "error getting credentials - err: exec: \"{program}\": {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .to_string();
        return Err(CliError::Io(msg));
    }
    Ok(out.stdout)
}

/// Credentials a helper holds for `key`; `None` when it has none.
fn helper_get(helper: &str, key: &str) -> Result<Option<Value>, CliError> {
    match run_helper(helper, "get", key.as_bytes()) {
        Ok(out) => serde_json::from_slice(&out)
            .map(Some)
            .map_err(|e| CliError::Decode(format!("docker-credential-{helper} get: {e}"))),
        // The helpers' own words for "nothing stored" (docker-credential-helpers' ErrCredentialsNotFound).
        Err(CliError::Io(m)) if m.contains("credentials not found") => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_match_the_docker_cli() {
        assert_eq!(config_key("docker.io"), DOCKER_IO_KEY);
        assert_eq!(config_key("https://index.docker.io/v1/"), DOCKER_IO_KEY);
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(config_key("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
    }
}
