//! Steps for FMK-2.2-FW, only the traffic needed for the service passes: plain text to
//! the TLS port is refused without data, and only the declared ports answer a client
//! address (the IUT's listening sockets, or a declared scan range).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use cucumber::{then, when};
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ProvstenWorld, RunContext};
use crate::iut::sockets;
use crate::iut::surface::FirewallContext;

/// How long a refusing port has to close or reset a connection it accepted, before the
/// probe sends anything (a user-space filter resets at once; 2 s is generous under load).
const HOLD: Duration = Duration::from_secs(2);
/// How long a probe waits for an answer after sending.
const ANSWER: Duration = Duration::from_secs(2);
/// How long a connect may take before the port counts as dropping connections.
const CONNECT: Duration = Duration::from_secs(2);
/// Ports probed at once.
const PARALLEL: usize = 64;
/// Bytes of an answer kept as evidence.
const EVIDENCE_BYTES: usize = 160;
/// Bytes read of an answer at most.
const READ_CAP: usize = 16 * 1024;

/// What the IUT does with plain text on its TLS port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlainProbe {
    HttpRequest,
    LineBreak,
    Http2Preface,
}

impl PlainProbe {
    fn bytes(self, path: &str, host: &str) -> Vec<u8> {
        match self {
            PlainProbe::HttpRequest => format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
            PlainProbe::LineBreak => b"\r\n".to_vec(),
            PlainProbe::Http2Preface => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            PlainProbe::HttpRequest => "a plain HTTP/1.1 request",
            PlainProbe::LineBreak => "a bare line break",
            PlainProbe::Http2Preface => "an HTTP/2 preface (h2c)",
        }
    }
}

/// How a connection ended, and what came back before that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    Closed,
    Reset,
    /// Still open at the deadline.
    Silent,
}

/// Sends `payload` (may be empty) on `stream` and reads until the peer closes, `READ_CAP`
/// bytes, or `wait` passes.
async fn send_and_read(
    stream: &mut tokio::net::TcpStream,
    payload: &[u8],
    wait: Duration,
) -> (Vec<u8>, Ending) {
    if !payload.is_empty() {
        if let Err(e) = stream.write_all(payload).await {
            return (Vec::new(), io_ending(&e));
        }
    }
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (got, Ending::Silent),
            Ok(Ok(0)) => return (got, Ending::Closed),
            Ok(Ok(n)) => {
                got.extend_from_slice(buf.get(..n).unwrap_or_default());
                if got.len() >= READ_CAP {
                    return (got, Ending::Silent);
                }
            }
            Ok(Err(e)) => return (got, io_ending(&e)),
        }
    }
}

fn io_ending(e: &std::io::Error) -> Ending {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => Ending::Reset,
        _ => Ending::Closed,
    }
}

