#!/usr/bin/env bash
# Set up everything (Debian packages, the virtualenv) and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The dashboard needs the demo extra (rich); bootstrap installs it, but a venv
# made another way may have only the base dependencies.
if ! .venv/bin/python -c 'import rich' >/dev/null 2>&1; then
    echo "demo: installing the demo extra into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[demo]'
fi
exec .venv/bin/floorwalker demo "$@"
