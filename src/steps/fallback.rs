//! Steps for fallback routes during outages (CONT-ROUTE-1, CONT-ROUTE-2, CONT-NOLOSS,
//! CONT-FAILBACK, CONT-FAULT-PROC).
//!
//! Role `router`: every route the IUT is configured with is a simulated receiver behind a
//! fault-proxy link (`route-NAME`) that listens where the config says the IUT delivers.
//! The harness asks the IUT to route messages, breaks routes the ways real networks break,
//! and reads from the receivers which route each message arrived through, when, with which
//! identity, and how often. Route addresses are fixed for the run, so router scenarios take
//! turns on a router lane (`[router] lanes`: independent copies of the router, each with
//! its own routes); other scenarios run beside them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use cucumber::{given, then, when};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::resend::{fire, Exits, Fire};
use super::ProvstenWorld;
use crate::iut::config::{Delivery, Failback};
use crate::iut::RouterContext;
use crate::network::proxy::Stream;
use crate::network::toxics::{Latency, ResetPeer, Slicer, Timeout};
use crate::peers::receiver::{
    wait_notified, Answer, Attempt, ReceiverSpec, Rule, SimulatedReceiver,
};

/// A router scenario waits at most this long for a lane the others are done with.
const TURN_DEADLINE: Duration = Duration::from_secs(600);

/// The router lanes of a run: a scenario holds one from its first router step to its end,
/// since its faults act on that lane's route addresses.
#[derive(Debug)]
pub(crate) struct LanePool {
    free: Mutex<Vec<usize>>,
    permits: Arc<Semaphore>,
}

impl LanePool {
    pub(crate) fn new(lanes: usize) -> LanePool {
        LanePool {
            free: Mutex::new((0..lanes).rev().collect()),
            permits: Arc::new(Semaphore::new(lanes)),
        }
    }

    /// The lowest free lane (index from 0), once one is free.
    async fn take(self: &Arc<Self>) -> anyhow::Result<LaneTurn> {
        let permit = tokio::time::timeout(TURN_DEADLINE, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                anyhow!(
                    "waited {} s for the other router scenarios to finish",
                    TURN_DEADLINE.as_secs()
                )
            })?
            .map_err(|_| anyhow!("the router lanes are closed"))?;
        let lane = self
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or_else(|| anyhow!("a lane permit without a free lane"))?;
        Ok(LaneTurn {
            lane,
            pool: self.clone(),
            _permit: permit,
        })
    }
}

/// A scenario's hold on a router lane; the lane is free again when it drops.
struct LaneTurn {
    lane: usize,
    pool: Arc<LanePool>,
    // Released after `drop` below has put the lane back.
    _permit: OwnedSemaphorePermit,
}

impl Drop for LaneTurn {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|p| p.into_inner());
        free.push(self.lane);
        // Lowest lane first, so a run with fewer router scenarios than lanes uses lane 1.
        free.sort_unstable_by(|a, b| b.cmp(a));
    }
}
/// How long the no-loss check keeps watching for late repeats once everything arrived
/// (a resend after failback comes within a failback probe or two).
const QUIET: Duration = Duration::from_millis(500);
/// Bytes a fault held (a black hole delays data until it is lifted, as Toxiproxy's does)
/// reach the receiver this soon after the lift.
const FLUSH: Duration = Duration::from_millis(50);
/// Spacing of the messages a failback check sends.
const FAILBACK_PROBE_EVERY: Duration = Duration::from_millis(100);

/// One route as the harness plays it.
pub(super) struct RouteRx {
    pub name: String,
    /// `route-NAME`, as steps and timelines call it.
    pub logical: String,
    /// The link's name in the fault proxy (unique per scenario).
    pub real: String,
    rx: SimulatedReceiver,
}

/// A message the IUT was asked to route.
#[derive(Debug, Clone)]
pub(super) struct Routed {
    pub id: String,
    pub sha256: String,
    pub at: Instant,
    /// A fault was active on some route when it was sent.
    pub during_outage: bool,
}

/// A fault on a route's link, from when it was applied to when it was lifted.
#[derive(Debug, Clone)]
pub(super) struct FaultWindow {
    pub link: String,
    pub what: String,
    pub from: Instant,
    pub to: Option<Instant>,
}

/// A message a route's receiver accepted.
#[derive(Debug, Clone)]
pub(super) struct Arrival {
    pub route: String,
    pub at: Instant,
    pub attempt: Attempt,
}

#[derive(Default)]
pub(crate) struct FallbackState {
    turn: Option<LaneTurn>,
    pub(super) routes: Vec<RouteRx>,
    pub(super) changed: Arc<Notify>,
    pub(super) epoch: Option<Instant>,
    pub(super) sent: Vec<Routed>,
    pub(super) windows: Vec<FaultWindow>,
    /// When the current outage began (the first fault after the last recovery).
    pub(super) onset: Option<Instant>,
    /// When the last fault was lifted.
    pub(super) recovered: Option<Instant>,
    exits: Exits,
}

