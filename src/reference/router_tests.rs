//! The router in process: route receivers that can be up (answering a status), down
//! (connections refused) or black-holed (TCP accepted, nothing answered), switched while
//! the reference IUT routes through them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde_json::{json, Value};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::*;
use crate::pki::{org_number, Pki};
use crate::reference::defects::{Defect, Defects};
use crate::reference::sender::tests::{admin, fixture, list, policy, until, Fixture};
use crate::reference::sender::SenderOptions;
use crate::reference::server::{start_with, ReferenceOptions, Running};

/// Rounds 100 ms apart (the policy's limits do not bind the router).
const POLICY: &str = "delays = [\"1s\"]\nmax_attempts = 3\ntime_scale = 0.1";
/// Rounds 1 s apart: what comes sooner did not wait for a round.
const SLOW_ROUNDS: &str = "delays = [\"10s\"]\nmax_attempts = 3\ntime_scale = 0.1";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Answer(u16),
    /// TCP accepted, then nothing: no TLS handshake, no answer.
    BlackHole,
}

#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    id: String,
    body: Value,
    org: Option<String>,
    status: u16,
}

struct Shared {
    acceptor: tokio_rustls::TlsAcceptor,
    hits: Mutex<Vec<Hit>>,
    handshakes: AtomicUsize,
    mode: Mutex<Mode>,
    /// Ids answered 503 whatever the mode.
    refuse_ids: Mutex<std::collections::HashSet<String>>,
    /// Only count requests (measurements), instead of recording each.
    count_only: std::sync::atomic::AtomicBool,
    count: AtomicUsize,
}

/// A route's receiver on a fixed port, which can go down and come back.
struct RouteRx {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for RouteRx {
    fn drop(&mut self) {
        self.down();
    }
}

impl RouteRx {
    /// A receiver presenting `iut-server`, requiring a client certificate of the PKI; up
    /// when `up`, else its port refuses connections until [`RouteRx::up`].
    async fn new(pki: &Pki, mode: Mode, up: bool) -> RouteRx {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for c in pki.trust_roots().unwrap() {
            roots.add(c).unwrap();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let (chain, key) = pki.identity("iut-server").unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        // A reserved port, not an ephemeral one: while down, an outgoing connection of a
        // parallel test could otherwise take it as its source port and block `up`.
        let port = crate::network::addr::reserve_port().unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let rx = RouteRx {
            addr: listener.local_addr().unwrap(),
            shared: Arc::new(Shared {
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
                hits: Mutex::new(Vec::new()),
                handshakes: AtomicUsize::new(0),
                mode: Mutex::new(mode),
                refuse_ids: Mutex::new(Default::default()),
                count_only: std::sync::atomic::AtomicBool::new(false),
                count: AtomicUsize::new(0),
            }),
            task: Mutex::new(None),
        };
        if up {
            rx.serve(listener);
        }
        rx
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            // Owned here: aborting this task closes every connection.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let Ok((tcp, _)) = a else { continue };
                        let shared = shared.clone();
                        conns.spawn(async move { connection(shared, tcp).await });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Connections refused (and open ones closed) from now on.
    fn down(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Listening again on the same port.
    async fn up(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.serve(listener);
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/v1/notifications", self.addr.port())
    }

    fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    fn hits_for(&self, id: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.id == id).collect()
    }

    fn has(&self, id: &str) -> bool {
        !self.hits_for(id).is_empty()
    }
}

async fn connection(shared: Arc<Shared>, tcp: tokio::net::TcpStream) {
    let black_hole = *shared.mode.lock().unwrap() == Mode::BlackHole;
    if black_hole {
        // Held open, never read: the client's handshake waits for ever.
        let _held = tcp;
        return std::future::pending::<()>().await;
    }
    let Ok(tls) = shared.acceptor.accept(tcp).await else {
        return;
    };
    shared.handshakes.fetch_add(1, Ordering::SeqCst);
    let org = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| org_number(c));
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (shared, org) = (shared.clone(), org.clone());
        async move {
            let at = Instant::now();
            let id = req
                .headers()
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let status = match *shared.mode.lock().unwrap() {
                _ if shared.refuse_ids.lock().unwrap().contains(&id) => 503,
                Mode::Answer(s) => s,
                Mode::BlackHole => 503,
            };
            shared.count.fetch_add(1, Ordering::SeqCst);
            if shared.count_only.load(Ordering::SeqCst) {
                let r = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
                return Ok::<_, std::convert::Infallible>(r);
            }
            shared.hits.lock().unwrap().push(Hit {
                at,
                id,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                org,
                status,
            });
            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), svc)
        .await;
}

struct Setup<'a> {
    routes: Vec<(&'a str, &'a RouteRx)>,
    outbox: Option<&'a Path>,
    defects: Vec<Defect>,
    policy: &'a str,
}

