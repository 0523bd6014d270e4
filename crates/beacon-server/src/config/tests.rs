//! The flags' parsing and validation, without a process: etcd's spellings, defaults
//! and refusals.

use super::*;

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let mut v = vec![OsString::from("beacon")];
    v.extend(args.iter().map(OsString::from));
    Config::from_args(v)
}

/// The environment variable clap reads flag `id` from (named, not set: the tests share
/// this process's environment).
fn env_of(id: &str) -> Option<String> {
    let command = <Flags as clap::CommandFactory>::command();
    let arg = command.get_arguments().find(|a| a.get_id() == id)?;
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

#[test]
fn defaults() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.beacon"));
    assert_eq!(
        c.listen_client_urls[0].bind_addr().unwrap(),
        "127.0.0.1:2379".parse().unwrap()
    );
    assert_eq!(c.tls, TlsSettings::default());
    assert_eq!(
        c.initial_cluster,
        vec![("default".to_string(), "http://localhost:2380".to_string())]
    );
    assert_eq!(c.snapshot_count, 100_000);
    assert!(c.enable_v2);
}

#[test]
fn go_style_flags() {
    let c = parse(&[
        "-name",
        "n1",
        "-data-dir=/tmp/d",
        "--enable-v2=false",
        "-snapshot-count",
        "5",
    ])
    .unwrap();
    assert_eq!(c.name, "n1");
    assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
    assert!(!c.enable_v2);
    assert_eq!(c.snapshot_count, 5);
    assert_eq!(c.initial_cluster[0].0, "n1");
    assert!(parse(&["--enable-v2"]).unwrap().enable_v2);
    assert!(!c.force_new_cluster);
    assert!(parse(&["-force-new-cluster"]).unwrap().force_new_cluster);
    assert!(
        parse(&["--force-new-cluster=true"])
            .unwrap()
            .force_new_cluster
    );
    assert!(
        !parse(&["--force-new-cluster=false"])
            .unwrap()
            .force_new_cluster
    );
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
    let c = parse(&[
        "--name",
        "a",
        "-name=b",
        "--snapshot-count",
        "1",
        "--snapshot-count=2",
    ])
    .unwrap();
    assert_eq!((c.name.as_str(), c.snapshot_count), ("b", 2));
    let c = parse(&["--enable-v2=false", "--enable-v2"]).unwrap();
    assert!(c.enable_v2);
}

#[test]
fn grpc_connection_flags() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.max_concurrent_streams, None);
    assert_eq!(
        c.grpc_keepalive_interval,
        std::time::Duration::from_secs(7200)
    );
    let c = parse(&[
        "--max-concurrent-streams=10",
        "--grpc-keepalive-interval=1m",
        "--grpc-keepalive-timeout",
        "5s",
    ])
    .unwrap();
    assert_eq!(c.max_concurrent_streams, Some(10));
    assert_eq!(
        c.grpc_keepalive_interval,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(c.grpc_keepalive_timeout, std::time::Duration::from_secs(5));
    let c = parse(&["--grpc-keepalive-interval=1m", "--grpc-keepalive-timeout=0"]).unwrap();
    assert_eq!(
        c.grpc_keepalive_interval,
        std::time::Duration::from_secs(7200)
    );
    assert_eq!(c.grpc_keepalive_timeout, std::time::Duration::from_secs(20));
}

#[test]
fn discovery_is_etcds_bootstrap_flag() {
    let c = parse(&["--discovery", "http://d:2379/v2/keys/t"]).unwrap();
    assert_eq!(c.discovery.as_deref(), Some("http://d:2379/v2/keys/t"));
    assert_eq!(
        c.initial_cluster_token, "http://d:2379/v2/keys/t",
        "its token"
    );
    assert!(c.discovery_fallback_proxy, "etcd's default fallback");
    let both = parse(&["--discovery=http://d:1/t", "--initial-cluster=a=http://a:1"]);
    assert!(both
        .unwrap_err()
        .to_string()
        .contains("multiple discovery or bootstrap flags"));
    let exit = parse(&["--discovery=http://d:1/t", "--discovery-fallback=exit"]).unwrap();
    assert!(!exit.discovery_fallback_proxy);
    assert!(parse(&["--discovery-fallback=maybe"]).is_err());
    assert_eq!(parse(&[]).unwrap().discovery, None);
}

