//! `/v2/members` and `/v2/machines`: the member list as etcd shows it.

use axum::body::Body;
use axum::response::Response;
use beacon_raft::{MemberChange, MembershipError};
use http::StatusCode;
use serde::Serialize;

use crate::cluster::{added_member_id, client_urls, id_hex, Member};
use crate::http::body::read_capped;
use crate::http::{
    full, go_error, json_message, method_not_allowed, APPLICATION_JSON, TEXT_PLAIN,
    X_ETCD_CLUSTER_ID,
};
use crate::limits::{REQUEST_BODY_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT};
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
pub async fn serve_members(
    state: &AppState,
    method: &http::Method,
    head: &http::request::Parts,
    rest: &str,
    body: Body,
) -> Response {
    let allowed = [
        http::Method::GET,
        http::Method::POST,
        http::Method::DELETE,
        http::Method::PUT,
    ];
    if !allowed.contains(method) {
        return method_not_allowed(Some("GET,POST,DELETE,PUT"));
    }
    // With v2 auth on, changing members needs root; etcd's 401 has no cluster id.
    if !super::auth::access::has_write_root_access(state, method, head).await {
        return super::auth::no_auth();
    }
    let mut resp = match *method {
        http::Method::GET => list(state, rest),
        http::Method::POST => add(state, &head.headers, body).await,
        // etcd answers a PUT or DELETE without a member id with a bare 405.
        http::Method::PUT | http::Method::DELETE if rest.is_empty() => {
            go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        }
        // Go's ParseUint takes no sign, where Rust's takes a '+'.
        _ => match u64::from_str_radix(rest, 16)
            .ok()
            .filter(|_| !rest.starts_with('+'))
        {
            None => no_such_member(rest),
            Some(id) if *method == http::Method::DELETE => remove(state, id).await,
            Some(id) => update(state, id, &head.headers, body).await,
        },
    };
    resp.headers_mut()
        .insert(X_ETCD_CLUSTER_ID, state.cluster_id_header());
    resp
}

fn list(state: &AppState, rest: &str) -> Response {
    let members = state.consensus.members();
    match rest {
        "" => {
            let members = Members {
                members: members.iter().map(member_json).collect(),
            };
            full(StatusCode::OK, Some(APPLICATION_JSON), json_line(&members))
        }
        "leader" => match state
            .status()
            .leader_id
            .and_then(|id| members.iter().find(|m| m.id == id))
        {
            Some(m) => full(
                StatusCode::OK,
                Some(APPLICATION_JSON),
                json_line(&member_json(m)),
            ),
            None => json_message(StatusCode::SERVICE_UNAVAILABLE, "During election"),
        },
        _ => json_message(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// `POST /v2/members`: a new member, which joins as a learner; 201 with its record.
async fn add(state: &AppState, headers: &http::HeaderMap, body: Body) -> Response {
    let peer_urls = match peer_urls_of(headers, body).await {
        Ok(urls) => urls,
        Err(resp) => return resp,
    };
    let id = added_member_id(&peer_urls, state.now_ns() / 1_000_000_000);
    let change = MemberChange::Add {
        id,
        peer_urls: peer_urls.clone(),
        learner: false,
    };
    match state.consensus.change_members(change).await {
        Ok(()) => {
            let member = Member {
                id,
                name: String::new(),
                peer_urls,
                client_urls: Vec::new(),
                is_learner: false,
            };
            full(
                StatusCode::CREATED,
                Some(APPLICATION_JSON),
                json_line(&member_json(&member)),
            )
        }
        Err(e @ (MembershipError::IdExists | MembershipError::PeerUrlExists)) => {
            json_message(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e) => internal_error("adding a member", &e),
    }
}

/// `DELETE /v2/members/<id>`: 204 once the member is out.
async fn remove(state: &AppState, id: u64) -> Response {
    match state
        .consensus
        .change_members(MemberChange::Remove { id })
        .await
    {
        Ok(()) => full(StatusCode::NO_CONTENT, None, Body::empty()),
        Err(MembershipError::IdNotFound) => no_such_member(&id_hex(id)),
        Err(MembershipError::IdRemoved) => json_message(
            StatusCode::GONE,
            &format!("Member permanently removed: {}", id_hex(id)),
        ),
        Err(e) => internal_error("removing a member", &e),
    }
}

/// `PUT /v2/members/<id>`: new peer URLs; 204.
async fn update(state: &AppState, id: u64, headers: &http::HeaderMap, body: Body) -> Response {
    let peer_urls = match peer_urls_of(headers, body).await {
        Ok(urls) => urls,
        Err(resp) => return resp,
    };
    match state
        .consensus
        .change_members(MemberChange::Update { id, peer_urls })
        .await
    {
        Ok(()) => full(StatusCode::NO_CONTENT, None, Body::empty()),
        Err(e @ MembershipError::PeerUrlExists) => {
            json_message(StatusCode::CONFLICT, &e.to_string())
        }
        Err(MembershipError::IdNotFound) => no_such_member(&id_hex(id)),
        Err(e) => internal_error("updating a member", &e),
    }
}

fn no_such_member(id: &str) -> Response {
    json_message(StatusCode::NOT_FOUND, &format!("No such member: {id}"))
}

/// etcd logs what went wrong and tells the client only this.
fn internal_error(what: &str, e: &MembershipError) -> Response {
    tracing::warn!(error = %e, "{what}");
    json_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// The peer URLs of a create or update request, checked as etcd checks them
/// (`unmarshalRequest` and `types.NewURLs`), sorted; or the error response.
async fn peer_urls_of(headers: &http::HeaderMap, body: Body) -> Result<Vec<String>, Response> {
    let ctype = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let ctype = match ctype.split_once(';') {
        Some((media, _)) => media.trim().to_ascii_lowercase(),
        None => ctype,
    };
    if ctype != "application/json" {
        return Err(json_message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Bad Content-Type {ctype}, accept application/json"),
        ));
    }
    let bad = |m: String| json_message(StatusCode::BAD_REQUEST, &m);
    let bytes = match read_capped(body, REQUEST_BODY_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT).await {
        Ok(bytes) => bytes,
        Err(e) => return Err(bad(e.to_string())),
    };
    #[derive(serde::Deserialize)]
    struct Create {
        #[serde(rename = "peerURLs", default)]
        peer_urls: Option<Vec<String>>,
    }
    let create: Create = serde_json::from_slice(&bytes).map_err(|e| bad(go_json_error(&e)))?;
    let urls = create.peer_urls.unwrap_or_default();
    if urls.is_empty() {
        return Err(bad("no valid URLs given".into()));
    }
    let mut checked = Vec::with_capacity(urls.len());
    for url in &urls {
        checked.push(beacon_api::peer_url::check(url).map_err(bad)?);
    }
    checked.sort();
    Ok(checked)
}

/// serde_json's message in the words of Go's `encoding/json` where they are common.
fn go_json_error(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of JSON input".into(),
        serde_json::error::Category::Data => {
            "json: cannot unmarshal value into Go struct field .peerURLs of type []string".into()
        }
        _ => format!("invalid character in JSON: {e}"),
    }
}

/// `/v2/machines`: every client URL, joined by ", ", as plain text.
pub fn serve_machines(state: &AppState, method: &http::Method) -> Response {
    if method != http::Method::GET && method != http::Method::HEAD {
        return method_not_allowed(Some("GET,HEAD"));
    }
    full(
        StatusCode::OK,
        Some(TEXT_PLAIN),
        client_urls(&state.consensus.members()).join(", "),
    )
}
