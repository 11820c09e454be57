//! `junit.xml`: standard JUnit XML for GitLab, GitHub and Jenkins test views, written with
//! `quick-junit` as nextest does (`reporter/aggregator/junit.rs`), and valid against the
//! Jenkins JUnit schema (`junit-10.xsd` of the xunit plugin, the strictest of the
//! published ones; `tests/fixtures/junit/`).
//!
//! One `<testsuite>` per feature file (its `file` attribute), one `<testcase>` per scenario
//! (`classname` = feature, `name` = scenario name). The schema allows `<properties>` only
//! on a testsuite, and no `file` or `line` on a testcase: the suite's properties name the
//! requirements its scenarios check, and each testcase's `<system-out>` starts with the
//! scenario's location and requirement IDs, then lists its steps. A failed scenario is a
//! `<failure>` whose message is the scenario message and whose text is the evidence as
//! pretty JSON; an error scenario is an `<error>` likewise; a not-applicable scenario is
//! `<skipped>` with the reason.

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
    let xml = junit.to_string().context("cannot serialise JUnit XML")?;
    Ok(without_testsuites_skipped(xml))
}

/// quick-junit always writes `skipped` on `<testsuites>`, an attribute the Jenkins schema
/// does not declare there (it does on `<testsuite>`). quick-junit escapes `"` in attribute
/// values, so the first ` skipped="` inside the opening tag is that attribute.
fn without_testsuites_skipped(mut xml: String) -> String {
    let Some(tag) = xml.find("<testsuites") else {
        return xml;
    };
    let tag_end = xml[tag..].find('>').map_or(xml.len(), |end| tag + end);
    if let Some(at) = xml[tag..tag_end].find(" skipped=\"").map(|at| tag + at) {
        let value = at + " skipped=\"".len();
        if let Some(close) = xml[value..tag_end].find('"') {
            xml.replace_range(at..value + close + 1, "");
        }
    }
    xml
}

fn test_suite(report: &Report, feature: &str, scenarios: &[&ScenarioResult]) -> TestSuite {
    let mut suite = TestSuite::new(feature);
    // quick-junit's own timestamp needs chrono; the model's RFC 3339 text is what it would
    // write anyway.
    suite
        .extra
        .insert("timestamp".into(), report.started_at.as_str().into());
    // The file of the feature: scenarios of one suite share it.
    if let Some(first) = scenarios.first() {
        suite
            .extra
            .insert("file".into(), key_path(&first.key).into());
    }
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
        .set_system_out(scenario_text(scenario));
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

/// The test output: where the scenario is, what it checks, and its steps —
/// `passed    Given a client certificate "x"  (line 7)`.
fn scenario_text(scenario: &ScenarioResult) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(out, "scenario: {}", scenario.key);
    if !scenario.requirements.is_empty() {
        let ids: Vec<&str> = scenario.requirements.iter().map(|id| id.as_str()).collect();
        let _ = writeln!(out, "requirements: {}", ids.join(", "));
    }
    for step in &scenario.steps {
        let status = match step.status {
            StepStatus::Failed => "failed",
            StepStatus::Passed => "passed",
            StepStatus::Skipped => "skipped",
            StepStatus::Undefined => "undefined",
        };
        let _ = writeln!(
            out,
            "{status:<9} {}  (line {})",
            step_line(&step.keyword, &step.text),
            step.line
        );
    }
    out
}

/// `Given the IUT …`: keyword, one space, text, whether or not the keyword kept Gherkin's
/// trailing space.
fn step_line(keyword: &str, text: &str) -> String {
    format!("{} {}", keyword.trim_end(), text)
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
        // Skips are counted per suite only: the Jenkins schema has no `skipped` on
        // `<testsuites>`.
        let skipped: usize = report.test_suites.iter().map(|s| s.skipped).sum();
        assert_eq!(
            (report.failures, report.errors, skipped),
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
    fn requirements_are_suite_properties_and_named_in_the_case_output() {
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
        assert!(case.properties.is_empty(), "{:?}", case.properties);
        let out = case.system_out.as_ref().unwrap().as_str();
        assert!(
            out.starts_with("scenario: features/resend.feature:20\nrequirements: FMK-4-RESEND\n"),
            "{out}"
        );
    }

    #[test]
    fn steps_are_keyword_space_text_whether_or_not_the_keyword_is_trimmed() {
        let mut report = sample_report();
        // The runner trims keywords ("Given"); Gherkin's own keep a space ("When ").
        report.scenarios[0].steps[0].keyword = "Given".to_owned();
        let xml = render(&report).unwrap();
        let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        let out = back.test_suites[0].test_cases[0]
            .system_out
            .as_ref()
            .unwrap()
            .as_str()
            .to_owned();
        assert!(
            out.contains("passed    Given a client certificate \"client-ok\"  (line 7)\n"),
            "{out}"
        );
        assert!(
            out.contains("passed    When the client calls the API  (line 8)\n"),
            "{out}"
        );
        assert!(!out.contains("Givena") && !out.contains("  the"), "{out}");
    }

    #[test]
    fn only_what_the_jenkins_schema_declares() {
        let (xml, _) = parsed();
        let testsuites = &xml[xml.find("<testsuites").unwrap()..];
        let testsuites = &testsuites[..testsuites.find('>').unwrap()];
        assert!(!testsuites.contains("skipped="), "{testsuites}");
        assert!(testsuites.contains(" tests=\"4\" failures=\"1\" errors=\"1\""));
        for case in xml.split("<testcase ").skip(1) {
            let tag = &case[..case.find('>').unwrap()];
            assert!(!tag.contains(" file=") && !tag.contains(" line="), "{tag}");
            let body = &case[..case.find("</testcase>").unwrap_or(case.len())];
            assert!(!body.contains("<properties"), "{body}");
        }
        assert!(xml.contains("<testsuite name=\"features/mtls.feature\" tests=\"2\""));
        assert!(xml.contains(" file=\"features/mtls.feature\""));
    }

    #[test]
    fn testsuites_skipped_is_removed_and_nothing_else() {
        let xml = "<?xml version=\"1.0\"?>\n<testsuites name=\"a skipped=&quot;1&quot;\" tests=\"2\" skipped=\"10\" failures=\"0\">\n<testsuite name=\"s\" skipped=\"1\"/>";
        assert_eq!(
            without_testsuites_skipped(xml.to_owned()),
            "<?xml version=\"1.0\"?>\n<testsuites name=\"a skipped=&quot;1&quot;\" tests=\"2\" failures=\"0\">\n<testsuite name=\"s\" skipped=\"1\"/>"
        );
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
