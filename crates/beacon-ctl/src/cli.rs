//! The command line: etcdctl v2's global flags and commands, plus `register` and
//! `discover`. Positional arguments are optional here so that a missing one fails with
//! etcdctl's own message and exit code rather than clap's.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use beacon_api::go_duration;

/// beaconctl: a command-line client for Beacon and etcd's v2 API.
#[derive(Debug, Parser)]
#[command(name = "beaconctl", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Flags every command shares.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// etcdctl's global flags. Endpoints come from the first of `--endpoints`,
/// `ETCDCTL_ENDPOINTS`, `--endpoint`, `ETCDCTL_ENDPOINT`, `--peers`, `ETCDCTL_PEERS`.
#[derive(Debug, Args)]
pub struct Global {
    /// A comma-delimited list of machine addresses in the cluster [default: http://127.0.0.1:2379]
    #[arg(long, global = true, env = "ETCDCTL_ENDPOINTS")]
    pub endpoints: Option<String>,
    /// DEPRECATED - "--endpoints" should be used instead
    #[arg(long, global = true, env = "ETCDCTL_ENDPOINT", hide = true)]
    pub endpoint: Option<String>,
    /// DEPRECATED - "--endpoints" should be used instead
    #[arg(long, short = 'C', global = true, env = "ETCDCTL_PEERS", hide = true)]
    pub peers: Option<String>,
    /// Output response in the given format (simple, extended or json)
    #[arg(long, short = 'o', global = true, default_value = "simple")]
    pub output: String,
    /// Connection timeout per request (Go duration, e.g. 2s, 500ms)
    #[arg(long, global = true, default_value = "2s", value_parser = go_duration::parse)]
    pub timeout: Duration,
    /// Timeout for the command execution (except watch)
    #[arg(long, global = true, default_value = "5s", value_parser = go_duration::parse)]
    pub total_timeout: Duration,
    /// Don't synchronize cluster information before sending request
    #[arg(long, global = true)]
    pub no_sync: bool,
    /// Accepted for etcdctl compatibility; beaconctl prints no cURL commands
    #[arg(long, global = true, hide = true)]
    pub debug: bool,
    /// Identify HTTPS client using this SSL certificate file (v3's name: --cert)
    #[arg(long, global = true, env = "ETCDCTL_CERT_FILE", visible_alias = "cert")]
    pub cert_file: Option<std::path::PathBuf>,
    /// Identify HTTPS client using this SSL key file (v3's name: --key)
    #[arg(long, global = true, env = "ETCDCTL_KEY_FILE", visible_alias = "key")]
    pub key_file: Option<std::path::PathBuf>,
    /// Verify certificates of HTTPS-enabled servers using this CA bundle (v3's name: --cacert)
    #[arg(long, global = true, env = "ETCDCTL_CA_FILE", visible_alias = "cacert")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Skip the server certificate verification (CAUTION: the connection is then open to
    /// man-in-the-middle attacks)
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// The registry API of register, discover and proxy: 2 (v2 keys over HTTP) or 3 (v3
    /// gRPC: leases and watches); the other commands speak v2 only
    #[arg(long, global = true, env = "ETCDCTL_API", default_value = "2", value_parser = ["2", "3"])]
    pub api: String,
}

impl Global {
    /// True when the registry is to be reached through the v3 API.
    pub fn v3(&self) -> bool {
        self.api == "3"
    }

