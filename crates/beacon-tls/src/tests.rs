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
