//! Invalid XML messages, one per defect class, made from a valid example by a text edit
//! at a node roxmltree located. Which node: the first (in document order) whose edit the
//! validator itself refuses for the class's reason, so every generated case is known to
//! be invalid before it is sent; a class that no edit of the example produces is skipped
//! with the reason, never sent as if it were invalid. Shrinking (as for JSON) is not done
//! yet: each case is already a single edit of a valid example.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::model::Violation;
use super::receipt::Reason;
use super::validate::MessageValidator;
use super::xml::{in_envelope, XmlValidator, FELHANTERING};

/// One class of XML defect (wire names in kebab case, as features spell them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum XmlDefect {
    NotWellFormed,
    WrongNamespace,
    MissingNamespace,
    MissingRequiredElement,
    ElementOutOfOrder,
    UnexpectedElement,
    WrongType,
    EnumerationOrPattern,
    EncodingMismatch,
    /// Schema-valid, but a Schematron business rule broken.
    SchematronRule,
    /// The specification's own negative test data (`testdata-felhantering/`).
    ShippedNegative,
}

/// Every class, in the order features list them.
pub(crate) const ALL: &[XmlDefect] = &[
    XmlDefect::NotWellFormed,
    XmlDefect::WrongNamespace,
    XmlDefect::MissingNamespace,
    XmlDefect::MissingRequiredElement,
    XmlDefect::ElementOutOfOrder,
    XmlDefect::UnexpectedElement,
    XmlDefect::WrongType,
    XmlDefect::EnumerationOrPattern,
    XmlDefect::EncodingMismatch,
    XmlDefect::SchematronRule,
    XmlDefect::ShippedNegative,
];

impl XmlDefect {
    pub(crate) fn name(self) -> &'static str {
        match self {
            XmlDefect::NotWellFormed => "not-well-formed",
            XmlDefect::WrongNamespace => "wrong-namespace",
            XmlDefect::MissingNamespace => "missing-namespace",
            XmlDefect::MissingRequiredElement => "missing-required-element",
            XmlDefect::ElementOutOfOrder => "element-out-of-order",
            XmlDefect::UnexpectedElement => "unexpected-element",
            XmlDefect::WrongType => "wrong-type",
            XmlDefect::EnumerationOrPattern => "enumeration-or-pattern",
            XmlDefect::EncodingMismatch => "encoding-mismatch",
            XmlDefect::SchematronRule => "schematron-rule",
            XmlDefect::ShippedNegative => "shipped-negative",
        }
    }
}

impl XmlDefect {
    /// The reason code a receipt gives for this defect: BV for a rule the XSD cannot see,
    /// SV for everything the XSD (or the XML parser) refuses.
    pub(crate) fn receipt_reason(self) -> Reason {
        match self {
            XmlDefect::SchematronRule => Reason::Business,
            _ => Reason::Syntax,
        }
    }
}

impl fmt::Display for XmlDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for XmlDefect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter().copied().find(|c| c.name() == s).ok_or_else(|| {
            let known: Vec<&str> = ALL.iter().map(|c| c.name()).collect();
            format!("unknown XML defect {s:?} (known: {})", known.join(", "))
        })
    }
}

/// A generated invalid message and what the validator said about it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct XmlInvalid {
    pub class: XmlDefect,
    /// The edit, in words, with the XPath-like path of the node.
    pub mutation: String,
    #[serde(skip)]
    pub body: Vec<u8>,
    /// The validator's verdict on `body`: never empty.
    pub violations: Vec<Violation>,
}

/// The element's path as `/a/b[2]` (local names, position among same-named siblings).
pub(crate) fn path_of(node: roxmltree::Node<'_, '_>) -> String {
    let mut parts = Vec::new();
    let mut cur = Some(node);
    while let Some(n) = cur.filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        let same: Vec<_> = n
            .parent()
            .map(|p| {
                p.children()
                    .filter(|c| c.is_element() && c.tag_name() == n.tag_name())
                    .collect()
            })
            .unwrap_or_default();
        match same.iter().position(|c| *c == n) {
            Some(i) if same.len() > 1 => parts.push(format!("{name}[{}]", i + 1)),
            _ => parts.push(name.to_owned()),
        }
        cur = n.parent();
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> Option<String> {
    Some(format!(
        "{}{with}{}",
        text.get(..range.start)?,
        text.get(range.end..)?
    ))
}

/// Leaf elements (text only), in document order.
fn leaves<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.is_element() && !n.children().any(|c| c.is_element()))
        .collect()
}

