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
