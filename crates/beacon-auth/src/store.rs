//! The auth store: whether auth is on, its revision, the users and the roles, changed
//! only by applying log entries (so every member holds the same), and the checks every
//! request goes through while auth is on. etcd 3.4's `auth/store.go`, without its
//! backend: the keyspace persists [`AuthState`] beside its own state.

use std::collections::BTreeMap;

use crate::perms::{permits, Access, Perm, PermKind};
use crate::tokens::Tokens;
use crate::AuthError;

/// The user who may do anything once auth is on, and the role that makes a user so.
pub const ROOT: &str = "root";

/// A user: the bcrypt hash of their password (none for a user added without one, who
/// can only be named by a client certificate), and their roles, sorted.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub password: Option<String>,
    pub roles: Vec<String>,
    #[serde(default)]
    pub no_password: bool,
}

impl std::fmt::Debug for User {
    // Never the hash: it is as good as a password to an offline guesser.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("roles", &self.roles)
            .field("no_password", &self.no_password)
            .finish_non_exhaustive()
    }
}

/// A role: its permissions, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Role {
    pub perms: Vec<Perm>,
}

/// What is replicated and persisted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthState {
    pub enabled: bool,
    /// Moves on with every change of users, roles or permissions (and a disable), so
    /// that a request checked against an older state is refused (etcd's
    /// `authRevision`, which starts at 1).
    pub revision: u64,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

impl AuthState {
    /// Whether this is the state of a keyspace that never used auth.
    pub fn is_initial(&self) -> bool {
        *self == AuthState::default()
    }
}

/// The user a request runs as, and the auth revision when the server learned it
/// (etcd's `AuthInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub username: String,
    pub revision: u64,
}

/// The auth store of one member.
#[derive(Debug, Default)]
pub struct AuthStore {
    state: AuthState,
    tokens: Tokens,
}

impl AuthStore {
    /// The store as persisted (its tokens are not).
    pub fn from_state(state: AuthState) -> AuthStore {
        AuthStore {
            state,
            tokens: Tokens::default(),
        }
    }

    pub fn state(&self) -> &AuthState {
        &self.state
    }

    pub fn is_enabled(&self) -> bool {
        self.state.enabled
    }

    pub fn revision(&self) -> u64 {
        self.state.revision
    }

    fn changed(&mut self) {
        self.state.revision += 1;
    }

    /// The caller `token` names, if this member knows it and it was used within
    /// `ttl_ns` (the use renews it); the revision is the store's now, as etcd's simple
    /// tokens carry.
    pub fn caller_of_token(&self, token: &str, now_ns: i64, ttl_ns: i64) -> Option<Caller> {
        let username = self.tokens.user(token, now_ns, ttl_ns)?;
        Some(Caller {
            username,
            revision: self.state.revision,
        })
    }

    /// The caller a client certificate's common name makes.
    pub fn caller_named(&self, username: &str) -> Caller {
        Caller {
            username: username.to_string(),
            revision: self.state.revision,
        }
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    // ---- Checks ----

    /// etcd's `IsAdminPermitted`: anything goes while auth is off; else the caller
    /// must be a user with the root role.
    pub fn check_admin(&self, caller: Option<&Caller>) -> Result<(), AuthError> {
        if !self.state.enabled {
            return Ok(());
        }
        let name = caller.map_or("", |c| c.username.as_str());
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let user = self.state.users.get(name).ok_or(AuthError::UserNotFound)?;
        if !has_root_role(user) {
            return Err(AuthError::PermissionDenied);
        }
        Ok(())
    }

    /// etcd's `isOpPermitted`: whether `caller` may read or write `key` (to
    /// `range_end`, see [`permits`]).
    pub fn check(
        &self,
        caller: Option<&Caller>,
        key: &[u8],
        range_end: &[u8],
        access: Access,
    ) -> Result<(), AuthError> {
        if !self.state.enabled {
            return Ok(());
        }
        // No credentials at all: etcd's empty AuthInfo, revision 0.
        let Some(caller) = caller.filter(|c| c.revision != 0) else {
            return Err(AuthError::UserEmpty);
        };
        if caller.revision < self.state.revision {
            return Err(AuthError::AuthOldRevision);
        }
        let Some(user) = self.state.users.get(&caller.username) else {
            return Err(AuthError::PermissionDenied);
        };
        if has_root_role(user) {
            return Ok(());
        }
        let perms = user
            .roles
            .iter()
            .filter_map(|r| self.state.roles.get(r))
            .flat_map(|role| role.perms.iter());
        if permits(perms, key, range_end, access) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Whether `user` has `role`.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.state
            .users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// What a login checks before it goes through the log: the user's password hash
    /// (to verify outside any lock, bcrypt being slow on purpose) and the revision it
    /// was read at.
    pub fn password_of(&self, name: &str) -> Result<(String, u64), AuthError> {
        if !self.state.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let user = self.state.users.get(name).ok_or(AuthError::AuthFailed)?;
        if user.no_password {
            return Err(AuthError::NoPasswordUser);
        }
        let hash = user.password.clone().ok_or(AuthError::AuthFailed)?;
        Ok((hash, self.state.revision))
    }

    // ---- Changes (log entries) ----

    pub fn enable(&mut self) -> Result<(), AuthError> {
        if self.state.enabled {
            return Ok(());
        }
        let root = self
            .state
            .users
            .get(ROOT)
            .ok_or(AuthError::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(AuthError::RootRoleNotExist);
        }
        // etcd does not move the revision here: tokens given before stay good.
        self.state.enabled = true;
        Ok(())
    }

    pub fn disable(&mut self) {
        if !self.state.enabled {
            return;
        }
        self.state.enabled = false;
        self.changed();
        self.tokens.clear();
    }

    /// A login the server checked the password of: `token` is the user's from now on.
    pub fn authenticate(&mut self, name: &str, token: &str, now_ns: i64) -> Result<(), AuthError> {
        if !self.state.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let user = self.state.users.get(name).ok_or(AuthError::AuthFailed)?;
        if user.no_password {
            return Err(AuthError::AuthFailed);
        }
        self.tokens.insert(token, name, now_ns);
        Ok(())
    }

    pub fn user_add(
        &mut self,
        name: &str,
        hashed_password: Option<String>,
        no_password: bool,
    ) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.state.users.contains_key(name) {
            return Err(AuthError::UserAlreadyExist);
        }
        self.state.users.insert(
            name.to_string(),
            User {
                password: hashed_password,
                roles: Vec::new(),
                no_password,
            },
        );
        self.changed();
        Ok(())
    }

    pub fn user_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.state.enabled && name == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.state
            .users
            .remove(name)
            .ok_or(AuthError::UserNotFound)?;
        self.changed();
        self.tokens.forget_user(name);
        Ok(())
    }