    /// How `https` endpoints are reached: the CA and pair given, or no check at all
    /// with `--insecure-skip-tls-verify`.
    pub fn tls(&self) -> beacon_client::TlsInfo {
        beacon_client::TlsInfo {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            trusted_ca_file: self.ca_file.clone(),
            self_signed: self.insecure_skip_tls_verify,
            ..beacon_client::TlsInfo::default()
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the health of the etcd cluster
    ClusterHealth(ClusterHealthArgs),
    /// Make a new key with a given value
    Mk(MkArgs),
    /// Make a new directory
    Mkdir(TtlArgs),
    /// Remove a key or a directory
    Rm(RmArgs),
    /// Removes the key if it is an empty directory or a key-value pair
    Rmdir(KeyArgs),
    /// Retrieve the value of a key
    Get(GetArgs),
    /// Retrieve a directory
    Ls(LsArgs),
    /// Set the value of a key
    Set(SetArgs),
    /// Create a new directory or update an existing directory TTL
    Setdir(TtlArgs),
    /// Update an existing key with a given value
    Update(TtlArgs),
    /// Update an existing directory
    Updatedir(TtlArgs),
    /// Watch a key for changes
    Watch(WatchArgs),
    /// Watch a key for changes and exec an executable
    ExecWatch(ExecWatchArgs),
    /// Member add, remove and list subcommands
    Member {
        /// The member subcommand.
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Keep a service instance registered at /services/SERVICE/DC/ID until stopped
    Register(RegisterArgs),
    /// Print a service's live instances and follow them as they come and go
    Discover(DiscoverArgs),
    /// Serve a local HTTP/1.1 reverse proxy over a service's discovered instances
    Proxy(ProxyArgs),
    /// Manages backups (`etcdctl snapshot save` writes them), with etcdctl v3's flags
    Snapshot {
        /// The snapshot subcommand.
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

/// `snapshot` subcommands (etcdctl v3's).
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Gets backend snapshot status of a given file
    Status(SnapshotStatusArgs),
    /// Restores an etcd member snapshot to an etcd directory
    Restore(SnapshotRestoreArgs),
}

/// `snapshot status <filename>`.
#[derive(Debug, Args)]
pub struct SnapshotStatusArgs {
    /// Set the output format (simple, table, json, fields)
    #[arg(long, short = 'w', default_value = "simple")]
    pub write_out: String,
    /// <filename>
    pub files: Vec<String>,
}

/// `snapshot restore <filename>` and etcdctl's cluster-reset flags, with its defaults.
#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// Path to the data directory (default: <name>.beacon, beacon's default)
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Initial cluster configuration for restore bootstrap
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long)]
    pub skip_hash_check: bool,
    /// <filename>
    pub files: Vec<String>,
}

/// `member` subcommands.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Enumerate existing cluster members
    List(KeyArgs),
    /// Add a new member to the etcd cluster: <name> <peerURL>
    Add(KeyArgs),
    /// Remove an existing member from the etcd cluster: <memberID>
    Remove(KeyArgs),
    /// Update an existing member in the etcd cluster: <memberID> <peerURLs>
    Update(KeyArgs),
}

/// Just positional arguments.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// <key>
    pub args: Vec<String>,
}

/// `--ttl` and positional arguments.
#[derive(Debug, Args)]
pub struct TtlArgs {
    /// Key time-to-live in seconds
    #[arg(long, default_value_t = 0)]
    pub ttl: i64,
    /// <key> [value]
    pub args: Vec<String>,
}

/// `set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Key time-to-live in seconds
    #[arg(long, default_value_t = 0)]
    pub ttl: i64,
    /// Previous value
    #[arg(long, default_value = "")]
    pub swap_with_value: String,
    /// Previous index
    #[arg(long, default_value_t = 0)]
    pub swap_with_index: u64,
    /// <key> <value>
    pub args: Vec<String>,
}

/// `mk`.
#[derive(Debug, Args)]
pub struct MkArgs {
    /// Create in-order key under directory <key>
    #[arg(long)]
    pub in_order: bool,
    /// Key time-to-live in seconds
    #[arg(long, default_value_t = 0)]
    pub ttl: i64,
    /// <key> <value>
    pub args: Vec<String>,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Removes the key if it is an empty directory or a key-value pair
    #[arg(long)]
    pub dir: bool,
    /// Removes the key and all child keys (if it is a directory)
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Previous value
    #[arg(long, default_value = "")]
    pub with_value: String,
    /// Previous index
    #[arg(long, default_value_t = 0)]
    pub with_index: u64,
    /// <key>
    pub args: Vec<String>,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Returns result in sorted order
    #[arg(long)]
    pub sort: bool,
    /// Require quorum for get request
    #[arg(long, short = 'q')]
    pub quorum: bool,
    /// <key>
    pub args: Vec<String>,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Returns result in sorted order
    #[arg(long)]
    pub sort: bool,
    /// Returns all key names recursively for the given path
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Append slash (/) to directories
    #[arg(short = 'p')]
    pub p: bool,
    /// Require quorum for get request
    #[arg(long, short = 'q')]
    pub quorum: bool,
    /// [key]
    pub args: Vec<String>,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Forever watch a key until CTRL+C
    #[arg(long, short = 'f')]
    pub forever: bool,
    /// Watch after the given index
    #[arg(long, default_value_t = 0)]
    pub after_index: u64,
    /// Returns all values for key and child keys
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// <key>
    pub args: Vec<String>,
}

