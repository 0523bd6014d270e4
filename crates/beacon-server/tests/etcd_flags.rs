//! Beacon in place of the etcd binary: every flag `etcd --help` (3.4.23) lists is known
//! to Beacon, either implemented or refused by name at the values Beacon cannot honour
//! (never clap's "unexpected argument"); one command line with repeated flags, etcd's
//! defaults of flags Beacon has not built yet and flags that mean nothing here starts
//! both etcd and Beacon; both say when they are ready to serve, and serve only then;
//! the gRPC connection flags (keep-alive pings, streams per connection) and
//! `--enable-grpc-gateway=false` act alike; `--log-outputs` sends the log where etcd
//! sends it and refuses what etcd refuses; and
//! a config file in etcd's YAML starts either.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::watch_client::WatchClient;
use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest};
use beacon_server::config::{Config, ConfigError};
use beacon_testkit::{
    beacon_bin, etcd_bin, etcd_or_skip, free_ports, http_get, ServerKind, ServerProcess, TempDir,
    READY_TIMEOUT,
};

/// etcd, then Beacon: each test runs the same steps against both.
fn both() -> [(ServerKind, std::path::PathBuf); 2] {
    [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ]
}

/// `--flag 'default'` pairs from etcd's help text (a few defaults are unquoted).
fn etcd_help_flags() -> Vec<(String, String)> {
    let help = Command::new(etcd_bin())
        .arg("--help")
        .output()
        .expect("running etcd --help");
    let text =
        String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    text.lines()
        .filter_map(|line| {
            let (flag, rest) = line.trim().strip_prefix("--")?.split_once(' ')?;
            let default = rest.trim();
            let default = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(default);
            Some((flag.to_string(), default.to_string()))
        })
        .collect()
}

#[test]
fn every_flag_of_etcd_help_is_known_at_its_default() {
    if !etcd_or_skip() {
        return;
    }
    let flags = etcd_help_flags();
    assert!(
        flags.len() >= 80,
        "etcd --help listed {} flags",
        flags.len()
    );
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for (flag, default) in &flags {
        let value = match (flag.as_str(), default.as_str()) {
            ("data-dir", _) => "/tmp/beacon-etcd-flags-test".to_string(),
            (_, "math.MaxUint32") => u32::MAX.to_string(),
            _ => default.clone(),
        };
        let args = ["beacon".to_string(), format!("--{flag}={value}")];
        match Config::from_args(args.iter().map(OsString::from)) {
            Ok(_) => accepted.push(flag.as_str()),
            Err(ConfigError::Invalid(why) | ConfigError::Refused(why))
                if why.contains(&format!("--{flag}=")) =>
            {
                refused.push(flag.as_str())
            }
            Err(e) => panic!("--{flag}={value}: not refused by name: {e}"),
        }
    }
    eprintln!(
        "{} of {} etcd flags accepted at etcd's default; refused by name: {refused:?}",
        accepted.len(),
        flags.len()
    );
    // What Beacon does with these defaults is what etcd does with them.
    for flag in [
        "client-cert-auth",
        "proxy",
        "max-txn-ops",
        "max-wals",
        "log-level",
        "cors",
        "bcrypt-cost",
        "auth-token",
        "auth-token-ttl",
        "initial-election-tick-advance",
        "strict-reconfig-check",
        "grpc-keepalive-min-time",
        "grpc-keepalive-interval",
        "grpc-keepalive-timeout",
        "auto-compaction-mode",
        "auto-compaction-retention",
    ] {
        assert!(accepted.contains(&flag), "--{flag} at its default");
    }
    // Every etcd default is accepted.
    assert!(refused.is_empty(), "refused at etcd's default: {refused:?}");
}

