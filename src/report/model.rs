//! The report model: the one structure every writer reads (DESIGN.md "Report contract").
//!
//! Writers never look at runner state; they get a finished [`Report`] (and, for live
//! progress, [`RunEvent`]s).

use serde::{Deserialize, Serialize};

/// Bumped whenever a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

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
    pub requirements: Vec<RequirementResult>,
    pub scenarios: Vec<ScenarioResult>,
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
    NotApplicable,
    NotTestable,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotApplicable => "not-applicable",
            Verdict::NotTestable => "not-testable",
            Verdict::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequirementResult {
    pub id: String,
    pub title: String,
    /// Source document and clause.
    pub source: String,
    pub profile: String,
    pub verdict: Verdict,
    /// Why the verdict is what it is when no scenario decided it (not-testable, not-applicable).
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
    pub requirements: Vec<String>,
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
