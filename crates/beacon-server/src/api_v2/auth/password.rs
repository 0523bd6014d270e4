//! Passwords: hashed with bcrypt at cost 10 in Go's `$2a$` form, as etcd's v2 auth
//! stores them, and checked against a stored hash. Both cost tens of milliseconds of
//! CPU, so they run on the blocking pool, never on a runtime thread. A password is
//! hashed before it is proposed: the log and the snapshots only ever hold the hash.

use beacon_store::auth::PasswordHash;

/// etcd's `bcrypt.DefaultCost`.
const BCRYPT_COST: u32 = 10;

/// A password in the clear, from a request. Its `Debug` hides it.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// A password from text (a Basic credential).
    pub fn new(text: String) -> Password {
        Password(text)
    }

    /// Whether none was given (etcd's empty string).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why hashing failed; bcrypt refuses nothing a request can send, so this is the
/// blocking pool gone at shutdown.
#[derive(Debug, thiserror::Error)]
#[error("hashing a password failed: {0}")]
pub struct HashError(String);

/// The password's bcrypt hash.
pub async fn hash(password: Password) -> Result<PasswordHash, HashError> {
    tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password.0.as_bytes(), BCRYPT_COST)
            .map(|parts| PasswordHash(parts.format_for_version(bcrypt::Version::TwoA)))
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// Whether `password` is the one `hash` was made from; a malformed hash matches none.
pub async fn verify(password: Password, hash: PasswordHash) -> bool {
    tokio::task::spawn_blocking(move || {
        bcrypt::verify(password.0.as_bytes(), &hash.0).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_is_gos_2a_at_cost_10_and_verifies_only_its_password() {
        let hashed = hash(Password::new("s3cret".into())).await.unwrap();
        assert!(hashed.0.starts_with("$2a$10$"), "{}", hashed.0);
        assert!(verify(Password::new("s3cret".into()), hashed.clone()).await);
        assert!(!verify(Password::new("s3cre".into()), hashed).await);
        assert!(!verify(Password::new("x".into()), PasswordHash("junk".into())).await);
        assert_eq!(
            format!("{:?}", Password::new("s3cret".into())),
            "Password(..)"
        );
    }
}
