//! The reference IUT as a receiver of messages: registry notifications and e-Evidence
//! orders, validated strictly against the shipped schemas (a real implementation uses a
//! validator too), processed once per id: a resend (same id, same body) is answered as
//! the first delivery was, a reused id with another body is a conflict. Seeded defects
//! loosen exactly one rule each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use hyper::StatusCode;
use serde_json::{json, Value};

use super::audit::{Audit, Direction};
use super::defects::{Defect, Defects};
use crate::schema::{MessageValidator, Validator};

/// Endpoint (after the version) → (builtin schema, JSON pointer of the message id).
const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("notifications", "fullmakt/agent-notification", "/Identity"),
    ("epoc", "ebevis/epoc", "/orderId"),
    ("epoc-pr", "ebevis/epoc-pr", "/orderId"),
];

pub(super) struct Receiver {
    /// One entry per processing.
    accepted: Mutex<Vec<String>>,
    /// Processed ids and the digest of their (parsed) body.
    seen: Mutex<HashMap<String, [u8; 32]>>,
    audit: Arc<Audit>,
}

fn validators() -> &'static Vec<(String, Option<Validator>)> {
    static V: OnceLock<Vec<(String, Option<Validator>)>> = OnceLock::new();
    V.get_or_init(|| {
        ENDPOINTS
            .iter()
            .map(|(_, id, _)| (id.to_string(), Validator::builtin(id).ok()))
            .collect()
    })
}

impl Receiver {
    pub(super) fn new(audit: Arc<Audit>) -> Self {
        Receiver {
            accepted: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            audit,
        }
    }

    pub(super) fn handles(endpoint: &str) -> bool {
        ENDPOINTS.iter().any(|(e, _, _)| *e == endpoint)
    }

    pub(super) fn accepted(&self) -> Vec<String> {
        self.accepted.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Validates and records one message; the status and body to answer.
    pub(super) fn receive(
        &self,
        endpoint: &str,
        content_type: Option<&str>,
        body: &[u8],
        d: &Defects,
    ) -> (StatusCode, Value) {
        let Some((_, schema_id, id_pointer)) = ENDPOINTS.iter().find(|(e, _, _)| *e == endpoint)
        else {
            return (StatusCode::NOT_FOUND, json!({"error": "not found"}));
        };
        let Some(validator) = validators()
            .iter()
            .find(|(id, _)| id == schema_id)
            .and_then(|(_, v)| v.as_ref())
        else {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "validator unavailable"}),
            );
        };
        let refuse = |status: StatusCode, error: &str, extra: Value| {
            let mut v = json!({"error": error});
            if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
                obj.extend(more);
            }
            if d.has(Defect::LeakStackTrace) {
                v["trace"] = json!("thread 'tokio-runtime-worker' panicked at src/reference/messages.rs:97:13\n   0: provsten::schema::validate::Validator::validate\n             at /home/build/provsten/src/schema/validate.rs:134");
            }
            (status, v)
        };
        if !validator.accepts_content_type(content_type) {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
                json!({}),
            );
        }
        if body.len() > validator.limits().max_body_bytes {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is too large",
                json!({}),
            );
        }
        let malformed = serde_json::from_slice::<Value>(body).is_err()
            && std::str::from_utf8(body).is_ok()
            && !body.is_empty();
        if malformed && d.has(Defect::FiveHundredOnMalformed) {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                json!({}),
            );
        }
        let violations = match validator.validate_bytes(body) {
            Ok(()) => Vec::new(),
            Err(v) => v,
        };
        // Each defect ignores one kind of schema rule.
        let ignored = |schema_path: &str| {
            (d.has(Defect::AcceptMissingField) && schema_path.ends_with("/required"))
                || (d.has(Defect::AcceptUnknownEnum) && schema_path.ends_with("/enum"))
                || (d.has(Defect::CoerceTypes) && schema_path.ends_with("/type"))
                || (d.has(Defect::AcceptExtraFields)
                    && schema_path.ends_with("/additionalProperties"))
        };
        let remaining: Vec<_> = violations
            .iter()
            .filter(|v| !ignored(&v.schema_path))
            .collect();
        if !remaining.is_empty() {
            let parse_error = remaining.iter().any(|v| v.schema_path.is_empty());
            let status = if parse_error {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let list: Vec<Value> = remaining
                .iter()
                .map(|v| json!({"pointer": v.instance_path, "rule": v.schema_path, "message": v.message}))
                .collect();
            return refuse(status, "invalid message", json!({"violations": list}));
        }
        let parsed = serde_json::from_slice::<Value>(body).ok();
        let id = parsed
            .as_ref()
            .and_then(|v| {
                v.pointer(id_pointer).map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
            })
            .unwrap_or_default();
        // The parsed body, re-serialised: the same message however it is spaced.
        let digest: [u8; 32] = {
            use sha2::Digest;
            let canonical = parsed.map(|v| v.to_string()).unwrap_or_default();
            sha2::Sha256::digest(canonical.as_bytes()).into()
        };
        let mut seen = match self.seen.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if !d.has(Defect::DuplicateProcessing) {
            match seen.get(&id) {
                // Idempotent: a resent message is answered the same and processed once.
                Some(prev) if *prev == digest => {
                    return (
                        StatusCode::OK,
                        json!({"status": "accepted", "id": id, "duplicate": true}),
                    )
                }
                Some(_) => {
                    return refuse(
                        StatusCode::CONFLICT,
                        "duplicate id with a different body",
                        json!({}),
                    )
                }
                None => {}
            }
        }
        let first = seen.insert(id.clone(), digest).is_none();
        drop(seen);
        if let Ok(mut a) = self.accepted.lock() {
            a.push(id.clone());
        }
        if first || d.has(Defect::DuplicateProcessing) {
            self.audit.record(&id, Direction::Received);
        }
        (StatusCode::OK, json!({"status": "accepted", "id": id}))
    }
}
