# Sourced by the compat drivers: picks the server under test and its flags.
#
#   server_command TARGET CLIENT_URL PEER_URL DATA_DIR
# sets `bin` and the array `flags` for a single-member beacon (BEACON_BIN) or real etcd
# (ETCD_BIN, default /usr/bin/etcd, with the v2 API on); calls the driver's `fail`.
server_command() {
  local target="$1" client="$2" peer="$3" data="$4"
  flags=(--name default --data-dir "$data"
    --listen-client-urls "$client" --advertise-client-urls "$client"
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer"
    --initial-cluster "default=$peer")
  case "$target" in
    beacon)
      bin="${BEACON_BIN:-}"
      [[ -n "$bin" && -x "$bin" ]] || fail "set BEACON_BIN to the beacon binary (got '${bin}')"
      ;;
    etcd)
      bin="${ETCD_BIN:-/usr/bin/etcd}"
      [[ -x "$bin" ]] || fail "etcd not found at $bin"
      flags=(--enable-v2=true "${flags[@]}")
      ;;
    *) fail "TARGET must be beacon or etcd, not '$target'" ;;
  esac
}

# The rest is the v3 drivers' common frame (the v2 ones predate it).
#
#   compat_begin NAME    a work directory, removed at exit with the server killed,
#                        and `fail MESSAGE`, which prints the server log's tail
#   free_ports           `port` and `peer_port` free on loopback, `client` and `peer`
#   start_server         starts TARGET's server (see server_command) on them
#   wait_ready CMD...    until CMD succeeds, within 20 s, while the server runs
compat_begin() {
  suite="$1"
  target="${TARGET:-beacon}"
  work="$(mktemp -d "${TMPDIR:-/tmp}/beacon-compat-$suite.XXXXXX")"
  server_pid=
  trap compat_cleanup EXIT
}

compat_cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "${KEEP_WORK:-0}" != 1 ]]; then rm -rf "$work"; fi
}

fail() {
  echo "$suite compat: $*" >&2
  if [[ -f "$work/server.log" ]]; then
    echo "--- server.log (last 30 lines)" >&2
    tail -n 30 "$work/server.log" >&2
  fi
  echo "FAIL: $suite compat ($target)"
  exit 1
}

free_ports() {
  read -r port peer_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
  )
  client="http://127.0.0.1:$port"
  peer="http://127.0.0.1:$peer_port"
}

start_server() {
  server_command "$target" "$client" "$peer" "$work/data"
  echo "== $suite compat: starting $target ($bin) on $client"
  "$bin" "${flags[@]}" >"$work/server.log" 2>&1 &
  server_pid=$!
}

wait_ready() {
  local deadline=$((SECONDS + 20)) retried=0
  until "$@"; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      # A port picked free may be taken before the server binds it (by an outgoing
      # connection's ephemeral port): pick others and start again, once.
      if ((retried == 0)) && grep -qi "address already in use" "$work/server.log"; then
        retried=1
        free_ports
        start_server
        deadline=$((SECONDS + 20))
        continue
      fi
      fail "$target exited during startup"
    fi
    ((SECONDS < deadline)) || fail "$target's v3 API not ready within 20 s"
    sleep 0.2
  done
}

# The TLS phase of a v3 driver, after its plain run:
#
#   start_tls_server     stops the plain server, writes the test PKI (BEACON_PKI_BIN:
#                        a CA, server and client pairs) to $work/pki (`pki`), and starts
#                        TARGET's server with an https client URL on fresh ports, asking
#                        clients for a certificate the CA signed (--client-cert-auth)
start_tls_server() {
  local pki_bin="${BEACON_PKI_BIN:-}"
  [[ -n "$pki_bin" && -x "$pki_bin" ]] || fail "set BEACON_PKI_BIN to the beacon-pki binary (got '${pki_bin}')"
  if [[ -n "$server_pid" ]]; then
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
  pki="$work/pki"
  "$pki_bin" "$pki" || fail "beacon-pki $pki failed"
  free_ports
  client="https://127.0.0.1:$port"
  server_command "$target" "$client" "$peer" "$work/data-tls"
  flags+=(--cert-file "$pki/server.pem" --key-file "$pki/server-key.pem"
    --client-cert-auth --trusted-ca-file "$pki/ca.pem")
  echo "== $suite compat: starting $target ($bin) with TLS on $client"
  # `fail` shows server.log: from here on, the TLS server's.
  if [[ -f "$work/server.log" ]]; then mv "$work/server.log" "$work/server-plain.log"; fi
  "$bin" "${flags[@]}" >"$work/server.log" 2>&1 &
  server_pid=$!
  # Ready once it says so (both servers log it); a client check follows in the driver.
  local deadline=$((SECONDS + 20))
  until grep -q "ready to serve client requests" "$work/server.log" 2>/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || fail "$target exited during its TLS start"
    ((SECONDS < deadline)) || fail "$target with TLS not ready within 20 s"
    sleep 0.2
  done
}
