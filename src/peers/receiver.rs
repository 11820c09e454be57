//! The simulated receiver (role `sender`): an HTTPS peer with mTLS whose answer to each
//! delivery attempt is programmed by steps (a status, a hang, a reset, a lost
//! acknowledgement, a bad server certificate, or no listener at all), recording every
//! attempt with its time, message id, headers, body and the client's identity.
//!
//! HTTP/1.1 is spoken by hand rather than through hyper: resetting mid-request and
//! processing a message but dropping its answer are exactly what a server library hides.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::pki::Pki;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// How the receiver answers one attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Status {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Read the request, then say nothing for this long and close.
    Hang(Duration),
    /// Read the request, then reset the connection (TCP RST).
    Reset,
    /// Process the message, then close without answering (the sender never learns).
    LoseAck,
    /// Present this catalogue certificate instead of the valid one.
    BadCert(String),
    /// Present this catalogue certificate without the intermediates of its chain: a peer
    /// given only the root cannot build a path to it.
    LeafOnly(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RetryAfter {
    Seconds(u64),
    /// An HTTP date this far ahead of the answer.
    DateIn(Duration),
}

impl Answer {
    pub(crate) fn ok() -> Answer {
        Answer::Status {
            status: 200,
            retry_after: None,
        }
    }

    pub(crate) fn status(status: u16) -> Answer {
        Answer::Status {
            status,
            retry_after: None,
        }
    }

    fn label(&self) -> String {
        match self {
            Answer::Status {
                status,
                retry_after: None,
            } => status.to_string(),
            Answer::Status {
                status,
                retry_after: Some(RetryAfter::Seconds(s)),
            } => format!("{status} Retry-After: {s}"),
            Answer::Status {
                status,
                retry_after: Some(RetryAfter::DateIn(d)),
            } => format!(
                "{status} Retry-After: <date +{}>",
                humantime::format_duration(*d)
            ),
            Answer::Hang(d) => format!("hang {}", humantime::format_duration(*d)),
            Answer::Reset => "reset".into(),
            Answer::LoseAck => "processed, acknowledgement lost".into(),
            Answer::BadCert(c) => format!("server certificate {c}"),
            Answer::LeafOnly(c) => format!("server certificate {c} without its intermediate"),
        }
    }

    /// For an answer given at the handshake: the certificate presented (as labelled), its
    /// catalogue name, and whether its intermediates are left out.
    fn presents(&self) -> Option<(String, &str, bool)> {
        match self {
            Answer::BadCert(c) => Some((self.label(), c, false)),
            Answer::LeafOnly(c) => Some((self.label(), c, true)),
            _ => None,
        }
    }

    fn processes(&self) -> bool {
        matches!(self, Answer::LoseAck)
            || matches!(self, Answer::Status { status, .. } if (200..300).contains(status))
    }
}

/// One line of the receiver's program: `answer` for attempts that match, `times` times at
/// most (None: always), only for one message id if set, only before `until` if set.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub answer: Answer,
    pub times: Option<usize>,
    pub message: Option<String>,
    pub until: Option<Instant>,
    used: usize,
}

impl Rule {
    pub(crate) fn new(answer: Answer) -> Rule {
        Rule {
            answer,
            times: None,
            message: None,
            until: None,
            used: 0,
        }
    }

    pub(crate) fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    pub(crate) fn for_message(mut self, id: impl Into<String>) -> Rule {
        self.message = Some(id.into());
        self
    }

    pub(crate) fn until(mut self, t: Instant) -> Rule {
        self.until = Some(t);
        self
    }

    fn matches(&self, message: Option<&str>, now: Instant) -> bool {
        self.times.is_none_or(|t| self.used < t)
            && self.until.is_none_or(|u| now < u)
            && match (&self.message, message) {
                (None, _) => true,
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
            }
    }
}

