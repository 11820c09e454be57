//! The reference IUT as a receiver of SDK messages (SDK-SPEC): SDK Meddelande 3.1 in an
//! XHE envelope, POSTed as `application/xml` or `text/xml` to `/v1/sdk/messages`,
//! validated with libxml2 against the shipped XSDs (a real receiver validates too).
//! Answers 200 with the message id, 400 for a body that is not well-formed XML, carries a
//! DOCTYPE (an SDK message has none: no DTD or entity is ever processed) or nests deeper
//! than [`MAX_DEPTH`], 415 for another media type, 413 for an oversize body, 422 for a
//! schema violation or a signature that does not verify against the run's PKI
//! (`schema::xml_signature`). libxml2 parses without entity substitution and fetches nothing.
//! Every answer carries a Meddelandekvittens receipt (`schema::receipt`): ACCEPTED, or
//! REJECTED with SV for syntax and XSD errors, BV for Schematron rules, SIG for signatures.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};

use super::defects::{Defect, Defects};
use super::receipts::ReceiptPoster;
use crate::schema::receipt::{self, Reason};
use crate::schema::xml::XmlValidator;
use crate::schema::xml_attack::naive_expand;
use crate::schema::xml_signature::{self, Trust};
use crate::schema::{Limits, MessageValidator};
use libxml2_check::{reparse, ParseOptions};

/// Deepest element nesting accepted: the SDK message in its envelope is 14 deep.
const MAX_DEPTH: usize = 64;

/// How much the `expands-entities` defect expands before it stops (and accepts).
const EXPANSION_CAP: usize = 2 * 1024 * 1024;

/// Refuses, before any validation, what an SDK message never has: a DOCTYPE (so no DTD,
/// entity or external subset reaches a parser) and deep nesting. Bodies that are not
/// UTF-8 or not well-formed are left to libxml2, which says why.
fn guard(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    let doc =
        match roxmltree::Document::parse_with_options(text, opts) {
            Err(roxmltree::Error::DtdDetected) => return Some(
                "a DOCTYPE is not allowed in an SDK message: DTDs and entities are not processed"
                    .into(),
            ),
            Err(_) => return None,
            Ok(doc) => doc,
        };
    // In document order a parent comes before its children: one pass, no recursion.
    let mut depth: std::collections::HashMap<roxmltree::NodeId, usize> = Default::default();
    for n in doc.descendants().filter(|n| n.is_element()) {
        let d = n
            .parent_element()
            .and_then(|p| depth.get(&p.id()))
            .map_or(1, |d| d + 1);
        if d > MAX_DEPTH {
            return Some(format!("elements nest deeper than {MAX_DEPTH} levels"));
        }
        depth.insert(n.id(), d);
    }
    None
}

/// What the unsafe defects fetch with: `file://` paths and HTTP on loopback (provsten
/// never reaches further), 2 s and 1 MiB at most.
fn fetch_loopback(url: &str) -> Option<Vec<u8>> {
    if let Some(path) = url.strip_prefix("file://") {
        let mut out = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .take(64 * 1024)
            .read_to_end(&mut out)
            .ok()?;
        return Some(out);
    }
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: std::net::SocketAddr = host.replace("localhost", "127.0.0.1").parse().ok()?;
    if !addr.ip().is_loopback() {
        return None;
    }
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut answer = Vec::new();
    s.take(1024 * 1024).read_to_end(&mut answer).ok()?;
    let at = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    answer.get(at + 4..).map(<[u8]>::to_vec)
}

/// The system id of a DOCTYPE's external subset: the last quoted string before its
/// internal subset or its end.
fn external_subset(text: &str) -> Option<&str> {
    let decl = text.get(text.find("<!DOCTYPE")?..)?;
    let end = decl.find(['[', '>'])?;
    let head = decl.get(..end)?;
    if !head.contains("SYSTEM") && !head.contains("PUBLIC") {
        return None;
    }
    let quoted = head.trim_end().strip_suffix(['"', '\''])?;
    let start = quoted.rfind(['"', '\''])?;
    quoted.get(start + 1..)
}