impl std::fmt::Debug for FallbackState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FallbackState({} routes, {} sent)",
            self.routes.len(),
            self.sent.len()
        )
    }
}

/// The message type the router is asked to route.
fn router_message(
    ctx: &super::RunContext,
    r: &RouterContext,
) -> anyhow::Result<crate::iut::MessageType> {
    ctx.messages
        .iter()
        .find(|m| m.name == r.message)
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "router.message {:?} is not a declared message type",
                r.message
            )
        })
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl ProvstenWorld {
    /// The router lane this scenario holds (lane 1 before it holds one).
    pub(super) fn router(&self) -> anyhow::Result<RouterContext> {
        let lane = self.fallback.turn.as_ref().map_or(0, |t| t.lane);
        self.ctx()?.routers.get(lane).cloned().ok_or_else(|| {
            Self::not_applicable(
                "the IUT config has no [router] section (routes, failover_time, failback)",
            )
        })
    }

    /// The fault-proxy name of a route's link, once the routes run.
    pub(super) fn route_link(&self, logical: &str) -> Option<String> {
        self.fallback
            .routes
            .iter()
            .find(|r| r.logical == logical)
            .map(|r| r.real.clone())
    }

    /// A step applied a fault to a link; route links keep a window for the checks.
    pub(super) fn note_fault(&mut self, logical: &str, what: &str) {
        self.note_fault_at(logical, what, Instant::now());
    }

    pub(super) fn note_fault_at(&mut self, logical: &str, what: &str, now: Instant) {
        if self.route_link(logical).is_none() {
            return;
        }
        if self.fallback.windows.iter().all(|w| w.to.is_some()) {
            self.fallback.onset = Some(now);
            self.fallback.recovered = None;
        }
        self.fallback.windows.push(FaultWindow {
            link: logical.to_string(),
            what: what.to_string(),
            from: now,
            to: None,
        });
    }

    /// Every fault on the link was lifted.
    pub(super) fn note_lifted(&mut self, logical: &str) {
        self.note_lifted_at(logical, Instant::now());
    }

    pub(super) fn note_lifted_at(&mut self, logical: &str, now: Instant) {
        for w in &mut self.fallback.windows {
            if w.link == logical && w.to.is_none() {
                w.to = Some(now);
            }
        }
        if !self.fallback.windows.is_empty() && self.fallback.windows.iter().all(|w| w.to.is_some())
        {
            self.fallback.recovered = Some(now);
        }
    }

    /// After a timeline: its fault windows as the driver applied them, and which sends fell
    /// inside one.
    pub(super) fn note_applied(&mut self, applied: &[super::network::Applied]) {
        for a in applied {
            if a.apply {
                self.note_fault_at(&a.link, &a.fault, a.at);
            } else {
                self.note_lifted_at(&a.link, a.at);
            }
        }
        self.mark_outage_sends();
    }

    fn mark_outage_sends(&mut self) {
        let windows = self.fallback.windows.clone();
        for s in &mut self.fallback.sent {
            s.during_outage = windows
                .iter()
                .any(|w| w.from <= s.at && w.to.is_none_or(|to| s.at < to));
        }
    }

    /// Every connection or request any route saw: (route, when).
    pub(super) fn route_attempts(&self) -> Vec<(String, Instant)> {
        self.fallback
            .routes
            .iter()
            .flat_map(|r| {
                let name = r.name.clone();
                r.rx.attempts()
                    .into_iter()
                    // A connection that never completed a handshake is a health check
                    // (HAProxy's `check`) or a probe, not traffic.
                    .filter(|a| a.handshake_error.is_none())
                    .map(move |a| (name.clone(), a.at))
            })
            .collect()
    }

    fn outage_active(&self) -> bool {
        self.fallback.windows.iter().any(|w| w.to.is_none())
    }

    fn primary(&self) -> anyhow::Result<String> {
        Ok(self.router()?.routes[0].name.clone())
    }

    /// Every message accepted so far, by id, in arrival order.
    pub(super) fn arrivals(&self) -> BTreeMap<String, Vec<Arrival>> {
        let mut by_id: BTreeMap<String, Vec<Arrival>> = BTreeMap::new();
        for r in &self.fallback.routes {
            for a in r.rx.attempts() {
                if !a.processed {
                    continue;
                }
                let Some(id) = a.message_id.clone() else {
                    continue;
                };
                by_id.entry(id).or_default().push(Arrival {
                    route: r.name.clone(),
                    at: a.at,
                    attempt: a,
                });
            }
        }
        for v in by_id.values_mut() {
            v.sort_by_key(|a| a.at);
        }
        by_id
    }

    /// Waits until `done` holds for the arrivals or the deadline passes.
    pub(super) async fn wait_arrivals(
        &self,
        deadline: Instant,
        done: impl Fn(&BTreeMap<String, Vec<Arrival>>) -> bool,
    ) -> (bool, BTreeMap<String, Vec<Arrival>>) {
        wait_notified(&self.fallback.changed, deadline, || {
            let now = self.arrivals();
            (done(&now), now)
        })
        .await
    }

    /// Asks the IUT to route one fresh message; returns its id.
    pub(super) async fn route_one(&mut self) -> anyhow::Result<String> {
        let r = self.router()?;
        let ctx = self.ctx()?;
        let m = router_message(&ctx, &r)?;
        let mut body = m.examples.first().cloned().unwrap_or(Value::Null);
        let n = self.fallback.sent.len();
        let id = super::schema::plant_id(&m, &mut body).unwrap_or_else(|| {
            format!(
                "provsten-{}-{n}-{}",
                self.scenario_id,
                rand::random::<u32>()
            )
        });
        let bytes = serde_json::to_vec(&body)?;
        let entity = format!("entity-{}-{n}", self.scenario_id);
        let at = Instant::now();
        fire(Fire {
            role: "router",
            trigger: &r.trigger,
            work_dir: &r.work_dir,
            to: None,
            id: &id,
            entity: &entity,
            bytes: &bytes,
            body: &body,
            message_type: None,
            exits: self.fallback.exits.clone(),
            limit: r.first_delivery_timeout + r.failover_time * 4,
        })
        .await?;
        let during_outage = self.outage_active();
        self.fallback.sent.push(Routed {
            id: id.clone(),
            sha256: sha(&bytes),
            at,
            during_outage,
        });
        Ok(id)
    }

    /// Sends `n` messages `every` apart.
    pub(super) async fn route_many(&mut self, n: usize, every: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        for i in 0..n {
            tokio::time::sleep_until((start + every * i as u32).into()).await;
            self.route_one().await?;
        }
        Ok(())
    }

    fn since_epoch(&self, t: Instant) -> u64 {
        self.fallback
            .epoch
            .map(|e| ms(t.saturating_duration_since(e)))
            .unwrap_or_default()
    }

    /// Whether an arrival's acknowledgement may have been lost in a fault, or come too late
    /// for the router to see it: it came through a route whose link was faulty then (or
    /// shortly after), or the receiver, which is the harness, took longer than `tolerance`
    /// to take the request in (a busy machine: the router may have given up on the attempt
    /// before the answer left, and a resend then is the harness's doing).
    pub(super) fn unconfirmed_arrival(
        &self,
        a: &Arrival,
        grace: Duration,
        tolerance: Duration,
    ) -> bool {
        if a.attempt.at.saturating_duration_since(a.attempt.started) > tolerance {
            return true;
        }
        let link = format!("route-{}", a.route);
        self.fallback.windows.iter().any(|w| {
            w.link == link && a.at + tolerance >= w.from && w.to.is_none_or(|to| a.at <= to + grace)
        })
    }

    /// Whether a repeat is one at-least-once allows: an earlier arrival's acknowledgement
    /// may have been lost, or this one is an attempt the router gave up on arriving late:
    /// it began while its own route was faulty, or it was held on a connection opened
    /// before the fault lifted and flushed when it did.
    pub(super) fn allowed_repeat(
        &self,
        earlier: &[Arrival],
        repeat: &Arrival,
        grace: Duration,
        tolerance: Duration,
    ) -> bool {
        let link = format!("route-{}", repeat.route);
        let began = repeat.attempt.started;
        let held_over = self.fallback.windows.iter().any(|w| {
            w.link == link
                && began + tolerance >= w.from
                && w.to.is_none_or(|to| {
                    began <= to || (repeat.attempt.connection_at <= to && began <= to + FLUSH)
                })
        });
        held_over
            || earlier
                .iter()
                .any(|e| self.unconfirmed_arrival(e, grace, tolerance))
    }

    /// Every sent message accepted at least once (waiting up to `wait`); the arrivals.
    async fn all_arrived(&self, wait: Duration) -> (Vec<String>, BTreeMap<String, Vec<Arrival>>) {
        let ids: Vec<String> = self.fallback.sent.iter().map(|s| s.id.clone()).collect();
        let (_, arrivals) = self
            .wait_arrivals(Instant::now() + wait, |a| {
                ids.iter().all(|id| a.contains_key(id))
            })
            .await;
        let lost = ids
            .iter()
            .filter(|id| !arrivals.contains_key(*id))
            .cloned()
            .collect();
        (lost, arrivals)
    }

    fn route_counts(&self, arrivals: &BTreeMap<String, Vec<Arrival>>) -> Value {
        let mut counts: BTreeMap<String, u64> = self
            .fallback
            .routes
            .iter()
            .map(|r| (r.name.clone(), 0))
            .collect();
        for a in arrivals.values().flatten() {
            *counts.entry(a.route.clone()).or_default() += 1;
        }
        json!(counts)
    }

    /// The trigger command for `id` exited non-zero: the router did not take the message.
    fn refused(&self, id: &str) -> bool {
        self.trigger_exits(&[id.to_string()])
            .iter()
            .any(|e| e["exit"].as_i64().is_some_and(|c| c != 0))
    }

    /// What the trigger commands said, for messages that never arrived.
    fn trigger_exits(&self, ids: &[String]) -> Vec<Value> {
        let Ok(e) = self.fallback.exits.lock() else {
            return Vec::new();
        };
        e.iter()
            .filter(|(id, _, _)| ids.contains(id))
            .map(|(id, code, said)| json!({"id": id, "exit": code, "stderr": said}))
            .collect()
    }
}

