//! Toxiproxy 2.x's HTTP API over the embedded fault proxy (`provsten proxy`), with the same
//! routes, JSON shapes and status codes, so existing Toxiproxy clients drive provsten
//! unchanged.

use std::convert::Infallible;
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

use super::proxy::{LinkConfig, LinkUpdate, ProxyError, ProxyServer, ToxicSpec, ToxicUpdate};

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
