//! A hand-built TLS ClientHello probe for EB-TLS-1 ("only TLS 1.2 or later is
//! accepted; weak cipher suites refused").
//!
//! rustls cannot offer TLS 1.0/1.1 or weak suites, so it cannot show that a server
//! *refuses* them. This module writes one ClientHello record by hand and classifies
//! the first thing the server answers: a ServerHello means the server agreed to
//! the offer (non-compliant), an alert or a closed connection means it refused.
//! Nothing past the ServerHello is parsed: no key exchange is ever completed.
//!
//! A server can only choose a suite its certificate authenticates, so weak suites are
//! examined once per key type ([`examine_weak_suites`]): a refusal counts only when a
//! strong offer for the same key type is accepted, and otherwise is reported as not
//! examinable.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Protocol version offered in a hand-built ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ProbeVersion {
    /// TLS 1.0 (RFC 2246).
    #[serde(rename = "TLS 1.0")]
    Tls10,
    /// TLS 1.1 (RFC 4346).
    #[serde(rename = "TLS 1.1")]
    Tls11,
    /// TLS 1.2 (RFC 5246).
    #[serde(rename = "TLS 1.2")]
    Tls12,
}

impl ProbeVersion {
    /// The name used in evidence, matching [`ProbeOutcome::ServerHello`]'s `version`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls10 => "TLS 1.0",
            Self::Tls11 => "TLS 1.1",
            Self::Tls12 => "TLS 1.2",
        }
    }

    /// The `ProtocolVersion` code point on the wire.
    pub fn wire(self) -> u16 {
        match self {
            Self::Tls10 => 0x0301,
            Self::Tls11 => 0x0302,
            Self::Tls12 => 0x0303,
        }
    }
}

impl fmt::Display for ProbeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one probe offers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeSpec {
    /// The only version offered: no `supported_versions` extension is sent.
    pub version: ProbeVersion,
    /// IANA cipher suite numbers, in preference order.
    pub cipher_suites: Vec<u16>,
    /// Sent as SNI unless it is an IP address (RFC 6066 §3 forbids literal IPs).
    pub server_name: Option<String>,
    /// The `signature_algorithms` extension (TLS 1.2 only; code points). Offering only
    /// one key type's schemes makes a server with two certificates present that one.
    pub signature_schemes: Vec<u16>,
}

impl ProbeSpec {
    /// Offers only `version`, with every suite a server of that version might pick,
    /// so a refusal can only be about the version.
    pub fn legacy(version: ProbeVersion, server_name: Option<String>) -> Self {
        let cipher_suites = match version {
            ProbeVersion::Tls10 | ProbeVersion::Tls11 => suites::LEGACY_CBC.to_vec(),
            ProbeVersion::Tls12 => [suites::TLS12_MODERN, suites::LEGACY_CBC].concat(),
        };
        Self {
            version,
            cipher_suites,
            server_name,
            signature_schemes: SIGNATURE_SCHEMES.to_vec(),
        }
    }

    /// TLS 1.2 offering only weak suites ([`suites::WEAK`]), so any ServerHello means a
    /// weak suite was chosen.
    ///
    /// Plain-RSA suites are included because they lack forward secrecy; note that
    /// OpenSSL 3.0's default cipher list still enables them.
    pub fn weak_suites(server_name: Option<String>) -> Self {
        Self {
            version: ProbeVersion::Tls12,
            cipher_suites: suites::WEAK.to_vec(),
            server_name,
            signature_schemes: SIGNATURE_SCHEMES.to_vec(),
        }
    }

    /// TLS 1.2 offering the weak suites a server with a `key` certificate could choose,
    /// plus the anonymous ones (which need no certificate), with only `key`'s signature
    /// schemes: a server with an RSA and an ECDSA certificate is examined with each.
    pub fn weak_suites_for(key: ServerKey, server_name: Option<String>) -> Self {
        let cipher_suites = suites::WEAK
            .iter()
            .copied()
            .filter(|&s| {
                matches!(
                    suites::authentication(s),
                    Some(a) if a == key.authentication() || a == suites::Authentication::Anonymous
                )
            })
            .collect();
        Self {
            version: ProbeVersion::Tls12,
            cipher_suites,
            server_name,
            signature_schemes: key.signature_schemes().to_vec(),
        }
    }

    /// The control for [`ProbeSpec::weak_suites_for`]: TLS 1.2 with only strong,
    /// `key`-authenticated suites. A server that refuses this too has no usable `key`
    /// certificate, so its refusal of the weak offer says nothing about weak suites.
    pub fn strong_suites_for(key: ServerKey, server_name: Option<String>) -> Self {
        Self {
            version: ProbeVersion::Tls12,
            cipher_suites: match key {
                ServerKey::Rsa => suites::STRONG_RSA.to_vec(),
                ServerKey::Ecdsa => suites::STRONG_ECDSA.to_vec(),
            },
            server_name,
            signature_schemes: key.signature_schemes().to_vec(),
        }
    }

    /// The offered suites as `NAME (0xNNNN)`, for evidence.
    pub fn offered_names(&self) -> Vec<String> {
        self.cipher_suites
            .iter()
            .map(|&s| suites::label(s))
            .collect()
    }
}

/// The key type of a server certificate, which decides the suites it can authenticate
/// in TLS 1.2 (`TLS_RSA_*`/`*_RSA_*` need RSA, `*_ECDSA_*` need ECDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ServerKey {
    /// RSA certificate.
    #[serde(rename = "RSA")]
    Rsa,
    /// ECDSA certificate.
    #[serde(rename = "ECDSA")]
    Ecdsa,
}

impl ServerKey {
    /// Both, RSA first: the weak suites of OpenSSL's default list are RSA-authenticated.
    pub const ALL: [ServerKey; 2] = [ServerKey::Rsa, ServerKey::Ecdsa];

    /// `RSA` or `ECDSA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::Ecdsa => "ECDSA",
        }
    }

    fn authentication(self) -> suites::Authentication {
        match self {
            Self::Rsa => suites::Authentication::Rsa,
            Self::Ecdsa => suites::Authentication::Ecdsa,
        }
    }

    fn signature_schemes(self) -> &'static [u16] {
        match self {
            Self::Rsa => &RSA_SIGNATURE_SCHEMES,
            Self::Ecdsa => &ECDSA_SIGNATURE_SCHEMES,
        }
    }
}

/// How the server answered one ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ProbeOutcome {
    /// The server answered with a ServerHello: it accepted. `version` is the
    /// negotiated version (from supported_versions ext if present, else
    /// legacy_version) and can be lower than offered: a TLS 1.1 server answers a
    /// TLS 1.2 hello with TLS 1.1. `cipher_suite` is its IANA number,
    /// `cipher_suite_name` a name if known.
    ServerHello {
        /// E.g. `TLS 1.1`; unknown code points as `unknown(0x0305)`.
        version: String,
        /// IANA number of the chosen suite.
        cipher_suite: u16,
        /// IANA name, e.g. `TLS_RSA_WITH_AES_128_CBC_SHA`.
        cipher_suite_name: Option<String>,
    },
    /// The server sent a TLS alert.
    Alert {
        /// `fatal`, `warning`, or `unknown(N)`.
        level: String,
        /// RFC 8446 snake_case name (`protocol_version`, `handshake_failure`, …);
        /// unknown ones as `unknown(N)`.
        description: String,
    },
    /// Connection closed (EOF) without any TLS record.
    Closed,
    /// Connection reset by peer.
    Reset,
    /// Connect refused.
    Refused,
    /// No answer within the deadline.
    Timeout {
        /// The deadline that passed.
        after_ms: u64,
    },
    /// The server sent bytes that are not a TLS record (e.g. an HTTP response:
    /// plain HTTP server on the port), or TLS records that cannot start a
    /// handshake answer (a malformed ServerHello, application data first).
    NotTls {
        /// At most 64 bytes, non-printable ones shown as `.`.
        first_bytes: String,
    },
    /// A socket error other than a reset ended the exchange (e.g. an ICMP
    /// unreachable on an established connection). Kept apart from `Reset` so that
    /// evidence never claims the peer refused when the network failed.
    SocketError {
        /// `std::io::ErrorKind` as text.
        kind: String,
        /// The OS error message.
        message: String,
    },
}