#[given("the router's routes run through the fault proxy")]
async fn routes_up(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    w.router()?;
    let ctx = w.ctx()?;
    if w.fallback.turn.is_none() {
        w.fallback.turn = Some(ctx.router_lanes.take().await?);
    }
    let r = w.router()?;
    let m = router_message(&ctx, &r)?;
    let mut shown = Vec::new();
    for route in &r.routes {
        let rx = SimulatedReceiver::start(ReceiverSpec {
            pki: ctx.pki.clone(),
            cert: "peer-receiver".into(),
            id_pointer: m.id_pointer.clone(),
            validator: Some(m.validator.clone()),
            rules: Vec::new(),
            down_for: None,
            changed: Some(w.fallback.changed.clone()),
            bind: None,
        })
        .await?;
        let logical = route.link();
        let real = format!("{logical}-{}", w.scenario_id);
        let listen = ctx
            .faults
            .create_link(&real, &route.listen.to_string(), &rx.addr.to_string())
            .await
            .map_err(|e| {
                anyhow!("{e:#} (router.routes: the route {:?} must be free at {}; is another run or program using it?)", route.name, route.listen)
            })?;
        w.links.push(real.clone());
        shown.push(
            json!({"route": route.name, "link": logical, "listen": listen, "receiver": rx.addr}),
        );
        w.fallback.routes.push(RouteRx {
            name: route.name.clone(),
            logical,
            real,
            rx,
        });
    }
    w.fallback.epoch = Some(Instant::now());
    w.record(json!({"lane": r.lane, "routes": shown, "proxy": ctx.faults.describe(), "failover_time_ms": ms(r.failover_time), "failback": r.failback.to_string(), "delivery": r.delivery, "tolerance_ms": ms(r.tolerance)}));
    Ok(())
}

