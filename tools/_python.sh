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

# use_uv: true when uv is on PATH (ALMA_INSTALLER=pip forces pip).
use_uv() { [ "${ALMA_INSTALLER:-}" != pip ] && command -v uv >/dev/null 2>&1; }

# install_into DIR PIP-ARGS...: install into the venv DIR (made by $PY, one if missing)
# through uv when it is on PATH, else pip; prints which and how long it took.
install_into() {
    local dir=$1 start=$SECONDS
    shift
    if use_uv; then
        [ -x "$dir/bin/python" ] || uv venv -q --python "$PY" "$dir"
        uv pip install -q --python "$dir/bin/python" "$@"
        echo "installed with uv $(uv --version | cut -d' ' -f2) in $((SECONDS - start)) s"
    else
        if [ ! -x "$dir/bin/python" ]; then
            "$PY" -m venv "$dir"
            "$dir/bin/python" -m pip install -q --upgrade pip
        fi
        "$dir/bin/python" -m pip install -q "$@"
        echo "installed with pip in $((SECONDS - start)) s (with uv on PATH it takes less)"
    fi
}

# make_venv DIR PIP-ARGS...: install_into a fresh venv at DIR.
make_venv() {
    rm -rf "$1"
    install_into "$@"
}
