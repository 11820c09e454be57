//! SDK receipts (Meddelandekvittens): a UBL 2.1 `ApplicationResponse` in Digg's profile,
//! the answer to every SDK message. `ACCEPTED` carries no reasons; `REJECTED` carries at
//! least one, each with a reason code from [`REASONS`] (rules R5–R8 of
//! `DIGG-AppRes-Business-Rules.scmt`). The receipt names the message it answers by the XHE
//! envelope's `Header/ID` and is addressed back to the envelope's sender.
//!
//! [`parse`] reads a receipt as the harness receives it; [`build`] writes one (the reference
//! IUT's answers). Both go through roxmltree: no DTD, no entity, nothing fetched.

use std::fmt;

use serde::Serialize;

use super::xml::{APPRES, XHA, XHE};

const CAC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2";
const CBC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2";
const XHB: &str = "http://docs.oasis-open.org/bdxr/ns/XHE/1/BasicComponents";

/// `cbc:CustomizationID` and `cbc:ProfileID` of every receipt (R3-APP, R4-APP).
const CUSTOMIZATION: &str = "urn:fdc:digg.se:edelivery:messagetype:response:1";
const PROFILE: &str = "bdx:noprocess";

/// What a receipt's `DocumentReference/ID` says when the message had no readable id
/// (not well-formed, say): the receipt still needs one, and empty elements are refused (R2-APP).
pub(crate) const NO_ID: &str = "NA";

/// The document-level answer (R5-APP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Verdict {
    Accepted,
    Rejected,
}

impl Verdict {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Verdict::Accepted => "ACCEPTED",
            Verdict::Rejected => "REJECTED",
        }
    }
}

/// Why a message was rejected: the line-level reason code (R6-APP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Reason {
    /// Syntax: not well-formed, or refused by the XSD.
    #[serde(rename = "SV")]
    Syntax,
    /// A business rule: a Schematron assertion or another rule of the specification.
    #[serde(rename = "BV")]
    Business,
    /// The XML signature.
    #[serde(rename = "SIG")]
    Signature,
}

/// Every reason code with what the specification's example receipts say it is for.
pub(crate) const REASONS: &[(Reason, &str, &str)] = &[
    (
        Reason::Syntax,
        "SV",
        "XSD error, or not well-formed (Kvittens_RE-XSDFel)",
    ),
    (
        Reason::Business,
        "BV",
        "a Schematron rule or another rule of the specification (Kvittens_RE-SCHFel, Kvittens_RE-AnnatFel)",
    ),
    (
        Reason::Signature,
        "SIG",
        "the XML signature (Kvittens_RE-SIG)",
    ),
];

impl Reason {
    pub(crate) fn code(self) -> &'static str {
        REASONS
            .iter()
            .find(|(r, _, _)| *r == self)
            .map_or("?", |(_, c, _)| c)
    }

    fn from_code(code: &str) -> Option<Reason> {
        REASONS
            .iter()
            .find(|(_, c, _)| *c == code)
            .map(|(r, _, _)| *r)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One `LineResponse`: a reason code as written (it may be outside the code list), the
/// rule id (`StatusReasonCode`) and the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Line {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub text: String,
}

impl Line {
    pub(crate) fn reason(&self) -> Option<Reason> {
        Reason::from_code(self.code.trim())
    }
}

/// A receipt as read, with what the harness judges.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Receipt {
    /// `DocumentResponse/Response/ResponseCode` as written.
    pub verdict: String,
    /// `DocumentResponse/DocumentReference/ID`: the message answered.
    pub document: Option<String>,
    /// `SenderParty/EndpointID`: the organisation answering.
    pub sender: Option<String>,
    /// `ReceiverParty/EndpointID`: the organisation the receipt goes to.
    pub receiver: Option<String>,
    pub lines: Vec<Line>,
}

impl Receipt {
    pub(crate) fn verdict(&self) -> Option<Verdict> {
        match self.verdict.trim() {
            "ACCEPTED" => Some(Verdict::Accepted),
            "REJECTED" => Some(Verdict::Rejected),
            _ => None,
        }
    }
}

fn child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name
    })
}

fn children<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children().filter(move |c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == name
    })
}

fn text_at(n: roxmltree::Node<'_, '_>, path: &[(&str, &str)]) -> Option<String> {
    let mut at = n;
    for (ns, name) in path {
        at = child(at, ns, name)?;
    }
    at.text().map(|t| t.trim().to_owned())
}