/// The first bytes, printable ASCII kept and the rest escaped.
pub(super) fn escaped(bytes: &[u8]) -> String {
    let cut = bytes.get(..EVIDENCE_BYTES).unwrap_or(bytes);
    let mut s: String = cut
        .iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if bytes.len() > cut.len() {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

/// Whether the plain-text answer is a refusal without protected data, and in what words.
fn judge_plain(
    probe: PlainProbe,
    got: &[u8],
    (ending, waited): (&Ending, Duration),
    protected: &[String],
) -> (bool, String) {
    if got.is_empty() {
        return match ending {
            Ending::Closed => (true, "closed the connection without answering".into()),
            Ending::Reset => (true, "reset the connection".into()),
            // A TLS server waits for the rest of a record two bytes cannot complete; an HTTP
            // request it can reject at its fifth byte.
            Ending::Silent if probe == PlainProbe::HttpRequest => (
                false,
                format!(
                    "no refusal: it held the connection {} without answering or closing",
                    humantime::format_duration(waited)
                ),
            ),
            Ending::Silent => (
                true,
                format!(
                    "no answer within {} (waiting for the rest of a TLS record), nothing served",
                    humantime::format_duration(waited)
                ),
            ),
        };
    }
    let text = String::from_utf8_lossy(got);
    if let Some(org) = protected.iter().find(|o| text.contains(o.as_str())) {
        return (
            false,
            format!("it served protected data in plain text (organisation {org} in the answer)"),
        );
    }
    if got.first() == Some(&0x15) && got.get(1) == Some(&0x03) {
        let alert = got.get(6).map_or_else(
            || "description not read".to_string(),
            |d| format!("{:?}", rustls::AlertDescription::from(*d)),
        );
        return (true, format!("a TLS alert ({alert})"));
    }
    if text.starts_with("HTTP/") {
        let status: Option<u16> = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        return match status {
            Some(s) if (400..500).contains(&s) => {
                let line = text.lines().next().unwrap_or_default();
                // nginx names the reason in the page's title.
                let title = text
                    .split_once("<title>")
                    .and_then(|(_, t)| t.split_once("</title>"))
                    .map(|(t, _)| format!(": {}", t.trim()))
                    .unwrap_or_default();
                (
                    true,
                    format!("an HTTP error page without protected data ({line}{title})"),
                )
            }
            Some(s) => (false, format!("it answered plain HTTP with status {s}")),
            None => (false, "it answered in plain HTTP".into()),
        };
    }
    // An HTTP/2 frame header: 3 length bytes, then the type (4: SETTINGS).
    if got.len() >= 9 && got.get(3) == Some(&0x04) {
        return (
            false,
            "it answered plain-text HTTP/2 (a SETTINGS frame)".into(),
        );
    }
    (
        false,
        "an answer that is neither a refusal nor a TLS alert".into(),
    )
}

/// Plain `probe` to `addr`; records the evidence and keeps the verdict in `w.probe`.
pub(super) async fn send_plain(
    w: &mut ProvstenWorld,
    addr: SocketAddr,
    server_name: &str,
    path: &str,
    which: &str,
) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let probe = match which {
        "an HTTP/1.1 request for protected data" | "plain HTTP" => PlainProbe::HttpRequest,
        "a bare line break" => PlainProbe::LineBreak,
        _ => PlainProbe::Http2Preface,
    };
    let payload = probe.bytes(path, server_name);
    // Silence to a whole request fails, so a loaded machine gets the request deadline;
    // silence to the odd bytes passes, so waiting longer would only slow the run.
    let wait = if probe == PlainProbe::HttpRequest {
        ctx.request_timeout.max(ANSWER)
    } else {
        ANSWER
    };
    let (got, ending) =
        match tokio::time::timeout(CONNECT, crate::peers::client::connect_tcp(addr, None)).await {
            Ok(Ok(mut stream)) => send_and_read(&mut stream, &payload, wait).await,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                (Vec::new(), Ending::Reset)
            }
            Ok(Err(e)) => return Err(e).with_context(|| format!("connecting to {addr}")),
            Err(_) => anyhow::bail!(
                "connecting to {addr}: no answer within {} s",
                CONNECT.as_secs()
            ),
        };
    let mut protected = ctx.registered_orgs.clone();
    protected.retain(|o| !o.is_empty());
    let (refused, how) = judge_plain(probe, &got, (&ending, wait), &protected);
    let v = json!({
        "plain_text_probe": probe.name(),
        "target": addr.to_string(),
        "sent": escaped(&payload),
        "answer_first_bytes": escaped(&got),
        "answer_bytes": got.len(),
        "ending": format!("{ending:?}").to_lowercase(),
        "refused": refused,
        "summary": how,
    });
    w.record(v.clone());
    w.probe = Some(v);
    w.probe_refused = Some(refused);
    Ok(())
}

#[when(
    regex = r"^a client sends (an HTTP/1\.1 request for protected data|a bare line break|an HTTP/2 preface) in plain text to the IUT's TLS port$"
)]
async fn plain_to_tls(w: &mut ProvstenWorld, which: String) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let org = ctx.registered_orgs.first().cloned().unwrap_or_default();
    let path = ctx.protected_path.replace("{org}", &org);
    send_plain(w, ctx.target.addr, &ctx.target.server_name, &path, &which).await
}

