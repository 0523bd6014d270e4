//! What a certificate says of whom it is for: its subject's common name and its subject
//! alternative names, read with x509-parser, and etcd's checks of them.

use std::net::IpAddr;

use rustls_pki_types::{CertificateDer, ServerName};
use x509_parser::extensions::GeneralName;

/// The subject's common name, when the certificate parses and has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The IP addresses and DNS names the certificate is for (its SAN extension).
pub fn subject_alt_names(cert: &CertificateDer<'_>) -> (Vec<IpAddr>, Vec<String>) {
    let (mut ips, mut names) = (Vec::new(), Vec::new());
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return (ips, names);
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return (ips, names);
    };
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                    ips.push(IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                    ips.push(IpAddr::from(v6));
                }
            }
            _ => {}
        }
    }
    (ips, names)
}

/// Whether the certificate is valid for `host` (a DNS name, wildcards allowed, or an
/// IP address), as Go's `Certificate.VerifyHostname` decides.
pub(crate) fn valid_for_host(cert: &CertificateDer<'_>, host: &str) -> bool {
    let (Ok(ee), Ok(name)) = (
        webpki::EndEntityCert::try_from(cert),
        ServerName::try_from(host),
    ) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

/// etcd's check of `--peer-cert-allowed-cn` and `--peer-cert-allowed-hostname` on a
/// verified certificate, with etcd's words for a refusal.
pub(crate) fn check_allowed(
    cert: &CertificateDer<'_>,
    allowed_cn: Option<&str>,
    allowed_hostname: Option<&str>,
) -> Result<(), &'static str> {
    if let Some(cn) = allowed_cn {
        if common_name(cert).as_deref() != Some(cn) {
            return Err("CommonName authentication failed");
        }
    }
    if let Some(host) = allowed_hostname {
        if !valid_for_host(cert, host) {
            return Err("client certificate authentication failed");
        }
    }
    Ok(())
}
