#!/usr/bin/env sh
# Builds {file}.wasm beside this script with componentize-js (npm, pinned
# in package.json and installed on first use; COMPONENTIZE_JS may name an
# installed one instead), against the {world} world of wit/. The host
# provides no `wasi:http`: that feature and the fetch event are disabled.
# Then: bascule plugin inspect {file}.wasm
set -eu
cd "$(dirname "$0")"
if [ -z "${COMPONENTIZE_JS:-}" ]; then
  [ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund --no-package-lock --silent
  COMPONENTIZE_JS=node_modules/.bin/componentize-js
fi
"$COMPONENTIZE_JS" app.js --wit wit --world-name {world} --disable http fetch-event -o {file}.wasm
