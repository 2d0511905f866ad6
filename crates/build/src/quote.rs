//! Go-compatible string quoting, so parse dumps compare byte for byte with Docker's conformance data.

/// Quotes `s` as Go's `strconv.Quote` does: `"` and `\` escaped, the usual C escapes for control
/// characters, `\xNN` for other ASCII controls and `\u`/`\U` for non-printable Unicode.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Quotes a list as Go's `%q` verb prints a `[]string`: `["a" "b"]`.
pub fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

// Go's unicode.IsPrint is "graphic and not space other than U+0020". Rust has no general-category
// tables in std, so this approximates it with the control and whitespace properties, which agree
// with Go on every character the conformance data (and ordinary Dockerfiles) use.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Unassigned-in-practice and format characters Go refuses: surrogates cannot occur in a
    // `char`; the BOM, bidi controls and private-use areas are escaped by Go.
    !matches!(c as u32, 0xfeff | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0xe000..=0xf8ff | 0xfff9..=0xfffb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{0}\t\n"), r#""\x00\t\n""#);
        assert_eq!(go_quote("♥ ☃"), "\"♥ ☃\"");
        assert_eq!(go_quote("\u{a0}"), r#""\u00a0""#);
        assert_eq!(
            go_quote_list(&["--a".into(), "--b".into()]),
            r#"["--a" "--b"]"#
        );
    }
}
