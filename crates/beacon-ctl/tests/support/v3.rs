//! The runner of the `etcdctl` v3 differential tests: each step through the real
//! `etcdctl` against etcd and Beacon, and the normalization of what differs between any
//! two servers (ports, member and cluster ids, Raft's term and indexes, sizes on disk,
//! and the ids each server gives its leases).

use std::process::{Command, Stdio};

use beacon_testkit::ServerProcess;
use serde_json::Value;

use super::{finish_fed, Output};

/// Runs `steps` top to bottom against a fresh etcd and a fresh Beacon; fails listing
/// every step whose normalized output differs.
pub fn assert_same_as_etcd(steps: &[Step]) {
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let beacon = super::beacon();
    // Read once: no command in a sequence changes them.
    let (mut etcd_ids, mut beacon_ids) = (Ids::of(&etcd), Ids::of(&beacon));
    let mut differences = Vec::new();
    for step in steps {
        let want = normalized(&etcd, &mut etcd_ids, step);
        if step.until.is_some() {
            assert!(
                !want.stdout.is_empty(),
                "{:?}: etcd printed nothing",
                step.args
            );
        }
        let got = normalized(&beacon, &mut beacon_ids, step);
        if want != got {
            let Step { args, stdin, .. } = step;
            differences.push(format!(
                "{args:?} stdin {stdin:?}\n  etcd:   {want:?}\n  beacon: {got:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} commands differ:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n")
    );
}

/// One `etcdctl` run: its arguments and what it reads on stdin, if anything (`txn`).
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub args: &'static [&'static str],
    pub stdin: Option<&'static str>,
    /// A command that runs until stopped (`watch`): its output up to and including the
    /// first line containing this, which it must print within [`WATCH_DEADLINE`].
    pub until: Option<&'static str>,
}

/// How long a `watch` step may take to print its last line.
pub const WATCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// `etcdctl args...` with nothing on stdin.
pub const fn run(args: &'static [&'static str]) -> Step {
    Step {
        args,
        stdin: None,
        until: None,
    }
}

/// `etcdctl txn` (non-interactive: it reads stdin) with `stdin`: compares one a line,
/// a blank line, the success requests, a blank line, the failure requests, a blank line.
pub const fn txn(args: &'static [&'static str], stdin: &'static str) -> Step {
    Step {
        args,
        stdin: Some(stdin),
        until: None,
    }
}

/// `etcdctl watch -i` fed `stdin` (kept open), read until it prints a line containing
/// `until` (or ends), then killed.
pub const fn watch_interactive(stdin: &'static str, until: &'static str) -> Step {
    Step {
        args: &["watch", "-i"],
        stdin: Some(stdin),
        until: Some(until),
    }
}

/// `etcdctl watch ...` (or anything that runs until stopped), read until it prints a
/// line containing `until` (or ends), then killed.
pub const fn watch(args: &'static [&'static str], until: &'static str) -> Step {
    Step {
        args,
        stdin: None,
        until: Some(until),
    }
}

