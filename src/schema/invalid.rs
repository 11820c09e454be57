//! Invalid messages: the defect classes a receiver must refuse (FMK-2.6.2-VALIDATE,
//! EB-SCHEMA-1), one concrete message per class ([`catalogue`]), a proptest strategy of
//! schema-breaking mutations ([`invalid_mutations`]) and the search for an invalid message
//! an IUT accepts, shrunk to a minimal counter-example ([`find_accepted_invalid`]).
//!
//! Every message is checked against the [`Validator`] before it is handed out, so the
//! generator never passes off a valid message as invalid.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::Value;

use super::body::{self, Splice};
use super::model::Violation;
pub(crate) use super::model::{DefectClass, Layer, Limits};
use super::sites::{self, Site, SiteKind};
use super::validate::Validator;

/// One concrete invalid message and what was done to the valid example to get it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct InvalidMessage {
    /// The defect it carries.
    pub class: DefectClass,
    /// The exact bytes to send.
    pub body: Vec<u8>,
    /// The `Content-Type` to send it with; `None` = send no such header.
    pub content_type: Option<String>,
    /// What was changed, e.g. `removed required /Identity`.
    pub mutation: String,
    /// JSON pointer of the schema rule it breaks; `None` for body and header defects.
    pub pointer: Option<String>,
}

/// A message an IUT accepted although the validator refuses it, shrunk to a minimal one.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct CounterExample {
    /// The smallest accepted message shrinking found.
    pub message: Value,
    /// Why the validator refuses it.
    pub violations: Vec<Violation>,
    /// How many times shrinking found a smaller message the IUT still accepted.
    pub shrink_steps: u32,
}

const JSON: &str = "application/json";