/// Before a fault: the router is on its primary (it returned there after any earlier
/// scenario's outage, as its failback promises).
#[given("the router delivers through the primary")]
async fn on_primary(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let r = w.router()?;
    let primary = w.primary()?;
    let back_within = match r.failback {
        Failback::Within(d) => d,
        Failback::Stay => Duration::ZERO,
    };
    let deadline = Instant::now() + back_within + r.tolerance + r.failover_time;
    let mut seen = Vec::new();
    loop {
        let id = w.route_one().await?;
        let (mut ok, mut arrivals) = w
            .wait_arrivals(
                Instant::now() + r.failover_time.min(r.first_delivery_timeout),
                |a| a.contains_key(&id),
            )
            .await;
        if !ok && Instant::now() < deadline && w.refused(&id) {
            // The route links exist only during a scenario, so a router with health checks
            // has just seen every route down and may refuse a first message until it sees
            // them back. Within its failback time that is not a baseline failure.
            seen.push(json!({"id": id, "route": null, "refused": true}));
            continue;
        }
        if !ok {
            (ok, arrivals) = w
                .wait_arrivals(Instant::now() + r.first_delivery_timeout, |a| {
                    a.contains_key(&id)
                })
                .await;
        }
        if !ok {
            let exits = w.trigger_exits(std::slice::from_ref(&id));
            w.record(json!({"baseline": {"id": id, "arrived": false, "trigger": exits}}));
            fail!(
                "message {id} did not arrive through any route within {} with every route up (router.first_delivery_timeout)",
                humantime::format_duration(r.first_delivery_timeout)
            );
        }
        let route = arrivals[&id][0].route.clone();
        seen.push(json!({"id": id, "route": route}));
        if route == primary {
            w.record(json!({"baseline": seen}));
            return Ok(());
        }
        if r.failback == Failback::Stay {
            w.record(json!({"baseline": seen}));
            return Err(ProvstenWorld::not_applicable(format!(
                "the router stays on {route:?} after an earlier outage (failback = \"stay\"), so the primary cannot be tested again in this run"
            )));
        }
        if Instant::now() >= deadline {
            w.record(json!({"baseline": seen}));
            fail!(
                "with every route up, the router still delivers through {route:?}, not the primary {primary:?}: it has not returned to the primary within the failback time ({}) since an earlier outage",
                humantime::format_duration(back_within)
            );
        }
        tokio::time::sleep(FAILBACK_PROBE_EVERY).await;
    }
}

#[when(expr = "the router is asked to send {int} message(s)")]
async fn send_n(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    w.route_many(n.max(1), Duration::ZERO).await
}

#[when(expr = "the router is asked to send {int} messages, {int} ms apart")]
async fn send_spaced(w: &mut ProvstenWorld, n: usize, every: u64) -> anyhow::Result<()> {
    w.route_many(n.max(1), Duration::from_millis(every)).await
}