impl<'a> Setup<'a> {
    fn new(routes: &[(&'a str, &'a RouteRx)]) -> Self {
        Setup {
            routes: routes.to_vec(),
            outbox: None,
            defects: Vec::new(),
            policy: POLICY,
        }
    }

    async fn start(&self, f: &Fixture) -> Running {
        start_with(
            ReferenceOptions {
                pki_dir: f.pki.dir.clone(),
                api: vec!["127.0.0.1:0".parse().unwrap()],
                allowlist: None,
                trusted_proxies: vec![],
                admin: "127.0.0.1:0".parse().unwrap(),
                server_cert: "iut-server".into(),
                registered_orgs: vec!["5560000001".into()],
                defects: Defects::new(self.defects.iter().copied()),
                ocsp: false,
                inner: None,
                receipt_url: None,
            },
            SenderOptions {
                outbox: self.outbox.map(Path::to_path_buf),
                policy: Some(policy(self.policy)),
                router: RouterOptions {
                    routes: self
                        .routes
                        .iter()
                        .map(|(name, rx)| format!("{name}={}", rx.url()).parse().unwrap())
                        .collect(),
                    route_timeout: Duration::from_millis(300),
                    failback_probe: Duration::from_millis(100),
                },
                ..SenderOptions::default()
            },
        )
        .await
        .unwrap()
    }
}

fn message(id: &str, entity: Option<&str>) -> Value {
    json!({"message_id": id, "entity": entity, "body": {"Identity": id, "Type": 2}})
}

async fn send(r: &Running, id: &str) {
    let (status, body) = admin(r, "POST", "/admin/send", Some(&message(id, None))).await;
    assert_eq!((status, body), (202, json!({"queued": id})));
}

