//! `messages.ndjson`: the run as Cucumber Messages (one JSON envelope per line), the
//! protocol Cucumber's own formatters read (`@cucumber/html-formatter`, `@cucumber/pretty-formatter`,
//! Cucumber Studio…). Checked against the official `@cucumber/messages` JSON schema by
//! `tests/it/report.rs`.
//!
//! Order: `meta`; per feature `source` (the feature text, when still available) and a
//! `gherkinDocument` built from the report; a `pickle` per scenario; a `hook` when a scenario
//! needs one; `testRunStarted`; per scenario `testCase`, `testCaseStarted`, its steps
//! (`testStepStarted`, evidence as `attachment`s, `testStepFinished`), `testCaseFinished`;
//! `testRunFinished`.
//!
//! The model keeps one duration per scenario and no start times, so test cases are laid end
//! to end from the run's start, and a scenario's duration is put on the last step that ran
//! (as `cucumber.json` does). A failed or errored scenario without a failing step (a hook or
//! the harness failed), and a not-applicable one without steps, get an after hook carrying
//! the message: Cucumber tools derive a scenario's status from its steps.

use std::collections::HashMap;

use anyhow::Context as _;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{by_feature, key_line};
use crate::report::model::*;

/// The file this writer produces in the output directory.
pub(crate) const FILE_NAME: &str = "messages.ndjson";

/// The `@cucumber/messages` version whose schema the output is checked against.
const PROTOCOL_VERSION: &str = "34.2.1";

/// The id of the after hook that carries a scenario's verdict when no step does.
const VERDICT_HOOK_ID: &str = "verdict-hook";

/// Renders the report as Cucumber Messages, one envelope per line.
pub(crate) fn render(report: &Report) -> anyhow::Result<String> {
    let shipped: HashMap<String, String> = crate::runner::features::shipped().into_iter().collect();
    render_with(report, |path| {
        shipped
            .get(path)
            .cloned()
            // A user's feature file, if it is still there: without it the run is still
            // described, only its `source` is missing.
            .or_else(|| std::fs::read_to_string(path).ok())
    })
}

