#!/usr/bin/env bash
# Install alma_store with its demo extra into .venv and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/_python.sh
find_python
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[demo]"
.venv/bin/alma demo "$@"
