//! The reference IUT's OCSP check of client certificates (`--ocsp`): after the handshake
//! it asks the responder named in the certificate's Authority Information Access, checks
//! the answer's signature (the CA's, or a responder certificate the CA issued for OCSP
//! signing), nonce and times, and refuses what is not `good`. rustls verifiers are
//! synchronous, so the query runs in the connection's task with a deadline. Answers are
//! kept per serial for the life of the process. The query fails closed: a certificate
//! whose status cannot be learned is refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::Digest;
use x509_cert::der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};
use x509_parser::prelude::*;

use crate::pki::Pki;

/// How long one query may take, connection included.
const QUERY_DEADLINE: Duration = Duration::from_secs(3);
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
const ID_KP_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";

struct Issuer {
    subject: Vec<u8>,
    spki_bits: Vec<u8>,
}

/// Asks the responder about client certificates and remembers the answers.
pub(super) struct OcspChecker {
    issuers: Vec<Issuer>,
    /// By serial: `Ok` for good, `Err(why)` for revoked or unknown.
    answers: Mutex<HashMap<Vec<u8>, Result<(), String>>>,
}

impl OcspChecker {
    pub(super) fn new(pki: &Pki) -> anyhow::Result<Self> {
        let mut issuers = Vec::new();
        for a in &pki.manifest.authorities {
            let certs = crate::pki::read_certs(&pki.path(&a.cert))?;
            let der = certs.first().ok_or_else(|| anyhow!("{}: empty", a.cert))?;
            let (_, x) = X509Certificate::from_der(der)
                .map_err(|e| anyhow!("{}: not a certificate ({e})", a.cert))?;
            issuers.push(Issuer {
                subject: x.tbs_certificate.subject.as_raw().to_vec(),
                spki_bits: x.public_key().subject_public_key.data.to_vec(),
            });
        }
        Ok(OcspChecker {
            issuers,
            answers: Mutex::new(HashMap::new()),
        })
    }

    /// `Ok` to serve the client; `Err(reason)` to refuse it. A certificate that names no
    /// responder is left to the CRL.
    pub(super) async fn check(&self, leaf: &[u8]) -> Result<(), String> {
        let Ok((_, x)) = X509Certificate::from_der(leaf) else {
            return Err("the client certificate cannot be read".into());
        };
        let Some(url) = responder_url(&x) else {
            return Ok(());
        };
        let serial = x.tbs_certificate.raw_serial().to_vec();
        if let Some(known) = self
            .answers
            .lock()
            .ok()
            .and_then(|a| a.get(&serial).cloned())
        {
            return known;
        }
        let issuer_raw = x.tbs_certificate.issuer.as_raw();
        let Some(issuer) = self.issuers.iter().find(|i| i.subject == issuer_raw) else {
            return Err("the client certificate's issuer is not a known CA".into());
        };
        let answer = match tokio::time::timeout(QUERY_DEADLINE, query(&url, issuer, &serial)).await
        {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                return Err(format!(
                    "the OCSP responder at {url} gave no usable answer: {e:#}"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "the OCSP responder at {url} did not answer within {QUERY_DEADLINE:?}"
                ))
            }
        };
        if let Ok(mut a) = self.answers.lock() {
            a.insert(serial, answer.clone());
        }
        answer
    }
}

fn responder_url(x: &X509Certificate<'_>) -> Option<String> {
    x.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                aia.accessdescs.iter().find_map(|d| {
                    match (
                        &d.access_location,
                        d.access_method.to_id_string() == ID_AD_OCSP,
                    ) {
                        (GeneralName::URI(u), true) => Some(u.to_string()),
                        _ => None,
                    }
                })
            }
            _ => None,
        })
}

