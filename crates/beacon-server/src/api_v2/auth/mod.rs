//! `/v2/auth`: etcd 3.4's v2 auth API (`v2http/client_auth.go`), and the checks the
//! keys and members handlers make with it (`access`). Users, roles and the switch are
//! read from this member's store and changed through the log as `Command::Auth`, one
//! proposal per write etcd's v2auth store makes, so the etcd index moves as etcd's.
//!
//! Each handler checks the method, then root access, then sets the cluster id: a 401
//! carries no cluster id, as etcd's does not.

pub mod access;
mod enable;
mod password;
mod roles;
mod users;

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::response::Response;
use beacon_api::{ErrorCode, EtcdError};
use beacon_store::auth::{AuthChange, AuthError, AuthState, AuthWrite};
use beacon_store::{Applied, Command};
use http::request::Parts;
use http::StatusCode;
use serde::Serialize;

use super::error::{etcd_error, propose_failure};
use super::keys::read_caught_up;
use crate::consensus::{propose_with_timeout, read_store};
use crate::http::body::{read_capped, BodyError};
use crate::http::gojson::go_json;
use crate::http::{full, json_message, method_not_allowed, APPLICATION_JSON, X_ETCD_CLUSTER_ID};
use crate::limits::{REQUEST_BODY_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT};
use crate::state::AppState;

/// This member's own auth bookkeeping, not replicated.
#[derive(Debug, Default)]
pub struct AuthMember {
    /// Whether this process made an auth write yet: etcd's `ensuredOnce`, after which
    /// its writes stop re-creating `/2`'s directories (see `AuthWrite::ensure`).
    ensured: AtomicBool,
}

/// Serves `/v2/auth` and below; `rest` is the mux-clean path after `/v2/auth`.
pub async fn serve(
    state: &AppState,
    method: &http::Method,
    head: &Parts,
    rest: &[u8],
    body: Body,
) -> Response {
    // etcd registers `/enable` alone, and `/users`, `/roles` with their subtrees, whose
    // handlers clean the path again (a trailing slash goes) and split it.
    if rest == b"/enable" {
        return enable::serve(state, method, head).await;
    }
    let trimmed = rest.strip_suffix(b"/").unwrap_or(rest);
    let mut pieces = trimmed.split(|&b| b == b'/').skip(1);
    let (kind, name, more) = (pieces.next(), pieces.next(), pieces.next());
    let name = name.map(|n| String::from_utf8_lossy(n).into_owned());
    let (users, name) = match (kind, name, more) {
        (Some(b"users" | b"roles"), Some(_), Some(_)) => {
            return json_message(StatusCode::BAD_REQUEST, "Invalid path");
        }
        (Some(b"users"), name, _) => (true, name),
        (Some(b"roles"), name, _) => (false, name),
        _ => return crate::http::not_found(),
    };
    let allowed = if name.is_some() {
        "GET,PUT,DELETE"
    } else {
        "GET"
    };
    if let Some(refused) = refuse(state, method, head, allowed, true).await {
        return refused;
    }
    let answer = match (users, name, method.as_str()) {
        (true, None, _) => users::list(state).await,
        (false, None, _) => roles::list(state).await,
        (true, Some(name), "GET") => users::get(state, &name).await,
        (true, Some(name), "PUT") => users::put(state, &name, body).await,
        (true, Some(name), _) => users::delete(state, &name).await,
        (false, Some(name), "GET") => roles::get(state, &name).await,
        (false, Some(name), "PUT") => roles::put(state, &name, body).await,
        (false, Some(name), _) => roles::delete(state, &name).await,
    };
    respond(state, answer)
}

/// The method check and the root check every handler starts with: the answer to send
/// instead, if either fails.
async fn refuse(
    state: &AppState,
    method: &http::Method,
    head: &Parts,
    allowed: &'static str,
    root_for_reads: bool,
) -> Option<Response> {
    if !allowed.split(',').any(|m| m == method.as_str()) {
        return Some(method_not_allowed(Some(allowed)));
    }
    let allowed = if root_for_reads {
        access::has_root_access(state, head).await
    } else {
        access::has_write_root_access(state, method, head).await
    };
    (!allowed).then(no_auth)
}

/// etcd's `writeNoAuth`.
pub fn no_auth() -> Response {
    json_message(StatusCode::UNAUTHORIZED, "Insufficient credentials")
}

