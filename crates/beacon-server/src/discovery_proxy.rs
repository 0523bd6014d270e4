//! `--discovery-proxy URL`: the HTTP proxy through which `--discovery`'s service is
//! asked, read as etcd's `newProxyFunc` reads it: a URL whose scheme starts with
//! `http`, or else the text with `http://` before it (`127.0.0.1:3128`,
//! `proxy.local:3128`). Its user and password, if any, become `Proxy-Authorization:
//! Basic`, as Go's transport sends them. The flag means nothing without `--discovery`,
//! and a bad value is told only when discovery starts, as etcd tells it.

use base64::Engine as _;
use beacon_raft::peer::HttpProxy;

/// A proxy URL, as given and as it is used.
#[derive(Clone, Debug)]
pub struct ProxyUrl {
    /// The URL as etcd logs it (`http://` added where etcd adds it).
    pub shown: String,
    pub proxy: HttpProxy,
}

/// `--discovery-proxy`'s value as a proxy; `Ok(None)` for none (empty), `Err` in etcd's
/// words.
pub fn parse(text: &str) -> Result<Option<ProxyUrl>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let quoted = crate::http::gopath::go_quote(text.as_bytes());
    let invalid = |why: String| format!("invalid proxy address {quoted}: {why}");
    // Go's url.Parse refuses a control character anywhere, with or without the prefix.
    if text.chars().any(|c| c.is_ascii_control()) {
        return Err(invalid(format!(
            "parse {quoted}: net/url: invalid control character in URL"
        )));
    }
    let has_http_scheme = text
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.to_ascii_lowercase().starts_with("http"));
    let url = if has_http_scheme {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(format!("parse {url:?}: {e}")))?;
    let (tls, default_port) = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => (false, 80),
        Some("https") => (true, 443),
        other => {
            return Err(invalid(format!(
                "proxy scheme {:?} is neither http nor https",
                other.unwrap_or_default()
            )))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(format!("parse {url:?}: no host")))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid(format!("parse {url:?}: no host")));
    }
    // Go refuses a port that is not a number in the URL as given (and then reads the
    // text with `http://` before it as a proxy named `http:`, which nothing answers).
    let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
    // (An IPv6 address without a port ends in `]`.)
    let port_text = host_port
        .rsplit_once(':')
        .filter(|_| !host_port.ends_with(']'));
    // Go takes an empty port (`p:`) for the scheme's.
    let bad_port = port_text.filter(|(_, p)| !p.is_empty() && authority.port_u16().is_none());
    if let Some((_, port)) = bad_port {
        return Err(invalid(format!(
            "parse {}: invalid port \":{port}\" after host",
            crate::http::gopath::go_quote(url.as_bytes())
        )));
    }
    let authorization = authority
        .as_str()
        .rsplit_once('@')
        .map(|(userinfo, _)| basic_authorization(userinfo))
        .transpose()
        .map_err(invalid)?;
    Ok(Some(ProxyUrl {
        shown: url.clone(),
        proxy: HttpProxy::new(
            host,
            authority.port_u16().unwrap_or(default_port),
            tls,
            authorization,
        ),
    }))
}

/// `Basic base64(user:password)` from a URL's percent-encoded user information.
fn basic_authorization(userinfo: &str) -> Result<http::HeaderValue, String> {
    let decoded = percent_encoding::percent_decode_str(userinfo)
        .decode_utf8()
        .map_err(|e| format!("the proxy's user information: {e}"))?;
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    http::HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|e| format!("the proxy's user information: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        parse(text).unwrap().expect("a proxy").shown
    }

    #[test]
    fn an_address_without_an_http_scheme_gets_one_as_etcd_gives_it() {
        assert!(parse("").unwrap().is_none());
        assert_eq!(shown("http://127.0.0.1:3128"), "http://127.0.0.1:3128");
        assert_eq!(shown("127.0.0.1:3128"), "http://127.0.0.1:3128");
        assert_eq!(shown("proxy.local:3128"), "http://proxy.local:3128");
        assert_eq!(shown("https://proxy.local"), "https://proxy.local");
        assert_eq!(shown("http://proxy.local:"), "http://proxy.local:");
    }

    #[test]
    fn credentials_become_basic_proxy_authorization() {
        let with = parse("http://al%40ice:s3cret@p:3128").unwrap().unwrap();
        let debug = format!("{:?}", with.proxy);
        let token = base64::engine::general_purpose::STANDARD.encode("al@ice:s3cret");
        assert!(debug.contains(&token), "{debug}");
    }

    #[test]
    fn what_go_cannot_parse_is_refused_in_etcds_words() {
        assert_eq!(
            parse("http://p\u{7f}:1").unwrap_err(),
            "invalid proxy address \"http://p\\x7f:1\": parse \"http://p\\x7f:1\": \
             net/url: invalid control character in URL"
        );
        assert_eq!(
            parse("http://p:port").unwrap_err(),
            "invalid proxy address \"http://p:port\": parse \"http://p:port\": invalid port \
             \":port\" after host"
        );
    }
}
