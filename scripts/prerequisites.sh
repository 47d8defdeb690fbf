#!/usr/bin/env bash
# Installs what the test command needs beyond the Rust toolchain, only where it is missing:
# pytest (Python binding tests), the Kotlin compiler (npm package `kotlin-compiler`, which
# brings `kotlinc-jvm`), JNA (Debian `libjna-java`) for the Kotlin binding test, and the
# rustfmt/clippy components, cargo-nextest, iproute2 + iptables for the network-namespace
# tests, and OpenSSL's headers (libssl-dev) for SQLCipher. Needs
# python3, npm and a Java runtime. Safe to run again.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq "$@" >/dev/null
}

if ! python3 -c 'import pytest' 2>/dev/null; then
  # pip where Python is the user's own (pyenv, venv); Debian's package where the system
  # Python refuses pip (PEP 668).
  python3 -m pip install --quiet --disable-pip-version-check pytest 2>/dev/null ||
    apt_install python3-pytest
fi

# The npm package puts only kotlinc-js on PATH; kotlinc-jvm stays in its bin/ folder, where
# ffi/test-bindings.sh looks for it.
if ! command -v kotlinc-jvm >/dev/null 2>&1 &&
  [ ! -x "$(npm root -g)/kotlin-compiler/bin/kotlinc-jvm" ]; then
  npm_global="$(npm root -g)"
  if [ -w "$npm_global" ] || [ -w "$(dirname "$npm_global")" ]; then
    npm install --global --silent --no-fund --no-audit kotlin-compiler
  else
    as_root npm install --global --silent --no-fund --no-audit kotlin-compiler
  fi
fi

if [ ! -f /usr/share/java/jna.jar ]; then
  apt_install libjna-java
fi

# The network-fault tests (tests/tests/network_faults.rs) make network namespaces, veth
# pairs, iptables rules and tbf queues.
if ! command -v ip >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1 ||
  ! command -v tc >/dev/null 2>&1; then
  apt_install iproute2 iptables
fi

# SQLCipher (the encrypted store) is built from source and links the system's OpenSSL libcrypto
# on this kind of machine (mobile builds bundle OpenSSL instead: ffi/README.md).
if [ ! -f /usr/include/openssl/crypto.h ]; then
  apt_install libssl-dev
fi

# The full run uses cargo-nextest (each test in its own process, spread over the cores).
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
