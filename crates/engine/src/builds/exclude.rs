//! `COPY --exclude` / `ADD --exclude`: which entries of a directory source stay out of the copy.
//!
//! The archive writer leaves out exact names ([`archive::WriteOptions::exclude`]); this walk turns the
//! patterns into those names. Each entry is tested on its own path relative to the source, with
//! `.dockerignore` rules (the same test the build crate's cache key uses), so what is copied is what was
//! hashed. An excluded directory is left out whole, unless a `!` exception keeps something below it: then
//! the directory stays (as BuildKit keeps the parents of what it copies) and only its excluded entries go.

use std::path::Path;

use build::backend::BackendError;
use build::dockerignore::PatternMatcher;

/// The names (relative to `src`, as [`archive::Writer::append_dir`] makes them from an empty root name)
/// that `patterns` exclude, the top-most only: a name's descendants are not listed.
pub(super) fn excluded_names(
    src: &Path,
    patterns: &[String],
) -> Result<Vec<Vec<u8>>, BackendError> {
    let pm = PatternMatcher::new(patterns)
        .map_err(|e| BackendError::Other(format!("invalid --exclude pattern: {e}")))?;
    let mut out = Vec::new();
    walk(src, b"", &pm, &mut out)?;
    Ok(out)
}

/// Lists the excluded names below `dir` (whose name is `prefix`) in `out`. Returns whether anything
/// below `dir` is kept.
fn walk(
    dir: &Path,
    prefix: &[u8],
    pm: &PatternMatcher,
    out: &mut Vec<Vec<u8>>,
) -> Result<bool, BackendError> {
    use std::os::unix::ffi::OsStrExt;
    let io = |e: std::io::Error| BackendError::Other(format!("{}: {e}", dir.display()));
    let mut kept_any = false;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let mut rel = prefix.to_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        // `file_type` does not follow symlinks: a link to a directory is copied as a link.
        let is_dir = entry.file_type().map_err(io)?.is_dir();
        let excluded = pm.matches_or_parent_matches(&String::from_utf8_lossy(&rel));
        if !excluded {
            kept_any = true;
            if is_dir {
                walk(&entry.path(), &rel, pm, out)?;
            }
            continue;
        }
        if is_dir && pm.has_exclusions() {
            let mark = out.len();
            if walk(&entry.path(), &rel, pm, out)? {
                kept_any = true;
                continue;
            }
            // Nothing below is kept: the directory goes whole, named once.
            out.truncate(mark);
        }
        out.push(rel);
    }
    Ok(kept_any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        dir
    }

    fn names(dir: &Path, patterns: &[&str]) -> Vec<String> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let mut got: Vec<String> = excluded_names(dir, &patterns)
            .unwrap()
            .into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect();
        got.sort();
        got
    }

    #[test]
    fn excluded_directories_are_named_once_and_files_by_pattern() {
        let d = tree(&[
            "keep.txt",
            "a.log",
            "sub/b.log",
            "sub/c.txt",
            "tmp/x",
            "tmp/deep/y",
        ]);
        assert_eq!(names(d.path(), &["*.log", "tmp"]), ["a.log", "tmp"]);
        assert_eq!(names(d.path(), &["**/*.log"]), ["a.log", "sub/b.log"]);
        assert_eq!(names(d.path(), &["nothing"]), Vec::<String>::new());
    }

    #[test]
    fn an_exception_keeps_its_entry_and_the_directories_above_it() {
        let d = tree(&["tmp/x", "tmp/keep", "tmp/deep/y", "other/z"]);
        assert_eq!(
            names(d.path(), &["tmp", "!tmp/keep"]),
            ["tmp/deep", "tmp/x"]
        );
        assert_eq!(names(d.path(), &["*", "!other"]), ["tmp"]);
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        let d = tree(&["a"]);
        assert!(excluded_names(d.path(), &["[".to_string()]).is_err());
    }
}