#[test]
fn discovery_proxy_is_kept_as_given_for_discovery_to_read() {
    let c = parse(&[
        "--discovery=http://d:1/t",
        "--discovery-proxy",
        "127.0.0.1:3128",
    ])
    .unwrap();
    assert_eq!(c.discovery_proxy, "127.0.0.1:3128");
    // etcd reads it only when discovery starts: a bad one does not stop the flags.
    assert!(parse(&["--discovery-proxy", "http://p:port"]).is_ok());
    let path = std::env::temp_dir().join(format!("beacon-dp-{}.yml", std::process::id()));
    std::fs::write(&path, "discovery-proxy: http://p:3128\n").unwrap();
    let c = parse(&["--config-file", &path.display().to_string()]).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(c.discovery_proxy, "http://p:3128");
    assert_eq!(
        env_of("discovery_proxy").as_deref(),
        Some("ETCD_DISCOVERY_PROXY")
    );
}

#[test]
fn discovery_srv_is_etcds_third_bootstrap_flag() {
    let c = parse(&[
        "--discovery-srv",
        "example.com",
        "--discovery-srv-name=prod",
    ])
    .unwrap();
    let srv = c.discovery_srv.expect("given");
    assert_eq!(
        (srv.domain.as_str(), srv.service_name.as_str()),
        ("example.com", "prod")
    );
    assert_eq!(c.initial_cluster_token, "etcd-cluster", "the token stays");
    assert_eq!(
        parse(&["--discovery-srv-name=prod"]).unwrap().discovery_srv,
        None
    );
    for other in ["--initial-cluster=a=http://a:1", "--discovery=http://d:1/t"] {
        let both = parse(&["--discovery-srv=example.com", other]).unwrap_err();
        assert!(both
            .to_string()
            .contains("multiple discovery or bootstrap flags"));
    }
    // From a config file, by etcd's YAML keys; from the environment, by etcd's names.
    let path = std::env::temp_dir().join(format!("beacon-srv-{}.yml", std::process::id()));
    std::fs::write(
        &path,
        "discovery-srv: example.org
discovery-srv-name: b
",
    )
    .unwrap();
    let c = parse(&["--config-file", &path.display().to_string()]).unwrap();
    let _ = std::fs::remove_file(&path);
    let srv = c.discovery_srv.expect("from the file");
    assert_eq!(
        (srv.domain.as_str(), srv.service_name.as_str()),
        ("example.org", "b")
    );
    assert_eq!(
        env_of("discovery_srv").as_deref(),
        Some("ETCD_DISCOVERY_SRV")
    );
    assert_eq!(
        env_of("discovery_srv_name").as_deref(),
        Some("ETCD_DISCOVERY_SRV_NAME")
    );
}

#[test]
fn wal_dir_is_the_log_databases_directory() {
    assert_eq!(parse(&[]).unwrap().wal_dir, None);
    assert_eq!(parse(&["--wal-dir="]).unwrap().wal_dir, None);
    let c = parse(&["--wal-dir", "/fast/wal"]).unwrap();
    assert_eq!(c.wal_dir, Some(std::path::PathBuf::from("/fast/wal")));
}

#[test]
fn cors_and_host_whitelist_are_etcds() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.access, crate::http::access::AccessControl::default());
    let c = parse(&["--cors", "http://a.com:1", "--host-whitelist=a.com,b"]).unwrap();
    assert_eq!(c.access.origins, Some(vec!["http://a.com:1".to_string()]));
    assert_eq!(
        c.access.hosts,
        Some(vec!["a.com".to_string(), "b".to_string()])
    );
    let refused = parse(&["--cors", "http://a.com"]).unwrap_err().to_string();
    assert!(refused.contains("host:port"), "{refused}");
}

