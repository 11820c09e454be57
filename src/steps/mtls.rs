//! Steps for mutual TLS: which certificate a client presents, what it asks for, and how the
//! IUT must answer (EB-AUTH-1, EB-MTLS-1/2, FMK-2.1-*, SDK-4.1, SDK-5.4).

use cucumber::{given, then, when};
use serde_json::json;

use super::{ProvstenWorld, Via};
use crate::network::proxy_protocol;
use crate::peers::{self, ClientSpec, Exchange, Outcome, Refusal, ServerCheck, TlsVersions};

#[given(expr = "a client presenting the certificate {string}")]
async fn client_presenting(w: &mut ProvstenWorld, name: String) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let entry = ctx.pki.cert(&name)?;
    w.record(json!({
        "client_certificate": name,
        "description": entry.description,
        "subject": entry.subject,
        "issuer": entry.issuer,
        "key": entry.key_algorithm,
        "not_before": entry.not_before,
        "not_after": entry.not_after,
        "revoked": entry.revoked,
        "revocation": entry.revocation,
        "sha256": entry.sha256,
    }));
    w.client_cert = Some(name);
    Ok(())
}

#[given("a client presenting no certificate")]
async fn client_without_cert(w: &mut ProvstenWorld) {
    w.client_cert = None;
}

#[given(regex = r"^the client only speaks TLS (1\.2|1\.3)$")]
async fn client_speaks(w: &mut ProvstenWorld, version: String) {
    w.versions = if version == "1.2" {
        TlsVersions::Tls12Only
    } else {
        TlsVersions::Tls13Only
    };
}

/// Sends `GET path` once per source address (or once from the default source).
pub(super) async fn send(
    w: &mut ProvstenWorld,
    path: String,
    server_check: ServerCheck,
) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let identity = match &w.client_cert {
        Some(name) => Some(peers::Identity::from_pki(&ctx.pki, name)?),
        None => None,
    };
    let target = match w.via {
        Via::Api => match w.api_link {
            Some(addr) => peers::Target {
                addr,
                server_name: ctx.target.server_name.clone(),
            },
            None => ctx.target.clone(),
        },
        Via::Ipv6 => w
            .ip()?
            .ipv6_target
            .ok_or_else(|| ProvstenWorld::not_applicable("no ip_filter.ipv6_base_url"))?,
        Via::DualStack => w
            .ip()?
            .dual_stack_target
            .ok_or_else(|| ProvstenWorld::not_applicable("no ip_filter.dual_stack_base_url"))?,
    };
    let sources: Vec<Option<std::net::IpAddr>> = if w.sources.is_empty() {
        vec![None]
    } else {
        w.sources.iter().copied().map(Some).collect()
    };
    w.exchanges.clear();
    for source in sources {
        let mut spec = ClientSpec::new(identity.clone(), w.deadline.unwrap_or(ctx.request_timeout));
        spec.versions = w.versions;
        spec.server_check = server_check.clone();
        spec.source = source;
        spec.headers = w.headers.clone();
        spec.preamble = w.proxy_header.map(|(version, claimed)| {
            proxy_protocol::header(
                version,
                std::net::SocketAddr::new(claimed, 40000),
                target.addr,
            )
        });
        let ex = peers::request(&target, &spec, "GET", &path).await?;
        w.record(json!({ "exchange": ex }));
        w.exchanges.push(ex);
    }
    Ok(())
}

#[when(expr = "the client requests the data of organisation {string}")]
async fn request_org(w: &mut ProvstenWorld, org: String) -> anyhow::Result<()> {
    let path = w.ctx()?.protected_path.replace("{org}", &org);
    send(w, path, ServerCheck::AcceptAny).await
}

#[when("the client requests its own organisation's data")]
async fn request_own(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let org = own_org(w)?;
    let path = w.ctx()?.protected_path.replace("{org}", &org);
    send(w, path, ServerCheck::AcceptAny).await
}

#[when("the client requests the health endpoint")]
async fn request_health(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let path = w.ctx()?.health_path.clone();
    send(w, path, ServerCheck::AcceptAny).await
}

#[when("the client connects verifying the server certificate against the agreed CA")]
async fn request_verifying(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let roots = ctx.pki.trust_roots()?;
    let path = ctx.health_path.clone();
    send(w, path, ServerCheck::Verify(roots)).await
}

fn own_org(w: &ProvstenWorld) -> anyhow::Result<String> {
    let name = w.client_cert.as_ref().ok_or_else(|| {
        anyhow::anyhow!("the client presents no certificate, so it has no organisation")
    })?;
    w.ctx()?
        .pki
        .cert(name)?
        .org
        .clone()
        .ok_or_else(|| anyhow::anyhow!("certificate {name:?} carries no organisation number"))
}

#[then("the request is refused without protected data")]
async fn refused(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        check_refused(w, &ex)?;
    }
    Ok(())
}

