//! An acknowledged write survives `kill -9`: the server is killed in the middle of a
//! write load, restarted on the same data directory, and every write it acknowledged
//! is found with the same index, while TTLs keep counting across the restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_testkit::ServerProcess;
use serde_json::Value;

const WRITERS: usize = 8;
/// Acknowledged writes to wait for before the kill; the writers go on past it.
const ACKS_BEFORE_KILL: usize = 400;
/// Bounds the load loop whatever happens.
const WRITES_PER_WRITER_MAX: usize = 2_000;
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct Ack {
    key: String,
    value: String,
    modified_index: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_ttls_keep_counting() {
    let mut server = ServerProcess::beacon_at(env!("CARGO_BIN_EXE_beacon")).expect("beacon starts");
    let base = server.client_url();
    let http = reqwest::Client::new();

    // Two TTL keys: one that must outlive the restart, one that must expire after it.
    let long = put(&http, &base, "/ttl/long", "value=l&ttl=300").await;
    let long_expiration = long["node"]["expiration"].as_str().unwrap().to_string();
    put(&http, &base, "/ttl/short", "value=s&ttl=4").await;

    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (http, base, acks) = (http.clone(), base.clone(), Arc::clone(&acks));
        writers.push(tokio::spawn(async move {
            for n in 0..WRITES_PER_WRITER_MAX {
                let key = format!("/load/w{w}/{n}");
                let value = format!("v{w}-{n}");
                let sent = http
                    .put(format!("{base}/v2/keys{key}"))
                    .form(&[("value", value.as_str())])
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if !resp.status().is_success() {
                    return;
                }
                let Ok(body) = resp.json::<Value>().await else {
                    return;
                };
                let modified_index = body["node"]["modifiedIndex"]
                    .as_u64()
                    .expect("index in ack");
                acks.lock().unwrap().push(Ack {
                    key,
                    value,
                    modified_index,
                });
            }
        }));
    }

    let started = Instant::now();
    while acks.lock().unwrap().len() < ACKS_BEFORE_KILL {
        assert!(
            started.elapsed() < DEADLINE,
            "load did not reach {ACKS_BEFORE_KILL} acks"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acks.lock().unwrap().clone();
    let max_acked = acked.iter().map(|a| a.modified_index).max().unwrap();

    server
        .restart()
        .expect("beacon restarts on its data directory");
    for ack in &acked {
        let body = get(&http, &base, &ack.key).await;
        assert_eq!(
            body["node"]["value"],
            ack.value.as_str(),
            "{ack:?} lost after kill -9"
        );
        assert_eq!(
            body["node"]["modifiedIndex"].as_u64(),
            Some(ack.modified_index),
            "{ack:?} changed index"
        );
    }
    let resp = http.get(format!("{base}/v2/keys/")).send().await.unwrap();
    let etcd_index: u64 = resp.headers()["x-etcd-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        etcd_index >= max_acked,
        "etcd index went back: {etcd_index} < {max_acked}"
    );

    // The long TTL keeps its absolute expiration; the short one still expires.
    let long = get(&http, &base, "/ttl/long").await;
    assert_eq!(
        long["node"]["expiration"].as_str(),
        Some(long_expiration.as_str())
    );
    let ttl = long["node"]["ttl"].as_i64().unwrap();
    assert!(ttl > 0 && ttl <= 300, "ttl {ttl}");
    let started = Instant::now();
    loop {
        let resp = http
            .get(format!("{base}/v2/keys/ttl/short"))
            .send()
            .await
            .unwrap();
        if resp.status() == 404 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/ttl/short never expired after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put(http: &reqwest::Client, base: &str, key: &str, form: &str) -> Value {
    let resp = http
        .put(format!("{base}/v2/keys{key}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "PUT {key}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn get(http: &reqwest::Client, base: &str, key: &str) -> Value {
    let resp = http
        .get(format!("{base}/v2/keys{key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {key}");
    resp.json().await.unwrap()
}
