//! The instructions that only change the image configuration (ENV, LABEL, ARG, EXPOSE,
//! VOLUME, USER, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER): each
//! updates the stage's config and returns the comment dockerd records for it
//! (`/bin/sh -c #(nop)  <comment>` in the history).

use std::collections::BTreeMap;

use crate::image_config::{Empty, HealthConfig};
use crate::instructions::{CommandLine, Healthcheck, InstructionKind};

use super::format::{healthcheck_comment, plain_list, quote_list};
use super::state::StageState;
use super::{BuildError, Output};

/// Applies a config-only instruction (already expanded) to `st`; returns its commit comment.
pub(crate) fn apply(
    st: &mut StageState,
    kind: InstructionKind,
    out: &mut Output<'_>,
) -> Result<String, BuildError> {
    let run = &mut st.run;
    Ok(match kind {
        InstructionKind::Env(kvs) => {
            let env = run.env.get_or_insert_with(Vec::new);
            let mut comment = String::from("ENV");
            for kv in kvs {
                let entry = format!("{}={}", kv.key, kv.value);
                comment.push(' ');
                comment.push_str(&entry);
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == kv.key)
                {
                    Some(slot) => *slot = entry,
                    None => env.push(entry),
                }
            }
            comment
        }
        InstructionKind::Label(kvs) => {
            let labels = run.labels.get_or_insert_with(BTreeMap::new);
            let mut comment = String::from("LABEL");
            for kv in kvs {
                comment.push_str(&format!(" {}={}", kv.key, kv.value));
                labels.insert(kv.key, kv.value);
            }
            comment
        }
        InstructionKind::Arg(defs) => {
            let mut parts = Vec::new();
            for def in defs {
                parts.push(match &def.value {
                    Some(v) => format!("{}={v}", def.key),
                    None => def.key.clone(),
                });
                st.args.add(&def.key, def.value);
            }
            format!("ARG {}", parts.join(" "))
        }
        InstructionKind::Expose(ports) => {
            let set = run.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in &ports {
                for key in port_keys(p)? {
                    set.insert(key, Empty {});
                }
            }
            format!("EXPOSE {}", ports.join(" "))
        }
        InstructionKind::Volume(paths) => {
            let set = run.volumes.get_or_insert_with(BTreeMap::new);
            for v in &paths {
                if v.is_empty() {
                    return Err(BuildError::Invalid(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                set.insert(v.clone(), Empty {});
            }
            format!("VOLUME {}", plain_list(&paths))
        }
        InstructionKind::User(user) => {
            run.user = user.clone();
            format!("USER {user}")
        }
        InstructionKind::Cmd(cl) => {
            let cmd = command(&cl, &st.shell())?;
            st.run.cmd = Some(cmd.clone());
            if !cl.args.is_empty() {
                st.cmd_set = true;
            }
            format!("CMD {}", quote_list(&cmd))
        }
        InstructionKind::Entrypoint(cl) => {
            let ep = command(&cl, &st.shell())?;
            st.run.entrypoint = Some(ep.clone());
            if !st.cmd_set {
                st.run.cmd = None;
            }
            format!("ENTRYPOINT {}", quote_list(&ep))
        }
        InstructionKind::Shell(shell) => {
            run.shell = Some(shell.clone());
            format!("SHELL {}", plain_list(&shell))
        }
        InstructionKind::StopSignal(sig) => {
            check_signal(&sig)?;
            run.stop_signal = sig.clone();
            format!("STOPSIGNAL {sig}")
        }
        InstructionKind::Healthcheck(h) => {
            let config = match h {
                Healthcheck::None => HealthConfig {
                    test: vec!["NONE".to_string()],
                    ..Default::default()
                },
                Healthcheck::Cmd {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => {
                    if let Some(old) = &run.healthcheck {
                        if old.test.first().is_some_and(|t| t != "NONE") {
                            out.line(&format!(
                                "Note: overriding previous HEALTHCHECK: {}",
                                plain_list(&old.test)
                            ));
                        }
                    }
                    let ns =
                        |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                    HealthConfig {
                        test,
                        interval: ns(interval),
                        timeout: ns(timeout),
                        start_period: ns(start_period),
                        start_interval: ns(start_interval),
                        retries: i64::from(retries),
                    }
                }
            };
            let comment = format!("HEALTHCHECK {}", healthcheck_comment(&config));
            run.healthcheck = Some(config);
            comment
        }
        InstructionKind::Onbuild(expr) => {
            run.on_build.get_or_insert_with(Vec::new).push(expr.clone());
            format!("ONBUILD {expr}")
        }
        InstructionKind::Maintainer(m) => {
            st.maintainer = m.clone();
            format!("MAINTAINER {m}")
        }
        InstructionKind::Run(_)
        | InstructionKind::Workdir(_)
        | InstructionKind::Copy(_)
        | InstructionKind::Add(_) => {
            return Err(BuildError::Invalid(
                "internal: not a config-only instruction".into(),
            ))
        }
    })
}

/// The argv of CMD/ENTRYPOINT/RUN: exec form as is, shell form behind the stage's shell.
pub(crate) fn command(cl: &CommandLine, shell: &[String]) -> Result<Vec<String>, BuildError> {
    if !cl.prepend_shell {
        return Ok(cl.args.clone());
    }
    let mut argv = shell.to_vec();
    argv.push(script(cl)?);
    Ok(argv)
}

// The shell-form command text. A command that is exactly one heredoc (`RUN <<EOF`) runs the
// heredoc's body as the script; otherwise the heredocs are put back after the command line
// (`cat <<EOF > f` + body + delimiter) for the shell to read, as BuildKit does.
fn script(cl: &CommandLine) -> Result<String, BuildError> {
    let text = cl.args.join(" ");
    match cl.files.as_slice() {
        [] => Ok(text),
        [file] if is_lone_heredoc(&text, &file.name) => Ok(if file.chomp {
            crate::parser::chomp_heredoc_content(&file.data)
        } else {
            file.data.clone()
        }),
        files => {
            let mut script = text;
            for f in files {
                script.push('\n');
                script.push_str(&f.data);
                if !f.data.is_empty() && !f.data.ends_with('\n') {
                    script.push('\n');
                }
                script.push_str(&f.name);
            }
            Ok(script)
        }
    }
}

fn is_lone_heredoc(text: &str, name: &str) -> bool {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let rest = rest.trim_matches(|c| c == '"' || c == '\'');
    rest == name
}

/// The `port/proto` keys of one EXPOSE word (`80`, `80/udp`, `8000-8002/tcp`), as Docker's
/// `nat.ParsePortSpecs` makes them.
fn port_keys(spec: &str) -> Result<Vec<String>, BuildError> {
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, proto)) => (p, proto.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(BuildError::Invalid(format!("Invalid proto: {proto}")));
    }
    let bad = || BuildError::Invalid(format!("Invalid containerPort: {ports}"));
    let parse = |s: &str| s.parse::<u16>().map_err(|_| bad());
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(BuildError::Invalid(format!(
            "Invalid range specified for container port: {ports}"
        )));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// STOPSIGNAL accepts a number or a name with or without `SIG` (and `RTMIN+n`).
fn check_signal(sig: &str) -> Result<(), BuildError> {
    let bad = || BuildError::Invalid(format!("Invalid signal: {sig}"));
    if let Ok(n) = sig.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(bad())
        };
    }
    let name = sig.to_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    if SIGNALS.contains(&name) {
        return Ok(());
    }
    let rt = |prefix: &str, max: u32| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n <= max)
    };
    if name == "RTMIN" || name == "RTMAX" || rt("RTMIN+", 15) || rt("RTMAX-", 14) {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_expand_as_nat_does() {
        assert_eq!(port_keys("80").unwrap_or_default(), vec!["80/tcp"]);
        assert_eq!(port_keys("53/UDP").unwrap_or_default(), vec!["53/udp"]);
        assert_eq!(
            port_keys("8000-8002").unwrap_or_default(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(
            port_keys("x").map_err(|e| e.to_string()),
            Err("Invalid containerPort: x".to_string())
        );
        assert_eq!(
            port_keys("80/foo").map_err(|e| e.to_string()),
            Err("Invalid proto: foo".to_string())
        );
    }

    #[test]
    fn heredocs_reach_the_shell() {
        let loaded = crate::load(
            "Dockerfile",
            b"FROM a\nRUN <<EOF\necho one\nEOF\nRUN cat <<EOF > /f && cat <<'END'\n$x\nEOF\ny\nEND\nRUN <<-EOF\n\techo tab\n\tEOF\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let shell = vec!["/bin/sh".to_string(), "-c".to_string()];
        let argv: Vec<Vec<String>> = loaded.staged.stages[0]
            .instructions
            .iter()
            .map(|i| match &i.kind {
                InstructionKind::Run(r) => command(&r.command, &shell).unwrap_or_default(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(argv[0][2], "echo one\n", "a lone heredoc is the script");
        assert_eq!(
            argv[1][2], "cat <<EOF > /f && cat <<'END'\n$x\nEOF\ny\nEND",
            "other heredocs go back to the shell as written"
        );
        assert_eq!(argv[2][2], "echo tab\n", "<<- strips leading tabs");
    }

    #[test]
    fn signals_are_checked() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check_signal("SIGNOPE").map_err(|e| e.to_string()),
            Err("Invalid signal: SIGNOPE".to_string())
        );
    }
}