/// One delivery attempt as the receiver saw it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Attempt {
    pub n: usize,
    /// Milliseconds since the receiver started.
    pub at_ms: f64,
    #[serde(skip)]
    pub at: Instant,
    /// When the request began to arrive: the accept for a connection's first request,
    /// else its first bytes (a request held up by the network started long before `at`).
    #[serde(skip)]
    pub started: Instant,
    /// When its connection was accepted.
    #[serde(skip)]
    pub connection_at: Instant,
    pub wall: String,
    /// The request's method and target (path and query), as sent.
    pub method: Option<String>,
    pub target: Option<String>,
    /// The id in the body (at the message type's pointer), else the `X-Message-Id` header.
    pub message_id: Option<String>,
    pub header_id: Option<String>,
    pub body_sha256: Option<String>,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub client_org: Option<String>,
    pub client_subject: Option<String>,
    pub tls_version: Option<String>,
    /// What the receiver did with the attempt.
    pub answer: String,
    /// Set when the TLS handshake failed (the sender refused the certificate, or sent none).
    pub handshake_error: Option<String>,
    /// How the sender ended a handshake it refused: the alert it sent (name and number), a
    /// close, a reset, or silence.
    pub sender_refusal: Option<crate::peers::Refusal>,
    /// The bad server certificate the sender accepted on this attempt's connection.
    pub bad_certificate_accepted: Option<String>,
    /// Schema violations of the body ("pointer: message"); empty when valid or unchecked.
    pub violations: Vec<String>,
    /// The message was processed (2xx answered, or processed with the answer lost).
    pub processed: bool,
    /// The sender got a 2xx.
    pub acknowledged: bool,
}

struct State {
    rules: Vec<Rule>,
    attempts: Vec<Attempt>,
}

/// A running simulated receiver; stops when dropped.
pub(crate) struct SimulatedReceiver {
    pub addr: SocketAddr,
    started: Instant,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimulatedReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedReceiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SimulatedReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) struct ReceiverSpec {
    pub pki: Pki,
    /// The valid server certificate (catalogue name).
    pub cert: String,
    /// JSON pointer of the message id in the body.
    pub id_pointer: Option<String>,
    /// Every body received is checked against it (the sender must send valid messages).
    pub validator: Option<Arc<crate::schema::Validator>>,
    pub rules: Vec<Rule>,
    /// Nothing listens until this long after start.
    pub down_for: Option<Duration>,
    /// Notified on every attempt; shared by receivers watched together (routes).
    pub changed: Option<Arc<Notify>>,
    /// Where to listen; default a free loopback port.
    pub bind: Option<SocketAddr>,
}