fn route_logical(name: &str) -> String {
    format!("route-{name}")
}

#[given(regex = r#"^the route "([^"]+)" is down$"#)]
#[when(regex = r#"^the route "([^"]+)" goes down$"#)]
async fn route_down(w: &mut ProvstenWorld, route: String) -> anyhow::Result<()> {
    let logical = route_logical(&route);
    let name = w.ensure_link(&logical).await?;
    w.ctx()?.faults.set_enabled(&name, false).await?;
    w.note_fault(&logical, "down (connections refused, open ones closed)");
    w.record(json!({"route": route, "down": true, "at_ms": w.since_epoch(Instant::now())}));
    Ok(())
}

#[given(regex = r#"^the route "([^"]+)" black-holes traffic$"#)]
#[when(regex = r#"^the route "([^"]+)" starts black-holing traffic$"#)]
async fn route_black_hole(w: &mut ProvstenWorld, route: String) -> anyhow::Result<()> {
    let logical = route_logical(&route);
    for s in [Stream::Upstream, Stream::Downstream] {
        w.add_toxic(&logical, &Timeout { timeout: 0 }, s).await?;
    }
    Ok(())
}

#[given(regex = r#"^the route "([^"]+)" resets every connection$"#)]
async fn route_resets(w: &mut ProvstenWorld, route: String) -> anyhow::Result<()> {
    let logical = route_logical(&route);
    w.add_toxic(&logical, &ResetPeer { timeout: 0 }, Stream::Upstream)
        .await
}

/// Latency past anything that could meet the failover time: the router must give up on
/// the route rather than wait.
#[given(regex = r#"^the route "([^"]+)" is slower than the failover time$"#)]
async fn route_slow(w: &mut ProvstenWorld, route: String) -> anyhow::Result<()> {
    let r = w.router()?;
    let logical = route_logical(&route);
    let latency = ms(r.failover_time * 2);
    for s in [Stream::Upstream, Stream::Downstream] {
        w.add_toxic(&logical, &Latency { latency, jitter: 0 }, s)
            .await?;
    }
    Ok(())
}

#[given(regex = r#"^the route "([^"]+)" tears writes into (\d+)-byte pieces (\d+) ms apart$"#)]
async fn route_torn(
    w: &mut ProvstenWorld,
    route: String,
    size: u64,
    every: u64,
) -> anyhow::Result<()> {
    let logical = route_logical(&route);
    let slicer = Slicer {
        average_size: size,
        size_variation: size / 2,
        delay: every * 1000,
    };
    for s in [Stream::Upstream, Stream::Downstream] {
        w.add_toxic(&logical, &slicer, s).await?;
    }
    Ok(())
}

#[when(regex = r#"^the route "([^"]+)" recovers$"#)]
async fn route_recovers(w: &mut ProvstenWorld, route: String) -> anyhow::Result<()> {
    w.restore_link(&route_logical(&route)).await
}

#[when("every route recovers")]
async fn all_recover(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let links: Vec<String> = w
        .fallback
        .routes
        .iter()
        .map(|r| r.logical.clone())
        .collect();
    for l in links {
        w.restore_link(&l).await?;
    }
    Ok(())
}

/// Keeps the current faults for up to the failover time: long enough for the router to
/// give up on a broken route and deliver elsewhere, over as soon as everything arrived.
#[when("the router has had the failover time to deliver what was sent")]
async fn failover_window(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let r = w.router()?;
    let ids: Vec<String> = w.fallback.sent.iter().map(|s| s.id.clone()).collect();
    let started = Instant::now();
    let (all, arrivals) = w
        .wait_arrivals(started + r.failover_time + r.tolerance, |a| {
            ids.iter().all(|id| a.contains_key(id))
        })
        .await;
    let arrived = ids.iter().filter(|id| arrivals.contains_key(*id)).count();
    w.record(json!({"failover_window": {"waited_ms": ms(started.elapsed()), "arrived": arrived, "sent": ids.len(), "all": all}}));
    Ok(())
}

/// The primary takes the next message and never answers: it is in flight when the route
/// then fails.
#[given("the primary holds the next message without answering")]
async fn primary_holds(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    w.router()?;
    let rx = w
        .fallback
        .routes
        .first()
        .ok_or_else(|| anyhow!("the routes are not running (hint: start with `Given the router's routes run through the fault proxy`)"))?;
    rx.rx
        .add_rule(Rule::new(Answer::Hang(Duration::from_secs(30))).times(1));
    Ok(())
}

#[when("the primary has the message in flight")]
async fn in_flight(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let r = w.router()?;
    let id = w
        .fallback
        .sent
        .last()
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            anyhow!("no message was sent (hint: `When the router is asked to send 1 message`)")
        })?;
    let primary = w
        .fallback
        .routes
        .first()
        .ok_or_else(|| anyhow!("the routes are not running"))?;
    let (ok, attempts) = primary
        .rx
        .wait_until(Instant::now() + r.first_delivery_timeout, |a| {
            a.iter()
                .any(|x| x.message_id.as_deref() == Some(id.as_str()))
        })
        .await;
    if !ok {
        fail!(
            "message {id} never reached the primary within {} ({} other attempts there)",
            humantime::format_duration(r.first_delivery_timeout),
            attempts.len()
        );
    }
    w.record(json!({"in_flight": {"id": id, "route": w.primary()?, "held": "the primary read it and does not answer"}}));
    Ok(())
}

