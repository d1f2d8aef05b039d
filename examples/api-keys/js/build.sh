#!/usr/bin/env sh
# Builds api_keys.wasm beside this script with componentize-js (pinned in
# examples/package.json, installed there on first use), with `wasi:http`
# and the fetch event disabled: the host provides neither.
set -eu
cd "$(dirname "$0")"
../../js-tools.sh
../../node_modules/.bin/componentize-js app.js --wit ../../../wit --world-name header-filter \
  --disable http fetch-event -o api_keys.wasm
