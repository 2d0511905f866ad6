//! Typed instructions: each parsed [`Node`] checked and turned into an [`Instruction`] with Docker's
//! validation errors, and the file split into build stages.
//!
//! Values are kept as written: variable expansion happens at dispatch time, when the build
//! arguments and the stage's environment are known ([`crate::shell`]).

pub(crate) mod duration;
mod expand;
mod flags;
pub mod mount;
mod suggest;

use std::time::Duration;

use crate::parser::{chomp_heredoc_content, parse_heredoc, Dockerfile, Node};
use flags::{FlagSet, FlagType};
pub use mount::{Mount, MountSpec};

/// An instruction Docker refuses, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionError {
    /// A malformed instruction: `dockerfile parse error on line N: <reason>`, as Docker prints it.
    #[error("dockerfile parse error on line {line}: {message}")]
    Invalid {
        /// First line of the instruction.
        line: usize,
        /// Docker's reason, e.g. `unknown instruction: FORM (did you mean FROM?)`.
        message: String,
    },
    /// An instruction other than `ARG` before the first `FROM`.
    #[error("no build stage in current context")]
    NoStage {
        /// First line of the instruction.
        line: usize,
    },
}

/// `KEY=value` from `ENV` or `LABEL`, value still unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value as written (quotes and escapes still in it).
    pub value: String,
    /// True for the old `ENV key value` form (no `=`).
    pub no_delim: bool,
}

/// One `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    /// The argument name.
    pub key: String,
    /// The default, as written, if any.
    pub value: Option<String>,
}

/// A heredoc given to `RUN` as a file or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The heredoc delimiter (also its name).
    pub name: String,
    /// The body.
    pub data: String,
    /// Whether leading tabs are to be stripped.
    pub chomp: bool,
    /// Whether variables in the body expand.
    pub expand: bool,
    /// The descriptor it feeds.
    pub file_descriptor: u32,
}

/// A command line of `RUN`, `CMD` or `ENTRYPOINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Exec form: the argv; shell form: one element, the command text.
    pub args: Vec<String>,
    /// True for shell form (run through the stage's `SHELL`).
    pub prepend_shell: bool,
    /// Heredoc bodies attached to the line.
    pub files: Vec<InlineFile>,
}

/// `--network` of `RUN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    /// The builder's default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command.
    pub command: CommandLine,
    /// `--mount` values, in order.
    pub mounts: Vec<MountSpec>,
    /// `--network`, when given.
    pub network: Option<RunNetwork>,
    /// The flags that were used (the classic builder refuses all of them).
    pub flags_used: Vec<String>,
}

/// A `COPY`/`ADD` source given inline as a heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// The file name (the heredoc delimiter).
    pub path: String,
    /// The body (tabs already stripped for `<<-`).
    pub data: String,
    /// Whether variables in the body expand.
    pub expand: bool,
}

/// Sources and destination of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesAndDest {
    /// Paths (or URLs for ADD) in the context or the `--from` stage.
    pub sources: Vec<String>,
    /// Inline heredoc sources.
    pub contents: Vec<SourceContent>,
    /// The destination.
    pub dest: String,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// What to copy, and where.
    pub files: SourcesAndDest,
    /// `--from=`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude=` patterns.
    pub excludes: Vec<String>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// What to add, and where.
    pub files: SourcesAndDest,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--checksum=` of a remote source.
    pub checksum: Option<String>,
    /// `--keep-git-dir`, when given.
    pub keep_git_dir: Option<bool>,
    /// `--unpack`, when given.
    pub unpack: Option<bool>,
    /// `--exclude=` patterns.
    pub excludes: Vec<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Cmd {
        /// `["CMD", argv...]` (exec form) or `["CMD-SHELL", command]`.
        test: Vec<String>,
        /// `--interval` (zero: inherit).
        interval: Duration,
        /// `--timeout` (zero: inherit).
        timeout: Duration,
        /// `--start-period` (zero: inherit).
        start_period: Duration,
        /// `--start-interval` (zero: inherit).
        start_interval: Duration,
        /// `--retries` (zero: inherit).
        retries: u32,
    },
}

/// What an instruction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `RUN`.
    Run(Run),
    /// `CMD`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`.
    Entrypoint(CommandLine),
    /// `ENV`.
    Env(Vec<KeyValue>),
    /// `LABEL`.
    Label(Vec<KeyValue>),
    /// `ARG` (inside a stage; the ones before the first FROM are [`StagedFile::meta_args`]).
    Arg(Vec<ArgDef>),
    /// `EXPOSE`, ports sorted as Docker sorts them.
    Expose(Vec<String>),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `USER`.
    User(String),
    /// `WORKDIR`.
    Workdir(String),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Add),
    /// `ONBUILD`: the trigger instruction text, stored in the image config.
    Onbuild(String),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `SHELL`.
    Shell(Vec<String>),
    /// `MAINTAINER` (deprecated).
    Maintainer(String),
}

