//! `/version`: Beacon reports etcd's version numbers, since clients decide what the
//! server supports from them.

use axum::response::Response;
use http::StatusCode;

use crate::http::{full, method_not_allowed, APPLICATION_JSON};

/// The etcd server version Beacon is compatible with.
pub const ETCD_SERVER_VERSION: &str = "3.4.23";
/// The cluster version etcd 3.4 reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

/// GET only; the body has no trailing newline, as etcd's.
pub fn serve(method: &http::Method) -> Response {
    if method != http::Method::GET {
        return method_not_allowed(Some("GET"));
    }
    // Written by hand: etcd's field order, which a JSON map would sort.
    let body = format!(
        "{{\"etcdserver\":\"{ETCD_SERVER_VERSION}\",\"etcdcluster\":\"{ETCD_CLUSTER_VERSION}\"}}"
    );
    full(StatusCode::OK, Some(APPLICATION_JSON), body)
}
