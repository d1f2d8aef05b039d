#!/usr/bin/env sh
# Builds canary_router.wasm beside this script with componentize-py (PyPI,
# pinned: `pip install componentize-py==0.25.1`). The component carries a
# Python interpreter: ~40 MB, and instances need more memory than Rust's.
set -eu
cd "$(dirname "$0")"
componentize-py -d ../../../wit -w balancer componentize app -o canary_router.wasm
