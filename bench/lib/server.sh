# bench/lib/server.sh: start, stop and restart one single-member server (beacon or
# etcd) with the same etcd flags, on free loopback ports and a data dir under $WORK.
# Every pid started is remembered so that the EXIT trap can kill what is left.

STARTED_PIDS=()
# Flags added to the next servers' command lines (bench/run's PUT loads set
# --snapshot-count here), the same for beacon and etcd.
SERVER_EXTRA_ARGS=()

# start_server KIND: starts a fresh server (beacon, etcd, or floor: the null server); sets SERVER_KIND, SERVER_DIR, SERVER_URL,
# SERVER_PID, SERVER_CLIENT_PORT, SERVER_PEER_PORT, and waits until it is ready.
start_server() {
    SERVER_KIND=$1
    SERVER_DIR=$(mktemp -d "$WORK/$SERVER_KIND.XXXXXX")
    read -r SERVER_CLIENT_PORT SERVER_PEER_PORT < <("$BENCH" free-ports 2)
    SERVER_URL=http://127.0.0.1:$SERVER_CLIENT_PORT
    launch_server
}

# launch_server: (re)starts the server described by the SERVER_* variables.
launch_server() {
    local peer=http://127.0.0.1:$SERVER_PEER_PORT bin args=()
    if [[ $SERVER_KIND == floor ]]; then
        # Not a store: answers every request at once (see crates/beacon-bench/src/null_server.rs).
        "$BENCH" null-server --listen "127.0.0.1:$SERVER_CLIENT_PORT" >>"$SERVER_DIR/server.log" 2>&1 &
        SERVER_PID=$!
        STARTED_PIDS+=("$SERVER_PID")
        return
    fi
    case $SERVER_KIND in
        beacon) bin=$BEACON ;;
        etcd) bin=$ETCD; args+=(--enable-v2=true) ;;
    esac
    args+=(--name default --data-dir "$SERVER_DIR/data"
        --listen-client-urls "$SERVER_URL" --advertise-client-urls "$SERVER_URL"
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer"
        --initial-cluster "default=$peer" "${SERVER_EXTRA_ARGS[@]}")
    "$bin" "${args[@]}" >>"$SERVER_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
}

# wait_ready: waits until the server answers; prints the log tail and fails if not.
wait_ready() {
    if ! "$BENCH" wait-ready --url "$SERVER_URL" --timeout-seconds 60 >/dev/null; then
        tail -n 30 "$SERVER_DIR/server.log" >&2
        return 1
    fi
}

# stop_server: SIGTERM, then waits up to 30 s for the process to exit (SIGKILL after).
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "  $SERVER_KIND ($SERVER_PID) ignored SIGTERM for 30 s; killing it" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
}

# remove_server: stops it and deletes its data dir (the disk is shared, 1M-key dirs are big).
remove_server() {
    stop_server
    rm -rf "$SERVER_DIR"
}

# kill_all_servers: for the EXIT trap; SIGKILLs every pid this run started, by pid, and
# their children first (a SIGKILLed nginx master leaves its workers running).
kill_all_servers() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        # Stopped first, so that an nginx master cannot fork a new worker for each one
        # killed (the new one would outlive it).
        kill -STOP "$pid" 2>/dev/null || true
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    done
}
