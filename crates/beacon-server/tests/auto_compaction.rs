//! `--auto-compaction-mode=periodic --auto-compaction-retention=2s` on etcd 3.4.23 and
//! on Beacon: a few writes, then both compact on their own, within seconds, to the
//! revision of the last write (the newest revision older than the retention), and
//! log it in etcd's words. Revision mode compacts every 5 minutes, too slow to wait
//! for here: `compactor::tests` pins it on a paused clock instead.

use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::{PutRequest, RangeRequest};
use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess};
use tonic::transport::Channel;

/// How long both may take to compact the writes away: two retentions and their
/// samples, with room for a slow machine.
const COMPACTED_WITHIN: Duration = Duration::from_secs(15);

/// A range of `k` at `revision`, as a line: its value, or the refusal.
async fn get_at(kv: &mut KvClient<Channel>, revision: i64) -> String {
    let req = RangeRequest {
        key: b"k".to_vec(),
        revision,
        ..RangeRequest::default()
    };
    match kv.range(req).await {
        Ok(resp) => {
            let value = resp.into_inner().kvs.first().map(|kv| kv.value.clone());
            format!(
                "k@{revision}: {}",
                String::from_utf8_lossy(&value.unwrap_or_default())
            )
        }
        Err(status) => format!("k@{revision}: {:?} {}", status.code(), status.message()),
    }
}

/// Writes `k` five times (revisions 2 to 6), waits until revision 5 is compacted, and
/// tells what each revision reads then.
async fn story(member: &ServerProcess) -> Vec<String> {
    let mut kv = KvClient::new(beacon_testkit::grpc_channel(&member.client_url()).await);
    for i in 1..=5 {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: format!("v{i}").into_bytes(),
            ..PutRequest::default()
        };
        kv.put(put).await.expect("a put");
    }
    let deadline = Instant::now() + COMPACTED_WITHIN;
    while !get_at(&mut kv, 5).await.contains("compacted") {
        assert!(
            Instant::now() < deadline,
            "{:?}: revision 5 not compacted within {COMPACTED_WITHIN:?}:\n{}",
            member.kind(),
            member.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut told = Vec::new();
    for revision in 1..=6 {
        told.push(get_at(&mut kv, revision).await);
    }
    // etcd's capnslog lines, which Beacon's text log repeats; "Finished" follows the
    // compaction that the reads above saw.
    let lines = [
        "Starting auto-compaction at revision 6 (retention: 2s)",
        "Finished auto-compaction at revision 6",
    ];
    let logged =
        |line: &str| std::fs::read_to_string(member.log_path()).is_ok_and(|log| log.contains(line));
    while !lines.iter().all(|l| logged(l)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in lines {
        told.push(format!("logged {line:?}: {}", logged(line)));
    }
    told
}

#[test]
fn periodic_retention_compacts_old_revisions_as_etcd_does() {
    if !etcd_or_skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let args = [
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=2s",
    ];
    let mut told = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let members = ServerProcess::cluster_with(kind, bin, 1, &args)
            .unwrap_or_else(|e| panic!("{kind:?} starts: {e}"));
        told.push(runtime.block_on(story(&members[0])));
    }
    beacon_testkit::assert_same_answers(&told[0], &told[1]);
    assert!(told[0][5].ends_with(": v5"), "{:?}", told[0]);
    assert!(told[0][6].ends_with("true"), "{:?}", told[0]);
}
