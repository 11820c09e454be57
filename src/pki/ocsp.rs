//! The simulated CA's OCSP responder (RFC 6960): answers `good`, `revoked` or `unknown` for
//! the catalogue's certificates, per CA, signed by the CA or by its delegated responder
//! certificate (`role = "ocsp-responder"`), with the request's nonce echoed. Every request
//! is recorded, so steps can say whether the IUT asked. HTTP is in `publish.rs`.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{anyhow, Context};
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use time::OffsetDateTime;
use x509_cert::der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::Extension;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::catalog::Role;
use super::Pki;

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// How long an answer may be relied on (nextUpdate - thisUpdate).
const VALIDITY: time::Duration = time::Duration::hours(1);
/// thisUpdate lies this far back, so a client whose clock is a little behind accepts it.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);
/// Requests kept in the log; a run asks a few hundred at most.
const LOG_CAP: usize = 10_000;

/// Who signs the answers (`[pki] ocsp_signer`, `provsten pki serve --ocsp-signer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signer {
    /// The CA whose certificate is asked about.
    #[default]
    Ca,
    /// The CA's delegated responder certificate (EKU OCSPSigning, issued by the CA),
    /// included in the answer; a CA without one in the catalogue signs itself.
    Delegated,
}

impl std::str::FromStr for Signer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ca" => Ok(Signer::Ca),
            "delegated" => Ok(Signer::Delegated),
            _ => Err(format!(
                "{s:?} is not an OCSP signer (hint: \"ca\" or \"delegated\")"
            )),
        }
    }
}

/// One request the responder answered, as steps read it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OcspQuery {
    /// RFC 3339.
    pub at: String,
    /// `POST` or `GET`.
    pub method: String,
    /// The serial asked about, hex; `None` for a request that could not be read.
    pub serial: Option<String>,
    /// The catalogue name of the certificate asked about, when the responder knows it.
    pub certificate: Option<String>,
    /// The CA asked (by issuer name and key hash), when known.
    pub authority: Option<String>,
    /// `good`, `revoked`, `unknown`, or the response status (`unauthorized`,
    /// `malformedRequest`) when no certificate status was given.
    pub answer: String,
    pub nonce: bool,
}

#[derive(Clone)]
struct Known {
    name: String,
    revoked: Option<(OffsetDateTime, CrlReason)>,
}

struct SignerKey {
    key: KeyPair,
    /// SHA-1 of the signer's subjectPublicKey: the ResponderID.
    key_hash: Vec<u8>,
    /// The delegated responder's certificate, sent with the answer; `None` for the CA.
    cert: Option<x509_cert::Certificate>,
}

struct Authority {
    name: String,
    /// (hash algorithm, issuerNameHash, issuerKeyHash) this CA answers to.
    ids: Vec<(ObjectIdentifier, Vec<u8>, Vec<u8>)>,
    signer: SignerKey,
    /// By serial, leading zero bytes removed.
    issued: HashMap<Vec<u8>, Known>,
}

/// The responder for one PKI folder (which must hold the CA keys).
pub struct Responder {
    authorities: Vec<Authority>,
    log: Mutex<Vec<OcspQuery>>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.authorities.iter().map(|a| a.name.as_str()).collect();
        write!(f, "Responder({})", names.join(", "))
    }
}

