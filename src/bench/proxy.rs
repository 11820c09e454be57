//! Whole-path performance figures for the embedded fault proxy, each as a ratio to a
//! direct connection measured in the same run (machines are shared and noisy: only ratios
//! carry from one run to another).
//!
//! Paths, all on loopback, client, proxy and servers sharing the same cores:
//!
//! - `direct`: client → server;
//! - `provsten`: client → provsten's proxy ([`ProxyServer`], in this process) → server;
//! - `provsten+latency0`: the same with a `latency` toxic of 0 ms on both streams (the
//!   toxic path of the pump: read-ahead queue, planning, timers);
//! - `haproxy`: client → HAProxy in `mode tcp` (a child process, when installed) → server.
//!
//! Figures: bulk throughput (one stream, and several in parallel, to a sink that reads and
//! discards), a small request/response rate on one connection with its round-trip
//! latency, new connections per second, CPU seconds per GB relayed, and memory per idle
//! connection with the resident memory left after closing them.
//!
//! The servers and clients run as tasks of the caller's Tokio runtime; call [`run`] from a
//! multi-threaded runtime (the CLI's), as measurements on a current-thread runtime say
//! more about that runtime than about the proxy.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::network::proxy::{LinkConfig, ProxyServer, Stream, ToxicSpec};

/// The sink acknowledges every this many bytes received with one byte, so a client knows
/// when its data has arrived (and not merely left its socket buffer).
pub const ACK_EVERY: usize = 1 << 20;
/// The size of the client's writes in bulk transfers.
const WRITE_CHUNK: usize = 128 * 1024;
/// The sink's read buffer.
const SINK_BUF: usize = 64 * 1024;
/// The echo server's read buffer (small: it is part of every idle connection's cost).
const ECHO_BUF: usize = 2 * 1024;
/// How long HAProxy may take to start listening.
const HAPROXY_START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a stopped HAProxy may take to exit.
const HAPROXY_STOP_DEADLINE: Duration = Duration::from_secs(5);
/// The slack added to each timed loop's own duration before it counts as stuck.
const SLACK: Duration = Duration::from_secs(15);
/// File descriptors kept free for everything else when sizing the idle test.
const FD_RESERVE: usize = 256;

/// Reference ratios to direct (and CPU per GB) measured on a 2-core loopback machine,
/// client, proxy and server sharing the cores: the yardsticks of the goals in
/// [`BenchReport::table`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reference {
    /// Which proxy.
    pub name: &'static str,
    /// Single-stream throughput, as a ratio to direct.
    pub throughput: f64,
    /// Request rate, as a ratio to direct.
    pub requests: f64,
    /// Connection rate, as a ratio to direct.
    pub connections: f64,
    /// CPU seconds per GB relayed.
    pub cpu_s_per_gb: f64,
    /// Added p50 round-trip latency per hop, in µs.
    pub added_p50_us: f64,
}

/// HAProxy (`mode tcp`), as measured for reference.
pub const HAPROXY_REFERENCE: Reference = Reference {
    name: "haproxy",
    throughput: 0.37,
    requests: 0.67,
    connections: 0.43,
    cpu_s_per_gb: 0.62,
    added_p50_us: 45.0,
};

/// Toxiproxy, as measured for reference.
pub const TOXIPROXY_REFERENCE: Reference = Reference {
    name: "toxiproxy",
    throughput: 0.27,
    requests: 0.52,
    connections: 0.23,
    cpu_s_per_gb: 1.16,
    added_p50_us: 45.0,
};

/// Goal: provsten's CPU seconds per GB relayed, no toxic.
pub const GOAL_CPU_S_PER_GB: f64 = 0.5;
/// Goal: provsten's added p50 round trip per hop, no toxic, in µs.
pub const GOAL_ADDED_P50_US: f64 = 30.0;
/// Goal: provsten's memory per idle connection, in KiB.
pub const GOAL_IDLE_KIB: f64 = 64.0;

/// What to measure, and how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchOptions {
    /// How long each timed test (request/response, new connections) runs, per path.
    #[serde(with = "millis")]
    pub duration: Duration,
    /// MiB sent per bulk test (split evenly over the streams of the parallel test).
    pub bulk_mib: u64,
    /// Streams of the parallel bulk test, and connections of the parallel request test.
    pub streams: usize,
    /// Bytes of each request (and response) of the request/response test.
    pub message_size: usize,
    /// Idle connections held open through each path for the memory test (fewer if the
    /// file-descriptor limit does not allow as many; the report says so).
    pub idle_connections: usize,
    /// How long to wait, at most, for resident memory to come back after closing the
    /// idle connections.
    #[serde(with = "millis")]
    pub settle: Duration,
    /// Whether to measure HAProxy too, when it is installed.
    pub haproxy: bool,
    /// The HAProxy binary; `None` looks for `haproxy` on `PATH`, then in `/usr/sbin`
    /// and `/usr/local/sbin`.
    pub haproxy_path: Option<PathBuf>,
    /// HAProxy's `nbthread`; `None` leaves HAProxy's default (one thread per CPU).
    pub haproxy_threads: Option<usize>,
}

impl Default for BenchOptions {
    /// About a minute on a 2-core machine.
    fn default() -> BenchOptions {
        BenchOptions {
            duration: Duration::from_secs(3),
            bulk_mib: 1024,
            streams: 4,
            message_size: 64,
            idle_connections: 1000,
            settle: Duration::from_secs(2),
            haproxy: true,
            haproxy_path: None,
            haproxy_threads: None,
        }
    }
}

impl BenchOptions {
    /// About ten seconds: shorter tests, the same idle-connection count.
    pub fn quick() -> BenchOptions {
        BenchOptions {
            duration: Duration::from_millis(300),
            bulk_mib: 256,
            settle: Duration::from_millis(500),
            ..BenchOptions::default()
        }
    }

    fn check(&self) -> Result<()> {
        if self.duration.is_zero() {
            bail!("bench: the test duration must be positive");
        }
        if self.bulk_mib == 0 || self.streams == 0 || self.message_size == 0 {
            bail!("bench: bulk MiB, streams and message size must be positive");
        }
        if self.bulk_mib < self.streams as u64 {
            bail!(
                "bench: {} MiB cannot be split over {} streams (hint: at least 1 MiB each)",
                self.bulk_mib,
                self.streams
            );
        }
        Ok(())
    }
}

