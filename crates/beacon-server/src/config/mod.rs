//! Command-line flags, spelled as etcd spells them (`--name`, Go's `-name`, `ETCD_*`
//! environment variables), validated into a [`Config`].

use std::ffi::OsString;
use std::path::PathBuf;

mod compaction;
mod etcd_flags;
mod file;
mod flags;
mod go_uint;
mod log_outputs;
mod proxy;
mod tls;

use flags::Flags;
pub use log_outputs::LogOutput;
pub use proxy::{ProxyMode, ProxySettings};
pub use tls::TlsSettings;

use crate::limits::ELECTION_TIMEOUT_MS_MAX;
use crate::urls::{parse_list, FlagUrl};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (etcd's capnslog).
    Text,
    /// One JSON object a line (etcd's zap, whose output is JSON).
    Json,
}

/// Whether the member starts a new cluster or joins an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// `new`.
    New,
    /// `existing`.
    Existing,
}

/// The validated configuration of one member.
#[derive(Clone, Debug)]
pub struct Config {
    /// `--name`.
    pub name: String,
    /// `--data-dir`, defaulted.
    pub data_dir: PathBuf,
    /// `--listen-client-urls`: where to accept client connections (each bindable).
    pub listen_client_urls: Vec<FlagUrl>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<String>,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<FlagUrl>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<String>,
    /// `--initial-cluster` as (name, peer URL) pairs.
    pub initial_cluster: Vec<(String, String)>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--discovery`: the URL a new cluster's members register at; the cluster's token.
    pub discovery: Option<String>,
    /// `--discovery-srv` and `--discovery-srv-name`: the domain whose SRV records make
    /// a new member's initial cluster, and the service's suffix.
    pub discovery_srv: Option<DiscoverySrv>,
    /// `--discovery-proxy`, as given (read when discovery starts, as etcd reads it).
    pub discovery_proxy: String,
    /// `--discovery-fallback=proxy` (etcd's default): what a member too late for a full
    /// cluster would become.
    pub discovery_fallback_proxy: bool,
    /// `--proxy` and the `--proxy-*` timings: whether this process is a v2 proxy.
    pub proxy: ProxySettings,
    /// `--snapshot-count`.
    pub snapshot_count: u64,
    /// `--experimental-watch-progress-notify-interval`: how often a caught-up watcher
    /// that asked for progress notifications and heard nothing hears the revision.
    pub watch_progress_notify_interval: std::time::Duration,
    /// `--quota-backend-bytes` as a quota: `None` when negative (off), etcd's default
    /// for 0.
    pub space_quota: Option<u64>,
    /// `--heartbeat-interval`, ms.
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout`, ms.
    pub election_timeout_ms: u64,
    /// `--enable-v2` (informational).
    pub enable_v2: bool,
    /// `--unsafe-no-fsync`: the log is written out but never synced.
    pub unsafe_no_fsync: bool,
    /// `--force-new-cluster`: accept a data directory that misses committed entries.
    pub force_new_cluster: bool,
    /// `--experimental-warning-apply-duration`.
    pub warning_apply_duration: std::time::Duration,
    /// `--listen-metrics-urls`: where to serve `/metrics` and `/health` alone.
    pub listen_metrics_urls: Vec<FlagUrl>,
    /// `--metrics extensive`: `/metrics` shows `grpc_server_handling_seconds` too. etcd
    /// takes any other value, even a misspelt one, as `basic`, and so does Beacon.
    pub metrics_extensive: bool,
    /// `--auth-token-ttl`.
    pub auth_token_ttl: std::time::Duration,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// `--auth-token jwt,...`: the token provider, keys read; `None`: `simple`.
    pub jwt: Option<std::sync::Arc<beacon_auth::jwt::JwtTokens>>,
    /// The client and peer TLS flags.
    pub tls: TlsSettings,
    /// `--max-concurrent-streams`, when given.
    pub max_concurrent_streams: Option<u32>,
    /// `--max-request-bytes`, and the limits that follow from it.
    pub request_bytes_max: crate::limits::RequestBytesMax,
    /// `--max-txn-ops`.
    pub txn_ops_max: usize,
    /// `--grpc-keepalive-interval`.
    pub grpc_keepalive_interval: std::time::Duration,
    /// `--grpc-keepalive-timeout`.
    pub grpc_keepalive_timeout: std::time::Duration,
    /// `--cors` and `--host-whitelist`.
    pub access: crate::http::access::AccessControl,
    /// `--experimental-enable-v2v3`: the v3 prefix of the emulated v2 keys, if any.
    pub v2v3_prefix: Option<Vec<u8>>,
    /// `--grpc-keepalive-min-time`, its 0 already grpc-go's default.
    pub grpc_keepalive_min_time: std::time::Duration,
    /// `--enable-grpc-gateway`.
    pub enable_grpc_gateway: bool,
    /// `--initial-election-tick-advance`.
    pub initial_election_tick_advance: bool,
    /// `--pre-vote`.
    pub pre_vote: bool,
    /// `--wal-dir`; `None`: the log database is in the data directory.
    pub wal_dir: Option<PathBuf>,
    /// `--experimental-initial-corrupt-check`.
    pub initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time`; `None`: no periodic check.
    pub corrupt_check_interval: Option<std::time::Duration>,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// `--auto-compaction-mode` and `--auto-compaction-retention`: what the leader's
    /// compactor keeps of the v3 history; `None`: nothing is compacted automatically.
    pub auto_compaction: Option<crate::compactor::Retention>,
    /// `--log-level` (or `--debug`) as a `tracing` level: debug, info, warn or error.
    pub log_level: &'static str,
    /// `--log-format`, or what `--logger` writes: etcd 3.4's zap logger writes JSON lines.
    pub log_format: LogFormat,
    /// `--log-outputs`, as `--logger` takes it: where each log line is written (at
    /// least one place).
    pub log_outputs: Vec<LogOutput>,
    /// Warnings about the flags, logged at start: each etcd flag given that means
    /// nothing for Beacon (`etcd_flags`), a config file's unread keys (`file`), a
    /// value etcd too would adjust.
    pub flag_warnings: Vec<String>,
}

/// `--discovery-srv` and `--discovery-srv-name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverySrv {
    /// The domain.
    pub domain: String,
    /// The service's suffix; empty when none is given.
    pub service_name: String,
}

/// Why the flags were refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// clap's own errors, and `--help` (which is not a failure).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// A flag value that etcd's flag package would refuse while parsing (etcd exits 2),
    /// or a flag Beacon does not support.
    #[error("{0}")]
    Invalid(String),
    /// `--version` was asked for: what to print (to stdout, then exit 0). Not a failure.
    #[error("{0}")]
    Version(String),
    /// Flags that parse but that etcd's checks refuse ("error verifying flags"; etcd
    /// exits 1), a configuration file's errors too.
    #[error("{0}")]
    Refused(String),
}

