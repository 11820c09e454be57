//! `timeout`: no data passes; the connection is closed `timeout` ms after the toxic started
//! acting on it (Toxiproxy's `toxics/timeout.go`). With `timeout` 0 the connection stays
//! open and the data waits until the toxic is removed, then flows: nothing is dropped.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{later, ms, Attribute, Piece, Toxic, Verdict};

/// Stops all data, closing the connection after `timeout` ms (never if 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeout {
    /// When to close, in milliseconds after the toxic started on the connection; 0: never.
    pub timeout: u64,
}

/// When the toxic started acting on the connection.
#[derive(Debug)]
pub struct TimeoutState {
    since: Instant,
}

impl Toxic for Timeout {
    const NAME: &'static str = "timeout";
    const DOC: &'static str =
        "Stops all data from getting through, and closes the connection after timeout (0: holds the data until the toxic is removed).";
    const ATTRIBUTES: &'static [Attribute] = &[Attribute {
        name: "timeout",
        unit: "ms",
        doc: "close the connection this long after the toxic started on it; 0: never",
    }];

    type State = TimeoutState;

    fn start(&self, now: Instant) -> TimeoutState {
        TimeoutState { since: now }
    }

    fn plan(&self, state: &mut TimeoutState, _piece: &Piece<'_>) -> Verdict {
        if self.timeout == 0 {
            Verdict::Hold
        } else {
            Verdict::Close {
                at: later(state.since, ms(self.timeout)),
            }
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
    use crate::network::toxics::testing::{idle, piece};

    #[test]
    fn holds_or_closes_on_time_alone() {
        let now = Instant::now();
        let t = Timeout { timeout: 0 };
        let mut s = t.start(now);
        assert_eq!(t.plan(&mut s, &piece(b"x", 0, now)), Verdict::Hold);
        let t = Timeout { timeout: 300 };
        let mut s = t.start(now);
        let close = Verdict::Close {
            at: now + Duration::from_millis(300),
        };
        assert_eq!(t.plan(&mut s, &piece(b"x", 0, now)), close);
        assert_eq!(
            t.plan(&mut s, &idle(0, now)),
            close,
            "closes with no data flowing too"
        );
    }

    #[tokio::test]
    async fn timeout_0_holds_data_until_removed_on_a_live_connection() {
        let (proxy, addr) = echo_link("hold").await;
        let mut c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        let mut buf = [0u8; 4];
        c.write_all(b"warm").await.expect("write");
        within(c.read_exact(&mut buf)).await.expect("flows before");

        proxy
            .add_toxic(
                "hold",
                toxic("timeout", Stream::Downstream, json!({"timeout": 0})),
            )
            .expect("add");
        c.write_all(b"held").await.expect("write");
        // Nothing arrives while the toxic is there (the time is what is measured here).
        let blocked = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf)).await;
        assert!(blocked.is_err(), "data passed a timeout toxic: {blocked:?}");

        let clock = Instant::now();
        proxy
            .remove_toxic("hold", "timeout_downstream")
            .expect("remove");
        within(c.read_exact(&mut buf)).await.expect("released");
        assert_eq!(&buf, b"held");
        assert!(
            clock.elapsed() < Duration::from_millis(100),
            "released at once: {:?}",
            clock.elapsed()
        );
    }

    #[tokio::test]
    async fn timeout_300ms_closes_the_connection_after_300ms() {
        let (proxy, addr) = echo_link("to").await;
        proxy
            .add_toxic(
                "to",
                toxic("timeout", Stream::Downstream, json!({"timeout": 300})),
            )
            .expect("add");
        let clock = Instant::now();
        let mut c = within(tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        c.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        let n = within(c.read(&mut buf)).await.expect("closed, not reset");
        assert_eq!(n, 0, "no data, then the end of stream");
        assert_between(
            clock.elapsed(),
            Duration::from_millis(300),
            Duration::from_millis(400),
        );
    }
}
