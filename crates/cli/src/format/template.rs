//! `--format`: Docker's Go-template output (`table …`, `json`, raw templates) rendered with `gtmpl`.

use std::collections::HashMap;

use gtmpl::{Context, Func, FuncError, Template, Value};

use crate::error::CliError;
use crate::format::table;

/// What a command's template runs on, for errors worded as the docker CLI's: the Go type a missing field
/// is reported on, and the prefixes the command puts before parse and execution errors.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    /// The Go type of the row (`*formatter.ContainerContext`); `None` for the daemon's raw JSON, a map
    /// in the docker CLI, whose missing keys read "map has no entry for key".
    pub type_name: Option<&'static str>,
    /// Before a parse error.
    pub parse_prefix: &'static str,
    /// Before an execution error.
    pub exec_prefix: &'static str,
}

impl Kind {
    /// The daemon's JSON as is (`inspect`, `version`, `info`).
    pub const RAW: Kind = Kind {
        type_name: None,
        parse_prefix: "template parsing error: ",
        exec_prefix: "template parsing error: ",
    };
    /// `ps`'s rows.
    pub const CONTAINERS: Kind = Kind {
        type_name: Some("*formatter.ContainerContext"),
        parse_prefix: "failed to parse template: ",
        exec_prefix: "failed to execute template: ",
    };
    /// `images`'s rows.
    pub const IMAGES: Kind = Kind::typed("*formatter.imageContext");
    /// `network ls`'s rows.
    pub const NETWORKS: Kind = Kind::typed("*network.networkContext");
    /// `volume ls`'s rows.
    pub const VOLUMES: Kind = Kind::typed("*formatter.volumeContext");

    /// Rows of the named Go type, with the docker CLI's usual "template parsing error: " prefixes.
    pub const fn typed(type_name: &'static str) -> Kind {
        Kind {
            type_name: Some(type_name),
            parse_prefix: "template parsing error: ",
            exec_prefix: "template parsing error: ",
        }
    }
}

/// What `--format` asked for.
pub enum Format {
    /// A table with a header row, rendered from this template (tab-separated cells).
    Table(Renderer),
    /// One compact JSON object per item, as `--format json` prints.
    Json,
    /// A template rendered once per item, each followed by a newline; no header, no alignment.
    Raw(Renderer),
}

impl Format {
    /// Interprets a `--format` value: empty or `table` means `default_table` (the command's own table).
    pub fn parse(format: Option<&str>, default_table: &str) -> Result<Self, CliError> {
        Format::parse_as(format, default_table, Kind::RAW)
    }

    /// [`Format::parse`] for rows of `kind`, whose errors are worded for it.
    pub fn parse_as(
        format: Option<&str>,
        default_table: &str,
        kind: Kind,
    ) -> Result<Self, CliError> {
        let format = format.unwrap_or("").trim_start();
        if format.is_empty() || format == "table" {
            return Ok(Format::Table(Renderer::new_as(default_table, kind)?));
        }
        if format == "json" {
            return Ok(Format::Json);
        }
        if let Some(rest) = format.strip_prefix("table") {
            if rest.starts_with(' ') || rest.starts_with('\t') {
                return Ok(Format::Table(Renderer::new_as(rest, kind)?));
            }
        }
        Ok(Format::Raw(Renderer::new_as(format, kind)?))
    }

    /// Renders `items` (each a JSON object of the command's fields) with `headers` naming the columns.
    pub fn render(
        &self,
        items: &[serde_json::Value],
        headers: &[(&str, &str)],
    ) -> Result<String, CliError> {
        match self {
            Format::Json => {
                let mut out = String::new();
                for item in items {
                    out.push_str(&go_json(item));
                    out.push('\n');
                }
                Ok(out)
            }
            Format::Raw(renderer) => {
                let mut out = String::new();
                for item in items {
                    out.push_str(&renderer.render(item)?);
                    out.push('\n');
                }
                Ok(out)
            }
            Format::Table(renderer) => {
                let mut out = renderer.render_header(headers)?;
                out.push('\n');
                for item in items {
                    out.push_str(&renderer.render(item)?);
                    out.push('\n');
                }
                Ok(table::align(&out, 10, 3))
            }
        }
    }
}

