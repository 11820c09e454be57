//! Steps for XML attacks (SDK-SPEC): send the valid example with one hostile construct
//! (`schema::xml_attack`) pointing at a canary the harness runs, and check the IUT refuses
//! it in time with a declared status, reveals none of it, accepts none of it, fetches
//! nothing from the canary, and still accepts a valid message. The leak, accepted-list and
//! valid-after checks are the schema and XML steps' (`schema.rs`, `xml.rs`).

use std::time::{Duration, Instant};

use cucumber::{given, then, when};
use serde_json::json;

use super::ProvstenWorld;
use crate::peers::canary::Canary;
use crate::schema::xml_attack::{self, XmlAttack};
use crate::schema::Limits;

/// A scenario's canary and what the attack sent.
#[derive(Debug, Default)]
pub(crate) struct AttackState {
    pub canary: Option<Canary>,
    pub attack: Option<XmlAttack>,
    /// Text that shows the attack was processed if an answer carries it.
    pub secrets: Vec<String>,
    /// Whether a compliant receiver must refuse the attack (see `xml_attack::Attack`).
    pub must_refuse: bool,
    pub elapsed: Option<Duration>,
}

#[given("a canary server the IUT must not contact")]
async fn canary(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = Canary::start()?;
    w.record(
        json!({"canary": c.bait().base_url, "canary_file": c.bait().file.display().to_string()}),
    );
    w.xml_attack.canary = Some(c);
    Ok(())
}

#[when(expr = "the client sends an XML message with the attack {string}")]
async fn send_attack(w: &mut ProvstenWorld, name: String) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let attack: XmlAttack = name.parse().map_err(|e: String| anyhow::anyhow!("{e}"))?;
    let bait = w
        .xml_attack
        .canary
        .as_ref()
        .map(|c| c.bait().clone())
        .ok_or_else(|| {
            anyhow::anyhow!("no canary (hint: `Given a canary server the IUT must not contact`)")
        })?;
    let (example, id) = super::xml::planted_example(w, &m)?;
    // Built on the signed example and signed again after: the new signature is as long as
    // the one it replaces, so a size attack stays one byte past the limit.
    let (example, _) = super::xml::sign_outgoing(w, &m, example)?;
    let mut built =
        xml_attack::build(attack, &example, &bait, &Limits::default()).map_err(|why| {
            ProvstenWorld::not_applicable(format!("{attack} does not apply to {}: {why}", m.name))
        })?;
    // Signed when declared, so a receiver that checks signatures first still meets the
    // attack; one that signing cannot take (too large or deep for it) goes as it is.
    let signed = match super::xml::sign_outgoing(w, &m, built.body.clone()) {
        Ok((body, signed)) => {
            built.body = body;
            signed
        }
        Err(e) => json!({"signed": false, "why": format!("{e:#}")}),
    };
    w.record(json!({"signature": signed}));
    let started = Instant::now();
    let ex = w
        .post(
            &m.endpoint,
            Some("application/xml".into()),
            built.body.clone(),
        )
        .await?;
    let elapsed = started.elapsed();
    let shown: String = String::from_utf8_lossy(&built.body)
        .chars()
        .take(600)
        .collect();
    w.record(
        json!({"xml_attack": attack, "what": attack.what(), "body_bytes": built.body.len(),
                    "body": shown, "planted_id": id, "elapsed_ms": elapsed.as_millis()}),
    );
    w.record(json!({"exchange": ex}));
    // On record whatever step fails first: what the canary saw by the time of the answer.
    let hits = w
        .xml_attack
        .canary
        .as_ref()
        .map(|c| c.hits())
        .unwrap_or_default();
    w.record(json!({"canary_hits_by_answer": hits}));
    w.planted_ids = id.into_iter().collect();
    w.exchanges = vec![ex];
    w.xml_attack.attack = Some(attack);
    w.xml_attack.secrets = built.secrets;
    w.xml_attack.must_refuse = built.must_refuse;
    w.xml_attack.elapsed = Some(elapsed);
    Ok(())
}

/// "refused …": one of the declared refusal statuses; "answered …" (an attack that leaves
/// the message valid): any answer but a 5xx.
#[then(
    regex = r"^the XML attack is (refused in time with a declared status|answered in time without a server error)$"
)]
async fn attack_refused(w: &mut ProvstenWorld, how: String) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let deadline = w.ctx()?.request_timeout;
    let elapsed = w.xml_attack.elapsed.unwrap_or_default();
    let must_refuse = how.starts_with("refused");
    if w.xml_attack.must_refuse && !must_refuse {
        anyhow::bail!(
            "the feature lets the attack {:?} be accepted, but it must be refused (use `is refused in time …`)",
            w.xml_attack.attack.map(|a| a.name())
        );
    }
    for ex in w.exchanges()? {
        match ex.status() {
            // A hint that leaves the message valid may be accepted, but not crash it.
            Some(status) if !must_refuse && status < 500 => {
                w.record(json!({"status": status, "elapsed_ms": elapsed.as_millis()}));
            }
            Some(status) if must_refuse && m.refused_statuses.contains(&status) => {
                w.record(
                    json!({"refused": true, "status": status, "elapsed_ms": elapsed.as_millis()}),
                );
            }
            Some(status) => {
                w.record(json!({"refused": false, "summary": ex.describe()}));
                fail!(
                    "the IUT answered HTTP {status} to an XML attack; it must be refused with one of {:?} (message.refused_statuses){}",
                    m.refused_statuses,
                    if must_refuse { "" } else { ", or accepted without fetching" }
                );
            }
            None => {
                w.record(json!({"answered": false, "elapsed_ms": elapsed.as_millis(), "deadline_ms": deadline.as_millis()}));
                fail!(
                    "no HTTP answer to an XML attack within {} s (api.request_timeout): {}",
                    deadline.as_secs_f64(),
                    ex.describe()
                );
            }
        }
    }
    Ok(())
}

#[then("the answer reveals nothing of the attack")]
async fn reveals_nothing(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let secrets = w.xml_attack.secrets.clone();
    for ex in w.exchanges()? {
        if let Some(s) = secrets.iter().find(|s| ex.body().contains(s.as_str())) {
            let shown: String = s.chars().take(60).collect();
            w.record(
                json!({"revealed": shown, "body": ex.body().chars().take(600).collect::<String>()}),
            );
            fail!(
                "the answer carries what only processing the attack yields ({shown:?}…): the entity was substituted or the canary read"
            );
        }
    }
    w.record(json!({"revealed": null, "secrets_checked": secrets.len()}));
    Ok(())
}

#[then("the IUT fetched nothing from the canary")]
async fn canary_untouched(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = w
        .xml_attack
        .canary
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no canary was started in this scenario"))?;
    let hits = c.hits();
    let base = c.bait().base_url.clone();
    if hits.is_empty() {
        w.record(json!({"canary_hits": 0, "canary": base}));
        return Ok(());
    }
    let first = hits.first().map(|h| h.request.clone()).unwrap_or_default();
    w.record(json!({"canary": base, "canary_hits": hits}));
    fail!(
        "the IUT contacted the canary {} time(s) while handling the attack (first: {first:?}); a receiver must not fetch what a message names",
        hits.len()
    );
}
