//! `/metrics`: every family Beacon exposes has etcd 3.4's name, help text and type
//! (so etcd's dashboards and alerts read it), the figures move under load, and
//! `--listen-metrics-urls` serves it (and `/health`) on a port of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::watch_client::WatchClient;
use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::{PutRequest, RangeRequest, WatchCreateRequest, WatchRequest};
use beacon_proto::v3lockpb::lock_client::LockClient;
use beacon_proto::v3lockpb::UnlockRequest;
use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, free_port, ServerKind, ServerProcess};
use futures_util::StreamExt as _;

/// Each family's `# HELP` and `# TYPE` lines, and its samples (name with labels, value).
#[derive(Debug, Default)]
struct Scrape {
    meta: BTreeMap<String, Vec<String>>,
    samples: BTreeMap<String, f64>,
}

/// Scrapes with reqwest (etcd's answer is chunked).
fn scrape(runtime: &tokio::runtime::Runtime, server: &ServerProcess) -> Scrape {
    let url = format!("{}/metrics", server.client_url());
    let body = runtime.block_on(async {
        let answer = reqwest::get(url).await.expect("scraping /metrics");
        assert_eq!(answer.status(), 200);
        answer.text().await.expect("the body")
    });
    let mut scrape = Scrape::default();
    for line in body.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let name = meta.split_whitespace().nth(1).unwrap_or_default();
            scrape
                .meta
                .entry(name.to_string())
                .or_default()
                .push(line.to_string());
        } else if let Some((name, value)) = line.rsplit_once(' ') {
            let value = value.parse().unwrap_or_else(|_| panic!("a sample: {line}"));
            scrape.samples.insert(name.to_string(), value);
        }
    }
    scrape
}

#[test]
fn every_family_is_etcds_and_the_figures_move_under_load() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = ServerProcess::beacon().expect("beacon starts");
    let (theirs, ours) = (scrape(&runtime, &etcd), scrape(&runtime, &beacon));
    assert!(ours.meta.len() >= 15, "families: {:?}", ours.meta.keys());
    for (name, lines) in &ours.meta {
        assert_eq!(Some(lines), theirs.meta.get(name), "{name}'s help and type");
    }
    for name in [
        "etcd_server_has_leader",
        "etcd_server_is_leader",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_version{server_version=\"3.4.23\"}",
        "etcd_cluster_version{cluster_version=\"3.4\"}",
    ] {
        assert_eq!(ours.samples.get(name), theirs.samples.get(name), "{name}");
    }

    // Writes while scraping: the proposal figures and the sizes grow.
    let before = ours;
    let url = beacon.client_url();
    let writer = runtime.spawn(async move {
        let http = reqwest::Client::new();
        for i in 0..200 {
            let put = http
                .put(format!("{url}/v2/keys/metrics/k{}", i % 20))
                .form(&[("value", "v".repeat(100))])
                .send()
                .await;
            assert!(put.is_ok_and(|r| r.status().is_success()), "put {i}");
        }
    });
    let mut during = scrape(&runtime, &beacon);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while during.samples["etcd_server_proposals_applied_total"]
        <= before.samples["etcd_server_proposals_applied_total"]
    {
        assert!(std::time::Instant::now() < deadline, "no proposal applied");
        std::thread::sleep(Duration::from_millis(10));
        during = scrape(&runtime, &beacon);
    }
    runtime.block_on(writer).expect("the writes");
    let after = scrape(&runtime, &beacon);
    let grew = |name: &str| after.samples[name] - before.samples[name];
    assert!(grew("etcd_server_proposals_committed_total") >= 200.0);
    assert!(grew("etcd_server_proposals_applied_total") >= 200.0);
    assert!(grew("process_cpu_seconds_total") > 0.0);
    // Each acknowledged write was synced; syncs are shared, so at least one more.
    assert!(grew("etcd_disk_wal_fsync_duration_seconds_count") >= 1.0);
    assert!(grew("etcd_disk_backend_commit_duration_seconds_count") >= 1.0);
    assert!(grew("etcd_disk_wal_fsync_duration_seconds_sum") > 0.0);
    assert_eq!(after.samples["etcd_server_proposals_pending"], 0.0);
    assert_eq!(after.samples["etcd_server_proposals_failed_total"], 0.0);
}

