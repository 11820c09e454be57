//! Steps for flaky networks (CONT-FAULT-PROC): put the client's path to the IUT through a
//! per-scenario fault-proxy link and give it Toxiproxy toxics, outages or a whole named
//! timeline. Links are created on free ports for the scenario and removed after it.

use std::time::{Duration, Instant};

use cucumber::{given, then, when};
use serde_json::json;

use super::mtls::send;
use super::ProvstenWorld;
use crate::network::proxy::{Stream, ToxicSpec};
use crate::network::timeline::{self, Fault};
use crate::network::toxics::{Bandwidth, Latency, ResetPeer, Slicer, Timeout, Toxic};
use crate::peers::{Outcome, ServerCheck};

/// The only link a server-role scenario can route: the client's path to the IUT's API.
pub(crate) const API_LINK: &str = "iut-api";

impl ProvstenWorld {
    /// The scenario's own name for a logical link, unique across concurrent scenarios.
    fn link_name(&self, logical: &str) -> String {
        format!("{logical}-{}", self.scenario_id)
    }

    /// Creates the scenario's `iut-api` link if needed; later requests go through it.
    pub(super) async fn ensure_link(&mut self, logical: &str) -> anyhow::Result<String> {
        if let Some(real) = self.route_link(logical) {
            return Ok(real);
        }
        if logical != API_LINK {
            return Err(ProvstenWorld::not_applicable(format!(
                "link {logical:?} is not one this IUT's roles route through (server scenarios have {API_LINK:?}; router scenarios have route-NAME once `Given the router's routes run through the fault proxy`)"
            )));
        }
        let name = self.link_name(logical);
        if self.links.iter().any(|l| l == &name) {
            return Ok(name);
        }
        let ctx = self.ctx()?;
        let backend = ctx.faults.clone();
        let listen = backend
            .create_link(&name, "127.0.0.1:0", &ctx.target.addr.to_string())
            .await?;
        self.links.push(name.clone());
        self.api_link = Some(listen);
        self.record(json!({"link": logical, "proxy": backend.describe(), "listen": listen, "upstream": ctx.target.addr}));
        Ok(name)
    }

    /// Adds `toxic` on `stream` of the scenario's link `logical`, and records it.
    pub(super) async fn add_toxic<T: Toxic>(
        &mut self,
        logical: &str,
        toxic: &T,
        stream: Stream,
    ) -> anyhow::Result<()> {
        let link = self.ensure_link(logical).await?;
        let mut toxic = ToxicSpec::of(toxic, stream);
        toxic.name = format!("{}_{}_{}", T::NAME, stream.as_str(), self.toxic_seq);
        let kind = T::NAME;
        self.toxic_seq += 1;
        crate::network::toxics::check(&toxic).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.record(json!({"toxic": toxic, "link": logical}));
        self.ctx()?.faults.add_toxic(&link, toxic.clone()).await?;
        self.note_fault(
            logical,
            &format!("{kind} {} {}", stream.as_str(), toxic.attributes),
        );
        self.toxics.push((link, toxic.name));
        Ok(())
    }

    /// Removes the scenario's toxics from a link and enables it again.
    pub(super) async fn restore_link(&mut self, logical: &str) -> anyhow::Result<()> {
        let name = self.ensure_link(logical).await?;
        let faults = self.ctx()?.faults.clone();
        let mine: Vec<(String, String)> = self
            .toxics
            .iter()
            .filter(|(l, _)| *l == name)
            .cloned()
            .collect();
        for (l, t) in &mine {
            faults.remove_toxic(l, t).await?;
        }
        self.toxics.retain(|(l, _)| *l != name);
        self.deadline = None;
        faults.set_enabled(&name, true).await?;
        self.note_lifted(logical);
        self.record(json!({"link": logical, "restored": true, "toxics_removed": mine.len()}));
        Ok(())
    }