impl ConfigError {
    /// The exit code etcd ends with for the same refusal.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Clap(_) | ConfigError::Invalid(_) => 2,
            ConfigError::Refused(_) => 1,
            ConfigError::Version(_) => 0,
        }
    }

    /// An error of [`Config::validate`]: Go's flag package words a value it could not
    /// parse as "invalid value ... for flag -NAME: ..." (etcd exits 2 there); every
    /// other refusal comes from etcd's checks, the same words for a value from an
    /// `ETCD_*` variable included.
    fn of_validation(why: String) -> ConfigError {
        if why.starts_with("invalid value ") && why.contains(" for flag -") {
            ConfigError::Invalid(why)
        } else {
            ConfigError::Refused(why)
        }
    }
}

/// Go's flag package accepts `-name value` and `-name=value`; clap wants `--name`.
/// A single dash followed by a word of two or more letters becomes a double dash.
pub fn normalize_go_flags<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest_are_values = false;
    for (i, arg) in args.into_iter().enumerate() {
        let s = arg.to_string_lossy();
        if i == 0 || rest_are_values {
            out.push(arg);
            continue;
        }
        if s == "--" {
            rest_are_values = true;
            out.push(arg);
            continue;
        }
        let bytes = s.as_bytes();
        let go_style = bytes.len() > 2
            && bytes[0] == b'-'
            && bytes[1].is_ascii_alphabetic()
            && bytes[2].is_ascii_alphabetic();
        if go_style {
            let mut long = OsString::from("-");
            long.push(&arg);
            out.push(long);
        } else {
            out.push(arg);
        }
    }
    out
}

/// The keep-alive interval and timeout as etcd hands them to grpc-go: both together,
/// only when both are positive; otherwise grpc-go's defaults, which are etcd's.
fn keepalive(
    interval: std::time::Duration,
    timeout: std::time::Duration,
) -> (std::time::Duration, std::time::Duration) {
    if interval.is_zero() || timeout.is_zero() {
        (
            crate::limits::GRPC_KEEPALIVE_INTERVAL,
            crate::limits::GRPC_KEEPALIVE_TIMEOUT,
        )
    } else {
        (interval, timeout)
    }
}

