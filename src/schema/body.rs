//! Raw message bodies: the byte-level checks an IUT must make before schema validation
//! (empty, oversize, UTF-8, syntax, duplicate keys, nesting depth), and the text splicing
//! the generator needs for defects a `serde_json::Value` cannot hold.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::model::{Limits, Violation};

/// Parses `body` as one JSON document, refusing what `serde_json::from_slice` would let
/// through: a body over the size limit, duplicate object keys (serde_json silently keeps
/// the last, so two parsers could read different messages) and nesting past the limit.
pub(crate) fn parse_strict(body: &[u8], limits: &Limits) -> Result<Value, Violation> {
    if body.is_empty() {
        return Err(body_violation("", "empty body: expected a JSON document"));
    }
    if body.len() > limits.max_body_bytes {
        return Err(body_violation(
            "",
            format!(
                "body is {} bytes, over the limit of {} bytes",
                body.len(),
                limits.max_body_bytes
            ),
        ));
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Err(body_violation(
            "",
            format!(
                "body is not valid UTF-8: invalid byte sequence at byte offset {}",
                e.valid_up_to()
            ),
        ));
    }
    let found = RefCell::new(None);
    let check = Check {
        depth: 0,
        max_depth: limits.max_depth,
        path: String::new(),
        found: &found,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let checked = check.deserialize(&mut de).and_then(|()| de.end());
    if let Err(e) = checked {
        return Err(match found.into_inner() {
            Some(v) => v,
            None => body_violation("", format!("malformed JSON: {e}")),
        });
    }
    // The checking pass accepted the syntax; this builds the value.
    serde_json::from_slice(body).map_err(|e| body_violation("", format!("malformed JSON: {e}")))
}

fn body_violation(pointer: &str, message: impl Into<String>) -> Violation {
    Violation {
        instance_path: pointer.to_owned(),
        schema_path: String::new(),
        message: message.into(),
    }
}

/// A validating pass that builds nothing: it walks the document, tracking the pointer, and
/// records the first duplicate key or over-deep container in `found`.
struct Check<'a> {
    depth: usize,
    max_depth: usize,
    path: String,
    found: &'a RefCell<Option<Violation>>,
}

impl Check<'_> {
    fn child(&self, segment: &str) -> Check<'_> {
        Check {
            depth: self.depth + 1,
            max_depth: self.max_depth,
            path: format!("{}/{}", self.path, escape(segment)),
            found: self.found,
        }
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth + 1 > self.max_depth {
            let msg = format!("nesting deeper than the limit of {} levels", self.max_depth);
            *self.found.borrow_mut() = Some(body_violation(&self.path, msg.clone()));
            return Err(E::custom(msg));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.enter()?;
        let mut index = 0usize;
        while seq
            .next_element_seed(self.child(&index.to_string()))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let msg = format!(
                    "duplicate key {key:?} in one object (parsers disagree on which value wins)"
                );
                *self.found.borrow_mut() = Some(body_violation(&self.path, msg.clone()));
                return Err(de::Error::custom(msg));
            }
            map.next_value_seed(self.child(&key))?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// Escapes one JSON pointer reference token (RFC 6901).
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// What to write in place of one value (or, for `DuplicateFirstKey`, into one object) when
/// serialising a document, for defects a `Value` cannot represent.
pub(crate) enum Splice {
    /// Insert the byte `0xFF` (never valid UTF-8) after the first character of the string.
    InvalidUtf8,
    /// Replace the value with `levels` nested empty arrays.
    NestedArrays { levels: usize },
    /// Repeat the object's first member.
    DuplicateFirstKey,
}