/// One request: `Ok(Ok)` good, `Ok(Err)` revoked or unknown; `Err` when the answer
/// cannot be trusted or read.
async fn query(url: &str, issuer: &Issuer, serial: &[u8]) -> anyhow::Result<Result<(), String>> {
    let cert_id = CertId {
        hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(x509_cert::der::asn1::Any::null()),
        },
        issuer_name_hash: OctetString::new(sha1::Sha1::digest(&issuer.subject).to_vec())?,
        issuer_key_hash: OctetString::new(sha1::Sha1::digest(&issuer.spki_bits).to_vec())?,
        serial_number: x509_cert::serial_number::SerialNumber::new(serial)?,
    };
    let nonce: [u8; 16] = rand::random();
    let nonce_ext = Extension {
        extn_id: ID_NONCE,
        critical: false,
        extn_value: OctetString::new(OctetString::new(nonce.to_vec())?.to_der()?)?,
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: Some(vec![nonce_ext.clone()]),
        },
        optional_signature: None,
    };
    let body = post(url, request.to_der()?).await?;
    let response = OcspResponse::from_der(&body).context("not an OCSPResponse")?;
    if response.response_status != OcspResponseStatus::Successful {
        bail!("response status {:?}", response.response_status);
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| anyhow!("a successful response without responseBytes"))?;
    if bytes.response_type != ID_BASIC {
        bail!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        );
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
    verify_signer(&basic, issuer)?;
    let echoed = basic
        .tbs_response_data
        .response_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ID_NONCE);
    if echoed.is_some_and(|e| e.extn_value != nonce_ext.extn_value) {
        bail!("the response carries another request's nonce");
    }
    let now = std::time::SystemTime::now();
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| r.cert_id == cert_id)
        .ok_or_else(|| anyhow!("the response says nothing about the certificate asked"))?;
    let this = single.this_update.0.to_system_time();
    if this > now + Duration::from_secs(300) {
        bail!("the answer's thisUpdate is in the future");
    }
    if single
        .next_update
        .is_some_and(|n| n.0.to_system_time() < now)
    {
        bail!("the answer's nextUpdate has passed");
    }
    Ok(match single.cert_status {
        CertStatus::Good(_) => Ok(()),
        CertStatus::Revoked(_) => Err("the client certificate is revoked (OCSP)".into()),
        CertStatus::Unknown(_) => {
            Err("the OCSP responder does not know the client certificate".into())
        }
    })
}

/// The answer is signed by the CA, or by a certificate in it that the CA issued for OCSP
/// signing (RFC 6960 4.2.2.2).
fn verify_signer(basic: &BasicOcspResponse, issuer: &Issuer) -> anyhow::Result<()> {
    let tbs = basic.tbs_response_data.to_der()?;
    let sig = basic.signature.as_bytes().unwrap_or_default();
    let alg = basic.signature_algorithm.oid.to_string();
    let key = match basic.certs.as_ref().and_then(|c| c.first()) {
        None => issuer.spki_bits.clone(),
        Some(delegate) => {
            let der = delegate.to_der()?;
            let (_, x) = X509Certificate::from_der(&der)
                .map_err(|e| anyhow!("the responder certificate cannot be read: {e}"))?;
            if x.tbs_certificate.issuer.as_raw() != issuer.subject.as_slice() {
                bail!("the responder certificate was not issued by the client certificate's CA");
            }
            verify(
                &x.signature_algorithm.algorithm.to_id_string(),
                &issuer.spki_bits,
                x.tbs_certificate.as_ref(),
                &x.signature_value.data,
            )
            .context("the responder certificate's signature")?;
            let ocsp_signing = x.extended_key_usage().ok().flatten().is_some_and(|e| {
                e.value
                    .other
                    .iter()
                    .any(|o| o.to_id_string() == ID_KP_OCSP_SIGNING)
                    || e.value.ocsp_signing
            });
            if !ocsp_signing {
                bail!("the responder certificate is not for OCSP signing");
            }
            x.public_key().subject_public_key.data.to_vec()
        }
    };
    verify(&alg, &key, &tbs, sig).context("the response's signature")
}

fn verify(alg: &str, key: &[u8], msg: &[u8], sig: &[u8]) -> anyhow::Result<()> {
    use aws_lc_rs::signature as s;
    let algorithm: &dyn s::VerificationAlgorithm = match alg {
        "1.2.840.10045.4.3.2" => &s::ECDSA_P256_SHA256_ASN1,
        "1.2.840.10045.4.3.3" => &s::ECDSA_P384_SHA384_ASN1,
        "1.2.840.113549.1.1.11" => &s::RSA_PKCS1_2048_8192_SHA256,
        other => bail!("signature algorithm {other} is not one the reference accepts"),
    };
    s::UnparsedPublicKey::new(algorithm, key)
        .verify(msg, sig)
        .map_err(|_| anyhow!("does not verify"))
}

/// POSTs `body` to the responder (plain HTTP, RFC 6960 appendix A).
async fn post(url: &str, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let (addr, path) = crate::network::addr::http_url(url)?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/ocsp-request")
        .body(Full::new(Bytes::from(body)))?;
    let resp = send.send_request(req).await;
    let out = match resp {
        Ok(r) if r.status().is_success() => http_body_util::Limited::new(r.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .map_err(|e| anyhow!("reading the answer: {e}")),
        Ok(r) => Err(anyhow!("HTTP {}", r.status())),
        Err(e) => Err(anyhow!("{e}")),
    };
    driver.abort();
    out
}
