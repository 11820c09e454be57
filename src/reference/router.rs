//! The reference IUT as a router (role `router`: CONT-ROUTE-1, CONT-ROUTE-2, CONT-NOLOSS,
//! CONT-FAILBACK). A message queued without a `to` goes through the `--route`s, the first
//! being the primary and the rest fallbacks in order.
//!
//! - One shared `active` route, the primary at start. A message is tried on `active`; a
//!   failure (refused, reset, timeout, TLS, or a status the policy retries: 5xx, 429…)
//!   marks the route failed, records a failover event, moves `active` on to the next route
//!   in priority order, wrapping round (when the failed one was `active`), and tries the
//!   message there at once, and so on through every route: one round.
//! - Only when every route failed in one round does the message wait the policy's delay
//!   before its next round. When no route took any message during that round or the
//!   policy's first delay before it, every route is taken as down and the wait is shared:
//!   all messages are held, and each time the delay passes one of them (a different one
//!   each time) tries a round, so an outage costs one round per delay, not one per held
//!   message. The first message a route takes, or a primary that answers the failback
//!   probe, releases them all.
//! - In router mode the policy's limits (`max_attempts`, `max_total`) do not apply: the
//!   router never gives up on a failure, it holds the message until a route returns. A
//!   refused, reset, timed-out or TLS-failed attempt is always a route failure; a status
//!   is judged by the policy: a permanent one (e.g. 4xx) makes the message undeliverable,
//!   as in the sender. One attempt on one route has `--route-timeout` for connect, TLS,
//!   request and answer. There is no backlog pacing; `ordered` keeps per-entity order.
//! - While `active` is not the primary, the primary is probed every `--failback-probe`
//!   (TCP connect and TLS handshake with the router's client certificate, within the
//!   route timeout); when it answers, `active` is the primary again (a failback event).
//! - At least once: an attempt that failed after its request was sent is tried again on
//!   the next route, with the same message id and body on every route. Every route sees
//!   the same client certificate (`--client-cert`) and has its server certificate checked.
//! - Each route keeps a small pool of HTTP/1.1 keep-alive connections; a connection that
//!   fails in any way is dropped. A kept-alive connection the receiver closed meanwhile is
//!   replaced by a fresh one within the same attempt.
//! - Routed messages live in the sender's outbox (its journal), so a restarted router
//!   resumes them; the route that delivered each is in its record.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::audit::Audit;
use super::audit::{now_rfc3339, Direction};
use super::client::Target;
use super::client::{client_connector, describe, parse_retry_after, parse_url, tls_or_reset};
use super::defects::{Defect, Defects};
use super::outbox::{now_ms, Durable, Outbox, Record, State};
use crate::pki::Pki;
use crate::shared::resend_policy::{Decision, Outcome, ResendPolicy};

/// Default of `--route-timeout`.
pub(crate) const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_millis(300);
/// Default of `--failback-probe`.
pub(crate) const DEFAULT_FAILBACK_PROBE: Duration = Duration::from_millis(100);
/// Routed messages in delivery at once.
const WORKERS: usize = 32;
/// Attempts in flight on one route at once, so connections to it at most.
const ROUTE_SLOTS: usize = 16;
/// Connections being opened to one route at once: a burst of TLS handshakes (a batch on
/// an empty pool, a failback) would miss the route timeout on a busy machine.
const ROUTE_CONNECTING: usize = 2;
/// Idle keep-alive connections kept per route.
const POOL_IDLE: usize = ROUTE_SLOTS;
/// Route events kept for `GET /admin/routes`.
const EVENTS_CAP: usize = 10_000;
/// How long the `slow-failover` defect sticks to a failing primary.
const SLOW_FAILOVER: Duration = Duration::from_secs(3);
/// The certificate the `fallback-wrong-identity` defect presents on fallbacks (another
/// organisation's).
const WRONG_IDENTITY: &str = "client-5560000002";

