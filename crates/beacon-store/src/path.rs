//! Key paths as etcd treats them: Go's `path.Clean(path.Join("/", p))`.

/// Cleans a key the way etcd's store does: rooted, no `.`/`..`, no repeated or trailing `/`.
pub(crate) fn clean(raw: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(raw.len() + 1);
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
}

/// The components of a clean path ("/" has none).
pub(crate) fn components(clean_path: &str) -> impl Iterator<Item = &str> {
    clean_path.split('/').filter(|c| !c.is_empty())
}

/// Joins a clean directory path and a child name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Appends a child name to a clean directory path in place (`join` without a copy).
pub(crate) fn push_name(dir: &mut String, name: &str) {
    if !dir.ends_with('/') {
        dir.push('/');
    }
    dir.push_str(name);
}

/// Splits a clean path into its parent directory and last name ("/a/b" -> ("/a", "b")).
pub(crate) fn split(clean_path: &str) -> (&str, &str) {
    match clean_path.rfind('/') {
        Some(0) => ("/", &clean_path[1..]),
        Some(i) => (&clean_path[..i], &clean_path[i + 1..]),
        None => ("/", clean_path),
    }
}

/// A node is hidden when its name starts with `_`.
pub(crate) fn is_hidden_name(name: &str) -> bool {
    name.starts_with('_')
}

/// etcd's `isHidden(watchPath, keyPath)`: whether `key` lies in a hidden node below
/// `watch`, so that a watcher on `watch` must not see it.
pub(crate) fn is_hidden_below(watch: &str, key: &str) -> bool {
    // A watch deeper than the key happens when a directory is deleted: never hidden.
    if watch.len() > key.len() {
        return false;
    }
    let after = clean(&format!("/{}", &key[watch.len()..]));
    after.contains("/_")
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
            assert_eq!(clean(raw), want, "clean({raw:?})");
        }
    }

    #[test]
    fn split_and_join_are_inverse() {
        assert_eq!(split("/a"), ("/", "a"));
        assert_eq!(split("/a/b"), ("/a", "b"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }

    #[test]
    fn hidden_below_follows_etcd() {
        assert!(is_hidden_below("/", "/_foo"));
        assert!(is_hidden_below("/foo", "/foo/_bar/baz"));
        assert!(!is_hidden_below("/foo", "/foo/bar"));
        assert!(!is_hidden_below("/_foo", "/_foo"));
        assert!(!is_hidden_below("/foo/bar", "/foo"));
    }
}