#[when("the router is killed and restarted")]
async fn restart(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let restarter = w.ctx()?.restarter.clone().ok_or_else(|| {
        ProvstenWorld::not_applicable(
            "provsten does not start this IUT ([iut.start]), so it cannot restart it",
        )
    })?;
    let took = restarter.kill_and_restart().await?;
    w.record(json!({"restart": {"killed": "SIGKILL to the IUT's process group", "ready_after_ms": took.as_millis() as u64}}));
    Ok(())
}

#[then("every message sent during the outage arrives through a fallback within the failover time")]
async fn through_fallback(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let r = w.router()?;
    let primary = w.primary()?;
    let onset = w.fallback.onset.ok_or_else(|| {
        anyhow!("no route was broken (hint: `Given the route \"primary\" is down`)")
    })?;
    let during: Vec<Routed> = w
        .fallback
        .sent
        .iter()
        .filter(|s| s.during_outage)
        .cloned()
        .collect();
    if during.is_empty() {
        bail!("no message was sent during the outage (hint: break a route, then `When the router is asked to send 5 messages`)");
    }
    let allowed = r.failover_time + r.tolerance;
    let due = |s: &Routed| s.at.max(onset) + allowed;
    let last_due = during.iter().map(due).max().unwrap_or_else(Instant::now);
    let on_fallback = |a: &BTreeMap<String, Vec<Arrival>>, id: &str| {
        a.get(id)
            .and_then(|v| v.iter().find(|x| x.route != primary))
            .cloned()
    };
    let (_, arrivals) = w
        .wait_arrivals(last_due, |a| {
            during.iter().all(|s| on_fallback(a, &s.id).is_some())
        })
        .await;
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for s in &during {
        let from = s.at.max(onset);
        match on_fallback(&arrivals, &s.id) {
            Some(a) => {
                let took = a.at.saturating_duration_since(from);
                let ok = took <= allowed;
                rows.push(json!({"id": s.id, "route": a.route, "took_ms": ms(took), "allowed_ms": ms(allowed), "ok": ok}));
                if !ok {
                    bad.push(format!(
                        "{} arrived through {} after {} ms",
                        s.id,
                        a.route,
                        ms(took)
                    ));
                }
            }
            None => {
                let elsewhere = arrivals
                    .get(&s.id)
                    .map(|v| format!("only through {}", v[0].route))
                    .unwrap_or_else(|| "not at all".into());
                rows.push(json!({"id": s.id, "route": null, "allowed_ms": ms(allowed), "ok": false, "arrived": elsewhere}));
                bad.push(format!(
                    "{} did not arrive through a fallback within {} ms ({elsewhere})",
                    s.id,
                    ms(allowed)
                ));
            }
        }
    }
    let counts = w.route_counts(&arrivals);
    w.record(json!({"failover": {"onset_ms": w.since_epoch(onset), "messages": rows, "per_route": counts, "faults": w.fault_log()}}));
    if !bad.is_empty() {
        fail!(
            "{} of {} messages sent while {primary:?} was out did not arrive through a fallback within the failover time ({} + tolerance {}): {}",
            bad.len(),
            during.len(),
            humantime::format_duration(r.failover_time),
            humantime::format_duration(r.tolerance),
            bad.join("; ")
        );
    }
    Ok(())
}

impl ProvstenWorld {
    fn fault_log(&self) -> Vec<Value> {
        self.fallback
            .windows
            .iter()
            .map(|f| {
                json!({"link": f.link, "fault": f.what, "from_ms": self.since_epoch(f.from), "to_ms": f.to.map(|t| self.since_epoch(t))})
            })
            .collect()
    }
}

