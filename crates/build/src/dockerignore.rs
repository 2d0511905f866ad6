//! `.dockerignore`: reading the file and deciding, for a path in the build context, whether it is
//! excluded, with the semantics of Docker's `patternmatcher` (the later pattern wins, `!`
//! re-includes, a pattern that matches a directory excludes everything under it, `**` crosses
//! directories).
//!
//! The matcher is written here rather than taken from a glob or regex crate because Docker's
//! semantics are neither: patterns are validated with Go's `filepath.Match` rules but matched by
//! a translation to Go regexps with shortcuts (a leading `**` is a plain suffix test, so `**file`
//! matches `xfile`; a trailing `**` a plain prefix test), `*` and `?` never cross `/` while `**`
//! does, and a parent directory's match counts for everything below it. The `glob` and
//! `globset` crates follow gitignore/shell rules that differ on those points, and the `regex`
//! crate's class syntax (nested classes, `&&`) would read some patterns differently.

/// A `.dockerignore` pattern could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// The pattern breaks Go's `filepath.Match` syntax (unclosed `[`, trailing `\`, bad range).
    #[error("syntax error in pattern: {pattern}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
    },
    /// A line holding only `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A [`MatchInfo`] from a different matcher was passed in.
    #[error("wrong number of values in parentMatched")]
    WrongParentInfo,
}

/// Reads a `.dockerignore` file into patterns, as Docker does: a UTF-8 BOM is dropped, lines
/// starting with `#` are comments, lines are trimmed and blank ones skipped, each pattern is
/// cleaned (`a/./b/../c` → `a/c`) and a leading `/` is dropped (patterns are relative to the
/// context root), `!` kept in front.
pub fn read_patterns(content: &str) -> Vec<String> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = Vec::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

/// Lexically cleans a slash path as Go's `path/filepath.Clean` does on Unix: repeated slashes
/// collapse, `.` elements go, `..` removes the element before it (and is dropped at the root),
/// the empty path becomes `.`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned.
fn dir_of(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean_path(&path[..=i]),
        None => ".".into(),
    }
}

/// The directory `dir` and each directory above it, shortest first (`a`, `a/b`, `a/b/c`): the
/// prefixes Docker tests by joining the first n elements of the split path.
fn ancestors(dir: &str) -> impl Iterator<Item = &str> {
    dir.match_indices('/')
        .map(move |(i, _)| &dir[..i])
        .chain(std::iter::once(dir))
}

/// What a parent directory matched, carried down a walk so that children need not re-test their
/// parents (Docker's `MatchInfo`). Start from `MatchInfo::default()` at the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A list of `.dockerignore` patterns, ready to match.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Glob(Vec<Tok>),
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `?`: one character other than `/`.
    AnyNotSlash,
    /// `*`: any run of characters other than `/`.
    StarNotSlash,
    /// `**` before more pattern: nothing, or anything ending in `/` (`(.*/)?`).
    DirStar,
    /// `**` at the end after other wildcards: anything (`.*`).
    AnyStar,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Pattern {
    /// The pattern as cleaned, without its `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Glob(toks) => {
                let chars: Vec<char> = path.chars().collect();
                glob_match(toks, &chars)
            }
        }
    }
}

