#!/usr/bin/env sh
# Builds {file}.wasm beside this script:
#  1. `wit-bindgen c` (crates.io: wit-bindgen-cli) writes the bindings of
#     the {world} world of wit/ into gen/;
#  2. clang compiles them and {file}.c to a core module against wasi-libc
#     (Debian: clang-14, lld-14, wasi-libc, libclang-rt-14-dev-wasm32);
#  3. `wasm-tools component new` (crates.io: wasm-tools) makes it a
#     component. The code calls no WASI function, so no adapter is needed.
# Then: bascule plugin inspect {file}.wasm
set -eu
cd "$(dirname "$0")"
CC="${CC:-clang-14}"
rm -rf gen && mkdir gen
wit-bindgen c wit --world {world} --out-dir gen >/dev/null
"$CC" --target=wasm32-wasi --sysroot=/usr -I/usr/include/wasm32-wasi -L/usr/lib/wasm32-wasi \
  -fuse-ld=lld -mexec-model=reactor -O2 -Wall -Wextra -Werror \
  -o gen/{file}.core.wasm {file}.c gen/{world_c}.c gen/{world_c}_component_type.o
wasm-tools component new gen/{file}.core.wasm -o {file}.wasm
