//! `/health`, as etcd 3.4: healthy when no alarm is raised, there is a leader and a
//! quorum read succeeds within a second. etcd 3.4's body has no `reason` field, and its content type is
//! Go's sniffed `text/plain`.

use axum::response::Response;
use beacon_store::{Command, KeysRequest, Method as StoreMethod};
use http::StatusCode;

use crate::consensus::propose_with_timeout;
use crate::http::{full, go_error, method_not_allowed, TEXT_PLAIN};
use crate::limits::HEALTH_QUORUM_READ_TIMEOUT;
use crate::state::AppState;

/// GET only.
pub async fn serve(state: &AppState, method: &http::Method) -> Response {
    if method != http::Method::GET {
        return method_not_allowed(Some("GET"));
    }
    if healthy(state).await {
        full(StatusCode::OK, Some(TEXT_PLAIN), "{\"health\":\"true\"}")
    } else {
        // etcd sends the unhealthy body through http.Error: plain text plus newline.
        go_error(StatusCode::SERVICE_UNAVAILABLE, "{\"health\":\"false\"}")
    }
}

async fn healthy(state: &AppState) -> bool {
    let alarmed = match state.consensus.mvcc().read() {
        Ok(mvcc) => !mvcc.alarms().is_empty(),
        Err(_) => true,
    };
    if alarmed {
        tracing::warn!("/health is false: an alarm is raised");
        return false;
    }
    if state.status().leader_id.is_none() {
        return false;
    }
    // Like etcd's QGET of the root (it counts as a get in /v2/stats/store there too).
    let cmd = Command::Keys(KeysRequest::new(
        StoreMethod::QuorumGet,
        "/",
        state.now_ns(),
    ));
    propose_with_timeout(state.consensus.as_ref(), cmd, HEALTH_QUORUM_READ_TIMEOUT)
        .await
        .is_ok()
}
