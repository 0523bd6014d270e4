//! etcdctl 3.4's v3 commands with scheme-qualified endpoints (`--endpoints=http://...`)
//! against etcd 3.4 and Beacon. The calls that clientv3 makes on a connection of their
//! own to one endpoint (`endpoint status`, `endpoint hashkv`, `defrag`) dial it through
//! grpc-go's `passthrough` resolver, which sends `http://127.0.0.1:port` as the HTTP/2
//! `:authority`; h2 refused that with RST_STREAM PROTOCOL_ERROR until the connection
//! layer mended it (`conn::h2_authority`). The same commands must print the same shapes
//! and exit alike, once ids, sizes, indexes, terms and durations are blanked.

use std::process::Stdio;
use std::time::Duration;

use beacon_testkit::ServerProcess;
use tokio::process::Command;

mod support;

/// How long one etcdctl command may take (its own timeouts are 2 s to dial, 5 s a call).
const DEADLINE: Duration = Duration::from_secs(15);

/// Every command, as etcdctl's arguments after `--endpoints`.
const COMMANDS: &[&str] = &[
    "endpoint status",
    "endpoint status -w json",
    "endpoint status -w table",
    "endpoint status --cluster",
    "endpoint health",
    "endpoint health -w json",
    "endpoint health --cluster",
    "endpoint hashkv",
    "endpoint hashkv -w json",
    "defrag",
    "put k v",
    "get k",
    "get k -w json",
    "del k",
    "member list",
    "member list -w json",
    "alarm list",
];

/// What etcdctl prints for each of [`COMMANDS`] with `server`'s `http://` URL, and
/// its exit status, blanked.
async fn story(server: &ServerProcess) -> Vec<String> {
    let mut out = Vec::new();
    for command in COMMANDS {
        let run = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", server.client_url()))
            .args(command.split(' '))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(DEADLINE, run)
            .await
            .unwrap_or_else(|_| panic!("etcdctl {command} did not finish"))
            .expect("etcdctl runs");
        out.push(format!("$ etcdctl {command} -> {:?}", output.status.code()));
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            out.extend(text.lines().map(|line| blank(server, line)));
        }
    }
    out
}

/// `line` with what differs between two servers by design blanked: URLs (their ports),
/// the name, member and cluster ids (hex, or decimal in JSON), sizes, indexes, terms,
/// hashes and durations (every number), and a table's column widths.
fn blank(server: &ServerProcess, line: &str) -> String {
    let line = line
        .replace(&server.client_url(), "<client-url>")
        .replace(&server.peer_url(), "<peer-url>")
        .replace(&format!(", {},", server.name()), ", <name>,")
        .replace(&format!("\"{}\"", server.name()), "\"<name>\"");
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if !word.is_empty() {
            out.push_str(&blank_word(word));
            word.clear();
        }
    };
    for c in line.chars() {
        if c.is_alphanumeric() || c == '.' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        // Table cells are padded to their widest value, which differs.
        let repeated = matches!(c, ' ' | '-') && out.ends_with(c);
        if !repeated {
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn blank_word(word: &str) -> String {
    // Go prints an id with `%x`: without leading zeros, so 16 digits or a few fewer.
    let is_id = (12..=16).contains(&word.len()) && word.chars().all(|c| c.is_ascii_hexdigit());
    let number = word.trim_end_matches(|c: char| c.is_alphabetic());
    let unit = &word[number.len()..];
    let is_number = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && matches!(unit, "" | "ms" | "µs" | "s" | "ns");
    if is_id {
        "<id>".into()
    } else if is_number && word != "3.4.23" {
        "<n>".into()
    } else if matches!(word, "B" | "kB" | "MB" | "GB") {
        "<unit>".into()
    } else {
        word.into()
    }
}

#[tokio::test]
async fn etcdctl_with_http_endpoints_works_as_on_etcd() {
    if let Some((want, got)) = support::told_by_both(story).await {
        beacon_testkit::assert_same_answers(&want, &got);
        let refused = got.iter().find(|l| l.contains("PROTOCOL_ERROR"));
        assert!(refused.is_none(), "{refused:?}");
    }
}
