//! A real third-party API client: curl, configured as `provsten init --role client` writes
//! it (mutual TLS, `--cacert`, `--crlfile`, `--retry`, in a polling loop). As written it is
//! certified; each setting taken away, or `-k` added, fails the requirements that setting
//! keeps, with what the simulated server saw as evidence.
//!
//! CI installs curl with apt; `PROVSTEN_SKIP_CURL=1` skips on machines without it.

use super::util::{curl_available, init_client, run, Run};

/// `provsten init --role client` in a fresh folder, its config edited by `edit`, then run.
fn certify(edit: impl Fn(String) -> String) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = init_client(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    let edited = edit(text.clone());
    std::fs::write(&cfg, edited).unwrap();
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap()],
    );
    (dir, r)
}

fn failed_scenarios(r: &Run) -> Vec<String> {
    r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn curl_as_provsten_init_configures_it_is_a_compliant_client() {
    if !curl_available() {
        return;
    }
    let (_d, r) = certify(|t| t);
    assert_eq!(r.code(), 0, "{}", r.explain());
    let pass = r.with_verdict("pass");
    for id in [
        "EB-MTLS-1",
        "EB-MTLS-2",
        "FMK-2.1-CA",
        "FMK-2.1-REVOKE",
        "FMK-2.4-LOAD",
    ] {
        assert!(pass.contains(id), "{id} did not pass: {}", r.explain());
    }
    // curl has no changed-between reads: said so, not passed.
    let sc = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.contains("reads what changed"))
        })
        .cloned()
        .unwrap();
    assert_eq!(sc["status"], "not-applicable", "{sc}");
}

#[test]
fn curl_insecure_fails_every_server_certificate_check() {
    if !curl_available() {
        return;
    }
    let (_d, r) = certify(|t| t.replace("\"--fail\",", "\"--fail\", \"--insecure\","));
    assert_eq!(r.code(), 1, "{}", r.explain());
    let fail = r.with_verdict("fail");
    assert_eq!(
        fail,
        ["EB-MTLS-1", "FMK-2.1-CA", "FMK-2.1-REVOKE"]
            .map(String::from)
            .into(),
        "{}",
        r.explain()
    );
    // The evidence: the request curl sent over the expired certificate.
    let ev = serde_json::to_string(&r.report()["scenarios"]).unwrap();
    assert!(
        ev.contains("accepted the server certificate \\\"server-expired\\\" and sent GET /v1/orgs/5560000001/fullmakter"),
        "{}",
        r.explain()
    );
}

#[test]
fn curl_without_crl_or_retry_fails_revocation_and_load() {
    if !curl_available() {
        return;
    }
    let (_d, r) = certify(|t| {
        t.replace("\"--crlfile\", \"{pki}/crl-bundle.pem\",", "")
            .replace("\"--retry\", \"3\",", "")
    });
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert_eq!(
        r.with_verdict("fail"),
        ["EB-MTLS-1", "FMK-2.1-REVOKE", "FMK-2.4-LOAD"]
            .map(String::from)
            .into(),
        "{}",
        r.explain()
    );
    let failed = failed_scenarios(&r);
    assert!(failed.iter().any(|n| n.contains("revoked")), "{failed:?}");
    assert!(
        failed.iter().any(|n| n.contains("Retry-After")),
        "{failed:?}"
    );
}
