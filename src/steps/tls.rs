//! Steps for protocol versions and cipher suites (EB-TLS-1): raw ClientHellos for what
//! rustls cannot offer, rustls for what it can.

use anyhow::Context;
use cucumber::{then, when};
use serde_json::json;

use super::ProvstenWorld;
use crate::network::tls_probe::{
    examine_weak_suites, probe_stream, ProbeOutcome, ProbeSpec, ProbeVersion, WeakSuiteClass,
};

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
    // A refusal is an alert, a close or a reset; a silent or garbled answer, or a port
    // nobody listens on, proves nothing.
    let refused = is_refusal(&outcome);
    w.probe_accepted = Some(outcome.accepted());
    w.probe_refused = Some(refused);
    let v = json!({
        "probe": spec,
        "offered": spec.offered_names(),
        "answer": outcome,
        "summary": outcome.to_string(),
    });
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

/// Offers the weak suites once per server key type (RSA, then ECDSA), each with only
/// that key type's signature algorithms, so a server with two certificates is examined
/// with both, and one with a single certificate is reported as such rather than passing
/// for suites it could never have negotiated.
#[when("a client offers TLS 1.2 with only weak cipher suites")]
async fn offer_weak(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let addr = ctx.target.addr;
    let classes = examine_weak_suites(
        || crate::peers::client::connect_tcp(addr, None),
        sni(&ctx.target.server_name),
        ctx.request_timeout,
    )
    .await
    .with_context(|| format!("connecting to {addr}"))?;
    let accepted: Vec<String> = classes
        .iter()
        .flat_map(|c| {
            c.accepted
                .iter()
                .map(move |a| format!("{} offer: {a}", c.key.as_str()))
        })
        .collect();
    // A refusal is an alert, a close or a reset; a silent or garbled answer, or a port
    // nobody listens on, proves nothing.
    let unclear: Vec<String> = classes
        .iter()
        .filter(|c| c.accepted.is_empty() && !is_refusal(&c.answer))
        .map(|c| format!("{} offer: {}", c.key.as_str(), c.answer))
        .collect();
    let not_examinable: Vec<String> = classes.iter().filter_map(|c| c.not_examinable()).collect();
    let per_class = |c: &WeakSuiteClass| {
        if c.accepted.is_empty() {
            format!("{} offer: {}", c.key.as_str(), c.answer)
        } else {
            let chosen: Vec<&str> = c.accepted.iter().map(|a| a.suite.as_str()).collect();
            format!("{} offer: chose {}", c.key.as_str(), chosen.join(", "))
        }
    };
    let answers: Vec<String> = classes.iter().map(per_class).collect();
    let mut summary = if !accepted.is_empty() {
        format!("weak suites chosen ({})", answers.join("; "))
    } else if !unclear.is_empty() {
        unclear.join("; ")
    } else {
        format!("every weak offer refused ({})", answers.join("; "))
    };
    // A pass that could not look at a class of suites says so in its own words.
    for why in &not_examinable {
        summary.push_str("; not examinable: ");
        summary.push_str(why);
    }
    w.probe_accepted = Some(!accepted.is_empty());
    w.probe_refused = Some(accepted.is_empty() && unclear.is_empty());
    let v = json!({
        "weak_suites": classes,
        "accepted": accepted,
        "not_examinable": not_examinable,
        "summary": summary,
    });
    w.record(v.clone());
    w.probe = Some(v);
    Ok(())
}

/// An alert, a close or a reset after the ClientHello. A refused TCP connect is not one:
/// the server had not seen the offered versions or suites yet (nothing listens there).
pub(super) fn is_refusal(outcome: &ProbeOutcome) -> bool {
    matches!(
        outcome,
        ProbeOutcome::Alert { .. } | ProbeOutcome::Closed | ProbeOutcome::Reset
    )
}

#[then("the IUT refuses the handshake")]
async fn refuses_handshake(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let probe = w
        .probe
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no probe was sent before this step (hint: add `When a client offers only TLS 1.1 in a raw ClientHello`)"))?;
    let summary = probe["summary"].as_str().unwrap_or_default();
    if w.probe_accepted == Some(true) {
        fail!("the IUT accepted: it answered with a ServerHello: {summary}");
    }
    if w.probe_refused != Some(true) {
        fail!("no clear refusal (alert, close or reset) was observed: {summary}");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS version or suite is refused after the ClientHello, never at TCP connect.
    #[test]
    fn a_refused_tcp_connect_is_no_handshake_refusal() {
        assert!(!is_refusal(&ProbeOutcome::Refused));
        assert!(is_refusal(&ProbeOutcome::Reset));
        assert!(is_refusal(&ProbeOutcome::Closed));
    }
}
