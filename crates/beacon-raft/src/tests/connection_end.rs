//! The peer listener's `ConnectionEnd`: what a handler leaves runs when its connection
//! closes, once, however many of the connection's requests left something (the append
//! handler leaves word for the election timer on every append from the leader).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Router};
use tokio::sync::mpsc;

use super::net::{url, MemoryNet};
use crate::peer::{serve_listener, ConnectionEnd, PeerHttp};

const DEADLINE: Duration = Duration::from_secs(10);

async fn mark(
    State(closed): State<mpsc::UnboundedSender<()>>,
    Extension(end): Extension<ConnectionEnd>,
) -> &'static str {
    end.on_close_once(|| move || closed.send(()).expect("the test waits"));
    "marked"
}

#[tokio::test]
async fn what_a_handler_leaves_runs_once_when_its_connection_closes() {
    let net = Arc::new(MemoryNet::default());
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let routes = Router::new()
        .route("/mark", get(mark))
        .with_state(closed_tx);
    tokio::spawn(serve_listener(net.listen("member-1.invalid", 1), routes));
    let http = PeerHttp::new(Arc::clone(&net) as _, http::HeaderMap::new());
    // One keep-alive connection, two requests on it.
    for _ in 0..2 {
        let answer = http
            .get(&format!("{}/mark", url(1)), DEADLINE)
            .await
            .expect("answered");
        assert_eq!(&answer.body[..], b"marked");
    }
    assert!(closed.try_recv().is_err(), "the connection is still open");
    // Dropping the client closes its pooled connection.
    drop(http);
    tokio::time::timeout(DEADLINE, closed.recv())
        .await
        .expect("ran when the connection closed")
        .expect("sender alive");
    // The second request's leaving was dropped, not kept for a second run.
    assert!(closed.try_recv().is_err(), "ran once");
}