/// Reads a receipt; `Err` says why the bytes are not one (the XSD and Schematron verdicts
/// come from the receipt's validator, not from here).
pub(crate) fn parse(bytes: &[u8]) -> Result<Receipt, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(APPRES)
        || root.tag_name().name() != "ApplicationResponse"
    {
        return Err(format!(
            "the root is {{{}}}{}, not {{{APPRES}}}ApplicationResponse",
            root.tag_name().namespace().unwrap_or(""),
            root.tag_name().name()
        ));
    }
    let dr = child(root, CAC, "DocumentResponse").ok_or("no cac:DocumentResponse")?;
    let verdict = text_at(dr, &[(CAC, "Response"), (CBC, "ResponseCode")])
        .ok_or("no cac:DocumentResponse/cac:Response/cbc:ResponseCode")?;
    let lines = children(dr, CAC, "LineResponse")
        .map(|l| Line {
            code: text_at(l, &[(CAC, "Response"), (CBC, "ResponseCode")]).unwrap_or_default(),
            rule: text_at(
                l,
                &[
                    (CAC, "Response"),
                    (CAC, "Status"),
                    (CBC, "StatusReasonCode"),
                ],
            ),
            text: text_at(
                l,
                &[(CAC, "Response"), (CAC, "Status"), (CBC, "StatusReason")],
            )
            .unwrap_or_default(),
        })
        .collect();
    Ok(Receipt {
        verdict,
        document: text_at(dr, &[(CAC, "DocumentReference"), (CBC, "ID")]),
        sender: text_at(root, &[(CAC, "SenderParty"), (CBC, "EndpointID")]),
        receiver: text_at(root, &[(CAC, "ReceiverParty"), (CBC, "EndpointID")]),
        lines,
    })
}

/// What a receipt needs from the XHE envelope of the message it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Envelope {
    /// `Header/ID`.
    pub id: Option<String>,
    /// `Header/FromParty/PartyIdentification/ID`: where the receipt goes.
    pub from: Option<String>,
    /// `Header/ToParty/PartyIdentification/ID`: who answers.
    pub to: Option<String>,
}

/// The envelope's id and parties, as far as `body` is readable (nothing of a body that is
/// not well-formed XML).
pub(crate) fn envelope(body: &[u8]) -> Envelope {
    // No DTD: an entity bomb is refused, not expanded.
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    let Some(doc) = std::str::from_utf8(body)
        .ok()
        .and_then(|t| roxmltree::Document::parse_with_options(t, opts).ok())
    else {
        return Envelope::default();
    };
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(XHE) {
        return Envelope::default();
    }
    let Some(header) = child(root, XHA, "Header") else {
        return Envelope::default();
    };
    let party = |which| {
        text_at(
            header,
            &[(XHA, which), (XHA, "PartyIdentification"), (XHB, "ID")],
        )
    };
    Envelope {
        id: text_at(header, &[(XHB, "ID")]),
        from: party("FromParty"),
        to: party("ToParty"),
    }
}

/// `body` with a fresh UUID as its XHE `Header/ID`, so each message sent has its own and a
/// receipt names exactly one; `None` when it has no envelope header.
pub(crate) fn plant_envelope_id(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).ok()?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(XHE) {
        return None;
    }
    let id = child(child(root, XHA, "Header")?, XHB, "ID")?;
    let range = id.children().find(|c| c.is_text())?.range();
    Some(
        format!(
            "{}{}{}",
            text.get(..range.start)?,
            super::xml::fresh_uuid(),
            text.get(range.end..)?
        )
        .into_bytes(),
    )
}

/// Escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Who answered whom: the receipt's parties, swapped from the envelope's (the receipt goes
/// back to the sender). Unknown parties (an unreadable message) are named [`NO_ID`].
pub(crate) fn build(
    receipt_id: &str,
    answered: &Envelope,
    lines: &[(Reason, Option<&str>, &str)],
    now: time::OffsetDateTime,
) -> String {
    let verdict = if lines.is_empty() {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    };
    let or_na = |v: &Option<String>| {
        esc(v
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(NO_ID))
    };
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <ApplicationResponse xmlns=\"{APPRES}\" xmlns:cac=\"{CAC}\" xmlns:cbc=\"{CBC}\">\n\
         \x20 <cbc:CustomizationID>{CUSTOMIZATION}</cbc:CustomizationID>\n\
         \x20 <cbc:ProfileID>{PROFILE}</cbc:ProfileID>\n\
         \x20 <cbc:ID>{}</cbc:ID>\n\
         \x20 <cbc:IssueDate>{:04}-{:02}-{:02}</cbc:IssueDate>\n\
         \x20 <cbc:IssueTime>{:02}:{:02}:{:02}Z</cbc:IssueTime>\n\
         \x20 <cac:SenderParty><cbc:EndpointID schemeID=\"iso6523-actorid-upis\">{}</cbc:EndpointID></cac:SenderParty>\n\
         \x20 <cac:ReceiverParty><cbc:EndpointID schemeID=\"iso6523-actorid-upis\">{}</cbc:EndpointID></cac:ReceiverParty>\n\
         \x20 <cac:DocumentResponse>\n\
         \x20   <cac:Response><cbc:ResponseCode>{}</cbc:ResponseCode></cac:Response>\n\
         \x20   <cac:DocumentReference><cbc:ID>{}</cbc:ID></cac:DocumentReference>\n",
        esc(receipt_id),
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        or_na(&answered.to),
        or_na(&answered.from),
        verdict.code(),
        or_na(&answered.id),
    );
    for (reason, rule, text) in lines {
        let rule = rule
            .filter(|r| !r.trim().is_empty())
            .map(|r| format!("<cbc:StatusReasonCode>{}</cbc:StatusReasonCode>", esc(r)))
            .unwrap_or_default();
        let text = if text.trim().is_empty() {
            "refused"
        } else {
            text
        };
        out.push_str(&format!(
            "    <cac:LineResponse>\n\
             \x20     <cac:LineReference><cbc:LineID>NA</cbc:LineID></cac:LineReference>\n\
             \x20     <cac:Response><cbc:ResponseCode>{}</cbc:ResponseCode><cac:Status>{rule}<cbc:StatusReason>{}</cbc:StatusReason></cac:Status></cac:Response>\n\
             \x20   </cac:LineResponse>\n",
            reason.code(),
            esc(text)
        ));
    }
    out.push_str("  </cac:DocumentResponse>\n</ApplicationResponse>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::xml::{XmlValidator, XML_BUILTINS};
    use crate::schema::MessageValidator;

    fn example(name: &str) -> &'static [u8] {
        XML_BUILTINS
            .iter()
            .flat_map(|b| b.examples.iter())
            .find(|e| e.path.ends_with(name))
            .map(|e| e.bytes)
            .expect("shipped")
    }

    #[test]
    fn the_shipped_receipts_read_as_their_comments_say() {
        let sig = parse(example("Kvittens_RE-SIG.xml")).expect("a receipt");
        assert_eq!(sig.verdict(), Some(Verdict::Rejected));
        assert_eq!(sig.document.as_deref(), Some("ID-FROM-XHE-12354689"));
        assert_eq!(sig.lines.len(), 1);
        assert_eq!(sig.lines[0].reason(), Some(Reason::Signature));
        let sch = parse(example("Kvittens_RE-SCHFel.xml")).expect("a receipt");
        assert!(sch
            .lines
            .iter()
            .all(|l| l.reason() == Some(Reason::Business)));
        assert_eq!(sch.lines[0].rule.as_deref(), Some("RegelID-123"));
        let xsd = parse(example("Kvittens_RE-XSDFel.xml")).expect("a receipt");
        assert_eq!(xsd.lines[0].reason(), Some(Reason::Syntax));
        let ok = parse(example("Kvittens_AP-Accepterat.xml")).expect("a receipt");
        assert_eq!(ok.verdict(), Some(Verdict::Accepted));
        assert!(ok.lines.is_empty());
        assert!(parse(b"<a/>").unwrap_err().contains("root"));
        assert!(parse(b"<a").unwrap_err().contains("well-formed"));
    }

    #[test]
    fn built_receipts_validate_and_read_back() {
        let v = XmlValidator::builtin("sdk/meddelandekvittens").expect("compiles");
        let message = example("meddelande.xhe-unencrypted-payload.xml");
        let env = envelope(message);
        assert_eq!(
            env.id.as_deref(),
            Some("7bc5576a-3f87-4cf5-a0c5-277da06fcacb")
        );
        assert_eq!(env.from.as_deref(), Some("0203:testb.testbed.inera.se"));
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let accepted = build("KVT-1", &env, &[], now);
        v.validate_bytes(accepted.as_bytes()).expect("valid");
        let r = parse(accepted.as_bytes()).expect("reads");
        assert_eq!(r.verdict(), Some(Verdict::Accepted));
        assert_eq!(r.document, env.id);
        assert_eq!(r.receiver, env.from);
        assert_eq!(r.sender, env.to);
        let planted = plant_envelope_id(message).expect("an envelope");
        let fresh = envelope(&planted);
        assert_ne!(fresh.id, env.id);
        assert_eq!(fresh.from, env.from);
        assert_eq!(plant_envelope_id(b"<a/>"), None);
        let lines = [
            (
                Reason::Business,
                Some("R1 & <2>"),
                "sender \"and\" receiver\u{1} differ",
            ),
            (Reason::Syntax, None, ""),
        ];
        let rejected = build("KVT-2", &Envelope::default(), &lines, now);
        v.validate_bytes(rejected.as_bytes()).expect("valid");
        let r = parse(rejected.as_bytes()).expect("reads");
        assert_eq!(r.verdict(), Some(Verdict::Rejected));
        assert_eq!(r.document.as_deref(), Some(NO_ID));
        assert_eq!(r.lines[0].rule.as_deref(), Some("R1 & <2>"));
        assert_eq!(r.lines[1].reason(), Some(Reason::Syntax));
    }
}
