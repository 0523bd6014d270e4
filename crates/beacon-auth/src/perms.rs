//! Whether a user's permissions cover a key or a range, as etcd 3.4 decides it
//! (`auth/range_perm_cache.go` over `pkg/adt`'s interval tree).
//!
//! etcd compares interval bounds "affinely": an empty byte string is past every other
//! one, so a permission or a request running to the end of the keyspace (`range_end`
//! `"\0"`, turned into an empty end) ends at infinity. A key alone is the interval from
//! it to the key with a zero byte appended, which holds that key only.

use std::cmp::Ordering;

/// What a permission allows, with etcd's numbering (`authpb.Permission.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PermKind {
    Read,
    Write,
    ReadWrite,
}

impl PermKind {
    /// The kind numbered `n`; etcd stores any other number and it then allows nothing.
    pub fn from_number(n: i32) -> Option<PermKind> {
        match n {
            0 => Some(PermKind::Read),
            1 => Some(PermKind::Write),
            2 => Some(PermKind::ReadWrite),
            _ => None,
        }
    }

    pub fn number(self) -> i32 {
        match self {
            PermKind::Read => 0,
            PermKind::Write => 1,
            PermKind::ReadWrite => 2,
        }
    }

    fn allows(self, wanted: Access) -> bool {
        matches!(
            (self, wanted),
            (PermKind::ReadWrite, _)
                | (PermKind::Read, Access::Read)
                | (PermKind::Write, Access::Write)
        )
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// One permission of a role: a key (`range_end` empty), a range, or every key from
/// `key` on (`range_end` `"\0"`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Perm {
    pub kind: PermKind,
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

/// A bound compared as etcd's `BytesAffineComparable`: empty is infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound<'a>(&'a [u8]);

impl Ord for Bound<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0.is_empty(), other.0.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.0.cmp(other.0),
        }
    }
}

impl PartialOrd for Bound<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A half-open interval `[begin, end)` of affine bounds.
#[derive(Debug, Clone)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn point(key: &[u8]) -> Interval {
        let mut end = key.to_vec();
        end.push(0);
        Interval {
            begin: key.to_vec(),
            end,
        }
    }

    /// A permission's interval, as etcd's cache builds it.
    fn of_perm(perm: &Perm) -> Interval {
        if perm.range_end.is_empty() {
            return Interval::point(&perm.key);
        }
        let end = if perm.range_end == [0] {
            Vec::new()
        } else {
            perm.range_end.clone()
        };
        Interval {
            begin: perm.key.clone(),
            end,
        }
    }

    fn intersects(&self, other: &Interval) -> bool {
        Bound(&self.begin) < Bound(&other.end) && Bound(&other.begin) < Bound(&self.end)
    }
}

/// Whether `perms` allow `wanted` on `key` (a key alone when `range_end` is empty, else
/// the range to `range_end`, `"\0"` meaning every key from `key` on).
///
/// A key alone is allowed when any permission touches it; a range only when the
/// permissions that touch it, taken in order of their beginnings, run without a gap
/// from at or before its start to at or past its end (etcd's `Contains`).
pub fn permits<'a>(
    perms: impl IntoIterator<Item = &'a Perm>,
    key: &[u8],
    range_end: &[u8],
    wanted: Access,
) -> bool {
    let mut touching: Vec<Interval> = Vec::new();
    let asked = if range_end.is_empty() {
        Interval::point(key)
    } else {
        let end = if range_end == [0] { &[][..] } else { range_end };
        Interval {
            begin: key.to_vec(),
            end: end.to_vec(),
        }
    };
    for perm in perms {
        if !perm.kind.allows(wanted) {
            continue;
        }
        let ivl = Interval::of_perm(perm);
        if ivl.intersects(&asked) {
            touching.push(ivl);
        }
    }
    if range_end.is_empty() {
        return !touching.is_empty();
    }
    touching.sort_by(|a, b| Bound(&a.begin).cmp(&Bound(&b.begin)));
    let mut iter = touching.iter();
    let Some(first) = iter.next() else {
        return false;
    };
    let mut max_end = Bound(&first.end);
    for ivl in iter {
        if max_end < Bound(&ivl.begin) {
            return false;
        }
        max_end = max_end.max(Bound(&ivl.end));
    }
    Bound(&first.begin) <= Bound(&asked.begin) && max_end >= Bound(&asked.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermKind, key: &str, end: &[u8]) -> Perm {
        Perm {
            kind,
            key: key.as_bytes().to_vec(),
            range_end: end.to_vec(),
        }
    }

    #[test]
    fn a_key_is_allowed_by_any_permission_touching_it() {
        let perms = [perm(PermKind::Read, "a", b"c")];
        assert!(permits(&perms, b"a", b"", Access::Read));
        assert!(permits(&perms, b"b\xff", b"", Access::Read));
        assert!(!permits(&perms, b"c", b"", Access::Read));
        assert!(!permits(&perms, b"a", b"", Access::Write));
        let point = [perm(PermKind::Write, "k", b"")];
        assert!(permits(&point, b"k", b"", Access::Write));
        assert!(!permits(&point, b"k0", b"", Access::Write));
    }

    #[test]
    fn a_range_needs_permissions_covering_it_without_a_gap() {
        let perms = [
            perm(PermKind::ReadWrite, "a", b"c"),
            perm(PermKind::Read, "c", b"e"),
        ];
        assert!(permits(&perms, b"a", b"e", Access::Read));
        assert!(permits(&perms, b"b", b"d", Access::Read));
        assert!(!permits(&perms, b"b", b"d", Access::Write));
        assert!(!permits(&perms, b"a", b"f", Access::Read));
        assert!(!permits(&perms, b"0", b"b", Access::Read));
        let gap = [
            perm(PermKind::Read, "a", b"b"),
            perm(PermKind::Read, "c", b"d"),
        ];
        assert!(!permits(&gap, b"a", b"d", Access::Read));
    }

    #[test]
    fn from_key_runs_to_infinity_on_both_sides() {
        let from = [perm(PermKind::Read, "m", b"\0")];
        assert!(permits(&from, b"m", b"\0", Access::Read));
        assert!(permits(&from, b"zzz", b"", Access::Read));
        assert!(!permits(&from, b"a", b"\0", Access::Read));
        let bounded = [perm(PermKind::Read, "m", b"z")];
        assert!(!permits(&bounded, b"m", b"\0", Access::Read));
    }

    #[test]
    fn a_point_permission_covers_the_range_of_that_key_alone() {
        let point = [perm(PermKind::Read, "k", b"")];
        assert!(permits(&point, b"k", b"k\0", Access::Read));
        assert!(!permits(&point, b"k", b"l", Access::Read));
    }
}
