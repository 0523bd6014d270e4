//! Key paths as etcd treats them: Go's `path.Clean(path.Join("/", p))`. Keys are bytes
//! (Go strings), so every function here works on bytes: only `/` and `.` matter.

use beacon_api::ByteString;

/// Cleans a key the way etcd's store does: rooted, no `.`/`..`, no repeated or trailing `/`.
pub(crate) fn clean(raw: &[u8]) -> ByteString {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return b"/".as_slice().into();
    }
    let mut out = Vec::with_capacity(raw.len() + 1);
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    out.into()
}

/// The components of a clean path ("/" has none).
pub(crate) fn components(clean_path: &[u8]) -> impl Iterator<Item = &[u8]> {
    clean_path.split(|b| *b == b'/').filter(|c| !c.is_empty())
}

/// Joins a clean directory path and a child name.
pub(crate) fn join(dir: &[u8], name: &[u8]) -> ByteString {
    let mut out = dir.to_vec();
    push_name(&mut out, name);
    out.into()
}

/// Appends a child name to a clean directory path in place (`join` without a copy).
pub(crate) fn push_name(dir: &mut Vec<u8>, name: &[u8]) {
    if dir.last() != Some(&b'/') {
        dir.push(b'/');
    }
    dir.extend_from_slice(name);
}

/// Splits a clean path into its parent directory and last name ("/a/b" -> ("/a", "b")).
pub(crate) fn split(clean_path: &[u8]) -> (&[u8], &[u8]) {
    match clean_path.iter().rposition(|b| *b == b'/') {
        Some(0) => (b"/", &clean_path[1..]),
        Some(i) => (&clean_path[..i], &clean_path[i + 1..]),
        None => (b"/", clean_path),
    }
}

/// A node is hidden when its name starts with `_`.
pub(crate) fn is_hidden_name(name: &[u8]) -> bool {
    name.first() == Some(&b'_')
}

/// etcd's `isHidden(watchPath, keyPath)`: whether `key` lies in a hidden node below
/// `watch`, so that a watcher on `watch` must not see it.
pub(crate) fn is_hidden_below(watch: &[u8], key: &[u8]) -> bool {
    // A watch deeper than the key happens when a directory is deleted: never hidden.
    if watch.len() > key.len() {
        return false;
    }
    let mut after = b"/".to_vec();
    after.extend_from_slice(&key[watch.len()..]);
    clean(&after).windows(2).any(|w| w == b"/_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_path_clean() {
        for (raw, want) in [
            ("", "/"),
            ("/", "/"),
            ("foo", "/foo"),
            ("/foo/", "/foo"),
            ("//foo//bar", "/foo/bar"),
            ("/foo/./bar", "/foo/bar"),
            ("/foo/../bar", "/bar"),
            ("/../..", "/"),
        ] {
            assert_eq!(clean(raw.as_bytes()), want, "clean({raw:?})");
        }
    }

    #[test]
    fn split_and_join_are_inverse() {
        assert_eq!(split(b"/a"), (&b"/"[..], &b"a"[..]));
        assert_eq!(split(b"/a/b"), (&b"/a"[..], &b"b"[..]));
        assert_eq!(join(b"/", b"a"), "/a");
        assert_eq!(join(b"/a", b"b"), "/a/b");
        // Bytes that are not UTF-8 are names like any other.
        assert_eq!(clean(b"/k\xff/../k\xfe/"), b"/k\xfe"[..]);
    }

    #[test]
    fn hidden_below_follows_etcd() {
        assert!(is_hidden_below(b"/", b"/_foo"));
        assert!(is_hidden_below(b"/foo", b"/foo/_bar/baz"));
        assert!(!is_hidden_below(b"/foo", b"/foo/bar"));
        assert!(!is_hidden_below(b"/_foo", b"/_foo"));
        assert!(!is_hidden_below(b"/foo/bar", b"/foo"));
    }
}
