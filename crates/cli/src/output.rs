//! Writing to the terminal: stdout that tolerates closed pipes, terminal checks, and prompts.

use std::io::{IsTerminal, Write};

use crate::error::CliError;

/// Writes `text` to stdout; a closed pipe (`berth images | head`) is not an error.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
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