async fn routes(r: &Running) -> Value {
    let (status, v) = admin(r, "GET", "/admin/routes", None).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn record(r: &Running, id: &str) -> Value {
    let (status, v) = admin(r, "GET", &format!("/admin/outbox?id={id}"), None).await;
    assert_eq!(status, 200, "{v}");
    v
}

fn events(routes: &Value, kind: &str) -> Vec<Value> {
    routes["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Until the message is no longer pending (the receiver sees it before the outbox says so).
async fn until_final(r: &Running, id: &str) {
    until(&format!("{id} final"), 20, || async {
        record(r, id).await["state"] != "pending"
    })
    .await;
}

async fn until_active(r: &Running, name: &str) {
    until(&format!("{name} active"), 20, || async {
        routes(r).await["active"] == name
    })
    .await;
}

#[tokio::test]
async fn a_refused_primary_fails_over_at_once_with_the_same_id_body_and_identity() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::Answer(200), false).await;
    let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
    setup.policy = SLOW_ROUNDS;
    let r = setup.start(&f).await;
    let t0 = Instant::now();
    send(&r, "m1").await;
    until("m1 at the backup", 20, || async { backup.has("m1") }).await;
    let took = backup.hits_for("m1")[0].at - t0;
    assert!(took < Duration::from_millis(900), "{took:?}");
    until("m1 delivered", 20, || async {
        list(&r, "/admin/outbox").await.is_empty()
    })
    .await;
    let hits = backup.hits_for("m1");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body, json!({"Identity": "m1", "Type": 2}));
    assert_eq!(hits[0].org.as_deref(), Some("5560000001"));
    let rec = record(&r, "m1").await;
    assert_eq!(
        (&rec["state"], &rec["route"]),
        (&json!("delivered"), &json!("backup")),
        "{rec}"
    );
    let v = routes(&r).await;
    assert_eq!(v["active"], "backup", "{v}");
    assert_eq!(v["routes"], json!(["primary", "backup"]));
    let e = &v["events"][0];
    assert_eq!(
        (&e["kind"], &e["from"], &e["to"], &e["reason"]),
        (
            &json!("failover"),
            &json!("primary"),
            &json!("backup"),
            &json!("refused")
        ),
        "{v}"
    );
    assert!(e["unix_ms"].as_u64().unwrap() > 0);
    assert!(time::OffsetDateTime::parse(
        e["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());
    let (_, audit) = admin(&r, "GET", "/admin/audit", None).await;
    assert_eq!(audit[0]["id"], "m1", "{audit}");
}

#[tokio::test]
async fn router_lanes_route_independently_and_a_missing_lane_is_refused() {
    let f = fixture();
    let down = RouteRx::new(&f.pki, Mode::Answer(200), false).await;
    let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let primary2 = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let backup2 = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let setup = Setup::new(&[
        ("primary", &down),
        ("backup", &backup),
        ("2/primary", &primary2),
        ("2/backup", &backup2),
    ]);
    let r = setup.start(&f).await;
    send(&r, "m1").await;
    let (status, body) = admin(&r, "POST", "/admin/send?lane=2", Some(&message("m2", None))).await;
    assert_eq!((status, body), (202, json!({"queued": "m2"})));
    until("m1 at lane 1's backup", 20, || async { backup.has("m1") }).await;
    until("m2 at lane 2's primary", 20, || async {
        primary2.has("m2")
    })
    .await;
    // Lane 1's outage moved lane 1 only.
    assert_eq!(routes(&r).await["active"], "backup");
    let (_, lane2) = admin(&r, "GET", "/admin/routes?lane=2", None).await;
    assert_eq!(lane2["active"], "primary", "{lane2}");
    assert!(!backup2.has("m2") && !primary2.has("m1") && !backup.has("m2"));
    let (status, body) = admin(&r, "POST", "/admin/send?lane=3", Some(&message("m3", None))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("lanes are 1 to 2"),
        "{body}"
    );
}

#[tokio::test]
async fn a_black_holed_primary_fails_over_after_the_route_timeout() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::BlackHole, true).await;
    let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
    setup.policy = SLOW_ROUNDS;
    let r = setup.start(&f).await;
    let t0 = Instant::now();
    send(&r, "m1").await;
    until("m1 at the backup", 20, || async { backup.has("m1") }).await;
    // The route timeout (300 ms), not a round (1 s).
    let took = backup.hits_for("m1")[0].at - t0;
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1200),
        "{took:?}"
    );
    let v = routes(&r).await;
    assert_eq!(events(&v, "failover")[0]["reason"], "timeout", "{v}");
    assert_eq!(backup.hits().len(), 1);
}

#[tokio::test]
async fn with_every_route_down_messages_are_held_then_delivered_once_a_route_returns() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::Answer(200), false).await;
    let backup = RouteRx::new(&f.pki, Mode::Answer(503), true).await;
    let r = Setup::new(&[("primary", &primary), ("backup", &backup)])
        .start(&f)
        .await;
    for id in ["h1", "h2", "h3"] {
        send(&r, id).await;
    }
    // Several rounds fail (each one fails over twice), and all three are still held.
    until("three failed rounds", 20, || async {
        events(&routes(&r).await, "failover").len() >= 6
    })
    .await;
    assert_eq!(list(&r, "/admin/outbox").await, ["h1", "h2", "h3"]);
    // Held messages do not hammer the routes: one scout per round, not one per message.
    let backup_attempts = backup.hits().len();
    let rounds = events(&routes(&r).await, "failover").len() / 2;
    assert!(
        backup_attempts <= rounds + 3 + 2,
        "{backup_attempts} attempts in {rounds} rounds"
    );
    *backup.shared.mode.lock().unwrap() = Mode::Answer(200);
    until("every held message delivered", 20, || async {
        list(&r, "/admin/outbox").await.is_empty()
    })
    .await;
    for id in ["h1", "h2", "h3"] {
        let ok = backup
            .hits_for(id)
            .iter()
            .filter(|h| h.status == 200)
            .count();
        assert_eq!(ok, 1, "{id}");
        assert_eq!(record(&r, id).await["route"], "backup");
    }
    // Once delivered, never again.
    let n = backup.hits().len();
    send(&r, "after").await;
    until("after delivered", 20, || async { backup.has("after") }).await;
    assert_eq!(backup.hits().len(), n + 1);
}

