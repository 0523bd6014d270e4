//! etcd 3.4's v3 authentication and role-based access control, as a deterministic
//! state machine: the keyspace (`beacon-mvcc`) applies the Auth service's log entries
//! to an [`AuthStore`] and checks every request it applies against it; the server
//! checks reads and the token or certificate a call comes with.
//!
//! Passwords are hashed with bcrypt ([`password`]) by the server before a request goes
//! into the log, so neither the log nor a snapshot ever holds one.

mod error;
pub mod jwt;
pub mod password;
pub mod perms;
mod store;
pub mod tokens;

pub use error::AuthError;
pub use perms::{permits, Access, Perm, PermKind};
pub use store::{perm_of, AuthState, AuthStore, Caller, Role, User, ROOT};