#[then("no message is lost or delivered twice")]
async fn no_loss(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let r = w.router()?;
    if w.fallback.sent.is_empty() {
        bail!("no message was sent (hint: `When the router is asked to send 5 messages`)");
    }
    let (lost, _) = w
        .all_arrived(r.first_delivery_timeout + r.failover_time)
        .await;
    // Watch a little longer for late repeats (a resend after failback, say).
    let quiet = QUIET;
    let ids: Vec<String> = w.fallback.sent.iter().map(|s| s.id.clone()).collect();
    let before = w.arrivals();
    let (_, arrivals) = w
        .wait_arrivals(Instant::now() + quiet, |a| {
            ids.iter()
                .any(|id| a.get(id).map_or(0, Vec::len) > before.get(id).map_or(0, Vec::len))
        })
        .await;
    let arrivals = if arrivals.values().map(Vec::len).sum::<usize>()
        > before.values().map(Vec::len).sum::<usize>()
    {
        // A repeat came in: give others the same window to show up too.
        w.wait_arrivals(Instant::now() + quiet, |_| false).await.1
    } else {
        arrivals
    };
    let grace = r.failover_time;
    let mut duplicates = Vec::new();
    let mut excused = Vec::new();
    let mut changed = Vec::new();
    for s in &w.fallback.sent {
        let Some(got) = arrivals.get(&s.id) else {
            continue;
        };
        for a in got {
            let h = a.attempt.body_sha256.clone().unwrap_or_default();
            if h != s.sha256 {
                changed.push(format!(
                    "{} through {} (body sha256 {h}, sent {})",
                    s.id, a.route, s.sha256
                ));
            }
        }
        for (i, a) in got.iter().enumerate().skip(1) {
            let earlier = &got[..i];
            let row = json!({"id": s.id, "route": a.route, "at_ms": w.since_epoch(a.at), "started_ms": w.since_epoch(a.attempt.started), "earlier": earlier.iter().map(|e| json!({"route": e.route, "at_ms": w.since_epoch(e.at)})).collect::<Vec<_>>()});
            let may_repeat = r.delivery == Delivery::AtLeastOnce
                && w.allowed_repeat(earlier, a, grace, r.tolerance);
            if may_repeat {
                excused.push(row);
            } else {
                duplicates.push(row);
            }
        }
    }
    let counts = w.route_counts(&arrivals);
    let exits = w.trigger_exits(&lost);
    w.record(json!({"delivery": {
        "sent": w.fallback.sent.len(),
        "lost": lost,
        "duplicates": duplicates,
        "repeats_after_unconfirmed_delivery": excused,
        "changed": changed,
        "per_route": counts,
        "declared": r.delivery,
        "faults": w.fault_log(),
        "trigger": exits,
    }}));
    let mut problems = Vec::new();
    if !lost.is_empty() {
        problems.push(format!(
            "{} of {} messages never arrived: {}",
            lost.len(),
            w.fallback.sent.len(),
            lost.join(", ")
        ));
    }
    if !duplicates.is_empty() {
        let why = match r.delivery {
            Delivery::ExactlyOnce => "the router declares exactly-once delivery",
            Delivery::AtLeastOnce => {
                "at-least-once allows a repeat only after a delivery whose acknowledgement a fault may have lost, and these followed acknowledged deliveries"
            }
        };
        problems.push(format!(
            "{} delivered twice ({why}): {}",
            duplicates.len(),
            duplicates
                .iter()
                .map(|d| format!(
                    "{} again through {}",
                    d["id"].as_str().unwrap_or("?"),
                    d["route"].as_str().unwrap_or("?")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !changed.is_empty() {
        problems.push(format!("arrived changed: {}", changed.join("; ")));
    }
    if !problems.is_empty() {
        fail!("{}", problems.join("; "));
    }
    Ok(())
}

#[then("the fallback deliveries are valid and carry the router's identity")]
async fn coordinated(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let r = w.router()?;
    let primary = w.primary()?;
    let ctx = w.ctx()?;
    let (_, arrivals) = w
        .all_arrived(r.first_delivery_timeout + r.failover_time)
        .await;
    let expected_org = match &r.client_cert {
        Some(c) => ctx.pki.cert(c).ok().and_then(|e| e.org.clone()),
        None => arrivals
            .values()
            .flatten()
            .find(|a| a.route == primary)
            .and_then(|a| a.attempt.client_org.clone()),
    };
    let Some(expected_org) = expected_org else {
        fail!("no identity to compare with: router.client_cert is not set and nothing arrived through the primary");
    };
    // Only messages sent while a route was out: a baseline message that went through the
    // fallback (the router still settling onto its primary) proves nothing here.
    let sent: BTreeMap<&str, &str> = w
        .fallback
        .sent
        .iter()
        .filter(|s| s.during_outage)
        .map(|s| (s.id.as_str(), s.sha256.as_str()))
        .collect();
    let fallback: Vec<&Arrival> = arrivals
        .values()
        .flatten()
        .filter(|a| {
            a.route != primary
                && sent.contains_key(a.attempt.message_id.as_deref().unwrap_or_default())
        })
        .collect();
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for a in &fallback {
        let id = a.attempt.message_id.clone().unwrap_or_default();
        let mut why = Vec::new();
        if a.attempt.client_org.as_deref() != Some(expected_org.as_str()) {
            why.push(format!(
                "presented organisation {} (subject {}), expected {expected_org}",
                a.attempt.client_org.as_deref().unwrap_or("none"),
                a.attempt.client_subject.as_deref().unwrap_or("none")
            ));
        }
        if !a.attempt.violations.is_empty() {
            why.push(format!("schema: {}", a.attempt.violations.join("; ")));
        }
        if a.attempt.body_sha256.as_deref() != sent.get(id.as_str()).copied() {
            why.push("the body differs from the message the router was given".into());
        }
        rows.push(json!({"id": id, "route": a.route, "client_org": a.attempt.client_org, "client_subject": a.attempt.client_subject, "tls": a.attempt.tls_version, "violations": a.attempt.violations, "ok": why.is_empty()}));
        if !why.is_empty() {
            bad.push(format!("{id} through {}: {}", a.route, why.join(", ")));
        }
    }
    w.record(json!({"coordination": {"expected_org": expected_org, "fallback_deliveries": rows}}));
    if fallback.is_empty() {
        fail!("no message arrived through a fallback route, so what the fallback delivers could not be checked (the router did not fail over)");
    }
    if !bad.is_empty() {
        fail!(
            "{} of {} fallback deliveries would not be accepted as the primary's: {}",
            bad.len(),
            fallback.len(),
            bad.join("; ")
        );
    }
    Ok(())
}

#[then("deliveries return to the primary within the failback time")]
async fn fails_back(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let r = w.router()?;
    let primary = w.primary()?;
    let recovered = w.fallback.recovered.ok_or_else(|| {
        anyhow!("no route recovered (hint: `When the route \"primary\" recovers`)")
    })?;
    let (bound, stay) = match r.failback {
        Failback::Within(d) => (d + r.tolerance, false),
        Failback::Stay => (r.failover_time + r.tolerance, true),
    };
    // Messages every 100 ms until well past the bound: the ones after it show the route.
    let until = recovered + bound + Duration::from_millis(600);
    let first_new = w.fallback.sent.len();
    while Instant::now() < until {
        w.route_one().await?;
        tokio::time::sleep(FAILBACK_PROBE_EVERY).await;
    }
    let probes: Vec<Routed> = w.fallback.sent[first_new..].to_vec();
    let ids: Vec<String> = probes.iter().map(|s| s.id.clone()).collect();
    let (_, arrivals) = w
        .wait_arrivals(Instant::now() + r.first_delivery_timeout, |a| {
            ids.iter().all(|id| a.contains_key(id))
        })
        .await;
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut first_primary: Option<Duration> = None;
    for s in &probes {
        let after = s.at.saturating_duration_since(recovered);
        let route = arrivals.get(&s.id).map(|v| v[0].route.clone());
        if route.as_deref() == Some(primary.as_str()) && first_primary.is_none() {
            first_primary = Some(after);
        }
        let must_be_primary = !stay && after >= bound;
        let ok = match (&route, stay) {
            (None, _) => false,
            (Some(rt), true) => *rt != primary,
            (Some(rt), false) => !must_be_primary || *rt == primary,
        };
        rows.push(
            json!({"id": s.id, "sent_after_recovery_ms": ms(after), "route": route, "ok": ok}),
        );
        if !ok {
            bad.push(format!(
                "{} (sent {} ms after recovery) {}",
                s.id,
                ms(after),
                route.map_or("never arrived".to_string(), |rt| format!(
                    "went through {rt}"
                ))
            ));
        }
    }
    w.record(json!({"failback": {"declared": r.failback.to_string(), "bound_ms": ms(bound), "first_primary_delivery_after_recovery_ms": first_primary.map(ms), "messages": rows}}));
    if !bad.is_empty() {
        let want = if stay {
            "stay on the fallback (failback = \"stay\")".to_string()
        } else {
            format!(
                "be back on {primary:?} within {} (+ tolerance {}) of its recovery",
                humantime::format_duration(bound - r.tolerance),
                humantime::format_duration(r.tolerance)
            )
        };
        fail!("deliveries did not {want}: {}", bad.join("; "));
    }
    Ok(())
}

/// Runs a named timeline on the route links while the router is asked to send messages at
/// a steady pace; the fault windows are the ones the driver applied.
#[when(
    regex = r#"^the fault timeline "([^"]+)" runs while the router is asked to send a message every (\d+) ms$"#
)]
async fn timeline_with_load(w: &mut ProvstenWorld, name: String, every: u64) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let t = crate::network::timeline::find_checked(&name, &ctx.timeline_dirs)?;
    let mut links = Vec::new();
    for l in t.links() {
        let real = w.route_link(&l).ok_or_else(|| {
            anyhow!(
                "timeline {name:?} breaks the link {l:?}, which is not one of the router's routes"
            )
        })?;
        links.push((l, real));
    }
    let total = t.duration();
    let start = Instant::now();
    let driver = super::network::spawn_timeline(t.phases.clone(), links, ctx.faults.clone(), start);
    let every = Duration::from_millis(every.max(1));
    let mut next = start;
    while next < start + total {
        tokio::time::sleep_until(next.into()).await;
        w.route_one().await?;
        next += every;
    }
    let applied = super::network::finish_timeline(driver, total).await?;
    w.note_applied(&applied);
    let log: Vec<Value> = applied
        .iter()
        .map(|a| json!({"phase": a.phase, "link": a.link, "fault": a.fault, "apply": a.apply, "at_ms": ms(a.at.saturating_duration_since(start)), "ok": a.ok}))
        .collect();
    w.record(json!({"timeline": name, "description": t.description, "duration_ms": ms(total), "messages": w.fallback.sent.len(), "phases": log}));
    Ok(())
}
