//! One stream of one connection: reads from the source, writes to the destination, and
//! between the two applies the stream's toxics.
//!
//! The read buffer is sized to the traffic: a quiet stream (an idle connection, small
//! requests) reads into [`SMALL_BUF`] bytes; one that fills them gets a [`BUF_SIZE`] buffer,
//! given back after [`IDLE_RELEASE`] without input, so idle connections stay cheap.
//!
//! With no toxic acting on the stream, the pump is a plain copy through that buffer, or,
//! between two TCP sockets once the stream carries bulk data, a splice through a pipe
//! ([`super::splice`]): the kernel moves the bytes and the proxy never touches them. With
//! toxics, it reads ahead (up to [`READ_AHEAD`] bytes, so a delay does not cost
//! throughput) into a queue of timestamped chunks (split off the read buffer, not copied),
//! asks the toxics what may leave and when ([`crate::network::toxics::Verdict`]), and
//! waits for whichever comes first: that time, more input, or a change to the stream's
//! toxic list. A change re-plans at once, which is what makes every wait interruptible and
//! lets a removed toxic release what it held. Reads and writes here are single calls, which Tokio makes cancel-safe, so losing
//! a race never loses bytes.
//!
//! Whatever the path, the pump counts each read from the source (or splice into the pipe)
//! as received and each write (or splice out of the pipe) as sent, once, on its
//! [`Meter`]: bytes the pipe hands to the toxics were received already, and are sent when
//! the toxics let them go.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant, Sleep};

use super::chain::{Chain, ToxicEntry};
use super::metrics::Meter;
use super::splice::{self, Pipe};
use crate::network::toxics::{DynState, Piece, Verdict};

/// The read buffer of a stream that carries bulk data: large, as fewer reads and writes per
/// byte cost less CPU (`provsten bench proxy` on 2 shared cores: 0.31-0.43 CPU-s/GB over
/// five runs with 256 KiB, 0.35-0.51 over six with 64 KiB).
pub(crate) const BUF_SIZE: usize = 256 * 1024;
/// The read buffer of a quiet stream; a read that fills it switches to [`BUF_SIZE`].
pub(crate) const SMALL_BUF: usize = 2 * 1024;
/// How long a stream with a [`BUF_SIZE`] buffer may go without input before the buffer is
/// given back (at most twice this).
pub(crate) const IDLE_RELEASE: Duration = Duration::from_millis(250);
/// How many bytes a pump with toxics reads ahead of what it has written.
pub(crate) const READ_AHEAD: usize = 1 << 20;

/// How a stream ended, and so what becomes of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The source half-closed and the destination was told (shutdown of its write side);
    /// the other stream carries on.
    Eof,
    /// Close the whole connection (a toxic, or an error on a socket).
    Close,
    /// Reset the whole connection (`reset_peer`, or a reset from one side).
    Reset,
}

impl End {
    fn from_error(e: &io::Error) -> End {
        match e.kind() {
            io::ErrorKind::ConnectionReset => End::Reset,
            _ => End::Close,
        }
    }
}

/// A toxic acting on this connection.
struct Active {
    entry: Arc<ToxicEntry>,
    /// The toxicity draw: whether it acts on this connection or is a no-op.
    enabled: bool,
    state: DynState,
}

/// Bytes read and not yet written, or the end of stream.
struct Chunk {
    data: Bytes,
    /// How much of `data` has been written.
    off: usize,
    eof: bool,
    seq: u64,
    read_at: Instant,
}

/// What the toxics allow next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Nothing waits.
    Idle,
    /// Something waits, held until the toxic list changes.
    Hold,
    Write {
        len: usize,
        at: Instant,
    },
    Eof {
        at: Instant,
    },
    Close {
        at: Instant,
    },
    Reset {
        at: Instant,
    },
}

