//! Client certificates (mTLS) as nginx-proxy asks for them: a vhost whose client CA
//! (`<vhost>.ca.crt`, else `ca.crt`) is in the certificate folder asks TLS clients naming it for
//! a certificate, under its `…ssl_verify_client` mode; the verification result goes to the
//! requests of the connection ([`ClientVerify`]).
//!
//! As with nginx, a missing certificate does not fail the handshake: a request on a vhost that
//! requires one is answered 400. A certificate that does not verify (unknown issuer, expired,
//! revoked by the CRL) fails the handshake, where nginx would answer 400 after it.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::lookup::CertIndex;
use crate::service::{ClientVerify, VerifyResult};
use crate::spec::VerifyClient;

/// How one handshake asks for a client certificate.
#[derive(Clone, Debug)]
pub(crate) enum ClientAuth {
    /// Not at all (no client CA for the vhost, or `off`).
    Off,
    /// Verified against the client CA indexed as `name` by the index of `generation`.
    Verify {
        name: String,
        generation: u64,
        required: bool,
        verifier: Arc<dyn ClientCertVerifier>,
    },
    /// Any certificate, unverified (`optional_no_ca`).
    AnyCert,
}

/// The part of [`ClientAuth`] that tells server configurations apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClientAuthKey {
    Off,
    Verify { name: String, generation: u64 },
    AnyCert,
}

impl ClientAuth {
    /// How clients of the vhost named `vhost` (its `VIRTUAL_HOST` entry) are asked, under
    /// `mode`, with the client CAs of `index`. nginx-proxy asks only when a CA file exists.
    pub(crate) fn for_vhost(index: &CertIndex, vhost: &str, mode: VerifyClient) -> ClientAuth {
        let Some((name, verifier)) = index.client_ca(vhost) else {
            return ClientAuth::Off;
        };
        match mode {
            VerifyClient::Off => ClientAuth::Off,
            VerifyClient::OptionalNoCa => ClientAuth::AnyCert,
            VerifyClient::On | VerifyClient::Optional => ClientAuth::Verify {
                name: name.to_owned(),
                generation: index.generation(),
                required: mode == VerifyClient::On,
                verifier: verifier.clone(),
            },
        }
    }

    pub(crate) fn key(&self) -> ClientAuthKey {
        match self {
            ClientAuth::Off => ClientAuthKey::Off,
            ClientAuth::Verify {
                name, generation, ..
            } => ClientAuthKey::Verify {
                name: name.clone(),
                generation: *generation,
            },
            ClientAuth::AnyCert => ClientAuthKey::AnyCert,
        }
    }

    /// The verifier to configure rustls with; `None` for no client authentication.
    pub(crate) fn verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Option<Arc<dyn ClientCertVerifier>> {
        match self {
            ClientAuth::Off => None,
            ClientAuth::Verify { verifier, .. } => Some(verifier.clone()),
            ClientAuth::AnyCert => Some(Arc::new(AnyClientCert(provider.clone()))),
        }
    }

    /// What the requests learn once the handshake is done: `presented` is whether the client
    /// sent a certificate (rustls verified it, where a CA is configured).
    pub(crate) fn outcome(&self, presented: bool) -> Option<ClientVerify> {
        let (result, required) = match (self, presented) {
            (ClientAuth::Off, _) => return None,
            (_, false) => (
                VerifyResult::None,
                matches!(self, ClientAuth::Verify { required: true, .. }),
            ),
            (ClientAuth::Verify { required, .. }, true) => (VerifyResult::Success, *required),
            (ClientAuth::AnyCert, true) => (VerifyResult::Unverified, false),
        };
        Some(ClientVerify { result, required })
    }
}

/// `optional_no_ca`: any client certificate is accepted, though the client must still prove it
/// holds its key (the handshake signature is verified).
#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
