//! The shim's single-threaded poll loop: container output to the log and to attached clients, client
//! commands, and the init's exit (through a pidfd).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use runtime::{Container, CreateOptions, ExitStatus, Stdio};

use crate::backend::{wait_pid, Backend, External};
use crate::buffers::{Input, Queue};
use crate::drivers::{LogDriver, Logger};
use crate::error::{Error, Result};
use crate::logfile::Stream;
use crate::protocol::{self, ExitRecord};

/// What the daemon tells a shim (the binary parses it from `berth shim`'s flags).
#[derive(Debug, Clone)]
pub struct ShimConfig {
    /// Container ID.
    pub id: String,
    /// OCI bundle directory (config.json).
    pub bundle: PathBuf,
    /// Directory for the pid and exit files.
    pub state_dir: PathBuf,
    /// The control socket (kept short: unix socket paths are limited to 107 bytes).
    pub socket: PathBuf,
    /// Where the container's output is logged.
    pub log: LogDriver,
    /// Give the container a stdin pipe (`-i`).
    pub stdin: bool,
    /// Where compiled seccomp filters are cached.
    pub seccomp_cache: Option<PathBuf>,
    /// Run the container with this OCI runtime binary (runc, crun, youki) instead of the built-in one.
    pub runtime: Option<PathBuf>,
}

/// An attach client whose backlog grows past this misses output until it catches up (the log has
/// everything): the container's output is never held up by a slow reader.
const MAX_CLIENT_BUFFER: usize = 16 << 20;
/// An exec session's output is not read while its client has this much waiting: exec output is not
/// logged, so the process is slowed to the client's pace rather than lose any of it.
const EXEC_CLIENT_BACKLOG: usize = 256 * 1024;
/// One read per ready pipe per wake-up, at most this much: a process that writes as fast as it can never
/// keeps the loop from its control socket, its clients, or the other pipes.
const READ_CHUNK: usize = 64 * 1024;
/// How long output may keep flowing after the init exits (a process outside the pid namespace could hold
/// the pipes open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

enum Mode {
    Command,
    Attach {
        stdout: bool,
        stderr: bool,
        stdin: bool,
    },
    /// The client of an exec session: gets its output, feeds its stdin, and last an exit frame.
    Exec(String),
}

/// A process started in the container by `exec`.
struct ExecSession {
    id: String,
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    out: [Option<OwnedFd>; 2],
    console: Option<OwnedFd>,
    stdin: Input,
    exited: Option<(ExitStatus, Instant)>,
}

struct Client {
    stream: UnixStream,
    mode: Mode,
    inbuf: Vec<u8>,
    outbuf: Queue,
    waiting: bool,
    read_closed: bool,
    /// Close the connection once the output buffer is written.
    closing: bool,
    dead: bool,
}

