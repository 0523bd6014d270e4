//! The answer a peer handler gives when it handed a message to the local Raft.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Raft's result as JSON, or 503 when the local Raft stopped or failed.
pub(super) fn answer<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Response {
    match result {
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(json) => (StatusCode::OK, json).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        // The local Raft stopped or failed: the sender backs off and retries.
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// [`answer`] to a Raft message from `to`, its bytes counted as sent to it (`traffic`).
pub(super) fn answer_to<T: Serialize, E: std::fmt::Display>(
    to: crate::types::NodeId,
    result: Result<T, E>,
) -> Response {
    let response = answer(result);
    let bytes = hyper::body::Body::size_hint(response.body()).lower();
    super::traffic::sent(to, usize::try_from(bytes).unwrap_or(usize::MAX));
    response
}
