//! Walks a valid example together with its schema and lists every place where one rule
//! could be broken ("sites"): each with the instance pointer, the schema pointer of the
//! rule, and what the rule says. The generator turns sites into concrete mutations.
//!
//! Only what applies unconditionally is followed: `properties`, `additionalProperties`
//! (as a schema), `items`, `prefixItems`, local `$ref`s and `allOf`. Rules under
//! `anyOf`/`oneOf`/`if` depend on the instance, so breaking them is not a sure thing.

use serde_json::{Map, Value};

use super::body::escape;
use super::model::DefectClass;

/// One rule at one place in the example.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// Pointer of the value the rule constrains (for `Required`/`Closed`: the object).
    pub instance: String,
    /// Pointer of the rule's keyword in the schema, as the validator reports it.
    pub rule: String,
    pub kind: SiteKind,
}

#[derive(Debug, Clone)]
pub(crate) enum SiteKind {
    /// `required` names `key`, present in the example.
    Required {
        key: String,
    },
    /// `type`: the JSON types allowed.
    Type {
        allowed: Vec<String>,
    },
    /// `enum` (or `const`, as a one-element set).
    Enum {
        values: Vec<Value>,
    },
    Pattern {
        pattern: String,
    },
    Format {
        format: String,
    },
    Luhn,
    Minimum {
        limit: f64,
        exclusive: bool,
    },
    Maximum {
        limit: f64,
        exclusive: bool,
    },
    MinLength(u64),
    MaxLength(u64),
    MinItems(u64),
    MaxItems(u64),
    /// `additionalProperties: false` (or `unevaluatedProperties: false`) with these
    /// declared property names.
    Closed {
        known: Vec<String>,
    },
}

impl SiteKind {
    pub(crate) fn class(&self) -> DefectClass {
        match self {
            SiteKind::Required { .. } => DefectClass::MissingRequiredField,
            SiteKind::Type { .. } => DefectClass::WrongType,
            SiteKind::Enum { .. } => DefectClass::UnknownEnumValue,
            SiteKind::Pattern { .. } | SiteKind::Format { .. } => DefectClass::PatternViolation,
            SiteKind::Luhn => DefectClass::LuhnCheckDigit,
            SiteKind::Minimum { .. }
            | SiteKind::Maximum { .. }
            | SiteKind::MinLength(_)
            | SiteKind::MaxLength(_)
            | SiteKind::MinItems(_)
            | SiteKind::MaxItems(_) => DefectClass::OutOfRange,
            SiteKind::Closed { .. } => DefectClass::ExtraProperty,
        }
    }
}

/// All sites of `example` under `schema`, in document order, parents before children.
pub(crate) fn sites(schema: &Value, example: &Value) -> Vec<Site> {
    let mut out = Vec::new();
    let applicable = applicable(schema, schema, String::new(), 0);
    visit(schema, example, String::new(), &applicable, &mut out);
    out
}

/// Every leaf (non-container value) and its pointer, in document order.
pub(crate) fn leaves(doc: &Value) -> Vec<(String, &Value)> {
    fn go<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    go(child, format!("{at}/{}", escape(k)), out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    go(child, format!("{at}/{i}"), out);
                }
            }
            _ => out.push((at, v)),
        }
    }
    let mut out = Vec::new();
    go(doc, String::new(), &mut out);
    out
}