#[test]
fn grpc_keepalive_min_time_is_etcds_with_grpc_gos_default_at_zero() {
    let secs = std::time::Duration::from_secs;
    assert_eq!(parse(&[]).unwrap().grpc_keepalive_min_time, secs(5));
    let c = parse(&["--grpc-keepalive-min-time", "1m30s"]).unwrap();
    assert_eq!(c.grpc_keepalive_min_time, secs(90));
    let c = parse(&["--grpc-keepalive-min-time=0"]).unwrap();
    assert_eq!(c.grpc_keepalive_min_time, secs(300));
    assert!(parse(&["--grpc-keepalive-min-time=soon"]).is_err());
    // Go takes a negative duration, and etcd reads it as 0; so does Beacon, in both
    // of Go's forms.
    let c = parse(&["--grpc-keepalive-min-time", "-1s"]).unwrap();
    assert_eq!(c.grpc_keepalive_min_time, secs(300));
    let c = parse(&[
        "--grpc-keepalive-interval=-1s",
        "--grpc-keepalive-timeout=5s",
    ])
    .unwrap();
    assert_eq!(c.grpc_keepalive_interval, secs(7200));
}

#[test]
fn a_config_file_replaces_the_command_line() {
    let path = std::env::temp_dir().join(format!("beacon-cfg-{}.yml", std::process::id()));
    std::fs::write(&path, "name: from-file\nsnapshot-count: 7\nmax-wals: 2\n").unwrap();
    let file = path.display().to_string();
    let c = parse(&["--name", "from-flag", "-config-file", &file]).unwrap();
    assert_eq!((c.name.as_str(), c.snapshot_count), ("from-file", 7));
    assert_eq!(c.flag_warnings.len(), 2, "{:?}", c.flag_warnings);
    assert!(c.flag_warnings[0].contains(&file));
    std::fs::write(&path, "proxy: readonly\nproxy-failure-wait: 7\n").unwrap();
    let c = parse(&["--config-file", &file]).unwrap();
    assert_eq!(c.proxy.mode, ProxyMode::Readonly);
    assert_eq!(c.proxy.failure_wait, std::time::Duration::from_millis(7));
    std::fs::write(&path, "proxy: maybe\n").unwrap();
    assert!(parse(&["--config-file", &file]).is_err());
    let _ = std::fs::remove_file(&path);
    let c = parse(&["--config-file=", "--name", "n"]).unwrap();
    assert_eq!(c.name, "n", "an empty --config-file is none");
}

#[test]
fn log_levels_are_etcds() {
    assert_eq!(parse(&[]).unwrap().log_level, "info");
    assert_eq!(parse(&["--log-level", "warn"]).unwrap().log_level, "warn");
    assert_eq!(parse(&["--log-level=fatal"]).unwrap().log_level, "error");
    assert_eq!(parse(&["-debug"]).unwrap().log_level, "debug");
    assert!(parse(&["--log-level", "loud"]).is_err());
}

#[test]
fn etcd_flags_without_meaning_are_noted_and_hidden_ones_taken() {
    let c = parse(&["--max-wals", "2", "--pre-vote=false", "--proxy=off"]).unwrap();
    assert_eq!(c.flag_warnings.len(), 1, "{:?}", c.flag_warnings);
    // Two flags etcd 3.4.23 takes but leaves out of its --help; the second needs the
    // checkpoints it persists.
    let persist = "--experimental-enable-lease-checkpoint-persist";
    let c = parse(&[
        "--unsafe-no-fsync",
        "--experimental-enable-lease-checkpoint",
        persist,
    ]);
    let c = c.unwrap();
    assert!(c.unsafe_no_fsync);
    assert_eq!(c.flag_warnings.len(), 2, "{:?}", c.flag_warnings);
    assert_eq!(parse(&[persist]).unwrap_err().exit_code(), 1);
    assert!(!parse(&[]).unwrap().unsafe_no_fsync);
}

#[test]
fn a_bcrypt_cost_out_of_range_is_etcds_default_with_a_warning() {
    for (given, want) in [
        ("4", 4),
        ("31", 31),
        ("3", 10),
        ("100", 10),
        ("99999999999", 10),
    ] {
        let c = parse(&[&format!("--bcrypt-cost={given}")]).unwrap();
        assert_eq!(c.bcrypt_cost, want, "{given}");
        assert_eq!(
            c.flag_warnings.is_empty(),
            want != 10 || given == "10",
            "{given}"
        );
    }
}

