# bench/lib/workloads.sh: which workloads run, with what counts, in which order; each
# one against a fresh beacon and a fresh etcd, one after the other.

# Keys for the memory and restart workloads in a full run. The issue asks for 1,000,000;
# see set_counts for why a full run may use fewer.
MEMORY_KEYS_FULL=${MEMORY_KEYS_FULL:-1000000}

# etcd's default --snapshot-count, and Beacon's; PUT loads at another count get "-sN" in
# their id (put-c64-s10000), the report's tables read it back from there.
DEFAULT_SNAPSHOT_COUNT=100000

# set_counts: the arguments of every workload, tiny for --quick.
set_counts() {
    if ((QUICK)); then
        LOAD_ARGS=(--seconds 0.5 --warmup-seconds 0.1 --keys 300)
        # 256 connections checks the file descriptors; a snapshot every 1,000 entries
        # puts several inside half a second, so that counting them is exercised.
        PUT_CONCURRENCIES=(16 256)
        SNAPSHOT_COUNTS=("$DEFAULT_SNAPSHOT_COUNT" 1000)
        CHURN_ARGS=(--instances 50 --watchers 5 --ttl-seconds 1 --refresh-seconds 0.3
            --seconds 2.5 --stopping 2 --stop-after-seconds 0.5)
        FANOUT_ARGS=(--watchers 200 --rounds 2)
        MEMORY_ARGS=(--keys 10000 --time-limit-seconds 60)
        # A smoke test exercises every code path once; other concurrencies add none.
        CONCURRENCIES=(16)
    else
        CONCURRENCIES=(1 16 64)
        # Issue 15: PUT also at 256 connections, and each PUT load at the default
        # --snapshot-count and at 10,000, where a snapshot and a log purge fall every
        # second or so on 2 cores (a few every 10 s even at one connection).
        PUT_CONCURRENCIES=(1 16 64 256)
        SNAPSHOT_COUNTS=("$DEFAULT_SNAPSHOT_COUNT" 10000)
        LOAD_ARGS=(--seconds 10 --warmup-seconds 1 --keys 10000)
        CHURN_ARGS=(--instances 1000 --watchers 100 --ttl-seconds 5 --refresh-seconds 1.5
            --seconds 20 --stopping 10 --stop-after-seconds 6)
        FANOUT_ARGS=(--watchers 10000 --rounds 5)
        # Bounded so that a slow server cannot stretch the run beyond ~25 minutes; the
        # table says how many keys each server actually got.
        MEMORY_ARGS=(--keys "$MEMORY_KEYS_FULL" --time-limit-seconds 300)
    fi
}

