//! Docker contexts, stored where and as the docker CLI stores them, so a context made by one CLI is used
//! by the other: `$DOCKER_CONFIG/contexts/meta/<sha256 of name>/meta.json` holds the name, description
//! and docker endpoint, `contexts/tls/<sha256>/docker/{ca,cert,key}.pem` its TLS files, and
//! `currentContext` in `config.json` the one `context use` chose.
//!
//! Which daemon a command talks to follows the docker CLI's order: `-H`, else `--context`, else
//! `DOCKER_HOST` (or Berth's own `BERTH_HOST`), else `DOCKER_CONTEXT`, else the config's current context,
//! else the default context (the environment's host, or Berth's socket).

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{os_error_text, CliError};
use crate::format::table;
use crate::format::template::Format;
use crate::output::print;
use crate::transport::TlsArgs;
use crate::DEFAULT_HOST;

/// The context that is the environment's own configuration, never stored.
pub const DEFAULT_CONTEXT: &str = "default";

const DEFAULT_DESCRIPTION: &str = "Current DOCKER_HOST based configuration";

/// The docker CLI's configuration directory: `DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker"),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The host of the environment: Berth's `BERTH_HOST`, else `DOCKER_HOST`.
fn env_host() -> Option<String> {
    env("BERTH_HOST").or_else(|| env("DOCKER_HOST"))
}

fn digest(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn meta_dir(name: &str) -> PathBuf {
    config_dir().join("contexts/meta").join(digest(name))
}

fn tls_dir(name: &str) -> PathBuf {
    config_dir().join("contexts/tls").join(digest(name))
}

fn io_err(path: &Path, e: &std::io::Error) -> CliError {
    CliError::Io(format!("{}: {}", path.display(), os_error_text(e)))
}

/// One context's `meta.json`.
fn load_meta(name: &str) -> Result<Value, CliError> {
    let path = meta_dir(name).join("meta.json");
    let data = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::Io(format!(
                "context \"{name}\": context not found: open {}: {}",
                path.display(),
                os_error_text(&e)
            ))
        } else {
            io_err(&path, &e)
        }
    })?;
    serde_json::from_slice(&data)
        .map_err(|e| CliError::Io(format!("parsing {}: {e}", path.display())))
}

/// Every stored context's `meta.json`, sorted by name.
fn list_metas() -> Result<Vec<Value>, CliError> {
    let root = config_dir().join("contexts/meta");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&root, &e)),
    };
    let mut metas = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("meta.json");
        if let Ok(data) = std::fs::read(&path) {
            if let Ok(v) = serde_json::from_slice::<Value>(&data) {
                metas.push(v);
            }
        }
    }
    metas.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    Ok(metas)
}

fn read_config() -> Result<Map<String, Value>, CliError> {
    let path = config_dir().join("config.json");
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data)
            .map_err(|e| CliError::Io(format!("loading config file {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(io_err(&path, &e)),
    }
}

/// Writes config.json as the docker CLI does: tab-indented, through a temp file renamed over (mode 0600:
/// it may hold credentials).
fn write_config(config: &Map<String, Value>) -> Result<(), CliError> {
    use serde::Serialize;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = config_dir();
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, &e))?;
    let mut data = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut data,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    config
        .serialize(&mut ser)
        .map_err(|e| CliError::Io(e.to_string()))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, &e))?;
    f.write_all(&data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(&tmp, &e))?;
    let path = dir.join("config.json");
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, &e))
}

fn config_current() -> Result<Option<String>, CliError> {
    Ok(read_config()?
        .get("currentContext")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned))
}

/// The name of the context in effect, in the docker CLI's order (without the `-H` check).
fn current_name(flag: Option<&str>) -> Result<String, CliError> {
    if let Some(name) = flag {
        return Ok(name.to_owned());
    }
    if env_host().is_some() {
        return Ok(DEFAULT_CONTEXT.into());
    }
    if let Some(name) = env("DOCKER_CONTEXT") {
        return Ok(name);
    }
    Ok(config_current()?.unwrap_or_else(|| DEFAULT_CONTEXT.into()))
}

/// As the docker CLI's `context ls`: says that DOCKER_HOST decides, whatever context is current.
fn warn_env_overrides() {
    if env("DOCKER_HOST").is_some() {
        eprintln!("Warning: DOCKER_HOST environment variable overrides the active context. To use a context, either set the global --context flag, or unset DOCKER_HOST environment variable.");
    }
}

