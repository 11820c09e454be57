//! `cucumber.json`: the standard Cucumber JSON format (as cucumber-jvm, cucumber-js and
//! cucumber-rs's `writer::Json` write it), for cucumber-reporting, Xray and the like.
//!
//! An array of features (grouped by the scenario's `feature` file, named by its `Feature:`
//! title), each with its scenarios as `elements`. The model keeps one duration per scenario, not per step: it is put on the
//! last step that ran (the failing one, if any), so tools that sum step durations show the
//! scenario's time. Scenarios that failed or errored without a failing step (a hook or the
//! harness failed) get a failed `after` hook carrying the message, and a not-applicable
//! scenario without steps gets one skipped step naming the reason: otherwise Cucumber
//! tools, which derive a scenario's status from its steps, would show them as passed.

use anyhow::Context as _;
use serde::Serialize;

use super::{by_feature, evidence_json, key_line, key_path};
use crate::report::model::*;

/// The file this writer produces in the output directory.
pub(crate) const FILE_NAME: &str = "cucumber.json";

#[derive(Serialize)]
struct Feature {
    uri: String,
    id: String,
    keyword: &'static str,
    name: String,
    description: &'static str,
    tags: Vec<Tag>,
    elements: Vec<Element>,
}

#[derive(Serialize)]
struct Element {
    id: String,
    keyword: &'static str,
    name: String,
    description: &'static str,
    line: usize,
    #[serde(rename = "type")]
    ty: &'static str,
    tags: Vec<Tag>,
    steps: Vec<Step>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    after: Vec<Hook>,
}

#[derive(Serialize)]
struct Tag {
    name: String,
    line: usize,
}

#[derive(Serialize)]
struct Step {
    keyword: String,
    name: String,
    line: usize,
    result: RunResult,
}

#[derive(Serialize)]
struct Hook {
    result: RunResult,
}

#[derive(Serialize)]
struct RunResult {
    status: &'static str,
    /// Nanoseconds, as cucumber-jvm writes it.
    duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

/// The report as Cucumber JSON.
pub(crate) fn render(report: &Report) -> anyhow::Result<String> {
    let features: Vec<Feature> = by_feature(&report.scenarios)
        .into_iter()
        .map(|(name, scenarios)| feature(name, &scenarios))
        .collect();
    let mut text =
        serde_json::to_string_pretty(&features).context("cannot serialise Cucumber JSON")?;
    text.push('\n');
    Ok(text)
}

/// `path` is the scenarios' feature file: the feature's `uri` and, being unique, its `id`.
/// Its `name` is the `Feature:` title; reports written before the title was recorded have
/// only the path.
fn feature(path: &str, scenarios: &[&ScenarioResult]) -> Feature {
    let id = slug(path);
    let first = scenarios.first();
    Feature {
        uri: first.map_or(path, |first| key_path(&first.key)).to_owned(),
        keyword: "Feature",
        name: first
            .and_then(|first| first.feature_name.as_deref())
            .unwrap_or(path)
            .to_owned(),
        description: "",
        tags: Vec::new(),
        elements: scenarios.iter().map(|s| element(&id, s)).collect(),
        id,
    }
}

fn element(feature_id: &str, scenario: &ScenarioResult) -> Element {
    let line = key_line(&scenario.key);
    let not_applicable = scenario.status == ScenarioStatus::NotApplicable;
    let failing_step = scenario
        .steps
        .iter()
        .position(|s| matches!(s.status, StepStatus::Failed | StepStatus::Undefined));
    // The step the scenario's duration goes on: the failing one, else the last that ran.
    let timed_step = failing_step.or_else(|| {
        scenario
            .steps
            .iter()
            .rposition(|s| s.status == StepStatus::Passed)
    });
    let duration_ns = scenario.duration_ms.saturating_mul(1_000_000);
    let mut steps: Vec<Step> = scenario
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| Step {
            keyword: step_keyword(&step.keyword),
            name: step.text.clone(),
            line: step.line,
            result: RunResult {
                status: if not_applicable {
                    "skipped"
                } else {
                    step_status(step.status)
                },
                duration: if !not_applicable && Some(i) == timed_step {
                    duration_ns
                } else {
                    0
                },
                error_message: (!not_applicable && Some(i) == failing_step)
                    .then(|| error_message(scenario)),
            },
        })
        .collect();
    if not_applicable && steps.is_empty() {
        steps.push(Step {
            keyword: "* ".to_owned(),
            name: format!(
                "not applicable: {}",
                scenario.message.as_deref().unwrap_or("role not declared")
            ),
            line,
            result: RunResult {
                status: "skipped",
                duration: 0,
                error_message: None,
            },
        });
    }
    let mut after = Vec::new();
    if matches!(
        scenario.status,
        ScenarioStatus::Failed | ScenarioStatus::Error
    ) && failing_step.is_none()
    {
        after.push(Hook {
            result: RunResult {
                status: "failed",
                duration: if timed_step.is_none() { duration_ns } else { 0 },
                error_message: Some(error_message(scenario)),
            },
        });
    }
    Element {
        id: format!("{feature_id};{}", slug(&scenario.name)),
        keyword: "Scenario",
        name: scenario.name.clone(),
        description: "",
        line,
        ty: "scenario",
        tags: scenario
            .tags
            .iter()
            .map(|tag| Tag {
                name: if tag.starts_with('@') {
                    tag.clone()
                } else {
                    format!("@{tag}")
                },
                // The model keeps no tag positions; cucumber-rs uses the scenario's line too.
                line,
            })
            .collect(),
        steps,
        after,
    }
}

