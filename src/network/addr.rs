//! Source addresses for simulated clients: which loopback addresses sit on the edges of a
//! registered range, and which are outside every range. Linux routes all of 127.0.0.0/8 to
//! `lo`, so binding 127.0.0.x before connecting needs no setup and the server sees it.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

/// Where in (or next to) a range an address sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Edge {
    First,
    Last,
    JustBelow,
    JustAbove,
}

impl Edge {
    pub fn parse(s: &str) -> Option<Edge> {
        match s {
            "first" => Some(Edge::First),
            "last" => Some(Edge::Last),
            "just-below" | "address just below" => Some(Edge::JustBelow),
            "just-above" | "address just above" => Some(Edge::JustAbove),
            _ => None,
        }
    }

    pub fn inside(self) -> bool {
        matches!(self, Edge::First | Edge::Last)
    }
}

/// The loopback network every simulated client can bind in.
pub fn loopback_v4() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_default()
}

/// Whether a client can take `addr` as its source on this machine: inside 127.0.0.0/8 but
/// not its network or broadcast address.
pub fn bindable(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let lo = loopback_v4();
            lo.contains(&v4) && v4 != lo.network() && v4 != lo.broadcast()
        }
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// The address at `edge` of `range`, if a client here can use it and (for the outside
/// edges) it is in no registered range.
pub fn edge_address(range: &IpNet, edge: Edge, registered: &[IpNet]) -> Option<IpAddr> {
    let IpNet::V4(r) = range else { return None };
    let (first, last) = (u32::from(r.network()), u32::from(r.broadcast()));
    let a = match edge {
        Edge::First => first,
        Edge::Last => last,
        Edge::JustBelow => first.checked_sub(1)?,
        Edge::JustAbove => last.checked_add(1)?,
    };
    let ip = IpAddr::V4(Ipv4Addr::from(a));
    let ok = bindable(ip) && (edge.inside() || !registered.iter().any(|n| n.contains(&ip)));
    ok.then_some(ip)
}

/// A loopback address in no registered range, counting up from 127.0.0.200 (well away from
/// the low addresses configs tend to register). `skip` picks the n-th such address, so
/// scenarios that change the IUT's list can use one of their own.
pub fn unregistered_v4(registered: &[IpNet], skip: usize) -> Option<IpAddr> {
    (200u32..(1 << 24) - 1)
        .map(|host| IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | host)))
        .filter(|ip| bindable(*ip) && !registered.iter().any(|n| n.contains(ip)))
        .nth(skip)
}

/// A registered address a client here can use: the first bindable address of the first
/// range that has one.
pub fn registered_v4(registered: &[IpNet]) -> Option<IpAddr> {
    registered.iter().find_map(|r| {
        [Edge::First, Edge::Last]
            .into_iter()
            .find_map(|e| edge_address(r, e, registered))
    })
}

/// `http://IP:port/path` → the address and the path (plain HTTP to this machine or the
/// test network only, so no name resolution).
pub fn http_url(url: &str) -> anyhow::Result<(std::net::SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority.parse().map_err(|_| {
        anyhow::anyhow!(
            "{url:?}: {authority:?} is not IP:port (hint: http://127.0.0.1:9000/reload)"
        )
    })?;
    Ok((addr, path.to_string()))
}

/// Parses a CIDR or a bare address (taken as /32 or /128).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("{s:?} is not an address range (hint: \"127.0.0.8/29\" or \"127.0.0.1\")")
        })
}

/// A loopback port that is free now, for a caller that binds it later: a PKI's CRL port
/// (written into its certificates) and the IUT config's `{port:NAME}`. It is taken from
/// 20000-31999, below Linux's ephemeral range (32768-60999), so the kernel never hands it
/// out for `:0` or as the source port of an outgoing connection while it is released: with
/// ephemeral ports, one run's CRL publisher once held the port another run had reserved
/// for its route link, and a restarted IUT could find its port taken by a connection.
/// Each call moves on from the last one, so two reservations of one process never get the
/// same port; the start is random per process, so parallel runs spread over the band.
/// A port is also claimed across processes (see [`claim`]): a route port stays released
/// between router scenarios, and a parallel run must not reserve it meanwhile.
pub fn reserve_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        (h.finish() % u64::from(SPAN)) as u32
    };
    let _ = CURSOR.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN {
        let offset = CURSOR.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = u16::try_from(LOW + offset).unwrap_or(u16::MAX);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && claim(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "no free loopback port in 20000-31999",
    ))
}

/// Claims `port` for this process's lifetime with an exclusive `flock` on
/// `$TMPDIR/provsten-ports/PORT`; false if another live process holds it. The kernel drops
/// the lock when the process ends, however it ends, so a killed run leaves no claim
/// behind. Where the folder cannot be written the claim is skipped (the bind check alone).
fn claim(port: u16) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    static HELD: std::sync::Mutex<Vec<Flock<std::fs::File>>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("provsten-ports");
    let file = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
    });
    let Ok(file) = file else {
        return true;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            HELD.lock().unwrap_or_else(|p| p.into_inner()).push(lock);
            true
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_net(s).unwrap()).collect()
    }

    #[test]
    fn a_claimed_port_is_not_claimed_again_until_its_holder_ends() {
        let port = reserve_port().unwrap();
        // flock conflicts between open files, so this process stands in for another run.
        assert!(!claim(port), "{port} claimed twice");
        assert_ne!(reserve_port().unwrap(), port);
    }

    #[test]
    fn edges_of_a_range_and_just_outside_it() {
        let reg = nets(&["127.0.0.1/32", "127.0.0.8/29"]);
        let r = reg[1];
        assert_eq!(
            edge_address(&r, Edge::First, &reg),
            Some("127.0.0.8".parse().unwrap())
        );
        assert_eq!(
            edge_address(&r, Edge::Last, &reg),
            Some("127.0.0.15".parse().unwrap())
        );
        assert_eq!(
            edge_address(&r, Edge::JustBelow, &reg),
            Some("127.0.0.7".parse().unwrap())
        );
        assert_eq!(
            edge_address(&r, Edge::JustAbove, &reg),
            Some("127.0.0.16".parse().unwrap())
        );
        // 127.0.0.0 is the loopback network address: not usable
        assert_eq!(edge_address(&reg[0], Edge::JustBelow, &reg), None);
    }

    #[test]
    fn outside_edges_inside_another_range_are_not_offered() {
        let reg = nets(&["127.0.0.8/29", "127.0.0.16/29"]);
        assert_eq!(edge_address(&reg[0], Edge::JustAbove, &reg), None);
    }

    #[test]
    fn unregistered_addresses_avoid_every_range() {
        let reg = nets(&["127.0.0.200/31"]);
        assert_eq!(
            unregistered_v4(&reg, 0),
            Some("127.0.0.202".parse().unwrap())
        );
        assert_eq!(
            unregistered_v4(&reg, 1),
            Some("127.0.0.203".parse().unwrap())
        );
        assert_eq!(registered_v4(&reg), Some("127.0.0.200".parse().unwrap()));
        assert_eq!(registered_v4(&nets(&["10.0.0.0/8"])), None);
    }

    #[test]
    fn bare_addresses_are_single_host_ranges() {
        assert_eq!(parse_net("127.0.0.1").unwrap().prefix_len(), 32);
        assert!(parse_net("127.0.0.300/8").unwrap_err().contains("hint"));
    }
}
