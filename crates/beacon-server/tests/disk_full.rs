//! A full disk pauses writes; it does not break the member. A real `beacon` runs on a
//! small tmpfs; a ballast file fills it, writes then fail with etcd's error; once the
//! ballast is deleted, writes succeed again within a deadline without a restart, SIGTERM
//! exits 0 without a word about a poisoned database, and a restart finds every
//! acknowledged key. Mounting needs root (tests run as root here and in CI); without it
//! the test says why and skips.

mod member;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use beacon_testkit::TempDir;
use member::Member;

/// The tmpfs: small enough to fill in a moment, large enough for a fresh member.
const TMPFS_SIZE: &str = "size=8m";
/// Keys written before the disk fills.
const KEYS_BEFORE: usize = 20;
/// How many writes may still find room (fjall frees pages when it re-opens) before one
/// must fail.
const WRITES_UNTIL_FULL_MAX: usize = 20;
/// How soon after space is back a write must succeed: the log store retries every
/// 500 ms, and a request waits up to etcd's request timeout.
const RESUME_DEADLINE: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    mount_point: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            mount_point: at.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount_point).status();
    }
}

/// Appends to `path` until the file system is full; returns how many bytes it took.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("ballast");
    let chunk = vec![0x5a_u8; 64 << 10];
    let mut written = 0;
    // Bounded by the tmpfs size: 8 MiB in 64 KiB chunks, with room to spare.
    for _ in 0..1024 {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.flush();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_a_full_disk_without_a_restart() {
    let temp = TempDir::new("disk-full").expect("temp dir");
    let tmpfs = match Tmpfs::mount(&temp.path().join("mnt")) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED writes_resume_after_a_full_disk_without_a_restart: cannot mount a tmpfs (needs root): {why}");
            return;
        }
    };
    let data = tmpfs.mount_point.join("data");
    let ballast = tmpfs.mount_point.join("ballast");
    let mut m = Member::new(&data, &temp.path().join("log"));
    // Short timeouts: a request on the full disk fails after 5 s + 2 election timeouts.
    let timing = ["--heartbeat-interval", "50", "--election-timeout", "500"];
    m.start_ready(&timing);
    let base = m.client_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut acked = Vec::new();
    for i in 0..KEYS_BEFORE {
        let (status, _) = member::put(&http, &base, &format!("before/{i}"), "v").await;
        assert_eq!(status, 201);
        acked.push(format!("before/{i}"));
    }

    // Fill the disk, and fill it again after each write that still found room.
    assert!(fill(&ballast) > 0, "the ballast took some space");
    let mut failure = None;
    for i in 0..WRITES_UNTIL_FULL_MAX {
        let key = format!("full/{i}");
        let (status, body) = member::put(&http, &base, &key, &"x".repeat(4096)).await;
        if status == 201 {
            acked.push(key);
            fill(&ballast);
            continue;
        }
        failure = Some((status, body));
        break;
    }
    let (status, body) = failure.expect("a write failed on the full disk");
    // etcd's answer to a proposal that did not commit in time.
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["errorCode"], 300, "{body}");
    assert!(
        body["cause"]
            .as_str()
            .is_some_and(|c| c.contains("request timed out")),
        "{body}"
    );

    // Space is back: writes go through again, in the same process.
    let pid = m.pid();
    std::fs::remove_file(&ballast).expect("rm ballast");
    let started = Instant::now();
    loop {
        let (status, _) = member::put(&http, &base, "after", "back").await;
        if status == 201 {
            acked.push("after".to_string());
            break;
        }
        assert!(
            started.elapsed() < RESUME_DEADLINE,
            "writes did not resume within {RESUME_DEADLINE:?} (last status {status}):\n{}",
            m.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(m.pid(), pid, "no restart");

    let status = m.terminate(STOP_TIMEOUT);
    let log = m.log_text();
    assert!(status.success(), "SIGTERM exits 0, got {status}:\n{log}");
    assert!(
        !log.to_lowercase().contains("poisoned"),
        "the log mentions a poisoned lock or database:\n{log}"
    );

    m.start_ready(&timing);
    for key in &acked {
        assert!(
            member::value(&http, &m.client_url(), key).await.is_some(),
            "acknowledged {key} lost"
        );
    }
    drop(m);
    drop(tmpfs);
}
