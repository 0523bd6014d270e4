//! `/v2/auth/users` and `/v2/auth/users/<name>`: list, read, create or update (a new
//! password, roles granted or revoked), delete. As in etcd, a user is shown with its
//! roles' permissions, never with its password.

use axum::body::Body;
use beacon_api::ErrorCode;
use beacon_store::auth::{AuthChange, AuthError, AuthState, Role, User, ROOT_ROLE, ROOT_USER};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::password::Password;
use super::{document, hash, json_body, propose, records, records_linearizable, Answer, Failure};
use crate::state::AppState;

/// etcd's `userWithRoles`: a user and its roles, roles left out when none.
#[derive(Serialize)]
struct UserWithRoles {
    user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<Role>,
}

/// A user as a PUT answer shows it: without its password.
#[derive(Serialize)]
struct Shown {
    user: String,
    roles: Option<Vec<String>>,
}

/// A PUT's body (etcd's `User` as a request). Null fields are absent, as in Go.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<Password>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    grant: Option<Vec<String>>,
    #[serde(default)]
    revoke: Option<Vec<String>>,
}

/// `GET /v2/auth/users`: every user with its roles (those that exist), by name.
pub(super) async fn list(state: &AppState) -> Answer {
    #[derive(Serialize)]
    struct Users {
        users: Option<Vec<UserWithRoles>>,
    }
    let auth = records(state).await?;
    let users: Vec<UserWithRoles> = auth
        .user_names()
        .iter()
        .filter_map(|name| auth.user(name))
        .map(|user| UserWithRoles {
            roles: roles_of(&auth, &user).into_iter().flatten().collect(),
            user: user.name,
        })
        .collect();
    // etcd lists no users as null.
    let users = (!users.is_empty()).then_some(users);
    document(StatusCode::OK, &Users { users })
}

/// The user's roles, `None` for each that does not exist.
fn roles_of(auth: &AuthState, user: &User) -> Vec<Option<Role>> {
    user.roles.iter().flatten().map(|r| auth.role(r)).collect()
}

pub(super) async fn get(state: &AppState, name: &str) -> Answer {
    let auth = records(state).await?;
    let user = auth.user(name).ok_or_else(|| not_found(name))?;
    let mut roles = Vec::new();
    for (role, name) in roles_of(&auth, &user)
        .into_iter()
        .zip(user.roles.iter().flatten())
    {
        // Unlike the list, one user's answer fails on a role granted but not there.
        roles.push(
            role.ok_or_else(|| AuthError::new(404, format_args!("Role {name} does not exist.")))?,
        );
    }
    document(
        StatusCode::OK,
        &UserWithRoles {
            user: user.name,
            roles,
        },
    )
}

fn not_found(name: &str) -> AuthError {
    AuthError::new(404, format_args!("User {name} does not exist."))
}

pub(super) async fn put(state: &AppState, name: &str, body: Body) -> Answer {
    let req: Request = json_body(body).await?;
    if req.user.as_deref().unwrap_or_default() != name {
        return Err(Failure::Message(
            StatusCode::BAD_REQUEST,
            "User JSON name does not match the name in the URL",
        ));
    }
    let password = req.password.unwrap_or_default();
    let grant = req.grant.unwrap_or_default();
    let revoke = req.revoke.unwrap_or_default();
    let has_roles = req.roles.as_ref().is_some_and(|r| !r.is_empty());
    let (status, user) = if grant.is_empty() && revoke.is_empty() {
        if has_roles {
            // etcd answers this creation 200, not 201: only its create-or-update
            // path reports a creation.
            (
                StatusCode::OK,
                create(state, name, password, req.roles).await?,
            )
        } else if records_linearizable(state).await?.user(name).is_some() {
            (
                StatusCode::OK,
                update(state, name, password, &[], &[]).await?,
            )
        } else {
            (
                StatusCode::CREATED,
                create(state, name, password, req.roles).await?,
            )
        }
    } else if has_roles {
        return Err(Failure::Message(
            StatusCode::BAD_REQUEST,
            "User JSON contains both roles and grant/revoke",
        ));
    } else {
        (
            StatusCode::OK,
            update(state, name, password, &grant, &revoke).await?,
        )
    };
    document(
        status,
        &Shown {
            user: user.name,
            roles: user.roles,
        },
    )
}

/// etcd's `CreateUser`: `root` gets the root role; a password is required.
async fn create(
    state: &AppState,
    name: &str,
    password: Password,
    roles: Option<Vec<String>>,
) -> Result<User, Failure> {
    let mut roles = roles;
    if name == ROOT_USER {
        let list = roles.get_or_insert_with(Vec::new);
        if !list.iter().any(|r| r == ROOT_ROLE) {
            list.push(ROOT_ROLE.to_string());
        }
    }
    if password.is_empty() {
        return Err(AuthError::new(
            400,
            format_args!("Cannot create user {name} with an empty password"),
        )
        .into());
    }
    let user = User {
        name: name.to_string(),
        password: hash(password).await?,
        roles,
    };
    match propose(state, AuthChange::CreateUser(user.clone())).await? {
        Ok(()) => Ok(user),
        Err(e) if e.code == ErrorCode::NodeExist => {
            Err(AuthError::new(409, format_args!("User {name} already exists.")).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// etcd's `UpdateUser`: a change that changes nothing is refused.
async fn update(
    state: &AppState,
    name: &str,
    password: Password,
    grant: &[String],
    revoke: &[String],
) -> Result<User, Failure> {
    let old = records_linearizable(state)
        .await?
        .user(name)
        .ok_or_else(|| AuthError::new(404, format_args!("User {name} does not exist.")))?;
    let hashed = if password.is_empty() {
        None
    } else {
        Some(hash(password).await?)
    };
    let new = old.merge(hashed, grant, revoke)?;
    if new == old {
        return Err(AuthError::new(
            400,
            "User not updated. Use grant/revoke/password to update the user.",
        )
        .into());
    }
    propose(state, AuthChange::UpdateUser(new.clone())).await??;
    Ok(new)
}

pub(super) async fn delete(state: &AppState, name: &str) -> Answer {
    if name == ROOT_USER && records(state).await?.enabled() {
        return Err(AuthError::new(403, "Cannot delete root user while auth is enabled.").into());
    }
    match propose(state, AuthChange::DeleteUser(name.to_string())).await? {
        Ok(()) => Ok((StatusCode::OK, None)),
        // etcd's message here has no full stop.
        Err(e) if e.code == ErrorCode::KeyNotFound => {
            Err(AuthError::new(404, format_args!("User {name} does not exist")).into())
        }
        Err(e) => Err(e.into()),
    }
}
