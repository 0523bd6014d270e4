# bench/lib/proxies.sh: demo instances behind a registry, and the proxies in front of
# them (beaconctl proxy, nginx, proxy-floor), for bench/chaos and bench/proxy-scaling.
# The caller sets RUN (a directory per run), SERVER_URL (the registry), INST_PORT[i],
# INST_EXTRA[i] and TTL (the instances), PROXY_PORT, and the binaries (INSTANCE,
# BEACONCTL, FLOOR, BENCH). PROXY_WORKERS (default auto: one per CPU) is each proxy's
# worker count; PROXY_CPUS, INSTANCE_CPUS and LOAD_CPUS (default: none) are `taskset -c`
# lists to pin the proxy, the instances and the load generator to.

# find_nginx: sets NGINX (installing Debian's package as root when it is missing),
# NGINX_VERSION, and the upstream settings the nginx configs use.
find_nginx() {
    if ! NGINX=$(command -v "${NGINX:-nginx}"); then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "== installing nginx (Debian package)"
            export DEBIAN_FRONTEND=noninteractive
            apt-get install -y nginx >/dev/null || { apt-get update >/dev/null && apt-get install -y nginx >/dev/null; }
            # The package may start a system nginx on port 80; this bench runs its own.
            if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx 2>/dev/null || true; fi
            if [[ -x /etc/init.d/nginx ]]; then /etc/init.d/nginx stop >/dev/null 2>&1 || true; fi
            NGINX=$(command -v nginx)
        else
            echo "${0##*/}: nginx not found (apt-get install nginx)" >&2
            exit 1
        fi
    fi
    NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
    # Which answers nginx retries on the next server and counts against max_fails. http_500 is
    # left out: a 500 is the application's own answer (not the proxy's to hide, and retrying
    # it can repeat side effects), and `beaconctl proxy` does not retry it either, so both
    # proxies retry the same failures.
    NGINX_NEXT_UPSTREAM=${NGINX_NEXT_UPSTREAM:-error timeout http_502 http_503 http_504}
    NGINX_MAX_FAILS=${NGINX_MAX_FAILS:-3}
    NGINX_FAIL_TIMEOUT=${NGINX_FAIL_TIMEOUT:-10s}
    NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
}

# stamp: copies stdin to stdout, each line prefixed with the unix time in µs.
stamp() {
    local line
    while IFS= read -r line; do printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"; done
}

# launch_instance I: starts instance iI on its port; its stdout lines are time-stamped.
launch_instance() {
    local i=$1
    # shellcheck disable=SC2086 # INST_EXTRA holds separate flags
    local pin=()
    if [[ -n ${INSTANCE_CPUS:-} ]]; then pin=(taskset -c "$INSTANCE_CPUS"); fi
    "${pin[@]}" "$INSTANCE" --listen "127.0.0.1:${INST_PORT[i]}" --endpoints "$SERVER_URL" \
        --service chaos --datacenter dc1 --id "i$i" --ttl "$TTL" ${INST_EXTRA[i]} \
        > >(stamp >>"$RUN/i$i.out") 2>>"$RUN/i$i.log" &
    INST_PID[i]=$!
    STARTED_PIDS+=("${INST_PID[i]}")
}

# wait_registered I: waits (up to 10 s) until instance iI printed `registered`.
wait_registered() {
    local i=$1 n
    for ((n = 0; n < 1000; n++)); do
        if grep -q ' registered ' "$RUN/i$i.out" 2>/dev/null; then return 0; fi
        sleep 0.01
    done
    echo "${0##*/}: instance i$i did not register within 10 s" >&2
    tail -n 20 "$RUN/i$i.log" >&2
    return 1
}

# nginx_conf N: nginx's config for the first N instances (all pre-listed: a static
# upstream names every address it will ever use, so i4 is there from the start, down
# until it joins). Passive health checks, retries and keep-alive to the instances, with
# the same attempt limit (3) and timeout (2 s) as beaconctl proxy's defaults.
nginx_conf() {
    local n=$1 i
    mkdir -p "$RUN/nginx/logs" "$RUN/nginx/tmp"
    {
        echo "worker_processes ${PROXY_WORKERS:-auto};"
        echo "pid $RUN/nginx/nginx.pid;"
        echo "error_log $RUN/nginx/logs/error.log warn;"
        echo "events { worker_connections 4096; }"
        echo "http {"
        echo "  access_log off;"
        for t in client_body proxy fastcgi uwsgi scgi; do
            echo "  ${t}_temp_path $RUN/nginx/tmp/$t;"
        done
        echo "  upstream chaos {"
        for ((i = 0; i < n; i++)); do
            echo "    server 127.0.0.1:${INST_PORT[i]} max_fails=$NGINX_MAX_FAILS fail_timeout=$NGINX_FAIL_TIMEOUT;"
        done
        echo "    keepalive 64;"
        echo "  }"
        echo "  server {"
        echo "    listen 127.0.0.1:$PROXY_PORT;"
        echo "    location / {"
        echo "      proxy_pass http://chaos;"
        echo "      proxy_http_version 1.1;"
        echo "      proxy_set_header Connection \"\";"
        echo "      proxy_next_upstream $NGINX_NEXT_UPSTREAM;"
        echo "      proxy_next_upstream_tries 3;"
        echo "      proxy_connect_timeout 2s;"
        echo "      proxy_send_timeout 2s;"
        echo "      proxy_read_timeout 2s;"
        echo "    }"
        echo "  }"
        echo "}"
    } >"$RUN/nginx/nginx.conf"
}

