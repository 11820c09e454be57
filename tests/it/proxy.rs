//! `provsten proxy` speaks Toxiproxy's API: proven by driving it with `toxiproxy_rust`, the
//! real client, unchanged — and by measuring that what the client asks for happens to bytes
//! on the wire. The external-Toxiproxy backend is exercised against the same server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use provsten::network::backend::{External, FaultBackend};
use provsten::network::proxy::{Stream, ToxicSpec};

use super::util::{free_port, provsten};

/// A `provsten proxy` process: an external Toxiproxy for the tests; killed when dropped.
pub struct ProxyProcess {
    child: Child,
    pub api: SocketAddr,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_proxy() -> ProxyProcess {
    let mut child = provsten()
        .args(["proxy", "--api", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    // The first line names the address; `provsten proxy` prints it once bound.
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let api = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    ProxyProcess { child, api }
}

/// An echo server on a free port, one thread per connection.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// One echo round trip through `addr`; its duration.
fn round_trip(addr: &str) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    Ok(start.elapsed())
}

#[test]
fn toxiproxy_rust_drives_provsten_proxy_and_the_toxics_take_effect() {
    let p = start_proxy();
    let client = toxiproxy_rust::client::Client::new(p.api);
    assert!(client.is_running());
    assert!(client.version().unwrap().contains("version"));
    let upstream = echo_server();
    let listen = format!("127.0.0.1:{}", free_port());
    let proxies = client
        .populate(vec![toxiproxy_rust::proxy::ProxyPack::new(
            "echo".into(),
            listen.clone(),
            upstream.to_string(),
        )])
        .unwrap();
    assert_eq!(proxies.len(), 1);
    assert_eq!(proxies[0].proxy_pack.name, "echo");
    assert!(client.all().unwrap().contains_key("echo"));

    let direct = round_trip(&listen).unwrap();
    assert!(direct < Duration::from_millis(200), "{direct:?}");

    // Latency via the client: the round trip grows by the latency (within tolerance).
    let proxy = client.find_and_reset_proxy("echo").unwrap();
    proxy
        .with_latency("downstream".into(), 300, 0, 1.0)
        .apply(|| {
            let slow = round_trip(&listen).unwrap();
            assert!(slow >= Duration::from_millis(300), "{slow:?}");
            assert!(
                slow < Duration::from_millis(300) + Duration::from_millis(500),
                "{slow:?}"
            );
        })
        .unwrap();
    assert!(
        proxy.toxics().unwrap().is_empty(),
        "apply() removed its toxic"
    );

    // Down: refused while disabled, back afterwards.
    proxy
        .with_down(|| {
            assert!(round_trip(&listen).is_err(), "a disabled link must refuse");
        })
        .unwrap();
    assert!(round_trip(&listen).is_ok());

    // limit_data: the connection closes after exactly that many bytes.
    proxy.with_limit_data("downstream".into(), 2, 1.0);
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(got, b"pi");
    client.reset().unwrap();
    assert!(client
        .find_proxy("echo")
        .unwrap()
        .toxics()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn status_codes_and_errors_match_toxiproxy() {
    let p = start_proxy();
    let api = External {
        api: p.api,
        deadline: Duration::from_secs(5),
    };
    let upstream = echo_server();
    let body =
        serde_json::json!({"name": "a", "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
    api.call("POST", "/proxies", Some(body.clone()))
        .await
        .unwrap();
    let dup = api
        .call("POST", "/proxies", Some(body))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        dup.contains("HTTP 409") && dup.contains("proxy already exists"),
        "{dup}"
    );
    let missing = api
        .call("GET", "/proxies/nope", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("HTTP 404") && missing.contains("proxy not found"),
        "{missing}"
    );
    let no_name = api
        .call(
            "POST",
            "/proxies",
            Some(serde_json::json!({"upstream": "x"})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        no_name.contains("HTTP 400") && no_name.contains("missing required field: name"),
        "{no_name}"
    );
    let bad_type = api
        .call(
            "POST",
            "/proxies/a/toxics",
            Some(serde_json::json!({"type": "lag", "attributes": {}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        bad_type.contains("HTTP 400") && bad_type.contains("invalid toxic type"),
        "{bad_type}"
    );
    let negative = api
        .call(
            "POST",
            "/proxies/a/toxics",
            Some(serde_json::json!({"type": "latency", "attributes": {"latency": -5}})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(negative.contains("HTTP 400"), "{negative}");
    let t = api
        .call("POST", "/proxies/a/toxics", Some(serde_json::json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 10}})))
        .await
        .unwrap();
    assert_eq!(
        t["name"], "latency_upstream",
        "Toxiproxy's default toxic name"
    );
    let again = api
        .call("POST", "/proxies/a/toxics", Some(serde_json::json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 10}})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        again.contains("HTTP 409") && again.contains("toxic already exists"),
        "{again}"
    );
    let updated = api
        .call(
            "PATCH",
            "/proxies/a/toxics/latency_upstream",
            Some(serde_json::json!({"attributes": {"latency": 20}})),
        )
        .await
        .unwrap();
    assert_eq!(updated["attributes"]["latency"], 20);
    api.call("DELETE", "/proxies/a/toxics/latency_upstream", None)
        .await
        .unwrap();
    api.call("DELETE", "/proxies/a", None).await.unwrap();
    // Browsers are refused, as by Toxiproxy.
    let mut s = tokio::net::TcpStream::connect(p.api).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        b"GET /proxies HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
}

#[tokio::test]
async fn the_external_backend_drives_a_toxiproxy_server() {
    let p = start_proxy();
    let backend = External::from_url(&format!("http://{}", p.api)).unwrap();
    let upstream = echo_server();
    let listen = backend
        .create_link("ext", "127.0.0.1:0", &upstream.to_string())
        .await
        .unwrap();
    let l = listen.to_string();
    let base = tokio::task::spawn_blocking({
        let l = l.clone();
        move || round_trip(&l)
    })
    .await
    .unwrap()
    .unwrap();
    backend
        .add_toxic(
            "ext",
            ToxicSpec {
                name: "slow".into(),
                kind: "latency".into(),
                stream: Stream::Downstream,
                toxicity: 1.0,
                attributes: serde_json::json!({"latency": 250}),
            },
        )
        .await
        .unwrap();
    let slow = tokio::task::spawn_blocking({
        let l = l.clone();
        move || round_trip(&l)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        slow >= base + Duration::from_millis(200),
        "{base:?} → {slow:?}"
    );
    backend.remove_toxic("ext", "slow").await.unwrap();
    backend.set_enabled("ext", false).await.unwrap();
    let refused = tokio::task::spawn_blocking(move || round_trip(&l))
        .await
        .unwrap();
    assert!(refused.is_err());
    backend.delete_link("ext").await.unwrap();
    assert!(backend
        .delete_link("ext")
        .await
        .unwrap_err()
        .to_string()
        .contains("404"));
}

/// Issue 15 item 7: odd bytes in a path (a `%` before a non-ASCII character) are answered
/// 404, not a panic, and the API keeps serving.
#[test]
fn odd_bytes_in_an_api_path_get_404_and_the_api_keeps_serving() {
    let proxy = start_proxy();
    for path in [
        &b"/proxies/%a\xc3\xa9"[..],
        b"/proxies/%",
        b"/proxies/%zz%C3",
        b"/proxies/%ff%fe",
    ] {
        let mut s = TcpStream::connect(proxy.api).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(path);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(&req).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let status = answer
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        assert!(
            status == "404" || status == "400",
            "{}: {answer:?}",
            String::from_utf8_lossy(path)
        );
    }
    let mut s = TcpStream::connect(proxy.api).unwrap();
    s.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// One HTTP/1.1 request to the API; (status, body).
fn api(proxy: &ProxyProcess, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(proxy.api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Issue 15 item 8: fields of the wrong JSON type are refused as Toxiproxy refuses them,
/// and `/populate` checks every entry before creating any.
#[test]
fn wrong_types_are_400_and_populate_is_all_or_nothing() {
    let proxy = start_proxy();
    let upstream = echo_server();
    let (status, body) = api(
        &proxy,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"a","upstream":"{upstream}","enabled":"false"}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(api(&proxy, "GET", "/proxies/a", "").0, 404);
    let (status, body) = api(
        &proxy,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"b","upstream":"{upstream}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(
        &proxy,
        "POST",
        "/proxies/b/toxics",
        r#"{"name":"lat","type":"latency","attributes":{"latency":10}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &proxy,
        "POST",
        "/proxies/b/toxics/lat",
        r#"{"toxicity":"x"}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (_, body) = api(&proxy, "GET", "/proxies/b/toxics/lat", "");
    assert!(body.contains(r#""toxicity":1"#), "{body}");
    let (status, body) = api(
        &proxy,
        "POST",
        "/populate",
        &format!(
            r#"[{{"name":"c","upstream":"{upstream}"}},{{"name":"d","upstream":"{upstream}","enabled":"yes"}}]"#
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        api(&proxy, "GET", "/proxies/c", "").0,
        404,
        "populate left c behind"
    );
}

/// `GET /metrics` of `provsten proxy`: the whole answer (head and body).
fn scrape(proxy: &ProxyProcess) -> String {
    let mut s = TcpStream::connect(proxy.api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// The value of series `name{...labels}` whose labels contain `labels`.
fn series(answer: &str, name: &str, labels: &str) -> u64 {
    let found: Vec<u64> = answer
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels} in\n{answer}");
    found[0]
}

/// The binary serves Prometheus' format on the API port, with Toxiproxy's byte counters
/// exact for a bulk echo, a counted connection, and an active gauge back at 0 after it.
#[test]
fn provsten_proxy_serves_metrics_that_count_every_byte() {
    let proxy = start_proxy();
    let upstream = echo_server();
    let (status, body) = api(
        &proxy,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"scraped","upstream":"{upstream}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let listen: String = serde_json::from_str::<serde_json::Value>(&body).unwrap()["listen"]
        .as_str()
        .unwrap()
        .to_string();
    let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
    let mut c = TcpStream::connect(&listen).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
    let mut got = vec![0u8; data.len()];
    c.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == data, "bytes changed on the way");
    drop(c);

    let labels = format!(r#"listener="{listen}",proxy="scraped",upstream="{upstream}""#);
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = scrape(&proxy);
        if series(&answer, "toxiproxy_proxy_active_connections", &labels) == 0 {
            break answer;
        }
        assert!(Instant::now() < deadline, "still open:\n{answer}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let (head, _) = answer.split_once("\r\n\r\n").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    for name in [
        "toxiproxy_proxy_received_bytes_total",
        "toxiproxy_proxy_sent_bytes_total",
    ] {
        for direction in ["upstream", "downstream"] {
            let labels = format!(r#"direction="{direction}",{labels}"#);
            assert_eq!(
                series(&answer, name, &labels),
                data.len() as u64,
                "{name} {direction}"
            );
        }
    }
    assert_eq!(
        series(&answer, "toxiproxy_proxy_connections_total", &labels),
        1
    );
    let (status, body) = api(&proxy, "DELETE", "/metrics", "");
    assert_eq!(status, 405, "{body}");
}
