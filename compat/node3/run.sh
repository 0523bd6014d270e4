#!/usr/bin/env bash
# Runs the etcd3 npm client (v3 gRPC API; node_modules cached outside the repo) against a
# fresh server on free ports.
#
#   BEACON_BIN=target/debug/beacon compat/node3/run.sh     # against beacon (the default)
#   TARGET=etcd compat/node3/run.sh                        # against real etcd (ETCD_BIN)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../server.sh
source "$here/../server.sh"
deps="${BEACON_NODE3_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon-compat/node3}"
# The whole test script; its own waits are bounded well below this.
test_deadline_s=180

compat_begin node3

started=$SECONDS
# npm ci into the cache directory, again only when package*.json changed.
echo "== node3 compat: node_modules in $deps"
mkdir -p "$deps"
if ! cmp -s "$here/package-lock.json" "$deps/package-lock.json" ||
  ! cmp -s "$here/package.json" "$deps/package.json" || [[ ! -d "$deps/node_modules/etcd3" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$deps/"
  (cd "$deps" && npm ci --no-audit --no-fund) >"$work/npm.log" 2>&1 ||
    { cat "$work/npm.log" >&2; rm -f "$deps/package-lock.json"; fail "npm ci failed"; }
fi
export NODE_PATH="$deps/node_modules"

free_ports
start_server
# Ready once the v3 API answers: a gRPC Maintenance.Status through the library itself.
ready() {
  node -e '
const { Etcd3 } = require("etcd3");
const c = new Etcd3({ hosts: process.argv[1], defaultCallOptions: () => ({ deadline: Date.now() + 2000 }) });
c.maintenance.status().then(() => process.exit(0), () => process.exit(1));' "$client" 2>/dev/null
}
wait_ready ready

echo "== node3 compat: etcd3 (npm) tests"
if ETCD_HOST=127.0.0.1 ETCD_PORT="$port" timeout -k 5 "$test_deadline_s" node "$here/test_etcd3.js"; then
  echo "ok: node3 compat ($target), $((SECONDS - started)) s"
else
  rc=$?
  ((rc != 124)) || fail "etcd3 tests did not finish within ${test_deadline_s} s"
  fail "etcd3 tests failed"
fi

echo "== node3 compat: etcd3 (npm) over TLS (credentials)"
start_tls_server
if PKI="$pki" ETCD_HOST=127.0.0.1 ETCD_PORT="$port" timeout -k 5 60 node "$here/test_etcd3_tls.js"; then
  echo "PASS: node3 compat ($target)"
else
  fail "etcd3 (npm) over TLS failed"
fi
