//! A simulated API client: connects (optionally from a chosen source address), presents a
//! catalogue certificate, sends one HTTP/1.1 request and records exactly how it ended.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::ClientConfig;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use super::danger::{signing_key, AcceptAnyServerCert, PresentAlways};
use super::refusal::{Refusal, Stage};
use crate::pki::generate::sha256_hex;

/// Largest response body kept as evidence.
const BODY_CAP: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    /// Name for SNI and certificate verification (`*.localhost` does not resolve everywhere,
    /// so the address and the name are configured separately).
    pub server_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum TlsVersions {
    Any,
    Tls12Only,
    Tls13Only,
}

#[derive(Debug, Clone)]
pub(crate) enum ServerCheck {
    /// Record the server certificate but do not judge it.
    AcceptAny,
    /// Verify the server against these roots and the target's server name.
    Verify(Vec<CertificateDer<'static>>),
}

#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// Catalogue name, for evidence.
    pub name: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    /// Catalogue certificate `name` (chain and key) from a generated PKI.
    pub(crate) fn from_pki(pki: &crate::pki::Pki, name: &str) -> anyhow::Result<Identity> {
        let (chain, key) = pki.identity(name)?;
        Ok(Identity {
            name: name.to_string(),
            chain,
            key: Arc::new(key),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ClientSpec {
    pub identity: Option<Identity>,
    pub versions: TlsVersions,
    pub server_check: ServerCheck,
    pub source: Option<IpAddr>,
    pub deadline: Duration,
    /// Extra request headers (e.g. a forged `X-Forwarded-For`).
    pub headers: Vec<(String, String)>,
    /// Bytes sent before the TLS handshake (e.g. a PROXY protocol header).
    pub preamble: Option<Vec<u8>>,
    /// A request body and its Content-Type (`None`: no Content-Type header at all).
    pub body: Option<(Option<String>, Vec<u8>)>,
}

impl ClientSpec {
    /// A client with `identity` that accepts any server certificate, any TLS version.
    pub(crate) fn new(identity: Option<Identity>, deadline: Duration) -> Self {
        ClientSpec {
            identity,
            versions: TlsVersions::Any,
            server_check: ServerCheck::AcceptAny,
            source: None,
            deadline,
            headers: Vec::new(),
            preamble: None,
            body: None,
        }
    }
}

/// What one request observed: evidence as data.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Exchange {
    pub target: String,
    pub server_name: String,
    pub client_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    pub request: String,
    pub tls_version: Option<String>,
    pub cipher_suite: Option<String>,
    pub server_certificate_sha256: Option<String>,
    pub outcome: Outcome,
    /// Response headers (names lower-case), when there was a response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub(crate) enum Outcome {
    /// The server answered at HTTP level.
    Response {
        status: u16,
        body: String,
    },
    Refused {
        refusal: Refusal,
    },
}

impl Exchange {
    pub(crate) fn status(&self) -> Option<u16> {
        match &self.outcome {
            Outcome::Response { status, .. } => Some(*status),
            Outcome::Refused { .. } => None,
        }
    }

    /// Protected data came back: any 2xx answer.
    pub(crate) fn granted(&self) -> bool {
        matches!(self.status(), Some(200..=299))
    }

    /// A response header by lower-case name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn body(&self) -> &str {
        match &self.outcome {
            Outcome::Response { body, .. } => body,
            Outcome::Refused { .. } => "",
        }
    }

    pub(crate) fn describe(&self) -> String {
        let who = self
            .client_certificate
            .as_deref()
            .unwrap_or("no certificate");
        match &self.outcome {
            Outcome::Response { status, .. } => format!("{who}: {} → HTTP {status}", self.request),
            Outcome::Refused { refusal } => {
                format!("{who}: {} → {}", self.request, refusal.describe())
            }
        }
    }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(spec: &ClientSpec) -> anyhow::Result<ClientConfig> {
    let provider = provider();
    let versions: &[&'static rustls::SupportedProtocolVersion] = match spec.versions {
        TlsVersions::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersions::Tls12Only => &[&rustls::version::TLS12],
        TlsVersions::Tls13Only => &[&rustls::version::TLS13],
    };
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match &spec.server_check {
        ServerCheck::AcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(provider.clone()))),
        ServerCheck::Verify(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for r in roots {
                store.add(r.clone())?;
            }
            builder.with_root_certificates(store)
        }
    };
    let mut config = match &spec.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let key = signing_key(&provider, id.key.as_ref().clone_key())?;
            let ck = CertifiedKey::new(id.chain.clone(), key);
            builder.with_client_cert_resolver(Arc::new(PresentAlways(Arc::new(ck))))
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Connects to `target` from `source` (any loopback address works on Linux without setup).
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = source {
        socket.bind(SocketAddr::new(src, 0))?;
    }
    socket.connect(addr).await
}

/// Sends `method path` and classifies the result. Only harness-side setup errors (bad key,
/// bad server name) are `Err`; everything the server does is in the `Exchange`.
pub(crate) async fn request(
    target: &Target,
    spec: &ClientSpec,
    method: &str,
    path: &str,
) -> anyhow::Result<Exchange> {
    let config = client_config(spec)?;
    let server_name = ServerName::try_from(target.server_name.clone())
        .map_err(|_| anyhow::anyhow!("{:?} is not a valid TLS server name", target.server_name))?;
    let start = Instant::now();
    let mut ex = Exchange {
        target: target.addr.to_string(),
        server_name: target.server_name.clone(),
        client_certificate: spec.identity.as_ref().map(|i| i.name.clone()),
        source_address: spec.source.map(|s| s.to_string()),
        request: format!("{method} {path}"),
        tls_version: None,
        cipher_suite: None,
        server_certificate_sha256: None,
        response_headers: Vec::new(),
        outcome: Outcome::Refused {
            refusal: Refusal::Closed {
                stage: Stage::Connect,
            },
        },
        elapsed_ms: 0,
    };
    let deadline = tokio::time::Instant::now() + spec.deadline;
    let result = tokio::time::timeout_at(
        deadline,
        exchange(target, spec, config, server_name, method, path, &mut ex),
    )
    .await;
    ex.outcome = match result {
        Ok(o) => o,
        Err(_) => Outcome::Refused {
            refusal: Refusal::Timeout {
                stage: if ex.tls_version.is_some() {
                    Stage::FirstRead
                } else {
                    Stage::Handshake
                },
                after_ms: spec.deadline.as_millis() as u64,
            },
        },
    };
    ex.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(ex)
}

async fn exchange(
    target: &Target,
    spec: &ClientSpec,
    config: ClientConfig,
    server_name: ServerName<'static>,
    method: &str,
    path: &str,
    ex: &mut Exchange,
) -> Outcome {
    let mut tcp = match connect_tcp(target.addr, spec.source).await {
        Ok(s) => s,
        Err(e) => return refused(Refusal::from_io(&e, Stage::Connect)),
    };
    if let Some(pre) = &spec.preamble {
        if let Err(e) = tcp.write_all(pre).await {
            return refused(Refusal::from_io(&e, Stage::Handshake));
        }
    }
    let connector = TlsConnector::from(Arc::new(config));
    let mut tls = match connector.connect(server_name, tcp).await {
        Ok(t) => t,
        Err(e) => return refused(Refusal::from_io(&e, Stage::Handshake)),
    };
    {
        let conn = tls.get_ref().1;
        ex.tls_version = conn.protocol_version().map(|v| format!("{v:?}"));
        ex.cipher_suite = conn
            .negotiated_cipher_suite()
            .map(|s| iana_suite_name(&format!("{:?}", s.suite())));
        ex.server_certificate_sha256 = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| sha256_hex(c));
    }
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: provsten/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        ex.server_name,
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in &spec.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut bytes = Vec::new();
    if let Some((content_type, body)) = &spec.body {
        if let Some(ct) = content_type {
            req.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        bytes.extend_from_slice(req.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body);
    } else {
        req.push_str("\r\n");
        bytes.extend_from_slice(req.as_bytes());
    }
    if let Err(e) = tls.write_all(&bytes).await {
        return refused(Refusal::from_io(&e, Stage::FirstRead));
    }
    let _ = tls.flush().await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if response_complete(&buf) || buf.len() > BODY_CAP * 2 {
                    break;
                }
            }
            Err(e) => {
                // A response that arrived complete before the error still counts.
                if parse_response(&buf).is_some() {
                    break;
                }
                return refused(Refusal::from_io(&e, Stage::FirstRead));
            }
        }
    }
    if let Some(h) = parse_head(&buf) {
        ex.response_headers = h.headers;
    }
    match parse_response(&buf) {
        Some((status, body)) => Outcome::Response { status, body },
        None if buf.is_empty() => refused(Refusal::Closed {
            stage: Stage::FirstRead,
        }),
        None => refused(Refusal::ProtocolError {
            error: format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(80)])
            ),
            stage: Stage::FirstRead,
        }),
    }
}

