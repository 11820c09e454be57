//! Steps for resend policies (FMK-2.6.3-RESEND, FMK-2.6.4-LOG, SDK-5.1-TRACE).
//!
//! Role `sender`: the IUT is asked to send messages to a simulated receiver whose answer to
//! each attempt the scenario programs; attempts, intervals, ids, limits and final single
//! acceptance are compared with the declared policy, within its tolerance.
//! Role `receiver`: the harness delivers duplicates and out-of-order messages to the IUT
//! and checks, through its observation hook, that each id is processed once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use cucumber::{given, then, when};
use serde_json::{json, Value};

use super::ProvstenWorld;
use crate::iut::{observe, SenderContext, Trigger, XmlMessageType};
use crate::peers::receiver::{Answer, Attempt, ReceiverSpec, RetryAfter, Rule, SimulatedReceiver};
use crate::peers::Outcome as ExchangeOutcome;
use crate::report::model::{Evidence, ResendAttempt, ResendTimeline};
use crate::shared::resend_policy::{Decision, Outcome as PolicyOutcome, ResendPolicy};

/// Slack for the IUT's own processing beyond the policy's numbers (a trigger, a write to
/// its outbox, a TLS handshake), so a loaded machine is not mistaken for a late retry.
pub(super) const PROCESSING_SLACK: Duration = Duration::from_millis(1500);

/// A rule waiting for the message ids it names (known once the When step makes them).
#[derive(Debug, Clone)]
struct PendingRule {
    answer: Answer,
    times: Option<usize>,
    /// Index into the scenario's messages.
    message: Option<usize>,
    /// Applies only this long after the receiver starts.
    during: Option<Duration>,
}

/// A message the IUT was asked to send.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Sent {
    pub id: String,
    pub entity: String,
    /// Milliseconds after the receiver started.
    pub triggered_at_ms: f64,
}

struct Receiver(SimulatedReceiver);

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimulatedReceiver({})", self.0.addr)
    }
}

/// Exit codes of command triggers by message id, filled in as the commands end.
pub(super) type Exits = Arc<Mutex<Vec<(String, Option<i32>, String)>>>;

#[derive(Debug, Default)]
pub(crate) struct ResendState {
    rules: Vec<PendingRule>,
    down_for: Option<Duration>,
    receiver: Option<Receiver>,
    pub(super) sent: Vec<Sent>,
    /// Exit codes of command triggers, by message id (None: still running or killed).
    exits: Exits,
    /// The outage the program declares, for the backlog check.
    outage_end: Option<Duration>,
    /// From the first trigger call to the last one answered: how long handing the
    /// messages to the IUT took.
    handed_over: Option<Duration>,
    /// The Retry-After the scenario programmed (minimum wait it implies).
    retry_after_min: Option<Duration>,
    /// The one failure the program injects, as the sender sees it.
    failure: Option<PolicyOutcome>,
    /// Deliveries made to the IUT in role `receiver`: (id, status).
    deliveries: Vec<(String, u16, &'static str)>,
}

impl ProvstenWorld {
    fn policy(&self) -> anyhow::Result<ResendPolicy> {
        self.ctx()?
            .resend
            .clone()
            .ok_or_else(|| Self::not_applicable("the IUT config declares no [resend] policy"))
    }

    pub(super) fn sender_ctx(&self) -> anyhow::Result<SenderContext> {
        self.ctx()?.sender.clone().ok_or_else(|| {
            Self::not_applicable("the IUT config has no [sender] section (how to make it send)")
        })
    }

    /// What every `Given a simulated receiver …` needs: a declared policy and a way to
    /// make the IUT send (else the scenario is not applicable).
    fn receiver_program(&self) -> anyhow::Result<ResendPolicy> {
        self.sender_ctx()?;
        self.policy()
    }

    /// Programs one failure on the first attempt, as the sender will see it.
    fn fail_once(&mut self, answer: Answer, seen_as: PolicyOutcome) -> anyhow::Result<()> {
        self.receiver_program()?;
        self.push_rule(answer, Some(1));
        self.resend.failure = Some(seen_as);
        Ok(())
    }

    fn push_rule(&mut self, answer: Answer, times: Option<usize>) {
        self.resend.rules.push(PendingRule {
            answer,
            times,
            message: None,
            during: None,
        });
    }

    pub(super) fn receiver(&self) -> anyhow::Result<&SimulatedReceiver> {
        self.resend.receiver.as_ref().map(|r| &r.0).ok_or_else(|| {
            anyhow!("no message was sent (hint: add `When the IUT sends a message to the simulated receiver`)")
        })
    }

    /// How long after the first attempt the policy's attempts can run, plus slack.
    fn span_allowance(&self, p: &ResendPolicy) -> Duration {
        let offsets = p.expected_offsets();
        let last = offsets.last().copied().unwrap_or_default();
        let n = offsets.len() as u32;
        last + p.allowance(last) * 2 + p.delivery_timeout * n + PROCESSING_SLACK
    }

    pub(super) fn first_deadline(&self) -> anyhow::Result<Instant> {
        let s = self.sender_ctx()?;
        let down = self.resend.down_for.unwrap_or_default();
        Ok(Instant::now() + s.first_attempt_timeout + down)
    }
}

#[given(
    expr = "a simulated receiver that answers {int} to every attempt but the last the policy allows"
)]
async fn answers_but_last(w: &mut ProvstenWorld, status: u16) -> anyhow::Result<()> {
    let p = w.receiver_program()?;
    let limit = p.attempt_limit() as usize;
    if limit < 2 {
        return Err(ProvstenWorld::not_applicable(
            "the declared policy never retries (one attempt in all)",
        ));
    }
    w.push_rule(Answer::status(status), Some(limit - 1));
    Ok(())
}

#[given(expr = "a simulated receiver that answers {int} to every attempt")]
async fn answers_always(w: &mut ProvstenWorld, status: u16) -> anyhow::Result<()> {
    w.receiver_program()?;
    w.push_rule(Answer::status(status), None);
    Ok(())
}

