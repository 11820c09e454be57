//! `provsten bench router`: a day of the national message volume (1.5 million messages by
//! default) through the reference IUT's router across a `primary-node-outage` timeline at
//! an accelerated rate, counting every id. The reference runs as a child process (as in
//! `run`), its routes are counting receivers behind the embedded fault proxy, and the
//! primary's link goes down for the middle 30 % of the planned send time.
//!
//! Reported: wall time, messages per second, delivered once / duplicates / unaccounted,
//! per-route counts, the failover seen, and the CPU seconds and peak RSS of the harness and
//! of the IUT (each from `/proc`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::network::proxy::{LinkConfig, LinkUpdate, ProxyServer};
use crate::pki::{generate, Catalog, GenerateOptions, Pki};

/// The retention `bench router` gives the reference IUT: its memory then holds about this
/// many seconds of deliveries, whatever the day's volume.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct RouterBenchOptions {
    pub messages: u64,
    /// Messages per second offered to the IUT (the acceleration).
    pub rate: f64,
    /// Messages per `/admin/send-batch` request.
    pub batch: usize,
    /// Give up when nothing more is delivered for this long after the last send.
    pub stall: Duration,
    /// Where the IUT's outbox lives (default: a temporary directory).
    pub outbox: Option<PathBuf>,
    /// The reference IUT's `--retention`: how long delivered records stay in its memory.
    pub retention: Duration,
}

