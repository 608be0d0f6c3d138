#!/usr/bin/env bash
# Set up everything the tests need (Debian packages, the virtualenv), then run
# lint, type checks and the whole test suite, integration tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check floorwalker tests
.venv/bin/ruff format --check floorwalker tests
.venv/bin/mypy
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
