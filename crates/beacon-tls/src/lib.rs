//! etcd's transport security for Beacon: what etcd's `pkg/transport.TLSInfo` is, built on
//! rustls (no OpenSSL, ring as the crypto provider).
//!
//! A [`TlsInfo`] holds one side's flags (`--cert-file`, `--key-file`, `--trusted-ca-file`,
//! `--client-cert-auth`, `--client-crl-file`, or their `--peer-` twins) and becomes a
//! rustls server configuration ([`TlsInfo::server_config`], for a listener) or client
//! configuration ([`TlsInfo::client_config`], for dialing peers or a client's
//! endpoints). [`self_cert`] makes `--auto-tls`'s self-signed pair. [`Acceptor`] runs a
//! listener's handshake with etcd's checks after it (the peer SAN check); [`Connector`]
//! a client's.
//!
//! Nothing here logs a key or a certificate's contents; paths only.

mod accept;
mod ciphers;
mod identity;
mod pem;
mod self_cert;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use accept::{Acceptor, Connector};
pub use ciphers::go_cipher_suites;
pub use identity::{common_name, subject_alt_names};
pub use self_cert::self_cert;
pub use tokio_rustls::client::TlsStream as ClientTlsStream;
pub use tokio_rustls::server::TlsStream as ServerTlsStream;

/// What went wrong building a TLS configuration; each names the file or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file was read but does not hold what it should.
    #[error("{path}: {what}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// `--cipher-suites` names a suite etcd does not know (etcd's own message).
    #[error("unexpected TLS cipher suite {0:?}")]
    UnknownCipherSuite(String),
    /// The flags do not make a usable configuration.
    #[error("{0}")]
    Config(String),
    /// `--auto-tls` could not make or store its certificate.
    #[error("generating a self-signed certificate in {dir}: {why}")]
    SelfCert {
        /// Where it was to be stored.
        dir: PathBuf,
        /// Why it failed.
        why: String,
    },
}

/// One side's TLS flags, as etcd's `TLSInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `--cert-file`: this member's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// `--key-file`: its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file`: the CAs that sign the other side's certificates.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth`: the other side must present a certificate the CAs signed.
    pub client_cert_auth: bool,
    /// `--client-crl-file`: certificates revoked; one of them is refused.
    pub crl_file: Option<PathBuf>,
    /// `--peer-cert-allowed-cn`: the only common name a presented certificate may have.
    pub allowed_cn: Option<String>,
    /// `--peer-cert-allowed-hostname` (`--client-cert-allowed-hostname`): a host name a
    /// presented certificate must be valid for.
    pub allowed_hostname: Option<String>,
    /// The pair is `--auto-tls`'s own: as etcd, a client of it skips verification, since
    /// no CA signed it.
    pub self_signed: bool,
    /// `--cipher-suites`: Go's names of the TLS 1.2 suites allowed; empty for all that
    /// rustls has. TLS 1.3's suites are not configurable, as in Go.
    pub cipher_suites: Vec<String>,
}

impl TlsInfo {
    /// No certificate given: etcd's `TLSInfo.Empty`.
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }

    /// The configuration of a listener that serves with this pair. It offers HTTP/2 and
    /// HTTP/1.1 (gRPC and v2 on one port); it asks for a client certificate when
    /// `--client-cert-auth` or `--trusted-ca-file` is given, as etcd does, and then
    /// refuses one the CAs did not sign, one the CRL revokes, or one the allowed common
    /// name or host name excludes.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = self.provider()?;
        let verifier = if self.client_cert_auth || self.trusted_ca_file.is_some() {
            let Some(ca) = &self.trusted_ca_file else {
                return Err(TlsError::Config(
                    "client certificate authentication needs a trusted CA file \
                     (--trusted-ca-file, --peer-trusted-ca-file)"
                        .into(),
                ));
            };
            let roots = Arc::new(roots_from(ca)?);
            let mut builder =
                WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
            if let Some(crl) = &self.crl_file {
                // As etcd: a certificate the list does not name is good, and only the
                // presented certificate itself is looked up.
                builder = builder
                    .with_crls(pem::crls(crl)?)
                    .only_check_end_entity_revocation()
                    .allow_unknown_revocation_status();
            }
            let inner = builder
                .build()
                .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))?;
            verify::AllowedIdentity::wrap(
                inner,
                self.allowed_cn.clone(),
                self.allowed_hostname.clone(),
            )
        } else {
            WebPkiClientVerifier::no_client_auth()
        };
        let (certs, key) = self.pair()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| self.content_error(format!("the key does not fit: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The configuration of a client of servers that trust this pair: it presents the
    /// pair when one is given, and checks the server's certificate against the trusted
    /// CA file, or the system's roots without one; a self-signed pair's client checks
    /// nothing, as etcd's. `alpn` is what the client offers (`h2` for gRPC).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = self.provider()?;
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if self.self_signed {
            verify::AnyServer::new(Arc::clone(&provider))
        } else {
            let roots = match &self.trusted_ca_file {
                Some(ca) => roots_from(ca)?,
                None => system_roots(),
            };
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(format!("server certificate verifier: {e}")))?
        };
        // etcd checks the allowed names on the certificates its peers serve too.
        let verifier = verify::AllowedServer::wrap(
            verifier,
            self.allowed_cn.clone(),
            self.allowed_hostname.clone(),
        );
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = if self.is_empty() {
            builder.with_no_client_auth()
        } else {
            let (certs, key) = self.pair()?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| self.content_error(format!("the key does not fit: {e}")))?
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// ring, with only the TLS 1.2 suites `--cipher-suites` allows.
    // rustls 0.23.48 deprecates ring's provider for its lack of post-quantum key
    // exchange, steering to aws-lc-rs, whose C build is several times ring's on two
    // cores; etcd 3.4's Go TLS has no post-quantum exchange either.
    #[allow(deprecated)]
    fn provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let allowed = go_cipher_suites(&self.cipher_suites)?;
            provider.cipher_suites.retain(|s| match s {
                rustls::SupportedCipherSuite::Tls12(_) => allowed.contains(&s.suite()),
                rustls::SupportedCipherSuite::Tls13(_) => true,
            });
        }
        Ok(Arc::new(provider))
    }

    /// The certificate chain and key, both files required.
    fn pair(
        &self,
    ) -> Result<
        (
            Vec<rustls_pki_types::CertificateDer<'static>>,
            rustls_pki_types::PrivateKeyDer<'static>,
        ),
        TlsError,
    > {
        let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) else {
            return Err(TlsError::Config(
                "a certificate needs both its file and its key file".into(),
            ));
        };
        Ok((pem::certs(cert)?, pem::key(key)?))
    }

    fn content_error(&self, what: String) -> TlsError {
        TlsError::Content {
            path: self.cert_file.clone().unwrap_or_default(),
            what,
        }
    }
}

/// Every certificate of a CA file, as roots.
fn roots_from(path: &std::path::Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Content {
            path: path.to_path_buf(),
            what: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// The system's roots; an unreadable one is skipped (Go's pool does the same).
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "reading the system's CA certificates");
    }
    let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
    roots
}

#[cfg(test)]
mod tests;