pub(super) fn check_refused(w: &mut ProvstenWorld, ex: &Exchange) -> anyhow::Result<()> {
    let verdict = match &ex.outcome {
        // A refused TCP connect happens before the server sees a certificate, a TLS
        // version or a request: it can refuse only the source address. Anywhere else it
        // means nothing listens (the IUT is down), which proves no refusal.
        Outcome::Refused {
            refusal: Refusal::ConnectionRefused,
        } if ex.source_address.is_none() => {
            w.record(json!({"refused": false, "summary": ex.describe()}));
            fail!(
                "the TCP connection to {} was refused before any TLS: nothing listens there (the IUT is down or the address is wrong), so the IUT never judged this request",
                ex.target
            );
        }
        Outcome::Refused { refusal } if refusal.is_by_server() => {
            json!({"refused": true, "how": "transport", "refusal": refusal, "summary": ex.describe()})
        }
        Outcome::Response { status, .. } if (400..500).contains(status) => {
            json!({"refused": true, "how": "http-status", "status": status,
                   "note": format!("the TLS handshake completed ({}); the IUT refused at HTTP level, not with a TLS rejection",
                                   ex.tls_version.as_deref().unwrap_or("?")),
                   "summary": ex.describe()})
        }
        _ => {
            let why = match &ex.outcome {
                Outcome::Response { status, body } if (200..300).contains(status) => {
                    format!(
                        "the IUT granted access: HTTP {status} with {} bytes of data",
                        body.len()
                    )
                }
                Outcome::Response { status, .. } => {
                    format!("the IUT answered HTTP {status}, which is not a refusal")
                }
                Outcome::Refused { refusal } => {
                    format!("no refusal was observed: {}", refusal.describe())
                }
            };
            w.record(json!({"refused": false, "summary": ex.describe()}));
            let from = ex
                .source_address
                .as_deref()
                .map(|s| format!(" (from {s})"))
                .unwrap_or_default();
            fail!("expected a refusal without protected data{from}, but {why}");
        }
    };
    w.record(verdict);
    Ok(())
}

#[then("the request succeeds with the organisation's data")]
async fn succeeds(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        check_succeeds(w, &ex)?;
    }
    Ok(())
}

fn check_succeeds(w: &mut ProvstenWorld, ex: &Exchange) -> anyhow::Result<()> {
    let org = own_org(w)?;
    let granted = w.ctx()?.granted.clone();
    let status_ok = match ex.status() {
        Some(s) if granted.statuses.is_empty() => (200..300).contains(&s),
        Some(s) => granted.statuses.contains(&s),
        None => false,
    };
    let expected = if granted.statuses.is_empty() {
        "HTTP 2xx".to_string()
    } else {
        format!("HTTP {:?} (api.granted.statuses)", granted.statuses)
    };
    if !status_ok {
        w.record(json!({"granted": false, "expected": expected, "summary": ex.describe()}));
        fail!(
            "expected {expected} for organisation {org}; {}",
            ex.describe()
        );
    }
    if let Some(pattern) = &granted.body_contains {
        let want = pattern.replace("{org}", &org);
        if !ex.body().contains(&want) {
            w.record(json!({"granted": false, "body_lacks": want, "summary": ex.describe()}));
            fail!(
                "HTTP {} but the body does not contain {want:?} (api.granted.body_contains): {:.200}",
                ex.status().unwrap_or(0),
                ex.body()
            );
        }
    }
    w.record(json!({"granted": true, "organisation": org, "status": ex.status(), "body_checked": granted.body_contains, "source_address": ex.source_address}));
    Ok(())
}

/// The certificate a step presents must be in the IUT's PKI (a PKI generated by an older
/// provsten, or a catalogue of one's own, may lack one a shipped feature names).
pub(super) fn need_certificate(ctx: &super::RunContext, step: &str) -> Result<(), String> {
    let Some(name) = step
        .split_once("the certificate \"")
        .and_then(|(_, rest)| rest.split('"').next())
    else {
        return Ok(());
    };
    if ctx.pki.cert(name).is_ok() {
        return Ok(());
    }
    Err(format!(
        "the PKI in {} has no certificate {name:?} (hint: regenerate it with `provsten pki init` or `provsten init`, or add it to your catalogue)",
        ctx.pki.dir.display()
    ))
}

/// The organisation a step asks for must be one the IUT registered, or a refusal proves
/// nothing about isolation (an unknown organisation is refused by any server).
pub(super) fn need_registered_org(ctx: &super::RunContext, step: &str) -> Result<(), String> {
    let org = step
        .split('"')
        .nth(1)
        .ok_or_else(|| "the step names no organisation".to_string())?;
    if ctx.registered_orgs.iter().any(|o| o == org) {
        return Ok(());
    }
    Err(format!(
        "organisation {org} is not registered with the IUT (api.registered_orgs = {:?}): asking for its data tests no isolation",
        ctx.registered_orgs
    ))
}

#[then(expr = "the response contains no data of organisation {string}")]
async fn no_data_of(w: &mut ProvstenWorld, org: String) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        if ex.body().contains(&org) {
            w.record(json!({"leaked_organisation": org}));
            fail!("the response names organisation {org}: {:.300}", ex.body());
        }
    }
    Ok(())
}

