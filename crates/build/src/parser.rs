//! The Dockerfile parser: bytes to a list of instruction nodes, as Docker's parser produces them.
//!
//! Each [`Node`] keeps the instruction word as written, its `--flags`, its arguments after the
//! per-instruction line parser (JSON arrays decoded, `ENV`/`LABEL` split into key/value/separator
//! triples, `ONBUILD` holding a nested node), heredoc bodies and the first and last source line.
//! [`Node::dump`] prints the node in the S-expression form of the conformance data.
//!
//! Nothing is expanded here and unknown instructions are kept: [`crate::instructions`] validates.

use crate::quote::{go_quote, go_quote_list};
use crate::shell::{Lexer, NoEnvironment};

/// Docker's limit on one physical line (bufio.Scanner's default token size, less one).
const MAX_LINE: usize = 64 * 1024;

/// A parse failure, with the line it was found on. `Display` is the bare message, as Docker's
/// parser words it; the classic builder prefixes it with `failed to parse Dockerfile: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What is wrong, in Docker's words.
    pub message: String,
    /// First line (1-based) of the instruction or directive at fault; 0 when not tied to a line.
    pub start_line: usize,
    /// Last line of the instruction at fault.
    pub end_line: usize,
}

impl ParseError {
    fn new(message: impl Into<String>, start_line: usize, end_line: usize) -> Self {
        ParseError {
            message: message.into(),
            start_line,
            end_line: end_line.max(start_line),
        }
    }
}

/// One argument of a node: a plain string, or (for `ONBUILD`) the nested instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A string argument.
    Value(String),
    /// The instruction an `ONBUILD` wraps.
    Nested(Box<Node>),
}

/// A heredoc body attached to an instruction (`RUN <<EOF`, `COPY <<EOF /dst`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, unquoted (`EOF`); also the heredoc's file name for `COPY`.
    pub name: String,
    /// The file descriptor it feeds (`3<<EOF`); 0 (stdin) when none is given.
    pub file_descriptor: u32,
    /// Whether variables in the body are expanded (false when any part of the delimiter is quoted).
    pub expand: bool,
    /// Whether leading tabs are stripped (`<<-EOF`).
    pub chomp: bool,
    /// The body, each line with its newline, without the terminator line.
    pub content: String,
}

/// One parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction word as written (`RUN`, `run`, `FOO`).
    pub value: String,
    /// The logical line (continuations joined, comments removed), as given to the line parser.
    pub original: String,
    /// The leading `--name[=value]` flags, in order.
    pub flags: Vec<String>,
    /// The arguments after the instruction's line parser.
    pub args: Vec<Arg>,
    /// Whether the arguments came from a JSON array (exec form).
    pub json: bool,
    /// Heredoc bodies, in the order their delimiters appear.
    pub heredocs: Vec<Heredoc>,
    /// First source line (1-based).
    pub start_line: usize,
    /// Last source line, heredoc bodies included.
    pub end_line: usize,
    /// The comment lines directly above the instruction.
    pub prev_comment: Vec<String>,
}

impl Node {
    /// The node in the S-expression form of Docker's conformance `result` files, e.g.
    /// `(copy ["--from=a"] "src" "/dst")` or `(onbuild (run "echo" "x"))`.
    pub fn dump(&self) -> String {
        format!("({})", self.dump_inner())
    }

    fn dump_inner(&self) -> String {
        let mut s = self.value.to_lowercase();
        if !self.flags.is_empty() {
            s.push(' ');
            s.push_str(&go_quote_list(&self.flags));
        }
        for arg in &self.args {
            s.push(' ');
            match arg {
                Arg::Value(v) => s.push_str(&go_quote(v)),
                Arg::Nested(n) => s.push_str(&n.dump()),
            }
        }
        s.trim().to_string()
    }

