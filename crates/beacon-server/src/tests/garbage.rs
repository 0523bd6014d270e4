//! Bad input never panics and always gets an HTTP answer: thousands of seeded random
//! requests (odd methods, escapes, dot segments, unknown and malformed parameters,
//! random bodies) go through the router; every JSON answer parses, and the store
//! still serves afterwards. A failure prints the seed; `BEACON_GARBAGE_SEED` replays.

use std::time::Duration;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use beacon_testkit::SeededRng;

use super::harness;

const REQUESTS: usize = 3_000;

const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"];
const SEGMENTS: &[&str] = &[
    "a",
    "b",
    "_hidden",
    "..",
    ".",
    "",
    "%2F",
    "%zz",
    "%",
    "caf%C3%A9",
    "%FF",
    "x y",
    "00000000000000000001",
];
const PARAMS: &[&str] = &[
    "value",
    "ttl",
    "dir",
    "prevExist",
    "prevValue",
    "prevIndex",
    "refresh",
    "recursive",
    "sorted",
    "quorum",
    "wait",
    "waitIndex",
    "stream",
    "noValueOnSuccess",
    "bogus",
];
const VALUES: &[&str] = &[
    "",
    "1",
    "0",
    "true",
    "false",
    "T",
    "yes",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "abc",
    "%zz",
    "a+b",
    "1.5",
    "%00",
];

fn random_request(rng: &mut SeededRng) -> (String, String, String) {
    let method = rng.pick(METHODS).to_string();
    let prefix = rng.pick(&[
        "/v2/keys",
        "/v2/keys/",
        "/v2/stats/store",
        "/v2/members",
        "/version",
        "/nope",
        "/v2/keys//",
    ]);
    let mut path = prefix.to_string();
    for _ in 0..rng.next_u64() % 4 {
        path.push('/');
        path.push_str(rng.pick(SEGMENTS));
    }
    let mut query = Vec::new();
    let mut form = Vec::new();
    for _ in 0..rng.next_u64() % 5 {
        let pair = format!("{}={}", rng.pick(PARAMS), rng.pick(VALUES));
        if rng.next_u64().is_multiple_of(2) {
            query.push(pair);
        } else {
            form.push(pair);
        }
    }
    if rng.next_u64().is_multiple_of(10) {
        query.push(rng.pick(&[";", "&&", "=", "a=%"]).to_string());
    }
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    (method, uri, form.join("&"))
}

#[tokio::test]
async fn random_requests_get_answers_not_panics() {
    let seed = std::env::var("BEACON_GARBAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01u64);
    println!(
        "seed {seed} (replay: BEACON_GARBAGE_SEED={seed} cargo test -p beacon-server garbage)"
    );
    let h = harness();
    let mut rng = SeededRng::new(seed);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..REQUESTS {
        let (method, uri, form) = random_request(&mut rng);
        let mut req = Request::builder().method(method.as_str()).uri(&uri);
        if !rng.next_u64().is_multiple_of(4) {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let Ok(req) = req.body(Body::from(form.clone())) else {
            continue;
        };
        let resp = h.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        assert!(
            (200..600).contains(&status),
            "#{i} seed {seed}: {method} {uri} [{form}] -> {status}"
        );
        *statuses.entry(status).or_default() += 1;
        let json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        // A successful watch waits for an event; its body is not read here.
        let Ok(body) =
            tokio::time::timeout(Duration::from_millis(200), resp.into_body().collect()).await
        else {
            continue;
        };
        let bytes = body.expect("body").to_bytes();
        if json && !bytes.is_empty() {
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                assert!(
                    serde_json::from_slice::<serde_json::Value>(line).is_ok(),
                    "#{i} seed {seed}: {method} {uri} [{form}] -> {status} with bad JSON {}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
    println!("statuses: {statuses:?}");
    // The generator must reach the store, not only the parsers.
    for wanted in [200, 201, 400, 404] {
        assert!(
            statuses.contains_key(&wanted),
            "no {wanted} among {statuses:?}"
        );
    }
    let after = h.call("PUT", "/v2/keys/still/works", "value=yes").await;
    assert_eq!(after.status, 201, "{}", after.body);
}