fn server_config(pki: &Pki, cert: &str, leaf_only: bool) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for r in pki.trust_roots()? {
        roots.add(r)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(pki.crls()?)
        .build()
        .context("building the receiver's client verifier")?;
    let (mut chain, key) = pki.identity(cert)?;
    if leaf_only {
        chain.truncate(1);
    }
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| format!("the receiver's certificate {cert:?}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl SimulatedReceiver {
    pub(crate) async fn start(spec: ReceiverSpec) -> anyhow::Result<SimulatedReceiver> {
        let bind = spec
            .bind
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        // Bound at once but listening only when up: while down, the kernel refuses
        // connections (as from a host that is down) and the port stays ours, so no other
        // socket of a parallel scenario can take it in the meantime.
        let socket = if bind.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .context("creating the simulated receiver's socket")?;
        socket.set_reuseaddr(true)?;
        socket
            .bind(bind)
            .with_context(|| format!("binding the simulated receiver to {bind}"))?;
        let addr = socket.local_addr()?;
        let good = server_config(&spec.pki, &spec.cert, false)?;
        let mut bad = Vec::new();
        for r in &spec.rules {
            if let Some((label, name, leaf_only)) = r.answer.presents() {
                bad.push((label, server_config(&spec.pki, name, leaf_only)?));
            }
        }
        let started = Instant::now();
        let state = Arc::new(Mutex::new(State {
            rules: spec.rules,
            attempts: Vec::new(),
        }));
        let changed = spec.changed.unwrap_or_default();
        let ctx = Arc::new(ConnCtx {
            good,
            bad,
            state: state.clone(),
            changed: changed.clone(),
            started,
            id_pointer: spec.id_pointer,
            validator: spec.validator,
        });
        let port = match spec.down_for {
            Some(d) => Port::Down(socket, started + d),
            None => Port::Up(
                socket
                    .listen(1024)
                    .context("listening as the simulated receiver")?,
            ),
        };
        let task = tokio::spawn(accept_loop(port, ctx));
        Ok(SimulatedReceiver {
            addr,
            started,
            state,
            changed,
            task,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Adds a line to the program of a running receiver.
    pub(crate) fn add_rule(&self, rule: Rule) {
        if let Ok(mut s) = self.state.lock() {
            s.rules.push(rule);
        }
    }

    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        self.state
            .lock()
            .map(|s| s.attempts.clone())
            .unwrap_or_default()
    }

    /// Waits until `done(attempts)` holds or the deadline passes; returns the attempts
    /// either way.
    pub(crate) async fn wait_until(
        &self,
        deadline: Instant,
        done: impl Fn(&[Attempt]) -> bool,
    ) -> (bool, Vec<Attempt>) {
        wait_notified(&self.changed, deadline, || {
            let now = self.attempts();
            (done(&now), now)
        })
        .await
    }
}

/// Waits on `changed` until `probe` reports done or the deadline passes; returns the last
/// probe. The waiter is registered before each probe, so no notification is missed.
pub(crate) async fn wait_notified<T>(
    changed: &Notify,
    deadline: Instant,
    mut probe: impl FnMut() -> (bool, T),
) -> (bool, T) {
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (done, now) = probe();
        if done {
            return (true, now);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (false, now);
        }
        let _ = tokio::time::timeout(left, notified).await;
    }
}

struct ConnCtx {
    good: Arc<ServerConfig>,
    bad: Vec<(String, Arc<ServerConfig>)>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    started: Instant,
    id_pointer: Option<String>,
    validator: Option<Arc<crate::schema::Validator>>,
}

impl ConnCtx {
    fn record(&self, mut a: Attempt) {
        if let Ok(mut s) = self.state.lock() {
            a.n = s.attempts.len() + 1;
            s.attempts.push(a);
        }
        self.changed.notify_waiters();
    }

    /// A fresh record; `at` is when the connection was accepted, the moment closest to the
    /// sender's attempt (a handshake under load would blur intervals otherwise).
    fn blank(&self, at: Instant) -> Attempt {
        Attempt {
            n: 0,
            at_ms: at.duration_since(self.started).as_secs_f64() * 1000.0,
            at,
            started: at,
            connection_at: at,
            wall: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            method: None,
            target: None,
            message_id: None,
            header_id: None,
            body_sha256: None,
            body: Vec::new(),
            headers: Vec::new(),
            client_org: None,
            client_subject: None,
            tls_version: None,
            answer: String::new(),
            handshake_error: None,
            sender_refusal: None,
            bad_certificate_accepted: None,
            violations: Vec::new(),
            processed: false,
            acknowledged: false,
        }
    }

    /// The first rule that applies, marked used; `tls` chooses between certificate rules
    /// (at accept) and request rules.
    fn take(&self, message: Option<&str>, tls: bool) -> Option<Answer> {
        let now = Instant::now();
        let mut s = self.state.lock().ok()?;
        let rule = s
            .rules
            .iter_mut()
            .find(|r| r.answer.presents().is_some() == tls && r.matches(message, now))?;
        rule.used += 1;
        Some(rule.answer.clone())
    }
}

/// The receiver's port: listening, or bound and refusing until the instant.
enum Port {
    Up(TcpListener),
    Down(TcpSocket, Instant),
}

async fn accept_loop(port: Port, ctx: Arc<ConnCtx>) {
    let listener = match port {
        Port::Up(l) => l,
        Port::Down(socket, until) => {
            tokio::time::sleep_until(until.into()).await;
            // Listening on a socket already bound does not fail short of resource
            // exhaustion; should it, no attempt arrives and the scenario says so.
            match socket.listen(1024) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("provsten: the simulated receiver could not listen again: {e}");
                    return;
                }
            }
        }
    };
    // Owned by this task: when the receiver is dropped and the task aborted, every open
    // connection (a hang included) is closed with it.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        let at = Instant::now();
        conns.spawn(async move { serve(tcp, at, ctx).await });
    }
}

/// The socket, noting when raw bytes first arrive after each reset: TLS shows a request
/// only once its whole record is in, which through a slow link is long after it began.
struct Timed {
    inner: TcpStream,
    first: Arc<Mutex<Option<Instant>>>,
}

