//! What the cluster tests share: an HTTP client, v2 reads and writes, and waits on
//! conditions with deadlines.

#![allow(dead_code)] // each test file uses its own subset

use std::time::{Duration, Instant};

use beacon_testkit::ServerProcess;
use serde_json::Value;

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn put(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    value: &str,
) -> reqwest::Result<Value> {
    http.put(format!("{base}/v2/keys/{key}"))
        .form(&[("value", value)])
        .send()
        .await?
        .json()
        .await
}

pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Member id and leader id as `/v2/stats/self` reports them.
pub async fn self_stats(http: &reqwest::Client, base: &str) -> (String, String) {
    let s = get_json(http, &format!("{base}/v2/stats/self")).await;
    (
        s["id"].as_str().unwrap_or_default().to_string(),
        s["leaderInfo"]["leader"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The index of the member that leads, as the members agree.
pub async fn leader(http: &reqwest::Client, members: &[ServerProcess]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for m in members {
            let (id, leader) = self_stats(http, &m.client_url()).await;
            ids.push(id);
            leaders.push(leader);
        }
        if leaders.iter().all(|l| !l.is_empty() && *l == leaders[0]) {
            if let Some(i) = ids.iter().position(|id| *id == leaders[0]) {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader: ids {ids:?}, leaders {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `GET key` on `base` answers `value` (a follower applies a little later).
pub async fn wait_value(http: &reqwest::Client, base: &str, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(http, &format!("{base}/v2/keys/{key}")).await;
        if v["node"]["value"] == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} never had {key}={value}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
