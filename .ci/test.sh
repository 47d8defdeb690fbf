#!/usr/bin/env bash
# The project's test command (README, and CI through .ci/run): formatting, lints, every Rust
# test in the workspace, and the generated Python and Kotlin bindings driven end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prerequisites.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== the sync protocol core links no tokio and no quinn"
if cargo tree -p nabij-core --no-default-features -e normal --prefix none | grep -E '^(tokio|quinn)[ -]'; then
  echo "nabij-core without default features must not depend on tokio or quinn" >&2
  exit 1
fi

echo "== the relay links no Automerge and not the core"
if cargo tree -p nabij-sync-server -e normal --prefix none | grep -E '^(automerge|nabij-core)[ -]'; then
  echo "nabij-sync-server must not depend on automerge or nabij-core: it is blind by construction" >&2
  exit 1
fi

echo "== cargo test"
cargo test --workspace --locked

echo "== bindings (Python, Kotlin, Swift generation)"
bash ffi/test-bindings.sh

echo "== all tests passed"
