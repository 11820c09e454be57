//! A real third-party router: HAProxy in `mode tcp`, with the primary route as its server
//! and the fallback route as a `backup` server, both behind TCP-connect health checks
//! (`check inter 100ms downinter 10ms fall 1 rise 1`), `retries 3`, `option redispatch 1`
//! and `timeout connect 100ms`; with every server DOWN it still tries the primary
//! (`use-server` + `force-persist`) rather than close the connection at once
//! (tests/fixtures/haproxy-router.toml and .sh). Each message is
//! one `curl` POST through HAProxy with organisation 5560000001's client certificate; TLS
//! passes through, so the route receivers see curl's own identity. curl makes one attempt:
//! what is certified is what HAProxy itself does.
//!
//! What HAProxy guarantees, as measured here:
//! - a primary that **refuses connections** is left for the backup: the refused connect is
//!   retried 100 ms later and, with redispatch, the retry goes to the backup once the health
//!   check has marked the primary DOWN. Failover measured at 110-130 ms for the first
//!   messages, 10-30 ms after that; failback within 0-110 ms of the primary's recovery;
//! - what goes through the backup is byte for byte what the client sent, with the client's
//!   own certificate, and nothing is ever delivered twice.
//!
//! What it does not guarantee, and the verdicts show it:
//! - HAProxy only retries a **connection**, never a request whose bytes already went to a
//!   server (tcp mode has no `retry-on`). A message in flight when the primary fails is
//!   lost unless the client retries;
//! - a TCP-connect check passes as long as something accepts the connection, so a primary
//!   that **black-holes** traffic, **resets** after accepting, or is **too slow** is never
//!   marked DOWN: every message goes on to the primary and is lost (curl gives up after 4 s).
//!
//! So the run is NON-COMPLIANT: CONT-ROUTE-1, CONT-ROUTE-2, CONT-NOLOSS and CONT-FAULT-PROC
//! fail, CONT-FAILBACK passes, and CONT-EXERCISE (a refused primary for 2 s under load)
//! passes unless a message was in flight at the very moment the primary went down.
//!
//! CI installs haproxy with apt; `PROVSTEN_SKIP_HAPROXY=1` skips on machines without it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::util::{run, Run};

fn haproxy_available() -> bool {
    if std::env::var_os("PROVSTEN_SKIP_HAPROXY").is_some_and(|v| v == "1") {
        eprintln!(
            "skipping the HAProxy router certification: PROVSTEN_SKIP_HAPROXY=1 (it needs haproxy and curl installed)"
        );
        return false;
    }
    let works = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let haproxy = ["haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .iter()
        .any(|h| works(h, "-v"));
    assert!(
        haproxy,
        "haproxy is needed (apt-get install haproxy), or PROVSTEN_SKIP_HAPROXY=1"
    );
    assert!(
        works("curl", "--version"),
        "curl is needed (the router's trigger; apt-get install curl), or PROVSTEN_SKIP_HAPROXY=1"
    );
    true
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/haproxy-router.toml")
}

/// The scenario whose name starts with `prefix` (exactly one).
fn scenario<'a>(r: &'a Run, prefix: &str) -> &'a Value {
    let all: Vec<&Value> = r.report()["scenarios"]
        .as_array()
        .expect("scenarios array")
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect();
    assert_eq!(all.len(), 1, "scenario {prefix:?}: {}", r.explain());
    all[0]
}

fn status(s: &Value) -> &str {
    s["status"].as_str().unwrap_or_default()
}

fn message(s: &Value) -> &str {
    s["message"].as_str().unwrap_or_default()
}

/// The first evidence entry of a scenario with this key and an object value (the routes'
/// entry also has `delivery` and `failback`, as strings: the declared values).
fn evidence<'a>(s: &'a Value, key: &str) -> Option<&'a Value> {
    s["evidence"]
        .as_array()?
        .iter()
        .find_map(|e| e.get(key).filter(|v| v.is_object()))
}

fn assert_status(r: &Run, prefix: &str, want: &str) -> Value {
    let s = scenario(r, prefix).clone();
    assert_eq!(
        status(&s),
        want,
        "scenario {prefix:?}: {}\n{}",
        message(&s),
        r.explain()
    );
    s
}

