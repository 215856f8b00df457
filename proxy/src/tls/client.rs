//! Client certificates (mTLS) as nginx-proxy asks for them: a vhost whose client CA
//! (`<vhost>.ca.crt`, else `ca.crt`) is in the certificate folder asks TLS clients naming it for
//! a certificate, under its `…ssl_verify_client` mode; the verification result goes to the
//! requests of the connection ([`ClientVerify`]).
//!
//! As with nginx, the certificate never fails the handshake: rustls only checks that the client
//! holds the key of the certificate it sent, and the certificate is verified against the CA
//! (and its revocation list) once the handshake is done. A request on a vhost that requires a
//! certificate and has none, or one that does not verify, is answered 400 ("No required SSL
//! certificate was sent", "The SSL certificate error"); `optional_no_ca` lets a certificate of
//! an unknown issuer through as `FAILED:…`, as nginx does.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::lookup::CertIndex;
use crate::service::{ClientVerify, VerifyFailure, VerifyResult};
use crate::spec::VerifyClient;

/// How one handshake asks for a client certificate.
#[derive(Clone, Debug)]
pub(crate) enum ClientAuth {
    /// Not at all (no client CA for the vhost, or `off`).
    Off,
    /// Asked for, under `mode`, and verified against the client CA indexed as `name` by the
    /// index of `generation`.
    Verify {
        name: String,
        generation: u64,
        mode: VerifyClient,
        verifier: Arc<dyn ClientCertVerifier>,
    },
}

/// The part of [`ClientAuth`] that tells server configurations apart (the mode does not: it
/// only decides what the requests are told).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClientAuthKey {
    Off,
    Verify { name: String, generation: u64 },
}

impl ClientAuth {
    /// How clients of the vhost named `vhost` (its `VIRTUAL_HOST` entry) are asked, under
    /// `mode`, with the client CAs of `index`. nginx-proxy asks only when a CA file exists.
    pub(crate) fn for_vhost(index: &CertIndex, vhost: &str, mode: VerifyClient) -> ClientAuth {
        let Some((name, verifier)) = index.client_ca(vhost) else {
            return ClientAuth::Off;
        };
        if mode == VerifyClient::Off {
            return ClientAuth::Off;
        }
        ClientAuth::Verify {
            name: name.to_owned(),
            generation: index.generation(),
            mode,
            verifier: verifier.clone(),
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
        }
    }

    /// The verifier to configure rustls with; `None` for no client authentication.
    pub(crate) fn verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        match self {
            ClientAuth::Off => None,
            ClientAuth::Verify { verifier, .. } => Some(Arc::new(Deferred(verifier.clone()))),
        }
    }

    /// What the requests learn once the handshake is done, from the chain the client sent
    /// (`None`: no certificate), verified now.
    pub(crate) fn outcome(&self, chain: Option<&[CertificateDer<'_>]>) -> Option<ClientVerify> {
        let ClientAuth::Verify { mode, verifier, .. } = self else {
            return None;
        };
        let result = match chain {
            None | Some([]) => VerifyResult::None,
            Some([end_entity, intermediates @ ..]) => {
                match verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
                    Ok(_) => VerifyResult::Success,
                    Err(e) => VerifyResult::Failed(failure(&e)),
                }
            }
        };
        Some(ClientVerify {
            result,
            refused: refused(*mode, result),
        })
    }
}

/// Whether nginx answers a request 400 under `mode` after `result` (`ngx_http_process_request`):
/// `on` wants a verified certificate; `optional` one that verifies, if any; `optional_no_ca`
/// lets an unknown issuer through, never an expired or revoked certificate.
fn refused(mode: VerifyClient, result: VerifyResult) -> bool {
    match result {
        VerifyResult::Success => false,
        VerifyResult::None => mode == VerifyClient::On,
        VerifyResult::Failed(VerifyFailure::UnknownIssuer) => mode != VerifyClient::OptionalNoCa,
        VerifyResult::Failed(_) => true,
    }
}

/// The OpenSSL verification error nginx would report for rustls' `error`.
fn failure(error: &rustls::Error) -> VerifyFailure {
    let rustls::Error::InvalidCertificate(error) = error else {
        return VerifyFailure::Rejected;
    };
    match error {
        CertificateError::UnknownIssuer => VerifyFailure::UnknownIssuer,
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            VerifyFailure::Expired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            VerifyFailure::NotYetValid
        }
        CertificateError::Revoked => VerifyFailure::Revoked,
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => VerifyFailure::CrlExpired,
        CertificateError::BadSignature => VerifyFailure::BadSignature,
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            VerifyFailure::Purpose
        }
        _ => VerifyFailure::Rejected,
    }
}

/// Asks for a certificate and accepts any the client proves it holds the key of (the handshake
/// signature is verified by the CA's verifier); the certificate itself is verified after the
/// handshake ([`ClientAuth::outcome`]), so that a bad one gets nginx's 400, not a TLS alert.
#[derive(Debug)]
struct Deferred(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::VerifyFailure::{Expired, Rejected, Revoked, UnknownIssuer};
    use VerifyClient::{On, Optional, OptionalNoCa};

    #[test]
    fn requests_are_refused_where_nginx_refuses_them() {
        let cases = [
            (On, VerifyResult::Success, false),
            (On, VerifyResult::None, true),
            (On, VerifyResult::Failed(UnknownIssuer), true),
            (Optional, VerifyResult::None, false),
            (Optional, VerifyResult::Failed(UnknownIssuer), true),
            (Optional, VerifyResult::Failed(Expired), true),
            (OptionalNoCa, VerifyResult::None, false),
            (OptionalNoCa, VerifyResult::Failed(UnknownIssuer), false),
            (OptionalNoCa, VerifyResult::Failed(Revoked), true),
        ];
        for (mode, result, want) in cases {
            assert_eq!(refused(mode, result), want, "{mode:?} {result:?}");
        }
    }

    #[test]
    fn rustls_errors_read_as_openssl_reports_them() {
        let invalid = rustls::Error::InvalidCertificate;
        assert_eq!(failure(&invalid(CertificateError::Revoked)), Revoked);
        assert_eq!(failure(&invalid(CertificateError::Expired)), Expired);
        assert_eq!(failure(&rustls::Error::General("x".into())), Rejected);
        assert_eq!(
            VerifyResult::Failed(Revoked).as_str(),
            "FAILED:certificate revoked"
        );
    }
}