/// One `--route [LANE/]NAME=URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The router lane: an independent router with its own routes (1 when not given).
    pub lane: u16,
    pub name: String,
    pub url: String,
}

impl FromStr for RouteSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hint = "expected [LANE/]NAME=https://HOST:PORT/PATH, e.g. --route primary=https://127.0.0.1:9001/v1/notifications or --route 2/primary=…";
        let Some((name, url)) = s.split_once('=') else {
            return Err(format!("{s:?} has no '=' ({hint})"));
        };
        let (lane, name) = match name.split_once('/') {
            None => (1, name.trim()),
            Some((lane, name)) => match lane.trim().parse::<u16>() {
                Ok(l) if l >= 1 => (l, name.trim()),
                _ => return Err(format!("lane {lane:?} is not a number from 1 ({hint})")),
            },
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "route name {name:?} is not a name of letters, digits, '-', '_' or '.' ({hint})"
            ));
        }
        let url = url.trim();
        let t = parse_url("the route URL", url).map_err(|e| format!("{e} ({hint})"))?;
        if !t.explicit_port {
            return Err(format!("{url:?} has no port ({hint})"));
        }
        Ok(RouteSpec {
            lane,
            name: name.to_string(),
            url: url.to_string(),
        })
    }
}

/// How the reference IUT routes. Without routes the router is off.
#[derive(Debug, Clone)]
pub(crate) struct RouterOptions {
    /// In priority order: the primary first.
    pub routes: Vec<RouteSpec>,
    /// Deadline of one attempt on one route (connect, TLS, request and answer).
    pub route_timeout: Duration,
    /// How often the primary is probed while it is not the active route.
    pub failback_probe: Duration,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            routes: Vec::new(),
            route_timeout: DEFAULT_ROUTE_TIMEOUT,
            failback_probe: DEFAULT_FAILBACK_PROBE,
        }
    }
}

/// A pooled HTTP/1.1 connection; dropping it closes it.
struct Conn {
    send: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

struct Route {
    name: String,
    target: Target,
    connector: TlsConnector,
    idle: Mutex<Vec<Conn>>,
    delivered: AtomicU64,
    /// Waited for before an attempt's deadline starts: local queueing is not the route's
    /// fault.
    slots: Semaphore,
    connecting: Semaphore,
    /// When an attempt on it last failed.
    failed_at: Mutex<Option<Instant>>,
}

#[derive(Debug, Clone, Serialize)]
struct Event {
    at: String,
    unix_ms: u64,
    kind: &'static str,
    from: String,
    to: String,
    reason: String,
}

/// Every route failed a round: messages wait until `until`, then one scout tries a round.
struct Hold {
    until: Instant,
    /// Rounds failed in a row.
    round: u32,
    scout_out: bool,
}

#[derive(Default)]
struct Queue {
    /// Messages whose turn it is, oldest first.
    ready: VecDeque<u64>,
    /// Messages ready, waiting or in delivery: never two deliveries of one message.
    queued: HashSet<u64>,
    /// Every route down: all wait, a scout tries.
    hold: Option<Hold>,
    /// Messages waiting out their own delay after a round that failed while routes
    /// answered other messages (a flaky network, not an outage), by due time.
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Failed rounds of each message, for its delay.
    rounds: HashMap<u64, u32>,
    /// When a route last answered.
    last_answer: Option<Instant>,
}

/// What a router needs of the sender that owns it: the outbox (its journal), the policy,
/// the audit log and its tasks. The sender implements it, so this module need not import
/// the sender.
pub(super) trait Owner: Send + Sync + 'static {
    /// The outbox, locked.
    fn lock(&self) -> MutexGuard<'_, Outbox>;
    /// The router of `lane` (from 1).
    fn router(&self, lane: u16) -> Option<&Router>;
    /// The resend policy.
    fn policy(&self) -> &ResendPolicy;
    /// The audit log.
    fn audit(&self) -> &Audit;
    /// Runs `task` until the owner stops.
    fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static);
    /// Keeps routed records and appends them to the journal.
    fn stage(&self, records: Vec<Record>) -> anyhow::Result<Durable>;
    /// Appends a routed record to the journal.
    fn append(&self, r: &Record) -> anyhow::Result<Durable>;
    /// A message of `entity` became final: its successor's turn.
    fn after_final(&self, entity: Option<&str>);
}

