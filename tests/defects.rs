//! The defect matrix, one test per seeded defect of the reference IUT (read from
//! `provsten defects`), run in parallel: each defect fails exactly the requirements it
//! declares, with evidence, and nothing errors; the compliant reference passes every
//! requirement the suite checks, in `PROVSTEN_SOAK` runs (default 3). Every defect run
//! also reruns every scenario its defect leaves unbroken, so the matrix is the suite's
//! determinism check too; a longer soak is `PROVSTEN_SOAK=50 cargo test --test defects
//! compliant`.
//!
//! A debug-build run keeps about 0.7 of a core busy, and its checks are timed, so by
//! default as many run at once as there are cores: with twice as many, a starved harness
//! answered late and timed checks failed the compliant reference. `--test-threads N` (or
//! `RUST_TEST_THREADS`) overrides it.

use std::collections::BTreeSet;

use libtest_mimic::{Arguments, Failed, Trial};

#[path = "it/util.rs"]
#[allow(dead_code)]
mod util;

use util::{provsten, run, REPORT_FILES};

/// `provsten defects`: (name, requirements it breaks).
fn declared_defects() -> Vec<(String, BTreeSet<String>)> {
    let out = provsten()
        .arg("defects")
        .output()
        .expect("provsten defects");
    assert!(out.status.success(), "provsten defects failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next().expect("name").to_string();
            let reqs = cols
                .next()
                .expect("requirements")
                .split(',')
                .map(str::to_string)
                .collect();
            assert!(
                cols.next().is_some_and(|d| !d.is_empty()),
                "no description: {l}"
            );
            (name, reqs)
        })
        .collect()
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(why().into())
    }
}

/// The compliant reference: exit 0, every scenario passed, every report written, and every
/// requirement some defect breaks passed (so each defect's failure is a change, not noise).
fn compliant(run_no: usize, breakable: &BTreeSet<String>) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let r = run(dir.path(), &[]);
    ensure(r.code() == 0, || format!("run {run_no}: {}", r.explain()))?;
    ensure(r.report()["verdict"] == "compliant", || r.explain())?;
    let bad: Vec<String> = r.report()["scenarios"]
        .as_array()
        .ok_or("no scenarios")?
        .iter()
        .filter(|s| s["status"] != "passed")
        .map(|s| format!("{} {}", s["key"], s["status"]))
        .collect();
    ensure(bad.is_empty(), || format!("run {run_no}: {bad:?}"))?;
    let passed = r.with_verdict("pass");
    for req in breakable {
        ensure(passed.contains(req), || {
            format!("{req} is declared breakable but did not pass on the compliant reference")
        })?;
    }
    for f in REPORT_FILES {
        ensure(dir.path().join(f).is_file(), || format!("{f} missing"))?;
    }
    Ok(())
}

/// `--defect NAME`: exit 1, exactly the declared requirements fail, none errors, and every
/// failed scenario says why and carries evidence of what the IUT did.
fn defect(name: &str, declared: &BTreeSet<String>) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let r = run(dir.path(), &["--defect", name]);
    ensure(r.code() == 1, || {
        format!("--defect {name}: {}", r.explain())
    })?;
    ensure(r.report()["verdict"] == "non-compliant", || r.explain())?;
    let scenarios = r.report()["scenarios"].as_array().ok_or("no scenarios")?;
    let not_passed: Vec<String> = scenarios
        .iter()
        .filter(|s| s["status"] == "failed" || s["status"] == "error")
        .map(|s| format!("{} {}: {}", s["key"], s["status"], s["message"]))
        .collect();
    ensure(&r.with_verdict("fail") == declared, || {
        format!(
            "--defect {name}: failing requirements {:?} differ from `provsten defects` {declared:?}; scenarios:\n{}",
            r.with_verdict("fail"),
            not_passed.join("\n")
        )
    })?;
    ensure(r.with_verdict("error").is_empty(), || {
        format!("--defect {name}: errors:\n{}", not_passed.join("\n"))
    })?;
    for sc in scenarios.iter().filter(|s| s["status"] == "failed") {
        ensure(
            sc["evidence"].as_array().is_some_and(|e| !e.is_empty()),
            || format!("{name}: {} has no evidence", sc["key"]),
        )?;
        ensure(
            sc["message"].as_str().is_some_and(|m| !m.is_empty()),
            || format!("{name}: {} has no message", sc["key"]),
        )?;
    }
    if name == "accept-expired-cert" {
        expired_certificate_evidence(scenarios)?;
    }
    Ok(())
}

/// The evidence names the certificate that got in and what the IUT answered.
fn expired_certificate_evidence(scenarios: &[serde_json::Value]) -> Result<(), Failed> {
    let failed: Vec<_> = scenarios
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    ensure(failed.len() == 2, || {
        format!("expected the expired certificate to fail on TLS 1.2 and 1.3: {failed:?}")
    })?;
    for sc in failed {
        let ev = serde_json::to_string(&sc["evidence"])?;
        ensure(
            ev.contains("\"client_certificate\":\"client-expired\"")
                && ev.contains("\"status\":200"),
            || format!("evidence lacks the certificate or the answer: {ev}"),
        )?;
    }
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()));
    }
    let soak: usize = match std::env::var("PROVSTEN_SOAK") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("PROVSTEN_SOAK={v:?} is not a number of runs")),
        Err(_) => 3,
    };
    let defects = declared_defects();
    assert!(defects.len() >= 9, "too few defects: {defects:?}");
    let breakable: BTreeSet<String> = defects.iter().flat_map(|(_, r)| r.clone()).collect();
    let mut trials = Vec::new();
    for n in 1..=soak {
        let breakable = breakable.clone();
        trials.push(Trial::test(format!("compliant::run_{n}"), move || {
            compliant(n, &breakable)
        }));
    }
    for (name, declared) in defects {
        trials.push(Trial::test(format!("defect::{name}"), move || {
            defect(&name, &declared)
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
