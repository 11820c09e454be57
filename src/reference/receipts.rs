//! Receipts sent back (`--receipt-url`): besides answering with it, the XML receiver POSTs
//! each Meddelandekvittens to the sending party's receipt endpoint over mutual TLS, as an
//! SDK message service does through its access point. A few attempts, each with a deadline;
//! what cannot be delivered is dropped (the harness's wait then says none came).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::client::{client_connector, parse_url, Target};
use crate::pki::Pki;

/// Attempts per receipt, and the deadline of each.
const ATTEMPTS: u32 = 3;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct ReceiptPoster {
    target: Target,
    connector: TlsConnector,
}

impl ReceiptPoster {
    pub(super) fn new(pki: &Pki, url: &str, client_cert: &str) -> anyhow::Result<Arc<Self>> {
        let target = parse_url("--receipt-url", url).map_err(anyhow::Error::msg)?;
        let connector = client_connector(pki, client_cert, false)?;
        Ok(Arc::new(ReceiptPoster { target, connector }))
    }

    /// Sends `receipt` in the background.
    pub(super) fn send(self: &Arc<Self>, receipt: String) {
        let me = self.clone();
        tokio::spawn(async move {
            for n in 0..ATTEMPTS {
                let ok = tokio::time::timeout(ATTEMPT_TIMEOUT, me.post(receipt.clone()))
                    .await
                    .unwrap_or(false);
                if ok {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200 << n)).await;
            }
        });
    }

    /// One attempt: true once the receiver answered 2xx.
    async fn post(&self, receipt: String) -> bool {
        let t = &self.target;
        let Ok(tcp) = TcpStream::connect(&t.connect).await else {
            return false;
        };
        let Ok(tls) = self.connector.connect(t.server_name.clone(), tcp).await else {
            return false;
        };
        let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await
        else {
            return false;
        };
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::post(t.path.as_str())
            .header(hyper::header::HOST, t.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/xml")
            .body(Full::new(Bytes::from(receipt)));
        let ok = match req {
            Ok(req) => send
                .send_request(req)
                .await
                .is_ok_and(|r| r.status().is_success()),
            Err(_) => false,
        };
        conn.abort();
        ok
    }
}
