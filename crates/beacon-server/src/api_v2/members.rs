//! `/v2/members` and `/v2/machines`: the member list as etcd shows it.

use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use crate::cluster::{id_hex, Member};
use crate::http::{
    full, go_error, json_message, method_not_allowed, set_header, APPLICATION_JSON, TEXT_PLAIN,
};
use crate::state::AppState;

#[derive(Serialize)]
struct MemberJson<'a> {
    id: String,
    name: &'a str,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "clientURLs")]
    client_urls: &'a [String],
}

#[derive(Serialize)]
struct Members<'a> {
    members: Vec<MemberJson<'a>>,
}

fn member_json(m: &Member) -> MemberJson<'_> {
    MemberJson {
        id: id_hex(m.id),
        name: &m.name,
        peer_urls: &m.peer_urls,
        client_urls: &m.client_urls,
    }
}

/// etcd's JSON encoder ends each document with a newline.
fn json_line(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string(value).unwrap_or_default();
    s.push('\n');
    s
}

/// Serves `/v2/members` and below; `rest` is the path after `/v2/members`, one
/// leading slash removed (etcd's `trimPrefix`).
pub fn serve_members(state: &AppState, method: &http::Method, rest: &str) -> Response {
    let allowed = [
        http::Method::GET,
        http::Method::POST,
        http::Method::DELETE,
        http::Method::PUT,
    ];
    if !allowed.contains(method) {
        return method_not_allowed(Some("GET,POST,DELETE,PUT"));
    }
    let mut resp = match *method {
        http::Method::GET => match rest {
            "" => {
                let members = Members {
                    members: state.cluster.members.iter().map(member_json).collect(),
                };
                full(StatusCode::OK, Some(APPLICATION_JSON), json_line(&members))
            }
            "leader" => match state
                .status()
                .leader_id
                .and_then(|id| state.cluster.member(id))
            {
                Some(m) => full(
                    StatusCode::OK,
                    Some(APPLICATION_JSON),
                    json_line(&member_json(m)),
                ),
                None => json_message(StatusCode::SERVICE_UNAVAILABLE, "During election"),
            },
            _ => json_message(StatusCode::NOT_FOUND, "Not found"),
        },
        // etcd answers a PUT or DELETE without a member id with a bare 405.
        http::Method::PUT | http::Method::DELETE if rest.is_empty() => {
            go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
        _ => json_message(
            StatusCode::NOT_IMPLEMENTED,
            "beacon does not support membership changes yet",
        ),
    };
    set_header(&mut resp, "x-etcd-cluster-id", state.cluster_id_hex());
    resp
}

/// `/v2/machines`: every client URL, joined by ", ", as plain text.
pub fn serve_machines(state: &AppState, method: &http::Method) -> Response {
    if method != http::Method::GET && method != http::Method::HEAD {
        return method_not_allowed(Some("GET,HEAD"));
    }
    full(
        StatusCode::OK,
        Some(TEXT_PLAIN),
        state.cluster.client_urls().join(", "),
    )
}
