//! v2 auth through the handlers, without a network: what reaches the store (a hash,
//! never the password) and who may then read and write keys. etcd's exact answers
//! are pinned against etcd itself by `tests/v2_auth.rs`.

use base64::Engine as _;
use http::{Request, StatusCode};

use super::{harness, Harness, Reply};
use crate::consensus::Consensus as _;

const PASSWORD: &str = "clear-text-password";

impl Harness {
    /// A request with a JSON body, as `user:password` when `credentials` are given.
    async fn as_user(&self, method: &str, uri: &str, credentials: &str, body: &str) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if !credentials.is_empty() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            req = req.header("authorization", format!("Basic {encoded}"));
        }
        if body.contains('=') && !body.starts_with('{') {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        self.send(req.body(body.to_string().into()).expect("request"))
            .await
    }
}

#[tokio::test]
async fn the_store_holds_a_hash_and_never_the_password() {
    let h = harness();
    let root = format!(r#"{{"user":"root","password":"{PASSWORD}"}}"#);
    let created = h.as_user("PUT", "/v2/auth/users/root", "", &root).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(!created.body.contains(PASSWORD));
    let saved = h.consensus.store().read().unwrap().snapshot_view().save();
    let saved = String::from_utf8_lossy(&saved);
    assert!(!saved.contains(PASSWORD));
    assert!(saved.contains("$2a$10$"), "the hash is kept: {saved}");
}

#[tokio::test]
async fn with_auth_on_keys_need_a_role_that_covers_them() {
    let h = harness();
    let root = format!(r#"{{"user":"root","password":"{PASSWORD}"}}"#);
    let as_root = format!("root:{PASSWORD}");
    h.as_user("PUT", "/v2/auth/users/root", "", &root).await;
    let role = r#"{"role":"app","permissions":{"kv":{"read":["/app/*"],"write":["/app/*"]}}}"#;
    h.as_user("PUT", "/v2/auth/roles/app", "", role).await;
    let user = r#"{"user":"svc","password":"s","roles":["app"]}"#;
    h.as_user("PUT", "/v2/auth/users/svc", "", user).await;
    assert_eq!(
        h.as_user("PUT", "/v2/auth/enable", "", "").await.status,
        StatusCode::OK
    );
    let denied = StatusCode::UNAUTHORIZED;
    // The default guest role may do anything below the root, but never manage.
    for (method, uri, who, body, want) in [
        ("PUT", "/v2/keys/open", "", "value=1", StatusCode::CREATED),
        ("GET", "/v2/auth/users", "", "", denied),
    ] {
        assert_eq!(
            h.as_user(method, uri, who, body).await.status,
            want,
            "{uri}"
        );
    }
    let revoke = r#"{"role":"guest","revoke":{"kv":{"write":["/*"]}}}"#;
    h.as_user("PUT", "/v2/auth/roles/guest", &as_root, revoke)
        .await;
    let refused = h.as_user("PUT", "/v2/keys/app/a", "", "value=1").await;
    assert_eq!(refused.status, denied);
    assert!(
        refused.body.contains(r#""errorCode":110"#),
        "{}",
        refused.body
    );
    for (uri, who, want) in [
        ("/v2/keys/app/a", "svc:s", StatusCode::CREATED),
        ("/v2/keys/other", "svc:s", denied),
        ("/v2/keys/app/a", "svc:wrong", denied),
        ("/v2/keys/other", as_root.as_str(), StatusCode::CREATED),
    ] {
        let got = h.as_user("PUT", uri, who, "value=1").await.status;
        assert_eq!(got, want, "{uri} as {who}");
    }
}
