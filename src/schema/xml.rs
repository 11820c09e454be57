//! XML messages (SDK-SPEC): XSD validation behind [`MessageValidator`], with the schema
//! sets shipped in `schemas/sdk/` as data, one [`XML_BUILTINS`] line each.
//!
//! XSD validation is libxml2's (crate `libxml2-check`: built from source, one lock,
//! imports resolved only from the embedded files, nothing fetched). On top of the XSD,
//! a builtin may require its root element and its payload element by expanded name:
//! an envelope whose payload is `xs:any processContents="lax"` would otherwise accept a
//! payload in the wrong namespace by skipping it. Schematron is not run yet: every rule
//! of the shipped `.scmt` files is *not checked* (see the README, "XML messages").

use std::fmt;
use std::sync::Arc;

use anyhow::{bail, Result};
use libxml2_check::{Catalog, Issue, Schema};

use super::model::Violation;
use super::schematron::Schematron;
use super::validate::MessageValidator;

/// An element's expanded name: namespace URI and local name.
pub(crate) type QName = (&'static str, &'static str);

pub(crate) const XHE: &str = "http://docs.oasis-open.org/bdxr/ns/XHE/1/ExchangeHeaderEnvelope";
pub(crate) const XHA: &str = "http://docs.oasis-open.org/bdxr/ns/XHE/1/AggregateComponents";
const MWA: &str = "urn:riv:infrastructure:messaging:MessageWithAttachments:3";
const APPRES: &str = "urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2";

