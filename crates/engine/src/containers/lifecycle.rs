//! Start, stop, kill, wait, restart, rename and remove; the exit monitor; and recovery after a daemon restart
//! (live restore: running containers keep running under their shims and are found again).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::etc::EtcPaths;
use super::hub::Hub;
use super::record::{Container, Status};
use super::rootfs::Layout;
use super::{shim_client, spec, user, StateChange};
use crate::crash::crash_point;
use crate::error::{Context, Error, Result};
use crate::events::Event;
use crate::Engine;

/// The mark in a container's directory of a removal that takes its anonymous volumes (`rm -v`).
const REMOVE_VOLUMES: &str = "remove-volumes";

/// How long a `kill` (SIGKILL) waits for the exit before it reports a failure (dockerd waits as long).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What `POST /containers/{id}/wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Returns at once if the container is not running, else at its exit.
    NotRunning,
    /// The next exit, even if it is not running now.
    NextExit,
    /// Its removal.
    Removed,
}

impl WaitCondition {
    /// Parses the `condition` parameter.
    pub fn parse(s: Option<&str>) -> Result<WaitCondition> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::InvalidParameter(format!(
                "invalid condition: {other:?}"
            ))),
        }
    }
}

impl Engine {
    /// The exec-root directory of a container: its bundle, shim socket and exit record.
    pub(crate) fn state_dir(&self, id: &str) -> PathBuf {
        self.config.exec_root.join("containers").join(id)
    }

    /// The shim's socket: a short path (`EXEC_ROOT/s/<16 hex>.sock`), since unix socket paths are limited to
    /// 107 bytes and container IDs alone are 64.
    pub(crate) fn shim_socket(&self, id: &str) -> PathBuf {
        self.config
            .exec_root
            .join("s")
            .join(format!("{}.sock", &id[..16.min(id.len())]))
    }

    /// The binary of an external runtime by name; `None` for the built-in one (`berth`, or no name).
    pub(crate) fn runtime_binary(&self, name: &str) -> Result<Option<PathBuf>> {
        if name.is_empty() || name == crate::BUILTIN_RUNTIME {
            return Ok(None);
        }
        match self.config.runtimes.get(name) {
            Some(p) => Ok(Some(p.clone())),
            None => Err(Error::InvalidParameter(format!(
                "unknown or invalid runtime name: {name}"
            ))),
        }
    }

    /// Warms the kernel's cgroup-move lock for a process about to be moved into `c`'s cgroup (its init,
    /// or an exec): see [`runtime::cgroups::prime_attach`]. Skipped where nothing is moved (the built-in
    /// runtime on cgroup v2) and while a priming is still under way.
    pub(crate) fn prime_cgroup_attach(&self, c: &Container) {
        static UNDER_WAY: AtomicBool = AtomicBool::new(false);
        let builtin = self
            .runtime_binary(c.host_config.runtime.as_deref().unwrap_or(""))
            .is_ok_and(|b| b.is_none());
        if (builtin && self.host.cgroup_version == "2") || UNDER_WAY.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::task::spawn_blocking(|| {
            runtime::cgroups::prime_attach();
            UNDER_WAY.store(false, Ordering::Release);
        });
    }

    /// The running container whose `kind` namespace ("network", "PID", "IPC") `c` joins, when its `mode`
    /// is `container:<name|id>`.
    pub(crate) fn namespace_donor(
        &self,
        c: &Container,
        mode: Option<&str>,
        kind: &str,
    ) -> Result<Option<Container>> {
        let Some(other) = mode.and_then(|m| m.strip_prefix("container:")) else {
            return Ok(None);
        };
        let o = self.containers.resolve(other)?;
        if o.id == c.id {
            return Err(Error::InvalidParameter(format!(
                "cannot join own {} namespace",
                kind.to_ascii_lowercase()
            )));
        }
        if !matches!(o.state.status, Status::Running | Status::Paused) || o.state.pid <= 0 {
            let what = if kind == "network" {
                "network namespace"
            } else {
                kind
            };
            return Err(Error::Conflict(format!(
                "cannot join {what} of a non running container: {}",
                o.id
            )));
        }
        Ok(Some(o))
    }

    /// The namespaces `c` joins instead of making its own (`--network/--pid/--ipc container:X`).
    fn joined_namespaces(&self, c: &Container) -> Result<spec::Joined> {
        let h = &c.host_config;
        let ns =
            |o: &Container, name: &str| PathBuf::from(format!("/proc/{}/ns/{name}", o.state.pid));
        let net = self.namespace_donor(c, h.network_mode.as_deref(), "network")?;
        let pid = self.namespace_donor(c, h.pid_mode.as_deref(), "PID")?;
        let ipc = self.namespace_donor(c, h.ipc_mode.as_deref(), "IPC")?;
        if let Some(o) = &ipc {
            if o.host_config.ipc_mode.as_deref() != Some("shareable") {
                return Err(Error::Conflict(
                    "non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
                        .into(),
                ));
            }
        }
        Ok(spec::Joined {
            net: net.as_ref().map(|o| ns(o, "net")),
            pid: pid.as_ref().map(|o| ns(o, "pid")),
            // POSIX shared memory lives in /dev/shm: the donor's (mounted on the host) is bound in, as
            // dockerd does; a shareable container binds its own.
            shm: match &ipc {
                Some(o) => Some(Layout::new(&self.containers.dir(&o.id)).shm),
                None if h.ipc_mode.as_deref() == Some("shareable") => {
                    Some(Layout::new(&self.containers.dir(&c.id)).shm)
                }
                None => None,
            },
            ipc: ipc.as_ref().map(|o| ns(o, "ipc")),
            // A remapped container that shares a donor's namespace joins the donor's user namespace too,
            // as dockerd does.
            user: match self.container_id_map(h) {
                Some(_) => [&net, &ipc, &pid]
                    .into_iter()
                    .flatten()
                    .next()
                    .map(|o| ns(o, "user")),
                None => None,
            },
            id_map: self.container_id_map(h).cloned(),
        })
    }

