#!/bin/bash
# Set-up for the browser test (`make browser-test`); safe to run again, it only installs what is missing.
#   tools/browser-setup.sh [PYTHON]   PYTHON: the project's venv python (default .venv/bin/python)
# 1. Debian's chromium (/usr/bin/chromium), through apt-get (root, or sudo).
# 2. The pinned playwright (tools/browser-requirements.txt) into that venv. Playwright's own browser download
#    (`playwright install`) is not used: the test launches /usr/bin/chromium through executable_path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${1:-.venv/bin/python}
req=$here/browser-requirements.txt

if [ -x /usr/bin/chromium ]; then
    echo "browser-setup: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
else
    if [ "$(id -u)" -eq 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; else
        echo "browser-setup: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium)" >&2
        exit 1
    fi
    echo "browser-setup: installing Debian's chromium"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        chromium fonts-liberation >/dev/null
    /usr/bin/chromium --version 2>/dev/null  # its launcher script warns on stderr
fi

if [ ! -x "$py" ]; then
    echo "browser-setup: $py not found; run \`make setup\` first" >&2
    exit 1
fi
pin=$(grep -E '^playwright==' "$req" | cut -d= -f3)
have=$("$py" -c 'from importlib.metadata import version; print(version("playwright"))' 2>/dev/null || true)
if [ "$have" = "$pin" ]; then
    echo "browser-setup: playwright $have already installed"
else
    echo "browser-setup: installing playwright $pin into $("$py" -c 'import sys; print(sys.prefix)')"
    "$py" -m pip install --quiet --disable-pip-version-check -r "$req"
fi