#[given("a simulated receiver that answers a permanent error to every attempt")]
async fn answers_permanent(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.receiver_program()?;
    let status = [400u16, 422, 409, 404, 413, 501]
        .into_iter()
        .find(|s| {
            p.decide(&PolicyOutcome::Status {
                status: *s,
                retry_after: None,
            }) == Decision::Permanent
        })
        .ok_or_else(|| {
            ProvstenWorld::not_applicable(
                "the declared policy retries every status (permanent = [])",
            )
        })?;
    w.push_rule(Answer::status(status), None);
    w.record(json!({"permanent_status": status}));
    Ok(())
}

#[given(
    expr = "a simulated receiver that answers {int} to every attempt during the first {int} ms"
)]
async fn answers_during(w: &mut ProvstenWorld, status: u16, ms: u64) -> anyhow::Result<()> {
    w.receiver_program()?;
    let d = Duration::from_millis(ms);
    w.resend.rules.push(PendingRule {
        answer: Answer::status(status),
        times: None,
        message: None,
        during: Some(d),
    });
    w.resend.outage_end = Some(d);
    Ok(())
}

#[given(
    expr = "a simulated receiver that answers {int} to the first message's first {int} attempts"
)]
async fn answers_first_message(w: &mut ProvstenWorld, status: u16, n: usize) -> anyhow::Result<()> {
    w.receiver_program()?;
    w.resend.rules.push(PendingRule {
        answer: Answer::status(status),
        times: Some(n),
        message: Some(0),
        during: None,
    });
    Ok(())
}

/// One answer with a Retry-After, then the program's default; `min_wait` is the least the
/// sender must then wait.
fn retry_after_once(
    w: &mut ProvstenWorld,
    status: u16,
    retry_after: RetryAfter,
    min_wait: Duration,
) -> anyhow::Result<()> {
    let p = w.receiver_program()?;
    if !p.honour_retry_after {
        return Err(ProvstenWorld::not_applicable(
            "the declared policy does not honour Retry-After",
        ));
    }
    w.push_rule(
        Answer::Status {
            status,
            retry_after: Some(retry_after),
        },
        Some(1),
    );
    w.resend.retry_after_min = Some(min_wait);
    Ok(())
}

#[given(expr = "a simulated receiver that answers {int} with Retry-After {int} seconds once")]
async fn retry_after_seconds(w: &mut ProvstenWorld, status: u16, secs: u64) -> anyhow::Result<()> {
    let wait = Duration::from_secs(secs);
    retry_after_once(w, status, RetryAfter::Seconds(secs), wait)
}

#[given(
    expr = "a simulated receiver that answers {int} with a Retry-After date {int} seconds ahead once"
)]
async fn retry_after_date(w: &mut ProvstenWorld, status: u16, secs: u64) -> anyhow::Result<()> {
    // An HTTP date has whole seconds: the wait it asks for may be up to 1 s shorter.
    let wait = Duration::from_secs(secs.saturating_sub(1));
    retry_after_once(
        w,
        status,
        RetryAfter::DateIn(Duration::from_secs(secs)),
        wait,
    )
}

#[given("a simulated receiver that drops the acknowledgement once")]
async fn lose_ack(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    // The sender sees the connection end without an answer.
    w.fail_once(Answer::LoseAck, PolicyOutcome::Reset)
}

#[given("a simulated receiver that resets the connection once")]
async fn reset_once(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    w.fail_once(Answer::Reset, PolicyOutcome::Reset)
}

#[given("a simulated receiver that hangs past the delivery timeout once")]
async fn hang_once(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.receiver_program()?;
    let past = p.delivery_timeout + p.tolerance + Duration::from_secs(1);
    w.fail_once(Answer::Hang(past), PolicyOutcome::Timeout)
}

#[given(expr = "a simulated receiver that presents the certificate {string} once")]
async fn bad_cert_once(w: &mut ProvstenWorld, cert: String) -> anyhow::Result<()> {
    w.ctx()?.pki.cert(&cert)?;
    w.fail_once(Answer::BadCert(cert), PolicyOutcome::Tls)
}

#[given("a simulated receiver that is down for the first attempt")]
async fn down_first(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.receiver_program()?;
    if p.attempt_limit() < 2 {
        return Err(ProvstenWorld::not_applicable(
            "the declared policy never retries (one attempt in all)",
        ));
    }
    // Down past the first attempt, back before the first retry is due.
    let half = p.delay(2) / 2;
    w.resend.down_for = Some(half.max(Duration::from_millis(50)));
    w.resend.failure = Some(PolicyOutcome::Refused);
    Ok(())
}

#[given("a simulated receiver that answers 200")]
async fn answers_ok(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    w.receiver_program()?;
    Ok(())
}

