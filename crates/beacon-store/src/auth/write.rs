//! Applying an auth write as etcd's v2 store applies its writes under `/2`: each one
//! that succeeds takes an etcd index and a place in the history (as an event no
//! client's watcher sees, its keys being outside the client's `/1`), and counts in
//! the store's statistics; one that fails changes neither index nor records.

use std::sync::Arc;

use beacon_api::{ErrorCode, EtcdError};
use serde::{Deserialize, Serialize};

use super::{AuthState, Role, User};
use crate::stats::Op;
use crate::store::Store;

/// One auth write, as one of etcd's v2auth store requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthWrite {
    /// The proposing member has not made an auth write since it started: etcd's
    /// `ensureAuthDirectories` first creates `/2`, `/2/users/`, `/2/roles/` and
    /// `/2/enabled` (`false`) if they are missing, four writes (and four failed
    /// creations, counted, when they are there).
    pub ensure: bool,
    /// What changes.
    pub change: AuthChange,
}

/// The change itself; creations fail if the record exists, the others if it does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthChange {
    /// Create `/2/users/<name>`.
    CreateUser(User),
    /// Replace `/2/users/<name>`.
    UpdateUser(User),
    /// Delete `/2/users/<name>`.
    DeleteUser(String),
    /// Create `/2/roles/<name>`.
    CreateRole(Role),
    /// Replace `/2/roles/<name>`.
    UpdateRole(Role),
    /// Delete `/2/roles/<name>`.
    DeleteRole(String),
    /// Update `/2/enabled`.
    SetEnabled(bool),
}

impl AuthWrite {
    /// What the write does, without the records (for logs: a user holds a hash).
    pub fn describe(&self) -> String {
        match &self.change {
            AuthChange::CreateUser(u) => format!("create user {}", u.name),
            AuthChange::UpdateUser(u) => format!("update user {}", u.name),
            AuthChange::DeleteUser(name) => format!("delete user {name}"),
            AuthChange::CreateRole(r) => format!("create role {}", r.name),
            AuthChange::UpdateRole(r) => format!("update role {}", r.name),
            AuthChange::DeleteRole(name) => format!("delete role {name}"),
            AuthChange::SetEnabled(on) => format!("set enabled {on}"),
        }
    }
}

impl AuthChange {
    fn op(&self) -> Op {
        match self {
            AuthChange::CreateUser(_) | AuthChange::CreateRole(_) => Op::Create,
            AuthChange::DeleteUser(_) | AuthChange::DeleteRole(_) => Op::Delete,
            AuthChange::UpdateUser(_) | AuthChange::UpdateRole(_) | AuthChange::SetEnabled(_) => {
                Op::Update
            }
        }
    }

    /// The key etcd writes.
    fn key(&self) -> String {
        match self {
            AuthChange::CreateUser(u) | AuthChange::UpdateUser(u) => format!("/2/users/{}", u.name),
            AuthChange::DeleteUser(name) => format!("/2/users/{name}"),
            AuthChange::CreateRole(r) | AuthChange::UpdateRole(r) => format!("/2/roles/{}", r.name),
            AuthChange::DeleteRole(name) => format!("/2/roles/{name}"),
            AuthChange::SetEnabled(_) => "/2/enabled".to_string(),
        }
    }
}

impl AuthState {
    /// Whether the record the change writes exists.
    fn holds(&self, change: &AuthChange) -> bool {
        match change {
            AuthChange::CreateUser(u) | AuthChange::UpdateUser(u) => {
                self.users.contains_key(&u.name)
            }
            AuthChange::DeleteUser(name) => self.users.contains_key(name),
            AuthChange::CreateRole(r) | AuthChange::UpdateRole(r) => {
                self.roles.contains_key(&r.name)
            }
            AuthChange::DeleteRole(name) => self.roles.contains_key(name),
            AuthChange::SetEnabled(_) => self.ensured,
        }
    }

    fn make(&mut self, change: &AuthChange) {
        match change {
            AuthChange::CreateUser(u) | AuthChange::UpdateUser(u) => {
                self.users.insert(u.name.clone(), u.clone());
            }
            AuthChange::DeleteUser(name) => {
                self.users.remove(name);
            }
            AuthChange::CreateRole(r) | AuthChange::UpdateRole(r) => {
                self.roles.insert(r.name.clone(), r.clone());
            }
            AuthChange::DeleteRole(name) => {
                self.roles.remove(name);
            }
            AuthChange::SetEnabled(on) => self.enabled = *on,
        }
    }
}