/// An instruction inside a stage, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// What it does.
    pub kind: InstructionKind,
    /// The logical source line (for build output: `Step 3/7 : RUN make`).
    pub original: String,
    /// First source line.
    pub start_line: usize,
    /// Last source line.
    pub end_line: usize,
}

/// One `FROM` and the instructions under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image or stage it starts from, unexpanded (`FROM ${BASE}`).
    pub base: String,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// `--platform=`, unexpanded.
    pub platform: Option<String>,
    /// The `FROM` line's first line.
    pub start_line: usize,
    /// The `FROM` line as written.
    pub original: String,
    /// The stage's instructions.
    pub instructions: Vec<Instruction>,
}

/// A Dockerfile split into stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub meta_args: Vec<ArgDef>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// The result of checking one node: a stage start or an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A `FROM`.
    From(Stage),
    /// Any other instruction.
    Instruction(Instruction),
}

const INSTRUCTION_NAMES: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Checks every node and groups the instructions into stages (buildkit's `instructions.Parse`).
pub fn parse_stages(df: &Dockerfile) -> Result<StagedFile, InstructionError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &df.nodes {
        match parse_node(node)? {
            Parsed::From(stage) => stages.push(stage),
            Parsed::Instruction(ins) => match stages.last_mut() {
                Some(stage) => stage.instructions.push(ins),
                None => match ins.kind {
                    InstructionKind::Arg(args) => meta_args.extend(args),
                    _ => {
                        return Err(InstructionError::NoStage {
                            line: node.start_line,
                        })
                    }
                },
            },
        }
    }
    Ok(StagedFile { meta_args, stages })
}

