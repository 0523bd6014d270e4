//! `--auto-tls` and `--peer-auto-tls`: a self-signed certificate for the member's own
//! hosts, made once and kept in the data directory (etcd's `fixtures/client` and
//! `fixtures/peer`), so a restarted member presents the same one.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::{TlsError, TlsInfo};

/// How long a self-signed certificate is valid: etcd 3.4's one year.
const SELF_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The pair in `dir` (`cert.pem`, `key.pem`), made there first for `hosts` (the hosts
/// of the member's URLs: IPs and names) if it is not there yet. It serves and, as a
/// client, is presented too (etcd's peers use it both ways).
pub fn self_cert(dir: &Path, hosts: &[String]) -> Result<TlsInfo, TlsError> {
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !(cert_file.exists() && key_file.exists()) {
        let failed = |why: String| TlsError::SelfCert {
            dir: dir.to_path_buf(),
            why,
        };
        let (cert, key) = generate(hosts).map_err(|e| failed(e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        write(&key_file, key.as_bytes(), 0o600).map_err(|e| failed(e.to_string()))?;
        write(&cert_file, cert.as_bytes(), 0o644).map_err(|e| failed(e.to_string()))?;
    }
    Ok(TlsInfo {
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        self_signed: true,
        ..TlsInfo::default()
    })
}

/// A P-256 key and a certificate for `hosts` signed by it, both PEM.
fn generate(hosts: &[String]) -> Result<(String, String), rcgen::Error> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = subject;
    let mut sans = Vec::new();
    for host in hosts {
        // A host may carry a port; the certificate names the host alone.
        let host = host.split(':').next().unwrap_or(host);
        match host.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => sans.push(SanType::DnsName(host.to_owned().try_into()?)),
        }
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now;
    params.not_after = now + SELF_CERT_VALIDITY;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
