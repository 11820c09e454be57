//! Report writers: each turns a finished [`Report`] into one artefact (DESIGN.md
//! "Report contract", STYLE.md point 3).
//!
//! Writers read the report model and nothing else: never runner state, never the world of
//! a scenario. Every file writer is listed once in [`FILE_WRITERS`]; [`write_all`] writes
//! them all into the output directory. The console writer is not a file: the runner prints
//! [`console::progress_line`] per finished scenario and [`console::summary_table`] at the end.
//! Nor is [`github`]: under GitHub Actions, `commands.rs` appends its job summary to
//! `$GITHUB_STEP_SUMMARY` and prints its annotations.

pub(crate) mod console;
pub(crate) mod cucumber_json;
mod evidence_table;
pub(crate) mod github;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod markdown;
mod markup;
pub(crate) mod messages;
mod svg;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::report::model::*;

/// One file in the output directory and how to render it.
struct FileWriter {
    file_name: &'static str,
    render: fn(&Report) -> anyhow::Result<String>,
}

/// Every file `provsten run` writes into `--out DIR`, in the order written. `report.json`
/// comes first, so even if a later writer fails the data is on disk to re-render from.
const FILE_WRITERS: &[FileWriter] = &[
    FileWriter {
        file_name: json::FILE_NAME,
        render: json::render,
    },
    FileWriter {
        file_name: junit::FILE_NAME,
        render: junit::render,
    },
    FileWriter {
        file_name: cucumber_json::FILE_NAME,
        render: cucumber_json::render,
    },
    FileWriter {
        file_name: html::FILE_NAME,
        render: |report| Ok(html::render(report)),
    },
    FileWriter {
        file_name: markdown::FILE_NAME,
        render: |report| Ok(markdown::render(report)),
    },
    FileWriter {
        file_name: messages::FILE_NAME,
        render: messages::render,
    },
];

