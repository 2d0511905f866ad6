//! Re-indents (or compacts) raw JSON the way Go's `json.Indent` does, keeping key order and string escapes untouched.
//!
//! `docker inspect` prints the daemon's JSON bytes re-indented, not re-encoded, so doing the same keeps
//! field order and escapes identical to Docker's output.

/// Indents `raw` JSON with `indent` per level; empty objects and arrays stay `{}` and `[]`.
pub fn indent(raw: &[u8], indent: &str) -> String {
    let mut out = Vec::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut need_newline = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if need_newline {
            need_newline = false;
            if b == b'}' || b == b']' {
                // Empty object or array: Go keeps it on one line.
                depth = depth.saturating_sub(1);
                out.push(b);
                continue;
            }
            newline(&mut out, depth);
        }
        match b {
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b'{' | b'[' => {
                out.push(b);
                depth += 1;
                need_newline = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => {
                out.extend_from_slice(b": ");
            }
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the whitespace between JSON tokens, leaving strings untouched.
pub fn compact(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::indent;

    #[test]
    fn indents_like_go_json_indent_keeping_order_and_escapes() {
        let raw = br#"[{"Id":"sha256:ab","RepoTags":[],"Config":{"Env":["A=\u003cb\u003e"],"Labels":{}},"Size":5}]"#;
        let expected = "[\n    {\n        \"Id\": \"sha256:ab\",\n        \"RepoTags\": [],\n        \"Config\": {\n            \"Env\": [\n                \"A=\\u003cb\\u003e\"\n            ],\n            \"Labels\": {}\n        },\n        \"Size\": 5\n    }\n]";
        assert_eq!(indent(raw, "    "), expected);
    }

    #[test]
    fn strings_with_brackets_and_commas_are_left_alone() {
        assert_eq!(
            indent(br#"{"a":"x, [y] {z}: \"q\""}"#, "  "),
            "{\n  \"a\": \"x, [y] {z}: \\\"q\\\"\"\n}"
        );
    }
}