/// The `fetches-external-dtd` defect: loads the DOCTYPE's external subset and the
/// schemas the root's `xsi:schemaLocation` names (and throws them away). Read from the
/// text, not by libxml2 with DTD loading: that also checks every entity reference, and a
/// quadratic blowup would hold the reference for seconds.
fn fetch_external_dtd_and_schemas(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    if let Some(url) = external_subset(text) {
        let _ = fetch_loopback(url);
    }
    // Without DTDs: roxmltree would expand a blowup's entities itself.
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return;
    };
    const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
    for a in doc.root_element().attributes() {
        if a.namespace() == Some(XSI) && a.name() == "schemaLocation" {
            for url in a.value().split_whitespace().skip(1).step_by(2) {
                let _ = fetch_loopback(url);
            }
        }
        if a.namespace() == Some(XSI) && a.name() == "noNamespaceSchemaLocation" {
            let _ = fetch_loopback(a.value());
        }
    }
}

/// Endpoint segments (after the version) → shipped XML message type.
const ENDPOINTS: &[(&[&str], &str)] = &[(&["sdk", "messages"], "sdk/meddelande")];

fn validator(id: &str) -> Option<&'static XmlValidator> {
    static V: OnceLock<Vec<(&'static str, Option<XmlValidator>)>> = OnceLock::new();
    V.get_or_init(|| {
        ENDPOINTS
            .iter()
            .map(|(_, id)| (*id, XmlValidator::builtin(id).ok()))
            .collect()
    })
    .iter()
    .find(|(i, _)| *i == id)
    .and_then(|(_, v)| v.as_ref())
}

/// The field of a receiver's JSON answer that holds its receipt.
pub(super) const RECEIPT: &str = "receipt";

pub(super) struct XmlReceiver {
    accepted: Mutex<Vec<String>>,
    /// Receipts written so far: each gets the next number as its id.
    receipts: AtomicU64,
    /// Sends each receipt back too (`--receipt-url`).
    poster: Option<Arc<ReceiptPoster>>,
    /// The CAs signing certificates must chain to (the run's PKI); `None`: signatures
    /// are not checked (the XSD-only unit tests).
    trust: Option<Trust>,
}

impl XmlReceiver {
    pub(super) fn new(trust: Option<Trust>, poster: Option<Arc<ReceiptPoster>>) -> Self {
        XmlReceiver {
            accepted: Mutex::new(Vec::new()),
            receipts: AtomicU64::new(0),
            poster,
            trust,
        }
    }