pub(super) struct Router {
    routes: Vec<Route>,
    timeout: Duration,
    probe_every: Duration,
    defects: Defects,
    /// Index of the active route.
    active: AtomicUsize,
    events: Mutex<Vec<Event>>,
    queue: Mutex<Queue>,
    wake: Notify,
    /// `slow-failover`: when the primary started failing.
    primary_failing_since: Mutex<Option<Instant>>,
    /// `duplicates-on-failback`: messages delivered through a fallback since the last
    /// failover.
    via_fallback: Mutex<Vec<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a failover event gives as its reason.
fn reason(o: &Outcome) -> String {
    match o {
        Outcome::Status { status, .. } => status.to_string(),
        Outcome::Timeout => "timeout".into(),
        Outcome::Reset => "reset".into(),
        Outcome::Refused => "refused".into(),
        Outcome::Tls => "tls".into(),
    }
}

impl Router {
    pub(super) fn new(
        pki: &Pki,
        opts: &RouterOptions,
        client_cert: &str,
        defects: &Defects,
    ) -> anyhow::Result<Router> {
        let mut names = HashSet::new();
        for r in &opts.routes {
            if !names.insert(r.name.as_str()) {
                anyhow::bail!(
                    "--route {}: the name {:?} is given twice (hint: name each route once, e.g. primary=… backup=…)",
                    r.name,
                    r.name
                );
            }
        }
        if opts.route_timeout.is_zero() {
            anyhow::bail!("--route-timeout is 0 (hint: --route-timeout 300ms)");
        }
        if opts.failback_probe.is_zero() {
            anyhow::bail!("--failback-probe is 0 (hint: --failback-probe 100ms)");
        }
        let own = client_connector(pki, client_cert, false)?;
        let wrong = if defects.has(Defect::FallbackWrongIdentity) {
            Some(client_connector(pki, WRONG_IDENTITY, false)?)
        } else {
            None
        };
        let mut routes = Vec::new();
        for (i, spec) in opts.routes.iter().enumerate() {
            let target = parse_url("the route URL", &spec.url)
                .map_err(|e| anyhow::anyhow!("--route {}={}: {e}", spec.name, spec.url))?;
            let connector = match (&wrong, i) {
                (Some(w), 1..) => w.clone(),
                _ => own.clone(),
            };
            routes.push(Route {
                name: spec.name.clone(),
                target,
                connector,
                idle: Mutex::new(Vec::new()),
                delivered: AtomicU64::new(0),
                slots: Semaphore::new(ROUTE_SLOTS),
                connecting: Semaphore::new(ROUTE_CONNECTING),
                failed_at: Mutex::new(None),
            });
        }
        Ok(Router {
            routes,
            timeout: opts.route_timeout,
            probe_every: opts.failback_probe,
            defects: defects.clone(),
            active: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            primary_failing_since: Mutex::new(None),
            via_fallback: Mutex::new(Vec::new()),
        })
    }

    /// Starts the workers and the failback probe of lane `lane` as tasks of the sender.
    pub(super) fn start<S: Owner>(sender: &Arc<S>, lane: u16) {
        for _ in 0..WORKERS {
            let s = sender.clone();
            sender.spawn_task(async move {
                if let Some(r) = s.router(lane) {
                    r.work(&*s).await;
                }
            });
        }
        let s = sender.clone();
        sender.spawn_task(async move {
            if let Some(r) = s.router(lane) {
                r.probe_loop(&s, lane).await;
            }
        });
    }

    /// Queues messages whose turn it is (a message already queued is not queued again).
    pub(super) fn enqueue(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut n = 0;
        {
            let mut q = lock(&self.queue);
            for s in seqs {
                if q.queued.insert(s) {
                    q.ready.push_back(s);
                    n += 1;
                }
            }
        }
        for _ in 0..n.min(WORKERS) {
            self.wake.notify_one();
        }
    }