/// `Duration` as whole milliseconds in JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A path between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// Client → server.
    Direct,
    /// Through provsten's proxy, no toxic.
    Provsten,
    /// Through provsten's proxy with a 0 ms `latency` toxic on both streams.
    ProvstenLatency0,
    /// Through HAProxy in `mode tcp`.
    Haproxy,
}

impl PathKind {
    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Provsten => "provsten",
            PathKind::ProvstenLatency0 => "provsten+latency0",
            PathKind::Haproxy => "haproxy",
        }
    }
}

/// The figures of one path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathFigures {
    /// Which path.
    pub path: PathKind,
    /// One stream, MB/s (10⁶ bytes), from connect to the sink's last acknowledgement.
    pub throughput_single_mb_s: f64,
    /// [`BenchOptions::streams`] streams together, MB/s.
    pub throughput_parallel_mb_s: f64,
    /// Request/response round trips per second on one connection.
    pub requests_per_s: f64,
    /// Round trips per second over [`BenchOptions::streams`] connections at once, each
    /// waiting for its answer before the next request.
    pub requests_parallel_per_s: f64,
    /// Median round trip, µs.
    pub rtt_p50_us: f64,
    /// 99th-percentile round trip, µs.
    pub rtt_p99_us: f64,
    /// Connect, 1-byte echo, close: per second.
    pub connections_per_s: f64,
    /// CPU seconds per GB (10⁹ bytes) of the bulk tests, of the process that hosts the
    /// proxy: for `direct` and provsten's paths this process (client and sink included),
    /// for HAProxy its own process.
    pub process_cpu_s_per_gb: f64,
    /// The proxy's own CPU seconds per GB: provsten's process figure less direct's (the
    /// client's and sink's share); HAProxy's process figure; none for `direct`.
    pub proxy_cpu_s_per_gb: Option<f64>,
    /// Memory per idle connection.
    pub idle: Option<IdleFigures>,
    /// Ratios to `direct` (none for `direct` itself).
    pub ratios: Option<Ratios>,
}

/// Memory held by idle connections, measured twice: a first round from whatever the
/// allocator holds, then, after closing them, a second round that reuses what the first
/// freed (a long-lived harness's steady state: reused heap memory is cleared, so made
/// resident, where fresh memory stays untouched until written). Both rounds count from
/// the resident memory before the first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleFigures {
    /// Connections held open in each round.
    pub connections: usize,
    /// The first round.
    pub first: IdleRound,
    /// The second round.
    pub repeat: IdleRound,
    /// Resident memory of the hosting process after closing the second round's
    /// connections and waiting (see `settled_ms`), KiB.
    pub rss_after_close_kib: u64,
    /// How long that wait took: until within 5 % of the first round's `rss_before_kib`,
    /// or [`BenchOptions::settle`].
    pub settled_ms: u64,
    /// `rss_after_close_kib` / the first round's `rss_before_kib`.
    pub after_close_ratio: f64,
}

/// One round of idle connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleRound {
    /// Resident memory of the process hosting the proxy before opening them, KiB.
    pub rss_before_kib: u64,
    /// ... while they are open and idle, KiB.
    pub rss_loaded_kib: u64,
    /// (loaded − the first round's before) / connections, of the hosting process, KiB:
    /// what it holds with the connections open over what it held before either round, so
    /// memory the first round's connections did not give back counts in the second.
    pub process_kib_per_connection: f64,
    /// The proxy's own share: provsten's process figure less direct's (the client's and
    /// echo server's share of each connection); HAProxy's process figure; none for
    /// `direct`.
    pub proxy_kib_per_connection: Option<f64>,
}

impl IdleRound {
    fn new(baseline: u64, before: u64, loaded: u64, n: usize) -> IdleRound {
        IdleRound {
            rss_before_kib: before,
            rss_loaded_kib: loaded,
            process_kib_per_connection: (loaded as f64 - baseline as f64) / n.max(1) as f64,
            proxy_kib_per_connection: None,
        }
    }
}

/// A path's figures as ratios to `direct` (measured in the same run).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    /// Single-stream throughput.
    pub throughput_single: f64,
    /// Parallel throughput.
    pub throughput_parallel: f64,
    /// Request rate.
    pub requests: f64,
    /// Request rate over several connections.
    pub requests_parallel: f64,
    /// Connection rate.
    pub connections: f64,
    /// p50 round trip less direct's, µs: what the hop adds.
    pub added_p50_us: f64,
    /// p99 round trip less direct's, µs.
    pub added_p99_us: f64,
}

/// A path that was not measured, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Which path.
    pub path: PathKind,
    /// Why (`haproxy not installed`).
    pub reason: String,
}

/// The figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// What was asked.
    pub options: BenchOptions,
    /// CPUs available to this process.
    pub cpus: usize,
    /// `haproxy -v`'s first line, when HAProxy was measured.
    pub haproxy_version: Option<String>,
    /// Wall-clock seconds the run took.
    pub elapsed_s: f64,
    /// The machine's 1-minute load average at the start and at the end of the run (above
    /// `cpus`, something else competed for the CPUs: expect noisier figures).
    pub load_average: [Option<f64>; 2],
    /// The measured paths, `direct` first.
    pub paths: Vec<PathFigures>,
    /// Paths not measured.
    pub skipped: Vec<Skipped>,
    /// Anything that bent the measurement (fewer idle connections than asked, say).
    pub notes: Vec<String>,
}

// ------------------------------------------------------------------------------------
// Servers, links and client operations (shared with `benches/proxy.rs`).

/// Aborts the task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Clone, Copy)]
enum ServerKind {
    Sink,
    Echo,
}

/// A loopback server; dropping it aborts its accept loop and every connection.
struct Server {
    addr: SocketAddr,
    _task: AbortOnDrop,
}

impl Server {
    async fn start(kind: ServerKind) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bench: binding a loopback server")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, kind));
        Ok(Server {
            addr,
            _task: AbortOnDrop(task),
        })
    }
}

async fn accept_loop(listener: TcpListener, kind: ServerKind) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    match kind {
                        ServerKind::Sink => conns.spawn(sink(socket)),
                        ServerKind::Echo => conns.spawn(echo(socket)),
                    };
                }
                // Out of file descriptors, say: the client sees its connect time out.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Reads and discards, acknowledging every [`ACK_EVERY`] bytes with one byte.
