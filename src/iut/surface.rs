//! `[firewall]` and `[inner]` resolved: what the IUT exposes (FMK-2.2-FW) and its inner
//! endpoint behind the access point (SDK-2.4-INNER).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{anyhow, bail};

use super::config::Placeholders;
use super::config::{resolve_base_url, ConfigSource, FirewallSection, InnerSection, PortValue};
use crate::network::addr;
use crate::peers::Target;

/// Largest connect scan a config may ask for.
pub(crate) const SCAN_CAP: u32 = 4096;

#[derive(Debug, Clone)]
pub(crate) struct FirewallContext {
    /// Ports clients may reach.
    pub ports: Vec<u16>,
    /// Ports only the harness may reach.
    pub harness_ports: Vec<u16>,
    /// Where the probes come from, and why that address.
    pub client_address: IpAddr,
    pub client_address_why: String,
    pub scan: Option<ScanRange>,
}

/// `ADDRESS:FIRST-LAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ScanRange {
    pub ip: IpAddr,
    pub first: u16,
    pub last: u16,
}

impl std::fmt::Display for ScanRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}-{}", self.first, self.last),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}-{}", self.first, self.last),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct InnerContext {
    pub target: Target,
    pub client_cert: String,
    pub path: String,
}

pub(crate) fn firewall_context(
    f: &FirewallSection,
    registered: &[ipnet::IpNet],
    ph: &mut Placeholders,
    source: &ConfigSource,
) -> anyhow::Result<FirewallContext> {
    let mut ports = |list: &[PortValue], key: &str| -> anyhow::Result<Vec<u16>> {
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate() {
            out.push(match p {
                PortValue::Number(n) => *n,
                PortValue::Text(t) => {
                    let v = ph.expand(t, &format!("firewall.{key}[{i}]"), source)?;
                    v.trim().parse().map_err(|_| {
                        anyhow!(
                            "{}: firewall.{key}[{i}]: {v:?} is not a port number (hint: 8443 or \"{{port:api}}\")",
                            source.name()
                        )
                    })?
                }
            });
        }
        Ok(out)
    };
    let client_ports = ports(&f.ports, "ports")?;
    let harness_ports = ports(&f.harness_ports, "harness_ports")?;
    let (client_address, client_address_why) = match &f.client_address {
        Some(a) => {
            let ip: IpAddr = a.trim().parse().map_err(|_| {
                anyhow!(
                    "{}: firewall.client_address: {a:?} is not an IP address",
                    source.name()
                )
            })?;
            if !addr::bindable(ip) {
                bail!("{}: firewall.client_address: {ip} is not a loopback address this machine can connect from (hint: 127.0.0.9)", source.name());
            }
            (ip, "firewall.client_address".to_string())
        }
        None => default_client_address(registered),
    };
    let scan = f
        .scan
        .as_deref()
        .map(|s| parse_scan(s).map_err(|e| anyhow!("{}: firewall.scan: {e}", source.name())))
        .transpose()?;
    Ok(FirewallContext {
        ports: client_ports,
        harness_ports,
        client_address,
        client_address_why,
        scan,
    })
}

/// A registered loopback address other than 127.0.0.1 (where the harness's own clients
/// come from), else 127.0.0.2.
fn default_client_address(registered: &[ipnet::IpNet]) -> (IpAddr, String) {
    let harness = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let found = registered.iter().find_map(|r| {
        [addr::Edge::First, addr::Edge::Last]
            .into_iter()
            .filter_map(|e| addr::edge_address(r, e, registered))
            .find(|ip| *ip != harness)
    });
    match found {
        Some(ip) => (ip, "a registered [ip_filter] address".to_string()),
        None => (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            "a loopback address other than the harness's 127.0.0.1 (no [ip_filter] range has one)"
                .to_string(),
        ),
    }
}

/// `127.0.0.1:20000-20100` or `[::1]:20000-20100`.
pub(crate) fn parse_scan(s: &str) -> Result<ScanRange, String> {
    let hint = "(hint: \"127.0.0.1:20000-20100\")";
    let (host, range) = s
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not ADDRESS:FIRST-LAST {hint}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("{host:?} is not an IP address {hint}"))?;
    if !ip.is_loopback() {
        return Err(format!(
            "{ip} is not a loopback address: provsten probes only this machine"
        ));
    }
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    let first: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a port {hint}"))?;
    let last: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a port {hint}"))?;
    if first == 0 || last < first {
        return Err(format!("{first}-{last} is not a port range {hint}"));
    }
    if u32::from(last - first) + 1 > SCAN_CAP {
        return Err(format!(
            "{first}-{last} is {} ports; at most {SCAN_CAP} are scanned",
            u32::from(last - first) + 1
        ));
    }
    Ok(ScanRange { ip, first, last })
}

pub(crate) async fn inner_context(
    i: &InnerSection,
    api_server_name: &str,
    ph: &mut Placeholders,
    source: &ConfigSource,
) -> anyhow::Result<InnerContext> {
    let url = ph.expand(&i.base_url, "inner.base_url", source)?;
    let addr = resolve_base_url(&url, source).await?;
    Ok(InnerContext {
        target: Target {
            addr,
            server_name: i
                .server_name
                .clone()
                .unwrap_or_else(|| api_server_name.to_string()),
        },
        client_cert: i.client_cert.clone(),
        path: ph.expand(&i.path, "inner.path", source)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_ranges_parse_bounded_and_loopback_only() {
        let r = parse_scan("127.0.0.1:20000-20100").unwrap();
        assert_eq!((r.first, r.last), (20000, 20100));
        assert_eq!(parse_scan("[::1]:80").unwrap().first, 80);
        assert!(parse_scan("10.0.0.1:1-2").unwrap_err().contains("loopback"));
        assert!(parse_scan("127.0.0.1:1-60000")
            .unwrap_err()
            .contains("at most"));
        assert!(parse_scan("127.0.0.1:9-3").is_err());
    }

    #[test]
    fn the_default_client_address_is_registered_and_not_the_harness_one() {
        let nets: Vec<ipnet::IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "127.0.0.8/29".parse().unwrap(),
        ];
        assert_eq!(default_client_address(&nets).0.to_string(), "127.0.0.8");
        assert_eq!(default_client_address(&[]).0.to_string(), "127.0.0.2");
    }
}
