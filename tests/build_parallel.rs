//! Independent build stages run at once (`POST /build`, classic output): proof that they do (two stages
//! that meet through a cache mount, which fails when they are built one after the other), output equal to
//! the sequential build's (`BERTH_BUILD_PARALLEL=1`), a later stage's failure reported as a sequential build
//! reports it with nothing left behind, and `RUN --mount=type=cache,sharing=locked|private` between stages
//! that run at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ok, Daemon};

/// A tar of `files` (path, content): a build context.
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let bytes: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_bytes())).collect();
    common::context_tar(&bytes)
}

/// What a build's JSON stream says, as text: the `stream` pieces joined, `AUX <id>` and `ERROR <message>`
/// lines where they came.
struct Built {
    text: String,
    error: Option<String>,
}

fn build(d: &Daemon, query: &str, files: &[(&str, &str)]) -> Built {
    let r = d.request("POST", &format!("/build?{query}"), &tar_of(files));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut text = String::new();
    let mut error = None;
    for msg in r.json_lines() {
        if let Some(s) = msg["stream"].as_str() {
            text.push_str(s);
        } else if let Some(id) = msg["aux"]["ID"].as_str() {
            text.push_str(&format!("AUX {id}\n"));
        } else if let Some(e) = msg["errorDetail"]["message"].as_str() {
            let line = format!("ERROR {e}");
            text.push_str(&line);
            text.push('\n');
            error = Some(line);
        }
    }
    Built { text, error }
}

fn built(d: &Daemon, query: &str, files: &[(&str, &str)]) -> String {
    let b = build(d, query, files);
    assert!(b.error.is_none(), "{}", b.text);
    b.text
}

/// `text` with every ID (12 or 64 hex digits) replaced by `ID<n>`, numbered by first appearance: two
/// builds on different daemons compare equal when their steps, output and the pattern of their IDs are.
fn mask_ids(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i > start {
            let word: String = chars[start..i].iter().collect();
            let hex = word
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            if hex && (word.len() == 12 || word.len() == 64) {
                let short = word[..12].to_owned();
                let n = match seen.iter().position(|s| *s == short) {
                    Some(n) => n,
                    None => {
                        seen.push(short);
                        seen.len() - 1
                    }
                };
                out.push_str(&format!("ID{n}"));
            } else {
                out.push_str(&word);
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// A daemon with busybox whose builds run at most `stages` stages at once.
fn daemon_with_parallel(stages: &str) -> Daemon {
    let mut d = Daemon::start();
    d.stop();
    d.spawn_with_env(&[("BERTH_BUILD_PARALLEL", stages)]);
    d.import_busybox();
    d
}

/// Two stages that each wait for the other's file in a shared cache mount, for at most `limit` tenths
/// of a second, and a last stage that needs both.
fn rendezvous(limit: u32) -> Vec<(&'static str, String)> {
    let wait = |mine: &str, theirs: &str| {
        format!(
            "RUN --mount=type=cache,target=/c,id=rendezvous sh -c 'touch /c/{mine}; i=0; \
             while [ ! -e /c/{theirs} ]; do i=$((i+1)); if [ $i -gt {limit} ]; then echo no {theirs}; exit 1; fi; sleep 0.1; done; \
             echo {mine} met {theirs}; echo {mine} > /{mine}'\n"
        )
    };
    let dockerfile = format!(
        "FROM busybox AS a\n{}FROM busybox AS b\n{}FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nRUN cat /a /b\n",
        wait("a", "b"),
        wait("b", "a"),
    );
    vec![("Dockerfile", dockerfile)]
}

fn files<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(n, c)| (*n, c.as_str())).collect()
}

#[test]
fn independent_stages_run_at_once_and_not_with_parallelism_one() {
    let d = common::docker_daemon();
    // Each stage waits up to a minute for the other: only stages built at once both get through.
    let ctx = rendezvous(600);
    let text = built(&d, "t=met:1", &files(&ctx));
    assert!(text.contains("a met b\n"), "{text}");
    assert!(text.contains("b met a\n"), "{text}");
    assert!(text.contains("Successfully tagged met:1"), "{text}");

    // The same Dockerfile built one stage after the other cannot meet: the first stage gives up.
    let seq = daemon_with_parallel("1");
    let ctx = rendezvous(20);
    let b = build(&seq, "t=met:1", &files(&ctx));
    assert!(b.text.contains("no b\n"), "{}", b.text);
    assert!(
        b.error
            .as_deref()
            .is_some_and(|e| e.contains("returned a non-zero code: 1")),
        "{}",
        b.text
    );
}

/// A multi-stage build whose stages overlap: the slow first stage's output streams while the second's
/// waits for its turn.
fn multi_stage() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "Dockerfile",
            "ARG BASE=busybox\n\
             FROM ${BASE} AS slow\n\
             ENV WHO=slow\n\
             RUN sleep 1; echo one from $WHO; sleep 0.5; echo two from $WHO > /slow\n\
             FROM busybox AS quick\n\
             COPY hello.txt /quick\n\
             RUN echo quick ran; cat /quick\n\
             FROM scratch AS unused\n\
             COPY hello.txt /\n\
             FROM busybox\n\
             ARG UNUSED_HERE\n\
             COPY --from=slow /slow /s\n\
             COPY --from=1 /quick /q\n\
             RUN cat /s /q\n\
             CMD [\"cat\", \"/s\"]\n",
        ),
        ("hello.txt", "hello\n"),
    ]
}

