//! `bandwidth`: data passes at most `rate` KB/s (1 KB = 1000 bytes, so `rate` bytes per
//! millisecond), in pieces of at most 100 ms worth (Toxiproxy's `toxics/bandwidth.go`).
//! Each piece leaves once the link has had time to carry it, so the first byte is not
//! early either: 50 KB at 100 KB/s take half a second.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{later, Attribute, Piece, Toxic, Verdict};

/// Limits the stream to `rate` KB/s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bandwidth {
    /// The rate, in KB/s (1000 bytes per second).
    pub rate: u64,
}

/// When the simulated link is free again.
#[derive(Debug, Default)]
pub struct BandwidthState {
    /// When the last written piece finished "transmitting".
    free_at: Option<Instant>,
    /// When the planned piece starts transmitting (kept for `commit`).
    planned_start: Option<Instant>,
}

impl Bandwidth {
    /// How long `bytes` take at this rate.
    fn time_for(&self, bytes: usize) -> Duration {
        let nanos = (bytes as u128 * 1_000_000) / u128::from(self.rate.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// At most 100 ms worth of bytes per write, as Toxiproxy splits.
    fn piece_len(&self, available: usize) -> usize {
        let per_100ms = self.rate.saturating_mul(100);
        usize::try_from(per_100ms).map_or(available, |max| available.min(max.max(1)))
    }
}

impl Toxic for Bandwidth {
    const NAME: &'static str = "bandwidth";
    const DOC: &'static str = "Limits the rate of data to a number of kilobytes per second.";
    const ATTRIBUTES: &'static [Attribute] = &[Attribute {
        name: "rate",
        unit: "KB/s",
        doc: "the rate, in kilobytes (1000 bytes) per second",
    }];

    type State = BandwidthState;

    fn validate(&self) -> Result<(), String> {
        if self.rate == 0 {
            return Err("attribute \"rate\" must be at least 1 (hint: to stop all data, use the timeout toxic)".into());
        }
        Ok(())
    }

    fn start(&self, _now: Instant) -> BandwidthState {
        BandwidthState::default()
    }

    fn plan(&self, state: &mut BandwidthState, piece: &Piece<'_>) -> Verdict {
        if piece.data.is_empty() {
            return piece.pass();
        }
        let len = self.piece_len(piece.data.len());
        let start = state
            .free_at
            .map_or(piece.ready_at, |free| free.max(piece.ready_at));
        state.planned_start = Some(start);
        Verdict::Pass {
            len,
            at: later(start, self.time_for(len)),
        }
    }

    fn commit(&self, state: &mut BandwidthState, written: usize, now: Instant) {
        let start = state.planned_start.take().unwrap_or(now);
        state.free_at = Some(later(start, self.time_for(written)));
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
    use crate::network::toxics::testing::{parse, piece};

    #[test]
    fn pieces_follow_each_other_at_the_rate() {
        let t = Bandwidth { rate: 100 };
        let mut s = t.start(Instant::now());
        let read = Instant::now();
        let data = [0u8; 25_000];
        // 100 KB/s: 10 000 bytes per 100 ms piece.
        let v = t.plan(&mut s, &piece(&data, 0, read));
        assert_eq!(
            v,
            Verdict::Pass {
                len: 10_000,
                at: read + Duration::from_millis(100)
            }
        );
        t.commit(&mut s, 10_000, read + Duration::from_millis(100));
        let v = t.plan(&mut s, &piece(&data[10_000..], 0, read));
        assert_eq!(
            v,
            Verdict::Pass {
                len: 10_000,
                at: read + Duration::from_millis(200)
            }
        );
        t.commit(&mut s, 10_000, read + Duration::from_millis(200));
        let v = t.plan(&mut s, &piece(&data[20_000..], 0, read));
        assert_eq!(
            v,
            Verdict::Pass {
                len: 5_000,
                at: read + Duration::from_millis(250)
            }
        );
    }

    #[test]
    fn zero_rate_is_refused_with_a_hint() {
        let e = parse::<Bandwidth>(json!({})).expect_err("rate 0");
        assert!(e.to_string().contains("\"rate\" must be at least 1"), "{e}");
        assert!(parse::<Bandwidth>(json!({"rate": 1})).is_ok());
    }

    #[tokio::test]
    async fn bandwidth_100kbs_carries_50kb_in_half_a_second() {
        let (proxy, addr) = echo_link("bw").await;
        proxy
            .add_toxic(
                "bw",
                toxic("bandwidth", Stream::Downstream, json!({"rate": 100})),
            )
            .expect("add");
        let c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        let (mut r, mut w) = c.into_split();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let clock = Instant::now();
        within(w.write_all(&data)).await.expect("write");
        let mut got = vec![0u8; data.len()];
        within(r.read_exact(&mut got)).await.expect("read");
        let elapsed = clock.elapsed();
        assert!(got == data, "bytes intact");
        // Never faster than the rate allows; the upper bound leaves room for a loaded
        // machine and still catches a toxic at half the rate (1 s).
        assert_between(
            elapsed,
            Duration::from_millis(450),
            Duration::from_millis(850),
        );
    }
}
