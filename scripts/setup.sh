#!/usr/bin/env bash
# Installs everything the project needs inside the repository: a Python virtualenv (.venv)
# with the package and its test tools, and node_modules (anvil, solc, OpenZeppelin).
# Safe to run again: it reinstalls only when pyproject.toml or package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "setup: Python 3.11 or newer is required ($python)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
command -v npm >/dev/null || { echo "setup: npm (Node 20 or newer) is required" >&2; exit 1; }

stamp=.venv/.navpub-installed
want=$(cat pyproject.toml package-lock.json | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/.bin/anvil ]; then
  exit 0
fi

echo "setup: installing Python packages into .venv" >&2
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

echo "setup: installing node packages (anvil, solc, OpenZeppelin)" >&2
npm ci --no-audit --no-fund --loglevel=error

echo "$want" > "$stamp"
