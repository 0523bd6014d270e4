//! v3 auth and RBAC against etcd 3.4 and Beacon: the same `etcdctl` commands (users,
//! roles, permissions, auth enable and disable, calls as users with and without the
//! permission, admin-only calls) must print the same and exit alike on both.

use std::time::Duration;

use support::etcdctl_v3 as ctl;

use beacon_testkit::ServerProcess;

mod support;

/// Sets up users and roles, turns auth on, and tries what each user may and may not do.
async fn auth_story(server: &ServerProcess) -> Vec<String> {
    let root = ["--user", "root:rootpw"];
    let alice = ["--user", "alice:alicepw"];
    let with = |who: &[&'static str; 2], args: &[&'static str]| -> Vec<&'static str> {
        who.iter().chain(args).copied().collect()
    };
    let mut out = Vec::new();
    for args in [
        // Refused before auth is on: no root user.
        vec!["auth", "enable"],
        vec!["user", "add", "root:rootpw"],
        vec!["user", "add", "root:again"],
        vec!["user", "add", "alice:alicepw"],
        vec!["role", "add", "reader"],
        vec!["role", "add", "reader"],
        vec![
            "role",
            "grant-permission",
            "reader",
            "read",
            "/a/",
            "--prefix",
        ],
        vec!["role", "grant-permission", "reader", "readwrite", "/w"],
        vec!["role", "grant-permission", "nobody", "read", "/a/"],
        vec!["user", "grant-role", "alice", "reader"],
        vec!["user", "grant-role", "alice", "nobody"],
        vec!["user", "get", "root"],
        vec!["user", "list"],
        vec!["user", "get", "alice"],
        vec!["user", "get", "nobody"],
        vec!["role", "list"],
        vec!["role", "get", "reader"],
        vec!["put", "/a/x", "1"],
        vec!["auth", "enable"],
        // Auth is on.
        vec!["put", "/a/x", "2"],
        vec!["get", "/a/x"],
        with(&root, &["put", "/a/x", "3"]),
        with(&alice, &["get", "/a/x"]),
        with(&alice, &["get", "/a/", "--prefix"]),
        with(&alice, &["get", "/a", "--prefix"]),
        with(&alice, &["put", "/a/x", "4"]),
        with(&alice, &["put", "/w", "4"]),
        with(&alice, &["get", "/w"]),
        with(&alice, &["del", "/a/x"]),
        with(&alice, &["txn"]),
        with(&["--user", "alice:wrong"], &["get", "/a/x"]),
        with(&["--user", "nobody:pw"], &["get", "/a/x"]),
        with(&alice, &["user", "list"]),
        with(&alice, &["user", "get", "alice"]),
        with(&alice, &["user", "get", "root"]),
        with(&alice, &["role", "get", "reader"]),
        with(&alice, &["role", "get", "root"]),
        with(&alice, &["user", "add", "mallory:pw"]),
        with(&alice, &["defrag"]),
        with(
            &alice,
            &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"],
        ),
        with(&root, &["defrag"]),
        with(&alice, &["lease", "grant", "60"]),
        with(
            &root,
            &["role", "revoke-permission", "reader", "/a/", "--prefix"],
        ),
        with(
            &root,
            &["role", "revoke-permission", "reader", "/a/", "--prefix"],
        ),
        with(&alice, &["get", "/a/x"]),
        with(&root, &["user", "delete", "root"]),
        with(&root, &["role", "delete", "root"]),
        with(&root, &["user", "revoke-role", "root", "root"]),
        with(&root, &["user", "revoke-role", "alice", "root"]),
        with(&root, &["user", "passwd", "alice", "--interactive=false"]),
        with(&root, &["user", "delete", "alice"]),
        with(&alice, &["get", "/a/x"]),
        with(&root, &["role", "delete", "reader"]),
        with(&root, &["auth", "disable"]),
        vec!["get", "/a/x"],
        vec!["user", "list"],
        vec!["auth", "disable"],
    ] {
        out.push(ctl(server, &args).await);
    }
    out
}

