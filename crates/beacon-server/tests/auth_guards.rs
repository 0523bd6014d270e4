//! The calls etcd 3.4.23 served to anyone while auth is on, and that etcd's security
//! release 3.4.45 guards: Compact, Status, MoveLeader and alarm changes are root's;
//! alarm and member listings, lease grants, revokes and TTL queries need a user; a
//! lease's TTL with its keys, the lease list and a keep-alive need the right to read
//! (or renew: write) the keys attached. Beacon guards them as 3.4.45 does. Each
//! command runs against etcd 3.4.23 and Beacon: etcd's answer shows the hole, Beacon's
//! the guard, in etcd's words. (etcdctl's `alarm disarm` changes nothing when no alarm
//! is raised, so a raw call raises one.)

use beacon_testkit::ServerProcess;

mod support;

use support::etcdctl_v3 as ctl;

const ROOT: [&str; 2] = ["--user", "root:rootpw"];
const ALICE: [&str; 2] = ["--user", "alice:alicepw"];

/// Users root and alice (who may read and write `/a/`), a lease of root's holding
/// `/secret`, auth on. Answers the lease's id.
async fn set_up(server: &ServerProcess) -> String {
    for args in [
        vec!["user", "add", "root:rootpw"],
        vec!["user", "add", "alice:alicepw"],
        vec!["role", "add", "a"],
        vec![
            "role",
            "grant-permission",
            "a",
            "readwrite",
            "/a/",
            "--prefix",
        ],
        vec!["user", "grant-role", "alice", "a"],
        vec!["auth", "enable"],
    ] {
        let out = ctl(server, &args).await;
        assert!(out.contains("-> 0 |"), "{out}");
    }
    let url = server.client_url().replace("http://", "");
    let granted = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([format!("--endpoints={url}"), "--user=root:rootpw".into()])
        .args(["lease", "grant", "600"])
        .output()
        .expect("etcdctl runs");
    let text = String::from_utf8_lossy(&granted.stdout);
    // "lease 694d7a... granted with TTL(600s)"
    let id = text.split(' ').nth(1).expect("a lease id").to_string();
    let put = ctl(
        server,
        &[&ROOT[..], &["put", "/secret", "s", "--lease", id.as_str()]].concat(),
    )
    .await;
    assert!(put.contains("-> 0 |"), "{put}");
    id
}

/// A NOSPACE alarm raised by alice over gRPC (etcd 3.4.23 raises it; it is root's
/// since 3.4.45), answered as etcdctl's lines are.
async fn raise_alarm_as_alice(server: &ServerProcess) -> String {
    use beacon_proto::etcdserverpb::alarm_request::AlarmAction;
    use beacon_proto::etcdserverpb::auth_client::AuthClient;
    use beacon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use beacon_proto::etcdserverpb::{AlarmRequest, AlarmType, AuthenticateRequest};
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let token = AuthClient::new(channel.clone())
        .authenticate(AuthenticateRequest {
            name: "alice".into(),
            password: "alicepw".into(),
        })
        .await
        .expect("alice logs in")
        .into_inner()
        .token;
    let raise = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: 0,
        alarm: AlarmType::Nospace as i32,
    };
    let answer = MaintenanceClient::new(channel)
        .alarm(beacon_testkit::with_token(&token, raise))
        .await;
    match answer {
        Ok(_) => "alarm activate -> 0 |".to_string(),
        Err(status) => format!(
            "alarm activate -> {:?} | {}",
            status.code(),
            status.message()
        ),
    }
}

/// One guarded call: `who` (empty: nobody) runs `args`.
struct Guarded {
    who: &'static [&'static str],
    args: &'static [&'static str],
    /// What Beacon (as etcd 3.4.45) answers instead of serving it.
    refusal: &'static str,
}

const DENIED: &str = "etcdserver: permission denied";
const NOBODY: &str = "etcdserver: user name is empty";

const GUARDED: &[Guarded] = &[
    Guarded {
        who: &ALICE,
        args: &["compaction", "1"],
        refusal: DENIED,
    },
    Guarded {
        who: &[],
        args: &["alarm", "list"],
        refusal: NOBODY,
    },
    Guarded {
        who: &ALICE,
        args: &["endpoint", "status"],
        refusal: DENIED,
    },
    Guarded {
        who: &ALICE,
        args: &["move-leader", "1"],
        refusal: DENIED,
    },
    Guarded {
        who: &[],
        args: &["member", "list"],
        refusal: NOBODY,
    },
    Guarded {
        who: &[],
        args: &["lease", "grant", "60"],
        refusal: NOBODY,
    },
    Guarded {
        who: &ALICE,
        args: &["lease", "list"],
        refusal: DENIED,
    },
];

#[tokio::test]
async fn calls_etcd_3_4_23_served_to_anyone_are_guarded_as_in_3_4_45() {
    let Some((etcd, beacon)) = support::told_by_both(async |server: &ServerProcess| {
        let lease = set_up(server).await;
        let lease = lease.as_str();
        let mut out = Vec::new();
        for g in GUARDED {
            out.push(ctl(server, &[g.who, g.args].concat()).await);
        }
        // The lease's keys: alice may not read /secret, nor renew what holds it.
        for args in [
            vec!["lease", "timetolive", lease, "--keys"],
            vec!["lease", "keep-alive", "--once", lease],
        ] {
            out.push(ctl(server, &[&ALICE[..], &args].concat()).await);
        }
        // What stays allowed: root everywhere; alice's listings and her TTL query
        // without keys.
        out.push(raise_alarm_as_alice(server).await);
        for args in [
            [&ROOT[..], &["compaction", "2"]].concat(),
            [&ROOT[..], &["endpoint", "status"]].concat(),
            [&ROOT[..], &["lease", "timetolive", lease, "--keys"]].concat(),
            [&ALICE[..], &["member", "list"]].concat(),
            [&ALICE[..], &["alarm", "list"]].concat(),
            [&ALICE[..], &["lease", "timetolive", lease]].concat(),
        ] {
            out.push(ctl(server, &args).await);
        }
        out
    })
    .await
    else {
        return;
    };
    let lease_calls = [(&ALICE, DENIED), (&ALICE, DENIED), (&ALICE, DENIED)];
    let refusals = GUARDED
        .iter()
        .map(|g| g.refusal)
        .chain(lease_calls.map(|(_, r)| r));
    for (i, refusal) in refusals.enumerate() {
        assert!(
            !etcd[i].contains(refusal),
            "etcd 3.4.23 served it: {}",
            etcd[i]
        );
        assert!(
            beacon[i].contains(refusal),
            "beacon guards it: {}",
            beacon[i]
        );
        assert!(!beacon[i].contains("-> 0 |"), "{}", beacon[i]);
    }
    let allowed = GUARDED.len() + lease_calls.len();
    for (e, b) in etcd[allowed..].iter().zip(&beacon[allowed..]) {
        assert!(e.contains("-> 0 |"), "{e}");
        assert!(b.contains("-> 0 |"), "{b}");
    }
}
