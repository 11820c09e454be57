//! Role `client`: the IUT calls an API, and the harness plays that API — a simulated server
//! with mutual TLS (the simulated receiver, answering GETs) whose answers steps program.
//! Checks: the server certificates a client must refuse (EB-MTLS-1, FMK-2.1-CA,
//! FMK-2.1-REVOKE), the identity it presents (EB-MTLS-2), and its load on the server
//! (FMK-2.4-LOAD): request rate, `Retry-After`, backoff, and changed-between reads.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use cucumber::{given, then, when};
use serde_json::json;

use super::ProvstenWorld;
use crate::iut::{observe, ClientContext, Trigger};
use crate::peers::receiver::{Answer, Attempt, ReceiverSpec, RetryAfter, Rule, SimulatedReceiver};
use crate::report::model::{ResendAttempt, ResendTimeline};

/// The simulated server's own certificate: issued by the agreed CA for 127.0.0.1.
const SERVER_CERT: &str = "peer-receiver";
/// How long after its last expected call the harness still waits for one.
const GRACE: Duration = Duration::from_secs(3);
/// The longest a scenario watches a client that keeps calling.
const MAX_SCENARIO_WAIT: Duration = Duration::from_secs(60);
/// How long a client is watched while a server resets its calls.
const RESETS_WATCHED: Duration = Duration::from_secs(2);
/// The longest a client scenario waits for the others before its turn.
const TURN_DEADLINE: Duration = Duration::from_secs(300);
/// Calls at most in the rate scenario (a high declared rate is checked over fewer windows).
const MAX_RATE_CALLS: usize = 201;

/// A program line of the simulated server, made into a [`Rule`] when it starts (a failing
/// period counts from the trigger).
#[derive(Debug, Clone)]
enum Program {
    Once(Answer),
    Times(Answer, usize),
    During(Answer, Duration),
    Always(Answer),
}

struct Server(SimulatedReceiver);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "simulated API server at {}", self.0.addr)
    }
}

/// The task running a scenario's trigger commands, aborted when the scenario ends.
#[derive(Debug)]
struct Commands(tokio::task::JoinHandle<()>);

impl Drop for Commands {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A trigger command that did not exit 0: what the IUT itself said about a call.
#[derive(Debug, Clone, serde::Serialize)]
struct CommandError {
    call: usize,
    /// None: killed at the deadline, or not started.
    exit_code: Option<i32>,
    stderr: String,
}

/// What a role-client scenario set up and asked for.
#[derive(Debug, Default)]
pub(crate) struct ClientState {
    program: Vec<Program>,
    server: Option<Server>,
    /// When the IUT was asked to call, and how many calls.
    triggered: Option<Instant>,
    calls: usize,
    /// The shortest wait a programmed `Retry-After` asks for.
    retry_after_min: Option<Duration>,
    /// A failing period programmed from the trigger.
    failing_for: Option<Duration>,
    /// The bad certificate the server presents.
    bad_cert: Option<String>,
    /// This scenario's turn among the client scenarios (held until cleanup).
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The trigger commands still to run; stopped with the scenario (their children die
    /// with them: `kill_on_drop`).
    commands: Option<Commands>,
    /// Command triggers that failed, for the evidence.
    command_errors: std::sync::Arc<std::sync::Mutex<Vec<CommandError>>>,
}

impl ProvstenWorld {
    fn client_ctx(&self) -> anyhow::Result<ClientContext> {
        self.ctx()?.client.clone().ok_or_else(|| {
            anyhow!("the IUT config has no [client] section (role client; hint: `provsten init --role client`)")
        })
    }

    fn api_server(&self) -> anyhow::Result<&SimulatedReceiver> {
        self.client_role
            .server
            .as_ref()
            .map(|s| &s.0)
            .ok_or_else(|| anyhow!("no simulated API server: add `When the IUT makes 1 call to the simulated API server`"))
    }