    /// Removes the scenario's links (after every scenario, failed ones included).
    pub(super) async fn remove_links(&mut self) {
        let Ok(ctx) = self.ctx() else { return };
        for link in std::mem::take(&mut self.links) {
            if let Err(e) = ctx.faults.delete_link(&link).await {
                eprintln!("provsten: warning: removing fault link {link}: {e:#}");
            }
        }
        self.toxics.clear();
        self.api_link = None;
    }
}

fn both() -> [Stream; 2] {
    [Stream::Upstream, Stream::Downstream]
}

#[given(regex = r#"^the link "([^"]+)" adds (\d+) ms latency$"#)]
async fn latency(w: &mut ProvstenWorld, link: String, ms: u64) -> anyhow::Result<()> {
    for s in both() {
        w.add_toxic(
            &link,
            &Latency {
                latency: ms,
                jitter: 0,
            },
            s,
        )
        .await?;
    }
    Ok(())
}

#[given(regex = r#"^the link "([^"]+)" is limited to (\d+) KB/s$"#)]
async fn bandwidth(w: &mut ProvstenWorld, link: String, rate: u64) -> anyhow::Result<()> {
    for s in both() {
        w.add_toxic(&link, &Bandwidth { rate }, s).await?;
    }
    Ok(())
}

/// Tears the client's writes (the request side), as a lossy link that splits segments does.
#[given(
    regex = r#"^the link "([^"]+)" slices the client's writes into (\d+)-byte pieces (\d+) ms apart$"#
)]
async fn slicer(w: &mut ProvstenWorld, link: String, size: u64, ms: u64) -> anyhow::Result<()> {
    let slicer = Slicer {
        average_size: size,
        size_variation: size / 2,
        delay: ms * 1000,
    };
    w.add_toxic(&link, &slicer, Stream::Upstream).await
}

#[given(regex = r#"^the link "([^"]+)" black-holes traffic$"#)]
async fn black_hole(w: &mut ProvstenWorld, link: String) -> anyhow::Result<()> {
    for s in both() {
        w.add_toxic(&link, &Timeout { timeout: 0 }, s).await?;
    }
    // A second of silence shows the hole; waiting out the full request timeout adds nothing.
    w.deadline = Some(Duration::from_secs(1));
    Ok(())
}

#[given(regex = r#"^the link "([^"]+)" resets connections after (\d+) ms$"#)]
async fn reset_peer(w: &mut ProvstenWorld, link: String, ms: u64) -> anyhow::Result<()> {
    w.add_toxic(&link, &ResetPeer { timeout: ms }, Stream::Upstream)
        .await
}

#[given(regex = r#"^the link "([^"]+)" is down$"#)]
async fn link_down(w: &mut ProvstenWorld, link: String) -> anyhow::Result<()> {
    let name = w.ensure_link(&link).await?;
    w.ctx()?.faults.set_enabled(&name, false).await?;
    w.note_fault(&link, "down (connections refused, open ones closed)");
    w.record(json!({"link": link, "down": true}));
    Ok(())
}

#[when(regex = r#"^the link "([^"]+)" is restored$"#)]
async fn restored(w: &mut ProvstenWorld, link: String) -> anyhow::Result<()> {
    w.restore_link(&link).await
}