/// Every defect class that applies to this schema and example, each as one concrete
/// message, in [`DefectClass::ALL`] order. Deterministic: same inputs, same output.
pub(crate) fn catalogue(schema: &Value, example: &Value, limits: &Limits) -> Vec<InvalidMessage> {
    plan(schema, example, limits)
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// The classes [`catalogue`] leaves out for this schema and example, with the reason.
pub(crate) fn skipped(
    schema: &Value,
    example: &Value,
    limits: &Limits,
) -> Vec<(DefectClass, String)> {
    plan(schema, example, limits)
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

fn plan(
    schema: &Value,
    example: &Value,
    limits: &Limits,
) -> Vec<Result<InvalidMessage, (DefectClass, String)>> {
    let validator = Validator::from_schema(schema, "schema").map_err(|e| format!("{e:#}"));
    let sites = sites::sites(schema, example);
    DefectClass::ALL
        .iter()
        .map(|&class| {
            let made = match class.layer() {
                Layer::Schema => match &validator {
                    Ok(v) => schema_defect(class, v, example, &sites),
                    Err(e) => Err(format!("the schema does not compile: {e}")),
                },
                Layer::Body | Layer::Header => body_defect(class, example, limits),
            };
            made.map_err(|reason| (class, reason))
        })
        .collect()
}

/// A change to a document, addressed by JSON pointers.
#[derive(Debug, Clone)]
enum Edit {
    Remove {
        object: String,
        key: String,
    },
    Set {
        at: String,
        value: Value,
    },
    Insert {
        object: String,
        key: String,
        value: Value,
    },
}

impl Edit {
    fn apply(&self, doc: &mut Value) {
        // A target an earlier edit removed or retyped is skipped: the other edits still
        // break the schema, and the final filter makes sure of it.
        match self {
            Edit::Remove { object, key } => {
                if let Some(Value::Object(m)) = doc.pointer_mut(object) {
                    m.remove(key);
                }
            }
            Edit::Set { at, value } => {
                if let Some(slot) = doc.pointer_mut(at) {
                    *slot = value.clone();
                }
            }
            Edit::Insert { object, key, value } => {
                if let Some(Value::Object(m)) = doc.pointer_mut(object) {
                    m.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

fn applied(example: &Value, edits: &[Edit]) -> Value {
    let mut doc = example.clone();
    for e in edits {
        e.apply(&mut doc);
    }
    doc
}

fn schema_defect(
    class: DefectClass,
    validator: &Validator,
    example: &Value,
    sites: &[Site],
) -> Result<InvalidMessage, String> {
    if let Some(v) = validator.validate(example).first() {
        return Err(format!(
            "the example does not validate against the schema: {v}"
        ));
    }
    let mut candidates: Vec<&Site> = sites.iter().filter(|s| s.kind.class() == class).collect();
    if candidates.is_empty() {
        return Err(not_applicable(class).to_owned());
    }
    // A wrong type for a whole object says little; prefer a scalar's, and the root's last.
    if class == DefectClass::WrongType {
        candidates.sort_by_key(|s| {
            let container = example
                .pointer(&s.instance)
                .is_some_and(|v| v.is_object() || v.is_array());
            (s.instance.is_empty(), container)
        });
    }
    for site in &candidates {
        for (edit, mutation) in concrete_edits(site, example) {
            let doc = applied(example, std::slice::from_ref(&edit));
            let breaks_rule = validator
                .validate(&doc)
                .iter()
                .any(|v| v.schema_path == site.rule);
            if breaks_rule {
                let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
                return Ok(InvalidMessage {
                    class,
                    body,
                    content_type: Some(JSON.to_owned()),
                    mutation,
                    pointer: Some(site.rule.clone()),
                });
            }
        }
    }
    Err(format!(
        "none of the {} rules of this class could be broken on its own",
        candidates.len()
    ))
}

fn not_applicable(class: DefectClass) -> &'static str {
    match class {
        DefectClass::MissingRequiredField => "no `required` property is present in the example",
        DefectClass::WrongType => "no `type` applies to the example",
        DefectClass::UnknownEnumValue => "no `enum` or `const` applies to the example",
        DefectClass::PatternViolation => {
            "no `pattern` or `format` applies to a string in the example"
        }
        DefectClass::LuhnCheckDigit => "no `x-luhn` string is present in the example",
        DefectClass::OutOfRange => {
            "no minimum, maximum, minLength, maxLength, minItems or maxItems applies to the example"
        }
        DefectClass::ExtraProperty => {
            "no object in the example is closed by `additionalProperties: false`"
        }
        _ => "not a schema defect",
    }
}

/// Concrete edits that break `site`'s rule, smallest change first, each with its
/// description. The caller keeps the first one the validator confirms.
fn concrete_edits(site: &Site, example: &Value) -> Vec<(Edit, String)> {
    let at = &site.instance;
    let shown = if at.is_empty() { "(root)" } else { at.as_str() };
    let Some(current) = example.pointer(at) else {
        return Vec::new();
    };
    let set = |value: Value, why: String| {
        (
            Edit::Set {
                at: at.clone(),
                value,
            },
            why,
        )
    };
    match &site.kind {
        SiteKind::Required { key } => vec![(
            Edit::Remove {
                object: at.clone(),
                key: key.clone(),
            },
            format!("removed required {at}/{}", body::escape(key)),
        )],
        SiteKind::Type { allowed } => {
            let mut values = Vec::new();
            values.extend(swapped_type(current));
            values.extend([
                Value::from(0),
                Value::from("0"),
                Value::Bool(true),
                Value::Null,
                Value::Array(Vec::new()),
                Value::Object(serde_json::Map::new()),
            ]);
            values
                .into_iter()
                .filter(|v| !type_allowed(allowed, v))
                .map(|v| {
                    let was = match current {
                        Value::Object(_) | Value::Array(_) => json_type(current).to_owned(),
                        scalar => format!("{} {scalar}", json_type(scalar)),
                    };
                    let why = format!(
                        "changed {shown} from {was} to {} {v} (the schema allows {})",
                        json_type(&v),
                        allowed.join(" or ")
                    );
                    set(v, why)
                })
                .collect()
        }
        SiteKind::Enum { values } => {
            let mut tries = Vec::new();
            if let Some(s) = current.as_str() {
                tries.push(Value::from(s.to_uppercase()));
                tries.push(Value::from(s.to_lowercase()));
                tries.push(Value::from(format!("{s}-unknown")));
            }
            let max_int = values.iter().filter_map(Value::as_i64).max();
            if let Some(max) = max_int {
                tries.push(Value::from(max.saturating_add(1)));
            }
            tries.push(Value::from("provsten-unknown"));
            tries
                .into_iter()
                .filter(|v| !values.contains(v))
                .map(|v| {
                    let why = format!(
                        "set {shown} to {v}, not one of the {} allowed values",
                        values.len()
                    );
                    set(v, why)
                })
                .collect()
        }
        SiteKind::Pattern { pattern } => {
            let s = current.as_str().unwrap_or_default();
            let mut chopped = s.to_owned();
            chopped.pop();
            [chopped, format!("{s}!"), format!("!{s}"), String::new()]
                .into_iter()
                .map(|v| {
                    let why = format!("set {shown} to {v:?}, which does not match {pattern}");
                    set(Value::from(v), why)
                })
                .collect()
        }
        SiteKind::Format { format } => {
            let s = current.as_str().unwrap_or_default();
            [format!("{s}x"), format!("not-a-{format}"), String::new()]
                .into_iter()
                .map(|v| {
                    let why = format!("set {shown} to {v:?}, which is not a valid {format}");
                    set(Value::from(v), why)
                })
                .collect()
        }
        SiteKind::Luhn => {
            let s = current.as_str().unwrap_or_default();
            let Some((i, d)) = s.char_indices().rev().find(|(_, c)| c.is_ascii_digit()) else {
                return Vec::new();
            };
            let old = d as u8 - b'0';
            let new = (old + 1) % 10;
            let mut changed = s.to_owned();
            changed.replace_range(i..i + 1, &new.to_string());
            let why = format!(
                "changed the check digit of {shown} from {old} to {new} ({changed:?}), which fails the Luhn check"
            );
            vec![set(Value::from(changed), why)]
        }
        SiteKind::Minimum { limit, exclusive } => {
            let v = step_past(current, *limit, *exclusive, -1.0);
            let why = format!("set {shown} to {v}, below the minimum {limit}");
            vec![set(v, why)]
        }
        SiteKind::Maximum { limit, exclusive } => {
            let v = step_past(current, *limit, *exclusive, 1.0);
            let why = format!("set {shown} to {v}, above the maximum {limit}");
            vec![set(v, why)]
        }
        SiteKind::MinLength(n) => {
            let s = current.as_str().unwrap_or_default();
            let v: String = s.chars().take(to_usize(*n).saturating_sub(1)).collect();
            let why = format!(
                "shortened {shown} to {} characters, under minLength {n}",
                v.chars().count()
            );
            vec![set(Value::from(v), why)]
        }
        SiteKind::MaxLength(n) => {
            let v = padded(
                current.as_str().unwrap_or_default(),
                to_usize(*n).saturating_add(1),
            );
            let why = format!(
                "lengthened {shown} to {} characters, over maxLength {n}",
                v.chars().count()
            );
            vec![set(Value::from(v), why)]
        }
        SiteKind::MinItems(n) => {
            let items = current.as_array().cloned().unwrap_or_default();
            let v: Vec<Value> = items
                .into_iter()
                .take(to_usize(*n).saturating_sub(1))
                .collect();
            let why = format!("cut {shown} to {} items, under minItems {n}", v.len());
            vec![set(Value::Array(v), why)]
        }
        SiteKind::MaxItems(n) => {
            let v = grown(current, to_usize(*n).saturating_add(1));
            let why = format!("grew {shown} to {} items, over maxItems {n}", v.len());
            vec![set(Value::Array(v), why)]
        }
        SiteKind::Closed { known } => {
            let present = current.as_object();
            let key = (0..)
                .map(|i| {
                    if i == 0 {
                        "provstenUnexpected".to_owned()
                    } else {
                        format!("provstenUnexpected{i}")
                    }
                })
                .find(|k| !known.contains(k) && present.is_none_or(|m| !m.contains_key(k)))
                .unwrap_or_default();
            let why = format!(
                "added property {at}/{}, which the schema does not declare",
                body::escape(&key)
            );
            vec![(
                Edit::Insert {
                    object: at.clone(),
                    key,
                    value: Value::Bool(true),
                },
                why,
            )]
        }
    }
}

/// The same content in another JSON type, the classic "stringly typed" slip: `2` ↔ `"2"`.
fn swapped_type(v: &Value) -> Option<Value> {
    match v {
        Value::Number(n) => Some(Value::from(n.to_string())),
        Value::Bool(b) => Some(Value::from(b.to_string())),
        Value::String(s) => serde_json::from_str::<serde_json::Number>(s)
            .ok()
            .map(Value::Number),
        _ => None,
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_allowed(allowed: &[String], v: &Value) -> bool {
    let t = json_type(v);
    allowed
        .iter()
        .any(|a| a == t || (a == "number" && t == "integer"))
}

/// The nearest value past a bound: one below a minimum (at it, if exclusive), one above a
/// maximum. Integers stay integers so the type rule still holds.
fn step_past(current: &Value, limit: f64, exclusive: bool, direction: f64) -> Value {
    let target = if exclusive { limit } else { limit + direction };
    let integral = current.is_i64() || current.is_u64();
    // JSON numbers from a schema are finite; the bounds checks keep the cast exact.
    if integral && target.fract() == 0.0 && target.abs() < 9.0e15 {
        Value::from(target as i64)
    } else {
        Value::from(target)
    }
}

fn padded(s: &str, chars: usize) -> String {
    let mut v = s.to_owned();
    let have = v.chars().count();
    v.extend(std::iter::repeat_n('x', chars.saturating_sub(have)));
    v
}

fn grown(current: &Value, len: usize) -> Vec<Value> {
    let mut items = current.as_array().cloned().unwrap_or_default();
    let filler = items.last().cloned().unwrap_or(Value::Null);
    while items.len() < len {
        items.push(filler.clone());
    }
    items
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn body_defect(
    class: DefectClass,
    example: &Value,
    limits: &Limits,
) -> Result<InvalidMessage, String> {
    let valid = serde_json::to_vec(example).map_err(|e| e.to_string())?;
    let message = |body: Vec<u8>, content_type: Option<&str>, mutation: String| InvalidMessage {
        class,
        body,
        content_type: content_type.map(str::to_owned),
        mutation,
        pointer: None,
    };
    let unparseable = |b: &[u8]| serde_json::from_slice::<Value>(b).is_err();
    match class {
        DefectClass::MalformedJson => {
            let mut body = valid.clone();
            let mutation = match body.last() {
                Some(&close @ (b'}' | b']')) => {
                    let at = body.len() - 1;
                    body.insert(at, b',');
                    format!("inserted a comma before the final '{}'", char::from(close))
                }
                _ => {
                    body.push(b'}');
                    "appended a stray '}'".to_owned()
                }
            };
            if !unparseable(&body) {
                return Err("could not make the example malformed".to_owned());
            }
            Ok(message(body, Some(JSON), mutation))
        }
        DefectClass::TruncatedBody => {
            let mut cut = valid.len() / 2;
            while cut > 0 && !unparseable(&valid[..cut]) {
                cut -= 1;
            }
            if cut == 0 {
                return Err("the example is too short to cut".to_owned());
            }
            let mutation = format!("cut the body after {cut} of {} bytes", valid.len());
            Ok(message(valid[..cut].to_vec(), Some(JSON), mutation))
        }
        DefectClass::InvalidUtf8 => {
            let leaves = sites::leaves(example);
            let Some((at, _)) = leaves.iter().find(|(_, v)| v.is_string()) else {
                return Err("the example has no string value to corrupt".to_owned());
            };
            let body = body::splice(example, at, &Splice::InvalidUtf8)
                .ok_or_else(|| format!("could not corrupt the string at {at}"))?;
            let mutation =
                format!("inserted the byte 0xFF (never valid UTF-8) into the string at {at}");
            Ok(message(body, Some(JSON), mutation))
        }
        DefectClass::WrongContentType => Ok(message(
            valid,
            Some("text/plain"),
            "sent the valid example as text/plain".to_owned(),
        )),
        DefectClass::MissingContentType => Ok(message(
            valid,
            None,
            "sent the valid example without a Content-Type header".to_owned(),
        )),
        DefectClass::OversizeBody => {
            let mut body = valid;
            let target = limits.max_body_bytes.saturating_add(1);
            if body.len() < target {
                // Whitespace keeps the document valid: only its size is wrong.
                body.resize(target, b' ');
            }
            let mutation = format!(
                "padded the valid example with spaces to {} bytes (limit {})",
                body.len(),
                limits.max_body_bytes
            );
            Ok(message(body, Some(JSON), mutation))
        }
        DefectClass::DeepNesting => {
            let total = limits.max_depth.saturating_add(1);
            let leaves = sites::leaves(example);
            let (body, mutation) = match leaves.first() {
                Some((at, _)) => {
                    let levels = total.saturating_sub(sites::depth_of(at)).max(1);
                    let body = body::splice(example, at, &Splice::NestedArrays { levels })
                        .ok_or_else(|| format!("could not nest arrays at {at}"))?;
                    let mutation = format!(
                        "replaced {at} with {levels} nested arrays, {} levels in all (limit {})",
                        sites::depth_of(at) + levels,
                        limits.max_depth
                    );
                    (body, mutation)
                }
                None => {
                    let mut body = vec![b'['; total];
                    body.extend(std::iter::repeat_n(b']', total));
                    let mutation = format!(
                        "sent {total} nested arrays instead of the example (limit {})",
                        limits.max_depth
                    );
                    (body, mutation)
                }
            };
            Ok(message(body, Some(JSON), mutation))
        }
        DefectClass::DuplicateKeys => {
            let objects = sites::objects(example);
            let Some((at, obj)) = objects.iter().find(|(_, m)| !m.is_empty()) else {
                return Err("the example has no object with a property to repeat".to_owned());
            };
            let key = obj.keys().next().cloned().unwrap_or_default();
            let body = body::splice(example, at, &Splice::DuplicateFirstKey)
                .ok_or_else(|| format!("could not repeat a key in the object at {at}"))?;
            let shown = if at.is_empty() { "(root)" } else { at.as_str() };
            let mutation = format!("repeated the key {key:?} in the object at {shown}");
            Ok(message(body, Some(JSON), mutation))
        }
        DefectClass::EmptyBody => Ok(message(
            Vec::new(),
            Some(JSON),
            "sent an empty body".to_owned(),
        )),
        _ => Err("not a body or header defect".to_owned()),
    }
}

/// A proptest strategy of schema-invalid mutations of `example`: one to three edits
/// (required properties removed, values of the wrong type, enum values out of the set,
/// strings broken against their pattern or format, wrong check digits, values out of
/// range, extra properties), each kept only if `validator` refuses the result. Shrinking
/// drops edits and moves each towards the smallest change (the bound plus one, the empty
/// string, zero), so a failure shrinks to the example with one small change.
pub(crate) fn invalid_mutations(
    validator: Arc<Validator>,
    schema: Value,
    example: Value,
) -> impl Strategy<Value = Value> {
    let edits: Vec<BoxedStrategy<Edit>> = sites::sites(&schema, &example)
        .iter()
        .filter_map(|site| edit_strategy(site, &example))
        .collect();
    if edits.is_empty() {
        // Nothing in the schema can be broken; every case is rejected and the runner gives
        // up, which `find_accepted_invalid` reports as "none found".
        return Just(example)
            .prop_filter("the schema has no rule to break", |_| false)
            .boxed();
    }
    let example = Arc::new(example);
    proptest::collection::vec(Union::new(edits), 1..=3)
        .prop_map(move |edits| applied(&example, &edits))
        .prop_filter("a mutation must break the schema", move |doc| {
            !validator.validate(doc).is_empty()
        })
        .boxed()
}

/// The random counterpart of [`concrete_edits`], with shrinking towards the smallest
/// change. `None` for a site that cannot be broken on its own.
fn edit_strategy(site: &Site, example: &Value) -> Option<BoxedStrategy<Edit>> {
    let at = site.instance.clone();
    let current = example.pointer(&at)?.clone();
    let set = move |s: BoxedStrategy<Value>| -> BoxedStrategy<Edit> {
        let at = at.clone();
        s.prop_map(move |value| Edit::Set {
            at: at.clone(),
            value,
        })
        .boxed()
    };
    let strategy = match &site.kind {
        SiteKind::Required { key } => Just(Edit::Remove {
            object: site.instance.clone(),
            key: key.clone(),
        })
        .boxed(),
        SiteKind::Type { allowed } => set(wrong_type(allowed)?),
        SiteKind::Enum { values } => {
            let values = values.clone();
            let base = if values.iter().all(Value::is_number) {
                any::<i64>().prop_map(Value::from).boxed()
            } else {
                "[A-Za-z-]{0,12}".prop_map(Value::from).boxed()
            };
            set(base
                .prop_filter("outside the enum", move |v| !values.contains(v))
                .boxed())
        }
        SiteKind::Pattern { pattern } => {
            let matcher = single_rule(serde_json::json!({"type": "string", "pattern": pattern}))?;
            set(breaking_strings(matcher)?)
        }
        SiteKind::Format { format } => {
            let matcher = single_rule(serde_json::json!({"type": "string", "format": format}))?;
            set(breaking_strings(matcher)?)
        }
        SiteKind::Luhn => {
            let s = current.as_str()?.to_owned();
            let digits: Vec<usize> = s
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .map(|(i, _)| i)
                .collect();
            if digits.is_empty() {
                return None;
            }
            // Luhn catches every single-digit change, so each of these fails the check
            // while the pattern (digits and separators) still holds.
            let changes = (0..digits.len(), 1u8..=9).prop_map(move |(which, delta)| {
                let i = digits[digits.len() - 1 - which];
                let old = s.as_bytes()[i] - b'0';
                let mut changed = s.clone();
                changed.replace_range(i..i + 1, &((old + delta) % 10).to_string());
                Value::from(changed)
            });
            set(changes.boxed())
        }
        SiteKind::Minimum { limit, exclusive } => {
            let (limit, exclusive) = (*limit, *exclusive);
            let past = (0u32..1000)
                .prop_map(move |k| step_past(&current, limit - f64::from(k), exclusive, -1.0));
            set(past.boxed())
        }
        SiteKind::Maximum { limit, exclusive } => {
            let (limit, exclusive) = (*limit, *exclusive);
            let past = (0u32..1000)
                .prop_map(move |k| step_past(&current, limit + f64::from(k), exclusive, 1.0));
            set(past.boxed())
        }
        SiteKind::MinLength(n) => {
            let s = current.as_str().unwrap_or_default().to_owned();
            let shorter =
                (0..to_usize(*n)).prop_map(move |len| Value::from(padded_or_cut(&s, len)));
            set(shorter.boxed())
        }
        SiteKind::MaxLength(n) => {
            let s = current.as_str().unwrap_or_default().to_owned();
            let first = to_usize(*n).saturating_add(1);
            let longer = (0usize..64).prop_map(move |k| Value::from(padded(&s, first + k)));
            set(longer.boxed())
        }
        SiteKind::MinItems(n) => {
            let items = current.as_array()?.clone();
            let fewer = (0..to_usize(*n))
                .prop_map(move |len| Value::Array(items.iter().take(len).cloned().collect()));
            set(fewer.boxed())
        }
        SiteKind::MaxItems(n) => {
            let first = to_usize(*n).saturating_add(1);
            let more = (0usize..4).prop_map(move |k| Value::Array(grown(&current, first + k)));
            set(more.boxed())
        }
        SiteKind::Closed { known } => {
            let mut taken = known.clone();
            taken.extend(current.as_object()?.keys().cloned());
            let object = site.instance.clone();
            "[a-z]{1,8}"
                .prop_filter("an undeclared name", move |k| !taken.contains(k))
                .prop_map(move |key| Edit::Insert {
                    object: object.clone(),
                    key,
                    value: Value::Null,
                })
                .boxed()
        }
    };
    Some(strategy)
}

/// Values of every JSON type the schema does not allow, each shrinking to its simplest.
fn wrong_type(allowed: &[String]) -> Option<BoxedStrategy<Value>> {
    let allows = |t: &str| allowed.iter().any(|a| a == t);
    let mut options: Vec<BoxedStrategy<Value>> = Vec::new();
    if !allows("null") {
        options.push(Just(Value::Null).boxed());
    }
    if !allows("boolean") {
        options.push(any::<bool>().prop_map(Value::from).boxed());
    }
    if !allows("integer") && !allows("number") {
        options.push(any::<i64>().prop_map(Value::from).boxed());
    } else if !allows("number") {
        options.push(
            (-1000i32..1000)
                .prop_map(|n| Value::from(f64::from(n) + 0.5))
                .boxed(),
        );
    }
    if !allows("string") {
        options.push("[a-z0-9]{0,8}".prop_map(Value::from).boxed());
    }
    if !allows("array") {
        options.push(Just(Value::Array(Vec::new())).boxed());
    }
    if !allows("object") {
        options.push(Just(Value::Object(serde_json::Map::new())).boxed());
    }
    if options.is_empty() {
        None
    } else {
        Some(Union::new(options).boxed())
    }
}

fn single_rule(schema: Value) -> Option<Arc<Validator>> {
    Validator::from_schema(&schema, "single rule")
        .ok()
        .map(Arc::new)
}

/// Random strings the one-rule `matcher` refuses. `None` when even the short probes pass,
/// as for an unknown format, since filtering would then reject nearly every case.
fn breaking_strings(matcher: Arc<Validator>) -> Option<BoxedStrategy<Value>> {
    let probes = ["", "x", "!"];
    if probes
        .iter()
        .all(|p| matcher.validate(&Value::from(*p)).is_empty())
    {
        return None;
    }
    Some(
        "\\PC{0,16}"
            .prop_map(Value::from)
            .prop_filter("must break the rule", move |v| {
                !matcher.validate(v).is_empty()
            })
            .boxed(),
    )
}

fn padded_or_cut(s: &str, len: usize) -> String {
    let cut: String = s.chars().take(len).collect();
    padded(&cut, len)
}

/// Upper bound on shrink attempts: each is one call of `accepts`, i.e. one request to an IUT.
pub(crate) const MAX_SHRINK_ITERS: u32 = 1024;

/// Runs `accepts` (does the IUT accept this message?) on `n` generated invalid messages,
/// deterministically for a given `seed`. If one is accepted, shrinks it and returns the
/// minimal accepted message with its violations; `None` when every message was refused
/// (or no invalid message can be generated for this schema).
///
/// `accepts` is called from this thread only, once per case and once per shrink attempt
/// (at most [`MAX_SHRINK_ITERS`]). If it panics, no further calls are made and the panic
/// resumes once the runner is done.
pub(crate) fn find_accepted_invalid(
    validator: Arc<Validator>,
    schema: &Value,
    example: &Value,
    n: u32,
    seed: u64,
    accepts: impl Fn(&Value) -> bool,
) -> Option<CounterExample> {
    let strategy = invalid_mutations(validator.clone(), schema.clone(), example.clone());
    let mut runner = TestRunner::new_with_rng(deterministic_config(n), seeded_rng(seed));
    let failing = Cell::new(false);
    let shrink_steps = Cell::new(0u32);
    let panicked = RefCell::new(None);
    let outcome = runner.run(&strategy, |message| {
        if panicked.borrow().is_some() {
            return Ok(());
        }
        match panic::catch_unwind(AssertUnwindSafe(|| accepts(&message))) {
            Ok(true) => {
                if failing.replace(true) {
                    shrink_steps.set(shrink_steps.get() + 1);
                }
                Err(TestCaseError::fail("the IUT accepted an invalid message"))
            }
            Ok(false) => Ok(()),
            Err(payload) => {
                *panicked.borrow_mut() = Some(payload);
                Ok(())
            }
        }
    });
    if let Some(payload) = panicked.into_inner() {
        panic::resume_unwind(payload);
    }
    match outcome {
        Err(TestError::Fail(_, message)) => Some(CounterExample {
            violations: validator.validate(&message),
            message,
            shrink_steps: shrink_steps.get(),
        }),
        Ok(()) | Err(TestError::Abort(_)) => None,
    }
}

/// Every setting spelt out: `Config::default()` reads `PROPTEST_*` variables, which must
/// not change what a certification run sends.
fn deterministic_config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        source_file: None,
        test_name: None,
        fork: false,
        timeout: 0,
        max_shrink_time: 0,
        max_shrink_iters: MAX_SHRINK_ITERS,
        max_local_rejects: 65_536,
        max_global_rejects: 1024,
        max_flat_map_regens: 1_000_000,
        max_default_size_range: 100,
        verbose: 0,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    }
}

/// Spreads a 64-bit seed over ChaCha's 32-byte seed (SplitMix64), so nearby seeds give
/// unrelated runs.
fn seeded_rng(seed: u64) -> TestRng {
    let mut state = seed;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::catalogue::BUILTINS;
    use crate::schema::validate::MessageValidator;
    use serde_json::json;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 8 * 1024,
            max_depth: 16,
        }
    }

    fn builtin(id: &str) -> (Arc<Validator>, Value, Value) {
        let b = crate::schema::catalogue::get(id).expect("shipped");
        let validator = Arc::new(b.validator().expect("compiles").with_limits(limits()));
        (
            validator,
            b.schema().expect("schema"),
            b.example().expect("example"),
        )
    }

    fn without(doc: &Value, object: &str, key: &str) -> Value {
        applied(
            doc,
            &[Edit::Remove {
                object: object.to_owned(),
                key: key.to_owned(),
            }],
        )
    }

    #[test]
    fn class_names_are_unique_and_match_serde() {
        let mut names: Vec<&str> = DefectClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), 16);
        for c in DefectClass::ALL {
            let serialised = serde_json::to_string(c).expect("serialises");
            assert_eq!(serialised, format!("\"{}\"", c.name()));
            assert_eq!(c.name().parse::<DefectClass>().expect("parses"), *c);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 16);
        let e = "nope"
            .parse::<DefectClass>()
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("deep-nesting"), "{e}");
    }

    #[test]
    fn catalogue_covers_every_class_that_applies_to_each_shipped_schema() {
        for b in BUILTINS {
            let (_, schema, example) = builtin(b.id);
            let made: Vec<DefectClass> = catalogue(&schema, &example, &limits())
                .iter()
                .map(|m| m.class)
                .collect();
            let left_out = skipped(&schema, &example, &limits());
            let expected_out: &[DefectClass] = if b.id == "fullmakt/agent-notification" {
                &[DefectClass::LuhnCheckDigit]
            } else {
                &[]
            };
            let out: Vec<DefectClass> = left_out.iter().map(|(c, _)| *c).collect();
            assert_eq!(out, expected_out, "{}: {left_out:?}", b.id);
            let expected_in: Vec<DefectClass> = DefectClass::ALL
                .iter()
                .copied()
                .filter(|c| !expected_out.contains(c))
                .collect();
            assert_eq!(made, expected_in, "{}", b.id);
            for (_, reason) in &left_out {
                assert!(reason.contains("x-luhn"), "{reason}");
            }
        }
    }

    #[test]
    fn every_catalogue_message_is_refused_for_its_stated_reason() {
        for b in BUILTINS {
            let (validator, schema, example) = builtin(b.id);
            for m in catalogue(&schema, &example, &limits()) {
                let what = format!("{} {}: {}", b.id, m.class, m.mutation);
                match m.class.layer() {
                    Layer::Schema => {
                        let doc: Value = serde_json::from_slice(&m.body).expect(&what);
                        let violations = validator.validate(&doc);
                        let rule = m.pointer.clone().expect(&what);
                        assert!(
                            violations.iter().any(|v| v.schema_path == rule),
                            "{what}: {violations:?}"
                        );
                        assert!(validator.validate_bytes(&m.body).is_err(), "{what}");
                        assert_eq!(m.content_type.as_deref(), Some(JSON), "{what}");
                    }
                    Layer::Body => {
                        assert!(validator.validate_bytes(&m.body).is_err(), "{what}");
                        assert_eq!(m.pointer, None, "{what}");
                    }
                    Layer::Header => {
                        assert_eq!(validator.validate_bytes(&m.body), Ok(()), "{what}");
                        assert!(
                            !validator.accepts_content_type(m.content_type.as_deref()),
                            "{what}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn body_defects_are_refused_for_the_right_reason() {
        let (validator, schema, example) = builtin("ebevis/epoc");
        let by_class = |c: DefectClass| {
            catalogue(&schema, &example, &limits())
                .into_iter()
                .find(|m| m.class == c)
                .expect("made")
        };
        let reason = |c: DefectClass| {
            let m = by_class(c);
            validator.validate_bytes(&m.body).expect_err("refused")[0]
                .message
                .clone()
        };
        assert!(reason(DefectClass::MalformedJson).contains("malformed JSON"));
        assert!(reason(DefectClass::TruncatedBody).contains("malformed JSON"));
        assert!(reason(DefectClass::InvalidUtf8).contains("not valid UTF-8"));
        assert!(reason(DefectClass::OversizeBody).contains("over the limit"));
        assert!(reason(DefectClass::DeepNesting).contains("nesting deeper"));
        assert!(reason(DefectClass::DuplicateKeys).contains("duplicate key"));
        assert!(reason(DefectClass::EmptyBody).contains("empty body"));
        assert_eq!(
            by_class(DefectClass::OversizeBody).body.len(),
            limits().max_body_bytes + 1
        );
        // Whitespace padding: the oversize body is otherwise the valid example.
        let padded: Value =
            serde_json::from_slice(&by_class(DefectClass::OversizeBody).body).expect("json");
        assert_eq!(padded, example);
    }

    #[test]
    fn catalogue_is_deterministic() {
        for b in BUILTINS {
            let (_, schema, example) = builtin(b.id);
            let once =
                serde_json::to_string(&catalogue(&schema, &example, &limits())).expect("json");
            let twice =
                serde_json::to_string(&catalogue(&schema, &example, &limits())).expect("json");
            assert_eq!(once, twice, "{}", b.id);
        }
    }

    #[test]
    fn agent_notification_mutations_are_the_smallest_change() {
        let (_, schema, example) = builtin("fullmakt/agent-notification");
        let all = catalogue(&schema, &example, &limits());
        let get = |c: DefectClass| all.iter().find(|m| m.class == c).expect("made");
        let body =
            |c: DefectClass| -> Value { serde_json::from_slice(&get(c).body).expect("json") };

        let missing = get(DefectClass::MissingRequiredField);
        assert_eq!(missing.mutation, "removed required /Identity");
        assert_eq!(missing.pointer.as_deref(), Some("/required"));
        assert_eq!(
            body(DefectClass::MissingRequiredField),
            without(&example, "", "Identity")
        );

        assert_eq!(body(DefectClass::UnknownEnumValue)["Type"], json!(8));
        assert_eq!(
            get(DefectClass::UnknownEnumValue).pointer.as_deref(),
            Some("/properties/Type/enum")
        );
        assert_eq!(
            get(DefectClass::WrongType).pointer.as_deref(),
            Some("/properties/Identity/type")
        );
        assert_eq!(
            get(DefectClass::PatternViolation).pointer.as_deref(),
            Some("/properties/Identity/pattern")
        );
        let reason = body(DefectClass::OutOfRange)["Reason"]
            .as_str()
            .map(|s| s.chars().count());
        assert_eq!(reason, Some(501));
        assert_eq!(
            get(DefectClass::ExtraProperty).pointer.as_deref(),
            Some("/additionalProperties")
        );
    }

    #[test]
    fn epoc_luhn_defect_changes_only_the_check_digit() {
        let (validator, schema, example) = builtin("ebevis/epoc");
        let m = catalogue(&schema, &example, &limits())
            .into_iter()
            .find(|m| m.class == DefectClass::LuhnCheckDigit)
            .expect("made");
        assert_eq!(
            m.pointer.as_deref(),
            Some("/$defs/OrganisationNumber/x-luhn")
        );
        let doc: Value = serde_json::from_slice(&m.body).expect("json");
        let violations = validator.validate(&doc);
        // Only the check digit is wrong: the pattern still holds.
        assert_eq!(violations.len(), 1, "{violations:?}");
        // Which organisation number comes first depends on serde_json's key order.
        assert!(violations[0].instance_path.ends_with("/organisationNumber"));
    }

    #[test]
    fn classes_that_cannot_apply_are_skipped_with_a_reason() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let example = json!({"a": "x"});
        let left_out = skipped(&schema, &example, &limits());
        let reason = |c: DefectClass| {
            left_out
                .iter()
                .find(|(k, _)| *k == c)
                .map(|(_, r)| r.clone())
        };
        assert!(reason(DefectClass::UnknownEnumValue).is_some_and(|r| r.contains("enum")));
        assert!(reason(DefectClass::MissingRequiredField).is_some());
        assert!(reason(DefectClass::ExtraProperty).is_some());
        assert_eq!(reason(DefectClass::WrongType), None);

        let invalid_example = json!({"a": 1});
        let left_out = skipped(&schema, &invalid_example, &limits());
        let why = left_out
            .iter()
            .find(|(c, _)| *c == DefectClass::WrongType)
            .expect("skipped");
        assert!(
            why.1.contains("example does not validate") && why.1.contains("/a"),
            "{}",
            why.1
        );
    }

    #[test]
    fn two_hundred_mutations_are_all_invalid() {
        for b in BUILTINS {
            let (validator, schema, example) = builtin(b.id);
            // A second, independent compilation judges the strategy's own filter.
            let judge = Validator::from_schema(&schema, b.file).expect("compiles");
            let strategy = invalid_mutations(validator, schema, example.clone());
            let mut runner = TestRunner::new_with_rng(deterministic_config(200), seeded_rng(7));
            let count = Cell::new(0u32);
            let result = runner.run(&strategy, |doc| {
                count.set(count.get() + 1);
                prop_assert!(doc != example);
                prop_assert!(!judge.validate(&doc).is_empty(), "valid: {doc}");
                let bytes = serde_json::to_vec(&doc).expect("json");
                prop_assert!(judge.validate_bytes(&bytes).is_err());
                Ok(())
            });
            assert!(result.is_ok(), "{}: {result:?}", b.id);
            assert_eq!(count.get(), 200, "{}", b.id);
        }
    }

    #[test]
    fn an_iut_accepting_a_missing_field_is_caught_and_shrunk_to_that_field() {
        let (validator, schema, example) = builtin("fullmakt/agent-notification");
        let accepts = |doc: &Value| doc.get("Type").is_none();
        let found =
            find_accepted_invalid(validator, &schema, &example, 256, 1, accepts).expect("found");
        assert_eq!(found.message, without(&example, "", "Type"));
        assert_eq!(found.violations.len(), 1, "{:?}", found.violations);
        assert_eq!(found.violations[0].schema_path, "/required");
    }

    #[test]
    fn a_nested_missing_field_shrinks_to_the_example_without_it() {
        let (validator, schema, example) = builtin("ebevis/epoc");
        let accepts = |doc: &Value| {
            // Only a whole authority object without its file reference counts, not an
            // authority of the wrong type (which also "lacks" the field).
            doc.pointer("/issuingAuthority")
                .is_some_and(Value::is_object)
                && doc.pointer("/issuingAuthority/fileReference").is_none()
        };
        let found =
            find_accepted_invalid(validator, &schema, &example, 2048, 3, accepts).expect("found");
        assert_eq!(
            found.message,
            without(&example, "/issuingAuthority", "fileReference")
        );
        assert_eq!(
            found.violations[0].schema_path,
            "/$defs/IssuingAuthority/required"
        );
    }

    #[test]
    fn an_iut_that_refuses_every_invalid_message_yields_nothing() {
        for b in BUILTINS {
            let (validator, schema, example) = builtin(b.id);
            let judge = validator.clone();
            let refuses_invalid = move |doc: &Value| judge.validate(doc).is_empty();
            let found = find_accepted_invalid(validator, &schema, &example, 64, 9, refuses_invalid);
            assert!(found.is_none(), "{}: {found:?}", b.id);
        }
    }

    #[test]
    fn runs_are_deterministic_for_a_seed() {
        let (validator, schema, example) = builtin("ebevis/epoc-pr");
        // Accepts anything whose preservation period is still an integer: a lax IUT.
        let lax = |doc: &Value| doc.get("preservationPeriodDays").is_some_and(Value::is_i64);
        let run = |seed| {
            let found = find_accepted_invalid(validator.clone(), &schema, &example, 128, seed, lax);
            serde_json::to_string(&found.expect("found")).expect("json")
        };
        assert_eq!(run(42), run(42));
        let shrunk: Value = serde_json::from_str(&run(42)).expect("json");
        assert!(shrunk["shrink_steps"].as_u64().is_some());
    }

    #[test]
    fn a_panicking_iut_closure_panics_the_caller_and_is_not_reported_as_acceptance() {
        let (validator, schema, example) = builtin("fullmakt/agent-notification");
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            find_accepted_invalid(validator, &schema, &example, 16, 1, |_| {
                panic!("connection refused")
            })
        }));
        assert!(result.is_err());
    }

    #[test]
    fn a_schema_without_rules_gives_no_counter_example() {
        let schema = json!({});
        let validator = Arc::new(Validator::from_schema(&schema, "empty").expect("compiles"));
        let found = find_accepted_invalid(validator, &schema, &json!({"a": 1}), 16, 1, |_| true);
        assert!(found.is_none());
    }
}
