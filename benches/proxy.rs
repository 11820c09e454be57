//! Criterion benchmarks of the embedded fault proxy against a direct connection, on
//! loopback, client, proxy and servers in one multi-threaded Tokio runtime:
//!
//! - `bulk_1mib/{direct,provsten,provsten_latency0}`: 1 MiB sent on an open connection
//!   to a sink, until the sink acknowledges it;
//! - `round_trip_64b/{direct,provsten}`: 64 bytes to an echo server and back.
//!
//! `cargo bench --bench proxy -- --quick` runs them briefly. Compare the paths with each
//! other, within one run: machines are shared and noisy.
//!
//! With `PROVSTEN_BENCH_REPORT=full` (or `quick`) in the environment this binary runs the
//! whole-path report instead ([`provsten::bench::proxy::run`]: throughput, request and
//! connection rates, CPU per GB, memory per idle connection, HAProxy when installed) and
//! prints its table, then its JSON if `PROVSTEN_BENCH_JSON` names a file to write.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use criterion::{Criterion, Throughput};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use provsten::bench::proxy::{self as bench, BenchOptions, Fixture, ACK_EVERY};

/// How long any one batch of iterations may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(120);

/// Exits with `what` and the error: a benchmark that cannot do its work has no figure.
fn or_exit<T>(what: &str, r: anyhow::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("proxy bench: {what}: {e:#}");
            std::process::exit(1)
        }
    }
}

/// Runs `iters` operations on `conn` as a task of the runtime (so the client runs on its
/// workers, alongside the proxy and the servers) and returns their total time. The
/// connection is handed back through `slot`.
fn timed<F, Fut>(rt: &Runtime, slot: &mut Option<TcpStream>, iters: u64, op: F) -> Duration
where
    F: Fn(TcpStream, u64) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<(TcpStream, Duration)>> + Send + 'static,
{
    let Some(conn) = slot.take() else {
        or_exit("benchmark", Err(anyhow::anyhow!("connection lost")))
    };
    let task = op(conn, iters);
    let result = rt.block_on(async {
        match tokio::time::timeout(DEADLINE, tokio::spawn(task)).await {
            Ok(Ok(r)) => r.context("I/O"),
            Ok(Err(e)) => Err(anyhow::anyhow!("task failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("no result within {DEADLINE:?}")),
        }
    });
    let (conn, elapsed) = or_exit("benchmark", result);
    *slot = Some(conn);
    elapsed
}

fn connect(rt: &Runtime, addr: SocketAddr) -> TcpStream {
    or_exit(
        "connecting",
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), bench::connect(addr))
                .await
                .context("no connection within 10 s")?
                .context("connect")
        }),
    )
}

fn bulk(c: &mut Criterion, rt: &Runtime, fixture: &Fixture) {
    let mut group = c.benchmark_group("bulk_1mib");
    group.throughput(Throughput::Bytes(ACK_EVERY as u64));
    for (name, addr) in [
        ("direct", fixture.direct.sink),
        ("provsten", fixture.provsten.sink),
        ("provsten_latency0", fixture.provsten_latency0.sink),
    ] {
        let mut slot = Some(connect(rt, addr));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(rt, &mut slot, iters, |mut conn, iters| async move {
                    let chunk = vec![0x5au8; 128 * 1024];
                    let clock = Instant::now();
                    for _ in 0..iters {
                        bench::transfer(&mut conn, 1, &chunk).await?;
                    }
                    Ok((conn, clock.elapsed()))
                })
            })
        });
    }
    group.finish();
}

fn round_trip(c: &mut Criterion, rt: &Runtime, fixture: &Fixture) {
    let mut group = c.benchmark_group("round_trip_64b");
    for (name, addr) in [
        ("direct", fixture.direct.echo),
        ("provsten", fixture.provsten.echo),
    ] {
        let mut slot = Some(connect(rt, addr));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(rt, &mut slot, iters, |mut conn, iters| async move {
                    let msg = [0x42u8; 64];
                    let mut buf = [0u8; 64];
                    let clock = Instant::now();
                    for _ in 0..iters {
                        bench::round_trip(&mut conn, &msg, &mut buf).await?;
                    }
                    Ok((conn, clock.elapsed()))
                })
            })
        });
    }
    group.finish();
}

/// The whole-path report (`PROVSTEN_BENCH_REPORT=full|quick`).
fn report(rt: &Runtime, mode: &str) -> anyhow::Result<()> {
    let mut opts = match mode {
        "quick" => BenchOptions::quick(),
        "full" | "" => BenchOptions::default(),
        other => anyhow::bail!("PROVSTEN_BENCH_REPORT={other:?}: expected full or quick"),
    };
    if let Ok(n) = std::env::var("PROVSTEN_BENCH_HAPROXY_THREADS") {
        opts.haproxy_threads = Some(n.parse().context("PROVSTEN_BENCH_HAPROXY_THREADS")?);
    }
    let report = rt.block_on(bench::run(&opts))?;
    print!("{}", report.table());
    if let Some(path) = std::env::var_os("PROVSTEN_BENCH_JSON") {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, json).with_context(|| format!("writing {path:?}"))?;
    }
    Ok(())
}

fn main() {
    let rt = or_exit(
        "starting the runtime",
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("tokio"),
    );
    if let Ok(mode) = std::env::var("PROVSTEN_BENCH_REPORT") {
        or_exit("report", report(&rt, &mode));
        return;
    }
    let fixture = or_exit(
        "starting the servers and proxy",
        rt.block_on(Fixture::start()),
    );
    let mut c = Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bulk(&mut c, &rt, &fixture);
    round_trip(&mut c, &rt, &fixture);
    rt.block_on(fixture.shutdown());
    c.final_summary();
}