/// A parsed Go template with Docker's extra functions.
pub struct Renderer {
    source: String,
    template: Template,
    kind: Kind,
}

impl Renderer {
    /// Parses `source` after Docker's preprocessing: trims spaces, turns `\t` and `\n` escapes into characters.
    pub fn new(source: &str) -> Result<Self, CliError> {
        Renderer::new_as(source, Kind::RAW)
    }

    /// [`Renderer::new`] for rows of `kind`.
    pub fn new_as(source: &str, kind: Kind) -> Result<Self, CliError> {
        let source = source
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let mut template = Template::default();
        template.add_funcs(&FUNCS);
        template.parse(go_print_fields(&source)).map_err(|e| {
            CliError::Template(format!(
                "{}template: :{}",
                kind.parse_prefix,
                go_parse_error(&source, &e.to_string())
            ))
        })?;
        Ok(Renderer {
            source,
            template,
            kind,
        })
    }

    /// Renders the template against one item.
    pub fn render(&self, item: &serde_json::Value) -> Result<String, CliError> {
        self.template
            .render(&Context::from(to_gtmpl(item)))
            .map_err(|e| {
                let text = match missing_field(&self.source, item, self.kind.type_name) {
                    Some(go) => go,
                    None => format!(":1: {e}"),
                };
                CliError::Template(format!("{}template: {text}", self.kind.exec_prefix))
            })
    }

    /// Renders the header row: each `.Field` becomes its column title (unknown fields: upper-cased name).
    pub fn render_header(&self, headers: &[(&str, &str)]) -> Result<String, CliError> {
        let mut map = serde_json::Map::new();
        for field in field_names(&self.source) {
            let title = headers
                .iter()
                .find(|(name, _)| *name == field)
                .map(|(_, title)| (*title).to_string())
                .unwrap_or_else(|| field.to_uppercase());
            map.insert(field, serde_json::Value::String(title));
        }
        self.render(&serde_json::Value::Object(map))
    }
}