/// Anchored match of `toks` against `s`, by dynamic programming from the end of the pattern:
/// `next[i]` says whether the tokens after the current one match `s[i..]`. Linear in the path
/// for each token, with no recursion, so long paths and many stars stay cheap.
fn glob_match(toks: &[Tok], s: &[char]) -> bool {
    let n = s.len();
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut cur = vec![false; n + 1];
    for tok in toks.iter().rev() {
        match tok {
            Tok::Lit(c) => {
                for i in 0..=n {
                    cur[i] = i < n && s[i] == *c && next[i + 1];
                }
            }
            Tok::AnyNotSlash => {
                for i in 0..=n {
                    cur[i] = i < n && s[i] != '/' && next[i + 1];
                }
            }
            Tok::Class { negated, ranges } => {
                for i in 0..=n {
                    cur[i] = i < n
                        && ranges.iter().any(|(lo, hi)| *lo <= s[i] && s[i] <= *hi) != *negated
                        && next[i + 1];
                }
            }
            Tok::StarNotSlash => {
                cur[n] = next[n];
                for i in (0..n).rev() {
                    cur[i] = next[i] || (s[i] != '/' && cur[i + 1]);
                }
            }
            // Go's `.` does not match a newline.
            Tok::AnyStar => {
                cur[n] = next[n];
                for i in (0..n).rev() {
                    cur[i] = next[i] || (s[i] != '\n' && cur[i + 1]);
                }
            }
            Tok::DirStar => {
                // `(.*/)?`: nothing, or a run of non-newlines ending in `/`. `through[i]` says
                // whether such a run starting at i can be followed by a match of the rest.
                let mut through = false;
                cur[n] = next[n];
                for i in (0..n).rev() {
                    through = (s[i] == '/' && next[i + 1]) || (s[i] != '\n' && through);
                    cur[i] = next[i] || through;
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

/// Checks `pattern` against Go's `filepath.Match` syntax: `\` must escape something, and a `[`
/// class must close, hold at least one item, and not start an item with an unescaped `-` or `]`.
fn validate(pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return false;
                }
                i += 2;
            }
            '[' => match parse_class(&chars, i + 1) {
                Some((_, next)) => i = next,
                None => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// A `[...]` class: inclusive ranges (a single character is a range of one), maybe negated.
struct ClassBody {
    negated: bool,
    ranges: Vec<(char, char)>,
}

/// Parses a class body starting after `[`; returns it and the index after its `]`.
fn parse_class(chars: &[char], mut i: usize) -> Option<(ClassBody, usize)> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Some((ClassBody { negated, ranges }, i + 1));
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) class character; like Go's `getEsc`, refuses an unescaped `-` or `]`,
/// and a character that ends the pattern (the class is then unclosed).
fn class_char(chars: &[char], mut i: usize) -> Option<(char, usize)> {
    match chars.get(i) {
        None | Some('-') | Some(']') => return None,
        Some('\\') => i += 1,
        Some(_) => {}
    }
    let c = *chars.get(i)?;
    if i + 1 >= chars.len() {
        return None;
    }
    Some((c, i + 1))
}

/// Classifies and tokenises a validated pattern the way patternmatcher's `compile` does.
fn compile(pattern: &str) -> Kind {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut detected = Detected::Exact;
    let mut i = 0;
    let mut iteration = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        toks.push(Tok::AnyStar);
                        detected = Detected::Regexp;
                    }
                } else {
                    toks.push(Tok::DirStar);
                    detected = Detected::Regexp;
                }
                if iteration == 0 {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::StarNotSlash);
                detected = Detected::Regexp;
            }
            '?' => {
                toks.push(Tok::AnyNotSlash);
                detected = Detected::Regexp;
            }
            '\\' => {
                if let Some(&next) = chars.get(i) {
                    i += 1;
                    toks.push(Tok::Lit(next));
                    detected = Detected::Regexp;
                } else {
                    toks.push(Tok::Lit('\\'));
                }
            }
            '[' => {
                detected = Detected::Regexp;
                match parse_class(&chars, i) {
                    Some((ClassBody { negated, ranges }, next)) => {
                        toks.push(Tok::Class { negated, ranges });
                        i = next;
                    }
                    // Unreachable for validated patterns; a literal keeps matching total.
                    None => toks.push(Tok::Lit('[')),
                }
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                detected = Detected::Regexp;
            }
            c => toks.push(Tok::Lit(c)),
        }
        iteration += 1;
    }
    match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix,
        Detected::Suffix => Kind::Suffix,
        Detected::Regexp => Kind::Glob(toks),
    }
}

