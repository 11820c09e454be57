//! The report model: the one structure every writer reads (DESIGN.md "Report contract").
//!
//! Writers never look at runner state; they get a finished [`Report`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped whenever a field changes meaning or disappears. 2: requirement verdict
/// `not-tested` (testable, not exercised) replaces `not-applicable` and `not-testable` for
/// those; `coverage`; the run is never `compliant` when no requirement passed.
pub const SCHEMA_VERSION: u32 = 2;

/// The whole compliance report, serialised as `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The report format's version, [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The program that wrote the report.
    pub harness: Harness,
    /// The implementation under test and what happened to it during the run.
    pub iut: IutInfo,
    /// The requirement profile the run certified (`all`, `ebevis`, `fullmakt`, `sdk`,
    /// `continuity`).
    pub profile: String,
    /// RFC 3339 timestamps.
    pub started_at: String,
    /// When the run finished (RFC 3339, UTC); in a merged report, the latest shard's.
    pub finished_at: String,
    /// The verdict of the whole run; it decides the exit code.
    pub verdict: RunVerdict,
    /// How much of the profile this run tested (absent in schema 1 reports).
    #[serde(default)]
    pub coverage: Coverage,
    /// A verdict for each requirement of the profile, in catalogue order.
    pub requirements: Vec<RequirementResult>,
    /// Every scenario the run selected, including those not run (`not-applicable`).
    pub scenarios: Vec<ScenarioResult>,
    /// SHA-256 of what the run used, so a report can be tied to its inputs and shards of
    /// one run can be told from shards of another.
    #[serde(default)]
    pub inputs: Inputs,
    /// Which slice of the scenarios this report holds, when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Ed25519 signature over the canonical report (see `report::sign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ReportSignature>,
}

/// Digests (hex SHA-256) of a run's inputs. Keys: `features` (every feature file, path and
/// text, in order), `config` (the IUT config text), `catalogue` (the requirement catalogue),
/// `ca_certificate` (the trusted root(s) PEM).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Inputs {
    /// Input name (a key above) to its hex SHA-256. Empty in reports written before
    /// inputs were recorded; a merged report drops `ca_certificate` when the shards
    /// trusted different roots.
    pub digests: BTreeMap<String, String>,
}

/// How much of the profile's testable requirements the run exercised.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Coverage {
    /// Requirements of the profile a harness can observe (`not-testable` ones excluded).
    pub testable: usize,
    /// Testable requirements a scenario decided (`pass` or `fail`).
    pub tested: usize,
    /// Testable requirements whose verdict is `pass`.
    pub passed: usize,
    /// The run was asked to certify every testable requirement (`--complete`).
    #[serde(default)]
    pub complete_required: bool,
    /// Every testable requirement of the profile was tested and passed.
    #[serde(default)]
    pub complete: bool,
}

impl Coverage {
    /// Counts `requirements` (the verdicts of one run); `complete_required` is whether the
    /// run was asked for `--complete`.
    pub fn of(requirements: &[RequirementResult], complete_required: bool) -> Self {
        let count =
            |f: &dyn Fn(Verdict) -> bool| requirements.iter().filter(|r| f(r.verdict)).count();
        let testable = count(&|v| v != Verdict::NotTestable);
        let passed = count(&|v| v == Verdict::Pass);
        Coverage {
            testable,
            tested: count(&|v| matches!(v, Verdict::Pass | Verdict::Fail)),
            passed,
            complete_required,
            complete: testable > 0 && passed == testable,
        }
    }
}

/// The slice of a sharded run (`--shard I/N`) a report holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u64,
    /// How many shards the run was split into (the `N` of `--shard I/N`).
    pub count: u64,
}

/// The report's signature (`provsten run --sign KEY`), checked by `provsten report verify`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportSignature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// Hex SHA-256 of the signer's SubjectPublicKeyInfo (DER).
    pub public_key_sha256: String,
    /// Base64 signature over the canonical JSON of the report without this field.
    pub value: String,
}