/// The daemon address and TLS settings a command uses, from `-H`, `--context` and the environment.
pub fn resolve(
    host: Option<&str>,
    context: Option<&str>,
    tls: &TlsArgs,
) -> Result<(String, TlsArgs), CliError> {
    if let Some(h) = host {
        if context.is_some() {
            return Err(CliError::WithStatus(
                "conflicting options: cannot specify both --host and --context".into(),
                1,
            ));
        }
        return Ok((h.to_owned(), tls.clone()));
    }
    let name = current_name(context)?;
    if name == DEFAULT_CONTEXT {
        return Ok((
            env_host().unwrap_or_else(|| DEFAULT_HOST.into()),
            tls.clone(),
        ));
    }
    let meta = load_meta(&name).map_err(|e| {
        CliError::WithStatus(
            format!("Failed to initialize: unable to resolve docker endpoint: {e}"),
            1,
        )
    })?;
    let endpoint = &meta["Endpoints"]["docker"];
    let host = endpoint["Host"].as_str().unwrap_or(DEFAULT_HOST).to_owned();
    let mut tls = tls.clone();
    let dir = tls_dir(&name).join("docker");
    let file = |f: &str| Some(dir.join(f)).filter(|p| p.exists());
    if let Some(ca) = file("ca.pem") {
        tls.tlscacert = Some(ca);
        tls.tlsverify = Some(!endpoint["SkipTLSVerify"].as_bool().unwrap_or(false));
    }
    if let (Some(cert), Some(key)) = (file("cert.pem"), file("key.pem")) {
        tls.tlscert = Some(cert);
        tls.tlskey = Some(key);
        tls.tls = true;
    }
    if endpoint["SkipTLSVerify"].as_bool() == Some(true) {
        tls.tls = true;
    }
    Ok((host, tls))
}

/// `context` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct ContextArgs {
    /// The context subcommand to run.
    #[command(subcommand)]
    pub command: ContextCommand,
}

/// The subcommands of `context`.
#[derive(Debug, clap::Subcommand)]
pub enum ContextCommand {
    /// Create a context
    Create(CreateArgs),
    /// Display detailed information on one or more contexts
    Inspect(ContextInspectArgs),
    /// List contexts
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove one or more contexts
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Print the name of the current context
    Show,
    /// Set the current docker context
    Use(UseArgs),
}

/// `context create`.
#[derive(Debug, Parser)]
pub struct CreateArgs {
    /// Description of the context
    #[arg(long, value_name = "string")]
    pub description: Option<String>,
    /// set the docker endpoint (host=…,ca=…,cert=…,key=…,skip-tls-verify=…)
    #[arg(long, value_name = "stringToString")]
    pub docker: Option<String>,
    /// The context's name.
    pub name: String,
}

/// `context inspect`.
#[derive(Debug, Parser)]
pub struct ContextInspectArgs {
    /// Format output using a custom template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    /// The contexts (the current one when none is named).
    pub names: Vec<String>,
}

/// `context ls`.
#[derive(Debug, Parser)]
pub struct LsArgs {
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only show context names
    #[arg(short, long)]
    pub quiet: bool,
}

/// `context rm`.
#[derive(Debug, Parser)]
pub struct RmArgs {
    /// Force the removal of a context in use
    #[arg(short, long)]
    pub force: bool,
    /// The contexts to remove.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `context use`.
#[derive(Debug, Parser)]
pub struct UseArgs {
    /// The context to make current.
    pub name: String,
}

/// Runs a `context` subcommand; `flag` is the global `--context`.
pub fn run(flag: Option<&str>, args: ContextArgs) -> Result<(), CliError> {
    match args.command {
        ContextCommand::Create(a) => create(a),
        ContextCommand::Inspect(a) => inspect(flag, a),
        ContextCommand::Ls(a) => ls(flag, a),
        ContextCommand::Rm(a) => rm(flag, a),
        ContextCommand::Show => print(&format!("{}\n", current_name(flag)?)),
        ContextCommand::Use(a) => use_context(a),
    }
}

/// Docker's rule for context names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
}

