//! Steps for XML messages (SDK-SPEC): send each class of invalid XML, generated from a
//! valid example and shown invalid by the validator before it is sent, and check the IUT
//! refuses it with a declared status and still accepts a valid message. The refusal's
//! leaks and the accepted list are checked by the schema steps (`schema.rs`).

use cucumber::{given, then, when};
use serde_json::json;

use super::ProvstenWorld;
use crate::iut::XmlMessageType;
use crate::schema::xml_invalid::{self, XmlDefect};
use crate::schema::xml_signature::{self, Signer};
use crate::schema::MessageValidator;

/// The client identity of a run that names none (as the schema steps' `sender_identity`).
pub(crate) const DEFAULT_CLIENT: &str = "client-5560000001";

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
/// a wrongly accepted message can be found among the accepted; when the type declares a
/// signature, its XHE sender (FromParty) is the signer's organisation, set before any
/// mutation so a mutation of it stays.
pub(crate) fn planted_example(
    w: &ProvstenWorld,
    m: &XmlMessageType,
) -> anyhow::Result<(Vec<u8>, Option<String>)> {
    let example = m
        .examples
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no example", m.name))?;
    // Its own envelope id too: a receipt names the message by it.
    let example =
        crate::schema::receipt::plant_envelope_id(example).unwrap_or_else(|| example.clone());
    let (body, id) = match m.validator.plant_id(&example) {
        Some((body, id)) => (body, Some(id)),
        None => (example, None),
    };
    let body = match (w.xml_signer(m)?, std::str::from_utf8(&body)) {
        (Some(Signer { org: Some(org), .. }), Ok(text)) => {
            xml_signature::set_from_party(text, &org)?.into_bytes()
        }
        _ => body,
    };
    Ok((body, id))
}

/// What the IUT is given to send of type `m`: the example with a fresh id and, when the
/// type is signed, without a signature (the IUT signs as itself) and with the IUT's
/// organisation (`sender.client_cert`) as the XHE sender.
pub(crate) fn to_send(
    w: &ProvstenWorld,
    m: &XmlMessageType,
) -> anyhow::Result<(Vec<u8>, Option<String>)> {
    let (body, id) = planted_example(w, m)?;
    if m.signature.is_none() {
        return Ok((body, id));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|e| anyhow::anyhow!("{}: the example is not UTF-8: {e}", m.name))?;
    let mut unsigned = xml_signature::strip_signatures(text)?;
    if let Some(org) = w.sender_org()? {
        unsigned = xml_signature::set_from_party(&unsigned, &org)?;
    }
    Ok((unsigned.into_bytes(), id))
}

impl ProvstenWorld {
    /// The organisation number of the IUT's sending identity, if `sender.client_cert`
    /// names one.
    pub(crate) fn sender_org(&self) -> anyhow::Result<Option<String>> {
        match &self.sender_ctx()?.client_cert {
            Some(name) => Ok(self.ctx()?.pki.cert(name)?.org.clone()),
            None => Ok(None),
        }
    }
}

impl ProvstenWorld {
    /// Who signs messages of type `m`: its `signer`, else the client identity of the run;
    /// `None` when the type declares no signature.
    pub(crate) fn xml_signer(&self, m: &XmlMessageType) -> anyhow::Result<Option<Signer>> {
        let Some(decl) = &m.signature else {
            return Ok(None);
        };
        let name = decl
            .signer
            .as_deref()
            .or(self.client_cert.as_deref())
            .unwrap_or(DEFAULT_CLIENT);
        Signer::from_pki(&self.ctx()?.pki, name)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("message {:?}: signer: {e:#}", m.name))
    }
}

/// `body` as the harness sends a message of type `m`: signed (after any mutation, so the
/// only defect is the intended one) when the type declares a signature, else as it is. A
/// body that is not UTF-8 XML without a DOCTYPE is sent as it is: signing would mean
/// parsing its DTD. With what was done, as evidence.
pub(crate) fn sign_outgoing(
    w: &ProvstenWorld,
    m: &XmlMessageType,
    body: Vec<u8>,
) -> anyhow::Result<(Vec<u8>, serde_json::Value)> {
    let Some(signer) = w.xml_signer(m)? else {
        return Ok((
            body,
            json!({"signed": false, "why": "no signature declared"}),
        ));
    };
    let Some(text) = std::str::from_utf8(&body)
        .ok()
        .filter(|t| roxmltree::Document::parse(t).is_ok())
    else {
        return Ok((
            body,
            json!({"signed": false, "why": "not UTF-8 XML without a DOCTYPE: sent as it is"}),
        ));
    };
    match signer.sign(text) {
        Ok(signed) => Ok((
            signed.into_bytes(),
            json!({"signed": true, "signer": signer.name, "signer_subject": signer.subject}),
        )),
        // An invalid case the signer's parser refuses (an unbound prefix, say) goes as it is.
        Err(e) if m.validator.validate_bytes(&body).is_err() => Ok((
            body,
            json!({"signed": false, "why": format!("cannot be signed as it is: {e:#}")}),
        )),
        Err(e) => Err(e),
    }
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
    let (example, id) = planted_example(w, &m)?;
    // `generate` returns only cases the validator itself refuses: a class it cannot
    // make is not applicable to this message type, never sent as if invalid.
    let mut case = xml_invalid::generate(&m.validator, &example, class).map_err(|why| {
        ProvstenWorld::not_applicable(format!("{class} does not apply to {}: {why}", m.name))
    })?;
    let (body, signed) = sign_outgoing(w, &m, std::mem::take(&mut case.body))?;
    // Signed, it must still be the defect it was made to be.
    if m.validator.validate_bytes(&body).is_ok() {
        anyhow::bail!("{class}: the signed case validates: signing undid the mutation");
    }
    case.body = body;
    w.record(json!({"signature": signed}));
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
                    "the IUT answered HTTP {status}; this message (invalid, malicious or wrongly signed) must get one of {:?} (message.refused_statuses)",
                    m.refused_statuses
                );
            }
            None => fail!(
                "no HTTP answer to a message it must refuse: {}",
                ex.describe()
            ),
        }
    }
    Ok(())
}

#[then("a valid XML message is accepted right after")]
async fn xml_valid_after(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let (body, id) = planted_example(w, &m)?;
    let (body, signed) = sign_outgoing(w, &m, body)?;
    w.record(json!({"valid_after_signature": signed}));
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
