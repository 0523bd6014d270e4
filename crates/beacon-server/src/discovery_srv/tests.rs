//! The cluster SRV answers make, as etcd 3.4.23's `srv.GetCluster` makes it.

use super::*;

fn own(addr: &str, scheme: &str) -> Own {
    Own {
        addr: addr.parse().unwrap(),
        scheme: scheme.to_string(),
        url: format!("{scheme}://{addr}"),
    }
}

fn record(target: &str, port: u16, addr: Result<&str, &str>) -> Resolved {
    Resolved {
        target: target.to_string(),
        port,
        addr: addr.map(|a| a.parse().unwrap()).map_err(|e| e.to_string()),
    }
}

#[test]
fn the_service_names_etcd_asks_for() {
    assert_eq!(service("https", ""), "etcd-server-ssl");
    assert_eq!(service("http", ""), "etcd-server");
    assert_eq!(service("https", "prod"), "etcd-server-ssl-prod");
    assert_eq!(service("http", "prod"), "etcd-server-prod");
}

#[test]
fn the_record_that_resolves_to_this_member_takes_its_name() {
    let records = [
        record("m1.test.domain.", 2380, Ok("127.0.0.1:2380")),
        record("m2.test.domain.", 2381, Ok("127.0.0.1:2381")),
        record("m3.test.domain.", 2382, Ok("127.0.0.1:2382")),
    ];
    let me = [own("127.0.0.1:2381", "https")];
    let found = cluster_entries("https", "etcd-server-ssl", "b", &me, &records);
    assert_eq!(
        found.unwrap(),
        [
            "0=https://m1.test.domain:2380",
            "b=https://m2.test.domain:2381",
            "1=https://m3.test.domain:2382",
        ]
    );
}

#[test]
fn a_record_that_does_not_resolve_is_skipped_unless_none_is_left() {
    let me = [own("127.0.0.1:2380", "https")];
    let records = [
        record("gone.test.domain.", 2380, Err("lookup gone: no such host")),
        record("m1.test.domain.", 2380, Ok("127.0.0.1:2380")),
    ];
    let found = cluster_entries("https", "etcd-server-ssl", "a", &me, &records);
    assert_eq!(found.unwrap(), ["a=https://m1.test.domain:2380"]);
    let found = cluster_entries("https", "etcd-server-ssl", "a", &me, &records[..1]);
    assert_eq!(found.unwrap_err(), "lookup gone: no such host");
    assert_eq!(
        cluster_entries("https", "etcd-server-ssl", "a", &me, &[]),
        Ok(vec![])
    );
}

#[test]
fn this_member_under_another_scheme_is_left_out_with_etcds_words() {
    let me = [own("127.0.0.1:2380", "http")];
    let records = [record("m1.test.domain.", 2380, Ok("127.0.0.1:2380"))];
    let found = cluster_entries("https", "etcd-server-ssl", "a", &me, &records);
    assert_eq!(
        found.unwrap_err(),
        "bootstrap at https://m1.test.domain:2380 from DNS for etcd-server-ssl has scheme \
         mismatch with expected peer http://127.0.0.1:2380"
    );
    // With another record left, the cluster is made without this member (and the start
    // then fails: it is not among the records).
    let two = [
        records[0].clone(),
        record("m2.test.domain.", 2381, Ok("127.0.0.1:2381")),
    ];
    let found = cluster_entries("https", "etcd-server-ssl", "a", &me, &two);
    assert_eq!(found.unwrap(), ["0=https://m2.test.domain:2381"]);
}

#[test]
fn an_ipv6_target_is_bracketed() {
    let records = [record("::1", 2380, Ok("[::1]:2380"))];
    let found = cluster_entries("https", "etcd-server-ssl", "a", &[], &records);
    assert_eq!(found.unwrap(), ["0=https://[::1]:2380"]);
}
