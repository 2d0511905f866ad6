//! The runc-style split lifecycle across processes: `create` leaves the init waiting on a FIFO
//! and records the container in the state root; `start`, `kill` and `delete` find it there.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::container::{Container, CreateOptions, Stdio};
use crate::error::{Error, Result};
use crate::spec::Bundle;
use crate::state::{process_start_time, validate_id, State, Status};

/// Creates container `id` from the bundle at `bundle`; the init waits for [`start`].
pub fn create(
    root: &Path,
    bundle: &Path,
    id: &str,
    opts: &CreateOptions,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
) -> Result<()> {
    validate_id(id)?;
    let b = Bundle::load(bundle)?;
    let terminal = b
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && console_socket.is_none() {
        return Err(Error::InvalidSpec(
            "cannot allocate tty if the runtime will detach without setting console socket".into(),
        ));
    }
    if !terminal && console_socket.is_some() {
        return Err(Error::InvalidSpec(
            "cannot use console socket if the runtime will not detach or allocate tty".into(),
        ));
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io("mkdir", root, e))?;
    let dir = State::dir(root, id);
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::State(format!("container {id} already exists")),
        _ => Error::io("mkdir", &dir, e),
    })?;
    let r = create_in(root, &b, id, opts, pid_file, console_socket);
    if r.is_err() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "removing the state of a container that failed to be created");
        }
    }
    r
}

fn create_in(
    root: &Path,
    b: &Bundle,
    id: &str,
    opts: &CreateOptions,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
) -> Result<()> {
    let fifo = State::fifo(root, id);
    let c_fifo = CString::new(fifo.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidSpec("NUL in state root".into()))?;
    // SAFETY: `c_fifo` is NUL-terminated.
    if unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) } < 0 {
        return Err(Error::io("mkfifo", &fifo, std::io::Error::last_os_error()));
    }
    let mut c = Container::create(id, b, Stdio::default(), opts)?;
    if let (Some(master), Some(path)) = (c.take_console(), console_socket) {
        // runc's --console-socket: the caller listens there and gets the pty master.
        let sent = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| Error::io("connect", path, e))
            .and_then(|sock| {
                use std::os::fd::AsRawFd;
                crate::tty::send_fd(sock.as_raw_fd(), master.as_raw_fd()).map_err(|e| {
                    Error::Syscall {
                        call: "send console",
                        source: std::io::Error::from_raw_os_error(e),
                    }
                })
            });
        if let Err(e) = sent {
            if let Err(err) = c.delete() {
                tracing::warn!(id, error = %err, "deleting a container whose pty could not be sent");
            }
            return Err(e);
        }
    }
    let st = State {
        oci_version: "1.0.2".into(),
        id: id.to_string(),
        pid: c.pid(),
        bundle: b.dir.clone(),
        start_time: process_start_time(c.pid()).unwrap_or(0),
        cgroup_dirs: c.cgroup().map(|cg| cg.dirs()).unwrap_or_default(),
    };
    st.save(root)?;
    if let Some(p) = pid_file {
        std::fs::write(p, c.pid().to_string()).map_err(|e| Error::io("write", p, e))?;
    }
    // The init is left waiting on the FIFO; it outlives this process.
    Ok(())
}

/// Lets a created container's process run.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    match st.status(root) {
        Status::Created => {}
        s => {
            return Err(Error::State(
                format!("cannot start a container that is {s:?}").to_lowercase(),
            ))
        }
    }
    let fifo = State::fifo(root, id);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|e| Error::io("open", &fifo, e))?;
    f.write_all(b"1")
        .map_err(|e| Error::io("write", &fifo, e))?;
    std::fs::remove_file(&fifo).map_err(|e| Error::io("remove", &fifo, e))
}

/// Parses a signal name (`TERM`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

/// Sends a signal to a container's init.
pub fn kill(root: &Path, id: &str, signal: &str) -> Result<()> {
    let st = State::load(root, id)?;
    let sig = parse_signal(signal)
        .ok_or_else(|| Error::InvalidSpec(format!("unknown signal {signal:?}")))?;
    if !st.alive() {
        return Err(Error::State(format!("container {id} is not running")));
    }
    // SAFETY: kill with a pid checked against its start time just above.
    if unsafe { libc::kill(st.pid, sig) } < 0 {
        return Err(Error::last_os("kill"));
    }
    Ok(())
}

/// Removes a stopped container (or, with `force`, kills it first), its cgroup and its state.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = State::load(root, id)?;
    let status = st.status(root);
    if status != Status::Stopped {
        if !force {
            return Err(Error::State(format!(
                "cannot delete container {id} that is not stopped: {}",
                format!("{status:?}").to_lowercase()
            )));
        }
        // SAFETY: kill with a pid checked against its start time by `status`.
        unsafe { libc::kill(st.pid, libc::SIGKILL) };
        for _ in 0..200 {
            if !st.alive() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    for d in st.cgroup_dirs.iter().rev() {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Cgroup {
                    path: d.clone(),
                    source,
                })
            }
        }
    }
    let dir = State::dir(root, id);
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_with_or_without_sig_and_by_number() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("BOGUS"), None);
    }
}
