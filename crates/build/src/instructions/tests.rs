use super::*;
use crate::parser::parse;

fn staged(src: &str) -> StagedFile {
    let df = parse(src).unwrap_or_else(|e| panic!("parse {src:?}: {e}"));
    parse_stages(&df).unwrap_or_else(|e| panic!("stages {src:?}: {e}"))
}

fn stage_err(src: &str) -> String {
    let df = parse(src).unwrap_or_else(|e| panic!("parse {src:?}: {e}"));
    match parse_stages(&df) {
        Ok(s) => panic!("{src:?} was accepted: {s:?}"),
        Err(e) => e.to_string(),
    }
}

fn only(src: &str) -> InstructionKind {
    let f = staged(&format!("FROM scratch\n{src}\n"));
    let mut ins = f
        .stages
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no stage"))
        .instructions;
    assert_eq!(ins.len(), 1, "{src}");
    ins.remove(0).kind
}

#[test]
fn stages_meta_args_and_from_forms() {
    let f = staged("ARG BASE=alpine V\nFROM --platform=$BUILDPLATFORM ${BASE} AS Build\nRUN make\nFROM build\nCOPY --from=build /out /\n");
    assert_eq!(
        f.meta_args,
        vec![
            ArgDef {
                key: "BASE".into(),
                value: Some("alpine".into())
            },
            ArgDef {
                key: "V".into(),
                value: None
            }
        ]
    );
    assert_eq!(f.stages.len(), 2);
    let s0 = &f.stages[0];
    assert_eq!(
        (s0.base.as_str(), s0.name.as_deref(), s0.platform.as_deref()),
        ("${BASE}", Some("build"), Some("$BUILDPLATFORM"))
    );
    assert_eq!((s0.start_line, s0.instructions.len()), (2, 1));
    assert_eq!(f.stages[1].name, None);
}

#[test]
fn instruction_before_from_is_refused() {
    assert_eq!(
        stage_err("RUN x\nFROM a\n"),
        "no build stage in current context"
    );
}

#[test]
fn unknown_instruction_names_the_line_and_suggests() {
    assert_eq!(
        stage_err("FROM a\n\nFORM b\n"),
        "dockerfile parse error on line 3: unknown instruction: FORM (did you mean FROM?)"
    );
    assert_eq!(
        stage_err("FROM a\nrunn x\n"),
        "dockerfile parse error on line 2: unknown instruction: runn (did you mean run?)"
    );
    assert_eq!(
        stage_err("FROM a\nBOGUSWORD x\n"),
        "dockerfile parse error on line 2: unknown instruction: BOGUSWORD"
    );
}

#[test]
fn from_validation_errors() {
    assert_eq!(stage_err("FROM a AS 1x\n"), "dockerfile parse error on line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols");
    assert_eq!(
        stage_err("FROM a b\n"),
        "dockerfile parse error on line 1: FROM requires either one or three arguments"
    );
    assert_eq!(
        stage_err("FROM --platfrom=x a\n"),
        "dockerfile parse error on line 1: unknown flag: --platfrom (did you mean platform?)"
    );
}

#[test]
fn run_forms_mounts_network_and_heredoc_files() {
    match only("RUN --mount=type=cache,target=/c --mount=from=b,target=/b --network=none <<EOF\necho $A\nEOF") {
        InstructionKind::Run(r) => {
            assert_eq!(r.command.args, vec!["<<EOF"]);
            assert!(r.command.prepend_shell);
            assert_eq!(r.command.files.len(), 1);
            assert_eq!((r.command.files[0].name.as_str(), r.command.files[0].data.as_str()), ("EOF", "echo $A\n"));
            assert_eq!(r.mounts.len(), 2);
            assert_eq!(r.mounts[1].from.as_deref(), Some("b"));
            assert_eq!(r.network, Some(RunNetwork::None));
            assert_eq!(r.flags_used, vec!["mount", "network"]);
        }
        other => panic!("not RUN: {other:?}"),
    }
    match only("RUN [\"echo\", \"a b\"]") {
        InstructionKind::Run(r) => assert_eq!(
            (r.command.args, r.command.prepend_shell),
            (vec!["echo".to_string(), "a b".to_string()], false)
        ),
        other => panic!("not RUN: {other:?}"),
    }
    assert_eq!(
        stage_err("FROM a\nRUN --network=bridge x\n"),
        "dockerfile parse error on line 2: invalid network mode \"bridge\""
    );
}

