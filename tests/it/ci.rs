//! provsten on CI hosts, run as their pipelines would: a GitLab `parallel:` job sharding
//! with `--shard auto` and merging, and a GitHub Actions step with its job summary and
//! annotations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::util::{provsten, shared_run, SMALL};

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn verdicts(report: &Value) -> BTreeMap<String, String> {
    report["requirements"]
        .as_array()
        .expect("requirements")
        .iter()
        .map(|r| (r["id"].to_string(), r["verdict"].to_string()))
        .collect()
}

fn explain(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `provsten run -q --out OUT ARGS…` with `vars` set, as a CI host sets them.
fn run_with(out: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    provsten()
        .args(["run", "-q", "--out"])
        .arg(out)
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("running provsten")
}

#[test]
fn gitlab_parallel_shards_with_shard_auto_merge_into_the_unsharded_verdicts() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // What `parallel: 2` gives each job.
    let mut shards: Vec<PathBuf> = Vec::new();
    for index in ["1", "2"] {
        let out = dir.path().join(format!("shard{index}"));
        let args = [SMALL, &["--shard", "auto"]].concat();
        let o = run_with(
            &out,
            &args,
            &[("CI_NODE_INDEX", index), ("CI_NODE_TOTAL", "2")],
        );
        let report = out.join("report.json");
        assert!(report.exists(), "{}", explain(&o));
        let shard = &read_json(&report)["shard"];
        assert_eq!(shard["index"].to_string(), index, "{}", explain(&o));
        assert_eq!(shard["count"], 2);
        assert!(!String::from_utf8_lossy(&o.stdout).contains("::error"));
        shards.push(report);
    }
    let merged = dir.path().join("merged");
    let o = provsten()
        .args(["report", "merge"])
        .args(&shards)
        .arg("--out")
        .arg(&merged)
        .output()
        .expect("running provsten report merge");
    let (whole, _) = shared_run(SMALL);
    assert_eq!(
        o.status.code(),
        whole.output.status.code(),
        "{}",
        explain(&o)
    );
    let merged = read_json(&merged.join("report.json"));
    assert_eq!(verdicts(&merged), verdicts(whole.report()));
    assert_eq!(merged["verdict"], whole.report()["verdict"]);
    assert_eq!(
        merged["scenarios"].as_array().map(Vec::len),
        whole.report()["scenarios"].as_array().map(Vec::len)
    );
}

#[test]
fn shard_auto_without_the_variables_names_them_and_runs_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    for (vars, names) in [
        (
            &[][..],
            &[
                "CI_NODE_INDEX",
                "PROVSTEN_SHARD_INDEX",
                "PROVSTEN_SHARD_TOTAL",
            ][..],
        ),
        (
            &[("PROVSTEN_SHARD_INDEX", "4"), ("PROVSTEN_SHARD_TOTAL", "3")][..],
            &["PROVSTEN_SHARD_INDEX=4", "PROVSTEN_SHARD_TOTAL=3"][..],
        ),
    ] {
        let o = run_with(&out, &["--shard", "auto"], vars);
        assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        for n in names {
            assert!(stderr.contains(n), "{n} not named: {stderr}");
        }
        assert!(!out.join("report.json").exists());
    }
}

/// The scenarios of EB-MTLS-1, which `accept-expired-cert` breaks.
const MTLS_1: &[&str] = &[
    "--tags",
    "@req:EB-MTLS-1",
    "--defect",
    "accept-expired-cert",
];

#[test]
fn github_actions_gets_a_job_summary_and_an_error_on_each_failing_feature_line() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let summary = dir.path().join("step_summary.md");
    // An earlier command of the same step wrote to the summary: provsten appends.
    std::fs::write(&summary, "earlier output\n").expect("writing the summary file");
    let out = dir.path().join("out");
    let summary_var = summary.to_str().expect("a UTF-8 temp path");
    let o = run_with(
        &out,
        MTLS_1,
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary_var),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", explain(&o));

    let text = std::fs::read_to_string(&summary).expect("reading the summary");
    assert!(
        text.starts_with("earlier output\n\n## provsten: NON-COMPLIANT\n"),
        "{text}"
    );
    assert!(text.contains("| `EB-MTLS-1` | **FAIL** |"), "{text}");
    assert!(text.contains("### Failed and error scenarios ("), "{text}");
    assert_eq!(
        text.trim_start_matches("earlier output\n\n"),
        std::fs::read_to_string(out.join("summary.md")).expect("summary.md"),
        "the job summary is summary.md"
    );

    let report = read_json(&out.join("report.json"));
    let failing: Vec<&Value> = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter(|s| s["status"] == "failed" || s["status"] == "error")
        .collect();
    assert!(!failing.is_empty(), "{}", explain(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(
        errors.len(),
        failing.len().min(10) + usize::from(failing.len() > 10)
    );
    for (line, scenario) in errors.iter().zip(&failing) {
        let key = scenario["key"].as_str().expect("a key");
        let (file, number) = key.rsplit_once(':').expect("path:line");
        let title: Vec<&str> = scenario["requirements"]
            .as_array()
            .expect("requirements")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(title.contains(&"EB-MTLS-1"), "{title:?}");
        let title = title.join("%2C ");
        let prefix = format!("::error file={file},line={number},title={title}::FAIL: ");
        assert!(line.starts_with(&prefix), "{line}\nexpected {prefix}");
        assert!(file.starts_with("features/"), "{file}");
        // The annotation points at a line of the feature file in this repository.
        let feature = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let n: usize = number.parse().expect("a line number");
        assert!(n >= 1 && n <= feature.lines().count(), "{key}");
    }
}

#[test]
fn without_github_actions_there_is_no_summary_and_no_annotation() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let summary = dir.path().join("step_summary.md");
    let summary_var = summary.to_str().expect("a UTF-8 temp path");
    let o = run_with(
        &dir.path().join("out"),
        MTLS_1,
        &[("GITHUB_STEP_SUMMARY", summary_var)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", explain(&o));
    assert!(!summary.exists());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("::error"));
}

#[test]
fn an_unwritable_step_summary_is_a_warning_not_a_changed_verdict() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let summary = dir.path().join("no-such-dir").join("summary.md");
    let summary_var = summary.to_str().expect("a UTF-8 temp path");
    let o = run_with(
        &dir.path().join("out"),
        MTLS_1,
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary_var),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", explain(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("warning: no job summary written to") && stderr.contains("no-such-dir"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("::error file=features/"));
}
