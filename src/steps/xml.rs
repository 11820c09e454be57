//! Steps for XML messages (SDK-SPEC): send each class of invalid XML, generated from a
//! valid example and shown invalid by the validator before it is sent, and check the IUT
//! refuses it with a declared status and still accepts a valid message. The refusal's
//! leaks and the accepted list are checked by the schema steps (`schema.rs`).

use cucumber::{given, then, when};
use serde_json::json;

use super::ProvstenWorld;
use crate::iut::XmlMessageType;
use crate::schema::xml_invalid::{self, XmlDefect};

/// What the last XML step sent, for the receipt check: the body and the verdict it calls for.
#[derive(Debug, Clone, Default)]
pub(crate) struct SentXml {
    pub body: Vec<u8>,
    /// `None`: a valid message (ACCEPTED); else the reason a REJECTED receipt must give.
    pub expect: Option<crate::schema::receipt::Reason>,
}

impl ProvstenWorld {
    pub(crate) fn xml_message_type(&self) -> anyhow::Result<XmlMessageType> {
        let name = self.message.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no message type chosen (hint: `Given the XML message type \"sdk-meddelande\"`)"
            )
        })?;
        self.ctx()?
            .xml_messages
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| {
                ProvstenWorld::not_applicable(format!(
                    "the IUT config declares no XML message type {name:?} ([[message]] with format = \"xml\")"
                ))
            })
    }
}

/// The message type's first example with a fresh id planted (when the type has an id), so
/// a wrongly accepted message can be found among the accepted.
pub(crate) fn planted_example(m: &XmlMessageType) -> anyhow::Result<(Vec<u8>, Option<String>)> {
    let example = m
        .examples
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no example", m.name))?;
    // Its own envelope id too: a receipt names the message by it.
    let example =
        crate::schema::receipt::plant_envelope_id(example).unwrap_or_else(|| example.clone());
    Ok(match m.validator.plant_id(&example) {
        Some((body, id)) => (body, Some(id)),
        None => (example, None),
    })
}

#[given(expr = "the XML message type {string}")]
async fn xml_message_type(w: &mut ProvstenWorld, name: String) -> anyhow::Result<()> {
    w.message = Some(name);
    let m = w.xml_message_type()?;
    // What this verdict covers: Schematron assertions that run, and those that do not.
    let (mut checked, not_checked) = m.validator.schematron_coverage();
    checked.dedup();
    let not_checked: Vec<_> = not_checked
        .iter()
        .map(|(id, why)| json!({"rule": id, "why": why}))
        .collect();
    w.record(json!({"schematron_checked": checked, "schematron_not_checked": not_checked}));
    Ok(())
}

#[when(expr = "the client sends an XML message with the defect {string}")]
async fn send_xml_defect(w: &mut ProvstenWorld, class: String) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let class: XmlDefect = class.parse().map_err(|e: String| anyhow::anyhow!("{e}"))?;
    let (example, id) = planted_example(&m)?;
    // `generate` returns only cases the validator itself refuses: a class it cannot
    // make is not applicable to this message type, never sent as if invalid.
    let case = xml_invalid::generate(&m.validator, &example, class).map_err(|why| {
        ProvstenWorld::not_applicable(format!("{class} does not apply to {}: {why}", m.name))
    })?;
    let ex = w
        .post(
            &m.endpoint,
            Some("application/xml".into()),
            case.body.clone(),
        )
        .await?;
    let shown: String = String::from_utf8_lossy(&case.body)
        .chars()
        .take(300)
        .collect();
    let found: Vec<_> = case
        .violations
        .iter()
        .take(3)
        .map(|v| json!({"xpath": v.instance_path, "rule": v.schema_path, "message": v.message}))
        .collect();
    w.record(
        json!({"xml_defect": class, "mutation": case.mutation, "validator_found": found,
                    "body_bytes": case.body.len(), "body": shown, "planted_id": id}),
    );
    w.record(json!({"exchange": ex}));
    w.planted_ids = id.into_iter().collect();
    w.exchanges = vec![ex];
    w.sent_xml = Some(SentXml {
        body: case.body,
        expect: Some(class.receipt_reason()),
    });
    Ok(())
}

#[then("the XML message is refused with a declared status")]
async fn xml_refused(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    for ex in w.exchanges()? {
        match ex.status() {
            Some(status) if m.refused_statuses.contains(&status) => {
                w.record(json!({"refused": true, "status": status, "summary": ex.describe()}));
            }
            Some(status) => {
                w.record(json!({"refused": false, "summary": ex.describe()}));
                fail!(
                    "the IUT answered HTTP {status}; an invalid XML message must get one of {:?} (message.refused_statuses)",
                    m.refused_statuses
                );
            }
            None => fail!(
                "no HTTP answer to an invalid XML message: {}",
                ex.describe()
            ),
        }
    }
    Ok(())
}

#[then("a valid XML message is accepted right after")]
async fn xml_valid_after(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let (body, id) = planted_example(&m)?;
    let ex = w
        .post(&m.endpoint, Some("application/xml".into()), body)
        .await?;
    if !ex.granted() {
        w.record(json!({"valid_after": false, "summary": ex.describe()}));
        fail!(
            "a valid XML message was not accepted after the invalid one: {}",
            ex.describe()
        );
    }
    if let (Some(id), Some(_)) = (&id, &w.ctx()?.accepted_url) {
        if !w.accepted_ids().await?.contains(id) {
            fail!(
                "the IUT answered {} to a valid XML message but does not list {id} as accepted",
                ex.status().unwrap_or(0)
            );
        }
    }
    w.record(json!({"valid_after": true, "id": id, "status": ex.status()}));
    Ok(())
}