    pub fn user_change_password(&mut self, name: &str, hashed: String) -> Result<(), AuthError> {
        let user = self
            .state
            .users
            .get_mut(name)
            .ok_or(AuthError::UserNotFound)?;
        user.password = Some(hashed);
        self.changed();
        self.tokens.forget_user(name);
        Ok(())
    }

    pub fn user_grant_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        if !self.state.users.contains_key(name) {
            return Err(AuthError::UserNotFound);
        }
        // The root role need not exist to be granted.
        if role != ROOT && !self.state.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let user = self.state.users.get_mut(name).expect("checked above");
        match user.roles.binary_search_by(|r| r.as_str().cmp(role)) {
            // Granted already: nothing changes, not even the revision.
            Ok(_) => return Ok(()),
            Err(at) => user.roles.insert(at, role.to_string()),
        }
        self.changed();
        Ok(())
    }

    pub fn user_get(&self, name: &str) -> Result<Vec<String>, AuthError> {
        self.state
            .users
            .get(name)
            .map(|u| u.roles.clone())
            .ok_or(AuthError::UserNotFound)
    }

    pub fn user_list(&self) -> Vec<String> {
        self.state.users.keys().cloned().collect()
    }

    pub fn user_revoke_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        if self.state.enabled && name == ROOT && role == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let user = self
            .state
            .users
            .get_mut(name)
            .ok_or(AuthError::UserNotFound)?;
        let before = user.roles.len();
        user.roles.retain(|r| r != role);
        if user.roles.len() == before {
            return Err(AuthError::RoleNotGranted);
        }
        self.changed();
        Ok(())
    }

    pub fn role_add(&mut self, name: &str) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        if self.state.roles.contains_key(name) {
            return Err(AuthError::RoleAlreadyExist);
        }
        self.state.roles.insert(name.to_string(), Role::default());
        self.changed();
        Ok(())
    }

    pub fn role_get(&self, name: &str) -> Result<Vec<Perm>, AuthError> {
        self.state
            .roles
            .get(name)
            .map(|r| r.perms.clone())
            .ok_or(AuthError::RoleNotFound)
    }

    pub fn role_list(&self) -> Vec<String> {
        self.state.roles.keys().cloned().collect()
    }

    pub fn role_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.state.enabled && name == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.state
            .roles
            .remove(name)
            .ok_or(AuthError::RoleNotFound)?;
        for user in self.state.users.values_mut() {
            user.roles.retain(|r| r != name);
        }
        self.changed();
        Ok(())
    }

    /// Grants `perm`, or changes the kind of the permission on the same key and range
    /// (found as etcd finds it: the first permission whose key is not below `perm`'s).
    pub fn role_grant_permission(&mut self, name: &str, perm: Perm) -> Result<(), AuthError> {
        let role = self
            .state
            .roles
            .get_mut(name)
            .ok_or(AuthError::RoleNotFound)?;
        let at = role.perms.partition_point(|p| p.key < perm.key);
        match role.perms.get_mut(at) {
            Some(same) if same.key == perm.key && same.range_end == perm.range_end => {
                same.kind = perm.kind;
            }
            _ => role.perms.insert(at, perm),
        }
        self.changed();
        Ok(())
    }

    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        let role = self
            .state
            .roles
            .get_mut(name)
            .ok_or(AuthError::RoleNotFound)?;
        let before = role.perms.len();
        role.perms
            .retain(|p| p.key != key || p.range_end != range_end);
        if role.perms.len() == before {
            return Err(AuthError::PermissionNotGranted);
        }
        self.changed();
        Ok(())
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT)
}