/// Evidence kind for a sender's resend attempts (FMK-2.6.3), [`Evidence::ResendTimeline`]
/// (`{"resend_timeline": ResendTimeline}` on the wire); `report.html` draws it against the
/// schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResendTimeline {
    /// The id of the message whose attempts these are: the first one the scenario had the
    /// sender send.
    pub message_id: String,
    /// Attempts as observed, times from the first attempt.
    pub attempts: Vec<ResendAttempt>,
    /// When the declared policy says attempts should come, same origin.
    pub expected_ms: Vec<u64>,
    /// How far (milliseconds) an attempt may be from its expected time: the policy's
    /// `tolerance`.
    pub tolerance_ms: u64,
    /// What the attempts are when they are not a sender's resends, e.g. `Calls to the
    /// simulated API server` (role client); `message_id` then names the series. Absent in
    /// reports before role client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// One delivery attempt in a [`ResendTimeline`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResendAttempt {
    /// Milliseconds after the first attempt (0 for the first).
    pub at_ms: u64,
    /// What the simulated receiver did or answered (`503`, `reset`, `timeout`, `200`…).
    pub outcome: String,
    /// Whether this attempt was accepted.
    pub accepted: bool,
}

/// Evidence kind for an outage exercise (CONT-*), [`Evidence::ExerciseTimeline`]
/// (`{"exercise_timeline": ExerciseTimeline}` on the wire); `report.html` draws deliveries per
/// route over time with outage phases shaded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExerciseTimeline {
    /// Length of the exercise's timeline, in milliseconds.
    pub duration_ms: u64,
    /// The timeline's phases, in order.
    pub phases: Vec<ExercisePhase>,
    /// Deliveries over time, one series per route of the router, in the config's order
    /// (the primary first).
    pub routes: Vec<RouteSeries>,
}

/// One phase of an outage exercise's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExercisePhase {
    /// The phase's name in the timeline (`primary down`).
    pub name: String,
    /// When the phase starts, in milliseconds from the start of the exercise.
    pub start_ms: u64,
    /// When the phase ends, in milliseconds from the start of the exercise.
    pub end_ms: u64,
    /// Whether a fault is active in this phase (shaded).
    pub outage: bool,
}

/// Deliveries through one route of an outage exercise, counted per time bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteSeries {
    /// The route's name in the IUT config (`router.routes`).
    pub route: String,
    /// Width of each bucket.
    pub bucket_ms: u64,
    /// Messages delivered through this route in each bucket.
    pub delivered: Vec<u64>,
}

/// What kind of chart `report.html` draws from an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// An [`ExerciseTimeline`], member `exercise_timeline`.
    ExerciseTimeline,
    /// A [`ResendTimeline`], member `resend_timeline`.
    ResendTimeline,
}

impl ChartKind {
    /// Every kind, in the order an observation is checked for their members.
    pub const ALL: [ChartKind; 2] = [ChartKind::ResendTimeline, ChartKind::ExerciseTimeline];

    /// The member that holds this kind of chart in `report.json`.
    pub fn key(self) -> &'static str {
        match self {
            ChartKind::ExerciseTimeline => "exercise_timeline",
            ChartKind::ResendTimeline => "resend_timeline",
        }
    }
}

/// One observation in a scenario's evidence.
///
/// On the wire each is the JSON value steps have always written: a chart is an object with
/// one member named by its kind (`{"resend_timeline": {…}}`, `{"exercise_timeline": {…}}`),
/// any other observation is kept as it is. Reading a JSON value never fails, so an old or
/// hand-edited report still loads, and every variant writes back exactly what was read (the
/// chart models deny unknown fields, so nothing is dropped on the way).
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// An outage exercise's chart: `{"exercise_timeline": {…}}`.
    ExerciseTimeline(ExerciseTimeline),
    /// An object with a chart kind's member that does not fit the model, kept as read so
    /// `report.html` can say why it is not drawn.
    Malformed {
        /// The chart kind whose member the object has.
        kind: ChartKind,
        /// Why it does not fit (``missing field `attempts` ``).
        error: String,
        /// The whole observation as read.
        value: serde_json::Value,
    },
    /// Anything else steps record, as a rule an object of named facts.
    Observation(serde_json::Value),
    /// A sender's resend attempts as a chart: `{"resend_timeline": {…}}`.
    ResendTimeline(ResendTimeline),
}