/// `--enable-grpc-gateway=false` (a flag etcd 3.4 parses but its help leaves out): etcd registers no `/v3/` handler, so a gateway call
/// (and `/v3` itself) gets Go's 404; by default both serve it.
#[test]
fn the_json_gateway_turned_off_answers_404() {
    if !etcd_or_skip() {
        return;
    }
    let call = |port: u16, path: &str| {
        let body = r#"{"key":"YQ=="}"#;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = sock.read_to_string(&mut answer);
        let status = answer.lines().next().unwrap_or("").to_string();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        format!(
            "{status} {}",
            if status.contains("404") { body } else { "" }
        )
    };
    let mut told = Vec::new();
    for (kind, bin) in both() {
        let mut answers = Vec::new();
        for gateway in ["--enable-grpc-gateway", "--enable-grpc-gateway=false"] {
            let members = ServerProcess::cluster_with(kind, bin.clone(), 1, &[gateway])
                .unwrap_or_else(|e| panic!("{kind:?} {gateway}: {e}"));
            let port = members[0].client_port();
            for path in ["/v3/kv/range", "/v3beta/kv/range", "/v3"] {
                answers.push(format!("{gateway} {path}: {}", call(port, path)));
            }
        }
        told.push(answers);
    }
    beacon_testkit::assert_same_answers(&told[0], &told[1]);
    assert!(told[1][0].contains("200 OK"), "{:?}", told[1]);
    assert!(told[1][3].contains("404 page not found"), "{:?}", told[1]);
}

#[test]
fn an_etcd_command_line_with_repeats_and_foreign_flags_starts_both() {
    if !etcd_or_skip() {
        return;
    }
    let args = [
        "--snapshot-count=5",
        "--snapshot-count",
        "100000",
        "--max-wals",
        "3",
        "-max-wals=4",
        "--client-cert-auth=false",
        "--proxy",
        "off",
        "--auto-compaction-retention",
        "0",
        "--strict-reconfig-check=false",
        "-max-txn-ops=128",
        "--enable-pprof=false",
        "--log-level",
        "debug",
        "--log-level=info",
        // Go takes negative durations (etcd reads them as 0), in both forms.
        "--grpc-keepalive-min-time",
        "-1s",
        "--grpc-keepalive-interval=-2h",
        "--experimental-warning-apply-duration=-1ms",
        // Under etcd's minimum: raised to it, with a warning.
        "--experimental-watch-progress-notify-interval=1ms",
        // etcd 3.4's deprecated flag, alone: a warning, and the log stays on stderr.
        "--log-output=stdout",
    ];
    for (kind, bin) in both() {
        let mut members = ServerProcess::cluster_with(kind, bin, 1, &args)
            .unwrap_or_else(|e| panic!("{kind:?} refused the command line: {e}"));
        let log = members[0].log_tail(200);
        let raised = "adjusting watch progress notify interval to minimum period 100ms";
        assert!(log.contains(raised), "{kind:?}:\n{log}");
        if kind == ServerKind::Beacon {
            let warned = log.matches("--max-wals=4 is accepted").count();
            assert_eq!(warned, 1, "one warning, for the last value:\n{log}");
            assert!(!log.contains("DEBUG"), "the last --log-level wins:\n{log}");
            assert!(log.contains("Deprecated '--log-output' flag is set to [\"stdout\"]"));
        }
        members[0].terminate(std::time::Duration::from_secs(10));
    }
}

/// etcd serves client requests only once the member has published itself through a
/// leader, and says "ready to serve client requests" then; scripts wait for that line.
/// A member restarted without a quorum answers nothing until a peer returns.
#[test]
fn a_member_serves_clients_once_published_and_says_so() {
    if !etcd_or_skip() {
        return;
    }
    for (kind, bin) in both() {
        let mut members = ServerProcess::cluster(kind, bin, 3).expect("a 3-member cluster");
        let ready_lines = |m: &ServerProcess| m.log_tail(10_000).matches(READY).count();
        assert_eq!(ready_lines(&members[0]), 1, "{kind:?}: said once at start");
        members[1].kill9();
        members[2].kill9();
        members[0].restart_unready().expect("restarting m0");
        // Long enough for a lone member's start and several election timeouts.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let answer = http_get(members[0].client_port(), "/version");
            assert!(
                answer.is_err(),
                "{kind:?}: served without a quorum: {answer:?}"
            );
        }
        assert_eq!(ready_lines(&members[0]), 1, "{kind:?}: not ready yet");
        members[1].restart().expect("restarting m1");
        let deadline = Instant::now() + READY_TIMEOUT;
        while http_get(members[0].client_port(), "/version").is_err() {
            assert!(Instant::now() < deadline, "{kind:?}: m0 never served");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            ready_lines(&members[0]),
            2,
            "{kind:?}: said again once ready"
        );
    }
}