#[test]
fn refusals_exit_as_etcds() {
    let code = |args: &[&str]| parse(args).unwrap_err().exit_code();
    // Go's flag package could not parse the value: 2.
    assert_eq!(code(&["--listen-client-urls=notaurl"]), 2);
    assert_eq!(code(&["--proxy=weird"]), 2);
    // etcd's checks refused what parsed: 1.
    assert_eq!(code(&["--heartbeat-interval=0"]), 1);
    assert_eq!(code(&["--auto-compaction-mode=weird"]), 1);
    assert_eq!(code(&["--initial-cluster=bad"]), 1);
}

#[test]
fn log_lines_are_json_under_zap_or_when_asked() {
    assert_eq!(parse(&[]).unwrap().log_format, LogFormat::Text);
    assert_eq!(
        parse(&["--logger=zap"]).unwrap().log_format,
        LogFormat::Json
    );
    assert_eq!(
        parse(&["--logger", "capnslog"]).unwrap().log_format,
        LogFormat::Text
    );
    assert_eq!(
        parse(&["--log-format", "json"]).unwrap().log_format,
        LogFormat::Json
    );
    let both = parse(&["--logger=zap", "--log-format=text"]).unwrap();
    assert_eq!(both.log_format, LogFormat::Text, "the explicit format wins");
    assert!(parse(&["--logger", "bogus"]).is_err());
    assert!(parse(&["--log-format", "yaml"]).is_err());
}

#[test]
fn metrics_are_extensive_only_when_so_spelt() {
    assert!(!parse(&[]).unwrap().metrics_extensive);
    assert!(
        parse(&["--metrics", "extensive"])
            .unwrap()
            .metrics_extensive
    );
    assert!(!parse(&["--metrics=basic"]).unwrap().metrics_extensive);
    assert!(!parse(&["--metrics=Extensive"]).unwrap().metrics_extensive);
}

#[test]
fn metrics_urls() {
    assert!(parse(&[]).unwrap().listen_metrics_urls.is_empty());
    let c = parse(&["--listen-metrics-urls", "http://127.0.0.1:9"]).unwrap();
    let addr = c.listen_metrics_urls[0].bind_addr().unwrap();
    assert_eq!(addr, "127.0.0.1:9".parse().unwrap());
    // Served with the client pair, as etcd.
    assert!(parse(&["--listen-metrics-urls", "https://127.0.0.1:9"]).is_err());
    assert!(parse(&["--listen-metrics-urls", "https://127.0.0.1:9", "--auto-tls"]).is_ok());
}

#[test]
fn tls_flags() {
    let c = parse(&[
        "--cert-file=c.pem",
        "-key-file",
        "k.pem",
        "--client-cert-auth",
        "--trusted-ca-file",
        "ca.pem",
        "--peer-auto-tls",
        "--peer-cert-allowed-cn=member",
        "--cipher-suites",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "--listen-client-urls",
        "https://127.0.0.1:1",
        "--listen-peer-urls",
        "https://127.0.0.1:2",
    ])
    .unwrap();
    assert_eq!(c.tls.client.cert_file, Some(PathBuf::from("c.pem")));
    assert!(c.tls.client.client_cert_auth && c.tls.peer_auto_tls && !c.tls.auto_tls);
    assert_eq!(c.tls.peer.allowed_cn.as_deref(), Some("member"));
    assert_eq!(c.tls.peer.cipher_suites.len(), 2);
    assert!(c.listen_client_urls[0].tls);
    let msg = |args: &[&str]| parse(args).unwrap_err().to_string();
    assert_eq!(
        msg(&["--listen-client-urls", "https://127.0.0.1:1"]),
        "TLS key/cert (--cert-file, --key-file) must be provided for client url \
         https://127.0.0.1:1 with HTTPS scheme"
    );
    assert!(msg(&["--listen-peer-urls", "https://127.0.0.1:2"]).contains("--peer-cert-file"));
    assert_eq!(
        msg(&["--cipher-suites", "FOO"]),
        "unexpected TLS cipher suite \"FOO\""
    );
}

#[test]
fn several_listen_urls() {
    let c = parse(&[
        "--listen-client-urls",
        "http://127.0.0.1:1,http://127.0.0.2:2",
    ])
    .unwrap();
    assert_eq!(c.listen_client_urls.len(), 2);
}