pub(crate) struct Pump {
    chain: watch::Receiver<Chain>,
    active: Vec<Active>,
    queue: VecDeque<Chunk>,
    /// Bytes in `queue`.
    queued: usize,
    /// The number of the next chunk read.
    seq: u64,
    /// The source has ended (its end of stream is queued).
    src_done: bool,
    /// The read buffer: empty between reads on the plain path; on the toxic path, the
    /// spare capacity left after splitting off the last chunk.
    buf: BytesMut,
    /// Set while the stream carries bulk data (reads of [`BUF_SIZE`]): the timer that gives
    /// the buffer back once input stops.
    hot: Option<Hot>,
    /// Whether a hot plain stream may splice: set for TCP sockets, cleared for good when
    /// the system refuses.
    splice: bool,
    /// The pipe of a hot stream that splices; dropped (its two descriptors closed) when
    /// the stream goes quiet.
    pipe: Option<Pipe>,
    /// Where it counts the bytes it reads and writes.
    meter: Meter,
}

/// A stream carrying bulk data.
struct Hot {
    /// Fires every [`IDLE_RELEASE`].
    tick: Pin<Box<Sleep>>,
    /// Whether anything was read since the last tick.
    read: bool,
}

/// The toxicity draw for one connection.
fn draw(toxicity: f32) -> bool {
    toxicity >= 1.0 || (toxicity > 0.0 && rand::random::<f32>() < toxicity)
}

impl Pump {
    /// A pump for a connection opening now, counting on `meter`: each toxic's toxicity is
    /// drawn here.
    pub(crate) fn new(chain: watch::Receiver<Chain>, meter: Meter) -> Pump {
        let mut pump = Pump {
            chain,
            active: Vec::new(),
            queue: VecDeque::new(),
            queued: 0,
            seq: 0,
            src_done: false,
            buf: BytesMut::new(),
            hot: None,
            splice: false,
            pipe: None,
            meter,
        };
        pump.reconcile();
        pump
    }

