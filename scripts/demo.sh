#!/usr/bin/env bash
# The demo: installs what it needs, starts a local anvil, deploys the contracts with three
# demo funds and prints their state. Extra arguments go to `navpub demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/navpub demo "$@"