#[test]
fn quota_and_progress_interval_flags() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.space_quota, Some(2 << 30), "etcd's default");
    assert_eq!(
        c.watch_progress_notify_interval,
        std::time::Duration::from_secs(600)
    );
    let c = parse(&[
        "--quota-backend-bytes",
        "-1",
        "-experimental-watch-progress-notify-interval=1m30s",
    ])
    .unwrap();
    assert_eq!(c.space_quota, None, "negative: no quota");
    assert_eq!(
        c.watch_progress_notify_interval,
        std::time::Duration::from_secs(90)
    );
    assert_eq!(
        parse(&["--quota-backend-bytes", "4096"])
            .unwrap()
            .space_quota,
        Some(4096)
    );
    let msg = |args: &[&str]| parse(args).unwrap_err().to_string();
    // etcd's: 0 or less is the default, under 100ms is raised to it, with a warning.
    let interval = |v: &str| {
        let c = parse(&["--experimental-watch-progress-notify-interval", v]).unwrap();
        (c.watch_progress_notify_interval, c.flag_warnings)
    };
    let ms = std::time::Duration::from_millis;
    assert_eq!(interval("0"), (ms(600_000), vec![]));
    assert_eq!(interval("-1s"), (ms(600_000), vec![]));
    let raised = "adjusting watch progress notify interval to minimum period 100ms";
    assert_eq!(interval("1ms"), (ms(100), vec![raised.to_string()]));
    assert_eq!(interval("100ms"), (ms(100), vec![]));
    let every = |v: &str| {
        parse(&["--experimental-corrupt-check-time", v])
            .unwrap()
            .corrupt_check_interval
    };
    assert_eq!(every("1m"), Some(std::time::Duration::from_secs(60)));
    assert_eq!(every("0s"), None, "etcd's default: no periodic check");
    assert_eq!(every("-1s"), None);
    assert!(!parse(&[]).unwrap().initial_corrupt_check);
    let c = parse(&["--experimental-initial-corrupt-check"]).unwrap();
    assert!(c.initial_corrupt_check);
    assert!(msg(&["--experimental-initial-corrupt-check=maybe"]).contains("maybe"));
}

#[test]
fn refusals_are_clear() {
    let msg = |args: &[&str]| parse(args).unwrap_err().to_string();
    assert!(msg(&["--election-timeout", "100"]).contains("at least as 5 times"));
    assert!(msg(&["--initial-cluster-state", "old"]).contains("clusterState"));
    assert!(matches!(
        parse(&["--no-such-flag"]),
        Err(ConfigError::Clap(_))
    ));
}

#[test]
fn auto_compaction_reads_its_retention_as_etcd_does() {
    use crate::compactor::Retention;
    let read = |args: &[&str]| parse(args).unwrap().auto_compaction;
    let secs = std::time::Duration::from_secs;
    assert_eq!(read(&[]), None, "etcd's default: periodic, 0, off");
    assert_eq!(read(&["--auto-compaction-retention=0"]), None);
    assert_eq!(read(&["--auto-compaction-retention=0s"]), None);
    assert_eq!(read(&["--auto-compaction-retention="]), None, "empty is 0");
    assert_eq!(
        read(&["--auto-compaction-retention", "2s"]),
        Some(Retention::Periodic(secs(2)))
    );
    // A bare number is hours in periodic mode, with Go's Atoi's optional sign.
    assert_eq!(
        read(&["-auto-compaction-retention=5"]),
        Some(Retention::Periodic(secs(5 * 3600)))
    );
    assert_eq!(
        read(&["--auto-compaction-retention=+1"]),
        Some(Retention::Periodic(secs(3600)))
    );
    assert_eq!(
        read(&["--auto-compaction-retention=1.5h"]),
        Some(Retention::Periodic(secs(5400)))
    );
    // ...and revisions in revision mode, where a duration counts its nanoseconds.
    let revision = |r: &str| {
        read(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            r,
        ])
    };
    assert_eq!(revision("1000"), Some(Retention::Revisions(1000)));
    assert_eq!(revision("0"), None);
    assert_eq!(revision("1us"), Some(Retention::Revisions(1000)));
    assert_eq!(revision("-1us"), Some(Retention::Revisions(-1000)));
    // Go takes a negative duration, and etcd's compactor then keeps nothing old.
    assert_eq!(
        read(&["--auto-compaction-retention", "-1s"]),
        Some(Retention::PeriodicNegative(secs(1)))
    );
    // An empty mode passes etcd's checks: a bare number then means no retention.
    assert_eq!(
        read(&["--auto-compaction-mode=", "--auto-compaction-retention=5"]),
        None
    );
}