#[tokio::test]
async fn etcdctl_auth_works_as_on_etcd() {
    if let Some((want, got)) = support::told_by_both(auth_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn no_password_reaches_the_log_the_data_or_a_backup() {
    let mut beacon = ServerProcess::beacon().expect("beacon starts");
    let _ = auth_story(&beacon).await;
    // A backup too, which is a snapshot of the keyspace with its auth state.
    let backup = beacon.data_dir().join("../backup.db");
    let root = ["--user", "root:rootpw"];
    let mut args: Vec<&str> = root.to_vec();
    args.extend(["auth", "enable"]);
    let _ = ctl(&beacon, &args).await;
    let path = backup.display().to_string();
    let _ = ctl(
        &beacon,
        &["--user", "root:rootpw", "snapshot", "save", &path],
    )
    .await;
    let saved = std::fs::metadata(&backup).map_or(0, |m| m.len());
    assert!(saved > 0, "the backup was written");
    assert!(beacon.terminate(Duration::from_secs(10)), "beacon stops");
    let mut files = files_under(&beacon.data_dir());
    files.push(beacon.log_path());
    files.push(backup);
    assert!(files.len() > 3, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for secret in [&b"rootpw"[..], b"alicepw"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} holds {:?}",
                file.display(),
                String::from_utf8_lossy(secret)
            );
        }
    }
}

/// Sets up root and alice (who may read `/a/`), turns auth on, and returns root's and
/// alice's tokens.
async fn users(channel: &tonic::transport::Channel) -> (String, String) {
    use beacon_proto::authpb::Permission;
    use beacon_proto::etcdserverpb::auth_client::AuthClient;
    use beacon_proto::etcdserverpb::*;
    let mut auth = AuthClient::new(channel.clone());
    for (name, password) in [("root", "rootpw"), ("alice", "pw")] {
        auth.user_add(AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            options: None,
        })
        .await
        .expect("user added");
    }
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .expect("root granted");
    auth.role_add(AuthRoleAddRequest { name: "r".into() })
        .await
        .expect("role added");
    auth.role_grant_permission(AuthRoleGrantPermissionRequest {
        name: "r".into(),
        perm: Some(Permission {
            perm_type: 0,
            key: b"/a/".to_vec(),
            range_end: b"/a0".to_vec(),
        }),
    })
    .await
    .expect("permission granted");
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "alice".into(),
        role: "r".into(),
    })
    .await
    .expect("role granted");
    auth.auth_enable(AuthEnableRequest {})
        .await
        .expect("auth enabled");
    let login = |name: &'static str, password: &'static str| {
        let mut auth = auth.clone();
        async move {
            auth.authenticate(AuthenticateRequest {
                name: name.into(),
                password: password.into(),
            })
            .await
            .expect("logged in")
            .into_inner()
            .token
        }
    };
    (login("root", "rootpw").await, login("alice", "pw").await)
}

/// What a watch stream says next (its created, events or cancel), within a deadline;
/// `None` when it says nothing.
async fn next_said(
    answers: &mut tonic::Streaming<beacon_proto::etcdserverpb::WatchResponse>,
) -> Option<String> {
    let answer = tokio::time::timeout(Duration::from_secs(3), answers.message())
        .await
        .ok()?
        .expect("the stream holds")?;
    let events: Vec<String> = answer
        .events
        .iter()
        .filter_map(|e| e.kv.as_ref())
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    Some(format!(
        "created={} canceled={} reason={:?} events={events:?}",
        answer.created, answer.canceled, answer.cancel_reason
    ))
}

/// Watches as alice: one she may not create (refused as etcd words it), one she may;
/// then her permission is revoked and a key she watched changes.
async fn watch_story(server: &ServerProcess) -> Vec<String> {
    use beacon_proto::etcdserverpb::watch_client::WatchClient;
    use beacon_proto::etcdserverpb::watch_request::RequestUnion;
    use beacon_proto::etcdserverpb::*;
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let (root, alice) = users(&channel).await;
    let create = |key: &[u8], end: &[u8]| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec(),
            range_end: end.to_vec(),
            ..WatchCreateRequest::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    // Sent before the call opens: grpc-go sends a stream's headers with its first
    // answer, so etcd's stream opens only once it has something to say.
    tx.send(create(b"/b", b"")).await.expect("sent");
    let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut answers = WatchClient::new(channel.clone())
        .watch(beacon_testkit::with_token(&alice, requests))
        .await
        .expect("a watch stream")
        .into_inner();
    let mut out = Vec::new();
    out.push(next_said(&mut answers).await.unwrap_or_default());
    tx.send(create(b"/a/", b"/a0")).await.expect("sent");
    out.push(next_said(&mut answers).await.unwrap_or_default());
    let mut kv = beacon_proto::etcdserverpb::kv_client::KvClient::new(channel.clone());
    let mut auth = beacon_proto::etcdserverpb::auth_client::AuthClient::new(channel);
    let put = |key: &str| PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    };
    kv.put(beacon_testkit::with_token(&root, put("/a/1")))
        .await
        .expect("put");
    out.push(next_said(&mut answers).await.unwrap_or_default());
    auth.user_revoke_role(beacon_testkit::with_token(
        &root,
        AuthUserRevokeRoleRequest {
            name: "alice".into(),
            role: "r".into(),
        },
    ))
    .await
    .expect("revoked");
    kv.put(beacon_testkit::with_token(&root, put("/a/2")))
        .await
        .expect("put");
    out.push(
        next_said(&mut answers)
            .await
            .unwrap_or_else(|| "nothing".into()),
    );
    out
}