#[test]
fn cmd_entrypoint_shell_forms() {
    assert_eq!(
        only("CMD echo  hi"),
        InstructionKind::Cmd(CommandLine {
            args: vec!["echo  hi".into()],
            prepend_shell: true,
            files: vec![]
        })
    );
    assert_eq!(
        only("ENTRYPOINT [\"/bin/app\", \"-v\"]"),
        InstructionKind::Entrypoint(CommandLine {
            args: vec!["/bin/app".into(), "-v".into()],
            prepend_shell: false,
            files: vec![]
        })
    );
    assert_eq!(
        only("SHELL [\"/bin/bash\", \"-c\"]"),
        InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        stage_err("FROM a\nSHELL /bin/sh -c\n"),
        "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"
    );
}

#[test]
fn env_and_label_both_forms() {
    assert_eq!(
        only("ENV A=1 B=\"two words\""),
        InstructionKind::Env(vec![
            KeyValue {
                key: "A".into(),
                value: "1".into(),
                no_delim: false
            },
            KeyValue {
                key: "B".into(),
                value: "\"two words\"".into(),
                no_delim: false
            },
        ])
    );
    assert_eq!(
        only("ENV PATH /usr/bin:$PATH"),
        InstructionKind::Env(vec![KeyValue {
            key: "PATH".into(),
            value: "/usr/bin:$PATH".into(),
            no_delim: true
        }])
    );
    assert_eq!(
        only("LABEL a=b"),
        InstructionKind::Label(vec![KeyValue {
            key: "a".into(),
            value: "b".into(),
            no_delim: false
        }])
    );
    assert_eq!(
        stage_err("FROM a\nENV =x\n"),
        "dockerfile parse error on line 2: ENV names can not be blank"
    );
    assert_eq!(
        stage_err("FROM a\nLABEL\n"),
        "dockerfile parse error on line 2: LABEL requires at least one argument"
    );
}

#[test]
fn copy_and_add_flags_and_heredoc_sources() {
    match only("COPY --from=builder --chown=1:1 --chmod=0644 --link --parents --exclude=*.md --exclude=x a b <<-EOF /dst/\n\tbody\n\tEOF") {
        InstructionKind::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("builder"));
            assert_eq!((c.chown.as_deref(), c.chmod.as_deref(), c.link, c.parents), (Some("1:1"), Some("0644"), true, true));
            assert_eq!(c.excludes, vec!["*.md", "x"]);
            assert_eq!(c.files.sources, vec!["a", "b"]);
            assert_eq!(c.files.dest, "/dst/");
            assert_eq!(c.files.contents, vec![SourceContent { path: "EOF".into(), data: "body\n".into(), expand: true }]);
        }
        other => panic!("not COPY: {other:?}"),
    }
    match only("ADD --checksum=sha256:abc --keep-git-dir=false --unpack https://x/y.tar /z/") {
        InstructionKind::Add(a) => {
            assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
            assert_eq!(
                (a.keep_git_dir, a.unpack, a.link),
                (Some(false), Some(true), false)
            );
            assert_eq!(a.files.sources, vec!["https://x/y.tar"]);
        }
        other => panic!("not ADD: {other:?}"),
    }
    assert_eq!(stage_err("FROM a\nCOPY x\n"), "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined");
    assert_eq!(
        stage_err("FROM a\nCOPY x <<EOF\nbody\nEOF\n"),
        "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"
    );
    assert_eq!(
        stage_err("FROM a\nCOPY --from x y\n"),
        "dockerfile parse error on line 2: missing a value on flag: --from"
    );
    assert_eq!(
        stage_err("FROM a\nCOPY --link=maybe x y\n"),
        "dockerfile parse error on line 2: expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        stage_err("FROM a\nCOPY --from=a --from=b x y\n"),
        "dockerfile parse error on line 2: duplicate flag specified: --from"
    );
    assert_eq!(
        stage_err("FROM a\nADD --from=a x y\n"),
        "dockerfile parse error on line 2: unknown flag: --from"
    );
}

