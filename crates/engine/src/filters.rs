//! Docker's `filters` query parameter: a JSON map from filter name to values, plus the matching rules shared by
//! list endpoints (labels, globs, booleans).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Parsed `filters`: name → values, as `{"dangling":["true"],"label":["a=b"]}`.
#[derive(Debug, Default, Clone)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the JSON a client sends. Accepts the current form (`{"k":["v"]}`) and the legacy
    /// one (`{"k":{"v":true}}`) that old clients still send. An empty string means no filters.
    pub fn parse(raw: Option<&str>) -> Result<Filters> {
        let raw = match raw.map(str::trim) {
            None | Some("") => return Ok(Filters::default()),
            Some(r) => r,
        };
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::InvalidParameter(format!("invalid filter: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(Error::InvalidParameter(
                "invalid filter: not a JSON object".into(),
            ));
        };
        let mut out = BTreeMap::new();
        for (key, v) in map {
            let values: Vec<String> = match v {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k)
                    .collect(),
                serde_json::Value::String(s) => vec![s],
                _ => {
                    return Err(Error::InvalidParameter(format!(
                        "invalid filter '{key}': values must be strings"
                    )))
                }
            };
            out.insert(key, values);
        }
        Ok(Filters(out))
    }

    /// Refuses any filter name not in `allowed`, with Docker's message.
    pub fn validate(&self, allowed: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Error::InvalidParameter(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// The values given for `key` (empty when the filter is absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A boolean filter such as `dangling=true`; errors on values other than true/false/1/0.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        let values = self.get(key);
        let mut result = None;
        for v in values {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(Error::InvalidParameter(format!(
                        "invalid filter '{key}={v}'"
                    )))
                }
            };
            result = Some(result.unwrap_or(false) || b);
        }
        Ok(result)
    }

    /// Timestamps given for `key` (`until=…`), as unix nanoseconds.
    pub fn times(&self, key: &str) -> Result<Vec<i64>> {
        self.get(key)
            .iter()
            .map(|t| crate::parse_timestamp(t))
            .collect()
    }

    /// Whether any `label!=` filter (`key` or `key=value`) matches, which excludes the object.
    pub fn labels_excluded<'a>(&self, mut labels: impl FnMut(&str) -> Option<&'a str>) -> bool {
        self.get("label!")
            .iter()
            .any(|want| match want.split_once('=') {
                Some((k, v)) => labels(k) == Some(v),
                None => labels(want).is_some(),
            })
    }

    /// Whether `labels` satisfies every `label=` filter (`key` or `key=value`).
    pub fn labels_match<'a>(
        &self,
        key: &str,
        mut labels: impl FnMut(&str) -> Option<&'a str>,
    ) -> bool {
        self.get(key).iter().all(|want| match want.split_once('=') {
            Some((k, v)) => labels(k) == Some(v),
            None => labels(want).is_some(),
        })
    }
}

/// Go's `path.Match` glob: `*` (not across `/`), `?`, and `[...]` classes. Used for reference filters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn rec(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| rec(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && t[0] != '/' && rec(&p[1..], &t[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else {
                    return false;
                };
                let Some(&c) = t.first() else { return false };
                let class = &p[1..end];
                let (negate, class) = match class.first() {
                    Some('^') | Some('!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && rec(&p[end + 1..], &t[1..])
            }
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && rec(&p[2..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && rec(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    rec(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_current_and_legacy_forms() {
        let f = Filters::parse(Some(r#"{"dangling":["true"],"label":["a=b"]}"#)).unwrap();
        assert_eq!(f.bool("dangling").unwrap(), Some(true));
        assert_eq!(f.get("label"), ["a=b"]);
        let legacy = Filters::parse(Some(r#"{"dangling":{"true":true}}"#)).unwrap();
        assert_eq!(legacy.bool("dangling").unwrap(), Some(true));
    }

    #[test]
    fn rejects_unknown_filter_names_with_dockers_message() {
        let f = Filters::parse(Some(r#"{"bogus":["x"]}"#)).unwrap();
        let err = f.validate(&["dangling"]).unwrap_err();
        assert_eq!(err.to_string(), "invalid filter 'bogus'");
    }

    #[test]
    fn glob_star_does_not_cross_slashes() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("fixture/*", "fixture/webapp"));
        assert!(!glob_match("*", "fixture/webapp"));
        assert!(glob_match("b?sybox:[l]atest", "busybox:latest"));
    }

    #[test]
    fn label_filter_matches_key_or_key_value() {
        let f = Filters::parse(Some(r#"{"label":["a","b=2"]}"#)).unwrap();
        let labels = [("a", "1"), ("b", "2")];
        let get = |k: &str| labels.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v);
        assert!(f.labels_match("label", get));
        let labels2 = [("a", "1"), ("b", "3")];
        let get2 = |k: &str| labels2.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v);
        assert!(!f.labels_match("label", get2));
    }
}
