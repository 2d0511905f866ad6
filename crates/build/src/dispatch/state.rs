//! The state of the stage being built: its current image, the configuration the next
//! commit records (dockerd's `runConfig`), the arguments in scope and whether the cache is
//! still usable.

use crate::image_config::{History, ImageConfig, RunConfig};

use super::args::BuildArgs;
use super::format;

/// `PATH` a stage gets when its base image sets none (dockerd's default for Linux).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell of shell-form commands when no `SHELL` is set.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_string(), "-c".to_string()]
}

/// One stage in progress.
#[derive(Debug, Clone)]
pub struct StageState {
    /// The current image (`None` until a step commits on `FROM scratch`).
    pub image: Option<String>,
    /// The current image's configuration (history, layers, platform).
    pub image_config: ImageConfig,
    /// The configuration the next image gets.
    pub run: RunConfig,
    /// `MAINTAINER`.
    pub maintainer: String,
    /// Whether this stage set `CMD` (then a later `ENTRYPOINT` keeps it).
    pub cmd_set: bool,
    /// Arguments in scope.
    pub args: BuildArgs,
    /// Set at the first cache miss: every later step of the stage runs.
    pub cache_busted: bool,
}

impl StageState {
    /// A stage starting from `image` (`None`: scratch) with configuration `config`, as
    /// dockerd's `beginStage`: the base's container config, `PATH` defaulted, stdin closed.
    pub fn begin(image: Option<String>, config: ImageConfig, args: BuildArgs) -> Self {
        let mut run = config.config.clone().unwrap_or_default();
        let env = run.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.to_string());
        }
        run.open_stdin = false;
        run.stdin_once = false;
        run.image = image.clone().unwrap_or_default();
        StageState {
            image,
            image_config: config,
            run,
            maintainer: String::new(),
            cmd_set: false,
            args,
            cache_busted: false,
        }
    }

    /// The shell of shell-form commands.
    pub fn shell(&self) -> Vec<String> {
        self.run.shell.clone().unwrap_or_else(default_shell)
    }

    /// The environment instructions expand with: the config's `Env`, then the args in effect
    /// that it does not override.
    pub fn expansion_env(&self) -> Vec<String> {
        let env = self.run.env.clone().unwrap_or_default();
        let args = self.args.filter_allowed(&env);
        env.into_iter().chain(args).collect()
    }

    /// The step configuration of a config-only step: the current config with
    /// `Cmd = [shell..., "#(nop) ", comment]` (the two-element form of newer instructions).
    pub fn nop_config(&self, comment: &str) -> RunConfig {
        let mut cc = self.run.clone();
        let mut cmd = self.shell();
        cmd.push("#(nop) ".to_string());
        cmd.push(comment.to_string());
        cc.cmd = Some(cmd);
        cc
    }

    /// The step configuration of WORKDIR, COPY and ADD: `Cmd = [shell..., "#(nop) " +
    /// comment]` (the one-element form these older instructions kept).
    pub fn nop_string_config(&self, comment: &str) -> RunConfig {
        let mut cc = self.run.clone();
        let mut cmd = self.shell();
        cmd.push(format!("#(nop) {comment}"));
        cc.cmd = Some(cmd);
        cc
    }

    /// The configuration of the image a step makes (dockerd's `NewChildImage`): the current
    /// config, the step's config, the parent's layers and history plus this step's entry.
    pub fn child(&self, step_config: RunConfig, empty_layer: bool) -> ImageConfig {
        let created = format::now();
        let parent = &self.image_config;
        let mut history = parent.history.clone();
        history.push(History {
            created: created.clone(),
            author: self.maintainer.clone(),
            created_by: step_config.cmd.as_deref().unwrap_or(&[]).join(" "),
            comment: String::new(),
            empty_layer,
        });
        let extra = parent
            .extra
            .iter()
            .filter(|(k, _)| k.starts_with("os."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ImageConfig {
            // dockerd's BaseImgArch: an image without one (imported) is this machine's.
            architecture: if parent.architecture.is_empty() {
                super::go_arch().to_string()
            } else {
                parent.architecture.clone()
            },
            author: self.maintainer.clone(),
            comment: String::new(),
            config: Some(self.run.clone()),
            container: String::new(),
            container_config: Some(step_config),
            created,
            docker_version: String::new(),
            history,
            os: if parent.os.is_empty() {
                "linux".to_string()
            } else {
                parent.os.clone()
            },
            rootfs: parent.rootfs.clone(),
            variant: parent.variant.clone(),
            extra,
        }
    }

    /// Moves the stage on to `image`.
    pub fn advance(&mut self, image: String, config: ImageConfig) {
        self.run.image = image.clone();
        self.image = Some(image);
        self.image_config = config;
    }
}