async fn sink(mut socket: TcpStream) {
    let mut buf = vec![0u8; SINK_BUF];
    let mut unacked = 0usize;
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                unacked += n;
                let acks = unacked / ACK_EVERY;
                if acks > 0 {
                    unacked %= ACK_EVERY;
                    if socket.write_all(&vec![1u8; acks]).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Echoes until the end of stream, then half-closes.
async fn echo(mut socket: TcpStream) {
    let mut buf = vec![0u8; ECHO_BUF];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if socket.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Where a path's two servers are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The acknowledging sink ([`transfer`]).
    pub sink: SocketAddr,
    /// The echo server ([`round_trip`]).
    pub echo: SocketAddr,
}

/// A sink and an echo server, and provsten's proxy in front of them twice: plainly and
/// with a 0 ms latency toxic on both streams. Dropping it stops everything.
pub struct Fixture {
    /// The servers themselves.
    pub direct: Endpoints,
    /// Through provsten's proxy.
    pub provsten: Endpoints,
    /// Through provsten's proxy with `latency` 0 ms on both streams.
    pub provsten_latency0: Endpoints,
    proxy: Arc<ProxyServer>,
    _sink: Server,
    _echo: Server,
}

impl Fixture {
    /// Starts the servers and the proxy's links, on loopback ports chosen by the system.
    pub async fn start() -> Result<Fixture> {
        let sink = Server::start(ServerKind::Sink).await?;
        let echo = Server::start(ServerKind::Echo).await?;
        let direct = Endpoints {
            sink: sink.addr,
            echo: echo.addr,
        };
        let proxy = ProxyServer::new();
        let provsten = Endpoints {
            sink: link(&proxy, "bench-sink", sink.addr, false).await?,
            echo: link(&proxy, "bench-echo", echo.addr, false).await?,
        };
        let provsten_latency0 = Endpoints {
            sink: link(&proxy, "bench-sink-latency0", sink.addr, true).await?,
            echo: link(&proxy, "bench-echo-latency0", echo.addr, true).await?,
        };
        Ok(Fixture {
            direct,
            provsten,
            provsten_latency0,
            proxy,
            _sink: sink,
            _echo: echo,
        })
    }

    /// Removes the links (closing their connections) and stops the servers.
    pub async fn shutdown(self) {
        self.proxy.shutdown().await;
    }
}

/// A link to `upstream`, with `latency` 0 ms on both streams if `latency0`; its address.
async fn link(
    proxy: &ProxyServer,
    name: &str,
    upstream: SocketAddr,
    latency0: bool,
) -> Result<SocketAddr> {
    let info = proxy
        .create(LinkConfig {
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.to_string(),
            enabled: true,
        })
        .await
        .with_context(|| format!("bench: creating link {name}"))?;
    if latency0 {
        for stream in Stream::ALL {
            proxy
                .add_toxic(
                    name,
                    ToxicSpec {
                        name: String::new(),
                        kind: "latency".into(),
                        stream,
                        toxicity: 1.0,
                        attributes: serde_json::json!({"latency": 0}),
                    },
                )
                .with_context(|| format!("bench: adding latency 0 to link {name}"))?;
        }
    }
    info.listen
        .parse()
        .with_context(|| format!("bench: link {name} listens on {:?}", info.listen))
}

/// A client connection, Nagle off (small requests leave at once).
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Sends `mib` MiB on `conn` (connected to a sink) and waits until the sink has
/// acknowledged all of it. `chunk` is what is written, over and over.
pub async fn transfer(conn: &mut TcpStream, mib: u64, chunk: &[u8]) -> io::Result<()> {
    if chunk.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty chunk"));
    }
    let (mut r, mut w) = conn.split();
    let total = mib.saturating_mul(ACK_EVERY as u64);
    let send = async {
        let mut left = total;
        while left > 0 {
            let n = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
            w.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        Ok::<(), io::Error>(())
    };
    let acked = async {
        let mut acks = 0u64;
        let mut buf = [0u8; 256];
        while acks < mib {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the sink closed after {acks} of {mib} acknowledgements"),
                ));
            }
            acks += n as u64;
        }
        Ok(())
    };
    tokio::try_join!(send, acked)?;
    Ok(())
}

/// Writes `msg` on `conn` (connected to an echo server) and reads it back into `buf`
/// (as long as `msg`).
pub async fn round_trip(conn: &mut TcpStream, msg: &[u8], buf: &mut [u8]) -> io::Result<()> {
    conn.write_all(msg).await?;
    conn.read_exact(buf).await?;
    Ok(())
}

// ------------------------------------------------------------------------------------
// The measurements.

/// Where the process hosting a path's proxy is.
#[derive(Debug, Clone, Copy)]
enum Host {
    /// This process.
    This,
    /// A child.
    Pid(u32),
}

struct Target {
    kind: PathKind,
    ends: Endpoints,
    host: Host,
}

/// `f` within `deadline`, or an error naming `what`.
async fn within<T>(
    deadline: Duration,
    what: &str,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(deadline, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("bench: {what}: {e}")),
        Err(_) => Err(anyhow!("bench: {what}: no result within {deadline:?}")),
    }
}

/// Runs `f` as a task of the runtime (so the client runs on its workers, not on the
/// thread blocked on the caller's future), within `deadline`.
async fn spawned<T: Send + 'static>(
    deadline: Duration,
    what: &str,
    f: impl std::future::Future<Output = io::Result<T>> + Send + 'static,
) -> Result<T> {
    let mut handle = tokio::spawn(f);
    match tokio::time::timeout(deadline, &mut handle).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(anyhow!("bench: {what}: {e}")),
        Ok(Err(e)) => Err(anyhow!("bench: {what}: the task failed: {e}")),
        Err(_) => {
            handle.abort();
            Err(anyhow!("bench: {what}: no result within {deadline:?}"))
        }
    }
}

