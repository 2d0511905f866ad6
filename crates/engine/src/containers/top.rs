//! `docker top CONTAINER [ps OPTIONS]` with options: as dockerd, the host's `ps` runs with the options (and
//! `-q` with the container's pids, which some option sets refuse, so then without it), and only the header
//! and the rows whose PID is one of the container's are kept (the PID column found by its title).

use std::path::PathBuf;

use bollard_stubs::models::ContainerTopResponse;

use crate::error::{Context, Error, Result};

/// The pids of the processes in the pid namespace `ns` (a `/proc/PID/ns/pid` link target).
pub(crate) fn namespace_pids(ns: &PathBuf) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_ref()
                == Some(ns)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// dockerd refuses `-o x=PID…` style column renames of the PID column other than to `pid` (the rows could
/// not be matched to the container's processes).
pub(crate) fn validate_args(args: &str) -> Result<()> {
    let words: Vec<&str> = args.split_ascii_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        // `key=PID…`, possibly with the value as the next word (`key= PID`).
        let Some((key, value)) = w.split_once('=') else {
            continue;
        };
        let value = if value.is_empty() {
            words.get(i + 1).copied().unwrap_or("")
        } else {
            value
        };
        let key = key.rsplit(',').next().unwrap_or(key);
        if value.starts_with("PID") && key != "pid" && i > 0 {
            return Err(Error::InvalidParameter(format!(
                "specifying \"{key}={value}\" is not allowed"
            )));
        }
    }
    Ok(())
}

/// Runs `ps ARGS -qPIDS` (or `ps ARGS` if that fails) and keeps the container's rows.
pub(crate) async fn ps(args: &str, pids: &[u32]) -> Result<ContainerTopResponse> {
    let argv: Vec<&str> = args.split(' ').collect();
    let list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let run = |with_pids: bool| {
        let mut cmd = tokio::process::Command::new("ps");
        cmd.args(&argv);
        if with_pids {
            cmd.arg(format!("-q{list}"));
        }
        cmd.stdin(std::process::Stdio::null());
        cmd.output()
    };
    let out = match run(true).await {
        Ok(o) if o.status.success() => o,
        _ => {
            let o = run(false).await.context("ps")?;
            if !o.status.success() {
                let stderr = String::from_utf8_lossy(&o.stderr);
                let first = stderr.lines().next().unwrap_or("").to_owned();
                let why = if first.is_empty() {
                    format!("exit status {}", o.status.code().unwrap_or(-1))
                } else {
                    first
                };
                return Err(Error::System(format!("ps: {why}")));
            }
            o
        }
    };
    parse(&String::from_utf8_lossy(&out.stdout), pids)
}

/// Keeps the header and the rows of `pids`; thread rows (`-` in the PID column, with `m`) follow their
/// process. Columns past the last title join the last one (a command with spaces).
pub(crate) fn parse(output: &str, pids: &[u32]) -> Result<ContainerTopResponse> {
    let mut lines = output.split('\n');
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    let pid_index = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::System("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    let mut in_container = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_index) else {
            continue;
        };
        let keep = if *pid == "-" {
            in_container
        } else {
            let p: u32 = pid
                .parse()
                .with_context(|| format!("Unexpected pid '{pid}'"))?;
            in_container = pids.contains(&p);
            in_container
        };
        if keep {
            let last = titles.len() - 1;
            let mut row: Vec<String> = fields.iter().take(last).map(|s| s.to_string()).collect();
            row.push(fields.get(last..).map(|r| r.join(" ")).unwrap_or_default());
            processes.push(row);
        }
    }
    Ok(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(processes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_kept_by_the_pid_column_and_commands_keep_their_spaces() {
        let out = "USER PID %CPU COMMAND\nroot 7 0.0 sleep 100\nroot 8 0.0 other thing\nroot 9 0.0 sh -c x\n";
        let r = parse(out, &[7, 9]).unwrap();
        assert_eq!(r.titles.unwrap(), ["USER", "PID", "%CPU", "COMMAND"]);
        let p = r.processes.unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0], ["root", "7", "0.0", "sleep 100"]);
        assert_eq!(p[1][3], "sh -c x");
    }

    #[test]
    fn output_without_a_pid_column_is_an_error() {
        let e = parse("USER COMMAND\nroot sh\n", &[1]).unwrap_err();
        assert_eq!(e.to_string(), "Couldn't find PID field in ps output");
    }

    #[test]
    fn renaming_the_pid_column_is_refused() {
        assert!(validate_args("-o pid,comm").is_ok());
        assert!(validate_args("aux").is_ok());
        assert!(validate_args("-o foo=PID").is_err());
    }
}