/// Creates `out_dir` and writes `report.json`, `junit.xml`, `cucumber.json`, `report.html`,
/// `summary.md` and `messages.ndjson` into it. Returns the paths written, in that order.
pub(crate) fn write_all(report: &Report, out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create report directory {}", out_dir.display()))?;
    let mut written = Vec::with_capacity(FILE_WRITERS.len());
    for writer in FILE_WRITERS {
        let path = out_dir.join(writer.file_name);
        let text =
            (writer.render)(report).with_context(|| format!("cannot render {}", path.display()))?;
        // Written aside and renamed: a reader never sees half a report.
        let partial = out_dir.join(format!(".{}.partial", writer.file_name));
        fs::write(&partial, text).with_context(|| format!("cannot write {}", partial.display()))?;
        fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Removes the reports an earlier run left in `out_dir`, before a run starts: an
/// interrupted or failed run must never leave another run's report (a stale COMPLIANT)
/// where its own would be.
pub(crate) fn remove_previous(out_dir: &Path) -> anyhow::Result<()> {
    for writer in FILE_WRITERS {
        let path = out_dir.join(writer.file_name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("removing the earlier report {}", path.display())))
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Shared helpers: the words and numbers every writer prints the same way.

/// Scenarios by key, for looking up the scenarios a requirement lists.
fn scenarios_by_key(report: &Report) -> HashMap<&str, &ScenarioResult> {
    report
        .scenarios
        .iter()
        .map(|s| (s.key.as_str(), s))
        .collect()
}

/// Scenarios grouped by feature, features in order of first appearance.
fn by_feature(scenarios: &[ScenarioResult]) -> Vec<(&str, Vec<&ScenarioResult>)> {
    let mut groups: Vec<(&str, Vec<&ScenarioResult>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for scenario in scenarios {
        let slot = *index.entry(scenario.feature.as_str()).or_insert_with(|| {
            groups.push((scenario.feature.as_str(), Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(scenario);
    }
    groups
}

/// `(passed, total)` over the scenarios a requirement lists. A listed scenario missing from
/// the report (another shard ran it) counts towards the total, not as passed.
fn scenario_tally(
    requirement: &RequirementResult,
    by_key: &HashMap<&str, &ScenarioResult>,
) -> (usize, usize) {
    let passed = requirement
        .scenarios
        .iter()
        .filter(|key| {
            by_key
                .get(key.as_str())
                .is_some_and(|s| s.status == ScenarioStatus::Passed)
        })
        .count();
    (passed, requirement.scenarios.len())
}

/// The upper-case word for a requirement verdict, as printed in tables.
fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Error => "ERROR",
        Verdict::Fail => "FAIL",
        Verdict::NotApplicable => "NOT-APPLICABLE",
        Verdict::NotTested => "NOT-TESTED",
        Verdict::NotTestable => "NOT-TESTABLE",
        Verdict::Pass => "PASS",
    }
}

/// The upper-case word for the run verdict.
fn run_verdict_label(verdict: RunVerdict) -> &'static str {
    match verdict {
        RunVerdict::Compliant => "COMPLIANT",
        RunVerdict::Error => "ERROR",
        RunVerdict::NonCompliant => "NON-COMPLIANT",
    }
}

/// The short upper-case word for a scenario status (at most 5 characters).
fn status_label(status: ScenarioStatus) -> &'static str {
    match status {
        ScenarioStatus::Error => "ERROR",
        ScenarioStatus::Failed => "FAIL",
        ScenarioStatus::NotApplicable => "N/A",
        ScenarioStatus::Passed => "PASS",
    }
}

/// Failed and error scenarios are the ones a reader has to look at.
fn needs_attention(status: ScenarioStatus) -> bool {
    matches!(status, ScenarioStatus::Failed | ScenarioStatus::Error)
}

/// The feature file of a scenario key: `features/mtls.feature:12` → `features/mtls.feature`.
fn key_path(key: &str) -> &str {
    match key.rsplit_once(':') {
        Some((path, line)) if line.parse::<usize>().is_ok() => path,
        _ => key,
    }
}

/// The line of a scenario key: `features/mtls.feature:12` → `12`, `0` if the key has none.
fn key_line(key: &str) -> usize {
    key.rsplit_once(':')
        .and_then(|(_, line)| line.parse().ok())
        .unwrap_or(0)
}

/// Human duration: `41 ms`, `2.35 s`, `3 min 05 s`.
fn format_duration_ms(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.2} s", ms as f64 / 1_000.0)
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1_000)
    }
}

/// Cuts `text` to at most `max` characters, ending with `…` when something was cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Requirement IDs as a list for a sentence, at most `max` named: `A, B, C and 4 more`.
fn id_list(ids: &[&str], max: usize) -> String {
    if ids.len() <= max {
        ids.join(", ")
    } else {
        format!("{} and {} more", ids[..max].join(", "), ids.len() - max)
    }
}

/// What the run verdict rests on, in one sentence without the verdict word itself:
/// `2 of 9 requirements fail (EB-MTLS-1, FMK-2.1-REVOKE)`, or the coverage of a passing
/// run: `6 of 8 testable requirements of profile ebevis tested, all pass (2 not tested:
/// EB-IP-1, EB-IP-2)`.
/// The one sentence an integrator needs first when a run is not compliant: the first
/// failing scenario of the first failing requirement (catalogue order) with what it saw;
/// failing that, the first scenario that could not be evaluated, said to be a harness
/// error. `None` for a compliant run.
fn first_to_fix(report: &Report) -> Option<String> {
    const MAX_MESSAGE: usize = 300;
    let by_key = scenarios_by_key(report);
    let first = |verdict: Verdict, status: ScenarioStatus| {
        report
            .requirements
            .iter()
            .filter(|r| r.verdict == verdict)
            .find_map(|r| {
                r.scenarios
                    .iter()
                    .filter_map(|k| by_key.get(k.as_str()))
                    .find(|s| s.status == status)
                    .map(|s| (r, *s))
            })
    };
    let message = |s: &ScenarioResult| {
        s.message
            .as_deref()
            .map(|m| format!(": {}", truncate(m, MAX_MESSAGE)))
            .unwrap_or_default()
    };
    if let Some((r, s)) = first(Verdict::Fail, ScenarioStatus::Failed) {
        return Some(format!(
            "first to fix: {} fails at {} ({}){}",
            r.id,
            s.key,
            s.name,
            message(s)
        ));
    }
    first(Verdict::Error, ScenarioStatus::Error).map(|(r, s)| {
        format!(
            "first to look at: {} could not be evaluated at {} ({}), a harness error, not the IUT's failure{}",
            r.id,
            s.key,
            s.name,
            message(s)
        )
    })
}

fn verdict_reason(report: &Report) -> String {
    let reason = verdict_reason_core(report);
    match report.iut.exits.as_slice() {
        [] => reason,
        exits => {
            let first = exits
                .iter()
                .find_map(|e| e.during.first())
                .map(|k| format!(", first during {k}"))
                .unwrap_or_default();
            let times = if exits.len() == 1 {
                "once"
            } else {
                "more than once"
            };
            let verb = if exits[0].attached {
                "stopped answering"
            } else {
                "exited"
            };
            format!(
                "{reason}; the IUT {verb} {times} during the run ({}{first})",
                exits[0].status
            )
        }
    }
}

fn verdict_reason_core(report: &Report) -> String {
    let total = report.requirements.len();
    if total == 0 {
        return format!("no requirements in profile {}", report.profile);
    }
    let with = |verdict: Verdict| -> Vec<&str> {
        report
            .requirements
            .iter()
            .filter(|r| r.verdict == verdict)
            .map(|r| r.id.as_str())
            .collect()
    };
    let (fails, errors) = (with(Verdict::Fail), with(Verdict::Error));
    let noun = if total == 1 {
        "requirement"
    } else {
        "requirements"
    };
    let mut clauses = Vec::new();
    if !fails.is_empty() {
        let verb = if fails.len() == 1 { "fails" } else { "fail" };
        clauses.push(format!(
            "{} of {total} {noun} {verb} ({})",
            fails.len(),
            id_list(&fails, 6)
        ));
    }
    if !errors.is_empty() {
        let head = if fails.is_empty() {
            format!("{} of {total} {noun}", errors.len())
        } else {
            errors.len().to_string()
        };
        clauses.push(format!(
            "{head} could not be evaluated: a harness error, not a failure of the IUT ({})",
            id_list(&errors, 6)
        ));
    }
    if !clauses.is_empty() {
        return clauses.join("; ");
    }
    let not_tested: Vec<&RequirementResult> = report
        .requirements
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::NotTested | Verdict::NotApplicable))
        .collect();
    let coverage = &report.coverage;
    if coverage.passed == 0 {
        let mut reasons: Vec<&str> = Vec::new();
        for r in &not_tested {
            if let Some(why) = r.reason.as_deref() {
                if !reasons.contains(&why) {
                    reasons.push(why);
                }
            }
        }
        let shown: Vec<&str> = reasons.iter().take(3).copied().collect();
        let more = reasons.len().saturating_sub(shown.len());
        return format!(
            "nothing was tested: 0 of {} testable requirements of profile {} were exercised ({}{})",
            coverage.testable,
            report.profile,
            shown.join("; "),
            if more > 0 {
                format!("; and {more} other reasons")
            } else {
                String::new()
            }
        );
    }
    let mut clause = format!(
        "{} of {} testable requirements of profile {} tested, all pass",
        coverage.tested, coverage.testable, report.profile
    );
    if !not_tested.is_empty() {
        let ids: Vec<&str> = not_tested.iter().map(|r| r.id.as_str()).collect();
        clause.push_str(&format!(
            " ({} not tested: {})",
            ids.len(),
            id_list(&ids, 6)
        ));
    }
    if coverage.complete_required && !coverage.complete {
        clause = format!("incomplete certification (--complete): {clause}");
    } else if coverage.complete_required {
        clause.push_str("; complete certification");
    }
    clause
}