fn default_meta() -> Value {
    json!({
        "Name": DEFAULT_CONTEXT,
        "Metadata": {},
        "Endpoints": {"docker": {
            "Host": env_host().unwrap_or_else(|| DEFAULT_HOST.into()),
            "SkipTLSVerify": false,
        }},
    })
}

fn create(a: CreateArgs) -> Result<(), CliError> {
    let fail = |m: String| CliError::WithStatus(m, 1);
    if a.name == DEFAULT_CONTEXT {
        return Err(fail(format!("\"{}\" is a reserved context name", a.name)));
    }
    if !valid_name(&a.name) {
        return Err(fail(format!(
            "context name \"{}\" is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\"",
            a.name
        )));
    }
    if meta_dir(&a.name).join("meta.json").exists() {
        return Err(fail(format!("context \"{}\" already exists", a.name)));
    }
    let mut host = None;
    let mut skip_verify = false;
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    let mut description = a.description.clone();
    if let Some(spec) = &a.docker {
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match k {
                "host" => host = Some(v.to_owned()),
                "ca" => files.push(("ca.pem", v.into())),
                "cert" => files.push(("cert.pem", v.into())),
                "key" => files.push(("key.pem", v.into())),
                "skip-tls-verify" => skip_verify = v == "true" || v == "1",
                "from" => {
                    let from = if v == DEFAULT_CONTEXT {
                        default_meta()
                    } else {
                        load_meta(v).map_err(|e| fail(e.to_string()))?
                    };
                    host = from["Endpoints"]["docker"]["Host"]
                        .as_str()
                        .map(str::to_owned);
                }
                _ => {
                    return Err(fail(format!(
                        "unable to create docker endpoint config: unrecognized config key: {k}"
                    )))
                }
            }
        }
    }
    let host = match host {
        Some(h) => h,
        None => {
            // Without --docker the docker CLI copies the current context, description included.
            let current = current_name(None)?;
            let from = if current == DEFAULT_CONTEXT {
                default_meta()
            } else {
                load_meta(&current).map_err(|e| fail(e.to_string()))?
            };
            if a.docker.is_none() && description.is_none() {
                description = Some(
                    from["Metadata"]["Description"]
                        .as_str()
                        .unwrap_or(if current == DEFAULT_CONTEXT {
                            DEFAULT_DESCRIPTION
                        } else {
                            ""
                        })
                        .to_owned(),
                )
                .filter(|d| !d.is_empty());
            }
            from["Endpoints"]["docker"]["Host"]
                .as_str()
                .unwrap_or(DEFAULT_HOST)
                .to_owned()
        }
    };
    crate::transport::Transport::new(&host, &TlsArgs::default())
        .map_err(|e| fail(format!("unable to create docker endpoint config: {e}")))?;
    let mut metadata = Map::new();
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        metadata.insert("Description".into(), Value::String(d));
    }
    let meta = json!({
        "Name": a.name,
        "Metadata": metadata,
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}},
    });
    if !files.is_empty() {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        // Private to the user, as the docker CLI keeps them: a client key is a credential.
        let dir = tls_dir(&a.name).join("docker");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_err(&dir, &e))?;
        for (name, src) in files {
            let data = std::fs::read(&src).map_err(|e| io_err(&src, &e))?;
            let dst = dir.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&dst)
                .and_then(|mut f| f.write_all(&data))
                .map_err(|e| io_err(&dst, &e))?;
        }
    }
    let dir = meta_dir(&a.name);
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, &e))?;
    let path = dir.join("meta.json");
    let data = serde_json::to_vec(&ordered_meta(&meta)).map_err(|e| CliError::Io(e.to_string()))?;
    std::fs::write(&path, data).map_err(|e| io_err(&path, &e))?;
    print(&format!("{}\n", a.name))?;
    eprintln!("Successfully created context \"{}\"", a.name);
    Ok(())
}

/// meta.json with its keys in the docker CLI's order (Name, Metadata, Endpoints), which serde_json's
/// sorted maps would not keep.
struct OrderedMeta<'a>(&'a Value);

impl serde::Serialize for OrderedMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("Name", &self.0["Name"])?;
        map.serialize_entry("Metadata", &self.0["Metadata"])?;
        let ep = &self.0["Endpoints"]["docker"];
        map.serialize_entry(
            "Endpoints",
            &OrderedEndpoint(&ep["Host"], &ep["SkipTLSVerify"]),
        )?;
        map.end()
    }
}

