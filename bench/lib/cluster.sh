# bench/lib/cluster.sh: start, stop and restart the members of one 3-member cluster
# (beacon or etcd) with etcd's flags, on free loopback ports and data dirs under $WORK.

# Flags added to every member's command line (bench/cluster sets --snapshot-count here),
# the same for beacon and etcd.
CLUSTER_EXTRA_ARGS=()

# start_cluster KIND: starts 3 fresh members; sets CLUSTER_KIND, CLUSTER_URLS (comma-
# separated client URLs), CLUSTER_PIDS (comma-separated), and the per-member arrays
# MEMBER_URL, MEMBER_PEER, MEMBER_DIR, MEMBER_PID; waits until every member is ready.
start_cluster() {
    CLUSTER_KIND=$1
    local ports i initial=()
    read -r -a ports < <("$BENCH" free-ports 6)
    MEMBER_URL=() MEMBER_PEER=() MEMBER_DIR=() MEMBER_PID=()
    for i in 0 1 2; do
        MEMBER_URL[i]=http://127.0.0.1:${ports[2 * i]}
        MEMBER_PEER[i]=http://127.0.0.1:${ports[2 * i + 1]}
        MEMBER_DIR[i]=$(mktemp -d "$WORK/$CLUSTER_KIND-m$i.XXXXXX")
        initial+=("m$i=${MEMBER_PEER[i]}")
    done
    CLUSTER_INITIAL=$(IFS=,; echo "${initial[*]}")
    for i in 0 1 2; do launch_member "$i"; done
    for i in 0 1 2; do wait_member "$i"; done
    cluster_lists
}

# cluster_lists: CLUSTER_URLS and CLUSTER_PIDS from the member arrays.
cluster_lists() {
    CLUSTER_URLS=$(IFS=,; echo "${MEMBER_URL[*]}")
    CLUSTER_PIDS=$(IFS=,; echo "${MEMBER_PID[*]}")
}

# launch_member I: (re)starts member I on its ports and data dir.
launch_member() {
    local i=$1 bin args=()
    case $CLUSTER_KIND in
        beacon) bin=$BEACON ;;
        etcd) bin=$ETCD; args+=(--enable-v2=true) ;;
    esac
    args+=(--name "m$i" --data-dir "${MEMBER_DIR[i]}/data"
        --listen-client-urls "${MEMBER_URL[i]}" --advertise-client-urls "${MEMBER_URL[i]}"
        --listen-peer-urls "${MEMBER_PEER[i]}" --initial-advertise-peer-urls "${MEMBER_PEER[i]}"
        --initial-cluster "$CLUSTER_INITIAL" --initial-cluster-state new
        "${CLUSTER_EXTRA_ARGS[@]}")
    "$bin" "${args[@]}" >>"${MEMBER_DIR[i]}/server.log" 2>&1 &
    MEMBER_PID[i]=$!
    STARTED_PIDS+=("${MEMBER_PID[i]}")
}

# wait_member I: waits until member I answers; prints its log tail and fails if not.
wait_member() {
    local i=$1
    if ! "$BENCH" wait-ready --url "${MEMBER_URL[i]}" --timeout-seconds 60 >/dev/null; then
        tail -n 30 "${MEMBER_DIR[i]}/server.log" >&2
        return 1
    fi
}

# restart_member I: starts member I again on its data dir (after a kill) and waits.
restart_member() {
    wait "${MEMBER_PID[$1]}" 2>/dev/null || true
    launch_member "$1"
    wait_member "$1"
    cluster_lists
}

# remove_cluster: SIGTERM to every member, then their data dirs are deleted.
remove_cluster() {
    local i pid
    for i in 0 1 2; do kill -TERM "${MEMBER_PID[i]}" 2>/dev/null || true; done
    for i in 0 1 2; do
        pid=${MEMBER_PID[i]}
        for ((t = 0; t < 300; t++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -rf "${MEMBER_DIR[i]}"
    done
}
