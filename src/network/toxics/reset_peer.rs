//! `reset_peer`: once data (or the end of stream) reaches the toxic, the connection is reset
//! `timeout` ms later: SO_LINGER 0 on both sockets, then close, so both peers get a TCP RST
//! ("connection reset by peer"). What arrives meanwhile is not passed on; an RST discards
//! unsent data anyway (Toxiproxy's `toxics/reset_peer.go`). Like Toxiproxy, the clock
//! starts at the first data, not when the connection opens.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{later, ms, Attribute, Piece, Toxic, Verdict};

/// Resets the connection `timeout` ms after data first reaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResetPeer {
    /// How long after the first data to reset, in milliseconds.
    pub timeout: u64,
}

/// When data first reached the toxic on this connection.
#[derive(Debug, Default)]
pub struct ResetPeerState {
    first: Option<Instant>,
}

impl Toxic for ResetPeer {
    const NAME: &'static str = "reset_peer";
    const DOC: &'static str =
        "Simulates TCP RESET (connection reset by peer) on the connection, immediately or after a timeout once data arrives.";
    const ATTRIBUTES: &'static [Attribute] = &[Attribute {
        name: "timeout",
        unit: "ms",
        doc: "reset this long after data first arrives; 0: at once",
    }];

    type State = ResetPeerState;

    fn start(&self, _now: Instant) -> ResetPeerState {
        ResetPeerState::default()
    }

    fn plan(&self, state: &mut ResetPeerState, piece: &Piece<'_>) -> Verdict {
        let first = match (state.first, piece.is_idle()) {
            (Some(first), _) => first,
            (None, true) => return piece.pass(),
            (None, false) => *state.first.insert(piece.ready_at),
        };
        Verdict::Reset {
            at: later(first, ms(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::network::proxy::testutil::{assert_between, echo_link, toxic, within};
    use crate::network::proxy::Stream;
    use crate::network::toxics::testing::{idle, piece};

    #[test]
    fn clock_starts_at_the_first_data() {
        let t = ResetPeer { timeout: 100 };
        let now = Instant::now();
        let mut s = t.start(now);
        assert_eq!(
            t.plan(&mut s, &idle(0, now)),
            Verdict::Pass { len: 0, at: now }
        );
        let later_on = now + Duration::from_millis(50);
        let reset = Verdict::Reset {
            at: later_on + Duration::from_millis(100),
        };
        assert_eq!(t.plan(&mut s, &piece(b"x", 0, later_on)), reset);
        assert_eq!(
            t.plan(&mut s, &idle(1, later_on)),
            reset,
            "then resets with no more data"
        );
    }

    #[tokio::test]
    async fn reset_peer_gives_the_client_connection_reset() {
        let (proxy, addr) = echo_link("rst").await;
        proxy
            .add_toxic(
                "rst",
                toxic("reset_peer", Stream::Downstream, json!({"timeout": 100})),
            )
            .expect("add");
        let mut c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        let clock = Instant::now();
        c.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        let got = within(c.read(&mut buf)).await;
        match got {
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
            Ok(n) => panic!("read {n} bytes instead of a reset"),
        }
        assert_between(
            clock.elapsed(),
            Duration::from_millis(100),
            Duration::from_millis(250),
        );
    }
}