    /// Pumps until the stream ends, copying (the tests' streams are not sockets).
    #[cfg(test)]
    pub(crate) async fn run<R, W>(mut self, src: &mut R, dst: &mut W) -> End
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            let step = if self.is_plain() {
                self.plain(src, dst).await
            } else {
                self.step(src, dst).await
            };
            if let Some(end) = step {
                return end;
            }
        }
    }

    /// Pumps between two TCP sockets until the stream ends, splicing while the stream is
    /// plain and hot; adds what it splices to `spliced`.
    pub(crate) async fn run_tcp(
        mut self,
        src: &mut ReadHalf<'_>,
        dst: &mut WriteHalf<'_>,
        spliced: &AtomicU64,
    ) -> End {
        self.splice = splice::enabled();
        loop {
            let step = if !self.is_plain() {
                self.step(src, dst).await
            } else if self.splice && self.hot.is_some() {
                self.spliced(src, dst, spliced).await
            } else {
                self.plain(src, dst).await
            };
            if let Some(end) = step {
                return end;
            }
        }
    }

    /// Takes in a change of the stream's toxic list: whether the stream is still plain, or
    /// how it ends when the link is gone.
    fn follow(&mut self, changed: Result<(), watch::error::RecvError>) -> Result<bool, End> {
        changed.map_err(|_| End::Close)?;
        self.reconcile();
        Ok(self.is_plain())
    }

    fn is_plain(&self) -> bool {
        self.queue.is_empty() && self.active.iter().all(|a| !a.enabled)
    }

    /// Follows the stream's toxic list: keeps the state of toxics still there, starts new
    /// ones (drawing their toxicity), restarts updated ones (drawing again if their
    /// toxicity changed), forgets removed ones.
    fn reconcile(&mut self) {
        let now = Instant::now();
        let chain: Chain = self.chain.borrow_and_update().clone();
        let mut old = std::mem::take(&mut self.active);
        for entry in chain.iter() {
            let active = match old.iter().position(|a| a.entry.id == entry.id) {
                Some(i) => {
                    let mut a = old.swap_remove(i);
                    if !Arc::ptr_eq(&a.entry, entry) {
                        if a.entry.spec.toxicity != entry.spec.toxicity {
                            a.enabled = draw(entry.spec.toxicity);
                        }
                        let state = std::mem::replace(&mut a.state, Box::new(()));
                        a.state = entry.toxic.restart(state, now);
                        a.entry = entry.clone();
                    }
                    a
                }
                None => Active {
                    entry: entry.clone(),
                    enabled: draw(entry.spec.toxicity),
                    state: entry.toxic.start(now),
                },
            };
            self.active.push(active);
        }
    }

    /// Makes room for the next read: [`BUF_SIZE`] bytes on a hot stream, [`SMALL_BUF`] on a
    /// quiet one (allocated only now, so a pump that never reads holds no buffer). Returns
    /// the room there is.
    fn reserve(&mut self) -> usize {
        let want = if self.hot.is_some() {
            BUF_SIZE
        } else {
            SMALL_BUF
        };
        if self.buf.capacity() - self.buf.len() < want / 4 {
            self.buf.reserve(want);
        }
        self.buf.capacity() - self.buf.len()
    }

    /// Follows the last read, of `n` bytes into `spare` bytes of room: one that filled the
    /// room makes a quiet stream hot, and any read keeps a hot stream so.
    fn read_done(&mut self, n: usize, spare: usize) {
        match self.hot.as_mut() {
            Some(hot) => hot.read = true,
            None if n > 0 && n >= spare => {
                self.hot = Some(Hot {
                    tick: Box::pin(tokio::time::sleep(IDLE_RELEASE)),
                    read: true,
                });
            }
            None => {}
        }
    }

    /// The hot stream's timer fired: another period if input came, else the stream is
    /// quiet again and its buffer and pipe are given back.
    fn tick(&mut self) {
        if let Some(hot) = self.hot.as_mut() {
            if hot.read {
                hot.read = false;
                hot.tick.as_mut().reset(Instant::now() + IDLE_RELEASE);
                return;
            }
        }
        self.hot = None;
        // A quiet stream holds no descriptors (a kept pipe is always empty).
        self.pipe = None;
        if self.buf.capacity() > SMALL_BUF {
            // What the toxic path split off still holds its part of the old buffer.
            self.buf = BytesMut::new();
        }
    }

    /// The copy path: no toxic acts on the stream, nothing is queued. Returns `None` when a
    /// toxic starts acting (the pump then continues with [`Pump::step`]), or when the
    /// stream turns hot and may splice ([`Pump::spliced`]).
    async fn plain<R, W>(&mut self, src: &mut R, dst: &mut W) -> Option<End>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            self.buf.clear();
            let spare = self.reserve();
            let hot = self.hot.is_some();
            let n = tokio::select! {
                biased;
                changed = self.chain.changed() => match self.follow(changed) {
                    Err(end) => return Some(end),
                    Ok(true) => continue,
                    Ok(false) => return None,
                },
                () = tick(&mut self.hot), if hot => {
                    self.tick();
                    continue;
                }
                read = src.read_buf(&mut self.buf) => match read {
                    Ok(0) => {
                        let _ = dst.shutdown().await;
                        return Some(End::Eof);
                    }
                    Ok(n) => n,
                    Err(e) => return Some(End::from_error(&e)),
                },
            };
            self.meter.received(n);
            self.read_done(n, spare);
            let read_at = Instant::now();
            let mut off = 0;
            while off < n {
                tokio::select! {
                    biased;
                    changed = self.chain.changed() => match self.follow(changed) {
                        Err(end) => return Some(end),
                        Ok(true) => {}
                        Ok(false) => {
                            // The rest of this chunk goes through the toxics too.
                            let rest = self.buf.split().freeze().slice(off..);
                            self.push(rest, read_at, false);
                            return None;
                        }
                    },
                    written = dst.write(&self.buf[off..n]) => match written {
                        Ok(0) => return Some(End::Close),
                        Ok(k) => {
                            self.meter.sent(k);
                            off += k;
                        }
                        Err(e) => return Some(End::from_error(&e)),
                    },
                }
            }
            if self.splice && self.hot.is_some() {
                // Bulk data: the kernel moves the rest.
                return None;
            }
        }
    }

    /// The zero-copy hot path: splices from `src` into a pipe and from the pipe into `dst`
    /// until the stream ends, goes quiet (back to [`Pump::plain`]'s small buffer) or a
    /// toxic starts acting (what the pipe holds then goes to the toxics, in order).
    async fn spliced(
        &mut self,
        src: &mut ReadHalf<'_>,
        dst: &mut WriteHalf<'_>,
        spliced: &AtomicU64,
    ) -> Option<End> {
        // The kernel holds the bytes now: the copy path's big buffer can go.
        self.buf = BytesMut::new();
        let mut pipe = match self.pipe.take().map_or_else(Pipe::new, Ok) {
            Ok(pipe) => pipe,
            Err(e) => {
                // Out of descriptors, say: this stream copies from now on.
                tracing::debug!(error = %e, "no pipe for splice; copying");
                self.splice = false;
                return None;
            }
        };
        let end = 'relay: loop {
            tokio::select! {
                biased;
                changed = self.chain.changed() => match self.follow(changed) {
                    Err(end) => break Some(end),
                    Ok(true) => continue,
                    Ok(false) => break None,
                },
                () = tick(&mut self.hot) => {
                    self.tick();
                    if self.hot.is_none() {
                        break None;
                    }
                    continue;
                }
                ready = src.as_ref().readable() => {
                    if let Err(e) = ready {
                        break Some(End::from_error(&e));
                    }
                }
            }
            match pipe.fill(src.as_ref()) {
                Ok(0) => {
                    let _ = dst.shutdown().await;
                    break Some(End::Eof);
                }
                Ok(n) => {
                    self.meter.received(n);
                    if let Some(hot) = self.hot.as_mut() {
                        hot.read = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if splice::unsupported(&e) => {
                    tracing::debug!(error = %e, "splice refused; copying");
                    self.splice = false;
                    break None;
                }
                Err(e) => break Some(End::from_error(&e)),
            }
            while pipe.held() > 0 {
                tokio::select! {
                    biased;
                    changed = self.chain.changed() => match self.follow(changed) {
                        Err(end) => break 'relay Some(end),
                        Ok(true) => continue,
                        Ok(false) => {
                            // What the pipe holds goes through the toxics too.
                            if let Err(e) = pipe.take(&mut self.buf) {
                                tracing::warn!(error = %e, "cannot read back the splice pipe");
                                break 'relay Some(End::Close);
                            }
                            let data = self.buf.split().freeze();
                            self.push(data, Instant::now(), false);
                            break 'relay None;
                        }
                    },
                    ready = dst.as_ref().writable() => {
                        if let Err(e) = ready {
                            break 'relay Some(End::from_error(&e));
                        }
                    }
                }
                match pipe.flush(dst.as_ref()) {
                    Ok(0) => break 'relay Some(End::Close),
                    Ok(n) => {
                        self.meter.sent(n);
                        spliced.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => break 'relay Some(End::from_error(&e)),
                }
            }
        };
        // A stream still hot keeps its (empty) pipe for the next spell of data.
        if end.is_none() && self.hot.is_some() && pipe.held() == 0 {
            self.pipe = Some(pipe);
        }
        end
    }

    /// One turn with toxics: plan, then wait for the plan's time, more input or a change
    /// of toxics, whichever comes first (in that order of preference when several are
    /// ready: a change re-plans, and due bytes go before more are read).
    async fn step<R, W>(&mut self, src: &mut R, dst: &mut W) -> Option<End>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let plan = self.plan(Instant::now());
        let can_read = !self.src_done && self.queued < READ_AHEAD;
        let spare = if can_read { self.reserve() } else { 0 };
        let hot = self.hot.is_some();
        let (at, len) = match plan {
            Plan::Idle | Plan::Hold => (None, 0),
            Plan::Write { len, at } => (Some(at), len),
            Plan::Eof { at } | Plan::Close { at } | Plan::Reset { at } => (Some(at), 0),
        };
        let head: &[u8] = match self.queue.front() {
            Some(c) if len > 0 => &c.data[c.off..c.off + len],
            _ => &[],
        };
        let due = async {
            // A timer always waits for tokio's next 1 ms tick, even for a deadline already
            // passed: sleeping only for future deadlines keeps a 0 ms toxic near free.
            if let Some(at) = at.filter(|at| *at > Instant::now()) {
                sleep_until(at).await;
            }
            if head.is_empty() {
                Ok(None)
            } else {
                dst.write(head).await.map(Some)
            }
        };
        tokio::select! {
            biased;
            changed = self.chain.changed() => self.follow(changed).err(),
            fired = due, if at.is_some() => match (fired, plan) {
                (Err(e), _) => Some(End::from_error(&e)),
                (Ok(Some(0)), _) => Some(End::Close),
                (Ok(Some(k)), _) => {
                    self.meter.sent(k);
                    self.wrote(k);
                    None
                }
                (Ok(None), Plan::Eof { .. }) => {
                    let _ = dst.shutdown().await;
                    Some(End::Eof)
                }
                (Ok(None), Plan::Close { .. }) => Some(End::Close),
                (Ok(None), Plan::Reset { .. }) => Some(End::Reset),
                (Ok(None), _) => None,
            },
            read = src.read_buf(&mut self.buf), if can_read => match read {
                Ok(n) => {
                    self.meter.received(n);
                    self.read_done(n, spare);
                    let data = self.buf.split().freeze();
                    self.push(data, Instant::now(), n == 0);
                    None
                }
                Err(e) => Some(End::from_error(&e)),
            },
            () = tick(&mut self.hot), if hot => {
                self.tick();
                None
            }
        }
    }

    fn push(&mut self, data: Bytes, read_at: Instant, eof: bool) {
        if eof {
            self.src_done = true;
        } else if data.is_empty() {
            return;
        }
        self.queued += data.len();
        self.queue.push_back(Chunk {
            data,
            off: 0,
            eof,
            seq: self.seq,
            read_at,
        });
        self.seq += 1;
    }

    fn wrote(&mut self, written: usize) {
        let now = Instant::now();
        for a in self.active.iter_mut().filter(|a| a.enabled) {
            a.entry.toxic.commit(&mut a.state, written, now);
        }
        if let Some(c) = self.queue.front_mut() {
            c.off += written;
            if c.off >= c.data.len() && !c.eof {
                self.queue.pop_front();
            }
        }
        self.queued = self.queued.saturating_sub(written);
    }

    /// Folds the toxics over what waits at the head of the queue: each toxic sees what the
    /// ones before it let through, and when. Once one holds, closes or resets, the toxics
    /// after it see nothing waiting, but may still act on time alone (a `timeout` further
    /// down closes on its own clock, as Toxiproxy's separate stages do); the earliest
    /// close or reset wins.
    fn plan(&mut self, now: Instant) -> Plan {
        let (data, eof, seq, read_at): (&[u8], bool, u64, Instant) = match self.queue.front() {
            Some(c) => (&c.data[c.off..], c.eof, c.seq, c.read_at),
            None => (&[], false, self.seq, now),
        };
        let waiting = !data.is_empty() || eof;
        let mut len = data.len();
        let mut ready = read_at;
        let mut held = false;
        let mut end: Option<Plan> = None;
        for a in self.active.iter_mut().filter(|a| a.enabled) {
            let blocked = held || end.is_some();
            let piece = if blocked {
                Piece {
                    data: &[],
                    eof: false,
                    seq,
                    read_at: now,
                    ready_at: now,
                    now,
                }
            } else {
                Piece {
                    data: &data[..len],
                    eof,
                    seq,
                    read_at,
                    ready_at: ready,
                    now,
                }
            };
            match a.entry.toxic.plan(&mut a.state, &piece) {
                Verdict::Pass { len: l, at } => {
                    if !blocked {
                        len = len.min(l);
                        ready = ready.max(at);
                    }
                }
                Verdict::Hold => held = true,
                Verdict::Close { at } => end = earliest(end, Plan::Close { at }),
                Verdict::Reset { at } => end = earliest(end, Plan::Reset { at }),
            }
        }
        match end {
            Some(end) => end,
            None if held => Plan::Hold,
            None if !waiting => Plan::Idle,
            None if eof => Plan::Eof { at: ready },
            // A toxic let none of the bytes through: wait for a change.
            None if len == 0 => Plan::Hold,
            None => Plan::Write { len, at: ready },
        }
    }
}