/// Bulk: `streams` connections together send `mib` MiB to the sink; MB/s.
async fn bulk(addr: SocketAddr, mib: u64, streams: usize) -> Result<f64> {
    let per_stream = mib / streams as u64;
    let bytes = per_stream * streams as u64 * ACK_EVERY as u64;
    // 30 s, plus what 20 MB/s would take.
    let deadline = Duration::from_secs(30) + Duration::from_secs(bytes / 20_000_000);
    let chunk: Arc<[u8]> = vec![0x5a; WRITE_CHUNK].into();
    let clock = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..streams {
        let chunk = chunk.clone();
        set.spawn(async move {
            let mut conn = connect(addr).await?;
            transfer(&mut conn, per_stream, &chunk).await
        });
    }
    let all = async {
        while let Some(joined) = set.join_next().await {
            joined.map_err(io::Error::other)??;
        }
        Ok(())
    };
    within(deadline, "bulk transfer", all).await?;
    Ok(bytes as f64 / 1e6 / clock.elapsed().as_secs_f64())
}

/// Request/response on one connection for `duration`: (per second, p50 µs, p99 µs).
async fn request_response(
    addr: SocketAddr,
    size: usize,
    duration: Duration,
) -> Result<(f64, f64, f64)> {
    let run = async move {
        let mut conn = connect(addr).await?;
        let msg = vec![0x42u8; size];
        let mut buf = vec![0u8; size];
        // One round trip first: the connection to the upstream is not what is measured.
        round_trip(&mut conn, &msg, &mut buf).await?;
        let mut rtts: Vec<u32> = Vec::with_capacity(1 << 16);
        let clock = Instant::now();
        while clock.elapsed() < duration {
            let t = Instant::now();
            round_trip(&mut conn, &msg, &mut buf).await?;
            rtts.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
        }
        Ok((rtts, clock.elapsed()))
    };
    let (mut rtts, elapsed) = spawned(duration + SLACK, "request/response", run).await?;
    if rtts.is_empty() {
        bail!("bench: request/response: no round trip completed");
    }
    rtts.sort_unstable();
    let pct = |q: f64| {
        let rank = ((q * rtts.len() as f64).ceil() as usize).clamp(1, rtts.len());
        f64::from(rtts[rank - 1]) / 1e3
    };
    Ok((
        rtts.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    ))
}

/// Request/response on `conns` connections at once for `duration`: round trips per
/// second, all connections together.
async fn parallel_requests(
    addr: SocketAddr,
    size: usize,
    conns: usize,
    duration: Duration,
) -> Result<f64> {
    let run = async move {
        let mut set = JoinSet::new();
        for _ in 0..conns {
            set.spawn(async move {
                let mut conn = connect(addr).await?;
                let msg = vec![0x42u8; size];
                let mut buf = vec![0u8; size];
                round_trip(&mut conn, &msg, &mut buf).await?;
                Ok::<_, io::Error>((conn, msg, buf))
            });
        }
        let mut ready = Vec::with_capacity(conns);
        while let Some(joined) = set.join_next().await {
            ready.push(joined.map_err(io::Error::other)??);
        }
        // Every connection is open and answered once before the clock starts.
        let clock = Instant::now();
        let mut set = JoinSet::new();
        for (mut conn, msg, mut buf) in ready {
            set.spawn(async move {
                let mut n = 0u64;
                while clock.elapsed() < duration {
                    round_trip(&mut conn, &msg, &mut buf).await?;
                    n += 1;
                }
                Ok::<_, io::Error>(n)
            });
        }
        let mut total = 0u64;
        while let Some(joined) = set.join_next().await {
            total += joined.map_err(io::Error::other)??;
        }
        Ok(total as f64 / clock.elapsed().as_secs_f64())
    };
    spawned(duration + SLACK, "parallel request/response", run).await
}

/// Connect, 1-byte echo, close, repeated for `duration`: per second.
async fn connection_rate(addr: SocketAddr, duration: Duration) -> Result<f64> {
    let run = async move {
        let mut n = 0u64;
        let mut buf = [0u8; 1];
        let clock = Instant::now();
        while clock.elapsed() < duration {
            let mut conn = connect(addr).await?;
            round_trip(&mut conn, b"c", &mut buf).await?;
            drop(conn);
            n += 1;
        }
        Ok(n as f64 / clock.elapsed().as_secs_f64())
    };
    spawned(duration + SLACK, "connection rate", run).await
}

/// Opens `n` connections to `addr`, each carrying one 1-byte echo (so it reaches the
/// server), a few at a time.
async fn open_idle(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    const AT_ONCE: usize = 32;
    let mut conns = Vec::with_capacity(n);
    let mut set = JoinSet::new();
    let mut started = 0;
    while conns.len() < n {
        while started < n && set.len() < AT_ONCE {
            set.spawn(async move {
                let mut conn = connect(addr).await?;
                round_trip(&mut conn, b"i", &mut [0u8; 1]).await?;
                Ok::<TcpStream, io::Error>(conn)
            });
            started += 1;
        }
        match set.join_next().await {
            Some(joined) => conns.push(joined.map_err(io::Error::other)??),
            None => break,
        }
    }
    Ok(conns)
}

/// Two rounds of `n` idle connections to `addr`, measuring `host`'s resident memory
/// before and while they are open; after the second, waits up to `settle` for the memory
/// to come back.
async fn idle(addr: SocketAddr, n: usize, host: Host, settle: Duration) -> Result<IdleFigures> {
    let open_deadline = SLACK + Duration::from_millis(10 * n as u64);
    let mut rounds = Vec::with_capacity(2);
    for round in 0..2 {
        if round > 0 {
            // Let the proxy see the closes and free what the connections held.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let before = rss_kib(host)?;
        let baseline = rounds
            .first()
            .map_or(before, |r: &IdleRound| r.rss_before_kib);
        let conns = spawned(open_deadline, "idle connections", open_idle(addr, n)).await?;
        // Let every task the connections started settle into waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        rounds.push(IdleRound::new(baseline, before, rss_kib(host)?, n));
        drop(conns);
    }
    let (Some(repeat), Some(first)) = (rounds.pop(), rounds.pop()) else {
        bail!("bench: idle connections: a round is missing");
    };
    let clock = Instant::now();
    let mut after;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = rss_kib(host)?;
        if after as f64 <= first.rss_before_kib as f64 * 1.05 || clock.elapsed() >= settle {
            break;
        }
    }
    Ok(IdleFigures {
        connections: n,
        rss_after_close_kib: after,
        settled_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        after_close_ratio: after as f64 / first.rss_before_kib.max(1) as f64,
        first,
        repeat,
    })
}