/// The coverage fact every writer states: `6 of 9 testable requirements of profile all
/// tested (5 pass, 1 fail)`, and whether a `--complete` certification was complete.
fn coverage_line(report: &Report) -> String {
    let c = &report.coverage;
    let failed = c.tested.saturating_sub(c.passed);
    let mut line = format!(
        "{} of {} testable requirements of profile {} tested ({} pass{})",
        c.tested,
        c.testable,
        report.profile,
        c.passed,
        if failed > 0 {
            format!(", {failed} fail")
        } else {
            String::new()
        }
    );
    if c.complete_required {
        line.push_str(if c.complete {
            "; complete certification: every testable requirement tested and passed"
        } else {
            "; incomplete certification: not every testable requirement was tested and passed"
        });
    }
    line
}

/// A one-line rendering of a scenario's evidence for terminals and summaries:
/// `key=value` pairs of each observation, observations joined by ` → `.
///
/// Evidence is data of any shape, so this is generic: object members become `key=value`
/// (strings bare unless they contain spaces, anything nested as compact JSON), other values
/// print as compact JSON.
/// Observations that carry a one-line `summary` (steps write one where a verdict was
/// decided) are shown by it; otherwise every observation's fields.
fn condense_evidence(evidence: &[Evidence]) -> String {
    // Charts condense like any other observation: as the JSON they are written as.
    let values: Vec<serde_json::Value> = evidence.iter().map(Evidence::to_value).collect();
    let summaries: Vec<&str> = values
        .iter()
        .filter_map(|v| v.get("summary").and_then(|s| s.as_str()))
        .collect();
    if !summaries.is_empty() {
        return summaries.join(" → ");
    }
    values
        .iter()
        .map(condense_observation)
        .collect::<Vec<_>>()
        .join(" → ")
}

