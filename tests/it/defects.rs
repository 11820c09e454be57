//! The defect matrix: every seeded defect of the reference IUT fails exactly the
//! requirements `provsten defects` declares, and the compliant reference passes every
//! requirement the suite checks — so no check in the suite is one that cannot fail.

use std::collections::BTreeSet;

use super::util::{provsten, run};

fn declared_defects() -> Vec<(String, BTreeSet<String>)> {
    let out = provsten()
        .arg("defects")
        .output()
        .expect("provsten defects");
    assert!(out.status.success());
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

#[test]
fn compliant_reference_passes_every_checked_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &[]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert_eq!(r.report()["verdict"], "compliant");
    assert!(r.with_verdict("fail").is_empty());
    assert!(r.with_verdict("error").is_empty());
    let passed = r.with_verdict("pass");
    for (_, reqs) in declared_defects() {
        for req in reqs {
            assert!(
                passed.contains(&req),
                "{req} is declared breakable but did not pass on the compliant reference"
            );
        }
    }
    for f in [
        "report.json",
        "junit.xml",
        "cucumber.json",
        "report.html",
        "summary.md",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
}

#[test]
fn every_seeded_defect_fails_exactly_the_requirements_it_breaks() {
    let defects = declared_defects();
    assert!(defects.len() >= 9, "too few defects: {defects:?}");
    for (name, declared) in defects {
        let dir = tempfile::tempdir().unwrap();
        let r = run(dir.path(), &["--defect", &name]);
        assert_eq!(r.code(), 1, "--defect {name}: {}", r.explain());
        assert_eq!(r.report()["verdict"], "non-compliant");
        let not_passed: Vec<String> = r.report()["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "failed" || s["status"] == "error")
            .map(|s| format!("{} {}: {}", s["key"], s["status"], s["message"]))
            .collect();
        assert_eq!(
            r.with_verdict("fail"),
            declared,
            "--defect {name}: failing requirements differ from `provsten defects`; scenarios:\n{}",
            not_passed.join("\n")
        );
        assert!(
            r.with_verdict("error").is_empty(),
            "--defect {name}: errors {:?}",
            r.with_verdict("error")
        );
        // Every failed scenario carries evidence of what the IUT did.
        for sc in r.report()["scenarios"].as_array().unwrap() {
            if sc["status"] == "failed" {
                assert!(
                    !sc["evidence"].as_array().unwrap().is_empty(),
                    "{name}: {} has no evidence",
                    sc["key"]
                );
                assert!(sc["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
    }
}

#[test]
fn expired_certificate_defect_reports_which_certificate_got_in_and_what_the_iut_answered() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["--defect", "accept-expired-cert"]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let failed: Vec<_> = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2, "expired on TLS 1.2 and 1.3");
    for sc in failed {
        let ev = serde_json::to_string(&sc["evidence"]).unwrap();
        assert!(
            ev.contains("\"client_certificate\":\"client-expired\""),
            "{ev}"
        );
        assert!(ev.contains("\"status\":200"), "{ev}");
    }
}

#[test]
fn twenty_compliant_runs_in_a_row_have_zero_failures() {
    for i in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let r = run(dir.path(), &[]);
        assert_eq!(r.code(), 0, "run {i}: {}", r.explain());
        let bad: Vec<_> = r.report()["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] != "passed")
            .map(|s| s["key"].to_string())
            .collect();
        assert!(bad.is_empty(), "run {i}: {bad:?}");
    }
}
