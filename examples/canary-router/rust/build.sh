#!/usr/bin/env sh
# Builds canary_router.wasm beside this script: a wasm32-wasip2 build is
# already a component. Load it with `balancer = "path/to/canary_router.wasm"`.
set -eu
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2 --target-dir "${CARGO_TARGET_DIR:-target}"
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/canary_router.wasm" canary_router.wasm
