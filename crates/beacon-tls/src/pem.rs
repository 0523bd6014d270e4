//! PEM files: certificate chains, private keys and revocation lists, each read whole
//! and refused with its path when it holds none of what it should.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::TlsError;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn content(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::Content {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Every certificate in the file, in order (a chain: the member's own first).
pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(content(path, "no certificate found"));
    }
    Ok(certs)
}

/// The file's private key (PKCS#8, PKCS#1 or SEC1, as Go's `tls.X509KeyPair` reads).
pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => content(path, "no private key found"),
        e => content(path, format!("malformed PEM: {e}")),
    })
}

/// Every revocation list in the file.
pub(crate) fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, format!("malformed PEM: {e}")))?;
    if crls.is_empty() {
        return Err(content(path, "no certificate revocation list found"));
    }
    Ok(crls)
}