/// Cucumber JSON keeps the keyword's trailing space (`"Given "`) and readers print keyword
/// and name side by side; the model's keywords are trimmed.
fn step_keyword(keyword: &str) -> String {
    format!("{} ", keyword.trim_end())
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Failed => "failed",
        StepStatus::Passed => "passed",
        StepStatus::Skipped => "skipped",
        StepStatus::Undefined => "undefined",
    }
}

/// The scenario message followed by the evidence, the way a stack trace follows a panic.
fn error_message(scenario: &ScenarioResult) -> String {
    let message = scenario
        .message
        .as_deref()
        .unwrap_or(match scenario.status {
            ScenarioStatus::Error => "scenario could not be evaluated",
            _ => "scenario failed",
        });
    if scenario.evidence.is_empty() {
        message.to_owned()
    } else {
        format!(
            "{message}\n\nevidence:\n{}",
            evidence_json(&scenario.evidence)
        )
    }
}

/// Cucumber's ids: lower case, runs of anything but letters and digits as one `-`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::writers::sample_report;
    use serde_json::Value;

    fn parsed() -> Value {
        serde_json::from_str(&render(&sample_report()).unwrap()).unwrap()
    }

    fn statuses(element: &Value) -> Vec<&str> {
        element["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["result"]["status"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn features_group_scenarios_in_order() {
        let json = parsed();
        let features = json.as_array().unwrap();
        assert_eq!(features.len(), 2);
        assert_eq!(features[0]["uri"], "features/mtls.feature");
        assert_eq!(features[0]["keyword"], "Feature");
        assert_eq!(features[0]["id"], "features-mtls-feature");
        assert_eq!(features[0]["elements"].as_array().unwrap().len(), 2);
        assert_eq!(features[1]["elements"].as_array().unwrap().len(), 2);
        let scenario = &features[0]["elements"][1];
        assert_eq!(scenario["keyword"], "Scenario");
        assert_eq!(scenario["type"], "scenario");
        assert_eq!(scenario["line"], 14);
        assert_eq!(scenario["name"], "expired client certificate is refused");
        assert_eq!(
            scenario["id"],
            "features-mtls-feature;expired-client-certificate-is-refused"
        );
        assert_eq!(scenario["tags"][0]["name"], "@req:EB-MTLS-1");
    }

    #[test]
    fn step_statuses_follow_the_scenario() {
        let json = parsed();
        assert_eq!(
            statuses(&json[0]["elements"][0]),
            ["passed", "passed", "passed"]
        );
        assert_eq!(
            statuses(&json[0]["elements"][1]),
            ["passed", "passed", "failed"]
        );
        assert_eq!(statuses(&json[1]["elements"][0]), ["skipped"]);
        assert_eq!(
            statuses(&json[1]["elements"][1]),
            ["passed", "undefined", "skipped"]
        );
    }

    #[test]
    fn failing_step_carries_message_evidence_and_duration() {
        let json = parsed();
        let step = &json[0]["elements"][1]["steps"][2];
        let message = step["result"]["error_message"].as_str().unwrap();
        assert!(
            message.starts_with("expected the handshake to fail"),
            "{message}"
        );
        assert!(
            message.contains("\"presented\": \"client-expired\""),
            "{message}"
        );
        assert_eq!(step["result"]["duration"], 41_000_000);
        assert!(json[0]["elements"][1]["steps"][0]["result"]
            .get("error_message")
            .is_none());
    }

    #[test]
    fn not_applicable_scenario_is_all_skipped_even_with_passed_steps() {
        let mut report = sample_report();
        report.scenarios[2].steps[0].status = StepStatus::Passed;
        let json: Value = serde_json::from_str(&render(&report).unwrap()).unwrap();
        assert_eq!(statuses(&json[1]["elements"][0]), ["skipped"]);
    }

    #[test]
    fn not_applicable_scenario_without_steps_gets_a_skipped_step() {
        let mut report = sample_report();
        report.scenarios[2].steps.clear();
        let json: Value = serde_json::from_str(&render(&report).unwrap()).unwrap();
        let steps = &json[1]["elements"][0]["steps"];
        assert_eq!(steps[0]["result"]["status"], "skipped");
        assert!(steps[0]["name"].as_str().unwrap().contains("receiver"));
    }

    #[test]
    fn failure_without_failing_step_gets_a_failed_after_hook() {
        let mut report = sample_report();
        report.scenarios[1].steps.clear();
        let json: Value = serde_json::from_str(&render(&report).unwrap()).unwrap();
        let hook = &json[0]["elements"][1]["after"][0]["result"];
        assert_eq!(hook["status"], "failed");
        assert_eq!(hook["duration"], 41_000_000);
        assert!(json[0]["elements"][0].get("after").is_none());
    }

    #[test]
    fn features_are_named_by_their_title_and_located_by_their_path() {
        let json = parsed();
        assert_eq!(json[0]["name"], "Client certificates");
        assert_eq!(json[0]["uri"], "features/mtls.feature");
        assert_eq!(json[1]["name"], "Resends and idempotency");
    }

    #[test]
    fn a_report_without_feature_titles_names_features_by_path() {
        let mut report = sample_report();
        for scenario in &mut report.scenarios {
            scenario.feature_name = None;
        }
        let json: Value = serde_json::from_str(&render(&report).unwrap()).unwrap();
        assert_eq!(json[0]["name"], "features/mtls.feature");
    }

    #[test]
    fn step_keywords_end_in_exactly_one_space() {
        let mut report = sample_report();
        // The runner trims keywords; the sample keeps Gherkin's trailing space.
        report.scenarios[0].steps[0].keyword = "Given".to_owned();
        let json: Value = serde_json::from_str(&render(&report).unwrap()).unwrap();
        let steps = &json[0]["elements"][0]["steps"];
        assert_eq!(steps[0]["keyword"], "Given ");
        assert_eq!(steps[1]["keyword"], "When ");
    }

    #[test]
    fn slugs_are_lower_case_with_single_dashes() {
        assert_eq!(
            slug("Expired  client-cert (TLS 1.2)!"),
            "expired-client-cert-tls-1-2"
        );
    }
}
