use std::io::ErrorKind;
use std::time::Duration;

use rand::RngCore;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::testutil::{assert_between, echo_link, echo_server, round_trip, toxic, within};
use super::*;

async fn rtt(c: &mut TcpStream) -> Duration {
    let clock = Instant::now();
    c.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    within(c.read_exact(&mut buf)).await.expect("read");
    assert_eq!(&buf, b"ping");
    clock.elapsed()
}

/// Connecting is refused, or the connection is closed at once (accept backlog races).
async fn refused(addr: std::net::SocketAddr) -> bool {
    match within(TcpStream::connect(addr)).await {
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

/// Also a half-close test: the client's FIN reaches the echo server while the echo is
/// still flowing back, and the echo's FIN ends the client's read.
#[tokio::test]
async fn no_toxic_carries_1mb_intact_both_ways() {
    let (_proxy, addr) = echo_link("plain").await;
    let mut data = vec![0u8; 1 << 20];
    rand::thread_rng().fill_bytes(&mut data);
    let got = round_trip(addr, data.clone()).await;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes changed on the way");
}

#[tokio::test]
async fn toxics_on_both_streams_keep_1mb_intact() {
    let (proxy, addr) = echo_link("busy").await;
    proxy
        .add_toxic(
            "busy",
            toxic(
                "slicer",
                Stream::Upstream,
                json!({"average_size": 3000, "size_variation": 1000}),
            ),
        )
        .expect("add");
    proxy
        .add_toxic(
            "busy",
            toxic(
                "latency",
                Stream::Downstream,
                json!({"latency": 5, "jitter": 5}),
            ),
        )
        .expect("add");
    let mut data = vec![0u8; 1 << 20];
    rand::thread_rng().fill_bytes(&mut data);
    let got = round_trip(addr, data.clone()).await;
    assert!(got == data, "bytes changed, lost or reordered on the way");
}

#[tokio::test]
async fn link_info_is_toxiproxys_proxy_object() {
    let (proxy, addr) = echo_link("shape").await;
    let spec = ToxicSpec {
        name: String::new(),
        kind: "latency".into(),
        stream: Stream::Upstream,
        toxicity: 0.5,
        attributes: json!({"latency": 10}),
    };
    let added = proxy.add_toxic("shape", spec).expect("add");
    assert_eq!(added.name, "latency_upstream");
    let info = serde_json::to_value(proxy.get("shape").expect("get")).expect("json");
    let upstream = info["upstream"].clone();
    assert_eq!(
        info,
        json!({
            "name": "shape",
            "listen": addr.to_string(),
            "upstream": upstream,
            "enabled": true,
            "toxics": [{
                "name": "latency_upstream",
                "type": "latency",
                "stream": "upstream",
                "toxicity": 0.5,
                "attributes": {"latency": 10, "jitter": 0}
            }]
        })
    );
    // And a toxic reads back from Toxiproxy's JSON with its defaults.
    let parsed: ToxicSpec = serde_json::from_value(json!({"type": "timeout"})).expect("parse");
    assert_eq!(
        (parsed.stream, parsed.toxicity, parsed.name.as_str()),
        (Stream::Downstream, 1.0, "")
    );
    let cfg: LinkConfig = serde_json::from_value(
        json!({"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}),
    )
    .expect("parse");
    assert!(cfg.enabled, "enabled defaults to true");
}

#[tokio::test]
async fn list_is_sorted_and_errors_carry_toxiproxy_statuses() {
    let upstream = echo_server().await.to_string();
    let proxy = ProxyServer::new();
    for name in ["b", "a"] {
        let cfg = LinkConfig {
            name: name.into(),
            listen: String::new(),
            upstream: upstream.clone(),
            enabled: name == "a",
        };
        proxy.create(cfg).await.expect("create");
    }
    let names: Vec<String> = proxy.list().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(!proxy.get("b").expect("b").enabled);

    let dup = LinkConfig {
        name: "a".into(),
        listen: "127.0.0.1:0".into(),
        upstream: upstream.clone(),
        enabled: true,
    };
    let e = proxy.create(dup).await.expect_err("duplicate link");
    assert_eq!(
        (e.status(), e.to_string()),
        (409, "proxy already exists: a".to_string())
    );
    let e = proxy.get("nope").expect_err("no such link");
    assert_eq!(
        (e.status(), e.to_string()),
        (404, "proxy not found: nope".to_string())
    );
    assert_eq!(
        e.to_json(),
        json!({"error": "proxy not found: nope", "status": 404})
    );

    let t = toxic("latency", Stream::Downstream, json!({"latency": 1}));
    proxy.add_toxic("a", t.clone()).expect("add");
    let e = proxy
        .add_toxic("a", t.clone())
        .expect_err("duplicate toxic");
    assert!(matches!(e, ProxyError::AlreadyExists(_)), "{e:?}");
    assert_eq!(e.status(), 409);
    assert!(
        e.to_string()
            .starts_with("toxic already exists: latency_downstream"),
        "{e}"
    );
    // The same name on the other stream is still the same name.
    let mut other = t.clone();
    other.stream = Stream::Upstream;
    other.name = "latency_downstream".into();
    assert_eq!(
        proxy.add_toxic("a", other).map_err(|e| e.status()),
        Err(409)
    );

    let e = proxy
        .add_toxic("a", toxic("lag", Stream::Downstream, json!({})))
        .expect_err("bad type");
    assert!(
        matches!(e, ProxyError::InvalidToxicType(_)) && e.status() == 400,
        "{e:?}"
    );
    let e = proxy
        .add_toxic(
            "a",
            toxic("latency", Stream::Upstream, json!({"latency": -1})),
        )
        .expect_err("negative");
    assert!(
        matches!(e, ProxyError::BadRequest(_)) && e.to_string().contains("\"latency\""),
        "{e}"
    );
    let e = proxy
        .add_toxic("a", toxic("latency", Stream::Upstream, json!({"delay": 1})))
        .expect_err("unknown attribute");
    assert!(
        matches!(e, ProxyError::BadRequest(_)) && e.to_string().contains("\"delay\""),
        "{e}"
    );
    let e = proxy.get_toxic("a", "nope").expect_err("no such toxic");
    assert_eq!(e.status(), 404);
    assert!(e.to_string().starts_with("toxic not found: nope"), "{e}");
    assert_eq!(
        proxy.remove_toxic("a", "nope").map_err(|e| e.status()),
        Err(404)
    );
    assert_eq!(proxy.toxics("nope").map_err(|e| e.status()), Err(404));

    let missing = LinkConfig {
        name: String::new(),
        listen: String::new(),
        upstream,
        enabled: true,
    };
    let e = proxy.create(missing).await.expect_err("no name");
    assert_eq!(
        (e.status(), e.to_string()),
        (400, "missing required field: name".to_string())
    );
    proxy.shutdown().await;
    assert!(proxy.list().is_empty());
}

#[tokio::test]
async fn update_toxic_merges_attributes_and_takes_effect_live() {
    let (proxy, addr) = echo_link("upd").await;
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    rtt(&mut c).await;
    proxy
        .add_toxic(
            "upd",
            toxic(
                "latency",
                Stream::Downstream,
                json!({"latency": 3000, "jitter": 7}),
            ),
        )
        .expect("add");
    let clock = Instant::now();
    c.write_all(b"ping").await.expect("write");
    // Let the echo reach the latency toxic, then cut the latency on the live connection:
    // the held chunk is re-planned at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let update = ToxicUpdate {
        attributes: Some(json!({"latency": 0})),
        toxicity: None,
    };
    let updated = proxy
        .update_toxic("upd", "latency_downstream", update)
        .expect("update");
    assert_eq!(updated.attributes, json!({"latency": 0, "jitter": 7}));
    let mut buf = [0u8; 4];
    within(c.read_exact(&mut buf)).await.expect("read");
    assert_between(
        clock.elapsed(),
        Duration::from_millis(100),
        Duration::from_millis(300),
    );
    assert_eq!(
        proxy.get_toxic("upd", "latency_downstream").expect("get"),
        updated
    );
}

#[tokio::test]
async fn toxicity_zero_has_no_effect() {
    let (proxy, addr) = echo_link("never").await;
    let mut spec = toxic("latency", Stream::Downstream, json!({"latency": 500}));
    spec.toxicity = 0.0;
    proxy.add_toxic("never", spec).expect("add");
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    for _ in 0..3 {
        let took = rtt(&mut c).await;
        assert!(
            took < Duration::from_millis(100),
            "a toxicity 0 toxic acted: {took:?}"
        );
    }
}

#[tokio::test]
async fn a_toxic_added_to_a_live_connection_affects_it() {
    let (proxy, addr) = echo_link("live").await;
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    let before = rtt(&mut c).await;
    assert!(before < Duration::from_millis(100), "{before:?}");
    proxy
        .add_toxic(
            "live",
            toxic("latency", Stream::Upstream, json!({"latency": 200})),
        )
        .expect("add");
    assert_between(
        rtt(&mut c).await,
        Duration::from_millis(200),
        Duration::from_millis(300),
    );
    proxy
        .remove_toxic("live", "latency_upstream")
        .expect("remove");
    let after = rtt(&mut c).await;
    assert!(after < Duration::from_millis(100), "{after:?}");
}

#[tokio::test]
async fn disabling_refuses_new_connections_and_closes_existing_ones() {
    let (proxy, addr) = echo_link("down").await;
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    rtt(&mut c).await;

    let info = within(proxy.update(
        "down",
        LinkUpdate {
            enabled: Some(false),
            ..LinkUpdate::default()
        },
    ))
    .await
    .expect("disable");
    assert!(!info.enabled);
    assert_eq!(
        info.listen,
        addr.to_string(),
        "the address is kept for enabling again"
    );
    let mut buf = [0u8; 4];
    match within(c.read(&mut buf)).await {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the open connection was not closed: {other:?}"),
    }
    assert!(refused(addr).await, "a disabled link accepted a connection");

    let info = within(proxy.update(
        "down",
        LinkUpdate {
            enabled: Some(true),
            ..LinkUpdate::default()
        },
    ))
    .await
    .expect("enable");
    assert!(info.enabled);
    let mut c = within(TcpStream::connect(addr))
        .await
        .expect("connect again");
    rtt(&mut c).await;
}

#[tokio::test]
async fn changing_listen_rebinds_and_delete_closes_everything() {
    let (proxy, addr) = echo_link("move").await;
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    rtt(&mut c).await;
    let update = LinkUpdate {
        listen: Some("127.0.0.1:0".into()),
        ..LinkUpdate::default()
    };
    let info = within(proxy.update("move", update)).await.expect("rebind");
    let moved: std::net::SocketAddr = info.listen.parse().expect("addr");
    assert_ne!(moved, addr);
    assert!(info.enabled);
    assert!(refused(addr).await, "the old address still accepts");
    let mut buf = [0u8; 4];
    assert!(
        !matches!(within(c.read(&mut buf)).await, Ok(n) if n > 0),
        "old connection closed"
    );

    let mut c = within(TcpStream::connect(moved)).await.expect("connect");
    rtt(&mut c).await;
    within(proxy.delete("move")).await.expect("delete");
    assert!(
        !matches!(within(c.read(&mut buf)).await, Ok(n) if n > 0),
        "connection closed on delete"
    );
    assert!(refused(moved).await);
    assert_eq!(proxy.get("move").map_err(|e| e.status()), Err(404));
    assert_eq!(
        within(proxy.delete("move")).await.map_err(|e| e.status()),
        Err(404)
    );
}

#[tokio::test]
async fn reset_enables_every_link_and_removes_every_toxic() {
    let (proxy, addr) = echo_link("rst").await;
    proxy
        .add_toxic(
            "rst",
            toxic("timeout", Stream::Upstream, json!({"timeout": 0})),
        )
        .expect("add");
    within(proxy.update(
        "rst",
        LinkUpdate {
            enabled: Some(false),
            ..LinkUpdate::default()
        },
    ))
    .await
    .expect("disable");
    within(proxy.reset()).await;
    let info = proxy.get("rst").expect("get");
    assert!(info.enabled && info.toxics.is_empty(), "{info:?}");
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    rtt(&mut c).await;
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = free.local_addr().expect("addr").to_string();
    drop(free);
    let proxy = ProxyServer::new();
    let cfg = LinkConfig {
        name: "void".into(),
        listen: "127.0.0.1:0".into(),
        upstream,
        enabled: true,
    };
    let info = proxy.create(cfg).await.expect("create");
    let mut c = within(TcpStream::connect(info.listen.as_str()))
        .await
        .expect("connect");
    let mut buf = [0u8; 1];
    assert!(!matches!(within(c.read(&mut buf)).await, Ok(n) if n > 0));
}

#[tokio::test]
async fn a_bad_listen_address_is_a_bad_request() {
    let proxy = ProxyServer::new();
    let cfg = LinkConfig {
        name: "bad".into(),
        listen: "not an address".into(),
        upstream: "127.0.0.1:1".into(),
        enabled: true,
    };
    let e = within(proxy.create(cfg)).await.expect_err("bad address");
    assert!(e.status() == 400 || e.status() == 500, "{e:?}");
    assert!(
        proxy.get("bad").is_err(),
        "a link that could not listen is not created"
    );
}

#[tokio::test]
async fn shutdown_closes_every_listener_and_connection() {
    let (proxy, addr) = echo_link("all").await;
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    rtt(&mut c).await;
    within(proxy.shutdown()).await;
    let mut buf = [0u8; 4];
    assert!(
        !matches!(within(c.read(&mut buf)).await, Ok(n) if n > 0),
        "connection closed on shutdown"
    );
    assert!(refused(addr).await);
    assert!(proxy.list().is_empty());
}

#[tokio::test]
async fn bulk_streams_splice_and_small_requests_copy() {
    let (proxy, addr) = echo_link("zero-copy").await;
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    for _ in 0..50 {
        rtt(&mut c).await;
    }
    drop(c);
    assert_eq!(
        proxy.spliced_bytes("zero-copy").expect("link"),
        0,
        "small requests went through a pipe"
    );
    let mut data = vec![0u8; 8 << 20];
    rand::thread_rng().fill_bytes(&mut data);
    let got = round_trip(addr, data.clone()).await;
    assert!(got == data, "bytes changed on the way");
    let spliced = proxy.spliced_bytes("zero-copy").expect("link");
    // Both ways, less what each stream copied before it turned hot.
    assert!(
        spliced > (data.len() as u64) * 3 / 2,
        "only {spliced} of {} bytes spliced",
        2 * data.len()
    );
}

/// A step of a random write pattern, as the client takes it.
#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Pause(u64),
    /// Adds a toxic that keeps every byte and their order.
    Add(Stream, ByteKeeping),
    /// Removes every toxic added so far.
    Clear,
}

#[derive(Debug, Clone, Copy)]
enum ByteKeeping {
    Latency {
        ms: u64,
        jitter: u64,
    },
    Slicer {
        average: u64,
        variation: u64,
        delay_us: u64,
    },
    Bandwidth {
        kb_s: u64,
    },
}

impl ByteKeeping {
    fn spec(self, stream: Stream) -> ToxicSpec {
        match self {
            ByteKeeping::Latency { ms, jitter } => {
                toxic("latency", stream, json!({"latency": ms, "jitter": jitter}))
            }
            ByteKeeping::Slicer {
                average,
                variation,
                delay_us,
            } => toxic(
                "slicer",
                stream,
                json!({"average_size": average, "size_variation": variation, "delay": delay_us}),
            ),
            ByteKeeping::Bandwidth { kb_s } => toxic("bandwidth", stream, json!({"rate": kb_s})),
        }
    }
}

fn ops() -> impl proptest::strategy::Strategy<Value = Vec<Op>> {
    use proptest::prelude::*;
    let stream = prop_oneof![Just(Stream::Upstream), Just(Stream::Downstream)];
    let keeping = prop_oneof![
        (0u64..3, 0u64..2).prop_map(|(ms, jitter)| ByteKeeping::Latency { ms, jitter }),
        // Slices of at least 512 bytes: a slice may wait for the timer's next 1 ms tick, so
        // a megabyte in 64-byte slices could take 16 s.
        (512u64..4096, 0u64..64, 0u64..20).prop_map(|(average, variation, delay_us)| {
            ByteKeeping::Slicer {
                average,
                variation: variation.min(average - 1),
                delay_us,
            }
        }),
        (20_000u64..200_000).prop_map(|kb_s| ByteKeeping::Bandwidth { kb_s }),
    ];
    let op = prop_oneof![
        // Small writes (requests), medium ones, and bulk ones that turn a stream hot.
        4 => (1usize..200).prop_map(Op::Write),
        3 => (200usize..20_000).prop_map(Op::Write),
        3 => (20_000usize..200_000).prop_map(Op::Write),
        1 => (0u64..5).prop_map(Op::Pause),
        3 => (stream, keeping).prop_map(|(s, k)| Op::Add(s, k)),
        1 => Just(Op::Clear),
    ];
    proptest::collection::vec(op, 1..20)
}

/// How long one pattern's writes, and then its echo, may take.
const CASE_DEADLINE: Duration = Duration::from_secs(30);

/// One pattern through the link: the echo must bring back exactly what was written.
async fn keeps_every_byte(
    proxy: &ProxyServer,
    link: &str,
    addr: std::net::SocketAddr,
    ops: &[Op],
    seed: u8,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let socket = within(TcpStream::connect(addr)).await.expect("connect");
    let (mut r, mut w) = socket.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.map(|_| got)
    });
    let mut sent = Vec::new();
    let mut added = Vec::new();
    for op in ops {
        match *op {
            Op::Write(n) => {
                let start = sent.len();
                sent.extend((start..start + n).map(|i| (i as u8) ^ seed));
                // A slow toxic downstream can hold the echo, and so these writes, a while.
                tokio::time::timeout(CASE_DEADLINE, w.write_all(&sent[start..]))
                    .await
                    .expect("the write ends within the case's deadline")
                    .expect("write");
            }
            Op::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Op::Add(stream, kind) => {
                let mut spec = kind.spec(stream);
                spec.name = format!("t{}", added.len());
                proxy.add_toxic(link, spec.clone()).expect("add toxic");
                added.push(spec.name);
            }
            Op::Clear => {
                for name in added.drain(..) {
                    proxy.remove_toxic(link, &name).expect("remove toxic");
                }
            }
        }
    }
    within(w.shutdown()).await.expect("shutdown");
    let got = tokio::time::timeout(CASE_DEADLINE, reader)
        .await
        .expect("the echo ends within the case's deadline")
        .expect("reader task")
        .expect("read");
    for name in added {
        proxy.remove_toxic(link, &name).expect("remove toxic");
    }
    proptest::prop_assert_eq!(got.len(), sent.len(), "bytes lost or added");
    let first_diff = got.iter().zip(&sent).position(|(a, b)| a != b);
    proptest::prop_assert!(
        first_diff.is_none(),
        "bytes changed or reordered from offset {:?}",
        first_diff
    );
    Ok(())
}