impl Store {
    /// The replicated auth records.
    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    pub(crate) fn apply_auth(&mut self, write: &AuthWrite) -> Result<(), EtcdError> {
        // A member that made an auth write since it started does not ensure again; the
        // records then exist (they are replicated) unless this state came from an older
        // snapshot, where etcd would make the missing directories on the way.
        if write.ensure || !self.auth.ensured {
            self.ensure_auth_dirs();
        }
        let change = &write.change;
        let (op, key) = (change.op(), change.key());
        let refused = match (op, self.auth.holds(change)) {
            (Op::Create, true) => Some(ErrorCode::NodeExist),
            (Op::Update | Op::Delete, false) => Some(ErrorCode::KeyNotFound),
            _ => None,
        };
        if let Some(code) = refused {
            self.counters.record(op, false);
            return Err(EtcdError::new(code, key, self.current_index));
        }
        Arc::make_mut(&mut self.auth).make(change);
        self.record_hidden_write(op, key);
        Ok(())
    }

    /// etcd's `ensureAuthDirectories`: its four creations, which succeed once.
    fn ensure_auth_dirs(&mut self) {
        let keys = ["/2", "/2/users", "/2/roles", "/2/enabled"];
        if self.auth.ensured {
            for _ in keys {
                self.counters.record(Op::Create, false);
            }
            return;
        }
        Arc::make_mut(&mut self.auth).ensured = true;
        for key in keys {
            self.record_hidden_write(Op::Create, key.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PasswordHash;
    use crate::{Applied, Command};

    fn write(ensure: bool, change: AuthChange) -> Command {
        Command::Auth(AuthWrite { ensure, change })
    }

    fn root() -> User {
        User {
            name: "root".into(),
            password: PasswordHash("$2a$10$hash".into()),
            roles: Some(vec!["root".into()]),
        }
    }

    #[test]
    fn auth_writes_take_etcds_indexes_and_survive_a_snapshot() {
        let mut store = Store::new();
        // The first write makes `/2`, its two directories and `enabled`: 4 + 1.
        let created = store.apply(&write(true, AuthChange::CreateUser(root())));
        assert_eq!(created, Applied::Auth(Ok(())));
        assert_eq!(store.current_index(), 5);
        // A member that restarted ensures again: four failed creations, no index.
        let again = store.apply(&write(true, AuthChange::CreateUser(root())));
        let Applied::Auth(Err(e)) = again else {
            panic!("{again:?}")
        };
        assert_eq!(e.code, ErrorCode::NodeExist);
        assert_eq!(store.current_index(), 5);
        assert_eq!(store.stats().create_fail, 5);
        let gone = store.apply(&write(false, AuthChange::DeleteRole("nope".into())));
        assert!(matches!(gone, Applied::Auth(Err(ref e)) if e.code == ErrorCode::KeyNotFound));
        store.apply(&write(false, AuthChange::SetEnabled(true)));
        assert_eq!(store.current_index(), 6);
        assert!(store.auth().enabled());
        // Watchers never see `/2`.
        assert!(store.history.scan(b"/", true, 1).unwrap().is_none());
        let mut restored = Store::new();
        restored.recover(&store.snapshot_view().save()).unwrap();
        assert_eq!(restored.auth(), store.auth());
        assert_eq!(restored.current_index(), 6);
        let user = restored.auth().user("root").unwrap();
        assert_eq!(user.password, root().password);
    }

    #[test]
    fn root_always_holds_the_root_role_and_root_is_always_a_role() {
        let mut store = Store::new();
        let bare = User {
            roles: None,
            ..root()
        };
        store.apply(&write(true, AuthChange::CreateUser(bare)));
        assert_eq!(
            store.auth().user("root").unwrap().roles,
            Some(vec!["root".to_string()])
        );
        assert_eq!(store.auth().role_names(), vec!["root".to_string()]);
        assert!(store.auth().role("root").is_some());
        assert!(store.auth().role("guest").is_none());
    }

    #[test]
    fn a_hash_never_shows_in_debug_output() {
        let shown = format!("{:?}", write(true, AuthChange::CreateUser(root())));
        assert!(!shown.contains("$2a$"), "{shown}");
    }
}
