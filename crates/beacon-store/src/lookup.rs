//! Walks from the root to the node at a clean path, as etcd's `internalGet` and its
//! `checkDir` walk do, in time linear in the path: a key's prefix is sliced from the
//! path only for an error's cause, never built per level.
//!
//! The walks that change the tree take each node on the way with `Arc::make_mut`: a
//! node that a snapshot view still shares is copied (shallowly: its children stay
//! shared) before it changes, so the view keeps what it saw.

use std::sync::Arc;

use beacon_api::{ErrorCode, EtcdError};

use crate::node::{Children, Kind, Node};
use crate::path;

/// etcd's `internalGet`: walks to the node at a clean path. A path is built only for an
/// error (it is a prefix of `clean`): per level it would cost quadratic time on deep keys.
pub(crate) fn lookup<'a>(root: &'a Node, clean: &[u8], index: u64) -> Result<&'a Node, EtcdError> {
    let mut node = root;
    for (name, end) in components_with_ends(clean) {
        let Kind::Dir(children) = &node.kind else {
            return Err(EtcdError::new(
                ErrorCode::NotDir,
                parent_of(clean, end, name.len()),
                index,
            ));
        };
        let child = children
            .get(name)
            .ok_or_else(|| EtcdError::new(ErrorCode::KeyNotFound, &clean[..end], index))?;
        node = &**child;
    }
    Ok(node)
}

/// `lookup` for changing the node: every node on the way is made this tree's own.
pub(crate) fn lookup_mut<'a>(
    root: &'a mut Arc<Node>,
    clean: &[u8],
    index: u64,
) -> Result<&'a mut Node, EtcdError> {
    let mut node = Arc::make_mut(root);
    for (name, end) in components_with_ends(clean) {
        let Kind::Dir(children) = &mut node.kind else {
            return Err(EtcdError::new(
                ErrorCode::NotDir,
                parent_of(clean, end, name.len()),
                index,
            ));
        };
        let child = children
            .get_mut(name)
            .ok_or_else(|| EtcdError::new(ErrorCode::KeyNotFound, &clean[..end], index))?;
        node = Arc::make_mut(child);
    }
    Ok(node)
}

/// etcd's walk with `checkDir`: the children of the directory at `clean`, creating
/// missing directories (permanent, at `new_index`) on the way.
pub(crate) fn ensure_dir<'a>(
    root: &'a mut Arc<Node>,
    clean: &[u8],
    new_index: u64,
    index: u64,
) -> Result<&'a mut Children, EtcdError> {
    let mut node = Arc::make_mut(root);
    for (name, end) in components_with_ends(clean) {
        let Kind::Dir(children) = &mut node.kind else {
            unreachable!("ensure_dir only descends into directories");
        };
        let child = children
            .entry(name.into())
            .or_insert_with(|| Arc::new(Node::new_dir(new_index, None)));
        if !child.is_dir() {
            return Err(EtcdError::new(ErrorCode::NotDir, &clean[..end], index));
        }
        node = Arc::make_mut(child);
    }
    match &mut node.kind {
        Kind::Dir(children) => Ok(children),
        Kind::File(_) => unreachable!("ensure_dir ends on a directory"),
    }
}

/// The components of a clean path, each with where its prefix path ends in `clean`.
fn components_with_ends(clean: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    path::components(clean).scan(0, |end, name| {
        *end += 1 + name.len();
        Some((name, *end))
    })
}

/// The path of the directory holding the component of `name_len` bytes ending at `end`.
fn parent_of(clean: &[u8], end: usize, name_len: usize) -> &[u8] {
    match end - name_len - 1 {
        0 => b"/",
        at => &clean[..at],
    }
}