/// One file embedded from `schemas/`.
#[derive(Debug)]
pub(crate) struct File {
    /// Path under `schemas/`.
    pub path: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! file {
    ($path:literal) => {
        File {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/", $path)),
        }
    };
}

/// One shipped XML message type.
#[derive(Debug)]
pub(crate) struct XmlBuiltin {
    /// `sdk/meddelande`.
    pub id: &'static str,
    /// The schema documents; imports resolve among them by file name.
    pub files: &'static [File],
    /// The file name (last path segment) of the schema to compile.
    pub main: &'static str,
    /// Import locations as published that name no shipped file, and the file they mean.
    pub aliases: &'static [(&'static str, &'static str)],
    /// The root element a message must have.
    pub root: QName,
    /// An element that must occur exactly once, as a child of the given parent.
    pub payload: Option<(QName, QName)>,
    /// Valid examples; the first is the one the generator mutates.
    pub examples: &'static [File],
    /// The element whose text is the message id (the first in document order), so
    /// accepted messages can be observed by id.
    pub id_element: Option<QName>,
    /// ISO Schematron rules, run after the XSD (what XPath 1.0 can run; see
    /// `schematron.rs`).
    pub schematron: &'static [File],
    /// A DTD instead of an XSD (SHS): `files` and `main` are then empty, and the root's
    /// local name is the DOCTYPE name the DTD is checked from.
    pub dtd: Option<File>,
}

/// Every shipped XML message type, one entry each.
pub(crate) const XML_BUILTINS: &[XmlBuiltin] = &[
    XmlBuiltin {
        id: "sdk/meddelande",
        files: &[
            file!("sdk/meddelande-in-xhe.xsd"),
            file!("sdk/meddelande/infrastructure_messaging_MessageWithAttachments_3.0.xsd"),
            file!("sdk/xhe/XHE-1.0.xsd"),
            file!("sdk/xhe/fragments/CCTS_CCT_SchemaModule-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-AggregateComponents-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-BasicComponents-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-ExtensionComponents-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-ExtensionContentDataType-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-PayloadContentDataType-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-QualifiedDataTypes-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-UnqualifiedDataTypes-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-XAdES01903v132-201601-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-XAdES01903v141-201601-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-xmldsig-core-schema-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-xmldsig1-schema-1.0.xsd"),
            file!("sdk/xhe/fragments/XHE-xmldsig11-schema-1.0.xsd"),
        ],
        main: "meddelande-in-xhe.xsd",
        aliases: &[],
        root: (XHE, "XHE"),
        payload: Some(((MWA, "messagePayload"), (XHA, "PayloadContent"))),
        examples: &[file!("sdk/examples/meddelande.xhe-unencrypted-payload.xml")],
        id_element: Some((MWA, "messageId")),
        dtd: None,
        schematron: &[
            file!("sdk/schematron/DIGG-XHE-Business-Rules.scmt"),
            file!("sdk/schematron/MessageConstraints.xml"),
        ],
    },
    XmlBuiltin {
        id: "sdk/meddelandekvittens",
        files: &[
            file!("sdk/meddelandekvittens/Response-2.1.xsd"),
            file!("sdk/meddelandekvittens/Response-2.1_urn_oasis_names_specification_ubl_schema_xsd_CommonAggregateComponents-2.xsd"),
            file!("sdk/meddelandekvittens/Response-2.1_urn_oasis_names_specification_ubl_schema_xsd_CommonBasicComponents-2.xsd"),
            file!("sdk/meddelandekvittens/Response-2.1_urn_oasis_names_specification_ubl_schema_xsd_UnqualifiedDataTypes-2.xsd"),
            file!("sdk/meddelandekvittens/Response-2.1_urn_un_unece_uncefact_data_specification_CoreComponentTypeSchemaModule_2.xsd"),
        ],
        main: "Response-2.1.xsd",
        // As published, the imports name files `DIGG UBL-ApplicationResponse-2.1_…` (URL-
        // encoded) while the files are `Response-2.1_…`: it does not compile unmapped.
        aliases: &[
            ("DIGG UBL-ApplicationResponse-2.1_urn_oasis_names_specification_ubl_schema_xsd_CommonAggregateComponents-2.xsd", "Response-2.1_urn_oasis_names_specification_ubl_schema_xsd_CommonAggregateComponents-2.xsd"),
            ("DIGG UBL-ApplicationResponse-2.1_urn_oasis_names_specification_ubl_schema_xsd_CommonBasicComponents-2.xsd", "Response-2.1_urn_oasis_names_specification_ubl_schema_xsd_CommonBasicComponents-2.xsd"),
            ("DIGG UBL-ApplicationResponse-2.1_urn_oasis_names_specification_ubl_schema_xsd_UnqualifiedDataTypes-2.xsd", "Response-2.1_urn_oasis_names_specification_ubl_schema_xsd_UnqualifiedDataTypes-2.xsd"),
            ("DIGG UBL-ApplicationResponse-2.1_urn_un_unece_uncefact_data_specification_CoreComponentTypeSchemaModule_2.xsd", "Response-2.1_urn_un_unece_uncefact_data_specification_CoreComponentTypeSchemaModule_2.xsd"),
        ],
        root: (APPRES, "ApplicationResponse"),
        payload: None,
        examples: &[
            file!("sdk/examples/meddelandekvittens.Kvittens_AP-Accepterat.xml"),
            file!("sdk/examples/meddelandekvittens.Kvittens_RE-AnnatFel.xml"),
            file!("sdk/examples/meddelandekvittens.Kvittens_RE-SCHFel.xml"),
            file!("sdk/examples/meddelandekvittens.Kvittens_RE-SIG.xml"),
            file!("sdk/examples/meddelandekvittens.Kvittens_RE-XSDFel.xml"),
        ],
        id_element: None,
        schematron: &[file!("sdk/schematron/DIGG-AppRes-Business-Rules.scmt")],
        dtd: None,
    },
    XmlBuiltin {
        id: "shs/label",
        files: &[],
        main: "",
        aliases: &[],
        root: ("", "shs.label"),
        payload: None,
        examples: &[file!("shs/label.example.xml")],
        id_element: None,
        schematron: &[],
        dtd: Some(file!("shs/shs-label-1.2.dtd")),
    },
];

/// The specification's own test data (`testdata-felhantering/`): bare SDK Meddelanden,
/// put into the first `sdk/meddelande` example's envelope to be sent. With each, the rule
/// family it breaks (`xsd:`, `schematron:`), or `None` for a valid one.
pub(crate) const FELHANTERING: &[(File, Option<&str>)] = &[
    // creationDateTime `3 Sept. 2019`.
    (file!("sdk/testdata-felhantering/TF2.4.1.xml"), Some("xsd:")),
    // sender root `icke-godkänt-kodverk` (senderIdvalue).
    (
        file!("sdk/testdata-felhantering/TF2.4.2.xml"),
        Some("schematron:"),
    ),
    (file!("sdk/testdata-felhantering/min.xml"), None),
];

/// The shipped XML message type `id`; an unknown id lists the known ones.
pub(crate) fn get(id: &str) -> Result<&'static XmlBuiltin> {
    match XML_BUILTINS.iter().find(|b| b.id == id) {
        Some(b) => Ok(b),
        None => bail!(
            "unknown XML message type `{id}` (known: {})",
            XML_BUILTINS
                .iter()
                .map(|b| b.id)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The last path segment, the name imports use.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A compiled XML message type. Clones share the compiled schema.
#[derive(Clone)]
pub(crate) struct XmlValidator {
    /// `None` for a DTD-defined type.
    schema: Option<Arc<Schema>>,
    /// The DTD and the root element it is checked from, for a DTD-defined type.
    dtd: Option<(&'static [u8], &'static str)>,
    origin: Arc<str>,
    root: Option<QName>,
    payload: Option<(QName, QName)>,
    id_element: Option<QName>,
    schematron: Vec<Arc<Schematron>>,
}

impl fmt::Debug for XmlValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XmlValidator")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn issues_text(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| format!("  line {}: {}", i.line, i.message))
        .collect::<Vec<_>>()
        .join("\n")
}

impl XmlValidator {
    /// The shipped XML message type `id` (see [`XML_BUILTINS`]).
    pub(crate) fn builtin(id: &str) -> Result<XmlValidator> {
        let b = get(id)?;
        let schema = if b.dtd.is_some() {
            None
        } else {
            let mut catalog = Catalog::default();
            for f in b.files {
                catalog.add(file_name(f.path), f.bytes);
            }
            for (from, to) in b.aliases {
                catalog.alias(from, to);
            }
            let schema = Schema::compile(&catalog, b.main).map_err(|issues| {
                anyhow::anyhow!(
                    "XML schema `{}` does not compile:\n{}",
                    b.id,
                    issues_text(&issues)
                )
            })?;
            Some(Arc::new(schema))
        };
        let example = b.examples.first().map(|e| e.bytes).unwrap_or_default();
        let mut schematron = Vec::new();
        for f in b.schematron {
            let text = std::str::from_utf8(f.bytes)
                .map_err(|_| anyhow::anyhow!("Schematron `{}` is not UTF-8", f.path))?;
            schematron.push(Arc::new(Schematron::load(text, f.path, example)?));
        }
        Ok(XmlValidator {
            schema,
            dtd: b.dtd.as_ref().map(|f| (f.bytes, b.root.1)),
            origin: b.id.into(),
            root: Some(b.root),
            payload: b.payload,
            id_element: b.id_element,
            schematron,
        })
    }

    /// An XSD file (`main`: path and bytes) with the schema files its imports may name
    /// (`others`, by path: a location resolves by its last segment). Nothing is fetched.
    pub(crate) fn from_files(
        main: (&str, &[u8]),
        others: &[(String, Vec<u8>)],
    ) -> Result<XmlValidator> {
        let mut catalog = Catalog::default();
        let main_name = file_name(main.0);
        for (name, bytes) in others {
            catalog.add(file_name(name), bytes);
        }
        catalog.add(main_name, main.1);
        let schema = Schema::compile(&catalog, main_name).map_err(|issues| {
            anyhow::anyhow!(
                "XML schema `{}` does not compile:\n{}",
                main.0,
                issues_text(&issues)
            )
        })?;
        Ok(XmlValidator {
            schema: Some(Arc::new(schema)),
            dtd: None,
            origin: main.0.into(),
            root: None,
            payload: None,
            id_element: None,
            schematron: Vec::new(),
        })
    }

    /// The text range of the id element in `text`, and the id.
    fn id_at(&self, text: &str) -> Option<(std::ops::Range<usize>, String)> {
        let (ns, local) = self.id_element?;
        let doc = roxmltree::Document::parse(text).ok()?;
        let el = doc.descendants().find(|n| {
            n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == local
        })?;
        let t = el.children().find(|c| c.is_text())?;
        Some((t.range(), t.text()?.trim().to_owned()))
    }

    /// The message id of `body` (the text of the id element), if it has one.
    pub(crate) fn message_id(&self, body: &[u8]) -> Option<String> {
        self.id_at(std::str::from_utf8(body).ok()?)
            .map(|(_, id)| id)
    }

    /// `body` with a fresh UUID as its message id, and that id; `None` for types without
    /// an id element.
    pub(crate) fn plant_id(&self, body: &[u8]) -> Option<(Vec<u8>, String)> {
        let text = std::str::from_utf8(body).ok()?;
        let (range, _) = self.id_at(text)?;
        let b: [u8; 16] = rand::random();
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_be_bytes([b[4], b[5]]),
            u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
            u16::from_be_bytes([b[8], b[9]]) & 0x0fff,
            u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
        );
        let planted = format!("{}{id}{}", text.get(..range.start)?, text.get(range.end..)?);
        Some((planted.into_bytes(), id))
    }

    /// Schematron assertions that run (ids) and those that do not (id, why), per file.
    pub(crate) fn schematron_coverage(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut checked = Vec::new();
        let mut not_checked = Vec::new();
        for s in &self.schematron {
            checked.extend(s.checked().into_iter().map(str::to_owned));
            not_checked.extend(s.not_checked().iter().cloned());
        }
        (checked, not_checked)
    }

    /// The root and payload requirements, checked on a document the XSD accepted.
    fn structure(&self, body: &[u8]) -> Vec<Violation> {
        let text = match std::str::from_utf8(body) {
            Ok(t) => t,
            // libxml2 accepted another declared encoding; the structure check reads UTF-8
            // only, so say so rather than pass it.
            Err(_) => {
                return if self.root.is_some() || self.payload.is_some() {
                    vec![violation("", "xml:encoding", "message is not UTF-8: provsten checks the root and payload of UTF-8 messages only")]
                } else {
                    Vec::new()
                }
            }
        };
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = match roxmltree::Document::parse_with_options(text, opts) {
            Ok(d) => d,
            Err(e) => return vec![violation("", "xml:well-formed", &e.to_string())],
        };
        let mut out = Vec::new();
        let root = doc.root_element();
        if let Some((ns, local)) = self.root {
            if root.tag_name().namespace().unwrap_or("") != ns || root.tag_name().name() != local {
                out.push(violation(
                    "/*",
                    "provsten:root",
                    &format!(
                        "the root element is {{{}}}{}, not {{{ns}}}{local}",
                        root.tag_name().namespace().unwrap_or(""),
                        root.tag_name().name()
                    ),
                ));
            }
        }
        if let Some(((ns, local), (pns, plocal))) = self.payload {
            let found: Vec<_> = doc
                .descendants()
                .filter(|n| n.is_element())
                .filter(|n| n.tag_name().namespace() == Some(ns) && n.tag_name().name() == local)
                .filter(|n| {
                    n.parent_element().is_some_and(|p| {
                        p.tag_name().namespace() == Some(pns) && p.tag_name().name() == plocal
                    })
                })
                .collect();
            if found.len() != 1 {
                out.push(violation(
                    "/*",
                    "provsten:payload",
                    &format!(
                        "expected exactly one {{{ns}}}{local} in {{{pns}}}{plocal}, found {}",
                        found.len()
                    ),
                ));
            }
        }
        out
    }
}

fn violation(path: &str, rule: &str, message: &str) -> Violation {
    Violation {
        instance_path: path.to_owned(),
        schema_path: rule.to_owned(),
        message: message.to_owned(),
    }
}

/// libxml2's error code as the rule id: `xsd:1871` (an element not expected), `xml:…`
/// for parser errors (codes below 1000 are well-formedness and encoding errors).
fn from_issue(i: Issue) -> Violation {
    let rule = if i.code < 1000 {
        format!("xml:{}", i.code)
    } else {
        format!("xsd:{}", i.code)
    };
    let message = if i.line > 0 {
        format!("line {}: {}", i.line, i.message)
    } else {
        i.message
    };
    Violation {
        instance_path: i.path,
        schema_path: rule,
        message,
    }
}

impl MessageValidator for XmlValidator {
    fn content_type(&self) -> &str {
        "application/xml"
    }

