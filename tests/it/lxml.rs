//! A real third-party XML receiver: lxml (tests/fixtures/lxml_receiver.py) certified for
//! SDK-SPEC. Strictly configured (no entity substitution, no network, no DTD, DOCTYPE
//! refused, the shipped Schematron run with XPath 2.0 by elementpath) it is compliant: it
//! survives every XML attack and refuses every invalid class. Lax (entities resolved, DTDs
//! loaded, network on, no Schematron) it is caught by the attack scenarios with evidence,
//! and by the Schematron ones. Its receipts (SV for what lxml
//! refuses, ACCEPTED otherwise) are checked as any IUT's, and the generated invalid messages
//! catch both with a minimal counter-example (one edit breaking a business rule).
//!
//! CI installs lxml, FastAPI and uvicorn with pip; `PROVSTEN_SKIP_PYTHON=1` skips.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::util::{free_port, pki_init, python_available, run, Run};

fn lxml_available() -> bool {
    python_available(
        "lxml.etree, elementpath, fastapi, uvicorn",
        "lxml elementpath fastapi uvicorn",
    )
}

fn certify(lax: bool) -> Option<Run> {
    if !lxml_available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let (port, observe) = (free_port(), free_port());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = root.join("tests/fixtures/lxml_receiver.py");
    let schemas = root.join("schemas/sdk");
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[iut]
name = "lxml receiver{lax_name}"
roles = ["receiver"]

[iut.start]
command = ["python3", "{app}", "{port}", "{observe}", "{{pki}}", "{schemas}"{lax_arg}]
stop_timeout = "5s"

[iut.ready]
check = "https"
timeout = "30s"
client_cert = "client-5560000001"

[api]
base_url = "https://127.0.0.1:{port}"
server_name = "iut.localhost"
registered_orgs = ["5560000001"]

[observe]
accepted_url = "http://127.0.0.1:{observe}/accepted"

[[message]]
name = "sdk-meddelande"
endpoint = "/v1/sdk/messages"
format = "xml"
schema = "builtin:sdk/meddelande"
receipt = "answer"

[pki]
dir = "pki"
"#,
            app = app.display(),
            schemas = schemas.display(),
            lax_name = if lax { " (lax)" } else { "" },
            lax_arg = if lax { ", \"--lax\"" } else { "" },
        ),
    )
    .unwrap();
    Some(run(
        &dir.path().join("out"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--tags",
            "@req:SDK-SPEC and @role:receiver",
        ],
    ))
}

/// Scenario name → status.
fn statuses(r: &Run) -> Vec<(String, String, Value)> {
    r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_owned(),
                s["status"].as_str().unwrap_or("").to_owned(),
                s["evidence"].clone(),
            )
        })
        .collect()
}

fn failed(r: &Run) -> BTreeSet<String> {
    statuses(r)
        .into_iter()
        .filter(|(_, st, _)| st != "passed")
        .map(|(n, st, _)| format!("{st}: {n}"))
        .collect()
}

/// The generated-messages scenario failed with a minimal counter-example: one edit of the
/// example, at most half its size, still refused by provsten's validator for a business
/// rule (lxml runs the XSD, so only those get through).
fn caught_with_a_minimal_counter_example(r: &Run) {
    let all = statuses(r);
    let (name, status, evidence) = all
        .iter()
        .find(|(n, ..)| n.contains("generated invalid SDK messages"))
        .unwrap_or_else(|| panic!("no generated scenario: {}", r.explain()));
    assert_eq!(status, "failed", "{name}: {}", r.explain());
    let c = evidence
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("counter_example"))
        .unwrap_or_else(|| panic!("{name}: no counter-example: {evidence}"));
    assert_eq!(c["mutations"].as_array().unwrap().len(), 1, "{c}");
    assert!(
        c["document_bytes"].as_u64().unwrap() * 2 < c["example_bytes"].as_u64().unwrap(),
        "{c}"
    );
    assert_eq!(c["shrink_cut_short"], false, "{c}");
    let rule = c["rule"].as_str().unwrap();
    assert!(rule.starts_with("schematron:"), "{c}");
    assert!(
        c["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["schema_path"] == rule),
        "{c}"
    );
    assert!(c["document"].as_str().unwrap().len() < 4000, "{c}");
}

