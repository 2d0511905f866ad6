use super::*;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parser")
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read conformance data {}: {e}", path.display()))
}

fn case_dirs(folder: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(folder);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
                .path()
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn parse_conformance_cases_dump_exactly_as_docker() {
    let dirs = case_dirs("testfiles");
    assert_eq!(dirs.len(), 33, "conformance parse cases present");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dockerfile = read(&dir.join("Dockerfile"));
        let expected = read(&dir.join("result"));
        match parse(&dockerfile) {
            Ok(df) => {
                let got = df.dump();
                if got != expected {
                    let diff: Vec<String> = got
                        .lines()
                        .zip(expected.lines())
                        .filter(|(g, e)| g != e)
                        .map(|(g, e)| format!("    got  {g}\n    want {e}"))
                        .collect();
                    failures.push(format!(
                        "case {name}: dump differs ({} vs {} lines)\n{}",
                        got.lines().count(),
                        expected.lines().count(),
                        diff.join("\n")
                    ));
                }
            }
            Err(e) => failures.push(format!("case {name}: parse failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 33 cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_conformance_cases_are_refused() {
    let dirs = case_dirs("testfiles-negative");
    assert_eq!(dirs.len(), 4, "negative cases present");
    for dir in &dirs {
        let dockerfile = read(&dir.join("Dockerfile"));
        let result = parse(&dockerfile);
        assert!(
            result.is_err(),
            "case {}: parsed but must fail: {result:?}",
            dir.display()
        );
    }
}

#[test]
fn negative_cases_give_dockers_messages() {
    let err = |s: &str| parse(s).unwrap_err().message;
    assert_eq!(err(""), "file with no instructions");
    assert_eq!(err("# Hello\n# comments\n\n"), "file with no instructions");
    assert_eq!(
        err("FROM busybox\n\nENV PATH\n"),
        "ENV must have two arguments"
    );
    assert_eq!(
        err("CMD [ \"echo\", [ \"nested json\" ] ]\n"),
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn line_numbers_match_dockers_line_file() {
    let df = parse(&read(&fixtures().join("testfile-line/Dockerfile")))
        .unwrap_or_else(|e| panic!("parse: {e}"));
    let lines: Vec<(usize, usize)> = df
        .nodes
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect();
    assert_eq!(lines, vec![(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn heredocs_several_per_line_with_chomp_quotes_and_descriptors() {
    let src = "FROM busybox\n\
               RUN <<EOF 3<<-'END' cat - /dev/fd/3\n\
               echo $HOME\n\
               EOF\n\
               \tindented $X\n\
               \tEND\n\
               COPY <<\"A\" <<B /dst/\n\
               a\n\
               A\n\
               b\n\
               B\n\
               RUN echo done\n";
    let df = parse(src).unwrap_or_else(|e| panic!("parse: {e}"));
    assert_eq!(df.nodes.len(), 4);
    let run = &df.nodes[1];
    assert_eq!((run.start_line, run.end_line), (2, 6));
    assert_eq!(run.heredocs.len(), 2);
    let (a, b) = (&run.heredocs[0], &run.heredocs[1]);
    assert_eq!(
        (a.name.as_str(), a.file_descriptor, a.expand, a.chomp),
        ("EOF", 0, true, false)
    );
    assert_eq!(a.content, "echo $HOME\n");
    assert_eq!(
        (b.name.as_str(), b.file_descriptor, b.expand, b.chomp),
        ("END", 3, false, true)
    );
    assert_eq!(b.content, "\tindented $X\n");
    assert_eq!(chomp_heredoc_content(&b.content), "indented $X\n");

    let copy = &df.nodes[2];
    assert_eq!(copy.arg_strings(), vec!["<<\"A\"", "<<B", "/dst/"]);
    let names: Vec<(&str, bool, &str)> = copy
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.expand, h.content.as_str()))
        .collect();
    assert_eq!(names, vec![("A", false, "a\n"), ("B", true, "b\n")]);
    assert_eq!((df.nodes[3].start_line, df.nodes[3].end_line), (12, 12));
}

#[test]
fn heredoc_is_not_read_for_json_form_or_other_instructions() {
    let df = parse("FROM a\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\nENV A=<<EOF\nRUN echo hi\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(df.nodes.len(), 4);
    assert!(df.nodes.iter().all(|n| n.heredocs.is_empty()));
}

#[test]
fn unterminated_heredoc_is_refused_with_its_lines() {
    let e = parse("FROM a\nRUN <<EOF\necho hi\n").unwrap_err();
    assert_eq!(e.message, "unterminated heredoc");
    assert_eq!((e.start_line, e.end_line), (2, 3));
}

#[test]
fn partially_quoted_heredoc_delimiter_disables_expansion() {
    let h = parse_heredoc("<<E\"O\"F")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not a heredoc"));
    assert_eq!((h.name.as_str(), h.expand), ("EOF", false));
    assert!(parse_heredoc("<<")
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    assert!(parse_heredoc("a<<EOF")
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
}

#[test]
fn directives_are_recorded_and_syntax_warns() {
    let df = parse(
        "# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM a\nRUN echo `\n  b\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = df.directives.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["syntax", "check", "escape"]);
    assert_eq!(df.escape, '`');
    assert_eq!(df.nodes[1].arg_strings(), vec!["echo   b"]);
    assert!(
        df.warnings
            .iter()
            .any(|w| w.short.contains("syntax directive") && w.line == 1),
        "{:?}",
        df.warnings
    );
}

#[test]
fn directive_errors_use_dockers_words() {
    assert_eq!(
        parse("# escape=x\nFROM a\n").unwrap_err().message,
        "invalid escape token 'x' does not match ` or \\"
    );
    assert_eq!(
        parse("# escape=`\n# escape=\\\nFROM a\n")
            .unwrap_err()
            .message,
        "only one escape parser directive can be used"
    );
    // After the first non-directive line a directive is a plain comment.
    let df = parse("FROM a\n# escape=`\nRUN x \\\n y\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(df.escape, '\\');
    assert_eq!(df.nodes[1].arg_strings(), vec!["x  y"]);
}

#[test]
fn empty_continuation_lines_warn_and_comments_inside_continuations_are_dropped() {
    let df = parse("FROM a\nRUN something \\\n\n    following \\\n  # a comment\n    more\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        df.nodes[1].arg_strings(),
        vec!["something     following     more"]
    );
    assert_eq!(df.warnings.len(), 1);
    assert!(df.warnings[0]
        .short
        .starts_with("Empty continuation line found in: RUN something"));
}

#[test]
fn crlf_line_endings_and_bom_are_accepted() {
    let df = parse("\u{feff}FROM a\r\nRUN echo \\\r\n  hi\r\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(df.dump(), "(from \"a\")\n(run \"echo   hi\")\n");
}

#[test]
fn flags_and_onbuild_nest_in_the_node_tree() {
    let df = parse("FROM --platform=linux/amd64 a AS b\nONBUILD COPY --from=b x y\nFOO bar\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        df.dump(),
        "(from [\"--platform=linux/amd64\"] \"a\" \"AS\" \"b\")\n(onbuild (copy [\"--from=b\"] \"x\" \"y\"))\n(foo \"\")\n"
    );
    assert_eq!(df.nodes[1].arg_strings(), vec!["COPY", "x", "y"]);
}

#[test]
fn overlong_line_is_refused() {
    let src = format!("FROM a\nLABEL a={}\n", "x".repeat(MAX_LINE));
    assert_eq!(
        parse(&src).unwrap_err().message,
        "dockerfile line greater than max allowed size of 65535"
    );
}