    fn accepts_content_type(&self, header: Option<&str>) -> bool {
        header
            .and_then(|h| h.split(';').next())
            .map(str::trim)
            .is_some_and(|e| {
                e.eq_ignore_ascii_case("application/xml") || e.eq_ignore_ascii_case("text/xml")
            })
    }

    fn validate_bytes(&self, body: &[u8]) -> Result<(), Vec<Violation>> {
        let checked = match (&self.schema, self.dtd) {
            (Some(schema), _) => schema.validate(body),
            (None, Some((dtd, root))) => libxml2_check::validate_dtd(body, dtd, root),
            (None, None) => Ok(()),
        };
        if let Err(issues) = checked {
            return Err(issues.into_iter().map(from_issue).collect());
        }
        let mut found = self.structure(body);
        if found.is_empty() {
            // Schematron runs on schema-valid messages only, as in the SDK's own pipeline.
            for s in &self.schematron {
                found.extend(s.validate(body));
            }
        }
        if found.is_empty() {
            Ok(())
        } else {
            Err(found)
        }
    }
}

/// `payload` (a bare SDK Meddelande) put in place of the payload of `envelope` (the first
/// `sdk/meddelande` example): how the shipped negatives are sent as SDK messages.
pub(crate) fn in_envelope(envelope: &str, payload: &str) -> Result<String> {
    let doc = roxmltree::Document::parse(envelope)?;
    let Some(old) = doc.descendants().find(|n| {
        n.is_element()
            && n.tag_name().namespace() == Some(MWA)
            && n.tag_name().name() == "messagePayload"
    }) else {
        bail!("the envelope has no SDK Meddelande payload");
    };
    let body = match payload.find("?>") {
        Some(end) if payload.trim_start().starts_with("<?xml") => &payload[end + 2..],
        _ => payload,
    };
    let range = old.range();
    let (Some(before), Some(after)) = (envelope.get(..range.start), envelope.get(range.end..))
    else {
        bail!("payload range outside the envelope");
    };
    Ok(format!("{before}{}{after}", body.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn text(f: &File) -> &'static str {
        std::str::from_utf8(f.bytes).expect("UTF-8")
    }

    #[test]
    fn every_builtin_compiles_and_its_examples_validate() {
        for b in XML_BUILTINS {
            let v = XmlValidator::builtin(b.id).expect("compiles");
            assert!(!b.examples.is_empty(), "{}", b.id);
            for e in b.examples {
                assert_eq!(v.validate_bytes(e.bytes), Ok(()), "{}", e.path);
            }
        }
    }

    #[test]
    fn the_receipt_schema_does_not_compile_as_published() {
        let b = get("sdk/meddelandekvittens").expect("known");
        let mut catalog = Catalog::default();
        for f in b.files {
            catalog.add(file_name(f.path), f.bytes);
        }
        let e = Schema::compile(&catalog, b.main).expect_err("unmapped imports");
        assert!(e.iter().any(|i| i.message.contains("DIGG")), "{e:?}");
    }

    #[test]
    fn the_shipped_negatives_fail_and_the_shipped_positives_pass_in_the_envelope() {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let envelope = text(&XML_BUILTINS[0].examples[0]);
        for (f, breaks) in FELHANTERING {
            let msg = in_envelope(envelope, text(f)).expect("wraps");
            let got = v.validate_bytes(msg.as_bytes());
            match (breaks, got) {
                (None, got) => assert_eq!(got, Ok(()), "{}", f.path),
                (Some(family), got) => {
                    let vs = got.expect_err(f.path);
                    assert!(
                        vs.iter().all(|v| v.schema_path.starts_with(family)),
                        "{}: {vs:?}",
                        f.path
                    );
                }
            }
        }
    }

    #[test]
    fn payload_and_envelope_errors_carry_the_xpath_and_rule() {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let ok = text(&XML_BUILTINS[0].examples[0]);
        let cases = [
            // The payload is checked strictly although XHE takes it laxly.
            ok.replacen("<ns6:creationDateTime>", "<ns6:creationDateTime>x", 1),
            ok.replacen("<ns6:messageId>", "<ns6:bogus/><ns6:messageId>", 1),
            ok.replacen("<ns3:Payload>", "<ns3:Payload><ns3:Bogus/>", 1),
            // A payload in another namespace is skipped by lax processing: caught here.
            ok.replace(&format!("\"{MWA}\""), "\"urn:wrong\""),
            ok.replace(&format!("\"{XHE}\""), "\"urn:wrong\""),
        ];
        for c in cases {
            let got = v.validate_bytes(c.as_bytes()).expect_err("invalid");
            assert!(
                got.iter()
                    .all(|v| v.instance_path.starts_with('/') && !v.schema_path.is_empty()),
                "{got:?}"
            );
        }
    }

    #[test]
    fn a_planted_id_is_a_fresh_uuid_that_keeps_the_message_valid() {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let example = XML_BUILTINS[0].examples[0].bytes;
        let (body, id) = v.plant_id(example).expect("has an id");
        assert_eq!(id.len(), 36);
        assert_eq!(v.message_id(&body), Some(id));
        assert_eq!(v.validate_bytes(&body), Ok(()));
    }

    #[test]
    fn schematron_rules_that_run_and_those_reported_not_checked() {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let (checked, not_checked) = v.schematron_coverage();
        for id in [
            "R1-XHE",
            "R2-XHE",
            "R3-XHE",
            "R9-XHE",
            "R14-XHE",
            "recipientIdvalue",
            "senderIdvalue",
            "verifyNonEmptyElements",
        ] {
            assert!(checked.contains(&id.to_owned()), "{id}: {checked:?}");
        }
        for id in [
            "R12-XHE",
            "R13-XHE",
            "creationDateTime",
            "conversationIdMustExist",
        ] {
            assert!(
                not_checked.iter().any(|(i, _)| i == id),
                "{id}: {not_checked:?}"
            );
        }
        // A broken business rule is reported with the XPath and the rule id.
        let ok = text(&XML_BUILTINS[0].examples[0]);
        let bad = ok.replacen("urn:fdc:digg.se:edelivery:xhe:1", "urn:other", 1);
        let got = v.validate_bytes(bad.as_bytes()).expect_err("R3");
        assert!(
            got.iter()
                .any(|x| x.schema_path == "schematron:R3-XHE" && x.instance_path.starts_with("/")),
            "{got:?}"
        );
        let r = XmlValidator::builtin("sdk/meddelandekvittens").expect("compiles");
        let (checked, not_checked) = r.schematron_coverage();
        assert!(checked.len() >= 20, "{checked:?}");
        assert!(not_checked.is_empty(), "{not_checked:?}");
    }

    #[test]
    fn shs_labels_are_checked_against_the_dtd_without_loading_the_doctype() {
        let v = XmlValidator::builtin("shs/label").expect("loads");
        let ok = text(&get("shs/label").expect("known").examples[0]);
        assert_eq!(v.validate_bytes(ok.as_bytes()), Ok(()));
        let start = ok.find("<product").expect("product");
        let end = ok.find("</product>").expect("product end") + "</product>".len();
        let cases = [
            // product is required
            format!("{}{}", &ok[..start], &ok[end..]),
            // local.id is an NMTOKEN (the upstream samples' line break in it)
            ok.replacen("local.id=\"f9445c9f", "local.id=\"f9445c9f\n", 1),
            // transfer-type is an enumeration
            ok.replacen("transfer-type=\"asynch\"", "transfer-type=\"later\"", 1),
            // another root
            ok.replacen("<shs.label ", "<shs.labels ", 1).replacen(
                "</shs.label>",
                "</shs.labels>",
                1,
            ),
        ];
        for c in cases {
            let got = v.validate_bytes(c.as_bytes()).expect_err("invalid");
            assert!(got.iter().all(|x| !x.schema_path.is_empty()), "{got:?}");
        }
    }

    #[test]
    fn xml_and_text_xml_are_accepted_content_types() {
        let v = XmlValidator::builtin("sdk/meddelandekvittens").expect("compiles");
        assert!(v.accepts_content_type(Some("application/xml; charset=utf-8")));
        assert!(v.accepts_content_type(Some("text/xml")));
        assert!(!v.accepts_content_type(Some("application/json")));
        assert!(!v.accepts_content_type(None));
    }

    #[test]
    fn the_table_lists_exactly_the_files_in_schemas_sdk() {
        fn walk(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).expect("readable") {
                let entry = entry.expect("entry");
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = format!("{rel}/{name}");
                if entry.path().is_dir() {
                    walk(&entry.path(), &rel, out);
                } else if name.ends_with(".xsd") || name.ends_with(".xml") || name.ends_with(".dtd")
                {
                    out.insert(rel);
                }
            }
        }
        let mut on_disk = BTreeSet::new();
        for dir in ["sdk", "shs"] {
            walk(
                &Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("schemas")
                    .join(dir),
                dir,
                &mut on_disk,
            );
        }
        let mut listed = BTreeSet::new();
        for b in XML_BUILTINS {
            listed.extend(b.dtd.iter().map(|f| f.path.to_owned()));
            listed.extend(b.files.iter().map(|f| f.path.to_owned()));
            listed.extend(b.examples.iter().map(|f| f.path.to_owned()));
        }
        listed.extend(FELHANTERING.iter().map(|(f, _)| f.path.to_owned()));
        for b in XML_BUILTINS {
            listed.extend(
                b.schematron
                    .iter()
                    .filter(|f| f.path.ends_with(".xml"))
                    .map(|f| f.path.to_owned()),
            );
        }
        assert_eq!(on_disk, listed);
    }
}
