//! Reading nginx-proxy's certificate folder: which files form pairs, their fingerprint for the
//! poller, and parsing one pair into a [`CertifiedKey`].
//!
//! `<name>.crt` + `<name>.key` pairs are server certificates (a `.crt` without its `.key` is
//! ignored). Client CAs for mTLS are `<vhost>.ca.crt` (with an optional `<vhost>.crl.pem`) and
//! the global `ca.crt` (with `ca.crl.pem`), as nginx-proxy reads them. The rest
//! (`*.dhparam.pem`, `*.chain.pem`, `dhparam.pem`) is ignored.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// Suffix of the certificate (chain) file of a pair.
const CRT: &str = ".crt";
/// Suffix of the private key file of a pair.
const KEY: &str = ".key";
/// Client-CA files (`<VH>.ca.crt`, `ca.crt`) are for mTLS, not server certificates.
const CA_CRT: &str = ".ca.crt";
/// The global client-CA file.
const GLOBAL_CA_CRT: &str = "ca.crt";
/// A client CA's revocation list: `<VH>.crl.pem`, `ca.crl.pem`.
const CRL_PEM: &str = ".crl.pem";

/// Why one pair could not be loaded. Shown with the pair's name in a warning.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// A file of the pair could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file name.
        file: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A file is not valid PEM of the expected kind.
    #[error("{file}: {source}")]
    Pem {
        /// The file name.
        file: String,
        /// The PEM error (no item of the expected kind, bad base64, …).
        source: rustls::pki_types::pem::Error,
    },
    /// The `.crt` holds no certificate.
    #[error("{file}: no certificate found")]
    NoCertificate {
        /// The file name.
        file: String,
    },
    /// The key is of an unsupported type, or does not belong to the certificate.
    #[error("key does not fit the certificate: {0}")]
    Key(rustls::Error),
}

/// A `<name>.crt` + `<name>.key` pair found in the folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pair {
    /// `<name>`, lower-cased (host names are case-insensitive).
    pub(crate) name: String,
    pub(crate) crt: PathBuf,
    pub(crate) key: PathBuf,
}

/// A pair ready to serve.
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    /// The leaf's notAfter in unix seconds, when it parses.
    pub(crate) not_after: Option<i64>,
}

/// What the poller compares: every pair candidate's name, symlink target and the identity of
/// the file it resolves to. Renewals rewrite the target behind an unchanged symlink, so the
/// followed metadata matters as much as the link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fingerprint(Vec<Stamp>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    name: String,
    link: Option<PathBuf>,
    /// `None` when the file (or a symlink's target) is missing.
    target: Option<(u64, u64, u64, Option<SystemTime>)>,
}

/// The pairs of `dir`, sorted by name, and the fingerprint of the files they come from.
///
/// A missing folder holds no pairs; other errors reading the folder are returned.
pub(crate) fn scan(dir: &Path) -> io::Result<(Vec<Pair>, Fingerprint)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e),
    };
    let mut files: BTreeMap<String, Stamp> = BTreeMap::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !is_candidate(&name) && !is_client_ca_file(&name) {
            continue;
        }
        let path = entry.path();
        let link = std::fs::read_link(&path).ok();
        // `metadata` follows symlinks: a dangling link is a file that is not there.
        let target = std::fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino(), m.len(), m.modified().ok()));
        files.insert(name.clone(), Stamp { name, link, target });
    }
    let pairs = pairs(dir, &files);
    Ok((pairs, Fingerprint(files.into_values().collect())))
}

/// Whether a file name can be half of a pair.
fn is_candidate(name: &str) -> bool {
    let stem = name
        .strip_suffix(CRT)
        .or_else(|| name.strip_suffix(KEY))
        .unwrap_or_default();
    !stem.is_empty() && !name.ends_with(CA_CRT) && name != GLOBAL_CA_CRT
}

/// Whether a file name is a client CA or its revocation list.
fn is_client_ca_file(name: &str) -> bool {
    name.ends_with(CA_CRT) || name == GLOBAL_CA_CRT || name.ends_with(CRL_PEM)
}

/// A client CA bundle found in the folder, for mTLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientCa {
    /// The vhost it is for, lower-cased; [`GLOBAL_CLIENT_CA`] for `ca.crt`.
    pub(crate) name: String,
    pub(crate) ca: PathBuf,
    /// The revocation list beside it, when present.
    pub(crate) crl: Option<PathBuf>,
}

/// The name under which `ca.crt` (every vhost without a CA of its own) is indexed.
pub(crate) const GLOBAL_CLIENT_CA: &str = "";

impl Fingerprint {
    /// The client CA bundles among the files scanned from `dir`.
    pub(crate) fn client_cas(&self, dir: &Path) -> Vec<ClientCa> {
        let present = |name: &str| self.0.iter().any(|s| s.name == name && s.target.is_some());
        self.0
            .iter()
            .filter(|s| s.target.is_some())
            .filter_map(|s| {
                let stem = if s.name == GLOBAL_CA_CRT {
                    ""
                } else {
                    s.name.strip_suffix(CA_CRT)?
                };
                let crl = format!("{}{CRL_PEM}", if stem.is_empty() { "ca" } else { stem });
                Some(ClientCa {
                    name: stem.to_ascii_lowercase(),
                    ca: dir.join(&s.name),
                    crl: present(&crl).then(|| dir.join(&crl)),
                })
            })
            .collect()
    }
}