/// Checks one node and returns it typed.
pub fn parse_node(node: &Node) -> Result<Parsed, InstructionError> {
    parse_node_inner(node).map_err(|message| InstructionError::Invalid {
        line: node.start_line,
        message,
    })
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn no_destination(cmd: &str) -> String {
    format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
}

fn parse_node_inner(node: &Node) -> Result<Parsed, String> {
    let args = node.arg_strings();
    let cmd = node.value.to_ascii_lowercase();
    let instruction = |kind| {
        Ok(Parsed::Instruction(Instruction {
            kind,
            original: node.original.clone(),
            start_line: node.start_line,
            end_line: node.end_line,
        }))
    };
    let no_flags = |node: &Node| FlagSet::new(&[]).parse(&node.flags);
    match cmd.as_str() {
        "env" | "label" => {
            no_flags(node)?;
            let name = if cmd == "env" { "ENV" } else { "LABEL" };
            let kvs = parse_kvps(&args, name)?;
            instruction(if cmd == "env" {
                InstructionKind::Env(kvs)
            } else {
                InstructionKind::Label(kvs)
            })
        }
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            no_flags(node)?;
            instruction(InstructionKind::Maintainer(args[0].clone()))
        }
        "add" => {
            if args.len() < 2 {
                return Err(no_destination("ADD"));
            }
            let mut f = FlagSet::new(&[
                ("chown", FlagType::String),
                ("chmod", FlagType::String),
                ("link", FlagType::Bool),
                ("keep-git-dir", FlagType::Bool),
                ("checksum", FlagType::String),
                ("unpack", FlagType::Bool),
                ("exclude", FlagType::Strings),
            ]);
            f.parse(&node.flags)?;
            let files = sources_and_dest(node, &args, "ADD")?;
            instruction(InstructionKind::Add(Add {
                files,
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link").unwrap_or(false),
                checksum: f.string("checksum"),
                keep_git_dir: f.bool("keep-git-dir"),
                unpack: f.bool("unpack"),
                excludes: f.strings("exclude"),
            }))
        }
        "copy" => {
            if args.len() < 2 {
                return Err(no_destination("COPY"));
            }
            let mut f = FlagSet::new(&[
                ("chown", FlagType::String),
                ("from", FlagType::String),
                ("chmod", FlagType::String),
                ("link", FlagType::Bool),
                ("exclude", FlagType::Strings),
                ("parents", FlagType::Bool),
            ]);
            f.parse(&node.flags)?;
            let files = sources_and_dest(node, &args, "COPY")?;
            instruction(InstructionKind::Copy(Copy {
                files,
                from: f.string("from"),
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link").unwrap_or(false),
                parents: f.bool("parents").unwrap_or(false),
                excludes: f.strings("exclude"),
            }))
        }
        "from" => {
            let name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            crate::quote::go_quote(&args[2])
                        ));
                    }
                    Some(name)
                }
                1 => None,
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            let mut f = FlagSet::new(&[("platform", FlagType::String)]);
            f.parse(&node.flags)?;
            Ok(Parsed::From(Stage {
                base: args[0].clone(),
                name,
                platform: f.string("platform"),
                start_line: node.start_line,
                original: node.original.trim().to_string(),
                instructions: Vec::new(),
            }))
        }
        "onbuild" => {
            if args.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            no_flags(node)?;
            let trigger = args[0].trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.original);
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            instruction(InstructionKind::Onbuild(expression))
        }
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            no_flags(node)?;
            instruction(InstructionKind::Workdir(args[0].clone()))
        }
        "run" => {
            let mut f =
                FlagSet::new(&[("mount", FlagType::Strings), ("network", FlagType::String)]);
            f.parse(&node.flags)?;
            let mounts = f
                .strings("mount")
                .iter()
                .map(|m| MountSpec::parse(m))
                .collect::<Result<Vec<_>, _>>()?;
            let network = match f.string("network").as_deref() {
                None => None,
                Some("default") => Some(RunNetwork::Default),
                Some("none") => Some(RunNetwork::None),
                Some("host") => Some(RunNetwork::Host),
                Some(other) => {
                    return Err(format!(
                        "invalid network mode {}",
                        crate::quote::go_quote(other)
                    ))
                }
            };
            instruction(InstructionKind::Run(Run {
                command: command_line(node, &args),
                mounts,
                network,
                flags_used: f.used(),
            }))
        }
        "cmd" => {
            no_flags(node)?;
            instruction(InstructionKind::Cmd(command_line(node, &args)))
        }
        "entrypoint" => {
            no_flags(node)?;
            instruction(InstructionKind::Entrypoint(command_line(node, &args)))
        }
        "healthcheck" => parse_healthcheck(node, &args)
            .and_then(|h| instruction(InstructionKind::Healthcheck(h))),
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            let mut ports = args.clone();
            ports.sort();
            instruction(InstructionKind::Expose(ports))
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            no_flags(node)?;
            instruction(InstructionKind::User(args[0].clone()))
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            let mut vols = Vec::new();
            for v in &args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                vols.push(v.to_string());
            }
            instruction(InstructionKind::Volume(vols))
        }
        "stopsignal" => {
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            instruction(InstructionKind::StopSignal(args[0].clone()))
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut defs = Vec::new();
            for a in &args {
                match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => defs.push(ArgDef {
                        key: k.to_string(),
                        value: Some(v.to_string()),
                    }),
                    None => defs.push(ArgDef {
                        key: a.clone(),
                        value: None,
                    }),
                }
            }
            instruction(InstructionKind::Arg(defs))
        }
        "shell" => {
            no_flags(node)?;
            let shell = json_args(&args, node.json);
            if shell.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            instruction(InstructionKind::Shell(shell))
        }
        _ => Err(suggest::with_suggestion(
            format!("unknown instruction: {}", node.value),
            &node.value,
            INSTRUCTION_NAMES,
            false,
        )),
    }
}

