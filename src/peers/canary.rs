//! The canary: a plain HTTP server on loopback, started per scenario, that the XML attacks
//! point at and the IUT must never contact. It answers every request with bait (so a
//! receiver that fetches gets something to substitute) and records it first, so by the
//! time the IUT answers the harness the fetch is on record. It also writes a file the
//! `file://` attack names. A std thread, not a task: a receiver that blocks its async
//! runtime while it fetches (the reference's defects do) must still reach it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::schema::xml_attack::Bait;

/// One contact with the canary.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Hit {
    /// Milliseconds since the canary started.
    pub at_ms: u128,
    pub peer: String,
    /// The request line (`GET /xxe HTTP/1.1`), or what arrived of it.
    pub request: String,
}

pub(crate) struct Canary {
    addr: SocketAddr,
    bait: Bait,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Canary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canary").field("addr", &self.addr).finish()
    }
}

impl Canary {
    /// Binds a free loopback port, writes the canary file, and starts serving.
    pub(crate) fn start() -> anyhow::Result<Canary> {
        let listener = TcpListener::bind("127.0.0.1:0").context("canary: binding loopback")?;
        let addr = listener.local_addr().context("canary: local address")?;
        let token = format!("provsten-canary-{:016x}", rand::random::<u64>());
        let dir = tempfile::tempdir().context("canary: temporary folder")?;
        let file = dir.path().join("canary.txt");
        std::fs::write(&file, &token)
            .with_context(|| format!("canary: writing {}", file.display()))?;
        let bait = Bait {
            base_url: format!("http://{addr}"),
            file,
            token,
        };
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (hits, stop, bait) = (hits.clone(), stop.clone(), bait.clone());
            let started = Instant::now();
            std::thread::Builder::new()
                .name("canary".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        if let Ok(conn) = conn {
                            serve(conn, &bait, &hits, started);
                        }
                    }
                })
                .context("canary: starting its thread")?
        };
        Ok(Canary {
            addr,
            bait,
            hits,
            stop,
            thread: Some(thread),
            _dir: dir,
        })
    }

    pub(crate) fn bait(&self) -> &Bait {
        &self.bait
    }

    /// Every contact so far.
    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

fn serve(mut conn: TcpStream, bait: &Bait, hits: &Mutex<Vec<Hit>>, started: Instant) {
    let peer = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    // Bounded: a client that sends nothing holds the canary 2 s at most.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let request = text.lines().next().unwrap_or("").to_owned();
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    // Recorded before answering: the contact is on record before the IUT can go on.
    if let Ok(mut h) = hits.lock() {
        h.push(Hit {
            at_ms: started.elapsed().as_millis(),
            peer,
            request,
        });
    }
    let body = bait.serves(&path);
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/xml-dtd\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_every_request_serves_bait_and_stops() {
        let c = Canary::start().expect("starts");
        assert_eq!(
            std::fs::read_to_string(&c.bait().file).expect("file"),
            c.bait().token
        );
        let mut s = TcpStream::connect(c.addr).expect("connects");
        s.write_all(b"GET /parameter.dtd HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("writes");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("reads");
        assert!(answer.contains(&format!("<!ENTITY provsten \"{}\">", c.bait().token)));
        let hits = c.hits();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].request, "GET /parameter.dtd HTTP/1.1");
        let (addr, file) = (c.addr, c.bait().file.clone());
        drop(c);
        assert!(TcpStream::connect(addr).is_err(), "still listening");
        assert!(!file.exists(), "canary file left behind");
    }
}
