//! `register` and `discover` against a real `beacon`, through the v2 API and (`--api 3`)
//! the v3 API: instances appear, refresh, expire when their registrar dies, and leave on
//! SIGTERM.

mod support;

use support::{beacon, ctl, Background};

#[test]
fn register_refreshes_and_discover_follows() {
    let server = beacon();
    let ep = server.client_url();

    let mut discover = Background::start(&ep, &["discover", "web"]);
    // Nothing registered yet: discover prints nothing until the first instance.
    let mut a = Background::start(
        &ep,
        &[
            "register",
            "web",
            "10.0.0.1:8080",
            "--ttl",
            "2",
            "--datacenter",
            "dc1",
            "--id",
            "a",
        ],
    );
    assert_eq!(a.next_line(), "registered /services/web/dc1/a");
    assert_eq!(discover.next_line(), "+ dc1/a 10.0.0.1:8080");
    let stored = ctl(&ep, &["get", "/services/web/dc1/a"]);
    assert_eq!(
        stored.stdout,
        "{\"hostname\":\"10.0.0.1\",\"port\":\"8080\"}\n"
    );

    let mut b = Background::start(
        &ep,
        &[
            "register",
            "web",
            "10.0.0.2:9090",
            "--ttl",
            "2",
            "--id",
            "b",
        ],
    );
    assert_eq!(b.next_line(), "registered /services/web/default/b");
    assert_eq!(discover.next_line(), "+ default/b 10.0.0.2:9090");

    // Refreshes keep `a` alive well past its TTL without waking watchers.
    let created =
        json_created_index(&ctl(&ep, &["-o", "json", "get", "/services/web/dc1/a"]).stdout);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let out = ctl(&ep, &["-o", "json", "get", "/services/web/dc1/a"]);
        assert_eq!(out.code, 0, "registration expired while refreshed: {out:?}");
        assert_eq!(json_created_index(&out.stdout), created);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // SIGTERM removes the key at once; a crash leaves it to expire.
    let (code, stderr) = b.stop("TERM");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(discover.next_line(), "- default/b");
    a.kill9();
    assert_eq!(discover.next_line(), "- dc1/a");

    // A fresh discover sees the empty set; --once exits after listing.
    assert_eq!(ctl(&ep, &["discover", "--once", "web"]).stdout, "");
    let (code, _) = discover.stop("INT");
    assert_eq!(code, 0);
}

#[test]
fn register_recreates_an_expired_key() {
    let server = beacon();
    let ep = server.client_url();
    let mut r = Background::start(&ep, &["register", "api", "h:1", "--ttl", "3", "--id", "x"]);
    assert_eq!(r.next_line(), "registered /services/api/default/x");
    // Someone deletes the key; the next refresh finds it gone and registers again.
    ctl(&ep, &["rm", "/services/api/default/x"]);
    let mut discover = Background::start(&ep, &["discover", "api"]);
    assert_eq!(discover.next_line(), "+ default/x h:1");
    let (code, _) = r.stop("INT");
    assert_eq!(code, 0);
    assert_eq!(discover.next_line(), "- default/x");
    assert_eq!(
        ctl(&ep, &["discover", "--once", "api"]).stdout,
        "",
        "deregistered on Ctrl-C"
    );
}

#[test]
fn register_and_discover_through_v3_leases() {
    let server = beacon();
    let ep = server.client_url();

    let mut discover = Background::start(&ep, &v3(&["discover", "web"]));
    let mut a = Background::start(
        &ep,
        &v3(&[
            "register",
            "web",
            "10.0.0.1:8080",
            "--ttl",
            "2",
            "--datacenter",
            "dc1",
            "--id",
            "a",
        ]),
    );
    assert_eq!(a.next_line(), "registered /services/web/dc1/a");
    assert_eq!(discover.next_line(), "+ dc1/a 10.0.0.1:8080");
    // The key is in the v3 keyspace, which v2 does not see (as in etcd 3.4).
    assert_ne!(ctl(&ep, &["get", "/services/web/dc1/a"]).code, 0);

    // Keep-alives hold `a` well past its TTL, and the listing shows it throughout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        let out = ctl(&ep, &v3(&["discover", "--once", "web"]));
        assert_eq!(out.stdout, "+ dc1/a 10.0.0.1:8080\n", "{out:?}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    let mut b = Background::start(
        &ep,
        &v3(&[
            "register",
            "web",
            "10.0.0.2:9090",
            "--ttl",
            "2",
            "--id",
            "b",
        ]),
    );
    assert_eq!(b.next_line(), "registered /services/web/default/b");
    assert_eq!(discover.next_line(), "+ default/b 10.0.0.2:9090");
    // SIGTERM revokes the lease, which deletes the key at once; a crash leaves the
    // lease to expire.
    let (code, stderr) = b.stop("TERM");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(discover.next_line(), "- default/b");
    a.kill9();
    assert_eq!(discover.next_line(), "- dc1/a");
    assert_eq!(ctl(&ep, &v3(&["discover", "--once", "web"])).stdout, "");
    let (code, _) = discover.stop("INT");
    assert_eq!(code, 0);

    // The key commands are v2's: refused, not sent to the other keyspace.
    let refused = ctl(&ep, &v3(&["get", "/services/web/dc1/a"]));
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("only register, discover and proxy"),
        "{refused:?}"
    );
}

/// `args` with `--api 3` in front.
fn v3<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--api", "3"], args].concat()
}

fn json_created_index(text: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(text).expect("json");
    v["node"]["createdIndex"].as_u64().expect("createdIndex")
}
