//! `berth daemon`: takes the data root's lock, opens the engine, and serves the Docker Engine API on unix
//! sockets and TCP ports (TLS with client certificates) until SIGTERM or SIGINT.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

/// Flags of `berth daemon`, named as dockerd names them.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Daemon socket(s) to listen on (unix:///PATH, tcp://ADDR:PORT)
    #[arg(short = 'H', long = "host", value_name = "list")]
    host: Vec<String>,
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
    /// Root directory of persistent Berth state
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Root directory for execution state files
    #[arg(long, default_value = "/run/berth")]
    exec_root: PathBuf,
    /// Path to use for the daemon PID file (default: EXEC_ROOT/berth.pid)
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// Set the logging level ("debug"|"info"|"warn"|"error")
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
    /// Log as JSON lines instead of text
    #[arg(long)]
    log_json: bool,
    /// Bridge device of the default network ("none" for no default network)
    #[arg(short = 'b', long, value_name = "string")]
    bridge: Option<String>,
    /// Address and prefix of the default network's bridge (e.g. 10.99.0.1/24)
    #[arg(long, value_name = "string")]
    bip: Option<String>,
    /// Enable IPv6 networking on the default bridge
    #[arg(long)]
    ipv6: bool,
    /// IPv6 subnet of the default bridge (e.g. fd00:1::/64; default: a /64 of the daemon's ULA prefix)
    #[arg(long, value_name = "string")]
    fixed_cidr_v6: Option<String>,
    /// Register an additional OCI runtime (NAME=PATH); runc, crun and youki are found in PATH
    #[arg(long, value_name = "NAME=PATH")]
    add_runtime: Vec<String>,
    /// Default OCI runtime for containers
    #[arg(long, default_value = engine::BUILTIN_RUNTIME)]
    default_runtime: String,
    /// Enable insecure registry communication (a CIDR or host[:port]); 127.0.0.0/8 and ::1/128 always are
    #[arg(long = "insecure-registry", value_name = "list")]
    insecure_registries: Vec<String>,
    /// Preferred registry mirror for docker.io
    #[arg(long = "registry-mirror", value_name = "list")]
    registry_mirrors: Vec<String>,
    /// Per-registry CA and client certificates (<dir>/<host:port>/ca.crt, client.cert, client.key)
    #[arg(long, default_value = "/etc/berth/certs.d")]
    registry_certs_dir: PathBuf,
    /// Default driver for container logs (json-file, local, syslog, journald, none)
    #[arg(long, value_name = "string")]
    log_driver: Option<String>,
    /// Default log driver options for containers
    #[arg(long, value_name = "map")]
    log_opt: Vec<String>,
    /// User/Group setting for user namespaces ("default", user[:group], uid[:gid])
    #[arg(long, value_name = "string")]
    userns_remap: Option<String>,
    /// Daemon configuration file (default /etc/berth/daemon.json)
    #[arg(long, value_name = "string")]
    config_file: Option<PathBuf>,
}

/// The registry settings from the flags, as dockerd reads its own.
fn registry_config(args: &DaemonArgs) -> anyhow::Result<engine::RegistryConfig> {
    let mut cfg = engine::RegistryConfig::default();
    for r in &args.insecure_registries {
        cfg.add_insecure(r)
            .with_context(|| format!("--insecure-registry {r}"))?;
    }
    for m in &args.registry_mirrors {
        let url = m.trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("invalid mirror: unsupported scheme \"{m}\" in --registry-mirror");
        }
        cfg.mirrors.push(url.to_owned());
    }
    cfg.certs_dir = Some(args.registry_certs_dir.clone());
    Ok(cfg)
}

/// The external runtimes: runc, crun and youki where PATH has them, then `--add-runtime NAME=PATH`.
fn runtimes(args: &DaemonArgs) -> anyhow::Result<std::collections::BTreeMap<String, PathBuf>> {
    let mut map = std::collections::BTreeMap::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["runc", "crun", "youki"] {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            map.insert(name.to_owned(), p);
        }
    }
    for spec in &args.add_runtime {
        let Some((name, p)) = spec.split_once('=') else {
            bail!("--add-runtime {spec}: expected NAME=PATH");
        };
        if name == engine::BUILTIN_RUNTIME {
            bail!("--add-runtime {spec}: {name} is the built-in runtime");
        }
        map.insert(name.to_owned(), PathBuf::from(p));
    }
    if args.default_runtime != engine::BUILTIN_RUNTIME && !map.contains_key(&args.default_runtime) {
        bail!(
            "--default-runtime {}: no such runtime",
            args.default_runtime
        );
    }
    Ok(map)
}

