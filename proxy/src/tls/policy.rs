//! `SSL_POLICY`: nginx-proxy's named TLS policies mapped to what rustls offers, and one rustls
//! [`ServerConfig`] per policy and HTTP/2 choice, chosen per handshake from the client's server
//! name.
//!
//! rustls speaks TLS 1.2 and 1.3 with AEAD suites and ECDHE key exchange only: no TLS 1.0/1.1,
//! no CBC, no static RSA or DHE. A policy is honoured exactly when the suites it lists beyond
//! those are none; otherwise its nearest subset is served and the policy is reported once, by
//! name. `Mozilla-Intermediate`'s DHE suites are the exception: docs/https.md says they are not
//! offered, and the default policy does not warn on every start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::crypto::ring::{cipher_suite as suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use super::client::{ClientAuth, ClientAuthKey};
use crate::spec::SslPolicy;

/// What rustls can offer of one policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    /// TLS 1.3 offered.
    pub(crate) tls13: bool,
    /// TLS 1.2 offered (always with ECDHE AES-GCM).
    pub(crate) tls12: bool,
    /// ChaCha20-Poly1305 offered in TLS 1.2.
    pub(crate) tls12_chacha: bool,
    /// Whether the policy is honoured as written (see the module docs).
    pub(crate) exact: bool,
}

/// The nearest profile to `policy`, from nginx-proxy's and AWS's lists of versions and suites.
pub(crate) fn profile(policy: SslPolicy) -> Profile {
    let p = |tls13, tls12, tls12_chacha, exact| Profile {
        tls13,
        tls12,
        tls12_chacha,
        exact,
    };
    match policy.name() {
        // TLS 1.3 only.
        "Mozilla-Modern" | "AWS-TLS13-1-3-2021-06" => p(true, false, false, true),
        // ECDHE (and DHE, see the module docs) with AES-GCM and ChaCha20.
        "Mozilla-Intermediate" => p(true, true, true, true),
        // ECDHE AES-GCM only, as rustls has it.
        "AWS-TLS13-1-2-Res-2021-06" => p(true, true, false, true),
        "AWS-FS-1-2-Res-2020-10" => p(false, true, false, true),
        // TLS 1.0/1.1 and CBC suites (and, for the old ones, static RSA and 3DES) dropped.
        "Mozilla-Old" => p(true, true, true, false),
        "AWS-TLS13-1-2-2021-06"
        | "AWS-TLS13-1-2-Ext1-2021-06"
        | "AWS-TLS13-1-2-Ext2-2021-06"
        | "AWS-TLS13-1-1-2021-06"
        | "AWS-TLS13-1-0-2021-06" => p(true, true, false, false),
        _ => p(false, true, false, false),
    }
}

/// The server configurations for every policy and HTTP/2 choice in use, built when first asked
/// for and kept.
pub(crate) struct Configs {
    resolver: Arc<dyn ResolvesServerCert>,
    built: Mutex<HashMap<(SslPolicy, bool, ClientAuthKey), Arc<ServerConfig>>>,
    /// Inexact policies already reported.
    warned: Mutex<std::collections::HashSet<SslPolicy>>,
}

impl std::fmt::Debug for Configs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configs").finish_non_exhaustive()
    }
}

impl Configs {
    pub(crate) fn new(resolver: Arc<dyn ResolvesServerCert>) -> Configs {
        Configs {
            resolver,
            built: Mutex::new(HashMap::new()),
            warned: Mutex::default(),
        }
    }

    /// The configuration for `policy`, with `h2` offered by ALPN or not, asking for client
    /// certificates as `auth` says. The first use of a policy that cannot be honoured exactly
    /// logs a warning naming it.
    pub(crate) fn get(&self, policy: SslPolicy, h2: bool, auth: &ClientAuth) -> Arc<ServerConfig> {
        let key = (policy, h2, auth.key());
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = built.get(&key) {
            return config.clone();
        }
        if let ClientAuthKey::Verify { generation, .. } = &key.2 {
            // Configurations of client CAs from an older reload are never asked for again.
            built.retain(|(_, _, k), _| match k {
                ClientAuthKey::Verify { generation: g, .. } => g == generation,
                _ => true,
            });
        }
        let profile = profile(policy);
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if !profile.exact && warned.insert(policy) {
            tracing::warn!(
                policy = policy.name(),
                tls13 = profile.tls13,
                tls12 = profile.tls12,
                "SSL_POLICY cannot be honoured exactly: rustls offers TLS 1.2 and 1.3 with \
                 ECDHE and AEAD suites only; serving the nearest subset"
            );
        }
        let config = Arc::new(build(profile, h2, self.resolver.clone(), auth));
        built.insert(key, config.clone());
        config
    }
}

/// ALPN protocols offered, most preferred first.
const ALPN_H2: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn build(
    profile: Profile,
    h2: bool,
    resolver: Arc<dyn ResolvesServerCert>,
    auth: &ClientAuth,
) -> ServerConfig {
    let mut suites: Vec<SupportedCipherSuite> = Vec::new();
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if profile.tls13 {
        versions.push(&rustls::version::TLS13);
        suites.extend([
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
        ]);
    }
    if profile.tls12 {
        versions.push(&rustls::version::TLS12);
        suites.extend([
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ]);
        if profile.tls12_chacha {
            suites.extend([
                suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ]);
        }
    }
    let provider = CryptoProvider {
        cipher_suites: suites,
        ..default_provider()
    };
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        // Every profile has a version and a suite for it, all implemented by ring.
        .expect("the ring provider supports every profile");
    let builder = match auth.verifier() {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    let alpn: &[&[u8]] = if h2 { &ALPN_H2 } else { &ALPN_H2[1..] };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_maps_to_a_buildable_profile() {
        for name in SslPolicy::NAMES {
            let policy = SslPolicy::parse(name).expect("a known name");
            let p = profile(policy);
            assert!(p.tls12 || p.tls13, "{name} offers a version");
            let resolver = Arc::new(rustls::server::ResolvesServerCertUsingSni::new());
            let config = build(p, false, resolver, &ClientAuth::Off);
            assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
    }

    #[test]
    fn exact_and_nearest_profiles() {
        let p = |name| profile(SslPolicy::parse(name).expect("known"));
        assert_eq!(
            p("Mozilla-Modern"),
            Profile {
                tls13: true,
                tls12: false,
                tls12_chacha: false,
                exact: true
            }
        );
        assert!(p("Mozilla-Intermediate").exact && p("Mozilla-Intermediate").tls12_chacha);
        assert!(!p("Mozilla-Old").exact);
        assert!(p("AWS-FS-1-2-Res-2020-10").exact && !p("AWS-FS-1-2-Res-2020-10").tls13);
        assert!(!p("AWS-2015-05").exact && !p("AWS-2015-05").tls13);
    }
}
