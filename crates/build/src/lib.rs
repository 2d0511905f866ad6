//! Berth's image-build front end: everything about `docker build` that needs no engine.
//!
//! - [`parser`]: the Dockerfile parser (directives, escape character, continuations, comments,
//!   heredocs, JSON and shell forms, flags, line numbers), giving the raw node tree Docker's parser
//!   gives; [`instructions`] turns it into typed instructions with Docker's validation errors.
//! - [`shell`]: shell-word expansion of instruction arguments (`$VAR`, `${VAR:-x}`, quotes, escapes).
//! - [`dockerignore`]: `.dockerignore` parsing and path matching for the build-context walker.
//! - [`stages`]: the stage graph of a parsed Dockerfile (which stages a `--target` needs).
//!
//! The behaviour follows Docker's classic builder (`DOCKER_BUILDKIT=0`), which uses buildkit's
//! parser; the conformance data of both projects is run in full by the unit tests.

pub mod shell;

pub mod dockerignore;
pub mod instructions;
pub mod parser;
mod quote;
