//! Validation of messages against the shipped schemas: JSON Schema draft 2020-12 with
//! formats checked, plus the `x-luhn` keyword for Swedish identity numbers.
//!
//! [`MessageValidator`] is the seam for other content types: it takes the raw body, as an
//! IUT receives it, so an XML (XSD) validator can sit beside the JSON one later.

use std::fmt;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use jsonschema::paths::Location;
use jsonschema::{Keyword, ValidationError};
use serde_json::{Map, Value};

pub(crate) use super::model::{Limits, Violation};
use super::{body, luhn};

/// Checks a raw message body as an IUT receives it. One implementation per content type.
pub(crate) trait MessageValidator: Send + Sync {
    /// The media type this validator understands (`application/json`).
    fn content_type(&self) -> &str;

    /// `Ok` when the body is a well-formed message that follows the schema; otherwise every
    /// violation found (an undecodable body gives one, at pointer `""`).
    fn validate_bytes(&self, body: &[u8]) -> Result<(), Vec<Violation>>;

    /// Whether a `Content-Type` header value names this validator's media type
    /// (parameters such as `charset` are ignored; a missing header is not accepted).
    fn accepts_content_type(&self, header: Option<&str>) -> bool {
        header
            .and_then(|h| h.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(self.content_type()))
    }
}

/// A compiled JSON schema. Compile once; clones share the compiled form.
#[derive(Clone)]
pub(crate) struct Validator {
    compiled: Arc<jsonschema::Validator>,
    origin: Arc<str>,
    limits: Limits,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("origin", &self.origin)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Compiles `schema` (draft 2020-12, formats validated, `x-luhn` enforced). `origin`
    /// names it in errors, e.g. a file name. Only local `$ref`s resolve: nothing is fetched.
    pub(crate) fn from_schema(schema: &Value, origin: &str) -> Result<Validator> {
        let compiled = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_keyword("x-luhn", luhn_keyword)
            .build(schema);
        let compiled = match compiled {
            Ok(c) => c,
            Err(e) => {
                let at = e.instance_path().as_str();
                let at = if at.is_empty() { "(root)" } else { at };
                bail!("schema `{origin}` does not compile: at {at}: {e}");
            }
        };
        Ok(Validator {
            compiled: Arc::new(compiled),
            origin: origin.into(),
            limits: Limits::default(),
        })
    }

    /// Sets the body limits [`MessageValidator::validate_bytes`] enforces.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn with_limits(mut self, limits: Limits) -> Validator {
        self.limits = limits;
        self
    }

    /// The body limits [`MessageValidator::validate_bytes`] enforces.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Every violation of the schema, `x-luhn` included; empty = valid.
    pub(crate) fn validate(&self, instance: &Value) -> Vec<Violation> {
        self.compiled
            .iter_errors(instance)
            .map(|e| Violation {
                instance_path: e.instance_path().as_str().to_owned(),
                schema_path: e.schema_path().as_str().to_owned(),
                message: e.to_string(),
            })
            .collect()
    }

    /// Checks that each named example follows this schema, so a schema and its examples
    /// cannot drift apart unnoticed.
    pub(crate) fn check_examples(&self, examples: &[(String, Value)]) -> Result<()> {
        let mut failures = Vec::new();
        for (name, example) in examples {
            let violations = self.validate(example);
            if !violations.is_empty() {
                let lines: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
                failures.push(format!(
                    "example `{name}` does not validate against schema `{}`:\n{}",
                    self.origin,
                    lines.join("\n")
                ));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            bail!("{}", failures.join("\n"))
        }
    }
}

impl MessageValidator for Validator {
    fn content_type(&self) -> &str {
        "application/json"
    }

    fn validate_bytes(&self, body: &[u8]) -> Result<(), Vec<Violation>> {
        let value = body::parse_strict(body, &self.limits).map_err(|v| vec![v])?;
        let violations = self.validate(&value);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}

/// Parses a schema from text, naming `origin` in the error.
pub(crate) fn parse_json(text: &str, origin: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("`{origin}` is not valid JSON"))
}

