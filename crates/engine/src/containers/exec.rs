//! `docker exec`: exec instances (`POST /containers/{id}/exec`, `/exec/{id}/start|resize|json`).
//!
//! An exec instance is created as a config, kept in memory as dockerd keeps it (it does not survive a
//! daemon restart), and started once: the engine builds the OCI process from the container's own spec
//! (its env, user, cwd and capabilities, with the exec's overrides), and hands it to the container's shim,
//! which runs it in the container and streams its output back on the same connection, ending with its
//! exit code (`shim::protocol`, `exec`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::hub::Frame;
use super::record::{Container, Status};
use super::rootfs::Layout;
use super::user;
use crate::error::{Context, Error, Result};
use crate::Engine;

/// How long a finished exec instance stays inspectable (dockerd keeps them until their container goes or
/// a periodic clean-up; Berth forgets them after this).
const KEEP_FINISHED: Duration = Duration::from_secs(10 * 60);

/// `POST /containers/{id}/exec` body (Docker's ExecConfig).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    /// Attach stdin.
    pub attach_stdin: bool,
    /// Attach stdout.
    pub attach_stdout: bool,
    /// Attach stderr.
    pub attach_stderr: bool,
    /// `[rows, cols]`.
    pub console_size: Option<Vec<u16>>,
    /// Detach key sequence (docker-py spells it `detachKeys`; Go's JSON matches names in any case).
    #[serde(alias = "detachKeys")]
    pub detach_keys: Option<String>,
    /// Allocate a pty.
    pub tty: bool,
    /// Extra environment.
    pub env: Option<Vec<String>>,
    /// The command.
    pub cmd: Option<Vec<String>>,
    /// All capabilities.
    pub privileged: bool,
    /// `user[:group]`.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
}

/// `POST /exec/{id}/start` body.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartConfig {
    /// Start and return at once.
    pub detach: bool,
    /// Allocate a pty (overrides the create's when given; the docker CLI sends the same value).
    pub tty: Option<bool>,
    /// `[rows, cols]`.
    pub console_size: Option<Vec<u16>>,
}

/// One exec instance.
#[derive(Debug, Clone)]
pub struct ExecInstance {
    /// 64 hex digits.
    pub id: String,
    /// The container's ID.
    pub container_id: String,
    /// What was asked.
    pub config: ExecConfig,
    /// Started at least once.
    pub started: bool,
    /// The process runs.
    pub running: bool,
    /// Its exit code, once it has ended.
    pub exit_code: Option<i64>,
    /// Its host pid while it runs (0 before, kept after as dockerd does).
    pub pid: i64,
    finished_at: Option<Instant>,
}

/// The exec instances of the engine.
pub type Execs = Mutex<BTreeMap<String, ExecInstance>>;

/// What an attached exec start gets: the output frames (stream 1/2, or raw with a TTY) until the process
/// ends — its exit code is recorded before the channel closes — and its stdin when it was asked for.
pub struct ExecIo {
    /// Whether the process has a pty (raw stream).
    pub tty: bool,
    /// Output frames.
    pub output: mpsc::Receiver<Frame>,
    /// The process's stdin, when it was asked for.
    pub stdin: Option<super::Stdin>,
    /// The process could not be started: dockerd's message (the exit code, 126 or 127, is recorded).
    /// dockerd writes it into the output stream of an attached start.
    pub error: Option<String>,
}

