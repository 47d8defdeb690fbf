#!/usr/bin/env bash
# Builds nabij-ffi, generates its Python, Kotlin and Swift bindings, and runs the end-to-end
# binding tests: pytest (ffi/tests/python) and a Kotlin program (ffi/tests/kotlin) on the JVM.
#
# Usage: bash ffi/test-bindings.sh [extra pytest arguments, e.g. -k listener]
#   (from any directory)
#
# Tools it needs (it finds them; it does not install them):
#   pip install pytest                    # pytest, for the python3 on PATH (or $PYTHON)
#   npm install -g kotlin-compiler        # kotlinc-jvm (on PATH, $KOTLINC, or in npm's global root)
#   apt-get install -y libjna-java        # JNA: /usr/share/java/jna.jar (or $JNA_JAR)
#   kotlinx-coroutines-core-jvm.jar       # the async (suspend) bindings need it; the compiler's
#                                         # own lib/ ships one (or set $COROUTINES_JAR)
#   a Java runtime (java on PATH, or $JAVA_HOME/bin/java); Java 17 is tested
#
# Environment:
#   NABIJ_SKIP_KOTLIN=1   skip the Kotlin test (by default it runs, and a missing tool fails)
#   PYTHON, KOTLINC, JNA_JAR, COROUTINES_JAR, JAVA_HOME   override where the tools are
#
# Output goes to <target>/bindings/{python,kotlin,swift} and <target>/bindings/kotlin-test.

set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$script_dir/.." && pwd)"
cd "$repo"

start=$SECONDS
step() { printf '\n==> %s (%ss)\n' "$*" "$((SECONDS - start))"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || die "$python not found (set PYTHON)"
command -v cargo >/dev/null || die "cargo not found"

# The target directory, wherever CARGO_TARGET_DIR or a config puts it.
target="$(cargo metadata --format-version 1 --no-deps |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
lib="$target/debug/libnabij_ffi.so"
bindings="$target/bindings"

# -------------------------------------------------------------------------------------------
step "Building nabij-ffi, uniffi-bindgen and the relay (debug)"
cargo build -p nabij-ffi -p uniffi-bindgen -p nabij-sync-server
[[ -f "$lib" ]] || die "$lib was not built"
# The relay tests start a real relay process.
export NABIJ_RELAY_BIN="$target/debug/nabij-relay"
[[ -x "$NABIJ_RELAY_BIN" ]] || die "$NABIJ_RELAY_BIN was not built"

# -------------------------------------------------------------------------------------------
step "Generating bindings into $bindings"
for language in python kotlin swift; do
    rm -rf "${bindings:?}/$language"
    "$target/debug/uniffi-bindgen" generate --no-format --library "$lib" \
        --language "$language" --out-dir "$bindings/$language"
done

for f in nabij_ffi.swift nabij_ffiFFI.h nabij_ffiFFI.modulemap; do
    [[ -s "$bindings/swift/$f" ]] || die "Swift binding $f was not generated"
done
echo "Swift bindings present: $(cd "$bindings/swift" && echo *)"
if command -v swiftc >/dev/null; then
    swiftc -parse "$bindings/swift/nabij_ffi.swift"
    echo "Swift bindings parse"
fi

kotlin_src="$bindings/kotlin/uniffi/nabij_ffi/nabij_ffi.kt"
[[ -s "$bindings/python/nabij_ffi.py" ]] || die "Python bindings were not generated"
[[ -s "$kotlin_src" ]] || die "Kotlin bindings were not generated"

# -------------------------------------------------------------------------------------------
step "Python: pytest ffi/tests/python"
# The generated module loads the library from its own directory.
cp "$lib" "$bindings/python/"
"$python" -m pytest --version >/dev/null 2>&1 || die "pytest is missing: pip install pytest"
NABIJ_PYTHON_BINDINGS="$bindings/python" PYTHONDONTWRITEBYTECODE=1 \
    "$python" -m pytest "$repo/ffi/tests/python" -p no:cacheprovider -ra "$@"

# -------------------------------------------------------------------------------------------
if [[ "${NABIJ_SKIP_KOTLIN:-0}" == 1 ]]; then
    step "Kotlin: skipped (NABIJ_SKIP_KOTLIN=1)"
else
    step "Kotlin: compiling ffi/tests/kotlin against the generated bindings"
    kotlinc="${KOTLINC:-}"
    if [[ -z "$kotlinc" ]]; then
        if command -v kotlinc-jvm >/dev/null; then
            kotlinc="$(command -v kotlinc-jvm)"
        elif command -v npm >/dev/null &&
            [[ -x "$(npm root -g)/kotlin-compiler/bin/kotlinc-jvm" ]]; then
            # The npm package links only kotlinc-js into npm's bin directory.
            kotlinc="$(npm root -g)/kotlin-compiler/bin/kotlinc-jvm"
        else
            die "kotlinc-jvm not found: npm install -g kotlin-compiler (or set KOTLINC)"
        fi
    fi
    [[ -x "$kotlinc" ]] || die "KOTLINC=$kotlinc is not an executable"
    jna="${JNA_JAR:-/usr/share/java/jna.jar}"
    [[ -f "$jna" ]] || die "JNA not found at $jna: apt-get install -y libjna-java (or set JNA_JAR)"
    # The generated code for async functions uses kotlinx.coroutines; the Kotlin compiler
    # ships the library in its lib/ directory.
    coroutines="${COROUTINES_JAR:-$(dirname "$(readlink -f "$kotlinc")")/../lib/kotlinx-coroutines-core-jvm.jar}"
    [[ -f "$coroutines" ]] ||
        die "kotlinx-coroutines not found at $coroutines (set COROUTINES_JAR)"
    java="java"
    [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] && java="$JAVA_HOME/bin/java"
    command -v "$java" >/dev/null || die "java not found (install a JRE or set JAVA_HOME)"

    # The generated bindings take most of the compile time: reuse their jar while they are
    # unchanged (same generated source, same compiler).
    out="$bindings/kotlin-test"
    mkdir -p "$out"
    bindings_jar="$out/nabij-ffi-bindings.jar"
    key="$( (sha256sum <"$kotlin_src"; echo "$kotlinc $coroutines") | sha256sum | cut -d' ' -f1)"
    if [[ -f "$bindings_jar" && "$(cat "$out/nabij-ffi-bindings.key" 2>/dev/null)" == "$key" ]]; then
        echo "generated Kotlin bindings unchanged: reusing $bindings_jar"
    else
        rm -f "$bindings_jar" "$out/nabij-ffi-bindings.key"
        "$kotlinc" -nowarn -classpath "$jna:$coroutines" -d "$bindings_jar" "$kotlin_src"
        echo "$key" >"$out/nabij-ffi-bindings.key"
    fi
    rm -f "$out/nabij-binding-test.jar"
    "$kotlinc" -nowarn -classpath "$jna:$bindings_jar:$coroutines" -include-runtime \
        -d "$out/nabij-binding-test.jar" "$repo/ffi/tests/kotlin/NabijBindingTest.kt"

    step "Kotlin: running the binding test"
    "$java" -Djna.library.path="$(dirname "$lib")" \
        -cp "$out/nabij-binding-test.jar:$bindings_jar:$jna:$coroutines" NabijBindingTestKt
fi

step "All binding tests passed"