/// Serialises `doc` compactly with `splice` applied at the value `at` (a JSON pointer).
/// `None` if `at` does not exist or does not fit the splice (not a string, an empty object).
pub(crate) fn splice(doc: &Value, at: &str, how: &Splice) -> Option<Vec<u8>> {
    let mut marked = doc.clone();
    let marker = unique_marker(doc);
    let target = marked.pointer_mut(at)?;
    let replacement: Vec<u8> = match how {
        Splice::InvalidUtf8 => {
            let s = target.as_str()?;
            let mut chars = s.chars();
            let first = chars.next().map(String::from).unwrap_or_default();
            let mut bytes = serde_json::to_vec(&first).ok()?;
            bytes.pop(); // the closing quote; the rest of the string follows the bad byte
            bytes.push(0xFF);
            let rest = serde_json::to_vec(chars.as_str()).ok()?;
            bytes.extend_from_slice(&rest[1..]);
            *target = Value::String(marker.clone());
            bytes
        }
        Splice::NestedArrays { levels } => {
            *target = Value::String(marker.clone());
            let mut bytes = vec![b'['; *levels];
            bytes.extend(std::iter::repeat_n(b']', *levels));
            bytes
        }
        Splice::DuplicateFirstKey => {
            let object = target.as_object_mut()?;
            let (key, value) = object.iter().next()?;
            let mut member = serde_json::to_vec(key).ok()?;
            member.push(b':');
            member.extend(serde_json::to_vec(value).ok()?);
            // The placeholder member sits where the duplicate goes; its text is
            // `"<marker>":null`, replaced whole below.
            object.insert(marker.clone(), Value::Null);
            let mut text = serde_json::to_vec(&marked).ok()?;
            let needle = format!("{}:null", serde_json::to_string(&marker).ok()?);
            replace_once(&mut text, needle.as_bytes(), &member)?;
            return Some(text);
        }
    };
    let mut text = serde_json::to_vec(&marked).ok()?;
    let needle = serde_json::to_vec(&Value::String(marker)).ok()?;
    replace_once(&mut text, &needle, &replacement)?;
    Some(text)
}

/// A string that occurs nowhere in `doc`'s text, so replacing it cannot hit real content.
fn unique_marker(doc: &Value) -> String {
    let text = doc.to_string();
    let mut n = 0u32;
    loop {
        let m = format!("provsten-splice-{n}");
        if !text.contains(&m) {
            return m;
        }
        n += 1;
    }
}

fn replace_once(text: &mut Vec<u8>, needle: &[u8], with: &[u8]) -> Option<()> {
    let at = text.windows(needle.len()).position(|w| w == needle)?;
    text.splice(at..at + needle.len(), with.iter().copied());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 1024,
            max_depth: 4,
        }
    }

    #[test]
    fn a_plain_document_parses() {
        let v = parse_strict(br#"{"a":[1,{"b":null}]}"#, &limits()).expect("valid");
        assert_eq!(v, json!({"a": [1, {"b": null}]}));
    }

    #[test]
    fn duplicate_keys_are_refused_at_their_object() {
        let e = parse_strict(br#"{"a":{"b":1,"b":2}}"#, &limits()).expect_err("duplicate");
        assert_eq!(e.instance_path, "/a");
        assert!(e.message.contains("duplicate key \"b\""), "{}", e.message);
    }

    #[test]
    fn nesting_past_the_limit_is_refused() {
        assert!(parse_strict(b"[[[[]]]]", &limits()).is_ok());
        let e = parse_strict(b"[[[[[]]]]]", &limits()).expect_err("too deep");
        assert_eq!(e.instance_path, "/0/0/0/0");
        assert!(e.message.contains("limit of 4"), "{}", e.message);
    }

    #[test]
    fn empty_oversize_non_utf8_and_malformed_bodies_are_refused_at_the_root() {
        for (body, says) in [
            (&b""[..], "empty body"),
            (&[b' '; 1025][..], "over the limit"),
            (&b"{\"a\":\"\xff\"}"[..], "not valid UTF-8"),
            (&b"{\"a\":1,}"[..], "malformed JSON"),
            (&b"{\"a\":1} x"[..], "malformed JSON"),
        ] {
            let e = parse_strict(body, &limits()).expect_err("refused");
            assert_eq!(e.instance_path, "");
            assert!(e.message.contains(says), "{}", e.message);
        }
    }

    #[test]
    fn splices_produce_the_intended_text() {
        let doc = json!({"a": "xyz", "b": [1]});
        let utf8 = splice(&doc, "/a", &Splice::InvalidUtf8).expect("string");
        assert_eq!(utf8, b"{\"a\":\"x\xffyz\",\"b\":[1]}".to_vec());
        let deep = splice(&doc, "/b/0", &Splice::NestedArrays { levels: 3 }).expect("value");
        assert_eq!(deep, b"{\"a\":\"xyz\",\"b\":[[[[]]]]}".to_vec());
        let dup = splice(&doc, "", &Splice::DuplicateFirstKey).expect("object");
        let text = String::from_utf8(dup).expect("utf-8");
        assert_eq!(text.matches("\"a\":\"xyz\"").count(), 2, "{text}");
        assert!(splice(&doc, "/b", &Splice::InvalidUtf8).is_none());
    }
}
