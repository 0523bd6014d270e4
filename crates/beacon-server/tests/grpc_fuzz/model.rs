//! The plain model the accepted calls are judged by: who holds which permission (the
//! users and roles `main` creates), and whether a key range lies inside the union of a
//! user's permissions of one kind. Written from etcd 3.4's `apply_auth.go` and
//! `auth/range_perm_cache.go`, not from `beacon-auth`, so that the two can disagree.
//!
//! A range is `[key, range_end)` as etcd reads one: an empty `range_end` is `key` alone,
//! `"\0"` is every key from `key` on. The model allows a request when every range it
//! touches is covered, exactly, by the user's permissions of the right kind
//! (READWRITE counts as both); a range that is empty (its end before its start)
//! touches nothing.

use beacon_proto::etcdserverpb::request_op::Request as Op;
use beacon_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Read,
    Write,
    ReadWrite,
}

/// What a request needs of a range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    Read,
    Write,
}

/// One permission: its kind, key and range end.
type Perm = (Kind, &'static [u8], &'static [u8]);

/// The roles `main` creates: single keys, a prefix, a range and an open-ended range.
pub const ROLES: &[(&str, &[Perm])] = &[
    ("reader-a", &[(Kind::Read, b"a", b"")]),
    ("writer-b", &[(Kind::Write, b"b", b"")]),
    ("foo-prefix", &[(Kind::ReadWrite, b"foo", b"fop")]),
    ("reader-from-c", &[(Kind::Read, b"c", b"\0")]),
    (
        "writer-a-to-c",
        &[(Kind::Write, b"a", b"c"), (Kind::Read, b"zz", b"")],
    ),
    ("zz", &[(Kind::ReadWrite, b"zz", b"")]),
];

/// The users `main` creates besides root, and their roles (dave has none).
pub const USERS: &[(&str, &[&str])] = &[
    ("alice", &["reader-a", "writer-b"]),
    ("bob", &["foo-prefix"]),
    ("carol", &["reader-from-c", "writer-a-to-c"]),
    ("dave", &[]),
    ("erin", &["zz", "foo-prefix", "reader-a"]),
];

/// Who makes a call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Who {
    Root,
    /// An index into [`USERS`].
    User(usize),
    /// A token the server never gave.
    BadToken,
    /// No token at all.
    Anonymous,
}

impl Who {
    pub fn name(self) -> &'static str {
        match self {
            Who::Root => "root",
            Who::User(i) => USERS[i].0,
            Who::BadToken => "(bad token)",
            Who::Anonymous => "(no token)",
        }
    }

    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Who::User(i) => USERS[i].1,
            _ => &[],
        }
    }
}

/// The keys `who`'s permissions name, and a key just after each (inside a range, just
/// outside a single key).
pub fn focus(who: Who) -> Vec<Vec<u8>> {
    ROLES
        .iter()
        .filter(|(role, _)| who.roles().contains(role))
        .flat_map(|(_, perms)| perms.iter())
        .flat_map(|(_, key, _)| [key.to_vec(), [key, b"1".as_slice()].concat()])
        .collect()
}

/// `[start, end)`, `end` `None` for no end.
type Interval = (Vec<u8>, Option<Vec<u8>>);

fn interval(key: &[u8], range_end: &[u8]) -> Interval {
    match range_end {
        [] => (key.to_vec(), Some([key, &[0]].concat())),
        [0] => (key.to_vec(), None),
        end => (key.to_vec(), Some(end.to_vec())),
    }
}

fn grants(kind: Kind, access: Access) -> bool {
    matches!(
        (kind, access),
        (Kind::ReadWrite, _) | (Kind::Read, Access::Read) | (Kind::Write, Access::Write)
    )
}

/// Whether the model lets `who` have `access` to `key` (to `range_end`).
pub fn allows(who: Who, access: Access, key: &[u8], range_end: &[u8]) -> bool {
    if who == Who::Root {
        return true;
    }
    let held: Vec<Interval> = ROLES
        .iter()
        .filter(|(role, _)| who.roles().contains(role))
        .flat_map(|(_, perms)| perms.iter())
        .filter(|(kind, _, _)| grants(*kind, access))
        .map(|(_, key, end)| interval(key, end))
        .collect();
    let (start, end) = interval(key, range_end);
    covered(&held, start, end.as_deref())
}