/// Every object and its pointer, in document order, parents first.
pub(crate) fn objects(doc: &Value) -> Vec<(String, &Map<String, Value>)> {
    fn go<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Map<String, Value>)>) {
        match v {
            Value::Object(m) => {
                out.push((at.clone(), m));
                for (k, child) in m {
                    go(child, format!("{at}/{}", escape(k)), out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    go(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    go(doc, String::new(), &mut out);
    out
}

/// Containers above `at` in `doc` (the root container counts as one).
pub(crate) fn depth_of(at: &str) -> usize {
    at.split('/').count() - 1
}

type Applicable<'s> = Vec<(&'s Map<String, Value>, String)>;

/// `node` and the subschemas that always apply with it (its `$ref` target, `allOf`).
fn applicable<'s>(root: &'s Value, node: &'s Value, at: String, hops: usize) -> Applicable<'s> {
    let mut out = Vec::new();
    // Reference cycles are legal in JSON Schema; the walk need not follow them far.
    if hops > 32 {
        return out;
    }
    let Some(obj) = node.as_object() else {
        return out;
    };
    out.push((obj, at.clone()));
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        if let Some(fragment) = target.strip_prefix('#') {
            if let Some(resolved) = root.pointer(fragment) {
                out.extend(applicable(root, resolved, fragment.to_owned(), hops + 1));
            }
        }
    }
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        for (i, sub) in all.iter().enumerate() {
            out.extend(applicable(root, sub, format!("{at}/allOf/{i}"), hops + 1));
        }
    }
    out
}

fn visit(root: &Value, value: &Value, at: String, schemas: &Applicable<'_>, out: &mut Vec<Site>) {
    for (s, p) in schemas {
        rules_here(s, p, value, &at, out);
    }
    match value {
        Value::Object(m) => {
            for (key, child) in m {
                let mut next = Vec::new();
                for (s, p) in schemas {
                    let declared = s.get("properties").and_then(|ps| ps.get(key));
                    if let Some(sub) = declared {
                        let sp = format!("{p}/properties/{}", escape(key));
                        next.extend(applicable(root, sub, sp, 0));
                    } else if let Some(sub @ Value::Object(_)) = s.get("additionalProperties") {
                        next.extend(applicable(
                            root,
                            sub,
                            format!("{p}/additionalProperties"),
                            0,
                        ));
                    }
                }
                visit(root, child, format!("{at}/{}", escape(key)), &next, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let mut next = Vec::new();
                for (s, p) in schemas {
                    let prefix = s.get("prefixItems").and_then(Value::as_array);
                    let prefix_len = prefix.map_or(0, Vec::len);
                    if let Some(sub) = prefix.and_then(|ps| ps.get(i)) {
                        next.extend(applicable(root, sub, format!("{p}/prefixItems/{i}"), 0));
                    } else if i >= prefix_len {
                        if let Some(sub) = s.get("items") {
                            next.extend(applicable(root, sub, format!("{p}/items"), 0));
                        }
                    }
                }
                visit(root, child, format!("{at}/{i}"), &next, out);
            }
        }
        _ => {}
    }
}

fn rules_here(s: &Map<String, Value>, p: &str, value: &Value, at: &str, out: &mut Vec<Site>) {
    let mut push = |keyword: &str, kind: SiteKind| {
        out.push(Site {
            instance: at.to_owned(),
            rule: format!("{p}/{keyword}"),
            kind,
        });
    };
    if let (Some(required), Value::Object(m)) = (s.get("required").and_then(Value::as_array), value)
    {
        for key in required.iter().filter_map(Value::as_str) {
            if m.contains_key(key) {
                push(
                    "required",
                    SiteKind::Required {
                        key: key.to_owned(),
                    },
                );
            }
        }
    }
    match s.get("type") {
        Some(Value::String(t)) => push(
            "type",
            SiteKind::Type {
                allowed: vec![t.clone()],
            },
        ),
        Some(Value::Array(ts)) => {
            let allowed = ts
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            push("type", SiteKind::Type { allowed });
        }
        _ => {}
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        push(
            "enum",
            SiteKind::Enum {
                values: values.clone(),
            },
        );
    }
    if let Some(c) = s.get("const") {
        push(
            "const",
            SiteKind::Enum {
                values: vec![c.clone()],
            },
        );
    }
    if value.is_string() {
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
            push(
                "pattern",
                SiteKind::Pattern {
                    pattern: pattern.to_owned(),
                },
            );
        }
        if let Some(format) = s.get("format").and_then(Value::as_str) {
            push(
                "format",
                SiteKind::Format {
                    format: format.to_owned(),
                },
            );
        }
        if s.get("x-luhn") == Some(&Value::Bool(true)) {
            push("x-luhn", SiteKind::Luhn);
        }
    }
    if value.is_number() {
        let num = |k: &str| s.get(k).and_then(Value::as_f64);
        if let Some(limit) = num("minimum") {
            push(
                "minimum",
                SiteKind::Minimum {
                    limit,
                    exclusive: false,
                },
            );
        }
        if let Some(limit) = num("exclusiveMinimum") {
            push(
                "exclusiveMinimum",
                SiteKind::Minimum {
                    limit,
                    exclusive: true,
                },
            );
        }
        if let Some(limit) = num("maximum") {
            push(
                "maximum",
                SiteKind::Maximum {
                    limit,
                    exclusive: false,
                },
            );
        }
        if let Some(limit) = num("exclusiveMaximum") {
            push(
                "exclusiveMaximum",
                SiteKind::Maximum {
                    limit,
                    exclusive: true,
                },
            );
        }
    }
    let uint = |k: &str| s.get(k).and_then(Value::as_u64);
    // A null where a string is also allowed (a nullable text) can still be made too long.
    let string_allowed = value.is_string() || (value.is_null() && allows(s, "string"));
    if string_allowed {
        if let Some(n) = uint("minLength").filter(|&n| n > 0) {
            push("minLength", SiteKind::MinLength(n));
        }
        if let Some(n) = uint("maxLength") {
            push("maxLength", SiteKind::MaxLength(n));
        }
    }
    if value.is_array() {
        if let Some(n) = uint("minItems").filter(|&n| n > 0) {
            push("minItems", SiteKind::MinItems(n));
        }
        if let Some(n) = uint("maxItems") {
            push("maxItems", SiteKind::MaxItems(n));
        }
    }
    if value.is_object() {
        for keyword in ["additionalProperties", "unevaluatedProperties"] {
            if s.get(keyword) == Some(&Value::Bool(false)) {
                let known = s
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                push(keyword, SiteKind::Closed { known });
            }
        }
    }
}

fn allows(s: &Map<String, Value>, ty: &str) -> bool {
    match s.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == ty),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sites_follow_refs_and_report_canonical_rule_pointers() {
        let schema = json!({
            "type": "object",
            "required": ["a"],
            "additionalProperties": false,
            "properties": {
                "a": {"$ref": "#/$defs/A"},
                "n": {"type": ["string", "null"], "maxLength": 3},
                "l": {"type": "array", "minItems": 1, "items": {"type": "integer", "maximum": 9}}
            },
            "$defs": {"A": {"type": "string", "pattern": "^[0-9]+$", "x-luhn": true}}
        });
        let example = json!({"a": "1", "l": [1], "n": null});
        let got: Vec<(String, String)> = sites(&schema, &example)
            .into_iter()
            .map(|s| (s.instance, s.rule))
            .collect();
        let want = [
            ("", "/required"),
            ("", "/type"),
            ("", "/additionalProperties"),
            ("/a", "/$defs/A/type"),
            ("/a", "/$defs/A/pattern"),
            ("/a", "/$defs/A/x-luhn"),
            ("/l", "/properties/l/type"),
            ("/l", "/properties/l/minItems"),
            ("/l/0", "/properties/l/items/type"),
            ("/l/0", "/properties/l/items/maximum"),
            ("/n", "/properties/n/type"),
            ("/n", "/properties/n/maxLength"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn leaves_and_objects_are_in_document_order() {
        let doc = json!({"a": {"b": 1}, "c": ["x"]});
        let leaves: Vec<String> = leaves(&doc).into_iter().map(|(p, _)| p).collect();
        assert_eq!(leaves, ["/a/b", "/c/0"]);
        let objects: Vec<String> = objects(&doc).into_iter().map(|(p, _)| p).collect();
        assert_eq!(objects, ["", "/a"]);
        assert_eq!(depth_of(""), 0);
        assert_eq!(depth_of("/a/b"), 2);
    }
}
