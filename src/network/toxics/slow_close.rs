//! `slow_close`: the end of the stream (the source's FIN) is passed on `delay` ms late
//! (Toxiproxy's `toxics/slow_close.go`); data is not delayed.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{later, ms, Attribute, Piece, Toxic, Verdict};

/// Delays the close by `delay` milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowClose {
    /// How long the close waits, in milliseconds.
    pub delay: u64,
}

impl Toxic for SlowClose {
    const NAME: &'static str = "slow_close";
    const DOC: &'static str = "Delays the TCP socket from closing until delay has elapsed.";
    const ATTRIBUTES: &'static [Attribute] = &[Attribute {
        name: "delay",
        unit: "ms",
        doc: "how long the close is held back",
    }];

    type State = ();

    fn start(&self, _now: Instant) {}

    fn plan(&self, _state: &mut (), piece: &Piece<'_>) -> Verdict {
        if !piece.eof {
            return piece.pass();
        }
        Verdict::Pass {
            len: 0,
            at: piece.ready_at.max(later(piece.read_at, ms(self.delay))),
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
    use crate::network::toxics::testing::{eof, piece};

    #[test]
    fn only_the_end_of_stream_waits() {
        let t = SlowClose { delay: 300 };
        let now = Instant::now();
        assert_eq!(
            t.plan(&mut (), &piece(b"x", 0, now)),
            Verdict::Pass { len: 1, at: now }
        );
        assert_eq!(
            t.plan(&mut (), &eof(1, now)),
            Verdict::Pass {
                len: 0,
                at: now + Duration::from_millis(300)
            }
        );
    }

    #[tokio::test]
    async fn slow_close_300ms_delays_the_fin_by_300ms() {
        let (proxy, addr) = echo_link("slow").await;
        proxy
            .add_toxic(
                "slow",
                toxic("slow_close", Stream::Downstream, json!({"delay": 300})),
            )
            .expect("add");
        let mut c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        c.write_all(b"bye").await.expect("write");
        let mut buf = [0u8; 3];
        within(c.read_exact(&mut buf)).await.expect("echo");
        let clock = Instant::now();
        // The echo server closes when the client has; its FIN then waits 300 ms.
        c.shutdown().await.expect("shutdown");
        let n = within(c.read(&mut buf)).await.expect("eof");
        assert_eq!(n, 0, "end of stream");
        assert_between(
            clock.elapsed(),
            Duration::from_millis(300),
            Duration::from_millis(400),
        );
    }
}
