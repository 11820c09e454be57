//! One proxied connection: dial the upstream, pump both streams in one task (so aborting
//! the task closes both sockets), and close the way the streams ended.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::chain::Chain;
use super::metrics::OpenGuard;
use super::pump::{End, Pump};
use super::Stream;

/// How long dialling the upstream may take before the client is dropped.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How long a closed connection keeps reading (and discarding) what its peers still send,
/// so closing a socket with unread bytes does not turn the FIN into a RST that could
/// destroy data the peer has not read yet (a "lingering close").
const LINGER: Duration = Duration::from_secs(1);

/// Serves one accepted client until both streams end, a toxic closes or resets the
/// connection, or the task is aborted (link disabled or deleted). `open` counts it as open
/// until then, and its streams count their bytes into its counters.
pub(super) async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    link: Arc<str>,
    upstream: Arc<str>,
    chains: [watch::Receiver<Chain>; 2],
    spliced: Arc<AtomicU64>,
    open: OpenGuard,
) {
    let [upstream_chain, downstream_chain] = chains;
    // Toxicity is drawn for each toxic as the connection opens.
    let up = Pump::new(upstream_chain, open.meter(Stream::Upstream));
    let down = Pump::new(downstream_chain, open.meter(Stream::Downstream));
    let mut server = match tokio::time::timeout(CONNECT_DEADLINE, TcpStream::connect(&*upstream))
        .await
    {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            tracing::warn!(%link, %peer, %upstream, error = %e, "cannot reach the upstream; closing the client");
            return;
        }
        Err(_) => {
            tracing::warn!(%link, %peer, %upstream, "no connection to the upstream within {CONNECT_DEADLINE:?}; closing the client");
            return;
        }
    };
    let mut client = client;
    // Writes leave as the toxics shape them (a slicer's small writes stay small).
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tracing::debug!(%link, %peer, %upstream, "connection open");
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        both(
            up.run_tcp(&mut client_read, &mut server_write, &spliced),
            down.run_tcp(&mut server_read, &mut client_write, &spliced),
        )
        .await
    };
    tracing::debug!(%link, %peer, ?end, "connection done");
    match end {
        End::Eof => {}
        End::Close => close(client, server).await,
        End::Reset => {
            // SO_LINGER 0: close() sends a RST and discards unsent data.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
}

/// Runs both streams; ends when both reached their end of stream, or as soon as one ends
/// the whole connection.
async fn both(up: impl Future<Output = End>, down: impl Future<Output = End>) -> End {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    loop {
        let end = tokio::select! {
            end = &mut up, if !up_done => {
                up_done = true;
                end
            }
            end = &mut down, if !down_done => {
                down_done = true;
                end
            }
            else => return End::Eof,
        };
        if end != End::Eof || (up_done && down_done) {
            return end;
        }
    }
}

/// Closes both sides gracefully: a FIN each way, then a bounded drain.
async fn close(mut client: TcpStream, mut server: TcpStream) {
    let _ = client.shutdown().await;
    let _ = server.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        tokio::join!(drain(&mut client), drain(&mut server));
    })
    .await;
}

async fn drain(socket: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}
