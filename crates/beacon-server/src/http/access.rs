//! etcd's access controller in front of its HTTP handlers (v2, `/version`, the JSON
//! gateway; not gRPC, not the metrics URLs): `--host-whitelist` refuses a plain-HTTP
//! request whose Host is not listed (DNS rebinding, CVE-2018-5702) with 421, and
//! `--cors` says which origins the CORS headers name.

use axum::response::Response;
use http::header::HeaderValue;
use http::StatusCode;

use super::go_error;
use super::gopath::go_quote;

/// `--cors` and `--host-whitelist`, as etcd reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessControl {
    /// The origins CORS headers name; `None`: any (`*`, etcd's default).
    pub origins: Option<Vec<String>>,
    /// The hostnames plain-HTTP requests may name; `None`: any (`*`, the default).
    pub hosts: Option<Vec<String>>,
}

/// In a request's extensions when its connection is TLS: etcd checks the Host of
/// plain-HTTP requests only.
#[derive(Clone, Copy, Debug)]
pub struct Secure;

impl AccessControl {
    /// `--cors`: `*`, or URLs (checked as etcd's `types.NewURLs` checks them: a scheme
    /// of http, https, unix or unixs, `host:port`, no path), comma-separated.
    pub fn parse_origins(flag: &str) -> Result<Option<Vec<String>>, String> {
        if flag == "*" {
            return Ok(None);
        }
        let origins = flag.split(',').map(|origin| {
            let origin = origin.trim();
            // Unix sockets are no origin Beacon serves, but etcd takes them here.
            let checked = match origin.split_once("://") {
                Some(("unix" | "unixs", rest)) => format!("http://{rest}"),
                _ => origin.to_string(),
            };
            crate::urls::parse_list("cors", &checked)?;
            Ok(origin.trim_end_matches('/').to_string())
        });
        origins.collect::<Result<_, String>>().map(Some)
    }

    /// `--host-whitelist`: hostnames, comma-separated as given (an empty one is a
    /// hostname too, so `''` refuses every request that names one, as etcd does).
    pub fn parse_hosts(flag: &str) -> Option<Vec<String>> {
        let hosts: Vec<String> = flag.split(',').map(str::to_string).collect();
        (!hosts.iter().any(|h| h == "*")).then_some(hosts)
    }

    /// etcd's refusal of a plain-HTTP request whose `host` (the Host header, or the
    /// authority of an absolute URL) names no listed hostname.
    pub fn refusal(&self, host: &str) -> Option<Response> {
        let hosts = self.hosts.as_ref()?;
        let name = hostname(host);
        if hosts.iter().any(|h| h == name) {
            return None;
        }
        tracing::warn!(
            host = %go_quote(name.as_bytes()),
            "rejecting HTTP request to prevent DNS rebinding attacks"
        );
        Some(go_error(
            StatusCode::MISDIRECTED_REQUEST,
            &misdirected(&go_quote(name.as_bytes())),
        ))
    }

    /// The origin CORS headers should name for a request from `origin`, if any.
    pub fn cors_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let Some(origins) = &self.origins else {
            return Some(HeaderValue::from_static("*"));
        };
        let origin = origin.map_or(&b""[..], HeaderValue::as_bytes);
        origins
            .iter()
            .any(|o| o.as_bytes() == origin)
            .then(|| HeaderValue::from_bytes(origin).expect("it came as a header value"))
    }
}

/// Go's `net.SplitHostPort(host)`'s host, or `host` itself when it does not split
/// (etcd's `httputil.GetHostname`).
fn hostname(host: &str) -> &str {
    let Some((name, _port)) = host.rsplit_once(':') else {
        return host;
    };
    match name.strip_prefix('[') {
        Some(bracketed) => match bracketed.strip_suffix(']') {
            Some(v6) if !v6.contains(['[', ']']) => v6,
            _ => host,
        },
        None if name.contains([':', '[', ']']) => host,
        None => name,
    }
}

/// The body of etcd's 421, naming the refused `host` (already Go-quoted).
fn misdirected(quoted_host: &str) -> String {
    format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {quoted_host}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks \
         (CVE-2018-5702).\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_split_as_go_splits_them() {
        assert_eq!(hostname("example.com:2379"), "example.com");
        assert_eq!(hostname("example.com"), "example.com");
        assert_eq!(hostname("[::1]:80"), "::1");
        assert_eq!(hostname("[::1]"), "[::1]");
        assert_eq!(hostname("::1"), "::1");
        assert_eq!(hostname("a:b:c"), "a:b:c");
        assert_eq!(hostname("example.com:"), "example.com");
        assert_eq!(hostname(""), "");
    }

    #[test]
    fn flags_read_as_etcd_reads_them() {
        assert_eq!(AccessControl::parse_origins("*"), Ok(None));
        assert_eq!(
            AccessControl::parse_origins("http://a.com:1 , https://b.org:8"),
            Ok(Some(vec![
                "http://a.com:1".into(),
                "https://b.org:8".into()
            ]))
        );
        for refused in [
            "",
            "http://a.com",
            "*,http://a.com:1",
            "http://a:1,",
            "ftp://a:1",
        ] {
            assert!(AccessControl::parse_origins(refused).is_err(), "{refused}");
        }
        assert!(AccessControl::parse_origins("unix://a:1").is_ok());
        assert_eq!(AccessControl::parse_hosts("*"), None);
        assert_eq!(AccessControl::parse_hosts("a,*"), None);
        assert_eq!(AccessControl::parse_hosts(""), Some(vec![String::new()]));
    }

    #[test]
    fn a_listed_host_passes_and_others_get_421() {
        let access = AccessControl {
            hosts: AccessControl::parse_hosts("example.com,127.0.0.1"),
            ..AccessControl::default()
        };
        assert!(access.refusal("127.0.0.1:2379").is_none());
        assert!(access.refusal("example.com").is_none());
        let refused = access.refusal("evil.com:2379").expect("refused");
        assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
        assert!(AccessControl::default().refusal("evil.com").is_none());
    }

    #[test]
    fn cors_names_the_origin_only_when_listed() {
        let value = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(AccessControl::default().cors_origin(None), Some(value("*")));
        let listed = AccessControl {
            origins: Some(vec!["http://a.com:1".into()]),
            ..AccessControl::default()
        };
        let a = value("http://a.com:1");
        assert_eq!(listed.cors_origin(Some(&a)), Some(a.clone()));
        assert_eq!(listed.cors_origin(Some(&value("http://b.com:1"))), None);
        assert_eq!(listed.cors_origin(None), None);
    }
}
