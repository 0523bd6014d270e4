#!/usr/bin/env bash
# The client framework in one minute: a registry, three instances of service "demo"
# (one normal, one 100 ms slow, one failing every other request), a Rust caller using
# the library, and the same service through `beaconctl proxy` with curl.
#
#   crates/beacon-demo/demo.sh
#
# Everything listens on free loopback ports and is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
echo "== building (release)"
(cd "$ROOT" && cargo build --release --quiet -p beacon-server -p beacon-ctl -p beacon-demo --bins --examples)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/beacon-demo.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for FILE PATTERN: until a process has printed PATTERN (10 s at most)
    for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2; exit 1
}

CLIENT=$(free_port) PEER=$(free_port)
REGISTRY=http://127.0.0.1:$CLIENT
echo "== registry: beacon on $REGISTRY"
"$TARGET/beacon" --data-dir "$WORK/data" --listen-client-urls "$REGISTRY" \
    --advertise-client-urls "$REGISTRY" --listen-peer-urls "http://127.0.0.1:$PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
    --initial-cluster "default=http://127.0.0.1:$PEER" >"$WORK/beacon.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "$REGISTRY/health" >/dev/null && break; sleep 0.1; done

start_instance() { # start_instance ID FLAGS...
    local id=$1; shift
    "$TARGET/beacon-instance" --endpoints "$REGISTRY" --service demo --id "$id" "$@" \
        >"$WORK/$id.out" 2>"$WORK/$id.log" &
    PIDS+=($!)
    wait_for "$WORK/$id.out" registered
    echo "   $(tail -1 "$WORK/$id.out")  $*"
}
echo "== three instances of service 'demo'"
start_instance fast
start_instance slow --delay-ms 100
start_instance flaky --fail-every 2

echo "== a Rust caller (examples/caller.rs): 40 requests, 100 ms apart"
"$TARGET/examples/caller" "$REGISTRY" demo 40

echo "== beaconctl proxy demo --listen 127.0.0.1:<port>, then curl through it"
PROXY=127.0.0.1:$(free_port)
"$TARGET/beaconctl" --endpoints "$REGISTRY" proxy demo --listen "$PROXY" \
    >"$WORK/proxy.out" 2>"$WORK/proxy.log" &
PIDS+=($!)
wait_for "$WORK/proxy.out" proxying
for i in $(seq 10); do printf 'curl %2d: %s\n' "$i" "$(curl -s "http://$PROXY/")"; done
echo "== proxy log (instance changes, ejections)"
cat "$WORK/proxy.log"
