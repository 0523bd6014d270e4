//! DNS SRV bootstrapping (`--discovery-srv DOMAIN`, `--discovery-srv-name SUFFIX`): a
//! new member builds its `--initial-cluster` from the SRV records of
//! `_etcd-server-ssl[-SUFFIX]._tcp.DOMAIN`, each record one `https://target:port` peer
//! URL. The record whose target and port resolve to the address of one of this
//! member's `--initial-advertise-peer-urls` is this member (named by `--name`); the
//! others are named `0`, `1`, ... in answer order, names that last only until each
//! member publishes its own.
//!
//! etcd 3.4.23 also looks up `_etcd-server[-SUFFIX]._tcp.DOMAIN` (http), but a slip in
//! its `GetDNSClusterNames` drops what that lookup finds: http records alone make no
//! cluster there, and do not here either (we warn that they are ignored).
//!
//! What the answers make is [`cluster_entries`] (pure); asking DNS is [`initial_cluster`],
//! through hickory's resolver, which reads `/etc/resolv.conf` and `/etc/hosts` as Go's
//! does.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;

use crate::urls::FlagUrl;

/// One SRV record, its target resolved (or why it could not be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The record's target as answered, final dot included.
    pub target: String,
    pub port: u16,
    pub addr: Result<SocketAddr, String>,
}

/// One of this member's advertised peer URLs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Own {
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: String,
    /// The URL as given, for etcd's mismatch message.
    pub url: String,
}

/// The SRV service name etcd asks for: `etcd-server` (http) or `etcd-server-ssl`
/// (https), with `-SUFFIX` when `--discovery-srv-name` is given.
pub fn service(scheme: &str, suffix: &str) -> String {
    let base = if scheme == "https" {
        "etcd-server-ssl"
    } else {
        "etcd-server"
    };
    match suffix {
        "" => base.to_string(),
        s => format!("{base}-{s}"),
    }
}

/// etcd's `srv.GetCluster` over answers already resolved: the `name=scheme://host:port`
/// entries, in answer order. A record that resolves to one of `own` is `name` (and is
/// dropped, with an error kept, when its scheme is not that URL's); the others are
/// numbered. With no entry, the last error kept is the answer (`Ok` and no entries
/// when there was none).
pub fn cluster_entries(
    scheme: &str,
    service: &str,
    name: &str,
    own: &[Own],
    records: &[Resolved],
) -> Result<Vec<String>, String> {
    let mut entries = Vec::new();
    let mut error = None;
    let mut numbered = 0;
    for record in records {
        let addr = match &record.addr {
            Ok(addr) => addr,
            Err(e) => {
                error = Some(e.clone());
                continue;
            }
        };
        let mine = own.iter().find(|o| o.addr == *addr);
        let entry_name = match mine {
            Some(_) => name.to_string(),
            None => {
                numbered += 1;
                (numbered - 1).to_string()
            }
        };
        let host = record.target.strip_suffix('.').unwrap_or(&record.target);
        let url = format!("{scheme}://{}", join_host_port(host, record.port));
        match mine {
            Some(o) if o.scheme != scheme => {
                error = Some(format!(
                    "bootstrap at {url} from DNS for {service} has scheme mismatch with \
                     expected peer {}",
                    o.url
                ));
            }
            _ => entries.push(format!("{entry_name}={url}")),
        }
    }
    match (entries.is_empty(), error) {
        (true, Some(e)) => Err(e),
        _ => Ok(entries),
    }
}

/// Go's `net.JoinHostPort`: an IPv6 host in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The resolver and the server it asks, for Go's error words.
struct Dns {
    resolver: TokioResolver,
    server: String,
}

