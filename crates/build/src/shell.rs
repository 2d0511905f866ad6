//! Shell-word expansion as Docker's builders apply it to instruction arguments (`ProcessWord` /
//! `ProcessWords` in buildkit's `shell` package): `$VAR`, `${VAR}`, the `${VAR:-x}` family, `#`/`%`
//! trimming and `/` replacement, single and double quotes, and escapes with the Dockerfile's escape
//! character. It is a small lexer rather than a real shell: no command substitution, no globbing.

use std::collections::{BTreeSet, HashMap};

/// Why a word could not be expanded. `Display` gives Docker's text, e.g.
/// `failed to process "${}": syntax error: bad substitution`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {message}", crate::quote::go_quote(.word))]
pub struct ShellError {
    /// The word that was being expanded.
    pub word: String,
    /// What went wrong, worded as buildkit words it.
    pub message: String,
}

/// Variables a word can refer to.
pub trait Environment {
    /// The value of `name`, or `None` when it is unset (an empty value is set).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Environment for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<E: Environment + ?Sized> Environment for &E {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// An environment with no variables, for lexing where nothing may expand.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnvironment;

impl Environment for NoEnvironment {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// An environment built from `KEY=value` strings, as a container's `Env` list; a later entry for the
/// same key wins, and an entry without `=` sets the key to the empty string.
#[derive(Debug, Clone, Default)]
pub struct EnvList {
    vars: HashMap<String, String>,
}

impl EnvList {
    /// Builds the lookup from `KEY=value` entries.
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut vars = HashMap::new();
        for entry in entries {
            let entry = entry.as_ref();
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            vars.insert(k.to_string(), v.to_string());
        }
        EnvList { vars }
    }
}

impl Environment for EnvList {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// The result of expanding one word: the joined value, the whitespace-split words, and which
/// variable names were looked up and found or not found (the builder reports unused build args).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The word with quotes removed and variables substituted.
    pub value: String,
    /// The same, split into words on unquoted whitespace (quoted whitespace stays in a word).
    pub words: Vec<String>,
    /// Names that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Names that were referenced and unset.
    pub unmatched: BTreeSet<String>,
}

/// A word lexer with the Dockerfile's escape character and buildkit's processing options.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the output (the parser uses this to see whether a heredoc
    /// delimiter was quoted).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written instead of expanding them to "".
    pub skip_unset_env: bool,
    /// Treat quote characters as ordinary characters.
    pub skip_process_quotes: bool,
}

impl Lexer {
    /// A lexer for Dockerfiles whose escape character is `escape` (`\` or `` ` ``).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Expands `word` into one string (ENV values, COPY paths, WORKDIR, ...).
    pub fn process_word(&self, word: &str, env: &dyn Environment) -> Result<String, ShellError> {
        self.process(word, env).map(|e| e.value)
    }

    /// Expands `word` and splits it into words on unquoted whitespace (shell-form argument lists).
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn Environment,
    ) -> Result<Vec<String>, ShellError> {
        self.process(word, env).map(|e| e.words)
    }

    /// Expands `word`, returning the value, the words and which names were referenced.
    pub fn process(&self, word: &str, env: &dyn Environment) -> Result<Expansion, ShellError> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((value, words)) => Ok(Expansion {
                value,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(message) => Err(ShellError {
                word: word.to_string(),
                message,
            }),
        }
    }
}

struct ShellWord<'a> {
    lex: Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Environment,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Accumulates words while characters are appended; unquoted whitespace ends a word.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

