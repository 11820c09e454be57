//! Reports as their readers use them: signed and verified (also with OpenSSL-made keys),
//! tampering detected, shards merged into what an unsharded run reports, re-rendered, and
//! bad input refused with exit 2.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::util::{provsten, run, shared_run, REPORT_FILES, SMALL};

fn verify(report: &Path, key: &Path, extra: &[&str]) -> (i32, String) {
    let out = provsten()
        .args(["report", "verify"])
        .arg(report)
        .arg("--key")
        .arg(key)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn signed_report_verifies_and_a_flipped_verdict_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("signer");
    assert!(provsten()
        .arg("keygen")
        .arg(&prefix)
        .status()
        .unwrap()
        .success());
    let key = dir.path().join("signer.key.pem");
    let public = dir.path().join("signer.pub.pem");
    let out = dir.path().join("out");
    let r = run(
        &out,
        &["--sign", key.to_str().unwrap(), "--tags", "@req:EB-TLS-1"],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert_eq!(r.report()["signature"]["algorithm"], "ed25519");
    for k in ["features", "config", "catalogue", "ca_certificate"] {
        assert!(
            r.report()["inputs"]["digests"][k]
                .as_str()
                .is_some_and(|d| d.len() == 64),
            "{k}"
        );
    }
    let report = out.join("report.json");
    let trust = out.join("pki/trust.pem");
    let (code, text) = verify(&report, &public, &["--ca", trust.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ca_certificate: ok"), "{text}");
    assert!(
        text.contains("of 31 testable requirements of profile all tested")
            && text.contains("certification not complete (--complete was not asked)"),
        "{text}"
    );

    // One verdict flipped.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    v["requirements"][0]["verdict"] = serde_json::json!("fail");
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let (code, text) = verify(&tampered, &public, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("changed after signing"), "{text}");

    // Another CA than the one claimed.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, "not the CA").unwrap();
    let (code, text) = verify(&report, &public, &["--ca", other.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("ca_certificate: MISMATCH"), "{text}");
}

#[test]
fn keys_made_by_openssl_sign_and_verify() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var_os("PROVSTEN_SKIP_OPENSSL").is_some(),
            "openssl is needed (or PROVSTEN_SKIP_OPENSSL=1)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let public = dir.path().join("k.pub");
    assert!(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap()
        .success());
    let out = dir.path().join("out");
    let r = run(
        &out,
        &["--sign", key.to_str().unwrap(), "--tags", "@req:EB-TLS-1"],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    let (code, text) = verify(&out.join("report.json"), &public, &[]);
    assert_eq!(code, 0, "{text}");
}

fn verdicts(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn merged_shards_give_the_verdicts_of_an_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    for defect in [None, Some("ignore-crl")] {
        let mut extra: Vec<&str> = SMALL.to_vec();
        extra.extend(defect.map(|d| ["--defect", d]).into_iter().flatten());
        let whole = run(&dir.path().join("whole"), &extra);
        let mut shard_reports = Vec::new();
        for i in 1..=3 {
            let out = dir.path().join(format!("shard{i}"));
            let mut args = vec!["--shard".to_string(), format!("{i}/3")];
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = run(&out, &args);
            assert!(r.report.is_some(), "{}", r.explain());
            shard_reports.push(out.join("report.json"));
        }
        let merged_dir = dir.path().join("merged");
        let out = provsten()
            .args(["report", "merge"])
            .args(&shard_reports)
            .arg("--out")
            .arg(&merged_dir)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            whole.output.status.code(),
            "merge: {}\nwhole run: {}",
            String::from_utf8_lossy(&out.stderr),
            whole.explain()
        );
        let merged: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(merged_dir.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(
            verdicts(&merged),
            verdicts(whole.report()),
            "defect {defect:?}"
        );
        assert_eq!(
            merged["scenarios"].as_array().unwrap().len(),
            whole.report()["scenarios"].as_array().unwrap().len()
        );
        assert_eq!(merged["verdict"], whole.report()["verdict"]);
    }
}

#[test]
fn merging_shards_of_different_runs_or_an_incomplete_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    run(&a, &[SMALL, &["--shard", "1/2"]].concat());
    run(
        &b,
        &[SMALL, &["--shard", "2/2", "--defect", "ignore-crl"]].concat(),
    );
    let refused = |shards: &[&Path], why: &str| {
        let out = provsten()
            .args(["report", "merge"])
            .args(shards.iter().map(|p| p.join("report.json")))
            .arg("--out")
            .arg(dir.path().join("m"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    };
    refused(&[&a, &b], "from another run");
    refused(&[&a], "missing");
}

#[test]
fn render_regenerates_every_format_and_refuses_bad_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (r, out) = shared_run(&["--defect", "accept-expired-cert"]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let again = dir.path().join("again");
    let o = provsten()
        .args(["report", "render"])
        .arg(out.join("report.json"))
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "render exits with the report's verdict"
    );
    for f in REPORT_FILES {
        assert_eq!(
            std::fs::read_to_string(out.join(f)).unwrap(),
            std::fs::read_to_string(again.join(f)).unwrap(),
            "{f} differs after re-rendering"
        );
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"schema_version": 99}"#).unwrap();
    let o = provsten()
        .args(["report", "render"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("schema_version 99"));
    std::fs::write(&bad, "{ not json").unwrap();
    let o = provsten()
        .args(["report", "render"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.json"));
}

/// `xmllint --noout --schema XSD FILE`: `Err` with xmllint's complaint.
fn xmllint_validate(schema: &Path, file: &Path) -> Result<(), String> {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run xmllint ({e}): install it with `apt-get install libxml2-utils` \
                 (scripts/test --deps-only does)"
            )
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn junit_xml_is_valid_against_the_jenkins_schema() {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit/junit-10.xsd");
    // The check itself: a testcase with properties and a `file` attribute, as junit.xml
    // had them, is refused.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.xml");
    std::fs::write(
        &old,
        r#"<testsuites tests="1" failures="0" errors="0"><testsuite name="f" tests="1" failures="0" errors="0"><testcase name="s" file="f.feature"><properties><property name="requirement" value="EB-TLS-1"/></properties></testcase></testsuite></testsuites>"#,
    )
    .unwrap();
    let refused = xmllint_validate(&schema, &old).expect_err("the schema refuses old junit.xml");
    assert!(
        refused.contains("file") || refused.contains("properties"),
        "{refused}"
    );

    let (passing, passing_out) = shared_run(&[]);
    assert_eq!(passing.code(), 0, "{}", passing.explain());
    let (failing, failing_out) = shared_run(&["--defect", "accept-expired-cert"]);
    assert_eq!(failing.code(), 1, "{}", failing.explain());
    for out in [passing_out, failing_out] {
        let junit = out.join("junit.xml");
        if let Err(e) = xmllint_validate(&schema, &junit) {
            panic!(
                "{} is not valid against junit-10.xsd:\n{e}",
                junit.display()
            );
        }
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(
            xml.contains(r#"<property name="requirement" value="EB-TLS-1"/>"#),
            "requirement IDs stay in <properties>"
        );
        // Keyword, one space, text: never "Giventhe" nor "Given  the".
        assert!(xml.contains("passed    Given "), "{xml}");
        for glued in [
            "Giventhe", "Whenthe", "Thenthe", "Andthe", "Given  ", "Then  ",
        ] {
            assert!(!xml.contains(glued), "{glued} in {}", junit.display());
        }
    }
    let xml = std::fs::read_to_string(failing_out.join("junit.xml")).unwrap();
    assert!(
        xml.contains("<failure "),
        "the defect run has failures: {xml}"
    );
}

#[test]
fn cucumber_json_names_features_by_their_title() {
    let (r, out) = shared_run(&["--defect", "accept-expired-cert"]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cucumber.json")).unwrap()).unwrap();
    let features = json.as_array().expect("an array of features");
    assert!(!features.is_empty());
    for feature in features {
        let uri = feature["uri"].as_str().unwrap();
        let name = feature["name"].as_str().unwrap();
        assert!(uri.ends_with(".feature"), "{uri}");
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(uri))
            .unwrap_or_else(|e| panic!("{uri}: {e}"));
        let title = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Feature:"))
            .unwrap_or_else(|| panic!("{uri} has no Feature: line"))
            .trim();
        assert_eq!(name, title, "{uri}");
        for step in feature["elements"][0]["steps"].as_array().unwrap() {
            let keyword = step["keyword"].as_str().unwrap();
            assert!(
                keyword.ends_with(' ') && !keyword.ends_with("  "),
                "{keyword:?}"
            );
        }
    }
}

/// `node tests/fixtures/messages/validate.mjs FILE`: `Err` with its complaint. Panics with an
/// install hint when node or the validator's packages are missing.
fn messages_validate(file: &Path) -> Result<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages");
    assert!(
        dir.join("node_modules/@cucumber/messages").is_dir()
            && dir.join("node_modules/ajv").is_dir(),
        "the Cucumber Messages schema is not installed: run `npm ci --prefix {}` \
         (scripts/test --deps-only does)",
        dir.display()
    );
    let out = Command::new("node")
        .arg(dir.join("validate.mjs"))
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run node ({e}): install Node.js 18 or later (`apt-get install nodejs npm`; \
                 scripts/test --deps-only does)"
            )
        });
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn messages_ndjson_is_valid_against_the_cucumber_messages_schema() {
    // The check itself: an envelope missing what the schema requires is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"pickle\":{\"id\":\"1\"}}\n").unwrap();
    let refused = messages_validate(&bad).expect_err("the schema refuses a bare pickle");
    assert!(refused.contains("uri"), "{refused}");

    let (passing, passing_out) = shared_run(&[]);
    assert_eq!(passing.code(), 0, "{}", passing.explain());
    let (failing, failing_out) = shared_run(&["--defect", "accept-expired-cert"]);
    assert_eq!(failing.code(), 1, "{}", failing.explain());
    for (out, success) in [(passing_out, true), (failing_out, false)] {
        let file = out.join("messages.ndjson");
        if let Err(e) = messages_validate(&file) {
            panic!("{} is not valid Cucumber Messages:\n{e}", file.display());
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(
            last["testRunFinished"]["success"],
            success,
            "{}",
            file.display()
        );
        // Shipped features carry their text.
        assert!(
            text.lines().any(|l| l.starts_with("{\"source\":")),
            "{}",
            file.display()
        );
        if !success {
            assert!(
                text.contains("\"status\":\"FAILED\""),
                "the defect run fails a step"
            );
        }
    }
}