/// Whether the union of `held` covers `[start, end)`: walk from `start`, each step to
/// the furthest end of a held interval that contains where the walk stands.
fn covered(held: &[Interval], start: Vec<u8>, end: Option<&[u8]>) -> bool {
    let mut at = start;
    loop {
        if end.is_some_and(|end| at.as_slice() >= end) {
            return true;
        }
        let furthest = held
            .iter()
            .filter(|(s, e)| *s <= at && e.as_ref().is_none_or(|e| *e > at))
            .map(|(_, e)| e.clone())
            .max_by(|a, b| match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, _) => std::cmp::Ordering::Greater,
                (_, None) => std::cmp::Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            });
        match furthest {
            None => return false,
            Some(None) => return true,
            Some(Some(next)) => at = next,
        }
    }
}

/// What a request needs: an access to a key or range.
pub type Need = (Access, Vec<u8>, Vec<u8>);

pub fn put_needs(p: &PutRequest) -> Vec<Need> {
    let mut needs = vec![(Access::Write, p.key.clone(), Vec::new())];
    if p.prev_kv {
        needs.push((Access::Read, p.key.clone(), Vec::new()));
    }
    needs
}

pub fn range_needs(r: &RangeRequest) -> Vec<Need> {
    vec![(Access::Read, r.key.clone(), r.range_end.clone())]
}

pub fn delete_needs(d: &DeleteRangeRequest) -> Vec<Need> {
    let mut needs = vec![(Access::Write, d.key.clone(), d.range_end.clone())];
    if d.prev_kv {
        needs.push((Access::Read, d.key.clone(), d.range_end.clone()));
    }
    needs
}

/// A transaction needs to read what it compares and whatever each operation of both
/// branches needs (etcd checks both, whichever runs), nested transactions included.
pub fn txn_needs(t: &TxnRequest) -> Vec<Need> {
    let mut needs: Vec<Need> = t
        .compare
        .iter()
        .map(|c| (Access::Read, c.key.clone(), c.range_end.clone()))
        .collect();
    for op in t.success.iter().chain(&t.failure) {
        needs.extend(match &op.request {
            Some(Op::RequestRange(r)) => range_needs(r),
            Some(Op::RequestPut(p)) => put_needs(p),
            Some(Op::RequestDeleteRange(d)) => delete_needs(d),
            Some(Op::RequestTxn(t)) => txn_needs(t),
            None => Vec::new(),
        });
    }
    needs
}

/// The needs of `needs` that the model does not grant `who`.
pub fn unmet(who: Who, needs: &[Need]) -> Vec<Need> {
    needs
        .iter()
        .filter(|(access, key, end)| !allows(who, *access, key, end))
        .cloned()
        .collect()
}

/// Every Put of a transaction, nested ones too, in either branch.
pub fn txn_puts(t: &TxnRequest) -> Vec<PutRequest> {
    let mut puts = Vec::new();
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestPut(p)) => puts.push(p.clone()),
            Some(Op::RequestTxn(t)) => puts.extend(txn_puts(t)),
            _ => {}
        }
    }
    puts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_reads_ranges_as_etcd() {
        let alice = Who::User(0);
        let carol = Who::User(2);
        assert!(allows(alice, Access::Read, b"a", b""));
        assert!(!allows(alice, Access::Write, b"a", b""));
        assert!(!allows(alice, Access::Read, b"a", b"b"), "a\\0 is not a");
        assert!(allows(carol, Access::Read, b"zzz", b"\0"));
        assert!(allows(carol, Access::Write, b"a", b"c"));
        assert!(!allows(carol, Access::Write, b"a", b"c\0"));
        assert!(allows(carol, Access::Write, b"b", b"a"), "an empty range");
        assert!(!allows(Who::Anonymous, Access::Read, b"a", b""));
    }
}