    /// The output hub of a container, made on first use (an attach may come before the start).
    pub(crate) fn hub(&self, id: &str) -> Arc<Hub> {
        let mut hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(hubs.entry(id.to_owned()).or_default())
    }

    /// Forgets the container's hub; `close` also ends its subscribers (on removal). After an exit the hub is
    /// only forgotten: the shim pump closes it once the last output has been published.
    fn drop_hub(&self, id: &str, close: bool) {
        let mut hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hubs.remove(id) {
            if close {
                h.close();
            }
        }
    }

    /// What an attach needs: the container's ID, whether it has a TTY, whether it takes stdin, and its hub
    /// (subscribe before answering, so no output falls between).
    pub async fn attach_target(&self, name: &str) -> Result<AttachTarget> {
        let c = self.containers.resolve(name)?;
        let hub = self.hub(&c.id);
        let stdin = if c.config.open_stdin == Some(true) {
            hub.stdin().await.map(super::Stdin::Container)
        } else {
            None
        };
        Ok(AttachTarget {
            tty: c.config.tty == Some(true),
            stdin_once: c.config.stdin_once == Some(true),
            subscription: hub.subscribe(),
            stdin,
            container: c.clone(),
        })
    }

    /// A container recorded as created or exited whose shim still answers (the daemon died between the
    /// shim's start and the record of it): recorded as running with the shim's pid if the shim executed its
    /// process; if its init still waits for `start` (the daemon died before sending it, perhaps before its
    /// network was set up), the start is undone: the init killed, so that its shim removes its cgroup and
    /// ends.
    async fn adopt_started(&self, c: &Container) -> Option<Container> {
        let sock = self.shim_socket(&c.id);
        if !sock.exists() || tokio::net::UnixStream::connect(&sock).await.is_err() {
            return None;
        }
        let state_dir = self.state_dir(&c.id);
        if !state_dir.join(shim::protocol::STARTED_FILE).exists() {
            tracing::info!(id = %c.id, "undoing a start that did not reach its process");
            end_shim(&sock).await;
            return None;
        }
        let pid: i64 =
            std::fs::read_to_string(self.state_dir(&c.id).join(shim::protocol::PID_FILE))
                .ok()?
                .trim()
                .parse()
                .ok()?;
        tracing::info!(id = %c.id, pid, "found the shim of a start that was not recorded");
        let now = image::timefmt::rfc3339_nano(std::time::SystemTime::now());
        self.containers
            .update(&c.id, |c| {
                c.state.status = Status::Running;
                c.state.pid = pid;
                if c.state.started_at.is_empty() || c.state.started_at.starts_with("0001") {
                    c.state.started_at = now.clone();
                }
            })
            .ok()
    }

    /// Publishes the `attach` event.
    pub fn attach_event(&self, c: &Container) {
        self.container_event("attach", c);
    }

    /// Publishes the `detach` event (the client typed the detach keys).
    pub fn detach_event(&self, c: &Container) {
        self.container_event("detach", c);
    }