/// Makes `n` messages (fresh ids in the sender's message type, or in `xml`, one of the XML
/// types it sends), starts the receiver with the scenario's program, and triggers the IUT
/// once per message.
pub(super) async fn send(
    w: &mut ProvstenWorld,
    n: usize,
    same_entity: bool,
    xml: Option<&XmlMessageType>,
) -> anyhow::Result<()> {
    let s = w.sender_ctx()?;
    let ctx = w.ctx()?;
    let m = ctx
        .messages
        .iter()
        .find(|m| m.name == s.message)
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "sender.message {:?} is not a declared message type",
                s.message
            )
        })?;
    let mut bodies = Vec::new();
    for i in 0..n {
        let fallback_id = || format!("provsten-{}-{i}-{}", w.scenario_id, rand::random::<u32>());
        let (id, bytes, body) = match xml {
            // An XML document travels as a JSON string in a URL trigger's request.
            Some(x) => {
                let (bytes, id) = super::xml::to_send(w, x)?;
                let text = String::from_utf8_lossy(&bytes).into_owned();
                (id.unwrap_or_else(fallback_id), bytes, Value::String(text))
            }
            None => {
                let mut example = m.examples.first().cloned().unwrap_or(Value::Null);
                let id = super::schema::plant_id(&m, &mut example).unwrap_or_else(fallback_id);
                (id, serde_json::to_vec(&example)?, example)
            }
        };
        let entity = if same_entity {
            format!("entity-{}", w.scenario_id)
        } else {
            format!("entity-{}-{i}", w.scenario_id)
        };
        bodies.push((id, entity, bytes, body));
    }
    let rules = w
        .resend
        .rules
        .iter()
        .map(|r| {
            let mut rule = Rule::new(r.answer.clone());
            rule.times = r.times;
            if let Some(i) = r.message {
                rule = rule.for_message(bodies[i.min(n - 1)].0.clone());
            }
            rule
        })
        .collect::<Vec<_>>();
    let during: Vec<Option<Duration>> = w.resend.rules.iter().map(|r| r.during).collect();
    let receiver = SimulatedReceiver::start(ReceiverSpec {
        pki: ctx.pki.clone(),
        cert: "peer-receiver".into(),
        // XML bodies are judged by their own step (XPath and rule id per violation).
        id_pointer: m.id_pointer.clone().filter(|_| xml.is_none()),
        validator: Some(m.validator.clone()).filter(|_| xml.is_none()),
        rules: rules
            .into_iter()
            .zip(during)
            .map(|(r, d)| match d {
                Some(d) => r.until(Instant::now() + d),
                None => r,
            })
            .collect(),
        down_for: w.resend.down_for,
        changed: None,
        bind: None,
    })
    .await?;
    // An XML message goes where a peer receives that type: its [[message]] endpoint.
    let to = receiver.url(xml.map_or(&s.receiver_path, |x| &x.endpoint));
    let started = receiver.started();
    w.resend.receiver = Some(Receiver(receiver));
    std::fs::create_dir_all(&s.work_dir)?;
    let limit = w
        .policy()
        .map(|p| w.span_allowance(&p) + s.first_attempt_timeout)
        .unwrap_or(Duration::from_secs(60));
    let exits = w.resend.exits.clone();
    // Futures do nothing until awaited: the sequential branch fires one at a time.
    let fires = bodies.iter().map(|(id, entity, bytes, body)| {
        let (s, to, exits) = (&s, &to, exits.clone());
        async move {
            let at = started.elapsed().as_secs_f64() * 1000.0;
            fire(Fire {
                role: "sender",
                trigger: &s.trigger,
                work_dir: &s.work_dir,
                to: Some(to),
                id,
                entity,
                bytes,
                body,
                message_type: xml.map(|x| x.name.as_str()),
                exits,
                limit,
            })
            .await
            .map(|()| at)
        }
    });
    // Messages about one entity are handed over in order, since their order is what is
    // checked. Independent ones are handed over at once: a backlog must form however slow
    // the trigger is, or a sender that ignores its backlog rate would go unseen.
    let at: Vec<f64> = if same_entity {
        let mut at = Vec::new();
        for f in fires {
            at.push(f.await?);
        }
        at
    } else {
        futures::future::try_join_all(fires).await?
    };
    w.resend.handed_over = Some(started.elapsed().saturating_sub(Duration::from_secs_f64(
        at.iter().copied().fold(f64::INFINITY, f64::min).max(0.0) / 1000.0,
    )));
    for ((id, entity, _, _), at) in bodies.into_iter().zip(at) {
        w.resend.sent.push(Sent {
            id,
            entity,
            triggered_at_ms: at,
        });
    }
    w.record(json!({"resend": {
        "receiver": to,
        "sent": w.resend.sent,
        "policy": ctx.resend,
    }}));
    Ok(())
}

/// One message for the IUT to send (role `sender`, to `to`) or route (role `router`).
pub(super) struct Fire<'a> {
    /// The config section, for errors.
    pub role: &'static str,
    pub trigger: &'a Trigger,
    pub work_dir: &'a std::path::Path,
    pub to: Option<&'a str>,
    pub id: &'a str,
    pub entity: &'a str,
    pub bytes: &'a [u8],
    pub body: &'a Value,
    /// An XML message type's name: `body` is the document as a JSON string, the trigger
    /// is told the type, and a command gets a `.xml` file.
    pub message_type: Option<&'a str>,
    /// Command triggers' exit codes and stderr land here.
    pub exits: Exits,
    /// A command trigger still running after this is killed.
    pub limit: Duration,
}

/// Asks the IUT to send one message: a POST to the trigger URL, or the trigger command
/// (which runs on in the background; its exit and stderr are kept in `exits`).
pub(super) async fn fire(f: Fire<'_>) -> anyhow::Result<()> {
    let (role, id, entity) = (f.role, f.id, f.entity);
    match f.trigger {
        Trigger::Url(url) => {
            let mut req = json!({"message_id": id, "entity": entity, "body": f.body});
            if let Some(to) = f.to {
                req["to"] = json!(to);
            }
            if let Some(t) = f.message_type {
                req["message_type"] = json!(t);
                req["content_type"] = json!("application/xml");
            }
            let (status, answer) = observe::call("POST", url, Some(&req))
                .await
                .map_err(|e| anyhow!("{role}.trigger.url: {e:#}"))?;
            if !(200..300).contains(&status) {
                fail!(
                    "{role}.trigger.url {url} answered {status} ({answer}) when asked to send {id}"
                );
            }
        }
        Trigger::Command { argv, workdir } => {
            let ext = if f.message_type.is_some() {
                "xml"
            } else {
                "json"
            };
            let file = f.work_dir.join(format!("{id}.{ext}"));
            std::fs::create_dir_all(f.work_dir)?;
            std::fs::write(&file, f.bytes)?;
            let fill = |a: &str| {
                a.replace("{to}", f.to.unwrap_or_default())
                    .replace("{message_id}", id)
                    .replace("{entity}", entity)
                    .replace("{message_type}", f.message_type.unwrap_or_default())
                    .replace("{message_file}", &file.display().to_string())
            };
            let argv: Vec<String> = argv.iter().map(|a| fill(a)).collect();
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .current_dir(workdir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| {
                anyhow!(
                    "{role}.trigger.command: starting {:?} in {}: {e} (hint: is it installed and on PATH?)",
                    argv[0],
                    workdir.display()
                )
            })?;
            let exits = f.exits.clone();
            if let Ok(mut e) = exits.lock() {
                e.push((id.to_string(), None, String::new()));
            }
            let id = id.to_string();
            let limit = f.limit;
            // The command runs as the sender does (curl retries inside it); it is killed
            // at the scenario's deadline.
            let stderr = child.stderr.take();
            tokio::spawn(async move {
                // What the command says on stderr is its reason (e.g. curl's "(60) SSL
                // certificate problem"); kept for the evidence, bounded.
                let said = async {
                    let mut text = String::new();
                    if let Some(mut err) = stderr {
                        use tokio::io::AsyncReadExt;
                        let mut buf = Vec::new();
                        let _ = (&mut err).take(4096).read_to_end(&mut buf).await;
                        text = String::from_utf8_lossy(&buf).trim().to_string();
                    }
                    text
                };
                let (status, said) = tokio::join!(tokio::time::timeout(limit, child.wait()), said);
                let code = match status {
                    Ok(Ok(st)) => st.code(),
                    _ => {
                        let _ = child.kill().await;
                        None
                    }
                };
                if let Ok(mut e) = exits.lock() {
                    if let Some(slot) = e.iter_mut().find(|(i, _, _)| *i == id) {
                        slot.1 = Some(code.unwrap_or(-1));
                        slot.2 = said;
                    }
                }
            });
        }
    }
    Ok(())
}

