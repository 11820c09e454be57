//! The reference IUT as a sender (FMK-2.6.3-RESEND): messages queued on the admin port
//! are written to the outbox first, then POSTed over mutual TLS, and retried as the
//! declared [`ResendPolicy`] says: its delays (scaled), jitter, Retry-After, limits, the
//! backlog pace and per-entity order. Every attempt's state is on disk before and after
//! it, so a killed sender resumes where it stopped.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::audit::{now_rfc3339, Audit, Direction};
use super::client::Target;
use super::client::{client_connector, describe, parse_retry_after, parse_target, tls_or_reset};
use super::defects::{Defect, Defects};
use super::outbox::{now_ms, until_ms, Durable, Outbox, Record, State};
use super::router::{Owner, Router, RouterOptions};
use crate::pki::Pki;
use crate::schema::xml_signature::{self, Signer};
use crate::shared::resend_policy::{Decision, Outcome, ResendPolicy};

/// The catalogue certificate the sender presents unless told otherwise.
pub(crate) const DEFAULT_CLIENT_CERT: &str = "client-5560000001";
/// Another registered organisation's identity: `signs-as-other-org` signs with it.
const OTHER_ORG_CERT: &str = "client-5560000002";
/// Attempts the policy type itself never exceeds.
const ATTEMPTS_CAP: u32 = 10_000;

/// How the reference IUT sends. Without a policy the sender is off.
#[derive(Debug, Clone)]
pub(crate) struct SenderOptions {
    /// Durable outbox directory (created if missing); None: memory only.
    pub outbox: Option<PathBuf>,
    pub policy: Option<ResendPolicy>,
    /// Catalogue name of the client certificate presented to receivers (and routes).
    pub client_cert: String,
    /// The routes of messages queued without a `to`; none: the router is off.
    pub router: RouterOptions,
    /// How long a delivered routed message's record and every audit entry stay in memory
    /// (None: for ever). Disk keeps the journal; a repeat of a forgotten id is new.
    pub retention: Option<Duration>,
    /// Role `client`: the most calls per second the API client makes.
    pub client_rate: f64,
}

/// The API client's request rate unless told otherwise (`--client-rate`).
pub(crate) const DEFAULT_CLIENT_RATE: f64 = 10.0;

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            outbox: None,
            policy: None,
            client_cert: DEFAULT_CLIENT_CERT.to_string(),
            router: RouterOptions::default(),
            retention: None,
            client_rate: DEFAULT_CLIENT_RATE,
        }
    }
}

/// Reads a policy as the harness writes it (`serde_json::to_string(&policy)`).
pub(crate) fn load_policy(path: &Path) -> anyhow::Result<ResendPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--resend-policy {}: cannot read it", path.display()))?;
    let p: ResendPolicy = serde_json::from_str(&text).with_context(|| {
        format!(
            "--resend-policy {}: not a resend policy as provsten writes it (resend-policy.json)",
            path.display()
        )
    })?;
    let bad = |what: String| -> anyhow::Result<ResendPolicy> {
        bail!("--resend-policy {}: {what}", path.display())
    };
    if !(p.time_scale.is_finite() && p.time_scale > 0.0 && p.time_scale <= 1.0) {
        return bad(format!(
            "time_scale {} is not above 0 and at most 1",
            p.time_scale
        ));
    }
    if !(0.0..=1.0).contains(&p.jitter) {
        return bad(format!("jitter {} is not a fraction from 0 to 1", p.jitter));
    }
    if p.delivery_timeout.is_zero() {
        return bad("delivery_timeout is 0".into());
    }
    if p.max_attempts == Some(0) {
        return bad("max_attempts is 0 (the first attempt counts)".into());
    }
    if p.max_attempts.is_none() && p.max_total.is_none() {
        return bad("the policy never gives up (neither max_attempts nor max_total)".into());
    }
    if let Some(r) = p.backlog_rate {
        if !(r.is_finite() && r > 0.0) {
            return bad(format!("backlog_rate {r} is not above 0"));
        }
    }
    Ok(p)
}

/// One message of `POST /admin/send` or `/admin/send-batch`, checked.
#[derive(Debug, Clone, PartialEq)]
struct NewMessage {
    id: String,
    /// None: routed.
    to: Option<String>,
    entity: Option<String>,
    body: Value,
}

