//! `slicer`: data is cut into writes of about `average_size` ± `size_variation` bytes,
//! `delay` µs apart (Toxiproxy's `toxics/slicer.go`), as a real network delivers a message
//! in several segments. Bytes are neither lost nor reordered.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{later, Attribute, Piece, Toxic, Verdict};

/// Splits data into smaller writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Slicer {
    /// The average size of a write, in bytes.
    pub average_size: u64,
    /// How much a write's size varies around the average, ± bytes.
    pub size_variation: u64,
    /// The pause between two writes, in microseconds.
    pub delay: u64,
}

/// The size drawn for the next write, and when the last one went.
#[derive(Debug, Default)]
pub struct SlicerState {
    next: Option<usize>,
    last_write: Option<Instant>,
}

impl Slicer {
    /// The size of the next write out of `available` bytes: all of them if they are within
    /// the variation of the average (Toxiproxy's base case), else average ± variation.
    fn draw(&self, available: usize) -> usize {
        let avg = usize::try_from(self.average_size).unwrap_or(usize::MAX);
        let var = usize::try_from(self.size_variation).unwrap_or(usize::MAX);
        if available.saturating_sub(avg) <= var {
            return available;
        }
        let size = if var == 0 {
            avg
        } else {
            rand::thread_rng().gen_range(avg.saturating_sub(var)..=avg.saturating_add(var))
        };
        size.clamp(1, available)
    }
}

impl Toxic for Slicer {
    const NAME: &'static str = "slicer";
    const DOC: &'static str =
        "Slices data into smaller writes, optionally with a delay between them.";
    const ATTRIBUTES: &'static [Attribute] = &[
        Attribute {
            name: "average_size",
            unit: "bytes",
            doc: "average size of a write",
        },
        Attribute {
            name: "size_variation",
            unit: "bytes",
            doc: "variation of the size, ± this much",
        },
        Attribute {
            name: "delay",
            unit: "µs",
            doc: "pause between two writes",
        },
    ];

    type State = SlicerState;

    fn validate(&self) -> Result<(), String> {
        if self.average_size == 0 {
            return Err("attribute \"average_size\" must be at least 1 byte".into());
        }
        Ok(())
    }

    fn start(&self, _now: Instant) -> SlicerState {
        SlicerState::default()
    }

    fn plan(&self, state: &mut SlicerState, piece: &Piece<'_>) -> Verdict {
        if piece.data.is_empty() {
            return piece.pass();
        }
        let len = (*state
            .next
            .get_or_insert_with(|| self.draw(piece.data.len())))
        .clamp(1, piece.data.len());
        let at = match state.last_write {
            Some(last) => piece
                .ready_at
                .max(later(last, Duration::from_micros(self.delay))),
            None => piece.ready_at,
        };
        Verdict::Pass { len, at }
    }

    fn commit(&self, state: &mut SlicerState, _written: usize, now: Instant) {
        state.next = None;
        state.last_write = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::*;
    use crate::network::proxy::testutil::{echo_link, pump_through, toxic, within};
    use crate::network::proxy::Stream;
    use crate::network::toxics::testing::{parse, piece};

    /// A writer that records the size of every write.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<(Vec<usize>, Vec<u8>)>>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let mut r = self.0.lock().expect("lock");
            r.0.push(buf.len());
            r.1.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn slices_within_the_variation() {
        let t = Slicer {
            average_size: 100,
            size_variation: 20,
            delay: 0,
        };
        let mut s = t.start(Instant::now());
        let data = [0u8; 1000];
        let now = Instant::now();
        let Verdict::Pass { len, .. } = t.plan(&mut s, &piece(&data, 0, now)) else {
            panic!("passes")
        };
        assert!((80..=120).contains(&len), "{len}");
        // Stable until written.
        assert_eq!(
            t.plan(&mut s, &piece(&data, 0, now)),
            Verdict::Pass { len, at: now }
        );
        t.commit(&mut s, len, now);
        // A small remainder goes whole.
        assert_eq!(
            t.plan(&mut s, &piece(&data[..110], 0, now)),
            Verdict::Pass { len: 110, at: now }
        );
        assert!(parse::<Slicer>(json!({"average_size": 0})).is_err());
    }

    #[tokio::test]
    async fn slicer_writes_are_small_and_the_bytes_intact() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let rec = Recorder::default();
        let spec = toxic(
            "slicer",
            Stream::Downstream,
            json!({"average_size": 100, "size_variation": 50}),
        );
        within(pump_through(&data, spec, rec.clone())).await;
        let (sizes, bytes) = rec.0.lock().expect("lock").clone();
        assert!(bytes == data, "bytes intact and in order");
        eprintln!(
            "slicer: 20 000 bytes written in {} writes of at most {:?} bytes",
            sizes.len(),
            sizes.iter().max()
        );
        assert!(sizes.len() >= 20_000 / 150, "{} writes", sizes.len());
        assert!(
            sizes.iter().all(|&n| n <= 150),
            "a write above average + variation: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn slicer_through_the_proxy_arrives_in_more_reads() {
        async fn reads(slicer: bool) -> usize {
            let name = if slicer { "sliced" } else { "whole" };
            let (proxy, addr) = echo_link(name).await;
            if slicer {
                let spec = toxic(
                    "slicer",
                    Stream::Downstream,
                    json!({"average_size": 500, "delay": 2000}),
                );
                proxy.add_toxic(name, spec).expect("add");
            }
            let mut c = within(tokio::net::TcpStream::connect(addr))
                .await
                .expect("connect");
            let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
            c.write_all(&data).await.expect("write");
            c.shutdown().await.expect("shutdown");
            let (mut got, mut count, mut buf) = (Vec::new(), 0, vec![0u8; 65536]);
            loop {
                let n = within(c.read(&mut buf)).await.expect("read");
                if n == 0 {
                    break;
                }
                count += 1;
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got == data, "bytes intact");
            count
        }
        let (whole, sliced) = (reads(false).await, reads(true).await);
        eprintln!(
            "slicer: 10 000 bytes arrive in {whole} reads without, {sliced} reads with the slicer"
        );
        // 10 000 bytes in 500-byte slices 2 ms apart: about 20 reads, against one or two.
        assert!(
            sliced >= 10 && sliced > 3 * whole,
            "whole: {whole} reads, sliced: {sliced} reads"
        );
    }
}