    /// `GET /admin/routes`.
    pub(super) fn describe(&self) -> Value {
        let active = self.active.load(Ordering::SeqCst);
        json!({
            "active": self.routes.get(active).map(|r| r.name.as_str()),
            "routes": self.routes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            "events": *lock(&self.events),
            "delivered": self.routes.iter()
                .map(|r| (r.name.clone(), Value::from(r.delivered.load(Ordering::Relaxed))))
                .collect::<serde_json::Map<_, _>>(),
        })
    }

    async fn work<S: Owner>(&self, s: &S) {
        loop {
            let (seq, scout) = self.next().await;
            self.deliver(s, seq, scout).await;
        }
    }

    /// The next message to deliver, and whether it is the scout of a held round.
    async fn next(&self) -> (u64, bool) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let until = {
                let mut guard = lock(&self.queue);
                let q = &mut *guard;
                let now = Instant::now();
                while let Some(Reverse((due, seq))) = q.delayed.peek().copied() {
                    if due > now {
                        break;
                    }
                    q.delayed.pop();
                    q.ready.push_back(seq);
                }
                let next_due = q.delayed.peek().map(|Reverse((due, _))| *due);
                let held = match &mut q.hold {
                    None => match q.ready.pop_front() {
                        Some(seq) => return (seq, false),
                        None => None,
                    },
                    Some(h) if h.scout_out || q.ready.is_empty() => None,
                    Some(h) if now >= h.until => {
                        h.scout_out = true;
                        if let Some(seq) = q.ready.pop_front() {
                            return (seq, true);
                        }
                        None
                    }
                    Some(h) => Some(h.until),
                };
                match (held, next_due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            match until {
                Some(t) => {
                    let _ = tokio::time::timeout_at(t, notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// The routes of one round, in the order they are tried.
    fn round(&self) -> Vec<usize> {
        let n = self.routes.len();
        if n == 0 {
            return Vec::new();
        }
        if self.defects.has(Defect::NoFailover) {
            return vec![0];
        }
        let a = self.active.load(Ordering::SeqCst) % n;
        (0..n).map(|k| (a + k) % n).collect()
    }

    async fn deliver<S: Owner>(&self, s: &S, seq: u64, scout: bool) {
        let record = s
            .lock()
            .get(seq)
            .filter(|r| r.state == State::Pending)
            .cloned();
        let Some(mut r) = record else {
            self.done(seq, scout);
            return;
        };
        let body = Bytes::from(serde_json::to_vec(&*r.body.value()).unwrap_or_default());
        let started = Instant::now();
        for idx in self.round() {
            let Some(outcome) = self.attempt(idx, &mut r, body.clone(), Some(started)).await else {
                // The route failed for another message while this one waited for it.
                continue;
            };
            tracing::debug!(id = %r.id, route = %self.routes[idx].name, attempt = r.attempts, ?outcome, "routed attempt");
            r.last_outcome = Some(format!(
                "{} via {}",
                describe(&outcome),
                self.routes[idx].name
            ));
            let lost = outcome == Outcome::Timeout && self.defects.has(Defect::LosesInFlight);
            // A route that cannot be reached has failed, whatever the policy says of the
            // outcome; only an answer can be permanent.
            let decision = match outcome {
                Outcome::Status { .. } => s.policy().decide(&outcome),
                _ => Decision::Retry,
            };
            match decision {
                Decision::Delivered => return self.finish(s, r, Some(idx), scout).await,
                _ if lost => return self.finish(s, r, Some(idx), scout).await,
                Decision::Permanent => return self.finish(s, r, None, scout).await,
                Decision::Retry => {
                    if !self.route_failed(idx, &outcome) {
                        break;
                    }
                }
            }
        }
        // Every route of the round failed: the attempts are noted (not waited for), the
        // message waits for the next round.
        r.next_due_ms = now_ms();
        if let Ok(d) = s.stage(vec![r]) {
            drop(d);
        }
        self.round_failed(s, seq, scout, started);
    }

    /// A message is final: delivered through `via`, or (None) undeliverable.
    async fn finish<S: Owner>(&self, s: &S, mut r: Record, via: Option<usize>, scout: bool) {
        let seq = r.seq;
        r.finished_at = Some(now_rfc3339());
        r.state = match via {
            Some(i) => {
                r.route = Some(self.routes[i].name.clone());
                self.routes[i].delivered.fetch_add(1, Ordering::Relaxed);
                if i != 0 && self.defects.has(Defect::DuplicatesOnFailback) {
                    lock(&self.via_fallback).push(seq);
                }
                State::Delivered
            }
            None => State::Undeliverable,
        };
        if via == Some(0) {
            *lock(&self.primary_failing_since) = None;
        }
        let delivered = r.state == State::Delivered;
        let (id, entity) = (r.id.clone(), r.entity.clone());
        // A route answered: held messages may go.
        self.release_hold();
        let Ok(durable) = s.append(&r) else {
            self.done(seq, scout);
            return;
        };
        // The final state is shown once it is on disk (a restart would not resend it).
        if let Err(e) = durable.wait().await {
            tracing::warn!(%id, error = %e, "the final state of a routed message is not on disk");
        }
        s.lock().keep(r);
        self.done(seq, scout);
        if delivered {
            s.audit().record(&id, Direction::Sent);
        }
        s.after_final(entity.as_deref());
    }

    /// The message is no longer in delivery.
    fn done(&self, seq: u64, scout: bool) {
        let mut q = lock(&self.queue);
        q.queued.remove(&seq);
        q.rounds.remove(&seq);
        if scout {
            if let Some(h) = &mut q.hold {
                h.scout_out = false;
            }
            drop(q);
            self.wake.notify_waiters();
        }
    }

    /// A route answered: held messages may go.
    fn release_hold(&self) {
        let had = {
            let mut q = lock(&self.queue);
            q.last_answer = Some(Instant::now());
            q.hold.take().is_some()
        };
        if had {
            self.wake.notify_waiters();
        }
    }

    /// After a round (begun at `started`) failed on every route it tried.
    ///
    /// When a route took a message during the round or within the policy's first delay
    /// before it, the failure is this message's (a flaky link, a receiver refusing this
    /// one): it waits the policy's delay on its own and the others go on. Otherwise every
    /// route is taken as down: all messages are held for the policy's delay, then one
    /// scout tries a round (a held round that failed holds them for the next delay). The
    /// failed message goes to the back, so the next scout is another one: a message no
    /// route takes cannot hold the others.
    fn round_failed<S: Owner>(&self, s: &S, seq: u64, scout: bool, started: Instant) {
        let now = Instant::now();
        let window = s.policy().delay(2);
        {
            let mut guard = lock(&self.queue);
            let q = &mut *guard;
            let rounds = q.rounds.entry(seq).or_insert(0);
            *rounds = rounds.saturating_add(1);
            let rounds = *rounds;
            if q.last_answer.is_some_and(|t| t + window >= started) {
                q.delayed
                    .push(Reverse((now + self.round_delay(s, rounds), seq)));
                if scout {
                    if let Some(h) = &mut q.hold {
                        h.scout_out = false;
                    }
                }
                drop(guard);
                self.wake.notify_waiters();
                return;
            }
            q.ready.push_back(seq);
            match &mut q.hold {
                None => {
                    q.hold = Some(Hold {
                        until: now + self.round_delay(s, 1),
                        round: 1,
                        scout_out: false,
                    })
                }
                Some(h) if scout => {
                    h.round = h.round.saturating_add(1);
                    h.until = now + self.round_delay(s, h.round);
                    h.scout_out = false;
                }
                Some(_) => {}
            }
        }
        self.wake.notify_waiters();
    }

    /// The wait after `round` failed rounds in a row: the policy's delay before attempt
    /// `round + 1`, with its jitter.
    fn round_delay<S: Owner>(&self, s: &S, round: u32) -> Duration {
        let p = s.policy();
        let mut delay = p.delay(round.saturating_add(1));
        if p.jitter > 0.0 {
            let f = rand::thread_rng().gen_range(-p.jitter..=p.jitter);
            delay = delay.mul_f64((1.0 + f).max(0.0));
        }
        if self.defects.has(Defect::SlowFailover) {
            if let Some(since) = *lock(&self.primary_failing_since) {
                let left = SLOW_FAILOVER.saturating_sub(since.elapsed());
                if !left.is_zero() {
                    delay = delay.min(left);
                }
            }
        }
        delay
    }

    /// Route `idx` failed: a failover when it was the active one. Whether the round goes
    /// on to the next route.
    fn route_failed(&self, idx: usize, outcome: &Outcome) -> bool {
        *lock(&self.routes[idx].failed_at) = Some(Instant::now());
        let n = self.routes.len();
        if self.defects.has(Defect::NoFailover) || n < 2 {
            return false;
        }
        if idx == 0 && self.defects.has(Defect::SlowFailover) {
            let since = *lock(&self.primary_failing_since).get_or_insert_with(Instant::now);
            if since.elapsed() < SLOW_FAILOVER {
                return false;
            }
        }
        let next = (idx + 1) % n;
        if self
            .active
            .compare_exchange(idx, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            if idx == 0 {
                lock(&self.via_fallback).clear();
            }
            self.event("failover", idx, next, reason(outcome));
        }
        true
    }

    fn event(&self, kind: &'static str, from: usize, to: usize, reason: String) {
        let e = Event {
            at: now_rfc3339(),
            unix_ms: now_ms(),
            kind,
            from: self.routes[from].name.clone(),
            to: self.routes[to].name.clone(),
            reason,
        };
        tracing::info!(kind, from = %e.from, to = %e.to, reason = %e.reason, "route change");
        let mut events = lock(&self.events);
        if events.len() < EVENTS_CAP {
            events.push(e);
        }
    }

    /// While the primary is not active, probe it; when it answers, fail back.
    async fn probe_loop<S: Owner>(&self, s: &Arc<S>, lane: u16) {
        if self.defects.has(Defect::NeverFailsBack) || self.routes.len() < 2 {
            return;
        }
        let mut tick = tokio::time::interval(self.probe_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let from = self.active.load(Ordering::SeqCst);
            if from == 0 || !self.probe(0).await {
                continue;
            }
            if self
                .active
                .compare_exchange(from, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            *lock(&self.primary_failing_since) = None;
            self.event("failback", from, 0, "probe".into());
            self.release_hold();
            if self.defects.has(Defect::DuplicatesOnFailback) {
                let again = std::mem::take(&mut *lock(&self.via_fallback));
                let s2 = s.clone();
                s.spawn_task(async move {
                    if let Some(r) = s2.router(lane) {
                        r.send_again(&*s2, again).await;
                    }
                });
            }
        }
    }

    /// `duplicates-on-failback`: messages already delivered go through the primary again.
    async fn send_again<S: Owner>(&self, s: &S, seqs: Vec<u64>) {
        for seq in seqs {
            let Some(mut r) = s.lock().get(seq).cloned() else {
                continue;
            };
            let body = Bytes::from(serde_json::to_vec(&*r.body.value()).unwrap_or_default());
            let outcome = self.attempt(0, &mut r, body, None).await;
            tracing::debug!(id = %r.id, ?outcome, "sent again through the primary");
        }
    }

    /// TCP connect and TLS handshake with the route's client certificate, within the
    /// route timeout (no request is sent).
    /// The connection it opened is kept for the traffic that follows.
    async fn probe(&self, idx: usize) -> bool {
        let route = &self.routes[idx];
        match tokio::time::timeout(self.timeout, connect(route)).await {
            Ok(Ok(conn)) => {
                put_idle(route, conn);
                true
            }
            _ => false,
        }
    }

    /// One attempt of `r` on route `idx`, within the route timeout (counted in
    /// `r.attempts`). First a slot on the route, and a turn to connect when no kept-alive
    /// connection is free; None when, meanwhile, the route failed after the round began
    /// (`started`) and is no longer the active one.
    async fn attempt(
        &self,
        idx: usize,
        r: &mut Record,
        body: Bytes,
        started: Option<Instant>,
    ) -> Option<Outcome> {
        let route = &self.routes[idx];
        let failed_since_start = || {
            started.is_some_and(|t| {
                self.active.load(Ordering::SeqCst) != idx
                    && lock(&route.failed_at).is_some_and(|f| f >= t)
            })
        };
        // The semaphores are never closed.
        let _slot = route.slots.acquire().await.ok()?;
        let mut pooled = take_idle(route);
        let _connecting = match pooled {
            Some(_) => None,
            None => {
                let permit = route.connecting.acquire().await.ok()?;
                // One may have come back while this attempt waited.
                pooled = take_idle(route);
                Some(permit)
            }
        };
        if failed_since_start() {
            return None;
        }
        r.attempts = r.attempts.saturating_add(1);
        r.first_attempt_ms.get_or_insert_with(now_ms);
        let exchange = self.exchange(route, pooled, &r.id, r.attempts, body);
        Some(match tokio::time::timeout(self.timeout, exchange).await {
            Ok(o) => o,
            Err(_) => Outcome::Timeout,
        })
    }

    async fn exchange(
        &self,
        route: &Route,
        mut pooled: Option<Conn>,
        id: &str,
        n: u32,
        body: Bytes,
    ) -> Outcome {
        loop {
            let pooled = pooled.take();
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(c) => c,
                None => match connect(route).await {
                    Ok(c) => c,
                    Err(o) => return o,
                },
            };
            let req = Request::post(route.target.path.as_str())
                .header(hyper::header::HOST, route.target.authority.as_str())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header("x-message-id", id)
                .header("x-attempt", n.to_string())
                .body(Full::new(body.clone()));
            let Ok(req) = req else {
                // An id that cannot be a header value: no receiver could ever take it.
                return Outcome::Status {
                    status: 400,
                    retry_after: None,
                };
            };
            if conn.send.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Outcome::Reset;
            }
            match conn.send.try_send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(hyper::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let close = resp
                        .headers()
                        .get(hyper::header::CONNECTION)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    // The whole answer is read, so the connection can carry the next request.
                    let complete = resp.into_body().collect().await.is_ok();
                    if complete && !close {
                        put_idle(route, conn);
                    }
                    return Outcome::Status {
                        status,
                        retry_after,
                    };
                }
                Err(e) => {
                    // A kept-alive connection the receiver closed meanwhile: the request
                    // was not taken (or not answered at all); a fresh connection decides.
                    let unsent = e.message().is_some();
                    if reused && (unsent || e.error().is_incomplete_message()) {
                        continue;
                    }
                    return tls_or_reset(e.error());
                }
            }
        }
    }
}

fn take_idle(route: &Route) -> Option<Conn> {
    let mut idle = lock(&route.idle);
    while let Some(c) = idle.pop() {
        if !c.send.is_closed() {
            return Some(c);
        }
    }
    None
}

fn put_idle(route: &Route, conn: Conn) {
    let mut idle = lock(&route.idle);
    if idle.len() < POOL_IDLE {
        idle.push(conn);
    }
}

async fn connect(route: &Route) -> Result<Conn, Outcome> {
    let t = &route.target;
    let tcp = TcpStream::connect(&t.connect)
        .await
        .map_err(|_| Outcome::Refused)?;
    let _ = tcp.set_nodelay(true);
    let tls = route
        .connector
        .connect(t.server_name.clone(), tcp)
        .await
        .map_err(|e| tls_or_reset(&e))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| tls_or_reset(&e))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn { send, driver })
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
