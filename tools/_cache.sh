# Sourced by .ci/run: heavy tool environments, built once outside the clone and reused,
# keyed by their pinned versions (ALMA_CACHE, default ~/.cache/alma_store-ci).
ALMA_CACHE=${ALMA_CACHE:-$HOME/.cache/alma_store-ci}
TORCH_VERSION=2.14.1   # the PyTorch the `torch` extra is tested with in CI
AZURITE_VERSION=3.35.0 # the Azure Storage emulator (npm) the Azure tests run against

# torch_site VENV: make PyTorch $TORCH_VERSION importable in VENV, from a cached venv of
# its own (several GB, installed once per version and Python): a .pth file puts that
# venv's site-packages last on VENV's path, so VENV's own packages win where both have one.
torch_site() {
    local venv=$1 pyver key site
    pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    key="$ALMA_CACHE/torch-$TORCH_VERSION-py$pyver"
    if [ ! -f "$key/.complete" ]; then
        rm -rf "$key"
        mkdir -p "$ALMA_CACHE"
        "$PY" -m venv "$key"
        "$key/bin/python" -m pip install -q "torch==$TORCH_VERSION"
        touch "$key/.complete"
    fi
    site=$("$key/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    "$venv/bin/python" - "$site" <<'PY'
import pathlib, sys, sysconfig
pathlib.Path(sysconfig.get_path("purelib"), "zz_alma_torch.pth").write_text(sys.argv[1] + "\n")
PY
}

# azurite_bin: print the Azurite blob server's command, installing Azurite $AZURITE_VERSION
# from the npm registry into the cache once (the last release that runs on Node.js 20).
azurite_bin() {
    local key="$ALMA_CACHE/azurite-$AZURITE_VERSION"
    if [ ! -f "$key/.complete" ]; then
        rm -rf "$key"
        mkdir -p "$key"
        npm install --prefix "$key" --no-audit --no-fund --loglevel=error \
            "azurite@$AZURITE_VERSION" >&2
        touch "$key/.complete"
    fi
    echo "$key/node_modules/.bin/azurite-blob"
}

# uv_on_path: put uv $UV_VERSION on PATH, installed once into the cache from PyPI (pip
# takes minutes for the test environment; uv, seconds).
UV_VERSION=0.13.9
uv_on_path() {
    local key="$ALMA_CACHE/uv-$UV_VERSION"
    if [ ! -f "$key/.complete" ]; then
        rm -rf "$key"
        "$PY" -m venv "$key"
        "$key/bin/python" -m pip install -q "uv==$UV_VERSION"
        touch "$key/.complete"
    fi
    PATH="$key/bin:$PATH"
}

# labelstudio_bin: print the label-studio command, installing Label Studio
# $LABEL_STUDIO_VERSION into a venv of its own in the cache once (uv when on PATH).
LABEL_STUDIO_VERSION=1.23.2
labelstudio_bin() {
    local key="$ALMA_CACHE/labelstudio-$LABEL_STUDIO_VERSION"
    if [ ! -f "$key/.complete" ]; then
        rm -rf "$key"
        install_into "$key" "label-studio==$LABEL_STUDIO_VERSION" >&2
        touch "$key/.complete"
    fi
    echo "$key/bin/label-studio"
}
