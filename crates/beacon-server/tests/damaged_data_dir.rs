//! A damaged data directory never starts quietly on less than it acknowledged: each test
//! is one row of docs/CORRUPTION.md. A member writes 350 keys with `--snapshot-count
//! 100` (snapshots at 199 and 299, the log purged to 199), stops with SIGTERM, and that
//! directory is copied once; each test damages its own copy and starts a real `beacon`
//! on it, which must refuse (exit != 0, a message naming the missing range and the path),
//! fall back (an older snapshot, every key there), or start as the row says.

mod member;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use beacon_testkit::TempDir;
use member::{Member, Started};

const KEYS: usize = 350;
const SNAPSHOT_COUNT: &str = "100";
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The undamaged directory every test copies, written once per test binary, and the
/// ports it was first started on.
fn pristine() -> &'static Path {
    &pristine_with_ports().0
}

fn pristine_with_ports() -> &'static (PathBuf, (u16, u16), TempDir) {
    static PRISTINE: OnceLock<(PathBuf, (u16, u16), TempDir)> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let temp = TempDir::new("pristine-data-dir").expect("temp dir");
        let data = temp.path().join("data");
        let mut m = Member::new(&data, &temp.path().join("log"));
        m.start_ready(&["--snapshot-count", SNAPSHOT_COUNT]);
        let base = m.client_url();
        // Its own runtime: the tests' runtimes are busy waiting on this one.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let http = reqwest::Client::new();
                for i in 0..KEYS {
                    let (status, _) =
                        member::put(&http, &base, &format!("k{i}"), &format!("v{i}")).await;
                    assert_eq!(status, 201, "PUT k{i}");
                }
            });
        })
        .join()
        .expect("writes");
        let status = m.terminate(STOP_TIMEOUT);
        assert!(status.success(), "clean stop: {status}\n{}", m.log_text());
        (data, m.ports(), temp)
    })
}

/// A private copy of the pristine directory, for one test to damage.
struct Copy {
    temp: TempDir,
}

impl Copy {
    fn new(name: &str) -> Copy {
        let temp = TempDir::new(name).expect("temp dir");
        copy_dir(pristine(), &temp.path().join("data"));
        Copy { temp }
    }

    fn data(&self) -> PathBuf {
        self.temp.path().join("data")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.data().join(rel)
    }

    fn member(&self) -> Member {
        Member::new(&self.data(), &self.temp.path().join("log"))
    }

    /// The snapshot files, oldest first.
    fn snapshots(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.path("member/snap"))
            .expect("snap dir")
            .map(|e| e.expect("dirent").path())
            .filter(|p| p.extension().is_some_and(|e| e == "snap"))
            .collect();
        v.sort();
        v
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dirent");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).expect("write");
}

/// The end of the journal's records: it is preallocated with zeros past them.
fn journal_content_len(path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("read journal");
    bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |i| i as u64 + 1)
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("truncate");
}

const JOURNAL: &str = "member/raft/0.jnl";

/// Starts the member on the damaged copy and expects a refusal whose message has every
/// one of `expected`.
fn assert_refuses(copy: &Copy, flags: &[&str], expected: &[&str]) {
    let mut m = copy.member();
    match m.start(flags) {
        Started::Exited(status) => {
            assert!(!status.success(), "refused with a failure status");
            let log = m.log_text();
            for e in expected {
                assert!(log.contains(e), "message lacks {e:?}:\n{log}");
            }
        }
        Started::Ready => panic!("started on a damaged directory:\n{}", m.log_text()),
    }
}

/// Starts the member and checks keys `k0..k<upto>` are there with their values.
async fn assert_starts_with_keys(copy: &Copy, flags: &[&str], upto: usize) -> Member {
    let mut m = copy.member();
    m.start_ready(flags);
    let http = reqwest::Client::new();
    let base = m.client_url();
    for i in 0..upto {
        let v = member::value(&http, &base, &format!("k{i}")).await;
        assert_eq!(v.as_deref(), Some(format!("v{i}").as_str()), "k{i}");
    }
    m
}