    /// The arguments as strings; a nested `ONBUILD` instruction contributes its instruction word
    /// and then its own arguments (buildkit's `nodeArgs`).
    pub fn arg_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for arg in &self.args {
            match arg {
                Arg::Value(v) => out.push(v.clone()),
                Arg::Nested(n) => {
                    out.push(n.value.clone());
                    out.extend(n.arg_strings());
                }
            }
        }
        out
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match self.args.first() {
            Some(Arg::Nested(inner)) if self.value.eq_ignore_ascii_case("onbuild") => inner,
            _ => self,
        };
        let cmd = node.value.to_ascii_lowercase();
        matches!(cmd.as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// A parser directive found at the top of the file (`# escape=`, `# syntax=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive name, lowercased.
    pub name: String,
    /// Its value, trimmed.
    pub value: String,
    /// The line it is on.
    pub line: usize,
}

/// A non-fatal finding, reported to the client as the builder's warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// One-line description.
    pub short: String,
    /// The line it concerns.
    pub line: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The instructions, in order.
    pub nodes: Vec<Node>,
    /// The escape character in effect (`\` unless `# escape=` changed it).
    pub escape: char,
    /// The parser directives that were recognised.
    pub directives: Vec<Directive>,
    /// Warnings (empty continuation lines, ignored `syntax` directive).
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The whole file as conformance `result` lines, one per instruction.
    pub fn dump(&self) -> String {
        self.nodes.iter().map(|n| n.dump() + "\n").collect()
    }
}

/// The top-of-file directive scanner: directives count only before the first other line.
#[derive(Default)]
struct DirectiveParser {
    line: usize,
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    fn parse_line(&mut self, line: &str) -> Result<Option<Directive>, String> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let Some((key, value)) = split_directive(rest.trim_start()) else {
            self.done = true;
            return Ok(None);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        Ok(Some(Directive {
            name: key,
            value: value.to_string(),
            line: self.line,
        }))
    }
}

/// Splits `name = value` where name is `[a-zA-Z][a-zA-Z0-9]*` and the value is non-empty after
/// trimming (buildkit's directive regexp `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`).
fn split_directive(s: &str) -> Option<(&str, &str)> {
    let name_len = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(s.len(), |(i, _)| i);
    let name = &s[..name_len];
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = s[name_len..]
        .trim_start_matches(is_re_space)
        .strip_prefix('=')?;
    let value = rest
        .trim_start_matches(is_re_space)
        .trim_end_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// Go regexp's `\s`: `[\t\n\f\r ]`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// buildkit's `reWhitespace`: `[\t\v\f\r ]+`.
fn is_ws_sep(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits on runs of [`is_ws_sep`], at most `limit` pieces (like Go's `Regexp.Split(s, n)`).
fn split_ws(s: &str, limit: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if limit.is_some_and(|l| out.len() + 1 == l) {
            out.push(rest.to_string());
            return out;
        }
        match rest.find(is_ws_sep) {
            Some(i) => {
                out.push(rest[..i].to_string());
                rest = rest[i..].trim_start_matches(is_ws_sep);
            }
            None => {
                out.push(rest.to_string());
                return out;
            }
        }
    }
}

/// Parser state that directives change.
#[derive(Clone, Copy)]
struct Settings {
    escape: char,
}

/// Parses a Dockerfile.
pub fn parse(input: &str) -> Result<Dockerfile, ParseError> {
    let lines = split_lines(input);
    let mut settings = Settings { escape: '\\' };
    let mut dp = DirectiveParser::default();
    let mut directives = Vec::new();
    let mut warnings = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut current_line = 0usize;
    let mut i = 0usize;

    while i < lines.len() {
        let mut raw = lines[i];
        i += 1;
        if raw.len() > MAX_LINE {
            return Err(ParseError::new(
                format!(
                    "dockerfile line greater than max allowed size of {}",
                    MAX_LINE - 1
                ),
                current_line + 1,
                0,
            ));
        }
        if current_line == 0 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        if is_comment(raw) {
            // Like buildkit, drop the first character of the raw line (the `#` unless indented).
            let comment = raw.chars().skip(1).collect::<String>();
            let comment = comment.trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let (processed, directive) = process_line(&mut dp, &mut settings, raw, true)
            .map_err(|m| ParseError::new(m, current_line + 1, 0))?;
        if let Some(d) = directive {
            comments.pop();
            if d.name == "syntax" {
                warnings.push(Warning {
                    short: format!(
                        "syntax directive {:?} ignored: this builder has one Dockerfile frontend",
                        d.value
                    ),
                    line: d.line,
                });
            }
            directives.push(d);
        }
        current_line += 1;
        let start_line = current_line;
        let (first, mut end_of_line) = trim_continuation(&processed, settings.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut buf = first;
        let mut empty_continuation = false;
        while !end_of_line && i < lines.len() {
            let raw = lines[i];
            i += 1;
            if raw.len() > MAX_LINE {
                return Err(ParseError::new(
                    format!(
                        "dockerfile line greater than max allowed size of {}",
                        MAX_LINE - 1
                    ),
                    current_line + 1,
                    0,
                ));
            }
            let (processed, _) = process_line(&mut dp, &mut settings, raw, false)
                .map_err(|m| ParseError::new(m, current_line + 1, 0))?;
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if processed.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(&processed, settings.escape);
            buf.push_str(&part);
            end_of_line = eol;
        }
        if empty_continuation {
            warnings.push(Warning {
                short: format!("Empty continuation line found in: {buf}"),
                line: current_line,
            });
        }

        let mut node = node_from_line(&buf, settings, std::mem::take(&mut comments))
            .map_err(|m| ParseError::new(m, start_line, current_line))?;

        if node.can_contain_heredoc() && buf.contains("<<") {
            let heredocs = heredocs_from_line(&buf)
                .map_err(|m| ParseError::new(m, start_line, current_line))?;
            for mut heredoc in heredocs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    current_line += 1;
                    let mut candidate = raw.trim_end_matches(['\r', '\n']);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::new(
                        "unterminated heredoc",
                        start_line,
                        current_line,
                    ));
                }
                node.heredocs.push(heredoc);
            }
        }
        node.start_line = start_line;
        node.end_line = current_line;
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError::new(
            "file with no instructions",
            current_line,
            0,
        ));
    }
    Ok(Dockerfile {
        nodes,
        escape: settings.escape,
        directives,
        warnings,
    })
}