/// What an auth handler answers when it fails: etcd's `{"message"}` for its own
/// errors, its v2 error otherwise.
enum Failure {
    Auth(AuthError),
    Message(StatusCode, &'static str),
    Store(EtcdError),
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::Auth(e)
    }
}

impl From<EtcdError> for Failure {
    fn from(e: EtcdError) -> Self {
        Failure::Store(e)
    }
}

/// A handler's answer: a JSON document, or an empty 200.
type Answer = Result<(StatusCode, Option<Vec<u8>>), Failure>;

/// The answer as etcd writes it, with the cluster id (set before the handler acted).
fn respond(state: &AppState, answer: Answer) -> Response {
    let mut resp = match answer {
        Ok((status, Some(body))) => full(status, Some(APPLICATION_JSON), body),
        Ok((status, None)) => full(status, Some(APPLICATION_JSON), Body::empty()),
        Err(Failure::Auth(e)) => json_message(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            &e.message,
        ),
        Err(Failure::Message(status, message)) => json_message(status, message),
        Err(Failure::Store(e)) => etcd_error(&e),
    };
    resp.headers_mut()
        .insert(X_ETCD_CLUSTER_ID, state.cluster_id_header());
    resp
}

/// A document as Go's JSON encoder writes it: HTML characters escaped, a newline after.
fn document(status: StatusCode, value: &impl Serialize) -> Answer {
    let mut body = go_json(value)
        .map_err(|e| Failure::Store(EtcdError::request(ErrorCode::RaftInternal, e.to_string())))?;
    body.push(b'\n');
    Ok((status, Some(body)))
}

/// The auth records as this member has them, once it applied what it acknowledged.
async fn records(state: &AppState) -> Result<AuthState, Failure> {
    read_caught_up(state).await?;
    let store = read_store(state.consensus.store())?;
    Ok(store.auth().clone())
}

/// The auth records as of now, cluster-wide, where etcd reads them through Raft (its
/// quorum GETs before an update): after a ReadIndex, or else as [`records`] reads them.
async fn records_linearizable(state: &AppState) -> Result<AuthState, Failure> {
    if !state.consensus.read_index(state.request_timeout).await {
        return records(state).await;
    }
    let store = read_store(state.consensus.store())?;
    Ok(store.auth().clone())
}

/// A request body, whole; etcd's decoder reads the first JSON document of it and
/// ignores what follows. Anything unreadable is etcd's "Invalid JSON".
async fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Failure> {
    let invalid = || Failure::Message(StatusCode::BAD_REQUEST, "Invalid JSON in request body.");
    let bytes = read_capped(body, REQUEST_BODY_BYTES_MAX, REQUEST_BODY_READ_TIMEOUT)
        .await
        .map_err(|_: BodyError| invalid())?;
    let first = serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(Result::ok)
        .ok_or_else(invalid)?;
    serde_json::from_value(as_go_decodes(first)).map_err(|_| invalid())
}

/// The document as Go's decoder fills etcd's structs from it: field names match in
/// any case (`"User"` is `user`), and a null leaves a field as if it were absent.
fn as_go_decodes(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(fields) => fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_lowercase(), as_go_decodes(v)))
            .collect(),
        other => other,
    }
}

/// Proposes one auth write; the store's answer (etcd's error when the record to
/// create exists or the one to change does not).
async fn propose(state: &AppState, change: AuthChange) -> Result<Result<(), EtcdError>, Failure> {
    let ensure = !state.v2_auth.ensured.load(Ordering::SeqCst);
    let cmd = Command::Auth(AuthWrite { ensure, change });
    let committed = propose_with_timeout(state.consensus.as_ref(), cmd, state.request_timeout)
        .await
        .map_err(|f| Failure::Store(propose_failure(&f)))?;
    state.v2_auth.ensured.store(true, Ordering::SeqCst);
    match committed.applied {
        Applied::Auth(result) => Ok(result),
        _ => Err(Failure::Store(EtcdError::request(
            ErrorCode::RaftInternal,
            "received response with no Event/Watcher",
        ))),
    }
}

/// Hashes a password for a proposal.
async fn hash(password: password::Password) -> Result<beacon_store::auth::PasswordHash, Failure> {
    password::hash(password)
        .await
        .map_err(|e| Failure::Store(EtcdError::request(ErrorCode::RaftInternal, e.to_string())))
}
