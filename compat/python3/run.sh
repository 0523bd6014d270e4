#!/usr/bin/env bash
# Runs etcd3 (the PyPI v3 gRPC client, in a cached venv) against a fresh server on free ports.
#
#   BEACON_BIN=target/debug/beacon compat/python3/run.sh   # against beacon (the default)
#   TARGET=etcd compat/python3/run.sh                      # against real etcd (ETCD_BIN)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../server.sh
source "$here/../server.sh"
venv="${BEACON_PY3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon-compat/python3-venv}"
# The whole test script; its own waits are bounded well below this.
test_deadline_s=180

compat_begin python3

started=$SECONDS
echo "== python3 compat: venv $venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
# --only-binary: grpcio must come as a wheel, never be compiled here.
"$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary grpcio,protobuf \
  -r "$here/requirements.txt" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; fail "pip install failed"; }

free_ports
start_server
# Ready once the v3 API answers: a gRPC Maintenance.Status through the library itself.
ready() {
  "$venv/bin/python" -c '
import sys, etcd3
try:
    etcd3.client(host="127.0.0.1", port=int(sys.argv[1]), timeout=2).status()
except Exception:
    sys.exit(1)' "$port" 2>/dev/null
}
wait_ready ready

echo "== python3 compat: etcd3 tests"
if ETCD_HOST=127.0.0.1 ETCD_PORT="$port" timeout -k 5 "$test_deadline_s" \
  "$venv/bin/python" "$here/test_etcd3.py"; then
  echo "ok: python3 compat ($target), $((SECONDS - started)) s"
else
  rc=$?
  ((rc != 124)) || fail "etcd3 tests did not finish within ${test_deadline_s} s"
  fail "etcd3 tests failed"
fi

echo "== python3 compat: etcd3 over TLS (ca_cert, cert_key, cert_cert)"
start_tls_server
if PKI="$pki" ETCD_HOST=127.0.0.1 ETCD_PORT="$port" timeout -k 5 60 \
  "$venv/bin/python" "$here/test_etcd3_tls.py"; then
  echo "PASS: python3 compat ($target)"
else
  fail "etcd3 over TLS failed"
fi
