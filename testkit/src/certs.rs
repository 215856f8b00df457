//! A test certificate authority and a certificate folder laid out as nginx-proxy's
//! `/etc/nginx/certs` (`<name>.crt` + `<name>.key`), for the HTTPS tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DnType,
    IsCa, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};

/// A CA made fresh for each test run; leaf certificates are signed by it.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

/// A leaf certificate and its key, PEM-encoded, plus the DER to compare with what a server sent.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate followed by the CA's, PEM (what servers usually install).
    pub chain_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
    /// The certificate, DER (compare with `TlsInfo::peer_certificates[0]`).
    pub der: Vec<u8>,
    /// The certificate's serial number (unique per process), for revocation lists.
    pub serial: u64,
}

impl TestCa {
    /// A new CA with a random key.
    ///
    /// # Panics
    /// If rcgen cannot generate a key (it always can with the ring backend).
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Each CA is named apart, as real ones are: a verifier looks an issuer up by name, and
        // two CAs of one name would make a stranger's certificate a bad signature instead of
        // an unknown issuer.
        static CA: AtomicU64 = AtomicU64::new(1);
        let name = format!("dockhand test CA {}", CA.fetch_add(1, Ordering::Relaxed));
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("generating the CA key");
        let cert = params.self_signed(&key).expect("self-signing the CA");
        TestCa { cert, key }
    }

    /// The CA certificate, DER: the root a verifying client trusts.
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// A leaf certificate for `names` (DNS names; `*.x` wildcards allowed).
    ///
    /// # Panics
    /// If a name is not a valid DNS name for rcgen.
    pub fn issue(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("valid DNS names");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().expect("generating a leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signing a leaf");
        Issued {
            chain_pem: format!("{}{}", cert.pem(), self.cert.pem()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            serial,
        }
    }

    /// The CA certificate, PEM: a client CA bundle (`<vhost>.ca.crt`) for mTLS.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A revocation list (PEM, valid from an hour ago for a day) revoking `revoked`.
    ///
    /// # Panics
    /// If rcgen cannot sign it.
    pub fn crl(&self, revoked: &[&Issued]) -> String {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|issued| RevokedCertParams {
                    serial_number: SerialNumber::from(issued.serial),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .expect("signing a CRL")
            .pem()
            .expect("PEM")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A temporary certificate folder; removed on drop.
pub struct CertDir {
    path: PathBuf,
}

impl CertDir {
    /// An empty folder under the temp directory.
    ///
    /// # Panics
    /// If the folder cannot be created.
    pub fn new() -> CertDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "dockhand-certs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        CertDir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `<name>.crt` and `<name>.key` (the key first, so a poller never sees a certificate
    /// without its key).
    pub fn install(&self, name: &str, issued: &Issued) {
        self.write(&format!("{name}.key"), &issued.key_pem);
        self.write(&format!("{name}.crt"), &issued.cert_pem);
    }

    /// Removes `<name>.crt` and `<name>.key`.
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.path.join(format!("{name}.crt")));
        let _ = std::fs::remove_file(self.path.join(format!("{name}.key")));
    }

    /// Writes a file atomically (write then rename), as certificate tools do.
    pub fn write(&self, file: &str, contents: &str) {
        let tmp = self.path.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, contents).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
        std::fs::rename(&tmp, self.path.join(file))
            .unwrap_or_else(|e| panic!("renaming {file}: {e}"));
    }
}

impl Default for CertDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
