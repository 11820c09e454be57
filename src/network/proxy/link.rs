//! One link: its listener and accept loop, its connections, and its toxics, published to
//! those connections through one `watch` channel per stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::chain::{Chain, ToxicEntry};
use super::metrics::Counters;
use super::{
    conn, lock, LinkInfo, LinkMetrics, LinkUpdate, ProxyError, Stream, StreamBytes, ToxicSpec,
    ToxicUpdate,
};
use crate::network::toxics;

/// How long binding (name resolution included) may take.
const BIND_DEADLINE: Duration = Duration::from_secs(10);
/// How long stopping may take before the accept task is aborted outright.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// The pause after a failed `accept` (out of file descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What `get` shows, readable without waiting for a lifecycle change.
struct Shown {
    listen: String,
    upstream: String,
    enabled: bool,
}

/// The counters of the connections accepted under one listen address and upstream.
struct Series {
    listener: String,
    upstream: String,
    counters: Arc<Counters>,
}

/// The running accept loop.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Start, stop and update, one at a time.
#[derive(Default)]
struct Life {
    running: Option<Running>,
    removed: bool,
}

pub(super) struct Link {
    name: String,
    shown: Mutex<Shown>,
    life: tokio::sync::Mutex<Life>,
    /// The toxics of each stream (indexed by `Stream::index`): the truth, published to
    /// `chains` under this lock so every connection sees the same order of changes.
    toxics: Mutex<[Vec<Arc<ToxicEntry>>; 2]>,
    chains: Arc<[watch::Sender<Chain>; 2]>,
    /// Bytes its connections moved with splice(2), never copied.
    spliced: Arc<AtomicU64>,
    /// Its traffic counters, one set per listen address and upstream it has had, in the
    /// order it first listened with each. Locked only when it starts listening and when
    /// the counters are read, never while bytes move.
    series: Mutex<Vec<Series>>,
}

impl Link {
    pub(super) fn new(name: String, listen: String, upstream: String) -> Link {
        let chain = || watch::channel(Chain::default()).0;
        Link {
            name,
            shown: Mutex::new(Shown {
                listen,
                upstream,
                enabled: false,
            }),
            life: tokio::sync::Mutex::new(Life::default()),
            toxics: Mutex::new([Vec::new(), Vec::new()]),
            chains: Arc::new([chain(), chain()]),
            spliced: Arc::default(),
            series: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn spliced(&self) -> u64 {
        self.spliced.load(Ordering::Relaxed)
    }

    /// Its traffic counters as they are now.
    pub(super) fn metrics(&self) -> Vec<LinkMetrics> {
        let bytes = |count: &dyn Fn(Stream) -> u64| StreamBytes {
            upstream: count(Stream::Upstream),
            downstream: count(Stream::Downstream),
        };
        lock(&self.series)
            .iter()
            .map(|s| LinkMetrics {
                proxy: self.name.clone(),
                listener: s.listener.clone(),
                upstream: s.upstream.clone(),
                received_bytes: bytes(&|stream| s.counters.received(stream)),
                sent_bytes: bytes(&|stream| s.counters.sent(stream)),
                connections_total: s.counters.accepted(),
                active_connections: s.counters.open(),
            })
            .collect()
    }

    /// The counters of connections accepted on `listener` for `upstream`: the same set
    /// each time the link listens with both again.
    fn counters(&self, listener: String, upstream: String) -> Arc<Counters> {
        let mut series = lock(&self.series);
        if let Some(s) = series
            .iter()
            .find(|s| s.listener == listener && s.upstream == upstream)
        {
            return s.counters.clone();
        }
        let counters = Arc::new(Counters::default());
        series.push(Series {
            listener,
            upstream,
            counters: counters.clone(),
        });
        counters
    }

    pub(super) fn info(&self) -> LinkInfo {
        let shown = lock(&self.shown);
        LinkInfo {
            name: self.name.clone(),
            listen: shown.listen.clone(),
            upstream: shown.upstream.clone(),
            enabled: shown.enabled,
            toxics: self.toxic_specs(),
        }
    }

    pub(super) async fn set_enabled(&self, enabled: bool) -> Result<(), ProxyError> {
        let mut life = self.life.lock().await;
        if enabled {
            self.start(&mut life).await
        } else {
            self.stop(&mut life).await;
            Ok(())
        }
    }

    pub(super) async fn update(&self, update: LinkUpdate) -> Result<(), ProxyError> {
        let mut life = self.life.lock().await;
        let (listen, upstream) = {
            let shown = lock(&self.shown);
            (shown.listen.clone(), shown.upstream.clone())
        };
        let enabled = update.enabled.unwrap_or(life.running.is_some());
        let new_listen = update.listen.filter(|l| *l != listen);
        let new_upstream = update.upstream.filter(|u| *u != upstream);
        if new_listen.is_some() || new_upstream.is_some() {
            self.stop(&mut life).await;
            let mut shown = lock(&self.shown);
            if let Some(l) = new_listen {
                shown.listen = l;
            }
            if let Some(u) = new_upstream {
                shown.upstream = u;
            }
        }
        if enabled {
            self.start(&mut life).await
        } else {
            self.stop(&mut life).await;
            Ok(())
        }
    }

    /// Stops for good: a racing `update` cannot start it again.
    pub(super) async fn remove(&self) {
        let mut life = self.life.lock().await;
        life.removed = true;
        self.stop(&mut life).await;
    }

    async fn start(&self, life: &mut Life) -> Result<(), ProxyError> {
        if life.removed {
            return Err(ProxyError::proxy_not_found(&self.name));
        }
        if life.running.is_some() {
            return Ok(());
        }
        let (listen, upstream) = {
            let shown = lock(&self.shown);
            (shown.listen.clone(), shown.upstream.clone())
        };
        let listener = bind(&self.name, &listen).await?;
        let bound = listener.local_addr().map_err(|e| {
            ProxyError::Io(format!("proxy {}: listening on {listen}: {e}", self.name))
        })?;
        {
            let mut shown = lock(&self.shown);
            shown.listen = bound.to_string();
            shown.enabled = true;
        }
        let counters = self.counters(bound.to_string(), upstream.clone());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            self.name.as_str().into(),
            listener,
            upstream.into(),
            self.chains.clone(),
            Traffic {
                spliced: self.spliced.clone(),
                counters,
            },
            stopped,
        ));
        tracing::info!(link = %self.name, listen = %bound, "link listening");
        life.running = Some(Running { stop, task });
        Ok(())
    }

