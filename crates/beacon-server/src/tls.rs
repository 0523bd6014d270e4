//! The member's TLS, made once at start from the validated flags
//! (`config::TlsSettings`): what serves the `https` client, metrics and peer URLs, and
//! what dials `https` peers. `--auto-tls` and `--peer-auto-tls` make (or find) their
//! self-signed pairs in the data directory's `fixtures/client` and `fixtures/peer`, as
//! etcd does. Only paths are logged, never a key.

use anyhow::Context as _;
use beacon_tls::{Acceptor, Connector, TlsInfo};

use crate::config::Config;
use crate::urls::FlagUrl;

/// What the member serves and dials with; `None` where it has no TLS.
#[derive(Clone, Default)]
pub struct MemberTls {
    /// The `https` client and metrics URLs' handshake.
    pub client: Option<Acceptor>,
    /// The `https` peer URLs' handshake, with etcd's peer SAN check.
    pub peer_server: Option<Acceptor>,
    /// How this member dials `https` peer URLs.
    pub peer_client: Option<Connector>,
}

impl std::fmt::Debug for MemberTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberTls")
            .field("client", &self.client.is_some())
            .field("peer_server", &self.peer_server.is_some())
            .field("peer_client", &self.peer_client.is_some())
            .finish()
    }
}

/// The member's TLS from its flags, reading (or, for auto TLS, writing) the files.
pub fn prepare(config: &Config) -> anyhow::Result<MemberTls> {
    let settings = &config.tls;
    let fixtures = config.data_dir.join("fixtures");
    let client_urls: Vec<&FlagUrl> = config
        .listen_client_urls
        .iter()
        .chain(&config.listen_metrics_urls)
        .collect();
    let client_info = side_info(
        &settings.client,
        settings.auto_tls,
        &fixtures.join("client"),
        &config.listen_client_urls,
        "client",
    )?;
    warn_plain_urls(&client_urls, &client_info, "client");
    let client = if client_urls.iter().any(|u| u.tls) {
        let info = client_info.context("an https client URL without a pair")?;
        log_info("ClientTLS", &info);
        let server = info
            .server_config()
            .context("the client TLS configuration")?;
        Some(Acceptor::new(server, false))
    } else {
        None
    };
    let peer_info = side_info(
        &settings.peer,
        settings.peer_auto_tls,
        &fixtures.join("peer"),
        &config.listen_peer_urls,
        "peer",
    )?;
    let peer_urls: Vec<&FlagUrl> = config.listen_peer_urls.iter().collect();
    warn_plain_urls(&peer_urls, &peer_info, "peer");
    let Some(peer_info) = peer_info else {
        return Ok(MemberTls {
            client,
            ..MemberTls::default()
        });
    };
    log_info("PeerTLS", &peer_info);
    let peer_server = if peer_urls.iter().any(|u| u.tls) {
        let server = peer_info
            .server_config()
            .context("the peer TLS configuration")?;
        Some(Acceptor::new(
            server,
            !settings.peer_skip_client_san_verification,
        ))
    } else {
        None
    };
    // Peers speak HTTP/1.1 to each other.
    let dialing = peer_info
        .client_config(&[b"http/1.1"])
        .context("the peer TLS configuration")?;
    Ok(MemberTls {
        client,
        peer_server,
        peer_client: Some(Connector::new(dialing)),
    })
}

/// One side's pair: the files given, or with auto TLS and none given, the self-signed
/// pair for the hosts of `urls`; `None` when neither.
fn side_info(
    given: &TlsInfo,
    auto: bool,
    fixtures: &std::path::Path,
    urls: &[FlagUrl],
    side: &str,
) -> anyhow::Result<Option<TlsInfo>> {
    if !given.is_empty() {
        if auto {
            tracing::warn!("ignoring {side} auto TLS since certs given");
        }
        return Ok(Some(given.clone()));
    }
    if !auto {
        return Ok(None);
    }
    let hosts: Vec<String> = urls.iter().map(|u| u.host.clone()).collect();
    let made = beacon_tls::self_cert(fixtures, &hosts)?;
    Ok(Some(TlsInfo {
        // The flags' checks still hold over a generated pair.
        client_cert_auth: given.client_cert_auth,
        trusted_ca_file: given.trusted_ca_file.clone(),
        crl_file: given.crl_file.clone(),
        allowed_cn: given.allowed_cn.clone(),
        allowed_hostname: given.allowed_hostname.clone(),
        cipher_suites: given.cipher_suites.clone(),
        ..made
    }))
}

/// etcd's warning for an `http` URL of a side that has a pair: it is served plain.
fn warn_plain_urls(urls: &[&FlagUrl], info: &Option<TlsInfo>, side: &str) {
    if info.is_none() {
        return;
    }
    for u in urls.iter().filter(|u| !u.tls) {
        tracing::warn!(
            url = %u.text,
            "the scheme of {side} url is HTTP while {side} key/cert files are presented; \
             ignored key/cert files for it"
        );
    }
}

fn log_info(what: &str, info: &TlsInfo) {
    let shown = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    tracing::info!(
        cert = %shown(&info.cert_file),
        key = %shown(&info.key_file),
        trusted_ca = %shown(&info.trusted_ca_file),
        client_cert_auth = info.client_cert_auth,
        crl_file = %shown(&info.crl_file),
        self_signed = info.self_signed,
        "{what}"
    );
}