/// Takes every `--config-file` out of `args` (in `--name` form), returning the last
/// non-empty value given.
fn take_config_file(args: Vec<OsString>) -> Result<(Vec<OsString>, Option<OsString>), String> {
    let wanted = |name: &str| (name == "config-file").then_some(etcd_flags::Boolean::No);
    let (rest, picked) = etcd_flags::split_out(args, wanted)?;
    let file = picked.into_iter().last().map(|(_, v)| v);
    Ok((rest, file.filter(|v| !v.is_empty())))
}

/// [`Flags`] from `args` and the `ETCD_*` environment, noting which of the flags whose
/// refusal names its source (etcd words a bad `ETCD_PROXY` as the variable's) came
/// from the environment.
fn parse_with_environment(args: Vec<OsString>) -> Result<Flags, clap::Error> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = Flags::command().try_get_matches_from(args)?;
    let mut flags = Flags::from_arg_matches(&matches)?;
    for id in [
        "proxy",
        "discovery_fallback",
        "listen_client_urls",
        "listen_metrics_urls",
        "advertise_client_urls",
        "listen_peer_urls",
        "initial_advertise_peer_urls",
    ] {
        if matches.value_source(id) == Some(clap::parser::ValueSource::EnvVariable) {
            flags.from_environment.push(id);
        }
    }
    Ok(flags)
}

/// [`Flags`] from `args` alone: clap's `ETCD_*` fallbacks switched off.
fn parse_without_environment(args: Vec<OsString>) -> Result<Flags, clap::Error> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let command = Flags::command().mut_args(|a| a.env(None::<&'static str>));
    Flags::from_arg_matches(&command.try_get_matches_from(args)?)
}

/// etcd's log levels as `tracing`'s (it has no panic or fatal level).
fn parse_log_level(s: &str) -> Result<&'static str, String> {
    match s {
        "debug" => Ok("debug"),
        "info" => Ok("info"),
        "warn" => Ok("warn"),
        "error" | "dpanic" | "panic" | "fatal" => Ok("error"),
        _ => Err(format!("unknown level {s:?}")),
    }
}

/// Beacon's `--log-format`.
fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unknown log format {s:?} (text or json)")),
    }
}

/// etcd 3.4's `--logger`: its two loggers, as the formats they write; etcd refuses any
/// other with these words.
fn parse_logger(s: &str) -> Result<LogFormat, String> {
    match s {
        "capnslog" => Ok(LogFormat::Text),
        "zap" => Ok(LogFormat::Json),
        _ => Err(format!("unknown logger option {s:?}")),
    }
}

/// Go's `strconv.ParseBool`, for boolean flags such as `--enable-v2=false`.
fn parse_go_bool(s: &str) -> Result<bool, String> {
    crate::http::goform::parse_bool(s).ok_or_else(|| format!("invalid boolean value {s:?}"))
}

impl Config {
    /// Parses and validates process arguments (the first is the program name).
    pub fn from_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Config, ConfigError> {
        let (args, config_file) =
            take_config_file(normalize_go_flags(args)).map_err(ConfigError::Invalid)?;
        let config_file =
            config_file.or_else(|| std::env::var_os("ETCD_CONFIG_FILE").filter(|f| !f.is_empty()));
        let (flags, flag_warnings) = match config_file {
            None => {
                let (args, warnings) = etcd_flags::take(args, |var| std::env::var(var).ok())?;
                (parse_with_environment(args)?, warnings)
            }
            // As etcd: the file alone, neither the command line nor the environment.
            Some(path) => {
                let (from_file, mut warnings) =
                    file::arguments(path.as_ref()).map_err(ConfigError::Refused)?;
                let program = args.into_iter().take(1);
                let (args, more) = etcd_flags::take(program.chain(from_file).collect(), |_| None)?;
                warnings.extend(more);
                warnings.insert(
                    0,
                    format!(
                        "loading server configuration from {}; other configuration command \
                         line flags and environment variables are ignored",
                        std::path::Path::new(&path).display()
                    ),
                );
                (parse_without_environment(args)?, warnings)
            }
        };
        // As etcd: once the flags parse, `--version` answers before any check.
        if flags.version {
            return Err(ConfigError::Version(version_text()));
        }
        let mut config = Config::validate(flags).map_err(ConfigError::of_validation)?;
        config.flag_warnings.splice(0..0, flag_warnings);
        Ok(config)
    }