#[when("the IUT sends a message to the simulated receiver")]
async fn sends_one(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    send(w, 1, false, None).await
}

#[when(expr = "the IUT sends {int} messages to the simulated receiver")]
async fn sends_many(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    send(w, n.max(1), false, None).await
}

#[when(expr = "the IUT sends {int} messages about the same entity to the simulated receiver")]
async fn sends_same_entity(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    let p = w.policy()?;
    if !p.ordered {
        return Err(ProvstenWorld::not_applicable(
            "the declared policy does not promise per-entity order (ordered = false)",
        ));
    }
    send(w, n.max(1), true, None).await
}

#[when("the IUT is killed and restarted after its first attempt")]
async fn kill_restart(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let restarter = w.ctx()?.restarter.clone().ok_or_else(|| {
        ProvstenWorld::not_applicable(
            "provsten does not start this IUT ([iut.start]), so it cannot restart it",
        )
    })?;
    if matches!(w.sender_ctx()?.trigger, Trigger::Command { .. }) {
        return Err(ProvstenWorld::not_applicable(
            "the sender is a command per message; there is no long-lived outbox to restart",
        ));
    }
    let deadline = w.first_deadline()?;
    let (ok, _) = w.receiver()?.wait_until(deadline, |a| !a.is_empty()).await;
    if !ok {
        fail!(
            "no delivery attempt within {} s of the trigger",
            w.sender_ctx()?.first_attempt_timeout.as_secs()
        );
    }
    let took = restarter.kill_and_restart().await?;
    w.record(json!({"restart": {"killed": "SIGKILL to the IUT's process group after its first attempt", "ready_after_ms": took.as_millis() as u64}}));
    Ok(())
}

fn attempts_of<'a>(all: &'a [Attempt], id: &str) -> Vec<&'a Attempt> {
    all.iter()
        .filter(|a| a.message_id.as_deref() == Some(id) || a.handshake_error.is_some())
        .collect()
}

impl ProvstenWorld {
    /// The attempts as evidence, and the first message's as a resend timeline the HTML
    /// report draws against the policy's schedule; replaces an earlier record of them.
    fn record_attempts(&mut self, all: &[Attempt]) {
        self.evidence.retain(|e| match e {
            Evidence::Observation(v) => v.get("attempts").is_none(),
            Evidence::ResendTimeline(_) => false,
            Evidence::ExerciseTimeline(_) | Evidence::Malformed { .. } => true,
        });
        self.record(json!({"attempts": all}));
        let (Ok(p), Some(first)) = (self.policy(), self.resend.sent.first()) else {
            return;
        };
        let mine: Vec<&Attempt> = all
            .iter()
            .filter(|a| {
                a.message_id.as_deref() == Some(first.id.as_str()) || a.handshake_error.is_some()
            })
            .collect();
        let Some(t0) = mine.first().map(|a| a.at) else {
            return;
        };
        let t = ResendTimeline {
            message_id: first.id.clone(),
            attempts: mine
                .iter()
                .map(|a| ResendAttempt {
                    at_ms: a.at.duration_since(t0).as_millis() as u64,
                    outcome: a.answer.clone(),
                    accepted: a.acknowledged,
                })
                .collect(),
            expected_ms: p
                .expected_offsets()
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect(),
            tolerance_ms: p.tolerance.as_millis() as u64,
            subject: None,
        };
        self.record(t);
    }
}

impl ProvstenWorld {
    fn first_id(&self) -> anyhow::Result<String> {
        self.resend
            .sent
            .first()
            .map(|s| s.id.clone())
            .ok_or_else(|| anyhow!("no message was sent"))
    }

    /// Waits for the first attempt, then for the policy's whole span, then for the next
    /// attempt that should not come; returns every attempt seen.
    async fn observe_all(&mut self) -> anyhow::Result<Vec<Attempt>> {
        let p = self.policy()?;
        let deadline = self.first_deadline()?;
        let recv = self.receiver()?;
        let (ok, _) = recv.wait_until(deadline, |a| !a.is_empty()).await;
        if !ok {
            fail!(
                "no delivery attempt within {} s of the trigger (sender.first_attempt_timeout)",
                self.sender_ctx()?.first_attempt_timeout.as_secs()
            );
        }
        let n = self.resend.sent.len().max(1);
        let limit = p.attempt_limit() as usize * n;
        // Every allowed attempt, then as long again as the next delay would be (and its
        // late allowance) for one that should not come.
        let (_, _) = recv
            .wait_until(Instant::now() + self.span_allowance(&p), |a| {
                a.len() >= limit
            })
            .await;
        let next = p.delay(p.attempt_limit() + 1);
        let settle = next + p.late_allowance(next) + Duration::from_millis(300);
        let (_, attempts) = recv
            .wait_until(Instant::now() + settle, |a| a.len() > limit)
            .await;
        self.record_attempts(&attempts);
        Ok(attempts)
    }

