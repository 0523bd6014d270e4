//! `etcdctl lock` and `etcdctl elect` against etcd 3.4 and Beacon: etcdctl runs etcd's
//! concurrency recipes itself, over KV, Lease and Watch (not the Lock and Election
//! services), so these pin that those services together behave for its recipes as
//! etcd's do. The same commands must print the same and exit alike, once the lease ids
//! in the keys (each server's own) are blanked. A story moves on once a process printed
//! what it waits for, or the keyspace shows a waiter's key, within a deadline.

use std::process::Stdio;
use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::RangeRequest;
use beacon_testkit::ServerProcess;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tonic::transport::Channel;

mod support;

/// How long a story waits for a process to print or exit, or for a key.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a process that must keep waiting is watched not to exit.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// One `etcdctl` process and the lines it printed.
struct Ctl {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Ctl {
    fn start(server: &ServerProcess, args: &[&str]) -> Ctl {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", server.client_url()))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("etcdctl starts");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (stream, out) in [
            (
                Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                "",
            ),
            (Box::new(stderr), "stderr: "),
        ] {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(format!("{out}{line}")).is_err() {
                        return;
                    }
                }
            });
        }
        Ctl { child, lines }
    }

    /// The next line it prints, with the lease ids blanked.
    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(DEADLINE, self.lines.recv())
            .await
            .expect("etcdctl printed nothing")
            .unwrap_or_else(|| "(no more output)".into());
        blank_leases(&line)
    }

    /// Whether it still runs after [`STILL_WAITING`].
    async fn still_running(&mut self) -> bool {
        tokio::time::timeout(STILL_WAITING, self.child.wait())
            .await
            .is_err()
    }

    /// Its exit status, once it exits.
    async fn exit(&mut self) -> String {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("etcdctl never exited")
            .expect("the exit status");
        format!("{:?}", status.code())
    }

    /// Stops it as a user does (SIGTERM, on which etcdctl unlocks or resigns) and
    /// answers its exit status.
    async fn stop(&mut self) -> String {
        let pid = self.child.id().expect("a running etcdctl").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().await;
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        self.exit().await
    }
}

/// `name/<hex>` with the hex (a lease id: each server chooses its own) blanked.
fn blank_leases(line: &str) -> String {
    let mut out = String::new();
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.rsplit_once('/') {
            Some((name, hex)) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                out.push_str(name);
                out.push_str("/<lease>");
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// How many keys are under `prefix`, once there are `want`.
async fn until_keys(kv: &mut KvClient<Channel>, prefix: &str, want: i64) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let range = RangeRequest {
            key: prefix.into(),
            range_end: beacon_proto::prefix_end(prefix.as_bytes()),
            count_only: true,
            ..RangeRequest::default()
        };
        let count = kv.range(range).await.expect("range").into_inner().count;
        if count == want {
            return format!("{count} key(s) under {prefix}");
        }
        assert!(
            Instant::now() < deadline,
            "{count} keys under {prefix}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lock_story(server: &ServerProcess) -> Vec<String> {
    let mut kv = KvClient::new(beacon_testkit::grpc_channel(&server.client_url()).await);
    let mut out = Vec::new();
    // A command run under the lock learns its key and the lock's revision.
    let script = r#"echo "$ETCD_LOCK_KEY" "$ETCD_LOCK_REV""#;
    let mut once = Ctl::start(server, &["lock", "lk", "--", "sh", "-c", script]);
    out.push(once.line().await);
    out.push(once.exit().await);
    out.push(until_keys(&mut kv, "lk/", 0).await);
    // Held by one etcdctl (which prints the key and its empty value), a second waits,
    // then runs its command once the first is stopped and lets go.
    let mut holder = Ctl::start(server, &["lock", "lk"]);
    out.push(holder.line().await);
    out.push(holder.line().await);
    let mut waiter = Ctl::start(server, &["lock", "lk", "echo", "got it"]);
    out.push(until_keys(&mut kv, "lk/", 2).await);
    out.push(format!("waiting: {}", waiter.still_running().await));
    out.push(holder.stop().await);
    out.push(waiter.line().await);
    out.push(waiter.exit().await);
    out.push(until_keys(&mut kv, "lk/", 0).await);
    // Refused arguments.
    let mut bare = Ctl::start(server, &["lock"]);
    out.push(bare.line().await);
    out.push(bare.exit().await);
    out
}

async fn elect_story(server: &ServerProcess) -> Vec<String> {
    let mut kv = KvClient::new(beacon_testkit::grpc_channel(&server.client_url()).await);
    let mut out = Vec::new();
    let mut observer = Ctl::start(server, &["elect", "-l", "el"]);
    let mut first = Ctl::start(server, &["elect", "el", "one"]);
    for ctl in [&mut first, &mut observer] {
        out.push(ctl.line().await);
        out.push(ctl.line().await);
    }
    let mut second = Ctl::start(server, &["elect", "el", "two"]);
    out.push(until_keys(&mut kv, "el/", 2).await);
    out.push(format!("waiting: {}", second.still_running().await));
    // The first resigns when stopped: the second leads, and the observer sees it.
    out.push(first.stop().await);
    for ctl in [&mut second, &mut observer] {
        out.push(ctl.line().await);
        out.push(ctl.line().await);
    }
    out.push(second.stop().await);
    out.push(until_keys(&mut kv, "el/", 0).await);
    out.push(observer.stop().await);
    let mut listening_with_proposal = Ctl::start(server, &["elect", "-l", "el", "x"]);
    out.push(listening_with_proposal.line().await);
    out.push(listening_with_proposal.exit().await);
    out
}

#[tokio::test]
async fn etcdctl_lock_works_as_on_etcd() {
    if let Some((want, got)) = support::told_by_both(lock_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}

#[tokio::test]
async fn etcdctl_elect_works_as_on_etcd() {
    if let Some((want, got)) = support::told_by_both(elect_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}