/// The range of a leaf's text content (between its start and end tags).
fn text_range(n: roxmltree::Node<'_, '_>) -> Option<std::ops::Range<usize>> {
    let t = n.children().find(|c| c.is_text())?;
    Some(t.range())
}

/// The invalid message of `class` made from `example`, or why there is none.
pub(crate) fn generate(
    v: &XmlValidator,
    example: &[u8],
    class: XmlDefect,
) -> Result<XmlInvalid, String> {
    let text = std::str::from_utf8(example).map_err(|_| "the example is not UTF-8".to_owned())?;
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("the example: {e}"))?;
    // Each candidate: (description, body); the first the validator refuses for the
    // class's reason is the case.
    let mut candidates: Vec<(String, Vec<u8>)> = Vec::new();
    let root = doc.root_element();
    let elements: Vec<_> = doc.descendants().filter(|n| n.is_element()).collect();
    let reason: fn(&Violation) -> bool = match class {
        XmlDefect::NotWellFormed => |v| v.schema_path.starts_with("xml:"),
        XmlDefect::WrongType => |v| {
            v.message
                .contains("is not a valid value of the atomic type")
        },
        XmlDefect::EnumerationOrPattern => |v| {
            v.message.contains("[facet 'enumeration']") || v.message.contains("[facet 'pattern']")
        },
        XmlDefect::EncodingMismatch => |v| v.schema_path.starts_with("xml:"),
        XmlDefect::SchematronRule => |v| v.schema_path.starts_with("schematron:"),
        XmlDefect::ShippedNegative => |_| true,
        // Structure and namespaces: refused by the XSD (or the parser), not only by a
        // business rule.
        _ => |v| !v.schema_path.starts_with("schematron:"),
    };
    // A Schematron case must break nothing but Schematron rules.
    let only_schematron = class == XmlDefect::SchematronRule;
    match class {
        XmlDefect::NotWellFormed => {
            // Drop the root's end tag.
            let end = root.range().end;
            let close = format!("</{}", root_qname(text, root));
            if let Some(at) = text.get(..end).and_then(|t| t.rfind(&close)) {
                if let Some(body) = splice(text, at..end, "") {
                    candidates.push((
                        "the root element's end tag removed".into(),
                        body.into_bytes(),
                    ));
                }
            }
        }
        XmlDefect::WrongNamespace | XmlDefect::MissingNamespace => {
            if let Some(ns) = root.tag_name().namespace() {
                let (to, what) = if class == XmlDefect::WrongNamespace {
                    (
                        "urn:provsten:wrong-namespace",
                        "replaced by urn:provsten:wrong-namespace",
                    )
                } else {
                    ("", "removed (declared empty)")
                };
                let body = text.replace(&format!("\"{ns}\""), &format!("\"{to}\""));
                candidates.push((
                    format!("the root's namespace {ns} {what}"),
                    body.into_bytes(),
                ));
            }
        }
        XmlDefect::MissingRequiredElement => {
            for n in elements.iter().skip(1) {
                if let Some(body) = splice(text, n.range(), "") {
                    candidates.push((format!("{} removed", path_of(*n)), body.into_bytes()));
                }
            }
        }
        XmlDefect::ElementOutOfOrder => {
            for n in elements.iter().skip(1) {
                let Some(next) = n.next_sibling_element() else {
                    continue;
                };
                if next.tag_name() == n.tag_name() {
                    continue;
                }
                let (a, b) = (n.range(), next.range());
                let (Some(first), Some(between), Some(second)) = (
                    text.get(a.clone()),
                    text.get(a.end..b.start),
                    text.get(b.clone()),
                ) else {
                    continue;
                };
                if let Some(body) =
                    splice(text, a.start..b.end, &format!("{second}{between}{first}"))
                {
                    candidates.push((
                        format!("{} moved after {}", path_of(*n), path_of(next)),
                        body.into_bytes(),
                    ));
                }
            }
        }
        XmlDefect::UnexpectedElement => {
            for n in elements.iter().skip(1) {
                let ns = n.tag_name().namespace().unwrap_or("");
                let extra = format!("<provstenUnexpected xmlns=\"{ns}\">x</provstenUnexpected>");
                let at = n.range().start;
                if let Some(body) = splice(text, at..at, &extra) {
                    candidates.push((
                        format!("an undeclared element inserted before {}", path_of(*n)),
                        body.into_bytes(),
                    ));
                }
            }
        }
        XmlDefect::WrongType | XmlDefect::EnumerationOrPattern | XmlDefect::SchematronRule => {
            for n in leaves(&doc) {
                let Some(r) = text_range(n) else { continue };
                if let Some(body) = splice(text, r, "provsten-not-a-value") {
                    candidates.push((
                        format!("the text of {} set to `provsten-not-a-value`", path_of(n)),
                        body.into_bytes(),
                    ));
                }
            }
        }
        XmlDefect::EncodingMismatch => {
            // Declared UTF-8, but "åäö" written in ISO-8859-1 in the first leaf's text.
            for n in leaves(&doc) {
                let Some(r) = text_range(n) else { continue };
                let (Some(before), Some(after)) = (text.get(..r.start), text.get(r.start..)) else {
                    continue;
                };
                let before = if before.starts_with("<?xml") {
                    before.to_owned()
                } else {
                    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{before}")
                };
                let mut body = before.into_bytes();
                body.extend_from_slice(b"\xe5\xe4\xf6");
                body.extend_from_slice(after.as_bytes());
                candidates.push((
                    format!(
                        "ISO-8859-1 bytes (åäö) in {} of a document declared UTF-8",
                        path_of(n)
                    ),
                    body,
                ));
                break;
            }
        }
        XmlDefect::ShippedNegative => {
            for (f, breaks) in FELHANTERING {
                if breaks.is_none() {
                    continue;
                }
                let Ok(payload) = std::str::from_utf8(f.bytes) else {
                    continue;
                };
                if let Ok(body) = in_envelope(text, payload) {
                    candidates.push((
                        format!("the payload replaced by {}", f.path),
                        body.into_bytes(),
                    ));
                }
            }
        }
    }
    let tried = candidates.len();
    for (mutation, body) in candidates {
        if let Err(violations) = v.validate_bytes(&body) {
            let pure = !only_schematron || violations.iter().all(reason);
            if pure && violations.iter().any(reason) {
                return Ok(XmlInvalid {
                    class,
                    mutation,
                    body,
                    violations,
                });
            }
        }
    }
    Err(format!(
        "none of {tried} edits of the example is refused by the validator for this reason"
    ))
}

