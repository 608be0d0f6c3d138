#!/usr/bin/env bash
# Set up everything (Debian packages, the virtualenv) and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/floorwalker demo "$@"
