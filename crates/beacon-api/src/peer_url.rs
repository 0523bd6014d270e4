//! Peer URLs as etcd accepts them in the members API (`types.NewURLs`): shared by the
//! server, which refuses bad ones, and the client, which checks before sending.

/// One URL as `types.NewURLs` accepts it: trimmed, http(s) or unix(s), `host:port`,
/// no path; the error is etcd's message.
pub fn check(url: &str) -> Result<String, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("URL scheme must be http, https, unix, or unixs: {url}"))?;
    if !["http", "https", "unix", "unixs"].contains(&scheme) {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {url}"
        ));
    }
    let (host, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let has_port = match host.rsplit_once(':') {
        Some((h, _)) => !h.is_empty() || host.starts_with('['),
        None => false,
    };
    if !has_port || host.contains('@') {
        return Err(format!(
            "URL address does not have the form \"host:port\": {url}"
        ));
    }
    if !path.is_empty() && !path.starts_with('?') && !path.starts_with('#') {
        return Err(format!("URL must not contain a path: {url}"));
    }
    Ok(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_and_refuses_as_etcd_does() {
        assert_eq!(
            check(" http://127.0.0.1:2380 ").unwrap(),
            "http://127.0.0.1:2380"
        );
        assert_eq!(check("https://[::1]:2380").unwrap(), "https://[::1]:2380");
        assert_eq!(
            check("notaurl").unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: notaurl"
        );
        assert_eq!(
            check("http://127.0.0.1").unwrap_err(),
            "URL address does not have the form \"host:port\": http://127.0.0.1"
        );
        assert_eq!(
            check("http://127.0.0.1:1/p").unwrap_err(),
            "URL must not contain a path: http://127.0.0.1:1/p"
        );
    }
}