    /// Waits until `id` is acknowledged, then one retry interval more; the attempts seen.
    async fn observe_acceptance(&mut self, ids: &[String]) -> anyhow::Result<Vec<Attempt>> {
        let p = self.policy()?;
        let deadline = self.first_deadline()? + self.span_allowance(&p) * ids.len().max(1) as u32;
        let recv = self.receiver()?;
        let started = recv.started();
        let want = ids.to_vec();
        let (ok, attempts) = recv
            .wait_until(deadline, |a| {
                want.iter().all(|id| {
                    a.iter()
                        .any(|x| x.acknowledged && x.message_id.as_deref() == Some(id))
                })
            })
            .await;
        if !ok {
            self.record_attempts(&attempts);
            let missing: Vec<&String> = want
                .iter()
                .filter(|id| {
                    !attempts
                        .iter()
                        .any(|x| x.acknowledged && x.message_id.as_deref() == Some(id))
                })
                .collect();
            if attempts.is_empty() {
                fail!(
                    "no delivery attempt reached the receiver (deadline {:.1} s)",
                    (deadline - started).as_secs_f64()
                );
            }
            fail!(
                "not accepted within the policy's span: {missing:?} ({} attempts: {})",
                attempts.len(),
                summary(&attempts)
            );
        }
        let recv = self.receiver()?;
        // An attempt after the acknowledgement would be a duplicate delivery.
        let settle = p.delay(2) + p.allowance(p.delay(2)) + Duration::from_millis(200);
        let (_, attempts) = recv
            .wait_until(Instant::now() + settle, |a| a.len() > attempts.len())
            .await;
        self.record_attempts(&attempts);
        Ok(attempts)
    }
}

fn summary(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| {
            format!(
                "#{} {:.0} ms {} → {}",
                a.n,
                a.at_ms,
                a.message_id.as_deref().unwrap_or("?"),
                a.answer
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[then("the receiver gets every attempt the policy allows")]
async fn every_attempt(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.policy()?;
    let attempts = w.observe_all().await?;
    let want = p.attempt_limit() as usize;
    if attempts.len() != want {
        fail!(
            "expected {want} attempts ({}), the receiver got {}: {}",
            p.describe(),
            attempts.len(),
            summary(&attempts)
        );
    }
    Ok(())
}

#[then("the receiver gets exactly one attempt")]
async fn one_attempt(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.policy()?;
    let deadline = w.first_deadline()?;
    let recv = w.receiver()?;
    let (ok, _) = recv.wait_until(deadline, |a| !a.is_empty()).await;
    if !ok {
        fail!(
            "no delivery attempt within {} s of the trigger",
            w.sender_ctx()?.first_attempt_timeout.as_secs()
        );
    }
    let window = p.delay(2) * 2 + p.allowance(p.delay(2)) + Duration::from_millis(500);
    let (_, attempts) = recv
        .wait_until(Instant::now() + window, |a| a.len() > 1)
        .await;
    w.record_attempts(&attempts);
    if attempts.len() != 1 {
        fail!(
            "a permanent failure was retried: {} attempts within {} ms: {}",
            attempts.len(),
            window.as_millis(),
            summary(&attempts)
        );
    }
    Ok(())
}

#[then("the intervals between attempts follow the declared policy")]
async fn intervals(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.policy()?;
    let attempts = w.receiver()?.attempts();
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (i, pair) in attempts.windows(2).enumerate() {
        let n = i as u32 + 2;
        let observed = pair[1].at.duration_since(pair[0].at);
        let expected = p.delay(n);
        let early = p.allowance(expected);
        let late = p.late_allowance(expected);
        let ok = observed + early >= expected && observed <= expected + late;
        rows.push(json!({
            "attempt": n,
            "expected_ms": expected.as_millis() as u64,
            "observed_ms": observed.as_millis() as u64,
            "early_allowed_ms": early.as_millis() as u64,
            "late_allowed_ms": late.as_millis() as u64,
            "ok": ok,
        }));
        if !ok {
            bad.push(format!(
                "before attempt {n}: waited {} ms, the policy says {} ms (−{} ms / +{} ms)",
                observed.as_millis(),
                expected.as_millis(),
                early.as_millis(),
                late.as_millis()
            ));
        }
    }
    w.record(json!({"intervals": rows, "policy": p.describe(), "time_scale": p.time_scale, "tolerance_ms": p.tolerance.as_millis() as u64}));
    if attempts.len() < 2 {
        fail!("fewer than 2 attempts: no interval to compare");
    }
    if !bad.is_empty() {
        fail!("{}", bad.join("; "));
    }
    Ok(())
}

#[then("every attempt carries the same message id and body")]
async fn same_id_body(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let attempts = w.receiver()?.attempts();
    let sent = w
        .resend
        .sent
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("no message was sent"))?;
    let with_request: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.handshake_error.is_none())
        .collect();
    if with_request.is_empty() {
        fail!("no attempt carried a request");
    }
    let mut problems = Vec::new();
    for a in &with_request {
        if a.message_id.as_deref() != Some(sent.id.as_str()) {
            problems.push(format!(
                "attempt {} carries id {:?}, not {:?}",
                a.n, a.message_id, sent.id
            ));
        } else if a.body != with_request[0].body {
            // Every resend repeats the first attempt's message (an IUT may stamp it once,
            // when it first sends); re-serialised JSON with the same content is the same.
            let same = serde_json::from_slice::<Value>(&a.body).ok()
                == serde_json::from_slice::<Value>(&with_request[0].body).ok();
            if !same {
                problems.push(format!(
                    "attempt {} carries a different body than attempt {}",
                    a.n, with_request[0].n
                ));
            }
        }
    }
    let orgs: std::collections::BTreeSet<Option<String>> =
        with_request.iter().map(|a| a.client_org.clone()).collect();
    if orgs.len() > 1 {
        problems.push(format!(
            "attempts come from different organisations: {orgs:?}"
        ));
    }
    if let Some(cert) = w.sender_ctx()?.client_cert {
        let want = w.ctx()?.pki.cert(&cert)?.org.clone();
        if let Some(got) = orgs.iter().next() {
            if want.is_some() && *got != want {
                problems.push(format!(
                    "the IUT presented organisation {got:?}, the config declares {cert} ({want:?})"
                ));
            }
        }
    }
    if !problems.is_empty() {
        fail!("{}", problems.join("; "));
    }
    Ok(())
}

#[then("the message is accepted exactly once")]
async fn accepted_once(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let id = w.first_id()?;
    let attempts = w.observe_acceptance(std::slice::from_ref(&id)).await?;
    check_once(&attempts, &id)
}

#[then("every message is accepted exactly once")]
async fn all_accepted_once(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ids: Vec<String> = w.resend.sent.iter().map(|s| s.id.clone()).collect();
    let attempts = w.observe_acceptance(&ids).await?;
    for id in &ids {
        check_once(&attempts, id)?;
    }
    Ok(())
}

fn check_once(attempts: &[Attempt], id: &str) -> anyhow::Result<()> {
    let mine: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.message_id.as_deref() == Some(id))
        .collect();
    let acks: Vec<&&Attempt> = mine.iter().filter(|a| a.acknowledged).collect();
    if acks.len() != 1 {
        fail!(
            "message {id} was acknowledged {} times (the sender resent a delivered message): {}",
            acks.len(),
            summary(&mine.iter().map(|a| (*a).clone()).collect::<Vec<_>>())
        );
    }
    let ack_n = acks[0].n;
    if let Some(after) = mine.iter().find(|a| a.n > ack_n) {
        fail!(
            "message {id} was sent again (attempt {}) after it was acknowledged",
            after.n
        );
    }
    if let Some(b) = attempts
        .iter()
        .find(|a| a.bad_certificate_accepted.is_some())
    {
        fail!(
            "the IUT sent attempt {} over a connection with the bad certificate {:?}",
            b.n,
            b.bad_certificate_accepted
        );
    }
    Ok(())
}