struct OrderedEndpoint<'a>(&'a Value, &'a Value);

impl serde::Serialize for OrderedEndpoint<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Docker<'a>(&'a Value, &'a Value);
        impl serde::Serialize for Docker<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("Host", self.0)?;
                m.serialize_entry("SkipTLSVerify", self.1)?;
                m.end()
            }
        }
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("docker", &Docker(self.0, self.1))?;
        map.end()
    }
}

fn ordered_meta(meta: &Value) -> OrderedMeta<'_> {
    OrderedMeta(meta)
}

fn ls(flag: Option<&str>, a: LsArgs) -> Result<(), CliError> {
    let current = current_name(flag)?;
    let mut metas = vec![default_meta()];
    metas.extend(list_metas()?);
    metas.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    if a.quiet {
        let names: String = metas
            .iter()
            .map(|m| format!("{}\n", m["Name"].as_str().unwrap_or("")))
            .collect();
        print(&names)?;
        warn_env_overrides();
        return Ok(());
    }
    let items: Vec<Value> = metas
        .iter()
        .map(|m| {
            let name = m["Name"].as_str().unwrap_or("");
            let description = if name == DEFAULT_CONTEXT {
                DEFAULT_DESCRIPTION
            } else {
                m["Metadata"]["Description"].as_str().unwrap_or("")
            };
            json!({
                "Current": name == current,
                "Description": description,
                "DockerEndpoint": m["Endpoints"]["docker"]["Host"].as_str().unwrap_or(""),
                "Error": "",
                "Name": name,
            })
        })
        .collect();
    let format = a.format.as_deref().unwrap_or("").trim();
    if format.is_empty() || format == "table" {
        let mut out = String::from("NAME\tDESCRIPTION\tDOCKER ENDPOINT\tERROR\n");
        for i in &items {
            let star = if i["Current"] == true { " *" } else { "" };
            out.push_str(&format!(
                "{}{star}\t{}\t{}\t{}\n",
                i["Name"].as_str().unwrap_or(""),
                i["Description"].as_str().unwrap_or(""),
                i["DockerEndpoint"].as_str().unwrap_or(""),
                i["Error"].as_str().unwrap_or(""),
            ));
        }
        print(&table::align(&out, 10, 3))?;
        warn_env_overrides();
        return Ok(());
    }
    let headers = [
        ("Name", "NAME"),
        ("Description", "DESCRIPTION"),
        ("DockerEndpoint", "DOCKER ENDPOINT"),
        ("Current", "CURRENT"),
        ("Error", "ERROR"),
    ];
    print(&Format::parse(Some(format), "")?.render(&items, &headers)?)?;
    warn_env_overrides();
    Ok(())
}

fn inspect(flag: Option<&str>, a: ContextInspectArgs) -> Result<(), CliError> {
    let names = if a.names.is_empty() {
        vec![current_name(flag)?]
    } else {
        a.names
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for name in &names {
        let (meta, storage) = if name == DEFAULT_CONTEXT {
            (
                default_meta(),
                ("<IN MEMORY>".to_owned(), "<IN MEMORY>".to_owned()),
            )
        } else {
            match load_meta(name) {
                Ok(m) => (
                    m,
                    (
                        meta_dir(name).display().to_string(),
                        tls_dir(name).display().to_string(),
                    ),
                ),
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            }
        };
        let mut tls = Map::new();
        let dir = tls_dir(name).join("docker");
        let files: Vec<Value> = ["ca.pem", "cert.pem", "key.pem"]
            .iter()
            .filter(|f| name != DEFAULT_CONTEXT && dir.join(f).exists())
            .map(|f| Value::String((*f).into()))
            .collect();
        if !files.is_empty() {
            tls.insert("docker".into(), Value::Array(files));
        }
        out.push(json!({
            "Name": meta["Name"],
            "Metadata": meta["Metadata"],
            "Endpoints": meta["Endpoints"],
            "TLSMaterial": tls,
            "Storage": {"MetadataPath": storage.0, "TLSPath": storage.1},
        }));
    }
    match a.format.as_deref() {
        Some(f) if !f.is_empty() => {
            let renderer = crate::format::template::Renderer::new(f)?;
            let mut text = String::new();
            for item in &out {
                text.push_str(&renderer.render(item)?);
                text.push('\n');
            }
            print(&text)?;
        }
        _ => {
            let ordered: Vec<InspectOrdered> = out.iter().map(InspectOrdered).collect();
            let raw = serde_json::to_vec(&ordered).map_err(|e| CliError::Io(e.to_string()))?;
            // Go's encoder escapes `<` and `>`; they can only occur inside strings here.
            let text = crate::format::json_indent::indent(&raw, "    ")
                .replace('<', "\\u003c")
                .replace('>', "\\u003e");
            print(&format!("{text}\n"))?;
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        eprintln!("{}", errors.join("\n"));
        Err(CliError::Reported)
    }
}

/// An inspected context with its keys in the docker CLI's order.
struct InspectOrdered<'a>(&'a Value);

impl serde::Serialize for InspectOrdered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(5))?;
        for k in ["Name", "Metadata", "Endpoints", "TLSMaterial", "Storage"] {
            map.serialize_entry(k, &self.0[k])?;
        }
        map.end()
    }
}

