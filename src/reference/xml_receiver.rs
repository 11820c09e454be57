//! The reference IUT as a receiver of SDK messages (SDK-SPEC): SDK Meddelande 3.1 in an
//! XHE envelope, POSTed as `application/xml` or `text/xml` to `/v1/sdk/messages`,
//! validated with libxml2 against the shipped XSDs (a real receiver validates too).
//! Answers 200 with the message id, 400 for a body that is not well-formed XML, 415 for
//! another media type, 413 for an oversize body, 422 for a schema violation.
//! Receipts (Meddelandekvittens) are not sent yet.

use std::sync::{Mutex, OnceLock};

use hyper::StatusCode;
use serde_json::{json, Value};

use super::defects::{Defect, Defects};
use crate::schema::xml::XmlValidator;
use crate::schema::{Limits, MessageValidator};

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

pub(super) struct XmlReceiver {
    accepted: Mutex<Vec<String>>,
}

impl XmlReceiver {
    pub(super) fn new() -> Self {
        XmlReceiver {
            accepted: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn handles(rest: &[&str]) -> bool {
        ENDPOINTS.iter().any(|(e, _)| *e == rest)
    }

    /// Ids of the accepted messages, in arrival order.
    pub(super) fn accepted(&self) -> Vec<String> {
        self.accepted.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub(super) fn receive(
        &self,
        rest: &[&str],
        content_type: Option<&str>,
        body: &[u8],
        d: &Defects,
    ) -> (StatusCode, Value) {
        let Some((_, id)) = ENDPOINTS.iter().find(|(e, _)| *e == rest) else {
            return (StatusCode::NOT_FOUND, json!({"error": "not found"}));
        };
        let Some(v) = validator(id) else {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "validator unavailable"}),
            );
        };
        if !v.accepts_content_type(content_type) {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "the body must be application/xml or text/xml"}),
            );
        }
        if body.len() > Limits::default().max_body_bytes {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "the body is too large"}),
            );
        }
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
            let list: Vec<Value> = remaining
                .iter()
                .map(|x| json!({"xpath": x.instance_path, "rule": x.schema_path, "message": x.message}))
                .collect();
            return (
                status,
                json!({"error": "invalid message", "violations": list}),
            );
        }
        let id = v.message_id(body).unwrap_or_default();
        if let Ok(mut a) = self.accepted.lock() {
            a.push(id.clone());
        }
        (StatusCode::OK, json!({"status": "accepted", "id": id}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::xml::XML_BUILTINS;
    use crate::schema::xml_invalid::{generate, XmlDefect, ALL};

    const AT: &[&str] = &["sdk", "messages"];

    #[test]
    fn valid_is_accepted_and_every_generated_invalid_class_refused() {
        let r = XmlReceiver::new();
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
}
