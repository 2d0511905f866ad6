//! Instruction flags (`--from=x`, `--link`, `--mount=...`): declared per instruction, then parsed
//! from the node's flag words with Docker's error texts.

use std::collections::BTreeMap;

use super::suggest::with_suggestion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    Strings,
}

/// The flags one instruction accepts, and after [`FlagSet::parse`] their values.
#[derive(Debug, Default)]
pub(crate) struct FlagSet {
    defs: Vec<(&'static str, FlagType)>,
    values: BTreeMap<&'static str, Vec<String>>,
    used: Vec<&'static str>,
}

impl FlagSet {
    pub(crate) fn new(defs: &[(&'static str, FlagType)]) -> Self {
        FlagSet {
            defs: defs.to_vec(),
            ..Default::default()
        }
    }

    /// Parses `args` (the node's flags). Stops at a bare `--`.
    pub(crate) fn parse(&mut self, args: &[String]) -> Result<(), String> {
        for a in args {
            if a == "--" {
                return Ok(());
            }
            if !a.starts_with("--") {
                return Err(format!("arg should start with -- : {a}"));
            }
            let (flag_name, value) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (a.as_str(), None),
            };
            let name = &flag_name[2..];
            let Some(&(def_name, ty)) = self.defs.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = self.defs.iter().map(|(n, _)| *n).collect();
                return Err(with_suggestion(
                    format!("unknown flag: {flag_name}"),
                    name,
                    &names,
                    true,
                ));
            };
            if self.used.contains(&def_name) && ty != FlagType::Strings {
                return Err(format!("duplicate flag specified: {flag_name}"));
            }
            if !self.used.contains(&def_name) {
                self.used.push(def_name);
            }
            let parsed = match ty {
                FlagType::Bool => {
                    if value == Some("") {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    }
                    match value.map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true") => "true".to_string(),
                        Some("false") => "false".to_string(),
                        Some(_) => {
                            return Err(format!(
                                "expecting boolean value for flag {flag_name}, not: {}",
                                value.unwrap_or_default()
                            ))
                        }
                    }
                }
                FlagType::String | FlagType::Strings => match value {
                    Some(v) => v.to_string(),
                    None => return Err(format!("missing a value on flag: {flag_name}")),
                },
            };
            let slot = self.values.entry(def_name).or_default();
            if ty != FlagType::Strings {
                slot.clear();
            }
            slot.push(parsed);
        }
        Ok(())
    }

    /// A string flag's value, `None` when not given.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    /// A boolean flag's value, `None` when not given.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v == "true")
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// The flags given, in first-use order.
    pub(crate) fn used(&self) -> Vec<String> {
        self.used.iter().map(|s| s.to_string()).collect()
    }
}