fn refused(r: Refusal) -> Outcome {
    Outcome::Refused { refusal: r }
}

struct Head {
    status: u16,
    body_start: usize,
    content_length: Option<usize>,
    chunked: bool,
    headers: Vec<(String, String)>,
}

fn parse_head(buf: &[u8]) -> Option<Head> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let mut content_length = None;
    let mut chunked = false;
    let mut headers = Vec::new();
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        headers.push((k.clone(), v.to_string()));
        if k == "content-length" {
            content_length = v.parse().ok();
        } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    Some(Head {
        status,
        body_start: end + 4,
        content_length,
        chunked,
        headers,
    })
}

fn response_complete(buf: &[u8]) -> bool {
    match parse_head(buf) {
        Some(h) if h.chunked => buf.ends_with(b"0\r\n\r\n"),
        Some(h) => h
            .content_length
            .is_some_and(|n| buf.len() >= h.body_start + n),
        None => false,
    }
}

/// Status and body (de-chunked, lossy UTF-8, capped) of a raw HTTP/1.x response.
fn parse_response(buf: &[u8]) -> Option<(u16, String)> {
    let h = parse_head(buf)?;
    let raw = &buf[h.body_start..];
    let body = if h.chunked {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    let body = match h.content_length {
        Some(n) if !h.chunked => body[..n.min(body.len())].to_vec(),
        _ => body,
    };
    Some((
        h.status,
        String::from_utf8_lossy(&body[..body.len().min(BODY_CAP)]).into_owned(),
    ))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..i]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        raw = &raw[i + 2..];
        if size == 0 || raw.len() < size {
            out.extend_from_slice(&raw[..size.min(raw.len())]);
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// A cipher suite by its IANA name: rustls writes TLS 1.3 suites as `TLS13_AES_128_GCM_SHA256`,
/// the registry as `TLS_AES_128_GCM_SHA256`; TLS 1.2 names are the registry's already.
fn iana_suite_name(rustls_name: &str) -> String {
    match rustls_name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => rustls_name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_are_named_as_the_iana_registry_names_them() {
        assert_eq!(
            iana_suite_name("TLS13_AES_256_GCM_SHA384"),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            iana_suite_name("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
        );
    }

    #[test]
    fn content_length_and_chunked_responses_parse() {
        let r = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!extra";
        assert_eq!(parse_response(r), Some((403, "nope!".into())));
        assert!(response_complete(r));
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(c), Some((200, "abcde".into())));
        assert!(response_complete(c));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"
        ));
    }

    #[test]
    fn garbage_is_not_a_response() {
        assert_eq!(parse_response(b"\x15\x03\x03\x00\x02\x02\x28"), None);
        assert_eq!(parse_response(b"HTTP/1.1 abc\r\n\r\n"), None);
    }
}