    /// Waits for the first call (within `first_call_timeout` of the trigger), then until
    /// `done` holds for what the server saw, as long as calls keep coming: each call gives
    /// the next `expect_within` and some grace (a slow client is not a wrong one; only a
    /// client that stopped is waited out). Returns what it saw either way.
    async fn api_calls(
        &self,
        expect_within: Duration,
        done: impl Fn(&[Attempt]) -> bool,
    ) -> anyhow::Result<Vec<Attempt>> {
        let c = self.client_ctx()?;
        let server = self.api_server()?;
        let from = self.client_role.triggered.unwrap_or_else(Instant::now);
        let cap = from + c.first_call_timeout + MAX_SCENARIO_WAIT;
        let (_, mut seen) = server
            .wait_until(from + c.first_call_timeout, |a| !a.is_empty())
            .await;
        loop {
            let Some(last) = seen.last() else {
                return Ok(seen);
            };
            if done(&seen) {
                return Ok(seen);
            }
            let n = seen.len();
            let deadline = (last.at + expect_within + GRACE).min(cap);
            let (_, now) = server
                .wait_until(deadline, |a| a.len() > n || done(a))
                .await;
            if now.len() == n {
                return Ok(now);
            }
            seen = now;
        }
    }

    /// Every call the scenario asked for, as long as they keep coming at the declared rate;
    /// with how many were asked for and the declared spacing.
    async fn asked_calls(&self) -> anyhow::Result<(Vec<Attempt>, usize, Duration)> {
        let c = self.client_ctx()?;
        let want = self.client_role.calls;
        let spacing = Duration::from_secs_f64(1.0 / c.request_rate);
        let seen = self
            .api_calls(spacing * want as u32, |a| requests(a).len() >= want)
            .await?;
        Ok((seen, want, spacing))
    }

    /// The IUT's first connection to the simulated server; none is the IUT's failure
    /// (`why` says what silence hides).
    async fn first_call(&self, why: &str) -> anyhow::Result<Attempt> {
        let c = self.client_ctx()?;
        let seen = self.api_calls(Duration::ZERO, |a| !a.is_empty()).await?;
        seen.into_iter().next().ok_or_else(|| {
            failure!(
                "the IUT made no call within client.first_call_timeout ({} s){why}",
                c.first_call_timeout.as_secs()
            )
        })
    }

    /// The calls that reached HTTP (a refused handshake is no call).
    fn record_calls(&mut self, what: &str, calls: &[&Attempt], expected_ms: Vec<u64>) {
        let tolerance_ms = self
            .client_ctx()
            .map(|c| c.tolerance.as_millis() as u64)
            .unwrap_or_default();
        let t0 = calls.first().map(|a| a.at);
        let attempts = calls
            .iter()
            .map(|a| ResendAttempt {
                at_ms: t0.map_or(0, |t| a.at.duration_since(t).as_millis() as u64),
                outcome: a.answer.clone(),
                accepted: a.acknowledged,
            })
            .collect();
        self.record(ResendTimeline {
            message_id: what.to_string(),
            attempts,
            expected_ms,
            tolerance_ms,
            subject: Some("Calls to the simulated API server".into()),
        });
        let targets: Vec<_> = calls
            .iter()
            .map(|a| {
                json!({
                    "n": a.n,
                    "at_ms": a.at_ms.round() as u64,
                    "request": format!("{} {}", a.method.as_deref().unwrap_or("?"), path_of(a)),
                    "query": query_of(a),
                    "answer": a.answer,
                    "client_org": a.client_org,
                })
            })
            .collect();
        self.record(json!({ "calls_seen_by_the_simulated_server": targets }));
        self.record_command_errors();
    }

