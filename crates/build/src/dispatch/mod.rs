//! The instruction dispatcher: runs a loaded Dockerfile stage by stage through a [`Backend`]
//! with the semantics, cache and output of Docker's classic builder (`DOCKER_BUILDKIT=0`).
//!
//! - [`args`]: build-argument scoping; [`state`]: the stage in progress;
//! - [`config`]: the instructions that only change the image config (ENV, LABEL, CMD, ...);
//! - [`steps`]: the steps that need a container (RUN, WORKDIR) and the commit of each step;
//!   [`mounts`]: `RUN --mount`;
//! - [`copy`]: COPY/ADD source resolution and cache keys; [`cache`]: the cache lookup;
//! - [`format`](mod@format): Go-compatible text of history comments and IDs.

pub mod args;
pub mod cache;
pub mod config;
pub mod copy;
pub mod format;
pub mod mounts;
mod parallel;
pub mod state;
pub mod steps;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use crate::backend::{Backend, BackendError, RunHost};
use crate::context::{ContextError, SourceTree};
use crate::image_config::{ImageConfig, RootFs};
use crate::instructions::{Instruction, InstructionError, InstructionKind, KeyValue, Parsed};
use crate::shell::{EnvList, Lexer, ShellError};
use crate::stages::{Source, StageError, StageGraph};
use crate::Loaded;

use args::BuildArgs;
use state::StageState;

