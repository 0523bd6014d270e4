//! A replication stream's own connection (`peer::direct`) against a stand-in peer on
//! the in-memory network: calls reuse one connection, a call that times out drops it
//! and the next call opens another, and a peer that is not there was never sent to.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use http::HeaderMap;

use super::net::MemoryNet;
use crate::peer::call::CallError;
use crate::peer::direct::Direct;
use crate::peer::serve_listener;

const HOST: &str = "member-9.invalid";
const PORT: u16 = 9;

/// A peer that echoes `POST /echo` and never answers `POST /hang`.
fn peer(net: &MemoryNet) {
    let routes = Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/hang", post(std::future::pending::<()>));
    tokio::spawn(serve_listener(net.listen(HOST, PORT), routes));
}

#[tokio::test(start_paused = true)]
async fn calls_reuse_one_connection_until_one_fails() {
    let net = Arc::new(MemoryNet::default());
    peer(&net);
    let direct = Direct::new(net.clone(), HOST, PORT, Arc::new(HeaderMap::new()));
    let echo =
        |i: u32| direct.post_json("/echo", i.to_string().into_bytes(), Duration::from_secs(5));
    for i in 0..3 {
        let answer = echo(i).await.unwrap();
        assert_eq!(answer.body, i.to_string().as_bytes());
    }
    assert_eq!(net.connects(), 1, "one connection for every call");
    let hung = direct
        .post_json("/hang", b"x".to_vec(), Duration::from_millis(100))
        .await;
    assert!(matches!(hung, Err(CallError::Timeout)), "{hung:?}");
    // The answer to the hung call could still come on that connection: a new one.
    assert_eq!(echo(3).await.unwrap().body, &b"3"[..]);
    assert_eq!(net.connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_is_not_there_was_never_sent_to() {
    let net = Arc::new(MemoryNet::default());
    let direct = Direct::new(net, HOST, PORT, Arc::new(HeaderMap::new()));
    let refused = direct
        .post_json("/echo", b"x".to_vec(), Duration::from_secs(5))
        .await;
    assert!(
        matches!(
            refused,
            Err(CallError::NotSent {
                timed_out: false,
                ..
            })
        ),
        "{refused:?}"
    );
}