/// Builds the verifier of client certificates issued by `ca` (PEM certificates), checked
/// against its revocation list when there is one. Clients without a certificate pass the
/// handshake (the request is answered 400 where one is required, as nginx does).
pub(crate) fn load_client_ca(
    ca: &ClientCa,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, PairError> {
    let pem = read(&ca.ca)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|source| PairError::Pem {
            file: file_name(&ca.ca),
            source,
        })?;
        roots.add(cert).map_err(PairError::Key)?;
    }
    if roots.is_empty() {
        return Err(PairError::NoCertificate {
            file: file_name(&ca.ca),
        });
    }
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated();
    if let Some(path) = &ca.crl {
        let pem = read(path)?;
        let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| PairError::Pem {
                file: file_name(path),
                source,
            })?;
        // nginx checks what its CRL covers; an issuer it does not list is no error there.
        builder = builder.with_crls(crls).allow_unknown_revocation_status();
    }
    builder
        .build()
        .map_err(|e| PairError::Key(rustls::Error::General(e.to_string())))
}

fn pairs(dir: &Path, files: &BTreeMap<String, Stamp>) -> Vec<Pair> {
    let present = |name: &str| files.get(name).is_some_and(|s| s.target.is_some());
    let mut pairs: Vec<Pair> = files
        .keys()
        .filter(|file| is_candidate(file))
        .filter_map(|file| file.strip_suffix(CRT))
        .filter(|stem| present(&format!("{stem}{CRT}")) && present(&format!("{stem}{KEY}")))
        .map(|stem| Pair {
            name: stem.to_ascii_lowercase(),
            crt: dir.join(format!("{stem}{CRT}")),
            key: dir.join(format!("{stem}{KEY}")),
        })
        .collect();
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    pairs
}

/// Parses a pair: the `.crt` chain (leaf first) and the `.key` (PKCS#8, PKCS#1 or SEC1),
/// checking that the key belongs to the leaf.
pub(crate) fn load(pair: &Pair, provider: &CryptoProvider) -> Result<Loaded, PairError> {
    let crt_pem = read(&pair.crt)?;
    let key_pem = read(&pair.key)?;
    let chain = CertificateDer::pem_slice_iter(&crt_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PairError::Pem {
            file: file_name(&pair.crt),
            source,
        })?;
    let Some(leaf) = chain.first() else {
        return Err(PairError::NoCertificate {
            file: file_name(&pair.crt),
        });
    };
    let not_after = not_after(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| PairError::Pem {
        file: file_name(&pair.key),
        source,
    })?;
    // `from_der` loads the key through the provider and checks it against the leaf.
    let key = CertifiedKey::from_der(chain, key, provider).map_err(PairError::Key)?;
    Ok(Loaded {
        key: Arc::new(key),
        not_after,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, PairError> {
    std::fs::read(path).map_err(|source| PairError::Read {
        file: file_name(path),
        source,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(OsStr::to_string_lossy)
        .unwrap_or_default()
        .into_owned()
}

/// The notAfter of a loaded pair's leaf, as unix seconds.
pub(crate) fn leaf_not_after(key: &CertifiedKey) -> Option<i64> {
    key.cert.first().and_then(not_after)
}

/// The leaf's notAfter as unix seconds; `None` when the DER does not parse as X.509.
fn not_after(leaf: &CertificateDer<'_>) -> Option<i64> {
    x509_parser::parse_x509_certificate(leaf.as_ref())
        .ok()
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pair_files_are_candidates() {
        for name in [
            "a.example.com.crt",
            "a.example.com.key",
            "default.crt",
            "x.key",
        ] {
            assert!(is_candidate(name), "{name}");
        }
        for name in [
            "a.example.com.dhparam.pem",
            "a.example.com.chain.pem",
            "dhparam.pem",
            "a.example.com.ca.crt",
            "ca.crt",
            "a.example.com.crl.pem",
            ".crt",
            "README",
        ] {
            assert!(!is_candidate(name), "{name}");
        }
    }

    #[test]
    fn client_cas_and_their_revocation_lists_are_found() {
        let dir = tempfile::TempDir::new().unwrap();
        for file in [
            "a.test.ca.crt",
            "a.test.crl.pem",
            "b.test.ca.crt",
            "ca.crt",
            "x.crl.pem",
        ] {
            std::fs::write(dir.path().join(file), "pem").unwrap();
        }
        let (pairs, fingerprint) = scan(dir.path()).unwrap();
        assert!(pairs.is_empty(), "CA files are not server pairs");
        let mut cas = fingerprint.client_cas(dir.path());
        cas.sort_by(|a, b| a.name.cmp(&b.name));
        let found: Vec<(&str, bool)> = cas
            .iter()
            .map(|c| (c.name.as_str(), c.crl.is_some()))
            .collect();
        assert_eq!(found, [("", false), ("a.test", true), ("b.test", false)]);
    }
}
