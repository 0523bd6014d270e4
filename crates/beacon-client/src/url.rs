//! Building request URLs: an endpoint plus `/v2/keys` plus the key, percent-encoded.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::Url;

/// Bytes escaped in a key path; what Go's `url.URL` escapes in a path (it keeps `/`,
/// unreserved characters and sub-delimiters).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `endpoint` + `/v2/keys` + `key` (a leading `/` is added when missing).
pub(crate) fn keys_url(endpoint: &Url, key: &str) -> Url {
    let slash = if key.starts_with('/') { "" } else { "/" };
    let path = format!("/v2/keys{slash}{key}");
    with_path(endpoint, &path)
}

/// `endpoint` with its path replaced by `path` (escaped as a key path).
pub(crate) fn with_path(endpoint: &Url, path: &str) -> Url {
    let mut url = endpoint.clone();
    let base = endpoint.path().trim_end_matches('/');
    let escaped = utf8_percent_encode(path, PATH).to_string();
    url.set_path(&format!("{base}{escaped}"));
    url.set_query(None);
    url
}

/// Parses an endpoint, defaulting the scheme to `http` as etcdctl does.
pub(crate) fn parse_endpoint(text: &str) -> Option<Url> {
    let text = text.trim();
    let url = if text.contains("://") {
        Url::parse(text).ok()?
    } else {
        Url::parse(&format!("http://{text}")).ok()?
    };
    url.host_str()?;
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_like_go_paths() {
        let ep = parse_endpoint("127.0.0.1:2379").expect("endpoint");
        assert_eq!(
            keys_url(&ep, "a b/c?d#e").as_str(),
            "http://127.0.0.1:2379/v2/keys/a%20b/c%3Fd%23e"
        );
        assert_eq!(
            keys_url(&ep, "/x").as_str(),
            "http://127.0.0.1:2379/v2/keys/x"
        );
    }

    #[test]
    fn endpoints_need_a_host() {
        assert!(parse_endpoint("http://").is_none());
        assert_eq!(
            parse_endpoint("http://h:1/").map(|u| u.to_string()),
            Some("http://h:1/".to_string())
        );
    }
}
