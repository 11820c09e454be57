//! The vocabulary the schema modules share: what is wrong with a message ([`DefectClass`],
//! [`Violation`]) and the body limits a receiver enforces ([`Limits`]). A leaf: it imports
//! no other schema module, so the parser, the validator and the generator can all use it.

use std::fmt;
use std::str::FromStr;

/// A kind of invalid message. Each names one thing wrong with it; a receiver must refuse
/// every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DefectClass {
    /// Arrays nested one level past [`Limits::max_depth`].
    DeepNesting,
    /// One object with the same key twice.
    DuplicateKeys,
    /// A body of zero bytes.
    EmptyBody,
    /// A property a closed object (`additionalProperties: false`) does not declare.
    ExtraProperty,
    /// Bytes that are not UTF-8 inside a string.
    InvalidUtf8,
    /// A Swedish identity number (`x-luhn`) with a wrong check digit.
    LuhnCheckDigit,
    /// Bytes that are not JSON.
    MalformedJson,
    /// A valid body without a `Content-Type` header.
    MissingContentType,
    /// A `required` property removed.
    MissingRequiredField,
    /// A number, string length or item count outside its bounds.
    OutOfRange,
    /// A body one byte over [`Limits::max_body_bytes`].
    OversizeBody,
    /// A string that breaks its `pattern` or `format`.
    PatternViolation,
    /// A body cut off before its end.
    TruncatedBody,
    /// A value outside an `enum` (or `const`).
    UnknownEnumValue,
    /// A valid body with a `Content-Type` other than JSON.
    WrongContentType,
    /// A value of a JSON type the schema does not allow.
    WrongType,
}

/// Where a receiver has to catch a defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Layer {
    /// The `Content-Type` header; the body itself is a valid message.
    Header,
    /// The bytes: they are not one well-formed JSON document within the limits.
    Body,
    /// A well-formed document that breaks a rule of the schema.
    Schema,
}

impl DefectClass {
    /// Every class, schema rules first, then the body, then the header.
    pub(crate) const ALL: &'static [DefectClass] = &[
        DefectClass::MissingRequiredField,
        DefectClass::WrongType,
        DefectClass::UnknownEnumValue,
        DefectClass::PatternViolation,
        DefectClass::LuhnCheckDigit,
        DefectClass::OutOfRange,
        DefectClass::ExtraProperty,
        DefectClass::MalformedJson,
        DefectClass::TruncatedBody,
        DefectClass::InvalidUtf8,
        DefectClass::WrongContentType,
        DefectClass::MissingContentType,
        DefectClass::OversizeBody,
        DefectClass::DeepNesting,
        DefectClass::DuplicateKeys,
        DefectClass::EmptyBody,
    ];

    /// The kebab-case name used in reports and on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DefectClass::DeepNesting => "deep-nesting",
            DefectClass::DuplicateKeys => "duplicate-keys",
            DefectClass::EmptyBody => "empty-body",
            DefectClass::ExtraProperty => "extra-property",
            DefectClass::InvalidUtf8 => "invalid-utf8",
            DefectClass::LuhnCheckDigit => "luhn-check-digit",
            DefectClass::MalformedJson => "malformed-json",
            DefectClass::MissingContentType => "missing-content-type",
            DefectClass::MissingRequiredField => "missing-required-field",
            DefectClass::OutOfRange => "out-of-range",
            DefectClass::OversizeBody => "oversize-body",
            DefectClass::PatternViolation => "pattern-violation",
            DefectClass::TruncatedBody => "truncated-body",
            DefectClass::UnknownEnumValue => "unknown-enum-value",
            DefectClass::WrongContentType => "wrong-content-type",
            DefectClass::WrongType => "wrong-type",
        }
    }

    /// Where a receiver has to catch it.
    pub(crate) fn layer(self) -> Layer {
        match self {
            DefectClass::WrongContentType | DefectClass::MissingContentType => Layer::Header,
            DefectClass::MalformedJson
            | DefectClass::TruncatedBody
            | DefectClass::InvalidUtf8
            | DefectClass::OversizeBody
            | DefectClass::DeepNesting
            | DefectClass::DuplicateKeys
            | DefectClass::EmptyBody => Layer::Body,
            DefectClass::MissingRequiredField
            | DefectClass::WrongType
            | DefectClass::UnknownEnumValue
            | DefectClass::PatternViolation
            | DefectClass::LuhnCheckDigit
            | DefectClass::OutOfRange
            | DefectClass::ExtraProperty => Layer::Schema,
        }
    }
}

impl fmt::Display for DefectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DefectClass {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<DefectClass> {
        match DefectClass::ALL.iter().find(|c| c.name() == s) {
            Some(c) => Ok(*c),
            None => {
                let known: Vec<&str> = DefectClass::ALL.iter().map(|c| c.name()).collect();
                anyhow::bail!("unknown defect class `{s}` (known: {})", known.join(", "))
            }
        }
    }
}

/// What a receiver is expected to enforce on a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Limits {
    /// Largest body accepted; the oversize message is this plus one byte.
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects accepted (the root container is level 1).
    pub max_depth: usize,
}

impl Default for Limits {
    /// 1 MiB and 32 levels: far above any message of the shipped schemas (at most 4 levels
    /// deep and a few kilobytes), far below what would strain a parser.
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_depth: 32,
        }
    }
}

/// One broken rule: where in the message, which rule in the schema, and what is wrong.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub(crate) struct Violation {
    /// JSON pointer into the message (`""` = the whole body, e.g. for malformed JSON).
    pub instance_path: String,
    /// JSON pointer of the broken keyword in the schema (`""` for body-level problems,
    /// which no schema rule covers).
    pub schema_path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.instance_path.is_empty() {
            "(root)"
        } else {
            &self.instance_path
        };
        if self.schema_path.is_empty() {
            write!(f, "at {at}: {}", self.message)
        } else {
            write!(f, "at {at} (rule {}): {}", self.schema_path, self.message)
        }
    }
}
