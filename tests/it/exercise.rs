//! `provsten exercise`: an outage timeline on the router's routes under load, with per-phase
//! figures, live progress, and the verdict of the router's promises (CONT-EXERCISE).

use std::path::Path;

use serde_json::Value;

use super::util::{subcommand, Run};

fn exercise(out: &Path, args: &[&str]) -> Run {
    subcommand("exercise", out, args)
}

/// The exercise evidence of the run's one scenario.
fn figures(r: &Run) -> Value {
    r.report()["scenarios"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("exercise").cloned())
        .unwrap_or_else(|| panic!("no exercise evidence: {}", r.explain()))
}

#[test]
fn the_primary_node_outage_exercise_measures_every_phase_and_passes_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let r = exercise(dir.path(), &["primary-node-outage"]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(
        r.stderr().contains("[exercise] phase 2/3 primary-down"),
        "no live progress: {}",
        r.stderr()
    );
    let f = figures(&r);
    let phases = f["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 3, "{f}");
    let down = &phases[1];
    assert_eq!(down["phase"], "primary-down");
    assert_eq!(down["lost"], 0, "{down}");
    assert_eq!(down["duplicates"], 0, "{down}");
    let rto = down["rto_ms"].as_u64().expect("an RTO");
    assert!(rto <= 1250, "RTO {rto} ms beyond failover_time + tolerance");
    assert!(down["detection_ms"].as_u64().unwrap() <= rto);
    assert!(
        down["per_route"]["fallback-1"].as_u64().unwrap() > 0,
        "{down}"
    );
    assert!(down["latency_p99_ms"].as_u64().is_some(), "{down}");
    let back = &phases[2];
    assert!(back["failback_ms"].as_u64().unwrap() <= 1250, "{back}");
    assert!(back["per_route"]["primary"].as_u64().unwrap() > 0, "{back}");
    // The chart's series: deliveries per route per bucket, outage phase shaded.
    let chart = r.report()["scenarios"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("exercise_timeline").cloned())
        .unwrap();
    assert_eq!(chart["routes"].as_array().unwrap().len(), 2);
    assert_eq!(chart["phases"][1]["outage"], true);
    // Which backend injected each fault.
    assert_eq!(f["backend"], "embedded fault proxy", "{f}");
    let faults = f["faults"].as_array().unwrap();
    assert!(!faults.is_empty(), "{f}");
    assert!(
        faults
            .iter()
            .all(|x| x["backend"] == "embedded fault proxy"),
        "{f}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Outage exercise"), "no chart in report.html");
    let exercised: Vec<_> = r.report()["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["id"] == "CONT-EXERCISE")
        .collect();
    assert_eq!(exercised[0]["verdict"], "pass");
}

/// Faults beyond one machine: the same exercise with its faults injected by a Toxiproxy the
/// run reaches over its API (`TOXIPROXY_URL`; here `provsten proxy` stands in for a sidecar),
/// and the report naming it beside each fault.
#[test]
fn an_exercise_through_an_external_toxiproxy_names_it_beside_each_fault() {
    let toxiproxy = super::proxy::start_proxy();
    let url = format!("http://{}", toxiproxy.api);
    let dir = tempfile::tempdir().unwrap();
    let output = super::util::provsten()
        .env("TOXIPROXY_URL", &url)
        .args(["exercise", "-q", "primary-node-outage", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(dir.path().join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let r = Run { output, report };
    assert_eq!(r.code(), 0, "{}", r.explain());
    let f = figures(&r);
    let named = format!("Toxiproxy at {url}");
    assert_eq!(f["backend"], named.as_str(), "{f}");
    let faults = f["faults"].as_array().unwrap();
    assert!(!faults.is_empty(), "{f}");
    assert!(
        faults
            .iter()
            .all(|x| x["backend"] == named.as_str() && x["ok"] == true),
        "{f}"
    );
}

#[test]
fn an_exercise_against_a_router_without_failover_fails_with_its_rto() {
    let dir = tempfile::tempdir().unwrap();
    let r = exercise(
        dir.path(),
        &["primary-node-outage", "--defect", "no-failover", "-q"],
    );
    assert_eq!(r.code(), 1, "{}", r.explain());
    let msg = r.report()["scenarios"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("nothing arrived through a fallback while the primary was out"),
        "{msg}"
    );
    assert!(!r.stderr().contains("[exercise]"), "-q shows no progress");
}

#[test]
fn an_exercise_file_of_ones_own_is_checked_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my-outage.toml");
    std::fs::write(
        &file,
        "[[phase]]\nname = \"down\"\nstart = \"0s\"\nduration = \"1s\"\nload = -3.0\n[[phase.fault]]\nlink = \"route-primary\"\ndown = true\n",
    )
    .unwrap();
    let r = exercise(&dir.path().join("out"), &[file.to_str().unwrap(), "-q"]);
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(
        r.stderr().contains("my-outage.toml:1") && r.stderr().contains("load -3"),
        "the error names the file, the line and the problem: {}",
        r.stderr()
    );

    let r = exercise(&dir.path().join("out2"), &["no-such-exercise", "-q"]);
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(r.stderr().contains("primary-node-outage"), "{}", r.stderr());
}

/// The reference declares five router lanes: its router scenarios spread over them (each
/// lane on its own routes), instead of taking turns on one.
#[test]
fn router_scenarios_run_side_by_side_on_the_declared_lanes() {
    let (r, _) = super::util::shared_run(&[]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    let mut lanes = std::collections::BTreeSet::new();
    let mut listens = std::collections::BTreeSet::new();
    for s in r.report()["scenarios"].as_array().unwrap() {
        for e in s["evidence"].as_array().unwrap() {
            if let Some(lane) = e["lane"].as_u64() {
                lanes.insert(lane);
                for route in e["routes"].as_array().unwrap() {
                    listens.insert((lane, route["listen"].as_str().unwrap().to_string()));
                }
            }
        }
    }
    // The first five router scenarios start together, so each takes a lane of its own.
    assert!(
        lanes.len() >= 2 && lanes.iter().all(|l| (1..=5).contains(l)),
        "{listens:?}"
    );
    // Each lane has its own two route addresses.
    let addresses: std::collections::BTreeSet<_> = listens.iter().map(|(_, a)| a).collect();
    assert_eq!(addresses.len(), 2 * lanes.len(), "{listens:?}");
}