/// `^[a-z][a-z0-9-_.]*$`.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Removes a leading `ONBUILD` word (any case) and the blanks around it.
fn strip_onbuild(original: &str) -> String {
    let t = original.trim_start();
    if t.len() >= 7 && t.is_char_boundary(7) && t[..7].eq_ignore_ascii_case("onbuild") {
        t[7..].trim_start().to_string()
    } else {
        original.to_string()
    }
}

fn parse_kvps(args: &[String], cmd: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    let mut out = Vec::new();
    for chunk in args.chunks(3) {
        if chunk[0].is_empty() {
            return Err(format!("{cmd} names can not be blank"));
        }
        out.push(KeyValue {
            key: chunk[0].clone(),
            value: chunk[1].clone(),
            no_delim: chunk[2].is_empty(),
        });
    }
    Ok(out)
}

/// Exec form: the arguments; shell form: one string of them joined.
fn json_args(args: &[String], json: bool) -> Vec<String> {
    if args.is_empty() {
        Vec::new()
    } else if json {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    }
}

fn command_line(node: &Node, args: &[String]) -> CommandLine {
    CommandLine {
        args: json_args(args, node.json),
        prepend_shell: !node.json,
        files: node
            .heredocs
            .iter()
            .map(|h| InlineFile {
                name: h.name.clone(),
                data: h.content.clone(),
                chomp: h.chomp,
                expand: h.expand,
                file_descriptor: h.file_descriptor,
            })
            .collect(),
    }
}

fn sources_and_dest(node: &Node, args: &[String], cmd: &str) -> Result<SourcesAndDest, String> {
    let (dest, srcs) = args.split_last().ok_or_else(|| no_destination(cmd))?;
    if parse_heredoc(dest)?.is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut contents = Vec::new();
    for src in srcs {
        match parse_heredoc(src)? {
            Some(h) => {
                let body = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                let data = if h.chomp {
                    chomp_heredoc_content(&body)
                } else {
                    body
                };
                contents.push(SourceContent {
                    path: h.name,
                    data,
                    expand: h.expand,
                });
            }
            None => sources.push(src.clone()),
        }
    }
    Ok(SourcesAndDest {
        sources,
        contents,
        dest: dest.clone(),
    })
}

fn parse_healthcheck(node: &Node, args: &[String]) -> Result<Healthcheck, String> {
    if args.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ = args[0].to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let mut f = FlagSet::new(&[
        ("interval", FlagType::String),
        ("timeout", FlagType::String),
        ("start-period", FlagType::String),
        ("start-interval", FlagType::String),
        ("retries", FlagType::String),
    ]);
    f.parse(&node.flags)?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            crate::quote::go_quote(&typ)
        ));
    }
    let cmd = json_args(rest, node.json);
    if cmd.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let mut test = vec![if node.json {
        "CMD".to_string()
    } else {
        "CMD-SHELL".to_string()
    }];
    test.extend(cmd);
    let interval = |name: &str| -> Result<Duration, String> {
        let Some(s) = f.string(name).filter(|s| !s.is_empty()) else {
            return Ok(Duration::ZERO);
        };
        let d = duration::parse_go_duration(&s).map_err(|e| {
            if e.starts_with("negative duration") {
                format!(
                    "Interval {} cannot be less than 1ms",
                    crate::quote::go_quote(name)
                )
            } else {
                e
            }
        })?;
        if d != Duration::ZERO && d < Duration::from_millis(1) {
            return Err(format!(
                "Interval {} cannot be less than 1ms",
                crate::quote::go_quote(name)
            ));
        }
        Ok(d)
    };
    // Checked in Docker's order, so that the first bad option is the one reported.
    let (interval_d, timeout, start_period, start_interval) = (
        interval("interval")?,
        interval("timeout")?,
        interval("start-period")?,
        interval("start-interval")?,
    );
    let retries = match f.string("retries").filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => {
            let quoted = crate::quote::go_quote(&s);
            let n: i64 = s
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {quoted}: invalid syntax"))?;
            if i32::try_from(n).is_err() {
                return Err(format!(
                    "strconv.ParseInt: parsing {quoted}: value out of range"
                ));
            }
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            n as u32
        }
    };
    Ok(Healthcheck::Cmd {
        test,
        interval: interval_d,
        timeout,
        start_period,
        start_interval,
        retries,
    })
}

#[cfg(test)]
mod tests;