fn rm(flag: Option<&str>, a: RmArgs) -> Result<(), CliError> {
    let current = current_name(flag)?;
    let mut errors = Vec::new();
    for name in &a.names {
        if name == DEFAULT_CONTEXT {
            errors.push("context \"default\" cannot be removed".to_owned());
            continue;
        }
        if !meta_dir(name).join("meta.json").exists() {
            if a.force {
                // The docker CLI names it as removed all the same.
                print(&format!("{name}\n"))?;
            } else {
                errors.push(format!("context \"{name}\" does not exist"));
            }
            continue;
        }
        if *name == current {
            if !a.force {
                errors.push(format!(
                    "context \"{name}\" is in use, set -f flag to force remove"
                ));
                continue;
            }
            let mut config = read_config()?;
            if config.get("currentContext").and_then(Value::as_str) == Some(name) {
                config.remove("currentContext");
                write_config(&config)?;
            }
        }
        for dir in [meta_dir(name), tls_dir(name)] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err(&dir, &e));
                }
                _ => {}
            }
        }
        print(&format!("{name}\n"))?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        eprintln!("{}", errors.join("\n"));
        Err(CliError::Reported)
    }
}

fn use_context(a: UseArgs) -> Result<(), CliError> {
    if a.name != DEFAULT_CONTEXT {
        load_meta(&a.name).map_err(|e| CliError::WithStatus(e.to_string(), 1))?;
    }
    let mut config = read_config()?;
    let before = config.get("currentContext").cloned();
    if a.name == DEFAULT_CONTEXT {
        config.remove("currentContext");
    } else {
        config.insert("currentContext".into(), Value::String(a.name.clone()));
    }
    // As the docker CLI: an unchanged choice writes nothing (nor creates the directory).
    let changed = before != config.get("currentContext").cloned();
    if changed && !config.contains_key("auths") {
        // First, as the docker CLI writes its config's fields.
        let mut first = Map::new();
        first.insert("auths".into(), Value::Object(Map::new()));
        first.extend(config);
        config = first;
    }
    if changed {
        write_config(&config)?;
    }
    print(&format!("{}\n", a.name))?;
    eprintln!("Current context is now \"{}\"", a.name);
    if a.name != DEFAULT_CONTEXT && env("DOCKER_HOST").is_some() {
        eprintln!("Warning: DOCKER_HOST environment variable overrides the active context. To use \"{}\", either set the global --context flag, or unset DOCKER_HOST environment variable.", a.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule_and_digest_is_sha256_hex() {
        assert!(valid_name("foo"));
        assert!(valid_name("a.b+c-d_e"));
        assert!(!valid_name("Bad/name"));
        assert!(!valid_name("f"));
        assert!(!valid_name("-x"));
        assert_eq!(
            digest("foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }

    #[test]
    fn meta_json_keeps_the_docker_clis_key_order() {
        let meta = json!({"Name": "foo", "Metadata": {}, "Endpoints": {"docker": {"Host": "unix:///x", "SkipTLSVerify": false}}});
        assert_eq!(
            serde_json::to_string(&ordered_meta(&meta)).unwrap(),
            r#"{"Name":"foo","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///x","SkipTLSVerify":false}}}"#
        );
    }
}
