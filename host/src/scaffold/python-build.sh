#!/usr/bin/env sh
# Builds {file}.wasm beside this script with componentize-py (PyPI:
# `pip install componentize-py=={componentize_py}`), against the {world}
# world of wit/. The component carries a Python interpreter (~18 MB).
# Then: bascule plugin inspect {file}.wasm
set -eu
cd "$(dirname "$0")"
componentize-py -d wit -w {world} componentize app -o {file}.wasm
