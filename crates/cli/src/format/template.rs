//! `--format`: Docker's Go-template output (`table …`, `json`, raw templates) rendered with `gtmpl`.

use std::collections::HashMap;

use gtmpl::{Context, Func, FuncError, Template, Value};

use crate::error::CliError;
use crate::format::table;

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
        let format = format.unwrap_or("").trim_start();
        if format.is_empty() || format == "table" {
            return Ok(Format::Table(Renderer::new(default_table)?));
        }
        if format == "json" {
            return Ok(Format::Json);
        }
        if let Some(rest) = format.strip_prefix("table") {
            if rest.starts_with(' ') || rest.starts_with('\t') {
                return Ok(Format::Table(Renderer::new(rest)?));
            }
        }
        Ok(Format::Raw(Renderer::new(format)?))
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
}

impl Renderer {
    /// Parses `source` after Docker's preprocessing: trims spaces, turns `\t` and `\n` escapes into characters.
    pub fn new(source: &str) -> Result<Self, CliError> {
        let source = source
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let mut template = Template::default();
        template.add_funcs(&FUNCS);
        template
            .parse(go_print_fields(&source))
            .map_err(|e| CliError::Template(format!("template parsing error: {e}")))?;
        Ok(Renderer { source, template })
    }

    /// Renders the template against one item.
    pub fn render(&self, item: &serde_json::Value) -> Result<String, CliError> {
        self.template
            .render(&Context::from(to_gtmpl(item)))
            .map_err(|e| CliError::Template(format!("template: {e}")))
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
        } else {
            out.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
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

const FUNCS: [(&str, Func); 9] = [
    ("goprint", goprint),
    ("json", json_func),
    ("upper", upper),
    ("lower", lower),
    ("title", title),
    ("join", join),
    ("split", split),
    ("truncate", truncate),
    ("pad", pad),
];

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
}
