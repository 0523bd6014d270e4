//! etcd 3.4's v2 auth records: users, roles and the `enabled` switch, which etcd keeps
//! in its v2 store under `/2` (`etcdserver/api/v2auth`). They are replicated with the
//! keys, take etcd indexes as etcd's writes under `/2` do (`write`), and are kept in the
//! store's snapshot. The records keep etcd's JSON shapes, null lists included: etcd's
//! answers show them, and its "not updated" check tells a null list from an empty one.
//!
//! The pure decisions live here too: which keys a role may read or write
//! (`permission`) and how a grant or revoke changes a user or a role (`merge`). Hashing
//! and checking passwords is the server's; the store only keeps the hash.

mod merge;
mod permission;
mod write;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use merge::AuthError;
pub use permission::{guest_role, root_role, GUEST_ROLE, ROOT_ROLE, ROOT_USER};
pub use write::{AuthChange, AuthWrite};

/// A bcrypt hash. Its `Debug` hides it: a hash in a log is a password to brute-force.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Whether no password is set (etcd's empty string).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A user as etcd stores it under `/2/users/<name>` (its `v2auth.User`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name.
    #[serde(rename = "user", default)]
    pub name: String,
    /// The bcrypt hash; empty only in answers, where etcd blanks it.
    #[serde(default, skip_serializing_if = "PasswordHash::is_empty")]
    pub password: PasswordHash,
    /// The roles in the order given, duplicates kept; `None` is etcd's null (a user
    /// created without roles), which its answers show.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// Read and write key patterns: a pattern ending in `*` matches every key it is a
/// prefix of, any other only itself. `None` is etcd's null.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvPermissions {
    /// Patterns of keys the role may read.
    #[serde(default)]
    pub read: Option<Vec<String>>,
    /// Patterns of keys the role may write.
    #[serde(default)]
    pub write: Option<Vec<String>>,
}

/// etcd's `Permissions`: only key-value permissions exist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// The key-value permissions.
    #[serde(default)]
    pub kv: KvPermissions,
}

impl Permissions {
    /// etcd's `IsEmpty`: no read and no write pattern.
    pub fn is_empty(&self) -> bool {
        self.kv.read.as_ref().is_none_or(Vec::is_empty)
            && self.kv.write.as_ref().is_none_or(Vec::is_empty)
    }
}

/// A role as etcd stores it under `/2/roles/<name>` (its `v2auth.Role`). A role created
/// with an empty `grant` or `revoke` keeps it, as etcd stores the request as it came.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The name.
    #[serde(rename = "role", default)]
    pub name: String,
    /// What its users may read and write.
    #[serde(default)]
    pub permissions: Permissions,
    /// Permissions to add, in a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Permissions>,
    /// Permissions to take away, in a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<Permissions>,
}

/// The replicated auth state: what etcd holds under `/2`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    /// Whether `/2`, `/2/users`, `/2/roles` and `/2/enabled` were created (etcd's
    /// `ensureAuthDirectories`, before its first auth write).
    #[serde(default)]
    pub(crate) ensured: bool,
    /// `/2/enabled`.
    #[serde(default)]
    pub(crate) enabled: bool,
    #[serde(default)]
    pub(crate) users: BTreeMap<String, User>,
    #[serde(default)]
    pub(crate) roles: BTreeMap<String, Role>,
}

impl AuthState {
    /// Whether no auth write was ever made (the snapshot then leaves it out).
    pub(crate) fn is_untouched(&self) -> bool {
        !self.ensured
    }

    /// Whether auth is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The user as etcd's `getUser` reads it: `root` always holds the root role.
    pub fn user(&self, name: &str) -> Option<User> {
        let mut user = self.users.get(name)?.clone();
        if user.name == ROOT_USER {
            let roles = user.roles.get_or_insert_with(Vec::new);
            if !roles.iter().any(|r| r == ROOT_ROLE) {
                roles.push(ROOT_ROLE.to_string());
            }
        }
        Some(user)
    }

    /// The role as etcd's `getRole` reads it: `root` is built in, never stored.
    pub fn role(&self, name: &str) -> Option<Role> {
        if name == ROOT_ROLE {
            return Some(root_role());
        }
        self.roles.get(name).cloned()
    }

    /// Every user's name, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Every role's name and `root`'s, sorted (etcd's `AllRoles`).
    pub fn role_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.roles.keys().cloned().collect();
        names.push(ROOT_ROLE.to_string());
        names.sort();
        names
    }
}
