#!/usr/bin/env sh
# Builds canary_router.wasm beside this script with componentize-js (npm,
# pinned in package.json; `npm install` fetches it). The host provides no
# `wasi:http`, so that feature and the fetch event are disabled; the
# component carries the StarlingMonkey JavaScript engine.
set -eu
cd "$(dirname "$0")"
[ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund --no-package-lock --silent
node_modules/.bin/componentize-js app.js --wit ../../../wit --world-name balancer \
  --disable http fetch-event -o canary_router.wasm
