#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, warnings as errors.
# Installs what the build needs from the repository's own files (the `docs` group).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/_python.sh
find_python
VENV="${DOCS_VENV:-.venv-docs}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
[ -n "${DOCS_INSTALLED:-}" ] || "$VENV/bin/python" -m pip install -q -e . --group docs
rm -rf docs/_build docs/generated
"$VENV/bin/python" -m sphinx -W --keep-going -b html docs docs/_build/html
echo "built docs/_build/html/index.html"
