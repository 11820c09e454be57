//! Steps for protocol versions and cipher suites (EB-TLS-1): raw ClientHellos for what
//! rustls cannot offer, rustls for what it can.

use cucumber::{then, when};
use serde_json::json;

use super::ProvstenWorld;
use crate::network::tls_probe::{probe_stream, ProbeOutcome, ProbeSpec, ProbeVersion};

fn sni(name: &str) -> Option<String> {
    Some(name.to_string()).filter(|n| n.parse::<std::net::IpAddr>().is_err())
}

async fn run_probe(w: &mut ProvstenWorld, spec: ProbeSpec) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let outcome = match crate::peers::client::connect_tcp(ctx.target.addr, None).await {
        Ok(stream) => probe_stream(stream, &spec, ctx.request_timeout).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        Err(e) => anyhow::bail!("connecting to {}: {e}", ctx.target.addr),
    };
    // A refusal is an alert, a close or a reset; a silent or garbled answer proves nothing.
    let refused = matches!(
        outcome,
        ProbeOutcome::Alert { .. }
            | ProbeOutcome::Closed
            | ProbeOutcome::Reset
            | ProbeOutcome::Refused
    );
    w.probe_accepted = Some(outcome.accepted());
    w.probe_refused = Some(refused);
    let v = json!({"probe": spec, "answer": outcome});
    w.record(v.clone());
    w.probe = Some(v);
    Ok(())
}

#[when(regex = r"^a client offers only TLS (1\.0|1\.1) in a raw ClientHello$")]
async fn offer_legacy(w: &mut ProvstenWorld, version: String) -> anyhow::Result<()> {
    let v = if version == "1.0" {
        ProbeVersion::Tls10
    } else {
        ProbeVersion::Tls11
    };
    let name = sni(&w.ctx()?.target.server_name);
    run_probe(w, ProbeSpec::legacy(v, name)).await
}

#[when("a client offers TLS 1.2 with only weak cipher suites")]
async fn offer_weak(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let name = sni(&w.ctx()?.target.server_name);
    run_probe(w, ProbeSpec::weak_suites(name)).await
}

#[then("the IUT refuses the handshake")]
async fn refuses_handshake(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let probe = w
        .probe
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no probe was sent before this step (hint: add `When a client offers only TLS 1.1 in a raw ClientHello`)"))?;
    if w.probe_accepted == Some(true) {
        fail!(
            "the IUT accepted: it answered with a ServerHello: {}",
            probe["answer"]
        );
    }
    if w.probe_refused != Some(true) {
        fail!(
            "no clear refusal (alert, close or reset) was observed: {}",
            probe["answer"]
        );
    }
    Ok(())
}

#[then(regex = r"^the handshake uses TLS (1\.2|1\.3)$")]
async fn handshake_uses(w: &mut ProvstenWorld, version: String) -> anyhow::Result<()> {
    let ex = w.exchanges()?.remove(0);
    let want = if version == "1.2" {
        "TLSv1_2"
    } else {
        "TLSv1_3"
    };
    match ex.tls_version.as_deref() {
        Some(v) if v == want => {
            w.record(json!({"tls_version": v}));
            Ok(())
        }
        other => fail!(
            "expected a {want} handshake; observed {:?}: {}",
            other,
            ex.describe()
        ),
    }
}
