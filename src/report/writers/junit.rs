//! `junit.xml`: standard JUnit XML for GitLab, GitHub and Jenkins test views, written with
//! `quick-junit` as nextest does (`reporter/aggregator/junit.rs`).
//!
//! One `<testsuite>` per feature file, one `<testcase>` per scenario (`classname` = feature,
//! `name` = scenario name). Requirement IDs are `requirement` properties of the testcase and
//! of its testsuite. A failed scenario is a `<failure>` whose message is the scenario
//! message and whose text is the evidence as pretty JSON; an error scenario is an `<error>`
//! likewise; a not-applicable scenario is `<skipped>` with the reason.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{by_feature, evidence_json, key_line, key_path};
use crate::report::model::*;

/// The file this writer produces in the output directory.
pub(crate) const FILE_NAME: &str = "junit.xml";

/// The report as JUnit XML.
pub(crate) fn render(report: &Report) -> anyhow::Result<String> {
    let mut junit = quick_junit::Report::new(format!(
        "{}: {} (profile {})",
        report.harness.name, report.iut.name, report.profile
    ));
    for (feature, scenarios) in by_feature(&report.scenarios) {
        junit.add_test_suite(test_suite(report, feature, &scenarios));
    }
    junit.to_string().context("cannot serialise JUnit XML")
}

fn test_suite(report: &Report, feature: &str, scenarios: &[&ScenarioResult]) -> TestSuite {
    let mut suite = TestSuite::new(feature);
    // quick-junit's own timestamp needs chrono; the model's RFC 3339 text is what it would
    // write anyway.
    suite
        .extra
        .insert("timestamp".into(), report.started_at.as_str().into());
    suite.set_time(Duration::from_millis(
        scenarios.iter().map(|s| s.duration_ms).sum(),
    ));
    let mut requirements: Vec<&str> = Vec::new();
    for scenario in scenarios {
        for id in &scenario.requirements {
            if !requirements.contains(&id.as_str()) {
                requirements.push(id);
            }
        }
    }
    suite.add_properties(
        requirements
            .iter()
            .map(|id| Property::new("requirement", *id)),
    );

    let mut name_count: HashMap<&str, usize> = HashMap::new();
    for scenario in scenarios {
        *name_count.entry(scenario.name.as_str()).or_default() += 1;
    }
    for scenario in scenarios {
        // CI views key test cases by classname and name: scenario outline rows share a name,
        // so those get their line.
        let duplicated = name_count.get(scenario.name.as_str()).copied().unwrap_or(0) > 1;
        suite.add_test_case(test_case(scenario, duplicated));
    }
    suite
}

fn test_case(scenario: &ScenarioResult, with_line: bool) -> TestCase {
    let status = match scenario.status {
        ScenarioStatus::Passed => TestCaseStatus::success(),
        ScenarioStatus::Failed => non_success(scenario, NonSuccessKind::Failure, "scenario failed"),
        ScenarioStatus::Error => non_success(
            scenario,
            NonSuccessKind::Error,
            "scenario could not be evaluated",
        ),
        ScenarioStatus::NotApplicable => {
            let mut status = TestCaseStatus::skipped();
            status
                .set_type("not-applicable")
                .set_message(scenario.message.as_deref().unwrap_or("not applicable"));
            status
        }
    };
    let name = if with_line {
        format!("{} (line {})", scenario.name, key_line(&scenario.key))
    } else {
        scenario.name.clone()
    };
    let mut case = TestCase::new(name, status);
    case.set_classname(scenario.feature.as_str())
        .set_time(Duration::from_millis(scenario.duration_ms))
        .add_properties(
            scenario
                .requirements
                .iter()
                .map(|id| Property::new("requirement", id.as_str())),
        );
    // `file` and `line` are the attributes pytest writes; GitLab and GitHub annotation
    // actions use them to point at the source.
    case.extra
        .insert("file".into(), key_path(&scenario.key).into());
    case.extra
        .insert("line".into(), key_line(&scenario.key).to_string().into());
    if !scenario.steps.is_empty() {
        case.set_system_out(steps_text(scenario));
    }
    case
}

fn non_success(scenario: &ScenarioResult, kind: NonSuccessKind, default: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status
        .set_type(match kind {
            NonSuccessKind::Failure => "failed",
            NonSuccessKind::Error => "error",
        })
        .set_message(scenario.message.as_deref().unwrap_or(default))
        .set_description(evidence_json(&scenario.evidence));
    status
}

