//! `/v2/auth/roles` and `/v2/auth/roles/<name>`: list, read, create (with
//! permissions), grant or revoke permissions, delete. `root` is built in and can be
//! neither created, changed nor deleted.

use axum::body::Body;
use beacon_api::ErrorCode;
use beacon_store::auth::{AuthChange, AuthError, Permissions, Role, ROOT_ROLE};
use http::StatusCode;
use serde::Serialize;

use super::{document, json_body, propose, records, records_linearizable, Answer, Failure};
use crate::state::AppState;

/// `GET /v2/auth/roles`: every role, `root` among them, by name.
pub(super) async fn list(state: &AppState) -> Answer {
    #[derive(Serialize)]
    struct Roles {
        roles: Vec<Role>,
    }
    let auth = records(state).await?;
    let roles = auth
        .role_names()
        .iter()
        .filter_map(|name| auth.role(name))
        .collect();
    document(StatusCode::OK, &Roles { roles })
}

pub(super) async fn get(state: &AppState, name: &str) -> Answer {
    let role = records(state)
        .await?
        .role(name)
        .ok_or_else(|| AuthError::new(404, format_args!("Role {name} does not exist.")))?;
    document(StatusCode::OK, &role)
}

fn is_root(name: &str) -> Result<(), Failure> {
    if name == ROOT_ROLE {
        return Err(AuthError::new(
            403,
            format_args!("Cannot modify role {name}: is root role."),
        )
        .into());
    }
    Ok(())
}

fn is_empty(permissions: &Option<Permissions>) -> bool {
    permissions.as_ref().is_none_or(Permissions::is_empty)
}

pub(super) async fn put(state: &AppState, name: &str, body: Body) -> Answer {
    let role: Role = json_body(body).await?;
    if role.name != name {
        return Err(Failure::Message(
            StatusCode::BAD_REQUEST,
            "Role JSON name does not match the name in the URL",
        ));
    }
    if is_empty(&role.grant) && is_empty(&role.revoke) {
        create(state, role.clone()).await?;
        // etcd answers with the request as it came, and stores it so.
        return document(StatusCode::CREATED, &role);
    }
    if !role.permissions.is_empty() {
        return Err(Failure::Message(
            StatusCode::BAD_REQUEST,
            "Role JSON contains both permissions and grant/revoke",
        ));
    }
    is_root(name)?;
    let old = records_linearizable(state)
        .await?
        .role(name)
        .ok_or_else(|| AuthError::new(404, format_args!("Role {name} does not exist.")))?;
    let new = old.merge(role.grant.as_ref(), role.revoke.as_ref())?;
    if new == old {
        return Err(AuthError::new(
            400,
            "Role not updated. Use grant/revoke to update the role.",
        )
        .into());
    }
    propose(state, AuthChange::UpdateRole(new.clone())).await??;
    document(StatusCode::OK, &new)
}

/// etcd's `CreateRole`, which enabling auth uses for `guest` too.
pub(super) async fn create(state: &AppState, role: Role) -> Result<(), Failure> {
    is_root(&role.name)?;
    let name = role.name.clone();
    match propose(state, AuthChange::CreateRole(role)).await? {
        Ok(()) => Ok(()),
        Err(e) if e.code == ErrorCode::NodeExist => {
            Err(AuthError::new(409, format_args!("Role {name} already exists.")).into())
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete(state: &AppState, name: &str) -> Answer {
    is_root(name)?;
    match propose(state, AuthChange::DeleteRole(name.to_string())).await? {
        Ok(()) => Ok((StatusCode::OK, None)),
        Err(e) if e.code == ErrorCode::KeyNotFound => {
            Err(AuthError::new(404, format_args!("Role {name} doesn't exist.")).into())
        }
        Err(e) => Err(e.into()),
    }
}