#[test]
fn output_of_stages_at_once_is_the_sequential_output() {
    let query = "t=multi:1&buildargs=%7B%22NOT_USED%22%3A%22x%22%7D";
    let mut d = common::docker_daemon();
    let first = built(&d, query, &multi_stage());
    let again = built(&d, query, &multi_stage());
    assert!(first.contains("one from slow\n"), "{first}");
    assert!(
        first.contains("[Warning] One or more build-args [NOT_USED] were not consumed"),
        "{first}"
    );
    assert!(again.contains(" ---> Using cache\n"), "{again}");
    assert!(
        !again.contains(" ---> Running in "),
        "every step is cached:\n{again}"
    );

    // A fresh daemon building one stage after the other prints the same, but for the IDs.
    let seq = daemon_with_parallel("1");
    let seq_first = built(&seq, query, &multi_stage());
    assert_eq!(mask_ids(&first), mask_ids(&seq_first));

    // The same daemon building one stage after the other, from the cache: the same text, IDs included.
    d.stop();
    d.spawn_with_env(&[("BERTH_BUILD_PARALLEL", "1")]);
    let seq_again = built(&d, query, &multi_stage());
    assert_eq!(again, seq_again);
    assert_eq!(
        d.image_id("multi:1"),
        seq_again
            .lines()
            .rfind(|l| l.starts_with("AUX "))
            .map(|l| l[4..].to_owned())
            .unwrap()
    );
}

/// A first stage that takes a while, a second that fails at once, a third that would run for long.
fn failing() -> Vec<(&'static str, &'static str)> {
    vec![(
        "Dockerfile",
        "FROM busybox AS slow\n\
         RUN sleep 2; echo slow done | tee /done\n\
         FROM busybox AS bad\n\
         RUN echo failing now; exit 3\n\
         FROM busybox AS long\n\
         RUN --mount=type=cache,target=/c sleep 60\n\
         FROM busybox\n\
         COPY --from=slow /done /a\n\
         COPY --from=bad /done /b\n\
         COPY --from=long /done /c\n",
    )]
}

#[test]
fn a_failing_later_stage_fails_the_build_as_sequential_and_leaves_nothing() {
    let d = daemon_with_parallel("4");
    let started = Instant::now();
    let b = build(&d, "t=fails:1&forcerm=1", &failing());
    let took = started.elapsed();
    assert_eq!(
        b.error.as_deref(),
        Some("ERROR The command '/bin/sh -c echo failing now; exit 3' returned a non-zero code: 3"),
        "{}",
        b.text
    );
    // The earlier stage finished first, as it would have; the third stage was stopped.
    assert!(b.text.contains("slow done\n"), "{}", b.text);
    assert!(
        took < Duration::from_secs(40),
        "the third stage was not stopped: {took:?}"
    );
    let ps = ok(&d.docker(&["ps", "-aq"]));
    assert_eq!(ps.trim(), "", "step containers left");
    let mounts: Vec<String> = common::mounts_under(&d.data_root());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");

    let seq = daemon_with_parallel("1");
    let s = build(&seq, "t=fails:1&forcerm=1", &failing());
    assert_eq!(mask_ids(&b.text), mask_ids(&s.text));
}

#[test]
fn a_locked_cache_is_used_by_one_step_at_a_time() {
    let d = common::docker_daemon();
    let step = |who: &str, sharing: &str| {
        format!(
            "RUN --mount=type=cache,target=/c,id=lk,sharing={sharing} sh -c 'mkdir /c/lock || exit 7; echo {who} has it; sleep 2; rmdir /c/lock; echo {who} > /done'\n"
        )
    };
    let df = |sharing: &str| {
        format!(
            "FROM busybox AS a\n{}FROM busybox AS b\n{}FROM busybox\nCOPY --from=a /done /a\nCOPY --from=b /done /b\n",
            step("a", sharing),
            step("b", sharing)
        )
    };
    let locked = df("locked");
    let text = built(&d, "t=locked:1", &[("Dockerfile", locked.as_str())]);
    assert!(
        text.contains("a has it") && text.contains("b has it"),
        "{text}"
    );
    // Shared, the same steps meet in the cache: the check above could fail.
    let shared = df("shared");
    let b = build(&d, "t=shared:1", &[("Dockerfile", shared.as_str())]);
    assert!(
        b.error
            .as_deref()
            .is_some_and(|e| e.contains("returned a non-zero code: 7")),
        "{}",
        b.text
    );
}

