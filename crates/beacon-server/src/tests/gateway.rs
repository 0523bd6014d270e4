//! The JSON gateway's bounds (a body over its limit is refused before it is decoded, a
//! watch stream's work ends when its client stops reading it) and its calls counted as
//! gRPC calls for `/metrics`.

use std::time::Duration;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::harness;
use crate::limits::RequestBytesMax;

#[tokio::test]
async fn a_body_over_the_limit_is_refused_unread() {
    let h = harness();
    let body = format!(
        r#"{{"key":"YQ==","value":"{}"}}"#,
        "A".repeat(RequestBytesMax::default().gateway_request())
    );
    let r = h.call("POST", "/v3/kv/put", &body).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["code"], 8, "{}", r.body);
    let range = h.call("POST", "/v3/kv/range", r#"{"key":"YQ=="}"#).await;
    assert!(
        !range.body.contains("kvs"),
        "nothing was written: {}",
        range.body
    );
}

#[tokio::test]
async fn a_watch_stream_ends_with_its_client() {
    let h = harness();
    let req = Request::builder()
        .method("POST")
        .uri("/v3/watch")
        .body(Body::from(r#"{"create_request":{"key":"YQ=="}}"#))
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    let created = String::from_utf8_lossy(first.data_ref().expect("data")).into_owned();
    assert!(created.contains(r#""created":true"#), "{created}");
    assert_eq!(h.consensus.v3_revision_followers(), 1);
    drop(body);
    // The session notices at its next turn; it holds nothing once it has.
    let gone = tokio::time::timeout(Duration::from_secs(5), async {
        while h.consensus.v3_revision_followers() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the watch session outlived its client");
}

#[tokio::test]
async fn calls_count_as_grpc_calls() {
    use crate::grpc::calls::{handled, started, CODES, METHODS};
    use crate::grpc::messages::{received, received_bytes, sent};
    let put = METHODS.iter().position(|m| m.1 == "Put").unwrap();
    let invalid = CODES.iter().position(|c| *c == "InvalidArgument").unwrap();
    let (started_before, refused_before) = (started(put), handled(put, invalid));
    let (received_before, sent_before) = (received(put), sent(put));
    let bytes_before = received_bytes();
    let h = harness();
    h.call("POST", "/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#)
        .await;
    let r = h.call("POST", "/v3/kv/put", r#"{"value":"MQ=="}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A body that does not decode never reaches the service, nor the count.
    h.call("POST", "/v3/kv/put", r#"{"key":"#).await;
    // Other tests may count puts at the same time: at least these.
    assert!(started(put) >= started_before + 2);
    assert!(handled(put, invalid) > refused_before);
    // Both requests were received, the refused one got no answer message; the first
    // was 6 bytes (key and value, each a tag, a length and one byte).
    assert!(received(put) >= received_before + 2);
    assert!(sent(put) > sent_before);
    assert!(received_bytes() >= bytes_before + 6 + 3);
}
