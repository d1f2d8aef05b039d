#!/usr/bin/env sh
# Builds redis_role.wasm beside this script:
#  1. `wit-bindgen c` writes the bindings of the health-interpreter world into gen/;
#  2. clang compiles them and redis_role.c to a core module against
#     wasi-libc (Debian: clang-14, lld-14, wasi-libc), as a reactor;
#  3. `wasm-tools component new` wraps the core module into a component.
# The code calls no WASI function, so the core module imports nothing from
# WASI and needs no preview-1 adapter. Tools (pinned by `make examples`):
# wit-bindgen-cli 0.63.0 and wasm-tools 1.262.0, from crates.io.
set -eu
cd "$(dirname "$0")"
CC="${CC:-clang-14}"
WIT=../../../wit
rm -rf gen && mkdir gen
wit-bindgen c "$WIT" --world health-interpreter --out-dir gen >/dev/null
"$CC" --target=wasm32-wasi --sysroot=/usr -I/usr/include/wasm32-wasi -L/usr/lib/wasm32-wasi \
  -fuse-ld=lld -mexec-model=reactor -O2 -Wall -Wextra -Werror \
  -o gen/redis_role.core.wasm \
  redis_role.c gen/health_interpreter.c gen/health_interpreter_component_type.o
wasm-tools component new gen/redis_role.core.wasm -o redis_role.wasm