impl Engine {
    fn execs_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ExecInstance>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `POST /containers/{id}/exec`.
    pub async fn create_exec(&self, name: &str, config: ExecConfig) -> Result<String> {
        let c = self.containers.resolve(name)?;
        check_running(&c)?;
        self.prime_cgroup_attach(&c);
        check_exec_config(&config)?;
        // dockerd makes the links' variables at create: a linked container that stopped fails the exec.
        self.link_env_of(&c)?;
        let id = super::create::random_id()?;
        let action = format!(
            "exec_create: {}",
            config.cmd.clone().unwrap_or_default().join(" ")
        );
        {
            let mut execs = self.execs_lock();
            execs.retain(|_, e| e.finished_at.is_none_or(|t| t.elapsed() < KEEP_FINISHED));
            execs.insert(
                id.clone(),
                ExecInstance {
                    id: id.clone(),
                    container_id: c.id.clone(),
                    config,
                    started: false,
                    running: false,
                    exit_code: None,
                    pid: 0,
                    finished_at: None,
                },
            );
        }
        self.exec_event(&action, &c, &id, None);
        Ok(id)
    }

    /// An exec instance by its full ID or a unique prefix.
    pub fn exec_instance(&self, id: &str) -> Result<ExecInstance> {
        let execs = self.execs_lock();
        if let Some(e) = execs.get(id) {
            return Ok(e.clone());
        }
        let mut found = execs
            .values()
            .filter(|e| !id.is_empty() && e.id.starts_with(id));
        match (found.next(), found.next()) {
            (Some(e), None) => Ok(e.clone()),
            _ => Err(Error::NotFound(format!("No such exec instance: {id}"))),
        }
    }