    /// The sending organisation's signature, checked after the XSD and Schematron (the
    /// receipt codes SV, BV, then SIG): value, digest, trust, and the FromParty rule.
    fn signature(&self, body: &[u8], d: &Defects) -> Result<(), String> {
        let Some(trust) = &self.trust else {
            return Ok(());
        };
        if d.has(Defect::AcceptsBadSignature) {
            return Ok(());
        }
        let text = std::str::from_utf8(body).map_err(|_| "the message is not UTF-8".to_owned())?;
        let signed = xml_signature::verify(text).map_err(|e| e.to_string())?;
        trust.check(&signed).map_err(|e| e.to_string())?;
        if !d.has(Defect::AcceptsOtherOrgSignature) {
            xml_signature::check_sender(text, &signed).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub(super) fn handles(rest: &[&str]) -> bool {
        ENDPOINTS.iter().any(|(e, _)| *e == rest)
    }

    /// Ids of the accepted messages, in arrival order.
    pub(super) fn accepted(&self) -> Vec<String> {
        self.accepted.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Judges one SDK message and answers with its Meddelandekvittens: the status, and a
    /// JSON value whose [`RECEIPT`] field is the receipt (the server answers with it as
    /// `application/xml`).
    pub(super) fn receive(
        &self,
        rest: &[&str],
        content_type: Option<&str>,
        body: &[u8],
        d: &Defects,
    ) -> (StatusCode, Value) {
        let answered = receipt::envelope(body);
        let seq = self.receipts.fetch_add(1, Ordering::Relaxed) + 1;
        let receipt_id = format!("KVT-{seq}");
        let now = time::OffsetDateTime::now_utc();
        let judged = self.judge(rest, content_type, body, d);
        let (status, answer) = answer(judged, d, &receipt_id, &answered, now);
        if let (Some(poster), Some(receipt)) =
            (&self.poster, answer.get(RECEIPT).and_then(Value::as_str))
        {
            poster.send(receipt.to_owned());
        }
        (status, answer)
    }

    /// The message's id if accepted (and records it), else why not.
    fn judge(
        &self,
        rest: &[&str],
        content_type: Option<&str>,
        body: &[u8],
        d: &Defects,
    ) -> Result<String, Refusal> {
        let Some((_, id)) = ENDPOINTS.iter().find(|(e, _)| *e == rest) else {
            return Err(Refusal::one(
                StatusCode::NOT_FOUND,
                Reason::Syntax,
                "no such message endpoint",
            ));
        };
        let Some(v) = validator(id) else {
            return Err(Refusal::one(
                StatusCode::INTERNAL_SERVER_ERROR,
                Reason::Syntax,
                "validator unavailable",
            ));
        };
        if !v.accepts_content_type(content_type) {
            return Err(Refusal::one(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Reason::Syntax,
                "the body must be application/xml or text/xml",
            ));
        }
        if body.len() > Limits::default().max_body_bytes {
            return Err(Refusal::one(
                StatusCode::PAYLOAD_TOO_LARGE,
                Reason::Syntax,
                "the body is too large",
            ));
        }
        // The unsafe defects rewrite the body as an unsafely configured parser sees it,
        // then go on as the compliant receiver.
        let sent = body;
        let mut body = Cow::Borrowed(body);
        if d.has(Defect::FetchesExternalDtd) {
            fetch_external_dtd_and_schemas(&body);
        }
        if d.has(Defect::ResolvesExternalEntities) {
            let lax = ParseOptions {
                substitute_entities: true,
                load_dtd: true,
                fetch: Some(fetch_loopback),
            };
            // What libxml2 itself refuses (an amplification) is refused below as sent.
            if let Ok(resolved) = reparse(&body, &lax) {
                body = Cow::Owned(resolved);
            }
        }
        if d.has(Defect::ExpandsEntities) {
            if let Some(e) = std::str::from_utf8(&body)
                .ok()
                .and_then(|t| naive_expand(t, EXPANSION_CAP))
            {
                body = Cow::Owned(e.text.into_bytes());
            }
        }
        if let Some(why) = guard(&body) {
            return Err(Refusal::one(StatusCode::BAD_REQUEST, Reason::Syntax, why));
        }
        // A message with a DOCTYPE that an unsafe-parser defect expanded is judged as that
        // parser hands it on, unsigned: the harness cannot sign an expansion (it would have
        // to process the attack's DTD), so a signature check would hide the defect.
        let rewritten = matches!(&body, Cow::Owned(_))
            && sent.windows(b"<!DOCTYPE".len()).any(|w| w == b"<!DOCTYPE");
        let body = &body[..];
        let violations = v.validate_bytes(body).err().unwrap_or_default();
        // accept-xsd-invalid lets through what the schema (and the required root and
        // payload) refuse, but not what is not XML at all; ignore-schematron what only the
        // business rules refuse.
        let ignored = |rule: &str| {
            (d.has(Defect::AcceptXsdInvalid)
                && (rule.starts_with("xsd:") || rule.starts_with("provsten:")))
                || (d.has(Defect::IgnoreSchematron) && rule.starts_with("schematron:"))
        };
        let remaining: Vec<_> = violations
            .iter()
            .filter(|x| !ignored(&x.schema_path))
            .collect();
        if !remaining.is_empty() {
            let not_xml = remaining.iter().any(|x| x.schema_path.starts_with("xml:"));
            let status = if not_xml {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let lines = remaining
                .iter()
                .map(|x| match x.schema_path.strip_prefix("schematron:") {
                    Some(rule) => (
                        Reason::Business,
                        Some(rule.to_owned()),
                        format!("{}: {}", x.instance_path, x.message),
                    ),
                    None => (
                        Reason::Syntax,
                        None,
                        format!("{}: {}", x.instance_path, x.message),
                    ),
                })
                .collect();
            return Err(Refusal { status, lines });
        }
        let checked = if rewritten {
            Ok(())
        } else {
            self.signature(body, d)
        };
        if let Err(why) = checked {
            return Err(Refusal::one(
                StatusCode::UNPROCESSABLE_ENTITY,
                Reason::Signature,
                format!("signature: {why}"),
            ));
        }
        let id = v.message_id(body).unwrap_or_default();
        if let Ok(mut a) = self.accepted.lock() {
            a.push(id.clone());
        }
        Ok(id)
    }
}

/// Why a message was refused: the HTTP status and the receipt's reason lines (code, rule
/// id, text).
struct Refusal {
    status: StatusCode,
    lines: Vec<(Reason, Option<String>, String)>,
}

impl Refusal {
    fn one(status: StatusCode, reason: Reason, text: impl Into<String>) -> Refusal {
        Refusal {
            status,
            lines: vec![(reason, None, text.into())],
        }
    }
}

/// The status and JSON answer for a judged message, its receipt in the [`RECEIPT`] field.
fn answer(
    judged: Result<String, Refusal>,
    d: &Defects,
    receipt_id: &str,
    answered: &receipt::Envelope,
    now: time::OffsetDateTime,
) -> (StatusCode, Value) {
    match judged {
        Ok(id) => (
            StatusCode::OK,
            json!({"status": "accepted", "id": id,
                   RECEIPT: receipt::build(receipt_id, answered, &[], now)}),
        ),
        Err(r) => {
            // wrong-receipt-code answers every refusal as a syntax error.
            let lines: Vec<_> = r
                .lines
                .iter()
                .map(|(reason, rule, text)| {
                    let reason = if d.has(Defect::WrongReceiptCode) {
                        Reason::Syntax
                    } else {
                        *reason
                    };
                    (reason, rule.as_deref(), text.as_str())
                })
                .collect();
            let list: Vec<Value> = r
                .lines
                .iter()
                .map(|(reason, rule, text)| json!({"code": reason, "rule": rule, "message": text}))
                .collect();
            // The JSON's `code` and `error`: the receipt's first reason.
            let (code, error) = lines
                .first()
                .map_or((Reason::Syntax, "refused"), |(c, _, t)| (*c, *t));
            (
                r.status,
                json!({"error": error, "code": code, "violations": list,
                       RECEIPT: receipt::build(receipt_id, answered, &lines, now)}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::xml::XML_BUILTINS;
    use crate::schema::xml_invalid::{generate, XmlDefect, ALL};

    const AT: &[&str] = &["sdk", "messages"];

    #[test]
    fn signatures_are_verified_after_the_schema_and_the_defects_skip_parts() {
        use crate::pki::{generate, Catalog, GenerateOptions, Pki};
        use crate::schema::xml_signature::{set_from_party, Signer};
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::parse(crate::pki::catalog::DEFAULT_CATALOG, "catalog").unwrap();
        generate(&catalog, dir.path(), &GenerateOptions::default()).unwrap();
        let pki = Pki::load(dir.path()).unwrap();
        let r = XmlReceiver::new(Some(Trust::new(&pki).unwrap()), None);
        let example = std::str::from_utf8(XML_BUILTINS[0].examples[0].bytes).unwrap();
        let a = Signer::from_pki(&pki, "client-5560000001").unwrap();
        let b = Signer::from_pki(&pki, "client-5560000002").unwrap();
        let from_a = set_from_party(example, "5560000001").unwrap();
        let ok = Defects::default();
        let send =
            |body: &str, d: &Defects| r.receive(AT, Some("application/xml"), body.as_bytes(), d);
        let (status, body) = send(&a.sign(&from_a).unwrap(), &ok);
        assert_eq!(status, StatusCode::OK, "{body}");
        // The published example's own signature is by a certificate this PKI never issued.
        let (status, body) = send(example, &ok);
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("SIG")),
            "{body}"
        );
        let by_b = b.sign(&from_a).unwrap();
        let (status, body) = send(&by_b, &ok);
        assert_eq!(body["code"], "SIG", "{status} {body}");
        let other_org = Defects::new([Defect::AcceptsOtherOrgSignature]);
        assert_eq!(send(&by_b, &other_org).0, StatusCode::OK);
        assert_eq!(
            send(example, &other_org).0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let bad = Defects::new([Defect::AcceptsBadSignature]);
        assert_eq!(send(example, &bad).0, StatusCode::OK);
        // The schema comes first: an invalid signed message is a schema refusal.
        let invalid = a
            .sign(&from_a.replacen("<ns6:messageId>", "<ns6:bogus/><ns6:messageId>", 1))
            .unwrap();
        let (status, body) = send(&invalid, &ok);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "SV", "{body}");
    }

    #[test]
    fn valid_is_accepted_and_every_generated_invalid_class_refused() {
        let r = XmlReceiver::new(None, None);
        let example = XML_BUILTINS[0].examples[0].bytes;
        let ok = Defects::default();
        let (status, body) = r.receive(AT, Some("application/xml"), example, &ok);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(r.accepted().len(), 1);
        let (status, _) = r.receive(AT, Some("application/json"), example, &ok);
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let lax = Defects::new([Defect::AcceptXsdInvalid]);
        let mut accepted_by_defect = 0;
        for class in ALL {
            let Ok(case) = generate(&v, example, *class) else {
                continue; // not applicable to this message type
            };
            let (status, body) = r.receive(AT, Some("text/xml"), &case.body, &ok);
            assert!(status.is_client_error(), "{class}: {status} {body}");
            let (status, _) = r.receive(AT, Some("text/xml"), &case.body, &lax);
            if status == StatusCode::OK {
                accepted_by_defect += 1;
            }
        }
        assert!(accepted_by_defect >= 5, "{accepted_by_defect}");
        let case = generate(&v, example, XmlDefect::SchematronRule).expect("generated");
        let (status, _) = r.receive(AT, Some("text/xml"), &case.body, &lax);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let no_rules = Defects::new([Defect::IgnoreSchematron]);
        let (status, _) = r.receive(AT, Some("text/xml"), &case.body, &no_rules);
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn the_external_subset_is_the_last_quoted_id() {
        assert_eq!(
            external_subset("<?xml version='1.0'?><!DOCTYPE a SYSTEM \"http://x/a.dtd\"><a/>"),
            Some("http://x/a.dtd")
        );
        assert_eq!(
            external_subset(
                "<!DOCTYPE a PUBLIC '-//P//EN' 'http://x/b.dtd' [<!ENTITY e 'v'>]><a/>"
            ),
            Some("http://x/b.dtd")
        );
        assert_eq!(
            external_subset("<!DOCTYPE a [<!ENTITY e SYSTEM 'file:///x'>]><a/>"),
            None
        );
        assert_eq!(external_subset("<a/>"), None);
    }

    #[test]
    fn attacks_are_refused_and_each_unsafe_defect_lets_its_own_in() {
        use crate::peers::canary::Canary;
        use crate::schema::xml_attack::{build, XmlAttack, ALL as ATTACKS};
        let example = XML_BUILTINS[0].examples[0].bytes;
        let ok = Defects::default();
        let accepted_by = |defect: Option<Defect>, attack: XmlAttack| {
            let canary = Canary::start().expect("canary");
            let a = build(attack, example, canary.bait(), &Limits::default()).expect("built");
            let r = XmlReceiver::new(None, None);
            let d = defect.map(|d| Defects::new([d])).unwrap_or_default();
            let (status, body) = r.receive(AT, Some("application/xml"), &a.body, &d);
            (status, body.to_string(), canary.hits().len())
        };
        for attack in ATTACKS {
            let (status, body, hits) = accepted_by(None, *attack);
            assert_eq!(hits, 0, "{attack}");
            if *attack == XmlAttack::SchemaLocation {
                assert_eq!(status, StatusCode::OK, "{attack}: {body}");
            } else {
                assert!(status.is_client_error(), "{attack}: {status} {body}");
            }
        }
        let r = XmlReceiver::new(None, None);
        let (status, _) = r.receive(AT, Some("application/xml"), example, &ok);
        assert_eq!(status, StatusCode::OK);
        use Defect::*;
        use XmlAttack::*;
        for (defect, attack, accepts, fetches) in [
            (ResolvesExternalEntities, XxeFile, true, 0),
            (ResolvesExternalEntities, XxeHttp, true, 1),
            (ResolvesExternalEntities, ParameterEntity, true, 1),
            (ExpandsEntities, BillionLaughs, true, 0),
            (ExpandsEntities, QuadraticBlowup, true, 0),
            (FetchesExternalDtd, ExternalDtd, false, 1),
            (FetchesExternalDtd, SchemaLocation, true, 1),
            (FetchesExternalDtd, QuadraticBlowup, false, 0),
        ] {
            let (status, body, hits) = accepted_by(Some(defect), attack);
            assert_eq!(
                status == StatusCode::OK,
                accepts,
                "{defect} {attack}: {status} {body}"
            );
            assert_eq!(hits, fetches, "{defect} {attack}");
        }
    }
}