#[then("the plain-text request is refused without protected data")]
async fn plain_refused(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let probe = w.probe.clone().ok_or_else(|| {
        anyhow::anyhow!("no plain-text probe was sent before this step (hint: add `When a client sends a bare line break in plain text to the IUT's TLS port`)")
    })?;
    if w.probe_refused != Some(true) {
        fail!(
            "{} to {} was not refused: {}; the answer began: {}",
            probe["plain_text_probe"].as_str().unwrap_or("plain text"),
            probe["target"].as_str().unwrap_or("?"),
            probe["summary"].as_str().unwrap_or("?"),
            probe["answer_first_bytes"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

// ---- Only the declared ports answer ------------------------------------------------

/// What a port did with a connection from a client address.
#[derive(Debug, Clone, serde::Serialize)]
struct PortProbe {
    port: u16,
    /// Where the probe connected.
    target: String,
    /// The source address the probe came from ("default": the system's choice).
    from: String,
    /// Who listens there, when the sockets were listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<String>,
    reachable: bool,
    what: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    answer_first_bytes: String,
}

/// Connects from `source`, waits for the port to refuse (close or reset at once), then
/// sends an HTTP request and keeps what answered. Any connection the port keeps open
/// counts as reachable: a firewall does not let it through at all.
async fn probe_port(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> anyhow::Result<(bool, String, Vec<u8>)> {
    let stream = match tokio::time::timeout(
        CONNECT,
        crate::peers::client::connect_tcp(addr, source),
    )
    .await
    {
        Err(_) => {
            return Ok((
                false,
                format!(
                    "the connection was not completed within {} s (dropped)",
                    CONNECT.as_secs()
                ),
                Vec::new(),
            ))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            return Err(e)
                .with_context(|| format!("binding the client address {source:?} to probe {addr}"))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Ok((false, "connection refused".into(), Vec::new()))
        }
        Ok(Err(e)) if io_ending(&e) == Ending::Reset => {
            return Ok((false, "reset as it was accepted".into(), Vec::new()))
        }
        Ok(Err(e)) => return Ok((false, format!("connect failed: {e}"), Vec::new())),
        Ok(Ok(s)) => s,
    };
    let mut stream = stream;
    let (got, ending) = send_and_read(&mut stream, &[], HOLD).await;
    if !got.is_empty() {
        return Ok((
            true,
            "accepted the connection and sent a greeting".into(),
            got,
        ));
    }
    match ending {
        Ending::Closed => {
            return Ok((
                false,
                "accepted, then closed at once without answering".into(),
                got,
            ))
        }
        Ending::Reset => return Ok((false, "accepted, then reset at once".into(), got)),
        Ending::Silent => {}
    }
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (got, ending) = send_and_read(&mut stream, request.as_bytes(), ANSWER).await;
    if !got.is_empty() {
        return Ok((
            true,
            "accepted the connection and answered a request".into(),
            got,
        ));
    }
    match ending {
        // A refusal that came late (a loaded machine): nothing got through.
        Ending::Closed | Ending::Reset => Ok((
            false,
            format!(
                "accepted, then {} after more than {} s without answering",
                if ending == Ending::Reset {
                    "reset"
                } else {
                    "closed"
                },
                HOLD.as_secs()
            ),
            got,
        )),
        Ending::Silent => Ok((
            true,
            format!(
                "accepted the connection and kept it open {} s without answering",
                (HOLD + ANSWER).as_secs()
            ),
            got,
        )),
    }
}

/// Where a client reaches a listener at `local`, and from which source: IPv4 listeners
/// (any, a specific address, or v4-mapped) from the client address; IPv6 ones from ::1,
/// the only IPv6 loopback address.
fn reach(local: SocketAddr, client: IpAddr) -> (SocketAddr, Option<IpAddr>) {
    let port = local.port();
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            Some(client),
        ),
        IpAddr::V4(ip) if ip.is_loopback() => (SocketAddr::new(ip.into(), port), Some(client)),
        // Another of this machine's addresses: reached from the system's own source.
        IpAddr::V4(ip) => (SocketAddr::new(ip.into(), port), None),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) if v4.is_loopback() => (SocketAddr::new(v4.into(), port), Some(client)),
            Some(v4) => (SocketAddr::new(v4.into(), port), None),
            // A dual-stack `::` socket takes IPv4 clients too.
            None if ip.is_unspecified() => (
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
                Some(client),
            ),
            None if ip.is_loopback() => (SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port), None),
            None => (SocketAddr::new(ip.into(), port), None),
        },
    }
}

