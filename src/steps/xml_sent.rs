//! Steps for the XML messages the IUT sends (SDK-SPEC, role `sender`): the IUT is asked to
//! send SDK messages of a type it declares (`sender.xml_messages`) to the simulated
//! receiver, and each body that arrives is validated against the type's XSD and the
//! Schematron rules that run (those that cannot are recorded by `Given the XML message
//! type`, never counted as passed).

use std::time::Instant;

use cucumber::{then, when};
use serde_json::json;

use super::resend::PROCESSING_SLACK;
use super::ProvstenWorld;
use crate::iut::XmlMessageType;
use crate::schema::validate::Violation;
use crate::schema::xml::XmlValidator;
use crate::schema::xml_signature::{self, Trust};
use crate::schema::MessageValidator;

/// What is wrong with one body the IUT sent: its Content-Type (a receiver refuses XML
/// labelled as something else), then the XSD and Schematron verdict of the body.
pub(crate) fn judge_sent(
    validator: &XmlValidator,
    content_type: Option<&str>,
    body: &[u8],
) -> Vec<Violation> {
    let mut found = Vec::new();
    if !validator.accepts_content_type(content_type) {
        found.push(Violation {
            instance_path: String::new(),
            schema_path: "http:content-type".into(),
            message: format!(
                "sent with Content-Type {}, not application/xml or text/xml",
                content_type.map_or_else(|| "(none)".into(), |c| format!("{c:?}"))
            ),
        });
    }
    if let Err(v) = validator.validate_bytes(body) {
        found.extend(v);
    }
    found
}

impl ProvstenWorld {
    /// The chosen XML message type, if the IUT declares that it sends it; else the
    /// scenario is not applicable.
    fn sent_xml_type(&self) -> anyhow::Result<XmlMessageType> {
        let m = self.xml_message_type()?;
        let s = self.sender_ctx()?;
        if !s.xml_messages.contains(&m.name) {
            return Err(ProvstenWorld::not_applicable(format!(
                "the IUT config does not say the IUT sends {:?} (sender.xml_messages = {:?})",
                m.name, s.xml_messages
            )));
        }
        Ok(m)
    }
}

#[when(expr = "the IUT sends {int} XML messages to the simulated receiver")]
async fn sends_xml(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    let m = w.sent_xml_type()?;
    super::resend::send(w, n.max(1), false, Some(&m)).await
}

/// How the messages the IUT sends must be signed (`[[message]] signature`): by a
/// certificate of the run's PKI whose organisation is the XHE sender and, when
/// `sender.client_cert` names it, the IUT's own.
pub(crate) struct SentSignature {
    pub trust: Trust,
    /// The IUT's organisation number, from `sender.client_cert`.
    pub org: Option<String>,
}

/// What is wrong with the signature of one body the IUT sent.
pub(crate) fn judge_signature(sig: &SentSignature, body: &[u8]) -> Vec<Violation> {
    let violation = |rule: &str, message: String| Violation {
        instance_path: "/*/ds:Signature".into(),
        schema_path: format!("xmldsig:{rule}"),
        message,
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return vec![violation(
            "utf-8",
            "not UTF-8: no signature can be checked".into(),
        )];
    };
    match xml_signature::verify_all(text, &sig.trust) {
        Err(e) => vec![violation(e.rule(), e.to_string())],
        Ok(signed) => match &sig.org {
            Some(org) if signed.org().as_ref() != Some(org) => vec![violation(
                "organisation",
                format!(
                    "signed by organisation {} ({}), not by the IUT's {org} (sender.client_cert)",
                    signed.org().as_deref().unwrap_or("(none)"),
                    signed.subject()
                ),
            )],
            _ => Vec::new(),
        },
    }
}

#[then("every XML message the IUT sent is valid against its XSD and Schematron")]
async fn sent_xml_valid(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.sent_xml_type()?;
    let validator = m.validator.clone();
    judge_arrivals(w, &m, "do not validate", |content_type, body| {
        judge_sent(&validator, content_type, body)
    })
    .await
}

