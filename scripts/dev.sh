#!/usr/bin/env bash
# One command from a fresh clone: set everything up, then run the demo or the checks.
#   scripts/dev.sh demo   create .venv, install, make sure a Chromium exists, run examples/quickstart.py
#   scripts/dev.sh test   the same set-up, then lint (ruff), types (mypy --strict) and the test suite (pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-}"
if [[ "$what" != "demo" && "$what" != "test" ]]; then
    echo "usage: scripts/dev.sh demo|test" >&2
    exit 2
fi

python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,examples]"

install_chromium() {
    if command -v apt-get >/dev/null 2>&1; then
        local sudo=""
        [[ "$(id -u)" != "0" ]] && sudo="sudo"
        echo "No Chromium found: installing the distribution's chromium package" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
    else
        echo "No Chromium found: installing Playwright's Chromium" >&2
        .venv/bin/python -m playwright install chromium
    fi
}

if ! .venv/bin/browser-sessions doctor >/dev/null 2>&1; then
    install_chromium
    .venv/bin/browser-sessions doctor
fi

if [[ "$what" == "demo" ]]; then
    exec .venv/bin/python examples/quickstart.py
fi
.venv/bin/ruff check server tests examples bench
.venv/bin/ruff format --check server tests examples bench
.venv/bin/mypy
# The npm tools the tests run (Node 22, mcpb, MCP Inspector CLI, conformance suite), pinned in tools/node;
# installed again only when the lock file changed since the last install.
if ! cmp -s tools/node/package-lock.json tools/node/node_modules/.installed-lock.json; then
    command -v npm >/dev/null 2>&1 || { echo "npm is needed to install tools/node: install Node.js (20 or newer)" >&2; exit 1; }
    npm ci --prefix tools/node --ignore-scripts --no-audit --no-fund --loglevel=error
    cp tools/node/package-lock.json tools/node/node_modules/.installed-lock.json
fi
exec .venv/bin/python -m pytest