/// Wraps bare field actions (`{{.Config.Cmd}}`) in `goprint`, so lists and maps print as Go prints
/// them (`[sh]`, `map[a:b]`) rather than as gtmpl's debug form.
fn go_print_fields(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &after[..close];
        let (lead, body) = match inner.strip_prefix("- ") {
            Some(b) => ("- ", b),
            None => ("", inner),
        };
        let (body, trail) = match body.strip_suffix(" -") {
            Some(b) => (b, " -"),
            None => (body, ""),
        };
        let field = body.trim();
        let is_field = field.starts_with('.')
            && field
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
        if is_field {
            out.push_str(&format!("{{{{{lead}goprint {field}{trail}}}}}"));
        } else if prints_a_value(field) {
            // A function's result (`split`, a map) also prints as Go prints it.
            out.push_str(&format!("{{{{{lead}goprint ({field}){trail}}}}}"));
        } else {
            out.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Whether an action's text is a pipeline whose value is printed (not `if`, `range`, `end`, a comment,
/// a variable declaration, nor a string that already prints as itself).
fn prints_a_value(action: &str) -> bool {
    let first = action.split_whitespace().next().unwrap_or("");
    if action.is_empty()
        || action.starts_with("/*")
        || action.starts_with('"')
        || action.starts_with('`')
        || action.contains(":=")
        || (action.contains('=') && action.starts_with('$'))
    {
        return false;
    }
    !matches!(
        first,
        "if" | "else"
            | "end"
            | "range"
            | "with"
            | "define"
            | "template"
            | "block"
            | "break"
            | "continue"
            | "printf"
            | "print"
            | "println"
            | "json"
            | "upper"
            | "lower"
            | "title"
            | "join"
            | "truncate"
            | "pad"
    ) && !action.contains('|')
}

/// Go's wording of a parse error gtmpl reported as `template: NAME:LINE:MESSAGE`, without the
/// `template: :` it is printed after.
fn go_parse_error(source: &str, gtmpl: &str) -> String {
    let message = gtmpl
        .split_once(':')
        .and_then(|(_, rest)| rest.split_once(':'))
        .and_then(|(_, rest)| rest.split_once(':'))
        .map_or(gtmpl, |(_, m)| m)
        .trim();
    let unclosed = source.matches("{{").count() > source.matches("}}").count();
    let line = 1 + source.matches('\n').count().min(
        source
            .rfind("{{")
            .map_or(0, |i| source[..i].matches('\n').count()),
    );
    if unclosed {
        return format!("{line}: unclosed action");
    }
    if let Some(name) = message
        .strip_prefix("function ")
        .and_then(|m| m.strip_suffix(" not defined"))
    {
        let line = source
            .find(name)
            .map_or(1, |i| 1 + source[..i].matches('\n').count());
        return format!("{line}: function \"{name}\" not defined");
    }
    format!("1: {message}")
}

/// Go's error for the first field chain of `source` (`.A.B`) that `item` does not have, as
/// `LINE:COL: executing "" at <.A.B>: REASON`; `None` when every chain resolves (the failure was
/// something else, inside a `range` or `with` for instance).
fn missing_field(
    source: &str,
    item: &serde_json::Value,
    type_name: Option<&str>,
) -> Option<String> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_chain = bytes[i] == b'.'
            && i + 1 < bytes.len()
            && (bytes[i + 1].is_ascii_alphabetic() || bytes[i + 1] == b'_')
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric() || b"_.)$\"".contains(&bytes[i - 1])));
        if !starts_chain || !inside_action(source, i) {
            i += 1;
            continue;
        }
        let end = i + source[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(source.len() - i);
        let chain = &source[i..end];
        let mut value = item;
        for (n, name) in chain.split('.').skip(1).enumerate() {
            let go_type = |v: &serde_json::Value| -> String {
                if type_name.is_none() {
                    return "interface {}".into();
                }
                match v {
                    serde_json::Value::String(_) => "string".into(),
                    serde_json::Value::Bool(_) => "bool".into(),
                    serde_json::Value::Number(n) if n.is_f64() => "float64".into(),
                    serde_json::Value::Number(_) => "int".into(),
                    serde_json::Value::Array(_) => "[]string".into(),
                    _ => "interface {}".into(),
                }
            };
            let reason = match value {
                serde_json::Value::Object(map) => match map.get(name) {
                    Some(v) => {
                        value = v;
                        continue;
                    }
                    None => match (n, type_name) {
                        (0, Some(t)) => format!("can't evaluate field {name} in type {t}"),
                        _ => format!("map has no entry for key \"{name}\""),
                    },
                },
                // A missing value in the daemon's JSON is Go's nil, and nil has no fields either.
                serde_json::Value::Null => return None,
                other => format!("can't evaluate field {name} in type {}", go_type(other)),
            };
            // Go's parser places a chain of fields at its second field, and names the whole chain.
            let pos = match chain[1..].find('.') {
                Some(second) => i + 1 + second,
                None => i,
            };
            let line_start = source[..pos].rfind('\n').map_or(0, |p| p + 1);
            let line = 1 + source[..pos].matches('\n').count();
            return Some(format!(
                ":{line}:{}: executing \"\" at <{chain}>: {reason}",
                pos - line_start,
            ));
        }
        i = end;
    }
    None
}

/// Whether byte `at` of `source` is inside a `{{ … }}` action, outside its string literals.
fn inside_action(source: &str, at: usize) -> bool {
    let before = &source[..at];
    match (before.rfind("{{"), before.rfind("}}")) {
        (Some(open), close) if close.is_none_or(|c| c < open) => {
            // An odd number of quotes since the action opened: inside a string.
            before[open..].matches('"').count().is_multiple_of(2)
        }
        _ => false,
    }
}

/// Go's `%v` for template values: `[a b]` for lists, `map[k:v]` (sorted keys) for maps, `<nil>` for nil.
fn go_value_text(value: &Value) -> String {
    match value {
        Value::Nil => "<nil>".to_string(),
        Value::NoValue => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value_text).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) | Value::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", map.get(*k).map(go_value_text).unwrap_or_default()))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

fn goprint(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [value] => Ok(Value::String(go_value_text(value))),
        _ => Err(FuncError::ExactlyXArgs("goprint".to_string(), 1)),
    }
}