    /// What a trigger command said when it failed (curl's "(60) SSL certificate problem").
    fn record_command_errors(&mut self) {
        let errors = self
            .client_role
            .command_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        if !errors.is_empty() {
            self.record(json!({ "trigger_command_failures": errors }));
        }
    }
}

/// A call's path, without its query.
fn path_of(a: &Attempt) -> &str {
    let t = a.target.as_deref().unwrap_or("?");
    t.split_once('?').map_or(t, |(p, _)| p)
}

/// A call's query, decoded for reading (`changedFrom=2026-12-03T21:00:00Z`), if it has one.
fn query_of(a: &Attempt) -> Option<String> {
    let (_, q) = a.target.as_deref()?.split_once('?')?;
    Some(
        percent_encoding::percent_decode_str(q)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn requests(seen: &[Attempt]) -> Vec<&Attempt> {
    seen.iter().filter(|a| a.method.is_some()).collect()
}

#[given("a simulated API server")]
async fn plain(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    w.client_ctx()?;
    Ok(())
}

#[given(
    expr = "a simulated API server that answers {int} with Retry-After {int} s to the first call"
)]
async fn retry_after_seconds(w: &mut ProvstenWorld, status: u16, secs: u64) -> anyhow::Result<()> {
    w.client_ctx()?;
    w.client_role.program.push(Program::Once(Answer::Status {
        status,
        retry_after: Some(RetryAfter::Seconds(secs)),
    }));
    w.client_role.retry_after_min = Some(Duration::from_secs(secs));
    Ok(())
}

#[given(
    expr = "a simulated API server that answers {int} with a Retry-After date {int} s ahead to the first call"
)]
async fn retry_after_date(w: &mut ProvstenWorld, status: u16, secs: u64) -> anyhow::Result<()> {
    w.client_ctx()?;
    if secs < 2 {
        anyhow::bail!("a Retry-After date is in whole seconds: ask for 2 s or more");
    }
    w.client_role.program.push(Program::Once(Answer::Status {
        status,
        retry_after: Some(RetryAfter::DateIn(Duration::from_secs(secs))),
    }));
    // The date is written in whole seconds, so it may fall up to 1 s before now + secs.
    w.client_role.retry_after_min = Some(Duration::from_secs(secs - 1));
    Ok(())
}

#[given(
    expr = "a simulated API server that answers {int} without Retry-After during the first {int} ms"
)]
async fn failing(w: &mut ProvstenWorld, status: u16, ms: u64) -> anyhow::Result<()> {
    w.client_ctx()?;
    let d = Duration::from_millis(ms);
    w.client_role
        .program
        .push(Program::During(Answer::status(status), d));
    w.client_role.failing_for = Some(d);
    Ok(())
}

#[given(expr = "a simulated API server that resets the first {int} calls")]
async fn resets(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    w.client_ctx()?;
    w.client_role.program.push(Program::Times(Answer::Reset, n));
    w.client_role.failing_for = Some(RESETS_WATCHED);
    Ok(())
}

#[given(expr = "a simulated API server presenting its certificate without the intermediate")]
async fn leaf_only(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    w.client_ctx()?;
    w.client_role
        .program
        .push(Program::Always(Answer::LeafOnly(SERVER_CERT.into())));
    w.client_role.bad_cert = Some(format!("{SERVER_CERT} without its intermediate"));
    Ok(())
}

#[given(expr = "a simulated API server presenting the certificate {string}")]
async fn bad_cert(w: &mut ProvstenWorld, cert: String) -> anyhow::Result<()> {
    w.client_ctx()?;
    w.ctx()?.pki.cert(&cert)?;
    w.client_role
        .program
        .push(Program::Always(Answer::BadCert(cert.clone())));
    w.client_role.bad_cert = Some(cert);
    Ok(())
}