    /// The running exec IDs of a container (inspect's `ExecIDs`).
    pub(crate) fn running_execs(&self, container_id: &str) -> Vec<String> {
        self.execs_lock()
            .values()
            .filter(|e| e.container_id == container_id && e.running)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Forgets a removed container's exec instances.
    pub(crate) fn forget_execs(&self, container_id: &str) {
        self.execs_lock()
            .retain(|_, e| e.container_id != container_id);
    }

    /// What `POST /exec/{id}/start` checks before it answers: the instance exists and has not been
    /// started, and its container runs.
    pub fn check_exec_start(&self, exec_id: &str) -> Result<(ExecInstance, Container)> {
        let inst = self.exec_instance(exec_id)?;
        let c = self.containers.resolve(&inst.container_id)?;
        check_running(&c)?;
        start_conflict(&inst)?;
        Ok((inst, c))
    }

    /// `POST /exec/{id}/start`. Returns once the process runs (or could not be started: then the error is
    /// worded as dockerd words it, and the exec's exit code is 126 or 127).
    pub async fn start_exec(
        self: &Arc<Self>,
        exec_id: &str,
        start: ExecStartConfig,
    ) -> Result<ExecIo> {
        let (inst, c) = self.check_exec_start(exec_id)?;
        {
            // Checked again and marked under the lock: two starts of one instance cannot both pass.
            let mut execs = self.execs_lock();
            let e = execs
                .get_mut(&inst.id)
                .ok_or_else(|| Error::NotFound(format!("No such exec instance: {exec_id}")))?;
            start_conflict(e)?;
            e.started = true;
        }
        let cfg = &inst.config;
        let tty = start.tty.unwrap_or(cfg.tty);
        let size = start
            .console_size
            .clone()
            .or_else(|| cfg.console_size.clone())
            .filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0);
        let process = match self.exec_process(&c, cfg, tty, size.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                // dockerd resolves the user after the hijack too: the message goes into the stream.
                self.exec_finished(&inst.id, &c, 126);
                return Ok(ExecIo {
                    tty,
                    output: mpsc::channel(1).1,
                    stdin: None,
                    error: Some(e.to_string()),
                });
            }
        };
        let line = format!(
            "exec {} {} {}\n",
            inst.id,
            u8::from(cfg.attach_stdin),
            serde_json::to_string(&process).context("encoding the exec process")?
        );
        let sock = self.shim_socket(&c.id);
        // A shim that does not answer is ending with its container (an exit not recorded yet).
        let gone = |e: std::io::Error| {
            tracing::debug!(id = %c.id, error = %e, "exec: the shim did not answer");
            Error::Conflict(format!("container {} is not running", c.id))
        };
        let stream = UnixStream::connect(&sock).await.map_err(gone)?;
        let (read, mut write) = stream.into_split();
        write.write_all(line.as_bytes()).await.map_err(gone)?;
        let mut reader = BufReader::new(read);
        let mut reply = String::new();
        reader.read_line(&mut reply).await.map_err(gone)?;
        if reply.is_empty() {
            return Err(gone(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let reply = reply.trim_end();
        let pid = match reply.strip_prefix("ok ") {
            Some(pid) => pid.parse::<i64>().unwrap_or(0),
            None => {
                let why = reply.strip_prefix("err ").unwrap_or(reply);
                let lower = why.to_ascii_lowercase();
                let code = if lower.contains("executable file not found")
                    || lower.contains("no such file or directory")
                {
                    127
                } else {
                    126
                };
                self.exec_finished(&inst.id, &c, code);
                return Ok(ExecIo {
                    tty,
                    output: mpsc::channel(1).1,
                    stdin: None,
                    error: Some(format!(
                        "OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
                    )),
                });
            }
        };
        {
            let mut execs = self.execs_lock();
            if let Some(e) = execs.get_mut(&inst.id) {
                e.running = true;
                e.pid = pid;
            }
        }
        let action = format!(
            "exec_start: {}",
            cfg.cmd.clone().unwrap_or_default().join(" ")
        );
        self.exec_event(&action, &c, &inst.id, None);
        let (tx, rx) = mpsc::channel(64);
        let engine = Arc::clone(self);
        let exec_id = inst.id.clone();
        tokio::spawn(async move {
            let code = pump(&mut reader, &tx).await;
            engine.exec_finished(&exec_id, &c, code);
            drop(tx);
        });
        Ok(ExecIo {
            tty,
            output: rx,
            stdin: cfg.attach_stdin.then_some(super::Stdin::Exec(write)),
            error: None,
        })
    }

    /// `POST /exec/{id}/resize`.
    pub async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        let inst = self.exec_instance(exec_id)?;
        if !inst.running {
            return Err(Error::Conflict(format!(
                "Exec {} is not running, so it can not be resized.",
                inst.id
            )));
        }
        let sock = self.shim_socket(&inst.container_id);
        super::shim_client::ok_command(&sock, &format!("resize {rows} {cols} {}", inst.id))
            .await
            .map_err(|e| Error::InvalidParameter(format!("resize: {e}")))
    }

    /// Publishes `exec_detach`: the client typed the detach keys; the process goes on.
    pub fn exec_detached(&self, exec_id: &str) {
        let Ok(inst) = self.exec_instance(exec_id) else {
            return;
        };
        if let Ok(c) = self.containers.resolve(&inst.container_id) {
            self.exec_event("exec_detach", &c, &inst.id, None);
        }
    }

    fn exec_finished(&self, exec_id: &str, c: &Container, code: i64) {
        {
            let mut execs = self.execs_lock();
            if let Some(e) = execs.get_mut(exec_id) {
                e.running = false;
                e.exit_code = Some(code);
                e.finished_at = Some(Instant::now());
            }
        }
        self.exec_event("exec_die", c, exec_id, Some(code));
    }

    fn exec_event(&self, action: &str, c: &Container, exec_id: &str, code: Option<i64>) {
        let mut extra = BTreeMap::new();
        extra.insert("execID".to_owned(), exec_id.to_owned());
        if let Some(code) = code {
            extra.insert("exitCode".to_owned(), code.to_string());
        }
        self.container_event_with(action, c, extra);
    }

    /// The exec's OCI process: the container's, with the exec's command, env, user, cwd, terminal and
    /// (with `--privileged`) every capability the daemon holds.
    fn exec_process(
        &self,
        c: &Container,
        cfg: &ExecConfig,
        tty: bool,
        size: Option<&[u16]>,
    ) -> Result<Value> {
        let spec_path = self.state_dir(&c.id).join("config.json");
        let spec: Value = std::fs::read(&spec_path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .ok_or_else(|| {
                Error::System(format!(
                    "reading the container's spec {}",
                    spec_path.display()
                ))
            })?;
        let mut p = spec.get("process").cloned().unwrap_or_else(|| json!({}));
        p["args"] = json!(cfg.cmd.clone().unwrap_or_default());
        p["terminal"] = json!(tty);
        match size {
            Some(s) if tty => p["consoleSize"] = json!({"height": s[0], "width": s[1]}),
            _ => {
                if let Some(o) = p.as_object_mut() {
                    o.remove("consoleSize");
                }
            }
        }
        p["env"] = json!(exec_env(c, &self.link_env_of(c)?, cfg, tty));
        if let Some(w) = cfg.working_dir.as_deref().filter(|w| !w.is_empty()) {
            p["cwd"] = json!(w);
        }
        let user_spec = cfg
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| c.config.user.clone())
            .unwrap_or_default();
        let rootfs = Layout::new(&self.containers.dir(&c.id)).merged;
        let group_add = c.host_config.group_add.clone().unwrap_or_default();
        let u = user::resolve(&rootfs, &user_spec, &group_add)?;
        p["user"] = json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
        if cfg.privileged {
            let all = super::spec::host_capabilities();
            p["capabilities"] = json!({
                "bounding": all, "effective": all, "permitted": all,
            });
        }
        Ok(p)
    }
}

/// Docker's exec environment: the container's (PATH default, HOSTNAME, TERM with a TTY, its Env), with the
/// exec's variables replacing or adding to it. HOME comes from the exec user's passwd entry (the runtime).
/// The links' variables are made again for each exec, as dockerd does (a stopped linked container fails it).
/// Checks an exec's config on its own (a command, detach keys that parse), before it meets the container.
pub fn check_exec_config(config: &ExecConfig) -> Result<()> {
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(Error::InvalidParameter("No exec command specified".into()));
    }
    if let Some(k) = config.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        stdio::detach::parse_keys(k)
            .map_err(|_| Error::InvalidParameter(format!("Invalid escape keys ({k}) provided")))?;
    }
    Ok(())
}

