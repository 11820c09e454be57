//! Receipts sent back (`receipt = "sent"`): the reference IUT with `--receipt-url` POSTs each
//! Meddelandekvittens to the harness's inbox, which the receipt scenarios wait on. The same
//! checks as for receipts in the answer: they pass for the compliant reference, fail for a
//! wrong code, and fail when no receipt comes.

use serde_json::Value;

use super::util::{run, Run};

/// The default config, with receipts sent back to `{port:receipts}`; `post` says whether the
/// reference is told to send them.
fn certify(post: bool, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut config = include_str!("../../src/iut/default.toml").replace(
        "receipt = \"answer\"",
        "receipt = \"sent\"\nreceipt_listen = \"127.0.0.1:{port:receipts}\"\nreceipt_timeout = \"3s\"",
    );
    assert!(
        config.contains("receipt_listen"),
        "the default config changed"
    );
    if post {
        config = config.replace(
            r#""{provsten}", "reference-iut","#,
            r#""{provsten}", "reference-iut", "--receipt-url", "https://127.0.0.1:{port:receipts}/receipts","#,
        );
        assert!(
            config.contains("--receipt-url"),
            "the default config changed"
        );
    }
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--tags",
        "@req:SDK-SPEC and @role:receiver",
    ];
    args.extend_from_slice(extra);
    run(&dir.path().join("out"), &args)
}

/// Receipt scenario name → (status, message, evidence).
fn receipts(r: &Run) -> Vec<(String, String, String, Value)> {
    r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["feature"].as_str().unwrap_or("").contains("xml_receipts"))
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_owned(),
                s["status"].as_str().unwrap_or("").to_owned(),
                s["message"].as_str().unwrap_or("").to_owned(),
                s["evidence"].clone(),
            )
        })
        .collect()
}

#[test]
fn receipts_sent_back_are_awaited_and_judged() {
    let r = certify(true, &[]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    let all = receipts(&r);
    assert_eq!(all.len(), 10, "{}", r.explain());
    let mut passed = Vec::new();
    for (name, status, message, evidence) in &all {
        if status == "passed" {
            assert!(
                evidence.to_string().contains("receipt_sent_back"),
                "{name}: {evidence}"
            );
            passed.push(name.as_str());
        } else {
            // A message whose envelope cannot be read has no id a receipt sent back could
            // name (not well-formed, another namespace, bytes not in the declared encoding).
            assert_eq!(status, "not-applicable", "{name}: {message}");
            assert!(message.contains("XHE Header/ID"), "{name}: {message}");
        }
    }
    for must in [
        "ACCEPTED",
        "schematron-rule",
        "missing-required-element",
        "shipped-negative",
    ] {
        assert!(
            passed.iter().any(|n| n.contains(must)),
            "{must}: {passed:?}"
        );
    }

    let r = certify(true, &["--defect", "wrong-receipt-code"]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let failed: Vec<_> = receipts(&r)
        .into_iter()
        .filter(|(_, st, ..)| st == "failed")
        .collect();
    // Only the refusals that call for BV or SIG show the code that is always SV.
    assert_eq!(failed.len(), 3, "{failed:?}");
    for (name, _, message, _) in &failed {
        let want = if name.contains("schematron-rule") {
            "calls for BV"
        } else {
            assert!(name.contains("signature case"), "{name}");
            "calls for SIG"
        };
        assert!(message.contains(want), "{name}: {message}");
    }
}

#[test]
fn no_receipt_sent_back_fails_within_the_timeout() {
    let r = certify(false, &[]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let mut failed = 0;
    for (name, status, message, _) in receipts(&r) {
        if status == "not-applicable" {
            continue;
        }
        failed += 1;
        assert_eq!(status, "failed", "{name}");
        assert!(
            message.contains("no receipt for the message"),
            "{name}: {message}"
        );
        assert!(message.contains("within 3s"), "{name}: {message}");
    }
    assert!(failed >= 4, "{failed}");
}
