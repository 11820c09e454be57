//! The report model: the one structure every writer reads (DESIGN.md "Report contract").
//!
//! Writers never look at runner state; they get a finished [`Report`] (and, for live
//! progress, [`RunEvent`]s).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped whenever a field changes meaning or disappears. 2: requirement verdict
/// `not-tested` (testable, not exercised) replaces `not-applicable` and `not-testable` for
/// those; `coverage`; the run is never `compliant` when no requirement passed.
pub const SCHEMA_VERSION: u32 = 2;

/// The whole compliance report, serialised as `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema_version: u32,
    pub harness: Harness,
    pub iut: IutInfo,
    pub profile: String,
    /// RFC 3339 timestamps.
    pub started_at: String,
    pub finished_at: String,
    pub verdict: RunVerdict,
    /// How much of the profile this run tested (absent in schema 1 reports).
    #[serde(default)]
    pub coverage: Coverage,
    pub requirements: Vec<RequirementResult>,
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
    pub digests: BTreeMap<String, String>,
}

/// How much of the profile's testable requirements the run exercised.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Coverage {
    /// Requirements of the profile a harness can observe (`not-testable` ones excluded).
    pub testable: usize,
    /// Testable requirements a scenario decided (`pass` or `fail`).
    pub tested: usize,
    pub passed: usize,
    /// The run was asked to certify every testable requirement (`--complete`).
    #[serde(default)]
    pub complete_required: bool,
    /// Every testable requirement of the profile was tested and passed.
    #[serde(default)]
    pub complete: bool,
}

impl Coverage {
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportSignature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// Hex SHA-256 of the signer's SubjectPublicKeyInfo (DER).
    pub public_key_sha256: String,
    /// Base64 signature over the canonical JSON of the report without this field.
    pub value: String,
}

/// Evidence shape for a sender's resend attempts (FMK-2.6.3): put in a scenario's evidence
/// as `{"resend_timeline": ResendTimeline}`; `report.html` draws it against the schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResendTimeline {
    pub message_id: String,
    /// Attempts as observed, times from the first attempt.
    pub attempts: Vec<ResendAttempt>,
    /// When the declared policy says attempts should come, same origin.
    pub expected_ms: Vec<u64>,
    pub tolerance_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResendAttempt {
    pub at_ms: u64,
    /// What the simulated receiver did or answered (`503`, `reset`, `timeout`, `200`…).
    pub outcome: String,
    /// Whether this attempt was accepted.
    pub accepted: bool,
}

/// Evidence shape for an outage exercise (CONT-*): `{"exercise_timeline": ExerciseTimeline}`;
/// `report.html` draws deliveries per route over time with outage phases shaded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExerciseTimeline {
    pub duration_ms: u64,
    pub phases: Vec<ExercisePhase>,
    pub routes: Vec<RouteSeries>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExercisePhase {
    pub name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Whether a fault is active in this phase (shaded).
    pub outage: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteSeries {
    pub route: String,
    /// Width of each bucket.
    pub bucket_ms: u64,
    /// Messages delivered through this route in each bucket.
    pub delivered: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Harness {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IutInfo {
    pub name: String,
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
    pub restarted: bool,
    /// Why it was not restarted, or how the restart failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The IUT's last output lines before it exited.
    pub last_output: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    Compliant,
    NonCompliant,
    Error,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequirementResult {
    pub id: crate::requirements::RequirementId,
    pub title: String,
    /// Source document and clause.
    pub source: String,
    pub profile: String,
    pub verdict: Verdict,
    /// Why the verdict is what it is when no scenario decided it (not-tested, not-testable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Scenario keys (`feature-path:line`) that carry this requirement.
    pub scenarios: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioStatus {
    Passed,
    Failed,
    /// Not run: the IUT does not declare the role it needs.
    NotApplicable,
    /// Could not be evaluated (undefined step, hook failure, harness error).
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioResult {
    /// Stable key: `features/mtls.feature:12`.
    pub key: String,
    pub feature: String,
    pub name: String,
    pub tags: Vec<String>,
    pub requirements: Vec<crate::requirements::RequirementId>,
    pub status: ScenarioStatus,
    pub duration_ms: u64,
    pub steps: Vec<StepResult>,
    /// Failure or error message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Observations as data: TLS alerts, HTTP statuses, certificates presented, timings.
    pub evidence: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    pub keyword: String,
    pub text: String,
    pub line: usize,
    pub status: StepStatus,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Passed,
    Failed,
    Skipped,
    Undefined,
}

/// Live events for progress output while the run goes on.
#[derive(Debug, Clone)]
pub enum RunEvent {
    RunStarted {
        total: usize,
    },
    ScenarioFinished {
        done: usize,
        total: usize,
        result: Box<ScenarioResult>,
    },
    RunFinished,
}
