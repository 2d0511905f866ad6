#!/usr/bin/env bash
# The test suite: unit tests of every crate, end-to-end tests of the daemon (tests/), and the compatibility
# tests that drive the real docker CLI and docker-py. Needs root (overlay whiteouts, owners, xattrs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --locked
cargo nextest run --workspace --locked --no-fail-fast "$@"
