//! The sender in process: a tiny TLS receiver answers a programmed list of statuses and
//! records each attempt; the reference IUT queues through its admin port.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::*;
use crate::pki::{generate, Catalog, GenerateOptions};
use crate::reference::defects::{Defect, Defects};
use crate::reference::server::{start_with, ReferenceOptions, Running};
use crate::shared::resend_policy::ResendSection;

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) pki: Pki,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::parse(crate::pki::catalog::DEFAULT_CATALOG, "catalog").unwrap();
    generate(&catalog, dir.path(), &GenerateOptions::default()).unwrap();
    let pki = Pki::load(dir.path()).unwrap();
    Fixture { _dir: dir, pki }
}

pub(crate) fn policy(toml_text: &str) -> ResendPolicy {
    toml::from_str::<ResendSection>(toml_text)
        .unwrap()
        .resolve("test")
        .unwrap()
}

/// 100 ms, 200 ms, 200 ms… (scaled), four attempts in all.
const FOUR: &str =
    "delays = [\"1s\", \"2s\"]\nmax_attempts = 4\ntime_scale = 0.1\ndelivery_timeout = \"2s\"";

#[derive(Clone)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
}

fn st(status: u16) -> Reply {
    Reply {
        status,
        retry_after: None,
    }
}

#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    id: String,
    attempt: u32,
    body: Value,
    /// The body as sent, and its Content-Type (XML documents are not JSON).
    raw: Bytes,
    content_type: String,
    status: u16,
}

