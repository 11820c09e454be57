//! A real third-party sender: `curl --retry 2`, run once per message as the IUT's trigger
//! command (tests/fixtures/curl-sender.toml declares curl's documented policy). The harness
//! must measure curl's backoff (1 s, then doubled) and pass it, and fail a config that
//! declares another schedule than curl keeps.
//!
//! CI installs curl with apt; `PROVSTEN_SKIP_CURL=1` skips on machines without it.

use std::path::Path;

use super::util::{curl_available, run, Run};

fn certify(config_text: &str, tags: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("curl.toml");
    std::fs::write(&cfg, config_text).unwrap();
    run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--tags", tags],
    )
}

fn fixture() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/curl-sender.toml");
    std::fs::read_to_string(path).unwrap()
}

/// Observed intervals (ms) of the schedule scenario's attempts.
fn intervals(r: &Run) -> Vec<(u64, u64)> {
    r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("a failed delivery is resent"))
        })
        .flat_map(|s| s["evidence"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.get("intervals").cloned())
        .flat_map(|i| i.as_array().cloned().unwrap_or_default())
        .map(|row| {
            (
                row["expected_ms"].as_u64().unwrap(),
                row["observed_ms"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn curl_retry_is_measured_and_certified_against_its_documented_policy() {
    if !curl_available() {
        return;
    }
    let r = certify(&fixture(), "@role:sender");
    assert_eq!(r.code(), 0, "{}", r.explain());
    let pass = r.with_verdict("pass");
    assert!(pass.contains("FMK-2.6.3-RESEND"), "{}", r.explain());
    assert!(pass.contains("FMK-2.1-MTLS"), "{}", r.explain());
    // curl's backoff as measured: 1 s, then 2 s.
    let iv = intervals(&r);
    assert_eq!(
        iv.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        vec![1000, 2000],
        "{iv:?}"
    );
    for (expected, observed) in &iv {
        assert!(observed.abs_diff(*expected) <= 300, "{iv:?}");
    }
    // What curl cannot do is reported as such, not silently passed.
    let na = r.with_verdict("not-applicable");
    assert!(na.is_empty() || !na.contains("FMK-2.6.3-RESEND"), "{na:?}");
}

#[test]
fn a_config_declaring_another_schedule_than_curls_fails() {
    if !curl_available() {
        return;
    }
    let wrong = fixture().replace(
        "exponential = { initial = \"1s\", factor = 2.0, cap = \"10m\" }",
        "exponential = { initial = \"2s\", factor = 2.0, cap = \"10m\" }",
    );
    let r = certify(
        &wrong,
        "@role:sender and @req:FMK-2.6.3-RESEND and not @serial",
    );
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert!(
        r.with_verdict("fail").contains("FMK-2.6.3-RESEND"),
        "{}",
        r.explain()
    );
    assert!(
        r.stdout().contains("the policy says 2000 ms"),
        "{}",
        r.explain()
    );
}

#[test]
fn curl_retry_all_errors_is_certified_with_every_failure_retried() {
    if !curl_available() {
        return;
    }
    // curl's manual: --retry-all-errors retries on any error, 4xx, refused connections and
    // TLS failures included; so the policy declares no permanent outcome.
    let all = fixture()
        .replace(
            "\"--retry\", \"2\",",
            "\"--retry\", \"2\", \"--retry-all-errors\",",
        )
        .replace(
            "retry_on = [\"408\", \"429\", \"500\", \"502\", \"503\", \"504\", \"timeout\"]",
            "retry_on = [\"4xx\", \"5xx\", \"timeout\", \"reset\", \"refused\", \"tls\"]",
        )
        .replace(
            "permanent = [\"4xx\", \"5xx\", \"reset\", \"refused\", \"tls\"]",
            "permanent = []",
        );
    assert!(all.contains("--retry-all-errors") && all.contains("permanent = []"));
    let r = certify(&all, "@role:sender and not @serial");
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(
        r.with_verdict("pass").contains("FMK-2.6.3-RESEND"),
        "{}",
        r.explain()
    );
    // A lost acknowledgement, a reset and a refused connection are now retried and the
    // message arrives once; the "permanent error" scenario has nothing to send.
    let scenarios = r.report()["scenarios"].as_array().unwrap();
    let status = |prefix: &str| {
        scenarios
            .iter()
            .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .map(|s| s["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        status("a lost acknowledgement"),
        "passed",
        "{}",
        r.explain()
    );
    assert_eq!(
        status("a receiver that is down"),
        "passed",
        "{}",
        r.explain()
    );
    assert_eq!(
        status("a permanent error is not retried"),
        "not-applicable",
        "{}",
        r.explain()
    );
}

/// The fixture with curl also sending SDK messages (`sender.xml_messages`): the trigger
/// command posts the `.xml` message file with `content_type`.
fn xml_sender(content_type: &str) -> String {
    let text = fixture()
        .replace(
            "[sender]\nmessage = \"notification\"\n",
            "[[message]]\nname = \"sdk-meddelande\"\nendpoint = \"/v1/sdk/messages\"\nformat = \"xml\"\nschema = \"builtin:sdk/meddelande\"\n\n[sender]\nmessage = \"notification\"\nxml_messages = [\"sdk-meddelande\"]\n",
        )
        .replace(
            "\"Content-Type: application/json\"",
            &format!("\"Content-Type: {content_type}\""),
        );
    assert!(text.contains("xml_messages") && text.contains(content_type));
    text
}

#[test]
fn curl_sending_the_sdk_message_file_is_judged_by_its_content_type_and_schema() {
    if !curl_available() {
        return;
    }
    let tags = "@role:sender and @req:SDK-SPEC";
    let r = certify(&xml_sender("application/xml"), tags);
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(
        r.with_verdict("pass").contains("SDK-SPEC"),
        "{}",
        r.explain()
    );
    // The same document labelled as JSON: a receiver would refuse it (415).
    let r = certify(&xml_sender("application/json"), tags);
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert!(
        r.with_verdict("fail").contains("SDK-SPEC"),
        "{}",
        r.explain()
    );
    assert!(
        r.explain().contains("[http:content-type]"),
        "{}",
        r.explain()
    );
}
