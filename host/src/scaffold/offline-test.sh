#!/usr/bin/env sh
# Builds the plugin and runs it offline on the sample inputs, failing
# unless the run shows what the starting code does. BASCULE names the
# binary (default: `bascule` on PATH).
set -eu
cd "$(dirname "$0")"
./build.sh
out=$("${BASCULE:-bascule}" plugin run {file}.wasm {run_args})
printf '%s\n' "$out"
printf '%s\n' "$out" | grep -qF -- "{expect}" || { echo "expected a line with: {expect}" >&2; exit 1; }
