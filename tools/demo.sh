#!/usr/bin/env bash
# Install alma_store with its demo extra into .venv and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/_python.sh
find_python
install_into .venv -e ".[demo]" >&2  # uv when it is on PATH, else pip
.venv/bin/alma demo "$@"
