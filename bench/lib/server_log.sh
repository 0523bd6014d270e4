# bench/lib/server_log.sh: what the servers' logs say during a measurement.

# log_count_args KIND LOG...: prints, one per line, the `beacon-bench load` arguments that
# count, in the server logs LOG..., the snapshots written and the log purges done during a
# measurement (issue 15: writes used to stall behind both). Beacon logs "wrote snapshot"
# (beacon-raft's state machine) and "purged raft log" (its log store) at info level; etcd
# logs "saved snapshot at index N" and "compacted raft log at N", the latter being raft's
# in-memory log (etcd deletes its WAL files separately, every 30 s).
log_count_args() {
    local kind=$1 log
    shift
    for log in "$@"; do printf '%s\n' --server-log "$log"; done
    case $kind in
        beacon) printf '%s\n' --log-count "snapshots=wrote snapshot" \
            --log-count "purges=purged raft log" ;;
        etcd) printf '%s\n' --log-count "snapshots=saved snapshot at index" \
            --log-count "purges=compacted raft log at" ;;
    esac
}