/// `exec-watch`.
#[derive(Debug, Args)]
pub struct ExecWatchArgs {
    /// Watch after the given index
    #[arg(long, default_value_t = 0)]
    pub after_index: u64,
    /// Watch all values for key and child keys
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// <key> [--] <command> [args...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `cluster-health`.
#[derive(Debug, Args)]
pub struct ClusterHealthArgs {
    /// Forever check the health every 10 second until CTRL+C
    #[arg(long, short = 'f')]
    pub forever: bool,
    /// No arguments are taken.
    #[arg(hide = true)]
    pub args: Vec<String>,
}

/// `register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Service name
    pub service: String,
    /// Instance address, host:port
    pub addr: String,
    /// Seconds the registration lives without a refresh; refreshed every ttl/3
    #[arg(long)]
    pub ttl: u64,
    /// Datacenter the instance runs in
    #[arg(long, default_value = "default")]
    pub datacenter: String,
    /// Instance id [default: random]
    #[arg(long)]
    pub id: Option<String>,
}

/// `discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Service name
    pub service: String,
    /// Print the current instances and exit instead of following changes
    #[arg(long)]
    pub once: bool,
}

/// `proxy`: every flag has the client framework's default.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Service name: its instances are every key under /services/SERVICE/
    pub service: String,
    /// Address to serve on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Only use instances of this datacenter
    #[arg(long)]
    pub datacenter: Option<String>,
    /// Deadline of one attempt at an instance (Go duration)
    #[arg(long, default_value = "2s", value_parser = go_duration::parse)]
    pub attempt_timeout: Duration,
    /// Attempts per request, the first included; retried are requests that never reached
    /// an instance, and idempotent ones that got 503 or timed out
    #[arg(long, default_value_t = 3)]
    pub max_attempts: usize,
    /// Response statuses that retry an idempotent request on another instance
    #[arg(long, default_value = "503", value_delimiter = ',')]
    pub retry_statuses: Vec<u16>,
    /// Retries allowed as a fraction of requests (tower's TpsBudget)
    #[arg(long, default_value_t = 0.2)]
    pub retry_ratio: f32,
    /// Retries allowed per second on top of the ratio
    #[arg(long, default_value_t = 10)]
    pub retry_min_per_sec: u32,
    /// Consecutive failures that eject an instance
    #[arg(long, default_value_t = 5)]
    pub failure_threshold: u32,
    /// Success rate under which an instance is ejected
    #[arg(long, default_value_t = 0.8)]
    pub success_rate: f64,
    /// Window the success rate is measured over (Go duration, whole seconds)
    #[arg(long, default_value = "30s", value_parser = go_duration::parse)]
    pub success_window: Duration,
    /// Requests the window must hold before its success rate counts
    #[arg(long, default_value_t = 10)]
    pub success_min_requests: u32,
    /// First wait of an ejected instance before its probe (Go duration)
    #[arg(long, default_value = "1s", value_parser = go_duration::parse)]
    pub eject_backoff: Duration,
    /// Longest wait of an ejected instance before its probe (Go duration)
    #[arg(long, default_value = "30s", value_parser = go_duration::parse)]
    pub eject_backoff_max: Duration,
    /// Above this share of ejected instances, every instance is used (panic mode)
    #[arg(long, default_value_t = 0.5)]
    pub panic_threshold: f64,
    /// A removal of more than this share of the instances waits for --removal-grace
    #[arg(long, default_value_t = 0.5)]
    pub removal_share: f64,
    /// How long a large removal must hold before it is applied (Go duration)
    #[arg(long, default_value = "15s", value_parser = go_duration::parse)]
    pub removal_grace: Duration,
    /// Largest request body, in bytes
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Client connections served at once
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Idle keep-alive connections kept per instance and worker
    #[arg(long, default_value_t = 256)]
    pub pool_idle_max: usize,
    /// Worker threads, each with its own balancer [default: one per CPU]
    #[arg(long)]
    pub workers: Option<usize>,
}