#[test]
fn auto_compaction_flags_come_from_the_environment_and_config_file_too() {
    let path = std::env::temp_dir().join(format!("beacon-ac-{}.yml", std::process::id()));
    std::fs::write(
        &path,
        "auto-compaction-mode: revision\nauto-compaction-retention: 10\n",
    )
    .unwrap();
    let c = parse(&["--config-file", &path.display().to_string()]).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        c.auto_compaction,
        Some(crate::compactor::Retention::Revisions(10))
    );
    // The environment variables, as clap reads the other flags'.
    assert_eq!(
        env_of("auto_compaction_mode").as_deref(),
        Some("ETCD_AUTO_COMPACTION_MODE")
    );
    assert_eq!(
        env_of("auto_compaction_retention").as_deref(),
        Some("ETCD_AUTO_COMPACTION_RETENTION")
    );
}

#[test]
fn auto_compaction_refusals_are_etcds() {
    let msg = |args: &[&str]| parse(args).unwrap_err().to_string();
    assert_eq!(
        msg(&["--auto-compaction-mode", "weird"]),
        "unknown auto-compaction-mode \"weird\""
    );
    assert_eq!(
        msg(&["--auto-compaction-retention", "abc"]),
        "error parsing CompactionRetention: time: invalid duration \"abc\""
    );
    assert_eq!(
        msg(&["--auto-compaction-retention=-5"]),
        "error parsing CompactionRetention: time: missing unit in duration \"-5\""
    );
    assert_eq!(
        msg(&["--auto-compaction-retention=5x"]),
        "error parsing CompactionRetention: time: unknown unit \"x\" in duration \"5x\""
    );
    // etcd accepts these flags and then fails as it starts its compactor.
    assert_eq!(
        msg(&["--auto-compaction-mode=", "--auto-compaction-retention=5m"]),
        "unsupported compaction mode "
    );
    let tiny = msg(&["--auto-compaction-retention=9ns"]);
    assert!(tiny.contains("--auto-compaction-retention=9ns"), "{tiny}");
    assert!(parse(&["--auto-compaction-retention=10ns"]).is_ok());
}

#[test]
fn max_request_bytes_sets_the_proposal_and_grpc_limits_as_etcd() {
    use crate::limits::{RequestBytesMax, GRPC_MESSAGE_BYTES_MAX, V3_PROPOSAL_BYTES_MAX};
    let c = parse(&[]).unwrap();
    assert_eq!(c.request_bytes_max, RequestBytesMax::default());
    assert_eq!(c.request_bytes_max.proposal(), 1_572_864);
    assert_eq!(c.request_bytes_max.grpc_message(), GRPC_MESSAGE_BYTES_MAX);
    let c = parse(&["--max-request-bytes", "2048"]).unwrap();
    assert_eq!(c.request_bytes_max.proposal(), 2048);
    assert_eq!(c.request_bytes_max.grpc_message(), 2048 + (512 << 10));
    assert!(c.flag_warnings.is_empty(), "{:?}", c.flag_warnings);
    // 0 is a value too: every write is too large, and only the gRPC allowance is left.
    let c = parse(&["-max-request-bytes=0"]).unwrap();
    assert_eq!(c.request_bytes_max.grpc_message(), 512 << 10);
    // etcd takes any uint, warning above 10 MiB; gRPC cannot announce a message over
    // 4 GiB, so the message limit stops there.
    let c = parse(&["--max-request-bytes=18446744073709551615"]).unwrap();
    assert_eq!(c.request_bytes_max.grpc_message(), u32::MAX as usize);
    assert!(c.request_bytes_max.gateway_request() >= c.request_bytes_max.grpc_message());
    assert_eq!(
        c.flag_warnings,
        ["MaxRequestBytes 18446744073709551615 exceeds maximum recommended size 10485760"]
    );
    let c = parse(&["--logger=zap", "--max-request-bytes=10485761"]).unwrap();
    assert!(
        c.flag_warnings[0].starts_with("exceeded recommended request limit"),
        "{:?}",
        c.flag_warnings
    );
    assert!(parse(&["--max-request-bytes=-1"]).is_err());
    assert!(parse(&["--max-request-bytes=lots"]).is_err());
    assert_eq!(V3_PROPOSAL_BYTES_MAX, 1_572_864, "etcd's default");
}

