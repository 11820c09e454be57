//! Toxiproxy 2.x's HTTP API over the embedded fault proxy (`provsten proxy`), with the same
//! routes, JSON shapes and status codes, so existing Toxiproxy clients drive provsten
//! unchanged; and `GET /metrics`, the proxies' traffic counters for Prometheus.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::proxy::{
    LinkConfig, LinkMetrics, LinkUpdate, ProxyError, ProxyServer, Stream, ToxicSpec, ToxicUpdate,
};

/// The Toxiproxy version whose API this mirrors (what `/version` reports).
pub const TOXIPROXY_API_VERSION: &str = "2.12.0";

/// Bodies above this are refused; Toxiproxy payloads are tiny.
const BODY_LIMIT: usize = 1 << 20;
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);

/// Serves the API on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, proxy: Arc<ProxyServer>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, req).await) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

/// Binds `addr` and serves; returns the bound address and the task.
pub async fn start(
    addr: SocketAddr,
    proxy: Arc<ProxyServer>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(listener, proxy))))
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn no_content() -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// Toxiproxy's error body: `{"error": "...", "status": N}`.
fn error(status: u16, message: impl Into<String>) -> Reply {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(code, json!({"error": message.into(), "status": status}))
}

fn proxy_error(e: ProxyError) -> Reply {
    error(e.status(), e.to_string())
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The request body as JSON; the error is Toxiproxy's 400 message.
async fn body_json<T: for<'de> Deserialize<'de>>(
    req: Request<hyper::body::Incoming>,
) -> Result<T, String> {
    let bytes = Limited::new(req.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| format!("bad request body: {e}"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("bad request body: {e}"))
}

async fn handle(proxy: &ProxyServer, req: Request<hyper::body::Incoming>) -> Reply {
    // Toxiproxy refuses browsers, so a web page cannot drive it by cross-site requests.
    let browser = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        let mut r = Response::new(Full::new(Bytes::from_static(b"User agent not allowed\n")));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (&method, segs.as_slice()) {
        (&Method::GET, ["version"]) => {
            reply(StatusCode::OK, json!({"version": TOXIPROXY_API_VERSION}))
        }
        (m, ["metrics"]) if m == Method::GET || m == Method::HEAD => metrics(proxy),
        (_, ["metrics"]) => {
            let mut r = error(405, "405 method not allowed (hint: GET /metrics)");
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET, HEAD"),
            );
            r
        }
        (&Method::POST, ["reset"]) => {
            proxy.reset().await;
            no_content()
        }
        (&Method::GET, ["proxies"]) => {
            let map: serde_json::Map<String, Value> = proxy
                .list()
                .into_iter()
                .map(|l| (l.name.clone(), to_json(&l)))
                .collect();
            reply(StatusCode::OK, Value::Object(map))
        }
        (&Method::POST, ["proxies"]) => {
            let input: Value = match body_json(req).await {
                Ok(v) => v,
                Err(msg) => return error(400, msg),
            };
            let cfg = match link_config(&input) {
                Ok(c) => c,
                Err(msg) => return error(400, msg),
            };
            match proxy.create(cfg).await {
                Ok(info) => reply(StatusCode::CREATED, to_json(&info)),
                Err(e) => proxy_error(e),
            }
        }
        (&Method::POST, ["populate"]) => populate(proxy, req).await,
        (&Method::GET, ["proxies", name]) => match proxy.get(name) {
            Ok(info) => reply(StatusCode::OK, to_json(&info)),
            Err(e) => proxy_error(e),
        },
        (m, ["proxies", name]) if m == Method::POST || m == Method::PATCH => {
            let update: LinkUpdate = match body_json(req).await {
                Ok(v) => v,
                Err(msg) => return error(400, msg),
            };
            match proxy.update(name, update).await {
                Ok(info) => reply(StatusCode::OK, to_json(&info)),
                Err(e) => proxy_error(e),
            }
        }
        (&Method::DELETE, ["proxies", name]) => match proxy.delete(name).await {
            Ok(()) => no_content(),
            Err(e) => proxy_error(e),
        },
        (&Method::GET, ["proxies", name, "toxics"]) => match proxy.toxics(name) {
            Ok(t) => reply(StatusCode::OK, to_json(&t)),
            Err(e) => proxy_error(e),
        },
        (&Method::POST, ["proxies", name, "toxics"]) => {
            let spec: ToxicSpec = match body_json(req).await {
                Ok(v) => v,
                Err(msg) => return error(400, msg),
            };
            match proxy.add_toxic(name, spec) {
                Ok(t) => reply(StatusCode::OK, to_json(&t)),
                Err(e) => proxy_error(e),
            }
        }
        (&Method::GET, ["proxies", name, "toxics", toxic]) => match proxy.get_toxic(name, toxic) {
            Ok(t) => reply(StatusCode::OK, to_json(&t)),
            Err(e) => proxy_error(e),
        },
        (m, ["proxies", name, "toxics", toxic]) if m == Method::POST || m == Method::PATCH => {
            let v: Value = match body_json(req).await {
                Ok(v) => v,
                Err(msg) => return error(400, msg),
            };
            let input: ToxicUpdateInput = match serde_json::from_value(v) {
                Ok(i) => i,
                Err(e) => return error(400, format!("bad toxic update: {e}")),
            };
            let update = ToxicUpdate {
                attributes: input.attributes,
                toxicity: input.toxicity,
            };
            match proxy.update_toxic(name, toxic, update) {
                Ok(t) => reply(StatusCode::OK, to_json(&t)),
                Err(e) => proxy_error(e),
            }
        }
        (&Method::DELETE, ["proxies", name, "toxics", toxic]) => {
            match proxy.remove_toxic(name, toxic) {
                Ok(()) => no_content(),
                Err(e) => proxy_error(e),
            }
        }
        _ => error(404, "404 page not found"),
    }
}

/// The content type of Prometheus' text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric `/metrics` shows: its name, type and help, and its value in one series.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// Whether a series is per stream (with a `direction` label).
    per_stream: bool,
    value: fn(&LinkMetrics, Stream) -> u64,
}