/// `x-luhn: true` on a string property: the string must be a Swedish personal identity or
/// organisation number with a correct check digit. Registered as a keyword (rather than
/// checked in a second pass) so it applies wherever the schema applies, `$ref`s and
/// conditionals included, and its violations carry the keyword's own schema pointer.
fn luhn_keyword<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    location: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    match value {
        Value::Bool(enabled) => Ok(Box::new(LuhnKeyword { enabled: *enabled })),
        other => Err(ValidationError::schema(format!(
            "x-luhn at {} must be true or false, found {other}",
            location.as_str()
        ))),
    }
}

struct LuhnKeyword {
    enabled: bool,
}

impl<'i> Keyword<'i> for LuhnKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        match instance.as_str() {
            Some(s) if self.enabled => luhn::check(s).map_err(|e| {
                ValidationError::custom(format!(
                    "{instance} is not a valid Swedish identity number: {e}"
                ))
            }),
            // Like the standard keywords, it says nothing about other types.
            _ => Ok(()),
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        match instance.as_str() {
            Some(s) if self.enabled => luhn::check(s).is_ok(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::catalogue;
    use serde_json::json;

    fn org_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "org": {"$ref": "#/$defs/Org"},
                "when": {"type": "string", "format": "date-time"}
            },
            "required": ["org"],
            "additionalProperties": false,
            "$defs": {"Org": {"type": "string", "pattern": "^[0-9]{6}-?[0-9]{4}$", "x-luhn": true}}
        })
    }

    #[test]
    fn every_shipped_schema_compiles_and_its_examples_validate() {
        for b in catalogue::BUILTINS {
            let v = Validator::builtin(b.id).expect("compiles");
            let examples = b.examples().expect("examples parse");
            assert!(!examples.is_empty(), "{} has no example", b.id);
            v.check_examples(&examples).expect("examples validate");
        }
    }

    #[test]
    fn unknown_builtin_lists_the_known_ids() {
        let e = Validator::builtin("fullmakt/nope")
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("fullmakt/agent-notification"), "{e}");
        assert!(e.contains("ebevis/epoc-pr"), "{e}");
    }

    #[test]
    fn a_broken_schema_is_reported_with_its_origin_and_pointer() {
        let bad = json!({"properties": {"a": {"type": "strin"}}});
        let e = Validator::from_schema(&bad, "broken.schema.json").expect_err("bad");
        let e = e.to_string();
        assert!(e.contains("broken.schema.json"), "{e}");
        assert!(e.contains("/properties/a/type"), "{e}");

        let bad_regex = json!({"properties": {"a": {"pattern": "(("}}});
        let e = Validator::from_schema(&bad_regex, "regex.json")
            .expect_err("bad")
            .to_string();
        assert!(
            e.contains("regex.json") && e.contains("/properties/a/pattern"),
            "{e}"
        );

        let bad_luhn = json!({"properties": {"a": {"x-luhn": "yes"}}});
        let e = Validator::from_schema(&bad_luhn, "luhn.json")
            .expect_err("bad")
            .to_string();
        assert!(
            e.contains("luhn.json") && e.contains("/properties/a/x-luhn"),
            "{e}"
        );
    }

    #[test]
    fn an_invalid_example_is_reported_with_its_name_and_pointer() {
        let v = Validator::from_schema(&org_schema(), "org.json").expect("compiles");
        let examples = vec![
            ("good.json".to_owned(), json!({"org": "556036-0793"})),
            (
                "bad.json".to_owned(),
                json!({"org": "556036-0793", "when": "yesterday"}),
            ),
        ];
        let e = v
            .check_examples(&examples)
            .expect_err("bad example")
            .to_string();
        assert!(e.contains("bad.json") && !e.contains("good.json"), "{e}");
        assert!(e.contains("at /when (rule /properties/when/format)"), "{e}");
    }

    #[test]
    fn luhn_is_enforced_through_refs_with_the_keyword_pointer() {
        let v = Validator::from_schema(&org_schema(), "org.json").expect("compiles");
        assert!(v.validate(&json!({"org": "5560360793"})).is_empty());
        let got = v.validate(&json!({"org": "556036-0794"}));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].instance_path, "/org");
        assert_eq!(got[0].schema_path, "/$defs/Org/x-luhn");
        assert!(
            got[0].message.contains("the Luhn algorithm gives 3"),
            "{}",
            got[0].message
        );
    }

    #[test]
    fn personal_identity_numbers_follow_the_shipped_pattern_and_luhn() {
        let schema = json!({
            "type": "string",
            "pattern": "^(19|20)?[0-9]{6}[-+]?[0-9]{4}$",
            "x-luhn": true
        });
        let v = Validator::from_schema(&schema, "pnr").expect("compiles");
        for ok in ["19121212-1212", "191212121212", "121212-1212"] {
            assert!(v.validate(&json!(ok)).is_empty(), "{ok}");
        }
        let bad = v.validate(&json!("191212121213"));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].schema_path, "/x-luhn");
    }

    #[test]
    fn conditional_rules_of_the_shipped_ebevis_schemas_hold() {
        let epoc = Validator::builtin("ebevis/epoc").expect("compiles");
        let example = catalogue::get("ebevis/epoc")
            .and_then(|b| b.example())
            .expect("example");
        let broken = |pointer: &str, value: Value| {
            let mut doc = example.clone();
            *doc.pointer_mut(pointer).expect("present") = value;
            epoc.validate(&doc)
        };
        // A personal identity number among the user identifiers must pass Luhn.
        let v = broken("/userIdentifiers/1/value", json!("19121212-1213"));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].instance_path, "/userIdentifiers/1/value");
        assert_eq!(v[0].schema_path, "/$defs/PersonalIdentityNumber/x-luhn");
        // An order by another competent authority needs a validating authority.
        let v = broken("/issuingAuthority/kind", json!("other-competent-authority"));
        assert!(
            v.iter().any(|v| v.message.contains("validatingAuthority")),
            "{v:?}"
        );
        // Content data cannot be ordered for any criminal offence.
        assert!(!broken("/dataCategories", json!(["content"])).is_empty());

        let response = Validator::builtin("ebevis/epoc-response").expect("compiles");
        let refusal = json!({
            "messageType": "EPOC-RESPONSE",
            "apiVersion": "1.0",
            "inResponseTo": "SE-EXPROS-2024-000124",
            "orderType": "EPOC",
            "respondedAt": "2024-03-18T11:05:00+01:00",
            "serviceProvider": {"name": "Example Telecom AB", "memberState": "SE"},
            "outcome": "not-executed"
        });
        let v = response.validate(&refusal);
        assert!(
            v.iter().any(|v| v.message.contains("impossibility")),
            "{v:?}"
        );
    }

    #[test]
    fn validate_bytes_turns_undecodable_bodies_into_root_violations() {
        let v = Validator::from_schema(&org_schema(), "org.json").expect("compiles");
        assert_eq!(v.validate_bytes(br#"{"org":"5560360793"}"#), Ok(()));
        for (body, says) in [
            (&b"{\"org\":"[..], "malformed JSON"),
            (&b"{\"org\":\"55603\xff60793\"}"[..], "not valid UTF-8"),
            (&b""[..], "empty body"),
        ] {
            let got = v.validate_bytes(body).expect_err("refused");
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].instance_path, "");
            assert!(got[0].message.contains(says), "{}", got[0].message);
        }
        let schema_errors = v
            .validate_bytes(br#"{"org":5560360793}"#)
            .expect_err("type");
        assert_eq!(schema_errors[0].schema_path, "/$defs/Org/type");
    }

    #[test]
    fn content_type_matching_ignores_parameters_and_case_but_not_absence() {
        let v = Validator::from_schema(&json!({}), "any").expect("compiles");
        assert!(v.accepts_content_type(Some("application/json")));
        assert!(v.accepts_content_type(Some("Application/JSON; charset=utf-8")));
        assert!(!v.accepts_content_type(Some("text/plain")));
        assert!(!v.accepts_content_type(None));
    }
}