#[then("every XML message the IUT sent is signed by the IUT's organisation")]
async fn sent_xml_signed(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.sent_xml_type()?;
    if m.signature.is_none() {
        return Err(ProvstenWorld::not_applicable(format!(
            "the IUT config declares no signature for {:?} ([[message]] signature)",
            m.name
        )));
    }
    let sig = SentSignature {
        trust: Trust::new(&w.ctx()?.pki)?,
        org: w.sender_org()?,
    };
    w.record(json!({"signed_as": sig.org}));
    judge_arrivals(
        w,
        &m,
        "are not signed as the IUT's organisation",
        |_, body| judge_signature(&sig, body),
    )
    .await
}

/// Waits for the messages the IUT was asked to send and judges each body that arrived;
/// fails with every finding, or when nothing arrived.
async fn judge_arrivals(
    w: &mut ProvstenWorld,
    m: &XmlMessageType,
    wrong: &str,
    judge: impl Fn(Option<&str>, &[u8]) -> Vec<Violation>,
) -> anyhow::Result<()> {
    let asked: Vec<String> = w.resend.sent.iter().map(|s| s.id.clone()).collect();
    if asked.is_empty() {
        // The feature's mistake, not the IUT's.
        anyhow::bail!("the IUT was not asked to send (hint: add `When the IUT sends 3 XML messages to the simulated receiver`)");
    }
    // Bodies, not acknowledgements: the receiver answers 200, so each message arrives
    // once; a sender that makes its own ids is judged on what it sent all the same.
    let deadline = w.first_deadline()? + PROCESSING_SLACK;
    let waited_from = Instant::now();
    let want = asked.len();
    let (_, attempts) = w
        .receiver()?
        .wait_until(deadline, |a| {
            a.iter().filter(|x| x.handshake_error.is_none()).count() >= want
        })
        .await;
    let arrived: Vec<_> = attempts
        .iter()
        .filter(|a| a.handshake_error.is_none())
        .collect();
    if arrived.is_empty() {
        fail!(
            "no {} message reached the simulated receiver within {:.1} s of the trigger (asked for {want}): silence is not compliance",
            m.name,
            (deadline - waited_from).as_secs_f64()
        );
    }
    let mut evidence = Vec::new();
    let mut bad = Vec::new();
    for a in &arrived {
        let id = m
            .validator
            .message_id(&a.body)
            .or_else(|| a.header_id.clone());
        let content_type = a
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        let found = judge(content_type, &a.body);
        let shown = id.as_deref().unwrap_or("without an id");
        for v in &found {
            let at = if v.instance_path.is_empty() {
                "(body)"
            } else {
                &v.instance_path
            };
            bad.push(format!(
                "message {shown} (attempt {}): {at} [{}] {}",
                a.n, v.schema_path, v.message
            ));
        }
        let violations: Vec<_> = found
            .iter()
            .map(|v| json!({"xpath": v.instance_path, "rule": v.schema_path, "message": v.message}))
            .collect();
        evidence.push(
            json!({"id": id, "attempt": a.n, "content_type": content_type,
                             "body_bytes": a.body.len(), "passed": found.is_empty(),
                             "violations": violations}),
        );
    }
    let missing: Vec<&String> = asked
        .iter()
        .filter(|id| {
            !arrived.iter().any(|a| {
                a.header_id.as_ref() == Some(*id)
                    || m.validator.message_id(&a.body).as_ref() == Some(*id)
            })
        })
        .collect();
    w.record(
        json!({"sent_xml": {"type": m.name, "asked": asked, "judged": evidence,
                                 "not_seen_by_id": missing}}),
    );
    if !bad.is_empty() {
        fail!(
            "the IUT sent {} messages that {wrong}: {}",
            m.name,
            bad.join(" | ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> (XmlValidator, String) {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let b = crate::schema::xml::get("sdk/meddelande").expect("known");
        let text = std::str::from_utf8(b.examples[0].bytes).expect("UTF-8");
        (v, text.to_owned())
    }

    fn sent_signature(org: &str) -> SentSignature {
        let pki = crate::schema::xml_signature::tests::pki();
        SentSignature {
            trust: Trust::new(pki).expect("trust"),
            org: Some(org.into()),
        }
    }

    fn signed_as(name: &str) -> String {
        let pki = crate::schema::xml_signature::tests::pki();
        let s = xml_signature::Signer::from_pki(pki, name).expect("signer");
        let (_, ok) = example();
        let named =
            xml_signature::set_from_party(&ok, s.org.as_deref().expect("org")).expect("FromParty");
        s.sign(&named).expect("signs")
    }

    #[test]
    fn a_message_signed_as_the_iut_passes_and_an_unsigned_one_is_missing_its_signature() {
        let sig = sent_signature("5560000001");
        let ok = signed_as("client-5560000001");
        assert!(judge_signature(&sig, ok.as_bytes()).is_empty());
        let unsigned = xml_signature::strip_signatures(&ok).expect("strips");
        let found = judge_signature(&sig, unsigned.as_bytes());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].schema_path, "xmldsig:missing");
        let altered = ok.replacen(
            "urn:fdc:digg.se:edelivery:xhe:1",
            "urn:fdc:digg.se:edelivery:xhe:2",
            1,
        );
        let found = judge_signature(&sig, altered.as_bytes());
        assert_eq!(found[0].schema_path, "xmldsig:digest", "{found:?}");
    }

    #[test]
    fn a_message_signed_and_sent_as_another_organisation_is_not_the_iuts() {
        // Signature and FromParty agree, so only the IUT's own organisation catches it.
        let other = signed_as("client-5560000002");
        let found = judge_signature(&sent_signature("5560000001"), other.as_bytes());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].schema_path, "xmldsig:organisation");
        assert!(found[0].message.contains("5560000002"), "{found:?}");
        assert!(judge_signature(&sent_signature("5560000002"), other.as_bytes()).is_empty());
    }

    #[test]
    fn a_valid_sdk_message_sent_as_xml_has_nothing_wrong() {
        let (v, ok) = example();
        assert!(judge_sent(&v, Some("application/xml"), ok.as_bytes()).is_empty());
        assert!(judge_sent(&v, Some("text/xml; charset=utf-8"), ok.as_bytes()).is_empty());
    }

    #[test]
    fn a_broken_business_rule_is_reported_with_its_xpath_and_rule_id() {
        let (v, ok) = example();
        let bad = ok.replacen("urn:fdc:digg.se:edelivery:xhe:1", "urn:other", 1);
        let found = judge_sent(&v, Some("application/xml"), bad.as_bytes());
        assert!(
            found
                .iter()
                .any(|x| x.schema_path == "schematron:R3-XHE" && x.instance_path.starts_with('/')),
            "{found:?}"
        );
    }

    #[test]
    fn a_missing_required_element_is_an_xsd_violation() {
        let (v, ok) = example();
        let start = ok.find("<ns6:messageId>").expect("messageId");
        let end = ok.find("</ns6:messageId>").expect("end") + "</ns6:messageId>".len();
        let bad = format!("{}{}", &ok[..start], &ok[end..]);
        let found = judge_sent(&v, Some("application/xml"), bad.as_bytes());
        assert!(
            found.iter().any(|x| x.schema_path.starts_with("xsd:")),
            "{found:?}"
        );
    }

    #[test]
    fn xml_labelled_as_json_or_unlabelled_is_a_violation() {
        let (v, ok) = example();
        for ct in [Some("application/json"), None] {
            let found = judge_sent(&v, ct, ok.as_bytes());
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].schema_path, "http:content-type");
        }
    }
}