/// What `/metrics` shows. The byte counters are Toxiproxy's (2.6+ with `-proxy-metrics`):
/// the same names, labels and meaning. Toxiproxy has no connection metrics; the two here
/// follow Prometheus' naming (`_total` for a counter, none for a gauge) in its namespace.
const METRICS: [Metric; 4] = [
    Metric {
        name: "toxiproxy_proxy_received_bytes_total",
        kind: "counter",
        help: "Bytes the proxy read from the source of a stream: the client (direction upstream) or the server (downstream).",
        per_stream: true,
        value: |m, s| m.received_bytes.get(s),
    },
    Metric {
        name: "toxiproxy_proxy_sent_bytes_total",
        kind: "counter",
        help: "Bytes the proxy wrote into the destination of a stream: the server (direction upstream) or the client (downstream).",
        per_stream: true,
        value: |m, s| m.sent_bytes.get(s),
    },
    Metric {
        name: "toxiproxy_proxy_connections_total",
        kind: "counter",
        help: "Client connections the proxy accepted.",
        per_stream: false,
        value: |m, _| m.connections_total,
    },
    Metric {
        name: "toxiproxy_proxy_active_connections",
        kind: "gauge",
        help: "Client connections the proxy accepted and has not closed yet.",
        per_stream: false,
        value: |m, _| m.active_connections,
    },
];

/// `GET /metrics`: every link's counters in Prometheus' text format. Written by hand, not
/// with the `prometheus` crate: the format is a HELP line, a TYPE line and one line per
/// series for each of four metrics, and the crate would add a registry to fill on every
/// scrape from counters that already exist, for nothing.
fn metrics(proxy: &ProxyServer) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(metrics_text(&proxy.metrics()))));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(METRICS_CONTENT_TYPE),
    );
    r
}