/// `--listen-metrics-urls`: another port serving `/metrics` and `/health`, and nothing
/// else, on etcd and Beacon alike.
#[test]
fn metrics_urls_serve_metrics_and_health_alone() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let _member = ServerProcess::cluster_with(kind, bin, 1, &["--listen-metrics-urls", &url])
            .expect("a member");
        let answers: Vec<(u16, String)> = runtime.block_on(async {
            let mut answers = Vec::new();
            for path in ["/metrics", "/health", "/v2/keys/", "/version"] {
                let answer = reqwest::get(format!("{url}{path}"))
                    .await
                    .expect("an answer");
                let status = answer.status().as_u16();
                answers.push((status, answer.text().await.expect("a body")));
            }
            answers
        });
        assert_eq!(answers[0].0, 200, "{kind:?} /metrics");
        assert!(
            answers[0].1.contains("\netcd_server_has_leader 1\n"),
            "{kind:?}"
        );
        assert_eq!(
            answers[1],
            (200, "{\"health\":\"true\"}".to_string()),
            "{kind:?}"
        );
        assert_eq!(answers[2].0, 404, "{kind:?} /v2/keys/");
        assert_eq!(answers[3].0, 404, "{kind:?} /version");
    }
}

/// `grpc_server_started_total` and `grpc_server_handled_total`: the same series as
/// etcd's (every method it registers, every code), and each call counted once with
/// its outcome, on etcd and Beacon alike; `grpc_server_msg_{received,sent}_total` count
/// each message (a unary call's answer only when it succeeds, each of a stream's), and
/// `etcd_network_client_grpc_{received,sent}_bytes_total` their bytes.
#[test]
fn grpc_calls_are_counted_by_method_and_code() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mut series, mut received_bytes) = (Vec::new(), Vec::new());
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let members = ServerProcess::cluster(kind, bin, 1).expect("a member");
        let before = scrape(&runtime, &members[0]);
        let url = members[0].client_url();
        runtime.block_on(async {
            let mut kv = KvClient::new(beacon_testkit::grpc_channel(&url).await);
            let range = |key: &[u8]| RangeRequest {
                key: key.to_vec(),
                ..RangeRequest::default()
            };
            for _ in 0..3 {
                kv.range(range(b"k")).await.expect("a range");
            }
            let refused = kv.range(range(b"")).await.expect_err("an empty key");
            assert_eq!(refused.code(), tonic::Code::InvalidArgument);
            // Lock's series appear with its first call, Unlock's codes each with theirs.
            let mut lock = LockClient::new(beacon_testkit::grpc_channel(&url).await);
            let unlock = |key: &[u8]| UnlockRequest { key: key.to_vec() };
            lock.unlock(unlock(b"k")).await.expect("an unlock");
            lock.unlock(unlock(b"")).await.expect_err("an empty key");
            // A watch: one request in, its creation and one event out.
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: b"w".to_vec(),
                    ..WatchCreateRequest::default()
                })),
            };
            let requests =
                futures_util::stream::iter([create]).chain(futures_util::stream::pending());
            let mut watch = WatchClient::new(beacon_testkit::grpc_channel(&url).await)
                .watch(requests)
                .await
                .expect("a watch stream")
                .into_inner();
            watch.message().await.expect("created").expect("an answer");
            let put = PutRequest {
                key: b"w".to_vec(),
                value: b"v".to_vec(),
                ..PutRequest::default()
            };
            kv.put(put).await.expect("a put");
            watch.message().await.expect("an event").expect("an answer");
        });
        let after = scrape(&runtime, &members[0]);
        let grew = |name: &str| {
            after.samples.get(name).copied().unwrap_or(0.0)
                - before.samples.get(name).copied().unwrap_or(0.0)
        };
        let kv_range = "grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"";
        assert_eq!(
            grew(&format!("grpc_server_started_total{{{kv_range}}}")),
            4.0,
            "{kind:?}"
        );
        for (code, n) in [("OK", 3.0), ("InvalidArgument", 1.0), ("Unknown", 0.0)] {
            let name = format!("grpc_server_handled_total{{grpc_code=\"{code}\",{kv_range}}}");
            assert_eq!(grew(&name), n, "{kind:?}: {name}");
        }
        let watch =
            "grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"";
        let unlock = "grpc_method=\"Unlock\",grpc_service=\"v3lockpb.Lock\",grpc_type=\"unary\"";
        for (labels, received, sent) in
            [(kv_range, 4.0, 3.0), (watch, 1.0, 2.0), (unlock, 2.0, 1.0)]
        {
            let name = format!("grpc_server_msg_received_total{{{labels}}}");
            assert_eq!(grew(&name), received, "{kind:?}: {name}");
            let name = format!("grpc_server_msg_sent_total{{{labels}}}");
            assert_eq!(grew(&name), sent, "{kind:?}: {name}");
        }
        assert!(
            grew("etcd_network_client_grpc_sent_bytes_total") > 0.0,
            "{kind:?}"
        );
        // The same requests, so the same bytes: a message's, without gRPC's framing.
        received_bytes.push(grew("etcd_network_client_grpc_received_bytes_total"));
        let names: Vec<String> = after
            .samples
            .keys()
            .filter(|k| k.starts_with("grpc_server_"))
            .cloned()
            .collect();
        series.push(names);
    }
    assert_eq!(series[0], series[1], "the same series as etcd's");
    assert_eq!(received_bytes[0], received_bytes[1], "received bytes");
}