#[test]
fn max_txn_ops_is_the_members_own_limit() {
    assert_eq!(parse(&[]).unwrap().txn_ops_max, 128, "etcd's default");
    assert_eq!(parse(&["--max-txn-ops", "4"]).unwrap().txn_ops_max, 4);
    assert_eq!(parse(&["-max-txn-ops=0"]).unwrap().txn_ops_max, 0);
    assert_eq!(
        parse(&["--max-txn-ops=100000"]).unwrap().txn_ops_max,
        100_000
    );
    assert!(parse(&["--max-txn-ops=-1"]).is_err(), "a uint, as Go's");
    // Go's syntax for unsigned flags: a leading 0 is octal.
    assert_eq!(parse(&["--max-txn-ops=010"]).unwrap().txn_ops_max, 8);
    let c = parse(&["--max-request-bytes=0x800"]).unwrap();
    assert_eq!(c.request_bytes_max.proposal(), 2048);
}

#[test]
fn log_outputs_follow_the_logger_as_etcds() {
    assert_eq!(parse(&[]).unwrap().log_outputs, [LogOutput::Stderr]);
    let c = parse(&["--log-outputs", "stdout"]).unwrap();
    assert_eq!(c.log_outputs, [LogOutput::Stdout]);
    // capnslog (the default logger) writes to one standard stream; files need zap.
    let refused = parse(&["--log-outputs=/tmp/beacon.log"]).unwrap_err();
    assert!(
        refused.to_string().contains("unknown log-output"),
        "{refused}"
    );
    let c = parse(&["--logger=zap", "--log-outputs=/tmp/beacon.log,stderr"]).unwrap();
    assert_eq!(
        c.log_outputs,
        [
            LogOutput::File(PathBuf::from("/tmp/beacon.log")),
            LogOutput::Stderr
        ]
    );
    // Beacon's own --log-format does not change which logger's rules apply.
    assert!(parse(&["--log-format=json", "--log-outputs=/tmp/beacon.log"]).is_err());
    assert!(parse(&["--logger=zap", "--log-outputs=default,stdout"]).is_err());
    // etcd 3.4's deprecated --log-output: alone it only warns...
    let c = parse(&["--log-output=stdout"]).unwrap();
    assert_eq!(c.log_outputs, [LogOutput::Stderr]);
    assert!(c.flag_warnings[0].contains("Deprecated '--log-output'"));
    // ...and with more values than --log-outputs it wins.
    let c = parse(&["--logger=zap", "-log-output", "stdout,stderr"]).unwrap();
    assert_eq!(c.log_outputs, [LogOutput::Stderr, LogOutput::Stdout]);
}

#[test]
fn proxy_flags_take_etcds_defaults_and_values() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.proxy, ProxySettings::default());
    assert_eq!(c.proxy.mode, ProxyMode::Off);
    let c = parse(&[
        "--proxy",
        "on",
        "-proxy-refresh-interval=0x10",
        "--proxy-dial-timeout=0",
        "--proxy-read-timeout",
        "250",
    ])
    .unwrap();
    assert_eq!(c.proxy.mode, ProxyMode::On);
    assert_eq!(
        c.proxy.refresh_interval,
        std::time::Duration::from_millis(16)
    );
    assert_eq!(c.proxy.dial_timeout, None);
    assert_eq!(
        c.proxy.read_timeout,
        Some(std::time::Duration::from_millis(250))
    );
    let refused = parse(&["--proxy=bogus"]).unwrap_err().to_string();
    assert_eq!(
        refused,
        "invalid value \"bogus\" for flag -proxy: invalid value"
    );
    assert!(parse(&["--proxy-failure-wait=-1"]).is_err());
}