impl ProbeOutcome {
    /// True only for ServerHello (the server agreed to speak the offered
    /// version/suites).
    pub fn accepted(&self) -> bool {
        matches!(self, Self::ServerHello { .. })
    }

    fn not_tls(bytes: &[u8]) -> Self {
        let first_bytes = bytes
            .iter()
            .take(64)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect();
        Self::NotTls { first_bytes }
    }

    fn from_io_error(error: &io::Error, deadline: Duration) -> Self {
        match error.kind() {
            // EPIPE on our only write means the peer's RST already arrived.
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Reset,
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::UnexpectedEof => Self::Closed,
            io::ErrorKind::TimedOut => Self::Timeout {
                after_ms: millis(deadline),
            },
            kind => Self::SocketError {
                kind: format!("{kind:?}"),
                message: error.to_string(),
            },
        }
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerHello {
                version,
                cipher_suite,
                cipher_suite_name,
            } => {
                write!(f, "ServerHello: {version}, ")?;
                match cipher_suite_name {
                    Some(name) => write!(f, "{name} (0x{cipher_suite:04x})"),
                    None => write!(f, "cipher suite 0x{cipher_suite:04x}"),
                }
            }
            Self::Alert { level, description } => write!(f, "{level} alert {description}"),
            Self::Closed => f.write_str("connection closed without a TLS record"),
            Self::Reset => f.write_str("connection reset by peer"),
            Self::Refused => f.write_str("TCP connection refused (nothing listens there)"),
            Self::Timeout { after_ms } => write!(f, "no answer within {after_ms} ms"),
            Self::NotTls { first_bytes } => write!(f, "not a TLS answer: {first_bytes:?}"),
            Self::SocketError { kind, message } => write!(f, "socket error {kind}: {message}"),
        }
    }
}

/// Connects (TCP, tokio) to `addr`, sends the ClientHello for `spec`, reads until it
/// can classify the first server record. Every wait is under `deadline`, which
/// covers the whole exchange, connect included.
///
/// # Errors
///
/// Only connect failures other than refusal (unreachable network, no route):
/// there is no server to judge, so they are not an outcome.
pub async fn probe(
    addr: SocketAddr,
    spec: &ProbeSpec,
    deadline: Duration,
) -> io::Result<ProbeOutcome> {
    let until = Instant::now() + deadline;
    let stream = match timeout_at(until, TcpStream::connect(addr)).await {
        Err(_elapsed) => {
            return Ok(ProbeOutcome::Timeout {
                after_ms: millis(deadline),
            })
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Ok(ProbeOutcome::Refused)
        }
        Ok(Err(e)) => return Err(e),
        Ok(Ok(stream)) => stream,
    };
    Ok(exchange(stream, spec, until, deadline).await)
}

/// Same as [`probe`] over an already-connected stream, so callers can bind a
/// source address first.
pub async fn probe_stream(stream: TcpStream, spec: &ProbeSpec, deadline: Duration) -> ProbeOutcome {
    exchange(stream, spec, Instant::now() + deadline, deadline).await
}

/// At most this many weak suites are collected per key type: enough to show a
/// pattern, few enough that a server accepting everything is examined quickly.
const MAX_ACCEPTED_PER_KEY: usize = 12;

/// What the weak-suite examination found for one server key type.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WeakSuiteClass {
    /// The certificate key type the offers were made for.
    pub key: ServerKey,
    /// The first weak offer (the suites, as `NAME (0xNNNN)`, and signature schemes).
    pub offered: Vec<String>,
    /// Each weak suite the server chose. After each choice the offer is repeated
    /// without it, so this lists what the server accepts.
    pub accepted: Vec<AcceptedSuite>,
    /// How the server answered the last weak offer (a refusal, when `accepted` is
    /// complete), e.g. `fatal alert handshake_failure`.
    pub answer: ProbeOutcome,
    /// The strong-suite control, sent when the weak offer was refused outright: if it
    /// is refused too, the server has no certificate of this key type.
    pub control: Option<ProbeOutcome>,
}

/// A weak suite a server chose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AcceptedSuite {
    /// `NAME (0xNNNN)`.
    pub suite: String,
    /// Why EB-TLS-1 calls it weak ([`suites::weakness`]).
    pub weakness: String,
}

impl fmt::Display for AcceptedSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.suite, self.weakness)
    }
}

impl WeakSuiteClass {
    /// Whether the refusal of the weak offer is evidence: the server accepted a
    /// weak suite, or showed it can use this key type by accepting the control.
    pub fn examined(&self) -> bool {
        !self.accepted.is_empty() || self.control.as_ref().is_some_and(ProbeOutcome::accepted)
    }

    /// Why nothing could be learnt about this key type's suites, if so.
    pub fn not_examinable(&self) -> Option<String> {
        if self.examined() {
            return None;
        }
        let key = self.key.as_str();
        let control = self
            .control
            .as_ref()
            .map_or_else(|| "not sent".to_owned(), ToString::to_string);
        Some(format!(
            "{key}-authenticated suites: the server offered no {key} certificate (a TLS 1.2 hello with only strong {key}-authenticated suites and {key} signature algorithms was refused too: {control}); only the anonymous suites were examined"
        ))
    }
}

/// Offers, for each [`ServerKey`], the weak suites a server with that certificate
/// could choose ([`ProbeSpec::weak_suites_for`]), and keeps offering the rest after
/// each one the server picks; when the weak offer is refused outright, sends the
/// strong control ([`ProbeSpec::strong_suites_for`]) to tell "refused weak suites"
/// from "has no such certificate". `connect` opens one TCP connection per hello;
/// each exchange, connect included, has `deadline`.
///
/// # Errors
///
/// Connect failures other than refusal (no route): there is no server to judge.
pub async fn examine_weak_suites<C, F>(
    mut connect: C,
    server_name: Option<String>,
    deadline: Duration,
) -> io::Result<Vec<WeakSuiteClass>>
where
    C: FnMut() -> F,
    F: std::future::Future<Output = io::Result<TcpStream>>,
{
    let mut classes = Vec::new();
    for key in ServerKey::ALL {
        let mut spec = ProbeSpec::weak_suites_for(key, server_name.clone());
        let offered = spec.offered_names();
        let mut accepted = Vec::new();
        let answer = loop {
            let answer = connect_and_exchange(&mut connect, &spec, deadline).await?;
            let ProbeOutcome::ServerHello { cipher_suite, .. } = &answer else {
                break answer;
            };
            let chosen = *cipher_suite;
            accepted.push(AcceptedSuite {
                suite: suites::label(chosen),
                weakness: suites::weakness(chosen)
                    .unwrap_or("not offered by the probe")
                    .to_owned(),
            });
            let before = spec.cipher_suites.len();
            spec.cipher_suites.retain(|&s| s != chosen);
            // A suite we never offered, or nothing left: asking again cannot teach more.
            if spec.cipher_suites.len() == before
                || spec.cipher_suites.is_empty()
                || accepted.len() >= MAX_ACCEPTED_PER_KEY
            {
                break answer;
            }
        };
        let control = if accepted.is_empty() && !answer.accepted() {
            Some({
                let control = ProbeSpec::strong_suites_for(key, server_name.clone());
                connect_and_exchange(&mut connect, &control, deadline).await?
            })
        } else {
            None
        };
        classes.push(WeakSuiteClass {
            key,
            offered,
            accepted,
            answer,
            control,
        });
    }
    Ok(classes)
}

