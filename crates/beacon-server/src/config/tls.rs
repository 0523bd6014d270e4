//! etcd's transport-security flags: the client side's (`--cert-file`, `--auto-tls`, ...)
//! and the peer side's (`--peer-cert-file`, `--peer-auto-tls`, ...), as clap reads them
//! and as `beacon_tls::TlsInfo`s. Files are read when the server starts (`crate::tls`),
//! where `--auto-tls` writes its pair into the data directory.

use std::path::PathBuf;

use beacon_tls::TlsInfo;

use super::parse_go_bool;

/// The flags, flattened into `super::Flags`; an empty value is etcd's default (unset).
#[derive(clap::Args, Debug, Default)]
pub(super) struct TlsFlags {
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE", default_value = "")]
    cert_file: String,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", default_value = "")]
    key_file: String,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    client_cert_auth: bool,
    /// Path to the client certificate revocation list file.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE", default_value = "")]
    client_crl_file: String,
    /// Allowed TLS hostname for client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME", default_value = "")]
    client_cert_allowed_hostname: String,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", default_value = "")]
    trusted_ca_file: String,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    peer_key_file: String,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", default_value = "")]
    peer_trusted_ca_file: String,
    /// Peer TLS using self-generated certificates if --peer-key-file and
    /// --peer-cert-file are not provided.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_parser = parse_go_bool)]
    peer_auto_tls: bool,
    /// Path to the peer certificate revocation list file.
    #[arg(long, env = "ETCD_PEER_CRL_FILE", default_value = "")]
    peer_crl_file: String,
    /// Allowed CN for inter peer authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN", default_value = "")]
    peer_cert_allowed_cn: String,
    /// Allowed TLS hostname for inter peer authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME", default_value = "")]
    peer_cert_allowed_hostname: String,
    /// Comma-separated list of supported TLS cipher suites between client/server and
    /// peers (Go's names; empty: all that rustls has).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    cipher_suites: String,
    /// Skip verification of SAN field in client certificate for peer connections.
    #[arg(long, env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION",
          default_value = "false", num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_parser = parse_go_bool)]
    experimental_peer_skip_client_san_verification: bool,
}

/// Both sides' TLS settings, validated but not yet read from disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// The client URLs' (and https metrics URLs') pair and checks.
    pub client: TlsInfo,
    /// `--auto-tls`: a self-signed client pair when no files are given.
    pub auto_tls: bool,
    /// The peer URLs' pair and checks, for serving and for dialing peers.
    pub peer: TlsInfo,
    /// `--peer-auto-tls`.
    pub peer_auto_tls: bool,
    /// `--experimental-peer-skip-client-san-verification`.
    pub peer_skip_client_san_verification: bool,
}

fn path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl TlsFlags {
    pub(super) fn settings(&self) -> Result<TlsSettings, String> {
        let ciphers: Vec<String> = self
            .cipher_suites
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !ciphers.is_empty() {
            // Refused now, in etcd's words, rather than at the first listener.
            beacon_tls::go_cipher_suites(&ciphers).map_err(|e| e.to_string())?;
        }
        let client = TlsInfo {
            cert_file: path(&self.cert_file),
            key_file: path(&self.key_file),
            trusted_ca_file: path(&self.trusted_ca_file),
            client_cert_auth: self.client_cert_auth,
            crl_file: path(&self.client_crl_file),
            allowed_cn: None,
            allowed_hostname: text(&self.client_cert_allowed_hostname),
            self_signed: false,
            cipher_suites: ciphers.clone(),
        };
        let peer = TlsInfo {
            cert_file: path(&self.peer_cert_file),
            key_file: path(&self.peer_key_file),
            trusted_ca_file: path(&self.peer_trusted_ca_file),
            client_cert_auth: self.peer_client_cert_auth,
            crl_file: path(&self.peer_crl_file),
            allowed_cn: text(&self.peer_cert_allowed_cn),
            allowed_hostname: text(&self.peer_cert_allowed_hostname),
            self_signed: false,
            cipher_suites: ciphers,
        };
        Ok(TlsSettings {
            client,
            auto_tls: self.auto_tls,
            peer,
            peer_auto_tls: self.peer_auto_tls,
            peer_skip_client_san_verification: self.experimental_peer_skip_client_san_verification,
        })
    }
}