#[tokio::test]
async fn a_message_no_route_takes_waits_alone_and_holds_no_other() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    for rx in [&primary, &backup] {
        rx.shared.refuse_ids.lock().unwrap().insert("bad".into());
    }
    let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
    setup.policy = SLOW_ROUNDS;
    let r = setup.start(&f).await;
    send(&r, "warm").await;
    until_final(&r, "warm").await;
    send(&r, "bad").await;
    until("bad refused by both routes", 20, || async {
        backup.has("bad")
    })
    .await;
    for i in 0..20 {
        let id = format!("g{i}");
        let t0 = Instant::now();
        send(&r, &id).await;
        until(&format!("{id} delivered"), 20, || async {
            primary.has(&id) || backup.has(&id)
        })
        .await;
        // Not held for a round (1 s).
        assert!(
            t0.elapsed() < Duration::from_millis(900),
            "{id}: {:?}",
            t0.elapsed()
        );
    }
    until("bad retried", 20, || async {
        primary.hits_for("bad").len() + backup.hits_for("bad").len() >= 6
    })
    .await;
    // Its own rounds keep the policy's delay (1 s) apart.
    let mut at: Vec<Instant> = primary
        .hits_for("bad")
        .iter()
        .chain(backup.hits_for("bad").iter())
        .map(|h| h.at)
        .collect();
    at.sort();
    let gaps = at
        .windows(2)
        .filter(|w| w[1] - w[0] >= Duration::from_millis(900))
        .count();
    assert!(gaps >= 2, "{at:?}");
    for rx in [&primary, &backup] {
        rx.shared.refuse_ids.lock().unwrap().clear();
    }
    until_final(&r, "bad").await;
    assert_eq!(record(&r, "bad").await["state"], "delivered");
}

#[tokio::test]
async fn traffic_fails_back_to_the_primary_when_it_returns() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::Answer(200), false).await;
    let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let r = Setup::new(&[("primary", &primary), ("backup", &backup)])
        .start(&f)
        .await;
    send(&r, "m1").await;
    until("m1 at the backup", 20, || async { backup.has("m1") }).await;
    primary.up().await;
    let back = Instant::now();
    until_active(&r, "primary").await;
    assert!(
        back.elapsed() < Duration::from_secs(1),
        "{:?}",
        back.elapsed()
    );
    let v = routes(&r).await;
    let fb = events(&v, "failback");
    assert_eq!(
        (&fb[0]["from"], &fb[0]["to"]),
        (&json!("backup"), &json!("primary")),
        "{v}"
    );
    send(&r, "m2").await;
    until("m2 at the primary", 20, || async { primary.has("m2") }).await;
    assert!(!backup.has("m2"));
    until_final(&r, "m2").await;
    assert_eq!(record(&r, "m2").await["route"], "primary");
    // The compliant router does not resend what the backup delivered.
    assert!(!primary.has("m1"));
}

#[tokio::test]
async fn a_killed_router_resumes_its_held_messages_unless_lose_on_restart() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    for (defects, kept) in [(vec![], true), (vec![Defect::LoseOnRestart], false)] {
        let outbox = dir.path().join(format!("outbox-{kept}"));
        let primary = RouteRx::new(&f.pki, Mode::Answer(503), true).await;
        let mut setup = Setup::new(&[("primary", &primary)]);
        setup.outbox = Some(&outbox);
        setup.defects = defects;
        let r = setup.start(&f).await;
        send(&r, "keep").await;
        until("two failed attempts", 20, || async {
            primary.hits_for("keep").len() >= 2
        })
        .await;
        drop(r);
        *primary.shared.mode.lock().unwrap() = Mode::Answer(200);
        let before = primary.hits().len();
        let r = setup.start(&f).await;
        if kept {
            until("delivery after the restart", 20, || async {
                list(&r, "/admin/outbox").await.is_empty()
            })
            .await;
            assert_eq!(primary.hits().len(), before + 1);
            assert_eq!(record(&r, "keep").await["route"], "primary");
            drop(r);
            // Delivered stays delivered.
            let r = setup.start(&f).await;
            assert!(list(&r, "/admin/outbox").await.is_empty());
            assert_eq!(record(&r, "keep").await["state"], "delivered");
        } else {
            assert!(list(&r, "/admin/outbox").await.is_empty());
            // Observed for several rounds: nothing comes.
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(primary.hits().len(), before);
        }
    }
}

