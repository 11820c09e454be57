//! Steps for source-address filtering (EB-IP-1, EB-IP-2): where a client connects from,
//! what it claims in forwarding and PROXY headers, and changes to the IUT's registered list.

use std::net::IpAddr;
use std::time::Instant;

use cucumber::{given, when};
use ipnet::IpNet;
use serde_json::json;

use super::mtls::send;
use super::{ProvstenWorld, RunContext, Via};
use crate::network::addr::{self, Edge};
use crate::network::proxy_protocol;
use crate::peers::{ServerCheck, TlsVersions};

fn require_loopback(ip: &crate::iut::IpFilterContext) -> anyhow::Result<()> {
    loopback_problem(ip).map_or(Ok(()), |why| Err(ProvstenWorld::not_applicable(why)))
}

fn loopback_problem(ip: &crate::iut::IpFilterContext) -> Option<String> {
    addr::registered_v4(&ip.registered).is_none().then(|| format!(
        "no registered range has an address this machine can connect from (ranges {:?}; loopback-only mode needs ranges inside 127.0.0.0/8)",
        ip.registered.iter().map(|r| r.to_string()).collect::<Vec<_>>()
    ))
}

// What the steps here need of the IUT config, for the runner's check before a scenario
// runs (`super::NEEDS`).

fn filter(ctx: &RunContext) -> Result<&crate::iut::IpFilterContext, String> {
    ctx.ip
        .as_ref()
        .ok_or_else(|| "the IUT config declares no [ip_filter]".to_string())
}

pub(super) fn need_loopback_ranges(ctx: &RunContext, _step: &str) -> Result<(), String> {
    loopback_problem(filter(ctx)?).map_or(Ok(()), Err)
}

pub(super) fn need_ipv6(ctx: &RunContext, _step: &str) -> Result<(), String> {
    let ip = filter(ctx)?;
    if ip.ipv6_target.is_none() {
        return Err("the IUT declares no IPv6 listener (ip_filter.ipv6_base_url)".into());
    }
    Ok(())
}

pub(super) fn need_dual_stack(ctx: &RunContext, _step: &str) -> Result<(), String> {
    if filter(ctx)?.dual_stack_target.is_none() {
        return Err(
            "the IUT declares no dual-stack listener (ip_filter.dual_stack_base_url)".into(),
        );
    }
    Ok(())
}

pub(super) fn need_list_change(ctx: &RunContext, _step: &str) -> Result<(), String> {
    let ip = filter(ctx)?;
    match &ip.allowlist {
        None => Err("the IUT config declares no ip_filter.allowlist_file and reload".into()),
        Some(c) if c.reload.is_none() => Err("the IUT config declares no ip_filter.reload".into()),
        Some(_) => need_loopback_ranges(ctx, _step),
    }
}

/// Addresses that are neither registered nor trusted proxies.
fn unregistered(ip: &crate::iut::IpFilterContext, skip: usize) -> anyhow::Result<IpAddr> {
    let mut avoid = ip.registered.clone();
    avoid.extend(ip.trusted_proxies.iter().cloned());
    addr::unregistered_v4(&avoid, skip)
        .ok_or_else(|| anyhow::anyhow!("no unregistered loopback address is left"))
}

#[given("the client connects from a registered address")]
async fn from_registered(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ip = w.ip()?;
    require_loopback(&ip)?;
    let a = addr::registered_v4(&ip.registered)
        .ok_or_else(|| anyhow::anyhow!("no registered address"))?;
    w.record(json!({"source_address": a, "registered": true}));
    w.sources = vec![a];
    Ok(())
}

/// "a second" gives a scenario that changes the IUT's list an address no other scenario uses.
#[given(regex = r"^the client connects from (an|a second) unregistered address$")]
async fn from_unregistered(w: &mut ProvstenWorld, which: String) -> anyhow::Result<()> {
    let ip = w.ip()?;
    require_loopback(&ip)?;
    let a = unregistered(&ip, usize::from(which == "a second"))?;
    w.record(json!({"source_address": a, "registered": false}));
    w.sources = vec![a];
    Ok(())
}

#[given(regex = r"^the client connects from the (first|last) address of each registered range$")]
async fn from_inside_edges(w: &mut ProvstenWorld, edge: String) -> anyhow::Result<()> {
    edges(
        w,
        if edge == "first" {
            Edge::First
        } else {
            Edge::Last
        },
    )
}

#[given(regex = r"^the client connects from the address just (below|above) each registered range$")]
async fn from_outside_edges(w: &mut ProvstenWorld, side: String) -> anyhow::Result<()> {
    edges(
        w,
        if side == "below" {
            Edge::JustBelow
        } else {
            Edge::JustAbove
        },
    )
}

fn edges(w: &mut ProvstenWorld, edge: Edge) -> anyhow::Result<()> {
    let ip = w.ip()?;
    require_loopback(&ip)?;
    let mut avoid = ip.registered.clone();
    if !edge.inside() {
        avoid.extend(ip.trusted_proxies.iter().cloned());
    }
    let picked: Vec<(String, IpAddr)> = ip
        .registered
        .iter()
        .filter_map(|r| addr::edge_address(r, edge, &avoid).map(|a| (r.to_string(), a)))
        .collect();
    if picked.is_empty() {
        return Err(ProvstenWorld::not_applicable(format!(
            "no registered range has a usable {edge:?} address on loopback"
        )));
    }
    w.record(json!({"edge": edge, "addresses": picked.iter().map(|(r, a)| json!({"range": r, "source_address": a})).collect::<Vec<_>>()}));
    w.sources = picked.into_iter().map(|(_, a)| a).collect();
    Ok(())
}

