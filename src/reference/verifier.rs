//! The reference IUT's client-certificate policy: rustls's WebPKI verifier with the CA's
//! CRLs, plus the checks WebPKI leaves to the application (key strength). Seeded defects
//! weaken it by accepting specific verification errors, so each defect breaks one rule.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};

use super::defects::{Defect, Defects};
use crate::pki::{rsa_key_bits, Pki};

/// Keys below this are refused (NIST SP 800-131A, and the floor of WebPKI's RSA algorithms).
const MIN_RSA_BITS: usize = 2048;

#[derive(Debug)]
pub(super) struct PolicyVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    defects: Defects,
}

#[derive(Debug)]
struct WeakKey(usize);

impl std::fmt::Display for WeakKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSA key of {} bits is below the {MIN_RSA_BITS}-bit minimum",
            self.0
        )
    }
}

impl std::error::Error for WeakKey {}

impl PolicyVerifier {
    pub(super) fn new(
        pki: &Pki,
        provider: Arc<CryptoProvider>,
        defects: Defects,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for r in pki.trust_roots()? {
            roots.add(r)?;
        }
        let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if !defects.has(Defect::IgnoreCrl) {
            builder = builder.with_crls(pki.crls()?);
        }
        if defects.has(Defect::AcceptNoCert) {
            builder = builder.allow_unauthenticated();
        }
        Ok(PolicyVerifier {
            inner: builder.build()?,
            defects,
        })
    }

    /// Whether a seeded defect makes this verification error acceptable.
    fn excused(&self, err: &Error) -> bool {
        let Error::InvalidCertificate(e) = err else {
            return false;
        };
        let d = &self.defects;
        match e {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                d.has(Defect::AcceptExpiredCert)
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                d.has(Defect::AcceptNotYetValidCert)
            }
            CertificateError::Revoked => d.has(Defect::IgnoreCrl),
            CertificateError::UnknownIssuer => d.has(Defect::TrustAnyRoot),
            CertificateError::BadSignature => d.has(Defect::IgnoreCertSignature),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                d.has(Defect::IgnoreEku)
            }
            _ => false,
        }
    }

    /// The client's handshake signature proves it holds the key; `verify` is WebPKI's check
    /// for the TLS version at hand.
    fn proof_of_possession(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        verify: impl FnOnce() -> Result<HandshakeSignatureValid, Error>,
    ) -> Result<HandshakeSignatureValid, Error> {
        if self.defects.has(Defect::SkipProofOfPossession) {
            return Ok(HandshakeSignatureValid::assertion());
        }
        if self.defects.has(Defect::AcceptWeakKey) && Self::weak_rsa(cert).is_some() {
            return legacy_rsa::verify(message, cert, dss);
        }
        verify()
    }

    fn weak_rsa(cert: &CertificateDer<'_>) -> Option<usize> {
        rsa_key_bits(cert).filter(|bits| *bits < MIN_RSA_BITS)
    }
}

impl ClientCertVerifier for PolicyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(_) => {}
            Err(e) if self.excused(&e) => {}
            Err(e) => return Err(e),
        }
        if let Some(bits) = Self::weak_rsa(end_entity) {
            if !self.defects.has(Defect::AcceptWeakKey) {
                return Err(Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(WeakKey(bits))),
                )));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.proof_of_possession(message, cert, dss, || {
            self.inner.verify_tls12_signature(message, cert, dss)
        })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.proof_of_possession(message, cert, dss, || {
            self.inner.verify_tls13_signature(message, cert, dss)
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Signature checks for RSA keys below WebPKI's 2048-bit floor, which only the
/// `accept-weak-key` defect uses.
mod legacy_rsa {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::pki_types::CertificateDer;
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};
    use sha2::Sha256;
    use x509_parser::prelude::*;

    pub(super) fn verify(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let bad = || Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let (_, x) = X509Certificate::from_der(cert).map_err(|_| bad())?;
        let key = rsa::RsaPublicKey::from_public_key_der(x.public_key().raw).map_err(|_| bad())?;
        let ok = match dss.scheme {
            SignatureScheme::RSA_PSS_SHA256 => {
                let sig = rsa::pss::Signature::try_from(dss.signature()).map_err(|_| bad())?;
                rsa::pss::VerifyingKey::<Sha256>::new(key)
                    .verify(message, &sig)
                    .is_ok()
            }
            SignatureScheme::RSA_PKCS1_SHA256 => {
                let sig = rsa::pkcs1v15::Signature::try_from(dss.signature()).map_err(|_| bad())?;
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
                    .verify(message, &sig)
                    .is_ok()
            }
            _ => false,
        };
        if ok {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(bad())
        }
    }
}

/// `sender-accepts-bad-cert`: the sender's own "verify = false", as a careless client has
/// it: any server certificate is taken; handshake signatures are still checked, since
/// TLS itself needs them.
#[derive(Debug)]
pub(super) struct NoServerCheck(pub(super) Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoServerCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
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