impl tokio::io::AsyncRead for Timed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if let Ok(mut f) = self.first.lock() {
                f.get_or_insert_with(Instant::now);
            }
        }
        r
    }
}

impl tokio::io::AsyncWrite for Timed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve(tcp: TcpStream, accepted_at: Instant, ctx: Arc<ConnCtx>) {
    let _ = tcp.set_nodelay(true);
    let first_bytes = Arc::new(Mutex::new(None));
    let tcp = Timed {
        inner: tcp,
        first: first_bytes.clone(),
    };
    let cert_rule = ctx.take(None, true);
    let presented = cert_rule.as_ref().and_then(|r| r.presents());
    let config = match &presented {
        Some((label, _, _)) => ctx
            .bad
            .iter()
            .find(|(n, _)| n == label)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| ctx.good.clone()),
        None => ctx.good.clone(),
    };
    let handshake =
        tokio::time::timeout(HANDSHAKE_DEADLINE, TlsAcceptor::from(config).accept(tcp)).await;
    let mut tls = match handshake {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let mut a = ctx.blank(accepted_at);
            a.handshake_error = Some(e.to_string());
            a.sender_refusal = Some(crate::peers::Refusal::from_io(
                &e,
                crate::peers::refusal::Stage::Handshake,
            ));
            a.answer = cert_rule
                .map(|r| r.label())
                .unwrap_or_else(|| "handshake failed".into());
            ctx.record(a);
            return;
        }
        Err(_) => {
            let mut a = ctx.blank(accepted_at);
            a.handshake_error = Some("no TLS handshake within 10 s".into());
            a.sender_refusal = Some(crate::peers::Refusal::Timeout {
                stage: crate::peers::refusal::Stage::Handshake,
                after_ms: HANDSHAKE_DEADLINE.as_millis() as u64,
            });
            a.answer = "handshake timed out".into();
            ctx.record(a);
            return;
        }
    };
    // A sender that completes the handshake with a bad certificate is in breach; its
    // requests are recorded with the certificate it accepted.
    let accepted_bad = presented.map(|(_, name, leaf_only)| {
        if leaf_only {
            format!("{name} (without its intermediate)")
        } else {
            name.to_string()
        }
    });
    let mut buf = Vec::with_capacity(4096);
    let mut requests = 0usize;
    loop {
        if buf.is_empty() {
            if let Ok(mut f) = first_bytes.lock() {
                *f = None;
            }
        }
        let req = match tokio::time::timeout(READ_DEADLINE, read_request(&mut tls, &mut buf)).await
        {
            Ok(Ok(Some(r))) => r,
            _ => {
                if requests == 0 {
                    if let Some(name) = &accepted_bad {
                        // Some clients (curl with OpenSSL) check the host name after the
                        // handshake and hang up: a refusal all the same.
                        let mut a = ctx.blank(accepted_at);
                        identify(&tls, &mut a);
                        a.answer = format!("server certificate {name}");
                        a.handshake_error = Some(
                            "the sender closed the connection after the handshake without sending a request".into(),
                        );
                        a.sender_refusal = Some(crate::peers::Refusal::Closed {
                            stage: crate::peers::refusal::Stage::FirstRead,
                        });
                        ctx.record(a);
                    }
                }
                return;
            }
        };
        requests += 1;
        let mut a = ctx.blank(if requests == 1 {
            accepted_at
        } else {
            Instant::now()
        });
        a.connection_at = accepted_at;
        if requests > 1 {
            let raw = first_bytes.lock().ok().and_then(|f| *f);
            a.started = raw.map_or(req.started, |r| r.min(req.started));
        }
        identify(&tls, &mut a);
        a.bad_certificate_accepted = accepted_bad.clone();
        a.headers = req.headers.clone();
        a.method = Some(req.method.clone());
        a.target = Some(req.target.clone());
        a.header_id = req
            .headers
            .iter()
            .find(|(k, _)| k == "x-message-id")
            .map(|(_, v)| v.clone());
        a.body_sha256 = Some(hex(&Sha256::digest(&req.body)));
        a.message_id = ctx
            .id_pointer
            .as_deref()
            .and_then(|p| body_id(&req.body, p))
            .or_else(|| a.header_id.clone());
        if let Some(v) = &ctx.validator {
            use crate::schema::MessageValidator;
            if let Err(found) = v.validate_bytes(&req.body) {
                a.violations = found
                    .iter()
                    .map(|x| {
                        let at = if x.instance_path.is_empty() {
                            "(body)"
                        } else {
                            x.instance_path.as_str()
                        };
                        format!("{at}: {}", x.message)
                    })
                    .collect();
            }
        }
        a.body = req.body;
        let answer = ctx
            .take(a.message_id.as_deref(), false)
            .unwrap_or_else(Answer::ok);
        a.answer = answer.label();
        a.processed = answer.processes();
        match answer {
            Answer::Status {
                status,
                retry_after,
            } => {
                a.acknowledged = (200..300).contains(&status);
                let id = a.message_id.clone();
                ctx.record(a);
                let body = serde_json::json!({"status": status, "id": id}).to_string();
                let mut head = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                    reason(status),
                    body.len()
                );
                match retry_after {
                    Some(RetryAfter::Seconds(s)) => head.push_str(&format!("Retry-After: {s}\r\n")),
                    Some(RetryAfter::DateIn(d)) => head.push_str(&format!(
                        "Retry-After: {}\r\n",
                        httpdate::fmt_http_date(SystemTime::now() + d)
                    )),
                    None => {}
                }
                if req.close {
                    head.push_str("Connection: close\r\n");
                }
                head.push_str("\r\n");
                head.push_str(&body);
                if tls.write_all(head.as_bytes()).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
                if req.close {
                    let _ = tls.shutdown().await;
                    return;
                }
            }
            Answer::Hang(d) => {
                ctx.record(a);
                tokio::time::sleep(d).await;
                return;
            }
            Answer::Reset => {
                ctx.record(a);
                let (tcp, _) = tls.into_inner();
                let _ = tcp.inner.set_zero_linger();
                drop(tcp);
                return;
            }
            Answer::LoseAck => {
                ctx.record(a);
                // Closing without an answer: the sender sees the connection end.
                let _ = tls.shutdown().await;
                return;
            }
            Answer::BadCert(_) | Answer::LeafOnly(_) => return,
        }
    }
}