/// Runs a named timeline on the scenario's links while the client keeps asking for its
/// organisation's data; every exchange is kept for the `Then` step.
#[when(
    regex = r#"^the fault timeline "([^"]+)" runs while the client requests its own organisation's data every (\d+) ms$"#
)]
async fn run_timeline(w: &mut ProvstenWorld, name: String, every_ms: u64) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let t = timeline::find_checked(&name, &ctx.timeline_dirs)?;
    for link in t.links() {
        w.ensure_link(&link).await?;
    }
    let org = w
        .client_cert
        .as_ref()
        .and_then(|c| ctx.pki.cert(c).ok()?.org.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("the client needs a certificate with an organisation number")
        })?;
    let path = ctx.protected_path.replace("{org}", &org);
    let faults = ctx.faults.clone();
    let start = Instant::now();
    let total = t.duration();
    // Apply and lift each phase's faults at its offsets, in a task of its own.
    let links: Vec<(String, String)> = t
        .links()
        .iter()
        .map(|l| (l.clone(), w.link_name(l)))
        .collect();
    let driver = spawn_timeline(t.phases.clone(), links, faults, start);
    let mut all = Vec::new();
    while start.elapsed() < total {
        let tick = Instant::now();
        send(w, path.clone(), ServerCheck::AcceptAny).await?;
        all.append(&mut w.exchanges);
        let next = tick + Duration::from_millis(every_ms);
        // The request rate is what the step asks for; wait out the rest of the interval.
        tokio::time::sleep_until(next.into()).await;
    }
    let log: Vec<serde_json::Value> = finish_timeline(driver, total)
        .await?
        .iter()
        .map(|a| a.to_json(start))
        .collect();
    w.record(json!({"timeline": name, "description": t.description, "duration_ms": total.as_millis() as u64, "requests": all.len(), "phases": log}));
    w.exchanges = all;
    Ok(())
}

/// One fault a timeline applied or lifted.
#[derive(Debug, Clone)]
pub(super) struct Applied {
    pub phase: String,
    /// The logical link (`route-primary`).
    pub link: String,
    pub fault: String,
    pub at: Instant,
    /// Applied (true) or lifted.
    pub apply: bool,
    pub ok: bool,
}

impl Applied {
    fn to_json(&self, start: Instant) -> serde_json::Value {
        let key = if self.apply { "apply" } else { "lift" };
        json!({"phase": self.phase, "at_ms": self.at.saturating_duration_since(start).as_millis() as u64, key: self.fault, "ok": self.ok})
    }
}

/// Applies and lifts each phase's faults at its offsets from `start`, in a task of its
/// own; `links` maps logical link names to the fault proxy's.
pub(super) fn spawn_timeline(
    phases: Vec<timeline::Phase>,
    links: Vec<(String, String)>,
    faults: std::sync::Arc<dyn crate::network::backend::FaultBackend>,
    start: Instant,
) -> tokio::task::JoinHandle<Vec<Applied>> {
    tokio::spawn(async move {
        let real = |logical: &str| {
            links
                .iter()
                .find(|(l, _)| l == logical)
                .map(|(_, r)| r.clone())
                .unwrap_or_default()
        };
        let mut log = Vec::new();
        for p in phases {
            for apply in [true, false] {
                let at = if apply {
                    start + p.start
                } else {
                    start + p.start + p.duration
                };
                tokio::time::sleep_until(at.into()).await;
                for f in &p.faults {
                    let r = match (f, apply) {
                        (Fault::Down { link }, _) => faults.set_enabled(&real(link), !apply).await,
                        (Fault::Toxic { link, toxic }, true) => {
                            faults.add_toxic(&real(link), toxic.clone()).await
                        }
                        (Fault::Toxic { link, toxic }, false) => {
                            faults.remove_toxic(&real(link), &toxic.name).await
                        }
                    };
                    log.push(Applied {
                        phase: p.name.clone(),
                        link: f.link().to_string(),
                        fault: f.to_string(),
                        at: Instant::now(),
                        apply,
                        ok: r.is_ok(),
                    });
                }
            }
        }
        log
    })
}

/// Waits for a timeline's driver (it ends `total` after its start, plus slack).
pub(super) async fn finish_timeline(
    driver: tokio::task::JoinHandle<Vec<Applied>>,
    total: Duration,
) -> anyhow::Result<Vec<Applied>> {
    tokio::time::timeout(total + Duration::from_secs(10), driver)
        .await
        .map_err(|_| anyhow::anyhow!("the timeline driver did not finish"))?
        .map_err(|e| anyhow::anyhow!("the timeline driver failed: {e}"))
}

#[then("the client gets no answer")]
async fn no_answer(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        if let Outcome::Response { status, .. } = ex.outcome {
            fail!("expected no answer through the faulty link, but the IUT answered HTTP {status}");
        }
        w.record(json!({"no_answer": true, "summary": ex.describe()}));
    }
    Ok(())
}
