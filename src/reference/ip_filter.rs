//! The reference IUT's source-address filter (EB-IP-1/2): a reloadable allowlist enforced
//! at accept, before TLS, except where a trusted proxy speaks for the client (PROXY
//! protocol header, or forwarding headers checked at HTTP level).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::defects::{Defect, Defects};
use crate::network::addr::parse_net;
use crate::network::proxy_protocol::V2_SIGNATURE;

const PROXY_HEADER_DEADLINE: Duration = Duration::from_secs(5);

pub(super) struct IpFilter {
    file: Option<PathBuf>,
    ranges: RwLock<Vec<IpNet>>,
    trusted_proxies: Vec<IpNet>,
    defects: Defects,
}

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Serve; the client address is settled.
    Accept,
    /// Close at once (with a reset), before TLS.
    Refuse,
    /// Serve, but check the client address at HTTP level from forwarding headers.
    CheckHeaders,
}

impl IpFilter {
    pub(super) fn new(
        file: Option<PathBuf>,
        trusted_proxies: Vec<IpNet>,
        defects: Defects,
    ) -> anyhow::Result<Self> {
        let f = IpFilter {
            file,
            ranges: RwLock::new(Vec::new()),
            trusted_proxies,
            defects,
        };
        f.reload()?;
        Ok(f)
    }

    /// Re-reads the allowlist file: one range per line, `#` comments.
    pub(super) fn reload(&self) -> anyhow::Result<usize> {
        let Some(file) = &self.file else { return Ok(0) };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the allowlist {}", file.display()))?;
        let mut ranges = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            ranges.push(
                parse_net(line)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?,
            );
        }
        let n = ranges.len();
        if let Ok(mut r) = self.ranges.write() {
            *r = ranges;
        }
        Ok(n)
    }

    pub(super) fn ranges(&self) -> Vec<String> {
        self.ranges
            .read()
            .map(|r| r.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    pub(super) fn enabled(&self) -> bool {
        self.file.is_some() && !self.defects.has(Defect::NoIpFilter)
    }

    /// Whether `ip` is registered.
    pub(super) fn allows(&self, ip: IpAddr) -> bool {
        if !self.enabled() {
            return true;
        }
        // The defect: anything that arrives as IPv6 (v4-mapped included) skips the filter.
        if self.defects.has(Defect::Ipv6Unfiltered) && ip.is_ipv6() {
            return true;
        }
        let ip = normalise(ip);
        let ranges = self.ranges.read().map(|r| r.clone()).unwrap_or_default();
        ranges.iter().any(|r| {
            r.contains(&ip) || (self.defects.has(Defect::CidrOffByOne) && is_one_past(r, ip))
        })
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = normalise(ip);
        self.trusted_proxies.iter().any(|r| r.contains(&ip))
    }

    /// Decides at accept. A trusted proxy (or anyone, under the `trusts-forwarded-headers`
    /// defect) may name the client in a PROXY protocol header, which is consumed here.
    pub(super) async fn admit(&self, tcp: &mut TcpStream, peer: SocketAddr) -> (Admission, IpAddr) {
        if !self.enabled() {
            return (Admission::Accept, peer.ip());
        }
        let speaks_for_others =
            self.trusted(peer.ip()) || self.defects.has(Defect::TrustsForwardedHeaders);
        if speaks_for_others {
            return match read_proxy_header(tcp).await {
                Some(client) if self.allows(client) => (Admission::Accept, client),
                Some(client) => (Admission::Refuse, client),
                None => (Admission::CheckHeaders, peer.ip()),
            };
        }
        if self.allows(peer.ip()) {
            (Admission::Accept, peer.ip())
        } else {
            (Admission::Refuse, peer.ip())
        }
    }

    /// The client address a forwarding header names (X-Forwarded-For's last entry,
    /// X-Real-IP, or RFC 7239 `Forwarded: for=`), else the peer.
    pub(super) fn client_from_headers(headers: &hyper::HeaderMap, peer: IpAddr) -> IpAddr {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let Some(xff) = get("x-forwarded-for") {
            if let Some(ip) = xff.rsplit(',').next().and_then(|s| s.trim().parse().ok()) {
                return ip;
            }
        }
        if let Some(ip) = get("x-real-ip").and_then(|s| s.trim().parse().ok()) {
            return ip;
        }
        if let Some(fwd) = get("forwarded") {
            for part in fwd.split([';', ',']) {
                if let Some(v) = part
                    .trim()
                    .strip_prefix("for=")
                    .or_else(|| part.trim().strip_prefix("For="))
                {
                    let v = v.trim_matches('"').trim_start_matches('[');
                    let v = v.split(']').next().unwrap_or(v);
                    if let Ok(ip) = v.parse() {
                        return ip;
                    }
                }
            }
        }
        peer
    }
}

fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn is_one_past(range: &IpNet, ip: IpAddr) -> bool {
    match (range, ip) {
        (IpNet::V4(r), IpAddr::V4(a)) => {
            u32::from(r.broadcast()).checked_add(1) == Some(u32::from(a))
        }
        _ => false,
    }
}

/// Reads a PROXY protocol v1 or v2 header if the connection starts with one.
async fn read_proxy_header(tcp: &mut TcpStream) -> Option<IpAddr> {
    let mut head = [0u8; 16];
    let n = tokio::time::timeout(PROXY_HEADER_DEADLINE, peek_at_least(tcp, &mut head, 16))
        .await
        .ok()?;
    if n >= 6 && &head[..6] == b"PROXY " {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        // v1 headers are at most 107 bytes.
        while line.len() < 108 && !line.ends_with(b"\r\n") {
            tokio::time::timeout(PROXY_HEADER_DEADLINE, tcp.read_exact(&mut byte))
                .await
                .ok()?
                .ok()?;
            line.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&line);
        return text.split_whitespace().nth(2).and_then(|s| s.parse().ok());
    }
    if n >= 16 && head[..12] == V2_SIGNATURE {
        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
        let mut all = vec![0u8; 16 + len];
        tokio::time::timeout(PROXY_HEADER_DEADLINE, tcp.read_exact(&mut all))
            .await
            .ok()?
            .ok()?;
        let body = &all[16..];
        return match head[13] >> 4 {
            1 if body.len() >= 4 => Some(IpAddr::from([body[0], body[1], body[2], body[3]])),
            2 if body.len() >= 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[..16]);
                Some(IpAddr::from(a))
            }
            _ => None,
        };
    }
    None
}