fn proc_dir(host: Host) -> String {
    match host {
        Host::This => "/proc/self".to_string(),
        Host::Pid(pid) => format!("/proc/{pid}"),
    }
}

/// Resident memory of `host`, KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(host: Host) -> Result<u64> {
    let path = format!("{}/status", proc_dir(host));
    let status = std::fs::read_to_string(&path).with_context(|| format!("bench: {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("bench: no VmRSS in {path}"))
}

/// CPU seconds (user + system, every thread) `host` has used (`/proc/<pid>/stat`).
fn cpu_seconds(host: Host, ticks_per_s: f64) -> Result<f64> {
    let path = format!("{}/stat", proc_dir(host));
    let stat = std::fs::read_to_string(&path).with_context(|| format!("bench: {path}"))?;
    // Fields after the command name (in parentheses, which may hold anything): state is
    // field 3, utime 14, stime 15.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| anyhow!("bench: {path}: no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<f64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64)
            .ok_or_else(|| anyhow!("bench: {path}: no field {n}"))
    };
    Ok((field(14)? + field(15)?) / ticks_per_s)
}

/// Clock ticks per second (`AT_CLKTCK` from `/proc/self/auxv`; 100 if unreadable, as it
/// is on every Linux architecture in practice).
fn clock_ticks() -> f64 {
    const AT_CLKTCK: usize = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 100.0;
    };
    let word = |b: &[u8]| -> Option<usize> { Some(usize::from_ne_bytes(b.try_into().ok()?)) };
    auxv.chunks_exact(2 * WORD)
        .find_map(|pair| match word(&pair[..WORD]) {
            Some(AT_CLKTCK) => word(&pair[WORD..]).filter(|&t| t > 0),
            _ => None,
        })
        .map_or(100.0, |t| t as f64)
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The soft limit on open files.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Idle connections that fit in the file-descriptor limit: through the in-process
/// proxy each takes four (client, proxy's two, server).
fn idle_count(wanted: usize, notes: &mut Vec<String>) -> usize {
    let Some(limit) = open_files_limit() else {
        return wanted;
    };
    let fits = limit.saturating_sub(FD_RESERVE) / 4;
    if fits < wanted {
        notes.push(format!(
            "idle connections: {fits} instead of {wanted} (open-files limit {limit}; hint: ulimit -n {})",
            wanted * 4 + FD_RESERVE
        ));
        fits.max(1)
    } else {
        wanted
    }
}

// ------------------------------------------------------------------------------------
// HAProxy.

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for i in 0..100u32 {
            let dir = base.join(format!("provsten-bench-{}-{stamp}-{i}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("bench: creating {dir:?}")),
            }
        }
        bail!("bench: no free temporary directory under {base:?}")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// HAProxy in `mode tcp`, in the foreground, one frontend per upstream; killed when
/// dropped.
struct Haproxy {
    child: tokio::process::Child,
    pid: u32,
    /// The frontends, in the order of the upstreams.
    frontends: Vec<SocketAddr>,
    _dir: TempDir,
}

/// The HAProxy binary: `explicit`, or `haproxy` on `PATH`, `/usr/sbin`, `/usr/local/sbin`.
fn find_haproxy(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
}

/// A free loopback port, as the system hands them out (released before HAProxy binds it:
/// a race only another process binding port 0 at the same moment can lose).
fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bench: finding a free port")?;
    Ok(l.local_addr()?)
}

impl Haproxy {
    async fn start(
        bin: &Path,
        upstreams: &[SocketAddr],
        maxconn: usize,
        threads: Option<usize>,
    ) -> Result<Haproxy> {
        let dir = TempDir::new()?;
        let frontends = upstreams
            .iter()
            .map(|_| free_port())
            .collect::<Result<Vec<_>>>()?;
        let mut cfg = format!(
            "global\n    maxconn {maxconn}\n{}\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1m\n    timeout server 1m\n",
            threads.map_or(String::new(), |n| format!("    nbthread {n}\n"))
        );
        for (i, (front, up)) in frontends.iter().zip(upstreams).enumerate() {
            let _ = write!(
                cfg,
                "\nfrontend f{i}\n    bind {front}\n    default_backend b{i}\n\
                 backend b{i}\n    server s{i} {up}\n"
            );
        }
        let cfg_path = dir.0.join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).with_context(|| format!("bench: writing {cfg_path:?}"))?;
        let log_path = dir.0.join("haproxy.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("bench: creating {log_path:?}"))?;
        let child = tokio::process::Command::new(bin)
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("bench: starting {bin:?}"))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("bench: haproxy exited at once"))?;
        let mut haproxy = Haproxy {
            child,
            pid,
            frontends,
            _dir: dir,
        };
        let clock = Instant::now();
        loop {
            if let Some(status) = haproxy.child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("haproxy exited ({status}): {}", log.trim());
            }
            let mut ready = true;
            for &front in &haproxy.frontends {
                if tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(front))
                    .await
                    .map_or(true, |c| c.is_err())
                {
                    ready = false;
                    break;
                }
            }
            if ready {
                return Ok(haproxy);
            }
            if clock.elapsed() > HAPROXY_START_DEADLINE {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!(
                    "haproxy did not listen within {HAPROXY_START_DEADLINE:?}: {}",
                    log.trim()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(HAPROXY_STOP_DEADLINE, self.child.wait()).await;
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `haproxy -v`'s first line.
async fn haproxy_version(bin: &Path) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new(bin)
            .arg("-v")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
}

// ------------------------------------------------------------------------------------
// The run.

/// Measures every path (see the module documentation) and returns the figures. HAProxy
/// is started here (and killed before returning, or on error) if it is installed and
/// [`BenchOptions::haproxy`] is set; otherwise its path is listed as skipped.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport> {
    opts.check()?;
    let started = Instant::now();
    let load_before = load_average();
    let ticks = clock_ticks();
    let mut notes = Vec::new();
    let mut skipped = Vec::new();
    let idle_n = idle_count(opts.idle_connections, &mut notes);

    let fixture = Fixture::start().await?;
    let mut targets = vec![
        Target {
            kind: PathKind::Direct,
            ends: fixture.direct,
            host: Host::This,
        },
        Target {
            kind: PathKind::Provsten,
            ends: fixture.provsten,
            host: Host::This,
        },
        Target {
            kind: PathKind::ProvstenLatency0,
            ends: fixture.provsten_latency0,
            host: Host::This,
        },
    ];
    let mut haproxy = None;
    let mut haproxy_version_line = None;
    if opts.haproxy {
        match find_haproxy(opts.haproxy_path.as_deref()) {
            None => skipped.push(Skipped {
                path: PathKind::Haproxy,
                reason: "haproxy not installed".into(),
            }),
            Some(bin) => {
                let upstreams = [fixture.direct.sink, fixture.direct.echo];
                match Haproxy::start(&bin, &upstreams, idle_n + 1000, opts.haproxy_threads).await {
                    Ok(h) => {
                        targets.push(Target {
                            kind: PathKind::Haproxy,
                            ends: Endpoints {
                                sink: h.frontends[0],
                                echo: h.frontends[1],
                            },
                            host: Host::Pid(h.pid),
                        });
                        haproxy_version_line = haproxy_version(&bin).await;
                        haproxy = Some(h);
                    }
                    Err(e) => skipped.push(Skipped {
                        path: PathKind::Haproxy,
                        reason: format!("{e:#}"),
                    }),
                }
            }
        }
    } else {
        skipped.push(Skipped {
            path: PathKind::Haproxy,
            reason: "not asked for".into(),
        });
    }

    if idle_n > 0 {
        notes.push(
            "provsten+latency0's idle-connection memory is measured after provsten's, in the same \
             process: it reuses what provsten's connections freed, so it is a lower bound"
                .into(),
        );
    }
    let result = measure(opts, &targets, idle_n, ticks).await;
    if let Some(h) = haproxy {
        h.stop().await;
    }
    fixture.shutdown().await;
    let paths = result?;
    Ok(BenchReport {
        options: opts.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        haproxy_version: haproxy_version_line,
        elapsed_s: started.elapsed().as_secs_f64(),
        load_average: [load_before, load_average()],
        paths,
        skipped,
        notes,
    })
}