fn exec_env(c: &Container, link_env: &[String], cfg: &ExecConfig, tty: bool) -> Vec<String> {
    let c = super::links::with_link_env(c, link_env.to_vec());
    let mut env = super::spec::container_env(&c, tty);
    super::spec::replace_or_append_env(&mut env, cfg.env.iter().flatten());
    env
}

/// An instance can be started once.
fn start_conflict(e: &ExecInstance) -> Result<()> {
    if e.running {
        return Err(Error::Conflict(format!(
            "Error: Exec command {} is already running",
            e.id
        )));
    }
    if e.started {
        return Err(Error::Conflict(format!(
            "Error: Exec command {} has already run",
            e.id
        )));
    }
    Ok(())
}

fn check_running(c: &Container) -> Result<()> {
    match c.state.status {
        Status::Running => Ok(()),
        Status::Paused => Err(Error::Conflict(format!(
            "container {} is paused, unpause the container before exec",
            c.id
        ))),
        Status::Restarting => Err(Error::Conflict(format!(
            "Container {} is restarting, wait until the container is running",
            c.id
        ))),
        _ => Err(Error::Conflict(format!(
            "container {} is not running",
            c.id
        ))),
    }
}

/// Copies the shim's frames to `tx` (dropping them if nobody listens) until the exit frame; returns the
/// exit code (255 if the shim went away first).
async fn pump(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    tx: &mpsc::Sender<Frame>,
) -> i64 {
    loop {
        let Ok((stream, data)) = super::shim_client::read_frame(reader).await else {
            return 255;
        };
        if stream == shim::protocol::CONTROL {
            let text = String::from_utf8_lossy(&data);
            return text
                .strip_prefix("exit ")
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(255);
        }
        // The session's reader may have gone (the client hung up): nothing more to deliver then.
        let _ = tx
            .send(Frame {
                stream,
                data: Bytes::from(data),
            })
            .await;
    }
}
