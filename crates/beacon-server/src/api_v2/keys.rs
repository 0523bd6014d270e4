//! `/v2/keys`: etcd's `keysHandler`. Reads are local, writes and quorum reads go
//! through consensus, `wait=true` becomes a watch.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use beacon_api::{Action, ByteString, ErrorCode, EtcdError, Event};
use beacon_store::{Applied, Command, Method as StoreMethod};
use http::StatusCode;

use super::auth;
use super::error::{etcd_error, propose_failure};
use super::params::{parse_key_params, KeyParams};
use super::watch;
use crate::consensus::{caught_up, propose_with_timeout, read_store, ConsensusStatus};
use crate::http::body::{read_capped, BodyError};
use crate::http::goform::{media_type, method_has_form_body, parse_form};
use crate::http::{
    full, method_not_allowed, set_number, APPLICATION_JSON, X_ETCD_CLUSTER_ID, X_ETCD_INDEX,
    X_RAFT_INDEX, X_RAFT_TERM,
};
use crate::limits::{REQUEST_BODY_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT};
use crate::state::AppState;

/// etcd's `Allow` list for the keys endpoint, in its order.
const ALLOW: &str = "HEAD,GET,PUT,POST,DELETE";

/// Serves one keys request; `key` is the cleaned path after `/v2/keys`, rooted, and
/// the path after `/v2/keys` as sent, which etcd checks permissions on.
pub async fn serve(
    state: &Arc<AppState>,
    method: http::Method,
    head: &http::request::Parts,
    raw_query: &str,
    (key, sent): (ByteString, &[u8]),
    body: Body,
) -> Response {
    let known = [
        http::Method::HEAD,
        http::Method::GET,
        http::Method::PUT,
        http::Method::POST,
        http::Method::DELETE,
    ];
    if !known.contains(&method) {
        return method_not_allowed(Some(ALLOW));
    }
    let mut resp = match handle(state, &method, head, raw_query, (key, sent), body).await {
        Ok(resp) => resp,
        Err(e) => etcd_error(&e),
    };
    resp.headers_mut()
        .insert(X_ETCD_CLUSTER_ID, state.cluster_id_header());
    resp
}

async fn handle(
    state: &Arc<AppState>,
    method: &http::Method,
    head: &http::request::Parts,
    raw_query: &str,
    (key, sent): (ByteString, &[u8]),
    body: Body,
) -> Result<Response, EtcdError> {
    let content_type = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // Go reads the body only for form posts; anything else is left unread.
    let reads_body = method_has_form_body(method)
        && media_type(content_type.as_deref())
            .is_ok_and(|mt| mt == "application/x-www-form-urlencoded");
    let body_bytes = if reads_body {
        match read_capped(body, REQUEST_BODY_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT).await {
            Ok(bytes) => Ok(bytes),
            Err(BodyError::TooLarge { .. }) => Err(()),
            Err(e) => return Err(EtcdError::request(ErrorCode::InvalidForm, e.to_string())),
        }
    } else {
        Ok(bytes::Bytes::new())
    };
    let form = parse_form(
        method,
        content_type.as_deref(),
        body_bytes.as_deref().map_err(|_| ()),
        raw_query,
    )
    .map_err(|cause| EtcdError::request(ErrorCode::InvalidForm, cause))?;
    let params = parse_key_params(method, key, &form)?;
    // etcd checks permissions once the request parsed, on the path as sent.
    if !auth::access::has_key_access(state, method, head, sent, params.recursive).await {
        return Err(EtcdError::new(
            ErrorCode::Unauthorized,
            "Insufficient credentials",
            0,
        ));
    }
    if let Some(v2v3) = &state.v2v3 {
        return super::v2v3::handle(state, v2v3, method, &params).await;
    }
    let now = state.now_ns();
    match *method {
        // etcd checks quorum before wait: `wait=true&quorum=true` is a quorum read.
        http::Method::GET if params.quorum => {
            propose(state, &params, StoreMethod::QuorumGet, now).await
        }
        http::Method::GET if params.wait => {
            read_caught_up(state).await?;
            watch::start(
                state,
                &params.key,
                params.recursive,
                params.stream,
                params.wait_index,
            )
        }
        http::Method::GET | http::Method::HEAD => {
            read_caught_up(state).await?;
            let event = {
                let store = read_store(state.consensus.store())?;
                store.get(&params.key, params.recursive, params.sorted, now)?
            };
            Ok(event_response(&event, &state.status(), false))
        }
        http::Method::PUT => propose(state, &params, StoreMethod::Put, now).await,
        http::Method::POST => propose(state, &params, StoreMethod::Post, now).await,
        _ => propose(state, &params, StoreMethod::Delete, now).await,
    }
}

/// Waits until this member's store has every write it acknowledged
/// (`consensus::caught_up`), within the request timeout.
pub async fn read_caught_up(state: &AppState) -> Result<(), EtcdError> {
    caught_up(state.consensus.as_ref(), state.request_timeout)
        .await
        .map_err(|f| propose_failure(&f))
}

async fn propose(
    state: &AppState,
    params: &KeyParams,
    method: StoreMethod,
    now: i64,
) -> Result<Response, EtcdError> {
    let cmd = Command::Keys(params.to_store_request(method, now));
    let committed = propose_with_timeout(state.consensus.as_ref(), cmd, state.request_timeout)
        .await
        .map_err(|f| propose_failure(&f))?;
    match committed.applied {
        Applied::Keys(result) => {
            let event = result?;
            let mut status = state.status();
            // etcd reports the commit index after the apply; never less than ours.
            status.commit_index = status.commit_index.max(committed.raft_index);
            status.term = status.term.max(committed.raft_term);
            Ok(event_response(&event, &status, params.no_value_on_success))
        }
        Applied::Synced | Applied::V3(_) | Applied::Auth(_) => Err(EtcdError::request(
            ErrorCode::RaftInternal,
            "received response with no Event/Watcher",
        )),
    }
}

/// etcd's `writeKeyEvent`: 201 for creations, the index headers, the event line.
pub fn event_response(
    event: &Event,
    status: &ConsensusStatus,
    no_value_on_success: bool,
) -> Response {
    let code = if event.is_created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let hide = no_value_on_success
        && matches!(
            event.action,
            Action::Set | Action::CompareAndSwap | Action::Create | Action::Update
        );
    let line = if hide {
        Event {
            node: None,
            prev_node: None,
            ..event.clone()
        }
        .to_json_line()
    } else {
        event.to_json_line()
    };
    let mut resp = full(code, Some(APPLICATION_JSON), line);
    set_number(&mut resp, X_ETCD_INDEX, event.etcd_index);
    set_number(&mut resp, X_RAFT_INDEX, status.commit_index);
    set_number(&mut resp, X_RAFT_TERM, status.term);
    resp
}