/// The journal, truncated to 0, refused; with `--force-new-cluster` it starts on the
/// snapshot (keys up to index 299), says so, and then starts without the flag too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_truncated_to_zero_is_refused_unless_forced() {
    let copy = Copy::new("jnl-zero");
    truncate(&copy.path(JOURNAL), 0);
    let missing = [
        "entries 300..=353 are missing",
        "member/raft",
        "--force-new-cluster",
    ];
    assert_refuses(&copy, &["--snapshot-count", SNAPSHOT_COUNT], &missing);

    let flags = ["--snapshot-count", SNAPSHOT_COUNT, "--force-new-cluster"];
    let mut m = assert_starts_with_keys(&copy, &flags, 290).await;
    assert!(
        m.log_text()
            .contains("--force-new-cluster: starting without entries"),
        "says so:\n{}",
        m.log_text()
    );
    let http = reqwest::Client::new();
    assert_eq!(member::value(&http, &m.client_url(), "k349").await, None);
    let (status, _) = member::put(&http, &m.client_url(), "after", "x").await;
    assert_eq!(status, 201);
    assert!(m.terminate(STOP_TIMEOUT).success());
    let m = assert_starts_with_keys(&copy, &["--snapshot-count", SNAPSHOT_COUNT], 290).await;
    assert_eq!(
        member::value(&http, &m.client_url(), "after")
            .await
            .as_deref(),
        Some("x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_truncated_part_way_is_refused() {
    let copy = Copy::new("jnl-part");
    let jnl = copy.path(JOURNAL);
    truncate(&jnl, journal_content_len(&jnl) / 2);
    assert_refuses(
        &copy,
        &["--snapshot-count", SNAPSHOT_COUNT],
        &["are missing", "..=353", "member/raft"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_deleted_is_refused() {
    let copy = Copy::new("jnl-gone");
    std::fs::remove_file(copy.path(JOURNAL)).expect("rm journal");
    assert_refuses(
        &copy,
        &[],
        &["entries 300..=353 are missing", "member/raft"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_dir_deleted_is_refused_unless_forced() {
    let copy = Copy::new("raft-gone");
    std::fs::remove_dir_all(copy.path("member/raft")).expect("rm raft");
    assert_refuses(
        &copy,
        &[],
        &["entries 300..=353 are missing", "member/raft"],
    );
    let m = assert_starts_with_keys(&copy, &["--force-new-cluster"], 290).await;
    assert!(m.log_text().contains("--force-new-cluster"));
}

/// Junk named as the newest snapshot: skipped (renamed `.broken`), every key there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_newest_snapshot_falls_back_to_the_older_one() {
    let copy = Copy::new("snap-junk");
    let junk = copy.path("member/snap/ffffffffffffffff-ffffffffffffffff.snap");
    std::fs::write(&junk, b"\x17 not a snapshot at all \xff\x00").expect("junk");
    let m = assert_starts_with_keys(&copy, &[], KEYS).await;
    let log = m.log_text();
    assert!(
        log.contains("skipped a snapshot")
            && log.contains("ffffffffffffffff-ffffffffffffffff.snap"),
        "{log}"
    );
    assert!(copy
        .path("member/snap/ffffffffffffffff-ffffffffffffffff.snap.broken")
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_newest_snapshot_falls_back_to_the_older_one() {
    let copy = Copy::new("snap-flip");
    let newest = copy.snapshots().pop().expect("a snapshot");
    flip_byte(&newest, 1000);
    let m = assert_starts_with_keys(&copy, &[], KEYS).await;
    assert!(
        m.log_text().contains("checksum mismatch"),
        "{}",
        m.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_snapshot_deleted_falls_back_to_the_older_one() {
    let copy = Copy::new("snap-rm-newest");
    let newest = copy.snapshots().pop().expect("a snapshot");
    std::fs::remove_file(newest).expect("rm");
    assert_starts_with_keys(&copy, &[], KEYS).await;
}

/// No snapshot left while the log was purged behind them: a hole no flag can bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_deleted_is_refused_even_when_forced() {
    let copy = Copy::new("snap-rm-all");
    for s in copy.snapshots() {
        std::fs::remove_file(s).expect("rm");
    }
    let expected = [
        "entries 0..=199 are missing",
        "member/snap",
        "cannot bridge a hole",
    ];
    assert_refuses(&copy, &[], &expected);
    assert_refuses(&copy, &["--force-new-cluster"], &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_journal_is_refused() {
    let copy = Copy::new("jnl-flip");
    flip_byte(&copy.path(JOURNAL), 1000);
    assert_refuses(&copy, &[], &["member/raft", "ChecksumMismatch"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_committed_marker_is_refused_unless_forced() {
    let copy = Copy::new("marker-junk");
    std::fs::write(copy.path("member/committed"), b"junk\n").expect("junk");
    assert_refuses(&copy, &[], &["member/committed", "damaged"]);
    assert_starts_with_keys(&copy, &["--force-new-cluster"], KEYS).await;
}

/// Directories written before the marker existed have none: they start, checked only
/// against the log's own committed index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_markers_start() {
    let copy = Copy::new("markers-gone");
    std::fs::remove_file(copy.path("member/committed")).expect("rm committed");
    std::fs::remove_file(copy.path("member/initialized")).expect("rm initialized");
    assert_starts_with_keys(&copy, &[], KEYS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_file_deleted_starts_from_the_flags() {
    let copy = Copy::new("identity-gone");
    std::fs::remove_file(copy.path("member/identity.json")).expect("rm identity");
    // The same flags as the first start derive the same member id.
    let (client, peer) = pristine_with_ports().1;
    let log = copy.temp.path().join("log");
    let mut m = Member::with_ports(&copy.data(), &log, client, peer);
    m.start_ready(&[]);
    let http = reqwest::Client::new();
    let v = member::value(&http, &m.client_url(), "k349").await;
    assert_eq!(v.as_deref(), Some("v349"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_identity_file_is_refused() {
    let copy = Copy::new("identity-junk");
    let path = copy.path("member/identity.json");
    flip_byte(&path, 0);
    assert_refuses(
        &copy,
        &[],
        &["member/identity.json", "not a valid identity file"],
    );
}

/// A flipped byte in one of fjall's tables (flushed log entries): fjall's block checksum
/// refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_log_table_is_refused() {
    let copy = Copy::new("table-flip");
    let mut tables = Vec::new();
    for ks in std::fs::read_dir(copy.path("member/raft/keyspaces")).expect("keyspaces") {
        let dir = ks.expect("dirent").path().join("tables");
        if let Ok(files) = std::fs::read_dir(&dir) {
            tables.extend(files.map(|f| f.expect("dirent").path()));
        }
    }
    let table = tables
        .into_iter()
        .max_by_key(|t| std::fs::metadata(t).map(|m| m.len()).unwrap_or(0))
        .expect("a flushed table");
    let len = std::fs::metadata(&table).expect("meta").len() as usize;
    flip_byte(&table, len / 2);
    assert_refuses(&copy, &[], &["member/raft", "ChecksumMismatch"]);
}
