//! A full disk pauses writes; it does not break the member. A real `beacon` runs on a
//! small tmpfs; a ballast file fills it, writes then fail with etcd's error; once the
//! ballast is deleted, writes succeed again within a deadline without a restart, SIGTERM
//! exits 0 without a word about a poisoned database, and a restart finds every
//! acknowledged key. Through the v2 API and through v3 (whose keyspace is written once
//! more after each applied batch, and retried the same way). Mounting needs root (tests run as root here and in CI); without it
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

/// Short timeouts: a request on the full disk fails after 5 s + 2 election timeouts.
const TIMING: [&str; 4] = ["--heartbeat-interval", "50", "--election-timeout", "500"];

/// Which API the writes go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    V2,
    V3,
}

/// Puts `key` through `api`: `Ok` when acknowledged, else the failure as text.
async fn put(
    api: Api,
    http: &reqwest::Client,
    base: &str,
    key: &str,
    value: &str,
) -> Result<(), String> {
    match api {
        Api::V2 => match member::put(http, base, key, value).await {
            (201, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
        Api::V3 => {
            use beacon_proto::etcdserverpb::{kv_client::KvClient, PutRequest};
            let channel = beacon_testkit::grpc_channel(base).await;
            let mut kv = KvClient::new(channel);
            let put = kv.put(PutRequest {
                key: key.into(),
                value: value.into(),
                ..PutRequest::default()
            });
            match tokio::time::timeout(Duration::from_secs(20), put).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(status)) => Err(format!("{:?} {}", status.code(), status.message())),
                Err(_) => Err("no answer within 20 s".to_string()),
            }
        }
    }
}

/// Whether `key` is there, read through `api`.
async fn has(api: Api, http: &reqwest::Client, base: &str, key: &str) -> bool {
    match api {
        Api::V2 => member::value(http, base, key).await.is_some(),
        Api::V3 => {
            use beacon_proto::etcdserverpb::{kv_client::KvClient, RangeRequest};
            let channel = beacon_testkit::grpc_channel(base).await;
            KvClient::new(channel)
                .range(RangeRequest {
                    key: key.into(),
                    ..RangeRequest::default()
                })
                .await
                .is_ok_and(|r| r.into_inner().count == 1)
        }
    }
}

/// A member on a tmpfs that a ballast file has filled, with a write already failed.
struct FullDisk {
    api: Api,
    member: Member,
    http: reqwest::Client,
    ballast: PathBuf,
    /// Keys acknowledged so far.
    acked: Vec<String>,
    // Declared after the member: fields drop in order, so the process is gone before
    // the unmount.
    _tmpfs: Tmpfs,
    _temp: TempDir,
}

impl FullDisk {
    /// `None` (after saying why) where a tmpfs cannot be mounted.
    async fn new(test: &str, api: Api) -> Option<FullDisk> {
        let temp = TempDir::new("disk-full").expect("temp dir");
        let tmpfs = match Tmpfs::mount(&temp.path().join("mnt")) {
            Ok(t) => t,
            Err(why) => {
                eprintln!("SKIPPED {test}: cannot mount a tmpfs (needs root): {why}");
                return None;
            }
        };
        let data = tmpfs.mount_point.join("data");
        let ballast = tmpfs.mount_point.join("ballast");
        let mut member = Member::new(&data, &temp.path().join("log"));
        member.start_ready(&TIMING);
        let base = member.client_url();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let mut acked = Vec::new();
        for i in 0..KEYS_BEFORE {
            let key = format!("before/{i}");
            put(api, &http, &base, &key, "v")
                .await
                .expect("room for it");
            acked.push(key);
        }

        // Fill the disk, and fill it again after each write that still found room.
        assert!(fill(&ballast) > 0, "the ballast took some space");
        let mut failure = None;
        for i in 0..WRITES_UNTIL_FULL_MAX {
            let key = format!("full/{i}");
            match put(api, &http, &base, &key, &"x".repeat(4096)).await {
                Ok(()) => {
                    acked.push(key);
                    fill(&ballast);
                }
                Err(why) => {
                    failure = Some(why);
                    break;
                }
            }
        }
        let failure = failure.expect("a write failed on the full disk");
        // etcd's answer to a proposal that did not commit in time.
        let expected = match api {
            Api::V2 => "500 ",
            Api::V3 => "Unavailable etcdserver: request timed out",
        };
        assert!(failure.starts_with(expected), "{failure}");
        if api == Api::V2 {
            assert!(failure.contains("\"errorCode\":300"), "{failure}");
            assert!(failure.contains("request timed out"), "{failure}");
        }
        Some(FullDisk {
            api,
            member,
            http,
            ballast,
            acked,
            _tmpfs: tmpfs,
            _temp: temp,
        })
    }

    /// SIGTERM: exit 0 and no word of a poisoned lock or database.
    fn stop_cleanly(&mut self) {
        let status = self.member.terminate(STOP_TIMEOUT);
        let log = self.member.log_text();
        assert!(status.success(), "SIGTERM exits 0, got {status}:\n{log}");
        assert!(
            !log.to_lowercase().contains("poisoned"),
            "the log mentions a poisoned lock or database:\n{log}"
        );
    }

    /// Restarts and finds every acknowledged key.
    async fn restart_with_every_ack(&mut self) {
        self.member.start_ready(&TIMING);
        let base = self.member.client_url();
        for key in &self.acked {
            assert!(
                has(self.api, &self.http, &base, key).await,
                "acknowledged {key} lost ({:?})",
                self.api
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_a_full_disk_without_a_restart() {
    writes_resume("writes_resume_after_a_full_disk_without_a_restart", Api::V2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_writes_resume_after_a_full_disk_without_a_restart() {
    writes_resume(
        "v3_writes_resume_after_a_full_disk_without_a_restart",
        Api::V3,
    )
    .await;
}

async fn writes_resume(test: &str, api: Api) {
    let Some(mut disk) = FullDisk::new(test, api).await else {
        return;
    };
    // Space is back: writes go through again, in the same process.
    let pid = disk.member.pid();
    std::fs::remove_file(&disk.ballast).expect("rm ballast");
    let base = disk.member.client_url();
    let started = Instant::now();
    loop {
        let outcome = put(api, &disk.http, &base, "after", "back").await;
        if outcome.is_ok() {
            disk.acked.push("after".to_string());
            break;
        }
        assert!(
            started.elapsed() < RESUME_DEADLINE,
            "writes did not resume within {RESUME_DEADLINE:?} (last {outcome:?}):\n{}",
            disk.member.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(disk.member.pid(), pid, "no restart");
    disk.stop_cleanly();
    disk.restart_with_every_ack().await;
}

/// A write still waiting for space must not hold up a stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_full_disk_stops_cleanly() {
    let Some(mut disk) = FullDisk::new("sigterm_on_a_full_disk_stops_cleanly", Api::V2).await
    else {
        return;
    };
    disk.stop_cleanly();
    std::fs::remove_file(&disk.ballast).expect("rm ballast");
    disk.restart_with_every_ack().await;
}
