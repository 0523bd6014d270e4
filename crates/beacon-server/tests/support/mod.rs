//! What the cluster, membership, fault, peer and linearizability tests share: HTTP
//! clients, v2 reads and writes, leader discovery, clusters behind a fault proxy, what a
//! member's peer port tells anyone, and waits on conditions with deadlines.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use beacon_testkit::{FaultProxy, ServerKind, ServerProcess};
use serde_json::Value;

/// What a forger reads from a member's peer `GET /members`: the cluster id (its
/// `X-Etcd-Cluster-ID` header) and this member's id (the entry with its peer URL).
#[derive(Debug, Clone, Copy)]
pub struct PeerIdentity {
    pub cluster_id: u64,
    pub own_id: u64,
}

/// Reads `m`'s [`PeerIdentity`] from its peer port, over a plain socket (blocking, so
/// that the synchronous hostile suite can use it as well as the async tests).
pub fn peer_identity(m: &ServerProcess) -> PeerIdentity {
    let mut conn = TcpStream::connect(("127.0.0.1", m.peer_port())).expect("peer port");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /members HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("GET /members");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("the member list");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let cluster_id = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-etcd-cluster-id")
                .then(|| u64::from_str_radix(value.trim(), 16).ok())?
        })
        .unwrap_or_else(|| panic!("no cluster id in {head}"));
    let members: Vec<Value> = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let own_id = members
        .iter()
        .find(|x| x["peerURLs"][0] == m.peer_url())
        .and_then(|x| x["id"].as_u64())
        .expect("the member lists itself");
    PeerIdentity { cluster_id, own_id }
}

/// The answers to `story` of a fresh etcd, then of a fresh Beacon; `None` when etcd
/// is missing and the test skips.
pub async fn told_by_both(
    story: impl AsyncFn(&ServerProcess) -> Vec<String>,
) -> Option<(Vec<String>, Vec<String>)> {
    if !beacon_testkit::etcd_or_skip() {
        return None;
    }
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = ServerProcess::beacon().expect("beacon starts");
    Some((story(&etcd).await, story(&beacon).await))
}

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

