//! docker-init: PID 1 of a container run with `--init`. Usage: `docker-init [--] COMMAND [ARG...]`.
//!
//! Every asynchronous signal is blocked and taken with `sigtimedwait`: SIGCHLD reaps (the command and any
//! orphan), the others are forwarded to the command. A blocked signal reaches PID 1 even though it has no
//! handler (the kernel drops unhandled signals to a namespace's init only when they are not blocked).
//! Built on its own with `-C target-feature=+crt-static` (see the crate's build.rs); only std and libc.

use std::ffi::{c_int, c_long};
use std::os::unix::process::CommandExt;
use std::process::Command;

#[repr(C)]
struct SigSet([u64; 16]);

#[repr(C)]
struct SigInfo([u64; 16]);

#[repr(C)]
struct Timespec {
    tv_sec: c_long,
    tv_nsec: c_long,
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const Timespec) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn setpgid(pid: c_int, pgid: c_int) -> c_int;
    fn getpgrp() -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: c_int) -> c_int;
}

const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;
const SIGCHLD: c_int = 17;
/// Signals about the process itself, never blocked.
const SYNCHRONOUS: [c_int; 7] = [4, 5, 6, 7, 8, 11, 31]; // ILL TRAP ABRT BUS FPE SEGV SYS

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("usage: docker-init [--] COMMAND [ARG...]");
        std::process::exit(1);
    }
    let mut set = SigSet([0; 16]);
    // SAFETY: plain libc calls on a sigset_t-sized buffer we own.
    unsafe {
        sigfillset(&mut set);
        for s in SYNCHRONOUS {
            sigdelset(&mut set, s);
        }
        sigprocmask(SIG_SETMASK, &set, std::ptr::null_mut());
    }
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]).arg0(&args[0]);
    // SAFETY: the hook only makes async-signal-safe calls (setpgid, getpgrp, tcsetpgrp, sigprocmask) on
    // values on its own stack.
    // - The command gets a process group of its own and, on a terminal, the foreground: Ctrl-C then
    //   reaches it once, from the terminal, and not a second time forwarded by the init, as with tini.
    //   tcsetpgrp from what is still a background group is allowed because SIGTTOU is blocked here; it
    //   fails harmlessly (ENOTTY) when stdin is not a terminal.
    // - std keeps the parent's mask in the child, so the command would otherwise start with every
    //   signal blocked and ignore what is forwarded to it.
    unsafe {
        cmd.pre_exec(|| {
            setpgid(0, 0);
            tcsetpgrp(0, getpgrp());
            let empty = SigSet([0; 16]);
            sigprocmask(SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_lowercase();
            eprintln!("docker-init: exec {} failed: {text}", args[0]);
            let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
            std::process::exit(code);
        }
    };
    let pid = child.id() as c_int;
    let tick = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        let mut info = SigInfo([0; 16]);
        // SAFETY: the set and the buffers are ours and sized as the C types.
        let sig = unsafe { sigtimedwait(&set, &mut info, &tick) };
        if sig > 0 && sig != SIGCHLD {
            // SAFETY: kill(2) on the command's pid.
            unsafe { kill(pid, sig) };
            continue;
        }
        // SIGCHLD, or the periodic tick: reap everything that has exited.
        loop {
            let mut status: c_int = 0;
            // SAFETY: waitpid(2) with a status slot we own.
            let r = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if r <= 0 {
                break;
            }
            if r == pid {
                let code = if status & 0x7f == 0 {
                    (status >> 8) & 0xff
                } else {
                    128 + (status & 0x7f)
                };
                std::process::exit(code);
            }
        }
    }
}