    /// `POST /containers/{id}/start`.
    pub async fn start_container(self: &Arc<Self>, name: &str) -> Result<()> {
        let c = self.containers.resolve(name)?;
        match c.state.status {
            Status::Running | Status::Paused | Status::Restarting => {
                return Err(Error::NotModified)
            }
            Status::Removing | Status::Dead => {
                return Err(Error::Conflict(format!(
                    "cannot start container {}: it is being removed",
                    c.short_id()
                )))
            }
            Status::Created | Status::Exited => {}
        }
        self.reset_restarts(&c.id)?;
        {
            let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
            if !starting.insert(c.id.clone()) {
                return Err(Error::NotModified);
            }
        }
        let result = self.start_inner(&c).await;
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&c.id);
        if result.is_err() && c.host_config.auto_remove == Some(true) {
            // As dockerd: a container started with --rm that cannot start is removed (the docker CLI waits
            // for that removal before it exits).
            if let Ok(c) = self.containers.resolve(&c.id) {
                if let Err(e) = self.remove_stopped(&c, true).await {
                    tracing::warn!(id = %c.id, error = %e, "removing a --rm container that failed to start");
                }
            }
        }
        result
    }

    /// Starts a created or exited container, step by step; each step undoes what the start did so far when
    /// it fails, as its doc says.
    pub(crate) async fn start_inner(self: &Arc<Self>, c: &Container) -> Result<()> {
        let t0 = std::time::Instant::now();
        self.prime_cgroup_attach(c);
        let id = c.id.clone();
        // The log driver's settings first: an option that cannot work (a tag template, a regex) fails
        // the start before anything is mounted.
        let log = super::logdriver::shim_driver(c, &self.containers.dir(&id))?;
        let bundle = self.prepare_bundle(c).await?;
        crash_point("start:after-mount");
        let t_prepared = t0.elapsed();
        let pid = self.spawn_shim(c, &bundle, &log).await?;
        crash_point("start:after-shim");
        let t_created = t0.elapsed();
        let sock = self.shim_socket(&id);
        self.start_network(c, pid, &sock).await?;
        crash_point("start:after-network");
        self.attach_and_exec(c, &sock).await?;
        crash_point("start:after-exec");
        let t_started = t0.elapsed();
        let c = match self.record_started(&id, pid) {
            Ok(c) => c,
            Err(e) => {
                self.undo_start(&id, &sock).await;
                return Err(e);
            }
        };
        crash_point("start:after-record");
        tracing::debug!(
            id = &id[..12],
            prepare_us = t_prepared.as_micros() as u64,
            shim_ready_us = (t_created - t_prepared).as_micros() as u64,
            attach_start_us = (t_started - t_created).as_micros() as u64,
            record_us = (t0.elapsed() - t_started).as_micros() as u64,
            "container started"
        );
        self.init_health(&id);
        self.container_event("start", &c);
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.monitor(id, sock).await });
        Ok(())
    }

    /// Step 1: the rootfs and volumes mounted and the OCI bundle written (off the async threads); returns the
    /// bundle directory. On failure [`Engine::prepare`] has unmounted what it mounted.
    async fn prepare_bundle(self: &Arc<Self>, c: &Container) -> Result<PathBuf> {
        let engine = Arc::clone(self);
        let c = c.clone();
        let dir = self.containers.dir(&c.id);
        let state_dir = self.state_dir(&c.id);
        tokio::task::spawn_blocking(move || engine.prepare(&c, &dir, &state_dir)).await?
    }

    /// The `berth shim` command for the container: its bundle, state, socket, log and runtime.
    fn shim_command(
        &self,
        c: &Container,
        bundle: &Path,
        log: &shim::LogDriver,
    ) -> Result<tokio::process::Command> {
        let id = &c.id;
        let log = serde_json::to_string(log)
            .map_err(|e| Error::System(format!("encoding the log driver's settings: {e}")))?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("shim")
            .arg("--id")
            .arg(id)
            .arg("--bundle")
            .arg(bundle)
            .arg("--state-dir")
            .arg(self.state_dir(id))
            .arg("--socket")
            .arg(self.shim_socket(id))
            .arg("--log-driver")
            .arg(log)
            .arg("--seccomp-cache")
            .arg(self.config.exec_root.join("seccomp"));
        if c.config.open_stdin == Some(true) {
            cmd.arg("--stdin");
        }
        if let Some(binary) = self.runtime_binary(c.host_config.runtime.as_deref().unwrap_or(""))? {
            cmd.arg("--runtime").arg(binary);
        }
        Ok(cmd)
    }

    /// Step 2: the shim started and the container created, its init waiting before exec; returns the init's
    /// pid. When the shim reports a failure, the rootfs is unmounted and the error recorded. (A shim that
    /// cannot be spawned at all leaves the mounts to the next start or removal.)
    async fn spawn_shim(&self, c: &Container, bundle: &Path, log: &shim::LogDriver) -> Result<i64> {
        let id = &c.id;
        let mut cmd = self.shim_command(c, bundle, log)?;
        let shim_log = std::fs::File::create(self.state_dir(id).join("shim.log"))
            .context("creating the shim's log")?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(shim_log);
        let mut child = cmd.spawn().context("starting the shim")?;
        let ready = match child.stdout.take() {
            Some(out) => {
                use tokio::io::AsyncBufReadExt;
                let mut line = String::new();
                let _ = tokio::io::BufReader::new(out).read_line(&mut line).await;
                line
            }
            None => String::new(),
        };
        // The shim detaches into its own session; reap it whenever it ends while we live.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        match ready.trim_end().split_once(' ') {
            Some(("ok", pid)) => Ok(pid.parse().unwrap_or(0)),
            _ => {
                let msg = ready
                    .trim_end()
                    .strip_prefix("err ")
                    .unwrap_or("the shim failed to start")
                    .to_owned();
                self.unmount_quietly(id).await;
                let _ = self.containers.update(id, |c| c.state.error = msg.clone());
                Err(Error::System(msg))
            }
        }
    }

    /// Step 3: the container's network, set up now that its namespaces exist and before its process runs.
    /// On failure the shim is killed, the rootfs unmounted and the error recorded with exit code 128.
    async fn start_network(self: &Arc<Self>, c: &Container, pid: i64, sock: &Path) -> Result<()> {
        let Err(e) = self.net_start(c, pid).await else {
            return Ok(());
        };
        let _ = shim_client::ok_command(sock, &format!("kill {}", libc::SIGKILL)).await;
        let _ = shim_client::wait(sock).await;
        self.unmount_quietly(&c.id).await;
        let msg = e.to_string();
        let _ = self.containers.update(&c.id, |c| {
            c.state.exit_code = 128;
            c.state.error = msg.clone();
        });
        Err(e)
    }

    /// Step 4: the shim's output joined to the container's hub, then the process executed. If the attach
    /// fails the network is taken down (the shim is left to the next start or removal); if the exec fails
    /// the container stays created with Docker's exit code for it (126: not executable, 127: not found),
    /// its network down, its rootfs unmounted and its hub forgotten.
    async fn attach_and_exec(self: &Arc<Self>, c: &Container, sock: &Path) -> Result<()> {
        let id = &c.id;
        let stdin = c.config.open_stdin == Some(true);
        if let Err(e) = shim_client::attach(sock, self.hub(id), stdin).await {
            self.net_stop(id).await;
            return Err(e);
        }
        let Err(msg) = shim_client::ok_command(sock, "start").await else {
            return Ok(());
        };
        self.net_stop(id).await;
        // The process could not be executed: the init exits 126/127; Docker leaves the container
        // "created" with that exit code and the error.
        let code = if msg.contains("permission denied") {
            126
        } else {
            127
        };
        let _ = shim_client::wait(sock).await;
        self.unmount_quietly(id).await;
        self.drop_hub(id, false);
        let _ = self.containers.update(id, |c| {
            c.state.exit_code = code;
            c.state.error = msg.clone();
        });
        Err(Error::InvalidParameter(msg))
    }

    /// A start whose record could not be written (a full disk) is undone rather than half-applied: the
    /// process killed and everything of its run released, so that the container is what its record says.
    async fn undo_start(self: &Arc<Self>, id: &str, sock: &Path) {
        let _ = shim_client::ok_command(sock, &format!("kill {}", libc::SIGKILL)).await;
        let _ = tokio::time::timeout(KILL_WAIT, shim_client::wait(sock)).await;
        self.net_stop(id).await;
        self.unmount_quietly(id).await;
        self.drop_hub(id, false);
        remove_state_dir(&self.state_dir(id));
    }

    /// Step 5: the container recorded as running and the change announced.
    fn record_started(&self, id: &str, pid: i64) -> Result<Container> {
        let now = image::timefmt::rfc3339_nano(std::time::SystemTime::now());
        // Not synced: if this write is lost in a crash, recovery finds the shim alive and records the start
        // again (see `recover`).
        let c = self
            .containers
            .update_unsynced(id, |c| {
                c.state.status = Status::Running;
                c.state.pid = pid;
                c.state.started_at = now.clone();
                c.state.error.clear();
                c.state.oom_killed = false;
            })
            .map_err(|e| {
                Error::System(format!(
                    "cannot start container {id}: recording its start: {e}"
                ))
            })?;
        let _ = self.states.send(StateChange::Started(id.to_owned()));
        Ok(c)
    }

    /// Mounts the rootfs, writes the /etc files and the OCI bundle; returns the bundle directory.
    fn prepare(&self, c: &Container, dir: &Path, state_dir: &Path) -> Result<PathBuf> {
        let img = self.images.get(&c.image_id)?;
        let layers = self.images.layer_dirs(&img);
        let layout = Layout::new(dir);
        let id_map = self.container_id_map(&c.host_config).cloned();
        let remapped_root = id_map.as_ref().map(archive::IdMap::root);
        if let Some(root) = remapped_root {
            layout.give_to_remapped_root(dir, root)?;
        }
        layout.mount(&layers)?;
        let result = (|| {
            // Before anything is written: a link to a container that is not running fails the start.
            self.check_link_networks(c)?;
            let with_links = super::links::with_link_env(c, self.link_env_of(c)?);
            let c = &*with_links;
            // A build step's secret variables reach the spec only (see `builds::Running`).
            let with_secrets = self.builds.with_secret_env(c);
            let c = &*with_secrets;
            let etc = EtcPaths::new(dir);
            let hostname = c.config.hostname.clone().unwrap_or_default();
            etc.write(&hostname, &c.host_config)?;
            if let Some(root) = remapped_root {
                // Root in the container may edit them, as without remapping.
                for f in [&etc.hostname, &etc.hosts, &etc.resolv_conf] {
                    super::rootfs::chown(f, root)?;
                }
            }
            let group_add = c.host_config.group_add.clone().unwrap_or_default();
            let user = user::resolve(
                &layout.merged,
                c.config.user.as_deref().unwrap_or(""),
                &group_add,
            )?;
            if let Some(w) = c.config.working_dir.as_deref().filter(|w| !w.is_empty()) {
                // The user's ids as the host stores them.
                let (uid, gid) = match &id_map {
                    Some(m) => (
                        m.uid_to_host(user.uid.into()).unwrap_or(user.uid),
                        m.gid_to_host(user.gid.into()).unwrap_or(user.gid),
                    ),
                    None => (user.uid, user.gid),
                };
                super::rootfs::ensure_dir_in(&layout.merged, w, uid, gid)?;
            }
            super::rootfs::ensure_dockerenv(&layout.merged, remapped_root)?;
            let files = spec::EtcFiles {
                hostname: &etc.hostname,
                hosts: &etc.hosts,
                resolv_conf: &etc.resolv_conf,
            };
            let mut user_mounts = super::mounts::parse(&c.host_config, c.read_only_non_recursive)?;
            // Binds brought by `--volumes-from` are in the record only.
            let inherited: Vec<_> = c
                .mounts
                .iter()
                .filter(|p| p.typ == Some(bollard_stubs::models::MountPointTypeEnum::BIND))
                .filter(|p| {
                    !user_mounts
                        .iter()
                        .any(|m| Some(&m.destination) == p.destination.as_ref())
                })
                .map(super::mounts::UserMount::inherited_bind)
                .collect();
            user_mounts.extend(inherited);
            user_mounts.extend(self.mount_container_volumes(c)?);
            // Shallower destinations first, so that /data is mounted before /data/sub (as dockerd sorts).
            user_mounts.sort_by_key(|m| m.destination.trim_end_matches('/').matches('/').count());
            let joined = self.joined_namespaces(c)?;
            if c.host_config.ipc_mode.as_deref() == Some("shareable") {
                layout.mount_shm(c.host_config.shm_size.unwrap_or(64 << 20))?;
                if let Some(root) = remapped_root {
                    super::rootfs::chown(&layout.shm, root)?;
                }
            }
            let mut spec = spec::build(
                c,
                &layout.merged,
                &user,
                &files,
                &user_mounts,
                &joined,
                self.host.go_arch,
            )?;
            if c.host_config.init == Some(true) {
                // A remapped container's init must reach the file it binds: the exec root is the
                // daemon's alone, the (remapped) data root is searchable by the remapped root's group.
                let init_root = match id_map {
                    Some(_) => &self.config.data_root,
                    None => &self.config.exec_root,
                };
                let init = super::init::install(init_root)?;
                super::init::apply(&mut spec, &init)?;
            }
            remove_state_dir(state_dir);
            std::fs::create_dir_all(state_dir)
                .with_context(|| format!("creating {}", state_dir.display()))?;
            let data = serde_json::to_vec_pretty(&spec).context("encoding the OCI spec")?;
            std::fs::write(state_dir.join("config.json"), data).context("writing the OCI spec")?;
            Ok(state_dir.to_owned())
        })();
        if result.is_err() {
            if let Err(e) = layout.unmount() {
                tracing::warn!(id = %c.id, error = %e, "unmounting the rootfs of a container that failed to start");
            }
            self.unmount_container_volumes(&c.id);
        }
        result
    }

    async fn unmount_quietly(&self, id: &str) {
        let layout = Layout::new(&self.containers.dir(id));
        match self.teardown_blocking(move || layout.unmount()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(id = %id, error = %e, "unmounting the container's rootfs"),
            Err(e) => tracing::warn!(id = %id, error = %e, "unmounting the container's rootfs"),
        }
        self.unmount_container_volumes(id);
    }

    /// Waits for the container's exit through its shim and records it.
    pub(crate) async fn monitor(self: Arc<Self>, id: String, sock: PathBuf) {
        let (code, oom) = match shim_client::wait(&sock).await {
            Ok(r) => r,
            Err(_) => self.exit_record(&id).unwrap_or((255, false)),
        };
        self.on_exit(&id, code, oom).await;
    }

    fn exit_record(&self, id: &str) -> Option<(i64, bool)> {
        let data = std::fs::read(self.state_dir(id).join(shim::protocol::EXIT_FILE)).ok()?;
        let r: shim::protocol::ExitRecord = serde_json::from_slice(&data).ok()?;
        Some((i64::from(r.exit_code), r.oom_killed))
    }

    async fn on_exit(self: &Arc<Self>, id: &str, code: i64, oom: bool) {
        self.stop_health(id);
        let now = image::timefmt::rfc3339_nano(std::time::SystemTime::now());
        let restart = self
            .containers
            .resolve(id)
            .ok()
            .and_then(|c| self.plan_restart(&c, code));
        // The exit has happened: the record in memory says so even when the disk is full (the write is
        // retried, and a `stop` waiting for this exit reports the failure).
        let c = match self.containers.record_fact(id, |c| {
            if restart.is_some() {
                c.state.status = Status::Restarting;
                c.restart_count += 1;
            } else {
                c.state.status = Status::Exited;
            }
            c.state.pid = 0;
            c.state.exit_code = code;
            c.state.oom_killed = oom;
            c.state.finished_at = now.clone();
        }) {
            Ok((c, _)) => c,
            Err(_) => return,
        };
        crash_point("exit:after-record");
        self.net_stop(id).await;
        crash_point("exit:after-network");
        self.unmount_quietly(id).await;
        crash_point("exit:after-unmount");
        self.drop_hub(id, false);
        remove_state_dir(&self.state_dir(id));
        if oom {
            self.container_event("oom", &c);
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("exitCode".to_owned(), code.to_string());
        self.container_event_with("die", &c, attrs);
        // A broadcast: no waiter is the common case.
        let _ = self.states.send(StateChange::Exited(id.to_owned(), code));
        if let Some(plan) = restart {
            self.schedule_restart(id.to_owned(), plan);
        } else if c.host_config.auto_remove == Some(true) {
            // --rm takes the container's anonymous volumes with it, as in Docker.
            if let Err(e) = self.remove_stopped(&c, true).await {
                tracing::warn!(id, error = %e, "auto-remove failed");
            }
        }
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
    pub async fn stop_container(
        self: &Arc<Self>,
        name: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let mut c = self.containers.resolve(name)?;
        if c.state.status == Status::Restarting {
            // Waiting for its restart: cancelling that is the stop (dockerd sends no signal then).
            c = self.cancel_restarting(&c, libc::SIGKILL).await?;
            if c.state.status != Status::Running && c.state.status != Status::Paused {
                self.container_event("stop", &c);
                return Ok(());
            }
        }
        if c.state.status != Status::Running && c.state.status != Status::Paused {
            return Err(Error::NotModified);
        }
        let sig_name = signal
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| c.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let sig = parse_signal(&sig_name)?;
        let timeout = timeout.or(c.config.stop_timeout).unwrap_or(10);
        let mut states = self.states.subscribe();
        self.signal(&c, sig).await?;
        crash_point("stop:after-signal");
        let exited = if timeout < 0 {
            wait_exit(&mut states, &c.id, None).await
        } else {
            wait_exit(
                &mut states,
                &c.id,
                Some(Duration::from_secs(timeout as u64)),
            )
            .await
        };
        if !exited && self.is_running(&c.id) {
            self.signal(&c, libc::SIGKILL).await?;
            wait_exit(&mut states, &c.id, Some(Duration::from_secs(30))).await;
        }
        let c = self.containers.resolve(&c.id).unwrap_or(c);
        self.unwritten_exit(&c.id, "stop", name)?;
        self.container_event("stop", &c);
        Ok(())
    }

    /// An error when the container's exit is known but its record could not be written (a full disk):
    /// the container is stopped, but the operation did not complete as Docker's would (its record on disk
    /// still says running until the retried write succeeds).
    fn unwritten_exit(&self, id: &str, op: &str, name: &str) -> Result<()> {
        match self.containers.pending_error(id) {
            Some(e) => Err(Error::System(format!(
                "cannot {op} container: {name}: the container stopped, but its record could not be written: {e}"
            ))),
            None => Ok(()),
        }
    }

    fn is_running(&self, id: &str) -> bool {
        self.containers
            .resolve(id)
            .map(|c| matches!(c.state.status, Status::Running | Status::Paused))
            .unwrap_or(false)
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill_container(self: &Arc<Self>, name: &str, signal: Option<&str>) -> Result<()> {
        let mut c = self.containers.resolve(name)?;
        if c.state.status == Status::Restarting {
            let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
            c = self.cancel_restarting(&c, sig).await?;
            if c.state.status != Status::Running && c.state.status != Status::Paused {
                return Ok(());
            }
        }
        if c.state.status != Status::Running && c.state.status != Status::Paused {
            return Err(Error::Conflict(format!(
                "cannot kill container: {name}: container {} is not running",
                c.id
            )));
        }
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
        if sig != libc::SIGKILL {
            return self.signal(&c, sig).await;
        }
        // As dockerd: a SIGKILL returns once the container has stopped, so an `inspect` or `rm` right
        // after sees it exited (137). Subscribed before the signal, so the exit cannot slip between.
        let mut states = self.states.subscribe();
        self.signal(&c, sig).await?;
        crash_point("kill:after-signal");
        if wait_exit(&mut states, &c.id, Some(KILL_WAIT)).await || !self.is_running(&c.id) {
            return self.unwritten_exit(&c.id, "kill", name);
        }
        Err(Error::System(format!(
            "tried to kill container {}, but did not receive an exit event",
            c.id
        )))
    }

    async fn signal(&self, c: &Container, sig: i32) -> Result<()> {
        self.note_user_signal(c, sig);
        let mut attrs = BTreeMap::new();
        attrs.insert("signal".to_owned(), sig.to_string());
        self.container_event_with("kill", c, attrs);
        let sent = shim_client::ok_command(&self.shim_socket(&c.id), &format!("kill {sig}")).await;
        if c.state.status == Status::Paused && sent.is_ok() {
            // Frozen tasks only act on a signal once thawed (as dockerd does, thaw after signalling).
            if let Err(e) = self.thaw(c) {
                tracing::warn!(id = %c.id, error = %e, "thawing after a signal failed");
            }
        }
        match sent {
            Ok(()) => Ok(()),
            // Already gone: the monitor records the exit.
            Err(e)
                if e.contains("No such process")
                    || e.contains("ESRCH")
                    || e.contains("connecting") =>
            {
                Ok(())
            }
            Err(e) => Err(Error::System(format!(
                "cannot kill container {}: {e}",
                c.id
            ))),
        }
    }

    /// `POST /containers/{id}/resize?h=…&w=…`: the terminal's window size.
    pub async fn resize_container(&self, name: &str, rows: u16, cols: u16) -> Result<()> {
        let c = self.containers.resolve(name)?;
        if !matches!(c.state.status, Status::Running | Status::Paused) {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        shim_client::ok_command(&self.shim_socket(&c.id), &format!("resize {rows} {cols}"))
            .await
            .map_err(|e| Error::InvalidParameter(format!("cannot resize container {}: {e}", c.id)))
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart_container(
        self: &Arc<Self>,
        name: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        match self.stop_container(name, signal, timeout).await {
            Ok(()) | Err(Error::NotModified) => {}
            Err(e) => return Err(e),
        }
        self.start_container(name).await?;
        let c = self.containers.resolve(name)?;
        self.container_event("restart", &c);
        Ok(())
    }

    /// `POST /containers/{id}/wait`: checks the container now (404 before any header), then returns the
    /// future that completes with the exit code.
    pub async fn wait_container(
        self: &Arc<Self>,
        name: &str,
        condition: WaitCondition,
    ) -> Result<impl std::future::Future<Output = Result<i64>> + Send + 'static> {
        let mut states = self.states.subscribe();
        let c = self.containers.resolve(name)?;
        let id = c.id.clone();
        let running = matches!(
            c.state.status,
            Status::Running | Status::Paused | Status::Restarting
        ) || self
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id);
        let immediate = condition == WaitCondition::NotRunning && !running;
        let last = c.state.exit_code;
        Ok(async move {
            if immediate {
                return Ok(last);
            }
            let mut code = last;
            loop {
                match states.recv().await {
                    Ok(StateChange::Exited(i, c)) if i == id => {
                        code = c;
                        if condition != WaitCondition::Removed {
                            return Ok(c);
                        }
                    }
                    Ok(StateChange::Removed(i)) if i == id => return Ok(code),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Error::System("the daemon is shutting down".into()))
                    }
                }
            }
        })
    }

    /// `POST /containers/{id}/rename?name=…`.
    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<()> {
        let c = self.containers.resolve(name)?;
        let new_name = super::names::validate(new_name)?;
        if new_name == c.name {
            return Err(Error::InvalidParameter(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        let renamed = self.containers.rename(&c.id, &new_name)?;
        self.net_renamed(&c.id, &new_name);
        let mut attrs = BTreeMap::new();
        attrs.insert("oldName".to_owned(), format!("/{}", c.name));
        self.container_event_with("rename", &renamed, attrs);
        Ok(())
    }

    /// `DELETE /containers/{id}?force=…&v=…` (`v`: remove its anonymous volumes too).
    pub async fn remove_container(
        self: &Arc<Self>,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        let mut c = self.containers.resolve(name)?;
        if matches!(
            c.state.status,
            Status::Running | Status::Paused | Status::Restarting
        ) {
            if !force {
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                    c.name,
                    c.state.status.as_str()
                )));
            }
            if c.state.status == Status::Restarting {
                c = self.cancel_restarting(&c, libc::SIGKILL).await?;
            }
        }
        if matches!(c.state.status, Status::Running | Status::Paused) {
            let mut states = self.states.subscribe();
            self.signal(&c, libc::SIGKILL).await?;
            wait_exit(&mut states, &c.id, Some(Duration::from_secs(30))).await;
        }
        let c = self.containers.resolve(&c.id)?;
        if c.host_config.auto_remove == Some(true) && c.state.status == Status::Exited {
            // The monitor may be removing it already; removal is idempotent below.
        }
        self.remove_stopped(&c, volumes).await
    }

    /// Removes a container that is not running, with its anonymous volumes if `volumes`. Each step is
    /// idempotent, so that a restart after a crash finishes the removal (see [`Engine::recover`]); the
    /// volumes go before the record, so that none is left behind by a crash between the two.
    async fn remove_stopped(self: &Arc<Self>, c: &Container, volumes: bool) -> Result<()> {
        if volumes {
            // The only place `-v` outlives this request, for a restart that finishes the removal.
            let mark = self.containers.dir(&c.id).join(REMOVE_VOLUMES);
            if let Err(e) = std::fs::File::create(&mark) {
                tracing::warn!(id = %c.id, error = %e, "marking a removal with its volumes");
            }
        }
        // Gone from the store already (a removal racing this one): the steps below are idempotent.
        let _ = self
            .containers
            .update(&c.id, |c| c.state.status = Status::Removing);
        crash_point("rm:after-removing");
        self.net_stop(&c.id).await;
        crash_point("rm:after-network");
        self.unmount_quietly(&c.id).await;
        crash_point("rm:after-unmount");
        remove_state_dir(&self.state_dir(&c.id));
        self.release_container_volumes(c, volumes).await;
        let store_id = c.id.clone();
        let engine = Arc::clone(self);
        self.teardown_blocking(move || engine.containers.remove(&store_id))
            .await??;
        crash_point("rm:after-record");
        self.drop_hub(&c.id, true);
        self.forget_stats(&c.id);
        self.forget_execs(&c.id);
        self.forget_restarts(&c.id);
        self.container_event("destroy", c);
        // A broadcast: no waiter is the common case.
        let _ = self.states.send(StateChange::Removed(c.id.clone()));
        Ok(())
    }

    /// Finds the containers that were running when the daemon last stopped: those whose shim still answers
    /// are watched again (live restore); the others are recorded as exited with what their shim left. Then
    /// reconciles what is on the host with the records, whatever step a crash interrupted: nothing of a
    /// run (rootfs mount, runtime state, shim, network endpoint, volume mount) is left for a container that
    /// is not running or no longer exists.
    pub async fn recover(self: &Arc<Self>) {
        for mut c in self.containers.list() {
            if matches!(
                c.state.status,
                Status::Created | Status::Exited | Status::Dead
            ) {
                // A start whose record was not written before the daemon died: the shim runs the container.
                match self.adopt_started(&c).await {
                    Some(updated) => c = updated,
                    None => {
                        self.clean_stopped(&c.id).await;
                        continue;
                    }
                }
            }
            if !matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Restarting | Status::Removing
            ) {
                continue;
            }
            if c.state.status == Status::Removing {
                let volumes = self.containers.dir(&c.id).join(REMOVE_VOLUMES).exists();
                if let Err(e) = self.remove_stopped(&c, volumes).await {
                    tracing::warn!(id = %c.id, error = %e, "finishing an interrupted removal");
                }
                continue;
            }
            let sock = self.shim_socket(&c.id);
            if tokio::net::UnixStream::connect(&sock).await.is_ok() {
                tracing::info!(id = %c.id, "container still running: reconnecting");
                self.restore_container_volumes(&c);
                if let Err(e) = shim_client::attach(&sock, self.hub(&c.id), false).await {
                    tracing::warn!(id = %c.id, error = %e, "reattaching output failed");
                }
                self.net_restore(&c).await;
                if c.state.status == Status::Running {
                    self.init_health(&c.id);
                }
                let engine = Arc::clone(self);
                tokio::spawn(async move { engine.monitor(c.id.clone(), sock).await });
            } else if c.state.status == Status::Restarting {
                // It was waiting out its back-off: it stays exited with its code, and the restart
                // policy below decides (the restart manager did not survive the daemon).
                if let Err(e) = self
                    .containers
                    .update(&c.id, |c| c.state.status = Status::Exited)
                {
                    tracing::warn!(id = %c.id, error = %e, "recording a restarting container as exited");
                }
                self.clean_stopped(&c.id).await;
            } else {
                let (code, oom) = self.exit_record(&c.id).unwrap_or((255, false));
                tracing::info!(id = %c.id, code, "container exited while the daemon was down");
                self.on_exit(&c.id, code, oom).await;
            }
        }
        self.sweep_orphans().await;
        self.net_sweep().await;
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.write_pending_records().await });
        self.restart_on_boot().await;
    }

    /// After a restart, for a container that is not running: what a run leaves (its rootfs and
    /// `/dev/shm` mounts, its runtime state directory) is released, as its exit would have released it had
    /// the daemon lived. Its network endpoints go in [`Engine::net_sweep`].
    async fn clean_stopped(&self, id: &str) {
        self.unmount_quietly(id).await;
        let dir = self.state_dir(id);
        if dir.exists() {
            tracing::info!(
                id,
                "removing the runtime state of a container that is not running"
            );
            remove_state_dir(&dir);
        }
    }

    /// After a restart: the runtime state (and any shim still serving it) of containers that no longer
    /// exist; mounts under the containers' directories that no running container owns; volumes mounted
    /// for containers that no longer run.
    async fn sweep_orphans(&self) {
        let live: std::collections::HashSet<String> = self
            .containers
            .list()
            .into_iter()
            .filter(|c| {
                matches!(
                    c.state.status,
                    Status::Running | Status::Paused | Status::Restarting
                )
            })
            .map(|c| c.id)
            .collect();
        let state_root = self.config.exec_root.join("containers");
        for entry in std::fs::read_dir(&state_root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if self.containers.resolve(&id).is_ok_and(|c| c.id == id) {
                continue;
            }
            let sock = self.shim_socket(&id);
            if tokio::net::UnixStream::connect(&sock).await.is_ok() {
                tracing::info!(id, "stopping the shim of a container that no longer exists");
                end_shim(&sock).await;
            }
            remove_state_dir(&entry.path());
        }
        let containers_root = self.config.data_root.join("containers");
        let stray = tokio::task::spawn_blocking(move || stray_mounts(&containers_root, &live))
            .await
            .unwrap_or_default();
        for m in stray {
            tracing::info!(mount = %m.display(), "unmounting what no running container uses");
            if let Err(e) = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!(mount = %m.display(), error = %e, "unmounting a stray mount");
            }
        }
        for name in self.volumes.unmount_unused() {
            tracing::info!(volume = %name, "unmounted a volume no running container uses");
        }
    }

    /// Retries, every second, the container records whose write failed (a full disk), so that a record
    /// says what happened once it can be written.
    async fn write_pending_records(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.containers.has_pending() {
                let engine = Arc::clone(&self);
                let _ =
                    tokio::task::spawn_blocking(move || engine.containers.write_pending()).await;
            }
        }
    }

    /// Publishes a container event (Actor attributes: name, image and the container's labels).
    pub(crate) fn container_event(&self, action: &str, c: &Container) {
        self.container_event_with(action, c, BTreeMap::new());
    }

    pub(crate) fn container_event_with(
        &self,
        action: &str,
        c: &Container,
        extra: BTreeMap<String, String>,
    ) {
        let mut attrs: BTreeMap<String, String> = c
            .config
            .labels
            .clone()
            .map(|l| l.into_iter().collect())
            .unwrap_or_default();
        attrs.insert("name".into(), c.name.clone());
        let image = c.config.image.clone().unwrap_or_default();
        attrs.insert("image".into(), image.clone());
        attrs.extend(extra);
        let mut e = Event::new("container", action, &c.id, attrs);
        e.from = Some(image);
        self.events.publish(e);
    }
}