# write_notes: how the workloads were run, for RESULTS.md.
write_notes() {
    cat >"$WORK/notes.md" <<NOTES
How to read this: every figure is one run on this machine; "Beacon/etcd" is the ratio of
Beacon's figure to etcd's, so above 1 is better for throughput and below 1 is better for
latency, memory and time. Each workload ran against a fresh server of each kind, one
after the other (never both at once), alternating which went first. The load generator
(\`beacon-bench\`, one keep-alive HTTP/1.1 connection per worker, closed loop) runs on
the same $(nproc) CPUs as the server, so CPU-bound figures are shared with it; its own
CPU time is in the tables. The load average before each run includes this suite's own
previous workload (client and server keep the CPUs busy), so values near $(nproc) are
expected; a build by someone else during a measurement is flagged with ⚠ instead.

- PUT/GET/quorum GET: \`${LOAD_ARGS[*]}\` (random keys, 64-byte values; GET runs
  preload every key first). Only requests sent after the warm-up and answered before
  the end count.
- PUT runs at ${PUT_CONCURRENCIES[*]} connections, each once with \`--snapshot-count\`
  ${SNAPSHOT_COUNTS[*]} (the same flag to both servers; the default, ${DEFAULT_SNAPSHOT_COUNT}, is
  left out of the titles). Beside each PUT figure, the snapshots each server wrote and
  the log purges it did during the measured window, counted in its log: Beacon's
  "wrote snapshot" and "purged raft log"; etcd's "saved snapshot" and "compacted raft
  log", the latter being raft's in-memory log (etcd deletes WAL files apart, every
  30 s). A fresh server at the default count writes its first snapshot after 100,000
  writes, so the lighter loads cross none; the 10,000 runs cross several.
- Floor: every PUT and GET load also ran against \`beacon-bench null-server\`, which
  answers each request at once and stores nothing; its figures, under each of those
  tables, are what the load generator, the kernel and loopback allow on this machine.
  The load generator writes each request with one syscall and parses answers with
  httparse (no HTTP library), so that it takes as little CPU from the servers as it can.
- Why the targets that are not met are not, with profiles: \`bench/ANALYSIS.md\`.
- Churn: \`${CHURN_ARGS[*]}\`; each instance has its own connection and refreshes with
  \`refresh=true&prevExist=true&ttl=\`; watchers re-watch from modifiedIndex+1 and GET to
  resync when told the index was cleared. The expire delay is the first watcher's
  arrival minus the stopped instance's last refresh send, minus the TTL.
- Fan-out: \`${FANOUT_ARGS[*]}\`; the first watch of each connection is a plain
  \`?wait=true&recursive=true\`, later rounds continue from the event's index + 1.
  Watcher memory is RSS with all first-round watchers armed minus RSS before.
- Memory: \`${MEMORY_ARGS[*]}\` (keys /mem/dNNNN/kNNNN, 1,000 per directory, 64-byte
  values, 128 connections); RSS 3 s after the last PUT minus RSS before the first.
  etcd's figure depends on when Go's collector last ran (it varied 1.6–3.1 GB for the
  same load between runs); "RSS right after the restart" is the rebuilt state alone.
- Restart: the memory workload's server gets SIGTERM, is waited for, and is started
  again on the same data dir; the time runs from the launch to the first successful GET
  of the first key written.
NOTES
}

PAIR_INDEX=0
# 1 while a PUT load runs: measure then counts the server's snapshots and log purges.
COUNT_LOGS=0

# settle: in a full run, lets other people's builds finish before the next server starts.
settle() {
    if ((QUICK == 0)); then wait_no_builds 300; fi
}

# next_order: sets ORDER, alternating which server goes first.
next_order() {
    if ((PAIR_INDEX % 2 == 0)); then ORDER=(beacon etcd); else ORDER=(etcd beacon); fi
    PAIR_INDEX=$((PAIR_INDEX + 1))
}

# record ID KIND LOAD JSON [BUSY]: appends one result line; BUSY (true/false) says
# whether a build ran on the machine during the measurement.
record() {
    printf '{"workload":"%s","server":"%s","load1":%s,"busy":%s,"result":%s}\n' \
        "$1" "$2" "$3" "${5:-false}" "$4" >>"$RESULTS_JSONL"
    echo "   $2: ${4:0:240}"
}

# measure ID SUBCOMMAND ARGS...: runs beacon-bench against the current server; a failure
# is recorded (with the error in the notes) rather than ending the whole run.
measure() {
    local id=$1 load out busy ok=1
    shift
    load=$(load1)
    if ((COUNT_LOGS)); then
        local count_args
        mapfile -t count_args < <(log_count_args "$SERVER_KIND" "$SERVER_DIR/server.log")
        set -- "$@" "${count_args[@]}"
    fi
    start_build_watch "$WORK/busy"
    out=$("$BENCH" "$@" --url "$SERVER_URL" --pid "$SERVER_PID" 2>"$WORK/bench.err") || ok=0
    stop_build_watch
    busy=false
    if [[ -e $WORK/busy ]]; then busy=true; fi
    if ((ok)); then
        record "$id" "$SERVER_KIND" "$load" "$out" "$busy"
    else
        record "$id" "$SERVER_KIND" "$load" '{"failed":true}' "$busy"
        {
            echo "- **$id on $SERVER_KIND failed**: $(tail -n 3 "$WORK/bench.err" | tr '\n' ' ')"
        } >>"$WORK/failures.md"
        tail -n 5 "$WORK/bench.err" >&2
        tail -n 10 "$SERVER_DIR/server.log" >&2
    fi
}

# run_pair ID SUBCOMMAND ARGS...: the workload on a fresh server of each kind.
run_pair() {
    local id=$1 kind
    next_order
    for kind in "${ORDER[@]}"; do
        echo "== $id on $kind"
        settle
        start_server "$kind"
        wait_ready
        measure "$@"
        remove_server
    done
}

# run_put_pair CONCURRENCY SNAPSHOT_COUNT: a PUT load on a fresh server of each kind, both
# started with that --snapshot-count.
run_put_pair() {
    local c=$1 snapshots=$2 id=put-c$1
    if ((snapshots != DEFAULT_SNAPSHOT_COUNT)); then id+=-s$snapshots; fi
    SERVER_EXTRA_ARGS=(--snapshot-count "$snapshots")
    COUNT_LOGS=1
    run_pair "$id" load --op put --concurrency "$c" "${LOAD_ARGS[@]}"
    COUNT_LOGS=0
    SERVER_EXTRA_ARGS=()
}

# run_floor ID SUBCOMMAND ARGS...: the same workload against the null server, the floor
# of this machine under the figures of both servers.
run_floor() {
    echo "== $1 on the null server (floor)"
    settle
    start_server floor
    wait_ready
    measure "$@"
    remove_server
}

# run_memory_restart: loads the keys, measures memory, then restarts on the same dir.
run_memory_restart() {
    local kind t0 out kib rss busy
    next_order
    for kind in "${ORDER[@]}"; do
        echo "== memory and restart on $kind"
        settle
        start_server "$kind"
        wait_ready
        measure memory memory "${MEMORY_ARGS[@]}"
        stop_server
        kib=$(du -sk "$SERVER_DIR/data" | cut -f1)
        t0=$(date +%s%N)
        launch_server
        if out=$("$BENCH" wait-key --url "$SERVER_URL" --path /v2/keys/mem/d0000/k0000 \
            --since-epoch-ns "$t0" --timeout-seconds 300 2>"$WORK/bench.err"); then
            rss=$(awk '/VmRSS/ { print $2 }' "/proc/$SERVER_PID/status")
            busy=false
            if builds_running; then busy=true; fi
            record restart "$kind" "$(load1)" \
                "${out%\}},\"data_dir_kib\":$kib,\"rss_after_restart_kib\":$rss}" "$busy"
        else
            record restart "$kind" "$(load1)" '{"failed":true}'
            echo "- **restart on $kind failed**: $(tail -n 3 "$WORK/bench.err" | tr '\n' ' ')" \
                >>"$WORK/failures.md"
        fi
        remove_server
    done
}

# run_workloads: everything, in a fixed order; results go to $RESULTS_JSONL.
run_workloads() {
    set_counts
    : >"$WORK/failures.md"
    local c snapshots
    for c in "${PUT_CONCURRENCIES[@]}"; do
        for snapshots in "${SNAPSHOT_COUNTS[@]}"; do run_put_pair "$c" "$snapshots"; done
        run_floor "put-c$c" load --op put --concurrency "$c" "${LOAD_ARGS[@]}"
    done
    for c in "${CONCURRENCIES[@]}"; do
        run_pair "get-c$c" load --op get --concurrency "$c" "${LOAD_ARGS[@]}"
        run_floor "get-c$c" load --op get --concurrency "$c" "${LOAD_ARGS[@]}"
    done
    run_pair qget-c16 load --op qget --concurrency 16 "${LOAD_ARGS[@]}"
    run_pair churn churn "${CHURN_ARGS[@]}"
    run_pair fanout fanout "${FANOUT_ARGS[@]}"
    run_memory_restart
    write_notes
    if [[ -s $WORK/failures.md ]]; then
        { echo; echo "Failures:"; echo; cat "$WORK/failures.md"; } >>"$WORK/notes.md"
    fi
}