/// The exposition of `links`: every metric's HELP and TYPE (also with no link yet), then
/// its series, labels in Toxiproxy's order (sorted by name).
pub fn metrics_text(links: &[LinkMetrics]) -> String {
    let mut out = String::new();
    for metric in &METRICS {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(out, "# TYPE {} {}", metric.name, metric.kind);
        for link in links {
            let labels = format!(
                "listener=\"{}\",proxy=\"{}\",upstream=\"{}\"",
                label_value(&link.listener),
                label_value(&link.proxy),
                label_value(&link.upstream)
            );
            if metric.per_stream {
                for stream in Stream::ALL {
                    let value = (metric.value)(link, stream);
                    let _ = writeln!(
                        out,
                        "{}{{direction=\"{stream}\",{labels}}} {value}",
                        metric.name
                    );
                }
            } else {
                let value = (metric.value)(link, Stream::Upstream);
                let _ = writeln!(out, "{}{{{labels}}} {value}", metric.name);
            }
        }
    }
    out
}

/// A label value escaped as the text format wants: backslash, double quote and line feed.
fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A proxy object as a request gives it: fields of the wrong JSON type are refused (400),
/// as Toxiproxy does, rather than read as absent.
#[derive(serde::Deserialize)]
struct ProxyInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    listen: String,
    enabled: Option<bool>,
}

/// A proxy object from a request: `name` and `upstream` required, `enabled` defaults true.
fn link_config(v: &Value) -> Result<LinkConfig, String> {
    let input: ProxyInput =
        serde_json::from_value(v.clone()).map_err(|e| format!("bad proxy: {e}"))?;
    if input.name.is_empty() {
        return Err("missing required field: name".into());
    }
    if input.upstream.is_empty() {
        return Err("missing required field: upstream".into());
    }
    let listen = match input.listen {
        l if l.is_empty() => "127.0.0.1:0".to_string(),
        l => l,
    };
    Ok(LinkConfig {
        name: input.name,
        listen,
        upstream: input.upstream,
        enabled: input.enabled.unwrap_or(true),
    })
}

/// A toxic update as a request gives it; a field of the wrong type is a 400.
#[derive(serde::Deserialize)]
struct ToxicUpdateInput {
    attributes: Option<Value>,
    toxicity: Option<f32>,
}

/// `/populate`: create the given proxies, replacing ones of the same name whose listen or
/// upstream differ (Toxiproxy's semantics); answers `{"proxies": [...]}`.
async fn populate(proxy: &ProxyServer, req: Request<hyper::body::Incoming>) -> Reply {
    let list: Vec<Value> = match body_json(req).await {
        Ok(v) => v,
        Err(msg) => return error(400, msg),
    };
    // Every entry is checked before any is created, so a bad one changes nothing.
    let configs: Vec<LinkConfig> = match list.iter().map(link_config).collect() {
        Ok(c) => c,
        Err(msg) => return error(400, msg),
    };
    let mut done = Vec::new();
    for cfg in configs {
        if let Ok(existing) = proxy.get(&cfg.name) {
            let same = existing.upstream == cfg.upstream
                && (cfg.listen == existing.listen || cfg.listen.ends_with(":0"));
            if same {
                let info = proxy
                    .update(
                        &cfg.name,
                        LinkUpdate {
                            enabled: Some(cfg.enabled),
                            ..LinkUpdate::default()
                        },
                    )
                    .await;
                match info {
                    Ok(i) => done.push(to_json(&i)),
                    Err(e) => return populate_error(e, done),
                }
                continue;
            }
            if let Err(e) = proxy.delete(&cfg.name).await {
                return populate_error(e, done);
            }
        }
        match proxy.create(cfg).await {
            Ok(i) => done.push(to_json(&i)),
            Err(e) => return populate_error(e, done),
        }
    }
    reply(StatusCode::CREATED, json!({"proxies": done}))
}

