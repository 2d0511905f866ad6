//! The `berth` CLI as a drop-in for the docker CLI: contexts shared between the two, prune commands,
//! shell completion, Go templates, `load`, closed pipes and `--since`/`--until`, each compared with what
//! the real docker CLI prints against the same daemon.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Daemon;

/// stdout, stderr and exit status, for comparing the two CLIs.
fn text(out: &Output) -> (String, String, Option<i32>) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// Either CLI with no daemon address of its own: only `env` (and the config directory) decide.
fn bare(bin: &Path, config: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the CLI")
}

/// Replaces 64-hex IDs and 12-hex short IDs, which differ between two runs.
fn ids(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 64 || run.len() == 12 {
            out.push_str("<id>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[test]
fn contexts_made_by_either_cli_are_used_by_the_other() {
    let docker = common::docker_bin();
    let berth = common::berth_bin();
    let d = Daemon::start();
    let host = d.host();
    let config = d.dir.path().join("shared-config");

    // A context made by each CLI, used by the other.
    let out = bare(
        &docker,
        &config,
        &[],
        &[
            "context",
            "create",
            "dk",
            "--docker",
            &format!("host={host}"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = bare(
        &berth,
        &config,
        &[],
        &[
            "context",
            "create",
            "bk",
            "--description",
            "made by berth",
            "--docker",
            &format!("host={host}"),
        ],
    );
    assert_eq!(
        text(&out),
        (
            "bk\n".into(),
            "Successfully created context \"bk\"\n".into(),
            Some(0)
        )
    );
    let out = bare(&berth, &config, &[], &["-c", "dk", "ps", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = bare(&docker, &config, &[], &["-c", "bk", "ps", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    // The same metadata file, byte for byte, from the same command in two fresh config directories.
    let args = [
        "context",
        "create",
        "same",
        "--description",
        "d",
        "--docker",
        "host=tcp://127.0.0.1:2375",
    ];
    let (c1, c2) = (d.dir.path().join("c1"), d.dir.path().join("c2"));
    assert!(bare(&docker, &c1, &[], &args).status.success());
    assert!(bare(&berth, &c2, &[], &args).status.success());
    let meta =
        "contexts/meta/0967115f2813a3541eaef77de9d9d5773f1c0c04314b0bbfe4ff3b3b1c55b5d5/meta.json";
    assert_eq!(
        std::fs::read_to_string(c2.join(meta)).unwrap(),
        std::fs::read_to_string(c1.join(meta)).unwrap()
    );

    // --config names the directory as DOCKER_CONFIG does.
    let c1_arg = c1.to_str().unwrap();
    assert_eq!(
        common::out(&bare(
            &berth,
            &config,
            &[],
            &["--config", c1_arg, "context", "ls", "-q"]
        )),
        "default\nsame\n"
    );

    // Listing and inspecting print the same (with DOCKER_HOST, the default context's endpoint is the same).
    let env = [("DOCKER_HOST", host.as_str())];
    for args in [
        &["context", "ls"][..],
        &["context", "ls", "-q"],
        &["context", "ls", "--format", "json"],
        &[
            "context",
            "ls",
            "--format",
            "{{.Name}}|{{.Current}}|{{.DockerEndpoint}}",
        ],
        &["context", "inspect", "bk", "dk"],
        &[
            "context",
            "inspect",
            "-f",
            "{{.Name}} {{.Endpoints.docker.Host}}",
            "default",
        ],
        &["context", "inspect", "nope"],
        &["context", "show"],
        &["context", "rm", "nope"],
        &["context", "rm", "default"],
        &["context", "create", "Bad/name"],
        &["context", "create", "bk"],
        &["context", "use", "nope"],
        &["-c", "nope", "ps"],
        &["-c", "bk", "-H", "unix:///x.sock", "ps"],
    ] {
        assert_eq!(
            text(&bare(&berth, &config, &env, args)),
            text(&bare(&docker, &config, &env, args)),
            "{args:?}"
        );
    }

    // `context use` by one CLI is the current context of the other, in config.json.
    let out = bare(&berth, &config, &[], &["context", "use", "dk"]);
    assert_eq!(
        text(&out),
        (
            "dk\n".into(),
            "Current context is now \"dk\"\n".into(),
            Some(0)
        )
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["currentContext"], "dk");
    assert_eq!(
        common::out(&bare(&docker, &config, &[], &["context", "show"])),
        "dk\n"
    );
    assert!(bare(&docker, &config, &[], &["ps"]).status.success());
    assert!(bare(&docker, &config, &[], &["context", "use", "bk"])
        .status
        .success());
    assert_eq!(
        common::out(&bare(&berth, &config, &[], &["context", "show"])),
        "bk\n"
    );
    let out = bare(&berth, &config, &[], &["ps", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    // Precedence: DOCKER_HOST hides the current context (with the docker CLI's warning), --context
    // beats DOCKER_HOST, DOCKER_CONTEXT beats the config's current context.
    let dead = [("DOCKER_HOST", "unix:///nonexistent.sock")];
    let out = bare(&berth, &config, &dead, &["ps"]);
    let (_, stderr, code) = text(&out);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unix:///nonexistent.sock"), "{stderr}");
    assert_eq!(
        text(&bare(&berth, &config, &dead, &["context", "ls"])),
        text(&bare(&docker, &config, &dead, &["context", "ls"])),
        "the warning that DOCKER_HOST overrides the context"
    );
    assert!(bare(&berth, &config, &dead, &["-c", "bk", "ps"])
        .status
        .success());
    let out = bare(&berth, &config, &[("DOCKER_CONTEXT", "nope")], &["ps"]);
    assert_eq!(
        text(&out),
        text(&bare(
            &docker,
            &config,
            &[("DOCKER_CONTEXT", "nope")],
            &["ps"]
        ))
    );
    assert_eq!(out.status.code(), Some(1));

    // Removing: the current one only with -f, which also resets currentContext.
    for args in [&["context", "rm", "bk"][..], &["context", "rm", "-f", "bk"]] {
        let b = text(&bare(&berth, &config, &[], args));
        // Recreate for the docker CLI's turn; both then see the same state.
        if b.2 == Some(0) {
            bare(
                &berth,
                &config,
                &[],
                &[
                    "context",
                    "create",
                    "bk",
                    "--docker",
                    &format!("host={host}"),
                ],
            );
            bare(&berth, &config, &[], &["context", "use", "bk"]);
        }
        assert_eq!(b, text(&bare(&docker, &config, &[], args)), "{args:?}");
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg.get("currentContext"), None, "{cfg}");
}

/// Stopped containers, an unused network and an anonymous volume, for one prune run.
fn prune_state(d: &Daemon, round: &str) {
    for name in ["a", "b"] {
        let out = d.docker(&[
            "create",
            "--name",
            &format!("{round}{name}"),
            "-v",
            "/data",
            "busybox",
        ]);
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let out = d.docker(&["rm", &format!("{round}b")]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = d.docker(&["network", "create", "net1"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

/// The docker CLI without buildx says on stderr that its legacy builder is deprecated; not Berth's to say.
fn without_buildx_notice(mut out: (String, String, Option<i32>)) -> (String, String, Option<i32>) {
    if out.1.starts_with("DEPRECATED: The legacy builder") {
        out.1 = out
            .1
            .split_once("\n\n")
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default();
    }
    out
}

#[test]
fn prune_commands_print_what_docker_prints() {
    common::docker_bin();
    let d = Daemon::with_busybox();
    // Keeps busybox in use, so that `-a` has it to spare.
    let out = d.docker(&["run", "-d", "--name", "keeper", "busybox", "sleep", "1000"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let no = d.dir.path().join("no");
    std::fs::write(&no, "n\n").unwrap();

    // The confirmation prompts, answered no: nothing removed, exit 0.
    for args in [
        &["system", "prune"][..],
        &["system", "prune", "-a", "--volumes"],
        &[
            "system",
            "prune",
            "--filter",
            "label=a=b",
            "--filter",
            "until=1h",
            "--filter",
            "label!=c",
        ],
        &["system", "prune", "--volumes", "--filter", "until=1h"],
        &["container", "prune"],
        &["builder", "prune"],
        &["builder", "prune", "-a"],
        &["image", "prune", "-a"],
        &["volume", "prune"],
        &["network", "prune"],
    ] {
        let b = text(&d.berth_stdin(args, Some(&no)));
        assert_eq!(
            b,
            without_buildx_notice(text(&d.docker_stdin(args, Some(&no)))),
            "{args:?}"
        );
    }

    for args in [
        &["container", "prune", "-f"][..],
        &["system", "prune", "-f"],
        &["system", "prune", "-f", "--volumes"],
        &["system", "prune", "-a", "-f", "--volumes"],
        &["builder", "prune", "-f"],
        &["builder", "prune", "-a", "-f"],
    ] {
        prune_state(&d, "x");
        let out = d.docker(&["tag", "busybox", "spare:1"]);
        assert!(out.status.success(), "{:?}", text(&out));
        let docker = without_buildx_notice(text(&d.docker(args)));
        // What the docker CLI left, removed the same way, so both start equal.
        d.docker(&["rm", "xa"]);
        d.docker(&["network", "rm", "net1"]);
        d.docker(&["volume", "prune", "-f"]);
        prune_state(&d, "x");
        d.docker(&["tag", "busybox", "spare:1"]);
        let berth = text(&d.berth(args));
        d.docker(&["rm", "xa"]);
        d.docker(&["network", "rm", "net1"]);
        d.docker(&["volume", "prune", "-f"]);
        assert_eq!(
            (ids(&berth.0), berth.1, berth.2),
            (ids(&docker.0), docker.1, docker.2),
            "{args:?}"
        );
        assert!(berth.0.contains("Total reclaimed space: "), "{}", berth.0);
    }
    // The container that uses busybox kept it through `system prune -a`.
    let out = d.berth(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn completion_scripts_complete_subcommands_and_flags() {
    let berth = common::berth_bin();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("berth.bash");
    let out = Command::new(&berth)
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    std::fs::write(&script, &out.stdout).unwrap();
    let complete = |words: &[&str]| -> String {
        let words_sh: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let cword = words.len() - 1;
        let prev = if cword > 0 { words[cword - 1] } else { "" };
        let program = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; _berth berth '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words_sh.join(" "),
            words.join(" "),
            words[cword],
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let subs = complete(&["berth", "system", "pr"]);
    assert_eq!(subs.trim(), "prune");
    let subs = complete(&["berth", "con"]);
    assert!(
        subs.lines().any(|l| l == "container") && subs.lines().any(|l| l == "context"),
        "{subs}"
    );
    let flags = complete(&["berth", "context", "create", "--d"]);
    assert_eq!(
        flags.split_whitespace().collect::<Vec<_>>(),
        ["--description", "--docker"]
    );
    let flags = complete(&["berth", "system", "prune", "--vol"]);
    assert_eq!(flags.trim(), "--volumes");

    for shell in ["zsh", "fish"] {
        let out = Command::new(&berth)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {:?}", text(&out));
        let s = String::from_utf8_lossy(&out.stdout);
        for word in ["prune", "context", "volumes", "description"] {
            assert!(s.contains(word), "{shell} script lacks {word}");
        }
    }
    let out = Command::new(&berth)
        .args(["completion", "nosh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn templates_print_and_fail_as_dockers() {
    common::docker_bin();
    let d = Daemon::with_busybox();
    let out = d.docker(&[
        "create", "--name", "c1", "--label", "k=v", "busybox", "sh", "-c", "echo hi",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let inspect = [
        r#"{{printf "%q" .Name}}"#,
        r#"{{printf "%q" .Config.Cmd}}"#,
        r#"{{printf "%5s|%-5s|%05d|%x|%.2f" "a" "b" 42 255 3.14159}}"#,
        r#"{{printf "%v %s" .Config.Cmd .Name}}"#,
        r#"{{split .Name "c"}}"#,
        r#"{{join .Config.Cmd ","}}"#,
        r#"{{title "hello world"}} {{upper .Name}} {{lower "ABC"}}"#,
        r#"{{json .Config.Labels}} {{json .Config.Cmd}}"#,
        r#"{{println .Name}}x"#,
        r#"{{pad .Name 2 3}}|{{truncate .Name 2}}"#,
        r#"{{range .Config.Cmd}}<{{.}}>{{end}} {{index .Config.Cmd 0}} {{len .Config.Cmd}}"#,
        r#"{{if eq .State.Status "created"}}yes{{else}}no{{end}}"#,
        r#"{{.Config.Labels}} {{.Config.Cmd}}"#,
        r#"{{.Name.Foo}}"#,
        r#"{{.Config.Cmd.Foo}}"#,
        r#"{{nofunc .Name}}"#,
        r#"{{.Name"#,
    ];
    for t in inspect {
        let args = ["inspect", "--format", t, "c1"];
        assert_eq!(text(&d.berth(&args)), text(&d.docker(&args)), "{t}");
    }
    // A failing object is one more error after which the others print; an empty line when none did.
    for t in ["{{.Name}}", "{{.Foo}}"] {
        let args = ["inspect", "-f", t, "c1", "nope", "busybox"];
        assert_eq!(text(&d.berth(&args)), text(&d.docker(&args)), "{t}");
    }
    for cmd in [
        &["ps", "-a"][..],
        &["images"],
        &["network", "ls"],
        &["volume", "ls"],
    ] {
        for t in [
            "{{.Foo}}",
            "{{.ID}} {{.Foo}}",
            "{{.ID.Foo}}",
            r#"{{printf "%q" .ID}}"#,
            "{{nofunc .ID}}",
            "{{.ID",
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--format", t]);
            assert_eq!(text(&d.berth(&args)), text(&d.docker(&args)), "{args:?}");
        }
    }
}

#[test]
fn load_closed_pipes_and_fractional_since_as_docker() {
    common::docker_bin();
    let d = Daemon::with_busybox();
    let tar = d.dir.path().join("bb.tar");
    assert!(d
        .docker(&["save", "-o", tar.to_str().unwrap(), "busybox"])
        .status
        .success());
    let id = common::out(&d.docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"]));
    let by_id = d.dir.path().join("byid.tar");
    assert!(d
        .docker(&["save", "-o", by_id.to_str().unwrap(), id.trim()])
        .status
        .success());
    let garbage = d.dir.path().join("garbage");
    std::fs::write(&garbage, "not a tar\n").unwrap();
    for (args, stdin) in [
        (&["load", "-i", tar.to_str().unwrap()][..], None),
        (&["load"], Some(tar.as_path())),
        (&["load", "-q", "-i", tar.to_str().unwrap()], None),
        (&["load", "-i", by_id.to_str().unwrap()], None),
        (&["load", "-i", "/nonexistent.tar"], None),
        (&["load"], Some(garbage.as_path())),
    ] {
        assert_eq!(
            text(&d.berth_stdin(args, stdin)),
            text(&d.docker_stdin(args, stdin)),
            "{args:?}"
        );
    }
    let out = d.berth(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(common::out(&out), "Loaded image: busybox:latest\n");

    // On a terminal (of 150 columns, so with bars), the same bytes as the docker CLI's progress.
    common::require("script", "bsdutils");
    let on_terminal = |cli: String| -> Vec<u8> {
        assert!(d.docker(&["rmi", "-f", "busybox"]).status.success());
        let program = format!("stty cols 150; {cli} load -i {}", tar.display());
        let out = Command::new("script")
            .args(["-qec", &program, "/dev/null"])
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{cli}: {:?}", text(&out));
        out.stdout
    };
    let docker = on_terminal(common::docker_bin().display().to_string());
    let berth = on_terminal(format!("{} -H {}", common::berth_bin().display(), d.host()));
    assert!(
        String::from_utf8_lossy(&docker).contains("Loading layer [="),
        "{docker:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&berth),
        String::from_utf8_lossy(&docker)
    );

    // Lines 0.3 s apart, then the container stays up (so `logs -f` follows forever).
    let out = d.docker(&[
        "run", "-d", "--name", "lg", "busybox", "sh", "-c",
        "i=1; while [ $i -le 8 ]; do echo line$i; i=$((i+1)); sleep 0.3; done; while true; do echo more; sleep 0.05; done",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let stamped = common::out(&d.docker(&["logs", "-t", "lg"]));
    let t4 = stamped
        .lines()
        .nth(3)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let t6 = stamped
        .lines()
        .nth(5)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(t4.contains('.'), "{t4}");
    for args in [
        &["logs", "--since", t4.as_str(), "--until", t6.as_str(), "lg"][..],
        &["logs", "--until", t4.as_str(), "lg"],
        &["logs", "--since", "yesterday", "lg"],
        &["logs", "--until", "10m", "lg"],
        &["events", "--since", "yesterday"],
        &[
            "events",
            "--since",
            "1h30m",
            "--until",
            "0.5s",
            "--filter",
            "container=lg",
            "--format",
            "{{.Action}}",
        ],
    ] {
        assert_eq!(text(&d.berth(args)), text(&d.docker(args)), "{args:?}");
    }
    let since = common::out(&d.berth(&["logs", "--since", &t4, "--until", &t6, "lg"]));
    // Both bounds are inclusive, as in dockerd (an entry stamped exactly `--until` is shown).
    assert_eq!(
        since, "line4\nline5\nline6\n",
        "fractions of a second count"
    );

    // A closed pipe ends the client quietly, as the docker CLI ends (SIGPIPE: 141 in the shell).
    for cli_args in [
        "logs -f lg | head -2",
        "ps -a | head -1",
        "save busybox | head -c 10 >/dev/null",
        "events --since 0 | head -1 >/dev/null",
    ] {
        let run = |bin: &str| {
            let program =
                format!("timeout 20 {bin} {cli_args}; echo \"status=${{PIPESTATUS[0]}}\"");
            let out = Command::new("bash")
                .args(["-c", &program])
                .env("DOCKER_HOST", d.host())
                .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
                .output()
                .unwrap();
            let (stdout, stderr, _) = text(&out);
            let status = stdout.lines().last().unwrap_or("").to_owned();
            (status, stderr)
        };
        let berth = run(&format!(
            "{} -H {}",
            common::berth_bin().display(),
            d.host()
        ));
        let docker = run(&common::docker_bin().display().to_string());
        // Whether the writer meets the closed pipe (141) or has written everything before `head` exits
        // (0) is a race, for the docker CLI as for Berth; what must hold is a quiet end, no error text,
        // and `events`, which never ends on its own, killed by the pipe.
        let follows = cli_args.starts_with("events");
        let expected: &[&str] = if follows {
            &["status=141"]
        } else {
            &["status=0", "status=141"]
        };
        assert!(
            expected.contains(&berth.0.as_str()),
            "{cli_args}: {berth:?}"
        );
        assert_eq!(
            berth.1, docker.1,
            "{cli_args}: the same error text as the docker CLI's"
        );
        // The docker CLI notices a closed pipe only at its next write: when the event history it wrote
        // fits in the pipe before `head` exits, it waits for an event that never comes (the timeout's
        // 124). Berth watches for the reader going.
        if !(docker.0 == "status=124" && cli_args.starts_with("events")) {
            assert!(
                expected.contains(&docker.0.as_str()),
                "{cli_args}: docker {docker:?}"
            );
        }
    }
}