    fn validate(f: Flags) -> Result<Config, String> {
        let keepalive = keepalive(f.grpc_keepalive_interval, f.grpc_keepalive_timeout);
        let jwt = check_auth_token(&f.auth_token)?;
        let auto_compaction =
            compaction::parse(&f.auto_compaction_mode, &f.auto_compaction_retention)?;
        let (log_outputs, deprecated) =
            log_outputs::parse(&f.log_output, &f.log_outputs, f.logger)?;
        // etcd's: none (or a negative one) is the default, and one too short is raised
        // to the minimum, with a warning.
        let mut warnings: Vec<String> = deprecated.into_iter().collect();
        let bcrypt_cost = bcrypt_cost(f.bcrypt_cost, f.logger, &mut warnings);
        let watch_progress_notify_interval = match f.experimental_watch_progress_notify_interval {
            d if d.is_zero() => crate::limits::WATCH_PROGRESS_NOTIFY_INTERVAL,
            d if d < crate::limits::WATCH_PROGRESS_NOTIFY_INTERVAL_MIN => {
                warnings.push(format!(
                    "adjusting watch progress notify interval to minimum period {:?}",
                    crate::limits::WATCH_PROGRESS_NOTIFY_INTERVAL_MIN
                ));
                crate::limits::WATCH_PROGRESS_NOTIFY_INTERVAL_MIN
            }
            d => d,
        };
        // etcd's words, its zap logger's or capnslog's; it takes the value all the same.
        let (bytes, recommended) = (
            f.max_request_bytes,
            crate::limits::REQUEST_BYTES_RECOMMENDED_MAX,
        );
        if bytes > recommended {
            warnings.push(match f.logger {
                LogFormat::Json => format!(
                    "exceeded recommended request limit: max-request-bytes {bytes}, \
                     recommended-request-bytes {recommended}"
                ),
                LogFormat::Text => format!(
                    "MaxRequestBytes {bytes} exceeds maximum recommended size {recommended}"
                ),
            });
        }
        let source = |id: &str, flag: &str, var: &str| {
            if f.from_environment.contains(&id) {
                var.to_string()
            } else {
                format!("flag -{flag}")
            }
        };
        // A URL list etcd could not parse is refused as Go's flag package words it.
        let urls = |id: &str, text: &str| {
            let flag = id.replace('_', "-");
            let var = format!("ETCD_{}", id.to_uppercase());
            parse_list(&flag, text).map_err(|e| {
                let why = e
                    .strip_prefix(&format!("--{flag}: "))
                    .unwrap_or(&e)
                    .to_string();
                format!(
                    "invalid value {text:?} for {}: {why}",
                    source(id, &flag, &var)
                )
            })
        };
        let listen_client_urls = urls("listen_client_urls", &f.listen_client_urls)?;
        let listen_metrics_urls = if f.listen_metrics_urls.trim().is_empty() {
            Vec::new()
        } else {
            urls("listen_metrics_urls", &f.listen_metrics_urls)?
        };
        for u in listen_client_urls.iter().chain(&listen_metrics_urls) {
            u.bind_addr()?;
        }
        let advertise_client_urls = urls("advertise_client_urls", &f.advertise_client_urls)?
            .into_iter()
            .map(|u| u.text)
            .collect();
        let listen_peer_urls = urls("listen_peer_urls", &f.listen_peer_urls)?;
        for u in &listen_peer_urls {
            u.bind_addr()?;
        }
        let initial_advertise_peer_urls: Vec<String> = urls(
            "initial_advertise_peer_urls",
            &f.initial_advertise_peer_urls,
        )?
        .into_iter()
        .map(|u| u.text)
        .collect();
        let discovery = Some(f.discovery.clone()).filter(|d| !d.is_empty());
        let discovery_srv = Some(&f.discovery_srv)
            .filter(|d| !d.is_empty())
            .map(|domain| DiscoverySrv {
                domain: domain.clone(),
                service_name: f.discovery_srv_name.clone(),
            });
        let bootstraps = [
            discovery.is_some(),
            f.initial_cluster.is_some(),
            discovery_srv.is_some(),
        ];
        if bootstraps.iter().filter(|given| **given).count() > 1 {
            return Err(
                "multiple discovery or bootstrap flags are set. Choose one of \
                        \"initial-cluster\", \"discovery\" or \"discovery-srv\""
                    .to_string(),
            );
        }
        if !matches!(f.discovery_fallback.as_str(), "exit" | "proxy") {
            return Err(format!(
                "invalid value {:?} for {}: invalid value",
                f.discovery_fallback,
                source(
                    "discovery_fallback",
                    "discovery-fallback",
                    "ETCD_DISCOVERY_FALLBACK"
                )
            ));
        }
        let proxy = ProxySettings {
            mode: proxy::parse_mode(&f.proxy, &source("proxy", "proxy", "ETCD_PROXY"))?,
            failure_wait: std::time::Duration::from_millis(f.proxy_failure_wait),
            refresh_interval: std::time::Duration::from_millis(f.proxy_refresh_interval),
            dial_timeout: proxy::timeout_ms(f.proxy_dial_timeout),
            write_timeout: proxy::timeout_ms(f.proxy_write_timeout),
            read_timeout: proxy::timeout_ms(f.proxy_read_timeout),
        };
        let initial_cluster_text = f.initial_cluster.clone().unwrap_or_else(|| {
            // etcd: with only --name given, the cluster is this member alone.
            initial_advertise_peer_urls
                .iter()
                .map(|u| format!("{}={u}", f.name))
                .collect::<Vec<_>>()
                .join(",")
        });
        let initial_cluster = parse_initial_cluster(&initial_cluster_text)?;
        let initial_cluster_state = match f.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => return Err(format!("unexpected clusterState {other:?}")),
        };
        if f.heartbeat_interval == 0 {
            return Err(format!(
                "--heartbeat-interval must be >0 (set to {}ms)",
                f.heartbeat_interval
            ));
        }
        if f.election_timeout == 0 {
            return Err(format!(
                "--election-timeout must be >0 (set to {}ms)",
                f.election_timeout
            ));
        }
        if 5 * f.heartbeat_interval > f.election_timeout {
            return Err(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                f.election_timeout, f.heartbeat_interval
            ));
        }
        if f.election_timeout > ELECTION_TIMEOUT_MS_MAX {
            return Err(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                f.election_timeout, ELECTION_TIMEOUT_MS_MAX
            ));
        }
        if f.name.is_empty() {
            return Err("--name must not be empty".into());
        }
        let data_dir = f
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("{}.beacon", f.name)));
        let tls = f.tls.settings()?;
        let client_served = listen_client_urls.iter().chain(&listen_metrics_urls);
        check_schemes(client_served, &tls.client, tls.auto_tls, "client", "")?;
        check_schemes(
            listen_peer_urls.iter(),
            &tls.peer,
            tls.peer_auto_tls,
            "peer",
            "peer-",
        )?;
        Ok(Config {
            name: f.name,
            data_dir,
            listen_client_urls,
            listen_metrics_urls,
            metrics_extensive: f.metrics == "extensive",
            auth_token_ttl: std::time::Duration::from_secs(f.auth_token_ttl),
            bcrypt_cost,
            jwt,
            tls,
            warning_apply_duration: f.experimental_warning_apply_duration,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state,
            // etcd: a discovered cluster's token is its discovery URL.
            initial_cluster_token: discovery.clone().unwrap_or(f.initial_cluster_token),
            discovery,
            discovery_srv,
            discovery_proxy: f.discovery_proxy,
            discovery_fallback_proxy: f.discovery_fallback == "proxy",
            proxy,
            snapshot_count: f.snapshot_count,
            watch_progress_notify_interval,
            space_quota: match u64::try_from(f.quota_backend_bytes) {
                Err(_) => None,
                Ok(0) => Some(crate::limits::QUOTA_BACKEND_BYTES_DEFAULT),
                Ok(bytes) => Some(bytes),
            },
            heartbeat_interval_ms: f.heartbeat_interval,
            election_timeout_ms: f.election_timeout,
            enable_v2: f.enable_v2,
            unsafe_no_fsync: f.unsafe_no_fsync,
            force_new_cluster: f.force_new_cluster,
            max_concurrent_streams: f.max_concurrent_streams,
            request_bytes_max: crate::limits::RequestBytesMax::new(f.max_request_bytes),
            txn_ops_max: usize::try_from(f.max_txn_ops).unwrap_or(usize::MAX),
            grpc_keepalive_interval: keepalive.0,
            grpc_keepalive_timeout: keepalive.1,
            v2v3_prefix: (!f.experimental_enable_v2v3.is_empty())
                .then(|| f.experimental_enable_v2v3.as_bytes().to_vec()),
            access: crate::http::access::AccessControl {
                origins: crate::http::access::AccessControl::parse_origins(&f.cors)?,
                hosts: crate::http::access::AccessControl::parse_hosts(&f.host_whitelist),
            },
            grpc_keepalive_min_time: if f.grpc_keepalive_min_time.is_zero() {
                crate::limits::GRPC_PING_INTERVAL_MIN_UNSET
            } else {
                f.grpc_keepalive_min_time
            },
            enable_grpc_gateway: f.enable_grpc_gateway,
            initial_election_tick_advance: f.initial_election_tick_advance,
            pre_vote: f.pre_vote,
            wal_dir: Some(&f.wal_dir)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            initial_corrupt_check: f.experimental_initial_corrupt_check,
            corrupt_check_interval: Some(f.experimental_corrupt_check_time)
                .filter(|t| !t.is_zero()),
            strict_reconfig_check: f.strict_reconfig_check,
            auto_compaction,
            log_level: if f.debug { "debug" } else { f.log_level },
            log_format: f.log_format.unwrap_or(f.logger),
            log_outputs,
            flag_warnings: warnings,
        })
    }
}