/// A container to attach to, with its output already subscribed.
pub struct AttachTarget {
    /// The container.
    pub container: Container,
    /// Raw stream (TTY) or multiplexed frames.
    pub tty: bool,
    /// Close the container's stdin when this client's input ends.
    pub stdin_once: bool,
    /// The output.
    pub subscription: super::hub::Subscription,
    /// Where client input goes (`None` for containers without `-i`).
    pub stdin: Option<super::Stdin>,
}

/// Waits for `id`'s exit on the state channel; false on timeout.
async fn wait_exit(
    states: &mut broadcast::Receiver<StateChange>,
    id: &str,
    limit: Option<Duration>,
) -> bool {
    let fut = async {
        loop {
            match states.recv().await {
                Ok(StateChange::Exited(i, _)) | Ok(StateChange::Removed(i)) if i == id => {
                    return true
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    };
    match limit {
        Some(d) => tokio::time::timeout(d, fut).await.unwrap_or(false),
        None => fut.await,
    }
}

/// Docker's `RAMInBytes`: `10m`, `1g`, `512k`, `100` (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as u64)
}

/// A signal by name (`SIGTERM`, `TERM`, `term`) or number (`15`).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let sig = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(Error::InvalidParameter(format!("Invalid signal: {s}"))),
    };
    Ok(sig)
}