/// The root element's name as written (with its prefix), for finding its end tag.
fn root_qname<'a>(text: &'a str, root: roxmltree::Node<'_, '_>) -> &'a str {
    let start = root.range().start + 1;
    let rest = text.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(rest.len());
    rest.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::xml::XML_BUILTINS;

    #[test]
    fn every_class_is_generated_for_the_sdk_message_and_shown_invalid() {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let example = XML_BUILTINS[0].examples[0].bytes;
        let mut skipped = Vec::new();
        for class in ALL {
            match generate(&v, example, *class) {
                Ok(case) => {
                    assert!(v.validate_bytes(&case.body).is_err(), "{class}");
                    assert!(!case.violations.is_empty(), "{class}");
                    assert_ne!(case.body, example, "{class}");
                }
                Err(why) => skipped.push(format!("{class}: {why}")),
            }
        }
        // The SDK message's leaves are free text, dates, booleans and ids: no XSD
        // enumeration or pattern to break (the Schematron patterns are not run yet).
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(
            skipped[0].starts_with("enumeration-or-pattern: none of"),
            "{skipped:?}"
        );
    }

    #[test]
    fn the_receipt_yields_its_classes_or_says_why_not() {
        let v = XmlValidator::builtin("sdk/meddelandekvittens").expect("compiles");
        let example = XML_BUILTINS[1].examples[0].bytes;
        for class in ALL {
            if let Ok(case) = generate(&v, example, *class) {
                assert!(v.validate_bytes(&case.body).is_err(), "{class}");
            }
        }
        assert!(generate(&v, example, XmlDefect::MissingRequiredElement).is_ok());
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for c in ALL {
            assert_eq!(c.name().parse::<XmlDefect>(), Ok(*c));
        }
        let e = "nope".parse::<XmlDefect>().expect_err("unknown");
        assert!(e.contains("wrong-namespace"), "{e}");
    }
}