/// etcd's refusal of an https URL without a pair to serve it with (given or automatic).
fn check_schemes<'a>(
    urls: impl Iterator<Item = &'a FlagUrl>,
    info: &beacon_tls::TlsInfo,
    auto: bool,
    side: &str,
    prefix: &str,
) -> Result<(), String> {
    for u in urls {
        if u.tls && info.is_empty() && !auto {
            return Err(format!(
                "TLS key/cert (--{prefix}cert-file, --{prefix}key-file) must be provided for \
                 {side} url {} with HTTPS scheme",
                u.text
            ));
        }
    }
    Ok(())
}

/// `name=url,name=url` (a name may repeat for several peer URLs).
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| format!("--initial-cluster: {entry:?} is not of the form name=url"))?;
        let url = parse_list("initial-cluster", url)?.remove(0);
        out.push((name.to_string(), url.text));
    }
    if out.is_empty() {
        return Err("--initial-cluster is empty".into());
    }
    Ok(out)
}

/// `--auth-token` and `--bcrypt-cost` as Beacon can honour them: `simple` tokens (etcd's
/// default; its options after a comma, which only `jwt` reads, are ignored as etcd
/// ignores them), and a cost bcrypt accepts.
fn check_auth_token(
    auth_token: &str,
) -> Result<Option<std::sync::Arc<beacon_auth::jwt::JwtTokens>>, String> {
    let opts =
        beacon_auth::jwt::parse_options(auth_token, |ttl| beacon_api::go_duration::parse(ttl).ok())
            .map_err(|e| format!("--auth-token={auth_token}: {e}"))?;
    // The key files are read now: a member that could not check a token does not start.
    let jwt = opts
        .map(|opts| beacon_auth::jwt::JwtTokens::new(&opts, |path| std::fs::read(path)))
        .transpose()
        .map_err(|e| format!("--auth-token={auth_token}: {e}"))?;
    Ok(jwt.map(std::sync::Arc::new))
}

