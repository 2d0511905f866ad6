//! Build arguments as the classic builder scopes them (dockerd's `BuildArgs`): `--build-arg`
//! values, ARGs declared before the first FROM (meta args, visible to FROM lines and as
//! defaults of a stage's `ARG NAME`), ARGs declared in the current stage, and the proxy
//! variables that are always allowed but stay out of the history unless declared.

use std::collections::{BTreeMap, BTreeSet};

/// The proxy variables a build may pass without declaring them.
pub const BUILTIN_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn is_builtin(key: &str) -> bool {
    BUILTIN_ARGS.contains(&key)
}

/// The argument state of a build, or of one stage (see [`BuildArgs::for_stage`]).
#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    /// `--build-arg` values (`None`: given without a value, which sets nothing).
    from_options: BTreeMap<String, Option<String>>,
    /// Meta args and their (expanded) defaults.
    meta: BTreeMap<String, Option<String>>,
    /// ARGs declared in the current stage and their defaults.
    allowed: BTreeMap<String, Option<String>>,
    /// Every name declared anywhere (for the "not consumed" warning).
    referenced: BTreeSet<String>,
}

impl BuildArgs {
    /// The state at the start of a build.
    pub fn new(from_options: BTreeMap<String, Option<String>>) -> Self {
        BuildArgs {
            from_options,
            ..Default::default()
        }
    }

    /// A copy for a new stage: nothing declared yet in it.
    pub fn for_stage(&self) -> Self {
        let mut s = self.clone();
        s.allowed.clear();
        s
    }

    /// Records the names a finished stage declared.
    pub fn merge_referenced(&mut self, stage: &BuildArgs) {
        self.referenced.extend(stage.referenced.iter().cloned());
    }

    /// `ARG key[=value]` in a stage (or before FROM, with [`BuildArgs::add_meta`] too).
    pub fn add(&mut self, key: &str, value: Option<String>) {
        self.allowed.insert(key.to_string(), value);
        self.referenced.insert(key.to_string());
    }

    /// `ARG key[=value]` before the first FROM.
    pub fn add_meta(&mut self, key: &str, value: Option<String>) {
        self.meta.insert(key.to_string(), value);
    }

    // A build argument overrides; an ARG without default takes the meta arg's value.
    fn value_in(&self, key: &str, mapping: &BTreeMap<String, Option<String>>) -> Option<String> {
        if let Some(Some(v)) = self.from_options.get(key) {
            return Some(v.clone());
        }
        match mapping.get(key) {
            Some(Some(default)) => Some(default.clone()),
            _ => self.meta.get(key).cloned().flatten(),
        }
    }

    fn all_from(&self, mapping: &BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
        let keys: BTreeSet<&str> = mapping
            .keys()
            .map(String::as_str)
            .chain(BUILTIN_ARGS.iter().copied())
            .collect();
        keys.into_iter()
            .filter(|k| mapping.contains_key(*k) || self.from_options.contains_key(*k))
            .filter_map(|k| self.value_in(k, mapping).map(|v| (k.to_string(), v)))
            .collect()
    }

    /// The values of the args in effect in the current stage (declared ones and given proxy
    /// variables).
    pub fn all_allowed(&self) -> BTreeMap<String, String> {
        self.all_from(&self.allowed)
    }

    /// The values FROM lines expand with.
    pub fn all_meta(&self) -> BTreeMap<String, String> {
        self.all_from(&self.meta)
    }

    /// The args in effect that `env` (a config's `KEY=value` list) does not set: ENV
    /// overrides ARG. Sorted `KEY=value` strings.
    pub fn filter_allowed(&self, env: &[String]) -> Vec<String> {
        let set: BTreeSet<&str> = env
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k))
            .collect();
        self.all_allowed()
            .into_iter()
            .filter(|(k, _)| !set.contains(k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// The RUN cache key prefix: `["|N", "K=v"...]` of the args in `build_env` except proxy
    /// variables that were not declared (so a proxy change does not bust the cache).
    pub fn run_prefix(&self, build_env: &[String]) -> Vec<String> {
        let mut kept: Vec<String> = build_env
            .iter()
            .filter(|e| {
                let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
                self.allowed.contains_key(key) || !is_builtin(key)
            })
            .cloned()
            .collect();
        kept.sort();
        let mut out = vec![format!("|{}", kept.len())];
        out.extend(kept);
        out
    }

    /// `--build-arg` names no ARG declared, sorted (proxy variables excepted).
    pub fn unused(&self) -> Vec<String> {
        self.from_options
            .keys()
            .filter(|k| !self.referenced.contains(*k) && !is_builtin(k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn options_override_defaults_and_meta_fills_bare_args() {
        let mut global = BuildArgs::new(opts(&[("A", Some("opt")), ("HTTP_PROXY", Some("p"))]));
        global.add("V", Some("1".into()));
        global.add_meta("V", Some("1".into()));
        let mut stage = global.for_stage();
        assert_eq!(
            stage.all_allowed(),
            BTreeMap::from([("HTTP_PROXY".to_string(), "p".to_string())]),
            "meta args are not visible in a stage until redeclared"
        );
        stage.add("V", None);
        stage.add("A", Some("default".into()));
        stage.add("B", Some("b".into()));
        let all = stage.all_allowed();
        assert_eq!(all.get("V").map(String::as_str), Some("1"));
        assert_eq!(all.get("A").map(String::as_str), Some("opt"));
        assert_eq!(
            stage.filter_allowed(&["B=env".to_string()]),
            vec!["A=opt", "HTTP_PROXY=p", "V=1"],
            "ENV overrides ARG"
        );
        assert_eq!(
            stage.run_prefix(&stage.filter_allowed(&[])),
            vec!["|3", "A=opt", "B=b", "V=1"],
            "undeclared proxy variables stay out of the cache key"
        );
    }

    #[test]
    fn unused_build_args_are_reported() {
        let mut global = BuildArgs::new(opts(&[
            ("USED", Some("1")),
            ("NOPE", Some("x")),
            ("EMPTY", None),
            ("no_proxy", Some("x")),
        ]));
        let mut stage = global.for_stage();
        stage.add("USED", None);
        global.merge_referenced(&stage);
        assert_eq!(global.unused(), vec!["EMPTY", "NOPE"]);
    }
}
