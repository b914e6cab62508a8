#!/usr/bin/env bash
# Make the Python workspace usable: ensure `uv` exists, then `uv sync` (frozen to uv.lock).
# uv must not download Python builds here (no network beyond package registries), so the
# machine's python3 (3.11+) is used: UV_PYTHON_DOWNLOADS=never.
set -euo pipefail

export UV_PYTHON_DOWNLOADS=never
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

info() { printf '==> %s\n' "$*"; }
die() {
    printf 'error %s\n' "$*" >&2
    exit 1
}

# pip --user installs scripts into the user base's bin dir (usually ~/.local/bin).
user_bin_dir() {
    local base
    base="$(python3 -m site --user-base 2>/dev/null || echo "$HOME/.local")"
    echo "$base/bin"
}

find_uv() {
    command -v uv >/dev/null 2>&1 && return 0
    local bin
    bin="$(user_bin_dir)"
    if [[ -x "$bin/uv" ]]; then
        export PATH="$bin:$PATH"
        return 0
    fi
    return 1
}

install_uv() {
    command -v python3 >/dev/null 2>&1 ||
        die "python3 is missing: install Python 3.11+ (Debian: apt-get install python3 python3-pip)"
    info "uv not found; installing it from PyPI with pip (user install)"
    # Debian marks the system Python as externally managed (PEP 668): a --user install of a
    # standalone tool like uv is safe, but needs --break-system-packages there.
    python3 -m pip install --user --quiet uv 2>/dev/null ||
        python3 -m pip install --user --quiet --break-system-packages uv 2>/dev/null ||
        { command -v pip >/dev/null 2>&1 && pip install --quiet uv; } ||
        {
            if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1 &&
                ! python3 -m pip --version >/dev/null 2>&1; then
                info "pip is missing; installing python3-pip with apt-get"
                apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null &&
                    python3 -m pip install --user --quiet --break-system-packages uv
            else
                false
            fi
        } ||
        die "could not install uv. Install it by hand: python3 -m pip install --user uv" \
            "(add --break-system-packages on Debian), then make sure $(user_bin_dir) is on PATH"
}

if ! find_uv; then
    install_uv
    find_uv || die "uv was installed but not found in $(user_bin_dir); add its location to PATH"
    printf '    note: uv is in %s; add that to PATH in your shell profile\n' "$(dirname "$(command -v uv)")"
fi
info "using $(uv --version) ($(command -v uv))"

cd "$REPO_ROOT"
if [[ -f uv.lock ]]; then
    info "uv sync --frozen"
    uv sync --frozen
else
    info "no uv.lock yet: uv sync (this creates it)"
    uv sync
fi
info "workspace ready: $REPO_ROOT/.venv"
