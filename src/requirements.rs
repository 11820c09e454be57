//! The requirement catalogue (`features/requirements.toml`) and how scenario outcomes
//! become a verdict per requirement.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::report::model::{
    RequirementResult, RunVerdict, ScenarioResult, ScenarioStatus, Verdict,
};

pub const CATALOGUE: &str = include_str!("../features/requirements.toml");

pub const PROFILES: &[&str] = &["all", "ebevis", "fullmakt", "sdk", "continuity"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub id: String,
    pub profile: String,
    pub title: String,
    pub source: String,
    #[serde(default = "yes")]
    pub testable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    requirement: Vec<Requirement>,
}

pub fn catalogue() -> anyhow::Result<Vec<Requirement>> {
    let f: File = toml::from_str(CATALOGUE).context("features/requirements.toml")?;
    for r in &f.requirement {
        if !PROFILES.contains(&r.profile.as_str()) || r.profile == "all" {
            bail!(
                "features/requirements.toml: {} has unknown profile {:?}",
                r.id,
                r.profile
            );
        }
    }
    Ok(f.requirement)
}

/// Checks a `--profile` value, suggesting the closest known one.
pub fn check_profile(profile: &str) -> anyhow::Result<()> {
    if PROFILES.contains(&profile) {
        return Ok(());
    }
    let hint = crate::reference::defects::closest(profile, PROFILES.iter().copied())
        .map(|c| format!("did you mean {c:?}? "))
        .unwrap_or_default();
    bail!(
        "unknown profile {profile:?} ({hint}known: {})",
        PROFILES.join(", ")
    )
}

pub fn in_profile<'a>(all: &'a [Requirement], profile: &str) -> Vec<&'a Requirement> {
    all.iter()
        .filter(|r| profile == "all" || r.profile == profile)
        .collect()
}

/// The verdict per requirement of `profile`. A requirement with no scenario that ran is
/// never `pass`.
pub fn verdicts(
    all: &[Requirement],
    profile: &str,
    scenarios: &[ScenarioResult],
) -> Vec<RequirementResult> {
    let mut by_req: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
    for s in scenarios {
        for r in &s.requirements {
            by_req.entry(r.as_str()).or_default().push(s);
        }
    }
    in_profile(all, profile)
        .into_iter()
        .map(|req| {
            let scs = by_req.get(req.id.as_str()).cloned().unwrap_or_default();
            let has = |st: ScenarioStatus| scs.iter().any(|s| s.status == st);
            let (verdict, reason) = if !req.testable {
                (
                    Verdict::NotTestable,
                    Some("organisational or user-interface control: outside what an API harness can observe".to_string()),
                )
            } else if has(ScenarioStatus::Failed) {
                (Verdict::Fail, None)
            } else if has(ScenarioStatus::Error) {
                (Verdict::Error, None)
            } else if has(ScenarioStatus::Passed) {
                (Verdict::Pass, None)
            } else if has(ScenarioStatus::NotApplicable) {
                (
                    Verdict::NotApplicable,
                    Some("its scenarios need a role the IUT does not declare".to_string()),
                )
            } else {
                (
                    Verdict::NotTestable,
                    Some("no scenario of the selected features checks it".to_string()),
                )
            };
            RequirementResult {
                id: req.id.clone(),
                title: req.title.clone(),
                source: req.source.clone(),
                profile: req.profile.clone(),
                verdict,
                reason,
                scenarios: scs.iter().map(|s| s.key.clone()).collect(),
            }
        })
        .collect()
}

pub fn run_verdict(reqs: &[RequirementResult]) -> RunVerdict {
    if reqs.iter().any(|r| r.verdict == Verdict::Fail) {
        RunVerdict::NonCompliant
    } else if reqs.iter().any(|r| r.verdict == Verdict::Error) {
        RunVerdict::Error
    } else {
        RunVerdict::Compliant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(key: &str, req: &str, status: ScenarioStatus) -> ScenarioResult {
        ScenarioResult {
            key: key.into(),
            feature: "f".into(),
            name: key.into(),
            tags: vec![],
            requirements: vec![req.into()],
            status,
            duration_ms: 1,
            steps: vec![],
            message: None,
            evidence: vec![],
        }
    }

    #[test]
    fn catalogue_holds_every_documented_id() {
        let c = catalogue().unwrap();
        for id in [
            "EB-TLS-1",
            "EB-MTLS-2",
            "FMK-2.6.3-RESEND",
            "SDK-5.4-KEYS",
            "CONT-FAILBACK",
        ] {
            assert!(c.iter().any(|r| r.id == id), "{id}");
        }
        assert!(c.iter().any(|r| !r.testable));
    }

    #[test]
    fn one_failing_scenario_fails_the_requirement_and_nothing_run_is_never_pass() {
        let c = catalogue().unwrap();
        let scs = vec![
            sc("a:1", "EB-MTLS-1", ScenarioStatus::Passed),
            sc("a:2", "EB-MTLS-1", ScenarioStatus::Failed),
            sc("a:3", "EB-TLS-1", ScenarioStatus::Passed),
            sc("a:4", "EB-AUTH-1", ScenarioStatus::NotApplicable),
        ];
        let v = verdicts(&c, "ebevis", &scs);
        let get = |id: &str| v.iter().find(|r| r.id == id).unwrap().verdict;
        assert_eq!(get("EB-MTLS-1"), Verdict::Fail);
        assert_eq!(get("EB-TLS-1"), Verdict::Pass);
        assert_eq!(get("EB-AUTH-1"), Verdict::NotApplicable);
        assert_eq!(get("EB-IP-1"), Verdict::NotTestable);
        assert_eq!(run_verdict(&v), RunVerdict::NonCompliant);
        assert!(v.iter().all(|r| r.profile == "ebevis"));
    }

    #[test]
    fn unknown_profile_suggests_one() {
        let e = check_profile("ebevs").unwrap_err().to_string();
        assert!(e.contains("did you mean \"ebevis\""), "{e}");
    }
}