const SEND_HINT: &str = "(expected {\"to\": \"https://127.0.0.1:PORT/v1/notifications\", \"message_id\": \"ID\", \"entity\": \"E\", \"body\": {...}}; without \"to\" the message is routed; an XML message has \"content_type\": \"application/xml\" and the document as a string in \"body\")";

/// What the reference puts at the head of an SDK message when it breaks a Schematron
/// rule (`sends-invalid-xml`): XHE's R3 wants the DIGG customization id.
const XHE_CUSTOMIZATION: &str = ">urn:fdc:digg.se:edelivery:xhe:1<";

fn parse_message(req: &Value) -> Result<NewMessage, String> {
    let hint = SEND_HINT;
    let Some(obj) = req.as_object() else {
        return Err(format!("the request is not a JSON object {hint}"));
    };
    let to = match obj.get("to") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => {
            parse_target(t)?;
            Some(t.clone())
        }
        Some(_) => return Err(format!("\"to\" is not a string {hint}")),
    };
    let id = match obj.get("message_id").and_then(Value::as_str) {
        Some(i) if !i.trim().is_empty() => i.to_string(),
        _ => {
            return Err(format!(
                "\"message_id\" is missing, empty or not a string {hint}"
            ))
        }
    };
    let entity = match obj.get("entity") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => return Err("\"entity\" is not a string".into()),
    };
    let Some(body) = obj.get("body").cloned() else {
        return Err(format!("\"body\" is missing {hint}"));
    };
    // A body that is a string is an XML document (the outbox keeps it as that string).
    match (obj.get("content_type").and_then(Value::as_str), &body) {
        (None, Value::String(_)) => {
            return Err(format!(
                "a string \"body\" needs \"content_type\": \"application/xml\" {hint}"
            ))
        }
        (Some(ct), Value::String(_)) if ct.eq_ignore_ascii_case("application/xml") => {}
        (Some(ct), _) if ct.eq_ignore_ascii_case("application/json") => {}
        (Some(ct), _) => {
            return Err(format!(
                "\"content_type\" {ct:?}: the sender sends JSON bodies and XML documents (application/xml, as a string) only {hint}"
            ))
        }
        (None, _) => {}
    }
    Ok(NewMessage {
        id,
        to,
        entity,
        body,
    })
}

fn same_message(r: &Record, m: &NewMessage) -> bool {
    r.to == m.to && r.entity == m.entity && r.body.is(&m.body)
}

pub(super) struct Sender {
    policy: ResendPolicy,
    defects: Defects,
    connector: TlsConnector,
    outbox: Mutex<Outbox>,
    /// A message became final: ordered successors may go.
    changed: Notify,
    /// The pace per receiver (its URL's authority): when the next attempt to it may start.
    /// Per receiver, since the rate protects a receiver recovering from an outage.
    pacer: Mutex<std::collections::HashMap<String, Instant>>,
    audit: Arc<Audit>,
    tasks: Mutex<JoinSet<()>>,
    /// Messages with a delivery task: never two for one message.
    active: Mutex<HashSet<u64>>,
    stopped: AtomicBool,
    /// Deliver messages queued without a `to`, one router per lane (lane 1 first); none
    /// without `--route`.
    routers: Vec<Router>,
    /// Signs the XML documents it sends (SDK-SPEC: signed by the sending organisation);
    /// none with `sends-unsigned-xml`.
    signer: Option<XmlSigner>,
}

/// Who signs the XML the sender sends, and the organisation it names as the XHE sender.
struct XmlSigner {
    signer: Signer,
    /// Set as FromParty before signing (`signs-as-other-org`); None: left as given.
    from_party: Option<String>,
}

impl XmlSigner {
    fn new(pki: &Pki, client_cert: &str, defects: &Defects) -> anyhow::Result<Option<XmlSigner>> {
        if defects.has(Defect::SendsUnsignedXml) {
            return Ok(None);
        }
        let (name, other) = if defects.has(Defect::SignsAsOtherOrg) {
            (OTHER_ORG_CERT, true)
        } else {
            (client_cert, false)
        };
        let signer = Signer::from_pki(pki, name)
            .with_context(|| format!("the sender's XML signing identity {name:?}"))?;
        let from_party = if other { signer.org.clone() } else { None };
        Ok(Some(XmlSigner { signer, from_party }))
    }