#[tokio::test]
async fn batches_are_queued_whole_and_checked_as_a_whole() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(&[("primary", &primary)]);
    setup.outbox = Some(dir.path());
    let r = setup.start(&f).await;
    let batch: Vec<Value> = (0..200).map(|i| message(&format!("b{i}"), None)).collect();
    let (s, v) = admin(&r, "POST", "/admin/send-batch", Some(&json!(batch))).await;
    assert_eq!((s, v), (202, json!({"queued": 200})));
    until("200 delivered", 20, || async {
        list(&r, "/admin/outbox").await.is_empty()
    })
    .await;
    // At least once: a timed-out attempt on a busy machine is sent again.
    let sent = primary.hits().len();
    let ids: std::collections::HashSet<String> = primary.hits().into_iter().map(|h| h.id).collect();
    assert_eq!(ids.len(), 200);
    // The same batch again: accepted, nothing queued or sent again.
    let (s, _) = admin(&r, "POST", "/admin/send-batch", Some(&json!(batch))).await;
    assert_eq!(s, 202);
    // A conflict anywhere refuses the whole batch.
    let mut changed = message("b3", None);
    changed["body"]["Type"] = json!(3);
    let (s, v) = admin(
        &r,
        "POST",
        "/admin/send-batch",
        Some(&json!([message("new", None), changed])),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["message_id"], "b3");
    let (s, v) = admin(
        &r,
        "POST",
        "/admin/send-batch",
        Some(&json!([message("x", None), message("x", Some("E"))])),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = admin(
        &r,
        "POST",
        "/admin/send-batch",
        Some(&json!([message("new", None), {"message_id": "y"}])),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("message 1:"),
        "{v}"
    );
    let (s, _) = admin(&r, "GET", "/admin/outbox?id=new", None).await;
    assert_eq!(s, 404);
    let (s, _) = admin(&r, "POST", "/admin/send-batch", Some(&json!({}))).await;
    assert_eq!(s, 400);
    assert_eq!(primary.hits().len(), sent);
    // Every record shows its route.
    let (_, all) = admin(&r, "GET", "/admin/outbox?detail", None).await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 200);
    assert!(all
        .iter()
        .all(|x| x["route"] == "primary" && x.get("body").is_none()));
    assert_eq!(routes(&r).await["delivered"]["primary"], 200);
}

#[tokio::test]
async fn without_routes_a_message_needs_a_to() {
    let f = fixture();
    let r = Setup::new(&[]).start(&f).await;
    let (s, v) = admin(&r, "POST", "/admin/send", Some(&message("m", None))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("--route"), "{v}");
    let (s, _) = admin(&r, "GET", "/admin/routes", None).await;
    assert_eq!(s, 503);
    // A route without a policy is refused at start.
    let err = start_with(
        ReferenceOptions {
            pki_dir: f.pki.dir.clone(),
            api: vec!["127.0.0.1:0".parse().unwrap()],
            allowlist: None,
            trusted_proxies: vec![],
            admin: "127.0.0.1:0".parse().unwrap(),
            server_cert: "iut-server".into(),
            registered_orgs: vec![],
            defects: Defects::default(),
            ocsp: false,
            inner: None,
            receipt_url: None,
        },
        SenderOptions {
            router: RouterOptions {
                routes: vec!["p=https://127.0.0.1:1/".parse().unwrap()],
                ..RouterOptions::default()
            },
            ..SenderOptions::default()
        },
    )
    .await
    .err()
    .unwrap();
    assert!(format!("{err:#}").contains("--resend-policy"), "{err:#}");
}

