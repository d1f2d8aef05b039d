#!/usr/bin/env sh
# Installs the JavaScript examples' pinned tools (package.json) into
# examples/node_modules, once. No package-lock.json is written.
set -eu
cd "$(dirname "$0")"
[ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund --no-package-lock --silent
