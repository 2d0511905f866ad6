//! Writing to the terminal: stdout that tolerates closed pipes, terminal checks, and prompts.

use std::io::{IsTerminal, Write};

use crate::error::CliError;

/// Writes `text` to stdout; a closed pipe (`berth images | head`) ends the process quietly.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// The error for a failed write to stdout; a closed pipe is no error but the end, as for the docker CLI.
pub fn stdout_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        end_on_closed_pipe();
    }
    e.into()
}

/// Ends the process as the docker CLI ends when the reader of its stdout is gone (`berth logs -f c |
/// head`): killed by SIGPIPE, printing nothing, status 141 in a shell. Rust ignores SIGPIPE so that
/// writes fail instead; a streaming command would otherwise keep reading the daemon with nowhere to
/// write.
pub fn end_on_closed_pipe() -> ! {
    // SAFETY: restoring SIGPIPE's default action and raising it touch no memory of this process; the
    // signal then terminates it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// For a command that follows a stream which may go quiet (`events`): ends the process as
/// [`end_on_closed_pipe`] does as soon as stdout is a pipe whose reader has gone, not at the next write,
/// which may never come (`berth events | head -1` once the history has been written). A thread waits in
/// `poll` for the pipe's error condition; stdout that is no pipe is not watched.
pub fn end_when_stdout_reader_goes() {
    // SAFETY: fstat writes only into the zeroed stat buffer it is given.
    let is_pipe = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(libc::STDOUT_FILENO, &mut st) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
    };
    if !is_pipe {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("stdout-watch".into())
        .spawn(|| loop {
            let mut fds = libc::pollfd {
                fd: libc::STDOUT_FILENO,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the duration of the call.
            let n = unsafe { libc::poll(&mut fds, 1, -1) };
            if n > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                end_on_closed_pipe();
            }
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return;
            }
        });
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks `question` followed by ` [y/N] ` and reads the answer from stdin; only "y"/"Y" is yes.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    print(&format!("{question} [y/N] "))?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}