#[tokio::test]
async fn ordered_routed_messages_of_one_entity_arrive_in_order() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::Answer(503), true).await;
    let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
    let ordered = format!("{POLICY}\nordered = true");
    setup.policy = &ordered;
    let r = setup.start(&f).await;
    let mut batch = Vec::new();
    for k in 0..5 {
        for e in 0..20 {
            batch.push(message(&format!("e{e}-{k}"), Some(&format!("E{e}"))));
        }
    }
    let (s, _) = admin(&r, "POST", "/admin/send-batch", Some(&json!(batch))).await;
    assert_eq!(s, 202);
    until("100 delivered", 20, || async {
        list(&r, "/admin/outbox").await.is_empty()
    })
    .await;
    let hits = backup.hits();
    for e in 0..20 {
        let seen: Vec<String> = hits
            .iter()
            .filter(|h| h.id.starts_with(&format!("e{e}-")))
            .map(|h| h.id.clone())
            .collect();
        let want: Vec<String> = (0..5).map(|k| format!("e{e}-{k}")).collect();
        assert_eq!(seen, want);
    }
}

// ---- seeded defects: each against the compliant behaviour ----

#[tokio::test]
async fn no_failover_retries_only_the_primary() {
    let f = fixture();
    for defects in [vec![], vec![Defect::NoFailover]] {
        let primary = RouteRx::new(&f.pki, Mode::Answer(503), true).await;
        let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
        let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
        setup.defects = defects.clone();
        let r = setup.start(&f).await;
        send(&r, "m").await;
        if defects.is_empty() {
            until("m at the backup", 20, || async { backup.has("m") }).await;
            assert_eq!(primary.hits_for("m").len(), 1);
        } else {
            until("three attempts on the primary", 20, || async {
                primary.hits_for("m").len() >= 3
            })
            .await;
            assert!(backup.hits().is_empty());
            assert_eq!(routes(&r).await["events"], json!([]));
            assert_eq!(list(&r, "/admin/outbox").await, ["m"]);
        }
    }
}

#[tokio::test]
async fn slow_failover_sticks_to_the_primary_for_three_seconds() {
    let f = fixture();
    for (defects, at_least, below) in [
        (vec![], Duration::ZERO, Duration::from_millis(1500)),
        (
            vec![Defect::SlowFailover],
            Duration::from_millis(2950),
            Duration::from_secs(5),
        ),
    ] {
        let primary = RouteRx::new(&f.pki, Mode::Answer(503), true).await;
        let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
        let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
        setup.defects = defects.clone();
        let r = setup.start(&f).await;
        let t0 = Instant::now();
        send(&r, "m").await;
        until("m at the backup", 20, || async { backup.has("m") }).await;
        let took = backup.hits_for("m")[0].at - t0;
        assert!(took >= at_least && took < below, "{defects:?}: {took:?}");
        if !defects.is_empty() {
            assert!(primary.hits_for("m").len() >= 3, "{:?}", primary.hits());
        }
    }
}

#[tokio::test]
async fn loses_in_flight_takes_a_timed_out_attempt_as_delivered() {
    let f = fixture();
    for defects in [vec![], vec![Defect::LosesInFlight]] {
        let primary = RouteRx::new(&f.pki, Mode::BlackHole, true).await;
        let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
        let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
        setup.defects = defects.clone();
        let r = setup.start(&f).await;
        send(&r, "m").await;
        until("m final", 20, || async {
            list(&r, "/admin/outbox").await.is_empty()
        })
        .await;
        let rec = record(&r, "m").await;
        assert_eq!(rec["state"], "delivered");
        if defects.is_empty() {
            assert_eq!(rec["route"], "backup");
            assert!(backup.has("m"));
        } else {
            assert_eq!(rec["route"], "primary");
            assert!(!backup.has("m"));
        }
    }
}

