# bench/lib/quiet.sh: wait until the shared machine is quiet enough to measure.
# Other people build and test here; a benchmark run while rustc runs measures rustc.

# wait_quiet MAX_SECONDS: polls every 10 s until no cargo/rustc runs and the 1-minute
# load average is below 0.8, or gives up after MAX_SECONDS. Prints what it found.
wait_quiet() {
    local max=$1 waited=0 load
    while :; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if ! pgrep -x cargo >/dev/null && ! pgrep rustc >/dev/null \
            && awk -v l="$load" 'BEGIN { exit !(l < 0.8) }'; then
            echo "quiet after ${waited}s (load $load)"
            return 0
        fi
        if ((waited >= max)); then
            echo "NOT quiet after ${waited}s (load $load); running anyway"
            return 0
        fi
        sleep 10
        waited=$((waited + 10))
    done
}

# load1: the current 1-minute load average.
load1() { cut -d' ' -f1 /proc/loadavg; }

# builds_running: true while some cargo or rustc runs (someone else's build or tests).
builds_running() {
    pgrep -x cargo >/dev/null || pgrep rustc >/dev/null
}

# wait_no_builds MAX_SECONDS: waits (polling every 5 s) until no build runs, at most
# MAX_SECONDS; used before each server's run, since the load average still carries the
# previous workload and cannot tell "busy with us" from "busy with a compiler".
wait_no_builds() {
    local max=$1 waited=0
    while builds_running && ((waited < max)); do
        sleep 5
        waited=$((waited + 5))
    done
    if ((waited > 0)); then echo "   (waited ${waited}s for other builds to finish)"; fi
}

# start_build_watch FLAG_FILE: in the background, touches FLAG_FILE whenever a build
# runs (checked every second); sets BUILD_WATCH_PID. stop_build_watch ends it.
start_build_watch() {
    local flag=$1
    rm -f "$flag"
    (while :; do
        if builds_running; then touch "$flag"; fi
        sleep 1
    done) &
    BUILD_WATCH_PID=$!
}

stop_build_watch() {
    kill "$BUILD_WATCH_PID" 2>/dev/null || true
    wait "$BUILD_WATCH_PID" 2>/dev/null || true
}