fn identify(tls: &tokio_rustls::server::TlsStream<Timed>, a: &mut Attempt) {
    let (_, conn) = tls.get_ref();
    a.tls_version = conn.protocol_version().map(|v| format!("{v:?}"));
    if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
        a.client_org = crate::pki::org_number(leaf);
        a.client_subject = subject(leaf);
    }
}

fn subject(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, x) = X509Certificate::from_der(der).ok()?;
    Some(x.subject().to_string())
}

fn body_id(body: &[u8], pointer: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let x = v.pointer(pointer)?;
    Some(
        x.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| x.to_string()),
    )
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
    /// When its first bytes were read.
    started: Instant,
}

/// Reads one HTTP/1.1 request (Content-Length bodies); `None` at a clean end of stream.
async fn read_request(
    io: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> anyhow::Result<Option<Request>> {
    let mut started = (!buf.is_empty()).then(Instant::now);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head_len) = req.parse(buf)? {
            let method = req.method.unwrap_or_default().to_string();
            let target = req.path.unwrap_or_default().to_string();
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.trim().parse())
                .transpose()
                .context("bad Content-Length")?
                .unwrap_or(0);
            if len > MAX_BODY {
                anyhow::bail!("body of {len} bytes is over the limit");
            }
            let close = headers
                .iter()
                .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
            while buf.len() < head_len + len {
                let mut chunk = [0u8; 8192];
                let n = io.read(&mut chunk).await?;
                if n == 0 {
                    anyhow::bail!("the body ended early");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[head_len..head_len + len].to_vec();
            buf.drain(..head_len + len);
            return Ok(Some(Request {
                method,
                target,
                headers,
                body,
                close,
                started: started.unwrap_or_else(Instant::now),
            }));
        }
        if buf.len() > MAX_HEAD {
            anyhow::bail!("request head over {MAX_HEAD} bytes");
        }
        let mut chunk = [0u8; 8192];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        started.get_or_insert_with(Instant::now);
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn reason(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
