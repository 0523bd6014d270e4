//! Password hashes: bcrypt, as etcd stores them (so a cost is etcd's `--bcrypt-cost`).
//! Both calls are slow on purpose; a server runs them off its async threads.

/// etcd's default `--bcrypt-cost`.
pub const DEFAULT_COST: u32 = 10;

/// The cost range bcrypt accepts (etcd refuses a `--bcrypt-cost` outside it).
pub const COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// The bcrypt hash of `password` at `cost`.
pub fn hash(password: &str, cost: u32) -> Result<String, String> {
    bcrypt::hash(password, cost).map_err(|e| e.to_string())
}

/// Whether `password` is the one `hash` was made from (a hash that does not parse
/// matches nothing).
pub fn verify(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = super::hash("s3cret", 4).unwrap();
        assert!(super::verify("s3cret", &h));
        assert!(!super::verify("s3cret!", &h));
        assert!(!super::verify("s3cret", "not a hash"));
    }
}