const READY: &str = "ready to serve client requests";

/// `--grpc-keepalive-interval` and `--grpc-keepalive-timeout`: a gRPC client that stays
/// silent is pinged after the interval, and a client that never answers the ping loses
/// its connection after the timeout. Spoken as raw HTTP/2 frames, so that nothing
/// answers the ping for the test.
#[test]
fn an_unanswered_keepalive_ping_closes_the_connection() {
    if !etcd_or_skip() {
        return;
    }
    let args = [
        "--grpc-keepalive-interval=300ms",
        "--grpc-keepalive-timeout=300ms",
    ];
    for (kind, bin) in both() {
        let members = ServerProcess::cluster_with(kind, bin, 1, &args).expect("a member");
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", members[0].client_port()))
            .expect("connecting");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The client preface, then an empty SETTINGS frame.
        sock.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .unwrap();
        let started = Instant::now();
        let mut pinged = false;
        // Closed: the connection ended well before the read timeout could end it.
        let closed = loop {
            let Some((kind_byte, flags)) = read_frame(&mut sock) else {
                break started.elapsed() < Duration::from_secs(8);
            };
            match (kind_byte, flags & 1) {
                // SETTINGS: acknowledged, as a live client does.
                (4, 0) => sock.write_all(b"\0\0\0\x04\x01\0\0\0\0").unwrap(),
                // PING, not acknowledged.
                (6, 0) => pinged = true,
                _ => {}
            }
            if started.elapsed() > Duration::from_secs(8) {
                break false;
            }
        };
        assert!(pinged, "{kind:?}: no keep-alive ping");
        assert!(
            closed,
            "{kind:?}: the connection outlived the ping's timeout"
        );
    }
}

/// One HTTP/2 frame's type and flags, its payload skipped; `None` at the end of the
/// connection (or a read error: a reset is an end too).
fn read_frame(sock: &mut std::net::TcpStream) -> Option<(u8, u8)> {
    let mut head = [0u8; 9];
    sock.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).ok()?;
    Some((head[3], head[4]))
}

/// `--max-concurrent-streams`: with 1, a call on a connection whose one stream is open
/// (a watch) waits until that stream ends.
#[test]
fn calls_past_max_concurrent_streams_wait_for_a_free_stream() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    for (kind, bin) in both() {
        let members = ServerProcess::cluster_with(kind, bin, 1, &["--max-concurrent-streams=1"])
            .expect("a member");
        let url = members[0].client_url();
        runtime.block_on(async {
            let channel = beacon_testkit::grpc_channel(&url).await;
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: b"k".to_vec(),
                    ..WatchCreateRequest::default()
                })),
            };
            // Queued before the call: grpc-go sends the stream's headers with its first
            // answer. Closing `tx` ends the stream's request side, which ends the watch.
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(create).await.expect("queued");
            let requests = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|r| (r, rx))
            });
            let mut watch = WatchClient::new(channel.clone())
                .watch(requests)
                .await
                .expect("a watch stream")
                .into_inner();
            watch.message().await.expect("created").expect("an answer");
            let mut kv = KvClient::new(channel);
            let range = || RangeRequest {
                key: b"k".to_vec(),
                ..RangeRequest::default()
            };
            let held = tokio::time::timeout(Duration::from_millis(500), kv.range(range())).await;
            assert!(
                held.is_err(),
                "{kind:?}: a second call ran beside the watch"
            );
            drop((tx, watch));
            let ran = tokio::time::timeout(Duration::from_secs(5), kv.range(range())).await;
            assert!(
                matches!(ran, Ok(Ok(_))),
                "{kind:?}: after the watch: {ran:?}"
            );
        });
    }
}

