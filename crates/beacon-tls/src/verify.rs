//! Certificate verifiers around rustls's own: one that adds etcd's allowed common name
//! and host name to a server's check of client certificates, and the check-nothing
//! verifier a client of `--auto-tls`'s self-signed certificates uses, as etcd's does.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::identity::check_allowed;

/// rustls's verifier of client certificates, then etcd's allowed-identity checks.
#[derive(Debug)]
pub(crate) struct AllowedIdentity {
    inner: Arc<dyn ClientCertVerifier>,
    cn: Option<String>,
    hostname: Option<String>,
}

impl AllowedIdentity {
    /// `inner` alone when nothing more is to be checked.
    pub(crate) fn wrap(
        inner: Arc<dyn ClientCertVerifier>,
        cn: Option<String>,
        hostname: Option<String>,
    ) -> Arc<dyn ClientCertVerifier> {
        if cn.is_none() && hostname.is_none() {
            return inner;
        }
        Arc::new(AllowedIdentity {
            inner,
            cn,
            hostname,
        })
    }
}

impl ClientCertVerifier for AllowedIdentity {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_allowed(end_entity, self.cn.as_deref(), self.hostname.as_deref())
            .map_err(|why| Error::InvalidCertificate(CertificateError::Other(why_error(why))))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// rustls's verifier of a server's certificate, then etcd's allowed-identity checks,
/// which etcd applies to what its peers serve as well as to what they present.
#[derive(Debug)]
pub(crate) struct AllowedServer {
    inner: Arc<dyn ServerCertVerifier>,
    cn: Option<String>,
    hostname: Option<String>,
}

impl AllowedServer {
    /// `inner` alone when nothing more is to be checked.
    pub(crate) fn wrap(
        inner: Arc<dyn ServerCertVerifier>,
        cn: Option<String>,
        hostname: Option<String>,
    ) -> Arc<dyn ServerCertVerifier> {
        if cn.is_none() && hostname.is_none() {
            return inner;
        }
        Arc::new(AllowedServer {
            inner,
            cn,
            hostname,
        })
    }
}

impl ServerCertVerifier for AllowedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        check_allowed(end_entity, self.cn.as_deref(), self.hostname.as_deref())
            .map_err(|why| Error::InvalidCertificate(CertificateError::Other(why_error(why))))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn why_error(why: &'static str) -> rustls::OtherError {
    rustls::OtherError(Arc::new(std::io::Error::other(why)))
}

/// Accepts any server certificate (still checking that the server holds its key): what
/// etcd's client does for a self-signed (`--auto-tls`) pair, which no CA vouches for.
#[derive(Debug)]
pub(crate) struct AnyServer {
    provider: Arc<CryptoProvider>,
}

impl AnyServer {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Arc<AnyServer> {
        Arc::new(AnyServer { provider })
    }
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