/// What a build was asked for (the query of `POST /build`, engine-independent).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--build-arg`s; `None` when given without a value (then it sets nothing).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--target`: the stage to stop at (its dependencies are built, other stages are not).
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--cache-from`: images whose history may supply steps (pulled images from an earlier
    /// build, typically).
    pub cache_from: Vec<String>,
    /// `--pull`: pull base images even when present.
    pub pull: bool,
    /// `--label`s, added to the final image by a last `LABEL` step.
    pub labels: BTreeMap<String, String>,
    /// `--platform` (`linux/amd64`), for FROM lines without their own.
    pub platform: Option<String>,
    /// `-t` references to tag the result with.
    pub tags: Vec<String>,
    /// `--rm`: remove step containers after a successful step (default true).
    pub rm: bool,
    /// `--force-rm`: remove step containers even after a failure.
    pub force_rm: bool,
    /// `-q`: print nothing but the image ID at the end.
    pub quiet: bool,
    /// Host settings and limits of RUN containers.
    pub host: RunHost,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            cache_from: Vec::new(),
            pull: false,
            labels: BTreeMap::new(),
            platform: None,
            tags: Vec::new(),
            rm: true,
            force_rm: false,
            quiet: false,
            host: RunHost::default(),
        }
    }
}

/// Where a build's output goes; the engine maps it to the JSON stream of `POST /build`.
pub trait ProgressSink {
    /// Text for the client's terminal (`{"stream": ...}`), whole lines or pieces of a step's
    /// output.
    fn stream(&mut self, text: &str);
    /// The ID of a finished stage's image (`{"aux": {"ID": ...}}`).
    fn aux_id(&mut self, id: &str);
    /// The context arrived, `bytes` of file data fetched for it in `took`. Nothing by default: a
    /// classic client shows its own upload; a BuildKit-mode one draws it as the context's load.
    fn context_loaded(&mut self, _bytes: u64, _took: std::time::Duration) {}
}

/// A build that failed, worded as dockerd words it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A stage reference or `--target` is wrong.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// Variable expansion failed.
    #[error(transparent)]
    Expand(#[from] ShellError),
    /// An ONBUILD trigger does not parse.
    #[error(transparent)]
    Trigger(#[from] InstructionError),
    /// The engine failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A RUN command exited non-zero.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        /// The command, its words joined with spaces.
        command: String,
        /// Its exit code.
        code: i64,
    },
    /// A COPY/ADD source is unusable.
    #[error("{instruction} failed: {source}")]
    Source {
        /// `COPY` or `ADD`.
        instruction: &'static str,
        /// Why.
        source: ContextError,
    },
    /// The engine lacks an optional feature the build needs.
    #[error("{} is not supported by this engine", .0.what())]
    Unsupported(crate::backend::Feature),
    /// An instruction's value is refused (bad port, signal, chown, unsupported feature).
    #[error("{0}")]
    Invalid(String),
}

/// Builds `loaded` with the build context in the directory `context` (see [`build_with`] to
/// pass content hashes computed while the context was extracted). Returns the image ID.
pub fn build(
    loaded: &Loaded,
    opts: &BuildOptions,
    context: &Path,
    backend: &mut dyn Backend,
    out: &mut dyn ProgressSink,
) -> Result<String, BuildError> {
    build_with(loaded, opts, SourceTree::new(context), backend, out)
}

/// [`build`] with the context given as a [`SourceTree`].
pub fn build_with(
    loaded: &Loaded,
    opts: &BuildOptions,
    context: SourceTree,
    backend: &mut dyn Backend,
    out: &mut dyn ProgressSink,
) -> Result<String, BuildError> {
    let mut b = Builder {
        opts,
        backend,
        out: Output {
            sink: out,
            quiet: opts.quiet,
            pending: Vec::new(),
        },
        context,
        lexer: Lexer::new(loaded.dockerfile.escape),
        args: BuildArgs::new(opts.build_args.clone()),
        finished: Vec::new(),
        step: 0,
        total: 0,
        cache_from: None,
        shared: None,
        current: usize::MAX,
    };
    b.run(loaded)
}

/// Output with `-q` applied. A step's output arrives in arbitrary chunks; a UTF-8 sequence cut
/// between two chunks is held back until its end arrives, so it is not turned into two
/// replacement characters.
pub(crate) struct Output<'a> {
    sink: &'a mut dyn ProgressSink,
    quiet: bool,
    pending: Vec<u8>,
}

impl Output<'_> {
    pub(crate) fn line(&mut self, text: &str) {
        self.flush_pending();
        if !self.quiet {
            self.sink.stream(&format!("{text}\n"));
        }
    }

    /// Sends what is held back (the end of a step's output), however it ends.
    pub(crate) fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            if !self.quiet {
                self.sink.stream(&String::from_utf8_lossy(&rest));
            }
        }
    }
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let cut = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // An incomplete sequence at the end waits for the next chunk; invalid bytes
            // elsewhere are sent (replaced) now.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let ready: Vec<u8> = self.pending.drain(..cut).collect();
        if !self.quiet && !ready.is_empty() {
            self.sink.stream(&String::from_utf8_lossy(&ready));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod output_tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<String>);

    impl ProgressSink for Collect {
        fn stream(&mut self, text: &str) {
            self.0.push(text.to_string());
        }
        fn aux_id(&mut self, _: &str) {}
    }

    #[test]
    fn a_character_split_between_chunks_arrives_whole() {
        let mut sink = Collect::default();
        let mut out = Output {
            sink: &mut sink,
            quiet: false,
            pending: Vec::new(),
        };
        let bytes = "né\n".as_bytes();
        out.write_all(&bytes[..2]).unwrap_or_else(|e| panic!("{e}"));
        out.write_all(&bytes[2..]).unwrap_or_else(|e| panic!("{e}"));
        out.write_all(&[0xff, b'x'])
            .unwrap_or_else(|e| panic!("{e}"));
        out.write_all(&[0xc3]).unwrap_or_else(|e| panic!("{e}"));
        out.line("done");
        assert_eq!(sink.0.concat(), "né\n\u{fffd}x\u{fffd}done\n");
        assert!(sink.0.iter().all(|s| !s.contains("\u{fffd}\u{fffd}")));
    }
}

/// A finished stage: its name and image.
#[derive(Clone)]
struct Finished {
    index: usize,
    name: Option<String>,
    image: Option<String>,
    config: ImageConfig,
}

pub(crate) struct Builder<'a> {
    opts: &'a BuildOptions,
    backend: &'a mut dyn Backend,
    out: Output<'a>,
    context: SourceTree,
    lexer: Lexer,
    args: BuildArgs,
    finished: Vec<Finished>,
    step: usize,
    total: usize,
    cache_from: Option<Vec<crate::backend::Base>>,
    /// With stages built at once: the stages the others finished (this builder's own
    /// `finished` holds none of them).
    shared: Option<&'a parallel::Shared>,
    /// The index of the stage this builder builds, with `shared` (the stages it may name are
    /// those before it).
    current: usize,
}

/// How a step names another stage.
#[derive(Debug, Clone, Copy)]
enum StageRef<'r> {
    /// FROM an earlier stage, resolved by the stage graph.
    Index(usize),
    /// `--from=` a name or an index (a name wins).
    From(&'r str),
}

impl StageRef<'_> {
    /// The stage among `stages` (index and name, in order) below `below` that this names.
    fn resolve<'s>(
        self,
        stages: impl Iterator<Item = (usize, Option<&'s str>)> + Clone,
        below: usize,
    ) -> Option<usize> {
        let mut earlier = stages.filter(|(i, _)| *i < below);
        match self {
            StageRef::Index(i) => earlier.find(|(j, _)| *j == i).map(|(j, _)| j),
            StageRef::From(from) => {
                let lower = from.to_lowercase();
                earlier
                    .clone()
                    .find(|(_, n)| *n == Some(lower.as_str()))
                    .or_else(|| {
                        let i = from.parse::<usize>().ok()?;
                        earlier.find(|(j, _)| *j == i)
                    })
                    .map(|(j, _)| j)
            }
        }
    }
}

impl Builder<'_> {
    /// The finished stage `wanted` names, if it names one. With stages built at once, waits
    /// for an earlier stage that is still being built (as it would be finished by now if the
    /// stages were built one after the other).
    fn finished_stage(&self, wanted: StageRef<'_>) -> Result<Option<Finished>, BuildError> {
        let own = self.finished.iter().map(|f| (f.index, f.name.as_deref()));
        if let Some(i) = wanted.resolve(own, usize::MAX) {
            return Ok(self.finished.iter().find(|f| f.index == i).cloned());
        }
        match self.shared {
            Some(shared) => Ok(shared.wait_finished(wanted, self.current)?),
            None => Ok(None),
        }
    }

    fn run(&mut self, loaded: &Loaded) -> Result<String, BuildError> {
        let staged = &loaded.staged;
        let meta_lines: Vec<&crate::parser::Node> = loaded
            .dockerfile
            .nodes
            .iter()
            .take_while(|n| !n.value.eq_ignore_ascii_case("from"))
            .collect();
        // Meta args first: their values expand FROM lines and decide the stage graph, so they
        // are processed before the step count is known (and printed afterwards).
        for arg in &staged.meta_args {
            let env = EnvList::new(env_list(&self.args.all_allowed()));
            let value = match &arg.value {
                Some(v) => Some(self.lexer.process_word(v, &env)?),
                None => None,
            };
            self.args.add(&arg.key, value.clone());
            self.args.add_meta(&arg.key, value);
        }
        let meta_env = EnvList::new(env_list(&self.args.all_meta()));
        let lexer = self.lexer;
        let graph = StageGraph::build(staged, &|s| lexer.process_word(s, &meta_env))?;
        let target = graph.target_index(self.opts.target.as_deref())?;
        let needed = graph.needed(target);
        self.total = meta_lines.len()
            + needed
                .iter()
                .map(|&i| staged.stages[i].instructions.len() + 1)
                .sum::<usize>()
            + usize::from(!self.opts.labels.is_empty());
        for node in &meta_lines {
            self.print_step(&node.original);
        }

        let limit = self.backend.max_parallel_stages();
        let deps = parallel::schedule(staged, &graph, &needed);
        if limit > 1 && parallel::has_concurrency(&deps) {
            self.run_parallel(staged, &graph, &meta_env, &needed, &deps, target, limit)?;
        } else {
            for &index in &needed {
                self.build_stage(staged, index, &graph, &meta_env, index == target)?;
            }
        }
        self.finish(loaded)
    }

    /// Builds one stage: FROM (and triggers), its instructions, the `--label` step on the
    /// target; records the result for later stages.
    fn build_stage(
        &mut self,
        staged: &crate::instructions::StagedFile,
        index: usize,
        graph: &StageGraph,
        meta_env: &EnvList,
        is_target: bool,
    ) -> Result<(), BuildError> {
        let stage = &staged.stages[index];
        self.print_step(&stage.original);
        let mut st = self.begin_stage(index, graph, meta_env, stage.platform.as_deref())?;
        self.out.line(&format!(" ---> {}", short(&st.image)));
        for ins in &stage.instructions {
            self.print_step(&ins.original);
            self.dispatch(&mut st, ins, true)?;
            self.out.line(&format!(" ---> {}", short(&st.image)));
        }
        if is_target && !self.opts.labels.is_empty() {
            let ins = label_option_instruction(&self.opts.labels);
            self.print_step(&ins.original);
            self.dispatch(&mut st, &ins, false)?;
            self.out.line(&format!(" ---> {}", short(&st.image)));
        }
        if let Some(id) = &st.image {
            self.out.sink.aux_id(id);
        }
        self.args.merge_referenced(&st.args);
        self.finished.push(Finished {
            index,
            name: stage.name.clone(),
            image: st.image,
            config: st.image_config,
        });
        Ok(())
    }

    /// After the last stage: warnings, the result line, tags.
    fn finish(&mut self, loaded: &Loaded) -> Result<String, BuildError> {
        self.print_warnings(loaded);
        let unused = self.args.unused();
        if !unused.is_empty() {
            self.out.line(&format!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            ));
        }
        let image = self
            .finished
            .last()
            .and_then(|f| f.image.clone())
            .ok_or_else(|| {
                BuildError::Invalid("No image was generated. Is your Dockerfile empty?".into())
            })?;
        self.out
            .line(&format!("Successfully built {}", format::short_id(&image)));
        for tag in &self.opts.tags {
            self.backend.tag(&image, tag)?;
            self.out.line(&format!(
                "Successfully tagged {}",
                format::tag_reference(tag)
            ));
        }
        if self.opts.quiet {
            self.out.sink.stream(&format!("{image}\n"));
        }
        Ok(image)
    }

    /// The parser's warnings, after the steps as dockerd prints them.
    fn print_warnings(&mut self, loaded: &Loaded) {
        let warnings = &loaded.dockerfile.warnings;
        for w in warnings {
            self.out.line(&format!("[WARNING]: {}", w.short));
        }
        if warnings
            .iter()
            .any(|w| w.short.starts_with("Empty continuation line"))
        {
            self.out.line(
                "[WARNING]: Empty continuation lines will become errors in a future release.",
            );
        }
    }

    fn print_step(&mut self, original: &str) {
        self.step += 1;
        let line = format!("Step {}/{} : {}", self.step, self.total, original);
        self.out.line(&line);
    }

    /// FROM: the base image (a finished stage, scratch or an image), then its ONBUILD triggers.
    fn begin_stage(
        &mut self,
        index: usize,
        graph: &StageGraph,
        meta_env: &EnvList,
        platform: Option<&str>,
    ) -> Result<StageState, BuildError> {
        let args = self.args.for_stage();
        let (image, config) = match &graph.stages[index].base {
            Source::Stage(i) => {
                let f = self
                    .finished_stage(StageRef::Index(*i))?
                    .ok_or_else(|| BuildError::Invalid(format!("stage {i} was not built")))?;
                (f.image, f.config)
            }
            Source::Scratch => (None, scratch_config(self.opts.platform.as_deref())),
            Source::Image(name) => {
                let platform = match platform {
                    Some(p) => Some(self.lexer.process_word(p, meta_env)?),
                    None => self.opts.platform.clone(),
                };
                let base = self
                    .backend
                    .image(name, platform.as_deref(), self.opts.pull)?;
                (Some(base.id), base.config)
            }
        };
        let mut st = StageState::begin(image, config, args);
        let triggers = st.run.on_build.take().unwrap_or_default();
        st.run.on_build = None;
        if !triggers.is_empty() {
            let s = if triggers.len() > 1 { "s" } else { "" };
            self.out
                .line(&format!("# Executing {} build trigger{s}", triggers.len()));
            for trigger in triggers {
                let ins = parse_trigger(&trigger)?;
                self.dispatch(&mut st, &ins, true)?;
            }
        }
        Ok(st)
    }

    /// Expands an instruction with the stage's environment and runs it.
    fn dispatch(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        expand: bool,
    ) -> Result<(), BuildError> {
        let mut ins = ins.clone();
        if expand {
            ins.expand(&self.lexer, &EnvList::new(st.expansion_env()))?;
        }
        match ins.kind {
            InstructionKind::Run(run) => self.dispatch_run(st, &run),
            InstructionKind::Workdir(path) => self.dispatch_workdir(st, &path),
            InstructionKind::Copy(c) => self.dispatch_copy(st, &c),
            InstructionKind::Add(a) => self.dispatch_add(st, &a),
            kind => {
                let comment = config::apply(st, kind, &mut self.out)?;
                self.commit_config(st, &comment)
            }
        }
    }
}

fn short(image: &Option<String>) -> &str {
    image.as_deref().map(format::short_id).unwrap_or("")
}

fn env_list(map: &BTreeMap<String, String>) -> Vec<String> {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The configuration of `FROM scratch`: no layers, the build's platform.
fn scratch_config(platform: Option<&str>) -> ImageConfig {
    let arch = platform
        .and_then(|p| p.split('/').nth(1))
        .map(str::to_string)
        .unwrap_or_else(|| go_arch().to_string());
    ImageConfig {
        architecture: arch,
        os: "linux".to_string(),
        rootfs: RootFs::default(),
        ..Default::default()
    }
}

/// This machine's architecture in Go's (and OCI's) words.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        other => other,
    }
}

/// The `LABEL` step dockerd appends for `--label` options: keys sorted, `"key"='value'` in
/// the step line, values taken as given (not expanded).
fn label_option_instruction(labels: &BTreeMap<String, String>) -> Instruction {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}='{v}'", crate::quote::go_quote(k)))
        .collect();
    Instruction {
        kind: InstructionKind::Label(
            labels
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                    no_delim: false,
                })
                .collect(),
        ),
        original: format!("LABEL {}", pairs.join(" ")),
        start_line: 0,
        end_line: 0,
    }
}

/// An ONBUILD trigger as an instruction (it must be exactly one, and not FROM). Triggers
/// are parsed with the default escape character whatever the child's Dockerfile uses, as
/// dockerd parses them.
fn parse_trigger(trigger: &str) -> Result<Instruction, BuildError> {
    let df = crate::parser::parse(trigger).map_err(|e| BuildError::Invalid(e.to_string()))?;
    if df.nodes.len() != 1 {
        return Err(BuildError::Invalid(
            "onbuild trigger should be a single expression".into(),
        ));
    }
    match crate::instructions::parse_node(&df.nodes[0])? {
        Parsed::Instruction(ins) => Ok(ins),
        Parsed::From(_) => Err(BuildError::Invalid(
            "FROM isn't allowed as an ONBUILD trigger".into(),
        )),
    }
}

#[cfg(test)]
mod tests;
