//! The reference IUT's durable outbox, through the binary: a message queued while the
//! receiver fails survives a SIGKILL mid-retry and is processed exactly once after the
//! restart; under `lose-on-restart` it is lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use provsten::pki::Pki;
use provsten::shared::resend_policy::ResendSection;
use serde_json::{json, Value};

use super::util::{pki_init, provsten};

const DEADLINE: Duration = Duration::from_secs(30);

/// Kills (SIGKILL) and reaps the IUT when dropped.
struct Iut {
    child: Child,
    admin: SocketAddr,
}

impl Drop for Iut {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_iut(dir: &Path, defects: &[&str]) -> Iut {
    let mut cmd = provsten();
    cmd.arg("reference-iut")
        .arg("--pki")
        .arg(dir.join("pki"))
        .args(["--api", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--outbox")
        .arg(dir.join("outbox"))
        .arg("--resend-policy")
        .arg(dir.join("resend-policy.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for d in defects {
        cmd.args(["--defect", d]);
    }
    let mut child = cmd.spawn().expect("starting the reference IUT");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut iut = Iut {
        child,
        admin: "127.0.0.1:0".parse().unwrap(),
    };
    let line = rx
        .recv_timeout(DEADLINE)
        .expect("the reference IUT printed no ready line");
    let admin = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin=http://"))
        .unwrap_or_else(|| panic!("no admin address in {line:?}"));
    iut.admin = admin.parse().unwrap();
    iut
}

fn admin(iut: &Iut, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut tcp = TcpStream::connect(iut.admin).expect("admin port");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let json = out
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// (status answered, X-Attempt) per request.
type Hits = Arc<Mutex<Vec<(u16, u32)>>>;

/// A mutual-TLS receiver on its own runtime answering `status` (changeable) to each POST.
struct Receiver {
    port: u16,
    status: Arc<AtomicU16>,
    hits: Hits,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(pki_dir: &Path) -> Receiver {
        use hyper_util::rt::TokioIo;
        let pki = Pki::load(pki_dir).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in pki.trust_roots().unwrap() {
            roots.add(c).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let (chain, key) = pki.identity("iut-server").unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(503));
        let hits: Hits = Arc::default();
        let (st, h) = (status.clone(), hits.clone());
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, st, h) = (acceptor.clone(), st.clone(), h.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (st, h) = (st.clone(), h.clone());
                            async move {
                                use http_body_util::BodyExt;
                                let attempt = req
                                    .headers()
                                    .get("x-attempt")
                                    .and_then(|v| v.to_str().ok())
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(0);
                                let _ = req.into_body().collect().await;
                                let status = st.load(Ordering::SeqCst);
                                h.lock().unwrap().push((status, attempt));
                                let mut r = hyper::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::from_static(b"{}"),
                                ));
                                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, std::convert::Infallible>(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Receiver {
            port,
            status,
            hits,
            _rt: rt,
        }
    }

    fn hits(&self) -> Vec<(u16, u32)> {
        self.hits.lock().unwrap().clone()
    }
}

fn setup() -> (tempfile::TempDir, Receiver) {
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let policy = toml::from_str::<ResendSection>(
        "delays = [\"400ms\"]\nmax_attempts = 200\ndelivery_timeout = \"5s\"",
    )
    .unwrap()
    .resolve("test")
    .unwrap();
    std::fs::write(
        dir.path().join("resend-policy.json"),
        serde_json::to_string(&policy).unwrap(),
    )
    .unwrap();
    let rx = Receiver::start(&dir.path().join("pki"));
    (dir, rx)
}

fn queue(iut: &Iut, rx: &Receiver) {
    let (status, body) = admin(
        iut,
        "POST",
        "/admin/send",
        Some(&json!({
            "to": format!("https://127.0.0.1:{}/v1/notifications", rx.port),
            "message_id": "m-1",
            "entity": "E",
            "body": {"Identity": "m-1", "Type": 2},
        })),
    );
    assert_eq!((status, body), (202, json!({"queued": "m-1"})));
}

fn ids(iut: &Iut, path: &str) -> Vec<Value> {
    admin(iut, "GET", path, None)
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_killed_sender_resumes_and_delivers_exactly_once() {
    let (dir, rx) = setup();
    let iut = start_iut(dir.path(), &[]);
    queue(&iut, &rx);
    until("two failed attempts", || rx.hits().len() >= 2);
    drop(iut); // SIGKILL mid-retry
    let before = rx.hits().len();
    // The message is on disk, still pending. A `.tmp` file is a write the kill cut short
    // before its rename: not a record (the outbox ignores it on start, see outbox.rs).
    let records: Vec<Value> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["state"], "pending", "{records:?}");
    rx.status.store(200, Ordering::SeqCst);
    let iut = start_iut(dir.path(), &[]);
    until("the outbox to empty after the restart", || {
        ids(&iut, "/admin/outbox").is_empty()
    });
    let audit = ids(&iut, "/admin/audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["id"], "m-1");
    assert_eq!(audit[0]["direction"], "sent");
    assert!(ids(&iut, "/admin/undeliverable").is_empty());
    let hits = rx.hits();
    let delivered: Vec<_> = hits.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(delivered.len(), 1, "{hits:?}");
    assert!(
        delivered[0].1 as usize > before,
        "the attempt count restarted: {hits:?}"
    );
}

#[test]
fn lose_on_restart_loses_the_queued_message() {
    let (dir, rx) = setup();
    let iut = start_iut(dir.path(), &["lose-on-restart"]);
    queue(&iut, &rx);
    until("two failed attempts", || rx.hits().len() >= 2);
    drop(iut);
    rx.status.store(200, Ordering::SeqCst);
    let iut = start_iut(dir.path(), &["lose-on-restart"]);
    assert!(ids(&iut, "/admin/outbox").is_empty());
    assert!(ids(&iut, "/admin/undeliverable").is_empty());
    // Observed for several retry intervals: nothing is ever delivered.
    let window = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < window {
        assert!(rx.hits().iter().all(|(s, _)| *s != 200), "{:?}", rx.hits());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ids(&iut, "/admin/audit").is_empty());
}