/// A scenario that passes, or fails only the way HAProxy is known to lose messages: one
/// that was in flight at the instant the primary went down (the fault proxy cuts open
/// connections). On a starved machine (two busy loops on this 2-core box) these steady-load
/// scenarios also lost messages curl gave up on, and delivered late: no resend covers it.
fn assert_passed_or_lost_in_flight(r: &Run, prefix: &str) -> Value {
    let s = scenario(r, prefix).clone();
    let m = message(&s);
    let ok = status(&s) == "passed"
        || (status(&s) == "failed"
            && (m.contains("never arrived") || m.contains("back on") || m.contains("allowed")));
    assert!(ok, "scenario {prefix:?}: {}\n{}", m, r.explain());
    if status(&s) != "passed" {
        eprintln!("note: {prefix:?} failed this time: {m}");
    }
    s
}

/// A failover scenario in which HAProxy kept sending to the primary: every message sent
/// during the fault is missing from the fallback (lost, or late through the primary).
fn assert_no_failover(r: &Run, prefix: &str) {
    let s = assert_status(r, prefix, "failed");
    assert!(
        message(&s).contains("5 of 5 messages")
            && message(&s).contains("did not arrive through a fallback"),
        "{prefix:?}: {}",
        message(&s)
    );
    let rows = evidence(&s, "failover").expect("failover evidence")["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        rows.iter().all(|m| m["route"].is_null()),
        "{prefix:?}: nothing went through the fallback: {rows:?}"
    );
}