impl Default for RouterBenchOptions {
    fn default() -> Self {
        RouterBenchOptions {
            messages: 1_500_000,
            rate: 5_000.0,
            batch: 500,
            stall: Duration::from_secs(60),
            outbox: None,
            retention: DEFAULT_RETENTION,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RouterBench {
    pub messages: u64,
    pub offered_rate_per_s: f64,
    pub wall_s: f64,
    /// Messages delivered (distinct ids) per second of wall time.
    pub messages_per_s: f64,
    pub delivered_once: u64,
    /// Deliveries beyond the first of an id.
    pub duplicates: u64,
    /// Ids sent and never delivered.
    pub unaccounted: u64,
    pub per_route: Value,
    /// Wall-clock ms of the outage: from the primary's link going down to it coming back.
    pub outage_ms: (u64, u64),
    /// From the link going down to the first delivery through the fallback.
    pub failover_ms: Option<u64>,
    pub harness_cpu_s: f64,
    pub harness_peak_rss_mib: f64,
    pub iut_cpu_s: f64,
    pub iut_peak_rss_mib: f64,
    /// The reference IUT's resident set (MiB) against messages delivered, every 5 s.
    pub iut_rss_by_delivered: Vec<(u64, f64)>,
    /// Wall time ÷ the 10-minute goal.
    pub goal_ratio: f64,
}

impl RouterBench {
    pub fn table(&self) -> String {
        format!(
            "messages:            {} offered at {:.0}/s\n\
             wall time:           {:.1} s ({:.2}× the 10-minute goal)\n\
             delivered:           {:.0} messages/s; {} once, {} duplicates, {} unaccounted\n\
             per route:           {}\n\
             outage:              primary down {}–{} ms; first fallback delivery after {}\n\
             harness:             {:.1} CPU-s, peak RSS {:.0} MiB\n\
             reference IUT:       {:.1} CPU-s, peak RSS {:.0} MiB\n\
             IUT RSS by delivered: {}\n",
            self.messages,
            self.offered_rate_per_s,
            self.wall_s,
            self.goal_ratio,
            self.messages_per_s,
            self.delivered_once,
            self.duplicates,
            self.unaccounted,
            self.per_route,
            self.outage_ms.0,
            self.outage_ms.1,
            self.failover_ms
                .map_or("—".to_string(), |m| format!("{m} ms")),
            self.harness_cpu_s,
            self.harness_peak_rss_mib,
            self.iut_cpu_s,
            self.iut_peak_rss_mib,
            self.iut_rss_by_delivered
                .iter()
                .step_by(self.iut_rss_by_delivered.len().div_ceil(8).max(1))
                .map(|(d, r)| format!("{d}: {r:.0} MiB"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// One route's counting receiver: deliveries per message number.
struct Counter {
    name: &'static str,
    seen: Vec<AtomicU32>,
    total: AtomicU64,
    /// Nanoseconds since the bench started at the first delivery (0: none yet).
    first_ns: AtomicU64,
}

fn message_number(id: &str) -> Option<usize> {
    id.strip_prefix("bench-")?.parse().ok()
}

async fn serve_counter(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    counter: Arc<Counter>,
    epoch: Instant,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let counter = counter.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let counter = counter.clone();
                async move {
                    let id = req
                        .headers()
                        .get("x-message-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    // The body is read whole, as a receiver that processes it would.
                    let _ = req.into_body().collect().await;
                    if let Some(n) = id.as_deref().and_then(message_number) {
                        if let Some(slot) = counter.seen.get(n) {
                            slot.fetch_add(1, Ordering::Relaxed);
                            counter.total.fetch_add(1, Ordering::Relaxed);
                            let now = u64::try_from(epoch.elapsed().as_nanos())
                                .unwrap_or(u64::MAX)
                                .max(1);
                            let _ = counter.first_ns.compare_exchange(
                                0,
                                now,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                    }
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"{}",
                    ))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn receiver_tls(pki: &Pki) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for r in pki.trust_roots()? {
        roots.add(r)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("bench: the receivers' client verifier")?;
    let (chain, key) = pki.identity("peer-receiver")?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `VmHWM` (peak resident set) of /proc/PID/status, MiB.
fn peak_rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// A `kB` field of /proc/PID/status (`VmRSS:`, `VmHWM:`), MiB.
fn status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// User + system CPU seconds of /proc/PID/stat (clock ticks at the usual 100 Hz).
fn cpu_s(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(14) + tick(15)) / 100.0
}

/// How long one admin call (a batch of messages written durably) may take.
const ADMIN_DEADLINE: Duration = Duration::from_secs(30);

/// One call to the IUT's admin port, within [`ADMIN_DEADLINE`].
async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(u16, Bytes)> {
    tokio::time::timeout(ADMIN_DEADLINE, admin_call(addr, method, path, body))
        .await
        .map_err(|_| {
            anyhow!(
                "{method} {path}: no answer within {} s",
                ADMIN_DEADLINE.as_secs()
            )
        })?
}

async fn admin_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(u16, Bytes)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let task = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    task.abort();
    Ok((status, bytes))
}

/// Runs the benchmark; progress goes to stderr every 5 s.
pub async fn run(opts: &RouterBenchOptions) -> anyhow::Result<RouterBench> {
    if opts.messages == 0 || !(opts.rate.is_finite() && opts.rate > 0.0) || opts.batch == 0 {
        bail!("bench router: --messages, --rate and --batch must be above 0");
    }
    let tmp = std::env::temp_dir().join(format!("provsten-bench-router-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = run_in(opts, &tmp).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn run_in(opts: &RouterBenchOptions, tmp: &Path) -> anyhow::Result<RouterBench> {
    let pki_dir = tmp.join("pki");
    let catalog = Catalog::parse(crate::pki::catalog::DEFAULT_CATALOG, "certs/catalog.toml")?;
    generate(&catalog, &pki_dir, &GenerateOptions::default())?;
    let pki = Pki::load(&pki_dir)?;
    let epoch = Instant::now();
    let n = usize::try_from(opts.messages).context("bench router: --messages")?;
    let tls = receiver_tls(&pki)?;
    let proxy = ProxyServer::new();
    let mut counters = Vec::new();
    let mut route_args = Vec::new();
    for name in ["primary", "fallback-1"] {
        let counter = Arc::new(Counter {
            name,
            seen: (0..n).map(|_| AtomicU32::new(0)).collect(),
            total: AtomicU64::new(0),
            first_ns: AtomicU64::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let upstream = listener.local_addr()?;
        tokio::spawn(serve_counter(listener, tls.clone(), counter.clone(), epoch));
        let port = free_port()?;
        proxy
            .create(LinkConfig {
                name: format!("route-{name}"),
                listen: format!("127.0.0.1:{port}"),
                upstream: upstream.to_string(),
                enabled: true,
            })
            .await
            .map_err(|e| anyhow!("bench router: link route-{name}: {e}"))?;
        route_args.push(format!("{name}=https://127.0.0.1:{port}/v1/notifications"));
        counters.push(counter);
    }
    // The declared policy of the embedded config, as `run` writes it.
    let cfg = crate::iut::config::parse(
        crate::iut::config::DEFAULT_CONFIG,
        &crate::iut::config::ConfigSource::Embedded,
    )?;
    let policy = cfg
        .resend
        .as_ref()
        .ok_or_else(|| anyhow!("the embedded config has no [resend]"))?
        .resolve("[resend]")?;
    let policy_file = tmp.join("resend-policy.json");
    std::fs::write(&policy_file, serde_json::to_vec(&policy)?)?;
    let admin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let api = format!("127.0.0.1:{}", free_port()?);
    let outbox = opts.outbox.clone().unwrap_or_else(|| tmp.join("outbox"));
    let exe = std::env::current_exe().context("bench router: finding the provsten binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("reference-iut")
        .arg("--pki")
        .arg(&pki_dir)
        .args(["--api", &api, "--admin", &admin_addr.to_string()])
        .arg("--outbox")
        .arg(&outbox)
        .arg("--resend-policy")
        .arg(&policy_file)
        .args(["--client-cert", "client-5560000001"])
        .args(["--route-timeout", "300ms", "--failback-probe", "100ms"])
        .arg("--retention")
        .arg(humantime::format_duration(opts.retention).to_string());
    for r in &route_args {
        cmd.args(["--route", r]);
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .context("bench router: starting the reference IUT")?;
    let pid = child
        .id()
        .map(|p| p.to_string())
        .ok_or_else(|| anyhow!("bench router: the reference IUT has no pid"))?;
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = admin(admin_addr, "GET", "/admin/routes", None).await {
            break;
        }
        if Instant::now() > ready_by {
            bail!("bench router: the reference IUT's admin port {admin_addr} did not answer within 30 s");
        }
        // Readiness poll, bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = crate::schema::catalogue::get("fullmakt/agent-notification")?.example()?;
    let planned = Duration::from_secs_f64(opts.messages as f64 / opts.rate);
    let (down_at, up_at) = (planned.mul_f64(0.2), planned.mul_f64(0.5));
    let start = Instant::now();
    let proxy2 = proxy.clone();
    let outage = tokio::spawn(async move {
        let set = |enabled: bool| LinkUpdate {
            enabled: Some(enabled),
            ..LinkUpdate::default()
        };
        tokio::time::sleep_until((start + down_at).into()).await;
        let down = start.elapsed();
        let _ = proxy2.update("route-primary", set(false)).await;
        tokio::time::sleep_until((start + up_at).into()).await;
        let up = start.elapsed();
        let _ = proxy2.update("route-primary", set(true)).await;
        (down, up)
    });
    let delivered = |counters: &[Arc<Counter>]| -> u64 {
        (0..n)
            .filter(|&i| {
                counters
                    .iter()
                    .any(|c| c.seen[i].load(Ordering::Relaxed) > 0)
            })
            .count() as u64
    };
    let mut sent = 0usize;
    let mut next_progress = start + Duration::from_secs(5);
    let mut rss_by_delivered = Vec::new();
    let sample = |into: &mut Vec<(u64, f64)>| {
        let rss = status_mib(&pid, "VmRSS:");
        into.push((delivered(&counters), rss));
        rss
    };
    while sent < n {
        let due = start + Duration::from_secs_f64(sent as f64 / opts.rate);
        tokio::time::sleep_until(due.into()).await;
        let upto = (sent + opts.batch).min(n);
        let batch: Vec<Value> = (sent..upto)
            .map(|i| {
                let mut b = body.clone();
                if let Some(slot) = b.pointer_mut("/Identity") {
                    *slot = json!(format!("bench-{i}"));
                }
                json!({"message_id": format!("bench-{i}"), "body": b})
            })
            .collect();
        let (status, answer) = admin(
            admin_addr,
            "POST",
            "/admin/send-batch",
            Some(serde_json::to_vec(&batch)?),
        )
        .await
        .context("bench router: POST /admin/send-batch")?;
        if status != 202 {
            bail!(
                "bench router: /admin/send-batch answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        sent = upto;
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(5);
            let rss = sample(&mut rss_by_delivered);
            eprintln!(
                "[bench router] {:.0} s  sent {sent}  delivered primary {} fallback-1 {}  IUT RSS {rss:.0} MiB",
                start.elapsed().as_secs_f64(),
                counters[0].total.load(Ordering::Relaxed),
                counters[1].total.load(Ordering::Relaxed)
            );
        }
    }
    // Wait for the last deliveries; give up after a stall.
    let mut last = (
        counters[0].total.load(Ordering::Relaxed) + counters[1].total.load(Ordering::Relaxed),
        Instant::now(),
    );
    loop {
        let total =
            counters[0].total.load(Ordering::Relaxed) + counters[1].total.load(Ordering::Relaxed);
        if total >= opts.messages && delivered(&counters) == opts.messages {
            break;
        }
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() > opts.stall {
            break;
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(5);
            let rss = sample(&mut rss_by_delivered);
            eprintln!(
                "[bench router] {:.0} s  all sent, delivered primary {} fallback-1 {}  IUT RSS {rss:.0} MiB",
                start.elapsed().as_secs_f64(),
                counters[0].total.load(Ordering::Relaxed),
                counters[1].total.load(Ordering::Relaxed)
            );
        }
        // Polling the counters, bounded by the stall deadline above.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wall = start.elapsed();
    let (down, up) = outage.await.unwrap_or_default();
    let iut_cpu = cpu_s(&pid);
    let iut_rss = peak_rss_mib(&pid);
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    proxy.shutdown().await;
    let once = delivered(&counters);
    let total: u64 = counters
        .iter()
        .map(|c| c.total.load(Ordering::Relaxed))
        .sum();
    let first_fallback = counters[1].first_ns.load(Ordering::Relaxed);
    let failover = (first_fallback > 0)
        .then(|| Duration::from_nanos(first_fallback))
        .and_then(|at| at.checked_sub((start - epoch) + down))
        .map(|d| d.as_millis() as u64);
    Ok(RouterBench {
        messages: opts.messages,
        offered_rate_per_s: opts.rate,
        wall_s: wall.as_secs_f64(),
        messages_per_s: once as f64 / wall.as_secs_f64().max(1e-9),
        delivered_once: once,
        duplicates: total.saturating_sub(once),
        unaccounted: opts.messages - once,
        per_route: json!(counters
            .iter()
            .map(|c| (c.name, c.total.load(Ordering::Relaxed)))
            .collect::<std::collections::BTreeMap<_, _>>()),
        outage_ms: (down.as_millis() as u64, up.as_millis() as u64),
        failover_ms: failover,
        harness_cpu_s: cpu_s("self"),
        harness_peak_rss_mib: peak_rss_mib("self"),
        iut_cpu_s: iut_cpu,
        iut_peak_rss_mib: iut_rss,
        iut_rss_by_delivered: rss_by_delivered,
        goal_ratio: wall.as_secs_f64() / 600.0,
    })
}