/// What `--version` prints: etcd's lines, so that a script reading "etcd Version:"
/// finds the etcd version Beacon answers as (`/version` says the same), and Beacon's
/// own in the place of the Git SHA.
fn version_text() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "etcd Version: {}\nGit SHA: Not provided (beacon {})\nGo Version: none (beacon is \
         written in Rust)\nGo OS/Arch: {}/{arch}\n",
        crate::api::version::ETCD_SERVER_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
    )
}

/// `--bcrypt-cost`: a cost bcrypt does not take is replaced by its default, with
/// etcd's warning (its zap logger's words or capnslog's), as etcd's auth store does.
fn bcrypt_cost(given: u64, logger: LogFormat, warnings: &mut Vec<String>) -> u32 {
    use beacon_auth::password::{COSTS, DEFAULT_COST};
    match u32::try_from(given) {
        Ok(cost) if COSTS.contains(&cost) => cost,
        _ => {
            warnings.push(match logger {
                LogFormat::Json => format!(
                    "use default bcrypt cost instead of the invalid given cost: min-cost {}, \
                     max-cost {}, default-cost {DEFAULT_COST}, given-cost {given}",
                    COSTS.start(),
                    COSTS.end()
                ),
                LogFormat::Text => format!(
                    "Use default bcrypt-cost {DEFAULT_COST} instead of the invalid value {given}"
                ),
            });
            DEFAULT_COST
        }
    }
}

#[cfg(test)]
mod tests;