/// Starts the simulated server with the scenario's program and asks the IUT for `calls`.
async fn make_calls(w: &mut ProvstenWorld, calls: usize) -> anyhow::Result<()> {
    let c = w.client_ctx()?;
    let ctx = w.ctx()?;
    if w.client_role.turn.is_none() {
        let turn = tokio::time::timeout(TURN_DEADLINE, ctx.client_turn.clone().lock_owned())
            .await
            .map_err(|_| {
                anyhow!(
                    "waited {} s for the other client scenarios to finish",
                    TURN_DEADLINE.as_secs()
                )
            })?;
        w.client_role.turn = Some(turn);
    }
    let now = Instant::now();
    let rules = w
        .client_role
        .program
        .iter()
        .map(|p| match p {
            Program::Once(a) => Rule::new(a.clone()).times(1),
            Program::Times(a, n) => Rule::new(a.clone()).times(*n),
            Program::During(a, d) => Rule::new(a.clone()).until(now + *d),
            Program::Always(a) => Rule::new(a.clone()),
        })
        .collect();
    let server = SimulatedReceiver::start(ReceiverSpec {
        pki: ctx.pki.clone(),
        cert: SERVER_CERT.into(),
        id_pointer: None,
        validator: None,
        rules,
        down_for: None,
        changed: None,
        bind: None,
    })
    .await?;
    let to = server.url(&c.path);
    w.client_role.server = Some(Server(server));
    w.client_role.triggered = Some(Instant::now());
    w.client_role.calls = calls;
    w.record(json!({
        "asked_the_iut": format!("{calls} call(s) to {to}"),
        "server_certificate": w.client_role.bad_cert.clone().unwrap_or_else(|| SERVER_CERT.into()),
    }));
    match &c.trigger {
        Trigger::Url(url) => {
            let (status, answer) =
                observe::call("POST", url, Some(&json!({"to": to, "calls": calls})))
                    .await
                    .map_err(|e| anyhow!("client.trigger.url: {e:#}"))?;
            if !(200..300).contains(&status) {
                fail!("client.trigger.url {url} answered {status} ({answer}) when asked to make {calls} call(s)");
            }
        }
        Trigger::Command { argv, workdir } => {
            // One command per call, one after another, as the IUT's own loop would run them.
            let argv = argv.clone();
            let workdir = workdir.clone();
            let errors = w.client_role.command_errors.clone();
            let limit = c.first_call_timeout + GRACE;
            w.client_role.commands = Some(Commands(tokio::spawn(async move {
                for n in 1..=calls {
                    let args: Vec<String> = argv
                        .iter()
                        .map(|a| a.replace("{to}", &to).replace("{call}", &n.to_string()))
                        .collect();
                    let Some((prog, rest)) = args.split_first() else {
                        return;
                    };
                    let run = tokio::process::Command::new(prog)
                        .args(rest)
                        .current_dir(&workdir)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped())
                        .kill_on_drop(true)
                        .output();
                    let (code, said) = match tokio::time::timeout(limit, run).await {
                        Ok(Ok(out)) => (
                            out.status.code(),
                            String::from_utf8_lossy(&out.stderr)
                                .chars()
                                .take(2000)
                                .collect(),
                        ),
                        Ok(Err(e)) => (None, format!("could not start {prog:?}: {e}")),
                        Err(_) => (
                            None,
                            format!("still running after {} s; killed", limit.as_secs()),
                        ),
                    };
                    if code != Some(0) {
                        if let Ok(mut e) = errors.lock() {
                            e.push(CommandError {
                                call: n,
                                exit_code: code,
                                stderr: said,
                            });
                        }
                    }
                }
            })));
        }
    }
    Ok(())
}

#[when(expr = "the IUT makes {int} call(s) to the simulated API server")]
async fn calls(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    make_calls(w, n).await
}

#[when("the IUT makes calls to the simulated API server as fast as it may")]
async fn calls_at_rate(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = w.client_ctx()?;
    let per_second = c.request_rate.ceil() as usize;
    make_calls(w, (2 * per_second + 1).clamp(3, MAX_RATE_CALLS)).await
}

#[then("the IUT presents its organisation's certificate")]
async fn presents_identity(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = w.client_ctx()?;
    let Some(cert) = &c.client_cert else {
        return Err(ProvstenWorld::not_applicable(
            "client.client_cert is not declared: the harness cannot know which organisation the IUT must present",
        ));
    };
    let want = w.ctx()?.pki.cert(cert)?.org.clone();
    let first = w.first_call("").await?;
    w.record(json!({
        "client_certificate_expected": cert,
        "organisation_expected": want,
        "organisation_presented": first.client_org,
        "subject_presented": first.client_subject,
        "tls_version": first.tls_version,
        "handshake_error": first.handshake_error,
    }));
    w.record_command_errors();
    if let Some(e) = &first.handshake_error {
        fail!("the IUT's call did not complete its TLS handshake with the simulated server's valid certificate ({SERVER_CERT}): {e}");
    }
    if first.client_org != want {
        fail!(
            "the IUT presented organisation {:?} (subject {:?}); client.client_cert {cert:?} is organisation {:?}",
            first.client_org,
            first.client_subject,
            want
        );
    }
    Ok(())
}

