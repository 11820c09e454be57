//! Steps for SDK-2.4-INNER: the inner endpoint behind the access point (declared in
//! `[inner]`) takes mutual TLS only, from the connecting system it knows.

use anyhow::Context;
use cucumber::{given, then, when};
use serde_json::json;

use super::{ProvstenWorld, RunContext};
use crate::iut::surface::InnerContext;
use crate::network::tls_probe::{probe_stream, ProbeOutcome, ProbeSpec, ProbeVersion};
use crate::peers::{self, ClientSpec, ServerCheck};

fn inner(ctx: &RunContext) -> Result<&InnerContext, String> {
    ctx.inner
        .as_ref()
        .ok_or_else(|| "the IUT config declares no [inner] endpoint".to_string())
}

/// What steps naming "the inner endpoint" need (`super::NEEDS`).
pub(super) fn need_inner(ctx: &RunContext, _step: &str) -> Result<(), String> {
    inner(ctx).map(|_| ())
}

fn inner_of(w: &ProvstenWorld) -> anyhow::Result<InnerContext> {
    let ctx = w.ctx()?;
    inner(&ctx).cloned().map_err(ProvstenWorld::not_applicable)
}

#[when("a client sends plain HTTP to the inner endpoint")]
async fn plain_to_inner(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let i = inner_of(w)?;
    super::firewall::send_plain(
        w,
        i.target.addr,
        &i.target.server_name,
        &i.path,
        "plain HTTP",
    )
    .await
}

#[when(
    regex = r"^a client offers only TLS (1\.0|1\.1) in a raw ClientHello to the inner endpoint$"
)]
async fn legacy_to_inner(w: &mut ProvstenWorld, version: String) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let i = inner_of(w)?;
    let v = if version == "1.0" {
        ProbeVersion::Tls10
    } else {
        ProbeVersion::Tls11
    };
    let name =
        Some(i.target.server_name.clone()).filter(|n| n.parse::<std::net::IpAddr>().is_err());
    let spec = ProbeSpec::legacy(v, name);
    let addr = i.target.addr;
    let outcome = match peers::client::connect_tcp(addr, None).await {
        Ok(stream) => probe_stream(stream, &spec, ctx.request_timeout).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        Err(e) => {
            return Err(e).with_context(|| format!("connecting to the inner endpoint {addr}"))
        }
    };
    let refused = super::tls::is_refusal(&outcome);
    w.probe_accepted = Some(outcome.accepted());
    w.probe_refused = Some(refused);
    let v = json!({
        "inner_endpoint": addr.to_string(),
        "probe": spec,
        "offered": spec.offered_names(),
        "answer": outcome,
        "summary": outcome.to_string(),
    });
    w.record(v.clone());
    w.probe = Some(v);
    Ok(())
}

#[given("a client presenting the inner endpoint's declared certificate")]
async fn declared_cert(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let i = inner_of(w)?;
    let ctx = w.ctx()?;
    let entry = ctx.pki.cert(&i.client_cert)?;
    w.record(json!({"client_certificate": i.client_cert, "description": entry.description, "subject": entry.subject, "issuer": entry.issuer}));
    w.client_cert = Some(i.client_cert);
    Ok(())
}

#[when("the client requests the inner endpoint")]
async fn request_inner(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let i = inner_of(w)?;
    let identity = match &w.client_cert {
        Some(name) => Some(peers::Identity::from_pki(&ctx.pki, name)?),
        None => None,
    };
    let mut spec = ClientSpec::new(identity, ctx.request_timeout);
    spec.versions = w.versions;
    spec.server_check = ServerCheck::AcceptAny;
    let ex = peers::request(&i.target, &spec, "GET", &i.path).await?;
    w.record(json!({ "exchange": ex }));
    w.exchanges = vec![ex];
    Ok(())
}

#[then("the inner endpoint lets the connecting system in")]
async fn lets_in(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ex = w.exchanges()?.remove(0);
    match ex.status() {
        Some(s) if (200..300).contains(&s) => {
            w.record(json!({"granted": true, "status": s, "tls_version": ex.tls_version, "client_certificate": ex.client_certificate}));
            Ok(())
        }
        _ => fail!(
            "the inner endpoint refused the declared connecting system ({}): {}",
            ex.client_certificate.as_deref().unwrap_or("no certificate"),
            ex.describe()
        ),
    }
}
