//! Test helpers: loopback servers bound to port 0, a deadline on every wait, and timing
//! assertions with an explicit tolerance (Toxiproxy's `AssertDeltaTime`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::chain::ToxicEntry;
use super::metrics::Meter;
use super::pump::{End, Pump};
use super::{LinkConfig, ProxyServer, Stream, ToxicSpec};
use crate::network::toxics;

/// The deadline of every wait in the tests.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// `f`, or a panic once [`DEADLINE`] passes.
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(out) => out,
        Err(_) => panic!("no result within {DEADLINE:?}"),
    }
}

/// An echo server on 127.0.0.1:0: echoes each connection until its end of stream, then
/// half-closes.
pub(crate) async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(echo(socket));
        }
    });
    addr
}

async fn echo(mut socket: TcpStream) {
    let (mut r, mut w) = socket.split();
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// A proxy with one link `name` to a fresh echo server; the address the link listens on.
pub(crate) async fn echo_link(name: &str) -> (Arc<ProxyServer>, SocketAddr) {
    let upstream = echo_server().await;
    let proxy = ProxyServer::new();
    let info = proxy
        .create(LinkConfig {
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.to_string(),
            enabled: true,
        })
        .await
        .expect("create link");
    (proxy, info.listen.parse().expect("listen address"))
}

/// A toxic of `kind` on `stream`, default name, toxicity 1.
pub(crate) fn toxic(kind: &str, stream: Stream, attributes: Value) -> ToxicSpec {
    ToxicSpec {
        name: String::new(),
        kind: kind.into(),
        stream,
        toxicity: 1.0,
        attributes,
    }
}

/// A chain entry for `spec`.
pub(crate) fn entry(spec: ToxicSpec) -> Arc<ToxicEntry> {
    let (spec, toxic) = toxics::check_built(&spec).expect("valid toxic");
    Arc::new(ToxicEntry::new(spec, toxic))
}

/// Pumps `data` through toxic `spec` into `dst`, without sockets.
pub(crate) async fn pump_through<W: AsyncWrite + Unpin>(
    data: &[u8],
    spec: ToxicSpec,
    mut dst: W,
) -> End {
    let (_keep, chain) = watch::channel(Arc::new(vec![entry(spec)]));
    let mut src = data;
    Pump::new(chain, Meter::default())
        .run(&mut src, &mut dst)
        .await
}

/// Prints a measurement (seen with `--nocapture`): the time and its ratio to the
/// configured one.
fn report(got: Duration, configured: Duration) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let ratio = got.as_secs_f64() / configured.as_secs_f64().max(f64::EPSILON);
    eprintln!("timing {test}: {got:.1?} for {configured:?} configured (×{ratio:.3})");
}

/// `lo <= got < hi`; `lo` is the configured time.
pub(crate) fn assert_between(got: Duration, lo: Duration, hi: Duration) {
    report(got, lo);
    assert!(
        got >= lo && got < hi,
        "took {got:?}, expected at least {lo:?} and less than {hi:?}"
    );
}

/// Writes `data`, half-closes (the echo server sees the end and closes its side), and reads
/// the echo to its end while writing; 30 s for a bulk transfer on a busy machine.
pub(crate) async fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let socket = within(TcpStream::connect(addr)).await.expect("connect");
    let (mut r, mut w) = socket.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.expect("write");
        w.shutdown().await.expect("shutdown");
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut got))
        .await
        .expect("the echo within 30 s")
        .expect("read");
    within(writer).await.expect("writer");
    got
}