impl Evidence {
    /// The observation as the JSON value it is written as.
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            // `json!` converts the chart to a `Value` first, so its members are ordered the
            // way they always were in `report.json`. It cannot fail: the chart models hold
            // only strings, integers, booleans and lists of them.
            Evidence::ExerciseTimeline(t) => {
                serde_json::json!({ ChartKind::ExerciseTimeline.key(): t })
            }
            Evidence::ResendTimeline(t) => {
                serde_json::json!({ ChartKind::ResendTimeline.key(): t })
            }
            Evidence::Malformed { value, .. } | Evidence::Observation(value) => value.clone(),
        }
    }
}

impl From<serde_json::Value> for Evidence {
    /// Recognises charts by their member, so `record(json!({…}))` and reading `report.json`
    /// give the same evidence.
    fn from(value: serde_json::Value) -> Self {
        let Some(kind) = ChartKind::ALL
            .into_iter()
            .find(|k| value.get(k.key()).is_some())
        else {
            return Evidence::Observation(value);
        };
        let members = value.as_object().map_or(0, |m| m.len());
        let chart = &value[kind.key()];
        let read = if members == 1 {
            match kind {
                ChartKind::ExerciseTimeline => {
                    ExerciseTimeline::deserialize(chart).map(Evidence::ExerciseTimeline)
                }
                ChartKind::ResendTimeline => {
                    ResendTimeline::deserialize(chart).map(Evidence::ResendTimeline)
                }
            }
            .map_err(|e| e.to_string())
        } else {
            Err(format!(
                "a chart is an observation of its own, this one has {} other member{}",
                members - 1,
                if members == 2 { "" } else { "s" }
            ))
        };
        read.unwrap_or_else(|error| Evidence::Malformed { kind, error, value })
    }
}

impl From<ExerciseTimeline> for Evidence {
    fn from(t: ExerciseTimeline) -> Self {
        Evidence::ExerciseTimeline(t)
    }
}

impl From<ResendTimeline> for Evidence {
    fn from(t: ResendTimeline) -> Self {
        Evidence::ResendTimeline(t)
    }
}

impl Serialize for Evidence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Evidence::Malformed { value, .. } | Evidence::Observation(value) => {
                value.serialize(serializer)
            }
            chart => chart.to_value().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Evidence::from)
    }
}

/// The program that wrote a report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Harness {
    /// Always `provsten`.
    pub name: String,
    /// The provsten version (the crate's, e.g. `0.1.0`).
    pub version: String,
}

/// The implementation under test, as the run saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IutInfo {
    /// The IUT's name from its config (`iut.name`).
    pub name: String,
    /// The roles the IUT config declares (`server`, `receiver`, `sender`, `router`,
    /// `client`).
    pub roles: Vec<String>,
    /// SHA-256 of the DER server certificate the IUT presented, hex, `None` if it never
    /// completed a handshake.
    pub server_certificate_sha256: Option<String>,
    /// Seeded defects, only for the reference IUT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defects: Vec<String>,
    /// Times the IUT exited on its own during the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exits: Vec<IutExit>,
}

/// The IUT exited on its own during the run: the scenarios that were running fail with this
/// as evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IutExit {
    /// `exit status 1`, `signal 11 (SIGSEGV)`.
    pub status: String,
    /// Keys of the scenarios running when provsten noticed the exit.
    pub during: Vec<String>,
    /// An attached IUT (not started by provsten) that stopped answering.
    #[serde(default)]
    pub attached: bool,
    /// Whether provsten restarted the IUT afterwards (`note` says why not otherwise).
    pub restarted: bool,
    /// Why it was not restarted, or how the restart failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The IUT's last output lines before it exited.
    pub last_output: Vec<String>,
}

/// The verdict of a whole run (see [`crate::requirements::run_verdict`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    /// `compliant`: at least one requirement passed and none failed or errored (with
    /// `--complete`, every testable requirement was tested and passed). Exit 0.
    Compliant,
    /// `non-compliant`: a requirement failed (or, with `--complete`, one was not tested).
    /// Exit 1.
    NonCompliant,
    /// `error`: a scenario could not be evaluated, or no requirement passed. Exit 2.
    Error,
}

/// The verdict on one requirement (see [`crate::requirements::verdicts`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// `pass`: a scenario of it passed and none failed or errored.
    Pass,
    /// `fail`: a scenario of it failed.
    Fail,
    /// Only in schema 1 reports: now a requirement nothing exercised is `not-tested`.
    NotApplicable,
    /// Testable, but this run did not exercise it (`reason` says why: not selected, a role
    /// or a config section the IUT does not declare, no scenario for it yet).
    NotTested,
    /// A control no API harness can observe (organisational or user-interface).
    NotTestable,
    /// A scenario of it could not be evaluated (harness error).
    Error,
}