    async fn stop(&self, life: &mut Life) {
        lock(&self.shown).enabled = false;
        let Some(Running { stop, mut task }) = life.running.take() else {
            return;
        };
        // The accept loop closes the listener, then every connection, then ends.
        let _ = stop.send(());
        if tokio::time::timeout(STOP_DEADLINE, &mut task)
            .await
            .is_err()
        {
            tracing::warn!(link = %self.name, "link did not stop within {STOP_DEADLINE:?}; aborting it");
            task.abort();
        }
        tracing::info!(link = %self.name, "link stopped");
    }

    pub(super) fn toxic_specs(&self) -> Vec<ToxicSpec> {
        let toxics = lock(&self.toxics);
        toxics.iter().flatten().map(|e| e.spec.clone()).collect()
    }

    pub(super) fn add_toxic(&self, spec: ToxicSpec) -> Result<ToxicSpec, ProxyError> {
        let (spec, toxic) = toxics::check_built(&spec)?;
        let mut toxics = lock(&self.toxics);
        if toxics.iter().flatten().any(|e| e.spec.name == spec.name) {
            return Err(ProxyError::toxic_already_exists(&self.name, &spec.name));
        }
        let i = spec.stream.index();
        toxics[i].push(Arc::new(ToxicEntry::new(spec.clone(), toxic)));
        self.publish(&toxics, spec.stream);
        Ok(spec)
    }

    pub(super) fn update_toxic(
        &self,
        name: &str,
        update: ToxicUpdate,
    ) -> Result<ToxicSpec, ProxyError> {
        let mut toxics = lock(&self.toxics);
        let (i, j) =
            find(&toxics, name).ok_or_else(|| ProxyError::toxic_not_found(&self.name, name))?;
        let old = toxics[i][j].clone();
        let (spec, toxic) = toxics::merge(&old.spec, update.attributes.as_ref(), update.toxicity)?;
        toxics[i][j] = Arc::new(ToxicEntry {
            id: old.id,
            spec: spec.clone(),
            toxic,
        });
        self.publish(&toxics, spec.stream);
        Ok(spec)
    }

    pub(super) fn remove_toxic(&self, name: &str) -> Result<(), ProxyError> {
        let mut toxics = lock(&self.toxics);
        let (i, j) =
            find(&toxics, name).ok_or_else(|| ProxyError::toxic_not_found(&self.name, name))?;
        let removed = toxics[i].remove(j);
        self.publish(&toxics, removed.spec.stream);
        Ok(())
    }

    pub(super) fn clear_toxics(&self) {
        let mut toxics = lock(&self.toxics);
        for stream in Stream::ALL {
            toxics[stream.index()].clear();
            self.publish(&toxics, stream);
        }
    }

    fn publish(&self, toxics: &[Vec<Arc<ToxicEntry>>; 2], stream: Stream) {
        let i = stream.index();
        self.chains[i].send_replace(Arc::new(toxics[i].clone()));
    }
}

fn find(toxics: &[Vec<Arc<ToxicEntry>>; 2], name: &str) -> Option<(usize, usize)> {
    toxics.iter().enumerate().find_map(|(i, list)| {
        list.iter()
            .position(|e| e.spec.name == name)
            .map(|j| (i, j))
    })
}

async fn bind(link: &str, listen: &str) -> Result<TcpListener, ProxyError> {
    match tokio::time::timeout(BIND_DEADLINE, TcpListener::bind(listen)).await {
        Ok(Ok(listener)) => Ok(listener),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => Err(ProxyError::BadRequest(format!(
            "proxy {link}: cannot listen on {listen:?}: {e} (hint: write host:port, e.g. 127.0.0.1:0)"
        ))),
        Ok(Err(e)) => Err(ProxyError::Io(format!("proxy {link}: cannot listen on {listen}: {e}"))),
        Err(_) => Err(ProxyError::Io(format!(
            "proxy {link}: cannot listen on {listen}: no address within {BIND_DEADLINE:?}"
        ))),
    }
}

/// Where an accept loop's connections count their traffic.
struct Traffic {
    /// The link's bytes moved by splice(2).
    spliced: Arc<AtomicU64>,
    /// The counters of its listen address and upstream.
    counters: Arc<Counters>,
}

/// Accepts until told to stop (or the link is dropped), then closes the listener and
/// every connection (aborting a connection's task drops, so closes, both its sockets).
async fn accept_loop(
    link: Arc<str>,
    listener: TcpListener,
    upstream: Arc<str>,
    chains: Arc<[watch::Sender<Chain>; 2]>,
    traffic: Traffic,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let watch = [chains[0].subscribe(), chains[1].subscribe()];
                    // Counted open from here until the task ends or is aborted.
                    let open = traffic.counters.accept();
                    connections.spawn(conn::serve(
                        client,
                        peer,
                        link.clone(),
                        upstream.clone(),
                        watch,
                        traffic.spliced.clone(),
                        open,
                    ));
                }
                Err(e) => {
                    tracing::warn!(%link, error = %e, "accept failed");
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}