#[then("every message the IUT sent is valid against its schema")]
async fn sent_valid(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ids: Vec<String> = w.resend.sent.iter().map(|s| s.id.clone()).collect();
    let attempts = w.observe_acceptance(&ids).await;
    let attempts = match attempts {
        Ok(a) => a,
        // Not accepted is another check's failure; judge what did arrive.
        Err(_) => w.receiver()?.attempts(),
    };
    let with_body: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.handshake_error.is_none())
        .collect();
    if with_body.is_empty() {
        fail!("no message reached the receiver to validate");
    }
    let bad: Vec<String> = with_body
        .iter()
        .filter(|a| !a.violations.is_empty())
        .map(|a| {
            format!(
                "attempt {} (message {}): {}",
                a.n,
                a.message_id.as_deref().unwrap_or("without an id"),
                a.violations.join("; ")
            )
        })
        .collect();
    w.record(json!({"sent_messages_validated": with_body.len(), "invalid": bad}));
    if !bad.is_empty() {
        fail!(
            "the IUT sent messages its schema refuses: {}",
            bad.join(" | ")
        );
    }
    Ok(())
}

#[then("the IUT reports the message as undeliverable")]
async fn undeliverable(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let id = w.first_id()?;
    let p = w.policy()?;
    let ctx = w.ctx()?;
    let deadline = Instant::now() + p.delivery_timeout + PROCESSING_SLACK * 2;
    let s = w.sender_ctx()?;
    loop {
        let reported = match (&s.trigger, &ctx.undeliverable_url) {
            (_, Some(url)) => observe::ids(url).await?.contains(&id),
            (Trigger::Command { .. }, None) => {
                let exits = w.resend.exits.lock().map(|e| e.clone()).unwrap_or_default();
                match exits.iter().find(|(i, _, _)| *i == id) {
                    Some((_, Some(code), said)) => {
                        if *code == 0 {
                            fail!("the trigger command exited 0 for {id}: it reports the message delivered although it was not");
                        }
                        w.record(json!({"trigger_command": {"exit": code, "stderr": said}}));
                        true
                    }
                    _ => false,
                }
            }
            (Trigger::Url(_), None) => {
                return Err(ProvstenWorld::not_applicable(
                    "the IUT config declares no observe.undeliverable_url",
                ))
            }
        };
        if reported {
            w.record(json!({"undeliverable": id}));
            return Ok(());
        }
        if Instant::now() >= deadline {
            fail!(
                "the IUT did not report {id} as undeliverable within {} ms of its last attempt",
                (p.delivery_timeout + PROCESSING_SLACK * 2).as_millis()
            );
        }
        // Polling interval of the observation hook, bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[then("the retry waits at least the Retry-After")]
async fn waited_retry_after(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.policy()?;
    let min = w
        .resend
        .retry_after_min
        .ok_or_else(|| anyhow!("no Retry-After was programmed"))?;
    let id = w.first_id()?;
    let attempts = w.observe_acceptance(std::slice::from_ref(&id)).await?;
    let mine = attempts_of(&attempts, &id);
    if mine.len() < 2 {
        fail!("the message was not retried after the Retry-After answer");
    }
    let waited = mine[1].at.duration_since(mine[0].at);
    w.record(json!({"retry_after": {"min_ms": min.as_millis() as u64, "waited_ms": waited.as_millis() as u64}}));
    if waited + p.tolerance < min {
        fail!(
            "retried {} ms after a Retry-After asking for {} ms (tolerance {} ms)",
            waited.as_millis(),
            min.as_millis(),
            p.tolerance.as_millis()
        );
    }
    Ok(())
}

#[then("the IUT refuses the receiver's certificate")]
async fn refused_cert(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let deadline = w.first_deadline()?;
    let (_, attempts) = w.receiver()?.wait_until(deadline, |a| !a.is_empty()).await;
    let first = attempts.first().ok_or_else(|| {
        failure!("no attempt reached the receiver within sender.first_attempt_timeout")
    })?;
    if let Some(cert) = &first.bad_certificate_accepted {
        fail!(
            "the IUT accepted the receiver's bad certificate {cert:?} and sent attempt {} over it",
            first.n
        );
    }
    if first.handshake_error.is_none() {
        fail!("the first attempt completed its handshake although the receiver presented a bad certificate");
    }
    // How the IUT refused, as the server-side checks record it: the alert it sent (name and
    // number), a close or a reset.
    let how = first.sender_refusal.as_ref();
    w.record(json!({
        "refused": true,
        "by": "the IUT as sender",
        "receiver_certificate": first.answer,
        "refusal": how,
        "summary": format!(
            "the IUT refused the receiver's certificate: {}",
            how.map(|r| r.describe())
                .unwrap_or_else(|| first.handshake_error.clone().unwrap_or_default())
        ),
    }));
    Ok(())
}

#[then("the failure is handled as the policy declares")]
async fn as_declared(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.policy()?;
    let outcome = w
        .resend
        .failure
        .clone()
        .ok_or_else(|| anyhow!("no failure was programmed"))?;
    let decision = p.decide(&outcome);
    w.record(json!({"declared": {"outcome": outcome, "retried": decision == Decision::Retry}}));
    match (decision, &outcome) {
        (Decision::Retry, _) => accepted_once(w).await,
        (_, PolicyOutcome::Refused) => {
            // A refused connection never reaches the receiver: nothing may arrive later.
            let window = w.resend.down_for.unwrap_or_default()
                + p.delay(2) * 2
                + p.allowance(p.delay(2))
                + Duration::from_millis(500);
            let recv = w.receiver()?;
            let (_, attempts) = recv
                .wait_until(Instant::now() + window, |a| !a.is_empty())
                .await;
            if !attempts.is_empty() {
                fail!(
                    "the policy does not retry refused connections, yet {} attempts arrived: {}",
                    attempts.len(),
                    summary(&attempts)
                );
            }
            undeliverable(w).await
        }
        _ => {
            one_attempt(w).await?;
            undeliverable(w).await
        }
    }
}

#[then("the backlog is not sent faster than the declared rate")]
async fn backlog_rate(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let p = w.policy()?;
    let rate = p
        .backlog_rate
        .ok_or_else(|| ProvstenWorld::not_applicable("the declared policy has no backlog_rate"))?;
    let end = w
        .resend
        .outage_end
        .ok_or_else(|| anyhow!("no outage was programmed"))?;
    let recv = w.receiver()?;
    let started = recv.started();
    let all = recv.attempts();
    // The outage ends when the program says or when the receiver first accepts, whichever
    // is first: the receiver's clock for its rule starts a little before `started`, and a
    // burst just before the declared end is still the backlog being flushed.
    let end = all
        .iter()
        .filter(|a| a.acknowledged)
        .map(|a| a.at.duration_since(started))
        .min()
        .map_or(end, |first| first.min(end));
    let mut after: Vec<Attempt> = all
        .into_iter()
        .filter(|a| a.at.duration_since(started) >= end)
        .collect();
    // Recorded as they finish, not as they began.
    after.sort_by_key(|a| a.at);
    let gap = Duration::from_secs_f64(1.0 / rate);
    // A sender that ignores its rate resends each message on its own schedule, so its
    // resends are as far apart as the messages were handed to it. Handed over more slowly
    // than the rate allows, no backlog formed and this check could not fail.
    let n = w.resend.sent.len().max(1);
    let handed_over = w.resend.handed_over.unwrap_or_default();
    if handed_over + p.tolerance >= gap * (n as u32 - 1) {
        bail!(
            "no backlog formed: handing the {n} messages to the IUT took {} ms, and the declared rate ({rate}/s) with the tolerance ({} ms) allows {n} in {} ms; the check could not fail (is the trigger slow?)",
            handed_over.as_millis(),
            p.tolerance.as_millis(),
            (gap * (n as u32 - 1)).as_millis()
        );
    }
    let mut worst: Option<(usize, usize, Duration, Duration)> = None;
    for i in 0..after.len() {
        for j in i + 1..after.len() {
            let need = gap * (j - i) as u32;
            let got = after[j].at.duration_since(after[i].at);
            if got + p.tolerance < need && worst.is_none_or(|(_, _, g, n)| need - got > n - g) {
                worst = Some((i, j, got, need));
            }
        }
    }
    w.record(json!({"backlog": {"rate_per_s": rate, "attempts_after_outage": after.len(), "outage_ms": end.as_millis() as u64}}));
    if let Some((i, j, got, need)) = worst {
        fail!(
            "resend storm: {} attempts in {} ms after the outage, the declared rate ({rate}/s) allows no more than one per {} ms",
            j - i + 1,
            got.as_millis(),
            (need / (j - i) as u32).as_millis()
        );
    }
    Ok(())
}

#[then("the messages are accepted in the order they were sent")]
async fn in_order(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ids: Vec<String> = w.resend.sent.iter().map(|s| s.id.clone()).collect();
    let attempts = w.observe_acceptance(&ids).await?;
    let order: Vec<String> = attempts
        .iter()
        .filter(|a| a.acknowledged)
        .filter_map(|a| a.message_id.clone())
        .collect();
    let first_seen: Vec<&String> = order
        .iter()
        .enumerate()
        .filter(|(i, id)| !order[..*i].contains(id))
        .map(|(_, id)| id)
        .collect();
    if first_seen != ids.iter().collect::<Vec<_>>() {
        fail!("accepted in the order {first_seen:?}, sent as {ids:?}");
    }
    Ok(())
}

#[then("the message id appears in the IUT's audit log")]
async fn in_audit(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let url = w.ctx()?.audit_url.clone().ok_or_else(|| {
        ProvstenWorld::not_applicable("the IUT config declares no observe.audit_url")
    })?;
    let ids: Vec<String> = if w.resend.sent.is_empty() {
        w.resend
            .deliveries
            .iter()
            .map(|(i, _, _)| i.clone())
            .collect()
    } else {
        w.resend.sent.iter().map(|s| s.id.clone()).collect()
    };
    if ids.is_empty() {
        bail!("no message was sent or delivered before this step");
    }
    let deadline = Instant::now() + PROCESSING_SLACK * 2;
    loop {
        let logged = observe::ids(&url).await?;
        let missing: Vec<&String> = ids.iter().filter(|i| !logged.contains(i)).collect();
        if missing.is_empty() {
            w.record(json!({"audit": {"url": url, "found": ids}}));
            return Ok(());
        }
        if Instant::now() >= deadline {
            fail!(
                "the audit log at {url} lacks {missing:?} ({} entries)",
                logged.len()
            );
        }
        // Polling interval of the audit hook, bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- role receiver: the harness delivers, the IUT must cope with resends ----------------

impl ProvstenWorld {
    fn receive_message(&mut self) -> anyhow::Result<crate::iut::MessageType> {
        let r = self
            .ctx()?
            .receive
            .clone()
            .ok_or_else(|| Self::not_applicable("the IUT config has no [receive] section"))?;
        self.message = Some(r.message);
        self.message_type()
    }

    async fn deliver(
        &mut self,
        body: &Value,
        id: &str,
        label: &'static str,
    ) -> anyhow::Result<u16> {
        let m = self.message_type()?;
        let ex = self
            .post(
                &m.endpoint,
                Some("application/json".into()),
                serde_json::to_vec(body)?,
            )
            .await?;
        let status = match &ex.outcome {
            ExchangeOutcome::Response { status, .. } => *status,
            ExchangeOutcome::Refused { refusal } => {
                fail!("delivering {id} ({label}) failed: {}", refusal.describe())
            }
        };
        self.resend.deliveries.push((id.to_string(), status, label));
        self.record(json!({"delivery": {"id": id, "kind": label, "status": status}}));
        Ok(status)
    }
}

fn fresh(m: &crate::iut::MessageType) -> anyhow::Result<(String, Value)> {
    let mut v = m.examples.first().cloned().unwrap_or(Value::Null);
    let id = super::schema::plant_id(m, &mut v)
        .ok_or_else(|| anyhow!("message type {:?} declares no id_pointer", m.name))?;
    Ok((id, v))
}

/// The same message with one field other than the id changed, still valid.
fn vary(m: &crate::iut::MessageType, v: &Value) -> Option<Value> {
    let id_ptr = m.id_pointer.clone().unwrap_or_default();
    let mut leaves = Vec::new();
    collect_leaves(v, String::new(), &mut leaves);
    for (ptr, leaf) in leaves {
        if ptr == id_ptr {
            continue;
        }
        let candidates: Vec<Value> = match &leaf {
            Value::String(s) => vec![
                Value::String(format!("{s} (amended)")),
                Value::String(s.chars().rev().collect()),
            ],
            Value::Number(n) => n
                .as_i64()
                .map(|i| vec![json!(i + 1), json!(i - 1)])
                .unwrap_or_default(),
            Value::Bool(b) => vec![json!(!b)],
            _ => Vec::new(),
        };
        for c in candidates {
            let mut out = v.clone();
            if let Some(slot) = out.pointer_mut(&ptr) {
                *slot = c;
            }
            if out != *v && m.validator.validate(&out).is_empty() {
                return Some(out);
            }
        }
    }
    None
}

fn collect_leaves(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = k.replace('~', "~0").replace('/', "~1");
                collect_leaves(x, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_leaves(x, format!("{at}/{i}"), out);
            }
        }
        other => out.push((at, other.clone())),
    }
}

#[when("the client delivers a valid message twice with the same id")]
async fn deliver_twice(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.receive_message()?;
    let (id, v) = fresh(&m)?;
    w.deliver(&v, &id, "original").await?;
    w.deliver(&v, &id, "exact duplicate").await?;
    Ok(())
}

#[when("the client delivers a valid message, then the same id with a changed body")]
async fn deliver_changed(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.receive_message()?;
    let (id, v) = fresh(&m)?;
    w.deliver(&v, &id, "original").await?;
    let changed = vary(&m, &v).ok_or_else(|| {
        anyhow!(
            "could not make another valid body with the same id for message type {:?} (hint: give it a free-text field, or a second example)",
            m.name
        )
    })?;
    w.deliver(&changed, &id, "changed duplicate").await?;
    Ok(())
}

#[when(expr = "the client delivers {int} valid messages in reverse order, each twice")]
async fn deliver_reverse(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    let m = w.receive_message()?;
    let mut msgs = Vec::new();
    for _ in 0..n.max(2) {
        msgs.push(fresh(&m)?);
    }
    for (id, v) in msgs.iter().rev() {
        w.deliver(v, id, "original").await?;
    }
    for (id, v) in msgs.iter() {
        w.deliver(v, id, "exact duplicate").await?;
    }
    Ok(())
}

#[then("every delivery is answered with success")]
async fn all_success(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let bad: Vec<_> = w
        .resend
        .deliveries
        .iter()
        .filter(|(_, s, _)| !(200..300).contains(s))
        .collect();
    if !bad.is_empty() {
        fail!("deliveries not answered with 2xx: {bad:?} (a resend after a lost acknowledgement must be answered with success)");
    }
    Ok(())
}

#[then("the changed duplicate is refused with a conflict status")]
async fn changed_refused(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let allowed = w
        .ctx()?
        .receive
        .as_ref()
        .map(|r| r.changed_duplicate_statuses.clone())
        .unwrap_or_default();
    let Some((id, status, _)) = w
        .resend
        .deliveries
        .iter()
        .find(|(_, _, k)| *k == "changed duplicate")
        .cloned()
    else {
        bail!("no changed duplicate was delivered");
    };
    if !allowed.contains(&status) {
        fail!("a second message with id {id} but another body was answered {status}; the config declares {allowed:?} (receive.changed_duplicate_statuses)");
    }
    Ok(())
}

#[then("the IUT processed each message once")]
async fn processed_once(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let mut ids: Vec<String> = w
        .resend
        .deliveries
        .iter()
        .map(|(i, _, _)| i.clone())
        .collect();
    ids.sort();
    ids.dedup();
    let accepted = w.accepted_ids().await?;
    let mut problems = Vec::new();
    for id in &ids {
        let n = accepted.iter().filter(|a| *a == id).count();
        if n != 1 {
            problems.push(format!("{id} processed {n} times"));
        }
    }
    w.record(json!({"processed": ids.iter().map(|i| json!({"id": i, "times": accepted.iter().filter(|a| *a == i).count()})).collect::<Vec<_>>()}));
    if !problems.is_empty() {
        fail!(
            "{} (observe.accepted_url lists one entry per processing)",
            problems.join("; ")
        );
    }
    Ok(())
}