struct TestReceiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<(VecDeque<Reply>, Reply)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestReceiver {
    /// Presents `cert`, requires a client certificate from the PKI, answers `script` in
    /// turn and then `then` for ever.
    async fn start(pki: &Pki, cert: &str, script: Vec<Reply>, then: Reply) -> TestReceiver {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for c in pki.trust_roots().unwrap() {
            roots.add(c).unwrap();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let (chain, key) = pki.identity(cert).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new((VecDeque::from(script), then)));
        let (h, s) = (hits.clone(), script.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, hits, script) = (acceptor.clone(), h.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (hits, script) = (hits.clone(), script.clone());
                            async move {
                                use http_body_util::BodyExt;
                                let at = Instant::now();
                                let header = |n: &str| {
                                    req.headers()
                                        .get(n)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_string()
                                };
                                let (id, attempt) = (header("x-message-id"), header("x-attempt"));
                                let content_type = header("content-type");
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let reply = {
                                    let mut s = script.lock().unwrap();
                                    let fallback = s.1.clone();
                                    s.0.pop_front().unwrap_or(fallback)
                                };
                                hits.lock().unwrap().push(Hit {
                                    at,
                                    id,
                                    attempt: attempt.parse().unwrap_or(0),
                                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                    raw: body.clone(),
                                    content_type,
                                    status: reply.status,
                                });
                                let mut r =
                                    hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
                                *r.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                                if let Some(ra) = reply.retry_after {
                                    r.headers_mut().insert("retry-after", ra.parse().unwrap());
                                }
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        TestReceiver {
            addr,
            hits,
            script,
            task,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/v1/notifications", self.addr.port())
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn hits_for(&self, id: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.id.starts_with(id))
            .collect()
    }

    fn answer_from_now(&self, r: Reply) {
        let mut s = self.script.lock().unwrap();
        s.0.clear();
        s.1 = r;
    }
}

async fn iut(
    f: &Fixture,
    p: Option<ResendPolicy>,
    outbox: Option<&Path>,
    defects: &[Defect],
) -> Running {
    start_with(
        ReferenceOptions {
            pki_dir: f.pki.dir.clone(),
            api: vec!["127.0.0.1:0".parse().unwrap()],
            allowlist: None,
            trusted_proxies: vec![],
            admin: "127.0.0.1:0".parse().unwrap(),
            server_cert: "iut-server".into(),
            registered_orgs: vec!["5560000001".into()],
            defects: Defects::new(defects.iter().copied()),
            ocsp: false,
            inner: None,
            receipt_url: None,
        },
        SenderOptions {
            outbox: outbox.map(Path::to_path_buf),
            policy: p,
            client_cert: DEFAULT_CLIENT_CERT.into(),
            ..SenderOptions::default()
        },
    )
    .await
    .unwrap()
}

/// A plain HTTP/1.1 exchange with the admin port.
pub(crate) async fn admin(
    r: &Running,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut tcp = tokio::net::TcpStream::connect(r.admin).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out[9..12].parse().unwrap();
    let json = out
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

async fn send(r: &Running, to: &str, id: &str, entity: Option<&str>) {
    let (status, body) = admin(
        r,
        "POST",
        "/admin/send",
        Some(&json!({"to": to, "message_id": id, "entity": entity, "body": {"Identity": id, "Type": 2}})),
    )
    .await;
    assert_eq!((status, body), (202, json!({"queued": id})));
}

/// Polls `cond` until it holds; panics with `what` after the deadline.
pub(crate) async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    secs: u64,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn list(r: &Running, path: &str) -> Vec<String> {
    let (_, v) = admin(r, "GET", path, None).await;
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

async fn until_in(r: &Running, path: &str, id: &str) {
    until(&format!("{id} in {path}"), 20, || async {
        list(r, path).await.iter().any(|x| x == id)
    })
    .await;
}

fn offsets(hits: &[Hit]) -> Vec<Duration> {
    hits.iter().map(|h| h.at - hits[0].at).collect()
}

fn assert_offsets(p: &ResendPolicy, hits: &[Hit]) {
    let want = p.expected_offsets();
    let got = offsets(hits);
    assert_eq!(got.len(), want.len(), "attempts: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(&want) {
        let diff = if g > w { *g - *w } else { *w - *g };
        assert!(
            diff <= p.allowance(*w),
            "offsets {got:?}, expected {want:?}"
        );
        assert!(g >= w, "an attempt came early: {got:?} vs {want:?}");
    }
}

#[tokio::test]
async fn retries_at_the_declared_offsets_then_gives_up() {
    let f = fixture();
    let p = policy(FOUR);
    let rx = TestReceiver::start(&f.pki, "iut-server", vec![], st(503)).await;
    let r = iut(&f, Some(p.clone()), None, &[]).await;
    send(&r, &rx.url(), "m1", None).await;
    until_in(&r, "/admin/undeliverable", "m1").await;
    let hits = rx.hits();
    assert_offsets(&p, &hits);
    assert!(hits
        .iter()
        .all(|h| h.id == "m1" && h.body["Identity"] == "m1"));
    let attempts: Vec<u32> = hits.iter().map(|h| h.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    assert!(list(&r, "/admin/outbox").await.is_empty());
    let (_, audit) = admin(&r, "GET", "/admin/audit", None).await;
    assert_eq!(audit, json!([]));
}

#[tokio::test]
async fn max_total_bounds_the_attempts() {
    let f = fixture();
    let p = policy("delays = [\"1s\"]\nmax_total = \"2500ms\"\ntime_scale = 0.1");
    assert_eq!(p.attempt_limit(), 3);
    let rx = TestReceiver::start(&f.pki, "iut-server", vec![], st(500)).await;
    let r = iut(&f, Some(p.clone()), None, &[]).await;
    send(&r, &rx.url(), "m1", None).await;
    until_in(&r, "/admin/undeliverable", "m1").await;
    assert_offsets(&p, &rx.hits());
}

#[tokio::test]
async fn permanent_is_final_retry_after_is_honoured_and_delivery_is_audited() {
    let f = fixture();
    let p = policy(FOUR);
    let rx = TestReceiver::start(&f.pki, "iut-server", vec![st(400)], st(200)).await;
    let r = iut(&f, Some(p.clone()), None, &[]).await;
    send(&r, &rx.url(), "perm", None).await;
    until_in(&r, "/admin/undeliverable", "perm").await;
    assert_eq!(rx.hits().len(), 1);

    for as_date in [false, true] {
        // Computed just before it is sent: a date goes stale.
        let retry_after = if as_date {
            httpdate(std::time::SystemTime::now() + Duration::from_secs(2))
        } else {
            "1".to_string()
        };
        let id = format!("ra-{as_date}");
        rx.answer_from_now(st(200));
        rx.script.lock().unwrap().0.push_back(Reply {
            status: 503,
            retry_after: Some(retry_after.clone()),
        });
        send(&r, &rx.url(), &id, None).await;
        until(&format!("{id} in the audit"), 20, || async {
            let (_, a) = admin(&r, "GET", "/admin/audit", None).await;
            a.as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == json!(id) && e["direction"] == "sent")
        })
        .await;
        let hits = rx.hits_for(&id);
        assert_eq!(hits.len(), 2, "{retry_after}");
        let gap = hits[1].at - hits[0].at;
        // An HTTP-date has whole seconds: at least 1 s of the 2 remain.
        assert!(gap >= Duration::from_millis(950), "{retry_after}: {gap:?}");
    }
    let (_, audit) = admin(&r, "GET", "/admin/audit", None).await;
    let e = &audit[0];
    assert!(
        time::OffsetDateTime::parse(
            e["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "{audit}"
    );
}

fn httpdate(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap()
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
    let d = parse_retry_after(&httpdate(
        std::time::SystemTime::now() + Duration::from_secs(30),
    ))
    .unwrap();
    assert!(
        d > Duration::from_secs(27) && d <= Duration::from_secs(30),
        "{d:?}"
    );
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon"), None);
}

#[tokio::test]
async fn bad_server_certificates_are_refused_unless_the_defect() {
    let f = fixture();
    let p = policy("delays = [\"1s\"]\nmax_attempts = 2\ntime_scale = 0.05");
    for cert in ["server-expired", "server-wrong-host", "server-untrusted"] {
        let rx = TestReceiver::start(&f.pki, cert, vec![], st(200)).await;
        let r = iut(&f, Some(p.clone()), None, &[]).await;
        send(&r, &rx.url(), "m", None).await;
        until_in(&r, "/admin/undeliverable", "m").await;
        assert!(rx.hits().is_empty(), "{cert}");
        let r = iut(&f, Some(p.clone()), None, &[Defect::SenderAcceptsBadCert]).await;
        send(&r, &rx.url(), "m", None).await;
        until(&format!("{cert} accepted under the defect"), 20, || async {
            rx.hits().len() == 1
        })
        .await;
    }
}

#[tokio::test]
async fn sender_off_and_bad_requests_are_json_errors() {
    let f = fixture();
    let r = iut(&f, None, None, &[]).await;
    let (s, b) = admin(&r, "POST", "/admin/send", Some(&json!({}))).await;
    assert_eq!(s, 503);
    assert!(
        b["error"].as_str().unwrap().contains("--resend-policy"),
        "{b}"
    );
    let r = iut(&f, Some(policy(FOUR)), None, &[]).await;
    for bad in [
        json!("x"),
        json!({"to": "http://127.0.0.1:1/", "message_id": "a", "body": {}}),
        json!({"to": "https://127.0.0.1:1/", "message_id": "", "body": {}}),
        json!({"to": "https://127.0.0.1:1/", "message_id": "a"}),
        json!({"to": 5, "message_id": "a", "body": {}}),
        json!({"to": "https://127.0.0.1:1/", "message_id": "a", "entity": 3, "body": {}}),
        // An XML document is a string body with content_type application/xml.
        json!({"to": "https://127.0.0.1:1/", "message_id": "a", "body": "<a/>"}),
        json!({"to": "https://127.0.0.1:1/", "message_id": "a", "content_type": "application/xml", "body": {}}),
        json!({"to": "https://127.0.0.1:1/", "message_id": "a", "content_type": "text/plain", "body": "x"}),
    ] {
        let (s, b) = admin(&r, "POST", "/admin/send", Some(&bad)).await;
        assert_eq!(s, 400, "{bad}: {b}");
        assert!(b["error"].is_string(), "{b}");
    }
}

#[tokio::test]
async fn an_xml_document_is_sent_as_application_xml_and_broken_by_the_defect() {
    let f = fixture();
    let doc =
        std::str::from_utf8(crate::schema::xml::get("sdk/meddelande").unwrap().examples[0].bytes)
            .unwrap();
    let trust = xml_signature::Trust::new(&f.pki).unwrap();
    // As the harness gives it: unsigned, the sender's organisation as FromParty.
    let unsigned = xml_signature::strip_signatures(doc).unwrap();
    let unsigned = xml_signature::set_from_party(&unsigned, "5560000001").unwrap();
    // (defects, R3 kept, signed by)
    let cases = [
        (vec![], true, Some("5560000001")),
        (vec![Defect::SendsInvalidXml], false, Some("5560000001")),
        (vec![Defect::SendsUnsignedXml], true, None),
        (vec![Defect::SignsAsOtherOrg], true, Some("5560000002")),
    ];
    for (defects, want_r3, signer) in cases {
        let rx = TestReceiver::start(&f.pki, "iut-server", vec![], st(200)).await;
        let r = iut(&f, Some(policy(FOUR)), None, &defects).await;
        let req = json!({"to": rx.url(), "message_id": "x", "content_type": "application/xml", "body": unsigned});
        let (status, _) = admin(&r, "POST", "/admin/send", Some(&req)).await;
        assert_eq!(status, 202);
        until("one attempt", 20, || async { rx.hits().len() == 1 }).await;
        let hit = &rx.hits()[0];
        assert_eq!(hit.content_type, "application/xml");
        let sent = std::str::from_utf8(&hit.raw).unwrap();
        assert_eq!(sent.contains(XHE_CUSTOMIZATION), want_r3, "{defects:?}");
        match signer {
            // Signed last: the signature verifies and covers the (broken) content.
            Some(org) => {
                let s = xml_signature::verify_all(sent, &trust).unwrap();
                assert_eq!(s.org().as_deref(), Some(org), "{defects:?}");
            }
            None => assert_eq!(sent, unsigned, "{defects:?}"),
        }
    }
}

#[tokio::test]
async fn each_sender_defect_shows() {
    let f = fixture();
    let p = policy(FOUR);
    let limit = p.attempt_limit() as usize;
    // (defect, script, then, expected attempts)
    let cases = [
        (Defect::NoRetry, vec![], st(503), 1),
        (Defect::GiveUpEarly, vec![], st(503), limit - 1),
        (Defect::RetryOnFourXx, vec![], st(400), limit),
    ];
    for (defect, script, then, want) in cases {
        let rx = TestReceiver::start(&f.pki, "iut-server", script, then).await;
        let r = iut(&f, Some(p.clone()), None, &[defect]).await;
        send(&r, &rx.url(), "m", None).await;
        until_in(&r, "/admin/undeliverable", "m").await;
        assert_eq!(rx.hits().len(), want, "{defect}");
    }

    // retry-too-fast: the first retry comes at a quarter of the delay. A compliant one is
    // never early, only late under load: anything under three quarters shows the defect.
    let rx = TestReceiver::start(&f.pki, "iut-server", vec![], st(503)).await;
    let r = iut(&f, Some(p.clone()), None, &[Defect::RetryTooFast]).await;
    send(&r, &rx.url(), "m", None).await;
    until_in(&r, "/admin/undeliverable", "m").await;
    let got = offsets(&rx.hits());
    assert!(got[1] < p.expected_offsets()[1] * 3 / 4, "{got:?}");

    // new-id-per-attempt: the header and /Identity change on each resend.
    let rx = TestReceiver::start(&f.pki, "iut-server", vec![st(503), st(503)], st(200)).await;
    let r = iut(&f, Some(p.clone()), None, &[Defect::NewIdPerAttempt]).await;
    send(&r, &rx.url(), "m", None).await;
    until("three attempts", 20, || async { rx.hits().len() == 3 }).await;
    let ids: Vec<(String, Value)> = rx
        .hits()
        .iter()
        .map(|h| (h.id.clone(), h.body["Identity"].clone()))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("m".into(), json!("m")),
            ("m-2".into(), json!("m-2")),
            ("m-3".into(), json!("m-3"))
        ]
    );

    // ignore-retry-after: the retry comes on the policy's delay, not 2 s later.
    let ra = Reply {
        status: 503,
        retry_after: Some("2".into()),
    };
    let rx = TestReceiver::start(&f.pki, "iut-server", vec![ra], st(200)).await;
    let r = iut(&f, Some(p.clone()), None, &[Defect::IgnoreRetryAfter]).await;
    send(&r, &rx.url(), "m", None).await;
    until("two attempts", 20, || async { rx.hits().len() == 2 }).await;
    let got = offsets(&rx.hits());
    assert!(got[1] < Duration::from_secs(1), "{got:?}");
}

#[tokio::test]
async fn backlog_is_paced_and_the_storm_defect_is_not() {
    let f = fixture();
    let p = policy(&format!("{FOUR}\nbacklog_rate = 4.0"));
    for (defects, paced) in [(vec![], true), (vec![Defect::ResendStorm], false)] {
        let rx = TestReceiver::start(&f.pki, "iut-server", vec![], st(200)).await;
        let r = iut(&f, Some(p.clone()), None, &defects).await;
        for i in 0..5 {
            send(&r, &rx.url(), &format!("b{i}"), None).await;
        }
        until("five deliveries", 20, || async { rx.hits().len() == 5 }).await;
        let mut at: Vec<Instant> = rx.hits().iter().map(|h| h.at).collect();
        at.sort();
        let spread = at[4] - at[0];
        if paced {
            // 4 per second: the fifth at least ~1 s after the first.
            assert!(spread >= Duration::from_millis(900), "{spread:?}");
        } else {
            assert!(spread < Duration::from_millis(500), "{spread:?}");
        }
    }
}

#[tokio::test]
async fn ordered_messages_of_one_entity_wait_for_their_predecessor() {
    let f = fixture();
    let p = policy(&format!("{FOUR}\nordered = true"));
    // The first message of entity A fails twice, the second would succeed at once.
    let rx = TestReceiver::start(&f.pki, "iut-server", vec![st(503), st(503)], st(200)).await;
    let r = iut(&f, Some(p.clone()), None, &[]).await;
    send(&r, &rx.url(), "a1", Some("A")).await;
    send(&r, &rx.url(), "a2", Some("A")).await;
    until("both delivered", 20, || async {
        list(&r, "/admin/outbox").await.is_empty()
    })
    .await;
    let order: Vec<(String, u16)> = rx.hits().iter().map(|h| (h.id.clone(), h.status)).collect();
    assert_eq!(
        order,
        vec![
            ("a1".into(), 503),
            ("a1".into(), 503),
            ("a1".into(), 200),
            ("a2".into(), 200)
        ]
    );
}

#[tokio::test]
async fn the_outbox_survives_a_restart_and_delivers_once() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = policy("delays = [\"300ms\"]\nmax_attempts = 50\ndelivery_timeout = \"2s\"");
    for (defects, kept) in [(vec![], true), (vec![Defect::LoseOnRestart], false)] {
        let outbox = dir.path().join(format!("outbox-{kept}"));
        let rx = TestReceiver::start(&f.pki, "iut-server", vec![], st(503)).await;
        let r = iut(&f, Some(p.clone()), Some(&outbox), &defects).await;
        send(&r, &rx.url(), "keep", None).await;
        until("two failed attempts", 20, || async { rx.hits().len() >= 2 }).await;
        drop(r);
        let before = rx.hits().len();
        rx.answer_from_now(st(200));
        let r = iut(&f, Some(p.clone()), Some(&outbox), &defects).await;
        if kept {
            until("delivery after the restart", 20, || async {
                list(&r, "/admin/outbox").await.is_empty()
            })
            .await;
            let hits = rx.hits();
            let ok: Vec<&Hit> = hits.iter().filter(|h| h.status == 200).collect();
            assert_eq!(ok.len(), 1, "{hits:?}");
            // The attempt count carried over.
            assert!(ok[0].attempt as usize > before, "{hits:?}");
            let (_, audit) = admin(&r, "GET", "/admin/audit", None).await;
            assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
            drop(r);
            // Delivered stays delivered.
            let r = iut(&f, Some(p.clone()), Some(&outbox), &defects).await;
            assert!(list(&r, "/admin/outbox").await.is_empty());
            let (_, audit) = admin(&r, "GET", "/admin/audit", None).await;
            assert_eq!(audit[0]["direction"], "sent", "{audit}");
        } else {
            assert!(list(&r, "/admin/outbox").await.is_empty());
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert!(rx.hits().iter().all(|h| h.status != 200));
        }
    }
}

#[tokio::test]
async fn receiver_is_idempotent_unless_the_defect() {
    let f = fixture();
    let p = policy(FOUR);
    let example = crate::schema::catalogue::get("fullmakt/agent-notification")
        .unwrap()
        .example()
        .unwrap();
    let id = example["Identity"].as_str().unwrap().to_string();
    let mut changed = example.clone();
    changed["Reason"] = json!("Another reason.");
    for (defects, statuses, processings, audited) in [
        (vec![], vec![200, 200, 409], 1, 1),
        (vec![Defect::DuplicateProcessing], vec![200, 200, 200], 3, 3),
        (vec![Defect::NoAudit], vec![200, 200, 409], 1, 0),
    ] {
        let rx = iut(&f, None, None, &defects).await;
        let audit = Arc::new(Audit::new(true, None));
        let sender = Sender::new(
            &f.pki,
            p.clone(),
            &SenderOptions::default(),
            Defects::default(),
            audit,
        )
        .unwrap();
        let target = parse_target(&format!(
            "https://127.0.0.1:{}/v1/notifications",
            rx.api[0].port()
        ))
        .unwrap();
        let mut got = Vec::new();
        for body in [&example, &example, &changed] {
            match sender
                .post(
                    &target,
                    &id,
                    1,
                    "application/json",
                    serde_json::to_vec(body).unwrap(),
                )
                .await
            {
                Outcome::Status { status, .. } => got.push(status),
                o => panic!("{o:?}"),
            }
        }
        assert_eq!(got, statuses, "{defects:?}");
        assert_eq!(
            list(&rx, "/admin/accepted").await.len(),
            processings,
            "{defects:?}"
        );
        let (_, a) = admin(&rx, "GET", "/admin/audit", None).await;
        let received = a
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["direction"] == "received")
            .count();
        assert_eq!(received, audited, "{defects:?}: {a}");
    }
}

#[test]
fn policy_files_are_checked_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resend-policy.json");
    let p = policy(FOUR);
    std::fs::write(&path, serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(load_policy(&path).unwrap(), p);
    std::fs::write(&path, "{\"source\": 1}").unwrap();
    let err = format!("{:#}", load_policy(&path).unwrap_err());
    assert!(err.contains("resend-policy.json"), "{err}");
    let mut bad = p.clone();
    bad.time_scale = 0.0;
    std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
    let err = format!("{:#}", load_policy(&path).unwrap_err());
    assert!(
        err.contains("time_scale") && err.contains("resend-policy.json"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        load_policy(&dir.path().join("missing.json")).unwrap_err()
    );
    assert!(err.contains("missing.json"), "{err}");
}