/// `etcd_network_peer_round_trip_time_seconds`: each member probes the others and
/// records a round trip per peer, labelled `To` with the peer's id, within etcd's
/// first 5 s; etcd's help text, type and buckets. And the bytes of Raft messages
/// exchanged with peers (`etcd_network_peer_{sent,received}_bytes_total`), by peer.
#[test]
fn peer_round_trips_are_recorded_per_peer() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let family = "etcd_network_peer_round_trip_time_seconds";
    let mut shapes = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let members = ServerProcess::cluster(kind, bin, 3).expect("a cluster");
        let ids: Vec<String> = members
            .iter()
            .map(|m| {
                let scrape = scrape(&runtime, m);
                let id = scrape.samples.keys().find_map(|k| {
                    let rest = k.strip_prefix("etcd_server_id{server_id=\"")?;
                    Some(rest.trim_end_matches("\"}").to_string())
                });
                id.expect("etcd_server_id")
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let first = loop {
            let first = scrape(&runtime, &members[0]);
            let recorded = ids[1..].iter().all(|to| {
                let count = format!("{family}_count{{To=\"{to}\"}}");
                first.samples.get(&count).is_some_and(|n| *n >= 1.0)
            });
            if recorded {
                break first;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: no round trip recorded to {:?}",
                &ids[1..]
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            !first
                .samples
                .keys()
                .any(|k| k.contains(&format!("To=\"{}\"", ids[0]))),
            "{kind:?}: no round trip to itself"
        );
        let to = &ids[1];
        let sum = first.samples[&format!("{family}_sum{{To=\"{to}\"}}")];
        assert!(
            sum > 0.0 && sum < 1.0,
            "{kind:?}: a loopback round trip: {sum}"
        );
        // The buckets' bounds, the same for every peer.
        let bounds: Vec<String> = first
            .samples
            .keys()
            .filter_map(|k| k.strip_prefix(&format!("{family}_bucket{{To=\"{to}\",le=\"")))
            .map(|le| le.trim_end_matches("\"}").to_string())
            .collect();
        shapes.push((first.meta.get(family).cloned(), bounds));
        // The bytes of Raft messages, by the peer they went to or came from: some with
        // the leader at least (a follower talks to no other follower), none to itself.
        for (bytes, label) in [
            ("etcd_network_peer_sent_bytes_total", "To"),
            ("etcd_network_peer_received_bytes_total", "From"),
        ] {
            let peers: Vec<(&str, f64)> = first
                .samples
                .iter()
                .filter_map(|(k, v)| {
                    let id = k.strip_prefix(&format!("{bytes}{{{label}=\""))?;
                    Some((id.trim_end_matches("\"}"), *v))
                })
                // etcd's streams' link heartbeats name no sender: `From="0"`. Beacon
                // has no such messages.
                .filter(|(id, _)| *id != "0")
                .collect();
            assert!(!peers.is_empty(), "{kind:?}: no {bytes}");
            for (id, n) in &peers {
                assert!(ids[1..].iter().any(|p| p == id), "{kind:?}: {bytes} {id}");
                assert!(*n > 0.0, "{kind:?}: {bytes} {id} {n}");
            }
            shapes.push((first.meta.get(bytes).cloned(), Vec::new()));
        }
    }
    assert!(shapes[0].0.is_some());
    let half = shapes.len() / 2;
    assert_eq!(
        shapes[..half],
        shapes[half..],
        "etcd's help, type and buckets"
    );
}

/// The queries of etcd's Grafana dashboard (`tests/data/grafana-metrics.txt`, the names
/// they use) resolve on a Beacon of two members (the peer traffic's series need a
/// peer) under a little load: every name has a series, but the ones the list says are
/// missing, which must indeed be absent.
#[test]
fn grafana_dashboard_queries_resolve() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let members = ServerProcess::cluster(ServerKind::Beacon, beacon_bin(), 2)
        .or_else(|_| ServerProcess::cluster(ServerKind::Beacon, beacon_bin(), 2))
        .expect("beacon starts");
    let beacon = &members[0];
    let url = beacon.client_url();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        for i in 0..10 {
            let put = http
                .put(format!("{url}/v2/keys/grafana/k{i}"))
                .form(&[("value", "v")])
                .send()
                .await;
            assert!(put.is_ok_and(|r| r.status().is_success()), "put {i}");
        }
        let mut kv = KvClient::new(beacon_testkit::grpc_channel(&url).await);
        let put = PutRequest {
            key: b"grafana".to_vec(),
            value: b"v".to_vec(),
            ..PutRequest::default()
        };
        kv.put(put).await.expect("a put");
    });
    let scraped = scrape(&runtime, beacon);
    let names: std::collections::BTreeSet<&str> = scraped
        .samples
        .keys()
        .map(|k| k.split('{').next().unwrap_or(k))
        .collect();
    let list = include_str!("data/grafana-metrics.txt");
    let mut checked = 0;
    for line in list
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, missing) = match line.split_once(" missing: ") {
            Some((name, why)) => (name, Some(why)),
            None => (line, None),
        };
        match missing {
            None => assert!(
                names.contains(name),
                "the dashboard's {name} is not scraped"
            ),
            Some(why) => assert!(
                !names.contains(name),
                "{name} is listed missing ({why}) but is scraped: take it off"
            ),
        }
        checked += 1;
    }
    assert_eq!(checked, 16, "every name of the list");
}