/// The `.Name` fields a template refers to, in order.
fn field_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let chars: Vec<char> = source.chars().collect();
    for i in 0..chars.len() {
        if chars[i] != '.' || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) {
            continue;
        }
        let name: String = chars[i + 1..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Converts JSON into a template value (objects become field-addressable).
pub fn to_gtmpl(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_gtmpl).collect()),
        serde_json::Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), to_gtmpl(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn from_gtmpl(value: &Value) -> serde_json::Value {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                serde_json::Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(from_gtmpl).collect()),
        Value::Object(o) | Value::Map(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), from_gtmpl(v))).collect())
        }
    }
}

/// Encodes JSON compactly as Go's `encoding/json` does: `<`, `>`, `&` escaped as `\u003c`, `\u003e`, `\u0026`.
pub fn go_json(value: &serde_json::Value) -> String {
    let s = serde_json::to_string(&sorted(value)).unwrap_or_default();
    // These characters can only occur inside strings, so replacing them keeps the JSON valid.
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A copy of `value` with every object's keys sorted, as Go's encoder writes maps.
fn sorted(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(o) => {
            let mut entries: Vec<_> = o.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

const FUNCS: [(&str, Func); 11] = [
    ("goprint", goprint),
    ("printf", printf),
    ("println", println_func),
    ("json", json_func),
    ("upper", upper),
    ("lower", lower),
    ("title", title),
    ("join", join),
    ("split", split),
    ("truncate", truncate),
    ("pad", pad),
];

/// Go's `strconv.Quote`: double quotes, with Go's escapes for control and non-printable characters.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a value: strings quoted, lists as `["a" "b"]`.
fn go_q(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_q).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::String(s) => go_quote(s),
        other => go_quote(&go_value_text(other)),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %x %X %o %b %f %e %g %t %c %%`, with
/// flags `-`, `+`, `0`, space, a width and a precision. Written here because gtmpl's `printf` has no
/// `%q`, ignores widths and prints lists in Rust's debug form.
fn printf(args: &[Value]) -> Result<Value, FuncError> {
    let Some((format, mut rest)) = args.split_first() else {
        return Err(FuncError::AtLeastXArgs("printf".to_string(), 1));
    };
    let format = match format {
        Value::String(s) => s.clone(),
        other => go_value_text(other),
    };
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        let mut plus = false;
        let mut space = false;
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some((arg, tail)) = rest.split_first() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        rest = tail;
        let number = match arg {
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        let integer = match arg {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        let sign = |s: String, negative: bool| -> String {
            if negative {
                s
            } else if plus {
                format!("+{s}")
            } else if space {
                format!(" {s}")
            } else {
                s
            }
        };
        let text = match verb {
            'v' | 's' => {
                let t = go_value_text(arg);
                match precision {
                    Some(p) if verb == 's' => t.chars().take(p).collect(),
                    _ => t,
                }
            }
            'q' => go_q(arg),
            't' => go_value_text(arg),
            'd' => match integer {
                Some(i) => sign(i.to_string(), i < 0),
                None => format!("%!d({})", go_value_text(arg)),
            },
            'x' | 'X' | 'o' | 'b' => match integer {
                Some(i) => {
                    let t = match verb {
                        'x' => format!("{:x}", i.unsigned_abs()),
                        'X' => format!("{:X}", i.unsigned_abs()),
                        'o' => format!("{:o}", i.unsigned_abs()),
                        _ => format!("{:b}", i.unsigned_abs()),
                    };
                    if i < 0 {
                        format!("-{t}")
                    } else {
                        t
                    }
                }
                None if verb == 'x' || verb == 'X' => {
                    let hex: String = go_value_text(arg)
                        .bytes()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    if verb == 'X' {
                        hex.to_uppercase()
                    } else {
                        hex
                    }
                }
                None => format!("%!{verb}({})", go_value_text(arg)),
            },
            'f' | 'F' | 'e' | 'g' => match number {
                Some(f) => {
                    let p = precision.unwrap_or(6);
                    let t = match verb {
                        'e' => format!("{f:.p$e}"),
                        'g' => go_value_text(arg),
                        _ => format!("{f:.p$}"),
                    };
                    sign(t, f < 0.0)
                }
                None => format!("%!{verb}({})", go_value_text(arg)),
            },
            'c' => match integer
                .and_then(|i| u32::try_from(i).ok())
                .and_then(char::from_u32)
            {
                Some(ch) => ch.to_string(),
                None => format!("%!c({})", go_value_text(arg)),
            },
            other => format!("%!{other}({})", go_value_text(arg)),
        };
        let width: usize = width.parse().unwrap_or(0);
        let len = text.chars().count();
        if len >= width {
            out.push_str(&text);
        } else if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', width - len));
        } else if zero && matches!(arg, Value::Number(_)) {
            let (sign_part, digits) = match text.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("", text.as_str()),
            };
            out.push_str(sign_part);
            out.extend(std::iter::repeat_n('0', width - len));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', width - len));
            out.push_str(&text);
        }
    }
    if !rest.is_empty() {
        let extra: Vec<String> = rest
            .iter()
            .map(|v| format!("string={}", go_value_text(v)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    Ok(Value::String(out))
}

/// Go's `fmt.Sprintln`: the values separated by spaces, then a newline.
fn println_func(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args.iter().map(go_value_text).collect();
    Ok(Value::String(format!("{}\n", parts.join(" "))))
}

fn arg_str(args: &[Value], i: usize, name: &str, count: usize) -> Result<String, FuncError> {
    if args.len() != count {
        return Err(FuncError::ExactlyXArgs(name.to_string(), count));
    }
    match &args[i] {
        Value::String(s) => Ok(s.clone()),
        other => Ok(other.to_string()),
    }
}

fn arg_int(args: &[Value], i: usize) -> Result<i64, FuncError> {
    match args.get(i) {
        Some(Value::Number(n)) => n.as_i64().ok_or(FuncError::UnableToConvertFromValue),
        _ => Err(FuncError::UnableToConvertFromValue),
    }
}

fn json_func(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 1 {
        return Err(FuncError::ExactlyXArgs("json".to_string(), 1));
    }
    Ok(Value::String(go_json(&from_gtmpl(&args[0]))))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0, "upper", 1)?.to_uppercase()))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0, "lower", 1)?.to_lowercase()))
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "title", 1)?;
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if at_word_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = c.is_whitespace();
    }
    Ok(Value::String(out))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() != 2 {
        return Err(FuncError::ExactlyXArgs("join".to_string(), 2));
    }
    let sep = arg_str(args, 1, "join", 2)?;
    let parts: Vec<String> = match &args[0] {
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Value::Nil | Value::NoValue => Vec::new(),
        _ => return Err(FuncError::UnableToConvertFromValue),
    };
    Ok(Value::String(parts.join(&sep)))
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "split", 2)?;
    let sep = arg_str(args, 1, "split", 2)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_string()))
            .collect()
    };
    Ok(Value::Array(parts))
}

fn truncate(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "truncate", 2)?;
    let n = usize::try_from(arg_int(args, 1)?).unwrap_or(0);
    Ok(Value::String(s.chars().take(n).collect()))
}

fn pad(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0, "pad", 3)?;
    if s.is_empty() {
        return Ok(Value::String(s));
    }
    let left = usize::try_from(arg_int(args, 1)?).unwrap_or(0);
    let right = usize::try_from(arg_int(args, 2)?).unwrap_or(0);
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(right)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEADERS: [(&str, &str); 3] = [
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("CreatedSince", "CREATED"),
    ];

    #[test]
    fn table_prefix_prints_header_from_field_names() {
        let f = Format::parse(Some("table {{.Repository}}\\t{{.ID}}"), "").unwrap();
        let items = [json!({"Repository": "busybox", "ID": "5bc555f7f779"})];
        assert_eq!(
            f.render(&items, &HEADERS).unwrap(),
            "REPOSITORY   IMAGE ID\nbusybox      5bc555f7f779\n"
        );
    }

    #[test]
    fn raw_template_prints_one_line_per_item_without_header() {
        let f = Format::parse(Some("{{.ID}}"), "").unwrap();
        let items = [json!({"ID": "a"}), json!({"ID": "b"})];
        assert_eq!(f.render(&items, &HEADERS).unwrap(), "a\nb\n");
    }

    #[test]
    fn json_format_prints_sorted_keys_with_go_escapes() {
        let f = Format::parse(Some("json"), "").unwrap();
        let items = [json!({"Tag": "<none>", "ID": "x"})];
        assert_eq!(
            f.render(&items, &HEADERS).unwrap(),
            "{\"ID\":\"x\",\"Tag\":\"\\u003cnone\\u003e\"}\n"
        );
    }

    #[test]
    fn bare_fields_print_lists_and_maps_as_go_does() {
        let r = Renderer::new("{{.Cmd}} {{ .Labels }} {{.Nil}} {{- .Name -}} !").unwrap();
        let out = r
            .render(&json!({"Cmd": ["sh", "-c"], "Labels": {"b": "2", "a": "1"}, "Nil": null, "Name": "x"}))
            .unwrap();
        assert_eq!(out, "[sh -c] map[a:1 b:2] <nil>x!");
    }

    #[test]
    fn unknown_header_field_is_upper_cased() {
        let f = Format::parse(Some("table {{.Foo}}"), "").unwrap();
        assert_eq!(
            f.render(&[json!({"Foo": "x"})], &HEADERS).unwrap(),
            "FOO\nx\n"
        );
    }

    #[test]
    fn docker_template_functions_work() {
        let r = Renderer::new(
            "{{upper .A}} {{lower .A}} {{title .B}} {{join .L \",\"}} {{truncate .A 2}} {{pad .A 1 1}}|{{json .L}} {{index (split .C \":\") 1}}",
        )
        .unwrap();
        let out = r
            .render(&json!({"A": "Abc", "B": "hello world", "L": ["x", "y"], "C": "a:b"}))
            .unwrap();
        assert_eq!(out, "ABC abc Hello World x,y Ab  Abc |[\"x\",\"y\"] b");
    }

    #[test]
    fn printf_quotes_pads_and_prints_lists_as_go() {
        let r = Renderer::new(
            r#"{{printf "%q" .A}} {{printf "%q" .L}} {{printf "%5s|%-5s|%05d|%x" "a" "b" 42 255}} {{printf "%v" .L}}"#,
        )
        .unwrap();
        let out = r.render(&json!({"A": "x\ty", "L": ["a", "b"]})).unwrap();
        assert_eq!(out, r#""x\ty" ["a" "b"]     a|b    |00042|ff [a b]"#);
    }

    #[test]
    fn function_results_print_as_go_and_println_ends_the_line() {
        let r = Renderer::new(r#"{{split .A ","}}{{println .B}}z"#).unwrap();
        assert_eq!(
            r.render(&json!({"A": "a,b", "B": "y"})).unwrap(),
            "[a b]y\nz"
        );
    }

    #[test]
    fn missing_fields_fail_with_gos_one_line_error() {
        let item = json!({"Names": "c1", "Config": {"Cmd": ["sh"]}});
        let typed = Renderer::new_as("{{.Names}} {{.Foo}}", Kind::CONTAINERS).unwrap();
        assert_eq!(
            typed.render(&item).unwrap_err().to_string(),
            "failed to execute template: template: :1:13: executing \"\" at <.Foo>: can't evaluate field Foo in type *formatter.ContainerContext"
        );
        let typed = Renderer::new_as("{{.Names.Foo}}", Kind::CONTAINERS).unwrap();
        assert_eq!(
            typed.render(&item).unwrap_err().to_string(),
            "failed to execute template: template: :1:8: executing \"\" at <.Names.Foo>: can't evaluate field Foo in type string"
        );
        let raw = Renderer::new("{{.Config.Cmd.Foo}}").unwrap();
        assert_eq!(
            raw.render(&item).unwrap_err().to_string(),
            "template parsing error: template: :1:9: executing \"\" at <.Config.Cmd.Foo>: can't evaluate field Foo in type interface {}"
        );
        let raw = Renderer::new("{{ .Config.Foo }}").unwrap();
        assert_eq!(
            raw.render(&item).unwrap_err().to_string(),
            "template parsing error: template: :1:10: executing \"\" at <.Config.Foo>: map has no entry for key \"Foo\""
        );
    }

    #[test]
    fn parse_errors_are_worded_as_go() {
        let e = Renderer::new("{{nofunc .A}}").err().unwrap();
        assert_eq!(
            e.to_string(),
            "template parsing error: template: :1: function \"nofunc\" not defined"
        );
        let e = Renderer::new_as("{{.A", Kind::CONTAINERS).err().unwrap();
        assert_eq!(
            e.to_string(),
            "failed to parse template: template: :1: unclosed action"
        );
    }
}
