//! `/v2/auth/enable`: GET tells whether auth is on (to anyone), PUT turns it on and
//! DELETE off (root only, once on). Enabling needs the root user, and creates the
//! `guest` role (every key, read and write) when there is none, as etcd does.

use axum::response::Response;
use beacon_store::auth::{guest_role, AuthChange, AuthError, GUEST_ROLE, ROOT_USER};
use http::request::Parts;
use http::StatusCode;
use serde::Serialize;

use super::{document, propose, records, records_linearizable, refuse, respond, roles, Answer};
use crate::state::AppState;

/// Serves `/v2/auth/enable`.
pub async fn serve(state: &AppState, method: &http::Method, head: &Parts) -> Response {
    if let Some(refused) = refuse(state, method, head, "GET,PUT,DELETE", false).await {
        return refused;
    }
    let answer = match *method {
        http::Method::GET => status(state).await,
        http::Method::PUT => enable(state).await,
        _ => disable(state).await,
    };
    respond(state, answer)
}

async fn status(state: &AppState) -> Answer {
    #[derive(Serialize)]
    struct Enabled {
        enabled: bool,
    }
    let enabled = records(state).await?.enabled();
    document(StatusCode::OK, &Enabled { enabled })
}

async fn enable(state: &AppState) -> Answer {
    let auth = records_linearizable(state).await?;
    if auth.enabled() {
        return Err(AuthError::new(409, "already enabled").into());
    }
    if auth.user(ROOT_USER).is_none() {
        return Err(AuthError::new(409, "No root user available, please create one").into());
    }
    if auth.role(GUEST_ROLE).is_none() {
        tracing::info!("auth: no guest role access found, creating default");
        roles::create(state, guest_role()).await?;
    }
    propose(state, AuthChange::SetEnabled(true)).await??;
    tracing::info!("auth: enabled auth");
    Ok((StatusCode::OK, None))
}

async fn disable(state: &AppState) -> Answer {
    if !records(state).await?.enabled() {
        return Err(AuthError::new(409, "already disabled").into());
    }
    propose(state, AuthChange::SetEnabled(false)).await??;
    tracing::info!("auth: disabled auth");
    Ok((StatusCode::OK, None))
}
