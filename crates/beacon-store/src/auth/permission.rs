//! Which keys a role may read or write: etcd's v2 patterns, which are prefixes rather
//! than globs. A pattern ending in `*` matches every key starting with what precedes
//! the `*` (so `/foo/*` matches `/foo/` and `/foo/a/b`, not `/foo`); any other pattern
//! matches only the very same key. A `*` elsewhere is an ordinary character.

use super::{KvPermissions, Permissions, Role};

/// The role that may do anything, including manage users, roles and members.
pub const ROOT_ROLE: &str = "root";
/// The role whose permissions a request without credentials gets.
pub const GUEST_ROLE: &str = "guest";
/// The one user auth can be enabled for first; it always holds the root role.
pub const ROOT_USER: &str = "root";

/// Every key, read and write: what `root` (built in) and a new `guest` may do.
fn everything() -> Permissions {
    Permissions {
        kv: KvPermissions {
            read: Some(vec!["/*".to_string()]),
            write: Some(vec!["/*".to_string()]),
        },
    }
}

/// The built-in `root` role, as etcd shows it.
pub fn root_role() -> Role {
    Role {
        name: ROOT_ROLE.to_string(),
        permissions: everything(),
        ..Role::default()
    }
}

/// The `guest` role etcd creates when auth is enabled without one: every key, read
/// and write, until it is revoked.
pub fn guest_role() -> Role {
    Role {
        name: GUEST_ROLE.to_string(),
        permissions: everything(),
        ..Role::default()
    }
}

impl Role {
    /// Whether the role may read (or, with `write`, write) `key` itself
    /// (etcd's `HasKeyAccess`). `root` may do anything, whatever it is stored as.
    pub fn has_key_access(&self, key: &[u8], write: bool) -> bool {
        self.name == ROOT_ROLE
            || self
                .patterns(write)
                .iter()
                .any(|pattern| simple_match(pattern.as_bytes(), key))
    }

    /// Whether the role may read (or write) everything under `key`, for a recursive
    /// request (etcd's `HasRecursiveAccess`): only a `*` pattern grants that.
    pub fn has_recursive_access(&self, key: &[u8], write: bool) -> bool {
        self.name == ROOT_ROLE
            || self
                .patterns(write)
                .iter()
                .any(|pattern| prefix_match(pattern.as_bytes(), key))
    }

    fn patterns(&self, write: bool) -> &[String] {
        let kv = &self.permissions.kv;
        let list = if write { &kv.write } else { &kv.read };
        list.as_deref().unwrap_or_default()
    }
}

/// etcd's `simpleMatch`. An empty pattern matches nothing: etcd would index it out of
/// range (a panic its HTTP server recovers from, refusing the request).
fn simple_match(pattern: &[u8], key: &[u8]) -> bool {
    match pattern.split_last() {
        Some((b'*', prefix)) => key.starts_with(prefix),
        Some(_) => key == pattern,
        None => false,
    }
}

/// etcd's `prefixMatch`: a `*` pattern's prefix, never an exact key.
fn prefix_match(pattern: &[u8], key: &[u8]) -> bool {
    match pattern.split_last() {
        Some((b'*', prefix)) => key.starts_with(prefix),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(read: &[&str], write: &[&str]) -> Role {
        let list = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        Role {
            name: "r".into(),
            permissions: Permissions {
                kv: KvPermissions {
                    read: list(read),
                    write: list(write),
                },
            },
            ..Role::default()
        }
    }

    #[test]
    fn a_star_pattern_is_a_prefix_and_matches_below_it() {
        let r = role(&["/foo/*"], &[]);
        assert!(r.has_key_access(b"/foo/a", false));
        assert!(r.has_key_access(b"/foo/a/b", false));
        assert!(r.has_key_access(b"/foo/", false));
        // Not the directory itself, nor a sibling sharing the prefix's letters.
        assert!(!r.has_key_access(b"/foo", false));
        assert!(!r.has_key_access(b"/foobar", false));
        // Read patterns grant no writes.
        assert!(!r.has_key_access(b"/foo/a", true));
    }

    #[test]
    fn a_star_without_a_slash_is_a_plain_prefix() {
        let r = role(&["/foo*"], &["/*"]);
        assert!(r.has_key_access(b"/foo", false));
        assert!(r.has_key_access(b"/foobar/x", false));
        assert!(!r.has_key_access(b"/fo", false));
        assert!(r.has_key_access(b"/anything", true));
        // `/v2/keys` itself has an empty key, which `/*` does not cover.
        assert!(!r.has_key_access(b"", true));
    }

    #[test]
    fn a_plain_pattern_matches_only_its_key_and_never_recursively() {
        let r = role(&["/a"], &["/a"]);
        assert!(r.has_key_access(b"/a", false));
        assert!(r.has_key_access(b"/a", true));
        assert!(!r.has_key_access(b"/a/b", false));
        assert!(!r.has_key_access(b"/ab", false));
        assert!(!r.has_recursive_access(b"/a", false));
    }

    #[test]
    fn a_star_inside_a_pattern_is_an_ordinary_character() {
        let r = role(&["/a*/b"], &[]);
        assert!(r.has_key_access(b"/a*/b", false));
        assert!(!r.has_key_access(b"/ax/b", false));
    }

    #[test]
    fn recursive_access_needs_a_star_pattern_covering_the_key() {
        let r = role(&["/foo/*"], &["/foo/*"]);
        assert!(r.has_recursive_access(b"/foo/", false));
        assert!(r.has_recursive_access(b"/foo/a", true));
        // etcd checks the path as sent: `/foo?recursive=true` is refused, `/foo/` is not.
        assert!(!r.has_recursive_access(b"/foo", false));
    }

    #[test]
    fn empty_patterns_and_null_lists_grant_nothing() {
        let r = role(&[""], &[]);
        assert!(!r.has_key_access(b"/a", false));
        assert!(!r.has_key_access(b"", false));
        let none = Role {
            name: "n".into(),
            ..Role::default()
        };
        assert!(!none.has_key_access(b"/a", false));
        assert!(!none.has_recursive_access(b"/", true));
    }

    #[test]
    fn root_may_do_anything_and_a_new_guest_everything_below_the_root() {
        assert!(root_role().has_key_access(b"", true));
        assert!(root_role().has_recursive_access(b"/x", true));
        let guest = guest_role();
        assert!(guest.has_key_access(b"/a/b", true));
        assert!(guest.has_recursive_access(b"/", false));
        assert!(!guest.has_key_access(b"", false));
    }
}