#[test]
fn haproxy_fails_over_from_a_refusing_primary_but_loses_what_a_connect_check_cannot_see() {
    if !haproxy_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture();
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--tags", "@role:router"],
    );
    // Messages are lost: non-compliant, a finding rather than an error of the harness.
    assert_eq!(r.code(), 1, "{}", r.explain());

    // CONT-ROUTE-1, refused primary: HAProxy's connect fails, the retry 100 ms later goes
    // to the backup once the check has marked the primary DOWN. Failover observed and
    // measured: every message arrives through fallback-1.
    let refused = assert_status(&r, "a primary that refuses connections", "passed");
    let failover = evidence(&refused, "failover").expect("failover evidence");
    let rows = failover["messages"].as_array().expect("failover messages");
    assert_eq!(rows.len(), 5, "{failover}");
    let took: Vec<u64> = rows
        .iter()
        .map(|m| {
            assert_eq!(m["route"], "fallback-1", "{failover}");
            assert_eq!(m["ok"], true, "{failover}");
            m["took_ms"].as_u64().expect("took_ms")
        })
        .collect();
    let allowed = rows[0]["allowed_ms"].as_u64().unwrap_or_default();
    let worst = took.iter().copied().max().unwrap_or_default();
    assert!(worst <= allowed, "{took:?} allowed {allowed}");
    eprintln!("HAProxy failover (refused primary), ms per message: {took:?}; worst {worst} ms, allowed {allowed} ms");

    // CONT-ROUTE-1, black hole / resets / slow primary: the fault proxy still accepts the
    // connection, so the TCP-connect health check passes and HAProxy never marks the
    // primary DOWN; its bytes already went to the primary, so nothing is retried. All five
    // messages are lost (curl gives up after 4 s) or, for the slow one, at best arrive late
    // through the primary.
    assert_no_failover(&r, "a black-holed primary");
    assert_no_failover(&r, "a primary that resets every connection");
    assert_no_failover(&r, "a primary slower than the failover time");

    // CONT-ROUTE-2: after a refusal, what reaches the backup is what the client sent, with
    // its own certificate (tcp mode passes TLS through) ...
    let same = assert_status(&r, "what goes through the fallback is what", "passed");
    let coord = evidence(&same, "coordination").expect("coordination evidence");
    assert_eq!(coord["expected_org"], "5560000001", "{coord}");
    let deliveries = coord["fallback_deliveries"].as_array().unwrap();
    assert!(!deliveries.is_empty(), "{coord}");
    assert!(
        deliveries
            .iter()
            .all(|d| d["client_org"] == "5560000001" && d["ok"] == true),
        "{coord}"
    );
    // ... but after a black hole nothing reaches the backup at all.
    let bh = assert_status(&r, "after a black hole, the fallback deliveries", "failed");
    assert!(
        message(&bh).contains("did not fail over"),
        "{}",
        message(&bh)
    );
    assert!(
        r.with_verdict("fail").contains("CONT-ROUTE-2"),
        "{}",
        r.explain()
    );

    // CONT-NOLOSS / CONT-FAULT-PROC, in flight: the primary read the message and never
    // answers, then black-holes for good. HAProxy does not resend the held message
    // elsewhere, and its connect check keeps sending the later ones into the black hole:
    // every one is lost, each curl timing out (exit 28).
    let held = assert_status(&r, "a message in flight when the primary fails", "failed");
    let d = evidence(&held, "delivery").expect("delivery evidence");
    let in_flight = evidence(&held, "in_flight").expect("in_flight evidence")["id"].clone();
    let lost = d["lost"].as_array().cloned().unwrap_or_default();
    assert!(lost.contains(&in_flight), "{d}");
    assert_eq!(
        lost.len(),
        4,
        "the held message and the three after it: {d}"
    );
    assert_eq!(d["duplicates"], serde_json::json!([]), "{d}");
    for t in d["trigger"].as_array().into_iter().flatten() {
        assert_eq!(t["exit"], 28, "curl timed out: {d}");
    }

    // Torn writes for good: a connect check sees nothing wrong, so HAProxy keeps the
    // primary and the transfers crawl there.
    // A TLS handshake alone takes seconds at 16 bytes per 20 ms, past curl's 4 s: lost.
    let torn = assert_status(&r, "a primary that tears every write", "failed");
    let d = evidence(&torn, "delivery").expect("delivery evidence");
    assert!(!d["lost"].as_array().unwrap().is_empty(), "{d}");
    for t in d["trigger"].as_array().into_iter().flatten() {
        assert_eq!(t["exit"], 28, "curl timed out: {d}");
    }
    // Every route down (primary refused, fallback black-holed): the backup's connect check
    // passes, the bytes wait in the black hole and flow once it is lifted ~250 ms later,
    // before any client gives up.
    assert_status(&r, "every route down", "passed");
    // Outage, failover and failback with a refused primary: nothing lost, nothing twice.
    assert_status(&r, "outage, failover and failback", "passed");
    // A flapping (refusing) primary: passes, unless a message was on the primary's
    // connection at the very instant it went down.
    assert_passed_or_lost_in_flight(&r, "a flapping primary");

    // CONT-FAILBACK: the check (10 ms apart while DOWN, rise 1) puts the primary back.
    let back = assert_status(
        &r,
        "after the primary recovers, deliveries return",
        "passed",
    );
    let fb = evidence(&back, "failback").expect("failback evidence");
    eprintln!(
        "HAProxy failback: first delivery through the primary {} ms after its recovery (bound {} ms)",
        fb["first_primary_delivery_after_recovery_ms"], fb["bound_ms"]
    );

    // Killed during a total outage: HAProxy keeps nothing; every message sent while both
    // routes refuse is closed at once (no server available) and lost.
    assert_status(&r, "the router is killed during an outage", "failed");

    // CONT-EXERCISE: a refused primary for 2 s under 20 messages/s.
    let ex = assert_passed_or_lost_in_flight(&r, "an outage exercise");
    if let Some(e) = evidence(&ex, "exercise") {
        for p in e["phases"].as_array().into_iter().flatten() {
            if !p["rto_ms"].is_null() || !p["failback_ms"].is_null() {
                eprintln!(
                    "exercise phase {}: rto {} ms, failback {} ms, lost {}, p99 latency {} ms",
                    p["phase"], p["rto_ms"], p["failback_ms"], p["lost"], p["latency_p99_ms"]
                );
            }
        }
    }

    let fail = r.with_verdict("fail");
    for id in [
        "CONT-ROUTE-1",
        "CONT-ROUTE-2",
        "CONT-NOLOSS",
        "CONT-FAULT-PROC",
    ] {
        assert!(fail.contains(id), "{id} should fail: {fail:?}");
    }
    assert!(
        r.with_verdict("pass").contains("CONT-FAILBACK"),
        "{}",
        r.explain()
    );
    let exercise = if status(&ex) == "passed" {
        "pass"
    } else {
        "fail"
    };
    assert!(
        r.with_verdict(exercise).contains("CONT-EXERCISE"),
        "{}",
        r.explain()
    );
}