impl Responder {
    /// Reads the PKI's CA certificates and keys, and what each CA issued and revoked.
    pub fn load(pki: &Pki, signer: Signer) -> anyhow::Result<Responder> {
        let m = &pki.manifest;
        let mut authorities = Vec::new();
        for a in &m.authorities {
            let der = read_cert(pki, &a.cert)?;
            let (_, x) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| anyhow!("{}: not a certificate ({e})", pki.path(&a.cert).display()))?;
            let name_der = x.tbs_certificate.subject.as_raw();
            let key_bits = &x.public_key().subject_public_key.data;
            let ids = vec![
                (
                    ID_SHA1,
                    sha1::Sha1::digest(name_der).to_vec(),
                    sha1::Sha1::digest(key_bits).to_vec(),
                ),
                (
                    ID_SHA256,
                    sha2::Sha256::digest(name_der).to_vec(),
                    sha2::Sha256::digest(key_bits).to_vec(),
                ),
            ];
            let mut issued = HashMap::new();
            for c in m.certificates.iter().filter(|c| c.issuer == a.name) {
                let serial = unhex(&c.serial).ok_or_else(|| {
                    anyhow!("certificate {}: serial {:?} is not hex", c.name, c.serial)
                })?;
                let revoked = match (&c.revocation, c.revoked) {
                    (Some(r), _) => Some((parse_time(&r.time)?, reason(&r.reason))),
                    // A PKI made before OCSP: revoked means on the CRL, at generation.
                    (None, true) => Some((parse_time(&m.generated_at)?, CrlReason::KeyCompromise)),
                    (None, false) => None,
                };
                issued.insert(
                    trim(&serial),
                    Known {
                        name: c.name.clone(),
                        revoked,
                    },
                );
            }
            for sub in m
                .authorities
                .iter()
                .filter(|s| s.issuer.as_deref() == Some(&a.name))
            {
                let der = read_cert(pki, &sub.cert)?;
                let (_, x) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
                    anyhow!("{}: not a certificate ({e})", pki.path(&sub.cert).display())
                })?;
                issued.insert(
                    trim(x.tbs_certificate.raw_serial()),
                    Known {
                        name: sub.name.clone(),
                        revoked: None,
                    },
                );
            }
            let delegate = m
                .certificates
                .iter()
                .find(|c| c.role == Role::OcspResponder && c.issuer == a.name);
            let signer = match (signer, delegate) {
                (Signer::Delegated, Some(d)) => {
                    let der = read_cert(pki, &d.cert)?;
                    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| {
                        anyhow!("{}: not a certificate ({e})", pki.path(&d.cert).display())
                    })?;
                    let key = read_key_pair(pki, &d.key)?;
                    SignerKey {
                        key_hash: sha1::Sha1::digest(key.der_bytes()).to_vec(),
                        key,
                        cert: Some(cert),
                    }
                }
                _ => SignerKey {
                    key: read_key_pair(pki, &format!("{}.key.pem", a.name))?,
                    key_hash: sha1::Sha1::digest(key_bits).to_vec(),
                    cert: None,
                },
            };
            authorities.push(Authority {
                name: a.name.clone(),
                ids,
                signer,
                issued,
            });
        }
        Ok(Responder {
            authorities,
            log: Mutex::new(Vec::new()),
        })
    }

    /// Every request answered so far, oldest first.
    pub fn queries(&self) -> Vec<OcspQuery> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The DER OCSPResponse for the DER OCSPRequest `body`; never fails: what cannot be
    /// answered gets `malformedRequest`, `unauthorized` or `internalError`.
    pub fn answer(&self, body: &[u8], method: &str) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let (response, mut queries) = self.respond(body, now);
        if let Ok(mut log) = self.log.lock() {
            for q in &mut queries {
                q.method = method.to_string();
                if log.len() < LOG_CAP {
                    log.push(q.clone());
                }
            }
        }
        response.to_der().unwrap_or_else(|_| {
            // OCSPResponse { responseStatus internalError(2) }
            vec![0x30, 0x03, 0x0a, 0x01, 0x02]
        })
    }

    fn respond(&self, body: &[u8], now: OffsetDateTime) -> (OcspResponse, Vec<OcspQuery>) {
        let at = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let query = |serial: Option<String>, authority: Option<&Authority>, answer: &str, nonce| {
            OcspQuery {
                at: at.clone(),
                method: String::new(),
                certificate: None,
                authority: authority.map(|a| a.name.clone()),
                serial,
                answer: answer.to_string(),
                nonce,
            }
        };
        let status = |s: OcspResponseStatus| OcspResponse {
            response_status: s,
            response_bytes: None,
        };
        let Ok(request) = OcspRequest::from_der(body) else {
            return (
                OcspResponse::malformed_request(),
                vec![query(None, None, "malformedRequest", false)],
            );
        };
        let tbs = &request.tbs_request;
        let nonce: Option<Extension> = tbs
            .request_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_NONCE)
            .cloned();
        if tbs.request_list.is_empty() {
            return (
                OcspResponse::malformed_request(),
                vec![query(None, None, "malformedRequest", nonce.is_some())],
            );
        }
        // One signer per answer: every certificate asked about must be one CA's.
        let found: Vec<Option<&Authority>> = tbs
            .request_list
            .iter()
            .map(|r| self.authority(&r.req_cert))
            .collect();
        let first = found.first().copied().flatten();
        let Some(ca) = first.filter(|a| found.iter().all(|f| f.is_some_and(|g| g.name == a.name)))
        else {
            let queries = tbs
                .request_list
                .iter()
                .zip(&found)
                .map(|(r, a)| {
                    let serial = hex(r.req_cert.serial_number.as_bytes());
                    query(Some(serial), *a, "unauthorized", nonce.is_some())
                })
                .collect();
            return (status(OcspResponseStatus::Unauthorized), queries);
        };
        let gt = |t: OffsetDateTime| -> Option<OcspGeneralizedTime> {
            let secs = u64::try_from(t.unix_timestamp()).ok()?;
            let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            GeneralizedTime::from_system_time(st)
                .ok()
                .map(OcspGeneralizedTime)
        };
        let (Some(produced), Some(this_update), Some(next_update)) =
            (gt(now), gt(now - CLOCK_SKEW), gt(now + VALIDITY))
        else {
            return (status(OcspResponseStatus::InternalError), Vec::new());
        };
        let mut queries = Vec::new();
        let mut responses = Vec::new();
        for r in &tbs.request_list {
            let serial = r.req_cert.serial_number.as_bytes();
            let known = ca.issued.get(&trim(serial));
            let (cert_status, answer) = match known {
                None => (CertStatus::unknown(), "unknown"),
                Some(Known { revoked: None, .. }) => (CertStatus::good(), "good"),
                Some(Known {
                    revoked: Some((t, why)),
                    ..
                }) => match gt(*t) {
                    Some(time) => (
                        CertStatus::Revoked(RevokedInfo {
                            revocation_time: time,
                            revocation_reason: Some(*why),
                        }),
                        "revoked",
                    ),
                    None => return (status(OcspResponseStatus::InternalError), Vec::new()),
                },
            };
            let mut q = query(Some(hex(serial)), Some(ca), answer, nonce.is_some());
            q.certificate = known.map(|k| k.name.clone());
            queries.push(q);
            responses.push(SingleResponse {
                cert_id: r.req_cert.clone(),
                cert_status,
                this_update,
                next_update: Some(next_update),
                single_extensions: None,
            });
        }
        let Ok(key_hash) = OctetString::new(ca.signer.key_hash.clone()) else {
            return (status(OcspResponseStatus::InternalError), queries);
        };
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(key_hash),
            produced_at: produced,
            responses,
            response_extensions: nonce.map(|n| vec![n]),
        };
        match sign(data, &ca.signer) {
            Ok(basic) => match OcspResponse::successful(basic) {
                Ok(r) => (r, queries),
                Err(_) => (status(OcspResponseStatus::InternalError), queries),
            },
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "OCSP responder cannot sign");
                (status(OcspResponseStatus::InternalError), queries)
            }
        }
    }

    fn authority(&self, id: &CertId) -> Option<&Authority> {
        let alg = id.hash_algorithm.oid;
        let name = id.issuer_name_hash.as_bytes();
        let key = id.issuer_key_hash.as_bytes();
        self.authorities.iter().find(|a| {
            a.ids
                .iter()
                .any(|(o, n, k)| *o == alg && n.as_slice() == name && k.as_slice() == key)
        })
    }
}