#[tokio::test]
async fn duplicates_on_failback_sends_fallback_deliveries_again() {
    let f = fixture();
    for defects in [vec![], vec![Defect::DuplicatesOnFailback]] {
        let primary = RouteRx::new(&f.pki, Mode::Answer(200), false).await;
        let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
        let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
        setup.defects = defects.clone();
        let r = setup.start(&f).await;
        send(&r, "m1").await;
        until("m1 at the backup", 20, || async { backup.has("m1") }).await;
        primary.up().await;
        until_active(&r, "primary").await;
        send(&r, "m2").await;
        until("m2 at the primary", 20, || async { primary.has("m2") }).await;
        if defects.is_empty() {
            assert!(!primary.has("m1"));
        } else {
            until("m1 again at the primary", 20, || async {
                primary.has("m1")
            })
            .await;
        }
    }
}

#[tokio::test]
async fn never_fails_back_stays_on_the_fallback() {
    let f = fixture();
    for defects in [vec![], vec![Defect::NeverFailsBack]] {
        let primary = RouteRx::new(&f.pki, Mode::Answer(200), false).await;
        let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
        let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
        setup.defects = defects.clone();
        let r = setup.start(&f).await;
        send(&r, "m1").await;
        until("m1 at the backup", 20, || async { backup.has("m1") }).await;
        primary.up().await;
        if defects.is_empty() {
            until_active(&r, "primary").await;
        } else {
            // Ten probe intervals: no probe, no failback.
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(routes(&r).await["active"], "backup");
            assert_eq!(primary.shared.handshakes.load(Ordering::SeqCst), 0);
            send(&r, "m2").await;
            until("m2 at the backup", 20, || async { backup.has("m2") }).await;
            assert!(primary.hits().is_empty());
        }
    }
}

#[tokio::test]
async fn fallback_wrong_identity_presents_another_organisation_on_fallbacks() {
    let f = fixture();
    for (defects, org) in [
        (vec![], "5560000001"),
        (vec![Defect::FallbackWrongIdentity], "5560000002"),
    ] {
        let primary = RouteRx::new(&f.pki, Mode::Answer(503), true).await;
        let backup = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
        let mut setup = Setup::new(&[("primary", &primary), ("backup", &backup)]);
        setup.defects = defects.clone();
        let r = setup.start(&f).await;
        send(&r, "m").await;
        until("m at the backup", 20, || async { backup.has("m") }).await;
        assert_eq!(primary.hits_for("m")[0].org.as_deref(), Some("5560000001"));
        assert_eq!(
            backup.hits_for("m")[0].org.as_deref(),
            Some(org),
            "{defects:?}"
        );
    }
}

/// Messages per second through the router to a local receiver, durable outbox included:
/// `cargo test --lib router_throughput -- --ignored --nocapture` (ROUTER_BENCH_MESSAGES=N
/// for another count, ROUTER_BENCH_MEMORY=1 for a memory-only outbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn router_throughput() {
    let f = fixture();
    let primary = RouteRx::new(&f.pki, Mode::Answer(200), true).await;
    primary.shared.count_only.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(&[("primary", &primary)]);
    if std::env::var_os("ROUTER_BENCH_MEMORY").is_none() {
        setup.outbox = Some(dir.path());
    }
    let r = setup.start(&f).await;
    let total: u64 = std::env::var("ROUTER_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let per_batch = 1000;
    let rss_before = rss_kib();
    let t0 = Instant::now();
    let mut queued = 0;
    while queued < total {
        let batch: Vec<Value> = (queued..(queued + per_batch).min(total))
            .map(|i| json!({"message_id": format!("m{i}"), "body": {"Identity": format!("m{i}"), "Type": 2, "Reason": "Recalled by the principal."}}))
            .collect();
        queued += batch.len() as u64;
        let (s, _) = admin(&r, "POST", "/admin/send-batch", Some(&json!(batch))).await;
        assert_eq!(s, 202);
    }
    let queue_time = t0.elapsed();
    until("all delivered", 600, || async {
        routes(&r).await["delivered"]["primary"].as_u64() == Some(total)
    })
    .await;
    let all = t0.elapsed();
    println!(
        "router throughput: {total} messages queued in {queue_time:?}, delivered in {all:?}: {:.0} msg/s; resident memory +{} KiB ({} bytes a message)",
        total as f64 / all.as_secs_f64(),
        rss_kib() - rss_before,
        (rss_kib() - rss_before) * 1024 / total as i64,
    );
    assert_eq!(primary.shared.count.load(Ordering::SeqCst) as u64, total);
}

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