/// The index of the member that leads, as the members agree.
pub async fn leader(http: &reqwest::Client, members: &[ServerProcess]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for m in members {
            let (id, leader) = self_stats(http, &m.client_url()).await.unwrap_or_default();
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

/// `n` members whose peer traffic passes through a fault proxy seeded with `seed`.
pub fn cluster_behind_proxies(n: usize, seed: u64) -> (FaultProxy, Vec<ServerProcess>) {
    ServerProcess::cluster_behind_proxies(
        ServerKind::Beacon,
        env!("CARGO_BIN_EXE_beacon").into(),
        n,
        &[],
        seed,
    )
    .expect("the cluster starts behind its proxy")
}

/// A client whose every request gives up after `timeout`.
pub fn http_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// Writes `key` through member `base` until a write is acknowledged, or panics at
/// `deadline`; returns the acknowledged answer.
pub async fn put_until_ok(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    value: &str,
    deadline: Instant,
) -> Value {
    loop {
        let answer = put(http, base, key, value).await;
        if let Ok(r) = &answer {
            if r["action"] == "set" {
                return r.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{base}: {key} never written: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET url` as JSON; `None` when the member does not answer (or not with JSON).
pub async fn try_get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// Member id and the leader it knows, as `/v2/stats/self` reports them (`None` when
/// the member does not answer).
pub async fn self_stats(http: &reqwest::Client, base: &str) -> Option<(String, String)> {
    let s = try_get_json(http, &format!("{base}/v2/stats/self")).await?;
    Some((
        s["id"].as_str()?.to_string(),
        s["leaderInfo"]["leader"].as_str()?.to_string(),
    ))
}

/// The index of the member the members in `among` agree leads, itself one of them;
/// panics after `within`.
pub async fn leader_among(
    http: &reqwest::Client,
    members: &[ServerProcess],
    among: &[usize],
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut views = Vec::new();
        for &i in among {
            views.push(self_stats(http, &members[i].client_url()).await);
        }
        let leaders: Vec<&str> = views.iter().flatten().map(|(_, l)| l.as_str()).collect();
        if leaders.len() == among.len() && leaders.iter().all(|l| *l == leaders[0]) {
            if let Some(k) = views.iter().flatten().position(|(id, _)| id == leaders[0]) {
                return among[k];
            }
        }
        assert!(
            Instant::now() < deadline,
            "members {among:?} agree on no leader among them: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every key under `dir` on member `base`, sorted, with its value and modifiedIndex;
/// `None` when the member does not answer.
pub async fn listing(
    http: &reqwest::Client,
    base: &str,
    dir: &str,
) -> Option<Vec<(String, String, u64)>> {
    let v = try_get_json(
        http,
        &format!("{base}/v2/keys/{dir}?recursive=true&sorted=true"),
    )
    .await?;
    if v["errorCode"] == 100 {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    // An empty directory has no `nodes` at all (every key under it was deleted).
    let empty = Vec::new();
    let nodes = match v["node"]["nodes"].as_array() {
        Some(nodes) => nodes,
        None if v["node"]["dir"] == true => &empty,
        None => return None,
    };
    for n in nodes {
        out.push((
            n["key"].as_str()?.to_string(),
            n["value"].as_str().unwrap_or_default().to_string(),
            n["modifiedIndex"].as_u64()?,
        ));
    }
    Some(out)
}

/// Waits until every member lists the same keys, values and indexes under `dir`, and
/// returns that listing; panics after `within`.
pub async fn wait_converged(
    http: &reqwest::Client,
    members: &[ServerProcess],
    dir: &str,
    within: Duration,
) -> Vec<(String, String, u64)> {
    let deadline = Instant::now() + within;
    loop {
        let mut all = Vec::new();
        for m in members {
            all.push(listing(http, &m.client_url(), dir).await);
        }
        if all[0].is_some() && all.iter().all(|l| *l == all[0]) {
            return all[0].clone().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "members never converged on /{dir}: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One member started alone on fresh loopback ports, under `wrapper` (empty: none), with
/// `args` after its URLs (peer URLs `peer_scheme`), as a refused start is tried: its
/// exit code and stderr (it is stopped after 20 s if still running).
pub fn start_alone(
    wrapper: &[String],
    bin: &std::path::Path,
    peer_scheme: &str,
    args: &[&str],
) -> (Option<i32>, String) {
    let dir = beacon_testkit::TempDir::new("alone").expect("temp dir");
    let ports = beacon_testkit::free_ports(2);
    let client = format!("http://127.0.0.1:{}", ports[0]);
    let peer = format!("{peer_scheme}://127.0.0.1:{}", ports[1]);
    let out = std::process::Command::new("timeout")
        .arg("20")
        .args(wrapper)
        .arg(bin)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first line of `log` that has `words`, from them on.
pub fn said(log: &str, words: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.find(words).map(|at| l[at..].to_string()))
}

/// A discovery directory on `service` for `kind`'s members, its `_config/size` set to
/// `size`: the directory's key path (`_etcd/registry/<kind>`).
pub async fn discovery_dir(
    http: &reqwest::Client,
    service: &ServerProcess,
    kind: ServerKind,
    size: usize,
) -> String {
    let dir = format!("_etcd/registry/{kind:?}");
    let key = format!("{dir}/_config/size");
    let set = put(http, &service.client_url(), &key, &size.to_string()).await;
    assert_eq!(set.expect("size set")["action"], "set");
    dir
}

/// How long one etcdctl command may take.
const ETCDCTL_DEADLINE: Duration = Duration::from_secs(20);

/// Runs `etcdctl` with `args` against `server`: its exit code and its output, with the
/// server's URL blanked.
pub async fn etcdctl_v3(server: &ServerProcess, args: &[&str]) -> String {
    // Without the scheme: etcdctl dials such an endpoint as its other commands do.
    let url = server.client_url().replace("http://", "");
    let run = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={url}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=10s")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(ETCDCTL_DEADLINE, run)
        .await
        .expect("etcdctl ends in time")
        .expect("etcdctl runs");
    // clientv3's retry warnings are JSON log lines with times and ids: left out.
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|line| !line.starts_with("{\"level\""))
        .map(str::to_string)
        .collect();
    let text = format!(
        "{} -> {} | {} | {}",
        args.join(" "),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim(),
        stderr.join(" / ")
    );
    // Lease ids are each server's own.
    let text: Vec<&str> = text
        .split(' ')
        .map(|word| {
            let hex = word.len() >= 12 && word.chars().all(|c| c.is_ascii_hexdigit());
            if hex {
                "ID"
            } else {
                word
            }
        })
        .collect();
    text.join(" ").replace(&url, "URL")
}
