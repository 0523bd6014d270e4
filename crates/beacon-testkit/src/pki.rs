//! Test certificates, made fresh per test with rcgen: a CA, a server pair for loopback
//! (IP 127.0.0.1 and `localhost`), client pairs signed by it (one revoked in a CRL the
//! CA signed), and a pair from a second CA nobody trusts. Written as PEM files the
//! servers and clients are given by path, as an operator's would be.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};

use crate::temp_dir::TempDir;

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct PemPair {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// The files of one test's public-key infrastructure; removed on drop.
#[derive(Debug)]
pub struct Pki {
    /// The trusted CA's certificate.
    pub ca: PathBuf,
    /// A server (and peer) pair for 127.0.0.1 and `localhost`, both for serving and as
    /// a client (peers present theirs when they dial).
    pub server: PemPair,
    /// A client pair with common name `root`.
    pub client: PemPair,
    /// A client pair with common name `revoked`, listed in [`Pki::crl`].
    pub revoked: PemPair,
    /// The CA's revocation list naming `revoked`.
    pub crl: PathBuf,
    /// A server-and-client pair for 127.0.0.1 from another CA.
    pub stranger: PemPair,
    /// Removed on drop when the files were made in a temporary directory.
    _temp: Option<TempDir>,
}

impl Pki {
    /// Makes every file in a fresh directory, removed on drop.
    pub fn new() -> std::io::Result<Pki> {
        let temp = TempDir::new("pki")?;
        let mut pki = Pki::write_to(temp.path())?;
        pki._temp = Some(temp);
        Ok(pki)
    }

    /// Makes every file in `dir` (which must exist), to stay there: `ca.pem`,
    /// `server.pem`/`server-key.pem`, `client.pem`/`client-key.pem`, `revoked*.pem`,
    /// `crl.pem`, `stranger*.pem`.
    pub fn write_to(dir: &Path) -> std::io::Result<Pki> {
        let failed = |e: rcgen::Error| std::io::Error::other(e.to_string());
        let ca_key = KeyPair::generate().map_err(failed)?;
        let ca =
            CertifiedIssuer::self_signed(ca_params("beacon test CA"), ca_key).map_err(failed)?;
        let other_key = KeyPair::generate().map_err(failed)?;
        let other_ca =
            CertifiedIssuer::self_signed(ca_params("another CA"), other_key).map_err(failed)?;
        let path = |name: &str| dir.join(name);
        write(&path("ca.pem"), &ca.as_ref().pem())?;
        let loopback = ["127.0.0.1", "localhost"];
        let server = leaf(&ca, "server", &loopback, 1, &dir.join("server"))?;
        let client = leaf(&ca, "root", &[], 2, &dir.join("client"))?;
        let revoked = leaf(&ca, "revoked", &[], 3, &dir.join("revoked"))?;
        let stranger = leaf(&other_ca, "server", &loopback, 4, &dir.join("stranger"))?;
        let now = rcgen::date_time_ymd(2024, 1, 1);
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(3u64),
                revocation_time: now,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca)
        .map_err(failed)?;
        write(&path("crl.pem"), &crl.pem().map_err(failed)?)?;
        Ok(Pki {
            ca: path("ca.pem"),
            server,
            client,
            revoked,
            crl: path("crl.pem"),
            stranger,
            _temp: None,
        })
    }
}

/// A CA of its own and one pair it signs for `hosts` alone, in a fresh directory
/// (removed when the returned guard drops): for a test whose certificates must name
/// something other than loopback (a DNS domain).
pub fn ca_and_pair(hosts: &[&str]) -> std::io::Result<(PathBuf, PemPair, TempDir)> {
    let failed = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let temp = TempDir::new("pki-names")?;
    let key = KeyPair::generate().map_err(failed)?;
    let ca = CertifiedIssuer::self_signed(ca_params("beacon names CA"), key).map_err(failed)?;
    let ca_path = temp.path().join("ca.pem");
    write(&ca_path, &ca.as_ref().pem())?;
    let pair = leaf(&ca, "server", hosts, 1, &temp.path().join("named"))?;
    Ok((ca_path, pair, temp))
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    params
}

/// A pair signed by `issuer`, for `hosts`, good for serving and as a client, written as
/// `<stem>.pem` and `<stem>-key.pem`.
fn leaf(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    common_name: &str,
    hosts: &[&str],
    serial: u64,
    stem: &Path,
) -> std::io::Result<PemPair> {
    let failed = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    params.distinguished_name = subject;
    params.serial_number = Some(SerialNumber::from(serial));
    for host in hosts {
        params.subject_alt_names.push(match host.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*host).try_into().map_err(failed)?),
        });
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let key = KeyPair::generate().map_err(failed)?;
    let cert = params.signed_by(&key, issuer).map_err(failed)?;
    let pair = PemPair {
        cert: stem.with_extension("pem"),
        key: PathBuf::from(format!("{}-key.pem", stem.display())),
    };
    write(&pair.cert, &cert.pem())?;
    write(&pair.key, &key.serialize_pem())?;
    Ok(pair)
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
