//! The embedded fault proxy, on Toxiproxy 2.x's model: named links (Toxiproxy's
//! "proxies"), each listening on an address and forwarding every connection to an
//! upstream, each enabled or not, and each carrying toxics ([`crate::network::toxics`])
//! that act on its live connections, per stream:
//!
//! ```text
//!            upstream stream: client → server bytes
//! client ⇄ [listen] link ⇄ upstream
//!            downstream stream: server → client bytes
//! ```
//!
//! What holds (Toxiproxy's `CREATING_TOXICS.md` contract): a toxic acts on one stream; its
//! `toxicity` is the chance, drawn per connection when the connection opens or the toxic
//! is added, that it acts on that connection at all; adding, updating or removing a toxic
//! changes live connections at once; every wait is interruptible; bytes are never dropped
//! or reordered except where a toxic closes or resets the connection; an end of stream
//! from one side reaches the other as a half-close. Disabling a link closes its listener
//! (new connections are refused) and every connection it carries.
//!
//! The public interface is [`ProxyServer`] with its records ([`LinkConfig`],
//! [`LinkUpdate`], [`LinkInfo`], [`ToxicSpec`], [`ToxicUpdate`], [`Stream`]) and
//! [`ProxyError`]; their JSON is Toxiproxy's. [`LinkMetrics`] are its traffic counters.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

mod chain;
mod conn;
mod link;
mod metrics;
mod pump;
mod splice;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use crate::network::proxy_model::{ProxyError, Stream, ToxicSpec, ToxicUpdate};
use link::Link;

fn default_true() -> bool {
    true
}

/// A link to create: Toxiproxy's proxy object as `POST /proxies` takes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Unique name.
    pub name: String,
    /// Address to listen on; port 0 picks a free one (see [`LinkInfo::listen`]).
    pub listen: String,
    /// Address every connection is forwarded to.
    pub upstream: String,
    /// Whether to listen right away (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// A change to a link; `None` keeps the current value (`PATCH /proxies/{name}`).
#[derive(Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct LinkUpdate {
    /// New listen address: re-binds, closing the link's connections.
    pub listen: Option<String>,
    /// New upstream: re-binds, closing the link's connections.
    pub upstream: Option<String>,
    /// Enable (listen) or disable (close the listener and every connection).
    pub enabled: Option<bool>,
}

/// A link as shown: Toxiproxy's proxy object.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct LinkInfo {
    /// Its name.
    pub name: String,
    /// The address it listens on: the real one once bound (port 0 resolved).
    pub listen: String,
    /// Where connections go.
    pub upstream: String,
    /// Whether it listens.
    pub enabled: bool,
    /// Its toxics, upstream ones first, each stream in the order they were added.
    pub toxics: Vec<ToxicSpec>,
}

/// A count for each stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamBytes {
    /// Client → server.
    pub upstream: u64,
    /// Server → client.
    pub downstream: u64,
}

impl StreamBytes {
    /// The count of `stream`.
    pub fn get(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Upstream => self.upstream,
            Stream::Downstream => self.downstream,
        }
    }
}

/// The traffic of a link's connections accepted while it listened on `listener` and
/// forwarded to `upstream` (a link has one of these per listen address and upstream it has
/// had, as Toxiproxy labels its series; none before it first listens). Toxiproxy's
/// `received` is what the proxy read from a stream's source and `sent` what it wrote into
/// its destination: they differ by what toxics still hold or dropped (`limit_data`, a
/// closed connection), not by what bytes were relayed without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMetrics {
    /// The link's name (Toxiproxy's proxy name).
    pub proxy: String,
    /// The address it listened on (port 0 resolved).
    pub listener: String,
    /// Where it forwarded to.
    pub upstream: String,
    /// Bytes read from the client (upstream) and from the server (downstream).
    pub received_bytes: StreamBytes,
    /// Bytes written to the server (upstream) and to the client (downstream).
    pub sent_bytes: StreamBytes,
    /// Connections accepted (also those whose upstream could not be reached).
    pub connections_total: u64,
    /// Connections accepted and not closed yet.
    pub active_connections: u64,
}

/// The registry of links: Toxiproxy's server, in-process. Dropping the last handle stops
/// every listener and closes every connection (within the running Tokio runtime).
pub struct ProxyServer {
    links: Mutex<BTreeMap<String, Arc<Link>>>,
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyServer")
            .field("links", &self.list())
            .finish()
    }
}