impl PatternMatcher {
    /// Compiles patterns in `.dockerignore` order (as [`read_patterns`] returns them). Blank
    /// patterns are skipped; each is trimmed and cleaned; a leading `!` makes an exception.
    pub fn new<I, S>(patterns: I) -> Result<Self, IgnoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        let mut exclusions = false;
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean_path(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(IgnoreError::IllegalExclusion);
                }
                exclusion = true;
                exclusions = true;
                p = rest.to_string();
            }
            if !validate(&p) {
                return Err(IgnoreError::BadPattern { pattern: p });
            }
            let kind = compile(&p);
            out.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(PatternMatcher {
            patterns: out,
            exclusions,
        })
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` (slash-separated, relative to the context root) is excluded, testing the
    /// path and each of its parent directories against every pattern.
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        let parent = dir_of(path);
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion cannot change an excluded result, nor an exception an included one.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit && parent != "." {
                hit = ancestors(&parent).any(|dir| pattern.matches(dir));
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether `path` is excluded, given what its parent directory matched (pass
    /// `MatchInfo::default()` for the context root's children, or when the parent is unknown, in
    /// which case the parents are tested as in [`Self::matches_or_parent_matches`]). Returns the
    /// info to pass for `path`'s own children.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), IgnoreError> {
        let parent_matched = &parent.parent_matched;
        if !parent_matched.is_empty() && parent_matched.len() != self.patterns.len() {
            return Err(IgnoreError::WrongParentInfo);
        }
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent_matched.get(i).copied().unwrap_or(false);
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && parent_matched.is_empty() {
                    let parent = dir_of(path);
                    if parent != "." {
                        hit = ancestors(&parent).any(|dir| pattern.matches(dir));
                    }
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }

    /// For an excluded directory `dir`: whether the walk may skip everything under it, because no
    /// `!` exception could re-include something inside. This is Docker's (conservative on
    /// prefix, permissive on wildcards) rule: an exception counts only if its cleaned text starts
    /// with `dir/`, so `!**/keep` does not keep a directory's contents alive, as with Docker.
    pub fn can_skip_excluded_dir(&self, dir: &str) -> bool {
        if !self.exclusions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&dir_slash))
    }
}

/// What a build-context walker does with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkDecision {
    /// Send it (and, for a directory, descend).
    Include,
    /// Leave the entry out but, for a directory, still descend: an exception may re-include
    /// something inside.
    Exclude,
    /// Leave out the directory and everything under it.
    SkipDir,
}

impl PatternMatcher {
    /// Decides one entry of a context walk, as Docker's archiver does: `path` is relative to the
    /// context root, `parent` is the info returned for its directory (`MatchInfo::default()` for
    /// entries at the root). Returns the decision and the info to pass to the entry's children.
    pub fn walk_decision(
        &self,
        path: &str,
        is_dir: bool,
        parent: &MatchInfo,
    ) -> Result<(WalkDecision, MatchInfo), IgnoreError> {
        let (excluded, info) = self.matches_using_parent_results(path, parent)?;
        let decision = match (excluded, is_dir) {
            (false, _) => WalkDecision::Include,
            (true, false) => WalkDecision::Exclude,
            (true, true) if self.can_skip_excluded_dir(path) => WalkDecision::SkipDir,
            (true, true) => WalkDecision::Exclude,
        };
        Ok((decision, info))
    }
}

/// Adds exceptions so that `.dockerignore` and the Dockerfile are always sent even when a pattern
/// excludes them (the docker CLI's `TrimBuildFilesFromExcludes`; the builder needs both). The
/// Dockerfile is not kept when it comes from standard input.
pub fn keep_build_files(
    patterns: &[String],
    dockerfile: &str,
    dockerfile_from_stdin: bool,
) -> Vec<String> {
    let mut out = patterns.to_vec();
    if matches(".dockerignore", patterns).unwrap_or(false) {
        out.push("!.dockerignore".into());
    }
    if !dockerfile_from_stdin && matches(dockerfile, patterns).unwrap_or(false) {
        out.push(format!("!{dockerfile}"));
    }
    out
}

/// Whether `path` is excluded by `patterns` (Docker's `MatchesOrParentMatches` helper): the
/// path is cleaned first and the context root itself is never excluded.
pub fn matches<I, S>(path: &str, patterns: I) -> Result<bool, IgnoreError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let pm = PatternMatcher::new(patterns)?;
    let path = clean_path(path);
    if path == "." {
        return Ok(false);
    }
    Ok(pm.matches_or_parent_matches(&path))
}

#[cfg(test)]
mod tests;