#[then("the server certificate is accepted")]
async fn server_cert_accepted(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ex = w.exchanges()?.remove(0);
    if let Outcome::Refused { refusal } = &ex.outcome {
        if matches!(refusal, peers::Refusal::LocalTlsError { .. }) || ex.tls_version.is_none() {
            fail!(
                "the IUT's server certificate does not verify against the agreed CA for host name {:?}: {}",
                ex.server_name,
                refusal.describe()
            );
        }
    }
    w.record(
        json!({"server_certificate_verified": true, "server_name": ex.server_name,
                    "server_certificate_sha256": ex.server_certificate_sha256}),
    );
    Ok(())
}

/// Scenarios about OCSP apply to an IUT that declares it asks the responder: a certificate
/// revoked only there proves nothing about a CRL-only IUT.
pub(super) fn need_ocsp(ctx: &super::RunContext, _step: &str) -> Result<(), String> {
    use crate::iut::config::Revocation;
    if !ctx.revocation.contains(&Revocation::Ocsp) {
        return Err(
            "the IUT config does not declare OCSP checking (hint: [pki] revocation = [\"crl\", \"ocsp\"] if the IUT asks the OCSP responder)"
                .into(),
        );
    }
    if ctx.ocsp.is_none() {
        return Err(format!(
            "the PKI in {} names no OCSP responder on a loopback address provsten can serve (hint: make it with `provsten pki init`, which writes one into every certificate)",
            ctx.pki.dir.display()
        ));
    }
    Ok(())
}

#[given("the IUT checks revocation by OCSP")]
async fn checks_ocsp(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    need_ocsp(&ctx, "").map_err(ProvstenWorld::not_applicable)?;
    let responder = ctx
        .ocsp
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no OCSP responder"))?;
    w.ocsp_mark = responder.queries().len();
    w.record(json!({
        "revocation_checked_by": ctx.revocation,
        "ocsp_responder": ctx.pki.manifest.ocsp_base_url,
    }));
    Ok(())
}

/// A refusal is what the requirement asks; whether the IUT asked the responder for it is
/// evidence (an IUT may refuse for another reason, or use an answer it cached).
#[then(
    "the request is refused without protected data, and the evidence shows what the OCSP responder was asked"
)]
async fn refused_with_ocsp(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let name = w
        .client_cert
        .clone()
        .ok_or_else(|| anyhow::anyhow!("this step needs a client presenting a certificate"))?;
    let entry = ctx.pki.cert(&name)?;
    let revocation = entry.revocation.clone().ok_or_else(|| {
        anyhow::anyhow!("certificate {name:?} is not revoked: this step is for one the responder says is revoked")
    })?;
    let responder = ctx
        .ocsp
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no OCSP responder"))?;
    let serial = entry.serial.trim_start_matches("00").to_string();
    let asked: Vec<_> = responder
        .queries()
        .into_iter()
        .skip(w.ocsp_mark)
        .filter(|q| q.serial.as_deref() == Some(serial.as_str()))
        .collect();
    let note = if asked.is_empty() {
        format!("the IUT did not ask the OCSP responder about {name} since this scenario began (it may have refused for another reason, or used an answer it cached earlier)")
    } else {
        format!(
            "since this scenario began, the OCSP responder was asked about {name} {} time(s) (by this scenario or one running beside it) and answered {}",
            asked.len(),
            asked
                .iter()
                .map(|q| q.answer.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    w.record(json!({
        "ocsp_responder": ctx.pki.manifest.ocsp_base_url,
        "certificate": name,
        "serial": serial,
        "revoked_at": revocation.time,
        "on_crl": revocation.on_crl,
        "ocsp_asked": !asked.is_empty(),
        "ocsp_queries": asked,
        "note": note,
    }));
    for ex in w.exchanges()? {
        check_refused(w, &ex)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::refusal::Stage;

    fn refused(refusal: Refusal, source: Option<&str>) -> Exchange {
        Exchange {
            target: "127.0.0.1:9".into(),
            server_name: "iut.localhost".into(),
            client_certificate: Some("client-untrusted-root".into()),
            source_address: source.map(str::to_string),
            request: "GET /v1/health".into(),
            tls_version: None,
            cipher_suite: None,
            server_certificate_sha256: None,
            outcome: Outcome::Refused { refusal },
            response_headers: Vec::new(),
            elapsed_ms: 0,
        }
    }

    /// A port nobody listens on refuses every certificate: that is no refusal of this one.
    /// Only a refusal by source address can happen at connect.
    #[test]
    fn a_refused_tcp_connect_refuses_only_a_source_address() {
        let mut w = ProvstenWorld::new();
        let err = check_refused(&mut w, &refused(Refusal::ConnectionRefused, None))
            .expect_err("a closed port passed a certificate refusal");
        assert!(err.to_string().contains("nothing listens there"), "{err:#}");
        check_refused(
            &mut w,
            &refused(Refusal::ConnectionRefused, Some("127.0.0.2")),
        )
        .expect("a source-address refusal at connect");
        let alert = Refusal::TlsAlert {
            alert: "UnknownCA".into(),
            number: 48,
            stage: Stage::Handshake,
        };
        check_refused(&mut w, &refused(alert, None)).expect("a TLS alert is a refusal");
    }
}
