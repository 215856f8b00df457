use std::path::Path;
use std::sync::Arc;

use dockhand_testkit::certs::TestCa;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;
use tempfile::TempDir;

use super::*;
use crate::certs::CertLookup;
use crate::metrics::Metrics;
use crate::spec::{HttpsMethod, HttpsPolicy, TableSpec, VhostSpec};
use crate::table::{BackendRegistry, RouteTable, TableReader};

/// A leaf for `name`: (chain PEM with the CA, PKCS#8 key PEM, leaf DER).
fn leaf(ca: &TestCa, name: &str) -> (String, String, Vec<u8>) {
    let issued = ca.issue(&[name]);
    (issued.chain_pem, issued.key_pem, issued.der)
}

/// Writes `<name>.crt`/`.key` for a fresh leaf of `name` and returns the leaf DER.
fn write_pair(ca: &TestCa, dir: &Path, name: &str) -> Vec<u8> {
    let (crt, key, der) = leaf(ca, name);
    std::fs::write(dir.join(format!("{name}.crt")), crt).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
    der
}

fn store(dir: &Path) -> CertStore {
    let metrics = TlsMetrics::new(&prometheus::Registry::new()).unwrap();
    CertStore::new(dir.to_path_buf(), metrics)
}

fn leaf_der(key: Option<&Arc<CertifiedKey>>) -> Option<Vec<u8>> {
    key.map(|k| k.cert[0].to_vec())
}

fn policy(change: impl FnOnce(&mut HttpsPolicy)) -> HttpsPolicy {
    let mut policy = HttpsPolicy::default();
    change(&mut policy);
    policy
}

#[test]
fn lookup_follows_nginx_proxy_order() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let named = write_pair(&ca, dir.path(), "named.example");
    let exact = write_pair(&ca, dir.path(), "exact.example.com");
    let parent = write_pair(&ca, dir.path(), "example.com");
    let default = write_pair(&ca, dir.path(), "default");
    let store = store(dir.path());
    assert_eq!(store.reload().loaded, 4);
    let index = store.index();
    let trusted = HttpsPolicy::default();
    let untrusted = policy(|p| p.trust_default_cert = false);
    let cert_name = policy(|p| p.cert_name = Some("named.example".into()));
    let missing_name = policy(|p| p.cert_name = Some("absent".into()));

    let pick = |vhost: &str, policy: &HttpsPolicy| leaf_der(index.for_vhost(vhost, policy));
    assert_eq!(pick("exact.example.com", &cert_name), Some(named.clone()));
    assert_eq!(pick("exact.example.com", &trusted), Some(exact.clone()));
    assert_eq!(pick("a.example.com", &trusted), Some(parent.clone()));
    assert_eq!(pick("*.example.com", &trusted), Some(parent.clone()));
    // Never the grandparent.
    assert_eq!(pick("a.b.example.com", &trusted), Some(default.clone()));
    assert_eq!(pick("a.b.example.com", &untrusted), None);
    assert_eq!(
        pick("exact.example.com", &missing_name),
        Some(default.clone())
    );
    assert_eq!(pick("other.org", &untrusted), None);

    // Names no HTTPS vhost serves: exact or parent when present, else default.
    assert_eq!(
        leaf_der(index.for_fallback(Some("x.example.com"))),
        Some(parent)
    );
    assert_eq!(
        leaf_der(index.for_fallback(Some("unknown.org"))),
        Some(default.clone())
    );
    assert_eq!(leaf_der(index.for_fallback(None)), Some(default.clone()));
    // A `nohttps` vhost is left to the fallback server: default.crt, not its own.
    let nohttps = policy(|p| p.method = HttpsMethod::NoHttps);
    assert_eq!(
        leaf_der(index.select(
            Some("exact.example.com"),
            Some(("exact.example.com", &nohttps))
        )),
        Some(default)
    );
    // A regex vhost is looked up by the client's name.
    assert_eq!(
        leaf_der(index.select(Some("exact.example.com"), Some(("~^exact\\.", &untrusted)))),
        Some(exact)
    );
    assert!(store.has_usable_cert("a.example.com", &untrusted));
    assert!(!store.has_usable_cert("a.b.example.com", &untrusted));
}

#[test]
fn without_default_unknown_names_get_nothing() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    write_pair(&ca, dir.path(), "site.example.com");
    let store = store(dir.path());
    store.reload();
    let index = store.index();
    assert!(index.for_fallback(Some("unknown.org")).is_none());
    assert!(index.for_fallback(None).is_none());
    assert!(index.for_fallback(Some("site.example.com")).is_some());
}

fn vhost(host: &str, https: HttpsPolicy) -> VhostSpec {
    VhostSpec {
        host: host.to_owned(),
        paths: Vec::new(),
        https,
    }
}