/// The hot stream's timer, if there is one (else never).
async fn tick(hot: &mut Option<Hot>) {
    match hot.as_mut() {
        Some(hot) => hot.tick.as_mut().await,
        None => std::future::pending().await,
    }
}

fn earliest(current: Option<Plan>, new: Plan) -> Option<Plan> {
    let at = |p: &Plan| match *p {
        Plan::Close { at } | Plan::Reset { at } => Some(at),
        _ => None,
    };
    match current {
        Some(cur) if at(&cur) <= at(&new) => Some(cur),
        _ => Some(new),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::network::proxy::testutil::{entry, toxic, within};
    use crate::network::proxy::Stream;

    fn pump_with(specs: &[(&str, serde_json::Value)]) -> (watch::Sender<Chain>, Pump) {
        let chain: Vec<_> = specs
            .iter()
            .map(|(kind, attrs)| entry(toxic(kind, Stream::Downstream, attrs.clone())))
            .collect();
        let (tx, rx) = watch::channel(Arc::new(chain));
        (tx, Pump::new(rx, Meter::default()))
    }

    #[test]
    fn plain_when_no_toxic_acts() {
        let (_tx, pump) = pump_with(&[]);
        assert!(pump.is_plain());
        let mut never = toxic("latency", Stream::Downstream, json!({"latency": 100}));
        never.toxicity = 0.0;
        let (tx, rx) = watch::channel(Arc::new(vec![entry(never)]));
        let pump = Pump::new(rx, Meter::default());
        assert!(pump.is_plain(), "toxicity 0 is a no-op");
        drop(tx);
    }

    #[test]
    fn a_later_timeout_still_closes_behind_a_hold() {
        let (_tx, mut pump) = pump_with(&[
            ("timeout", json!({"timeout": 0})),
            ("timeout", json!({"timeout": 50})),
        ]);
        let now = Instant::now();
        pump.push(Bytes::from_static(b"abc"), now, false);
        match pump.plan(now) {
            Plan::Close { at } => assert!(at <= now + Duration::from_millis(50)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stages_compose_length_and_time() {
        let (_tx, mut pump) = pump_with(&[
            ("latency", json!({"latency": 100})),
            ("limit_data", json!({"bytes": 2})),
        ]);
        let now = Instant::now();
        pump.push(Bytes::from_static(b"abcd"), now, false);
        assert_eq!(
            pump.plan(now),
            Plan::Write {
                len: 2,
                at: now + Duration::from_millis(100)
            }
        );
        pump.wrote(2);
        assert!(matches!(pump.plan(now), Plan::Close { .. }));
    }

    #[tokio::test]
    async fn only_a_stream_that_fills_its_buffer_gets_a_big_one_and_gives_it_back() {
        let (_tx, mut pump) = pump_with(&[]);
        assert_eq!(pump.buf.capacity(), 0, "nothing before the first read");
        let spare = pump.reserve();
        assert!((SMALL_BUF..BUF_SIZE).contains(&spare), "{spare}");
        pump.read_done(1, spare);
        assert!(pump.hot.is_none(), "a 1-byte read keeps the stream quiet");
        pump.read_done(spare, spare);
        assert!(pump.hot.is_some(), "a full read makes it hot");
        assert!(pump.reserve() >= BUF_SIZE);
        pump.tick();
        assert!(pump.hot.is_some(), "input came during the period");
        pump.tick();
        assert!(pump.hot.is_none(), "a period without input");
        assert_eq!(pump.buf.capacity(), 0, "the big buffer is given back");
    }

    #[tokio::test]
    async fn end_of_stream_is_passed_on_as_a_shutdown() {
        let (_tx, pump) = pump_with(&[("latency", json!({"latency": 10}))]);
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut src: &[u8] = b"hello";
        let end = within(pump.run(&mut src, &mut a)).await;
        assert_eq!(end, End::Eof);
        drop(a);
        let mut got = Vec::new();
        within(tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got))
            .await
            .expect("read");
        assert_eq!(got, b"hello");
    }
}