#[then("the IUT refuses the server's certificate")]
async fn refuses_cert(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let cert = w
        .client_role
        .bad_cert
        .clone()
        .ok_or_else(|| anyhow!("no bad certificate was programmed (hint: `Given a simulated API server presenting the certificate \"server-expired\"`)"))?;
    let first = w
        .first_call(": a refusal cannot be told from silence")
        .await?;
    let refusal = first.sender_refusal.as_ref();
    w.record(json!({
        "server_certificate": cert,
        "handshake_error": first.handshake_error,
        "refusal": refusal,
        "request_sent": first.target,
    }));
    w.record_command_errors();
    if let Some(t) = &first.target {
        fail!(
            "the IUT accepted the server certificate {cert:?} and sent {} {t} over it",
            first.method.as_deref().unwrap_or("a request")
        );
    }
    if first.handshake_error.is_none() {
        fail!("the IUT completed the handshake with the server certificate {cert:?}");
    }
    w.record(json!({
        "summary": format!(
            "the IUT refused the server certificate {cert:?}: {}",
            refusal.map(|r| r.describe()).unwrap_or_else(|| first.handshake_error.clone().unwrap_or_default())
        )
    }));
    Ok(())
}

#[then("the IUT waits as long as the Retry-After asks before calling again")]
async fn waits_retry_after(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = w.client_ctx()?;
    let min = w
        .client_role
        .retry_after_min
        .ok_or_else(|| anyhow!("no Retry-After was programmed"))?;
    let seen = w
        .api_calls(min + c.tolerance, |a| requests(a).len() >= 2)
        .await?;
    let calls = requests(&seen);
    w.record_calls(
        "calls around a Retry-After",
        &calls,
        vec![0, min.as_millis() as u64],
    );
    let Some(first) = calls.first() else {
        fail!("the IUT made no call within client.first_call_timeout");
    };
    let Some(second) = calls.get(1) else {
        if c.retries {
            fail!("the IUT did not call again after the Retry-After ({} ms) although client.retries is true", min.as_millis());
        }
        return Ok(());
    };
    let waited = second.at.duration_since(first.at);
    w.record(json!({"retry_after": {"min_ms": min.as_millis() as u64, "waited_ms": waited.as_millis() as u64}}));
    if waited + c.tolerance < min {
        fail!(
            "the IUT called again {} ms after a Retry-After asking for {} ms (tolerance {} ms)",
            waited.as_millis(),
            min.as_millis(),
            c.tolerance.as_millis()
        );
    }
    Ok(())
}

#[then("the IUT keeps to its declared request rate")]
async fn keeps_rate(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = w.client_ctx()?;
    let (seen, want, spacing) = w.asked_calls().await?;
    let calls = requests(&seen);
    let expected = (0..want)
        .map(|i| (spacing * i as u32).as_millis() as u64)
        .collect();
    w.record_calls("calls at the declared rate", &calls, expected);
    if calls.len() < want {
        fail!(
            "the IUT made {} of the {want} calls it was asked for: its rate cannot be judged",
            calls.len()
        );
    }
    if let Some(why) = over_rate(&calls, &c) {
        fail!("{why}");
    }
    Ok(())
}

/// Over any second, at most ceil(rate) calls begin: call i and call i + ceil(rate) are a
/// second apart or more. Says which calls broke it.
fn over_rate(calls: &[&Attempt], c: &ClientContext) -> Option<String> {
    let k = c.request_rate.ceil() as usize;
    (0..calls.len().saturating_sub(k)).find_map(|i| {
        let span = calls[i + k].at.duration_since(calls[i].at);
        (span + c.tolerance < Duration::from_secs(1)).then(|| {
            format!(
                "calls {} to {} ({} calls) came within {} ms; client.request_rate = {} allows {k} a second",
                calls[i].n,
                calls[i + k].n,
                k + 1,
                span.as_millis(),
                c.request_rate
            )
        })
    })
}

