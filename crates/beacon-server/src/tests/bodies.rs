//! Form bodies are read within a deadline: a client that trickles its body slower
//! than [`REQUEST_BODY_READ_TIMEOUT`] is answered with error 210 and nothing is
//! written (issue 13, defect 4). Time is paused, so the minute passes at once.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio_stream::wrappers::ReceiverStream;

use super::harness;
use crate::limits::REQUEST_BODY_READ_TIMEOUT;

#[tokio::test(start_paused = true)]
async fn a_body_slower_than_the_deadline_is_cut_off() {
    let h = harness();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    // One frame now, the rest only after the deadline.
    tx.send(Ok(Frame::data(Bytes::from_static(b"value=sl"))))
        .await
        .unwrap();
    let late = tokio::spawn(async move {
        tokio::time::sleep(REQUEST_BODY_READ_TIMEOUT + Duration::from_secs(1)).await;
        let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"ow")))).await;
    });
    let req = Request::builder()
        .method("PUT")
        .uri("/v2/keys/slow")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::new(StreamBody::new(ReceiverStream::new(rx))))
        .unwrap();
    let started = tokio::time::Instant::now();
    let r = h.send(req).await;
    assert_eq!(started.elapsed(), REQUEST_BODY_READ_TIMEOUT);
    assert_eq!(r.status, 400, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["errorCode"], 210, "{}", r.body);
    late.abort();
    let r = h.call("GET", "/v2/keys/slow", "").await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test(start_paused = true)]
async fn a_slow_body_within_the_deadline_is_read() {
    let h = harness();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        // One byte every second: 12 s in all, well within the deadline.
        for byte in b"value=steady" {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let frame = Frame::data(Bytes::copy_from_slice(std::slice::from_ref(byte)));
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let req = Request::builder()
        .method("PUT")
        .uri("/v2/keys/steady")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::new(StreamBody::new(ReceiverStream::new(rx))))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = h.call("GET", "/v2/keys/steady", "").await;
    assert!(r.body.contains(r#""value":"steady""#), "{}", r.body);
}