/// The tests, one kind at a time over every path (so a slow spell of a shared machine
/// hits every path alike rather than one).
async fn measure(
    opts: &BenchOptions,
    targets: &[Target],
    idle_n: usize,
    ticks: f64,
) -> Result<Vec<PathFigures>> {
    let mut figs: Vec<PathFigures> = targets
        .iter()
        .map(|t| PathFigures {
            path: t.kind,
            throughput_single_mb_s: 0.0,
            throughput_parallel_mb_s: 0.0,
            requests_per_s: 0.0,
            requests_parallel_per_s: 0.0,
            rtt_p50_us: 0.0,
            rtt_p99_us: 0.0,
            connections_per_s: 0.0,
            process_cpu_s_per_gb: 0.0,
            proxy_cpu_s_per_gb: None,
            idle: None,
            ratios: None,
        })
        .collect();

    tracing::info!("bench: warming up");
    for t in targets {
        bulk(t.ends.sink, 16, 1).await?;
        request_response(t.ends.echo, opts.message_size, Duration::from_millis(50)).await?;
    }

    let mut cpu = vec![0.0f64; targets.len()];
    let mut relayed = vec![0.0f64; targets.len()];
    for (parallel, streams) in [(false, 1), (true, opts.streams)] {
        for (i, t) in targets.iter().enumerate() {
            tracing::info!(path = t.kind.label(), streams, "bench: bulk");
            let before = cpu_seconds(t.host, ticks)?;
            let clock = Instant::now();
            let mb_s = bulk(t.ends.sink, opts.bulk_mib, streams).await?;
            cpu[i] += cpu_seconds(t.host, ticks)? - before;
            relayed[i] += mb_s * clock.elapsed().as_secs_f64() * 1e6;
            if parallel {
                figs[i].throughput_parallel_mb_s = mb_s;
            } else {
                figs[i].throughput_single_mb_s = mb_s;
            }
        }
    }
    for (i, f) in figs.iter_mut().enumerate() {
        f.process_cpu_s_per_gb = cpu[i] / (relayed[i] / 1e9);
    }

    for (i, t) in targets.iter().enumerate() {
        tracing::info!(path = t.kind.label(), "bench: request/response");
        let (rate, p50, p99) =
            request_response(t.ends.echo, opts.message_size, opts.duration).await?;
        figs[i].requests_per_s = rate;
        figs[i].rtt_p50_us = p50;
        figs[i].rtt_p99_us = p99;
    }

    for (i, t) in targets.iter().enumerate() {
        tracing::info!(
            path = t.kind.label(),
            opts.streams,
            "bench: parallel request/response"
        );
        figs[i].requests_parallel_per_s =
            parallel_requests(t.ends.echo, opts.message_size, opts.streams, opts.duration).await?;
    }

    for (i, t) in targets.iter().enumerate() {
        tracing::info!(path = t.kind.label(), "bench: connection rate");
        figs[i].connections_per_s = connection_rate(t.ends.echo, opts.duration).await?;
    }

    if idle_n > 0 {
        for (i, t) in targets.iter().enumerate() {
            tracing::info!(path = t.kind.label(), idle_n, "bench: idle connections");
            figs[i].idle = Some(idle(t.ends.echo, idle_n, t.host, opts.settle).await?);
        }
    }

    derive(&mut figs);
    Ok(figs)
}

/// Fills in the ratios to direct, and the proxies' own shares of CPU and memory.
fn derive(figs: &mut [PathFigures]) {
    let Some(direct) = figs.iter().find(|f| f.path == PathKind::Direct).cloned() else {
        return;
    };
    for f in figs.iter_mut().filter(|f| f.path != PathKind::Direct) {
        let in_process = f.path != PathKind::Haproxy;
        f.proxy_cpu_s_per_gb = Some(if in_process {
            f.process_cpu_s_per_gb - direct.process_cpu_s_per_gb
        } else {
            f.process_cpu_s_per_gb
        });
        if let Some(idle) = f.idle.as_mut() {
            let pairs = [
                (&mut idle.first, direct.idle.as_ref().map(|d| &d.first)),
                (&mut idle.repeat, direct.idle.as_ref().map(|d| &d.repeat)),
            ];
            for (round, harness) in pairs {
                round.proxy_kib_per_connection = if in_process {
                    harness.map(|h| round.process_kib_per_connection - h.process_kib_per_connection)
                } else {
                    Some(round.process_kib_per_connection)
                };
            }
        }
        f.ratios = Some(Ratios {
            throughput_single: f.throughput_single_mb_s / direct.throughput_single_mb_s,
            throughput_parallel: f.throughput_parallel_mb_s / direct.throughput_parallel_mb_s,
            requests: f.requests_per_s / direct.requests_per_s,
            requests_parallel: f.requests_parallel_per_s / direct.requests_parallel_per_s,
            connections: f.connections_per_s / direct.connections_per_s,
            added_p50_us: f.rtt_p50_us - direct.rtt_p50_us,
            added_p99_us: f.rtt_p99_us - direct.rtt_p99_us,
        });
    }
}

