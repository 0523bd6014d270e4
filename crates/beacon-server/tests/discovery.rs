//! `--discovery`, against etcd 3.4.23: three members given only a discovery URL (a
//! directory of a v2 keys API whose `_config/size` is 3, here on a Beacon) find each
//! other, form one cluster, and serve; the same with etcd's members, whose discovery
//! client speaks to the same service. Both list the same three names, and leave one
//! registration per member.

mod support;

use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess};
use serde_json::Value;

/// The members a member lists (`/v2/members`): names and peer URLs, sorted.
async fn members(http: &reqwest::Client, member: &ServerProcess) -> Vec<(String, String)> {
    let listed = support::get_json(http, &format!("{}/v2/members", member.client_url())).await;
    let mut out: Vec<(String, String)> = listed["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m: &Value| {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            (
                name,
                m["peerURLs"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_find_each_other_through_the_discovery_service_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let service = ServerProcess::beacon().expect("the discovery service starts");
    let http = support::http();
    let mut seen = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let dir = support::discovery_dir(&http, &service, kind, 3).await;
        let url = format!("{}/v2/keys/{dir}", service.client_url());
        let cluster = tokio::task::spawn_blocking(move || {
            ServerProcess::cluster_discovered(kind, bin, 3, &url, &[], &[])
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{kind:?}: the discovered cluster starts: {e}"));
        // Every member lists the same three, and the cluster takes a write.
        let listed = members(&http, &cluster[0]).await;
        assert_eq!(listed.len(), 3, "{kind:?}: {listed:?}");
        for m in &cluster[1..] {
            assert_eq!(members(&http, m).await, listed, "{kind:?}");
        }
        let wrote = support::put(&http, &cluster[2].client_url(), "k", "v").await;
        assert_eq!(wrote.expect("a write")["action"], "set", "{kind:?}");
        // The registrations the service holds: one per member, named by its id.
        let registry =
            support::get_json(&http, &format!("{}/v2/keys/{dir}", service.client_url())).await;
        let mut registered: Vec<String> = registry["node"]["nodes"]
            .as_array()
            .expect("registrations")
            .iter()
            .filter_map(|n| n["value"].as_str().map(str::to_string))
            .collect();
        registered.sort();
        let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        seen.push((names.join(","), registered.len()));
    }
    assert_eq!(seen[0], ("m0,m1,m2".to_string(), 3), "etcd");
    assert_eq!(seen[1], seen[0], "beacon");
}

/// A discovery URL whose size was never set: both exit 1 with etcd's words, which are
/// the service's v2 error (etcd's own "size key not found" check misses it).
#[test]
fn a_discovery_url_without_a_size_ends_the_start_as_etcds() {
    if !etcd_or_skip() {
        return;
    }
    let service = ServerProcess::beacon().expect("the discovery service starts");
    let url = format!("{}/v2/keys/nosize", service.client_url());
    let mut said = Vec::new();
    for bin in [etcd_bin(), beacon_bin()] {
        let args = ["--name", "a", "--discovery", &url];
        let (code, log) = support::start_alone(&[], &bin, "http", &args);
        let line = support::said(&log, "failed to join")
            .unwrap_or_else(|| panic!("{}: {log}", bin.display()));
        // The service's index at the time differs from run to run.
        let line = line
            .rsplit_once(" [")
            .map_or(line.clone(), |(head, _)| head.to_string());
        said.push((code, line));
    }
    let want = "failed to join discovery cluster (100: Key not found (/nosize)";
    assert_eq!(said[0], (Some(1), want.to_string()), "etcd");
    assert_eq!(said[1], said[0], "beacon");
}
