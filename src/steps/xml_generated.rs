//! Steps for generated invalid XML (SDK-SPEC): N cases composed of random edits of the
//! valid example, each refused by the harness's validator before it is sent; the first the
//! IUT accepts is shrunk to a minimal counter-example, which the report shows with the rule
//! (and XPath) it breaks and the shrink steps.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use cucumber::{then, when};
use serde_json::{json, Value};

use super::xml::planted_example;
use super::ProvstenWorld;
use crate::peers::{self, ClientSpec};
use crate::schema::xml_generate::{self, XmlGenerator};
use crate::schema::xml_signature::Signer;

/// Recorded in the evidence: the same seed gives the same cases.
const SEED: u64 = 0x5eed;
/// The shrunk document is small; a cut-short shrink may not be, so the report caps it.
const SHOWN_CHARS: usize = 4000;

/// `body` signed by `signer` when there is one and the body can be signed as it is (UTF-8
/// XML without a DOCTYPE); else as it is.
fn signed(signer: Option<&Signer>, body: &[u8]) -> Vec<u8> {
    signer
        .and_then(|s| {
            let text = std::str::from_utf8(body)
                .ok()
                .filter(|t| roxmltree::Document::parse(t).is_ok())?;
            s.sign(text).ok()
        })
        .map_or_else(|| body.to_vec(), String::into_bytes)
}

#[when(regex = r"^the client sends (\d+) generated invalid XML messages$")]
async fn send_generated(w: &mut ProvstenWorld, n: u32) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let ctx = w.ctx()?;
    let (example, _) = planted_example(w, &m)?;
    // Each probe is signed as the harness signs what it sends (when the type declares a
    // signature), so a probe is refused for its edits, not for a missing signature.
    let signer = w.xml_signer(&m)?;
    // Nor are the edits made inside the example's signature, which signing replaces.
    let example = match (&signer, std::str::from_utf8(&example)) {
        (Some(_), Ok(text)) => crate::schema::xml_signature::strip_signatures(text)?.into_bytes(),
        _ => example,
    };
    let identity = w.sender_identity()?;
    let handle = tokio::runtime::Handle::current();
    let (target, timeout) = (ctx.target.clone(), ctx.request_timeout);
    let requests = Arc::new(AtomicU32::new(0));
    let counter = requests.clone();
    // The generator and shrinker are synchronous; each probe is a real request (with the
    // request timeout as its deadline), and the shrink has its own.
    let run = tokio::task::spawn_blocking(move || {
        let g = XmlGenerator::new(&m.validator, &example)
            .map_err(|e| anyhow::anyhow!("{}: cannot generate invalid XML: {e}", m.name))?;
        anyhow::Ok(xml_generate::find_accepted_invalid(&g, n, SEED, |body| {
            counter.fetch_add(1, Ordering::Relaxed);
            let mut spec = ClientSpec::new(Some(identity.clone()), timeout);
            spec.body = Some((
                Some("application/xml".into()),
                signed(signer.as_ref(), body),
            ));
            // Not refused with a declared status counts as accepted; no answer does not.
            match handle.block_on(peers::request(&target, &spec, "POST", &m.endpoint)) {
                Ok(ex) => ex
                    .status()
                    .is_some_and(|s| !m.refused_statuses.contains(&s)),
                Err(_) => false,
            }
        }))
    })
    .await
    .map_err(|e| anyhow::anyhow!("the generated XML run failed: {e}"))??;
    w.record(
        json!({"generated": n, "sent": run.sent, "requests": requests.load(Ordering::Relaxed),
                    "seed": format!("{:#x}", run.seed)}),
    );
    w.counter_example = match run.counter_example {
        Some(mut c) => {
            if c.document.chars().count() > SHOWN_CHARS {
                c.document = c.document.chars().take(SHOWN_CHARS).collect::<String>() + "…";
            }
            Some(serde_json::to_value(c)?)
        }
        None => None,
    };
    Ok(())
}

#[then("every generated invalid XML message is refused")]
async fn all_refused(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let Some(c) = w.counter_example.clone() else {
        return Ok(());
    };
    w.record(json!({"counter_example": c}));
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let rule = text(&c["rule"]);
    let empty = Vec::new();
    let hit = c["violations"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .find(|v| v["schema_path"].as_str() == Some(rule.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    fail!(
        "the IUT accepted an invalid XML message (seed {:#x}, case {}); minimal counter-example \
         after {} shrink steps ({} bytes, the example has {}), {}: refused by {} at {}: {}\n\
         {:.600} (the whole document is in the evidence)",
        c["seed"].as_u64().unwrap_or(0),
        c["case"],
        c["shrink_steps"],
        c["document_bytes"],
        c["example_bytes"],
        c["mutations"]
            .as_array()
            .map(|m| m.iter().map(text).collect::<Vec<_>>().join("; "))
            .unwrap_or_default(),
        rule,
        text(&hit["instance_path"]),
        text(&hit["message"]),
        text(&c["document"])
    );
}
