use super::*;

#[test]
fn go_cipher_suite_names() {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        go_cipher_suites(&names(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])).unwrap(),
        vec![rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
    );
    let unknown = go_cipher_suites(&names(&["FOO"])).unwrap_err();
    assert_eq!(unknown.to_string(), "unexpected TLS cipher suite \"FOO\"");
    // Known to Go, absent from rustls: nothing left to negotiate.
    assert!(go_cipher_suites(&names(&["TLS_RSA_WITH_AES_128_CBC_SHA"])).is_err());
}

#[test]
fn self_cert_is_made_once_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("fixtures/client");
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    let info = self_cert(&fixtures, &hosts).unwrap();
    assert!(info.self_signed);
    let first = std::fs::read(info.cert_file.as_ref().unwrap()).unwrap();
    let again = self_cert(&fixtures, &hosts).unwrap();
    assert_eq!(std::fs::read(again.cert_file.unwrap()).unwrap(), first);
    info.server_config().unwrap();
    info.client_config(&[b"h2"]).unwrap();
    let cert = pem::certs(info.cert_file.as_ref().unwrap()).unwrap();
    let (ips, names) = subject_alt_names(&cert[0]);
    assert_eq!(ips, vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(names, vec!["localhost".to_string()]);
    assert!(identity::valid_for_host(&cert[0], "localhost"));
    assert!(!identity::valid_for_host(&cert[0], "example.com"));
}

#[test]
fn refusals_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let info = TlsInfo {
        cert_file: Some(empty.clone()),
        key_file: Some(empty.clone()),
        ..TlsInfo::default()
    };
    let e = info.server_config().unwrap_err().to_string();
    assert!(
        e.contains("empty.pem") && e.contains("no certificate"),
        "{e}"
    );
    let missing = TlsInfo {
        cert_file: Some(dir.path().join("nope.pem")),
        key_file: Some(empty),
        ..TlsInfo::default()
    };
    let e = missing.server_config().unwrap_err().to_string();
    assert!(e.contains("reading") && e.contains("nope.pem"), "{e}");
    let no_ca = TlsInfo {
        client_cert_auth: true,
        ..missing
    };
    assert!(no_ca.server_config().is_err());
}

/// A handshake over an in-memory pipe between a server of `server` and a client of
/// `client`; what the client's side of it said.
fn handshake(server: &TlsInfo, client: &TlsInfo) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let acceptor = Acceptor::new(server.server_config().unwrap(), false);
    let connector = Connector::new(client.client_config(&[b"h2"]).unwrap());
    runtime.block_on(async {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let remote = "127.0.0.1:1".parse().unwrap();
        // Both ends kept until both are done: a side that finished first and closed
        // would break the other's last flight.
        let (served, dialed) = tokio::join!(
            acceptor.accept(a, remote),
            connector.connect("127.0.0.1", b)
        );
        match (dialed, served) {
            (Ok(_), Ok(_)) => Ok(()),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        }
    })
}

#[test]
fn allowed_common_name_is_checked_both_ways() {
    let pki = beacon_testkit::Pki::new().unwrap();
    let pair = |p: &beacon_testkit::PemPair, cn: Option<&str>| TlsInfo {
        cert_file: Some(p.cert.clone()),
        key_file: Some(p.key.clone()),
        trusted_ca_file: Some(pki.ca.clone()),
        client_cert_auth: true,
        allowed_cn: cn.map(str::to_owned),
        ..TlsInfo::default()
    };
    // The server pair's common name is "server", the client's "root".
    let plain = handshake(&pair(&pki.server, None), &pair(&pki.client, None));
    assert!(plain.is_ok(), "{plain:?}");
    assert!(handshake(&pair(&pki.server, Some("root")), &pair(&pki.client, None)).is_ok());
    let refused = handshake(&pair(&pki.server, Some("other")), &pair(&pki.client, None));
    assert!(
        refused.is_err(),
        "the server took a client it does not allow"
    );
    let refused = handshake(&pair(&pki.server, None), &pair(&pki.client, Some("other")));
    let e = refused.expect_err("the client took a server it does not allow");
    assert!(e.contains("CommonName authentication failed"), "{e}");
    let revoked = TlsInfo {
        crl_file: Some(pki.crl.clone()),
        ..pair(&pki.server, None)
    };
    assert!(handshake(&revoked, &pair(&pki.revoked, None)).is_err());
    assert!(handshake(&revoked, &pair(&pki.client, None)).is_ok());
}
