//! The snapshot container: round trip and every kind of damage it must report.

use openraft::{LogId, Membership, StoredMembership};

use crate::error::SnapshotFileError;
use crate::snapshot_file::{decode, encode, SnapshotDir};
use crate::types::SnapshotMeta;

/// A one-member snapshot meta at `term` and `index` (also for `snapshot_mutations`).
pub(super) fn meta(term: u64, index: u64) -> SnapshotMeta {
    let log_id = LogId::new(
        openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 },
        index,
    );
    let membership = Membership::new(
        vec![[1u64].into()],
        std::collections::BTreeMap::from([(
            1u64,
            crate::types::Member::with_peer_urls(vec!["http://a".into()]),
        )]),
    )
    .expect("valid membership");
    SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
    }
}

#[test]
fn round_trip() {
    let bytes = encode(&meta(2, 7), b"store bytes");
    let (m, data) = decode(bytes).expect("decodes");
    assert_eq!(m, meta(2, 7));
    assert_eq!(data, b"store bytes");
}

#[test]
fn flipped_bit_is_a_checksum_error() {
    let mut bytes = encode(&meta(2, 7), b"store bytes");
    let mid = bytes.len() - 12;
    bytes[mid] ^= 0x10;
    assert!(matches!(
        decode(bytes),
        Err(SnapshotFileError::Checksum { .. })
    ));
}

#[test]
fn truncated_and_padded_are_length_errors() {
    let bytes = encode(&meta(2, 7), b"store bytes");
    let short = bytes[..bytes.len() - 3].to_vec();
    assert!(matches!(
        decode(short),
        Err(SnapshotFileError::Length { .. })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        decode(long),
        Err(SnapshotFileError::Length { .. })
    ));
    assert!(matches!(
        decode(bytes[..10].to_vec()),
        Err(SnapshotFileError::TooShort { .. })
    ));
    let mut foreign = bytes;
    foreign[0] = b'X';
    assert!(matches!(decode(foreign), Err(SnapshotFileError::BadMagic)));
}

#[test]
fn dir_lists_newest_last_and_prunes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = SnapshotDir::new(
        std::sync::Arc::new(crate::disk::StdDisk::default()),
        tmp.path(),
    );
    for (term, index) in [(1, 5), (2, 30), (2, 12)] {
        dir.write(&meta(term, index), b"x").expect("write");
    }
    std::fs::write(
        tmp.path()
            .join("0000000000000002-0000000000000040.snap.tmp"),
        b"partial",
    )
    .expect("tmp");
    let latest = dir.latest().expect("list").expect("some");
    assert_eq!((latest.term, latest.index), (2, 30));
    dir.prune(2).expect("prune");
    let left: Vec<u64> = dir.list().expect("list").iter().map(|f| f.index).collect();
    assert_eq!(left, [12, 30]);
    dir.remove_temp_files().expect("clean");
    assert_eq!(std::fs::read_dir(tmp.path()).expect("read").count(), 2);
}
