#!/usr/bin/env bash
# The test command: bootstrap the machine, lint, then the whole pytest suite
# against the real Postgres and Redis (each run in its own database), five tests at a time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ORBIT_BROWSER_TESTS=1 . scripts/bootstrap.sh
.venv/bin/ruff check orbit tests migrations bench
# Each xdist worker is a test run of its own (own database, own Redis db number).
.venv/bin/python -m pytest -n "${ORBIT_TEST_WORKERS:-5}" "$@"
