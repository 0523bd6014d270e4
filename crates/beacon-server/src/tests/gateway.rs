//! The JSON gateway's bounds: a body over its limit is refused before it is decoded,
//! and a watch stream's work ends when its client stops reading it.

use std::time::Duration;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::harness;
use crate::limits::GATEWAY_REQUEST_BYTES_MAX;

#[tokio::test]
async fn a_body_over_the_limit_is_refused_unread() {
    let h = harness();
    let body = format!(
        r#"{{"key":"YQ==","value":"{}"}}"#,
        "A".repeat(GATEWAY_REQUEST_BYTES_MAX)
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