/// `--config-file`: etcd's YAML (flag names as keys, the TLS settings nested) starts a
/// member, and the command line beside it is ignored, by etcd and Beacon alike.
#[test]
fn a_config_file_starts_a_member_and_the_command_line_is_ignored() {
    if !etcd_or_skip() {
        return;
    }
    for (kind, bin) in both() {
        let dir = TempDir::new("config-file").expect("a temp dir");
        let ports = free_ports(2);
        let (client, peer) = (
            format!("http://127.0.0.1:{}", ports[0]),
            format!("http://127.0.0.1:{}", ports[1]),
        );
        let yaml = format!(
            "# as etcd.conf.yml.sample writes it\n\
             name: 'from-file'\n\
             data-dir: {data}\n\
             wal-dir:\n\
             snapshot-count: 10000\n\
             listen-client-urls: {client}\n\
             advertise-client-urls: {client}\n\
             listen-peer-urls: {peer}\n\
             initial-advertise-peer-urls: {peer}\n\
             initial-cluster: from-file={peer}\n\
             initial-cluster-state: 'new'\n\
             enable-v2: true\n\
             client-transport-security:\n  client-cert-auth: false\n  auto-tls: false\n\
             log-outputs: [stderr]\n",
            data = dir.path().join("data").display(),
        );
        let file = dir.path().join("etcd.yml");
        std::fs::write(&file, yaml).expect("writing the file");
        let log = std::fs::File::create(dir.path().join("log")).expect("a log file");
        let mut child = Command::new(bin)
            .args(["--name", "from-flag", "--config-file"])
            .arg(&file)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting the server");
        let deadline = Instant::now() + READY_TIMEOUT;
        let members = loop {
            match http_get(ports[0], "/v2/members") {
                Ok(answer) if answer.status == 200 && answer.body.contains("clientURLs") => {
                    break answer.body;
                }
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
                    panic!("{kind:?} did not serve from its config file:\n{log}");
                }
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            members.contains("\"name\":\"from-file\""),
            "{kind:?}: {members}"
        );
    }
}