/// Peeks until `want` bytes are buffered or the peer stops sending (then fewer).
async fn peek_at_least(tcp: &TcpStream, buf: &mut [u8], want: usize) -> usize {
    let mut last = 0;
    loop {
        match tcp.peek(buf).await {
            Ok(n) if n >= want || n == 0 => return n,
            Ok(n) if n == last => {
                // Nothing new yet; a TLS ClientHello or a PROXY header arrives in one
                // segment on loopback, so a short pause bounded by the caller's deadline suffices.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(n) => last = n,
            Err(_) => return 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(ranges: &str, defects: &[Defect]) -> (tempfile::NamedTempFile, IpFilter) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), ranges).unwrap();
        let filter = IpFilter::new(
            Some(f.path().to_path_buf()),
            vec![],
            Defects::new(defects.iter().copied()),
        )
        .unwrap();
        (f, filter)
    }

    #[test]
    fn range_edges_are_inside_and_neighbours_outside() {
        let (_f, ip) = filter("127.0.0.8/29 # office\n\n127.0.0.1\n", &[]);
        for a in ["127.0.0.8", "127.0.0.15", "127.0.0.1", "::ffff:127.0.0.9"] {
            assert!(ip.allows(a.parse().unwrap()), "{a}");
        }
        for a in ["127.0.0.7", "127.0.0.16", "::1"] {
            assert!(!ip.allows(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn defects_open_exactly_their_hole() {
        let (_f, ip) = filter("127.0.0.8/29\n", &[Defect::CidrOffByOne]);
        assert!(ip.allows("127.0.0.16".parse().unwrap()));
        assert!(!ip.allows("127.0.0.17".parse().unwrap()));
        let (_f, ip) = filter("127.0.0.8/29\n", &[Defect::Ipv6Unfiltered]);
        assert!(ip.allows("::1".parse().unwrap()));
        assert!(ip.allows("::ffff:127.0.0.200".parse().unwrap()));
        assert!(!ip.allows("127.0.0.200".parse().unwrap()));
    }

    #[test]
    fn bad_allowlist_line_is_named() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "127.0.0.1\nnonsense\n").unwrap();
        let e = IpFilter::new(Some(f.path().to_path_buf()), vec![], Defects::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(":2:"), "{e}");
    }

    #[test]
    fn forwarding_headers_name_the_client() {
        let peer: IpAddr = "127.0.0.5".parse().unwrap();
        let mut h = hyper::HeaderMap::new();
        h.insert("forwarded", "for=\"[::1]:80\";proto=https".parse().unwrap());
        assert_eq!(
            IpFilter::client_from_headers(&h, peer),
            "::1".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", "10.0.0.1, 127.0.0.9".parse().unwrap());
        assert_eq!(
            IpFilter::client_from_headers(&h, peer),
            "127.0.0.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            IpFilter::client_from_headers(&hyper::HeaderMap::new(), peer),
            peer
        );
    }
}