#[then("the IUT backs off from the failing server")]
async fn backs_off(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = w.client_ctx()?;
    let failing = w
        .client_role
        .failing_for
        .ok_or_else(|| anyhow!("no failure was programmed (hint: `Given a simulated API server that answers 429 without Retry-After during the first 2000 ms`)"))?;
    let seen = w
        .api_calls(failing * 2, |a| requests(a).iter().any(|x| x.acknowledged))
        .await?;
    let calls = requests(&seen);
    let refused: Vec<&Attempt> = calls
        .iter()
        .copied()
        .take_while(|a| !a.acknowledged)
        .collect();
    w.record_calls("calls to a failing server", &calls, Vec::new());
    if calls.is_empty() {
        fail!("the IUT made no call within client.first_call_timeout");
    }
    let gaps: Vec<Duration> = calls
        .windows(2)
        .take(refused.len())
        .map(|p| p[1].at.duration_since(p[0].at))
        .collect();
    w.record(json!({
        "refused_calls": refused.len(),
        "waits_ms": gaps.iter().map(|g| g.as_millis() as u64).collect::<Vec<_>>(),
        "min_retry_delay_ms": c.min_retry_delay.as_millis() as u64,
    }));
    for (i, g) in gaps.iter().enumerate() {
        if *g + c.tolerance < c.min_retry_delay {
            fail!(
                "the IUT called again {} ms after refusal {} (client.min_retry_delay = {} ms)",
                g.as_millis(),
                i + 1,
                c.min_retry_delay.as_millis()
            );
        }
        if i > 0 && *g + c.tolerance < gaps[i - 1] {
            fail!(
                "the IUT's waits shrank ({} ms, then {} ms) while the server kept refusing: it does not back off",
                gaps[i - 1].as_millis(),
                g.as_millis()
            );
        }
    }
    if let Some(why) = over_rate(&calls, &c) {
        fail!("while the server refused, {why}");
    }
    Ok(())
}

#[then("later calls ask only for what changed since the last read")]
async fn changed_since(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let c = w.client_ctx()?;
    let Some(param) = c.changed_from_param.clone() else {
        return Err(ProvstenWorld::not_applicable(
            "client.changed_from_param is not declared: the IUT declares no changed-between reads",
        ));
    };
    let (seen, want, _) = w.asked_calls().await?;
    let calls = requests(&seen);
    w.record_calls("successive reads", &calls, Vec::new());
    if calls.len() < want {
        fail!(
            "the IUT made {} of the {want} reads it was asked for",
            calls.len()
        );
    }
    let first_wall = humantime::parse_rfc3339_weak(&calls[0].wall).map_err(|e| {
        anyhow!(
            "the simulated server's own clock reading {:?}: {e}",
            calls[0].wall
        )
    })?;
    for a in &calls[1..] {
        let target = a.target.clone().unwrap_or_default();
        let value = query_value(&target, &param);
        let Some(value) = value else {
            fail!(
                "read {} ({target}) has no {param}: the IUT re-read everything",
                a.n
            );
        };
        let at = humantime::parse_rfc3339_weak(&value)
            .or_else(|_| humantime::parse_rfc3339(&value))
            .map_err(|e| {
                failure!(
                    "read {} ({target}): {param}={value:?} is not an RFC 3339 time ({e})",
                    a.n
                )
            })?;
        // A from-time before the first read asks for everything again, whatever its name.
        let slack = c.tolerance + Duration::from_secs(2);
        if at + slack < first_wall {
            fail!(
                "read {} asks for changes since {value}, before its first read at {}: that re-reads everything",
                a.n,
                calls[0].wall
            );
        }
    }
    Ok(())
}

/// The decoded value of `name` in a request target's query.
fn query_value(target: &str, name: &str) -> Option<String> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::query_value;

    #[test]
    fn query_values_are_decoded_and_missing_ones_are_none() {
        assert_eq!(
            query_value(
                "/x?a=1&changedFrom=2026-12-03T21%3A00%3A00.000Z",
                "changedFrom"
            )
            .as_deref(),
            Some("2026-12-03T21:00:00.000Z")
        );
        assert_eq!(query_value("/x?a=1", "changedFrom"), None);
        assert_eq!(query_value("/x", "changedFrom"), None);
    }
}