pub(crate) fn run(args: ShimConfig) -> ExitCode {
    let mut ready = std::io::stdout();
    match setup(&args) {
        Ok(mut s) => {
            // A daemon that has gone cannot read it either way; it finds the shim through its socket.
            let _ = writeln!(ready, "ok {}", s.container.pid());
            let _ = ready.flush();
            detach_stdout();
            release_setup_memory();
            // Ends after the exit: the container is deleted (its cgroup removed; the init is reaped, so nothing
            // is left in it but stragglers, killed) before waiters hear of the exit.
            s.serve();
            let container = std::mem::replace(&mut s.container, Backend::Deleted);
            if let Err(e) = container.delete() {
                tracing::warn!(id = %s.args.id, error = %e, "removing the container");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Nobody else to tell if the daemon has gone.
            let _ = writeln!(ready, "err {}", e.to_string().replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

/// Gives the heap pages used while setting the container up (the spec, the seccomp program, the runtime's
/// plans) back to the kernel: the shim lives as long as its container, and one runs per container.
fn release_setup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; no allocation is live across it that it could touch.
    unsafe {
        libc::malloc_trim(0);
    }
    release_unused_stack();
}

/// Gives back the stack pages that setting the container up touched deep below the poll loop's frames:
/// they would stay resident, and private, for the container's whole life. Pages below the current frame
/// (minus a generous margin) hold nothing live.
#[inline(never)]
fn release_unused_stack() {
    const MARGIN: usize = 64 * 1024;
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let Some(low) = maps.lines().find(|l| l.ends_with("[stack]")).and_then(|l| {
        let (range, _) = l.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        (lo <= sp && sp < hi).then_some(lo)
    }) else {
        return;
    };
    let page = 4096;
    let top = sp.saturating_sub(MARGIN) & !(page - 1);
    if top > low {
        // SAFETY: [low, top) is the part of this thread's stack mapping more than MARGIN below the live
        // frame; nothing references it, and MADV_DONTNEED just drops the pages (they read back as zeros).
        unsafe { libc::madvise(low as *mut libc::c_void, top - low, libc::MADV_DONTNEED) };
    }
}

/// Points fd 1 at /dev/null once the daemon has read the ready line, so a daemon that goes away cannot
/// make a later write fail.
fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1, which this process owns; `null` stays open for the call.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

struct Shim {
    args: ShimConfig,
    container: Backend,
    listener: UnixListener,
    clients: Vec<Client>,
    out: [Option<OwnedFd>; 2],
    /// The pty master when the container has a terminal.
    console: Option<OwnedFd>,
    stdin: Input,
    pidfd: Option<OwnedFd>,
    log: Logger,
    exited: Option<(ExitStatus, Instant)>,
    execs: Vec<ExecSession>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Error::io("pipe", e))
}

fn nonblocking(fd: impl AsFd) {
    if let Err(e) = rustix::io::ioctl_fionbio(&fd, true) {
        // A blocking descriptor would stall the poll loop on it.
        tracing::warn!(fd = fd.as_fd().as_raw_fd(), error = %e, "making a descriptor non-blocking");
    }
}

fn setup(args: &ShimConfig) -> Result<Shim> {
    // Our own session: signals to the daemon's process group do not reach us or the container.
    if let Err(e) = rustix::process::setsid() {
        tracing::warn!(error = %e, "starting a session of our own");
    }
    std::fs::create_dir_all(&args.state_dir).map_err(|e| Error::io("creating state dir", e))?;
    // dockerd's words when a driver cannot start (a syslog server that refuses, no journal).
    let log =
        Logger::open(&args.log).map_err(|e| Error::io("failed to initialize logging driver", e))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_r, stdin_w) = if args.stdin {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        let null = std::fs::File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
        (Some(OwnedFd::from(null)), None)
    };
    let bundle = runtime::spec::Bundle::load(&args.bundle)?;
    let opts = CreateOptions {
        seccomp_cache: args.seccomp_cache.clone(),
        no_cgroups: false,
        start_fifo: None,
    };
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    // With a terminal all three streams are the pty's slave; the runtime sets that up.
    let stdio = if terminal {
        Stdio::default()
    } else {
        Stdio {
            stdin: stdin_r,
            stdout: Some(out_w),
            stderr: Some(err_w),
        }
    };
    let mut container = match &args.runtime {
        None => Backend::Builtin(Container::create(&args.id, &bundle, stdio, &opts)?),
        Some(binary) => Backend::External(
            External::create(
                binary,
                &args.socket,
                &args.state_dir,
                &args.id,
                &bundle.dir,
                stdio,
                terminal,
            )
            .map_err(|e| Error::ExternalCreate(Box::new(e)))?,
        ),
    };
    // With a terminal the process's stdio is the pty: its master carries output and input alike.
    let console = container.take_console();
    let pid = container.pid();
    let sock = args.socket.clone();
    let prepared = (|| -> Result<UnixListener> {
        write_file(
            &args.state_dir.join(protocol::PID_FILE),
            format!("{pid}\n").as_bytes(),
        )
        .map_err(|e| Error::io("writing pid file", e))?;
        if let Some(dir) = sock.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        crate::cleanup::remove_file(&sock, "a stale control socket");
        let listener = UnixListener::bind(&sock)
            .map_err(|e| Error::io(format!("binding {}", sock.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("socket", e))?;
        Ok(listener)
    })();
    let listener = match prepared {
        Ok(l) => l,
        Err(e) => {
            // Nobody will ever start it: do not leave the init waiting.
            if let Err(e) = container.delete() {
                tracing::warn!(id = %args.id, error = %e, "removing a container that cannot be served");
            }
            return Err(e);
        }
    };
    let pidfd = rustix::process::Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let (out, stdin_w) = match &console {
        Some(master) => {
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup pty", e));
            let input = if args.stdin { Some(dup(master)?) } else { None };
            ([Some(dup(master)?), None], input)
        }
        None => ([Some(out_r), Some(err_r)], stdin_w),
    };
    for fd in out.iter().flatten() {
        nonblocking(fd);
    }
    if let Some(w) = &stdin_w {
        nonblocking(w);
    }
    Ok(Shim {
        args: args.clone(),
        container,
        listener,
        clients: Vec::new(),
        out,
        console,
        stdin: Input::new(stdin_w),
        pidfd,
        log,
        exited: None,
        execs: Vec::new(),
    })
}

/// Writes a state file atomically (temp + rename: readers never see half of it). Not synced: the state
/// dir is runtime state under the exec root (a tmpfs in production), meaningless after a reboot, and an
/// fsync here would sit on every container start's critical path.
fn write_file(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

impl Shim {
    fn serve(&mut self) {
        loop {
            if let Some((_, at)) = self.exited {
                let drained = self.out.iter().all(Option::is_none);
                if drained || at.elapsed() > DRAIN_AFTER_EXIT {
                    break;
                }
            }
            if self.pidfd.is_none() && self.exited.is_none() {
                // No pidfd (very old kernel): poll for the exit instead.
                self.check_exit_without_pidfd();
            }
            self.poll_once();
        }
        self.finish();
    }

    fn poll_once(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut push = |fd: RawFd, events: i16| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        };
        push(self.listener.as_raw_fd(), libc::POLLIN);
        for fd in &self.out {
            push(fd.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
        }
        push(
            self.pidfd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            libc::POLLIN,
        );
        let (stdin_fd, stdin_events) = self.stdin.poll_fd();
        push(stdin_fd, stdin_events);
        for c in &self.clients {
            // A client feeding a stdin that is backed up is not read until it drains: the client waits
            // in its socket's buffer, not in the shim's memory.
            let held = !c.read_closed && !self.input_has_room(&c.mode);
            let mut ev = if c.read_closed || held {
                0
            } else {
                libc::POLLIN
            };
            if !c.outbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            // Held back with nothing to write, it is left out: a hang-up (always reported) would wake
            // the loop again and again until the stdin drains.
            let fd = if held && ev == 0 {
                -1
            } else {
                c.stream.as_raw_fd()
            };
            push(fd, ev);
        }
        let exec_base = 5 + self.clients.len();
        for e in &self.execs {
            let held = exec_held_back(&self.clients, &e.id);
            for fd in &e.out {
                let fd = fd.as_ref().filter(|_| !held);
                push(fd.map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
            }
            let pidfd = if e.exited.is_some() {
                None
            } else {
                e.pidfd.as_ref()
            };
            push(pidfd.map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
            let (fd, ev) = e.stdin.poll_fd();
            push(fd, ev);
        }
        let exec_pending = self
            .execs
            .iter()
            .any(|e| e.exited.is_some() || e.pidfd.is_none());
        let timeout = if self.exited.is_some() || self.pidfd.is_none() || exec_pending {
            100
        } else {
            -1
        };
        // SAFETY: `fds` is a valid array of pollfd structs for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            return; // EINTR
        }
        if fds[0].revents != 0 {
            self.accept();
        }
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if fds[1 + i].revents != 0 {
                self.read_output(i, stream);
            }
        }
        if fds[3].revents != 0 && self.exited.is_none() {
            self.reap();
        }
        if fds[4].revents != 0 {
            self.stdin.flush();
        }
        let exec_fds: Vec<i16> = fds[exec_base..].iter().map(|f| f.revents).collect();
        let client_fds: Vec<i16> = fds[5..exec_base].iter().map(|f| f.revents).collect();
        for (i, revents) in client_fds.into_iter().enumerate() {
            if i >= self.clients.len() {
                break;
            }
            if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.read_client(i);
            }
            if revents & libc::POLLOUT != 0 {
                flush_client(&mut self.clients[i]);
            }
            // Hung up in both directions (the daemon went away) or broken: nothing more can be said to it,
            // and poll would report it again at once forever.
            if revents & (libc::POLLHUP | libc::POLLERR) != 0 && self.clients[i].read_closed {
                self.clients[i].dead = true;
            }
        }
        for (i, ev) in exec_fds.chunks(4).enumerate() {
            if i >= self.execs.len() {
                break;
            }
            for (k, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
                if ev[k] != 0 {
                    self.read_exec_output(i, k, stream);
                }
            }
            if ev[2] != 0 {
                self.reap_exec(i);
            }
            if ev[3] != 0 {
                self.execs[i].stdin.flush();
            }
        }
        self.finish_execs(false);
        self.clients.retain(|c| !c.dead);
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if let Err(e) = stream.set_nonblocking(true) {
                tracing::warn!(error = %e, "making a client connection non-blocking");
            }
            self.clients.push(Client {
                stream,
                mode: Mode::Command,
                inbuf: Vec::new(),
                outbuf: Queue::default(),
                waiting: false,
                read_closed: false,
                closing: false,
                dead: false,
            });
        }
    }

    fn read_output(&mut self, i: usize, stream: Stream) {
        let id = frame_stream(stream);
        let (log, clients, shim_id) = (&mut self.log, &mut self.clients, &self.args.id);
        read_chunk(&mut self.out[i], |data| {
            if let Err(e) = log.write(stream, data) {
                tracing::warn!(id = %shim_id, error = %e, "writing the log");
            }
            send_frame(clients, id, data, |mode| match mode {
                Mode::Attach { stdout, stderr, .. } => {
                    (stream == Stream::Stdout && *stdout) || (stream == Stream::Stderr && *stderr)
                }
                Mode::Command | Mode::Exec(_) => false,
            });
        });
    }

    fn reap(&mut self) {
        match self.container.wait() {
            Ok(status) => {
                self.exited = Some((status, Instant::now()));
                self.pidfd = None;
            }
            Err(e) => tracing::warn!(id = %self.args.id, error = %e, "waiting for the init"),
        }
    }

    fn check_exit_without_pidfd(&mut self) {
        if let Some(s) = wait_pid(self.container.pid(), libc::WNOHANG) {
            self.exited = Some((s, Instant::now()));
        }
    }

    /// Whether a client in `mode` may be read: what it sends for a stdin must find room there.
    fn input_has_room(&self, mode: &Mode) -> bool {
        match mode {
            Mode::Attach { stdin: true, .. } => self.stdin.has_room(),
            Mode::Exec(id) => self
                .execs
                .iter()
                .find(|e| &e.id == id)
                .is_none_or(|e| e.stdin.has_room()),
            Mode::Attach { .. } | Mode::Command => true,
        }
    }

    /// Reads what a client sent, one chunk per wake-up (a client streaming stdin as fast as it can must
    /// not keep the loop from the rest).
    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 32 * 1024];
        let n = loop {
            match self.clients[i].stream.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.clients[i].dead = true;
                    return;
                }
            }
        };
        if n == 0 {
            self.clients[i].read_closed = true;
            // The client's input ended: the process sees EOF once what is queued for it is written.
            // A pty's input stays open (its master is the output too; with a terminal, ending the
            // input is the process's own business: Ctrl-D).
            match &self.clients[i].mode {
                Mode::Exec(id) => {
                    if let Some(e) = self.execs.iter_mut().find(|e| &e.id == id) {
                        if e.console.is_none() {
                            e.stdin.end();
                        }
                    }
                }
                Mode::Attach { stdin: true, .. } if self.console.is_none() => self.stdin.end(),
                Mode::Attach { .. } | Mode::Command => {}
            }
            flush_client(&mut self.clients[i]);
            return;
        }
        let data = &buf[..n];
        match self.clients[i].mode {
            Mode::Attach { stdin: true, .. } => self.stdin.push(data),
            Mode::Attach { .. } => {}
            Mode::Exec(ref id) => {
                if let Some(e) = self.execs.iter_mut().find(|e| &e.id == id) {
                    e.stdin.push(data);
                }
            }
            Mode::Command => {
                self.clients[i].inbuf.extend_from_slice(data);
                self.handle_commands(i);
            }
        }
    }

    fn handle_commands(&mut self, i: usize) {
        while let Some(pos) = self.clients[i].inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.clients[i].inbuf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            let mut words = line.split_whitespace();
            let answer = match words.next() {
                Some("attach") => {
                    let flags: Vec<&str> = words.collect();
                    let rest = self.clients[i].inbuf.split_off(0);
                    let stdin = flags.contains(&"stdin") && self.args.stdin;
                    self.clients[i].mode = Mode::Attach {
                        stdin,
                        stdout: flags.contains(&"stdout"),
                        stderr: flags.contains(&"stderr"),
                    };
                    reply(&mut self.clients[i], "ok");
                    if stdin && !rest.is_empty() {
                        self.stdin.push(&rest);
                    }
                    return;
                }
                Some("exec") => {
                    let id = words.next().unwrap_or("").to_owned();
                    let stdin = words.next() == Some("1");
                    let json = line.splitn(4, ' ').nth(3).unwrap_or("").to_owned();
                    match self.start_exec(&id, stdin, &json) {
                        Ok(pid) => {
                            let rest = self.clients[i].inbuf.split_off(0);
                            self.clients[i].mode = Mode::Exec(id.clone());
                            reply(&mut self.clients[i], &format!("ok {pid}"));
                            if let Some(e) = self.execs.iter_mut().find(|e| e.id == id) {
                                if !rest.is_empty() {
                                    e.stdin.push(&rest);
                                }
                            }
                            return;
                        }
                        Err(e) => format!("err {}", e.to_string().replace('\n', " ")),
                    }
                }
                Some("start") => match self.container.start() {
                    Ok(()) => {
                        let mark = self.args.state_dir.join(protocol::STARTED_FILE);
                        if let Err(e) = write_file(&mark, b"") {
                            tracing::warn!(id = %self.args.id, error = %e, "writing the started mark");
                        }
                        "ok".to_owned()
                    }
                    Err(e) => format!("err {}", e.to_string().replace('\n', " ")),
                },
                Some("wait") => {
                    if let Some((status, _)) = self.exited {
                        format!("exit {} {}", status.code(), u8::from(self.oom_killed()))
                    } else {
                        self.clients[i].waiting = true;
                        continue;
                    }
                }
                Some("resize") => {
                    let mut num = || {
                        words
                            .next()
                            .and_then(|v| v.parse::<u16>().ok())
                            .unwrap_or(0)
                    };
                    let (rows, cols) = (num(), num());
                    let console = match words.next() {
                        Some(id) => self
                            .execs
                            .iter()
                            .find(|e| e.id == id)
                            .and_then(|e| e.console.as_ref()),
                        None => self.console.as_ref(),
                    };
                    match console {
                        Some(master) => {
                            let ws = libc::winsize {
                                ws_row: rows,
                                ws_col: cols,
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            };
                            // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
                            let rc =
                                unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                            if rc == 0 {
                                "ok".to_owned()
                            } else {
                                format!("err resize: {}", std::io::Error::last_os_error())
                            }
                        }
                        None => "err no terminal to resize".to_owned(),
                    }
                }
                Some("kill") => {
                    let sig = words
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(libc::SIGKILL);
                    match words.next() {
                        // An exec session's process (a timed-out healthcheck probe): signalled while it
                        // is unreaped, so its pid cannot have been reused.
                        Some(exec_id) => match self
                            .execs
                            .iter()
                            .find(|e| e.id == exec_id && e.exited.is_none())
                        {
                            Some(e) => {
                                // SAFETY: kill with the pid of our own child, not yet reaped.
                                if unsafe { libc::kill(e.pid, sig) } == 0 {
                                    "ok".to_owned()
                                } else {
                                    format!("err kill: {}", std::io::Error::last_os_error())
                                }
                            }
                            None => format!("err no running exec session {exec_id}"),
                        },
                        None => match self.container.kill(sig) {
                            Ok(()) => "ok".to_owned(),
                            Err(e) => format!("err {e}"),
                        },
                    }
                }
                _ => format!("err unknown command {line:?}"),
            };
            reply(&mut self.clients[i], &answer);
        }
    }

    /// Starts an exec session: `json` is the OCI process; it runs in the container with the
    /// bundle's spec otherwise (seccomp, cgroup, namespaces). Returns the process's pid.
    fn start_exec(&mut self, id: &str, stdin: bool, json: &str) -> Result<libc::pid_t> {
        if id.is_empty() || self.execs.iter().any(|e| e.id == id) {
            return Err(Error::State(format!(
                "exec {id:?}: missing or already running"
            )));
        }
        if self.exited.is_some() {
            return Err(Error::State("the container is not running".into()));
        }
        let process: oci_spec::runtime::Process = serde_json::from_str(json)?;
        let terminal = process.terminal().unwrap_or(false);
        let cwd = process.cwd().display().to_string();
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin_r, stdin_w) = if stdin && !terminal {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        } else {
            let null = std::fs::File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
            (Some(OwnedFd::from(null)), None)
        };
        let stdio = if terminal {
            Stdio::default()
        } else {
            Stdio {
                stdin: stdin_r,
                stdout: Some(out_w),
                stderr: Some(err_w),
            }
        };
        let started = self.container.exec(
            &self.args.bundle,
            process,
            stdio,
            self.args.seccomp_cache.as_deref(),
        );
        release_setup_memory();
        let p = started.map_err(|e| Error::Start {
            message: exec_error(&e, &cwd),
            source: e,
        })?;
        let (out, stdin_w) = match &p.console {
            Some(master) => {
                let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup pty", e));
                let input = if stdin { Some(dup(master)?) } else { None };
                ([Some(dup(master)?), None], input)
            }
            None => ([Some(out_r), Some(err_r)], stdin_w),
        };
        for fd in out.iter().flatten() {
            nonblocking(fd);
        }
        if let Some(w) = &stdin_w {
            nonblocking(w);
        }
        let pidfd = rustix::process::Pid::from_raw(p.pid).and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        self.execs.push(ExecSession {
            id: id.to_owned(),
            pid: p.pid,
            pidfd,
            out,
            console: p.console,
            stdin: Input::new(stdin_w),
            exited: None,
        });
        Ok(p.pid)
    }

    fn read_exec_output(&mut self, i: usize, k: usize, stream: Stream) {
        let id = frame_stream(stream);
        let (e, clients) = (&mut self.execs[i], &mut self.clients);
        let exec_id = &e.id;
        read_chunk(&mut e.out[k], |data| {
            send_frame(
                clients,
                id,
                data,
                |mode| matches!(mode, Mode::Exec(x) if x == exec_id),
            );
        });
    }

    fn reap_exec(&mut self, i: usize) {
        let e = &mut self.execs[i];
        if e.exited.is_some() {
            return;
        }
        if let Some(s) = wait_pid(e.pid, libc::WNOHANG) {
            e.exited = Some((s, Instant::now()));
            e.pidfd = None;
        }
    }

    /// Ends the exec sessions whose process has exited and whose output is drained (or has been
    /// held open too long by a child): their client gets the exit frame and is closed. With `all`
    /// (the container is gone), every session ends, its process killed if need be.
    fn finish_execs(&mut self, all: bool) {
        for i in 0..self.execs.len() {
            if self.execs[i].pidfd.is_none() {
                // No pidfd (very old kernel): poll for the exit.
                self.reap_exec(i);
            }
            if all && self.execs[i].exited.is_none() {
                let e = &mut self.execs[i];
                // SAFETY: kill of our own, unreaped child.
                unsafe { libc::kill(e.pid, libc::SIGKILL) };
                if wait_pid(e.pid, 0).is_none() {
                    tracing::warn!(pid = e.pid, "reaping a killed exec process");
                }
                e.exited = Some((ExitStatus::Signaled(libc::SIGKILL), Instant::now()));
            }
        }
        let mut k = 0;
        while k < self.execs.len() {
            if exec_held_back(&self.clients, &self.execs[k].id) {
                // Its output is not being read while the client catches up: the time to drain what is
                // left counts from when it is read again.
                if let Some((_, at)) = &mut self.execs[k].exited {
                    *at = Instant::now();
                }
            }
            let e = &self.execs[k];
            let done = match e.exited {
                Some((_, at)) => {
                    all || e.out.iter().all(Option::is_none) || at.elapsed() > DRAIN_AFTER_EXIT
                }
                None => false,
            };
            if !done {
                k += 1;
                continue;
            }
            let e = self.execs.remove(k);
            let code = e.exited.map_or(255, |(s, _)| s.code());
            let payload = format!("exit {code}");
            for c in &mut self.clients {
                if matches!(&c.mode, Mode::Exec(x) if *x == e.id) {
                    c.outbuf
                        .push(&stdio::frame::header(protocol::CONTROL, payload.len()));
                    c.outbuf.push(payload.as_bytes());
                    c.closing = true;
                    flush_client(c);
                }
            }
        }
    }

    /// Whether the OOM killer ended the container: it killed a process in the container's cgroup (read
    /// before the cgroup is removed).
    fn oom_killed(&self) -> bool {
        self.container.oom_kills() > 0
    }

    /// Records the exit, tells waiters, flushes attached clients, removes the container, and returns.
    fn finish(&mut self) {
        if let Err(e) = self.log.finish() {
            tracing::warn!(id = %self.args.id, error = %e, "writing the last partial line to the log");
        }
        let Some((status, _)) = self.exited else {
            return;
        };
        let oom = self.oom_killed();
        let record = ExitRecord {
            exit_code: status.code(),
            oom_killed: oom,
            finished_at: crate::logfile::now(),
        };
        if let Ok(data) = serde_json::to_vec(&record) {
            if let Err(e) = write_file(&self.args.state_dir.join(protocol::EXIT_FILE), &data) {
                tracing::warn!(id = %self.args.id, error = %e, "writing the exit record");
            }
        }
        self.finish_execs(true);
        // Remove the container (its cgroup, an external runtime's state) before anyone hears of the exit:
        // a `docker rm` that follows must find nothing left.
        let container = std::mem::replace(&mut self.container, Backend::Deleted);
        if let Err(e) = container.delete() {
            tracing::warn!(id = %self.args.id, error = %e, "removing the container");
        }
        let line = format!("exit {} {}\n", status.code(), u8::from(oom));
        for c in &mut self.clients {
            if c.waiting {
                c.outbuf.push(line.as_bytes());
            }
            // The last words to each client, best effort: a client that has gone needs none.
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = c.stream.write_all(c.outbuf.front());
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        self.clients.clear();
        crate::cleanup::remove_file(&self.args.socket, "the control socket");
    }
}