# start_proxy KIND N: starts beaconctl proxy or nginx over the first N instances on
# PROXY_PORT and waits until a request through it succeeds. The port must be free first:
# the workers of a proxy stopped just before may still hold it, and a new proxy that
# cannot bind would exit while the old socket answers in its place.
start_proxy() {
    local kind=$1 n pin=()
    if [[ -n ${PROXY_CPUS:-} ]]; then pin=(taskset -c "$PROXY_CPUS"); fi
    for ((n = 0; n < 100; n++)); do
        if ! ss -Hltn "sport = :$PROXY_PORT" | grep -q .; then break; fi
        sleep 0.05
    done
    if [[ $kind == beaconctl-proxy ]]; then
        # shellcheck disable=SC2046 # no words, or two
        "${pin[@]}" "$BEACONCTL" --endpoints "$SERVER_URL" proxy chaos --listen "127.0.0.1:$PROXY_PORT" \
            $([[ ${PROXY_WORKERS:-auto} == auto ]] || echo --workers "$PROXY_WORKERS") \
            >"$RUN/proxy.out" 2>>"$RUN/proxy.log" &
    elif [[ $kind == proxy-floor ]]; then
        # hyper alone, over the first instance only (throughput runs have one).
        "${pin[@]}" "$FLOOR" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:${INST_PORT[0]}" \
            --workers "$([[ ${PROXY_WORKERS:-auto} == auto ]] && nproc || echo "$PROXY_WORKERS")" >>"$RUN/proxy.log" 2>&1 &
    else
        nginx_conf "$2"
        local as=()
        if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null 2>&1; then
            # Not as root: nginx's own directory belongs to nobody, the rest stays private.
            chmod o+x "$WORK" "$RUN"
            chown -R nobody: "$RUN/nginx"
            as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
        fi
        "${pin[@]}" "${as[@]}" "$NGINX" -c "$RUN/nginx/nginx.conf" -p "$RUN/nginx/" -e "$RUN/nginx/logs/error.log" -g 'daemon off;' \
            >>"$RUN/proxy.log" 2>&1 &
    fi
    PROXY_PID=$!
    STARTED_PIDS+=("$PROXY_PID")
    for ((n = 0; n < 100; n++)); do
        if ! kill -0 "$PROXY_PID" 2>/dev/null; then break; fi
        if "$BENCH" chaos --url "http://127.0.0.1:$PROXY_PORT" --rate 0 --connections 1 \
            --seconds 0.1 --timeout-ms 500 2>/dev/null | grep -q '"ok":[1-9]'; then
            # Answered: by this proxy only if it still runs.
            kill -0 "$PROXY_PID" 2>/dev/null && return 0
            break
        fi
        sleep 0.1
    done
    echo "${0##*/}: $kind on port $PROXY_PORT exited or never answered" >&2
    tail -n 20 "$RUN/proxy.log" >&2
    return 1
}

# stop_pids PID...: SIGKILL and reap (the run's processes; nothing is left to drain).
# Children first: a SIGKILLed nginx master cannot stop its workers, which would live on.
# And the parent stopped before that: a running nginx master forks a new worker for
# each one killed, which then outlives it, still listening on the proxy's port.
stop_pids() {
    local pid
    for pid in "$@"; do kill -STOP "$pid" 2>/dev/null || true; done
    for pid in "$@"; do pkill -KILL -P "$pid" 2>/dev/null || true; done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# cpu_ticks PID: CPU time (utime + stime, clock ticks) of PID and of its children that
# are still running (nginx's workers), from /proc.
cpu_ticks() {
    local pid total=0 stat f
    # shellcheck disable=SC2046 # one pid a word
    for pid in "$1" $(pgrep -P "$1" || true); do
        stat=$(<"/proc/$pid/stat") || continue
        # Fields 14 and 15 (utime, stime), counted after the ")" that ends the command name.
        read -r -a f <<<"${stat##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# closed_loop URL PID ARGS...: a closed-loop `beacon-bench chaos` through URL with ARGS;
# prints its result with the CPU the process PID (and its children) used per successful
# request added as "server_cpu_us_per_ok".
closed_loop() {
    local url=$1 pid=$2 out before after us pin=()
    shift 2
    if [[ -n ${LOAD_CPUS:-} ]]; then pin=(taskset -c "$LOAD_CPUS"); fi
    before=$(cpu_ticks "$pid")
    out=$("${pin[@]}" "$BENCH" chaos --url "$url" "$@")
    after=$(cpu_ticks "$pid")
    us=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(round((int(sys.argv[2]) - int(sys.argv[3])) * 1e6 / int(sys.argv[4]) / max(r["ok"], 1), 1))' \
        "$out" "$after" "$before" "$(getconf CLK_TCK)")
    echo "${out%\}},\"server_cpu_us_per_ok\":$us}"
}
