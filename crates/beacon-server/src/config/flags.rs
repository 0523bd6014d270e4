//! The flags as clap sees them: names, environment variables, defaults and help text,
//! each spelled as etcd spells it. `super` validates them into a `Config`.

use std::path::PathBuf;

use clap::Parser;

use super::{
    go_uint, parse_go_bool, parse_log_format, parse_log_level, parse_logger, tls, LogFormat,
};

/// The flags, as clap sees them. Defaults are etcd's, except where noted.
#[derive(Parser, Debug)]
#[command(
    name = "beacon",
    // `--version` is etcd's: its lines, which scripts read (see `super::version_text`).
    disable_version_flag = true,
    about = "A key-value store speaking etcd 3.4's v2 HTTP and v3 gRPC APIs.",
    // Go's flag package: a repeated flag takes its last value (tools append flags).
    args_override_self = true
)]
pub(super) struct Flags {
    /// Print the version (as etcd prints its own) and exit.
    #[arg(long, default_value = "false", num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_parser = parse_go_bool)]
    pub(super) version: bool,
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub(super) name: String,
    /// Path to the data directory [default: ./<name>.beacon].
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic (Beacon binds loopback by default).
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    pub(super) listen_client_urls: String,
    /// Client URLs advertised to the cluster and clients.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub(super) advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub(super) listen_peer_urls: String,
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub(super) initial_advertise_peer_urls: String,
    /// Initial cluster configuration: name=peerURL,... [default: <name>=<initial-advertise-peer-urls>].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub(super) initial_cluster: Option<String>,
    /// A discovery URL (a directory of an etcd v2 keys API) through which a new
    /// cluster's members find each other, instead of --initial-cluster.
    #[arg(long, env = "ETCD_DISCOVERY", default_value = "")]
    pub(super) discovery: String,
    /// A DNS domain whose SRV records (`_etcd-server-ssl._tcp.DOMAIN`) list a new
    /// cluster's members, instead of --initial-cluster.
    #[arg(long, env = "ETCD_DISCOVERY_SRV", default_value = "")]
    pub(super) discovery_srv: String,
    /// A suffix of the SRV service --discovery-srv asks for
    /// (`_etcd-server-ssl-SUFFIX._tcp.DOMAIN`).
    #[arg(long, env = "ETCD_DISCOVERY_SRV_NAME", default_value = "")]
    pub(super) discovery_srv_name: String,
    /// An HTTP proxy through which the --discovery service is asked.
    #[arg(long, env = "ETCD_DISCOVERY_PROXY", default_value = "")]
    pub(super) discovery_proxy: String,
    /// What a member does when the discovery service's cluster is full: 'exit', or
    /// 'proxy' (become a v2 proxy to that cluster, as `--proxy on`).
    #[arg(long, env = "ETCD_DISCOVERY_FALLBACK", default_value = "proxy")]
    pub(super) discovery_fallback: String,
    /// Run as a v2 HTTP proxy to the cluster instead of a member: 'off', 'on', or
    /// 'readonly' (GET requests alone).
    #[arg(long, env = "ETCD_PROXY", default_value = "off")]
    pub(super) proxy: String,
    /// Time (in milliseconds) an endpoint will be held in a failed state.
    #[arg(long, env = "ETCD_PROXY_FAILURE_WAIT", default_value = "5000",
          value_parser = go_uint::parse)]
    pub(super) proxy_failure_wait: u64,
    /// Time (in milliseconds) of the endpoints refresh interval.
    #[arg(long, env = "ETCD_PROXY_REFRESH_INTERVAL", default_value = "30000",
          value_parser = go_uint::parse)]
    pub(super) proxy_refresh_interval: u64,
    /// Time (in milliseconds) for a dial to timeout (0: none).
    #[arg(long, env = "ETCD_PROXY_DIAL_TIMEOUT", default_value = "1000",
          value_parser = go_uint::parse)]
    pub(super) proxy_dial_timeout: u64,
    /// Time (in milliseconds) for a write to timeout (0: none).
    #[arg(long, env = "ETCD_PROXY_WRITE_TIMEOUT", default_value = "5000",
          value_parser = go_uint::parse)]
    pub(super) proxy_write_timeout: u64,
    /// Time (in milliseconds) for a read to timeout (0: none).
    #[arg(long, env = "ETCD_PROXY_READ_TIMEOUT", default_value = "0",
          value_parser = go_uint::parse)]
    pub(super) proxy_read_timeout: u64,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub(super) initial_cluster_state: String,
    /// Initial cluster token, mixed into member and cluster ids.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub(super) initial_cluster_token: String,
    /// Number of committed entries that trigger a snapshot.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub(super) snapshot_count: u64,
    /// Duration of periodic watch progress notifications (Go duration syntax).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m",
        value_parser = beacon_api::go_duration::parse_flag,
        allow_hyphen_values = true
    )]
    pub(super) experimental_watch_progress_notify_interval: std::time::Duration,
    /// Raise alarms when the v3 keyspace exceeds this many bytes (0: the default 2 GiB,
    /// negative: no quota).
    #[arg(
        long,
        env = "ETCD_QUOTA_BACKEND_BYTES",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub(super) quota_backend_bytes: i64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub(super) heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to time out.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub(super) election_timeout: u64,
    /// Serve etcd's v2 API (`/v2/`) [default: on, where etcd 3.4's is off].
    #[arg(long, env = "ETCD_ENABLE_V2", default_value = "true", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub(super) enable_v2: bool,
    /// Start this member over whatever its data directory holds, even when it misses
    /// entries it knew committed (etcd's recovery flag; Beacon: single-voter members only).
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub(super) force_new_cluster: bool,
    /// Never fsync the log (etcd's unsafe flag): acknowledged writes survive the
    /// process's death, not the machine's.
    #[arg(long, env = "ETCD_UNSAFE_NO_FSYNC", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub(super) unsafe_no_fsync: bool,
    /// Log every applied entry that took longer than this (Go duration syntax).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION", default_value = "100ms",
          value_parser = beacon_api::go_duration::parse_flag, allow_hyphen_values = true)]
    pub(super) experimental_warning_apply_duration: std::time::Duration,
    /// More URLs to serve /metrics and /health on (and nothing else).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", default_value = "")]
    pub(super) listen_metrics_urls: String,
    /// What /metrics shows: basic, or extensive (gRPC handling-time histograms too).
    #[arg(long, env = "ETCD_METRICS", default_value = "basic")]
    pub(super) metrics: String,
    /// The kind of v3 auth tokens: 'simple', or
    /// 'jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m'.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub(super) auth_token: String,
    /// The bcrypt cost of v3 auth password hashes (4 to 31; another is taken as 10, with
    /// a warning, as etcd does).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = u64::from(beacon_auth::password::DEFAULT_COST))]
    pub(super) bcrypt_cost: u64,
    /// How long (in seconds) a 'simple' auth token lives unused.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub(super) auth_token_ttl: u64,
    /// Largest client request, in bytes: a v3 write encoded for the log (gRPC messages
    /// may be 512 KiB larger).
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value = "1572864",
          value_parser = go_uint::parse)]
    pub(super) max_request_bytes: u64,
    /// Most compares, or operations in a branch, of one transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value = "128", value_parser = go_uint::parse)]
    pub(super) max_txn_ops: u64,
    /// Most calls open at once on one gRPC connection [default: 1024; etcd's: no bound].
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS")]
    pub(super) max_concurrent_streams: Option<u32>,
    /// After how long without hearing from a gRPC client the server pings it (Go
    /// duration syntax; 0: the default).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h",
          value_parser = beacon_api::go_duration::parse_flag, allow_hyphen_values = true)]
    pub(super) grpc_keepalive_interval: std::time::Duration,
    /// How long to wait for that ping's answer before closing the connection (0: the
    /// default).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s",
          value_parser = beacon_api::go_duration::parse_flag, allow_hyphen_values = true)]
    pub(super) grpc_keepalive_timeout: std::time::Duration,
    /// The least time between a gRPC client's pings: three sooner in a row, while a
    /// call is open, get GOAWAY too_many_pings (Go duration syntax; 0: 5m, grpc-go's).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s",
          value_parser = beacon_api::go_duration::parse_flag, allow_hyphen_values = true)]
    pub(super) grpc_keepalive_min_time: std::time::Duration,
    /// Comma-separated origins for CORS, or `*` for any.
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub(super) cors: String,
    /// The v3 prefix to serve the v2 keys API from, emulated on the v3 keyspace; empty:
    /// the v2 store.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_V2V3", default_value = "")]
    pub(super) experimental_enable_v2v3: String,
    /// Comma-separated hostnames plain-HTTP requests may name in Host, or `*` for any.
    #[arg(long, env = "ETCD_HOST_WHITELIST", default_value = "*")]
    pub(super) host_whitelist: String,
    /// How much to log: debug, info, warn, error, panic or fatal (the last two: error).
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    pub(super) log_level: &'static str,
    /// How log lines are written: text, or json (one JSON object a line) [default: json
    /// under --logger zap, text otherwise].
    #[arg(long, env = "BEACON_LOG_FORMAT", value_parser = parse_log_format)]
    pub(super) log_format: Option<LogFormat>,
    /// etcd's logger: capnslog (text lines) or zap (JSON lines).
    #[arg(long, env = "ETCD_LOGGER", default_value = "capnslog", value_parser = parse_logger)]
    pub(super) logger: LogFormat,
    /// Where log lines go, comma-separated: default, stderr or stdout (one, under
    /// capnslog), or any of stderr, stdout and file paths (under zap).
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub(super) log_outputs: String,
    /// etcd 3.4's deprecated spelling of --log-outputs (left out of its help too).
    #[arg(long, env = "ETCD_LOG_OUTPUT", default_value = "default", hide = true)]
    pub(super) log_output: String,
    /// Log at debug level (etcd's older spelling of --log-level debug).
    #[arg(long, env = "ETCD_DEBUG", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub(super) debug: bool,
    /// Serve the v3 JSON gateway under /v3/ (etcd's grpc-gateway).
    #[arg(long, env = "ETCD_ENABLE_GRPC_GATEWAY", default_value = "true", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub(super) enable_grpc_gateway: bool,
    /// Reject member changes that would cost the quorum (etcd's checks).
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value = "true", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub(super) strict_reconfig_check: bool,
    /// Fast-forward the election timer at boot, for a sooner first election.
    #[arg(long, env = "ETCD_INITIAL_ELECTION_TICK_ADVANCE", default_value = "true",
          num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = parse_go_bool)]
    pub(super) initial_election_tick_advance: bool,
    /// Ask whether a campaign could win before raising the term [default: true, as
    /// etcd 3.5; etcd 3.4's: false].
    #[arg(long, env = "ETCD_PRE_VOTE", default_value = "true", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    pub(super) pre_vote: bool,
    /// Where the log database lives instead of <data-dir>/member/raft (etcd's WAL
    /// directory; Beacon's log database holds the v3 keyspace's tables too).
    #[arg(long, env = "ETCD_WAL_DIR", default_value = "")]
    pub(super) wal_dir: String,
    /// Compare this member's keyspace with its peers' before serving, when it restarts
    /// on its own data, and stop if one differs.
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = parse_go_bool)]
    pub(super) experimental_initial_corrupt_check: bool,
    /// How often the leader compares the members' keyspaces and raises the CORRUPT
    /// alarm for one that differs (Go duration syntax; 0: never).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s",
          value_parser = beacon_api::go_duration::parse_flag, allow_hyphen_values = true)]
    pub(super) experimental_corrupt_check_time: std::time::Duration,
    /// How much of the v3 keyspace's history auto compaction keeps: a duration, or in
    /// periodic mode a number of hours, or in revision mode a number of revisions (0:
    /// no auto compaction).
    #[arg(
        long,
        env = "ETCD_AUTO_COMPACTION_RETENTION",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub(super) auto_compaction_retention: String,
    /// How --auto-compaction-retention reads: 'periodic' (a duration, or hours) or
    /// 'revision' (a count of revisions).
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub(super) auto_compaction_mode: String,
    #[command(flatten)]
    pub(super) tls: tls::TlsFlags,
    /// The ids of the flags above whose value came from their `ETCD_*` variable, among
    /// those whose refusal names its source.
    #[arg(skip)]
    pub(super) from_environment: Vec<&'static str>,
}
