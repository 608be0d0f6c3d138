#!/usr/bin/env bash
# Make this machine ready to develop and test Floorwalker: the Mosquitto, Redis and
# Prometheus binaries and Chromium (integration and browser tests and `floorwalker demo`
# start their own servers on loopback, never the system daemons) and the virtualenv.
# Idempotent; a second run with everything present takes well under a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_debian_packages() {
    local missing=()
    have mosquitto || missing+=(mosquitto)
    have redis-server || missing+=(redis-server)
    # The floor page's browser tests (playwright drives this one: it cannot download its own).
    have chromium || missing+=(chromium)
    # The Grafana dashboard's queries are checked against a real Prometheus in the tests.
    have prometheus || missing+=(prometheus)
    # `bench live --target nodered` (and its test) npm-installs Node-RED 4.1 into
    # .cache/nodered; it needs Node.js >= 18 (Debian 12's nodejs is 18).
    have node || missing+=(nodejs)
    have npm || missing+=(npm)
    if [ ! -x .venv/bin/python ]; then
        have python3 || missing+=(python3)
        # Debian's python3 creates venvs only with python3-venv (ensurepip).
        python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    fi
    [ "${#missing[@]}" -eq 0 ] && return 0

    echo "bootstrap: installing ${missing[*]}" >&2
    # Package post-install scripts would start system-wide daemons on the default
    # ports (1883, 6379); Floorwalker starts its own on free loopback ports, so
    # forbid service starts while installing. 101 = "action forbidden by policy".
    local policy=/usr/sbin/policy-rc.d had_policy=0
    if [ -e "$policy" ]; then
        had_policy=1
        as_root cp -p "$policy" "$policy.floorwalker-bak"
    fi
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    # shellcheck disable=SC2064  # expand now: restore exactly this state on exit
    trap "restore_policy $policy $had_policy" EXIT

    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # On machines without a working init (containers) a post-install script may
    # still fail to start a daemon; the binaries are what we need, so go on and
    # check for them below instead of trusting apt's exit code.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null ||
        echo "bootstrap: apt-get reported an error; checking the binaries" >&2
    restore_policy "$policy" "$had_policy"
    trap - EXIT

    local name
    for name in mosquitto redis-server chromium prometheus node npm python3; do
        have "$name" || { echo "bootstrap: $name still missing after install" >&2; exit 1; }
    done
}

restore_policy() {
    local policy="$1" had_policy="$2"
    if [ "$had_policy" -eq 1 ]; then
        as_root mv -f "$policy.floorwalker-bak" "$policy"
    else
        as_root rm -f "$policy"
    fi
}

install_venv() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    # Reinstall only when the dependency declaration changed since the last run.
    local stamp=.venv/.floorwalker-pyproject.sha256 want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "bootstrap: installing Python dependencies into .venv" >&2
    # Build backends print pages of deprecation warnings even with -q; keep them in
    # a log and show it only when the install fails.
    local log=.venv/.floorwalker-pip.log
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,bench,demo,web,cluster,cluster-test]' >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "bootstrap: pip install failed (full log: $log)" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
}

install_debian_packages
install_venv
echo "bootstrap: ok (mosquitto, redis-server, chromium, prometheus, node, npm, .venv)" >&2
