//! Real third-party API clients: Python `requests` (urllib3's Retry) and `httpx` (its own
//! TLS settings, no retries), run once per call by `tests/fixtures/python_client.py` as a
//! role-client IUT (`tests/fixtures/python-client.toml`). Configured as their documentation
//! says they are certified; `verify=False`, no CRL or no retry policy fail exactly the
//! requirements those settings keep.
//!
//! CI installs requests and httpx with pip; `PROVSTEN_SKIP_PYTHON=1` skips on machines
//! without them.

use std::collections::BTreeSet;
use std::path::Path;

use super::util::{init_client, python_available, run, Run};

fn python_clients_available() -> bool {
    python_available("requests, httpx", "requests httpx")
}

/// The fixture config for `lib` with `flags`, in a folder `provsten init --role client`
/// made (for its PKI), run with `tags`.
fn certify(
    lib: &str,
    flags: &[&str],
    retries: bool,
    tags: Option<&str>,
) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = init_client(dir.path());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(fixtures.join("python-client.toml")).unwrap();
    let flags: String = flags.iter().map(|f| format!("\"{f}\", ")).collect();
    let text = text
        .replace(
            "@SCRIPT@",
            fixtures.join("python_client.py").to_str().unwrap(),
        )
        .replace("@LIB@", lib)
        .replace("@FLAGS@", &flags)
        .replace("@RETRIES@", if retries { "true" } else { "false" });
    std::fs::write(&cfg, text).unwrap();
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    if let Some(t) = tags {
        args.extend(["--tags", t]);
    }
    let r = run(&dir.path().join("out"), &args);
    (dir, r)
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const CLIENT_REQUIREMENTS: [&str; 5] = [
    "EB-MTLS-1",
    "EB-MTLS-2",
    "FMK-2.1-CA",
    "FMK-2.1-REVOKE",
    "FMK-2.4-LOAD",
];

/// The run exited `code` and exactly `want` have `verdict`.
fn expect(r: &Run, code: i32, verdict: &str, want: &[&str]) {
    assert_eq!(r.code(), code, "{}", r.explain());
    assert_eq!(r.with_verdict(verdict), ids(want), "{}", r.explain());
}

#[test]
fn python_requests_with_a_crl_and_urllib3_retry_is_a_compliant_client() {
    if !python_clients_available() {
        return;
    }
    let (_d, r) = certify("requests", &[], true, None);
    expect(&r, 0, "pass", &CLIENT_REQUIREMENTS);
}

#[test]
fn python_httpx_with_its_own_ssl_context_is_a_compliant_client() {
    if !python_clients_available() {
        return;
    }
    let (_d, r) = certify("httpx", &[], false, None);
    expect(&r, 0, "pass", &CLIENT_REQUIREMENTS);
}

#[test]
fn python_requests_with_verify_false_fails_the_server_certificate_checks() {
    if !python_clients_available() {
        return;
    }
    let tags = Some("@role:client and not @req:FMK-2.4-LOAD");
    let (_d, r) = certify("requests", &["--insecure"], true, tags);
    expect(
        &r,
        1,
        "fail",
        &["EB-MTLS-1", "FMK-2.1-CA", "FMK-2.1-REVOKE"],
    );
    expect(&r, 1, "pass", &["EB-MTLS-2"]);
}

#[test]
fn python_requests_without_a_retry_policy_fails_fmk_2_4_load() {
    if !python_clients_available() {
        return;
    }
    let (_d, r) = certify("requests", &["--no-retry"], true, Some("@req:FMK-2.4-LOAD"));
    expect(&r, 1, "fail", &["FMK-2.4-LOAD"]);
    assert!(
        r.stdout()
            .contains("did not call again after the Retry-After"),
        "{}",
        r.explain()
    );
}

#[test]
fn python_httpx_without_a_crl_fails_revocation() {
    if !python_clients_available() {
        return;
    }
    let (_d, r) = certify("httpx", &["--no-crl"], false, Some("@req:FMK-2.1-REVOKE"));
    expect(&r, 1, "fail", &["EB-MTLS-1", "FMK-2.1-REVOKE"]);
}
