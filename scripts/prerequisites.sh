#!/usr/bin/env bash
# Installs what the test command needs beyond the Rust toolchain, only where it is missing:
# pytest (Python binding tests), the Kotlin compiler (npm package `kotlin-compiler`, which
# brings `kotlinc-jvm`), JNA (Debian `libjna-java`) for the Kotlin binding test, and the
# rustfmt/clippy components. Safe to run again.
set -euo pipefail

if ! python3 -c 'import pytest' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check pytest
fi

# The npm package puts only kotlinc-js on PATH; kotlinc-jvm stays in its bin/ folder, where
# ffi/test-bindings.sh looks for it.
if ! command -v kotlinc-jvm >/dev/null 2>&1 && [ ! -x "$(npm root -g)/kotlin-compiler/bin/kotlinc-jvm" ]; then
  npm install --global --silent --no-fund --no-audit kotlin-compiler
fi

if [ ! -f /usr/share/java/jna.jar ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq libjna-java >/dev/null
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