/// `--experimental-warning-apply-duration`: with 1ns, every applied write is slower than
/// the limit and logged as having "took too long", by etcd and Beacon alike (etcd's
/// default logger words it `request "..." with result "..." took too long (21µs) to
/// execute`, its zap logger "apply request took too long", as Beacon does).
#[test]
fn applies_slower_than_the_warning_duration_are_logged() {
    if !etcd_or_skip() {
        return;
    }
    for (kind, bin) in both() {
        let args = ["--experimental-warning-apply-duration=1ns"];
        let members = ServerProcess::cluster_with(kind, bin, 1, &args).expect("a member");
        let port = members[0].client_port();
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let body = "value=v";
        write!(
            sock,
            "PUT /v2/keys/slow HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 201"), "{kind:?}: {answer}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !members[0].log_tail(200).contains("took too long") {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: no warning:\n{}",
                members[0].log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `--logger zap`: etcd 3.4 writes its log as JSON lines, one object a line with its
/// level, and so does Beacon; Beacon's own `--log-format json` asks for the same without
/// naming etcd's logger. etcd refuses a logger it does not have, and so does Beacon.
#[test]
fn zap_logs_json_lines() {
    if !etcd_or_skip() {
        return;
    }
    for (kind, bin) in both() {
        let member =
            ServerProcess::cluster_with(kind, bin.clone(), 1, &["--logger=zap"]).expect("a member");
        let log = std::fs::read_to_string(member[0].log_path()).expect("the log");
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{kind:?}: no log");
        for line in lines {
            let object: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{kind:?}: not a JSON line ({e}): {line}"));
            assert!(object.get("level").is_some(), "{kind:?}: no level: {line}");
        }
        let refused = Command::new(&bin)
            .args(["--logger", "bogus"])
            .output()
            .expect("runs");
        assert!(!refused.status.success(), "{kind:?}: --logger bogus");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains("unknown logger option \"bogus\""),
            "{kind:?}: {said}"
        );
    }
    let member = ServerProcess::cluster_with(
        ServerKind::Beacon,
        beacon_bin(),
        1,
        &["--log-format", "json"],
    )
    .expect("a member");
    let log = std::fs::read_to_string(member[0].log_path()).expect("the log");
    let first = log.lines().next().expect("a line");
    let object: serde_json::Value = serde_json::from_str(first).expect("a JSON line");
    assert!(object.get("message").is_some(), "{first}");
}

/// How a start that should be refused went: whether it failed, and its stderr. Run in
/// a directory of its own on free ports, so that a start that is not refused harms
/// nothing, and stopped after a while if so.
fn refused_start(bin: &std::path::Path, args: &[&str]) -> (bool, String) {
    let dir = TempDir::new("refused-start").expect("a directory");
    let ports = free_ports(2);
    let mut child = Command::new(bin)
        .current_dir(dir.path())
        .args([
            format!("--listen-client-urls=http://127.0.0.1:{}", ports[0]),
            format!("--advertise-client-urls=http://127.0.0.1:{}", ports[0]),
            format!("--listen-peer-urls=http://127.0.0.1:{}", ports[1]),
            format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                ports[1]
            ),
            format!("--initial-cluster=default=http://127.0.0.1:{}", ports[1]),
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("waits").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("ends");
    let failed = out.status.code().is_some_and(|c| c != 0);
    (failed, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `--log-outputs`: under `--logger zap` a file (here a relative path, from the
/// working directory) takes the whole log and the standard streams nothing; the values
/// etcd refuses (a file under capnslog, two streams under capnslog, `default` beside
/// another under zap, a file that cannot be created, a URL scheme zap has no sink for,
/// the deprecated `--log-output` at the same value, or with more values that then
/// win) are refused by both, in etcd's words.
#[test]
fn log_outputs_sends_the_log_where_etcd_sends_it() {
    if !etcd_or_skip() {
        return;
    }
    for (kind, bin) in both() {
        let args = ["--logger=zap", "--log-outputs=member.log"];
        let members = ServerProcess::cluster_with(kind, bin.clone(), 1, &args).expect("a member");
        let file = members[0].log_path().with_file_name("member.log");
        // etcd 3.4's zap logger has no "ready to serve client requests" line.
        let serving = match kind {
            ServerKind::Etcd => "serving client traffic insecurely",
            ServerKind::Beacon => "ready to serve client requests",
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = loop {
            let log = std::fs::read_to_string(&file).unwrap_or_default();
            if log.contains(serving) || Instant::now() > deadline {
                break log;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(log.contains(serving), "{kind:?}: {log}");
        for line in log.lines() {
            let object: Result<serde_json::Value, _> = serde_json::from_str(line);
            assert!(object.is_ok(), "{kind:?}: not a JSON line: {line}");
        }
        let streams = std::fs::read_to_string(members[0].log_path()).unwrap_or_default();
        assert_eq!(streams, "", "{kind:?}: stdout and stderr");
        for (args, said) in [
            (
                &["--log-outputs=/tmp/beacon-capnslog.log"][..],
                "unknown log-output \"/tmp/beacon-capnslog.log\" (only supports \"default\", \"stderr\", \"stdout\")",
            ),
            (
                &["--log-outputs=stdout,stderr"][..],
                "--logger=capnslog supports only 1 value in '--log-outputs', got [\"stderr\" \"stdout\"]",
            ),
            (
                &["--logger=zap", "--log-outputs=default,member.log"][..],
                "multi logoutput for \"default\" is not supported yet",
            ),
            (
                &["--logger=zap", "--log-outputs=/nonexistent/dir/x.log"][..],
                "open sink \"/nonexistent/dir/x.log\": open /nonexistent/dir/x.log: no such file or directory",
            ),
            (
                &["--log-output=stdout", "--log-outputs=stdout"][..],
                "'--log-output=[\"stdout\"]' and '--log-outputs=[\"stdout\"]' are incompatible; only set --log-outputs",
            ),
            (
                &["--log-output=stdout,stderr"][..],
                "--logger=capnslog supports only 1 value in '--log-outputs', got [\"stderr\" \"stdout\"]",
            ),
            (
                &["--logger=zap", "--log-outputs=http://x/y"][..],
                "open sink \"http://x/y\": no sink found for scheme \"http\"",
            ),
        ] {
            let (failed, stderr) = refused_start(&bin, args);
            assert!(failed, "{kind:?} {args:?}: not refused");
            assert!(stderr.contains(said), "{kind:?} {args:?}: {stderr}");
        }
    }
}