/// [`render`] with the feature texts from `source_of` (a path to its text, if known).
fn render_with(
    report: &Report,
    source_of: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let run_start = timestamp(&report.started_at).context("the report's started_at")?;
    let run_end = timestamp(&report.finished_at).context("the report's finished_at")?;
    let mut ids = 0u64;
    let mut next_id = move || {
        ids += 1;
        ids.to_string()
    };
    let mut out: Vec<Value> = vec![json!({"meta": {
        "protocolVersion": PROTOCOL_VERSION,
        "implementation": {"name": report.harness.name, "version": report.harness.version},
        "runtime": {"name": "rust"},
        "os": {"name": std::env::consts::OS},
        "cpu": {"name": std::env::consts::ARCH},
    }})];

    // Documents and pickles. AST ids per scenario, for its pickle: (scenario, steps, tags).
    let mut pickles = Vec::with_capacity(report.scenarios.len());
    for (path, scenarios) in by_feature(&report.scenarios) {
        let text = source_of(path);
        let lines: Vec<&str> = text.as_deref().map_or(Vec::new(), |t| t.lines().collect());
        if let Some(text) = &text {
            out.push(json!({"source": {
                "uri": path, "data": text, "mediaType": "text/x.cucumber.gherkin+plain",
            }}));
        }
        let feature_line = lines
            .iter()
            .position(|l| l.trim_start().starts_with("Feature:"))
            .map_or(1, |i| i + 1);
        let mut children = Vec::with_capacity(scenarios.len());
        for &scenario in &scenarios {
            let line = key_line(&scenario.key);
            let (scenario_id, tag_ids, step_ids) = (
                next_id(),
                scenario.tags.iter().map(|_| next_id()).collect::<Vec<_>>(),
                scenario.steps.iter().map(|_| next_id()).collect::<Vec<_>>(),
            );
            let tags: Vec<Value> = scenario
                .tags
                .iter()
                .zip(&tag_ids)
                .map(|(tag, id)| {
                    json!({"location": {"line": tag_line(&lines, tag, line)},
                           "name": tag_name(tag), "id": id})
                })
                .collect();
            let steps: Vec<Value> = scenario
                .steps
                .iter()
                .zip(&step_ids)
                .map(|(step, id)| {
                    json!({"location": {"line": step.line}, "keyword": step_keyword(step),
                           "text": step.text, "id": id})
                })
                .collect();
            children.push(json!({"scenario": {
                "location": {"line": line},
                "tags": tags,
                "keyword": scenario_keyword(&lines, line),
                "name": scenario.name,
                "description": "",
                "steps": steps,
                "examples": [],
                "id": scenario_id,
            }}));
            pickles.push((scenario, scenario_id, tag_ids, step_ids));
        }
        out.push(json!({"gherkinDocument": {
            "uri": path,
            "feature": {
                "location": {"line": feature_line},
                "tags": [],
                "language": "en",
                "keyword": "Feature",
                "name": scenarios.first().and_then(|s| s.feature_name.as_deref()).unwrap_or(path),
                "description": "",
                "children": children,
            },
            "comments": [],
        }}));
    }
    // (scenario, pickle id, pickle step ids) in report order.
    let mut cases = Vec::with_capacity(pickles.len());
    for (scenario, scenario_id, tag_ids, step_ids) in pickles {
        let pickle_id = next_id();
        let pickle_steps: Vec<(String, Value)> = scenario
            .steps
            .iter()
            .zip(&step_ids)
            .map(|(step, ast_id)| {
                let id = next_id();
                let value = json!({"astNodeIds": [ast_id], "id": id, "text": step.text});
                (id, value)
            })
            .collect();
        let tags: Vec<Value> = scenario
            .tags
            .iter()
            .zip(&tag_ids)
            .map(|(tag, id)| json!({"name": tag_name(tag), "astNodeId": id}))
            .collect();
        out.push(json!({"pickle": {
            "id": pickle_id,
            "uri": scenario.feature,
            "location": {"line": key_line(&scenario.key)},
            "name": scenario.name,
            "language": "en",
            "steps": pickle_steps.iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "tags": tags,
            "astNodeIds": [scenario_id],
        }}));
        cases.push((
            scenario,
            pickle_id,
            pickle_steps
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>(),
        ));
    }
    if cases.iter().any(|(s, _, _)| needs_verdict_hook(s)) {
        out.push(json!({"hook": {
            "id": VERDICT_HOOK_ID,
            "name": "provsten verdict",
            "type": "AFTER_TEST_CASE",
            "sourceReference": {},
        }}));
    }

    let run_id = next_id();
    out.push(json!({"testRunStarted": {"timestamp": stamp(run_start), "id": run_id}}));
    let mut clock = run_start;
    for (scenario, pickle_id, pickle_step_ids) in cases {
        let case_id = next_id();
        // (test step id, pickle step id or None for the verdict hook, result, milliseconds)
        let mut steps: Vec<(String, Option<String>, Value, u64)> = Vec::new();
        let last_run = scenario
            .steps
            .iter()
            .rposition(|s| s.status != StepStatus::Skipped);
        let hook = needs_verdict_hook(scenario);
        for (i, (step, pickle_step_id)) in scenario.steps.iter().zip(pickle_step_ids).enumerate() {
            let ms = if !hook && Some(i) == last_run {
                scenario.duration_ms
            } else {
                0
            };
            let mut result = json!({"status": step_status(step.status), "duration": duration(ms)});
            // The message goes on the step that explains the scenario's outcome.
            let explains = match step.status {
                StepStatus::Failed | StepStatus::Undefined => true,
                StepStatus::Skipped => scenario.status == ScenarioStatus::NotApplicable && i == 0,
                StepStatus::Passed => false,
            };
            if let (true, Some(message)) = (explains, &scenario.message) {
                result["message"] = json!(message);
            }
            steps.push((next_id(), Some(pickle_step_id), result, ms));
        }
        if hook {
            let status = if scenario.status == ScenarioStatus::NotApplicable {
                "SKIPPED"
            } else {
                "FAILED"
            };
            let mut result = json!({"status": status, "duration": duration(scenario.duration_ms)});
            if let Some(message) = &scenario.message {
                result["message"] = json!(message);
            }
            steps.push((next_id(), None, result, scenario.duration_ms));
        }
        out.push(json!({"testCase": {
            "id": case_id,
            "pickleId": pickle_id,
            "testSteps": steps.iter().map(|(id, pickle_step, _, _)| match pickle_step {
                Some(p) => json!({"id": id, "pickleStepId": p, "stepDefinitionIds": [],
                                  "stepMatchArgumentsLists": []}),
                None => json!({"id": id, "hookId": VERDICT_HOOK_ID}),
            }).collect::<Vec<_>>(),
            "testRunStartedId": run_id,
        }}));
        let started_id = next_id();
        out.push(json!({"testCaseStarted": {
            "attempt": 0, "id": started_id, "testCaseId": case_id, "timestamp": stamp(clock),
        }}));
        // Evidence belongs to the step that ran last (the failing one, if any), or the hook.
        let evidence_step = if hook {
            steps.len().checked_sub(1)
        } else {
            last_run.or(steps.len().checked_sub(1))
        };
        for (i, (step_id, _, result, ms)) in steps.iter().enumerate() {
            out.push(json!({"testStepStarted": {
                "testCaseStartedId": started_id, "testStepId": step_id, "timestamp": stamp(clock),
            }}));
            if Some(i) == evidence_step {
                for evidence in &scenario.evidence {
                    out.push(json!({"attachment": {
                        "body": evidence.to_value().to_string(),
                        "contentEncoding": "IDENTITY",
                        "mediaType": "application/json",
                        "testCaseStartedId": started_id,
                        "testStepId": step_id,
                        "timestamp": stamp(clock),
                    }}));
                }
            }
            clock += time::Duration::milliseconds(i64::try_from(*ms).unwrap_or(i64::MAX));
            out.push(json!({"testStepFinished": {
                "testCaseStartedId": started_id, "testStepId": step_id,
                "testStepResult": result, "timestamp": stamp(clock),
            }}));
        }
        if steps.is_empty() {
            // No step to hang evidence on: attach it to the test case.
            for evidence in &scenario.evidence {
                out.push(json!({"attachment": {
                    "body": evidence.to_value().to_string(),
                    "contentEncoding": "IDENTITY",
                    "mediaType": "application/json",
                    "testCaseStartedId": started_id,
                    "timestamp": stamp(clock),
                }}));
            }
        }
        out.push(json!({"testCaseFinished": {
            "testCaseStartedId": started_id, "timestamp": stamp(clock), "willBeRetried": false,
        }}));
    }
    out.push(json!({"testRunFinished": {
        "success": report.verdict == RunVerdict::Compliant,
        "timestamp": stamp(run_end),
        "testRunStartedId": run_id,
    }}));

    let mut text = String::new();
    for envelope in out {
        text.push_str(&envelope.to_string());
        text.push('\n');
    }
    Ok(text)
}

