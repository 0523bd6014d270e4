//! How a grant or a revoke changes a user or a role (etcd's `merge`): the result's
//! lists are sets, sorted, and never null, so merging into a record created with null
//! lists changes it even when nothing is granted (etcd compares the records whole).

use std::collections::BTreeSet;

use super::{KvPermissions, PasswordHash, Permissions, Role, User};

/// etcd's `v2auth.Error`: an HTTP status and a message starting with `auth: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// The HTTP status etcd answers with.
    pub status: u16,
    /// The message of etcd's `{"message":...}` body.
    pub message: String,
}

impl AuthError {
    /// An error with etcd's `auth: ` prefix.
    pub fn new(status: u16, message: impl std::fmt::Display) -> AuthError {
        AuthError {
            status,
            message: format!("auth: {message}"),
        }
    }
}

impl User {
    /// The user with `password` (already hashed) if given, `grant` added and `revoke`
    /// taken away; a role granted twice or revoked without being held is a conflict.
    pub fn merge(
        &self,
        password: Option<PasswordHash>,
        grant: &[String],
        revoke: &[String],
    ) -> Result<User, AuthError> {
        let mut roles: BTreeSet<String> = self.roles.iter().flatten().cloned().collect();
        for role in grant {
            if !roles.insert(role.clone()) {
                return Err(AuthError::new(
                    409,
                    format_args!("Granting duplicate role {role} for user {}", self.name),
                ));
            }
        }
        for role in revoke {
            if !roles.remove(role) {
                return Err(AuthError::new(
                    409,
                    format_args!("Revoking ungranted role {role} for user {}", self.name),
                ));
            }
        }
        Ok(User {
            name: self.name.clone(),
            password: password.unwrap_or_else(|| self.password.clone()),
            roles: Some(roles.into_iter().collect()),
        })
    }
}

impl Role {
    /// The role with `grant`'s patterns added and `revoke`'s taken away. Granting a
    /// pattern held is a conflict; revoking one not held is ignored, as etcd does.
    pub fn merge(
        &self,
        grant: Option<&Permissions>,
        revoke: Option<&Permissions>,
    ) -> Result<Role, AuthError> {
        let mut permissions = self.permissions.clone();
        if let Some(grant) = grant {
            permissions.kv = KvPermissions {
                read: Some(add(&permissions.kv.read, &grant.kv.read, "read")?),
                write: Some(add(&permissions.kv.write, &grant.kv.write, "write")?),
            };
        }
        if let Some(revoke) = revoke {
            permissions.kv = KvPermissions {
                read: Some(remove(&permissions.kv.read, &revoke.kv.read)),
                write: Some(remove(&permissions.kv.write, &revoke.kv.write)),
            };
        }
        Ok(Role {
            name: self.name.clone(),
            permissions,
            grant: None,
            revoke: None,
        })
    }
}

fn add(
    held: &Option<Vec<String>>,
    granted: &Option<Vec<String>>,
    kind: &str,
) -> Result<Vec<String>, AuthError> {
    let mut set: BTreeSet<String> = held.iter().flatten().cloned().collect();
    for pattern in granted.iter().flatten() {
        if !set.insert(pattern.clone()) {
            return Err(AuthError::new(
                409,
                format_args!("Granting duplicate {kind} permission {pattern}"),
            ));
        }
    }
    Ok(set.into_iter().collect())
}

fn remove(held: &Option<Vec<String>>, revoked: &Option<Vec<String>>) -> Vec<String> {
    let mut set: BTreeSet<String> = held.iter().flatten().cloned().collect();
    for pattern in revoked.iter().flatten() {
        set.remove(pattern);
    }
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_user_merge_sorts_dedups_and_refuses_duplicates_and_ungranted_roles() {
        let bob = User {
            name: "bob".into(),
            password: PasswordHash("h".into()),
            roles: Some(strings(&["x", "x", "a"])),
        };
        let merged = bob.merge(None, &strings(&["b"]), &strings(&["a"])).unwrap();
        assert_eq!(merged.roles, Some(strings(&["b", "x"])));
        assert_eq!(merged.password, bob.password);
        let dup = bob.merge(None, &strings(&["c", "c"]), &[]).unwrap_err();
        assert_eq!(dup.status, 409);
        assert_eq!(dup.message, "auth: Granting duplicate role c for user bob");
        let ungranted = bob.merge(None, &[], &strings(&["z"])).unwrap_err();
        assert_eq!(
            ungranted.message,
            "auth: Revoking ungranted role z for user bob"
        );
    }

    #[test]
    fn merging_nothing_into_null_roles_makes_them_empty() {
        let carl = User {
            name: "carl".into(),
            roles: None,
            ..User::default()
        };
        let merged = carl.merge(None, &[], &[]).unwrap();
        assert_eq!(merged.roles, Some(vec![]));
        assert_ne!(merged, carl, "etcd then updates the user");
    }

    #[test]
    fn a_role_merge_adds_sorted_and_ignores_ungranted_revokes() {
        let role = Role {
            name: "r".into(),
            ..Role::default()
        };
        let grant = Permissions {
            kv: KvPermissions {
                read: Some(strings(&["/z", "/a/*"])),
                write: None,
            },
        };
        let granted = role.merge(Some(&grant), None).unwrap();
        assert_eq!(granted.permissions.kv.read, Some(strings(&["/a/*", "/z"])));
        assert_eq!(granted.permissions.kv.write, Some(vec![]));
        let again = granted.merge(Some(&grant), None).unwrap_err();
        assert_eq!(again.message, "auth: Granting duplicate read permission /z");
        let revoke = Permissions {
            kv: KvPermissions {
                read: Some(strings(&["/z", "/never"])),
                write: None,
            },
        };
        let revoked = granted.merge(None, Some(&revoke)).unwrap();
        assert_eq!(revoked.permissions.kv.read, Some(strings(&["/a/*"])));
    }
}