impl Engine {
    /// `POST /containers/prune`: removes every stopped container (filters `label`, `label!`, `until`).
    pub async fn prune_containers(
        self: &Arc<Self>,
        filters: crate::Filters,
    ) -> Result<bollard_stubs::models::ContainerPruneResponse> {
        filters.validate(&["label", "label!", "until"])?;
        let until = filters.times("until")?;
        let mut deleted = Vec::new();
        let mut reclaimed = 0i64;
        for c in self.containers.list() {
            if !matches!(
                c.state.status,
                Status::Created | Status::Exited | Status::Dead
            ) {
                continue;
            }
            let label = |k: &str| {
                c.config
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(k))
                    .map(String::as_str)
            };
            if !filters.labels_match("label", label) {
                continue;
            }
            if filters.labels_excluded(label) {
                continue;
            }
            let created = image::timefmt::parse(&c.created)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            if until.iter().any(|&u| created >= u) {
                continue;
            }
            // Measured before the removal, as dockerd does; a layer that could not be read counts nothing.
            let size = self
                .layer_sizes(&[&c])
                .await?
                .pop()
                .map_or(0, |s| s.rw.max(0));
            if self.remove_stopped(&c, false).await.is_ok() {
                deleted.push(c.id.clone());
                reclaimed += size;
            }
        }
        self.events
            .publish(crate::Event::pruned("container", reclaimed as u64));
        Ok(bollard_stubs::models::ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed),
        })
    }
}