/// Gives freed heap memory back to the kernel every few seconds. A burst of requests (50 containers started
/// and removed) leaves glibc's per-thread arenas holding megabytes that no allocation uses; the daemon's
/// resident size should come back to its idle figure afterwards.
async fn trim_heap_periodically() {
    // Every 3 s, so that what the blocking threads freed as they went (1.5 s after a burst) is returned
    // within 5 s of the burst's end.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory of the allocator's arenas; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: DaemonArgs) -> anyhow::Result<()> {
    // Two malloc arenas, not eight per core: tokio's threads take turns, and each arena keeps its own
    // high-water mark of resident memory.
    // Pulls and loads stream hundreds of megabytes through buffers of a few hundred KiB (hyper's reads,
    // the unpacker's chunks). With glibc's sliding thresholds each one freed at the top of a heap went
    // back to the kernel at once and the next was faulted and zeroed again: a fifth of a 512 MB load's
    // kernel time (madvise, page faults, clear_page). Fixed thresholds keep freed memory until the
    // periodic trim below returns it (bench/memory.sh's points moved by 0.1-0.25 MB).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt before any thread exists; it only sets the allocator's parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    init_logging(&args.log_level, args.log_json);
    engine::set_build_info(engine::BuildInfo {
        git_commit: env!("BERTH_GIT_COMMIT").to_owned(),
        build_time: env!("BERTH_BUILD_TIME").to_owned(),
        compiler: env!("BERTH_RUSTC_VERSION").to_owned(),
    });
    // Every listener is decided (TLS files read, plain TCP refused) before anything is touched on disk.
    let plan = crate::listen::plan(&args.host, &args.listen, &args.exec_root)?;
    let sockets: Vec<PathBuf> = plan
        .hosts
        .iter()
        .filter_map(|h| match h {
            crate::listen::Host::Unix(p) => Some(p.clone()),
            crate::listen::Host::Tcp(..) => None,
        })
        .collect();
    std::fs::create_dir_all(&args.data_root)
        .with_context(|| format!("creating data root {}", args.data_root.display()))?;
    std::fs::create_dir_all(&args.exec_root)
        .with_context(|| format!("creating exec root {}", args.exec_root.display()))?;
    // The lock, not the pidfile, says whether a daemon runs: a crashed daemon's stale pidfile never blocks.
    let _lock = lock_data_root(&args.data_root)?;
    let pidfile = args
        .pidfile
        .clone()
        .unwrap_or_else(|| args.exec_root.join("berth.pid"));
    write_pidfile(&pidfile)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // A burst of blocking work (50 `rm -f` at once) starts one thread each; tokio's default keeps them
        // 10 s, and their stacks and allocator caches were a third of the daemon's anonymous memory
        // after such a burst. Threads cost ~30 µs to start again, so they go after 1.5 s idle.
        .thread_keep_alive(std::time::Duration::from_millis(1500))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(&args, &plan));
    for s in &sockets {
        let _ = std::fs::remove_file(s);
    }
    let _ = std::fs::remove_file(&pidfile);
    tracing::info!("daemon stopped");
    result
}

async fn serve(args: &DaemonArgs, plan: &crate::listen::Plan) -> anyhow::Result<()> {
    let file = crate::daemon_config::load(args.config_file.as_deref())?;
    let config = engine::EngineConfig {
        data_root: args.data_root.clone(),
        exec_root: args.exec_root.clone(),
        network: crate::daemon_config::network_config(
            engine::networks::NetworkConfig {
                bridge: args.bridge.clone(),
                bip: args.bip.clone(),
                ipv6: args.ipv6,
                fixed_cidr_v6: args.fixed_cidr_v6.clone(),
            },
            &file,
        )?,
        runtimes: runtimes(args)?,
        default_runtime: args.default_runtime.clone(),
        registry: registry_config(args)?,
        exec_root_group: plan.exec_root_group(&args.exec_root),
        api_warnings: plan.api_warnings(),
        log: crate::daemon_config::log_defaults(args.log_driver.as_deref(), &args.log_opt, &file)?,
        userns_remap: crate::daemon_config::userns_remap(args.userns_remap.as_deref(), &file)?,
    };
    let engine = tokio::task::spawn_blocking(move || engine::Engine::open(config))
        .await?
        .context("opening the engine")?;
    let engine = Arc::new(engine);
    engine.recover().await;
    tokio::spawn(trim_heap_periodically());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for (_, listener) in plan.bind()? {
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(api::serve(
            listener,
            Arc::clone(&engine),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )));
    }
    tracing::info!(version = engine::VERSION, data_root = %args.data_root.display(), "daemon started");
    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for s in servers {
        s.await??;
    }
    let e = Arc::clone(&engine);
    tokio::task::spawn_blocking(move || e.shutdown()).await?;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

/// Takes an exclusive lock on `DATA_ROOT/berth.lock` for the daemon's lifetime.
fn lock_data_root(data_root: &Path) -> anyhow::Result<File> {
    let path = data_root.join("berth.lock");
    match engine::lock_exclusive(&path, &std::process::id().to_string())
        .with_context(|| format!("opening {}", path.display()))?
    {
        Ok(file) => Ok(file),
        Err(holder) => bail!(
            "another berth daemon is already using data root {}{}",
            data_root.display(),
            if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            }
        ),
    }
}

fn write_pidfile(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing pidfile {}", path.display()))
}

fn init_logging(level: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},hyper=warn,h2=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
