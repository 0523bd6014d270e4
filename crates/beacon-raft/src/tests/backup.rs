//! Backup files: the framing etcdctl checks, the sha256 and the snapshot's own checksum
//! each refusing damage, and a restore's first snapshot loading as a new cluster's.

use sha2::{Digest, Sha256};

use crate::backup::{decode, padded_len, BackupFileError, ALIGN_BYTES, HASH_BYTES};
use crate::snapshot_file::encode;

/// A backup of an empty store at log index 7, framed as the server streams it.
fn backup() -> Vec<u8> {
    let data = crate::keyspace::join_encoded(
        &beacon_store::Store::new().save(),
        &crate::keyspace::rebase_empty(7),
    );
    let mut bytes = encode(&super::snapshot_file::meta(2, 7), &data);
    bytes.resize(padded_len(bytes.len() as u64) as usize, 0);
    let hash = Sha256::digest(&bytes);
    bytes.extend_from_slice(&hash);
    bytes
}

#[test]
fn a_backup_reads_back_with_its_summary() {
    let bytes = backup();
    assert_eq!(bytes.len() as u64 % ALIGN_BYTES, HASH_BYTES as u64);
    let len = bytes.len() as u64;
    let read = decode(bytes, false).expect("decodes");
    let summary = read.summary(len).expect("summary");
    assert_eq!((summary.revision, summary.total_keys), (1, 0));
    assert_eq!(summary.total_size, len);
}

#[test]
fn a_flipped_bit_is_a_sha256_mismatch() {
    let mut bytes = backup();
    bytes[40] ^= 1;
    assert!(matches!(
        decode(bytes.clone(), false),
        Err(BackupFileError::Hash { .. })
    ));
    // Without the sha256 check the snapshot's own checksum still catches it.
    let err = decode(bytes, true).expect_err("refused");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn a_truncated_file_has_no_hash() {
    let mut bytes = backup();
    bytes.truncate(bytes.len() - 100);
    assert!(matches!(
        decode(bytes, false),
        Err(BackupFileError::NoHash(_))
    ));
}

#[test]
fn damaged_padding_is_refused() {
    let mut bytes = backup();
    let at = bytes.len() - HASH_BYTES - 1;
    bytes[at] = 1;
    assert!(matches!(decode(bytes, true), Err(BackupFileError::Padding)));
}
