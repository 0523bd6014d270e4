//! etcd's `simple` tokens: an opaque string per login, which every member learns when
//! it applies the login, kept in memory only (a restart forgets them, and clients log
//! in again, as with etcd), and forgotten after `--auth-token-ttl` without use.
//!
//! A token's life is counted in the proposers' and the serving member's wall clocks:
//! the login entry carries its proposer's time, and each use moves it on. Nothing the
//! state machine answers depends on it; only whether the server accepts the token.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngExt as _;

/// How many letters a token's random part has (etcd's `defaultSimpleTokenLength`).
const TOKEN_LETTERS: usize = 16;
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A fresh token: etcd's shape, random letters, a dot and a number (etcd's is the log
/// index; Beacon's is the caller's, only making tokens easier to tell apart in a test).
pub fn new_token(suffix: u64) -> String {
    let mut rng = rand::rng();
    let mut token: String = (0..TOKEN_LETTERS)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect();
    token.push('.');
    token.push_str(&suffix.to_string());
    token
}

struct Token {
    username: String,
    /// Unix nanoseconds of the login or of the last use, whichever is later.
    last_used_ns: i64,
}

/// The tokens this member knows. Interior mutability: a use moves the token's time on
/// under the keyspace's read lock.
#[derive(Default)]
pub struct Tokens {
    tokens: Mutex<HashMap<String, Token>>,
}

impl std::fmt::Debug for Tokens {
    // Never the tokens themselves: they are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        // A panic while holding it leaves a map that is still whole.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, token: &str, username: &str, now_ns: i64) {
        self.lock().insert(
            token.to_string(),
            Token {
                username: username.to_string(),
                last_used_ns: now_ns,
            },
        );
    }

    /// The user `token` was given to, if it is known and was used within `ttl_ns`;
    /// the use renews it. An expired token is forgotten.
    pub(crate) fn user(&self, token: &str, now_ns: i64, ttl_ns: i64) -> Option<String> {
        let mut tokens = self.lock();
        let found = tokens.get_mut(token)?;
        if now_ns.saturating_sub(found.last_used_ns) > ttl_ns {
            tokens.remove(token);
            return None;
        }
        found.last_used_ns = found.last_used_ns.max(now_ns);
        Some(found.username.clone())
    }

    pub(crate) fn forget_user(&self, username: &str) {
        self.lock().retain(|_, t| t.username != username);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lives_while_used_within_its_ttl() {
        let tokens = Tokens::default();
        tokens.insert("t.1", "alice", 0);
        assert_eq!(tokens.user("t.1", 90, 100).as_deref(), Some("alice"));
        assert_eq!(tokens.user("t.1", 180, 100).as_deref(), Some("alice"));
        assert_eq!(tokens.user("t.1", 281, 100), None);
        assert_eq!(
            tokens.user("t.1", 282, 100),
            None,
            "an expired token is gone"
        );
    }

    #[test]
    fn new_tokens_have_etcds_shape() {
        let t = new_token(7);
        assert_eq!(t.len(), TOKEN_LETTERS + 2);
        assert!(t.ends_with(".7"));
        assert_ne!(new_token(7), t);
    }
}
