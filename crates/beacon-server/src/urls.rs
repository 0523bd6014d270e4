//! The URLs of etcd's flags (`--listen-client-urls` and friends): parsed and checked
//! as etcd checks them, and resolved to socket addresses for binding.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One `scheme://host:port` URL from a flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagUrl {
    /// As written, without a trailing `/`; what members and clients are shown.
    pub text: String,
    /// The host: a name or an IP (IPv6 without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// `https`: served (or dialed) with TLS.
    pub tls: bool,
}

impl FlagUrl {
    /// The address to bind: an IP literal, or `localhost` as 127.0.0.1. etcd refuses
    /// other names for binding, with the same message.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        if self.host == "localhost" {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port));
        }
        self.host
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, self.port))
            .map_err(|_| format!("expected IP in URL for binding ({})", self.text))
    }
}

/// Parses a comma-separated URL list (etcd's `types.NewURLs`): http and https.
pub fn parse_list(flag: &str, list: &str) -> Result<Vec<FlagUrl>, String> {
    let urls: Vec<FlagUrl> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_one(s).map_err(|e| format!("--{flag}: {e}")))
        .collect::<Result<_, _>>()?;
    if urls.is_empty() {
        return Err(format!("--{flag}: no URL given"));
    }
    Ok(urls)
}

fn parse_one(s: &str) -> Result<FlagUrl, String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {s}"
        ));
    };
    let tls = match scheme {
        "http" => false,
        "https" => true,
        "unix" | "unixs" => return Err(format!("unix sockets not supported yet: {s}")),
        _ => {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {s}"
            ))
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('?') || authority.contains('#') {
        return Err(format!("URL must not contain a path: {s}"));
    }
    let not_host_port = || format!("URL address does not have the form \"host:port\": {s}");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, port) = v6.split_once("]:").ok_or_else(not_host_port)?;
        (host, port)
    } else {
        let (host, port) = authority.rsplit_once(':').ok_or_else(not_host_port)?;
        if host.contains(':') {
            return Err(not_host_port());
        }
        (host, port)
    };
    let port: u16 = port.parse().map_err(|_| not_host_port())?;
    Ok(FlagUrl {
        text: format!("{scheme}://{authority}"),
        host: host.to_string(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_binds() {
        let u = parse_list("x", "http://127.0.0.1:2379, http://localhost:2380/").unwrap();
        assert_eq!(u[0].bind_addr().unwrap(), "127.0.0.1:2379".parse().unwrap());
        assert_eq!(u[1].text, "http://localhost:2380");
        assert_eq!(u[1].bind_addr().unwrap(), "127.0.0.1:2380".parse().unwrap());
        let v6 = parse_list("x", "http://[::1]:2379").unwrap();
        assert_eq!(v6[0].bind_addr().unwrap(), "[::1]:2379".parse().unwrap());
    }

    #[test]
    fn refuses_what_etcd_refuses() {
        let secure = parse_list("x", "https://127.0.0.1:2379").unwrap();
        assert!(secure[0].tls && !parse_list("x", "http://a:1").unwrap()[0].tls);
        assert!(parse_list("x", "unixs://a:1").unwrap_err().contains("unix"));
        assert!(parse_list("x", "http://127.0.0.1")
            .unwrap_err()
            .contains("host:port"));
        assert!(parse_list("x", "http://127.0.0.1:2379/v2")
            .unwrap_err()
            .contains("path"));
        assert!(parse_list("x", "ftp://a:1").unwrap_err().contains("scheme"));
        let named = parse_list("x", "http://example.com:1").unwrap();
        assert!(named[0].bind_addr().unwrap_err().contains("expected IP"));
    }
}