impl Dns {
    fn system() -> Result<Dns, String> {
        let (config, options) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("reading the system's DNS configuration: {e}"))?;
        // Go names the first server of resolv.conf in its errors (and 127.0.0.1 when
        // there is none).
        let server = config
            .name_servers()
            .first()
            .map_or_else(|| "127.0.0.1:53".to_string(), |ns| format!("{}:53", ns.ip));
        let provider = hickory_resolver::net::runtime::TokioRuntimeProvider::default();
        let mut builder = TokioResolver::builder_with_config(config, provider);
        *builder.options_mut() = options;
        let resolver = builder
            .build()
            .map_err(|e| format!("the DNS resolver: {e}"))?;
        Ok(Dns { resolver, server })
    }

    /// Go's `*net.DNSError` text for a failed lookup of `name`.
    fn error(&self, name: &str, e: &NetError) -> String {
        let why = match e {
            _ if e.is_no_records_found() => "no such host",
            NetError::Timeout => "i/o timeout",
            _ => "server misbehaving",
        };
        format!("lookup {name} on {}: {why}", self.server)
    }

    /// Go's `net.ResolveTCPAddr`: an IP as it is, a name through `/etc/hosts` and DNS,
    /// an IPv4 address preferred.
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let found = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| self.error(host, &e))?;
        let ips: Vec<IpAddr> = found.iter().collect();
        ips.iter()
            .find(|ip| ip.is_ipv4())
            .or(ips.first())
            .map(|ip| SocketAddr::new(*ip, port))
            .ok_or_else(|| format!("lookup {host} on {}: no such host", self.server))
    }

    /// The SRV records of `_service._tcp.domain`, by priority (answers of one priority
    /// keep the server's order: Go shuffles them by weight, which changes only the
    /// numbered names), each target resolved.
    async fn srv(&self, service: &str, domain: &str) -> Result<Vec<Resolved>, String> {
        let name = format!("_{service}._tcp.{domain}");
        let found = self
            .resolver
            .srv_lookup(name.as_str())
            .await
            .map_err(|e| self.error(&name, &e))?;
        let mut records: Vec<(u16, String, u16)> = found
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                hickory_resolver::proto::rr::RData::SRV(srv) => {
                    Some((srv.priority, srv.target.to_ascii(), srv.port))
                }
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return Err(format!("lookup {name} on {}: no such host", self.server));
        }
        records.sort_by_key(|(priority, _, _)| *priority);
        let mut resolved = Vec::with_capacity(records.len());
        for (_, target, port) in records {
            let addr = self.resolve(&target, port).await;
            resolved.push(Resolved { target, port, addr });
        }
        Ok(resolved)
    }

    /// etcd's `srv.GetCluster` for one scheme.
    async fn cluster(
        &self,
        scheme: &str,
        service: &str,
        name: &str,
        domain: &str,
        advertised: &[FlagUrl],
    ) -> Result<Vec<String>, String> {
        let mut own = Vec::with_capacity(advertised.len());
        for u in advertised {
            own.push(Own {
                addr: self.resolve(&u.host, u.port).await?,
                scheme: if u.tls { "https" } else { "http" }.to_string(),
                url: u.text.clone(),
            });
        }
        let records = self
            .srv(service, domain)
            .await
            .map_err(|e| format!("error querying DNS SRV records for _{service} {e}"))?;
        cluster_entries(scheme, service, name, &own, &records)
            .map_err(|e| format!("error querying DNS SRV records for _{service} {e}"))
    }
}

/// The `--initial-cluster` the SRV records of `domain` make for member `name`, as
/// etcd 3.4.23's `PeerURLsMapAndToken` builds it; `Err` in etcd's words.
pub async fn initial_cluster(
    domain: &str,
    suffix: &str,
    name: &str,
    advertised: &[FlagUrl],
) -> Result<Vec<(String, String)>, String> {
    let dns = Dns::system()?;
    let ssl = service("https", suffix);
    let found = dns.cluster("https", &ssl, name, domain, advertised).await;
    tracing::info!(
        service_scheme = "https",
        service_name = %ssl,
        server_name = name,
        discovery_srv = domain,
        found_cluster = ?found.as_ref().ok(),
        error = ?found.as_ref().err(),
        "get cluster for etcd-server-ssl SRV"
    );
    let entries = match found {
        Ok(entries) => entries,
        Err(e) => {
            let plain = service("http", suffix);
            if let Ok(more) = dns.cluster("http", &plain, name, domain, advertised).await {
                tracing::warn!(
                    "found _{plain} records ({}), which etcd 3.4 does not bootstrap from: \
                     publish _{ssl} records with https peer URLs",
                    more.join(",")
                );
            }
            tracing::error!("couldn't resolve during SRV discovery ({e})");
            return Err(e);
        }
    };
    for entry in &entries {
        tracing::info!("got bootstrap from DNS for etcd-server at {entry}");
    }
    let cluster = crate::config::parse_initial_cluster(&entries.join(","))?;
    if !cluster.iter().any(|(n, _)| n == name) {
        return Err(format!(
            "cannot find local etcd member {name:?} in SRV records"
        ));
    }
    Ok(cluster)
}

/// [`initial_cluster`] for `config`'s member, errors worded as etcd's start words them.
pub async fn initial_cluster_of(
    config: &crate::config::Config,
    srv: &crate::config::DiscoverySrv,
) -> Result<Vec<(String, String)>, String> {
    let advertised = crate::urls::parse_list(
        "initial-advertise-peer-urls",
        &config.initial_advertise_peer_urls.join(","),
    )?;
    initial_cluster(&srv.domain, &srv.service_name, &config.name, &advertised)
        .await
        .map_err(|e| format!("error setting up initial cluster: {e}"))
}

#[cfg(test)]
mod tests;