/// The steps as the test output: `passed    Given a client certificate "x"  (line 7)`.
fn steps_text(scenario: &ScenarioResult) -> String {
    let mut out = String::new();
    for step in &scenario.steps {
        let status = match step.status {
            StepStatus::Failed => "failed",
            StepStatus::Passed => "passed",
            StepStatus::Skipped => "skipped",
            StepStatus::Undefined => "undefined",
        };
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "{status:<9} {}{}  (line {})",
            step.keyword, step.text, step.line
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::writers::sample_report;

    fn parsed() -> (String, quick_junit::Report) {
        let xml = render(&sample_report()).unwrap();
        let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        (xml, report)
    }

    #[test]
    fn one_suite_per_feature_one_case_per_scenario() {
        let (xml, report) = parsed();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert_eq!(report.tests, 4);
        let suites: Vec<_> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(suites, ["features/mtls.feature", "features/resend.feature"]);
        let case = &report.test_suites[0].test_cases[1];
        assert_eq!(case.name.as_str(), "expired client certificate is refused");
        assert_eq!(
            case.classname.as_ref().map(|c| c.as_str()),
            Some("features/mtls.feature")
        );
        assert_eq!(case.time, Some(Duration::from_millis(41)));
    }

    #[test]
    fn counts_failures_errors_and_skips() {
        let (xml, report) = parsed();
        assert_eq!(
            (report.failures, report.errors, report.skipped),
            (1, 1, 1),
            "{xml}"
        );
        assert!(xml.contains("<failure "));
        assert!(xml.contains("<error "));
        assert!(xml.contains("<skipped "));
    }

    #[test]
    fn failure_carries_message_and_evidence() {
        let (_, report) = parsed();
        let case = &report.test_suites[0].test_cases[1];
        let TestCaseStatus::NonSuccess {
            kind,
            message,
            description,
            ..
        } = &case.status
        else {
            panic!("expected a failure, got {:?}", case.status);
        };
        assert_eq!(*kind, NonSuccessKind::Failure);
        assert_eq!(
            message.as_ref().map(|m| m.as_str()),
            Some("expected the handshake to fail, but the IUT answered HTTP 200")
        );
        let evidence: serde_json::Value =
            serde_json::from_str(description.as_ref().unwrap().as_str()).unwrap();
        assert_eq!(
            evidence,
            serde_json::json!(sample_report().scenarios[1].evidence)
        );
    }

    #[test]
    fn not_applicable_is_skipped_with_the_reason() {
        let (_, report) = parsed();
        let case = &report.test_suites[1].test_cases[0];
        let TestCaseStatus::Skipped { message, .. } = &case.status else {
            panic!("expected skipped, got {:?}", case.status);
        };
        assert_eq!(
            message.as_ref().map(|m| m.as_str()),
            Some("the IUT does not declare role `receiver`")
        );
    }

    #[test]
    fn requirements_are_properties_of_case_and_suite() {
        let (_, report) = parsed();
        let suite = &report.test_suites[1];
        let suite_props: Vec<_> = suite
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            suite_props,
            [
                ("requirement", "FMK-3-IDEMPOTENT"),
                ("requirement", "FMK-4-RESEND")
            ]
        );
        let case = &suite.test_cases[1];
        assert_eq!(case.properties.len(), 1);
        assert_eq!(case.properties[0].value.as_str(), "FMK-4-RESEND");
    }

    #[test]
    fn repeated_scenario_names_get_their_line() {
        let mut report = sample_report();
        report.scenarios[0].name = report.scenarios[1].name.clone();
        let xml = render(&report).unwrap();
        assert!(xml.contains("name=\"expired client certificate is refused (line 6)\""));
        assert!(xml.contains("name=\"expired client certificate is refused (line 14)\""));
    }

    #[test]
    fn markup_in_names_is_escaped() {
        let mut report = sample_report();
        report.scenarios[0].name = "<script>alert(\"x\")</script> & co".to_owned();
        let xml = render(&report).unwrap();
        assert!(!xml.contains("<script>"));
        let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(
            back.test_suites[0].test_cases[0].name.as_str(),
            "<script>alert(\"x\")</script> & co"
        );
    }
}