/// A failed or errored scenario with no failing step, or a not-applicable one without
/// steps, carries its verdict on an after hook.
fn needs_verdict_hook(scenario: &ScenarioResult) -> bool {
    match scenario.status {
        ScenarioStatus::Passed => false,
        ScenarioStatus::NotApplicable => scenario.steps.is_empty(),
        ScenarioStatus::Failed | ScenarioStatus::Error => !scenario
            .steps
            .iter()
            .any(|s| matches!(s.status, StepStatus::Failed | StepStatus::Undefined)),
    }
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Passed => "PASSED",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "SKIPPED",
        StepStatus::Undefined => "UNDEFINED",
    }
}

/// Messages keep the keyword's trailing space: `Given `.
fn step_keyword(step: &StepResult) -> String {
    format!("{} ", step.keyword.trim())
}

/// Tags are written with their `@` in Gherkin and in messages.
fn tag_name(tag: &str) -> String {
    if tag.starts_with('@') {
        tag.to_owned()
    } else {
        format!("@{tag}")
    }
}

/// The line of `tag` in the feature text: the nearest line above the scenario's that holds
/// it, else the scenario's own line.
fn tag_line(lines: &[&str], tag: &str, scenario_line: usize) -> usize {
    let name = tag_name(tag);
    lines
        .iter()
        .take(scenario_line.saturating_sub(1))
        .rposition(|l| l.split_whitespace().any(|word| word == name))
        .map_or(scenario_line, |i| i + 1)
}

/// The keyword before the scenario's `:` in the feature text (`Scenario`, `Example`,
/// `Scenario Outline`), `Scenario` when the text is not there.
fn scenario_keyword(lines: &[&str], line: usize) -> String {
    line.checked_sub(1)
        .and_then(|i| lines.get(i))
        .and_then(|l| l.split_once(':'))
        .map(|(keyword, _)| keyword.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('@') && !k.starts_with('|'))
        .unwrap_or("Scenario")
        .to_owned()
}

