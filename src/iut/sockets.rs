//! The listening TCP sockets of a process group (the IUT provsten started, its children
//! included), read from `/proc`: each process's socket inodes (`/proc/PID/fd`) matched to
//! the LISTEN rows of `/proc/PID/net/tcp` and `tcp6`. Only that group's sockets, so other
//! programs on a CI machine and the harness's own listeners are never blamed on the IUT.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::Context;

/// One listening socket of the group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Listener {
    pub addr: SocketAddr,
    pub pid: i32,
    /// The process's name (`/proc/PID/comm`).
    pub process: String,
}

/// Whether this platform can list a process's sockets.
pub(crate) fn supported() -> bool {
    cfg!(target_os = "linux") && Path::new("/proc/self/net/tcp").exists()
}

/// The listening TCP sockets of process group `pgid` and of every descendant of its
/// members (a child that left the group still counts). Sorted by port.
pub(crate) fn listening(pgid: i32) -> anyhow::Result<Vec<Listener>> {
    listening_in(Path::new("/proc"), pgid)
}

/// The listening TCP sockets of this process alone (the harness's own listeners, kept out
/// of a scan; not its process group, which a CI script may share with the IUT).
pub(crate) fn own_listening() -> anyhow::Result<Vec<Listener>> {
    let pid = i32::try_from(std::process::id()).context("this process's id")?;
    sockets_of(Path::new("/proc"), [pid].into_iter().collect())
}

fn listening_in(proc_dir: &Path, pgid: i32) -> anyhow::Result<Vec<Listener>> {
    let mut procs: BTreeMap<i32, (i32, i32)> = BTreeMap::new(); // pid -> (ppid, pgrp)
    for entry in std::fs::read_dir(proc_dir)
        .with_context(|| format!("listing processes in {}", proc_dir.display()))?
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may exit while we read: skip it.
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
            if let Some(ids) = parse_stat(&stat) {
                procs.insert(pid, ids);
            }
        }
    }
    let mut members: BTreeSet<i32> = procs
        .iter()
        .filter(|(_, (_, pgrp))| *pgrp == pgid)
        .map(|(pid, _)| *pid)
        .collect();
    // Descendants, to a fixed point (bounded by the process count).
    for _ in 0..procs.len() {
        let more: Vec<i32> = procs
            .iter()
            .filter(|(pid, (ppid, _))| members.contains(ppid) && !members.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            break;
        }
        members.extend(more);
    }
    sockets_of(proc_dir, members)
}

fn sockets_of(proc_dir: &Path, members: BTreeSet<i32>) -> anyhow::Result<Vec<Listener>> {
    let mut found = BTreeMap::new();
    for pid in members {
        let dir = proc_dir.join(pid.to_string());
        let inodes = socket_inodes(&dir.join("fd"));
        if inodes.is_empty() {
            continue;
        }
        let process = std::fs::read_to_string(dir.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        for table in ["tcp", "tcp6"] {
            let Ok(text) = std::fs::read_to_string(dir.join("net").join(table)) else {
                continue;
            };
            for (addr, inode) in parse_listen_rows(&text) {
                if inodes.contains(&inode) {
                    found.entry((addr.port(), addr)).or_insert(Listener {
                        addr,
                        pid,
                        process: process.clone(),
                    });
                }
            }
        }
    }
    Ok(found.into_values().collect())
}

/// `(ppid, pgrp)` from `/proc/PID/stat`; the name in parentheses may hold spaces and
/// parentheses, so the fields are read after the last `)`.
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// The inodes of the sockets a process holds (`socket:[INODE]` links in its fd folder).
fn socket_inodes(fd_dir: &Path) -> BTreeSet<u64> {
    let Ok(entries) = std::fs::read_dir(fd_dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// The LISTEN rows (state `0A`) of a `/proc/net/tcp` or `tcp6` table: address and inode.
fn parse_listen_rows(text: &str) -> Vec<(SocketAddr, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let addr = parse_hex_addr(f.get(1)?)?;
            let inode = f.get(9)?.parse().ok()?;
            Some((addr, inode))
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6). The kernel prints each 32-bit
/// word of the address as a native-endian number, the port as a plain number.
fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_parentheses() {
        assert_eq!(parse_stat("42 (a (b) c) S 7 42 42 0 -1"), Some((7, 42)));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn proc_net_rows_parse_to_listening_addresses() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0 100 0 0 10 0\n   1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0 100 0 0 10 0\n";
        assert_eq!(
            parse_listen_rows(v4),
            vec![("127.0.0.1:8080".parse().unwrap(), 12345)]
        );
        let v6 = "  sl  local_address remote_address st\n   0: 00000000000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1\n   1: 0000000000000000FFFF00000100007F:20FC 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 778 1\n";
        assert_eq!(
            parse_listen_rows(v6),
            vec![
                ("[::1]:8443".parse().unwrap(), 777),
                ("[::ffff:127.0.0.1]:8444".parse().unwrap(), 778)
            ]
        );
    }

    /// This test process's own listener is found through its own process group.
    #[cfg(target_os = "linux")]
    #[test]
    fn finds_a_listener_of_its_own_process_group() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let pgid = nix::unistd::getpgrp().as_raw();
        let found = listening(pgid).unwrap();
        assert!(
            found.iter().any(|s| s.addr.port() == port),
            "{port} not in {found:?}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_its_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(own_listening()
            .unwrap()
            .iter()
            .any(|s| s.addr.port() == port));
    }
}
