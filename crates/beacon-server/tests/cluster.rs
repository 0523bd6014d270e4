//! Real three- and five-member clusters of `beacon` processes on loopback: they form from etcd's
//! flags, replicate, answer writes on any member (followers forward them to the
//! leader), survive SIGKILL of the leader under writes without losing an acknowledged
//! write, keep watches and TTLs going across the leader change, and a killed member
//! catches up when it comes back, from a snapshot when it fell far behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use beacon_testkit::{ServerKind, ServerProcess};
use serde_json::Value;
use support::{get_json, http, leader, put, wait_value};

fn cluster(n: usize) -> Vec<ServerProcess> {
    ServerProcess::cluster(ServerKind::Beacon, env!("CARGO_BIN_EXE_beacon").into(), n)
        .expect("the cluster starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_replicate_and_forward_writes() {
    let members = cluster(3);
    let http = http();
    // One cluster: the same cluster id everywhere, and one leader they agree on.
    let mut cluster_ids = Vec::new();
    for m in &members {
        let r = http
            .get(format!("{}/v2/keys/", m.client_url()))
            .send()
            .await
            .unwrap();
        cluster_ids.push(
            r.headers()["x-etcd-cluster-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(
        cluster_ids.iter().all(|c| *c == cluster_ids[0]),
        "{cluster_ids:?}"
    );
    let lead = leader(&http, &members).await;

    // A write on every member, leader and followers alike; each answer carries its own
    // index, and every member ends up with all of them.
    let mut indexes = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let r = put(
            &http,
            &m.client_url(),
            &format!("svc/k{i}"),
            &format!("v{i}"),
        )
        .await
        .unwrap();
        assert_eq!(r["action"], "set", "member {i} (leader is {lead}): {r}");
        indexes.push(r["node"]["modifiedIndex"].as_u64().unwrap());
    }
    indexes.dedup();
    assert_eq!(
        indexes.len(),
        3,
        "each write has its own index: {indexes:?}"
    );
    // A read on the member that took a write sees it at once (a follower answers with
    // the leader's result, and its reads wait until it applied what it answered).
    for (i, m) in members.iter().enumerate() {
        let v = get_json(&http, &format!("{}/v2/keys/svc/k{i}", m.client_url())).await;
        assert_eq!(
            v["node"]["value"],
            format!("v{i}"),
            "member {i} right after its write"
        );
    }
    // A watch started on a follower right after a write there begins after that write:
    // it reports the next change, not the write it follows.
    let follower = members[(lead + 1) % 3].client_url();
    put(&http, &follower, "svc/w", "first").await.unwrap();
    let watch = http
        .get(format!("{follower}/v2/keys/svc/w?wait=true"))
        .send()
        .await
        .unwrap();
    put(&http, &follower, "svc/w", "second").await.unwrap();
    let event: Value = watch.json().await.unwrap();
    assert_eq!(event["node"]["value"], "second", "{event}");
    for m in &members {
        for i in 0..3 {
            wait_value(
                &http,
                &m.client_url(),
                &format!("svc/k{i}"),
                &format!("v{i}"),
            )
            .await;
        }
    }

    // The leader's view of its followers, as etcd's /v2/stats/leader; followers refuse.
    let stats = get_json(
        &http,
        &format!("{}/v2/stats/leader", members[lead].client_url()),
    )
    .await;
    let followers = stats["followers"].as_object().expect("followers");
    assert_eq!(followers.len(), 2, "{stats}");
    for (id, f) in followers {
        assert!(f["counts"]["success"].as_u64().unwrap() > 0, "{id}: {f}");
        assert!(f["latency"]["average"].as_f64().unwrap() > 0.0, "{id}: {f}");
        assert!(
            f["latency"]["minimum"].as_f64() <= f["latency"]["maximum"].as_f64(),
            "{id}: {f}"
        );
    }
    let follower = &members[(lead + 1) % 3];
    let refused = http
        .get(format!("{}/v2/stats/leader", follower.client_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_under_writes_loses_no_acknowledged_write() {
    let mut members = cluster(3);
    let http = http();
    let lead = leader(&http, &members).await;
    let follower_urls: Vec<String> = members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lead)
        .map(|(_, m)| m.client_url())
        .collect();

    // Two writers on the followers, each key written once; acknowledged keys recorded.
    // (key, when it was sent, when it was acknowledged)
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, base) in follower_urls.iter().enumerate() {
        let (http, base, acked, stop) = (http.clone(), base.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..5_000u32 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let key = format!("load/w{w}-{n}");
                let sent = Instant::now();
                if let Ok(r) = put(&http, &base, &key, "x").await {
                    if r["action"] == "set" {
                        acked.lock().unwrap().push((key, sent, Instant::now()));
                    }
                }
            }
        }));
    }
    let wait_acked = |n: usize| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while acked.lock().unwrap().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "writes stalled at {}",
                    acked.lock().unwrap().len()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_acked(50).await;
    let killed_at = Instant::now();
    members[lead].kill9();
    // Writes resume through a new leader.
    let before = acked.lock().unwrap().len();
    wait_acked(before + 50).await;
    // Writes sent before the kill may still be acknowledged after it (they had
    // committed); the failover is how long the first write sent after it took.
    let resumed = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, sent, _)| *sent > killed_at)
        .map(|(_, _, at)| *at)
        .min()
        .expect("a write sent after the kill");
    let failover = resumed - killed_at;
    eprintln!("writes resumed {failover:?} after the leader was killed");
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    // Within twice the election timeout (etcd's default, 1 s), plus slack for a busy
    // machine: the election itself takes 0.5-2 s after the last heartbeat.
    assert!(
        failover < Duration::from_secs(3),
        "writes resumed only after {failover:?}"
    );

    // Every acknowledged write is on both survivors.
    let keys: Vec<String> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _, _)| k.clone())
        .collect();
    for base in &follower_urls {
        // The member that acknowledged a write has it; the other may apply it a moment
        // later, so give it a deadline rather than one look.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listing = get_json(&http, &format!("{base}/v2/keys/load?recursive=true")).await;
            let present: std::collections::HashSet<String> = listing["node"]["nodes"]
                .as_array()
                .map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|n| {
                            n["key"]
                                .as_str()
                                .map(|k| k.trim_start_matches('/').to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let missing: Vec<&String> = keys.iter().filter(|k| !present.contains(*k)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{base} lost {} acknowledged writes, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The killed member comes back with its data dir and catches up.
    members[lead].restart().expect("the old leader restarts");
    let last = keys.last().unwrap().clone();
    wait_value(&http, &members[lead].client_url(), &last, "x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_and_ttls_carry_on_across_a_leader_change() {
    let mut members = cluster(3);
    let http = http();
    let lead = leader(&http, &members).await;
    let follower = members[(lead + 1) % 3].client_url();

    // A key with a TTL, written through the follower.
    let r: Value = http
        .put(format!("{follower}/v2/keys/svc/ephemeral?ttl=3"))
        .form(&[("value", "up")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = r["node"]["modifiedIndex"].as_u64().expect("an index");

    // A watcher on the follower follows /svc from the next index, long poll after long
    // poll, as etcd clients do, and collects (action, key, index).
    let watcher = {
        let (http, follower) = (http.clone(), follower.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut next = first + 1;
            let deadline = Instant::now() + Duration::from_secs(20);
            while seen.len() < 2 && Instant::now() < deadline {
                let url =
                    format!("{follower}/v2/keys/svc?wait=true&recursive=true&waitIndex={next}");
                let Ok(resp) = http.get(url).timeout(Duration::from_secs(15)).send().await else {
                    continue;
                };
                let event: Value = resp.json().await.unwrap();
                let index = event["node"]["modifiedIndex"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("not an event: {event}"));
                seen.push((
                    event["action"].as_str().unwrap().to_string(),
                    event["node"]["key"].as_str().unwrap().to_string(),
                    index,
                ));
                next = index + 1;
            }
            seen
        })
    };

    members[lead].kill9();
    // A write after the kill goes through whichever member leads next.
    let r = put(&http, &follower, "svc/after", "x").await.unwrap();
    let after = r["node"]["modifiedIndex"]
        .as_u64()
        .unwrap_or_else(|| panic!("the write after the kill: {r}"));

    let seen = watcher.await.unwrap();
    // The new leader keeps time going: the TTL key expires although its leader died,
    // and the watcher on the follower sees both changes with consecutive indexes.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.contains(&("set".to_string(), "/svc/after".to_string(), after)),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(a, k, _)| a == "expire" && k == "/svc/ephemeral"),
        "{seen:?}"
    );
    let indexes: Vec<u64> = seen.iter().map(|(_, _, i)| *i).collect();
    assert_eq!(indexes, vec![first + 1, first + 2], "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_far_behind_catches_up_from_a_snapshot() {
    // Snapshots every 50 entries keep 50 behind them: a member that misses 400 writes
    // finds the log it needs purged, and must be sent a snapshot.
    let mut members = ServerProcess::cluster_with(
        ServerKind::Beacon,
        env!("CARGO_BIN_EXE_beacon").into(),
        3,
        &["--snapshot-count", "50"],
    )
    .expect("the cluster starts");
    let http = http();
    let lead = leader(&http, &members).await;
    let behind = (lead + 1) % 3;
    members[behind].kill9();
    let base = members[lead].client_url();
    let mut written = 0;
    // The leader purges behind a snapshot only while no replication to the dead
    // member is in flight over those entries, so keep writing until it has purged
    // well past what the dead member has (openraft's own log line; openraft is pinned).
    let deadline = Instant::now() + Duration::from_secs(20);
    while written < 400 || purged_upto(&members[lead]) < 100 {
        assert!(Instant::now() < deadline, "the leader never purged its log");
        let i = written;
        let r = put(&http, &base, &format!("bulk/k{i:03}"), &format!("v{i}"))
            .await
            .unwrap();
        assert_eq!(r["action"], "set", "{r}");
        written += 1;
    }
    let last = written - 1;
    members[behind].restart().expect("the member restarts");
    let back = members[behind].client_url();
    wait_value(
        &http,
        &back,
        &format!("bulk/k{last:03}"),
        &format!("v{last}"),
    )
    .await;
    let listing = get_json(&http, &format!("{back}/v2/keys/bulk?recursive=true")).await;
    let n = listing["node"]["nodes"].as_array().map_or(0, Vec::len);
    assert_eq!(n, written, "the member that was behind has every key");
    // It got there by a snapshot: the leader had purged the entries it missed.
    // (openraft's own log line; openraft is pinned to one version.)
    let log = std::fs::read_to_string(members[behind].log_path()).unwrap_or_default();
    assert!(
        log.contains("install full snapshot"),
        "no snapshot in the log of the member that was behind:\n{}",
        members[behind].log_tail(30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_gracefully_hands_over_without_an_election_timeout() {
    let mut members = cluster(3);
    let http = http();
    let lead = leader(&http, &members).await;
    let follower = members[(lead + 1) % 3].client_url();
    put(&http, &follower, "handover/before", "x").await.unwrap();

    // SIGTERM on a thread: the stop waits for the hand-over, and writes run meanwhile.
    let mut leaving = members.remove(lead);
    let stopping = std::thread::spawn(move || leaving.terminate(Duration::from_secs(10)));
    let mut last_ack = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut n = 0;
    // Writes go on until the old leader has exited and a write succeeded after that.
    // No gap between acknowledgements may come near an election timeout (1 s): an
    // election after a timeout could not be that quick (the vote lease alone is 1 s).
    loop {
        n += 1;
        let exited = stopping.is_finished();
        if let Ok(r) = put(&http, &follower, &format!("handover/k{n}"), "x").await {
            if r["action"] == "set" {
                longest_gap = longest_gap.max(last_ack.elapsed());
                last_ack = Instant::now();
                if exited {
                    break;
                }
            }
        }
        assert!(n < 100_000, "writes did not resume");
        assert!(
            last_ack.elapsed() < Duration::from_secs(10),
            "writes stopped"
        );
    }
    assert!(stopping.join().unwrap(), "the leader exited on SIGTERM");
    eprintln!("longest gap between writes while the leader stopped: {longest_gap:?}");
    assert!(
        longest_gap < Duration::from_millis(900),
        "a gap of {longest_gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_keep_writing_with_two_down() {
    let mut members = cluster(5);
    let http = http();
    let lead = leader(&http, &members).await;
    // Two members down, the leader among them: three of five are still a quorum.
    let down = [lead, (lead + 1) % 5];
    for i in down {
        members[i].kill9();
    }
    let alive: Vec<usize> = (0..5).filter(|i| !down.contains(i)).collect();
    for &i in &alive {
        let r = put(&http, &members[i].client_url(), &format!("five/k{i}"), "x")
            .await
            .unwrap();
        assert_eq!(r["action"], "set", "member {i}: {r}");
    }
    for &i in &alive {
        for &j in &alive {
            wait_value(&http, &members[i].client_url(), &format!("five/k{j}"), "x").await;
        }
    }
    // A third one down leaves two of five: no quorum, and a write times out as etcd's do.
    members[alive[0]].kill9();
    let r = put(&http, &members[alive[1]].client_url(), "five/none", "x")
        .await
        .unwrap();
    assert_eq!(r["errorCode"], 300, "{r}");
}

/// The highest log index `member` says it purged up to, from openraft's
/// "purge log, last_purged: ..., purge_upto: T1-N<id>.<index>" line; 0 before any.
fn purged_upto(member: &ServerProcess) -> u64 {
    let log = std::fs::read_to_string(member.log_path()).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.split("purge_upto: ").nth(1))
        .filter_map(|rest| rest.trim().rsplit('.').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// How many writes go through the follower at once: several forwarding batches' worth
/// (a batch holds at most 64), so that batches are in flight together.
const CONCURRENT_FORWARDED_WRITES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_a_follower_each_get_their_own_answer() {
    let members = cluster(3);
    let http = http();
    let lead = leader(&http, &members).await;
    let follower = members[(lead + 1) % 3].client_url();
    let writes = (0..CONCURRENT_FORWARDED_WRITES).map(|i| {
        let (http, follower) = (http.clone(), follower.clone());
        tokio::spawn(async move {
            let (key, value) = (format!("fwd/k{i}"), format!("v{i}"));
            let r = put(&http, &follower, &key, &value).await.unwrap();
            // Each caller gets the answer to its own write...
            assert_eq!(r["action"], "set", "{r}");
            assert_eq!(r["node"]["key"], format!("/{key}"), "{r}");
            assert_eq!(r["node"]["value"], value, "{r}");
            // ...and a read there sees it at once.
            let read = get_json(&http, &format!("{follower}/v2/keys/{key}")).await;
            assert_eq!(read["node"]["value"], value, "{read}");
            r["node"]["modifiedIndex"].as_u64().unwrap()
        })
    });
    let mut indexes = Vec::new();
    for write in futures_util::future::join_all(writes).await {
        indexes.push(write.expect("the write's task"));
    }
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(
        indexes.len(),
        CONCURRENT_FORWARDED_WRITES,
        "one entry per write"
    );
    // Every member has every write.
    for m in &members {
        for i in [
            0,
            CONCURRENT_FORWARDED_WRITES / 2,
            CONCURRENT_FORWARDED_WRITES - 1,
        ] {
            wait_value(
                &http,
                &m.client_url(),
                &format!("fwd/k{i}"),
                &format!("v{i}"),
            )
            .await;
        }
    }
}
