//! "did you mean" suggestions, as Docker appends them to unknown-name errors.

/// Appends ` (did you mean <option>?)` to `message` when an option is within edit distance 2 of
/// `value` (buildkit's rule); options are tried in the order given, the first closest wins.
pub(crate) fn with_suggestion(
    message: String,
    value: &str,
    options: &[&str],
    case_sensitive: bool,
) -> String {
    match suggest(value, options, case_sensitive) {
        Some(m) => format!("{message} (did you mean {m}?)"),
        None => message,
    }
}

fn suggest(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let val = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<(usize, String)> = None;
    for opt in options {
        let o = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if o == val {
            return None;
        }
        let d = levenshtein(&val, &o);
        if d < 3 && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            let shown = if case_sensitive {
                o
            } else if value == value.to_lowercase() {
                o.to_lowercase()
            } else if value == value.to_uppercase() {
                o.to_uppercase()
            } else {
                o
            };
            best = Some((d, shown));
        }
    }
    best.map(|(_, s)| s)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_in_the_callers_case() {
        let opts = ["FROM", "RUN", "COPY"];
        assert_eq!(
            with_suggestion("x".into(), "FORM", &opts, false),
            "x (did you mean FROM?)"
        );
        assert_eq!(
            with_suggestion("x".into(), "form", &opts, false),
            "x (did you mean from?)"
        );
        assert_eq!(with_suggestion("x".into(), "ZZZZZZ", &opts, false), "x");
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