/// A permission as the Auth service receives it; an unknown kind is kept as etcd
/// keeps it, allowing nothing (it is refused here instead: etcd would store it).
pub fn perm_of(kind: i32, key: Vec<u8>, range_end: Vec<u8>) -> Option<Perm> {
    Some(Perm {
        kind: PermKind::from_number(kind)?,
        key,
        range_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled_store() -> AuthStore {
        let mut store = AuthStore::default();
        store.user_add(ROOT, Some("h".into()), false).unwrap();
        store.user_grant_role(ROOT, ROOT).unwrap();
        store.user_add("alice", Some("h".into()), false).unwrap();
        store.role_add("reader").unwrap();
        store
            .role_grant_permission(
                "reader",
                Perm {
                    kind: PermKind::Read,
                    key: b"/a/".to_vec(),
                    range_end: b"/a0".to_vec(),
                },
            )
            .unwrap();
        store.user_grant_role("alice", "reader").unwrap();
        store.enable().unwrap();
        store
    }

    #[test]
    fn enable_needs_a_root_user_with_the_root_role() {
        let mut store = AuthStore::default();
        assert_eq!(store.enable(), Err(AuthError::RootUserNotExist));
        store.user_add(ROOT, None, true).unwrap();
        assert_eq!(store.enable(), Err(AuthError::RootRoleNotExist));
        store.user_grant_role(ROOT, ROOT).unwrap();
        assert_eq!(store.enable(), Ok(()));
        assert_eq!(store.user_delete(ROOT), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(store.role_delete(ROOT), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(
            store.user_revoke_role(ROOT, ROOT),
            Err(AuthError::InvalidAuthMgmt)
        );
    }

    #[test]
    fn requests_are_checked_against_the_callers_roles_and_revision() {
        let store = enabled_store();
        let alice = store.caller_named("alice");
        let root = store.caller_named(ROOT);
        assert_eq!(
            store.check(Some(&alice), b"/a/x", b"", Access::Read),
            Ok(())
        );
        assert_eq!(
            store.check(Some(&alice), b"/a/x", b"", Access::Write),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(
            store.check(Some(&root), b"/z", b"\0", Access::Write),
            Ok(())
        );
        assert_eq!(
            store.check(None, b"/a/x", b"", Access::Read),
            Err(AuthError::UserEmpty)
        );
        let stale = Caller {
            username: "alice".into(),
            revision: store.revision() - 1,
        };
        assert_eq!(
            store.check(Some(&stale), b"/a/x", b"", Access::Read),
            Err(AuthError::AuthOldRevision)
        );
        assert_eq!(
            store.check_admin(Some(&alice)),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(store.check_admin(Some(&root)), Ok(()));
        assert_eq!(store.check_admin(None), Err(AuthError::UserEmpty));
    }

    #[test]
    fn every_change_moves_the_revision_and_a_repeated_grant_does_not() {
        let mut store = enabled_store();
        let rev = store.revision();
        store.user_grant_role("alice", "reader").unwrap();
        assert_eq!(store.revision(), rev);
        store
            .role_revoke_permission("reader", b"/a/", b"/a0")
            .unwrap();
        assert_eq!(store.revision(), rev + 1);
        assert_eq!(
            store.role_revoke_permission("reader", b"/a/", b"/a0"),
            Err(AuthError::PermissionNotGranted)
        );
        store.role_delete("reader").unwrap();
        assert_eq!(store.user_get("alice"), Ok(vec![]));
        store.disable();
        assert!(!store.is_enabled());
        assert_eq!(store.revision(), rev + 3);
    }

    #[test]
    fn tokens_go_with_their_user() {
        let mut store = enabled_store();
        store.authenticate("alice", "t.1", 0).unwrap();
        assert!(store.caller_of_token("t.1", 1, 100).is_some());
        store.user_change_password("alice", "h2".into()).unwrap();
        assert!(store.caller_of_token("t.1", 1, 100).is_none());
        store.authenticate("alice", "t.2", 0).unwrap();
        store.disable();
        assert!(store.caller_of_token("t.2", 1, 100).is_none());
        assert_eq!(
            store.authenticate("alice", "t.3", 0),
            Err(AuthError::AuthNotEnabled)
        );
    }
}
