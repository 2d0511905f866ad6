//! Berth's image-build front end: everything about `docker build` that needs no engine.
//!
//! - [`parser`]: the Dockerfile parser (directives, escape character, continuations, comments,
//!   heredocs, JSON and shell forms, flags, line numbers), giving the raw node tree Docker's parser
//!   gives; [`instructions`] turns it into typed instructions with Docker's validation errors.
//! - [`shell`]: shell-word expansion of instruction arguments (`$VAR`, `${VAR:-x}`, quotes, escapes).
//! - [`dockerignore`]: `.dockerignore` parsing and path matching for the build-context walker.
//! - [`stages`]: the stage graph of a parsed Dockerfile (which stages a `--target` needs).
//! - [`dispatch`]: runs the instructions through a [`backend::Backend`] the engine implements,
//!   with the classic builder's configs, history, cache ([`context`] hashes COPY sources) and
//!   output; [`image_config`] is Docker's image config JSON.
//!
//! The behaviour follows Docker's classic builder (`DOCKER_BUILDKIT=0`), which uses buildkit's
//! parser; the conformance data of both projects is run in full by the unit tests.

pub mod backend;
pub mod context;
pub mod dispatch;
pub mod dockerignore;
pub mod image_config;
pub mod instructions;
pub mod parser;
pub mod shell;
pub mod stages;

mod quote;

pub use instructions::duration::go_duration_nanos;
use instructions::{InstructionError, StagedFile};
use parser::{Dockerfile, ParseError};

/// A Dockerfile the classic builder refuses, worded as `docker build` shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontendError {
    /// The file has no bytes at all.
    #[error("the Dockerfile ({0}) cannot be empty")]
    Empty(String),
    /// The parser refused it.
    #[error("failed to parse {name}: {source}")]
    Parse {
        /// The Dockerfile's name in the context (`Dockerfile` unless `-f` says otherwise).
        name: String,
        /// What the parser found.
        source: ParseError,
    },
    /// An instruction is malformed.
    #[error(transparent)]
    Instruction(#[from] InstructionError),
}

/// A parsed and checked Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The node tree, escape character, directives and warnings.
    pub dockerfile: Dockerfile,
    /// The typed instructions, grouped by stage.
    pub staged: StagedFile,
}

/// Parses and checks the Dockerfile `name` from its bytes, as the classic builder does before it
/// runs anything. Bytes that are not UTF-8 are replaced (Docker passes them through untouched;
/// a Dockerfile that relies on that is not supported).
pub fn load(name: &str, content: &[u8]) -> Result<Loaded, FrontendError> {
    if content.is_empty() {
        return Err(FrontendError::Empty(name.to_string()));
    }
    let text = String::from_utf8_lossy(content);
    let dockerfile = parser::parse(&text).map_err(|source| FrontendError::Parse {
        name: name.to_string(),
        source,
    })?;
    let staged = instructions::parse_stages(&dockerfile)?;
    Ok(Loaded { dockerfile, staged })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_words_errors_as_the_classic_builder() {
        assert_eq!(
            load("Dockerfile", b"").unwrap_err().to_string(),
            "the Dockerfile (Dockerfile) cannot be empty"
        );
        assert_eq!(
            load("Dockerfile", b"FROM a\nRUN <<EOF\n")
                .unwrap_err()
                .to_string(),
            "failed to parse Dockerfile: unterminated heredoc"
        );
        assert_eq!(
            load("dev.Dockerfile", b"\n\n# only\n")
                .unwrap_err()
                .to_string(),
            "failed to parse dev.Dockerfile: file with no instructions"
        );
        assert_eq!(
            load("Dockerfile", b"FROM a\nFRM b\n")
                .unwrap_err()
                .to_string(),
            "dockerfile parse error on line 2: unknown instruction: FRM (did you mean FROM?)"
        );
    }

    #[test]
    fn load_gives_stages_and_escape() {
        let l = load(
            "Dockerfile",
            b"# escape=`\nARG V=1\nFROM alpine AS a\nRUN echo `\n hi\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.dockerfile.escape, '`');
        assert_eq!(l.staged.meta_args.len(), 1);
        assert_eq!(l.staged.stages[0].instructions.len(), 1);
    }

    /// Random inputs built from the characters the parsers treat specially must give a result
    /// or an error, never a panic (Dockerfiles and .dockerignore files come from the client).
    #[test]
    fn random_inputs_never_panic() {
        const ALPHABET: &[&str] = &[
            "FROM ",
            "RUN ",
            "COPY ",
            "ONBUILD ",
            "HEALTHCHECK ",
            "ENV ",
            "ARG ",
            "--",
            "=",
            "<<",
            "<<-",
            "EOF",
            "\\",
            "`",
            "\n",
            "\r\n",
            "\t",
            " ",
            "#",
            "# escape=`\n",
            "[",
            "]",
            "\"",
            "'",
            "$",
            "{",
            "}",
            ":",
            "-",
            "+",
            "?",
            "%",
            "/",
            "*",
            "**",
            "!",
            "a",
            "é",
            "\u{feff}",
            "0",
            "3",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let lex = shell::Lexer::new('\\');
        let env = shell::EnvList::new(["A=1", "E="]);
        for _ in 0..3000 {
            let len = (next() % 40) as usize;
            let text: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            if let Ok(loaded) = load("Dockerfile", text.as_bytes()) {
                let _ = stages::StageGraph::build(&loaded.staged, &|s| Ok(s.to_string()));
            }
            let _ = lex.process(&text, &env);
            let patterns = dockerignore::read_patterns(&text);
            if let Ok(pm) = dockerignore::PatternMatcher::new(&patterns) {
                let _ = pm.matches_or_parent_matches(&text);
            }
        }
    }
}
