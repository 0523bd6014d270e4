//! Handler tests against the in-memory consensus: requests go through the router
//! with `tower::ServiceExt::oneshot`, watches through a real listener.

mod auth;
mod bodies;
mod garbage;
mod gateway;
mod keys;
mod misc;
mod watch;

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::watch as tokio_watch;
use tower::ServiceExt;

use crate::cluster::Cluster;
use crate::consensus::MemoryConsensus;
use crate::state::AppState;

/// A router over a fresh in-memory store, the consensus, and the shutdown switch.
pub struct Harness {
    pub router: Router,
    pub consensus: Arc<MemoryConsensus>,
    pub stop: tokio_watch::Sender<bool>,
}

pub fn harness() -> Harness {
    let cluster = Cluster::bootstrap(
        &[("default".into(), "http://127.0.0.1:23800".into())],
        "etcd-cluster",
        "default",
        &["http://127.0.0.1:23790".into()],
    )
    .expect("cluster");
    let consensus =
        Arc::new(MemoryConsensus::new(cluster.local_id).with_members(cluster.members.clone()));
    let (stop, stop_rx) = tokio_watch::channel(false);
    let state = Arc::new(AppState::new(
        consensus.clone(),
        cluster,
        std::time::Duration::from_millis(300),
        stop_rx,
    ));
    Harness {
        router: crate::router::router(
            Arc::clone(&state),
            crate::grpc::Services::new(&state),
            crate::router::Apis::ALL,
        ),
        consensus,
        stop,
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Harness {
    /// Sends a request; a non-empty `form` goes as an urlencoded body.
    pub async fn call(&self, method: &str, uri: &str, form: &str) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if !form.is_empty() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = req.body(Body::from(form.to_string())).expect("request");
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}
