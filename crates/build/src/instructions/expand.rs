//! Variable expansion of instruction arguments at dispatch time, field by field as Docker expands
//! them (buildkit's `SupportsSingleWordExpansion`): each expandable field is one word processed
//! with the stage's environment and the build arguments in scope.
//!
//! Expanded: `ENV` and `LABEL` keys and values, `ARG` names and defaults, `COPY`/`ADD` sources,
//! destination, `--chown`, `--chmod` (and `ADD --checksum`), `WORKDIR`, `USER`, `VOLUME`,
//! `STOPSIGNAL`; `EXPOSE` expands into words (`EXPOSE $PORTS` with `PORTS="80 443"` gives two).
//! Not expanded (as in Docker): `CMD`, `ENTRYPOINT`, `RUN`, `SHELL`, `HEALTHCHECK`, `ONBUILD`,
//! `MAINTAINER` and `COPY --from`. `RUN --mount` values expand when resolved
//! ([`super::MountSpec::resolve`]); `FROM` lines expand with the meta args
//! ([`crate::stages::meta_arg_values`]).

use super::{Instruction, InstructionKind, KeyValue, SourcesAndDest};
use crate::shell::{Environment, Lexer, ShellError};

impl Instruction {
    /// Expands this instruction's expandable fields in place with `lexer` (built with the
    /// Dockerfile's escape character) and `env`.
    pub fn expand(&mut self, lexer: &Lexer, env: &dyn Environment) -> Result<(), ShellError> {
        let word = |s: &mut String| -> Result<(), ShellError> {
            *s = lexer.process_word(s, env)?;
            Ok(())
        };
        let opt = |s: &mut Option<String>| -> Result<(), ShellError> {
            if let Some(v) = s {
                *v = lexer.process_word(v, env)?;
            }
            Ok(())
        };
        let kvs = |kvs: &mut Vec<KeyValue>| -> Result<(), ShellError> {
            for kv in kvs {
                kv.key = lexer.process_word(&kv.key, env)?;
                kv.value = lexer.process_word(&kv.value, env)?;
            }
            Ok(())
        };
        let files = |f: &mut SourcesAndDest| -> Result<(), ShellError> {
            for s in &mut f.sources {
                *s = lexer.process_word(s, env)?;
            }
            f.dest = lexer.process_word(&f.dest, env)?;
            // Heredoc bodies expand without quote processing, so quotes in file content stay.
            let mut raw = Lexer::new('\\');
            raw.skip_process_quotes = true;
            for c in &mut f.contents {
                if c.expand {
                    c.data = raw.process_word(&c.data, env)?;
                }
            }
            Ok(())
        };
        match &mut self.kind {
            InstructionKind::Env(v) | InstructionKind::Label(v) => kvs(v)?,
            InstructionKind::Arg(args) => {
                for a in args {
                    word(&mut a.key)?;
                    opt(&mut a.value)?;
                }
            }
            InstructionKind::Copy(c) => {
                opt(&mut c.chown)?;
                opt(&mut c.chmod)?;
                files(&mut c.files)?;
            }
            InstructionKind::Add(a) => {
                opt(&mut a.chown)?;
                opt(&mut a.chmod)?;
                opt(&mut a.checksum)?;
                files(&mut a.files)?;
            }
            InstructionKind::Workdir(s)
            | InstructionKind::User(s)
            | InstructionKind::StopSignal(s) => word(s)?,
            InstructionKind::Volume(v) => {
                for s in v {
                    word(s)?;
                }
            }
            InstructionKind::Expose(ports) => {
                // The one instruction whose expansion may yield several words.
                let mut out = Vec::with_capacity(ports.len());
                for p in ports.iter() {
                    out.extend(lexer.process_words(p, env)?);
                }
                *ports = out;
            }
            InstructionKind::Run(_)
            | InstructionKind::Cmd(_)
            | InstructionKind::Entrypoint(_)
            | InstructionKind::Onbuild(_)
            | InstructionKind::Healthcheck(_)
            | InstructionKind::Shell(_)
            | InstructionKind::Maintainer(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::instructions::{parse_stages, InstructionKind};
    use crate::parser::parse;
    use crate::shell::{EnvList, Lexer};

    fn expanded(line: &str, env: &[&str]) -> InstructionKind {
        let df = parse(&format!("FROM a\n{line}\n")).unwrap_or_else(|e| panic!("parse: {e}"));
        let mut staged = parse_stages(&df).unwrap_or_else(|e| panic!("stages: {e}"));
        let mut ins = staged.stages.remove(0).instructions.remove(0);
        ins.expand(&Lexer::new(df.escape), &EnvList::new(env))
            .unwrap_or_else(|e| panic!("expand: {e}"));
        ins.kind
    }

    #[test]
    fn fields_expand_as_docker_expands_them() {
        match expanded("ENV A=\"$X y\" $X=1", &["X=x"]) {
            InstructionKind::Env(kvs) => {
                let pairs: Vec<(&str, &str)> = kvs
                    .iter()
                    .map(|k| (k.key.as_str(), k.value.as_str()))
                    .collect();
                assert_eq!(pairs, vec![("A", "x y"), ("x", "1")]);
            }
            other => panic!("{other:?}"),
        }
        match expanded(
            "COPY --chown=$U:$U --from=$S ${SRC}/a b\\ c <<EOF $DST\n'$U' \"$U\"\nEOF",
            &["U=app", "SRC=src", "DST=/d/", "S=x"],
        ) {
            InstructionKind::Copy(c) => {
                assert_eq!(c.chown.as_deref(), Some("app:app"));
                assert_eq!(c.from.as_deref(), Some("$S"), "--from is not expanded");
                assert_eq!(
                    c.files.sources,
                    vec!["src/a", "b", "c"],
                    "shell-form sources split on blanks first"
                );
                assert_eq!(c.files.dest, "/d/");
                assert_eq!(c.files.contents[0].data, "'app' \"app\"\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            expanded("EXPOSE $PORTS 22", &["PORTS=80 443"]),
            InstructionKind::Expose(vec!["80".into(), "443".into(), "22".into()])
        );
        assert_eq!(
            expanded("WORKDIR ${HOME:-/root}/src", &[]),
            InstructionKind::Workdir("/root/src".into())
        );
        match expanded("RUN echo $A", &["A=1"]) {
            InstructionKind::Run(r) => {
                assert_eq!(r.command.args, vec!["echo $A"], "RUN is left to the shell")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoted_heredoc_delimiter_keeps_content_unexpanded() {
        match expanded("COPY <<'EOF' /x\n$A\nEOF", &["A=1"]) {
            InstructionKind::Copy(c) => assert_eq!(c.files.contents[0].data, "$A\n"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expansion_errors_are_reported() {
        let df = parse("FROM a\nUSER ${U:?must be set}\n").unwrap_or_else(|e| panic!("{e}"));
        let mut staged = parse_stages(&df).unwrap_or_else(|e| panic!("{e}"));
        let mut ins = staged.stages.remove(0).instructions.remove(0);
        let err = ins
            .expand(&Lexer::new('\\'), &EnvList::new(Vec::<String>::new()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to process \"${U:?must be set}\": U: must be set"
        );
    }
}
