//! Dangerous client-side TLS settings the harness needs for probing, kept apart by name
//! (as `rustls::client::danger`): a server verifier that records instead of judging, a
//! resolver that presents any certificate with any key, and an RSA-1024 signer.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{DigitallySignedStruct, Error, SignatureAlgorithm, SignatureScheme};

/// Accepts any server certificate, so that a refusal seen by a client-certificate check is
/// the IUT's doing and not the harness's. Handshake signatures are still verified.
#[derive(Debug)]
pub(crate) struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyServerCert {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyServerCert { provider }
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Presents one certificate chain with one key, without rustls's check that they match:
/// the key-mismatch certificate must reach the server as it is.
#[derive(Debug)]
pub(crate) struct PresentAlways(pub Arc<CertifiedKey>);

impl ResolvesClientCert for PresentAlways {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Loads a private key with the provider, falling back to the pure-Rust RSA signer for keys
/// the provider refuses (RSA under 2048 bits).
pub(crate) fn signing_key(
    provider: &CryptoProvider,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<dyn SigningKey>> {
    let der = key.secret_der().to_vec();
    match provider.key_provider.load_private_key(key) {
        Ok(k) => Ok(k),
        Err(first) => {
            use rsa::pkcs8::DecodePrivateKey;
            let rsa = rsa::RsaPrivateKey::from_pkcs8_der(&der)
                .map_err(|_| anyhow::anyhow!("unusable private key: {first}"))?;
            Ok(Arc::new(WeakRsaKey(Arc::new(rsa))))
        }
    }
}

#[derive(Debug)]
struct WeakRsaKey(Arc<rsa::RsaPrivateKey>);

impl SigningKey for WeakRsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        [
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
        ]
        .into_iter()
        .find(|s| offered.contains(s))
        .map(|scheme| {
            Box::new(WeakRsaSigner {
                key: self.0.clone(),
                scheme,
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

#[derive(Debug)]
struct WeakRsaSigner {
    key: Arc<rsa::RsaPrivateKey>,
    scheme: SignatureScheme,
}

impl Signer for WeakRsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
        let mut rng = rand::rngs::OsRng;
        let key = (*self.key).clone();
        match self.scheme {
            SignatureScheme::RSA_PSS_SHA256 => {
                Ok(rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(key)
                    .sign_with_rng(&mut rng, message)
                    .to_vec())
            }
            _ => Ok(rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
                .sign(message)
                .to_vec()),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
