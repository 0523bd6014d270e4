#!/usr/bin/env bash
# Runs etcd3gw (OpenStack's client of etcd's JSON gateway, from PyPI, in a cached venv)
# against a fresh server on free ports.
#
#   BEACON_BIN=target/debug/beacon compat/etcd3gw/run.sh   # against beacon (the default)
#   TARGET=etcd compat/etcd3gw/run.sh                      # against real etcd (ETCD_BIN)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../server.sh
source "$here/../server.sh"
venv="${BEACON_ETCD3GW_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon-compat/etcd3gw-venv}"
# The whole test script; its own waits are bounded well below this.
test_deadline_s=120

compat_begin etcd3gw

started=$SECONDS
echo "== etcd3gw compat: venv $venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
  >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; fail "pip install failed"; }

free_ports
start_server
# Ready once the JSON gateway answers: Maintenance.Status through the library itself.
ready() {
  "$venv/bin/python" -c '
import sys, etcd3gw
try:
    etcd3gw.client(host="127.0.0.1", port=int(sys.argv[1]), timeout=2).status()
except Exception:
    sys.exit(1)' "$port" 2>/dev/null
}
wait_ready ready

echo "== etcd3gw compat: etcd3gw tests"
if ETCD_HOST=127.0.0.1 ETCD_PORT="$port" timeout -k 5 "$test_deadline_s" \
  "$venv/bin/python" "$here/test_etcd3gw.py"; then
  echo "ok: etcd3gw compat ($target), $((SECONDS - started)) s"
  echo "PASS: etcd3gw compat ($target)"
else
  rc=$?
  ((rc != 124)) || fail "etcd3gw tests did not finish within ${test_deadline_s} s"
  fail "etcd3gw tests failed"
fi