/// Docker's wording for a process that cannot be executed: the docker CLI maps "executable file not
/// found" and "no such file or directory" to exit code 127, "permission denied" to 126.
pub(crate) fn start_error(e: &runtime::Error) -> String {
    match e {
        runtime::Error::Exec { program, source } => {
            let why = match source.raw_os_error() {
                Some(libc::ENOENT) if !program.contains('/') => {
                    "executable file not found in $PATH".to_owned()
                }
                Some(libc::ENOENT) => format!("stat {program}: no such file or directory"),
                Some(libc::EACCES) | Some(libc::EPERM) => "permission denied".to_owned(),
                _ => source.to_string(),
            };
            format!("failed to start container process: exec: \"{program}\": {why}")
        }
        other => format!("failed to start container process: {other}"),
    }
}

/// An exec that could not start, in the words dockerd passes on from runc (the docker CLI shows them, and
/// the engine maps "not found" to 127, "permission denied" to 126).
fn exec_error(e: &runtime::Error, cwd: &str) -> String {
    match e {
        // An external runtime's own message, without the prefix the engine adds back.
        runtime::Error::Init { stage, detail, .. } if *stage == "exec" => detail
            .trim_start_matches("exec failed: ")
            .trim_start_matches("unable to start container process: ")
            .to_owned(),
        runtime::Error::Init { stage, source, .. } if *stage == "chdir to cwd" => {
            format!(
                "chdir to cwd ({cwd:?}) set in config.json failed: {}",
                runtime::error::go_errno_text(source)
            )
        }
        other => start_error(other)
            .trim_start_matches("failed to start container process: ")
            .to_owned(),
    }
}

