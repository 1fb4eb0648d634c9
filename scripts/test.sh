#!/usr/bin/env bash
# The test command: bootstrap the machine, lint, then the whole pytest suite
# against the real Postgres and Redis (each run in its own database).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/bootstrap.sh
.venv/bin/ruff check orbit tests migrations bench
.venv/bin/python -m pytest "$@"