type LexResult<T> = Result<T, String>;

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> LexResult<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> LexResult<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if !self.lex.skip_process_quotes => Some(self.process_single_quote()?),
                '"' if !self.lex.skip_process_quotes => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                // Expanded variables split into words; quoted text and heredoc markers do not.
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            self.next();
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    // An escape at the very end is dropped.
                    None => break,
                    Some(escaped) => {
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    }
                }
            } else {
                words.add_char(ch);
                result.push(ch);
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> LexResult<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> LexResult<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            // Inside double quotes only these are escapable; otherwise the escape
                            // character is literal, as in sh.
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> LexResult<String> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut chs = ch.to_string();
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    ch = self
                        .next()
                        .ok_or_else(|| "syntax error: missing '}'".to_string())?;
                    chs.push(ch);
                }
                // Patterns for # and % keep their escapes so that `\*` stays a literal star.
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let empty = value.as_deref().is_none_or(str::is_empty);
                match ch {
                    '-' => Ok(if value.is_none() || (null_is_unset && empty) {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if value.is_none() || (null_is_unset && empty) {
                        String::new()
                    } else {
                        word
                    }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (greedy, pattern) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        let pat = ShellPattern::parse(&pattern).map_err(|e| {
                            format!("invalid pattern ({pattern}) in substitution: {e}")
                        })?;
                        Ok(if ch == '#' {
                            pat.trim_prefix(&value, greedy)
                        } else {
                            pat.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((p, _)) => p,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '/' in ${}".into());
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((r, _)) => r,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                let Some(value) = value else {
                    if self.lex.skip_unset_env {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let pat = ShellPattern::parse(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(pat.replace(&value, &replacement, replace_all))
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                // Positional parameters: all the digits, never letters after them.
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next(); // '<'
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        // Whitespace after `<<` stays part of the word so that `<< EOF` reaches the heredoc
        // detector as one word.
        let mut result = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            result.push(c);
            self.next();
        }
        result
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }
}

/// A shell pattern for `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/rep}`: `*`, `?` and literals, with
/// `\` escaping `*`, `?` and `\` (and dropped before `}` and `/`), as buildkit accepts them.
#[derive(Debug)]
struct ShellPattern(Vec<PatTok>);

#[derive(Debug, Clone, Copy)]
enum PatTok {
    Star,
    Any,
    Lit(char),
}

impl ShellPattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        let mut toks = Vec::new();
        let mut it = pattern.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => toks.push(PatTok::Star),
                '?' => toks.push(PatTok::Any),
                '\\' => {
                    if matches!(it.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match it.next() {
                        Some(e @ ('*' | '?' | '\\')) => toks.push(PatTok::Lit(e)),
                        Some(e) => return Err(format!("invalid escape '\\{e}'")),
                        None => return Err("invalid escape '\\'".into()),
                    }
                }
                c => toks.push(PatTok::Lit(c)),
            }
        }
        Ok(ShellPattern(toks))
    }

    /// Whether the pattern matches all of `s`.
    fn matches(&self, s: &[char]) -> bool {
        // Classic two-pointer wildcard match with backtracking to the last star: linear enough for
        // the short values a Dockerfile substitutes.
        let p = &self.0;
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(PatTok::Star) => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(PatTok::Any) => {
                    pi += 1;
                    si += 1;
                }
                Some(PatTok::Lit(c)) if *c == s[si] => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    Some((sp, ss)) => {
                        pi = sp + 1;
                        si = ss + 1;
                        star = Some((sp, ss + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|t| matches!(t, PatTok::Star))
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut lens: Box<dyn Iterator<Item = usize>> = if greedy {
            Box::new((0..=chars.len()).rev())
        } else {
            Box::new(0..=chars.len())
        };
        match lens.find(|&n| self.matches(&chars[..n])) {
            Some(n) => chars[n..].iter().collect(),
            None => value.to_string(),
        }
    }

    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let len = chars.len();
        let mut starts: Box<dyn Iterator<Item = usize>> = if greedy {
            Box::new(0..=len)
        } else {
            Box::new((0..=len).rev())
        };
        match starts.find(|&n| self.matches(&chars[n..])) {
            Some(n) => chars[..n].iter().collect(),
            None => value.to_string(),
        }
    }

    /// Replaces the leftmost-longest match (or every non-overlapping one).
    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= chars.len() {
            if replaced && !all {
                break;
            }
            let found = (i..=chars.len())
                .rev()
                .find(|&end| self.matches(&chars[i..end]));
            match found {
                Some(end) => {
                    out.push_str(replacement);
                    replaced = true;
                    if end == i {
                        // An empty match: keep the character and move on, as regexp replacement does.
                        if let Some(c) = chars.get(i) {
                            out.push(*c);
                        }
                        i += 1;
                    } else {
                        i = end;
                    }
                }
                None => {
                    if let Some(c) = chars.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
            }
        }
        if i < chars.len() {
            out.extend(&chars[i..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/shell/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read conformance data {path}: {e}"))
    }

    #[test]
    fn env_var_test_conformance_table_passes() {
        let env = EnvList::new(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
        let lex = Lexer::new('\\');
        let mut ran = 0;
        let mut failures = Vec::new();
        for (n, line) in fixture("envVarTest").lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.trim().split('|').collect();
            assert_eq!(
                fields.len(),
                3,
                "envVarTest line {}: want 3 fields: {line:?}",
                n + 1
            );
            let (mode, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
            assert!(
                matches!(mode, "A" | "U" | "W"),
                "envVarTest line {}: bad mode {mode}",
                n + 1
            );
            if mode == "W" {
                continue;
            }
            ran += 1;
            let got = lex.process_word(input, &env);
            let ok = match (&got, expected) {
                (Err(_), "error") => true,
                (Ok(v), e) => e != "error" && v == e,
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "line {}: {input:?} want {expected:?} got {got:?}",
                    n + 1
                ));
            }
        }
        assert_eq!(ran, 228, "envVarTest: A and U cases run");
        assert!(
            failures.is_empty(),
            "{} envVarTest cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn words_test_conformance_table_passes() {
        let lex = Lexer::new('\\');
        let mut envs: Vec<String> = Vec::new();
        let mut ran = 0;
        let mut failures = Vec::new();
        for (n, line) in fixture("wordsTest").lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("ENV ") {
                envs.push(rest.trim_start_matches(' ').to_string());
                continue;
            }
            let fields: Vec<&str> = line.split('|').collect();
            assert_eq!(
                fields.len(),
                2,
                "wordsTest line {}: want exactly one |: {line:?}",
                n + 1
            );
            let input = fields[0].trim();
            let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
            ran += 1;
            let got = match lex.process_words(input, &EnvList::new(&envs)) {
                Ok(w) => w,
                Err(_) => vec!["error".to_string()],
            };
            if got != expected {
                failures.push(format!(
                    "line {}: {input:?} want {expected:?} got {got:?}",
                    n + 1
                ));
            }
        }
        assert_eq!(ran, 24, "wordsTest: cases run");
        assert!(
            failures.is_empty(),
            "{} wordsTest cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn error_names_the_word_and_the_reason() {
        let lex = Lexer::new('\\');
        let err = lex.process_word("he${}", &NoEnvironment).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"failed to process "he${}": syntax error: bad substitution"#
        );
        let err = lex
            .process_word("${X:?must be set}", &NoEnvironment)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"failed to process "${X:?must be set}": X: must be set"#
        );
    }

    #[test]
    fn backtick_escape_character_escapes_instead_of_backslash() {
        let lex = Lexer::new('`');
        let env = EnvList::new(["A=x"]);
        assert_eq!(lex.process_word(r"C:\dir`$A", &env).unwrap(), r"C:\dir$A");
        assert_eq!(lex.process_word(r"C:\dir\$A", &env).unwrap(), r"C:\dir\x");
    }

    #[test]
    fn trimming_and_replacement_modifiers() {
        let lex = Lexer::new('\\');
        let env = EnvList::new(["P=/usr/local/bin/tool.tar.gz"]);
        let w = |s: &str| lex.process_word(s, &env).unwrap();
        assert_eq!(w("${P#*/}"), "usr/local/bin/tool.tar.gz");
        assert_eq!(w("${P##*/}"), "tool.tar.gz");
        assert_eq!(w("${P%.*}"), "/usr/local/bin/tool.tar");
        assert_eq!(w("${P%%.*}"), "/usr/local/bin/tool");
        assert_eq!(w("${P/local/opt}"), "/usr/opt/bin/tool.tar.gz");
        assert_eq!(w("${P//o/0}"), "/usr/l0cal/bin/t00l.tar.gz");
        assert_eq!(w("${UNSET#x}"), "");
        assert!(lex.process_word("${P:#x}", &env).is_err());
    }

    #[test]
    fn skip_unset_env_keeps_references_as_written() {
        let mut lex = Lexer::new('\\');
        lex.skip_unset_env = true;
        let env = EnvList::new(["A=1"]);
        assert_eq!(
            lex.process_word("$A $B ${C} ${D:-x}", &env).unwrap(),
            "1 $B ${C} ${D:-x}"
        );
    }

    #[test]
    fn process_reports_matched_and_unmatched_names() {
        let lex = Lexer::new('\\');
        let env = EnvList::new(["A=1"]);
        let e = lex.process("$A${B:-$A}", &env).unwrap();
        assert_eq!(e.value, "11");
        assert!(e.matched.contains("A"));
        assert!(e.unmatched.contains("B"));
    }
}
