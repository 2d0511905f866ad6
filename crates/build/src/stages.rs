//! The stage graph of a parsed Dockerfile: which stage each `FROM`, `COPY --from` and
//! `RUN --mount=from=` refers to, which stage a `--target` names, and which stages it needs.
//!
//! Resolution follows the classic builder: a name or index refers only to a stage *before* the
//! current one (stages are built in order, and only finished ones can be named); anything else is
//! an image reference. Names compare case-insensitively (stage names are stored lowercased).

use std::collections::{BTreeSet, HashMap};

use crate::instructions::{ArgDef, InstructionKind, StagedFile};
use crate::shell::{Lexer, ShellError};

/// A stage reference Docker refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// `--target` names no stage.
    #[error("failed to reach build target {0} in Dockerfile")]
    TargetNotFound(String),
    /// `COPY --from=N` with N not a finished stage.
    #[error("invalid from flag value {value}: invalid stage index {index}")]
    BadIndex {
        /// The flag value as written.
        value: String,
        /// The index it names.
        index: i64,
    },
    /// A `FROM` or `--from` value could not be expanded.
    #[error(transparent)]
    Expand(#[from] ShellError),
}

/// Where a stage or a copy takes its content from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference (pulled if absent).
    Image(String),
    /// `FROM scratch`: the empty filesystem.
    Scratch,
}

/// One stage with what it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageNode {
    /// The stage's name, if it has one.
    pub name: Option<String>,
    /// What `FROM` resolved to.
    pub base: Source,
    /// Stages this one reads from (its base, `COPY --from`, `RUN --mount=from=`), by index.
    pub depends_on: BTreeSet<usize>,
    /// Images this one copies or mounts from (not its base).
    pub image_sources: BTreeSet<String>,
}

/// The stages of a Dockerfile and their dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    /// One node per stage, in file order.
    pub stages: Vec<StageNode>,
}

/// The values of the ARGs declared before the first `FROM`: a build argument overrides a
/// declared arg's default, defaults may refer to earlier meta args, and build arguments for
/// undeclared names are ignored (as Docker ignores them for `FROM` lines).
pub fn meta_arg_values(
    meta_args: &[ArgDef],
    build_args: &HashMap<String, String>,
    escape: char,
) -> Result<HashMap<String, String>, ShellError> {
    let lex = Lexer::new(escape);
    let mut values: HashMap<String, String> = HashMap::new();
    for arg in meta_args {
        let value = match (build_args.get(&arg.key), &arg.value) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(default)) => Some(lex.process_word(default, &values)?),
            (None, None) => None,
        };
        if let Some(v) = value {
            values.insert(arg.key.clone(), v);
        }
    }
    Ok(values)
}

impl StageGraph {
    /// Resolves every stage reference. `expand` expands a `FROM` base or a `--from` value (with
    /// the meta args, see [`meta_arg_values`]); pass the identity when there is nothing to expand.
    pub fn build(
        staged: &StagedFile,
        expand: &dyn Fn(&str) -> Result<String, ShellError>,
    ) -> Result<Self, StageError> {
        let mut nodes: Vec<StageNode> = Vec::with_capacity(staged.stages.len());
        for (current, stage) in staged.stages.iter().enumerate() {
            let earlier = |name: &str, nodes: &[StageNode]| -> Option<usize> {
                let lower = name.to_lowercase();
                nodes
                    .iter()
                    .position(|n| n.name.as_deref() == Some(lower.as_str()))
            };
            let base_name = expand(&stage.base)?;
            let base = match earlier(&base_name, &nodes) {
                Some(i) => Source::Stage(i),
                None if base_name.eq_ignore_ascii_case("scratch") => Source::Scratch,
                None => Source::Image(base_name),
            };
            let mut depends_on = BTreeSet::new();
            if let Source::Stage(i) = base {
                depends_on.insert(i);
            }
            let mut image_sources = BTreeSet::new();
            let mut froms: Vec<String> = Vec::new();
            for ins in &stage.instructions {
                match &ins.kind {
                    InstructionKind::Copy(c) => froms.extend(c.from.iter().cloned()),
                    InstructionKind::Run(r) => {
                        froms.extend(r.mounts.iter().filter_map(|m| m.from.clone()))
                    }
                    _ => {}
                }
            }
            for raw in froms {
                let value = expand(&raw)?;
                if let Some(i) = earlier(&value, &nodes) {
                    depends_on.insert(i);
                    continue;
                }
                match value.parse::<i64>() {
                    Ok(index) if index >= 0 && (index as usize) < current => {
                        depends_on.insert(index as usize);
                    }
                    Ok(index) => return Err(StageError::BadIndex { value: raw, index }),
                    Err(_) => {
                        image_sources.insert(value);
                    }
                }
            }
            nodes.push(StageNode {
                name: stage.name.clone(),
                base,
                depends_on,
                image_sources,
            });
        }
        Ok(StageGraph { stages: nodes })
    }

