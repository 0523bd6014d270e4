//! etcd errors as HTTP responses: status from the code, `X-Etcd-Index` from the
//! error, JSON body line (etcd's `v2error.Error.WriteTo`).

use axum::response::Response;
use beacon_api::{ErrorCode, EtcdError};
use http::StatusCode;

use crate::consensus::ProposeFailure;
use crate::http::{full, set_number, APPLICATION_JSON, X_ETCD_INDEX};

/// The response etcd writes for `err`.
pub fn etcd_error(err: &EtcdError) -> Response {
    let status = StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = full(status, Some(APPLICATION_JSON), err.to_json_line());
    set_number(&mut resp, X_ETCD_INDEX, err.index);
    resp
}

/// A failed proposal as etcd reports non-store errors: code 300, the reason as cause.
pub fn propose_failure(failure: &ProposeFailure) -> EtcdError {
    EtcdError::request(ErrorCode::RaftInternal, failure.to_string())
}