/// Locks `m`, carrying on if a panicking thread poisoned it: every critical section here
/// leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProxyServer {
    /// An empty registry.
    pub fn new() -> Arc<ProxyServer> {
        Arc::new(ProxyServer {
            links: Mutex::new(BTreeMap::new()),
        })
    }

    fn link(&self, name: &str) -> Result<Arc<Link>, ProxyError> {
        lock(&self.links)
            .get(name)
            .cloned()
            .ok_or_else(|| ProxyError::proxy_not_found(name))
    }

    /// Creates link `cfg.name`, binding `cfg.listen` and accepting at once if enabled. An
    /// empty `listen` means `127.0.0.1:0`.
    pub async fn create(&self, cfg: LinkConfig) -> Result<LinkInfo, ProxyError> {
        if cfg.name.is_empty() {
            return Err(ProxyError::missing_field("name"));
        }
        if cfg.upstream.is_empty() {
            return Err(ProxyError::missing_field("upstream"));
        }
        if lock(&self.links).contains_key(&cfg.name) {
            return Err(ProxyError::proxy_already_exists(&cfg.name));
        }
        let listen = if cfg.listen.is_empty() {
            "127.0.0.1:0".to_string()
        } else {
            cfg.listen
        };
        let link = Arc::new(Link::new(cfg.name.clone(), listen, cfg.upstream));
        if cfg.enabled {
            link.set_enabled(true).await?;
        }
        let raced = {
            let mut links = lock(&self.links);
            if links.contains_key(&cfg.name) {
                true
            } else {
                links.insert(cfg.name.clone(), link.clone());
                false
            }
        };
        if raced {
            link.remove().await;
            return Err(ProxyError::proxy_already_exists(&cfg.name));
        }
        Ok(link.info())
    }

    /// Every link, sorted by name.
    pub fn list(&self) -> Vec<LinkInfo> {
        let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
        links.iter().map(|l| l.info()).collect()
    }

    /// Link `name`.
    pub fn get(&self, name: &str) -> Result<LinkInfo, ProxyError> {
        Ok(self.link(name)?.info())
    }

    /// Bytes link `name`'s connections moved with splice(2), without copying them.
    pub fn spliced_bytes(&self, name: &str) -> Result<u64, ProxyError> {
        Ok(self.link(name)?.spliced())
    }

    /// The traffic counters of every link, sorted by name, each link's in the order it
    /// first listened on each address and upstream.
    pub fn metrics(&self) -> Vec<LinkMetrics> {
        let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
        links.iter().flat_map(|l| l.metrics()).collect()
    }

    /// Changes link `name` as Toxiproxy does: a new listen address or upstream stops the
    /// link (closing its connections) and, if it is to stay enabled, binds again.
    pub async fn update(&self, name: &str, update: LinkUpdate) -> Result<LinkInfo, ProxyError> {
        let link = self.link(name)?;
        link.update(update).await?;
        Ok(link.info())
    }

    /// Removes link `name`: closes its listener and every connection it carries.
    pub async fn delete(&self, name: &str) -> Result<(), ProxyError> {
        let link = lock(&self.links)
            .remove(name)
            .ok_or_else(|| ProxyError::proxy_not_found(name))?;
        link.remove().await;
        Ok(())
    }

    /// The toxics of link `link`.
    pub fn toxics(&self, link: &str) -> Result<Vec<ToxicSpec>, ProxyError> {
        Ok(self.link(link)?.toxic_specs())
    }

    /// Adds a toxic to link `link`; it acts on live connections at once. The name defaults
    /// to `{type}_{stream}` and must be unique on the link.
    pub fn add_toxic(&self, link: &str, toxic: ToxicSpec) -> Result<ToxicSpec, ProxyError> {
        self.link(link)?.add_toxic(toxic)
    }

    /// Toxic `name` of link `link`.
    pub fn get_toxic(&self, link: &str, name: &str) -> Result<ToxicSpec, ProxyError> {
        self.link(link)?
            .toxic_specs()
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ProxyError::toxic_not_found(link, name))
    }

    /// Changes toxic `name`: only the given attribute keys, and toxicity if given. Live
    /// connections follow at once; a changed toxicity is drawn again for each of them.
    pub fn update_toxic(
        &self,
        link: &str,
        name: &str,
        update: ToxicUpdate,
    ) -> Result<ToxicSpec, ProxyError> {
        self.link(link)?.update_toxic(name, update)
    }

    /// Removes toxic `name`; what it held on live connections flows on at once.
    pub fn remove_toxic(&self, link: &str, name: &str) -> Result<(), ProxyError> {
        self.link(link)?.remove_toxic(name)
    }

    /// Toxiproxy's `/reset`: every link enabled, every toxic removed. A link that cannot
    /// bind again stays disabled (logged).
    pub async fn reset(&self) {
        let links: Vec<Arc<Link>> = lock(&self.links).values().cloned().collect();
        for link in links {
            link.clear_toxics();
            if let Err(e) = link.set_enabled(true).await {
                tracing::warn!(link = %link.name(), error = %e, "reset: could not enable the link again");
            }
        }
    }

    /// Removes every link, closing every listener and connection.
    pub async fn shutdown(&self) {
        let links = std::mem::take(&mut *lock(&self.links));
        for link in links.into_values() {
            link.remove().await;
        }
    }
}
