//! beaconctl over TLS (issue 17): etcdctl's client flags, in v2's spelling
//! (`--ca-file`, `--cert-file`, `--key-file`) and v3's (`--cacert`, `--cert`, `--key`),
//! against a member whose client port asks for certificates; the v2 key commands and
//! the v3 registration and discovery through them.

mod support;

use beacon_testkit::{Https, Pki, ServerKind, ServerProcess};
use support::{ctl, Background};

fn tls_beacon(pki: &Pki) -> ServerProcess {
    let s = |p: &std::path::Path| p.to_str().expect("a UTF-8 path").to_string();
    let flags = [
        "--cert-file".to_string(),
        s(&pki.server.cert),
        "--key-file".to_string(),
        s(&pki.server.key),
        "--client-cert-auth".to_string(),
        "--trusted-ca-file".to_string(),
        s(&pki.ca),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let https = Https {
        client: true,
        peer: false,
    };
    ServerProcess::start_https(
        ServerKind::Beacon,
        beacon_testkit::beacon_bin(),
        https,
        &flags,
    )
    .expect("beacon starts with TLS")
}

#[test]
fn key_commands_and_registration_over_tls() {
    let pki = Pki::new().expect("test certificates");
    let server = tls_beacon(&pki);
    let ep = server.client_url();
    let (ca, cert, key) = (
        pki.ca.to_str().unwrap(),
        pki.client.cert.to_str().unwrap(),
        pki.client.key.to_str().unwrap(),
    );
    let v2 = ["--ca-file", ca, "--cert-file", cert, "--key-file", key];
    let with = |flags: &[&str], args: &[&str]| {
        let all: Vec<&str> = flags.iter().chain(args).copied().collect();
        ctl(&ep, &all)
    };
    assert_eq!(with(&v2, &["set", "/a", "1"]).stdout, "1\n");
    let v3_names = ["--cacert", ca, "--cert", cert, "--key", key];
    assert_eq!(with(&v3_names, &["get", "/a"]).stdout, "1\n");
    let refused = with(&["--ca-file", ca], &["get", "/a"]);
    assert_ne!(refused.code, 0, "no client certificate: {refused:?}");
    let unverified = with(&["--cert-file", cert, "--key-file", key], &["get", "/a"]);
    assert_ne!(unverified.code, 0, "an unknown server CA: {unverified:?}");

    let register: Vec<&str> = v3_names
        .iter()
        .copied()
        .chain([
            "--api",
            "3",
            "register",
            "web",
            "10.0.0.1:80",
            "--ttl",
            "5",
            "--id",
            "i1",
        ])
        .collect();
    let mut registered = Background::start(&ep, &register);
    assert_eq!(
        registered.next_line(),
        "registered /services/web/default/i1"
    );
    let discover: Vec<&str> = v3_names
        .iter()
        .copied()
        .chain(["--api", "3", "discover", "--once", "web"])
        .collect();
    assert_eq!(ctl(&ep, &discover).stdout, "+ default/i1 10.0.0.1:80\n");
}
