//! Membership at runtime with real `beacon` processes: members publish their names and
//! client URLs; a member added with `POST /v2/members` starts with
//! `--initial-cluster-state existing`, catches up from a snapshot as a learner, is
//! promoted, and serves; a removed member stops; refusals carry etcd's errors.

use std::time::{Duration, Instant};

mod support;

use beacon_testkit::{free_ports, ServerKind, ServerProcess};
use serde_json::{json, Value};
use support::{get_json, http, put, put_until_ok, wait_value};

fn bin() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_beacon").into()
}

async fn members_of(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let v = get_json(http, &format!("{base}/v2/members")).await;
    v["members"].as_array().cloned().unwrap_or_default()
}

/// Waits until `check` holds of `base`'s member list, or fails with the last list.
async fn wait_members(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let members = members_of(http, base).await;
        if check(&members) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: members are {members:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_member(http: &reqwest::Client, base: &str, peer_url: &str) -> (u16, Value) {
    let r = http
        .post(format!("{base}/v2/members"))
        .json(&json!({ "peerURLs": [peer_url] }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Every member's flags: small snapshots, and no strict reconfiguration check.
const UNCHECKED: &[&str] = &["--snapshot-count", "40", "--strict-reconfig-check=false"];

fn log_of(m: &ServerProcess) -> String {
    std::fs::read_to_string(m.log_path()).unwrap_or_default()
}

/// Waits until one of `members`' logs holds `needle`.
fn wait_log(members: &[&ServerProcess], needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !members.iter().any(|m| log_of(m).contains(needle)) {
        assert!(Instant::now() < deadline, "no {needle:?} in any log");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_added_at_runtime_and_removed_again() {
    let http = http();
    // The life of a member, without etcd's strict reconfiguration check, which would
    // refuse these changes until every member has been connected for 5 s and answer
    // the duplicate add with its "unhealthy cluster" (`tests/strict_reconfig.rs`).
    let mut members = ServerProcess::cluster_with(ServerKind::Beacon, bin(), 3, UNCHECKED)
        .expect("the cluster starts");
    let follower = members[1].client_url();

    // Each member publishes its name and client URLs; every member lists them all.
    let published = |ms: &[Value]| {
        ms.len() == 3
            && ms.iter().all(|m| {
                m["name"] != "" && m["clientURLs"].as_array().is_some_and(|c| !c.is_empty())
            })
    };
    wait_members(&http, &follower, "members publish", published).await;
    let machines = http
        .get(format!("{follower}/v2/machines"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for m in &members {
        assert!(machines.contains(&m.client_url()), "{machines}");
    }

    // Enough writes for snapshots and a purged log: the new member must catch up from one.
    for i in 0..150 {
        put(
            &http,
            &members[i % 3].client_url(),
            &format!("k{i}"),
            &i.to_string(),
        )
        .await
        .unwrap();
    }

    // Added through a follower (forwarded to the leader), listed at once without a name.
    let ports = free_ports(2);
    let new_peer = format!("http://127.0.0.1:{}", ports[1]);
    let (status, added) = post_member(&http, &follower, &new_peer).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["name"], "");
    assert_eq!(added["peerURLs"], json!([new_peer]));
    assert_eq!(added["clientURLs"], json!([]));
    let new_id = added["id"].as_str().unwrap().to_string();
    // Within the same second the id (a hash of the URLs and the time) repeats too, and
    // etcd checks the id first.
    let (status, dup) = post_member(&http, &follower, &new_peer).await;
    assert_eq!(status, 409, "{dup}");
    assert!(
        dup == json!({"message": "membership: peerURL exists"})
            || dup == json!({"message": "membership: ID exists"}),
        "{dup}"
    );
    // A learner does not count toward the quorum: writes go on before it runs.
    put(&http, &follower, "before-join", "ok").await.unwrap();

    let joined = ServerProcess::join(
        ServerKind::Beacon,
        bin(),
        "m3",
        (ports[0], ports[1]),
        &members.iter().collect::<Vec<_>>(),
        UNCHECKED,
    )
    .expect("the added member starts");
    wait_value(&http, &joined.client_url(), "k149", "149").await;
    wait_value(&http, &joined.client_url(), "before-join", "ok").await;
    assert!(
        log_of(&joined).contains("install full snapshot"),
        "{}",
        joined.log_tail(30)
    );
    wait_log(
        &members.iter().collect::<Vec<_>>(),
        "promoted caught-up learners",
    );
    wait_members(&http, &follower, "the new member publishes", |ms| {
        ms.iter().any(|m| {
            m["id"] == new_id.as_str()
                && m["name"] == "m3"
                && m["clientURLs"] == json!([joined.client_url()])
        })
    })
    .await;

    // The new member forwards writes and serves reads like any other.
    put(&http, &joined.client_url(), "from-new", "yes")
        .await
        .unwrap();
    for m in &members {
        wait_value(&http, &m.client_url(), "from-new", "yes").await;
    }

    // Removing a member (here through the new one) stops it, and the rest go on.
    let gone_id = members_of(&http, &follower)
        .await
        .iter()
        .find(|m| m["name"] == members[2].name())
        .map(|m| m["id"].as_str().unwrap().to_string())
        .unwrap();
    let r = http
        .delete(format!("{}/v2/members/{gone_id}", joined.client_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let status = members[2].wait_exit(Duration::from_secs(15));
    // etcd's removed member exits 0.
    assert!(
        status.is_some_and(|s| s.success()),
        "the removed member: {status:?}"
    );
    assert!(
        log_of(&members[2]).contains("permanently removed"),
        "{}",
        members[2].log_tail(20)
    );
    wait_members(&http, &follower, "the removed member is gone", |ms| {
        ms.len() == 3 && ms.iter().all(|m| m["id"] != gone_id.as_str())
    })
    .await;
    // When the removed member led, the others elect a new leader after an election
    // timeout (its handover is refused: it is no longer a member), and a write in that
    // window fails, as in etcd; a client tries again.
    let deadline = Instant::now() + Duration::from_secs(10);
    put_until_ok(&http, &follower, "after-remove", "ok", deadline).await;
    wait_value(&http, &joined.client_url(), "after-remove", "ok").await;
    // The id is gone for good, as in etcd: removing it again is 410, updating it 500.
    let r = http
        .delete(format!("{follower}/v2/members/{gone_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "message": format!("Member permanently removed: {gone_id}") })
    );
    let r = http
        .put(format!("{follower}/v2/members/{gone_id}"))
        .json(&json!({ "peerURLs": ["http://127.0.0.1:1"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    // Restarted on its old data, the removed member stops again at once and exits 0.
    let restarted = members[2]
        .restart()
        .expect_err("a removed member does not serve");
    assert!(
        restarted
            .to_string()
            .contains("exited early with exit status: 0"),
        "{restarted}"
    );
    assert!(log_of(&members[2]).matches("permanently removed").count() >= 2);
}