/// One connection from `connect` and one ClientHello, all under `deadline`.
async fn connect_and_exchange<C, F>(
    connect: &mut C,
    spec: &ProbeSpec,
    deadline: Duration,
) -> io::Result<ProbeOutcome>
where
    C: FnMut() -> F,
    F: std::future::Future<Output = io::Result<TcpStream>>,
{
    let until = Instant::now() + deadline;
    match timeout_at(until, connect()).await {
        Err(_elapsed) => Ok(ProbeOutcome::Timeout {
            after_ms: millis(deadline),
        }),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(ProbeOutcome::Refused),
        Ok(Err(e)) => Err(e),
        Ok(Ok(stream)) => Ok(exchange(stream, spec, until, deadline).await),
    }
}

/// The server's first flight is a few KiB; anything longer is not an answer to us.
const MAX_ANSWER: usize = 64 * 1024;

async fn exchange(
    mut stream: TcpStream,
    spec: &ProbeSpec,
    until: Instant,
    deadline: Duration,
) -> ProbeOutcome {
    let timeout = ProbeOutcome::Timeout {
        after_ms: millis(deadline),
    };
    // Best effort: the ClientHello is one write either way.
    let _ = stream.set_nodelay(true);
    match timeout_at(until, stream.write_all(&client_hello(spec))).await {
        Err(_elapsed) => return timeout,
        Ok(Err(e)) => return ProbeOutcome::from_io_error(&e, deadline),
        Ok(Ok(())) => {}
    }

    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match timeout_at(until, stream.read(&mut chunk)).await {
            Err(_elapsed) => return timeout,
            Ok(Err(e)) => return ProbeOutcome::from_io_error(&e, deadline),
            Ok(Ok(0)) if received.is_empty() => return ProbeOutcome::Closed,
            Ok(Ok(0)) => return ProbeOutcome::not_tls(&received),
            Ok(Ok(n)) => {
                received.extend_from_slice(&chunk[..n]);
                if let Some(outcome) = classify(&received) {
                    return outcome;
                }
                if received.len() >= MAX_ANSWER {
                    return ProbeOutcome::not_tls(&received);
                }
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// ClientHello

const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_HEARTBEAT: u8 = 24;

const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_SERVER_HELLO: u8 = 2;

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SUPPORTED_GROUPS: u16 = 0x000a;
const EXT_EC_POINT_FORMATS: u16 = 0x000b;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const EXT_RENEGOTIATION_INFO: u16 = 0xff01;

/// x25519, secp256r1, secp384r1: every ECDHE server supports one of them.
const GROUPS: [u16; 3] = [0x001d, 0x0017, 0x0018];

/// RSA and ECDSA with SHA-2, plus SHA-1 for servers whose certificates or
/// configuration predate SHA-2 (they are the ones likely to accept old TLS).
const SIGNATURE_SCHEMES: [u16; 10] = [
    0x0403, // ecdsa_secp256r1_sha256
    0x0804, // rsa_pss_rsae_sha256
    0x0401, // rsa_pkcs1_sha256
    0x0503, // ecdsa_secp384r1_sha384
    0x0805, // rsa_pss_rsae_sha384
    0x0501, // rsa_pkcs1_sha384
    0x0806, // rsa_pss_rsae_sha512
    0x0601, // rsa_pkcs1_sha512
    0x0203, // ecdsa_sha1
    0x0201, // rsa_pkcs1_sha1
];

/// The RSA schemes of [`SIGNATURE_SCHEMES`]: a server must answer with its RSA certificate.
const RSA_SIGNATURE_SCHEMES: [u16; 7] = [0x0804, 0x0401, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201];

/// The ECDSA schemes, secp521r1 included: a server must answer with its ECDSA certificate.
const ECDSA_SIGNATURE_SCHEMES: [u16; 4] = [0x0403, 0x0503, 0x0603, 0x0203];

/// The record bytes of one ClientHello for `spec`.
///
/// The record layer says TLS 1.0 (0x0301) whatever is offered, as browsers do:
/// some old servers drop records with a newer version before reading the hello.
pub fn client_hello(spec: &ProbeSpec) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    put_u16(&mut body, spec.version.wire());
    body.extend_from_slice(&random32());
    body.push(0); // empty legacy_session_id
    put_u16(&mut body, len16(spec.cipher_suites.len() * 2));
    for &suite in &spec.cipher_suites {
        put_u16(&mut body, suite);
    }
    body.extend_from_slice(&[1, 0]); // compression_methods: null only

    let mut extensions = Vec::with_capacity(128);
    if let Some(name) = spec.server_name.as_deref().and_then(sni_host_name) {
        let name = name.as_bytes();
        let mut list = Vec::with_capacity(name.len() + 3);
        list.push(0); // name_type host_name
        put_u16(&mut list, len16(name.len()));
        list.extend_from_slice(name);
        let mut data = Vec::with_capacity(list.len() + 2);
        put_u16(&mut data, len16(list.len()));
        data.extend_from_slice(&list);
        put_extension(&mut extensions, EXT_SERVER_NAME, &data);
    }
    put_extension(&mut extensions, EXT_SUPPORTED_GROUPS, &u16_list(&GROUPS));
    put_extension(&mut extensions, EXT_EC_POINT_FORMATS, &[1, 0]); // uncompressed
    if spec.version == ProbeVersion::Tls12 {
        // RFC 5246 §7.4.1.4.1: the extension does not exist before TLS 1.2.
        put_extension(
            &mut extensions,
            EXT_SIGNATURE_ALGORITHMS,
            &u16_list(&spec.signature_schemes),
        );
    }
    // RFC 5746: an empty renegotiated_connection, so strict servers do not refuse.
    put_extension(&mut extensions, EXT_RENEGOTIATION_INFO, &[0]);
    put_u16(&mut body, len16(extensions.len()));
    body.extend_from_slice(&extensions);

    let mut handshake = Vec::with_capacity(body.len() + 4);
    handshake.push(HANDSHAKE_CLIENT_HELLO);
    put_u24(&mut handshake, body.len());
    handshake.extend_from_slice(&body);

    let mut record = Vec::with_capacity(handshake.len() + 5);
    record.push(CONTENT_HANDSHAKE);
    put_u16(&mut record, 0x0301);
    put_u16(&mut record, len16(handshake.len()));
    record.extend_from_slice(&handshake);
    record
}

/// The name to send as SNI, if any: host names only, never IP literals.
fn sni_host_name(name: &str) -> Option<&str> {
    let name = name.trim_end_matches('.');
    let unbracketed = name.trim_start_matches('[').trim_end_matches(']');
    let is_ip = unbracketed.parse::<IpAddr>().is_ok();
    let valid = !name.is_empty() && name.len() <= 253 && name.is_ascii();
    (valid && !is_ip).then_some(name)
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u24(out: &mut Vec<u8>, v: usize) {
    let v = u32::try_from(v).unwrap_or(u32::MAX).min(0x00ff_ffff);
    out.extend_from_slice(&v.to_be_bytes()[1..]);
}

/// Saturates rather than panics; a spec big enough to overflow is a caller bug
/// that the server will reject as malformed, which the probe then reports.
fn len16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

fn u16_list(items: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 2 + 2);
    put_u16(&mut out, len16(items.len() * 2));
    for &item in items {
        put_u16(&mut out, item);
    }
    out
}

fn put_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_u16(out, kind);
    put_u16(out, len16(data.len()));
    out.extend_from_slice(data);
}

/// Client random. Its quality does not matter (no key is ever derived from it),
/// so std's randomly seeded `RandomState` stands in for a RNG dependency.
fn random32() -> [u8; 32] {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = [0u8; 32];
    for (i, word) in out.chunks_exact_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_usize(i);
        word.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// Classification

/// Classifies the server's first bytes; `None` when more bytes are needed.
///
/// Handshake records are reassembled, so a ServerHello split over records or
/// reads is found, and anything after it (Certificate, …) is ignored.
pub fn classify(server_bytes: &[u8]) -> Option<ProbeOutcome> {
    let mut handshake = Vec::new();
    let mut rest = server_bytes;
    loop {
        let header = match record_header(rest) {
            Header::NeedMore => return None,
            Header::Invalid => return Some(ProbeOutcome::not_tls(server_bytes)),
            Header::Valid(header) => header,
        };
        let fragment = rest.get(5..5 + header.len)?;
        rest = &rest[5 + header.len..];
        match header.content_type {
            CONTENT_ALERT => return Some(alert(fragment, server_bytes)),
            CONTENT_HANDSHAKE => {
                handshake.extend_from_slice(fragment);
                if let Some(outcome) = first_handshake_message(&handshake, server_bytes) {
                    return Some(outcome);
                }
            }
            // A ChangeCipherSpec, application data or heartbeat cannot come first.
            _ => return Some(ProbeOutcome::not_tls(server_bytes)),
        }
    }
}

struct RecordHeader {
    content_type: u8,
    len: usize,
}

enum Header {
    NeedMore,
    Invalid,
    Valid(RecordHeader),
}

/// RFC 8446 §5.1: a fragment never exceeds 2^14 bytes, plus 2048 of expansion in
/// older versions.
const MAX_FRAGMENT: usize = (1 << 14) + 2048;

/// Rejects as early as the first byte, so an HTTP answer ("HTTP/1.1 400") or an
/// SSLv2 record (high bit set) is classified without waiting for more.
fn record_header(bytes: &[u8]) -> Header {
    let plausible = |i: usize, ok: fn(u8) -> bool| bytes.get(i).is_none_or(|&b| ok(b));
    if !(plausible(0, |b| {
        (CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_HEARTBEAT).contains(&b)
    }) && plausible(1, |b| b == 3)
        && plausible(2, |b| b <= 4))
    {
        return Header::Invalid;
    }
    let [content_type, _, _, hi, lo, ..] = *bytes else {
        return Header::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len == 0 || len > MAX_FRAGMENT {
        return Header::Invalid;
    }
    Header::Valid(RecordHeader { content_type, len })
}

fn alert(fragment: &[u8], server_bytes: &[u8]) -> ProbeOutcome {
    let [level, description, ..] = *fragment else {
        return ProbeOutcome::not_tls(server_bytes);
    };
    let level = match level {
        1 => "warning".to_owned(),
        2 => "fatal".to_owned(),
        n => format!("unknown({n})"),
    };
    let description = alert_description(description)
        .map_or_else(|| format!("unknown({description})"), str::to_owned);
    ProbeOutcome::Alert { level, description }
}

/// A ServerHello is far smaller; a bigger declared length is garbage.
const MAX_SERVER_HELLO: usize = 0xffff;

/// The outcome once the first handshake message is complete, `None` before.
fn first_handshake_message(handshake: &[u8], server_bytes: &[u8]) -> Option<ProbeOutcome> {
    let [msg_type, a, b, c, ref body @ ..] = *handshake else {
        return None;
    };
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    if msg_type != HANDSHAKE_SERVER_HELLO || len > MAX_SERVER_HELLO {
        return Some(ProbeOutcome::not_tls(server_bytes));
    }
    let body = body.get(..len)?;
    Some(server_hello(body).unwrap_or_else(|| ProbeOutcome::not_tls(server_bytes)))
}

/// Parses a complete ServerHello body (RFC 5246 §7.4.1.3, RFC 8446 §4.1.3); `None`
/// if malformed.
fn server_hello(body: &[u8]) -> Option<ProbeOutcome> {
    let mut r = Reader(body);
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    let session_id_len = usize::from(r.u8()?);
    if session_id_len > 32 {
        return None;
    }
    r.take(session_id_len)?;
    let cipher_suite = r.u16()?;
    r.u8()?; // compression_method
    let mut version = legacy_version;
    // Extensions are optional before TLS 1.3 (an SSLv3-era ServerHello ends here).
    if !r.0.is_empty() {
        let ext_len = usize::from(r.u16()?);
        let mut exts = Reader(r.take(ext_len)?);
        while !exts.0.is_empty() {
            let kind = exts.u16()?;
            let len = usize::from(exts.u16()?);
            let data = exts.take(len)?;
            if kind == EXT_SUPPORTED_VERSIONS {
                version = Reader(data).u16()?;
            }
        }
    }
    Some(ProbeOutcome::ServerHello {
        version: version_name(version),
        cipher_suite,
        cipher_suite_name: suites::name(cipher_suite).map(str::to_owned),
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".to_owned(),
        0x0301 => "TLS 1.0".to_owned(),
        0x0302 => "TLS 1.1".to_owned(),
        0x0303 => "TLS 1.2".to_owned(),
        0x0304 => "TLS 1.3".to_owned(),
        other => format!("unknown(0x{other:04x})"),
    }
}

/// RFC 8446 §6 names, plus the TLS 1.0–1.2 ones it dropped (RFC 5246 §7.2,
/// RFC 2246 `export_restriction`), since old servers still send them.
fn alert_description(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}

/// Cipher suite lists and IANA names.
pub mod suites {
    /// What a TLS 1.2 client offers today: forward-secret AEAD suites.
    pub const TLS12_MODERN: &[u16] = &[
        0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        0xcca8, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        0x009e, // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
        0x009f, // TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
        0xc023, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
        0xc027, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
        0x009c, // TLS_RSA_WITH_AES_128_GCM_SHA256
        0x009d, // TLS_RSA_WITH_AES_256_GCM_SHA384
        0x003c, // TLS_RSA_WITH_AES_128_CBC_SHA256
        0x003d, // TLS_RSA_WITH_AES_256_CBC_SHA256
    ];

    /// Suites usable in TLS 1.0/1.1 (no AEAD, no SHA-256 PRF), strongest first;
    /// 3DES and RC4 last because servers that only have those still accept the
    /// version.
    pub const LEGACY_CBC: &[u16] = &[
        0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        0xc00a, // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
        0xc014, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
        0x0033, // TLS_DHE_RSA_WITH_AES_128_CBC_SHA
        0x0039, // TLS_DHE_RSA_WITH_AES_256_CBC_SHA
        0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
        0x0035, // TLS_RSA_WITH_AES_256_CBC_SHA
        0x000a, // TLS_RSA_WITH_3DES_EDE_CBC_SHA
        0x0005, // TLS_RSA_WITH_RC4_128_SHA
    ];

    /// Suites EB-TLS-1 calls weak, following current guidance (RFC 7465, RFC 9325 §4,
    /// Mozilla's "intermediate" profile, NIST SP 800-52r2 §3.3.1):
    /// - RC4 (RFC 7465 forbids it), DES and 3DES (64-bit blocks: Sweet32), NULL (no
    ///   encryption), EXPORT (40-bit), anonymous (no server authentication);
    /// - plain RSA key exchange, whatever the cipher (no forward secrecy: one leaked
    ///   server key decrypts every recorded session; RFC 9325 §4.1 SHOULD NOT);
    /// - CBC with HMAC-SHA-1 (`*_CBC_SHA`) even after ECDHE/DHE: MAC-then-encrypt CBC
    ///   is the Lucky13 padding-oracle family, SHA-1 is deprecated, and no current
    ///   profile keeps them for TLS 1.2.
    ///
    /// ECDHE/DHE with CBC and SHA-256/384 are *not* listed: BSI TR-02102-2 still
    /// allows them. Order matters only to servers that follow the client's preference
    /// (OpenSSL's default): the suites OpenSSL 3's `DEFAULT` still enables come after
    /// the ones it dropped, plain RSA first.
    pub const WEAK: &[u16] = &[
        0x0005, // TLS_RSA_WITH_RC4_128_SHA
        0x0004, // TLS_RSA_WITH_RC4_128_MD5
        0xc011, // TLS_ECDHE_RSA_WITH_RC4_128_SHA
        0xc007, // TLS_ECDHE_ECDSA_WITH_RC4_128_SHA
        0x000a, // TLS_RSA_WITH_3DES_EDE_CBC_SHA
        0xc012, // TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
        0xc008, // TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA
        0x0016, // TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA
        0x0009, // TLS_RSA_WITH_DES_CBC_SHA
        0x0015, // TLS_DHE_RSA_WITH_DES_CBC_SHA
        0x0001, // TLS_RSA_WITH_NULL_MD5
        0x0002, // TLS_RSA_WITH_NULL_SHA
        0x003b, // TLS_RSA_WITH_NULL_SHA256
        0xc010, // TLS_ECDHE_RSA_WITH_NULL_SHA
        0xc006, // TLS_ECDHE_ECDSA_WITH_NULL_SHA
        0x0003, // TLS_RSA_EXPORT_WITH_RC4_40_MD5
        0x0006, // TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5
        0x0008, // TLS_RSA_EXPORT_WITH_DES40_CBC_SHA
        0x0014, // TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA
        0x0018, // TLS_DH_anon_WITH_RC4_128_MD5
        0x0034, // TLS_DH_anon_WITH_AES_128_CBC_SHA
        0x003a, // TLS_DH_anon_WITH_AES_256_CBC_SHA
        0x006c, // TLS_DH_anon_WITH_AES_128_CBC_SHA256
        0x00a6, // TLS_DH_anon_WITH_AES_128_GCM_SHA256
        0xc018, // TLS_ECDH_anon_WITH_AES_128_CBC_SHA
        0xc019, // TLS_ECDH_anon_WITH_AES_256_CBC_SHA
        0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
        0x0035, // TLS_RSA_WITH_AES_256_CBC_SHA
        0x003c, // TLS_RSA_WITH_AES_128_CBC_SHA256
        0x003d, // TLS_RSA_WITH_AES_256_CBC_SHA256
        0x009c, // TLS_RSA_WITH_AES_128_GCM_SHA256
        0x009d, // TLS_RSA_WITH_AES_256_GCM_SHA384
        0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        0xc014, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
        0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        0xc00a, // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
        0x0033, // TLS_DHE_RSA_WITH_AES_128_CBC_SHA
        0x0039, // TLS_DHE_RSA_WITH_AES_256_CBC_SHA
    ];

    /// Strong RSA-authenticated TLS 1.2 suites (forward secret; AEAD or CBC with
    /// SHA-2), the control offer: some server that has an RSA certificate accepts one.
    pub const STRONG_RSA: &[u16] = &[
        0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        0xcca8, // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        0x009e, // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
        0x009f, // TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
        0xccaa, // TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        0xc027, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
        0xc028, // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
        0x0067, // TLS_DHE_RSA_WITH_AES_128_CBC_SHA256
        0x006b, // TLS_DHE_RSA_WITH_AES_256_CBC_SHA256
    ];

    /// Strong ECDSA-authenticated TLS 1.2 suites, the control offer for ECDSA.
    pub const STRONG_ECDSA: &[u16] = &[
        0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        0xc023, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
        0xc024, // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
    ];

    /// What authenticates the server in a suite: which certificate it needs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Authentication {
        /// `TLS_RSA_*`, `*_RSA_*`: an RSA certificate.
        Rsa,
        /// `*_ECDSA_*`: an ECDSA certificate.
        Ecdsa,
        /// `*_anon_*`: none.
        Anonymous,
        /// TLS 1.3 suites: decided by the signature algorithms, not the suite.
        Any,
    }

    /// The authentication of a named suite, read off its IANA name.
    pub fn authentication(suite: u16) -> Option<Authentication> {
        let n = name(suite)?;
        Some(if n.contains("_anon_") {
            Authentication::Anonymous
        } else if n.contains("_ECDSA_") {
            Authentication::Ecdsa
        } else if n.contains("_RSA_") {
            Authentication::Rsa
        } else {
            Authentication::Any
        })
    }

    /// Why EB-TLS-1 calls `suite` weak (see [`WEAK`]), `None` if it does not.
    pub fn weakness(suite: u16) -> Option<&'static str> {
        let n = name(suite)?;
        Some(if n.contains("_anon_") {
            "anonymous: the server is not authenticated"
        } else if n.contains("_EXPORT_") {
            "export grade: 40-bit keys"
        } else if n.contains("_NULL_") {
            "NULL cipher: no encryption"
        } else if n.contains("_RC4_") {
            "RC4, prohibited by RFC 7465"
        } else if n.contains("_DES_") || n.contains("_3DES_") {
            "DES/3DES: 64-bit block cipher (Sweet32)"
        } else if n.starts_with("TLS_RSA_WITH_") {
            "RSA key exchange: no forward secrecy"
        } else if n.contains("_CBC_") && n.ends_with("_SHA") {
            "CBC with HMAC-SHA-1 (Lucky13-class padding oracles, SHA-1)"
        } else {
            return None;
        })
    }

    /// `NAME (0xNNNN)`, or `unknown (0xNNNN)`.
    pub fn label(suite: u16) -> String {
        format!("{} (0x{suite:04x})", name(suite).unwrap_or("unknown"))
    }

    /// The IANA name of `suite`, for the suites this module offers and TLS 1.3's.
    pub fn name(suite: u16) -> Option<&'static str> {
        Some(match suite {
            0x0001 => "TLS_RSA_WITH_NULL_MD5",
            0x0002 => "TLS_RSA_WITH_NULL_SHA",
            0x0003 => "TLS_RSA_EXPORT_WITH_RC4_40_MD5",
            0x0004 => "TLS_RSA_WITH_RC4_128_MD5",
            0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
            0x0006 => "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5",
            0x0008 => "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA",
            0x0009 => "TLS_RSA_WITH_DES_CBC_SHA",
            0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
            0x0014 => "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
            0x0015 => "TLS_DHE_RSA_WITH_DES_CBC_SHA",
            0x0016 => "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
            0x0018 => "TLS_DH_anon_WITH_RC4_128_MD5",
            0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
            0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
            0x0034 => "TLS_DH_anon_WITH_AES_128_CBC_SHA",
            0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
            0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
            0x003a => "TLS_DH_anon_WITH_AES_256_CBC_SHA",
            0x003b => "TLS_RSA_WITH_NULL_SHA256",
            0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
            0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
            0x0067 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
            0x006b => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
            0x006c => "TLS_DH_anon_WITH_AES_128_CBC_SHA256",
            0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
            0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
            0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
            0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
            0x00a6 => "TLS_DH_anon_WITH_AES_128_GCM_SHA256",
            0x1301 => "TLS_AES_128_GCM_SHA256",
            0x1302 => "TLS_AES_256_GCM_SHA384",
            0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
            0xc006 => "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
            0xc007 => "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
            0xc008 => "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
            0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
            0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
            0xc010 => "TLS_ECDHE_RSA_WITH_NULL_SHA",
            0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
            0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
            0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
            0xc018 => "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
            0xc019 => "TLS_ECDH_anon_WITH_AES_256_CBC_SHA",
            0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
            0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
            0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
            0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
            0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of a ClientHello record, read back with the lengths checked.
    struct ParsedHello {
        record_version: u16,
        client_version: u16,
        session_id_len: u8,
        suites: Vec<u16>,
        compression: Vec<u8>,
        extensions: Vec<(u16, Vec<u8>)>,
    }

    fn parse_hello(record: &[u8]) -> ParsedHello {
        let mut r = Reader(record);
        assert_eq!(r.u8(), Some(CONTENT_HANDSHAKE));
        let record_version = r.u16().expect("record version");
        let record_len = usize::from(r.u16().expect("record length"));
        assert_eq!(record_len, r.0.len(), "record length covers the rest");
        assert_eq!(r.u8(), Some(HANDSHAKE_CLIENT_HELLO));
        let hs = r.take(3).expect("handshake length");
        let hs_len = usize::from(hs[0]) << 16 | usize::from(hs[1]) << 8 | usize::from(hs[2]);
        assert_eq!(hs_len, r.0.len(), "handshake length covers the rest");
        let client_version = r.u16().expect("client_version");
        r.take(32).expect("random");
        let session_id_len = r.u8().expect("session id length");
        let suites_len = usize::from(r.u16().expect("suites length"));
        assert_eq!(suites_len % 2, 0);
        let mut s = Reader(r.take(suites_len).expect("suites"));
        let suites = std::iter::from_fn(|| s.u16()).collect();
        let compression_len = usize::from(r.u8().expect("compression length"));
        let compression = r.take(compression_len).expect("compression").to_vec();
        let ext_len = usize::from(r.u16().expect("extensions length"));
        assert_eq!(ext_len, r.0.len(), "extensions length covers the rest");
        let mut extensions = Vec::new();
        while !r.0.is_empty() {
            let kind = r.u16().expect("extension type");
            let len = usize::from(r.u16().expect("extension length"));
            extensions.push((kind, r.take(len).expect("extension data").to_vec()));
        }
        ParsedHello {
            record_version,
            client_version,
            session_id_len,
            suites,
            compression,
            extensions,
        }
    }

    fn extension(hello: &ParsedHello, kind: u16) -> Option<&[u8]> {
        hello
            .extensions
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d.as_slice())
    }

    fn record(content_type: u8, version: u16, fragment: &[u8]) -> Vec<u8> {
        let mut out = vec![content_type];
        put_u16(&mut out, version);
        put_u16(&mut out, len16(fragment.len()));
        out.extend_from_slice(fragment);
        out
    }

    fn server_hello_msg(version: u16, suite: u16, extensions: Option<&[u8]>) -> Vec<u8> {
        let mut body = Vec::new();
        put_u16(&mut body, version);
        body.extend_from_slice(&[0xab; 32]);
        body.push(32);
        body.extend_from_slice(&[0xcd; 32]);
        put_u16(&mut body, suite);
        body.push(0);
        if let Some(ext) = extensions {
            put_u16(&mut body, len16(ext.len()));
            body.extend_from_slice(ext);
        }
        let mut msg = vec![HANDSHAKE_SERVER_HELLO];
        put_u24(&mut msg, body.len());
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn client_hello_lengths_and_versions_are_consistent_for_every_version() {
        for version in [
            ProbeVersion::Tls10,
            ProbeVersion::Tls11,
            ProbeVersion::Tls12,
        ] {
            let spec = ProbeSpec::legacy(version, Some("example.test".into()));
            let hello = parse_hello(&client_hello(&spec));
            assert_eq!(hello.record_version, 0x0301);
            assert_eq!(hello.client_version, version.wire());
            assert_eq!(hello.session_id_len, 0);
            assert_eq!(hello.compression, [0]);
            assert_eq!(hello.suites, spec.cipher_suites);
        }
    }

    #[test]
    fn client_hello_offers_only_the_legacy_version() {
        let hello = parse_hello(&client_hello(&ProbeSpec::legacy(ProbeVersion::Tls11, None)));
        assert!(extension(&hello, EXT_SUPPORTED_VERSIONS).is_none());
        assert_eq!(extension(&hello, EXT_RENEGOTIATION_INFO), Some(&[0][..]));
        assert_eq!(extension(&hello, EXT_EC_POINT_FORMATS), Some(&[1, 0][..]));
        assert_eq!(
            extension(&hello, EXT_SUPPORTED_GROUPS),
            Some(&[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18][..])
        );
    }

    #[test]
    fn signature_algorithms_are_sent_for_tls12_only() {
        let tls11 = parse_hello(&client_hello(&ProbeSpec::legacy(ProbeVersion::Tls11, None)));
        let tls12 = parse_hello(&client_hello(&ProbeSpec::legacy(ProbeVersion::Tls12, None)));
        assert!(extension(&tls11, EXT_SIGNATURE_ALGORITHMS).is_none());
        let sigalgs = extension(&tls12, EXT_SIGNATURE_ALGORITHMS).expect("sigalgs");
        assert_eq!(sigalgs, u16_list(&SIGNATURE_SCHEMES));
    }

    #[test]
    fn host_name_is_sent_as_sni() {
        let spec = ProbeSpec::legacy(ProbeVersion::Tls12, Some("iut.example.test".into()));
        let hello = parse_hello(&client_hello(&spec));
        let sni = extension(&hello, EXT_SERVER_NAME).expect("SNI");
        let mut expected = vec![0, 19, 0, 0, 16];
        expected.extend_from_slice(b"iut.example.test");
        assert_eq!(sni, expected);
    }

    #[test]
    fn ip_addresses_and_absent_names_are_not_sent_as_sni() {
        for name in [
            None,
            Some("127.0.0.1"),
            Some("::1"),
            Some("[::1]"),
            Some(""),
        ] {
            let spec = ProbeSpec::legacy(ProbeVersion::Tls12, name.map(str::to_owned));
            let hello = parse_hello(&client_hello(&spec));
            assert!(extension(&hello, EXT_SERVER_NAME).is_none(), "{name:?}");
        }
    }

    #[test]
    fn legacy_tls12_offers_modern_aead_suites_and_tls10_only_cbc() {
        let tls12 = ProbeSpec::legacy(ProbeVersion::Tls12, None);
        assert!(tls12.cipher_suites.contains(&0xc02f));
        let tls10 = ProbeSpec::legacy(ProbeVersion::Tls10, None);
        assert!(tls10.cipher_suites.contains(&0xc013));
        assert!(!tls10
            .cipher_suites
            .iter()
            .any(|s| suites::TLS12_MODERN.contains(s)));
    }

    #[test]
    fn weak_suites_offers_no_strong_suite() {
        let spec = ProbeSpec::weak_suites(None);
        assert_eq!(spec.version, ProbeVersion::Tls12);
        assert!(spec.cipher_suites.contains(&0x0005), "RC4");
        assert!(spec.cipher_suites.contains(&0x000a), "3DES");
        assert!(
            spec.cipher_suites.contains(&0x002f),
            "plain RSA, in OpenSSL's DEFAULT"
        );
        assert!(
            spec.cipher_suites.contains(&0xc013),
            "ECDHE CBC-SHA1, in OpenSSL's DEFAULT"
        );
        for suite in &spec.cipher_suites {
            assert!(suites::name(*suite).is_some(), "0x{suite:04x} has a name");
            assert!(
                suites::weakness(*suite).is_some(),
                "0x{suite:04x} says why weak"
            );
        }
        for suite in suites::STRONG_RSA.iter().chain(suites::STRONG_ECDSA) {
            assert!(suites::name(*suite).is_some(), "0x{suite:04x} has a name");
            assert_eq!(suites::weakness(*suite), None, "0x{suite:04x}");
        }
        for suite in [0xc02f, 0xc02b, 0xcca8, 0x009e, 0xc027, 0x1301] {
            assert_eq!(suites::weakness(suite), None, "0x{suite:04x}");
        }
    }

    #[test]
    fn weak_offers_per_key_type_carry_only_that_key_types_suites_and_schemes() {
        use suites::Authentication as A;
        for key in ServerKey::ALL {
            let spec = ProbeSpec::weak_suites_for(key, None);
            let hello = parse_hello(&client_hello(&spec));
            assert_eq!(hello.suites, spec.cipher_suites);
            let sigalgs = extension(&hello, EXT_SIGNATURE_ALGORITHMS).expect("sigalgs");
            assert_eq!(sigalgs, u16_list(key.signature_schemes()));
            for s in &spec.cipher_suites {
                let a = suites::authentication(*s);
                assert!(
                    a == Some(key.authentication()) || a == Some(A::Anonymous),
                    "{key:?} 0x{s:04x}"
                );
            }
            assert!(spec.cipher_suites.contains(&0x0034), "anonymous in both");
            let control = ProbeSpec::strong_suites_for(key, None);
            for s in &control.cipher_suites {
                assert_eq!(suites::authentication(*s), Some(key.authentication()));
            }
        }
        let rsa = ProbeSpec::weak_suites_for(ServerKey::Rsa, None);
        assert!(rsa.cipher_suites.contains(&0x002f) && rsa.cipher_suites.contains(&0xc013));
        let ecdsa = ProbeSpec::weak_suites_for(ServerKey::Ecdsa, None);
        assert!(ecdsa.cipher_suites.contains(&0xc009) && !ecdsa.cipher_suites.contains(&0x002f));
        // Between them, the two offers cover every weak suite.
        for s in suites::WEAK {
            assert!(
                rsa.cipher_suites.contains(s) || ecdsa.cipher_suites.contains(s),
                "0x{s:04x}"
            );
        }
        assert_eq!(
            suites::label(0x002f),
            "TLS_RSA_WITH_AES_128_CBC_SHA (0x002f)"
        );
    }

    /// Reads one ClientHello record whole, however the reads split it.
    async fn read_parsed_hello(s: &mut TcpStream) -> Option<ParsedHello> {
        let mut header = [0u8; 5];
        s.read_exact(&mut header).await.ok()?;
        let mut rec = header.to_vec();
        rec.resize(
            5 + usize::from(u16::from_be_bytes([header[3], header[4]])),
            0,
        );
        s.read_exact(&mut rec[5..]).await.ok()?;
        Some(parse_hello(&rec))
    }

    /// A loopback server that answers the first `accepts` hellos with a ServerHello
    /// for the first suite offered, then refuses with handshake_failure.
    async fn server_accepting(accepts: usize) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        tokio::spawn(async move {
            let mut served = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let Some(hello) = read_parsed_hello(&mut s).await else {
                    continue;
                };
                let answer = if served < accepts {
                    record(
                        CONTENT_HANDSHAKE,
                        0x0303,
                        &server_hello_msg(0x0303, hello.suites[0], None),
                    )
                } else {
                    record(CONTENT_ALERT, 0x0303, &[2, 40])
                };
                served += 1;
                let _ = s.write_all(&answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn examination_lists_every_accepted_weak_suite_then_the_refusal() {
        let addr = server_accepting(3).await;
        let classes = examine_weak_suites(|| TcpStream::connect(addr), None, DEADLINE)
            .await
            .expect("examine");
        let rsa = &classes[0];
        assert_eq!(rsa.key, ServerKey::Rsa);
        assert_eq!(rsa.accepted.len(), 3, "{rsa:?}");
        assert_eq!(rsa.accepted[0].suite, "TLS_RSA_WITH_RC4_128_SHA (0x0005)");
        assert_eq!(rsa.accepted[0].weakness, "RC4, prohibited by RFC 7465");
        assert_eq!(
            rsa.answer,
            ProbeOutcome::Alert {
                level: "fatal".into(),
                description: "handshake_failure".into()
            }
        );
        assert!(rsa.control.is_none() && rsa.examined());
        // Every later hello is refused, the control included: no ECDSA certificate.
        let ecdsa = &classes[1];
        assert!(ecdsa.accepted.is_empty());
        assert!(ecdsa.control.as_ref().is_some_and(|c| !c.accepted()));
        let why = ecdsa.not_examinable().expect("not examinable");
        assert!(
            why.starts_with("ECDSA-authenticated suites: the server offered no ECDSA certificate"),
            "{why}"
        );
        assert!(why.contains("handshake_failure"), "{why}");
    }

    #[tokio::test]
    async fn a_refusal_with_an_accepted_control_is_an_examined_refusal() {
        // Refuses the weak offer, accepts the control (its first suite), and so on.
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let Some(hello) = read_parsed_hello(&mut s).await else {
                    continue;
                };
                let strong = hello
                    .suites
                    .iter()
                    .find(|&&x| suites::weakness(x).is_none());
                let answer = match strong {
                    Some(&x) => record(
                        CONTENT_HANDSHAKE,
                        0x0303,
                        &server_hello_msg(0x0303, x, None),
                    ),
                    None => record(CONTENT_ALERT, 0x0303, &[2, 40]),
                };
                let _ = s.write_all(&answer).await;
            }
        });
        let classes = examine_weak_suites(|| TcpStream::connect(addr), None, DEADLINE)
            .await
            .expect("examine");
        for c in &classes {
            assert!(c.accepted.is_empty() && c.examined(), "{c:?}");
            assert_eq!(c.not_examinable(), None);
        }
    }

    #[test]
    fn client_randoms_differ_between_hellos() {
        let spec = ProbeSpec::legacy(ProbeVersion::Tls12, None);
        let (a, b) = (client_hello(&spec), client_hello(&spec));
        assert_ne!(a[11..43], b[11..43]);
    }

    #[test]
    fn alert_protocol_version_is_classified() {
        let bytes = record(CONTENT_ALERT, 0x0301, &[2, 70]);
        assert_eq!(
            classify(&bytes),
            Some(ProbeOutcome::Alert {
                level: "fatal".into(),
                description: "protocol_version".into()
            })
        );
    }

    #[test]
    fn unknown_alert_codes_are_kept_as_numbers() {
        let bytes = record(CONTENT_ALERT, 0x0303, &[7, 200]);
        assert_eq!(
            classify(&bytes),
            Some(ProbeOutcome::Alert {
                level: "unknown(7)".into(),
                description: "unknown(200)".into()
            })
        );
    }

    #[test]
    fn server_hello_followed_by_certificate_in_one_record_is_classified() {
        let mut fragment = server_hello_msg(0x0302, 0xc013, Some(&[0xff, 0x01, 0, 1, 0]));
        fragment.extend_from_slice(&[11, 0, 0, 3, 0, 0, 0]); // empty Certificate
        let bytes = record(CONTENT_HANDSHAKE, 0x0302, &fragment);
        assert_eq!(
            classify(&bytes),
            Some(ProbeOutcome::ServerHello {
                version: "TLS 1.1".into(),
                cipher_suite: 0xc013,
                cipher_suite_name: Some("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into()),
            })
        );
    }

    #[test]
    fn server_hello_without_extensions_is_classified() {
        let bytes = record(
            CONTENT_HANDSHAKE,
            0x0301,
            &server_hello_msg(0x0301, 0x1234, None),
        );
        assert_eq!(
            classify(&bytes),
            Some(ProbeOutcome::ServerHello {
                version: "TLS 1.0".into(),
                cipher_suite: 0x1234,
                cipher_suite_name: None,
            })
        );
    }

    #[test]
    fn supported_versions_extension_overrides_legacy_version() {
        let ext = [0x00, 0x2b, 0, 2, 0x03, 0x04];
        let bytes = record(
            CONTENT_HANDSHAKE,
            0x0303,
            &server_hello_msg(0x0303, 0x1301, Some(&ext)),
        );
        let Some(ProbeOutcome::ServerHello { version, .. }) = classify(&bytes) else {
            panic!("not a ServerHello");
        };
        assert_eq!(version, "TLS 1.3");
    }

    #[test]
    fn every_prefix_of_a_split_answer_needs_more_bytes() {
        let msg = server_hello_msg(0x0303, 0xc02f, Some(&[0xff, 0x01, 0, 1, 0]));
        let (first, second) = msg.split_at(10);
        let mut bytes = record(CONTENT_HANDSHAKE, 0x0303, first);
        bytes.extend(record(CONTENT_HANDSHAKE, 0x0303, second));
        for end in 0..bytes.len() {
            assert_eq!(classify(&bytes[..end]), None, "prefix of {end} bytes");
        }
        assert!(classify(&bytes).is_some_and(|o| o.accepted()));
    }

    #[test]
    fn http_response_is_not_tls() {
        let bytes = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            classify(bytes),
            Some(ProbeOutcome::NotTls {
                first_bytes: "HTTP/1.1 400 Bad Request..Content-Length: 0....".into()
            })
        );
        assert!(classify(b"H").is_some(), "decided on the first byte");
    }

    #[test]
    fn sslv2_and_garbage_answers_are_not_tls() {
        for bytes in [
            &[0x80, 0x2e, 0x04, 0x00][..],
            &[0x16, 0x02, 0x00],
            &[0x16, 0x03, 0x09],
            &[0x16, 0x03, 0x01, 0x00, 0x00],
            &[0x16, 0x03, 0x01, 0xff, 0xff],
            &[0x17, 0x03, 0x03, 0x00, 0x01, 0x00],
            &[0x15, 0x03, 0x03, 0x00, 0x01, 0x02],
        ] {
            assert!(
                matches!(classify(bytes), Some(ProbeOutcome::NotTls { .. })),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn handshake_other_than_server_hello_first_is_not_tls() {
        let bytes = record(CONTENT_HANDSHAKE, 0x0303, &[11, 0, 0, 0]);
        assert!(matches!(
            classify(&bytes),
            Some(ProbeOutcome::NotTls { .. })
        ));
    }

    #[test]
    fn truncated_server_hello_body_is_not_tls() {
        // The extension claims 5 bytes of data but the block ends after 1.
        let msg = server_hello_msg(0x0303, 0xc02f, Some(&[0xff, 0x01, 0, 5, 0]));
        let bytes = record(CONTENT_HANDSHAKE, 0x0303, &msg);
        assert!(matches!(
            classify(&bytes),
            Some(ProbeOutcome::NotTls { .. })
        ));
    }

    #[test]
    fn not_tls_shows_at_most_64_printable_chars() {
        let ProbeOutcome::NotTls { first_bytes } = ProbeOutcome::not_tls(&[0xff; 100]) else {
            unreachable!()
        };
        assert_eq!(first_bytes, ".".repeat(64));
    }

    #[test]
    fn classify_never_panics_on_short_or_arbitrary_input() {
        let hello = record(
            CONTENT_HANDSHAKE,
            0x0303,
            &server_hello_msg(0x0303, 1, None),
        );
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = hello.clone();
            let at = (state as usize) % bytes.len();
            bytes[at] = (state >> 32) as u8;
            bytes.truncate((state >> 40) as usize % (bytes.len() + 1));
            let _ = classify(&bytes);
        }
    }

    #[test]
    fn only_server_hello_counts_as_accepted() {
        assert!(!ProbeOutcome::Closed.accepted());
        assert!(!ProbeOutcome::Reset.accepted());
        let alert = classify(&record(CONTENT_ALERT, 0x0301, &[2, 40]));
        assert!(alert.is_some_and(|a| !a.accepted()));
    }

    #[test]
    fn outcome_serialises_with_kebab_case_tag() {
        let json = serde_json::to_value(ProbeOutcome::NotTls {
            first_bytes: "HTTP".into(),
        })
        .expect("serialise");
        assert_eq!(json["outcome"], "not-tls");
        let json =
            serde_json::to_value(ProbeSpec::legacy(ProbeVersion::Tls11, None)).expect("spec");
        assert_eq!(json["version"], "TLS 1.1");
    }

    /// A loopback server that reads the ClientHello, then does `answer`.
    async fn serve_once<F, Fut>(answer: F) -> SocketAddr
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await {
                answer(stream).await;
            }
        });
        addr
    }

    async fn read_hello(stream: &mut TcpStream) {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.expect("record header");
        let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.expect("record body");
    }

    const DEADLINE: Duration = Duration::from_secs(5);

    fn spec() -> ProbeSpec {
        ProbeSpec::legacy(ProbeVersion::Tls11, None)
    }

    #[tokio::test]
    async fn alert_sent_byte_by_byte_is_read_to_the_end() {
        let addr = serve_once(|mut s| async move {
            read_hello(&mut s).await;
            for byte in record(CONTENT_ALERT, 0x0302, &[2, 40]) {
                let _ = s.write_all(&[byte]).await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let outcome = probe(addr, &spec(), DEADLINE).await.expect("probe");
        assert_eq!(
            outcome,
            ProbeOutcome::Alert {
                level: "fatal".into(),
                description: "handshake_failure".into()
            }
        );
    }

    #[tokio::test]
    async fn close_without_answer_is_closed() {
        let addr = serve_once(|mut s| async move {
            read_hello(&mut s).await;
            let _ = s.shutdown().await;
        })
        .await;
        let outcome = probe(addr, &spec(), DEADLINE).await.expect("probe");
        assert_eq!(outcome, ProbeOutcome::Closed);
    }

    #[tokio::test]
    async fn close_after_a_partial_record_is_not_tls() {
        let addr = serve_once(|mut s| async move {
            read_hello(&mut s).await;
            let _ = s.write_all(&[0x16, 0x03, 0x02, 0x00]).await;
            let _ = s.shutdown().await;
        })
        .await;
        let outcome = probe(addr, &spec(), DEADLINE).await.expect("probe");
        assert_eq!(
            outcome,
            ProbeOutcome::NotTls {
                first_bytes: "....".into()
            }
        );
    }

    #[tokio::test]
    async fn dropping_with_unread_bytes_is_reset() {
        // Linux answers with RST when a socket is closed with unread input.
        let addr = serve_once(|s| async move {
            let _ = s.readable().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(s);
        })
        .await;
        let outcome = probe(addr, &spec(), DEADLINE).await.expect("probe");
        assert_eq!(outcome, ProbeOutcome::Reset);
    }

    #[tokio::test]
    async fn silence_is_a_timeout_at_the_deadline() {
        let addr = serve_once(|mut s| async move {
            read_hello(&mut s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await;
        let started = Instant::now();
        let deadline = Duration::from_millis(200);
        let outcome = probe(addr, &spec(), deadline).await.expect("probe");
        assert_eq!(outcome, ProbeOutcome::Timeout { after_ms: 200 });
        let took = started.elapsed();
        assert!(took >= deadline && took < deadline * 5, "took {took:?}");
    }

    #[tokio::test]
    async fn http_server_on_the_port_is_not_tls() {
        let addr = serve_once(|mut s| async move {
            read_hello(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
        })
        .await;
        let outcome = probe(addr, &spec(), DEADLINE).await.expect("probe");
        let ProbeOutcome::NotTls { first_bytes } = &outcome else {
            panic!("expected NotTls, got {outcome:?}");
        };
        assert!(first_bytes.starts_with("HTTP/1.1 400"), "{first_bytes}");
    }

    #[tokio::test]
    async fn endless_handshake_record_stream_stops_at_the_cap() {
        let addr = serve_once(|mut s| async move {
            read_hello(&mut s).await;
            // A ServerHello header claiming 60 KiB, spread over full records.
            let mut first = vec![HANDSHAKE_SERVER_HELLO, 0x00, 0xf0, 0x00];
            first.resize(MAX_FRAGMENT, 0);
            for _ in 0..8 {
                if s.write_all(&record(CONTENT_HANDSHAKE, 0x0303, &first))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
        .await;
        let outcome = probe(addr, &spec(), DEADLINE).await.expect("probe");
        assert!(
            matches!(outcome, ProbeOutcome::NotTls { .. }),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let port = {
            let l = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind");
            l.local_addr().expect("local_addr").port()
        };
        let addr = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
        let outcome = probe(addr, &spec(), DEADLINE).await.expect("probe");
        assert_eq!(outcome, ProbeOutcome::Refused);
    }
}