/// The property: with no toxic that says so, no byte is lost, added or moved,
/// whatever the writes look like and whatever toxics come and go on the live connection
/// (which also moves the streams between the copy, splice and toxic paths).
#[test]
fn random_write_patterns_and_toxic_changes_keep_every_byte_in_order() {
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (proxy, addr) = rt.block_on(echo_link("pattern"));
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let seed = std::cell::Cell::new(0u8);
    let outcome = runner.run(&ops(), |ops| {
        seed.set(seed.get().wrapping_add(37));
        rt.block_on(keeps_every_byte(&proxy, "pattern", addr, &ops, seed.get()))
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    assert!(
        proxy.spliced_bytes("pattern").expect("link") > 0,
        "no pattern reached the splice path"
    );
}

/// `metrics()` once link `name`'s series number `i` has no open connection.
async fn settled(proxy: &ProxyServer, name: &str, i: usize) -> LinkMetrics {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let series: Vec<LinkMetrics> = proxy
            .metrics()
            .into_iter()
            .filter(|m| m.proxy == name)
            .collect();
        let m = series.get(i).cloned().expect("the series");
        if m.active_connections == 0 {
            return m;
        }
        assert!(Instant::now() < deadline, "still open: {m:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection counts as open until its link closes it (disable), and into the series of
/// the address it was accepted on: a new listen address starts a new series, the old one
/// stays as it was, and enabling again on the same address and upstream continues it.
#[tokio::test]
async fn metrics_keep_a_series_per_listen_address_and_count_closed_connections() {
    let (proxy, addr) = echo_link("series").await;
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    rtt(&mut c).await;
    let [m] = proxy.metrics().try_into().expect("one series");
    assert_eq!(
        (
            m.listener.as_str(),
            m.connections_total,
            m.active_connections
        ),
        (addr.to_string().as_str(), 1, 1)
    );
    assert_eq!(
        m.received_bytes,
        StreamBytes {
            upstream: 4,
            downstream: 4
        }
    );
    assert_eq!(m.sent_bytes, m.received_bytes);
    let off = LinkUpdate {
        enabled: Some(false),
        ..LinkUpdate::default()
    };
    within(proxy.update("series", off)).await.expect("disable");
    let m = settled(&proxy, "series", 0).await;
    assert_eq!(m.connections_total, 1);
    let on = LinkUpdate {
        enabled: Some(true),
        ..LinkUpdate::default()
    };
    within(proxy.update("series", on)).await.expect("enable");
    let mut c = within(TcpStream::connect(addr)).await.expect("connect");
    rtt(&mut c).await;
    drop(c);
    let m = settled(&proxy, "series", 0).await;
    assert_eq!(
        m.connections_total, 2,
        "the same series after enabling again"
    );
    assert_eq!(
        m.sent_bytes,
        StreamBytes {
            upstream: 8,
            downstream: 8
        }
    );

    let moved = LinkUpdate {
        listen: Some("127.0.0.1:0".into()),
        ..LinkUpdate::default()
    };
    let info = within(proxy.update("series", moved)).await.expect("rebind");
    let mut c = within(TcpStream::connect(info.listen.as_str()))
        .await
        .expect("connect");
    rtt(&mut c).await;
    drop(c);
    let new = settled(&proxy, "series", 1).await;
    assert_eq!(new.listener, info.listen);
    assert_eq!((new.connections_total, new.sent_bytes.upstream), (1, 4));
    assert_eq!(
        settled(&proxy, "series", 0).await,
        m,
        "the old series stays"
    );

    within(proxy.delete("series")).await.expect("delete");
    assert!(proxy.metrics().is_empty(), "a deleted link's series go");
}