// ------------------------------------------------------------------------------------
// The table.

fn throughput(mb_s: f64) -> String {
    if mb_s >= 1000.0 {
        format!("{:.2} GB/s", mb_s / 1000.0)
    } else {
        format!("{mb_s:.0} MB/s")
    }
}

fn rate(per_s: f64, unit: &str) -> String {
    if per_s >= 1000.0 {
        format!("{:.1}k {unit}/s", per_s / 1000.0)
    } else {
        format!("{per_s:.0} {unit}/s")
    }
}

fn check(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

impl BenchReport {
    fn path(&self, kind: PathKind) -> Option<&PathFigures> {
        self.paths.iter().find(|p| p.path == kind)
    }

    /// One line per figure: direct's value, then each other path's ratio to it (with its
    /// own value in parentheses); then CPU, memory, and the goals.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let o = &self.options;
        let _ = write!(
            out,
            "proxy benchmark: loopback, client, proxy and servers sharing {} CPUs; {:.1} s",
            self.cpus, self.elapsed_s
        );
        if let [Some(before), Some(after)] = self.load_average {
            let _ = write!(out, "; load average {before:.1} → {after:.1}");
            if before.max(after) > self.cpus as f64 {
                out.push_str(" (other work competed for the CPUs: noisier figures)");
            }
        }
        out.push('\n');
        let Some(direct) = self.path(PathKind::Direct) else {
            out.push_str("no direct figures\n");
            return out;
        };
        let others: Vec<&PathFigures> = self
            .paths
            .iter()
            .filter(|p| p.path != PathKind::Direct)
            .collect();
        type Line<'a> = (String, f64, &'a dyn Fn(f64) -> String, fn(&Ratios) -> f64);
        let tp = |v: f64| throughput(v);
        let rq = |v: f64| rate(v, "req");
        let cn = |v: f64| rate(v, "conn");
        let lines: [Line<'_>; 5] = [
            (
                format!("single-stream throughput ({} MiB)", o.bulk_mib),
                direct.throughput_single_mb_s,
                &tp,
                |r| r.throughput_single,
            ),
            (
                format!("{}-stream throughput", o.streams),
                direct.throughput_parallel_mb_s,
                &tp,
                |r| r.throughput_parallel,
            ),
            (
                format!("request rate ({} B ping-pong)", o.message_size),
                direct.requests_per_s,
                &rq,
                |r| r.requests,
            ),
            (
                format!(
                    "request rate ({} B ping-pong on {} connections at once)",
                    o.message_size, o.streams
                ),
                direct.requests_parallel_per_s,
                &rq,
                |r| r.requests_parallel,
            ),
            (
                "connection rate (connect, 1 B echo, close)".into(),
                direct.connections_per_s,
                &cn,
                |r| r.connections,
            ),
        ];
        for (name, direct_value, show, ratio) in lines {
            let _ = write!(out, "{name}: direct {}", show(direct_value));
            for p in &others {
                if let Some(r) = &p.ratios {
                    let value = ratio(r) * direct_value;
                    let _ = write!(
                        out,
                        "; {} {:.2}× ({})",
                        p.path.label(),
                        ratio(r),
                        show(value)
                    );
                }
            }
            out.push('\n');
        }
        for (name, direct_value, added) in [
            (
                "round trip p50",
                direct.rtt_p50_us,
                (|r: &Ratios| r.added_p50_us) as fn(&Ratios) -> f64,
            ),
            ("round trip p99", direct.rtt_p99_us, |r: &Ratios| {
                r.added_p99_us
            }),
        ] {
            let _ = write!(out, "{name}: direct {direct_value:.1} µs");
            for p in &others {
                if let Some(r) = &p.ratios {
                    let _ = write!(out, "; {} {:+.1} µs", p.path.label(), added(r));
                }
            }
            out.push('\n');
        }
        let _ = write!(
            out,
            "CPU per GB relayed (bulk tests): client and sink alone {:.2} CPU-s",
            direct.process_cpu_s_per_gb
        );
        for p in &others {
            let own = p.proxy_cpu_s_per_gb.unwrap_or(f64::NAN);
            if p.path == PathKind::Haproxy {
                let _ = write!(out, "; haproxy {own:.2} CPU-s (its process)");
            } else {
                let _ = write!(
                    out,
                    "; {} {own:.2} CPU-s (process {:.2} less client and sink)",
                    p.path.label(),
                    p.process_cpu_s_per_gb
                );
            }
        }
        out.push('\n');
        if let Some(d_idle) = &direct.idle {
            for (name, pick) in [
                (
                    "first round",
                    (|i: &IdleFigures| &i.first) as fn(&IdleFigures) -> &IdleRound,
                ),
                (
                    "second round, over the first's pre-load RSS",
                    |i: &IdleFigures| &i.repeat,
                ),
            ] {
                let _ = write!(
                    out,
                    "memory per idle connection ({} open, {name}): client and server alone {:.1} KiB",
                    d_idle.connections,
                    pick(d_idle).process_kib_per_connection
                );
                for p in &others {
                    let Some(round) = p.idle.as_ref().map(pick) else {
                        continue;
                    };
                    let own = round.proxy_kib_per_connection.unwrap_or(f64::NAN);
                    if p.path == PathKind::Haproxy {
                        let _ = write!(out, "; haproxy {own:.1} KiB (its process)");
                    } else {
                        let _ = write!(
                            out,
                            "; {} {own:.1} KiB (process {:.1} less client and server)",
                            p.path.label(),
                            round.process_kib_per_connection
                        );
                    }
                }
                out.push('\n');
            }
            let _ = write!(
                out,
                "resident memory after closing them, to before (before → first round → repeated → after, MiB):"
            );
            let mut sep = " ";
            for p in &self.paths {
                if let Some(idle) = &p.idle {
                    let _ = write!(
                        out,
                        "{sep}{} {:.2}× ({} → {} → {} → {}, {} ms)",
                        p.path.label(),
                        idle.after_close_ratio,
                        idle.first.rss_before_kib / 1024,
                        idle.first.rss_loaded_kib / 1024,
                        idle.repeat.rss_loaded_kib / 1024,
                        idle.rss_after_close_kib / 1024,
                        idle.settled_ms
                    );
                    sep = "; ";
                }
            }
            out.push('\n');
        }
        for s in &self.skipped {
            let _ = writeln!(out, "{}: skipped ({})", s.path.label(), s.reason);
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out.push_str(&self.goals());
        out
    }

    /// The goals for provsten's proxy, each with its measure and whether it was met.
    fn goals(&self) -> String {
        let mut out = String::new();
        let measured = self.path(PathKind::Haproxy).and_then(|p| p.ratios);
        let hp = HAPROXY_REFERENCE;
        if let Some(p) = self.path(PathKind::Provsten) {
            if let Some(r) = p.ratios {
                let _ = writeln!(out, "goals, provsten (no toxic):");
                type Pick = fn(&Ratios) -> f64;
                for (what, pick, reference) in [
                    (
                        "single-stream throughput",
                        (|r: &Ratios| r.throughput_single) as Pick,
                        hp.throughput,
                    ),
                    ("request rate", |r: &Ratios| r.requests, hp.requests),
                    (
                        "connection rate",
                        |r: &Ratios| r.connections,
                        hp.connections,
                    ),
                ] {
                    let got = pick(&r);
                    let _ = match measured.as_ref().map(pick) {
                        Some(goal) => writeln!(
                            out,
                            "  {what} {got:.2}× ≥ haproxy's {goal:.2}× (this run): {} (reference haproxy {reference:.2}×: {})",
                            check(got >= goal),
                            check(got >= reference)
                        ),
                        None => writeln!(
                            out,
                            "  {what} {got:.2}× ≥ haproxy's {reference:.2}× (reference): {}",
                            check(got >= reference)
                        ),
                    };
                }
                if let Some(cpu) = p.proxy_cpu_s_per_gb {
                    let _ = writeln!(
                        out,
                        "  CPU {cpu:.2} CPU-s/GB ≤ {GOAL_CPU_S_PER_GB}: {}",
                        check(cpu <= GOAL_CPU_S_PER_GB)
                    );
                }
                let _ = writeln!(
                    out,
                    "  added p50 {:.1} µs ≤ {GOAL_ADDED_P50_US} µs: {}",
                    r.added_p50_us,
                    check(r.added_p50_us <= GOAL_ADDED_P50_US)
                );
                if let Some(idle) = &p.idle {
                    let first = idle.first.proxy_kib_per_connection.unwrap_or(f64::NAN);
                    let repeat = idle.repeat.proxy_kib_per_connection.unwrap_or(f64::NAN);
                    let worst = first.max(repeat);
                    let _ = writeln!(
                        out,
                        "  {worst:.1} KiB per idle connection (worse of {first:.1} and {repeat:.1}) ≤ {GOAL_IDLE_KIB} KiB: {}",
                        check(worst <= GOAL_IDLE_KIB)
                    );
                }
            }
        }
        if let Some(r) = self.path(PathKind::ProvstenLatency0).and_then(|p| p.ratios) {
            let t = TOXIPROXY_REFERENCE;
            let _ = writeln!(
                out,
                "goals, provsten+latency0 (2× toxiproxy's reference ratios):"
            );
            for (what, got, reference) in [
                (
                    "single-stream throughput",
                    r.throughput_single,
                    t.throughput,
                ),
                ("request rate", r.requests, t.requests),
                ("connection rate", r.connections, t.connections),
            ] {
                let goal = 2.0 * reference;
                let _ = writeln!(
                    out,
                    "  {what} {got:.2}× ≥ {goal:.2}×: {}",
                    check(got >= goal)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a timing test: the run completes, every figure is there and positive, and the
    /// table names every path. (Debug-build figures mean nothing.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tiny_run_produces_every_figure() {
        let opts = BenchOptions {
            duration: Duration::from_millis(100),
            bulk_mib: 8,
            streams: 2,
            idle_connections: 20,
            settle: Duration::from_millis(100),
            ..BenchOptions::default()
        };
        let report = run(&opts).await.expect("run");
        assert!(report.paths.len() >= 3, "{report:?}");
        assert_eq!(report.paths[0].path, PathKind::Direct);
        for p in &report.paths {
            assert!(p.throughput_single_mb_s > 0.0, "{p:?}");
            assert!(p.throughput_parallel_mb_s > 0.0, "{p:?}");
            assert!(p.requests_per_s > 0.0, "{p:?}");
            assert!(p.requests_parallel_per_s > 0.0, "{p:?}");
            assert!(p.rtt_p99_us >= p.rtt_p50_us, "{p:?}");
            assert!(p.connections_per_s > 0.0, "{p:?}");
            assert!(p.idle.is_some(), "{p:?}");
            assert_eq!(p.ratios.is_some(), p.path != PathKind::Direct, "{p:?}");
        }
        let haproxy_measured = report.path(PathKind::Haproxy).is_some();
        let haproxy_skipped = report.skipped.iter().any(|s| s.path == PathKind::Haproxy);
        assert!(haproxy_measured != haproxy_skipped, "{report:?}");
        let table = report.table();
        for label in ["direct", "provsten", "provsten+latency0"] {
            assert!(table.contains(label), "{table}");
        }
        serde_json::to_string(&report).expect("serialisable");
    }

    #[test]
    fn proc_readers_read_this_process() {
        assert!(rss_kib(Host::This).expect("rss") > 0);
        assert!(cpu_seconds(Host::This, clock_ticks()).expect("cpu") >= 0.0);
        assert!(clock_ticks() > 0.0);
    }

    #[test]
    fn options_round_trip_through_json() {
        let opts = BenchOptions::quick();
        let json = serde_json::to_value(&opts).expect("json");
        assert_eq!(json["duration"], 300);
        let back: BenchOptions = serde_json::from_value(json).expect("back");
        assert_eq!(back, opts);
    }
}