/// Finds the IUT's listening ports and probes each undeclared and harness-only one from
/// the client address. The outcome goes to `w.probe`.
#[when("the IUT's listening ports are found and probed from a client address")]
async fn find_ports(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let fw = firewall(&ctx)
        .map_err(ProvstenWorld::not_applicable)?
        .clone();
    let client = fw.client_address;
    // (port, where to connect, source, who listens)
    let mut to_probe: Vec<(u16, SocketAddr, Option<IpAddr>, Option<String>)> = Vec::new();
    let mut listening_ports: Vec<String> = Vec::new();
    let mut not_probed: Vec<String> = Vec::new();
    let how;
    match (listing_possible(&ctx), fw.scan) {
        (true, _) => {
            let restarter = ctx
                .restarter
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("no IUT process"))?;
            restarter.wait_if_restarting().await;
            let pgid = restarter.process_group().await.ok_or_else(|| {
                anyhow::anyhow!("the IUT is not running: its sockets cannot be listed")
            })?;
            let found = sockets::listening(pgid).with_context(|| {
                format!("listing the sockets of the IUT's process group {pgid}")
            })?;
            // The API must be among them, or the IUT's listeners live elsewhere (in a
            // container, behind a proxy process) and a clean list would prove nothing.
            let api_port = ctx.target.addr.port();
            if ctx.target.addr.ip().is_loopback()
                && !found.iter().any(|l| l.addr.port() == api_port)
            {
                return Err(ProvstenWorld::not_applicable(format!(
                    "the IUT's process group {pgid} holds no listening socket on its API port {api_port} (its listeners are in another process, e.g. a container): declare firewall.scan = \"ADDRESS:FIRST-LAST\" to scan instead"
                )));
            }
            how = format!("the listening sockets of the IUT's process group {pgid} (/proc)");
            let mut seen = std::collections::BTreeSet::new();
            for l in &found {
                listening_ports.push(format!("{} ({} pid {})", l.addr, l.process, l.pid));
                if fw.ports.contains(&l.addr.port()) {
                    continue;
                }
                let (target, source) = reach(l.addr, client);
                // Without a client address of its own (IPv6 loopback is one address, the
                // harness's) a harness-only port cannot be judged: said, not probed.
                if source.is_none() && fw.harness_ports.contains(&l.addr.port()) {
                    not_probed.push(format!(
                        "{} ({} pid {}): a harness-only port on an address no client address can reach it from here",
                        l.addr, l.process, l.pid
                    ));
                    continue;
                }
                if seen.insert((target, source)) {
                    to_probe.push((
                        l.addr.port(),
                        target,
                        source,
                        Some(format!("{} ({} pid {})", l.addr, l.process, l.pid)),
                    ));
                }
            }
            // A declared harness-only port not listening refuses everyone: nothing to probe.
        }
        (false, Some(scan)) => {
            how = format!("a connect scan of {scan}");
            let own = own_listeners();
            for port in scan.first..=scan.last {
                if fw.ports.contains(&port) || own.contains(&port) {
                    continue;
                }
                let (target, source) = reach(SocketAddr::new(scan.ip, port), client);
                to_probe.push((port, target, source, None));
            }
        }
        (false, None) => {
            return Err(ProvstenWorld::not_applicable(scan_needed(&ctx)));
        }
    }
    let probes: Vec<anyhow::Result<PortProbe>> = futures::stream::iter(to_probe)
        .map(|(port, target, source, listener)| async move {
            let (reachable, what, got) = probe_port(target, source).await?;
            Ok(PortProbe {
                port,
                target: target.to_string(),
                from: source.map_or("default".to_string(), |s| s.to_string()),
                listener,
                reachable,
                what,
                answer_first_bytes: escaped(&got),
            })
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut probes = probes.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    probes.sort_by_key(|p| (p.port, p.target.clone()));
    // A scan reports only what answered; refused ports are the rest of the range.
    let shown: Vec<&PortProbe> = probes
        .iter()
        .filter(|p| p.listener.is_some() || p.reachable)
        .collect();
    let v = json!({
        "found_by": how,
        "client_address": client.to_string(),
        "client_address_from": fw.client_address_why,
        "declared_ports": fw.ports,
        "harness_ports": fw.harness_ports,
        "listening": listening_ports,
        "probed": probes.len(),
        "not_probed": not_probed,
        "probes": shown,
    });
    w.record(v.clone());
    w.probe = Some(v);
    Ok(())
}

fn probes_of(w: &ProvstenWorld) -> anyhow::Result<Vec<PortProbe>> {
    let v = w.probe.as_ref().and_then(|p| p.get("probes")).ok_or_else(|| {
        anyhow::anyhow!("no port was probed before this step (hint: add `When the IUT's listening ports are found and probed from a client address`)")
    })?;
    let list = v.as_array().cloned().unwrap_or_default();
    Ok(list
        .into_iter()
        .filter_map(|p| {
            Some(PortProbe {
                port: u16::try_from(p["port"].as_u64()?).ok()?,
                target: p["target"].as_str()?.to_string(),
                from: p["from"].as_str()?.to_string(),
                listener: p["listener"].as_str().map(str::to_string),
                reachable: p["reachable"].as_bool()?,
                what: p["what"].as_str()?.to_string(),
                answer_first_bytes: p["answer_first_bytes"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect())
}

fn describe(p: &PortProbe) -> String {
    let who = p
        .listener
        .as_deref()
        .map(|l| format!(", listener {l}"))
        .unwrap_or_default();
    let answer = if p.answer_first_bytes.is_empty() {
        String::new()
    } else {
        format!(": {}", p.answer_first_bytes)
    };
    format!(
        "port {} ({} from {}{who}) {}{answer}",
        p.port, p.target, p.from, p.what
    )
}

#[then("every port answering a client address is declared for clients")]
async fn only_declared(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let fw = firewall(&ctx)
        .map_err(ProvstenWorld::not_applicable)?
        .clone();
    let open: Vec<String> = probes_of(w)?
        .iter()
        .filter(|p| p.reachable && !fw.harness_ports.contains(&p.port))
        .map(describe)
        .collect();
    if !open.is_empty() {
        w.record(json!({"undeclared_ports_reachable": open}));
        fail!(
            "ports not declared in [firewall] ports answer a client address: {}",
            open.join("; ")
        );
    }
    Ok(())
}

#[then("the harness-only ports refuse client addresses")]
async fn harness_ports_refuse(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let ctx = w.ctx()?;
    let fw = firewall(&ctx)
        .map_err(ProvstenWorld::not_applicable)?
        .clone();
    let probes = probes_of(w)?;
    let open: Vec<String> = probes
        .iter()
        .filter(|p| p.reachable && fw.harness_ports.contains(&p.port))
        .map(describe)
        .collect();
    if !open.is_empty() {
        w.record(json!({"harness_ports_reachable": open}));
        fail!(
            "a harness-only port (firewall.harness_ports) answers a client address: {}",
            open.join("; ")
        );
    }
    let checked: Vec<String> = probes
        .iter()
        .filter(|p| fw.harness_ports.contains(&p.port))
        .map(describe)
        .collect();
    w.record(json!({"harness_ports_refused": checked}));
    Ok(())
}

fn firewall(ctx: &RunContext) -> Result<&FirewallContext, String> {
    ctx.firewall.as_ref().ok_or_else(|| {
        "the IUT config declares no [firewall] (the ports it may expose)".to_string()
    })
}

/// provsten started the IUT and can read its sockets.
fn listing_possible(ctx: &RunContext) -> bool {
    ctx.restarter.is_some() && sockets::supported()
}

fn scan_needed(ctx: &RunContext) -> String {
    if ctx.restarter.is_none() {
        "provsten did not start the IUT, so it cannot list its sockets: declare firewall.scan = \"ADDRESS:FIRST-LAST\" (a range only the IUT listens in)".into()
    } else {
        "this platform cannot list a process's sockets (no /proc): declare firewall.scan = \"ADDRESS:FIRST-LAST\"".into()
    }
}

/// The harness's own listening ports (this process's: the fault proxy, simulated
/// receivers, the CRL server), kept out of a scan.
fn own_listeners() -> std::collections::BTreeSet<u16> {
    if !sockets::supported() {
        return Default::default();
    }
    sockets::own_listening()
        .map(|l| l.into_iter().map(|s| s.addr.port()).collect())
        .unwrap_or_default()
}

/// What `the IUT's listening ports` needs: `[firewall]`, and sockets provsten can list or
/// a declared scan (`super::NEEDS`).
pub(super) fn need_ports(ctx: &RunContext, _step: &str) -> Result<(), String> {
    let fw = firewall(ctx)?;
    if listing_possible(ctx) || fw.scan.is_some() {
        Ok(())
    } else {
        Err(scan_needed(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(probe: PlainProbe, got: &[u8], ending: Ending) -> (bool, String) {
        judge_plain(probe, got, (&ending, ANSWER), &["5560000001".to_string()])
    }

    #[test]
    fn nginx_400_page_alert_close_and_reset_are_refusals() {
        let nginx = b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head></html>";
        let (refused, how) = judge(PlainProbe::HttpRequest, nginx, Ending::Closed);
        assert!(refused, "{how}");
        assert!(
            how.contains("The plain HTTP request was sent to HTTPS port"),
            "{how}"
        );
        assert!(
            judge(
                PlainProbe::HttpRequest,
                &[0x15, 3, 3, 0, 2, 2, 10],
                Ending::Closed
            )
            .0
        );
        assert!(judge(PlainProbe::HttpRequest, b"", Ending::Closed).0);
        assert!(judge(PlainProbe::HttpRequest, b"", Ending::Reset).0);
        assert!(judge(PlainProbe::LineBreak, b"", Ending::Silent).0);
    }

    #[test]
    fn served_data_success_h2_and_silence_to_a_request_are_not() {
        let ok = b"HTTP/1.1 200 OK\r\n\r\n{\"organisation\":\"5560000001\"}";
        assert!(!judge(PlainProbe::HttpRequest, ok, Ending::Closed).0);
        let redirect = b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n";
        assert!(!judge(PlainProbe::HttpRequest, redirect, Ending::Closed).0);
        let leak403 = b"HTTP/1.1 403 Forbidden\r\n\r\n5560000001";
        assert!(!judge(PlainProbe::HttpRequest, leak403, Ending::Closed).0);
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        assert!(!judge(PlainProbe::Http2Preface, &settings, Ending::Silent).0);
        assert!(!judge(PlainProbe::HttpRequest, b"", Ending::Silent).0);
    }

    #[test]
    fn listeners_are_reached_from_the_client_address_where_ipv4_can_be() {
        let client: IpAddr = "127.0.0.9".parse().unwrap();
        let r = |s: &str| reach(s.parse().unwrap(), client);
        assert_eq!(
            r("0.0.0.0:80"),
            ("127.0.0.1:80".parse().unwrap(), Some(client))
        );
        assert_eq!(
            r("[::ffff:127.0.0.1]:80"),
            ("127.0.0.1:80".parse().unwrap(), Some(client))
        );
        assert_eq!(
            r("[::]:80"),
            ("127.0.0.1:80".parse().unwrap(), Some(client))
        );
        assert_eq!(r("[::1]:80"), ("[::1]:80".parse().unwrap(), None));
        assert_eq!(r("10.1.2.3:80"), ("10.1.2.3:80".parse().unwrap(), None));
    }
}