fn timestamp(rfc3339: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .with_context(|| format!("`{rfc3339}` is not an RFC 3339 timestamp"))
}

fn stamp(at: OffsetDateTime) -> Value {
    json!({"seconds": at.unix_timestamp(), "nanos": at.nanosecond()})
}

fn duration(ms: u64) -> Value {
    json!({"seconds": ms / 1_000, "nanos": (ms % 1_000) * 1_000_000})
}

#[cfg(test)]
mod tests {
    use super::super::sample_report;
    use super::*;

    const MTLS: &str = "@role:server\nFeature: Client certificates\n\n  @req:EB-MTLS-2\n  Scenario: valid client certificate is accepted\n";

    /// The sample report's envelopes, with a feature text for `features/mtls.feature` only.
    fn envelopes() -> Vec<Value> {
        let text = render_with(&sample_report(), |path| {
            (path == "features/mtls.feature").then(|| MTLS.to_owned())
        })
        .unwrap();
        assert!(text.ends_with('\n'));
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn kind(envelope: &Value) -> &str {
        let object = envelope.as_object().unwrap();
        assert_eq!(object.len(), 1, "one message per envelope: {envelope}");
        object.keys().next().unwrap()
    }

    #[test]
    fn envelopes_come_in_protocol_order() {
        let all = envelopes();
        let kinds: Vec<&str> = all.iter().map(kind).collect();
        let mut order: Vec<&str> = kinds.clone();
        order.dedup();
        assert_eq!(
            &order[..6],
            [
                "meta",
                "source",
                "gherkinDocument",
                "pickle",
                "testRunStarted",
                "testCase"
            ],
        );
        let count = |k: &str| kinds.iter().filter(|kind| **kind == k).count();
        assert_eq!(count("source"), 1, "only the feature whose text is known");
        assert_eq!(count("gherkinDocument"), 2, "one per feature");
        assert_eq!(count("hook"), 0, "every failure has its failing step");
        assert_eq!(kinds.last(), Some(&"testRunFinished"));
        assert_eq!(kinds.iter().filter(|k| **k == "pickle").count(), 4);
        assert_eq!(kinds.iter().filter(|k| **k == "testCase").count(), 4);
        assert_eq!(
            kinds.iter().filter(|k| **k == "testCaseFinished").count(),
            4
        );
        let finished = &all.last().unwrap()["testRunFinished"];
        assert_eq!(
            finished["success"], false,
            "the sample run is not compliant"
        );
        assert_eq!(all[1]["source"]["data"], MTLS);
        let document = &all[2]["gherkinDocument"]["feature"];
        assert_eq!(document["name"], "Client certificates");
        assert_eq!(document["location"]["line"], 2);
        let scenario = &document["children"][0]["scenario"];
        assert_eq!(scenario["keyword"], "Scenario");
        assert_eq!(scenario["tags"][0]["name"], "@req:EB-MTLS-2");
        assert_eq!(scenario["tags"][0]["location"]["line"], 4);
        assert_eq!(scenario["tags"][1]["location"]["line"], 1);
        assert_eq!(scenario["steps"][0]["keyword"], "Given ");
    }

    #[test]
    fn pickles_and_test_cases_refer_to_what_came_before() {
        let all = envelopes();
        let mut known = std::collections::HashSet::new();
        for envelope in &all {
            match kind(envelope) {
                "gherkinDocument" => {
                    for child in envelope["gherkinDocument"]["feature"]["children"]
                        .as_array()
                        .unwrap()
                    {
                        let scenario = &child["scenario"];
                        known.insert(scenario["id"].as_str().unwrap());
                        for node in scenario["steps"].as_array().unwrap() {
                            known.insert(node["id"].as_str().unwrap());
                        }
                        for node in scenario["tags"].as_array().unwrap() {
                            known.insert(node["id"].as_str().unwrap());
                        }
                    }
                }
                "pickle" => {
                    let pickle = &envelope["pickle"];
                    assert!(known.contains(pickle["astNodeIds"][0].as_str().unwrap()));
                    for step in pickle["steps"].as_array().unwrap() {
                        assert!(known.contains(step["astNodeIds"][0].as_str().unwrap()));
                        known.insert(step["id"].as_str().unwrap());
                    }
                    for tag in pickle["tags"].as_array().unwrap() {
                        assert!(known.contains(tag["astNodeId"].as_str().unwrap()));
                    }
                    known.insert(pickle["id"].as_str().unwrap());
                }
                "testCase" => {
                    let case = &envelope["testCase"];
                    assert!(known.contains(case["pickleId"].as_str().unwrap()));
                    for step in case["testSteps"].as_array().unwrap() {
                        match step["pickleStepId"].as_str() {
                            Some(id) => assert!(known.contains(id)),
                            None => assert_eq!(step["hookId"], VERDICT_HOOK_ID),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The results of the `n`th test case's steps.
    fn results(all: &[Value], n: usize) -> Vec<&Value> {
        let start = all
            .iter()
            .filter(|e| kind(e) == "testCaseStarted")
            .nth(n)
            .unwrap()["testCaseStarted"]["id"]
            .clone();
        all.iter()
            .filter(|e| kind(e) == "testStepFinished")
            .map(|e| &e["testStepFinished"])
            .filter(|f| f["testCaseStartedId"] == start)
            .map(|f| &f["testStepResult"])
            .collect()
    }

    #[test]
    fn the_failing_step_carries_the_message_and_the_duration() {
        let all = envelopes();
        let failed = results(&all, 1);
        let statuses: Vec<&Value> = failed.iter().map(|r| &r["status"]).collect();
        assert_eq!(statuses, ["PASSED", "PASSED", "FAILED"]);
        assert_eq!(
            failed[2]["message"],
            "expected the handshake to fail, but the IUT answered HTTP 200"
        );
        assert_eq!(
            failed[2]["duration"],
            json!({"seconds": 0, "nanos": 41_000_000})
        );
        assert!(failed[0].get("message").is_none());
        let error = results(&all, 3);
        let statuses: Vec<&Value> = error.iter().map(|r| &r["status"]).collect();
        assert_eq!(statuses, ["PASSED", "UNDEFINED", "SKIPPED"]);
        assert_eq!(
            error[1]["duration"],
            json!({"seconds": 1, "nanos": 250_000_000})
        );
        let not_applicable = results(&all, 2);
        assert_eq!(not_applicable[0]["status"], "SKIPPED");
        assert_eq!(
            not_applicable[0]["message"],
            "the IUT does not declare role `receiver`"
        );
    }

    #[test]
    fn a_failure_without_a_failing_step_is_carried_by_the_verdict_hook() {
        let mut report = sample_report();
        for step in &mut report.scenarios[1].steps {
            step.status = StepStatus::Passed;
        }
        let text = render_with(&report, |_| None).unwrap();
        let all: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(all.iter().filter(|e| kind(e) == "hook").count(), 1);
        let failed = results(&all, 1);
        assert_eq!(failed.len(), 4);
        assert_eq!(failed[3]["status"], "FAILED");
        assert_eq!(
            failed[3]["message"],
            "expected the handshake to fail, but the IUT answered HTTP 200"
        );
    }

    #[test]
    fn evidence_becomes_json_attachments_of_the_step_that_ran_last() {
        let all = envelopes();
        let attachments: Vec<&Value> = all
            .iter()
            .filter(|e| kind(e) == "attachment")
            .map(|e| &e["attachment"])
            .collect();
        let report = sample_report();
        let evidence: Vec<&Evidence> = report.scenarios.iter().flat_map(|s| &s.evidence).collect();
        assert_eq!(attachments.len(), evidence.len());
        for (attachment, evidence) in attachments.iter().zip(evidence) {
            assert_eq!(attachment["mediaType"], "application/json");
            assert_eq!(attachment["contentEncoding"], "IDENTITY");
            let body: Value = serde_json::from_str(attachment["body"].as_str().unwrap()).unwrap();
            assert_eq!(body, evidence.to_value());
        }
        // The failed scenario's evidence hangs on its failing (third) step.
        let case = all.iter().filter(|e| kind(e) == "testCase").nth(1).unwrap();
        assert_eq!(
            attachments[1]["testStepId"],
            case["testCase"]["testSteps"][2]["id"]
        );
    }

    #[test]
    fn a_bad_timestamp_is_an_error_naming_it() {
        let mut report = sample_report();
        report.started_at = "yesterday".into();
        let err = render_with(&report, |_| None).unwrap_err();
        assert!(format!("{err:#}").contains("`yesterday`"), "{err:#}");
    }
}