    /// The index of the stage `--target` names (case-insensitive), or the last stage when no
    /// target is given.
    pub fn target_index(&self, target: Option<&str>) -> Result<usize, StageError> {
        match target {
            None | Some("") => self
                .stages
                .len()
                .checked_sub(1)
                .ok_or_else(|| StageError::TargetNotFound(String::new())),
            Some(t) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| StageError::TargetNotFound(t.to_string())),
        }
    }

    /// The stages `target` needs, itself included, in build order. (The classic builder builds
    /// every stage up to the target regardless; a pruning builder builds only these.)
    pub fn needed(&self, target: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(i) = stack.pop() {
            if i >= self.stages.len() || !seen.insert(i) {
                continue;
            }
            stack.extend(self.stages[i].depends_on.iter().copied());
        }
        seen.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::parse_stages;
    use crate::parser::parse;
    use crate::shell::EnvList;

    fn graph(src: &str) -> StageGraph {
        let df = parse(src).unwrap_or_else(|e| panic!("parse: {e}"));
        let staged = parse_stages(&df).unwrap_or_else(|e| panic!("stages: {e}"));
        StageGraph::build(&staged, &|s| Ok(s.to_string())).unwrap_or_else(|e| panic!("graph: {e}"))
    }

    const MULTI: &str = "\
FROM golang AS Build
RUN go build -o /app
FROM alpine AS tools
RUN apk add curl
FROM scratch AS unrelated
FROM build AS test
RUN --mount=from=tools,source=/usr/bin/curl,target=/curl go test
FROM alpine
COPY --from=build /app /app
COPY --from=1 /usr/bin/curl /curl
COPY --from=nginx:latest /etc/nginx /etc/nginx
";

    #[test]
    fn references_resolve_to_earlier_stages_or_images() {
        let g = graph(MULTI);
        assert_eq!(g.stages.len(), 5);
        assert_eq!(g.stages[0].base, Source::Image("golang".into()));
        assert_eq!(g.stages[2].base, Source::Scratch);
        assert_eq!(g.stages[3].base, Source::Stage(0));
        assert_eq!(g.stages[3].depends_on, BTreeSet::from([0, 1]));
        assert_eq!(g.stages[4].depends_on, BTreeSet::from([0, 1]));
        assert_eq!(
            g.stages[4].image_sources,
            BTreeSet::from(["nginx:latest".to_string()])
        );
    }

    #[test]
    fn target_needs_only_what_it_reads() {
        let g = graph(MULTI);
        assert_eq!(g.target_index(None), Ok(4));
        assert_eq!(g.target_index(Some("TEST")), Ok(3));
        assert_eq!(g.needed(3), vec![0, 1, 3]);
        assert_eq!(g.needed(4), vec![0, 1, 4]);
        assert_eq!(g.needed(2), vec![2]);
        assert_eq!(
            g.target_index(Some("nope")).unwrap_err().to_string(),
            "failed to reach build target nope in Dockerfile"
        );
    }

    #[test]
    fn a_later_stage_name_is_an_image_and_bad_indices_are_refused() {
        let g = graph("FROM later AS first\nFROM alpine AS later\n");
        assert_eq!(g.stages[0].base, Source::Image("later".into()));
        let df = parse("FROM a\nFROM b\nCOPY --from=1 x y\n").unwrap_or_else(|e| panic!("{e}"));
        let staged = parse_stages(&df).unwrap_or_else(|e| panic!("{e}"));
        let err = StageGraph::build(&staged, &|s| Ok(s.to_string())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid from flag value 1: invalid stage index 1"
        );
    }

    #[test]
    fn from_lines_expand_with_meta_args() {
        let df = parse(
            "ARG BASE=alpine\nARG TAG=${BASE}-3\nFROM ${BASE} AS base\nFROM base\nFROM img:$TAG\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let staged = parse_stages(&df).unwrap_or_else(|e| panic!("{e}"));
        let build_args = HashMap::from([("UNDECLARED".to_string(), "x".to_string())]);
        let values = meta_arg_values(&staged.meta_args, &build_args, df.escape)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values.get("TAG").map(String::as_str), Some("alpine-3"));
        assert!(!values.contains_key("UNDECLARED"));
        let env = EnvList::new(values.iter().map(|(k, v)| format!("{k}={v}")));
        let lex = Lexer::new(df.escape);
        let g = StageGraph::build(&staged, &|s| lex.process_word(s, &env))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.stages[0].base, Source::Image("alpine".into()));
        assert_eq!(g.stages[1].base, Source::Stage(0));
        assert_eq!(g.stages[2].base, Source::Image("img:alpine-3".into()));

        let overridden = HashMap::from([("BASE".to_string(), "debian".to_string())]);
        let values =
            meta_arg_values(&staged.meta_args, &overridden, '\\').unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values.get("TAG").map(String::as_str), Some("debian-3"));
    }
}