/// Splits into lines, each keeping its `\n` (heredoc bodies need them).
fn split_lines(input: &str) -> Vec<&str> {
    input.split_inclusive('\n').collect()
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips the newline (and leading whitespace for a first line), feeds the directive scanner,
/// and blanks comment lines.
fn process_line(
    dp: &mut DirectiveParser,
    settings: &mut Settings,
    raw: &str,
    strip_left: bool,
) -> Result<(String, Option<Directive>), String> {
    let mut token = raw.trim_end_matches(['\r', '\n']);
    if strip_left {
        token = token.trim_start();
    }
    let directive = dp.parse_line(token)?;
    if let Some(d) = &directive {
        if d.name == "escape" {
            settings.escape = match d.value.as_str() {
                "`" => '`',
                "\\" => '\\',
                other => {
                    return Err(format!(
                        "invalid escape token '{other}' does not match ` or \\"
                    ))
                }
            };
        }
    }
    let out = if is_comment(token) {
        String::new()
    } else {
        token.to_string()
    };
    Ok((out, directive))
}

/// Removes a trailing line-continuation escape (and the blanks after it). Returns the line and
/// whether the logical line ends here. An escape preceded by another escape is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape) {
        match before.chars().last() {
            None => return (String::new(), false),
            Some(c) if c != escape => return (before.to_string(), false),
            Some(_) => {}
        }
    }
    (line.to_string(), true)
}

/// Splits one logical line into instruction, flags and arguments, and runs the instruction's line
/// parser.
fn node_from_line(line: &str, settings: Settings, comments: Vec<String>) -> Result<Node, String> {
    let trimmed = line.trim();
    let parts = split_ws(trimmed, Some(2));
    let cmd = parts[0].clone();
    let (flags, rest) = match parts.get(1) {
        Some(r) => {
            let (rest, flags) = extract_builder_flags(r, settings.escape);
            (flags, rest.trim().to_string())
        }
        None => (Vec::new(), String::new()),
    };
    let (args, json) = match cmd.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&rest)?,
        "arg" => (
            parse_words(&rest, settings.escape)
                .into_iter()
                .map(Arg::Value)
                .collect(),
            false,
        ),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&rest)?,
        "env" => (parse_name_val(&rest, "ENV", settings.escape)?, false),
        "label" => (parse_name_val(&rest, "LABEL", settings.escape)?, false),
        "expose" | "from" => (whitespace_list(&rest), false),
        "healthcheck" => parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (string_arg(&rest), false),
        "onbuild" => {
            if rest.is_empty() {
                (Vec::new(), false)
            } else {
                let child = node_from_line(&rest, settings, Vec::new())?;
                (vec![Arg::Nested(Box::new(child))], false)
            }
        }
        // Unknown instructions parse to one empty argument; the instruction layer refuses them
        // with "unknown instruction", as Docker does.
        _ => (vec![Arg::Value(String::new())], false),
    };
    Ok(Node {
        value: cmd,
        original: line.to_string(),
        flags,
        args,
        json,
        heredocs: Vec::new(),
        start_line: 0,
        end_line: 0,
        prev_comment: comments,
    })
}

