#!/usr/bin/env bash
# The whole test suite: installs what it needs, lints, then runs every test except the
# ones marked slow (contracts on eth-tester, unit, and integration on a real anvil).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest -m "not slow" "$@"
