# Sourced by tools/demo.sh and .ci/run: sets PY to a Python >= 3.12 (zarr >= 3.2 needs it).
# .python-version pins 3.12 for pyenv; fall back to any python3.12+ on PATH.
find_python() {
    local candidates=()
    if command -v pyenv >/dev/null 2>&1; then
        candidates+=("$(pyenv which python 2>/dev/null || true)")
        candidates+=("$(pyenv root)"/versions/3.12*/bin/python)
    fi
    candidates+=("$HOME"/.pyenv/versions/3.12*/bin/python python3.12 python3.13 python3)
    for c in "${candidates[@]}"; do
        [ -n "$c" ] || continue
        if command -v "$c" >/dev/null 2>&1 \
            && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            PY=$(command -v "$c")
            return 0
        fi
    done
    echo "alma_store needs Python >= 3.12 (install it, e.g. 'pyenv install 3.12')" >&2
    return 1
}
