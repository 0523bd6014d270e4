//! Who may do what once v2 auth is enabled (etcd's `client_auth.go` checks): a
//! request's HTTP Basic credentials name a user whose password must match; a request
//! without an `Authorization` header is, with `--client-cert-auth`, the user its TLS
//! certificate names, and otherwise gets the `guest` role's permissions on keys and
//! nothing else. Basic credentials that do not check out are refused outright, never
//! treated as a guest. etcd answers every refusal with 401 and no `WWW-Authenticate`.

use base64::Engine as _;
use beacon_store::auth::{Role, User, GUEST_ROLE, ROOT_ROLE};
use http::request::Parts;

use super::password::{self, Password};
use crate::consensus::read_store;
use crate::state::AppState;

/// The common names of the certificates a TLS client presented, leaf first: a request
/// extension the connection layer adds (etcd reads them from the verified chains).
#[derive(Clone, Debug, Default)]
pub struct ClientCertNames(pub Vec<String>);

/// What a request's credentials name, when auth is enabled.
enum Caller {
    /// No `Authorization` header (or an empty one, which Go cannot tell apart), and no
    /// client certificate naming a user.
    Guest,
    /// A user whose password matched, or whom the client certificate names.
    User(User),
    /// Credentials that are malformed, or name no user, or a wrong password.
    Refused,
}

/// Whether the request may manage users, roles or members: always when auth is off,
/// else only a user holding the root role (etcd's `hasRootAccess`).
pub async fn has_root_access(state: &AppState, head: &Parts) -> bool {
    if !enabled(state) {
        return true;
    }
    match caller(state, head).await {
        Caller::User(user) => user.roles.iter().flatten().any(|r| r == ROOT_ROLE),
        Caller::Guest | Caller::Refused => false,
    }
}

/// etcd's `hasWriteRootAccess`: reads are open to everyone, writes need root.
pub async fn has_write_root_access(state: &AppState, method: &http::Method, head: &Parts) -> bool {
    *method == http::Method::GET
        || *method == http::Method::HEAD
        || has_root_access(state, head).await
}

/// Whether the request may read (GET, HEAD) or else write `key`, the path after
/// `/v2/keys` exactly as sent (etcd's `hasKeyPrefixAccess`): a recursive request needs
/// a `*` pattern covering it, except for a guest, whose roles etcd checks the plain way.
pub async fn has_key_access(
    state: &AppState,
    method: &http::Method,
    head: &Parts,
    key: &[u8],
    recursive: bool,
) -> bool {
    if !enabled(state) {
        return true;
    }
    let write = *method != http::Method::GET && *method != http::Method::HEAD;
    let roles: Vec<Role> = match caller(state, head).await {
        Caller::Refused => return false,
        Caller::Guest => {
            return roles(state, [GUEST_ROLE.to_string()])
                .iter()
                .any(|role| role.has_key_access(key, write));
        }
        Caller::User(user) => roles(state, user.roles.into_iter().flatten()),
    };
    roles.iter().any(|role| {
        if recursive {
            role.has_recursive_access(key, write)
        } else {
            role.has_key_access(key, write)
        }
    })
}

/// Whether auth is enabled. A store that cannot be read says no, as etcd's
/// `detectAuth` does on an error: the handler then answers with the store's error.
fn enabled(state: &AppState) -> bool {
    read_store(state.consensus.store()).is_ok_and(|store| store.auth().enabled())
}

/// The roles of those names that exist; etcd skips the others.
fn roles(state: &AppState, names: impl IntoIterator<Item = String>) -> Vec<Role> {
    let Ok(store) = read_store(state.consensus.store()) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|name| store.auth().role(&name))
        .collect()
}

async fn caller(state: &AppState, head: &Parts) -> Caller {
    let header = head
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if header.is_empty() {
        return match head.extensions.get::<ClientCertNames>() {
            Some(names) if state.client_cert_auth => certified(state, names),
            _ => Caller::Guest,
        };
    }
    let Some((name, password)) = basic_credentials(header) else {
        tracing::warn!("auth: malformed basic auth encoding");
        return Caller::Refused;
    };
    let user = match read_store(state.consensus.store()) {
        Ok(store) => store.auth().user(&name),
        Err(_) => None,
    };
    let Some(user) = user else {
        return Caller::Refused;
    };
    if password::verify(password, user.password.clone()).await {
        Caller::User(user)
    } else {
        tracing::warn!(user = %name, "auth: incorrect password");
        Caller::Refused
    }
}

/// The user a TLS client certificate names, with `--client-cert-auth` and no
/// `Authorization` header (etcd's `userFromClientCertificate`): the first of the
/// certificates' common names that is a user's, no password asked. None makes a
/// guest.
fn certified(state: &AppState, names: &ClientCertNames) -> Caller {
    let Ok(store) = read_store(state.consensus.store()) else {
        return Caller::Guest;
    };
    names
        .0
        .iter()
        .find_map(|name| store.auth().user(name))
        .map_or(Caller::Guest, Caller::User)
}

/// Go's `Request.BasicAuth`: `Basic ` in any case, standard padded base64, and the
/// user name up to the first `:`.
fn basic_credentials(header: &[u8]) -> Option<(String, Password)> {
    const PREFIX: &[u8] = b"Basic ";
    let (scheme, encoded) = header.split_at_checked(PREFIX.len())?;
    if !scheme.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), Password::new(password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_gos() {
        let (name, password) = basic_credentials(b"Basic cm9vdDpwdzpwdw==").unwrap();
        assert_eq!(name, "root");
        assert_eq!(password, Password::new("pw:pw".into()));
        assert!(basic_credentials(b"Basic cm9vdA==").is_none(), "no colon");
        assert!(basic_credentials(b"Bearer cm9vdDpwdw==").is_none());
        assert!(basic_credentials(b"bASIC cm9vdDpwdw==").is_some());
        assert!(basic_credentials(b"Basic !!!").is_none());
        assert!(basic_credentials(b"Basic cm9vdDpwdw").is_none(), "unpadded");
    }
}
