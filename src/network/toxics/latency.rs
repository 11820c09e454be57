//! `latency`: every chunk (and the end of stream) leaves `latency` ± `jitter` ms after the
//! proxy read it (Toxiproxy's `toxics/latency.go`). The delay counts from the read, so a
//! stream keeps its throughput: chunks queue up behind each other instead of each waiting
//! its own full delay after the one before.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{later, Attribute, Piece, Toxic, Verdict};

/// Delays data by `latency` ± `jitter` milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    /// The delay, in milliseconds.
    pub latency: u64,
    /// At most this much more or less, drawn uniformly per chunk, in milliseconds.
    pub jitter: u64,
}

/// The delay drawn for the chunk being planned.
#[derive(Debug, Default)]
pub struct LatencyState {
    drawn: Option<(u64, Duration)>,
}

impl Latency {
    fn draw(&self) -> Duration {
        if self.jitter == 0 {
            return Duration::from_millis(self.latency);
        }
        let jitter = i128::from(self.jitter);
        let ms = i128::from(self.latency) + rand::thread_rng().gen_range(-jitter..=jitter);
        Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
    }
}

impl Toxic for Latency {
    const NAME: &'static str = "latency";
    const DOC: &'static str = "Delays all data (and the close) by latency ± jitter.";
    const ATTRIBUTES: &'static [Attribute] = &[
        Attribute {
            name: "latency",
            unit: "ms",
            doc: "delay added to every chunk",
        },
        Attribute {
            name: "jitter",
            unit: "ms",
            doc: "random variation of the delay, ± this much",
        },
    ];

    type State = LatencyState;

    fn start(&self, _now: Instant) -> LatencyState {
        LatencyState::default()
    }

    fn plan(&self, state: &mut LatencyState, piece: &Piece<'_>) -> Verdict {
        if piece.is_idle() {
            return piece.pass();
        }
        let delay = match state.drawn {
            Some((seq, delay)) if seq == piece.seq => delay,
            _ => {
                let delay = self.draw();
                state.drawn = Some((piece.seq, delay));
                delay
            }
        };
        Verdict::Pass {
            len: piece.data.len(),
            at: piece.ready_at.max(later(piece.read_at, delay)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::network::proxy::testutil::{assert_between, echo_link, toxic, within};
    use crate::network::proxy::Stream;
    use crate::network::toxics::testing::{eof, idle, parse, piece};

    #[test]
    fn delay_counts_from_the_read_and_is_stable_per_chunk() {
        let t = Latency {
            latency: 100,
            jitter: 50,
        };
        let mut s = t.start(Instant::now());
        let read = Instant::now();
        let Verdict::Pass { len, at } = t.plan(&mut s, &piece(b"abc", 7, read)) else {
            panic!("latency passes")
        };
        assert_eq!(len, 3);
        assert!(at >= read + Duration::from_millis(50) && at <= read + Duration::from_millis(150));
        // Re-planning the same chunk keeps the drawn delay.
        assert_eq!(
            t.plan(&mut s, &piece(b"bc", 7, read)),
            Verdict::Pass { len: 2, at }
        );
        assert_eq!(
            t.plan(&mut s, &idle(8, read)),
            Verdict::Pass { len: 0, at: read }
        );
        let Verdict::Pass { at, .. } = t.plan(&mut s, &eof(8, read)) else {
            panic!("eof passes")
        };
        assert!(
            at >= read + Duration::from_millis(50),
            "the close is delayed too"
        );
    }

    #[test]
    fn attributes_parse_with_toxiproxy_names() {
        let t: Latency = parse(json!({"latency": 5, "jitter": 1})).expect("valid");
        assert_eq!(
            t,
            Latency {
                latency: 5,
                jitter: 1
            }
        );
    }

    #[tokio::test]
    async fn latency_200ms_delays_a_round_trip_by_200ms() {
        let (proxy, addr) = echo_link("lat").await;
        proxy
            .add_toxic(
                "lat",
                toxic("latency", Stream::Downstream, json!({"latency": 200})),
            )
            .expect("add");
        let mut c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        let mut buf = [0u8; 4];
        // Twice: the first round trip also pays for the connection to the echo server.
        for _ in 0..2 {
            let clock = Instant::now();
            c.write_all(b"ping").await.expect("write");
            within(c.read_exact(&mut buf)).await.expect("read");
            assert_eq!(&buf, b"ping");
            assert_between(
                clock.elapsed(),
                Duration::from_millis(200),
                Duration::from_millis(300),
            );
        }
    }

    #[tokio::test]
    async fn latency_keeps_throughput_of_a_stream() {
        // 20 chunks written 10 ms apart arrive 200 ms late, not 20 × 200 ms late.
        let (proxy, addr) = echo_link("latstream").await;
        let spec = toxic("latency", Stream::Downstream, json!({"latency": 200}));
        proxy.add_toxic("latstream", spec).expect("add");
        let c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        let (mut r, mut w) = c.into_split();
        let clock = Instant::now();
        let writer = tokio::spawn(async move {
            for _ in 0..20 {
                w.write_all(&[7u8; 100]).await.expect("write");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            w
        });
        let mut got = vec![0u8; 2000];
        within(r.read_exact(&mut got)).await.expect("read");
        // The last chunk is written at ≈190 ms and arrives 200 ms later. The upper bound
        // leaves room for a loaded machine (other tests run beside this one) and is still
        // far below the 4 s an accumulating latency would take.
        assert_between(
            clock.elapsed(),
            Duration::from_millis(390),
            Duration::from_millis(1000),
        );
        drop(within(writer).await);
    }
}
