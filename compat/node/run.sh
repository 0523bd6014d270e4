#!/usr/bin/env bash
# Runs the seed post's register.js (twice) and discover.js, unmodified, against a server on
# node-etcd's default address 127.0.0.1:2379, then SIGKILLs one register and waits for the
# discover output to drop it through a TTL `expire` event.
#
#   BEACON_BIN=target/debug/beacon compat/node/run.sh     # against beacon (the default)
#   TARGET=etcd compat/node/run.sh                        # against real etcd (ETCD_BIN)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../server.sh
source "$here/../server.sh"
target="${TARGET:-beacon}"
port=2379
dir_key=/v2/keys/services/service_a/datacenter_x
appear_deadline_s=30
# register.js sets ttl=60; the key expires up to 60 s after the last refresh, plus slack.
expire_deadline_s=90

work="$(mktemp -d "${TMPDIR:-/tmp}/beacon-compat-node.XXXXXX")"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
  echo "node compat: $*" >&2
  for log in "$work"/*.log; do
    [[ -f "$log" ]] || continue
    echo "--- $(basename "$log") (last 30 lines)" >&2
    tail -n 30 "$log" >&2
  done
  echo "FAIL: node compat ($target)"
  exit 1
}

http_get() { node "$here/http_get.js" "$port" "$1"; }

echo "== node compat: npm ci"
(cd "$here" && npm ci --no-audit --no-fund) >"$work/npm.log" 2>&1 || fail "npm ci failed"

if http_get /health >/dev/null 2>&1; then
  fail "127.0.0.1:$port is already in use; node-etcd's default address must be free"
fi

peer_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
client="http://127.0.0.1:$port"
peer="http://127.0.0.1:$peer_port"
server_command "$target" "$client" "$peer" "$work/data"

echo "== node compat: starting $target ($bin) on $client"
"$bin" "${flags[@]}" >"$work/server.log" 2>&1 &
pids+=($!)
server_pid=$!
deadline=$((SECONDS + 20))
until [[ "$(http_get /health 2>/dev/null || true)" == '200 {"health":"true"}'* ]]; do
  kill -0 "$server_pid" 2>/dev/null || fail "$target exited during startup"
  ((SECONDS < deadline)) || fail "$target not healthy within 20 s"
  sleep 0.2
done

count_registered() {
  http_get "$dir_key?recursive=true" 2>/dev/null | grep -o '"key":"/services/service_a/datacenter_x/[^"]*"' | wc -l
}

echo "== node compat: starting two register.js"
(cd "$here" && exec node register.js) >"$work/register1.log" 2>&1 &
pids+=($!)
register1=$!
(cd "$here" && exec node register.js) >"$work/register2.log" 2>&1 &
pids+=($!)
deadline=$((SECONDS + appear_deadline_s))
until (($(count_registered) == 2)); do
  ((SECONDS < deadline)) || fail "the two instances did not register within ${appear_deadline_s} s"
  sleep 0.2
done
key1="$(grep -o '/services/[^ ]*' "$work/register1.log" | head -n 1)"
key2="$(grep -o '/services/[^ ]*' "$work/register2.log" | head -n 1)"
echo "registered: $key1 $key2"

# discover.js's initial recursive get needs the directory to exist (it reads
# data.node.nodes without checking), so it starts once both instances are registered.
echo "== node compat: starting discover.js"
(cd "$here" && exec node discover.js) >"$work/discover.log" 2>&1 &
pids+=($!)
discover=$!

discovered() { node "$here/watch_state.js" "$work/discover.log" | sort; }

deadline=$((SECONDS + appear_deadline_s))
until [[ "$(discovered)" == "$(printf '%s\n' "$key1" "$key2" | sort)" ]]; do
  kill -0 "$discover" 2>/dev/null || fail "discover.js exited"
  ((SECONDS < deadline)) || fail "discover.js did not show both instances within ${appear_deadline_s} s"
  sleep 0.5
done
echo "discover.js sees both instances"

echo "== node compat: SIGKILL register #1, waiting up to ${expire_deadline_s} s for its expiry"
{ kill -9 "$register1" && wait "$register1"; } 2>/dev/null || true
started=$SECONDS
deadline=$((SECONDS + expire_deadline_s))
until [[ "$(discovered)" == "$key2" ]]; do
  kill -0 "$discover" 2>/dev/null || fail "discover.js exited"
  ((SECONDS < deadline)) || fail "discover.js still shows: $(discovered | tr '\n' ' ')"
  sleep 1
done
grep -q . <(http_get "$dir_key/${key1##*/}" | grep '^404') || fail "the expired key is still readable"
echo "discover.js dropped $key1 after $((SECONDS - started)) s"
echo "PASS: node compat ($target)"
