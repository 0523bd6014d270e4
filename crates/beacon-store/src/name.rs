//! A child's name in its directory. Short names (most are: `k0001`, `dc1`, `i-1`) are
//! kept inline, in the directory's own B+tree node: a lookup compares names there instead
//! of following a heap pointer per comparison (a cache miss each, in a large store), and
//! such a name costs no allocation of its own, which also makes copying a B+tree node
//! (copy-on-write after a snapshot view) cheaper.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ops::Deref;

/// The longest name kept inline: with its length and the variant's tag it fills the
/// 24 bytes that a heap name (a boxed slice and the tag) takes anyway.
const NAME_INLINE_BYTES_MAX: usize = 22;

/// Bytes, as every key is (a Go string); ordered as bytes, which is etcd's `sorted`.
#[derive(Clone)]
pub(crate) enum Name {
    Inline {
        len: u8,
        bytes: [u8; NAME_INLINE_BYTES_MAX],
    },
    Heap(Box<[u8]>),
}

// A name is as small as the `ByteString` it replaces.
const _: () = assert!(std::mem::size_of::<Name>() == 24);

impl Name {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Heap(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for Name {
    fn from(name: &[u8]) -> Name {
        if name.len() <= NAME_INLINE_BYTES_MAX {
            let mut bytes = [0; NAME_INLINE_BYTES_MAX];
            bytes[..name.len()].copy_from_slice(name);
            Name::Inline {
                // Fits: at most NAME_INLINE_BYTES_MAX.
                len: name.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(name.into())
        }
    }
}

impl Deref for Name {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Lookups by `&[u8]`: consistent with the order below, as `Borrow` requires.
impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_names_order_as_their_bytes() {
        let raw: [&[u8]; 7] = [
            b"",
            b"a",
            b"a\x00",
            b"k\xff",
            &[b'x'; NAME_INLINE_BYTES_MAX],
            &[b'x'; NAME_INLINE_BYTES_MAX + 1],
            &[b'y'; 300],
        ];
        let names: Vec<Name> = raw.iter().map(|r| Name::from(*r)).collect();
        assert!(matches!(names[4], Name::Inline { .. }));
        assert!(matches!(names[5], Name::Heap(_)));
        for (a, ra) in names.iter().zip(raw) {
            assert_eq!(a.as_bytes(), ra);
            for (b, rb) in names.iter().zip(raw) {
                assert_eq!(a.cmp(b), ra.cmp(rb));
                assert_eq!(a == b, ra == rb);
            }
        }
    }
}
