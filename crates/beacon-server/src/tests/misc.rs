//! `/version`, `/health`, stats, members and machines, in etcd 3.4.23's shapes.

use super::harness;

#[tokio::test]
async fn version() {
    let h = harness();
    let r = h.call("GET", "/version", "").await;
    assert_eq!(
        r.body,
        "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}"
    );
    assert_eq!(r.header("content-type"), "application/json");
    let r = h.call("POST", "/version", "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), "GET");
}

#[tokio::test]
async fn health_follows_the_leader() {
    let h = harness();
    let r = h.call("GET", "/health", "").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (200, "{\"health\":\"true\"}")
    );
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    h.consensus.set_leader(false);
    let r = h.call("GET", "/health", "").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (503, "{\"health\":\"false\"}\n")
    );
}

#[tokio::test]
async fn members_and_machines() {
    let h = harness();
    let r = h.call("GET", "/v2/members", "").await;
    assert_eq!(
        r.body,
        "{\"members\":[{\"id\":\"2e1259d415f2a040\",\"name\":\"default\",\"peerURLs\":[\"http://127.0.0.1:23800\"],\"clientURLs\":[\"http://127.0.0.1:23790\"]}]}\n"
    );
    assert_eq!(r.header("x-etcd-cluster-id"), "48276a8f75b6a87");
    let r = h.call("GET", "/v2/members/leader", "").await;
    assert!(r.body.starts_with("{\"id\":\"2e1259d415f2a040\""));
    assert_eq!(
        h.call("GET", "/v2/members/xyz", "").await.body,
        "{\"message\":\"Not found\"}"
    );
    let r = h.call("DELETE", "/v2/members", "").await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, ""));
    let r = h.call("HEAD", "/v2/members", "").await;
    assert_eq!(r.header("allow"), "GET,POST,DELETE,PUT");
    let r = h.call("GET", "/v2/machines", "").await;
    assert_eq!(r.body, "http://127.0.0.1:23790");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        h.call("POST", "/v2/machines", "").await.header("allow"),
        "GET,HEAD"
    );
}

#[tokio::test]
async fn stats() {
    let h = harness();
    h.call("PUT", "/v2/keys/a", "value=1").await;
    let r = h.call("GET", "/v2/stats/store", "").await;
    assert!(r.body.starts_with("{\"getsSuccess\":"), "{}", r.body);
    assert!(r.body.contains("\"setsSuccess\":1"));
    let r = h.call("GET", "/v2/stats/leader", "").await;
    assert_eq!(r.body, "{\"leader\":\"2e1259d415f2a040\",\"followers\":{}}");
    let r = h.call("GET", "/v2/stats/self", "").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["name"], "default");
    assert_eq!(v["state"], "StateLeader");
    assert_eq!(v["leaderInfo"]["leader"], "2e1259d415f2a040");
    assert!(r.body.starts_with("{\"name\":\"default\",\"id\":\"2e1259d415f2a040\",\"state\":\"StateLeader\",\"startTime\":"));
    h.consensus.set_leader(false);
    let r = h.call("GET", "/v2/stats/leader", "").await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_str()),
        (403, "{\"message\":\"not current leader\"}")
    );
    assert_eq!(h.call("GET", "/v2/stats", "").await.status, 404);
}

/// A panic inside `Store::apply` poisons the store's lock and may leave it half changed:
/// reads, store stats and new watches are then refused with error 300 rather than
/// served from it (the state machine refuses to apply on top of it too).
#[tokio::test]
async fn a_store_poisoned_by_a_panic_is_never_served() {
    let h = harness();
    assert_eq!(h.call("PUT", "/v2/keys/k", "value=v").await.status, 201);
    let store = std::sync::Arc::clone(crate::consensus::Consensus::store(h.consensus.as_ref()));
    let _ = std::thread::spawn(move || {
        let _guard = store.write().unwrap();
        panic!("a broken invariant while applying (this panic is the test's)");
    })
    .join();

    for uri in ["/v2/keys/k", "/v2/stats/store", "/v2/keys/k?wait=true"] {
        let reply = h.call("GET", uri, "").await;
        assert_eq!(reply.status, 500, "{uri}: {}", reply.body);
        assert!(
            reply.body.contains(r#""errorCode":300"#),
            "{uri}: {}",
            reply.body
        );
    }
}