#[test]
fn a_private_cache_in_use_gives_another_step_its_own() {
    let d = common::docker_daemon();
    // Both steps write who they are into the private cache, then meet through a shared one (so both run
    // at once) and read it back: the same directory would hold one name for both.
    let step = |mine: &str, theirs: &str| {
        format!(
            "RUN --mount=type=cache,target=/p,id=mine,sharing=private --mount=type=cache,target=/r,id=meet \
             sh -c 'echo {mine} > /p/who; touch /r/{mine}; i=0; \
             while [ ! -e /r/{theirs} ]; do i=$((i+1)); if [ $i -gt 600 ]; then exit 1; fi; sleep 0.1; done; \
             sleep 0.5; echo {mine} sees $(cat /p/who); echo {mine} > /done'\n"
        )
    };
    let df = format!(
        "FROM busybox AS a\n{}FROM busybox AS b\n{}FROM busybox\nCOPY --from=a /done /a\nCOPY --from=b /done /b\n",
        step("a", "b"),
        step("b", "a")
    );
    let text = built(&d, "t=private:1", &[("Dockerfile", df.as_str())]);
    assert!(text.contains("a sees a\n"), "{text}");
    assert!(text.contains("b sees b\n"), "{text}");
}

/// A client that goes away stops every stage under way: their step containers, mounts and files go.
#[test]
fn a_client_gone_stops_every_stage() {
    use std::io::{Read, Write};
    let d = common::docker_daemon();
    let tar = tar_of(&[(
        "Dockerfile",
        "FROM busybox AS a\nRUN --mount=type=cache,target=/c sleep 60\n\
         FROM busybox AS b\nRUN --mount=type=tmpfs,target=/t sleep 61\n\
         FROM busybox\nCOPY --from=a /bin/sh /a\nCOPY --from=b /bin/sh /b\n",
    )]);
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    write!(
        s,
        "POST /build?t=gone:1 HTTP/1.1\r\nHost: berth\r\nContent-Type: application/x-tar\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        tar.len()
    )
    .unwrap();
    s.write_all(&tar).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("Running in") {
        let n = s.read(&mut buf).unwrap();
        assert_ne!(n, 0, "the build ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Both stages' steps run.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok(&d.docker(&["ps", "-q"])).lines().count() != 2 {
        assert!(
            Instant::now() < deadline,
            "two step containers do not run: {}",
            ok(&d.docker(&["ps", "-a"]))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ps = ok(&d.docker(&["ps", "-aq"]));
        let mounts = common::mounts_under(&d.data_root());
        let builds = std::fs::read_dir(d.data_root().join("build"))
            .map(|e| e.count())
            .unwrap_or(0);
        if ps.trim().is_empty() && mounts.is_empty() && builds == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the client left: containers {ps:?}, mounts {mounts:?}, {builds} build directories\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.log().contains("build cancelled"), "{}", d.log());
}

/// A stage whose base image's ONBUILD trigger copies from another stage (a reference the stage graph cannot
/// see; the stage is built as the last one needs it) waits for that stage, which a sequential build would
/// have finished by then.
#[test]
fn a_trigger_naming_a_stage_waits_for_it() {
    let d = common::docker_daemon();
    built(
        &d,
        "t=withtrigger:1",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD COPY --from=maker /made /made\n",
        )],
    );
    let df = "FROM busybox AS maker\nRUN sleep 1; echo made > /made\n\
              FROM withtrigger:1 AS user\nRUN cat /made\n\
              FROM busybox\nCOPY --from=user /made /got\nCOPY --from=maker /made /again\nRUN cat /got\n";
    let text = built(&d, "t=triggered:1", &[("Dockerfile", df)]);
    assert!(text.contains("# Executing 1 build trigger\n"), "{text}");
    assert_eq!(text.matches("\nmade\n").count(), 2, "{text}");
    let seq = daemon_with_parallel("1");
    built(
        &seq,
        "t=withtrigger:1",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD COPY --from=maker /made /made\n",
        )],
    );
    let seq_text = built(&seq, "t=triggered:1", &[("Dockerfile", df)]);
    assert_eq!(mask_ids(&text), mask_ids(&seq_text));
}