/// Takes the leading `--flag` words off `line`; returns the rest and the flags. A bare `--` ends
/// the flags and is dropped.
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = chars.get(pos).map_or('\0', |c| c.1);
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || chars.get(pos + 1).map(|c| c.1) != Some('-') {
                return (line[chars[pos].0..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[chars[pos].0..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// Splits `ENV`/`LABEL`/`ARG` arguments into words, keeping quotes and escapes in the words
/// (they are removed later, at expansion time).
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes: the closing quote is kept and ends the quote.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `ENV`/`LABEL`: either `key value...` (old form, separator "") or `k=v k2=v2` (separator "=").
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<Arg>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let parts = split_ws(rest, Some(2));
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(vec![
            Arg::Value(parts[0].clone()),
            Arg::Value(parts[1].clone()),
            Arg::Value(String::new()),
        ]);
    }
    let mut out = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(&word)
            ));
        };
        out.extend([
            Arg::Value(k.to_string()),
            Arg::Value(v.to_string()),
            Arg::Value("=".into()),
        ]);
    }
    Ok(out)
}

fn whitespace_list(rest: &str) -> Vec<Arg> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ws(rest, None).into_iter().map(Arg::Value).collect()
}

fn string_arg(rest: &str) -> Vec<Arg> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![Arg::Value(rest.to_string())]
    }
}

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// Decodes a JSON array of strings. `Ok(None)` when the text is not a JSON array at all (so it
/// is shell form); an error when it is an array with something other than strings.
fn parse_json(rest: &str) -> Result<Option<Vec<Arg>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(items) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => out.push(Arg::Value(s)),
            _ => return Err(NOT_STRING_ARRAY.into()),
        }
    }
    Ok(Some(out))
}

fn parse_maybe_json(rest: &str) -> Result<(Vec<Arg>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match parse_json(rest)? {
        Some(args) => (args, true),
        None => (vec![Arg::Value(rest.to_string())], false),
    })
}

fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<Arg>, bool), String> {
    Ok(match parse_json(rest)? {
        Some(args) => (args, true),
        None => (whitespace_list(rest), false),
    })
}

/// `HEALTHCHECK`: the type word, then the command in JSON or shell form.
fn parse_health_config(rest: &str) -> Result<(Vec<Arg>, bool), String> {
    let sep = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let (mut args, json) = parse_maybe_json(cmd)?;
    args.insert(0, Arg::Value(typ.to_string()));
    Ok((args, json))
}

/// Finds the heredoc delimiters on an instruction line (`<<EOF`, `<<-EOF`, `3<<"EOF"`, several
/// per line). Heredoc detection always lexes with `\`, whatever the file's escape character.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &NoEnvironment).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(h) = parse_heredoc(&word)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Parses one word as a heredoc marker (`^(\d*)<<(-?)\s*([^<]*)$`). `Ok(None)` when it is not one.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_re_space);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    // A descriptor too large for the platform parses as 0, as Go's ParseUint failure does.
    let fd = word[..digits].parse::<u32>().unwrap_or(0);

    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex
        .process_words(rest, &NoEnvironment)
        .map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw_words = lex
        .process_words(rest, &NoEnvironment)
        .map_err(|e| e.to_string())?;
    if raw_words.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    // Any quoting of the delimiter (full or partial) turns expansion off, as in sh.
    let expand = quotes(&words[0]) == quotes(&raw_words[0]);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        file_descriptor: fd,
        expand,
        chomp,
        content: String::new(),
    }))
}

/// Removes leading tabs from every line of a `<<-` heredoc body.
pub fn chomp_heredoc_content(src: &str) -> String {
    src.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests;