impl Verdict {
    /// The verdict as written in `report.json` (`pass`, `not-tested`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotApplicable => "not-applicable",
            Verdict::NotTested => "not-tested",
            Verdict::NotTestable => "not-testable",
            Verdict::Error => "error",
        }
    }
}

/// One requirement's entry in a report: what the catalogue says of it, and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequirementResult {
    /// The requirement's stable ID (`EB-MTLS-1`).
    pub id: crate::shared::RequirementId,
    /// The requirement restated in English, from the catalogue.
    pub title: String,
    /// Source document and clause.
    pub source: String,
    /// The profile the requirement belongs to in the catalogue (`ebevis`, `fullmakt`,
    /// `sdk`, `continuity`), not the run's profile.
    pub profile: String,
    /// The requirement's verdict in this run.
    pub verdict: Verdict,
    /// Why the verdict is what it is when no scenario decided it (not-tested, not-testable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Scenario keys (`feature-path:line`) that carry this requirement.
    pub scenarios: Vec<String>,
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioStatus {
    /// `passed`: every step passed.
    Passed,
    /// `failed`: a step found the IUT at fault (`message` says how).
    Failed,
    /// Not run: the IUT does not declare the role it needs.
    NotApplicable,
    /// Could not be evaluated (undefined step, hook failure, harness error).
    Error,
}

/// One scenario's entry in a report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioResult {
    /// Stable key: `features/mtls.feature:12`.
    pub key: String,
    /// Path of the feature file the scenario is in (empty if the feature has none).
    pub feature: String,
    /// The title after `Feature:` in that file, for readers that name features (Cucumber
    /// JSON); absent in reports written before it was recorded, whose readers fall back to
    /// `feature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_name: Option<String>,
    /// The scenario's name as written in the feature file.
    pub name: String,
    /// The Gherkin tags of the feature, its rule and the scenario, in that order
    /// (`req:EB-MTLS-1`, `role:server`).
    pub tags: Vec<String>,
    /// The requirements the scenario's `@req:` tags name.
    pub requirements: Vec<crate::shared::RequirementId>,
    /// The scenario's outcome.
    pub status: ScenarioStatus,
    /// Wall time from the scenario's start to its end, in milliseconds; 0 when it did not
    /// run or did not finish.
    pub duration_ms: u64,
    /// The scenario's steps in line order; steps that did not run are `skipped`.
    pub steps: Vec<StepResult>,
    /// Failure or error message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Observations as data: TLS alerts, HTTP statuses, certificates presented, timings.
    pub evidence: Vec<Evidence>,
}

