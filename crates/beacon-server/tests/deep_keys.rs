//! A key 10,000 levels deep (etcd 3.4 accepts it) is written, listed recursively,
//! snapshotted, read back after a restart from that snapshot, and deleted, by a real
//! `beacon` process whose tokio workers keep their usual stacks. Before the tree walks
//! and the JSON writer became iterative, the listing aborted the process with a stack
//! overflow, and so did building the snapshot, on every restart.

use std::path::Path;
use std::time::{Duration, Instant};

use beacon_testkit::{ServerKind, ServerProcess};

/// Levels below `/deep`; each `/a` adds one. The URL stays under hyper's 64 KiB.
const DEPTH: usize = 10_000;
/// Small, so that the deep write is soon in a snapshot.
const SNAPSHOT_COUNT: &str = "5";
const DEADLINE: Duration = Duration::from_secs(120);

fn deep_key() -> String {
    let mut key = String::from("/deep");
    for _ in 0..DEPTH {
        key.push_str("/a");
    }
    key
}

/// How deeply `nodes` arrays nest in a listing, and the last (deepest) key in it.
/// Read by scanning: serde_json refuses JSON nested this deep.
fn nesting_and_last_key(body: &str) -> (usize, String) {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in body.bytes() {
        match b {
            b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let last_key = body
        .rsplit("\"key\":\"")
        .next()
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    (max, last_key)
}

fn snapshot_files(dir: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "snap") {
                count += 1;
            }
        }
    }
    count
}

async fn recursive_listing(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .get(format!("{base}/v2/keys/deep?recursive=true"))
        .send()
        .await
        .expect("the server answers the recursive listing");
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("the listing arrives whole")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_key_is_listed_snapshotted_restored_and_deleted() {
    let mut servers = ServerProcess::cluster_with(
        ServerKind::Beacon,
        env!("CARGO_BIN_EXE_beacon").into(),
        1,
        &["--snapshot-count", SNAPSHOT_COUNT],
    )
    .expect("beacon starts");
    let mut server = servers.remove(0);
    let base = server.client_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let key = deep_key();

    let put = http
        .put(format!("{base}/v2/keys{key}"))
        .form(&[("value", "bottom")])
        .send()
        .await
        .expect("the deep write is answered");
    assert_eq!(put.status(), 201);

    let listing = recursive_listing(&http, &base).await;
    assert_eq!(nesting_and_last_key(&listing), (DEPTH, key.clone()));
    assert!(listing.contains("\"value\":\"bottom\""));

    // More writes than --snapshot-count, then wait for the snapshot that holds the key.
    for i in 0..10 {
        let resp = http
            .put(format!("{base}/v2/keys/filler/{i}"))
            .form(&[("value", "x")])
            .send()
            .await
            .expect("the server is still up");
        assert!(resp.status().is_success(), "filler write {i}");
    }
    let started = Instant::now();
    while snapshot_files(&server.data_dir()) == 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "no snapshot was written: {}",
            server.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The restarted member loads that snapshot and serves the same listing.
    server.restart().expect("beacon restarts on its data dir");
    let base = server.client_url();
    let again = recursive_listing(&http, &base).await;
    assert_eq!(
        again, listing,
        "the listing survives the snapshot and restart"
    );

    let delete = http
        .delete(format!("{base}/v2/keys/deep?recursive=true"))
        .send()
        .await
        .expect("the deep delete is answered");
    assert_eq!(delete.status(), 200);
    let body = delete.text().await.unwrap();
    assert!(
        body.starts_with("{\"action\":\"delete\",\"node\":{\"key\":\"/deep\",\"dir\":true,"),
        "{body}"
    );
    let gone = http
        .get(format!("{base}/v2/keys/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}
