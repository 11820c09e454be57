//! `limit_data`: once `bytes` bytes have passed on the stream, the connection is closed
//! (Toxiproxy's `toxics/limit_data.go`). Exactly that many arrive: a write is cut at the
//! limit. The count survives updates of the toxic.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Attribute, Piece, Toxic, Verdict};

/// Closes the connection after `bytes` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitData {
    /// How many bytes pass before the connection is closed.
    pub bytes: u64,
}

/// How many bytes have passed.
#[derive(Debug, Default)]
pub struct LimitDataState {
    passed: u64,
}

impl Toxic for LimitData {
    const NAME: &'static str = "limit_data";
    const DOC: &'static str = "Closes the connection when transmitted data exceeds the limit.";
    const ATTRIBUTES: &'static [Attribute] = &[Attribute {
        name: "bytes",
        unit: "bytes",
        doc: "how many bytes pass before the connection is closed",
    }];

    type State = LimitDataState;

    fn start(&self, _now: Instant) -> LimitDataState {
        LimitDataState::default()
    }

    fn restart(&self, old: LimitDataState, _now: Instant) -> LimitDataState {
        old
    }

    fn plan(&self, state: &mut LimitDataState, piece: &Piece<'_>) -> Verdict {
        let remaining = self.bytes.saturating_sub(state.passed);
        // Like Toxiproxy, a limit of 0 closes on the first input, not at once.
        if remaining == 0 && (state.passed > 0 || !piece.is_idle()) {
            return Verdict::Close { at: piece.ready_at };
        }
        let len = usize::try_from(remaining).map_or(piece.data.len(), |r| piece.data.len().min(r));
        Verdict::Pass {
            len,
            at: piece.ready_at,
        }
    }

    fn commit(&self, state: &mut LimitDataState, written: usize, _now: Instant) {
        state.passed = state.passed.saturating_add(written as u64);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::network::proxy::testutil::{echo_link, toxic, within};
    use crate::network::proxy::Stream;
    use crate::network::toxics::testing::{idle, piece};

    #[test]
    fn cuts_at_the_limit_then_closes() {
        let t = LimitData { bytes: 1000 };
        let now = Instant::now();
        let mut s = t.start(now);
        let data = [0u8; 600];
        assert_eq!(
            t.plan(&mut s, &piece(&data, 0, now)),
            Verdict::Pass { len: 600, at: now }
        );
        t.commit(&mut s, 600, now);
        assert_eq!(
            t.plan(&mut s, &piece(&data, 1, now)),
            Verdict::Pass { len: 400, at: now }
        );
        t.commit(&mut s, 400, now);
        assert_eq!(
            t.plan(&mut s, &idle(2, now)),
            Verdict::Close { at: now },
            "closes with nothing more to send"
        );
        let s = t.restart(s, now);
        assert_eq!(s.passed, 1000, "the count survives an update");
        let zero = LimitData { bytes: 0 };
        let mut s = zero.start(now);
        assert_eq!(
            zero.plan(&mut s, &idle(0, now)),
            Verdict::Pass { len: 0, at: now }
        );
        assert_eq!(
            zero.plan(&mut s, &piece(b"x", 0, now)),
            Verdict::Close { at: now }
        );
    }

    #[tokio::test]
    async fn limit_data_1000_passes_exactly_1000_bytes_then_eof() {
        let (proxy, addr) = echo_link("limit").await;
        proxy
            .add_toxic(
                "limit",
                toxic("limit_data", Stream::Downstream, json!({"bytes": 1000})),
            )
            .expect("add");
        let mut c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 249) as u8).collect();
        c.write_all(&data).await.expect("write");
        let mut got = Vec::new();
        within(c.read_to_end(&mut got))
            .await
            .expect("a clean end of stream");
        assert_eq!(got.len(), 1000);
        assert!(got[..] == data[..1000], "the first 1000 bytes, intact");
    }
}