/// Reads one chunk (at most [`READ_CHUNK`]) from a non-blocking pipe and hands it to `on_data`; at EOF or
/// an error the pipe is closed. One read per wake-up keeps the loop fair: a pipe that never runs dry
/// (`yes`) is read again on the next turn, after everything else that was ready.
fn read_chunk(pipe: &mut Option<OwnedFd>, on_data: impl FnOnce(&[u8])) {
    let Some(fd) = pipe.as_ref() else {
        return;
    };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => return on_data(&buf[..n]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return,
            Err(_) => break,
        }
    }
    *pipe = None;
}

/// Whether exec session `id`'s client has so much output waiting that the session's pipes are left
/// unread until it catches up.
fn exec_held_back(clients: &[Client], id: &str) -> bool {
    clients.iter().any(|c| {
        !c.dead
            && matches!(&c.mode, Mode::Exec(x) if x == id)
            && c.outbuf.len() >= EXEC_CLIENT_BACKLOG
    })
}

/// Docker's stream number for a log stream.
fn frame_stream(stream: Stream) -> u8 {
    if stream == Stream::Stdout {
        protocol::STDOUT
    } else {
        protocol::STDERR
    }
}

/// Queues `data` as one multiplexed frame to every live client `wants`. An attach client that has fallen
/// [`MAX_CLIENT_BUFFER`] behind misses frames until it catches up (the log has them); whole frames are
/// skipped, so its stream stays well-formed.
fn send_frame(clients: &mut [Client], stream: u8, data: &[u8], wants: impl Fn(&Mode) -> bool) {
    for c in clients.iter_mut().filter(|c| !c.dead && wants(&c.mode)) {
        if c.outbuf.len() > MAX_CLIENT_BUFFER {
            continue;
        }
        c.outbuf.push(&stdio::frame::header(stream, data.len()));
        c.outbuf.push(data);
        flush_client(c);
    }
}

fn reply(c: &mut Client, text: &str) {
    c.outbuf.push(text.as_bytes());
    c.outbuf.push(b"\n");
    flush_client(c);
}

fn flush_client(c: &mut Client) {
    while !c.outbuf.is_empty() {
        match c.stream.write(c.outbuf.front()) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => c.outbuf.consume(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
    if c.outbuf.is_empty() && c.closing {
        // The peer may have closed first: the connection is done either way.
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        c.dead = true;
        return;
    }
    // A command client that has said all it will and got all its answers is done.
    if c.outbuf.is_empty() && c.read_closed && !c.waiting && matches!(c.mode, Mode::Command) {
        c.dead = true;
    }
}