/// `etcdctl` (v3) `step` against `server`, with what differs between servers rewritten.
/// In the arguments, `<self>` stands for the server's member id, `<peer>` for its peer
/// URL, `<lease-N>` for the N-th lease it granted and `<added-N>` for the N-th member
/// added (from 1), as the output names them.
fn normalized(server: &ServerProcess, ids: &mut Ids, step: &Step) -> Output {
    let endpoint = format!("127.0.0.1:{}", server.client_port());
    let peer = format!("http://127.0.0.1:{}", server.peer_port());
    let args: Vec<String> = step
        .args
        .iter()
        .map(|a| {
            let mut a = a
                .replace("<self>", &ids.member_hex)
                .replace("<peer>", &peer);
            for (n, lease) in ids.leases.iter().enumerate().rev() {
                a = a.replace(&format!("<lease-{}>", n + 1), &format!("{lease:x}"));
            }
            for (n, member) in ids.added.iter().enumerate().rev() {
                a = a.replace(&format!("<added-{}>", n + 1), &format!("{member:x}"));
            }
            a
        })
        .collect();
    let mut cmd = Command::new(super::etcdctl());
    for var in [
        "ETCDCTL_ENDPOINTS",
        "ETCDCTL_USER",
        "ETCDCTL_CACERT",
        "ETCDCTL_CERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(&endpoint)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = match step.until {
        Some(until) => read_until(cmd, until, step.stdin),
        None => finish_fed(cmd, step.args, step.stdin),
    };
    if step.args.first() == Some(&"lease") && step.args.get(1) == Some(&"grant") {
        ids.leases.extend(granted_lease(&out.stdout));
    }
    if step.args.first() == Some(&"member") && step.args.get(1) == Some(&"add") {
        ids.added.extend(added_member(&out.stdout));
    }
    let fix = |text: &str| {
        // Values first (json must still parse), then the ids and ports.
        let lines: Vec<String> = text
            .lines()
            .map(|l| sorted_cluster(&normalize_line(l, &endpoint)))
            .collect();
        let text = lines
            .join("\n")
            .replace(&endpoint, "<client>")
            .replace(&format!("127.0.0.1:{}", server.peer_port()), "<peer>")
            .replace(&ids.member_hex, "<member-id>")
            .replace(&ids.member.to_string(), "<member-id>")
            .replace(&ids.cluster.to_string(), "<cluster-id>")
            .replace(&format!("{:x}", ids.cluster), "<cluster-id>");
        let text = ids
            .leases
            .iter()
            .enumerate()
            .fold(text, |text, (n, lease)| {
                // etcdctl prints an id as 16 hex digits (`%016x`), zeros first.
                text.replace(&format!("{lease:016x}"), &format!("<lease-{}>", n + 1))
                    .replace(&format!("{lease:x}"), &format!("<lease-{}>", n + 1))
                    .replace(&lease.to_string(), &format!("<lease-{}>", n + 1))
            });
        ids.added
            .iter()
            .enumerate()
            .fold(text, |text, (n, member)| {
                text.replace(&format!("{member:016x}"), &format!("<added-{}>", n + 1))
                    .replace(&format!("{member:x}"), &format!("<added-{}>", n + 1))
                    .replace(&member.to_string(), &format!("<added-{}>", n + 1))
            })
    };
    Output {
        stdout: fix(&out.stdout),
        stderr: fix(&out.stderr),
        code: out.code,
    }
}

/// `member add`'s `ETCD_INITIAL_CLUSTER="a=..,b=.."` with its members sorted: etcdctl
/// lists them in id order, and an added member's id comes from the time.
fn sorted_cluster(line: &str) -> String {
    let Some(list) = line
        .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return line.to_string();
    };
    let mut members: Vec<&str> = list.split(',').collect();
    members.sort_unstable();
    format!("ETCD_INITIAL_CLUSTER=\"{}\"", members.join(","))
}

/// Fields whose values are each implementation's own: Raft's term and indexes (etcd's
/// log holds entries Beacon's does not, and the reverse) and the size on disk.
const OWN_VALUES: &[&str] = &[
    "raft_term",
    "raftTerm",
    "raftIndex",
    "raftAppliedIndex",
    "dbSize",
    "dbSizeInUse",
    "RaftTerm",
    "RaftIndex",
    "RaftAppliedIndex",
    "DBSize",
    // etcdctl's own log lines (a retry's warning): its time and its random client name.
    "ts",
    "target",
    // `endpoint health`'s time for its read.
    "took",
];

/// One output line with [`OWN_VALUES`] blanked, in whichever format it is.
fn normalize_line(line: &str, endpoint: &str) -> String {
    collapse(&own_values(line, endpoint))
}

/// Runs of spaces or dashes as one: etcdctl pads ids to 16 characters in some messages
/// (`%16x`) and sizes table columns to them, and an id may have fewer hex digits.
fn collapse(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if (c == ' ' || c == '-') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    out
}

