//! `/v2/keys` requests, checked against what etcd 3.4.23 answered for the same ones.

use super::harness;

#[tokio::test]
async fn set_then_get_like_etcd() {
    let h = harness();
    let r = h.call("PUT", "/v2/keys/foo", "value=bar").await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body, "{\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"bar\",\"modifiedIndex\":1,\"createdIndex\":1}}\n");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("x-etcd-index"), "1");
    assert_eq!(r.header("x-etcd-cluster-id"), "48276a8f75b6a87");
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert!(!r.header("x-raft-index").is_empty() && !r.header("x-raft-term").is_empty());

    let r = h.call("PUT", "/v2/keys/foo", "value=bar2").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"prevNode\""));

    let r = h.call("GET", "/v2/keys/foo", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "{\"action\":\"get\",\"node\":{\"key\":\"/foo\",\"value\":\"bar2\",\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    assert_eq!(r.header("x-etcd-index"), "2");

    // The root, both spellings.
    for uri in ["/v2/keys", "/v2/keys/"] {
        let r = h.call("GET", uri, "").await;
        assert_eq!(r.status, 200, "{uri}");
        assert!(
            r.body
                .starts_with("{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":["),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn head_has_get_headers_and_no_body() {
    let h = harness();
    h.call("PUT", "/v2/keys/foo", "value=bar").await;
    let get = h.call("GET", "/v2/keys/foo", "").await;
    let head = h.call("HEAD", "/v2/keys/foo", "").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    assert_eq!(head.header("content-length"), get.body.len().to_string());
    assert_eq!(head.header("x-etcd-index"), get.header("x-etcd-index"));
    let missing = h.call("HEAD", "/v2/keys/nokey", "").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, "");
}

#[tokio::test]
async fn request_errors_have_index_zero_and_etcd_causes() {
    let h = harness();
    let r = h.call("PUT", "/v2/keys/a?ttl=abc", "value=1").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-etcd-index"), "0");
    assert_eq!(r.header("x-etcd-cluster-id"), "48276a8f75b6a87");
    assert_eq!(
        r.body,
        "{\"errorCode\":202,\"message\":\"The given TTL in POST form is not a number\",\"cause\":\"invalid value for \\\"ttl\\\"\",\"index\":0}\n"
    );
    let r = h.call("PUT", "/v2/keys/a", "value=%zz").await;
    assert_eq!(r.body, "{\"errorCode\":210,\"message\":\"Invalid POST form\",\"cause\":\"invalid URL escape \\\"%zz\\\"\",\"index\":0}\n");
    let r = h.call("PUT", "/v2/keys/a?a=1;b=2", "value=3").await;
    assert!(r.body.contains("invalid semicolon separator in query"));
    let r = h.call("PUT", "/v2/keys/a?wait=true", "").await;
    assert!(r
        .body
        .contains("\\\"wait\\\" can only be used with GET requests"));
    // An empty ttl is no ttl.
    let r = h.call("PUT", "/v2/keys/a?ttl=", "value=1").await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn store_errors_carry_the_store_index() {
    let h = harness();
    h.call("PUT", "/v2/keys/x", "value=1").await;
    let r = h.call("GET", "/v2/keys/nokey", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-etcd-index"), "1");
    assert_eq!(
        r.body,
        "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/nokey\",\"index\":1}\n"
    );
    assert_eq!(r.header("x-raft-index"), "");
}

#[tokio::test]
async fn too_large_bodies_are_refused_like_go() {
    let h = harness();
    let big = format!(
        "value={}",
        "x".repeat(crate::limits::REQUEST_BODY_BYTES_MAX)
    );
    let r = h.call("PUT", "/v2/keys/big", &big).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, "{\"errorCode\":210,\"message\":\"Invalid POST form\",\"cause\":\"http: POST too large\",\"index\":0}\n");
    // 2 MB values are fine, as in etcd.
    let ok = format!("value={}", "x".repeat(2_000_000));
    assert_eq!(h.call("PUT", "/v2/keys/big", &ok).await.status, 201);
}

#[tokio::test]
async fn body_wins_over_query_and_json_bodies_are_ignored() {
    let h = harness();
    let r = h.call("PUT", "/v2/keys/k?value=query", "value=body").await;
    assert!(r.body.contains("\"value\":\"body\""));
    let req = http::Request::builder()
        .method("PUT")
        .uri("/v2/keys/j")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"value\":1}"))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, 201);
    assert!(r.body.contains("\"value\":\"\""), "{}", r.body);
}

#[tokio::test]
async fn no_value_on_success_and_quorum_get() {
    let h = harness();
    let r = h
        .call("PUT", "/v2/keys/n?noValueOnSuccess=true", "value=1")
        .await;
    assert_eq!(r.body, "{\"action\":\"set\"}\n");
    let before: u64 = h
        .call("GET", "/v2/keys/n", "")
        .await
        .header("x-raft-index")
        .parse()
        .unwrap();
    // quorum wins over wait, as in etcd: this answers at once.
    let r = h.call("GET", "/v2/keys/n?wait=true&quorum=true", "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("{\"action\":\"get\""));
    let after: u64 = r.header("x-raft-index").parse().unwrap();
    assert!(after > before, "a quorum read goes through the log");
}

#[tokio::test]
async fn methods_and_paths_like_go() {
    let h = harness();
    let r = h.call("PATCH", "/v2/keys/foo", "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), "HEAD,GET,PUT,POST,DELETE");
    assert_eq!(r.body, "Method Not Allowed\n");
    assert_eq!(r.header("x-etcd-cluster-id"), "");

    let r = h.call("GET", "/v2/keys//foo?x=1", "").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), "/v2/keys/foo?x=1");
    assert_eq!(
        r.body,
        "<a href=\"/v2/keys/foo?x=1\">Moved Permanently</a>.\n\n"
    );
    let r = h.call("GET", "/v2/keys/a/../foo", "").await;
    assert_eq!(r.header("location"), "/v2/keys/foo");
    let r = h.call("GET", "/v2/keys/a%2F..%2Ffoo", "").await;
    assert_eq!(r.header("location"), "/v2/keys/foo");
    let r = h.call("PUT", "/v2/keys/./foo", "value=1").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.body, "");

    h.call("PUT", "/v2/keys/foo", "value=1").await;
    assert_eq!(h.call("GET", "/v2/keys%2Ffoo", "").await.status, 200);
    assert_eq!(h.call("GET", "/v2/keys/fo%6f", "").await.status, 200);
    let r = h.call("GET", "/v2/keys/%zz", "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), "close");
    assert_eq!(
        h.call("GET", "/v2/keysfoo", "").await.body,
        "404 page not found\n"
    );
    let r = h.call("OPTIONS", "/v2/keys//x", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "");
}

#[tokio::test]
async fn proposals_time_out_as_etcd_errors() {
    let h = harness();
    h.consensus.set_leader(false);
    let r = h.call("PUT", "/v2/keys/foo", "value=1").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"cause\":\"etcdserver: request timed out\",\"index\":0}\n"
    );
}