fn condense_observation(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(members) => members
            .iter()
            .map(|(key, value)| format!("{key}={}", condense_scalar(value)))
            .collect::<Vec<_>>()
            .join(" "),
        other => condense_scalar(other),
    }
}

fn condense_scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
            s.clone()
        }
        other => other.to_string(),
    }
}

/// The evidence as pretty JSON (an array, one element per observation).
fn evidence_json(evidence: &[Evidence]) -> String {
    // Serialising evidence cannot fail: it is JSON values and charts of strings and numbers.
    serde_json::to_string_pretty(evidence).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

/// A report with 2 features, 4 scenarios (passed, failed with evidence, not-applicable,
/// error with a resend and an exercise timeline) and requirements of every verdict, for
/// the writers' unit tests.
#[cfg(test)]
pub(crate) fn sample_report() -> Report {
    use serde_json::json;

    use crate::shared::RequirementId;

    let step = |keyword: &str, text: &str, line: usize, status: StepStatus| StepResult {
        keyword: keyword.to_owned(),
        text: text.to_owned(),
        line,
        status,
    };
    let requirement =
        |id: &str, title: &str, profile: &str, verdict: Verdict, scenarios: &[&str]| {
            RequirementResult {
                id: id.parse().expect("a requirement ID"),
                title: title.to_owned(),
                source: format!("Anslutningsvillkor 2.1, {id}"),
                profile: profile.to_owned(),
                verdict,
                reason: None,
                scenarios: scenarios.iter().map(|s| (*s).to_owned()).collect(),
            }
        };
    Report {
        schema_version: SCHEMA_VERSION,
        harness: Harness {
            name: "provsten".to_owned(),
            version: "0.1.0".to_owned(),
        },
        iut: IutInfo {
            name: "reference-iut".to_owned(),
            roles: vec!["server".to_owned(), "sender".to_owned()],
            server_certificate_sha256: Some(
                "3f1a9c0e5b7d2468ace013579bdf2468ace013579bdf2468ace013579bdf2468".to_owned(),
            ),
            defects: vec!["accept-expired-cert".to_owned()],
            exits: vec![],
        },
        profile: "all".to_owned(),
        started_at: "2025-11-23T12:00:00Z".to_owned(),
        finished_at: "2025-11-23T12:00:04.250Z".to_owned(),
        verdict: RunVerdict::NonCompliant,
        coverage: Coverage {
            testable: 4,
            tested: 2,
            passed: 1,
            complete_required: false,
            complete: false,
        },
        requirements: vec![
            requirement(
                "EB-MTLS-1",
                "The server refuses expired, revoked and untrusted client certificates \
                 during the TLS handshake, before any application data is exchanged",
                "e-evidence",
                Verdict::Fail,
                &["features/mtls.feature:14"],
            ),
            requirement(
                "EB-MTLS-2",
                "The server accepts a valid client certificate of a registered organisation",
                "e-evidence",
                Verdict::Pass,
                &["features/mtls.feature:6"],
            ),
            RequirementResult {
                reason: Some("needs role receiver, which the IUT does not declare".to_owned()),
                ..requirement(
                    "FMK-3-IDEMPOTENT",
                    "The receiver is idempotent on resent notifications",
                    "fmk",
                    Verdict::NotTested,
                    &["features/resend.feature:8"],
                )
            },
            requirement(
                "FMK-4-RESEND",
                "The sender follows its declared resend policy",
                "fmk",
                Verdict::Error,
                &["features/resend.feature:20"],
            ),
            RequirementResult {
                reason: Some("needs an audit log; the IUT config declares none".to_owned()),
                ..requirement(
                    "FMK-5-AUDIT",
                    "Every refused request is written to the audit log",
                    "fmk",
                    Verdict::NotTestable,
                    &[],
                )
            },
        ],
        scenarios: vec![
            ScenarioResult {
                key: "features/mtls.feature:6".to_owned(),
                feature: "features/mtls.feature".to_owned(),
                feature_name: Some("Client certificates".to_owned()),
                name: "valid client certificate is accepted".to_owned(),
                tags: vec!["@req:EB-MTLS-2".to_owned(), "@role:server".to_owned()],
                requirements: vec![RequirementId::of("EB-MTLS-2")],
                status: ScenarioStatus::Passed,
                duration_ms: 38,
                steps: vec![
                    step(
                        "Given ",
                        "a client certificate \"client-ok\"",
                        7,
                        StepStatus::Passed,
                    ),
                    step("When ", "the client calls the API", 8, StepStatus::Passed),
                    step("Then ", "the IUT answers HTTP 200", 9, StepStatus::Passed),
                ],
                message: None,
                evidence: vec![json!({"presented": "client-ok", "http_status": 200}).into()],
            },
            ScenarioResult {
                key: "features/mtls.feature:14".to_owned(),
                feature: "features/mtls.feature".to_owned(),
                feature_name: Some("Client certificates".to_owned()),
                name: "expired client certificate is refused".to_owned(),
                tags: vec!["@req:EB-MTLS-1".to_owned(), "@role:server".to_owned()],
                requirements: vec![RequirementId::of("EB-MTLS-1")],
                status: ScenarioStatus::Failed,
                duration_ms: 41,
                steps: vec![
                    step(
                        "Given ",
                        "a client certificate \"client-expired\"",
                        15,
                        StepStatus::Passed,
                    ),
                    step("When ", "the client calls the API", 16, StepStatus::Passed),
                    step(
                        "Then ",
                        "the handshake fails with alert certificate_expired",
                        17,
                        StepStatus::Failed,
                    ),
                ],
                message: Some(
                    "expected the handshake to fail, but the IUT answered HTTP 200".to_owned(),
                ),
                evidence: vec![
                    json!({"presented": "client-expired", "not_after": "2024-01-01T00:00:00Z"})
                        .into(),
                    json!({"http_status": 200, "body": "protected data", "bytes": 512}).into(),
                ],
            },
            ScenarioResult {
                key: "features/resend.feature:8".to_owned(),
                feature: "features/resend.feature".to_owned(),
                feature_name: Some("Resends and idempotency".to_owned()),
                name: "receiver is idempotent on resends".to_owned(),
                tags: vec![
                    "@req:FMK-3-IDEMPOTENT".to_owned(),
                    "@role:receiver".to_owned(),
                ],
                requirements: vec![RequirementId::of("FMK-3-IDEMPOTENT")],
                status: ScenarioStatus::NotApplicable,
                duration_ms: 0,
                steps: vec![step(
                    "Given ",
                    "the IUT receives notifications",
                    9,
                    StepStatus::Skipped,
                )],
                message: Some("the IUT does not declare role `receiver`".to_owned()),
                evidence: vec![],
            },
            ScenarioResult {
                key: "features/resend.feature:20".to_owned(),
                feature: "features/resend.feature".to_owned(),
                feature_name: Some("Resends and idempotency".to_owned()),
                name: "sender follows its declared resend policy".to_owned(),
                tags: vec!["@req:FMK-4-RESEND".to_owned(), "@role:sender".to_owned()],
                requirements: vec![RequirementId::of("FMK-4-RESEND")],
                status: ScenarioStatus::Error,
                duration_ms: 1_250,
                steps: vec![
                    step(
                        "Given ",
                        "a receiver that answers 503",
                        21,
                        StepStatus::Passed,
                    ),
                    step(
                        "When ",
                        "the IUT is asked to send \"n-1\"",
                        22,
                        StepStatus::Undefined,
                    ),
                    step("Then ", "it retries after 2 s", 23, StepStatus::Skipped),
                ],
                message: Some("no trigger `send` declared in the IUT config".to_owned()),
                evidence: vec![
                    json!({"trigger": "send", "declared": false}).into(),
                    // Timeline shapes, so `report.html` tests and the sample draw charts.
                    json!({"resend_timeline": {
                        "message_id": "n-1",
                        "attempts": [
                            {"at_ms": 0, "outcome": "503", "accepted": false},
                            {"at_ms": 2_100, "outcome": "reset", "accepted": false},
                            {"at_ms": 7_900, "outcome": "timeout", "accepted": false},
                            {"at_ms": 14_200, "outcome": "200", "accepted": true},
                        ],
                        "expected_ms": [0, 2_000, 6_000, 14_000],
                        "tolerance_ms": 500,
                    }})
                    .into(),
                    json!({"exercise_timeline": {
                        "duration_ms": 120_000,
                        "phases": [
                            {"name": "normal", "start_ms": 0, "end_ms": 30_000, "outage": false},
                            {"name": "primary down", "start_ms": 30_000, "end_ms": 75_000,
                             "outage": true},
                            {"name": "failback", "start_ms": 75_000, "end_ms": 120_000,
                             "outage": false},
                        ],
                        "routes": [
                            {"route": "primary", "bucket_ms": 10_000,
                             "delivered": [12, 11, 12, 0, 0, 0, 0, 0, 9, 12, 11, 12]},
                            {"route": "fallback", "bucket_ms": 10_000,
                             "delivered": [0, 0, 0, 6, 11, 12, 12, 11, 3, 0, 0, 0]},
                        ],
                    }})
                    .into(),
                ],
            },
        ],
        inputs: Inputs::default(),
        shard: None,
        signature: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_to_fix_names_the_first_failure_then_a_harness_error_then_nothing() {
        let mut report = sample_report();
        let first = first_to_fix(&report).expect("a failing run has a first thing to fix");
        assert!(
            first.starts_with("first to fix: EB-MTLS-1 fails at features/mtls.feature:14 (expired client certificate is refused): "),
            "{first}"
        );
        for r in &mut report.requirements {
            if r.verdict == Verdict::Fail {
                r.verdict = Verdict::Pass;
            }
        }
        let first = first_to_fix(&report).expect("an error run has a first thing to look at");
        assert!(
            first.starts_with("first to look at: FMK-4-RESEND could not be evaluated at features/resend.feature:20"),
            "{first}"
        );
        assert!(
            first.contains("a harness error, not the IUT's failure"),
            "{first}"
        );
        for r in &mut report.requirements {
            if r.verdict == Verdict::Error {
                r.verdict = Verdict::Pass;
            }
        }
        assert_eq!(first_to_fix(&report), None);
    }

    #[test]
    fn write_all_writes_every_file_into_a_new_directory() {
        let dir = std::env::temp_dir().join(format!("provsten-writers-{}", std::process::id()));
        let out = dir.join("nested/out");
        let written = write_all(&sample_report(), &out).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "report.json",
                "junit.xml",
                "cucumber.json",
                "report.html",
                "summary.md",
                "messages.ndjson"
            ]
        );
        for path in &written {
            assert!(
                fs::metadata(path).unwrap().len() > 0,
                "{} is empty",
                path.display()
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_all_error_names_the_directory() {
        let dir =
            std::env::temp_dir().join(format!("provsten-writers-file-{}", std::process::id()));
        fs::write(&dir, "not a directory").unwrap();
        let err = write_all(&sample_report(), &dir.join("out")).unwrap_err();
        assert!(
            format!("{err:#}").contains(&dir.display().to_string()),
            "{err:#}"
        );
        fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn verdict_reason_names_failing_requirements() {
        assert_eq!(
            verdict_reason(&sample_report()),
            "1 of 5 requirements fails (EB-MTLS-1); 1 could not be evaluated: a harness error, not a failure of the IUT (FMK-4-RESEND)"
        );
    }

    #[test]
    fn verdict_reason_of_a_compliant_run_counts_the_rest() {
        let mut report = sample_report();
        report.requirements.retain(|r| {
            matches!(
                r.verdict,
                Verdict::Pass | Verdict::NotTested | Verdict::NotTestable
            )
        });
        report.coverage = Coverage::of(&report.requirements, false);
        assert_eq!(
            verdict_reason(&report),
            "1 of 2 testable requirements of profile all tested, all pass (1 not tested: FMK-3-IDEMPOTENT)"
        );
        report.coverage = Coverage::of(&report.requirements, true);
        assert!(verdict_reason(&report).starts_with("incomplete certification"));
        report.requirements.retain(|r| r.verdict != Verdict::Pass);
        report.coverage = Coverage::of(&report.requirements, false);
        assert_eq!(
            verdict_reason(&report),
            "nothing was tested: 0 of 1 testable requirements of profile all were exercised (needs role receiver, which the IUT does not declare)"
        );
    }

    #[test]
    fn coverage_line_counts_tested_and_says_if_complete() {
        let mut report = sample_report();
        assert_eq!(
            coverage_line(&report),
            "2 of 4 testable requirements of profile all tested (1 pass, 1 fail)"
        );
        report.coverage.complete_required = true;
        assert!(coverage_line(&report).ends_with(
            "; incomplete certification: not every testable requirement was tested and passed"
        ));
    }

    #[test]
    fn evidence_condenses_to_key_value_pairs() {
        let report = sample_report();
        let line = condense_evidence(&report.scenarios[1].evidence);
        // Member order depends on serde_json's `preserve_order` feature; observation order
        // does not.
        let (first, second) = line.split_once(" → ").unwrap();
        assert!(first.contains("presented=client-expired"), "{line}");
        assert!(first.contains("not_after=2024-01-01T00:00:00Z"), "{line}");
        assert!(second.contains("http_status=200"), "{line}");
        assert!(second.contains("body=\"protected data\""), "{line}");
        assert!(second.contains("bytes=512"), "{line}");
    }

    #[test]
    fn scenario_keys_split_at_the_last_colon() {
        assert_eq!(
            key_path("features/mtls.feature:12"),
            "features/mtls.feature"
        );
        assert_eq!(key_line("features/mtls.feature:12"), 12);
        assert_eq!(key_path("c:/features/x.feature:3"), "c:/features/x.feature");
        assert_eq!(key_line("no-line"), 0);
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("åäö-åäö", 4), "åäö…");
        assert_eq!(truncate("short", 10), "short");
    }
}