/// `--metrics extensive` adds go-grpc-prometheus' `grpc_server_handling_seconds`, with
/// etcd's series and buckets; `basic` (the default) does not have it.
#[test]
fn extensive_metrics_add_grpc_handling_times() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let family = "grpc_server_handling_seconds";
    let mut shapes = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let basic = ServerProcess::cluster_with(kind, bin.clone(), 1, &["--metrics=basic"])
            .expect("a member");
        let scraped = scrape(&runtime, &basic[0]);
        assert!(!scraped.meta.contains_key(family), "{kind:?}: basic");
        drop(basic);
        let members = ServerProcess::cluster_with(kind, bin, 1, &["--metrics", "extensive"])
            .expect("a member");
        let url = members[0].client_url();
        runtime.block_on(async {
            let mut kv = KvClient::new(beacon_testkit::grpc_channel(&url).await);
            let range = RangeRequest {
                key: b"k".to_vec(),
                ..RangeRequest::default()
            };
            kv.range(range).await.expect("a range");
        });
        let scraped = scrape(&runtime, &members[0]);
        let kv_range = "grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"";
        let count = format!("{family}_count{{{kv_range}}}");
        assert_eq!(scraped.samples.get(&count), Some(&1.0), "{kind:?}");
        let inf = format!("{family}_bucket{{{kv_range},le=\"+Inf\"}}");
        assert_eq!(scraped.samples.get(&inf), Some(&1.0), "{kind:?}");
        let series: Vec<String> = scraped
            .samples
            .keys()
            .filter(|k| k.starts_with(family))
            .cloned()
            .collect();
        shapes.push((scraped.meta.get(family).cloned(), series));
    }
    assert!(shapes[0].0.is_some());
    assert_eq!(
        shapes[0], shapes[1],
        "etcd's help, type, series and buckets"
    );
}