#[test]
fn healthcheck_all_options_and_none() {
    assert_eq!(
        only("HEALTHCHECK NONE"),
        InstructionKind::Healthcheck(Healthcheck::None)
    );
    match only("HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=500ms --retries=3 CMD curl -f http://x/") {
        InstructionKind::Healthcheck(Healthcheck::Cmd { test, interval, timeout, start_period, start_interval, retries }) => {
            assert_eq!(test, vec!["CMD-SHELL", "curl -f http://x/"]);
            assert_eq!((interval, timeout, start_period, start_interval, retries), (
                Duration::from_secs(5),
                Duration::from_secs(3),
                Duration::from_secs(60),
                Duration::from_millis(500),
                3
            ));
        }
        other => panic!("not HEALTHCHECK: {other:?}"),
    }
    match only("HEALTHCHECK CMD [\"/check\", \"-q\"]") {
        InstructionKind::Healthcheck(Healthcheck::Cmd { test, .. }) => {
            assert_eq!(test, vec!["CMD", "/check", "-q"])
        }
        other => panic!("not HEALTHCHECK: {other:?}"),
    }
    let e = |s: &str| stage_err(&format!("FROM a\n{s}\n"));
    assert_eq!(
        e("HEALTHCHECK NONE x"),
        "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        e("HEALTHCHECK CONNECT TCP 7000"),
        "dockerfile parse error on line 2: Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        e("HEALTHCHECK CMD"),
        "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        e("HEALTHCHECK --interval=1us CMD x"),
        "dockerfile parse error on line 2: Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        e("HEALTHCHECK --retries=-1 CMD x"),
        "dockerfile parse error on line 2: --retries cannot be negative (-1)"
    );
    assert_eq!(
        e("HEALTHCHECK --timeout=5 CMD x"),
        "dockerfile parse error on line 2: time: missing unit in duration \"5\""
    );
    assert_eq!(
        e("HEALTHCHECK"),
        "dockerfile parse error on line 2: HEALTHCHECK requires at least one argument"
    );
}

#[test]
fn single_argument_instructions() {
    assert_eq!(
        only("USER app:app"),
        InstructionKind::User("app:app".into())
    );
    assert_eq!(
        only("WORKDIR /src"),
        InstructionKind::Workdir("/src".into())
    );
    assert_eq!(
        only("STOPSIGNAL SIGTERM"),
        InstructionKind::StopSignal("SIGTERM".into())
    );
    assert_eq!(
        only("MAINTAINER me <me@x>"),
        InstructionKind::Maintainer("me <me@x>".into())
    );
    assert_eq!(
        only("EXPOSE 8080 80/udp 443"),
        InstructionKind::Expose(vec!["443".into(), "80/udp".into(), "8080".into()])
    );
    assert_eq!(
        only("VOLUME [\"/a\", \"/b\"]"),
        InstructionKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        stage_err("FROM a\nWORKDIR\n"),
        "dockerfile parse error on line 2: WORKDIR requires exactly one argument"
    );
    assert_eq!(
        stage_err("FROM a\nVOLUME [\"\"]\n"),
        "dockerfile parse error on line 2: VOLUME specified can not be an empty string"
    );
    assert_eq!(
        stage_err("FROM a\nEXPOSE\n"),
        "dockerfile parse error on line 2: EXPOSE requires at least one argument"
    );
    assert_eq!(
        stage_err("FROM a\nARG =x\n"),
        "dockerfile parse error on line 2: ARG names can not be blank"
    );
}

#[test]
fn onbuild_triggers() {
    assert_eq!(
        only("ONBUILD RUN echo hi"),
        InstructionKind::Onbuild("RUN echo hi".into())
    );
    assert_eq!(
        only("onbuild COPY <<EOF /x\nhello\nEOF"),
        InstructionKind::Onbuild("COPY <<EOF /x\nhello\nEOF".into())
    );
    assert_eq!(
        stage_err("FROM a\nONBUILD ONBUILD RUN x\n"),
        "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        stage_err("FROM a\nONBUILD FROM b\n"),
        "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"
    );
}

#[test]
fn every_conformance_case_that_parses_also_types() {
    // The node-level conformance files are also valid input for the typed layer, except the
    // HEALTHCHECK CONNECT line that Docker refuses at this stage too.
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parser/testfiles");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("list: {e}")).path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path.join("Dockerfile"))
            .unwrap_or_else(|e| panic!("read {name}: {e}"));
        let df = parse(&text).unwrap_or_else(|e| panic!("case {name}: {e}"));
        let result = parse_stages(&df);
        match name.as_str() {
            "health" => assert!(result.is_err(), "case {name}: CONNECT must be refused"),
            // No FROM at all, or unknown flags (`COPY --user`, `CMD --doit`) that only the node
            // layer accepts.
            n if n.starts_with("jeztah") || n == "json" || n == "flags" => {
                assert!(result.is_err(), "case {name} must be refused")
            }
            _ => {
                result.unwrap_or_else(|e| panic!("case {name}: {e}"));
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 33);
}