fn own_values(line: &str, endpoint: &str) -> String {
    // simple `endpoint health`: `<endpoint> is healthy: ... took = 1.2ms`.
    if let Some((head, _)) = line.split_once(" took = ") {
        return format!("{head} took = <own>");
    }
    // json: a document on one line.
    if line.starts_with('{') || line.starts_with('[') {
        if let Ok(mut doc) = serde_json::from_str::<Value>(line) {
            blank(&mut doc);
            return doc.to_string();
        }
    }
    // fields: `"Name" : value`.
    if let Some((name, _)) = line.split_once(" : ") {
        if OWN_VALUES.contains(&name.trim_matches('"')) {
            return format!("{name} : <own>");
        }
        return line.to_string();
    }
    // simple `endpoint status`: endpoint, id, version, size, leader?, learner?, raft
    // term, raft index, applied index, errors.
    let cells: Vec<&str> = line.split(", ").collect();
    if cells.len() == 10 && cells[0] == endpoint {
        let mut cells: Vec<String> = cells.into_iter().map(str::to_string).collect();
        for i in [3, 6, 7, 8] {
            cells[i] = "<own>".into();
        }
        return cells.join(", ");
    }
    line.to_string()
}

fn blank(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if OWN_VALUES.contains(&key.as_str()) {
                    *value = Value::String("<own>".into());
                } else {
                    blank(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(blank),
        _ => {}
    }
}

/// A server's member and cluster ids: the member's as v2 reports it, the cluster's from
/// v3's own answer (v2 carries it only in a header).
struct Ids {
    member: u64,
    member_hex: String,
    cluster: u64,
    /// The leases the server granted in the sequence so far, in order.
    leases: Vec<i64>,
    /// The members `member add` added so far (ids are derived from the time), in order.
    added: Vec<u64>,
}

/// The id in `member add`'s output: `Member <hex> added to cluster <hex>`, or its json.
fn added_member(stdout: &str) -> Option<u64> {
    if let Some(hex) = stdout
        .strip_prefix("Member ")
        .and_then(|rest| rest.split_once(" added"))
        .map(|(hex, _)| hex)
    {
        return u64::from_str_radix(hex.trim(), 16).ok();
    }
    let doc: Value = serde_json::from_str(stdout.trim()).ok()?;
    doc["member"]["ID"].as_u64()
}

/// The id in `lease grant`'s output: `lease <hex> granted with TTL(..)`, or its json.
fn granted_lease(stdout: &str) -> Option<i64> {
    if let Some(hex) = stdout
        .strip_prefix("lease ")
        .and_then(|rest| rest.split_once(" granted"))
        .map(|(hex, _)| hex)
    {
        return i64::from_str_radix(hex, 16).ok();
    }
    let doc: Value = serde_json::from_str(stdout.trim()).ok()?;
    doc["ID"].as_i64()
}

impl Ids {
    fn of(server: &ServerProcess) -> Ids {
        let leader = beacon_testkit::http_get(server.client_port(), "/v2/members/leader")
            .expect("the leader");
        let member_hex = leader
            .json()
            .and_then(|j| j["id"].as_str().map(str::to_string));
        let member_hex = member_hex.expect("a member id");
        let mut cmd = Command::new(super::etcdctl());
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(format!("127.0.0.1:{}", server.client_port()))
            .args(["member", "list", "-w", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let listed = super::finish(cmd, &["member", "list"]);
        let doc: Value = serde_json::from_str(&listed.stdout).expect("member list's json");
        Ids {
            member: u64::from_str_radix(&member_hex, 16).expect("hex member id"),
            member_hex,
            cluster: doc["header"]["cluster_id"].as_u64().expect("a cluster id"),
            leases: Vec::new(),
            added: Vec::new(),
        }
    }
}

/// Runs `cmd` until it prints a line containing `until` (or ends, or [`WATCH_DEADLINE`]
/// passes), then kills it; its stdout so far is the output. `stdin`, if any, is written
/// and the pipe kept open meanwhile (`watch -i` ends at the end of its input).
fn read_until(mut cmd: Command, until: &str, stdin: Option<&str>) -> Output {
    use std::io::{BufRead, BufReader, Write};
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("etcdctl starts");
    let _input = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("piped");
        pipe.write_all(text.as_bytes())
            .expect("etcdctl reads stdin");
        pipe
    });
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let err_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // What a watch that gives up says (a compacted revision) is on stderr.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if err_tx.send(format!("stderr: {line}")).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + WATCH_DEADLINE;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let last = line.contains(until);
                lines.push(line);
                if last {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Output {
        stdout: lines.join("\n"),
        stderr: String::new(),
        code: -1,
    }
}
