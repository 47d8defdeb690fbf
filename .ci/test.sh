#!/usr/bin/env bash
# The project's test command (README, and CI through .ci/run): formatting, lints, docs, every
# Rust test in the workspace including the slow suites that the everyday `cargo test` skips,
# and the generated Python and Kotlin bindings driven end to end. CONTRIBUTING.md explains
# each step. It fails, never skips, when a tool or root is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prerequisites.sh

# Each step says how long the run has taken so far, so a CI log shows where the time goes.
step() { echo "== $* (${SECONDS}s)"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "nabij-core without default features compiles (the store and the sans-IO protocol)"
cargo check -p nabij-core --no-default-features --all-targets --locked

step "the sync protocol core links no tokio and no quinn"
if cargo tree -p nabij-core --no-default-features -e normal --prefix none | grep -E '^(tokio|quinn)[ -]'; then
  echo "nabij-core without default features must not depend on tokio or quinn" >&2
  exit 1
fi

step "the relay links no Automerge and not the core"
if cargo tree -p nabij-sync-server -e normal --prefix none | grep -E '^(automerge|nabij-core)[ -]'; then
  echo "nabij-sync-server must not depend on automerge or nabij-core: it is blind by construction" >&2
  exit 1
fi

step "the fuzz crate builds"
cargo build --manifest-path fuzz/Cargo.toml --locked --bins --examples

step "every test, slow suites included (cargo nextest, profile ci)"
cargo nextest run --workspace --locked --profile ci --run-ignored all
cargo test --workspace --locked --doc

step "bindings (Python, Kotlin, Swift generation)"
bash ffi/test-bindings.sh

step "all tests passed"
