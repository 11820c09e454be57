//! The `accept-legacy-tls` and `accept-weak-suites` defects: answer a ClientHello that
//! offers only TLS 1.0/1.1, or TLS 1.2 with only weak cipher suites, with a ServerHello, as a
//! server with old versions or OpenSSL's default cipher list enabled would. rustls can speak
//! neither, so the defect only has to get as far as the answer a probe classifies; every
//! other hello is left unread for rustls.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::defects::{Defect, Defects};

/// How long to wait for the start of the ClientHello; a client that has not sent the
/// first hundred bytes of its hello by then is left to rustls's own deadline.
const PEEK_DEADLINE: Duration = Duration::from_secs(5);

/// The weak suites an OpenSSL 3 server with `ssl_ciphers DEFAULT` and an RSA and an ECDSA
/// certificate still negotiates (`openssl ciphers -v DEFAULT`): plain RSA key exchange and
/// CBC with HMAC-SHA-1. The defect picks the first of these the client offers, as OpenSSL
/// does when it follows the client's preference.
const DEFAULT_LIST_WEAK: &[u16] = &[
    0x002f, 0x0035, 0x003c, 0x003d, 0x009c, 0x009d, // TLS_RSA_WITH_AES_*
    0xc013, 0xc014, 0xc009, 0xc00a, // TLS_ECDHE_{RSA,ECDSA}_WITH_AES_*_CBC_SHA
    0x0033, 0x0039, // TLS_DHE_RSA_WITH_AES_*_CBC_SHA
];

/// The suites the reference's rustls negotiates: a hello offering one of them is a
/// modern client's, which the defect must leave alone.
const RUSTLS_SUITES: &[u16] = &[
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02c, 0xc02f, 0xc030, 0xcca8, 0xcca9,
];

/// Peeks at the first record; if the hello is one `defects` makes the server accept,
/// answers it with a ServerHello and returns `true` (the connection is then done).
pub(super) async fn answer_defective_hello(stream: &mut TcpStream, defects: &Defects) -> bool {
    let until = Instant::now() + PEEK_DEADLINE;
    let mut buf = [0u8; 512];
    // Record header (5), handshake header (4), client_version (2).
    let n = peek_at_least(stream, &mut buf, 11, until).await;
    if n < 11 || buf[0] != 0x16 || buf[5] != 0x01 {
        return false;
    }
    let version = u16::from_be_bytes([buf[9], buf[10]]);
    let suite = match version {
        0x0301 | 0x0302 if defects.has(Defect::AcceptLegacyTls) => 0x002f,
        0x0303 if defects.has(Defect::AcceptWeakSuites) => {
            match weak_choice(stream, &mut buf, until).await {
                Some(suite) => suite,
                None => return false,
            }
        }
        _ => return false,
    };
    let [vh, vl] = version.to_be_bytes();
    let [sh, sl] = u16::to_be_bytes(suite);
    // ServerHello: version, 32 random bytes, empty session id, the suite, null compression.
    let mut body = vec![vh, vl];
    body.extend_from_slice(&[0x42; 32]);
    body.extend_from_slice(&[0x00, sh, sl, 0x00]);
    let mut hs = vec![0x02, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, vh, vl, 0x00, hs.len() as u8];
    record.extend_from_slice(&hs);
    let _ = tokio::time::timeout_at(until, stream.write_all(&record)).await;
    let _ = stream.shutdown().await;
    true
}

/// The weak suite to choose for a TLS 1.2 hello that offers no suite rustls speaks, if it
/// offers one of [`DEFAULT_LIST_WEAK`].
async fn weak_choice(stream: &TcpStream, buf: &mut [u8], until: Instant) -> Option<u16> {
    // After client_version: random (32), session id (1 + up to 32), suites (2 + list).
    let sid_at = 11 + 32;
    let n = peek_at_least(stream, buf, sid_at + 1, until).await;
    let suites_at = sid_at + 1 + usize::from(*buf.get(sid_at).filter(|_| n > sid_at)?);
    let n = peek_at_least(stream, buf, suites_at + 2, until).await;
    let len = usize::from(u16::from_be_bytes([
        *buf.get(suites_at).filter(|_| n >= suites_at + 2)?,
        buf[suites_at + 1],
    ]));
    let end = (suites_at + 2 + len).min(buf.len());
    let n = peek_at_least(stream, buf, end, until).await;
    let offered: Vec<u16> = buf
        .get(suites_at + 2..end.min(n))?
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if offered.iter().any(|s| RUSTLS_SUITES.contains(s)) {
        return None;
    }
    offered.into_iter().find(|s| DEFAULT_LIST_WEAK.contains(s))
}

/// Peeks until `want` bytes are buffered, the peer stops sending, or `until`; returns how
/// many bytes are there. Peeking leaves them for rustls if the defect does not answer.
///
/// tokio's `peek` is ready again at once while any byte is unread, so waiting for the
/// rest of a hello split over segments would spin. Instead each peek runs inside
/// `try_io`: a short peek reports `WouldBlock`, which clears the socket's readiness, and
/// the next `ready` waits for the kernel to say more bytes (or the end) arrived.
async fn peek_at_least(stream: &TcpStream, buf: &mut [u8], want: usize, until: Instant) -> usize {
    // A second descriptor of the same socket gives std's synchronous (non-blocking: the
    // flag is the socket's) peek, which `try_io` needs and tokio does not offer.
    let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
        return 0;
    };
    let sync = std::net::TcpStream::from(fd);
    let want = want.min(buf.len());
    let mut have = 0;
    loop {
        let ready = match tokio::time::timeout_at(until, stream.ready(Interest::READABLE)).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(_)) | Err(_) => return have,
        };
        let peeked = stream.try_io(Interest::READABLE, || match sync.peek(buf)? {
            n if n >= want || n == 0 => Ok(n),
            n => {
                have = n;
                Err(io::ErrorKind::WouldBlock.into())
            }
        });
        match peeked {
            Ok(n) => return n,
            // The peer sent its last byte: no more is coming.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && ready.is_read_closed() => {
                return have
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return have,
        }
    }
}
