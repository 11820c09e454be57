//! Steps for SDK receipts (SDK-SPEC): the Meddelandekvittens the IUT answers each SDK
//! message with must be a valid receipt (XSD and the Schematron rules that run), answer the
//! message sent (its XHE `Header/ID`), go back to its sender, and say ACCEPTED for a valid
//! message or REJECTED with the reason code the specification prescribes for the defect.

use std::sync::OnceLock;
use std::time::Instant;

use cucumber::{then, when};
use serde_json::json;

use super::xml::SentXml;
use super::{ProvstenWorld, RunContext};
use crate::iut::{Receipts, XmlMessageType};
use crate::peers::receiver::Attempt;
use crate::schema::receipt::{self, Reason, Verdict};
use crate::schema::xml::XmlValidator;
use crate::schema::MessageValidator;

/// Receipt scenarios need an XML message type that declares how receipts come.
pub(super) fn need_receipts(ctx: &RunContext, _step: &str) -> Result<(), String> {
    if ctx.xml_messages.iter().any(|m| m.receipt.is_some()) {
        Ok(())
    } else {
        Err("no XML message type declares its receipts ([[message]] receipt = \"answer\")".into())
    }
}

fn receipt_validator() -> anyhow::Result<&'static XmlValidator> {
    static V: OnceLock<Result<XmlValidator, String>> = OnceLock::new();
    V.get_or_init(|| XmlValidator::builtin("sdk/meddelandekvittens").map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("the receipt schema: {e}"))
}

fn with_receipts(w: &ProvstenWorld) -> anyhow::Result<XmlMessageType> {
    let m = w.xml_message_type()?;
    if m.receipt.is_none() {
        return Err(ProvstenWorld::not_applicable(format!(
            "message type {:?} declares no receipts (hint: receipt = \"answer\" in its [[message]])",
            m.name
        )));
    }
    Ok(m)
}

#[when("the client sends a valid XML message")]
async fn send_valid(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let (body, id) = super::xml::planted_example(w, &m)?;
    let (body, signed) = super::xml::sign_outgoing(w, &m, body)?;
    let ex = w
        .post(&m.endpoint, Some("application/xml".into()), body.clone())
        .await?;
    w.record(json!({"sent": "a valid message", "id": id, "signature": signed, "exchange": ex}));
    w.exchanges = vec![ex];
    w.sent_xml = Some(SentXml { body, expect: None });
    Ok(())
}

#[then(
    regex = r"^the receipt is (ACCEPTED|REJECTED)( with the code the specification prescribes)?$"
)]
async fn receipt_is(
    w: &mut ProvstenWorld,
    verdict: String,
    _with_code: String,
) -> anyhow::Result<()> {
    let m = with_receipts(w)?;
    let sent = w
        .sent_xml
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no XML message sent before the receipt step"))?;
    let want = if verdict == "ACCEPTED" {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    };
    if (want == Verdict::Accepted) != sent.expect.is_none() {
        anyhow::bail!(
            "the scenario expects {verdict} for a message that is {} (feature error)",
            if sent.expect.is_none() {
                "valid"
            } else {
                "invalid"
            }
        );
    }
    let answered = receipt::envelope(&sent.body);
    let (body, status) = match &m.receipt {
        Some(Receipts::Sent { inbox, timeout }) => {
            let Some(id) = answered.id.clone() else {
                return Err(ProvstenWorld::not_applicable(
                    "a receipt sent back names its message by the XHE Header/ID, and this message has none readable",
                ));
            };
            let answers = |a: &Attempt| {
                receipt::parse(&a.body)
                    .ok()
                    .and_then(|r| r.document)
                    .is_some_and(|d| d == id)
            };
            let (found, attempts) = inbox
                .wait_until(Instant::now() + *timeout, |atts| atts.iter().any(answers))
                .await;
            let Some(a) = attempts.into_iter().find(|a| found && answers(a)) else {
                fail!(
                    "no receipt for the message {id:?} reached {} within {timeout:?} (receipt = \"sent\")",
                    inbox.url("/")
                );
            };
            w.record(
                json!({"receipt_sent_back": {"at_ms": a.at_ms, "target": a.target,
                            "client_org": a.client_org, "client_subject": a.client_subject}}),
            );
            (a.body, None)
        }
        _ => {
            let ex = w
                .exchanges()?
                .first()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no answer recorded"))?;
            let Some(status) = ex.status() else {
                fail!("no HTTP answer, so no receipt: {}", ex.describe());
            };
            (ex.body().as_bytes().to_vec(), Some(status))
        }
    };
    let r = receipt::parse(&body).map_err(|why| {
        failure!(
            "this is not a Meddelandekvittens: {why}; it begins {:?}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        )
    })?;
    w.record(
        json!({"receipt": r, "expected": {"verdict": want, "reason": sent.expect,
                    "document": answered.id, "receiver": answered.from}, "status": status}),
    );
    if let Err(violations) = receipt_validator()?.validate_bytes(&body) {
        let shown: Vec<_> = violations
            .iter()
            .take(3)
            .map(|v| format!("{} [{}]: {}", v.instance_path, v.schema_path, v.message))
            .collect();
        fail!(
            "the receipt is not valid against the receipt XSD and Schematron: {}",
            shown.join("; ")
        );
    }
    if r.verdict() != Some(want) {
        fail!(
            "the receipt says {:?}; a {} message gets {}",
            r.verdict,
            if want == Verdict::Accepted {
                "valid"
            } else {
                "refused"
            },
            want.code()
        );
    }
    if let Some(bad) = r.lines.iter().find(|l| l.reason().is_none()) {
        fail!(
            "reason code {:?} is not in the code list (SV, BV, SIG)",
            bad.code
        );
    }
    if let Some(expect) = sent.expect {
        let codes: Vec<&str> = r.lines.iter().map(|l| l.code.trim()).collect();
        if !r.lines.iter().any(|l| l.reason() == Some(expect)) {
            fail!("the receipt gives the reason codes {codes:?}; this defect calls for {expect}");
        }
        // A message the XSD accepts has no syntax error to report.
        if expect != Reason::Syntax && r.lines.iter().any(|l| l.reason() == Some(Reason::Syntax)) {
            fail!("the receipt gives {codes:?}: SV for a message the XSD accepts (it calls for {expect})");
        }
    }
    if let (Some(id), Some(doc)) = (&answered.id, &r.document) {
        if id != doc {
            fail!("the receipt answers the document {doc:?}; the message sent was {id:?} (XHE Header/ID)");
        }
    } else if answered.id.is_some() {
        fail!("the receipt names no document (DocumentResponse/DocumentReference/ID)");
    }
    if let (Some(from), Some(to)) = (&answered.from, &r.receiver) {
        if from != to {
            fail!("the receipt goes to {to:?}; the message came from {from:?} (XHE FromParty)");
        }
    }
    Ok(())
}
