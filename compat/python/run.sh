#!/usr/bin/env bash
# Runs python-etcd (from PyPI, in a cached venv) against a fresh server on free ports.
#
#   BEACON_BIN=target/debug/beacon compat/python/run.sh   # against beacon (the default)
#   TARGET=etcd compat/python/run.sh                      # against real etcd (ETCD_BIN)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../server.sh
source "$here/../server.sh"
target="${TARGET:-beacon}"
venv="${BEACON_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon-compat/python-venv}"

work="$(mktemp -d "${TMPDIR:-/tmp}/beacon-compat-python.XXXXXX")"
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
  echo "python compat: $*" >&2
  if [[ -f "$work/server.log" ]]; then
    echo "--- server.log (last 30 lines)" >&2
    tail -n 30 "$work/server.log" >&2
  fi
  echo "FAIL: python compat ($target)"
  exit 1
}

echo "== python compat: venv $venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
  >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; fail "pip install failed"; }

read -r port peer_port < <("$venv/bin/python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
client="http://127.0.0.1:$port"
peer="http://127.0.0.1:$peer_port"
server_command "$target" "$client" "$peer" "$work/data"

echo "== python compat: starting $target ($bin) on $client"
"$bin" "${flags[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
healthy() {
  "$venv/bin/python" -c '
import sys, urllib.request
try:
    body = urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).read()
except Exception:
    sys.exit(1)
sys.exit(0 if b"\"health\":\"true\"" in body else 1)' "$client"
}
deadline=$((SECONDS + 20))
until healthy; do
  kill -0 "$server_pid" 2>/dev/null || fail "$target exited during startup"
  ((SECONDS < deadline)) || fail "$target not healthy within 20 s"
  sleep 0.2
done

echo "== python compat: python-etcd tests"
if ! ETCD_HOST=127.0.0.1 ETCD_PORT="$port" "$venv/bin/python" "$here/test_python_etcd.py"; then
  fail "python-etcd tests failed"
fi

echo "== python compat: python-etcd over TLS (protocol, cert, ca_cert)"
suite=python
start_tls_server
if PKI="$pki" ETCD_HOST=127.0.0.1 ETCD_PORT="$port" timeout -k 5 60 \
  "$venv/bin/python" "$here/test_python_etcd_tls.py"; then
  echo "PASS: python compat ($target)"
else
  fail "python-etcd over TLS failed"
fi
