use super::*;
use serde_json::Value;

fn jsonl(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/dockerignore/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read conformance data {path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: bad line {l:?}: {e}")))
        .collect()
}

fn str_field<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("case {case}: no string field {key}"))
}

/// Walks from the top directory down to `path`'s parent, carrying match info, as a context walker
/// does, then matches `path` itself.
fn walk_match(pm: &PatternMatcher, path: &str) -> bool {
    let parent = dir_of(path);
    let mut info = MatchInfo::default();
    if parent != "." {
        let dirs: Vec<&str> = parent.split('/').collect();
        for n in 1..=dirs.len() {
            info = pm
                .matches_using_parent_results(&dirs[..n].join("/"), &info)
                .unwrap_or_else(|e| panic!("walk {path}: {e}"))
                .1;
        }
    }
    pm.matches_using_parent_results(path, &info)
        .unwrap_or_else(|e| panic!("match {path}: {e}"))
        .0
}

#[test]
fn pattern_list_conformance_table_passes_all_three_ways() {
    let cases = jsonl("matches.jsonl");
    assert_eq!(cases.len(), 72, "pattern-list cases present");
    let mut failures = Vec::new();
    for case in &cases {
        let patterns: Vec<&str> = case["patterns"]
            .as_array()
            .unwrap_or_else(|| panic!("case {case}: no patterns"))
            .iter()
            .map(|p| {
                p.as_str()
                    .unwrap_or_else(|| panic!("case {case}: pattern not a string"))
            })
            .collect();
        let path = str_field(case, "path");
        let want = case["excluded"]
            .as_bool()
            .unwrap_or_else(|| panic!("case {case}: no excluded"));
        let pm = match PatternMatcher::new(&patterns) {
            Ok(pm) => pm,
            Err(e) => {
                failures.push(format!("patterns {patterns:?}: refused: {e}"));
                continue;
            }
        };
        let direct = pm.matches_or_parent_matches(path);
        let walked = walk_match(&pm, path);
        let no_context = pm
            .matches_using_parent_results(path, &MatchInfo::default())
            .unwrap_or_else(|e| panic!("case {case}: {e}"))
            .0;
        if (direct, walked, no_context) != (want, want, want) {
            failures.push(format!(
                "patterns {patterns:?} path {path:?}: want {want}, got direct {direct} walked {walked} no-context {no_context}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 72 cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn glob_conformance_table_passes() {
    let cases = jsonl("glob.jsonl");
    assert_eq!(cases.len(), 54, "glob cases present");
    let mut failures = Vec::new();
    for case in &cases {
        let pattern = str_field(case, "pattern");
        let path = str_field(case, "path");
        let want_match = case["match"]
            .as_bool()
            .unwrap_or_else(|| panic!("case {case}: no match"));
        let want_err = str_field(case, "error");
        let got = matches(path, [pattern]);
        let ok = match (&got, want_err) {
            (Err(IgnoreError::BadPattern { .. }), "bad-pattern") => true,
            (Ok(m), "ok") => *m == want_match,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "pattern {pattern:?} path {path:?}: want {want_match}/{want_err}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 54 cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn read_patterns_strips_comments_slashes_and_cleans() {
    let got = read_patterns("\u{feff}# comment\n  \n/abs/path\n!/keep/./this/\n a/../b \n#x\n !  spaced\n\\#literal\n!\n");
    assert_eq!(
        got,
        vec!["abs/path", "!keep/this", "b", "!spaced", "\\#literal", "!"]
    );
    assert_eq!(
        PatternMatcher::new(&got).unwrap_err(),
        IgnoreError::IllegalExclusion
    );
}

#[test]
fn clean_path_matches_go() {
    for (input, want) in [
        ("", "."),
        ("a//b/./c/..", "a/b"),
        ("/../x", "/x"),
        ("../../a", "../../a"),
        ("a/../..", ".."),
        ("/", "/"),
        ("./", "."),
        ("dir/", "dir"),
    ] {
        assert_eq!(clean_path(input), want, "clean {input:?}");
    }
    assert_eq!(dir_of("file/"), "file");
    assert_eq!(dir_of("file"), ".");
    assert_eq!(dir_of("a/b/c"), "a/b");
}

#[test]
fn later_patterns_win_and_exceptions_reinclude() {
    let pm = PatternMatcher::new(["*.md", "!README.md", "docs", "!docs/keep.txt"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pm.matches_or_parent_matches("CHANGES.md"));
    assert!(!pm.matches_or_parent_matches("README.md"));
    assert!(
        !pm.matches_or_parent_matches("sub/CHANGES.md"),
        "* does not cross /"
    );
    assert!(
        pm.matches_or_parent_matches("docs/a/b.txt"),
        "a matched directory excludes its contents"
    );
    assert!(!pm.matches_or_parent_matches("docs/keep.txt"));
}

#[test]
fn excluded_directory_skipping_follows_dockers_rule() {
    let pm = PatternMatcher::new(["node_modules", "build", "!build/keep"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pm.can_skip_excluded_dir("node_modules"));
    assert!(
        !pm.can_skip_excluded_dir("build"),
        "an exception lies inside"
    );
    let no_exceptions = PatternMatcher::new(["build"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!no_exceptions.has_exclusions());
    assert!(no_exceptions.can_skip_excluded_dir("build"));
}

#[test]
fn parent_info_from_another_matcher_is_refused() {
    let a = PatternMatcher::new(["x", "y"]).unwrap_or_else(|e| panic!("{e}"));
    let b = PatternMatcher::new(["x"]).unwrap_or_else(|e| panic!("{e}"));
    let (_, info) = a
        .matches_using_parent_results("dir", &MatchInfo::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.matches_using_parent_results("dir/f", &info).unwrap_err(),
        IgnoreError::WrongParentInfo
    );
}

#[test]
fn pathological_star_patterns_stay_fast() {
    let pattern = "a*".repeat(20) + "b";
    let pm = PatternMatcher::new([pattern]).unwrap_or_else(|e| panic!("{e}"));
    let start = std::time::Instant::now();
    assert!(!pm.matches_or_parent_matches(&"a".repeat(200)));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn deep_paths_match_without_recursion() {
    let pm =
        PatternMatcher::new(["d/**/*.txt", "!d/**/keep?.txt"]).unwrap_or_else(|e| panic!("{e}"));
    // One pattern against a very long path: no recursion, linear per token.
    assert!(pm.patterns()[0].matches(&("d/".repeat(100_000) + "file.txt")));
    assert!(!pm.patterns()[0].matches(&("d/".repeat(100_000) + "file.md")));
    // The parent walk is quadratic in depth, as Docker's is; keep it to realistic depths.
    assert!(pm.matches_or_parent_matches(&("d/".repeat(200) + "file.txt")));
    assert!(!pm.matches_or_parent_matches(&("d/".repeat(50) + "keep1.txt")));
    assert!(
        pm.matches_or_parent_matches(&("d/".repeat(50) + "keep1/x.txt")),
        "? does not cross /"
    );
}

#[test]
fn walk_decisions_skip_only_directories_no_exception_reaches() {
    let pm = PatternMatcher::new(read_patterns("vendor\nbuild\n!build/keep.txt\n*.log\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let root = MatchInfo::default();
    let d = |path: &str, is_dir: bool, parent: &MatchInfo| {
        pm.walk_decision(path, is_dir, parent)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(d("vendor", true, &root).0, WalkDecision::SkipDir);
    assert_eq!(d("src", true, &root).0, WalkDecision::Include);
    assert_eq!(d("app.log", false, &root).0, WalkDecision::Exclude);
    let (build, info) = d("build", true, &root);
    assert_eq!(
        build,
        WalkDecision::Exclude,
        "descend: an exception lies inside"
    );
    assert_eq!(d("build/keep.txt", false, &info).0, WalkDecision::Include);
    assert_eq!(d("build/other.o", false, &info).0, WalkDecision::Exclude);
}

#[test]
fn dockerfile_and_dockerignore_are_kept_as_the_cli_keeps_them() {
    let patterns = read_patterns("*\n");
    let kept = keep_build_files(&patterns, "Dockerfile", false);
    assert_eq!(kept, vec!["*", "!.dockerignore", "!Dockerfile"]);
    let pm = PatternMatcher::new(&kept).unwrap_or_else(|e| panic!("{e}"));
    assert!(!pm.matches_or_parent_matches("Dockerfile"));
    assert!(pm.matches_or_parent_matches("main.go"));
    assert_eq!(
        keep_build_files(&patterns, "Dockerfile", true),
        vec!["*", "!.dockerignore"]
    );
    assert_eq!(
        keep_build_files(&read_patterns("src\n"), "Dockerfile", false),
        vec!["src"]
    );
}
