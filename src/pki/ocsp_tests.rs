//! The responder's answers, decoded and their signatures checked here; `openssl ocsp` judges
//! it independently in `tests/it/ocsp.rs`.

use std::sync::OnceLock;

use x509_cert::der::asn1::{Any, OctetString};
use x509_ocsp::{Request, TbsRequest};
use x509_parser::prelude::*;

use super::*;
use crate::pki::catalog::{Catalog, DEFAULT_CATALOG};
use crate::pki::{generate, GenerateOptions};

fn pki() -> &'static Pki {
    static PKI: OnceLock<(tempfile::TempDir, Pki)> = OnceLock::new();
    &PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::parse(DEFAULT_CATALOG, "catalog").unwrap();
        generate(
            &catalog,
            dir.path(),
            &GenerateOptions {
                crl_base_url: "http://127.0.0.1:1/crl".into(),
                ocsp_base_url: Some("http://127.0.0.1:2/ocsp".into()),
                crl_lifetime: crate::pki::DEFAULT_CRL_LIFETIME,
            },
        )
        .unwrap();
        let pki = Pki::load(dir.path()).unwrap();
        (dir, pki)
    })
    .1
}

fn der_of(file: &str) -> Vec<u8> {
    read_cert(pki(), file).unwrap()
}

/// (subject DER, subjectPublicKey bits) of an authority or certificate file.
fn name_and_key(file: &str) -> (Vec<u8>, Vec<u8>) {
    let der = der_of(file);
    let (_, x) = X509Certificate::from_der(&der).unwrap();
    (
        x.tbs_certificate.subject.as_raw().to_vec(),
        x.public_key().subject_public_key.data.to_vec(),
    )
}

fn cert_id(issuer_file: &str, serial: &[u8], sha256: bool) -> CertId {
    let (name, key) = name_and_key(issuer_file);
    let (oid, n, k) = if sha256 {
        (
            ID_SHA256,
            sha2::Sha256::digest(&name).to_vec(),
            sha2::Sha256::digest(&key).to_vec(),
        )
    } else {
        (
            ID_SHA1,
            sha1::Sha1::digest(&name).to_vec(),
            sha1::Sha1::digest(&key).to_vec(),
        )
    };
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: Some(Any::null()),
        },
        issuer_name_hash: OctetString::new(n).unwrap(),
        issuer_key_hash: OctetString::new(k).unwrap(),
        serial_number: x509_cert::serial_number::SerialNumber::new(serial).unwrap(),
    }
}

fn serial_of(name: &str) -> Vec<u8> {
    unhex(&pki().cert(name).unwrap().serial).unwrap()
}

fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
    let ext = nonce.map(|n| Extension {
        extn_id: ID_NONCE,
        critical: false,
        extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| Request {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: ext.map(|e| vec![e]),
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

/// The decoded answer, its signature checked against `signer_key` (SPKI bits).
fn basic(der: &[u8], signer_key: &[u8]) -> BasicOcspResponse {
    let r = OcspResponse::from_der(der).unwrap();
    assert_eq!(r.response_status, OcspResponseStatus::Successful);
    let b = BasicOcspResponse::from_der(r.response_bytes.unwrap().response.as_bytes()).unwrap();
    assert_eq!(b.signature_algorithm.oid, ECDSA_SHA256);
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        signer_key,
    )
    .verify(
        &b.tbs_response_data.to_der().unwrap(),
        b.signature.as_bytes().unwrap(),
    )
    .expect("the answer's signature verifies with the signer's key");
    b
}

fn status_of(der: &[u8]) -> OcspResponseStatus {
    OcspResponse::from_der(der).unwrap().response_status
}

#[test]
fn good_revoked_and_unknown_signed_by_the_ca() {
    let r = Responder::load(pki(), Signer::Ca).unwrap();
    let (_, inter_key) = name_and_key("inter.cert.pem");
    let ids = vec![
        cert_id("inter.cert.pem", &serial_of("client-5560000001"), false),
        cert_id("inter.cert.pem", &serial_of("client-revoked"), false),
        cert_id("inter.cert.pem", &serial_of("client-revoked-ocsp"), false),
        cert_id("inter.cert.pem", &[0x7f, 1, 2, 3], false),
    ];
    let b = basic(&r.answer(&request(ids.clone(), None), "POST"), &inter_key);
    let data = &b.tbs_response_data;
    assert!(b.certs.is_none(), "the CA signs: no certificate sent");
    assert_eq!(
        data.responder_id,
        ResponderId::ByKey(OctetString::new(sha1::Sha1::digest(&inter_key).to_vec()).unwrap())
    );
    assert!(
        data.response_extensions.is_none(),
        "no nonce asked, none sent"
    );
    let statuses: Vec<_> = data.responses.iter().map(|s| s.cert_status).collect();
    assert!(matches!(statuses[0], CertStatus::Good(_)));
    for revoked in &statuses[1..3] {
        let CertStatus::Revoked(info) = revoked else {
            panic!("revoked expected, got {revoked:?}");
        };
        assert_eq!(info.revocation_reason, Some(CrlReason::KeyCompromise));
    }
    assert!(matches!(statuses[3], CertStatus::Unknown(_)));
    let now = std::time::SystemTime::now();
    for (s, id) in data.responses.iter().zip(&ids) {
        assert_eq!(&s.cert_id, id, "the CertID is echoed");
        assert!(s.this_update.0.to_system_time() <= now);
        assert!(s.next_update.unwrap().0.to_system_time() > now);
    }
    let log = r.queries();
    let answers: Vec<_> = log.iter().map(|q| q.answer.as_str()).collect();
    assert_eq!(answers, ["good", "revoked", "revoked", "unknown"]);
    assert_eq!(log[2].certificate.as_deref(), Some("client-revoked-ocsp"));
    assert_eq!(log[2].authority.as_deref(), Some("inter"));
    assert_eq!(log[0].method, "POST");
    assert!(!log[0].nonce);
}

#[test]
fn sha256_cert_ids_and_the_root_answering_for_the_intermediate() {
    let r = Responder::load(pki(), Signer::Ca).unwrap();
    let (_, root_key) = name_and_key("root.cert.pem");
    let inter = der_of("inter.cert.pem");
    let (_, x) = X509Certificate::from_der(&inter).unwrap();
    let id = cert_id("root.cert.pem", x.tbs_certificate.raw_serial(), true);
    let b = basic(&r.answer(&request(vec![id], None), "GET"), &root_key);
    assert!(matches!(
        b.tbs_response_data.responses[0].cert_status,
        CertStatus::Good(_)
    ));
    assert_eq!(r.queries()[0].certificate.as_deref(), Some("inter"));
    assert_eq!(r.queries()[0].method, "GET");
}

#[test]
fn the_nonce_is_echoed() {
    let r = Responder::load(pki(), Signer::Ca).unwrap();
    let (_, inter_key) = name_and_key("inter.cert.pem");
    let id = cert_id("inter.cert.pem", &serial_of("client-5560000002"), false);
    let nonce = [9u8; 16];
    let b = basic(
        &r.answer(&request(vec![id], Some(&nonce)), "POST"),
        &inter_key,
    );
    let echoed = b.tbs_response_data.nonce().expect("a nonce in the answer");
    assert_eq!(echoed.0.as_bytes(), nonce);
    assert!(r.queries()[0].nonce);
}

#[test]
fn a_delegated_responder_signs_and_is_sent() {
    let r = Responder::load(pki(), Signer::Delegated).unwrap();
    let (_, responder_key) = name_and_key("ocsp-responder.cert.pem");
    let id = cert_id("inter.cert.pem", &serial_of("client-revoked-ocsp"), false);
    let b = basic(&r.answer(&request(vec![id], None), "POST"), &responder_key);
    let certs = b.certs.expect("the responder's certificate is sent");
    assert_eq!(
        certs[0].to_der().unwrap(),
        der_of("ocsp-responder.cert.pem")
    );
    assert!(matches!(
        b.tbs_response_data.responses[0].cert_status,
        CertStatus::Revoked(_)
    ));
}

#[test]
fn an_unknown_issuer_is_unauthorized_and_so_is_a_mix_of_cas() {
    let r = Responder::load(pki(), Signer::Ca).unwrap();
    let mut stranger = cert_id("inter.cert.pem", &[1], false);
    stranger.issuer_key_hash = OctetString::new(vec![0u8; 20]).unwrap();
    let der = r.answer(&request(vec![stranger], None), "POST");
    assert_eq!(status_of(&der), OcspResponseStatus::Unauthorized);
    let mixed = vec![
        cert_id("inter.cert.pem", &serial_of("client-5560000001"), false),
        cert_id("root.cert.pem", &[1], false),
    ];
    let der = r.answer(&request(mixed, None), "POST");
    assert_eq!(status_of(&der), OcspResponseStatus::Unauthorized);
    assert!(r.queries().iter().all(|q| q.answer == "unauthorized"));
}

#[test]
fn malformed_requests_are_answered_never_panicked_on() {
    let r = Responder::load(pki(), Signer::Ca).unwrap();
    let good = request(
        vec![cert_id(
            "inter.cert.pem",
            &serial_of("client-5560000001"),
            false,
        )],
        None,
    );
    let cut = good.get(..good.len() / 2).unwrap_or_default().to_vec();
    for body in [Vec::new(), b"hello".to_vec(), cut, vec![0x30, 0x80, 0x00]] {
        let der = r.answer(&body, "POST");
        assert_eq!(status_of(&der), OcspResponseStatus::MalformedRequest);
    }
    // An empty request list is well-formed DER and still not a request.
    let der = r.answer(&request(Vec::new(), None), "POST");
    assert_eq!(status_of(&der), OcspResponseStatus::MalformedRequest);
    assert!(r.queries().iter().all(|q| q.answer == "malformedRequest"));
}

proptest::proptest! {
    #[test]
    fn any_bytes_get_an_ocsp_response(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        static R: OnceLock<Responder> = OnceLock::new();
        let r = R.get_or_init(|| Responder::load(pki(), Signer::Ca).unwrap());
        let der = r.answer(&body, "POST");
        proptest::prop_assert!(OcspResponse::from_der(&der).is_ok());
    }
}

#[test]
fn certificates_name_the_responder_and_the_crl_lacks_the_late_revocation() {
    for file in ["client-5560000001.cert.pem", "inter.cert.pem"] {
        let der = der_of(file);
        let (_, x) = X509Certificate::from_der(&der).unwrap();
        let urls: Vec<String> = x
            .extensions()
            .iter()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => Some(aia),
                _ => None,
            })
            .flat_map(|aia| aia.accessdescs.iter())
            .filter(|d| d.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1")
            .filter_map(|d| match &d.access_location {
                GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(urls, ["http://127.0.0.1:2/ocsp"], "{file}");
    }
    let crl_der = crate::pki::read_crls(&pki().path("inter.crl.pem")).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(crl_der[0].as_ref()).unwrap();
    let listed: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| hex(r.raw_serial()))
        .collect();
    assert!(listed.contains(&hex(&serial_of("client-revoked"))));
    assert!(!listed.contains(&hex(&serial_of("client-revoked-ocsp"))));
    let late = pki().cert("client-revoked-ocsp").unwrap();
    assert!(late.revoked && !late.revocation.as_ref().unwrap().on_crl);
}

/// One HTTP/1.1 exchange on a fresh connection: (status line, body).
async fn http(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    (head, out[split + 4..].to_vec())
}

#[tokio::test]
async fn over_http_post_and_get_answer_alike_and_other_methods_are_refused() {
    let responder = std::sync::Arc::new(Responder::load(pki(), Signer::Ca).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = crate::pki::publish::serve_ocsp(listener, responder.clone(), "/ocsp".into());
    let (_, inter_key) = name_and_key("inter.cert.pem");
    let req = request(
        vec![cert_id(
            "inter.cert.pem",
            &serial_of("client-revoked-ocsp"),
            false,
        )],
        Some(&[7u8; 16]),
    );
    let post = format!(
        "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.len()
    );
    let (head, body) = http(addr, &post, &req).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/ocsp-response"), "{head}");
    let by_post = basic(&body, &inter_key);
    // RFC 6960 A.1: GET {url}/{url-encoding of base64 of the DER request}.
    use base64ct::Encoding;
    let encoded: String = base64ct::Base64::encode_string(&req)
        .chars()
        .map(|c| match c {
            '/' => "%2F".to_string(),
            '+' => "%2B".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect();
    let get = format!("GET /ocsp/{encoded} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (head, body) = http(addr, &get, b"").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let by_get = basic(&body, &inter_key);
    assert_eq!(
        by_post.tbs_response_data.responses[0].cert_status,
        by_get.tbs_response_data.responses[0].cert_status
    );
    let (_, body) = http(
        addr,
        "GET /ocsp/not-base64! HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(status_of(&body), OcspResponseStatus::MalformedRequest);
    let (head, _) = http(
        addr,
        "PUT /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    let (head, _) = http(
        addr,
        "POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let methods: Vec<_> = responder
        .queries()
        .iter()
        .map(|q| (q.method.clone(), q.answer.clone()))
        .collect();
    assert_eq!(
        methods,
        [
            ("POST".to_string(), "revoked".to_string()),
            ("GET".to_string(), "revoked".to_string()),
            ("GET".to_string(), "malformedRequest".to_string())
        ]
    );
    task.abort();
}