#[test]
fn route_table_supplies_the_vhost_and_its_policy() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let named = write_pair(&ca, dir.path(), "shared");
    let default = write_pair(&ca, dir.path(), "default");
    let store = store(dir.path());
    store.reload();
    let spec = TableSpec {
        vhosts: vec![
            vhost(
                "app.example.com",
                policy(|p| p.cert_name = Some("shared".into())),
            ),
            vhost(
                "strict.example.com",
                policy(|p| p.trust_default_cert = false),
            ),
        ],
        default_host: None,
    };
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let table = RouteTable::build(&spec, 1, &metrics, &BackendRegistry::new());
    let index = store.index();
    let resolve = |sni: Option<&str>| leaf_der(index.select(sni, table.https_vhost(sni)));
    assert_eq!(resolve(Some("app.example.com")), Some(named));
    assert_eq!(resolve(Some("strict.example.com")), None);
    assert_eq!(resolve(Some("elsewhere.org")), Some(default.clone()));
    assert_eq!(resolve(None), Some(default));
}

#[test]
fn bad_pairs_are_named_and_skipped_and_reported_once() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let good = write_pair(&ca, dir.path(), "good.example");
    std::fs::write(dir.path().join("garbage.example.crt"), "not pem").unwrap();
    std::fs::write(dir.path().join("garbage.example.key"), "not pem").unwrap();
    // A certificate with somebody else's key.
    let (crt, _, _) = leaf(&ca, "mismatch.example");
    let (_, other_key, _) = leaf(&ca, "other.example");
    std::fs::write(dir.path().join("mismatch.example.crt"), crt).unwrap();
    std::fs::write(dir.path().join("mismatch.example.key"), other_key).unwrap();
    let store = store(dir.path());

    let report = store.reload();
    assert_eq!(report.loaded, 1);
    let mut bad: Vec<&str> = report.errors.iter().map(|(n, _)| n.as_str()).collect();
    bad.sort_unstable();
    assert_eq!(bad, ["garbage.example", "mismatch.example"]);
    assert_eq!(report.reported, 2);
    assert_eq!(leaf_der(store.index().get("good.example")), Some(good));

    let again = store.reload();
    assert_eq!(again.errors.len(), 2);
    assert_eq!(
        again.reported, 0,
        "unchanged bad pairs are warned about once"
    );
}

#[test]
fn other_nginx_proxy_files_and_lone_halves_are_ignored() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    write_pair(&ca, dir.path(), "site.example");
    let (crt, _, _) = leaf(&ca, "lonely.example");
    for name in [
        "site.example.dhparam.pem",
        "site.example.chain.pem",
        "dhparam.pem",
        "site.example.crl.pem",
    ] {
        std::fs::write(dir.path().join(name), "ignored").unwrap();
    }
    std::fs::write(dir.path().join("site.example.ca.crt"), &crt).unwrap();
    std::fs::write(dir.path().join("lonely.example.crt"), &crt).unwrap();
    let store = store(dir.path());
    let report = store.reload();
    assert_eq!(report.loaded, 1, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(store.index().get("lonely.example").is_none());
}

#[test]
fn sec1_keys_are_accepted() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let (crt, pkcs8_pem, der) = leaf(&ca, "sec1.example");
    let pkcs8 =
        rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pkcs8_pem.as_bytes()).unwrap();
    // PKCS#8 wraps the SEC1 ECPrivateKey in its third field, an OCTET STRING.
    let (_, outer) = x509_parser::der_parser::parse_der(pkcs8.secret_pkcs8_der()).unwrap();
    let sec1 = outer.as_sequence().unwrap()[2].as_slice().unwrap();
    let pem = format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        base64(sec1)
    );
    std::fs::write(dir.path().join("sec1.example.crt"), crt).unwrap();
    std::fs::write(dir.path().join("sec1.example.key"), pem).unwrap();
    let store = store(dir.path());
    let report = store.reload();
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(leaf_der(store.index().get("sec1.example")), Some(der));
}

/// Standard base64 with padding, enough for a test PEM body.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn symlinked_pairs_are_followed_and_renewals_behind_them_seen() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let host_dir = dir.path().join("site.example");
    std::fs::create_dir(&host_dir).unwrap();
    let (crt, key, first) = leaf(&ca, "site.example");
    std::fs::write(host_dir.join("fullchain.pem"), crt).unwrap();
    std::fs::write(host_dir.join("key.pem"), key).unwrap();
    std::os::unix::fs::symlink(
        "./site.example/fullchain.pem",
        dir.path().join("site.example.crt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "./site.example/key.pem",
        dir.path().join("site.example.key"),
    )
    .unwrap();
    // A dangling link is no pair.
    std::os::unix::fs::symlink("./nowhere.pem", dir.path().join("gone.example.crt")).unwrap();
    std::os::unix::fs::symlink("./nowhere.key", dir.path().join("gone.example.key")).unwrap();
    let store = store(dir.path());
    assert!(store.reload_if_changed());
    assert_eq!(leaf_der(store.index().get("site.example")), Some(first));
    assert!(store.index().get("gone.example").is_none());

    // Renewal: new files renamed over the targets, the links untouched.
    let (crt, key, second) = leaf(&ca, "site.example");
    std::fs::write(host_dir.join("fullchain.new"), crt).unwrap();
    std::fs::write(host_dir.join("key.new"), key).unwrap();
    std::fs::rename(
        host_dir.join("fullchain.new"),
        host_dir.join("fullchain.pem"),
    )
    .unwrap();
    std::fs::rename(host_dir.join("key.new"), host_dir.join("key.pem")).unwrap();
    assert!(store.reload_if_changed());
    assert_eq!(leaf_der(store.index().get("site.example")), Some(second));
}

