//! Traffic counters: what `/metrics` shows of each link ([`super::LinkMetrics`]).
//!
//! A link keeps one set of counters per listen address and upstream it has had (Toxiproxy
//! labels its series with both, so a link re-pointed elsewhere starts a new series and the
//! old one stays as it was). A connection counts into the set of the address and upstream
//! it was accepted under. Counting is a relaxed atomic add where the bytes move: each read
//! from a source and each write (or splice) into a destination, once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Stream;

/// The counters of the connections a link accepted under one listen address and upstream.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Bytes read from the source of each stream (indexed by `Stream::index`).
    received: [AtomicU64; 2],
    /// Bytes written, copied or spliced, into the destination of each stream.
    sent: [AtomicU64; 2],
    /// Connections accepted.
    accepted: AtomicU64,
    /// Connections accepted and not yet closed.
    open: AtomicU64,
}

impl Counters {
    /// One more connection accepted; it counts as open until the guard is dropped (which
    /// also happens when its task is aborted, even before it first ran).
    pub(crate) fn accept(self: &Arc<Counters>) -> OpenGuard {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(self.clone())
    }

    pub(crate) fn received(&self, stream: Stream) -> u64 {
        self.received[stream.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn sent(&self, stream: Stream) -> u64 {
        self.sent[stream.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// An open connection, as [`Counters`] count it.
#[derive(Debug)]
pub(crate) struct OpenGuard(Arc<Counters>);

impl OpenGuard {
    /// The counters of this connection's stream `stream`.
    pub(crate) fn meter(&self, stream: Stream) -> Meter {
        Meter {
            counters: self.0.clone(),
            stream,
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where one stream of one connection counts the bytes it moves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter {
    counters: Arc<Counters>,
    stream: Stream,
}

impl Meter {
    /// `n` bytes read from the source.
    pub(crate) fn received(&self, n: usize) {
        self.counters.received[self.stream.index()].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` bytes written into the destination.
    pub(crate) fn sent(&self, n: usize) {
        self.counters.sent[self.stream.index()].fetch_add(n as u64, Ordering::Relaxed);
    }
}