/// One step of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    /// The Gherkin keyword, trimmed (`Given`, `When`, `Then`, `And`).
    pub keyword: String,
    /// The step text after the keyword.
    pub text: String,
    /// The step's line in the feature file (1-based).
    pub line: usize,
    /// The step's outcome.
    pub status: StepStatus,
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// `passed`.
    Passed,
    /// `failed`: the step ended in an error or a panic; the scenario's `status` and
    /// `message` say whether the IUT failed, the scenario did not apply, or the harness
    /// erred.
    Failed,
    /// `skipped`: not run (after a failure, or the scenario was not run).
    Skipped,
    /// `undefined`: cucumber did not run it as a defined step (features are checked for
    /// undefined steps before the run, so this is a safety net).
    Undefined,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resend() -> ResendTimeline {
        ResendTimeline {
            message_id: "n-1".into(),
            attempts: vec![ResendAttempt {
                at_ms: 0,
                outcome: "503".into(),
                accepted: false,
            }],
            expected_ms: vec![0, 2_000],
            tolerance_ms: 500,
            subject: None,
        }
    }

    fn exercise() -> ExerciseTimeline {
        ExerciseTimeline {
            duration_ms: 20_000,
            phases: vec![ExercisePhase {
                name: "primary down".into(),
                start_ms: 0,
                end_ms: 20_000,
                outage: true,
            }],
            routes: vec![RouteSeries {
                route: "fallback".into(),
                bucket_ms: 10_000,
                delivered: vec![3, 4],
            }],
        }
    }

    /// Serialises `evidence`, checks it is `wire`, and reads it back.
    fn round_trip(evidence: &Evidence, wire: &serde_json::Value) -> Evidence {
        let text = serde_json::to_string(evidence).unwrap();
        assert_eq!(text, wire.to_string(), "the wire shape of {evidence:?}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn each_evidence_kind_keeps_its_wire_shape_through_a_round_trip() {
        let charts = [
            (
                Evidence::ResendTimeline(resend()),
                json!({ "resend_timeline": resend() }),
            ),
            (
                Evidence::ExerciseTimeline(exercise()),
                json!({ "exercise_timeline": exercise() }),
            ),
            (
                Evidence::Observation(json!({"http_status": 200, "presented": "client-ok"})),
                json!({"http_status": 200, "presented": "client-ok"}),
            ),
            (
                Evidence::Observation(json!("a bare string")),
                json!("a bare string"),
            ),
        ];
        for (evidence, wire) in charts {
            assert_eq!(round_trip(&evidence, &wire), evidence);
            assert_eq!(
                Evidence::from(wire),
                evidence,
                "`record(json!(…))` types it too"
            );
        }
    }

    #[test]
    fn a_chart_that_does_not_fit_the_model_loads_as_malformed_and_writes_back_as_read() {
        let cases = [
            (
                json!({"resend_timeline": {"message_id": "n-1"}}),
                ChartKind::ResendTimeline,
                "missing field `attempts`",
            ),
            (
                json!({"exercise_timeline": {"duration_ms": 1, "phases": [], "routes": [],
                                              "note": "from elsewhere"}}),
                ChartKind::ExerciseTimeline,
                "unknown field `note`",
            ),
            (
                json!({"resend_timeline": resend(), "note": "beside it"}),
                ChartKind::ResendTimeline,
                "a chart is an observation of its own, this one has 1 other member",
            ),
        ];
        for (wire, kind, error) in cases {
            let read: Evidence = serde_json::from_value(wire.clone()).unwrap();
            let Evidence::Malformed {
                kind: read_kind,
                error: read_error,
                ..
            } = &read
            else {
                panic!("{wire} read as {read:?}");
            };
            assert_eq!(*read_kind, kind);
            assert!(read_error.starts_with(error), "{read_error}");
            assert_eq!(round_trip(&read, &wire), read);
        }
    }

    #[test]
    fn a_report_written_before_evidence_kinds_loads_and_writes_back_unchanged() {
        // Written by `report::writers::json::render` before evidence was typed: the sample
        // report plus a malformed resend timeline, a timeline with an unknown member, one
        // beside another member and a bare string.
        let text = include_str!("../../tests/fixtures/report-before-evidence-kinds.json");
        let report: Report = serde_json::from_str(text).unwrap();
        // Nor did it record feature titles: absent, and not written back.
        assert!(report.scenarios.iter().all(|s| s.feature_name.is_none()));
        let kinds: Vec<&str> = report.scenarios[3]
            .evidence
            .iter()
            .map(|e| match e {
                Evidence::ExerciseTimeline(_) => "exercise",
                Evidence::Malformed { .. } => "malformed",
                Evidence::Observation(_) => "observation",
                Evidence::ResendTimeline(_) => "resend",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "observation",
                "resend",
                "exercise",
                "malformed",
                "malformed",
                "malformed",
                "observation"
            ]
        );
        let mut again = serde_json::to_string_pretty(&report).unwrap();
        again.push('\n');
        assert_eq!(again, text);
    }

    #[test]
    fn a_feature_title_is_written_beside_the_feature_path() {
        let text = include_str!("../../tests/fixtures/report-before-evidence-kinds.json");
        let mut report: Report = serde_json::from_str(text).unwrap();
        report.scenarios[0].feature_name = Some("Mutual TLS".into());
        let wire = serde_json::to_value(&report).unwrap();
        assert_eq!(wire["scenarios"][0]["feature_name"], "Mutual TLS");
        assert!(wire["scenarios"][1].get("feature_name").is_none());
        let back: Report = serde_json::from_value(wire).unwrap();
        assert_eq!(
            back.scenarios[0].feature_name.as_deref(),
            Some("Mutual TLS")
        );
    }
}