#[test]
fn reload_sees_added_replaced_and_removed_pairs() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let store = store(dir.path());
    assert!(store.reload_if_changed(), "the first poll always loads");
    assert!(store.is_empty());
    assert!(!store.reload_if_changed(), "nothing changed");

    let first = write_pair(&ca, dir.path(), "site.example");
    assert!(store.reload_if_changed());
    assert_eq!(leaf_der(store.index().get("site.example")), Some(first));
    assert!(!store.reload_if_changed());

    // Replaced the way certificate tools do it: written aside, renamed over.
    let (crt, key, second) = leaf(&ca, "site.example");
    std::fs::write(dir.path().join("tmp-crt"), crt).unwrap();
    std::fs::write(dir.path().join("tmp-key"), key).unwrap();
    std::fs::rename(
        dir.path().join("tmp-crt"),
        dir.path().join("site.example.crt"),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("tmp-key"),
        dir.path().join("site.example.key"),
    )
    .unwrap();
    assert!(store.reload_if_changed());
    assert_eq!(leaf_der(store.index().get("site.example")), Some(second));

    std::fs::remove_file(dir.path().join("site.example.key")).unwrap();
    assert!(store.reload_if_changed());
    assert!(store.is_empty());
}

#[test]
fn a_pair_broken_after_loading_keeps_its_last_good_certificate() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let good = write_pair(&ca, dir.path(), "site.example");
    let store = store(dir.path());
    store.reload();
    // Half-way through a replacement: a new certificate beside the old key.
    let (crt, _, _) = leaf(&ca, "site.example");
    std::fs::write(dir.path().join("site.example.crt"), crt).unwrap();
    let report = store.reload();
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(report.loaded, 1);
    assert_eq!(leaf_der(store.index().get("site.example")), Some(good));
    std::fs::remove_file(dir.path().join("site.example.crt")).unwrap();
    store.reload();
    assert!(
        store.is_empty(),
        "removing the files removes the certificate"
    );
}

#[test]
fn a_missing_folder_holds_no_certificates() {
    let dir = TempDir::new().unwrap();
    let store = store(&dir.path().join("absent"));
    let report = store.reload();
    assert_eq!(report, ReloadReport::default());
    assert!(store.is_empty());
}

#[tokio::test]
async fn watch_picks_up_a_new_pair() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    let store = store(dir.path());
    let watcher = tokio::spawn(store.clone().watch(std::time::Duration::from_millis(20)));
    let der = write_pair(&ca, dir.path(), "late.example");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while leaf_der(store.index().get("late.example")).as_ref() != Some(&der) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher never loaded the pair"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    watcher.abort();
}

#[test]
fn server_config_offers_h2_and_http1() {
    let dir = TempDir::new().unwrap();
    let configs = server_config(
        store(dir.path()),
        TableReader::default(),
        TlsOptions::default(),
    );
    let config = configs
        .configs
        .get(crate::spec::SslPolicy::DEFAULT, true, &ClientAuth::Off);
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let config = configs
        .configs
        .get(crate::spec::SslPolicy::DEFAULT, false, &ClientAuth::Off);
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

#[test]
fn the_dashboard_names_each_vhosts_certificate_and_its_expiry() {
    let ca = TestCa::new();
    let dir = TempDir::new().unwrap();
    write_pair(&ca, dir.path(), "example.com");
    write_pair(&ca, dir.path(), "default");
    let store = store(dir.path());
    store.reload();
    let index = store.index();
    let trusted = HttpsPolicy::default();
    let (name, not_after) = index.vhost_cert("www.example.com", &trusted).unwrap();
    assert_eq!(name, "example.com", "the parent domain's pair");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(not_after.is_some_and(|t| t > now), "{not_after:?}");
    let other = index
        .vhost_cert("other.test", &trusted)
        .map(|(name, _)| name);
    assert_eq!(other, Some("default"));
    let untrusted = policy(|p| p.trust_default_cert = false);
    assert_eq!(index.vhost_cert("other.test", &untrusted), None);
}
