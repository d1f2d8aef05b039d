#!/usr/bin/env sh
# Builds canary_router.wasm beside this script with componentize-js, from
# npm, pinned in examples/package.json (installed there on first use). The
# host provides no `wasi:http`, so that feature and the fetch event are
# disabled; the component carries the StarlingMonkey JavaScript engine.
set -eu
cd "$(dirname "$0")"
../../js-tools.sh
../../node_modules/.bin/componentize-js app.js --wit ../../../wit --world-name balancer \
  --disable http fetch-event -o canary_router.wasm