fn sign(data: ResponseData, signer: &SignerKey) -> anyhow::Result<BasicOcspResponse> {
    let alg = signer.key.algorithm();
    let (oid, null_params) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        (ECDSA_SHA256, false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        (ECDSA_SHA384, false)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        (RSA_SHA256, true)
    } else {
        anyhow::bail!("the signer's key type {alg:?} is not one the responder signs with");
    };
    let tbs = data.to_der().context("encoding the OCSP ResponseData")?;
    let signature = signer.key.sign(&tbs).context("signing the OCSP answer")?;
    let parameters = if null_params {
        Some(x509_cert::der::asn1::Any::null())
    } else {
        None
    };
    Ok(BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: AlgorithmIdentifierOwned { oid, parameters },
        signature: BitString::from_bytes(&signature).context("the signature as a BIT STRING")?,
        certs: signer.cert.clone().map(|c| vec![c]),
    })
}

fn read_cert(pki: &Pki, file: &str) -> anyhow::Result<Vec<u8>> {
    let certs = super::read_certs(&pki.path(file))?;
    certs
        .into_iter()
        .next()
        .map(|c| c.to_vec())
        .ok_or_else(|| anyhow!("{}: no certificate", pki.path(file).display()))
}

fn read_key_pair(pki: &Pki, file: &str) -> anyhow::Result<KeyPair> {
    let path = pki.path(file);
    let pem = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (hint: the OCSP responder signs with the CA keys: give it the PKI folder `provsten pki init` made, not a report's public copy)",
            path.display()
        )
    })?;
    KeyPair::from_pem(&pem).with_context(|| format!("{}: not a private key", path.display()))
}

fn parse_time(t: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{t:?} is not an RFC 3339 time"))
}

fn reason(name: &str) -> CrlReason {
    match name {
        "cACompromise" => CrlReason::CaCompromise,
        "affiliationChanged" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessationOfOperation" => CrlReason::CessationOfOperation,
        "certificateHold" => CrlReason::CertificateHold,
        "privilegeWithdrawn" => CrlReason::PrivilegeWithdrawn,
        "unspecified" => CrlReason::Unspecified,
        _ => CrlReason::KeyCompromise,
    }
}

/// A serial without the leading zero bytes DER may add to keep it positive.
fn trim(serial: &[u8]) -> Vec<u8> {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    serial.get(start..).unwrap_or_default().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    super::generate::hex(&trim(bytes))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
#[path = "ocsp_tests.rs"]
mod tests;