    /// `doc` signed; as it is when it cannot be parsed (the sender's best effort with what
    /// it was given).
    fn sign(&self, doc: String) -> String {
        let named = match &self.from_party {
            Some(org) => xml_signature::set_from_party(&doc, org).ok(),
            None => None,
        };
        match self.signer.sign(named.as_deref().unwrap_or(&doc)) {
            Ok(signed) => signed,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "sender: XML document sent unsigned");
                doc
            }
        }
    }
}

impl Sender {
    pub(super) fn new(
        pki: &Pki,
        policy: ResendPolicy,
        opts: &SenderOptions,
        defects: Defects,
        audit: Arc<Audit>,
    ) -> anyhow::Result<Sender> {
        let connector = client_connector(
            pki,
            &opts.client_cert,
            defects.has(Defect::SenderAcceptsBadCert),
        )?;
        let lanes = opts.router.routes.iter().map(|r| r.lane).max().unwrap_or(0);
        let mut routers = Vec::new();
        for lane in 1..=lanes {
            let routes: Vec<_> = opts
                .router
                .routes
                .iter()
                .filter(|r| r.lane == lane)
                .cloned()
                .collect();
            if routes.is_empty() {
                bail!("--route: lane {lane} has no route, but lane {lanes} has (hint: number the lanes 1, 2, … without gaps)");
            }
            let lane_opts = RouterOptions {
                routes,
                ..opts.router.clone()
            };
            routers.push(Router::new(pki, &lane_opts, &opts.client_cert, &defects)?);
        }
        let dir = if defects.has(Defect::LoseOnRestart) {
            None
        } else {
            opts.outbox.as_deref()
        };
        let signer = XmlSigner::new(pki, &opts.client_cert, &defects)?;
        let mut outbox = Outbox::open(dir)?;
        outbox.set_retention(opts.retention);
        for r in outbox.all() {
            if let (State::Delivered, Some(at)) = (r.state, &r.finished_at) {
                audit.record_at(&r.id, Direction::Sent, at.clone());
            }
        }
        Ok(Sender {
            policy,
            defects,
            connector,
            routers,
            outbox: Mutex::new(outbox),
            changed: Notify::new(),
            pacer: Mutex::new(std::collections::HashMap::new()),
            audit,
            tasks: Mutex::new(JoinSet::new()),
            active: Mutex::new(HashSet::new()),
            stopped: AtomicBool::new(false),
            signer,
        })
    }

    pub(super) fn describe(&self) -> String {
        self.policy.describe()
    }

    /// Resumes every pending message (after a restart), and starts the routers.
    pub(super) fn resume(self: &Arc<Self>) {
        let (addressed, routed): (Vec<_>, Vec<_>) = {
            let outbox = self.lock();
            let ordered = self.policy.ordered;
            let mut addressed = Vec::new();
            let mut routed = Vec::new();
            for r in outbox.pending() {
                if r.to.is_some() {
                    addressed.push(r.seq);
                } else if !(ordered && outbox.waits_for_predecessor(r.seq)) {
                    routed.push((r.lane, r.seq));
                }
            }
            (addressed, routed)
        };
        for seq in addressed {
            self.spawn(seq);
        }
        let mut stranded = 0;
        for (lane, seq) in routed {
            match self.router(lane) {
                Some(router) => router.enqueue([seq]),
                None => stranded += 1,
            }
        }
        if stranded > 0 {
            tracing::warn!(
                count = stranded,
                "routed messages wait in the outbox: start with --route for their lane to deliver them"
            );
        }
        for lane in 1..=self.routers.len() {
            Router::start(self, u16::try_from(lane).unwrap_or(u16::MAX));
        }
    }

    /// Stops delivering; nothing is written afterwards.
    pub(super) fn stop(&self) {
        let _guard = self.lock();
        self.stopped.store(true, Ordering::SeqCst);
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }

    pub(super) fn ids(&self, state: State) -> Vec<String> {
        self.lock().ids_in(state)
    }

