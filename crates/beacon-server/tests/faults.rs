//! Network faults between real `beacon` processes, injected by the testkit's fault
//! proxy on the peer links: an isolated leader is replaced and follows after the heal,
//! a 2/3 split of five keeps the three writing and the two not, and delayed and
//! dropped messages slow writes down without losing any. After every heal all
//! members converge on the same keys, values and indexes.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    cluster_behind_proxies, http_with_timeout, leader_among, put, put_until_ok, try_get_json,
    wait_converged,
};

/// The proxy's seed (it drives delays and drops): `BEACON_FAULTS_SEED`, or the clock.
fn seed() -> u64 {
    let seed = std::env::var("BEACON_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("fault proxy seed {seed} (BEACON_FAULTS_SEED={seed} to replay)");
    seed
}

/// A write that cannot commit is never acknowledged: etcd answers 300 (request timed
/// out) once its request timeout passes, or the connection fails.
fn assert_not_acknowledged(answer: &reqwest::Result<Value>, what: &str) {
    if let Ok(r) = answer {
        assert!(
            r["action"] != "set" && r["errorCode"].is_u64(),
            "{what} was acknowledged: {r}"
        );
    }
    eprintln!("{what}: {answer:?}");
}

fn keys(listing: &[(String, String, u64)]) -> Vec<&str> {
    listing.iter().map(|(k, _, _)| k.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_replaced_and_follows_after_the_heal() {
    let (proxy, members) = cluster_behind_proxies(3, seed());
    let http = http_with_timeout(Duration::from_secs(10));
    let all = [0, 1, 2];
    let old = leader_among(&http, &members, &all, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    put_until_ok(&http, &members[old].client_url(), "f/before", "x", deadline).await;

    proxy.isolate(old);
    let stuck = tokio::spawn({
        let (http, base) = (http.clone(), members[old].client_url());
        async move { put(&http, &base, "f/isolated", "x").await }
    });
    let majority: Vec<usize> = all.into_iter().filter(|&i| i != old).collect();
    let new = leader_among(&http, &members, &majority, Duration::from_secs(10)).await;
    for &i in &majority {
        let base = members[i].client_url();
        put_until_ok(&http, &base, &format!("f/during-m{i}"), "x", deadline).await;
    }
    assert_not_acknowledged(&stuck.await.unwrap(), "a write on the isolated leader");
    // Check-quorum: cut off from a quorum for an election timeout, the old leader no
    // longer says it leads (etcd's steps down to follower).
    let cut_off = members[old].client_url();
    let deadline_state = Instant::now() + Duration::from_secs(5);
    loop {
        let s = try_get_json(&http, &format!("{cut_off}/v2/stats/self")).await;
        if s.as_ref().is_some_and(|s| s["state"] == "StateFollower") {
            break;
        }
        assert!(
            Instant::now() < deadline_state,
            "the isolated leader still leads: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.heal();
    // The old leader hears the new term and follows; pre-vote keeps it from deposing
    // the new leader on its way back.
    let agreed = leader_among(&http, &members, &all, Duration::from_secs(10)).await;
    assert_eq!(agreed, new, "old leader m{old}, new m{new}");
    let listing = wait_converged(&http, &members, "f", Duration::from_secs(10)).await;
    let mut expected = vec!["/f/before".to_string()];
    expected.extend(majority.iter().map(|i| format!("/f/during-m{i}")));
    assert_eq!(keys(&listing), expected, "{listing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_split_two_three_the_three_write_the_two_cannot() {
    let (proxy, members) = cluster_behind_proxies(5, seed());
    let http = http_with_timeout(Duration::from_secs(10));
    let all = [0, 1, 2, 3, 4];
    let lead = leader_among(&http, &members, &all, Duration::from_secs(10)).await;
    // The old leader on the small side: the large side must elect one of its own.
    let two = [lead, (lead + 1) % 5];
    let three: Vec<usize> = all.into_iter().filter(|i| !two.contains(i)).collect();
    proxy.partition(&two, &three);
    let stuck: Vec<_> = two
        .iter()
        .map(|&i| {
            let (http, base) = (http.clone(), members[i].client_url());
            tokio::spawn(async move { put(&http, &base, &format!("s/two-m{i}"), "x").await })
        })
        .collect();
    leader_among(&http, &members, &three, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    for &i in &three {
        let base = members[i].client_url();
        put_until_ok(&http, &base, &format!("s/three-m{i}"), "x", deadline).await;
    }
    for s in stuck {
        assert_not_acknowledged(&s.await.unwrap(), "a write on the side of two");
    }

    proxy.heal();
    leader_among(&http, &members, &all, Duration::from_secs(10)).await;
    let listing = wait_converged(&http, &members, "s", Duration::from_secs(10)).await;
    let expected: Vec<String> = three.iter().map(|i| format!("/s/three-m{i}")).collect();
    assert_eq!(keys(&listing), expected, "{listing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_dropped_messages_slow_writes_but_lose_none() {
    let (proxy, members) = cluster_behind_proxies(3, seed());
    let http = http_with_timeout(Duration::from_secs(10));
    leader_among(&http, &members, &[0, 1, 2], Duration::from_secs(10)).await;
    proxy.set_delay_ms(20, 80);
    proxy.set_drop_probability(0.1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    // One writer per member, so that a write whose forwarded proposal was dropped
    // (black-holed until the proxy gives up) does not hold the others back.
    let writers: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(m, member)| {
            let (http, base) = (http.clone(), member.client_url());
            tokio::spawn(async move {
                for n in 0..6 {
                    put_until_ok(&http, &base, &format!("d/m{m}-{n}"), "x", deadline).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let counts = proxy.counts();
    eprintln!("18 writes in {:?}; proxy: {counts:?}", started.elapsed());
    assert!(counts.delayed > 0 && counts.dropped > 0, "{counts:?}");

    proxy.heal();
    let listing = wait_converged(&http, &members, "d", Duration::from_secs(10)).await;
    assert_eq!(listing.len(), 18, "{listing:?}");
}