#[given(
    regex = r"^the client sends a forged (X-Forwarded-For|X-Real-IP|Forwarded) header naming a registered address$"
)]
async fn forged_header(w: &mut ProvstenWorld, header: String) -> anyhow::Result<()> {
    let ip = w.ip()?;
    let claimed = addr::registered_v4(&ip.registered)
        .ok_or_else(|| anyhow::anyhow!("no registered address to claim"))?;
    let value = match header.as_str() {
        "Forwarded" => format!("for={claimed};proto=https"),
        _ => claimed.to_string(),
    };
    w.record(json!({"forged_header": header, "value": value}));
    w.headers.push((header, value));
    Ok(())
}

#[given(regex = r"^the client sends a PROXY protocol (v1|v2) header naming a registered address$")]
async fn proxy_header(w: &mut ProvstenWorld, version: String) -> anyhow::Result<()> {
    let ip = w.ip()?;
    let claimed = addr::registered_v4(&ip.registered)
        .ok_or_else(|| anyhow::anyhow!("no registered address to claim"))?;
    let v = if version == "v1" {
        proxy_protocol::Version::V1
    } else {
        proxy_protocol::Version::V2
    };
    w.record(json!({"proxy_protocol": v, "claimed_source": claimed}));
    w.proxy_header = Some((v, claimed));
    Ok(())
}

#[given("the client connects over IPv6")]
async fn over_ipv6(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ip = w.ip()?;
    let t = ip.ipv6_target.ok_or_else(|| {
        ProvstenWorld::not_applicable("the IUT declares no IPv6 listener (ip_filter.ipv6_base_url)")
    })?;
    if ip
        .registered
        .iter()
        .any(|r| r.contains(&IpAddr::from(std::net::Ipv6Addr::LOCALHOST)))
    {
        return Err(ProvstenWorld::not_applicable(
            "::1 is registered, so this machine has no unregistered IPv6 address to test from",
        ));
    }
    w.record(json!({"ipv6_target": t.addr, "source_address": "::1"}));
    w.via = Via::Ipv6;
    Ok(())
}

#[given("the client connects to the IUT's dual-stack listener")]
async fn dual_stack(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let t = w.ip()?.dual_stack_target.ok_or_else(|| {
        ProvstenWorld::not_applicable(
            "the IUT declares no dual-stack listener (ip_filter.dual_stack_base_url)",
        )
    })?;
    w.record(json!({"dual_stack_target": t.addr, "note": "IPv4 clients appear to the IUT as ::ffff:a.b.c.d"}));
    w.via = Via::DualStack;
    Ok(())
}

#[when("the client's address is added to the IUT's registered ranges")]
async fn add_address(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    change_list(w, true).await
}

#[when("the client's address is removed from the IUT's registered ranges")]
async fn remove_address(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    change_list(w, false).await
}

/// Rewrites the IUT's list with (or without) the client's address, reloads it, then asks
/// for the client's data until the change shows or the reload timeout passes. The last
/// exchange is what the following `Then` judges.
async fn change_list(w: &mut ProvstenWorld, add: bool) -> anyhow::Result<()> {
    let ip = w.ip()?;
    let control = ip.allowlist.clone().ok_or_else(|| {
        ProvstenWorld::not_applicable(
            "the IUT config declares no ip_filter.allowlist_file and reload",
        )
    })?;
    if control.reload.is_none() {
        return Err(ProvstenWorld::not_applicable(
            "the IUT config declares no ip_filter.reload",
        ));
    }
    let client = *w
        .sources
        .first()
        .ok_or_else(|| anyhow::anyhow!("no client address chosen before this step"))?;
    let mut list = ip.registered.clone();
    if add {
        list.push(IpNet::from(client));
    }
    w.allowlist_changed = true;
    let evidence = control.apply(&list).await?;
    w.record(json!({"allowlist_change": if add { "added" } else { "removed" }, "address": client, "applied": evidence}));
    let org = w
        .client_cert
        .as_ref()
        .and_then(|c| w.ctx().ok()?.pki.cert(c).ok()?.org.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("the client needs a certificate with an organisation number")
        })?;
    let path = w.ctx()?.protected_path.replace("{org}", &org);
    let started = Instant::now();
    let deadline = started + control.timeout;
    let mut attempts = 0;
    loop {
        attempts += 1;
        w.versions = TlsVersions::Any;
        send(w, path.clone(), ServerCheck::AcceptAny).await?;
        let granted = w.exchanges.iter().all(|e| e.granted());
        if granted == add || Instant::now() >= deadline {
            w.record(json!({"attempts": attempts, "took_effect_after_ms": started.elapsed().as_millis() as u64, "took_effect": granted == add}));
            return Ok(());
        }
        // Re-poll interval while the IUT applies its new list; bounded by the reload timeout.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
