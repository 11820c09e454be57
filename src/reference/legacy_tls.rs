//! The `accept-legacy-tls` defect: answer a TLS 1.0/1.1 ClientHello with a ServerHello,
//! as a server with old protocol versions enabled would. rustls cannot speak them, so the
//! defect only has to get as far as the answer a probe classifies.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Peeks at the first record; if it is a ClientHello offering only TLS 1.0/1.1, answers with
/// a ServerHello for that version and returns `true` (the connection is then done).
pub(super) async fn answer_legacy_hello(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let peeked = tokio::time::timeout(Duration::from_secs(5), async {
        // Peek until the fixed-size header part is there (or the peer stops sending).
        loop {
            match stream.peek(&mut buf).await {
                Ok(n) if n >= 11 || n == 0 => return n,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(_) => return 0,
            }
        }
    })
    .await
    .unwrap_or(0);
    if peeked < 11 || buf[0] != 0x16 || buf[5] != 0x01 {
        return false;
    }
    let version = u16::from_be_bytes([buf[9], buf[10]]);
    if version != 0x0301 && version != 0x0302 {
        return false;
    }
    let [vh, vl] = version.to_be_bytes();
    // ServerHello: version, 32 random bytes, empty session id, TLS_RSA_WITH_AES_128_CBC_SHA, null compression.
    let mut body = vec![vh, vl];
    body.extend_from_slice(&[0x42; 32]);
    body.extend_from_slice(&[0x00, 0x00, 0x2f, 0x00]);
    let mut hs = vec![0x02, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, vh, vl, 0x00, hs.len() as u8];
    record.extend_from_slice(&hs);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&record)).await;
    let _ = stream.shutdown().await;
    true
}
