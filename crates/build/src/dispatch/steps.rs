//! The cache probe and commit every step goes through, and the steps that need a container:
//! RUN (run a command) and WORKDIR (create the directory).

use crate::backend::{Feature, RunStep, StepContainer};
use crate::image_config::RunConfig;
use crate::instructions::{Run, RunNetwork};

use super::state::StageState;
use super::{cache, config, format, BuildError, Builder};

impl Builder<'_> {
    /// Looks for a cached image of the step `step_config` on the stage's current image; on a
    /// hit prints ` ---> Using cache` and moves the stage to it. The first miss disables the
    /// cache for the rest of the stage. With `--cache-from`, a local child counts only when it
    /// is on a source image's line, and a source image's history can supply the step.
    pub(super) fn probe(
        &mut self,
        st: &mut StageState,
        step_config: &RunConfig,
    ) -> Result<bool, BuildError> {
        if self.opts.no_cache || st.cache_busted {
            return Ok(false);
        }
        let children = self.backend.children(st.image.as_deref())?;
        let sources = self.cache_sources()?;
        let local = cache::pick(children, step_config).filter(|hit| {
            sources.is_empty()
                || sources
                    .iter()
                    .any(|s| cache::is_valid_parent(&s.config, &hit.config) || s.id == hit.id)
        });
        let hit = match local {
            Some(hit) => Some((hit.id, hit.config)),
            None => match cache::from_sources(&sources, &st.image_config, step_config) {
                Some(cache::FromSource::Whole(image)) => {
                    self.backend.adopt(st.image.as_deref(), &image.id)?;
                    Some((image.id, image.config))
                }
                Some(cache::FromSource::Restore { source, config }) => {
                    let made = self
                        .backend
                        .restore(st.image.as_deref(), &config, &source)?;
                    Some((made.image, made.config))
                }
                None => None,
            },
        };
        match hit {
            Some((id, config)) => {
                self.out.line(" ---> Using cache");
                st.advance(id, config);
                Ok(true)
            }
            None => {
                st.cache_busted = true;
                Ok(false)
            }
        }
    }

    /// Refuses the build when the engine lacks `feature`.
    pub(super) fn require(&self, feature: Feature) -> Result<(), BuildError> {
        if self.backend.supports(feature) {
            Ok(())
        } else {
            Err(BuildError::Unsupported(feature))
        }
    }

    /// The `--cache-from` images, looked up once; names the engine does not have are skipped,
    /// as dockerd skips them.
    fn cache_sources(&mut self) -> Result<Vec<crate::backend::Base>, BuildError> {
        if self.cache_from.is_none() {
            if !self.opts.cache_from.is_empty() {
                self.require(Feature::CacheFrom)?;
            }
            let mut found = Vec::new();
            for name in &self.opts.cache_from {
                if let Some(base) = self.backend.find_image(name)? {
                    found.push(base);
                }
            }
            self.cache_from = Some(found);
        }
        Ok(self.cache_from.clone().unwrap_or_default())
    }

    /// Commits a step made in `step` (or a config-only step when `None`) and moves the
    /// stage to the new image.
    fn commit(
        &mut self,
        st: &mut StageState,
        step: Option<&StepContainer>,
        step_config: RunConfig,
    ) -> Result<(), BuildError> {
        let child = st.child(step_config, step.is_none());
        let parent = st.image.clone();
        let committed = self.backend.commit(parent.as_deref(), step, &child)?;
        st.advance(committed.image, committed.config);
        Ok(())
    }

    fn removed(&mut self, step: &StepContainer) -> Result<(), BuildError> {
        self.backend.remove(step)?;
        self.out.line(&format!(
            "Removing intermediate container {}",
            format::short_id(&step.id)
        ));
        Ok(())
    }

    /// A config-only step: dockerd runs it as a container that is committed at once, so the
    /// output shows one (the engine makes the ID up; nothing runs).
    pub(super) fn commit_config(
        &mut self,
        st: &mut StageState,
        comment: &str,
    ) -> Result<(), BuildError> {
        let step_config = st.nop_config(comment);
        if self.probe(st, &step_config)? {
            return Ok(());
        }
        self.commit(st, None, step_config)?;
        let container = st.image_config.container.clone();
        self.out.line(&format!(
            " ---> Running in {}",
            format::short_id(&container)
        ));
        if self.opts.rm || self.opts.force_rm {
            self.out.line(&format!(
                "Removing intermediate container {}",
                format::short_id(&container)
            ));
        }
        Ok(())
    }

    /// RUN: the cache key is the command behind `|N K=v...` for the build arguments in effect;
    /// the container runs with them in its environment, without the image's entrypoint and
    /// healthcheck.
    pub(super) fn dispatch_run(
        &mut self,
        st: &mut StageState,
        run: &Run,
    ) -> Result<(), BuildError> {
        if !run.mounts.is_empty() {
            self.require(Feature::RunMounts)?;
        }
        let mounts = self.run_mounts(st, &run.mounts)?;
        let argv = config::command(&run.command, &st.shell())?;
        let env = st.run.env.clone().unwrap_or_default();
        let build_env = st.args.filter_allowed(&env);
        let mut key_cmd = mounts.key;
        key_cmd.extend(argv.iter().cloned());
        if !build_env.is_empty() {
            let mut prefixed = st.args.run_prefix(&build_env);
            prefixed.extend(key_cmd);
            key_cmd = prefixed;
        }
        let mut step_config = st.run.clone();
        step_config.cmd = Some(key_cmd.clone());
        if !key_cmd.is_empty() {
            step_config.entrypoint = None;
        }
        if self.probe(st, &step_config)? {
            return Ok(());
        }

        let mut container = st.run.clone();
        container.cmd = Some(argv.clone());
        container.env = Some(env.into_iter().chain(build_env).collect());
        container.entrypoint = None;
        container.healthcheck = None;
        let mut host = self.opts.host.clone();
        match run.network {
            Some(RunNetwork::None) => host.network_mode = "none".into(),
            Some(RunNetwork::Host) => host.network_mode = "host".into(),
            Some(RunNetwork::Default) | None => {}
        }
        let step = self.backend.create(
            st.image.as_deref(),
            &RunStep {
                config: container,
                host,
                mounts: mounts.mounts,
            },
        )?;
        self.out
            .line(&format!(" ---> Running in {}", format::short_id(&step.id)));
        let started = self.backend.start(&step, &mut self.out);
        self.out.flush_pending();
        let code = match started {
            Ok(code) => code,
            Err(e) => {
                if self.opts.force_rm {
                    self.removed(&step)?;
                }
                return Err(e.into());
            }
        };
        if code != 0 {
            if self.opts.force_rm {
                self.removed(&step)?;
            }
            return Err(BuildError::RunFailed {
                command: argv.join(" "),
                code,
            });
        }
        self.commit(st, Some(&step), step_config)?;
        if self.opts.rm || self.opts.force_rm {
            self.removed(&step)?;
        }
        Ok(())
    }

    /// WORKDIR: relative to the previous one; the directory is made in a committed container.
    pub(super) fn dispatch_workdir(
        &mut self,
        st: &mut StageState,
        path: &str,
    ) -> Result<(), BuildError> {
        if path.is_empty() {
            return Err(BuildError::Invalid("cannot normalize nothing".into()));
        }
        let joined = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{}/{path}", st.run.working_dir)
        };
        st.run.working_dir = clean_path(&joined);
        let step_config = st.nop_string_config(&format!("WORKDIR {}", st.run.working_dir));
        if self.probe(st, &step_config)? {
            return Ok(());
        }
        let step = self.backend.create(
            st.image.as_deref(),
            &RunStep {
                config: step_config.clone(),
                host: self.opts.host.clone(),
                mounts: Vec::new(),
            },
        )?;
        self.out
            .line(&format!(" ---> Running in {}", format::short_id(&step.id)));
        let made = self.backend.mkdir(&step, &st.run.working_dir);
        if let Err(e) = made {
            if self.opts.force_rm {
                self.removed(&step)?;
            }
            return Err(e.into());
        }
        self.commit(st, Some(&step), step_config)?;
        if self.opts.rm || self.opts.force_rm {
            self.removed(&step)?;
        }
        Ok(())
    }
}

/// Go's `path.Clean` of an absolute path: `.` and empty parts dropped, `..` resolved, no
/// trailing slash.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}