#[tokio::test]
async fn watches_are_checked_at_creation_as_etcd_and_after_a_revoke_unlike_etcd() {
    let Some((etcd, beacon)) = support::told_by_both(watch_story).await else {
        return;
    };
    let refused_create = r#"created=true canceled=true reason="rpc error: code = PermissionDenied desc = etcdserver: permission denied" events=[]"#;
    let created = r#"created=true canceled=false reason="" events=[]"#;
    let seen = r#"created=false canceled=false reason="" events=["/a/1"]"#;
    assert_eq!(etcd[..3], [refused_create, created, seen]);
    assert_eq!(beacon[..3], etcd[..3]);
    // etcd goes on sending a watcher what its user may no longer read...
    assert_eq!(
        etcd[3],
        r#"created=false canceled=false reason="" events=["/a/2"]"#
    );
    // ...Beacon cancels it first, with the reason a refused creation gets.
    assert_eq!(
        beacon[3],
        r#"created=false canceled=true reason="rpc error: code = PermissionDenied desc = etcdserver: permission denied" events=[]"#
    );
}

/// `jwt` tokens: the same commands as users, on servers started with etcd's
/// `--auth-token jwt,...` and an ES256 key pair.
async fn jwt_story(server: &ServerProcess) -> Vec<String> {
    let alice = ["--user", "alice:pw"];
    let root = ["--user", "root:rootpw"];
    let with = |who: &[&'static str; 2], args: &[&'static str]| -> Vec<&'static str> {
        who.iter().chain(args).copied().collect()
    };
    let mut out = Vec::new();
    for args in [
        vec!["user", "add", "root:rootpw"],
        vec!["user", "grant-role", "root", "root"],
        vec!["user", "add", "alice:pw"],
        vec!["role", "add", "r"],
        vec![
            "role",
            "grant-permission",
            "r",
            "readwrite",
            "/a/",
            "--prefix",
        ],
        vec!["user", "grant-role", "alice", "r"],
        vec!["auth", "enable"],
        with(&alice, &["put", "/a/1", "x"]),
        with(&alice, &["get", "/a/1"]),
        with(&alice, &["put", "/b", "x"]),
        with(&["--user", "alice:wrong"], &["get", "/a/1"]),
        with(&root, &["user", "list"]),
        with(&root, &["auth", "disable"]),
    ] {
        out.push(ctl(server, &args).await);
    }
    out
}

#[tokio::test]
async fn jwt_tokens_work_as_on_etcd() {
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    let keys = beacon_testkit::TempDir::new("jwt-keys").expect("a temp dir");
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a key");
    let (private, public) = (keys.path().join("jwt.key"), keys.path().join("jwt.pub"));
    std::fs::write(&private, pair.serialize_pem()).expect("written");
    std::fs::write(&public, pair.public_key_pem()).expect("written");
    let flag = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl=10m",
        public.display(),
        private.display()
    );
    let start = |kind, bin| {
        let https = beacon_testkit::Https::default();
        ServerProcess::start_https(kind, bin, https, &[flag.as_str()]).expect("starts")
    };
    let etcd = start(beacon_testkit::ServerKind::Etcd, beacon_testkit::etcd_bin());
    let beacon = start(
        beacon_testkit::ServerKind::Beacon,
        beacon_testkit::beacon_bin(),
    );
    let (want, got) = (jwt_story(&etcd).await, jwt_story(&beacon).await);
    beacon_testkit::assert_same_answers(&want, &got);
    assert!(got[8].contains("/a/1"), "{got:?}");
}