/// Ends a shim whose container must not run: its init killed, then waited for (the shim removes the
/// container's cgroup and its socket, then exits).
async fn end_shim(sock: &Path) {
    if let Err(e) = shim_client::ok_command(sock, &format!("kill {}", libc::SIGKILL)).await {
        tracing::warn!(socket = %sock.display(), error = %e, "killing a container that must not run");
    }
    if tokio::time::timeout(KILL_WAIT, shim_client::wait(sock))
        .await
        .is_err()
    {
        tracing::warn!(socket = %sock.display(), "a killed container did not exit in time");
    }
}

/// The mount points under `root` (`DATA_ROOT/containers`) in this process's mount table that belong to no
/// container in `live` (each container's mounts lie under `root/<id>/`), deepest first.
fn stray_mounts(root: &Path, live: &std::collections::HashSet<String>) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| match p.strip_prefix(root) {
            Ok(rest) => rest
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .is_some_and(|id| !live.contains(id)),
            Err(_) => false,
        })
        .collect();
    // Deepest first (a mount on a mount goes before its parent); equal paths side by side for dedup.
    out.sort_by(|a, b| {
        let depth = |p: &PathBuf| p.components().count();
        depth(b).cmp(&depth(a)).then_with(|| a.cmp(b))
    });
    out.dedup();
    out
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on for tab, newline and backslash).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match code {
            Some(c) if b[i] == b'\\' => {
                out.push(c);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes a container's runtime state directory (the shim's socket, pid and exit files, the OCI spec); it
/// may not exist.
fn remove_state_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), error = %e, "removing the container's state directory");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mountinfo("/a\\134b"), "/a\\b");
        assert_eq!(unescape_mountinfo("/plain\\"), "/plain\\");
        assert_eq!(unescape_mountinfo("/x\\9"), "/x\\9");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
    }
}