/// The signature scenarios (7, and 2 of the receipts): not applicable, as the config
/// declares no `signature`.
fn unsigned_type(name: &str) -> bool {
    name.starts_with("not-applicable: ")
        && (name.contains("signature case") || name.contains("correctly signed"))
}

#[test]
fn a_strict_lxml_receiver_with_xpath2_schematron_is_compliant() {
    let Some(r) = certify(false) else { return };
    let all = statuses(&r);
    let attacks: Vec<_> = all
        .iter()
        .filter(|(n, ..)| n.contains("attack") || n.contains("carrying") || n.contains("canary"))
        .collect();
    assert_eq!(attacks.len(), 10, "{}", r.explain());
    // Everything passes but what its config does not declare: signatures.
    let unexpected: Vec<_> = failed(&r)
        .into_iter()
        .filter(|n| !unsigned_type(n))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}\n{}", r.explain());
    assert_eq!(
        failed(&r).iter().filter(|n| unsigned_type(n)).count(),
        9,
        "{}",
        r.explain()
    );
    assert!(
        r.with_verdict("pass").contains("SDK-SPEC"),
        "{}",
        r.explain()
    );
    // Its receipts are read and judged: SV for what the XSD refuses, BV with the rule id
    // for what its Schematron (elementpath, XPath 2.0) refuses.
    let receipts: Vec<_> = all
        .iter()
        .filter(|(n, ..)| n.contains("receipt") && !n.contains("signature case"))
        .collect();
    assert_eq!(receipts.len(), 8, "{}", r.explain());
    for (name, status, evidence) in receipts {
        assert_eq!(status, "passed", "{name}\n{}", r.explain());
        assert!(evidence.to_string().contains("lxml-"), "{name}: {evidence}");
    }
}

#[test]
fn a_lax_lxml_receiver_is_caught_by_the_attacks_with_evidence() {
    let Some(r) = certify(true) else { return };
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert!(r.with_verdict("fail").contains("SDK-SPEC"));
    let all = statuses(&r);
    let scenario = |attack: &str| {
        all.iter()
            .find(|(n, ..)| n.contains(attack))
            .unwrap_or_else(|| panic!("no scenario for {attack}"))
    };
    // Each caught with its counter-example: the attack as sent (one DOCTYPE added to the
    // valid example) and the IUT's acceptance of it.
    for attack in ["xxe-file", "xxe-http", "external-dtd"] {
        let (name, status, evidence) = scenario(attack);
        assert_eq!(status, "failed", "{name}: {}", r.explain());
        let ev = serde_json::to_string(evidence).unwrap();
        assert!(
            ev.contains("<!DOCTYPE") && ev.contains("HTTP 200") && ev.contains("planted_id"),
            "{name}: {ev}"
        );
    }
    // libxml2's own amplification limit and lxml's huge_tree=False still hold when lax,
    // and lxml's libxml2 has no HTTP client, so nothing reaches the canary: those pass.
    for attack in [
        "billion-laughs",
        "quadratic-blowup",
        "deep-nesting",
        "on the canary",
    ] {
        let (name, status, _) = scenario(attack);
        assert_eq!(status, "passed", "{name}: {}", r.explain());
    }
    // Without Schematron: the broken business rule gets in, and its receipt says ACCEPTED.
    for name in [
        "an SDK message with schematron-rule is refused",
        "an SDK message with schematron-rule gets a REJECTED receipt",
    ] {
        let (_, status, _) = scenario(name);
        assert_eq!(status, "failed", "{name}: {}", r.explain());
    }
    // Generated invalid messages: caught, and shrunk to a small document still invalid.
    caught_with_a_minimal_counter_example(&r);
}