fn populate_error(e: ProxyError, done: Vec<Value>) -> Reply {
    let status = e.status();
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(
        code,
        json!({"error": e.to_string(), "status": status, "proxies": done}),
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use proptest::prelude::*;

    use super::*;

    /// One raw request; the whole answer (the server closes after it).
    fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(request).expect("write");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        answer
    }

    fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"/proxies".to_vec()),
            Just(b"/toxics".to_vec()),
            Just(b"/populate".to_vec()),
            Just(b"/metrics".to_vec()),
            Just(b"/".to_vec()),
            Just(b"%".to_vec()),
            "%[0-9a-fA-F]{0,2}".prop_map(String::into_bytes),
            "[a-zA-Z0-9._~-]{1,8}".prop_map(String::into_bytes),
            "\\PC{1,3}".prop_map(String::into_bytes),
            // Arbitrary bytes, but none that ends the request line.
            proptest::collection::vec(0x21u8..=0xff, 1..4),
        ];
        proptest::collection::vec(piece, 1..6).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Random methods, paths (percent sequences, UTF-8, raw bytes) and bodies: every
        /// request gets a status line, JSON where the answer says JSON, and the API keeps
        /// serving (issue 15).
        #[test]
        fn every_request_is_answered_and_nothing_panics(
            method in prop_oneof![Just("GET".to_string()), Just("POST".to_string()), Just("PATCH".to_string()), Just("DELETE".to_string()), "[A-Z]{1,7}"],
            path in path_bytes(),
            body in prop_oneof![Just(String::new()), "\\PC{0,40}", Just("{\"name\":\"x\",\"upstream\":\"127.0.0.1:1\",\"enabled\":\"no\"}".to_string()), Just("[{\"name\":1}]".to_string())],
        ) {
            // The server runs on the runtime's worker; the test thread talks plain TCP.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let proxy = ProxyServer::new();
            let (addr, task) = rt
                .block_on(start("127.0.0.1:0".parse().expect("addr"), proxy))
                .expect("start");
            let mut req = format!("{method} ").into_bytes();
            req.extend_from_slice(&path);
            req.extend_from_slice(format!(" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
            let answer = exchange(addr, &req);
            let text = String::from_utf8_lossy(&answer);
            prop_assert!(text.starts_with("HTTP/1.1 "), "no status line for {:?}: {text:?}", String::from_utf8_lossy(&req));
            if text.to_ascii_lowercase().contains("content-type: application/json") {
                let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
                prop_assert!(serde_json::from_str::<Value>(json).is_ok(), "not JSON: {text:?}");
            }
            let version = exchange(addr, b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            task.abort();
            drop(rt);
            prop_assert!(String::from_utf8_lossy(&version).starts_with("HTTP/1.1 200"));
        }
    }
}

#[cfg(test)]
mod metrics_tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Instant;

    use rand::RngCore;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::network::proxy::testutil::{echo_server, round_trip, toxic, within};

    /// One series' line of the exposition, its label values unescaped.
    #[derive(Debug, Clone)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        /// The value as written.
        raw: String,
    }

    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'));
        first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    /// `name="value",...` up to the closing brace; the rest after it.
    fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
        let mut labels = BTreeMap::new();
        loop {
            if let Some(rest) = s.strip_prefix('}') {
                return Ok((labels, rest));
            }
            let (name, rest) = s.split_once("=\"").ok_or("a label without =\"")?;
            if !is_name(name, false) {
                return Err(format!("bad label name {name:?}"));
            }
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("an unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.insert(name.to_string(), value).is_some() {
                return Err(format!("label {name} twice"));
            }
            s = &rest[end + 1..];
            if let Some(rest) = s.strip_prefix(',') {
                s = rest;
            } else if !s.starts_with('}') {
                return Err("no , or } after a label".into());
            }
        }
    }

    /// Checks `text` against the text exposition format as `/metrics` writes it: every line
    /// ends with a line feed; a comment is `# HELP name text` or `# TYPE name type`, HELP
    /// before TYPE before the metric's series, each metric in one block; every other line is
    /// `name{labels} value`, of a metric whose TYPE came, with a numeric value, and no
    /// series twice.
    fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("the last line has no line feed".into());
        }
        let mut samples = Vec::new();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut current: Option<String> = None;
        let mut helped: Option<String> = None;
        let mut seen = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                let (kind, name, rest) = (parts.next(), parts.next(), parts.next());
                let (Some(kind), Some(name), Some(rest)) = (kind, name, rest) else {
                    return Err(at("a comment of fewer than 3 words".into()));
                };
                if !is_name(name, true) {
                    return Err(at(format!("bad metric name {name:?}")));
                }
                match kind {
                    "HELP" => {
                        if done.contains(name) || current.as_deref() == Some(name) {
                            return Err(at("HELP after the metric's block".into()));
                        }
                        helped = Some(name.to_string());
                    }
                    "TYPE" => {
                        if !["counter", "gauge"].contains(&rest) {
                            return Err(at(format!("type {rest:?}")));
                        }
                        if helped.as_deref() != Some(name) {
                            return Err(at("TYPE without HELP right before".into()));
                        }
                        if let Some(previous) = current.replace(name.to_string()) {
                            done.insert(previous);
                        }
                        if done.contains(name) {
                            return Err(at("a metric in two blocks".into()));
                        }
                    }
                    _ => return Err(at("neither HELP nor TYPE".into())),
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..name_end];
            if !is_name(name, true) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            if current.as_deref() != Some(name) {
                return Err(at("a series outside its metric's TYPE block".into()));
            }
            let (labels, rest) = match line[name_end..].strip_prefix('{') {
                Some(after) => parse_labels(after).map_err(at)?,
                None => (BTreeMap::new(), &line[name_end..]),
            };
            let raw = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("no single space before the value".into()))?;
            if raw.contains(' ') || raw.parse::<f64>().is_err() {
                return Err(at(format!("value {raw:?} is not a number")));
            }
            if !seen.insert((name.to_string(), labels.clone())) {
                return Err(at("the same series twice".into()));
            }
            samples.push(Sample {
                name: name.to_string(),
                labels,
                raw: raw.to_string(),
            });
        }
        Ok(samples)
    }

    /// One request on its own connection: the status, the head (lower case) and the body.
    async fn http(api: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut s = within(TcpStream::connect(api)).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        s.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        within(s.read_to_end(&mut answer)).await.expect("read");
        let text = String::from_utf8(answer).expect("UTF-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status");
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    /// `GET /metrics`, checked line by line.
    async fn scrape(api: SocketAddr) -> Vec<Sample> {
        let (status, head, body) = http(api, "GET", "/metrics").await;
        assert_eq!(status, 200, "{head}\n{body}");
        assert!(
            head.contains(&format!("content-type: {METRICS_CONTENT_TYPE}")),
            "{head}"
        );
        parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
    }

    /// One link's counters as `/metrics` shows them (it has one series).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct Seen {
        /// Upstream, downstream.
        received: [u64; 2],
        sent: [u64; 2],
        total: u64,
        active: u64,
    }

    impl Seen {
        fn of(samples: &[Sample], proxy: &str) -> Seen {
            let mut seen = Seen::default();
            let mut found = BTreeSet::new();
            for s in samples.iter().filter(|s| s.labels["proxy"] == proxy) {
                let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
                let direction = s.labels.get("direction").map(String::as_str);
                let expected_keys = match direction {
                    Some(_) => vec!["direction", "listener", "proxy", "upstream"],
                    None => vec!["listener", "proxy", "upstream"],
                };
                assert_eq!(keys, expected_keys, "{s:?}");
                assert!(found.insert((s.name.clone(), direction)), "{s:?} twice");
                let v: u64 = s.raw.parse().expect("a whole number");
                let i = match direction {
                    Some("upstream") => 0,
                    Some("downstream") => 1,
                    None => 0,
                    Some(other) => panic!("direction {other:?}"),
                };
                match s.name.as_str() {
                    "toxiproxy_proxy_received_bytes_total" => seen.received[i] = v,
                    "toxiproxy_proxy_sent_bytes_total" => seen.sent[i] = v,
                    "toxiproxy_proxy_connections_total" => seen.total = v,
                    "toxiproxy_proxy_active_connections" => seen.active = v,
                    other => panic!("unexpected metric {other}"),
                }
            }
            assert_eq!(found.len(), 6, "every metric of {proxy:?}: {samples:?}");
            seen
        }

        /// What changed since `before` (the gauge as it is now).
        fn since(self, before: Seen) -> Seen {
            let d = |a: u64, b: u64| a.checked_sub(b).expect("a counter went down");
            Seen {
                received: [
                    d(self.received[0], before.received[0]),
                    d(self.received[1], before.received[1]),
                ],
                sent: [
                    d(self.sent[0], before.sent[0]),
                    d(self.sent[1], before.sent[1]),
                ],
                total: d(self.total, before.total),
                active: self.active,
            }
        }
    }

    /// Scrapes until link `proxy` has no open connection (its connection tasks are over,
    /// so every byte is counted); panics after a deadline.
    async fn idle(api: SocketAddr, proxy: &str) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = Seen::of(&scrape(api).await, proxy);
            if seen.active == 0 {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{proxy}: connections still open: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn random(len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        rand::thread_rng().fill_bytes(&mut data);
        data
    }

    /// Every byte is counted once, sent and received, each way, whichever path carries it:
    /// copy, splice, toxics, and moves between them on a live connection; every connection
    /// is counted, and the gauge falls back to 0 once they close. Each phase checks its own
    /// difference, so a path that did not count (or counted twice) fails its phase.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_count_every_byte_on_every_path_exactly_once() {
        let proxy = ProxyServer::new();
        let (api, task) = start("127.0.0.1:0".parse().expect("addr"), proxy.clone())
            .await
            .expect("start");
        let upstream = echo_server().await;
        let before_any = scrape(api).await;
        assert!(before_any.is_empty(), "{before_any:?}");
        let info = proxy
            .create(LinkConfig {
                name: "counted".into(),
                listen: "127.0.0.1:0".into(),
                upstream: upstream.to_string(),
                enabled: true,
            })
            .await
            .expect("create");
        let addr: SocketAddr = info.listen.parse().expect("listen");
        let start_seen = idle(api, "counted").await;
        assert_eq!(start_seen, Seen::default());
        let samples = scrape(api).await;
        let one = samples
            .iter()
            .find(|s| s.name == "toxiproxy_proxy_connections_total")
            .expect("a series");
        assert_eq!(one.labels["listener"], info.listen);
        assert_eq!(one.labels["upstream"], upstream.to_string());
        let spliced = || proxy.spliced_bytes("counted").expect("link");
        let both = |n: u64| Seen {
            received: [n, n],
            sent: [n, n],
            total: 1,
            active: 0,
        };

        // The copy path: small requests, one at a time.
        let mut c = within(TcpStream::connect(addr)).await.expect("connect");
        let mut buf = [0u8; 100];
        for i in 0..50u8 {
            c.write_all(&[i; 100]).await.expect("write");
            within(c.read_exact(&mut buf)).await.expect("read");
            assert_eq!(buf, [i; 100]);
        }
        let open = Seen::of(&scrape(api).await, "counted");
        assert_eq!((open.total, open.active), (1, 1), "{open:?}");
        drop(c);
        let after_copy = idle(api, "counted").await;
        assert_eq!(after_copy.since(start_seen), both(5_000), "copy path");
        assert_eq!(spliced(), 0, "small requests were spliced");

        // The splice path: a bulk transfer.
        let data = random(2 << 20);
        assert!(round_trip(addr, data.clone()).await == data);
        let after_splice = idle(api, "counted").await;
        assert_eq!(
            after_splice.since(after_copy),
            both(data.len() as u64),
            "splice path"
        );
        assert!(
            spliced() > data.len() as u64,
            "the bulk transfer barely spliced: {} bytes",
            spliced()
        );

        // The toxic path: toxics on both streams from the start.
        let spliced_before = spliced();
        for (kind, stream, attributes) in [
            ("latency", Stream::Upstream, json!({"latency": 0})),
            (
                "slicer",
                Stream::Downstream,
                json!({"average_size": 8_000, "size_variation": 2_000}),
            ),
        ] {
            proxy
                .add_toxic("counted", toxic(kind, stream, attributes))
                .expect("add toxic");
        }
        let data = random((256 << 10) + 12_345);
        assert!(round_trip(addr, data.clone()).await == data);
        let after_toxics = idle(api, "counted").await;
        assert_eq!(
            after_toxics.since(after_splice),
            both(data.len() as u64),
            "toxic path"
        );
        assert_eq!(spliced(), spliced_before, "a stream with toxics spliced");
        proxy.reset().await;

        // Moves between the paths on a live connection: bulk data (splicing), toxics added
        // (the pipe's bytes go to the toxics), removed (copying, then splicing again).
        let socket = within(TcpStream::connect(addr)).await.expect("connect");
        let (mut r, mut w) = socket.into_split();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.map(|_| got)
        });
        let data = random(3 << 20);
        let (first, rest) = data.split_at(1 << 20);
        let (middle, last) = rest.split_at(1 << 20);
        w.write_all(first).await.expect("write");
        for stream in Stream::ALL {
            proxy
                .add_toxic("counted", toxic("latency", stream, json!({"latency": 1})))
                .expect("add toxic");
        }
        w.write_all(middle).await.expect("write");
        proxy.reset().await;
        w.write_all(last).await.expect("write");
        w.shutdown().await.expect("shutdown");
        let got = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .expect("the echo within 30 s")
            .expect("reader")
            .expect("read");
        assert!(got == data, "bytes changed on the way");
        let after_moves = idle(api, "counted").await;
        assert_eq!(
            after_moves.since(after_toxics),
            both(data.len() as u64),
            "moves between the paths"
        );

        // Toxics added while the proxy holds bytes it read and has not written on (in a
        // splice pipe, or a copy buffer): a client that reads nothing, through a small
        // receive buffer, stalls the echo once the proxy's socket buffer towards it is full
        // (at most 4 MiB with Linux's default `net.ipv4.tcp_wmem`).
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("receive buffer");
        let client = within(socket.connect(addr)).await.expect("connect");
        let (mut r, mut w) = client.into_split();
        let data = random(8 << 20);
        let writer = tokio::spawn({
            let data = data.clone();
            async move {
                w.write_all(&data).await.expect("write");
                w.shutdown().await.expect("shutdown");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = None;
        loop {
            let now = Seen::of(&scrape(api).await, "counted").since(after_moves);
            if now.received[1] > now.sent[1] && last == Some(now) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the echo never stalled (socket buffers over 8 MiB?): {now:?}"
            );
            last = Some(now);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for stream in Stream::ALL {
            proxy
                .add_toxic("counted", toxic("latency", stream, json!({"latency": 0})))
                .expect("add toxic");
        }
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut got))
            .await
            .expect("the echo within 30 s")
            .expect("read");
        within(writer).await.expect("writer");
        assert!(got == data, "bytes changed on the way");
        let after_held = idle(api, "counted").await;
        assert_eq!(
            after_held.since(after_moves),
            both(data.len() as u64),
            "toxics taking over held bytes"
        );
        proxy.reset().await;

        // What a toxic keeps back is received, not sent: limit_data passes 1000 bytes of
        // 5000 to the server, then closes the connection.
        proxy
            .add_toxic(
                "counted",
                toxic("limit_data", Stream::Upstream, json!({"bytes": 1000})),
            )
            .expect("add toxic");
        let mut c = within(TcpStream::connect(addr)).await.expect("connect");
        let _ = c.write_all(&[7u8; 5000]).await;
        let mut sink = Vec::new();
        let _ = within(c.read_to_end(&mut sink)).await;
        drop(c);
        let limited = idle(api, "counted").await.since(after_held);
        assert_eq!(limited.sent[0], 1000, "{limited:?}");
        assert!((1000..=5000).contains(&limited.received[0]), "{limited:?}");
        assert!(
            limited.sent[1] <= limited.received[1] && limited.received[1] <= 1000,
            "{limited:?}"
        );
        assert_eq!(limited.total, 1);
        task.abort();
    }

    /// Any name the API accepts is a valid label value: `"`, `\` and a line feed are
    /// escaped, and read back as they were.
    #[tokio::test]
    async fn label_values_are_escaped() {
        let proxy = ProxyServer::new();
        let (api, task) = start("127.0.0.1:0".parse().expect("addr"), proxy.clone())
            .await
            .expect("start");
        let upstream = echo_server().await.to_string();
        let names = ["quote\"d", "back\\slash", "line\nfeed", "all\\\"\n\\n"];
        for name in names {
            let body = json!({"name": name, "upstream": upstream}).to_string();
            let mut s = within(TcpStream::connect(api)).await.expect("connect");
            let request = format!(
                "POST /proxies HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(request.as_bytes()).await.expect("write");
            let mut answer = Vec::new();
            within(s.read_to_end(&mut answer)).await.expect("read");
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        }
        let (_, _, text) = http(api, "GET", "/metrics").await;
        for escaped in [
            r#"proxy="quote\"d""#,
            r#"proxy="back\\slash""#,
            r#"proxy="line\nfeed""#,
            r#"proxy="all\\\"\n\\n""#,
        ] {
            assert!(text.contains(escaped), "no {escaped} in\n{text}");
        }
        let samples = scrape(api).await;
        let shown: BTreeSet<&str> = samples.iter().map(|s| s.labels["proxy"].as_str()).collect();
        assert_eq!(shown, names.into_iter().collect());
        for name in names {
            assert_eq!(Seen::of(&samples, name), Seen::default());
        }
        task.abort();
    }

    #[test]
    fn label_value_escapes_only_what_the_format_says() {
        assert_eq!(label_value("plain:8474"), "plain:8474");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label_value("tab\tü"), "tab\tü");
    }

    #[test]
    fn the_parser_refuses_what_is_not_the_format() {
        let head = "# HELP m h\n# TYPE m counter\n";
        assert!(parse_exposition(&format!("{head}m{{a=\"b\"}} 1\n")).is_ok());
        for bad in [
            "m 1\n",
            "# TYPE m counter\nm 1\n",
            &format!("{head}m{{a=\"b\"}} 1"),
            &format!("{head}m{{a=\"b}} 1\n"),
            &format!("{head}m{{a=\"b\\t\"}} 1\n"),
            &format!("{head}m{{a=b}} 1\n"),
            &format!("{head}m{{a=\"b\"}}  1\n"),
            &format!("{head}m{{a=\"b\"}} x\n"),
            &format!("{head}m 1\nm 2\n"),
            &format!("{head}n 1\n"),
        ] {
            assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn no_link_is_every_help_and_type_and_no_series() {
        let text = metrics_text(&[]);
        assert_eq!(text.lines().count(), 8, "{text}");
        assert!(parse_exposition(&text).expect("parse").is_empty());
    }

    /// Other methods get Toxiproxy's JSON error, 405, and what is allowed; HEAD is GET
    /// without the body.
    #[tokio::test]
    async fn metrics_answers_other_methods_405_json() {
        let (api, task) = start("127.0.0.1:0".parse().expect("addr"), ProxyServer::new())
            .await
            .expect("start");
        for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"] {
            let (status, head, body) = http(api, method, "/metrics").await;
            assert_eq!(status, 405, "{method}: {head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            assert!(head.contains("allow: get, head"), "{head}");
            let json: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(json["status"], 405, "{body}");
        }
        let (status, head, body) = http(api, "HEAD", "/metrics").await;
        assert_eq!(status, 200, "{head}");
        assert!(body.is_empty(), "{body:?}");
        let (status, _, _) = http(api, "GET", "/metrics/").await;
        assert_eq!(status, 200);
        let (status, _, _) = http(api, "GET", "/metrics/x").await;
        assert_eq!(status, 404);
        task.abort();
    }
}