    /// `GET /admin/outbox?detail`: every record without its body; `?id=ID`: one record.
    pub(super) fn records(&self, id: Option<&str>) -> Option<Value> {
        let outbox = self.lock();
        match id {
            Some(id) => outbox.find_id(id).map(Record::summary),
            None => Some(Value::Array(outbox.all().map(Record::summary).collect())),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The router of `lane` (from 1).
    pub(super) fn router(&self, lane: u16) -> Option<&Router> {
        self.routers.get(usize::from(lane).checked_sub(1)?)
    }

    pub(super) fn policy(&self) -> &ResendPolicy {
        &self.policy
    }

    pub(super) fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Runs `task` until the sender stops.
    pub(super) fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Ok(mut t) = self.tasks.lock() {
            while t.try_join_next().is_some() {}
            t.spawn(task);
        }
    }

    /// Keeps routed records and appends them to the journal (see [`Outbox::stage`]).
    pub(super) fn stage(&self, records: Vec<Record>) -> anyhow::Result<Durable> {
        let mut outbox = self.lock();
        if self.stopped.load(Ordering::SeqCst) {
            bail!("the sender is stopping");
        }
        Ok(outbox.stage(records))
    }

    /// Appends a routed record to the journal; keep it (`lock().keep`) once on disk.
    pub(super) fn append(&self, r: &Record) -> anyhow::Result<Durable> {
        let outbox = self.lock();
        if self.stopped.load(Ordering::SeqCst) {
            bail!("the sender is stopping");
        }
        Ok(outbox.append(std::slice::from_ref(r)))
    }

    /// A message of `entity` became final: its successor's turn (ordered policies).
    pub(super) fn after_final(&self, entity: Option<&str>) {
        if let (Some(e), true) = (entity, self.policy.ordered) {
            let next = {
                let outbox = self.lock();
                outbox
                    .first_pending_of(e)
                    .and_then(|s| outbox.get(s))
                    .filter(|r| r.to.is_none())
                    .map(|r| (r.lane, r.seq))
            };
            if let Some((lane, seq)) = next {
                if let Some(router) = self.router(lane) {
                    router.enqueue([seq]);
                }
            }
        }
        self.changed.notify_waiters();
    }

    fn spawn(self: &Arc<Self>, seq: u64) {
        let fresh = self
            .active
            .lock()
            .map(|mut a| a.insert(seq))
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let me = self.clone();
        if let Ok(mut t) = self.tasks.lock() {
            while t.try_join_next().is_some() {}
            t.spawn(async move {
                me.clone().deliver(seq).await;
                if let Ok(mut a) = me.active.lock() {
                    a.remove(&seq);
                }
            });
        }
    }

    fn put(&self, outbox: &mut Outbox, r: Record) -> anyhow::Result<()> {
        if self.stopped.load(Ordering::SeqCst) {
            bail!("the sender is stopping");
        }
        outbox.put(r)
    }

    /// `POST /admin/send[?lane=N]`: checks the request, writes it to the outbox, then
    /// answers. A message without a `to` goes through the router of `lane`.
    pub(super) async fn queue(self: &Arc<Self>, body: &[u8], lane: u16) -> (StatusCode, Value) {
        let req: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("the request is not JSON: {e} {SEND_HINT}")}),
                )
            }
        };
        let m = match parse_message(&req) {
            Ok(m) => m,
            Err(e) => return (StatusCode::BAD_REQUEST, json!({"error": e})),
        };
        let id = m.id.clone();
        match self.queue_all(vec![m], lane).await {
            Ok(()) => (StatusCode::ACCEPTED, json!({"queued": id})),
            Err(e) => e,
        }
    }

    /// `POST /admin/send-batch`: a JSON array of what `/admin/send` takes, queued all or
    /// nothing; the routed ones in one durable write.
    pub(super) async fn queue_batch(
        self: &Arc<Self>,
        body: &[u8],
        lane: u16,
    ) -> (StatusCode, Value) {
        let bad = |why: String| (StatusCode::BAD_REQUEST, json!({"error": why}));
        let req: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return bad(format!("the request is not JSON: {e} (expected a JSON array of messages as /admin/send takes them)")),
        };
        let Some(items) = req.as_array() else {
            return bad("the request is not a JSON array (expected a JSON array of messages as /admin/send takes them)".into());
        };
        let mut msgs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match parse_message(item) {
                Ok(m) => msgs.push(m),
                Err(e) => return bad(format!("message {i}: {e}")),
            }
        }
        let n = msgs.len();
        match self.queue_all(msgs, lane).await {
            Ok(()) => (StatusCode::ACCEPTED, json!({"queued": n})),
            Err(e) => e,
        }
    }

    /// Checks the messages against the outbox and each other, writes the new ones, then
    /// starts their delivery. Nothing is queued when one of them is refused.
    async fn queue_all(
        self: &Arc<Self>,
        msgs: Vec<NewMessage>,
        lane: u16,
    ) -> Result<(), (StatusCode, Value)> {
        let routed_any = msgs.iter().any(|m| m.to.is_none());
        if routed_any && self.router(lane).is_none() {
            let why = if self.routers.is_empty() {
                "no \"to\" and no route: give the message a \"to\", or start the reference IUT with --route NAME=https://HOST:PORT/PATH (repeatable; the first is the primary)".to_string()
            } else {
                format!("no router lane {lane}: the lanes are 1 to {} (start the reference IUT with --route {lane}/NAME=URL for more)", self.routers.len())
            };
            return Err((StatusCode::BAD_REQUEST, json!({ "error": why })));
        }
        let conflict = |id: &str| {
            (
                StatusCode::CONFLICT,
                json!({"error": "message_id already queued with a different message", "message_id": id}),
            )
        };
        let internal = |e: anyhow::Error| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("{e:#}")}),
            )
        };
        let (addressed, routed, durable) = {
            let mut outbox = self.lock();
            let mut seen: HashMap<&str, &NewMessage> = HashMap::new();
            let mut fresh = Vec::new();
            for m in &msgs {
                if let Some(old) = outbox.find_id(&m.id) {
                    if !same_message(old, m) {
                        return Err(conflict(&m.id));
                    }
                    continue;
                }
                match seen.get(m.id.as_str()) {
                    Some(prev) if *prev != m => return Err(conflict(&m.id)),
                    Some(_) => continue,
                    None => {
                        seen.insert(&m.id, m);
                        fresh.push(m);
                    }
                }
            }
            let mut seq = outbox.next_seq();
            let mut addressed = Vec::new();
            let mut routed = Vec::new();
            for m in fresh {
                let mut r = Record::new(
                    seq,
                    m.id.clone(),
                    m.to.clone(),
                    m.entity.clone(),
                    m.body.clone(),
                );
                r.lane = lane;
                seq += 1;
                if m.to.is_some() {
                    if let Err(e) = self.put(&mut outbox, r) {
                        return Err(internal(e));
                    }
                    addressed.push(seq - 1);
                } else {
                    routed.push(r);
                }
            }
            if !routed.is_empty() && self.stopped.load(Ordering::SeqCst) {
                return Err(internal(anyhow::anyhow!("the sender is stopping")));
            }
            let seqs: Vec<u64> = routed.iter().map(|r| r.seq).collect();
            let durable = (!routed.is_empty()).then(|| outbox.stage(routed));
            (addressed, seqs, durable)
        };
        for seq in addressed {
            self.spawn(seq);
        }
        if let Some(d) = durable {
            if let Err(e) = d.wait().await {
                self.lock().forget(&routed);
                return Err(internal(e));
            }
            if let Some(router) = self.router(lane) {
                let ready: Vec<u64> = {
                    let outbox = self.lock();
                    routed
                        .into_iter()
                        .filter(|s| !(self.policy.ordered && outbox.waits_for_predecessor(*s)))
                        .collect()
                };
                router.enqueue(ready);
            }
        }
        Ok(())
    }

    /// Waits until every earlier message of the same entity is final.
    async fn wait_turn(&self, seq: u64) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.lock().waits_for_predecessor(seq) {
                return;
            }
            // The timeout is a backstop only; a final message notifies.
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
    }

    async fn pace(&self, to: &str) {
        let Some(rate) = self.policy.backlog_rate else {
            return;
        };
        if self.defects.has(Defect::ResendStorm) {
            return;
        }
        let interval = Duration::from_secs_f64(1.0 / rate);
        let key = to
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or(to)
            .to_string();
        // The slot is taken when the attempt goes, not booked ahead: attempts booked ahead
        // and woken late (a busy machine) would all go at once.
        loop {
            let wait = {
                let mut pacer = self.pacer.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                match pacer.get(&key) {
                    Some(next) if *next > now => *next,
                    _ => {
                        pacer.insert(key, now + interval);
                        return;
                    }
                }
            };
            tokio::time::sleep_until(wait).await;
        }
    }

    async fn deliver(self: Arc<Self>, seq: u64) {
        if self.policy.ordered && !self.defects.has(Defect::IgnoreEntityOrder) {
            self.wait_turn(seq).await;
        }
        loop {
            let Some((due, to)) = self
                .lock()
                .get(seq)
                .filter(|r| r.state == State::Pending)
                .map(|r| (r.next_due_ms, r.to.clone().unwrap_or_default()))
            else {
                return;
            };
            tokio::time::sleep(until_ms(due)).await;
            self.pace(&to).await;
            // The attempt is on disk before it is made.
            let record = {
                let mut outbox = self.lock();
                let Some(mut r) = outbox.get(seq).cloned() else {
                    return;
                };
                r.attempts += 1;
                r.first_attempt_ms.get_or_insert_with(now_ms);
                r.next_due_ms = now_ms();
                if self.put(&mut outbox, r.clone()).is_err() {
                    return;
                }
                r
            };
            let n = record.attempts;
            let outcome = self.attempt(&record, n).await;
            tracing::debug!(id = %record.id, attempt = n, ?outcome, "delivery attempt");
            let mut decision = self.policy.decide(&outcome);
            if decision == Decision::Permanent && self.defects.has(Defect::RetryOnFourXx) {
                decision = Decision::Retry;
            }
            let mut r = record;
            r.last_outcome = Some(describe(&outcome));
            let next = match decision {
                Decision::Delivered => None,
                Decision::Permanent => Some(None),
                Decision::Retry => Some(self.schedule(&mut r, n, &outcome)),
            };
            match next {
                None => {
                    r.state = State::Delivered;
                    r.finished_at = Some(now_rfc3339());
                }
                Some(None) => {
                    r.state = State::Undeliverable;
                    r.finished_at = Some(now_rfc3339());
                }
                Some(Some(wait)) => {
                    r.next_due_ms = now_ms() + wait.as_millis() as u64;
                }
            }
            let state = r.state;
            let id = r.id.clone();
            let entity = r.entity.clone();
            {
                let mut outbox = self.lock();
                if self.put(&mut outbox, r).is_err() {
                    return;
                }
            }
            if state == State::Delivered {
                self.audit.record(&id, Direction::Sent);
            }
            if state != State::Pending {
                self.after_final(entity.as_deref());
                return;
            }
        }
    }

    /// After failed attempt `n`: how long until the next, or None when the limits say stop.
    /// Updates the record's policy-time offset.
    fn schedule(&self, r: &mut Record, n: u32, outcome: &Outcome) -> Option<Duration> {
        let p = &self.policy;
        if self.defects.has(Defect::NoRetry) {
            return None;
        }
        let next = n + 1;
        if p.max_attempts.is_some_and(|m| next > m) || next > ATTEMPTS_CAP {
            return None;
        }
        if self.defects.has(Defect::GiveUpEarly) && next >= p.attempt_limit() {
            return None;
        }
        let mut delay = p.delay(next);
        if self.defects.has(Defect::RetryTooFast) {
            delay /= 4;
        }
        if p.jitter > 0.0 {
            let f = rand::thread_rng().gen_range(-p.jitter..=p.jitter);
            delay = delay.mul_f64((1.0 + f).max(0.0));
        }
        let retry_after = match outcome {
            Outcome::Status {
                retry_after: Some(ra),
                ..
            } if p.honour_retry_after && !self.defects.has(Defect::IgnoreRetryAfter) => Some(*ra),
            _ => None,
        };
        // The offset in the policy's own time: the nominal delay, or longer when a
        // Retry-After (real time) pushed the attempt later.
        let mut step = p.nominal_delay(next);
        if let Some(ra) = retry_after {
            let scaled = p.delay(next);
            if ra > scaled {
                step += (ra - scaled).div_f64(p.time_scale);
            }
        }
        let offset = Duration::from_nanos(r.policy_offset_ns).saturating_add(step);
        if p.max_total.is_some_and(|t| offset > t) {
            return None;
        }
        r.policy_offset_ns = u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX);
        Some(retry_after.map_or(delay, |ra| delay.max(ra)))
    }

    async fn attempt(&self, r: &Record, n: u32) -> Outcome {
        let mut id = r.id.clone();
        let mut body = r.body.value().into_owned();
        if self.defects.has(Defect::NewIdPerAttempt) && n >= 2 {
            id = format!("{}-{n}", r.id);
            for pointer in ["/Identity", "/orderId"] {
                if let Some(v) = body.pointer_mut(pointer) {
                    if let Some(s) = v.as_str() {
                        *v = Value::String(format!("{s}-{n}"));
                        break;
                    }
                }
            }
        }
        if self.defects.has(Defect::SendsInvalidMessages) {
            match body.pointer_mut("/Type") {
                Some(t) => *t = Value::from(99),
                None => {
                    if let Some(o) = body.as_object_mut() {
                        o.insert("undeclared".into(), Value::Bool(true));
                    }
                }
            }
        }
        let target = match r.to.as_deref().map(parse_target) {
            Some(Ok(t)) => t,
            _ => return Outcome::Refused,
        };
        let (bytes, content_type) = match body {
            Value::String(mut doc) => {
                if self.defects.has(Defect::SendsInvalidXml) {
                    doc = doc.replacen(XHE_CUSTOMIZATION, ">urn:fdc:digg.se:edelivery:xhe:0<", 1);
                }
                // Signed last, so the signature covers what is sent.
                if let Some(s) = &self.signer {
                    doc = s.sign(doc);
                }
                (doc.into_bytes(), "application/xml")
            }
            other => (
                serde_json::to_vec(&other).unwrap_or_default(),
                "application/json",
            ),
        };
        match tokio::time::timeout(
            self.policy.delivery_timeout,
            self.post(&target, &id, n, content_type, bytes),
        )
        .await
        {
            Ok(o) => o,
            Err(_) => Outcome::Timeout,
        }
    }

    async fn post(
        &self,
        t: &Target,
        id: &str,
        n: u32,
        content_type: &str,
        body: Vec<u8>,
    ) -> Outcome {
        let tcp = match TcpStream::connect(&t.connect).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Outcome::Refused,
            Err(_) => return Outcome::Refused,
        };
        let tls = match self.connector.connect(t.server_name.clone(), tcp).await {
            Ok(s) => s,
            Err(e) => return tls_or_reset(&e),
        };
        let (mut send, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tls)).await
        {
            Ok(x) => x,
            Err(e) => return tls_or_reset(&e),
        };
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::post(t.path.as_str())
            .header(hyper::header::HOST, t.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header("x-message-id", id)
            .header("x-attempt", n.to_string())
            .body(Full::new(Bytes::from(body)));
        let req = match req {
            Ok(r) => r,
            // An id that cannot be a header value: the receiver could never take it.
            Err(_) => {
                conn.abort();
                return Outcome::Status {
                    status: 400,
                    retry_after: None,
                };
            }
        };
        let outcome = match send.send_request(req).await {
            Ok(resp) => Outcome::Status {
                status: resp.status().as_u16(),
                retry_after: resp
                    .headers()
                    .get(hyper::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after),
            },
            Err(e) => tls_or_reset(&e),
        };
        conn.abort();
        outcome
    }
}

// The router's view of its owner: each method is the inherent one of the same name (which
// path resolution picks first, so these do not recurse).
impl Owner for Sender {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        Sender::lock(self)
    }

    fn router(&self, lane: u16) -> Option<&Router> {
        Sender::router(self, lane)
    }

    fn policy(&self) -> &ResendPolicy {
        Sender::policy(self)
    }

    fn audit(&self) -> &Audit {
        Sender::audit(self)
    }

    fn spawn_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        Sender::spawn_task(self, task)
    }

    fn stage(&self, records: Vec<Record>) -> anyhow::Result<Durable> {
        Sender::stage(self, records)
    }

    fn append(&self, r: &Record) -> anyhow::Result<Durable> {
        Sender::append(self, r)
    }

    fn after_final(&self, entity: Option<&str>) {
        Sender::after_final(self, entity)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
#[path = "sender_tests.rs"]
pub(crate) mod tests;
