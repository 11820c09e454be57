//! The requirement catalogue (`features/requirements.toml`) and how scenario outcomes
//! become a verdict per requirement.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::report::model::{
    RequirementResult, RunVerdict, ScenarioResult, ScenarioStatus, Verdict,
};
pub use crate::shared::RequirementId;

/// The text of the requirement catalogue, `features/requirements.toml`, built into the
/// binary.
pub const CATALOGUE: &str = include_str!("../features/requirements.toml");

/// A requirement profile: the requirements of one source system, or `all`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// `all`: every requirement of the catalogue.
    All,
    /// `ebevis`: service providers connecting by API to the national e-Evidence access
    /// solution.
    Ebevis,
    /// `fullmakt`: insurers integrating with a power-of-attorney registry (Fullmaktskollen).
    Fullmakt,
    /// `sdk`: shared access points and message services (Säker digital kommunikation).
    Sdk,
    /// `continuity`: fallback routes during outages.
    Continuity,
}

impl Profile {
    /// Every profile, `all` first.
    pub const EVERY: [Profile; 5] = [
        Profile::All,
        Profile::Ebevis,
        Profile::Fullmakt,
        Profile::Sdk,
        Profile::Continuity,
    ];

    /// The profile's name, as `--profile` takes it and reports write it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::All => "all",
            Profile::Ebevis => "ebevis",
            Profile::Fullmakt => "fullmakt",
            Profile::Sdk => "sdk",
            Profile::Continuity => "continuity",
        }
    }

    /// Whether a requirement of profile `p` belongs to this one.
    pub fn includes(self, p: Profile) -> bool {
        self == Profile::All || self == p
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// `--profile NAME`, checked at the edge: an unknown name suggests the closest one.
impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Profile, String> {
        if let Some(p) = Profile::EVERY.into_iter().find(|p| p.name() == s) {
            return Ok(p);
        }
        let names = Profile::EVERY.map(Profile::name);
        let hint = crate::reference::defects::closest(s, names.iter().copied())
            .map(|c| format!("did you mean {c:?}? "))
            .unwrap_or_default();
        Err(format!(
            "unknown profile {s:?} ({hint}known: {})",
            names.join(", ")
        ))
    }
}

/// One entry of the requirement catalogue (`features/requirements.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The requirement's stable ID.
    pub id: RequirementId,
    /// The profile (source system) it belongs to; never [`Profile::All`].
    pub profile: Profile,
    /// The requirement restated in English.
    pub title: String,
    /// Source document and clause.
    pub source: String,
    /// `false` for an organisational or user-interface control no API harness can observe
    /// (reported `not-testable`); `true` when the catalogue leaves it out.
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

/// Parses [`CATALOGUE`]: every requirement, in file order. Fails if the file does not
/// parse or an entry has the profile `all`.
pub fn catalogue() -> anyhow::Result<Vec<Requirement>> {
    let f: File = toml::from_str(CATALOGUE).context("features/requirements.toml")?;
    for r in &f.requirement {
        if r.profile == Profile::All {
            bail!(
                "features/requirements.toml: {} has the profile \"all\"; name its source system's",
                r.id
            );
        }
    }
    Ok(f.requirement)
}

/// The requirements of `all` that belong to `profile`, in their order.
pub fn in_profile(all: &[Requirement], profile: Profile) -> Vec<&Requirement> {
    all.iter().filter(|r| profile.includes(r.profile)).collect()
}

/// Why requirements without a selected scenario were left out of this run: requirement ID
/// to reason (`--tags`, `--shard`). Built by the runner from the scenarios it did not select.
pub type Unselected = BTreeMap<RequirementId, String>;

/// The verdict per requirement of `profile`. A requirement with no scenario that ran is
/// never `pass`: it is `not-tested` with the real reason (the distinct reasons its
/// scenarios gave, or why none was selected), or `not-testable` for controls no API
/// harness can observe.
pub fn verdicts(
    all: &[Requirement],
    profile: Profile,
    scenarios: &[ScenarioResult],
    unselected: &Unselected,
) -> Vec<RequirementResult> {
    let mut by_req: BTreeMap<&RequirementId, Vec<&ScenarioResult>> = BTreeMap::new();
    for s in scenarios {
        for r in &s.requirements {
            by_req.entry(r).or_default().push(s);
        }
    }
    in_profile(all, profile)
        .into_iter()
        .map(|req| {
            let scs = by_req.get(&req.id).cloned().unwrap_or_default();
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
            } else {
                (Verdict::NotTested, Some(not_tested_reason(req, &scs, unselected)))
            };
            RequirementResult {
                id: req.id.clone(),
                title: req.title.clone(),
                source: req.source.clone(),
                profile: req.profile.to_string(),
                verdict,
                reason,
                scenarios: scs.iter().map(|s| s.key.clone()).collect(),
            }
        })
        .collect()
}

/// The scenarios' own reasons for not applying (a role, a config section), each once, in
/// the order first seen; else why no scenario was selected.
fn not_tested_reason(
    req: &Requirement,
    scenarios: &[&ScenarioResult],
    unselected: &Unselected,
) -> String {
    let mut reasons: Vec<&str> = Vec::new();
    for s in scenarios {
        if let Some(m) = s.message.as_deref() {
            if !reasons.contains(&m) {
                reasons.push(m);
            }
        }
    }
    if !reasons.is_empty() {
        return reasons.join("; ");
    }
    match unselected.get(&req.id) {
        Some(why) => why.clone(),
        None => "no scenario of the selected features checks it".to_string(),
    }
}

/// The run verdict: `error` when a scenario could not be evaluated (a harness fault is
/// never the IUT's failure) or when nothing passed (a run that tested nothing certifies
/// nothing); `non-compliant` when a requirement fails or, with `complete_required`, when a
/// testable requirement was not tested; else `compliant`.
pub fn run_verdict(reqs: &[RequirementResult], complete_required: bool) -> RunVerdict {
    let any = |v: Verdict| reqs.iter().any(|r| r.verdict == v);
    if any(Verdict::Error) {
        RunVerdict::Error
    } else if any(Verdict::Fail) {
        RunVerdict::NonCompliant
    } else if !any(Verdict::Pass) {
        RunVerdict::Error
    } else if complete_required
        && reqs
            .iter()
            .any(|r| matches!(r.verdict, Verdict::NotTested | Verdict::NotApplicable))
    {
        RunVerdict::NonCompliant
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
            feature_name: None,
            name: key.into(),
            tags: vec![],
            requirements: vec![req.parse().expect("a requirement ID")],
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
        let v = verdicts(&c, Profile::Ebevis, &scs, &Unselected::new());
        let get = |id: &str| v.iter().find(|r| r.id == id).unwrap().verdict;
        assert_eq!(get("EB-MTLS-1"), Verdict::Fail);
        assert_eq!(get("EB-TLS-1"), Verdict::Pass);
        assert_eq!(get("EB-AUTH-1"), Verdict::NotTested);
        assert_eq!(get("EB-IP-1"), Verdict::NotTested);
        assert_eq!(run_verdict(&v, false), RunVerdict::NonCompliant);
        assert!(v.iter().all(|r| r.profile == "ebevis"));
    }

    #[test]
    fn nothing_passed_is_never_compliant_and_reasons_are_the_real_ones() {
        let c = catalogue().unwrap();
        let mut ip = sc("a:1", "EB-IP-2", ScenarioStatus::NotApplicable);
        ip.message = Some("the IUT config declares no [ip_filter]".into());
        let mut role = sc("a:2", "EB-AUTH-1", ScenarioStatus::NotApplicable);
        role.message = Some("needs role server, which the IUT does not declare".into());
        let unselected: Unselected = [(
            RequirementId::of("EB-TLS-1"),
            "not selected by --tags @x".to_string(),
        )]
        .into();
        let v = verdicts(&c, Profile::Ebevis, &[ip, role], &unselected);
        let get = |id: &str| v.iter().find(|r| r.id == id).unwrap();
        assert_eq!(get("EB-IP-2").verdict, Verdict::NotTested);
        assert_eq!(
            get("EB-IP-2").reason.as_deref(),
            Some("the IUT config declares no [ip_filter]")
        );
        assert!(get("EB-AUTH-1")
            .reason
            .as_deref()
            .unwrap()
            .contains("role server"));
        assert_eq!(
            get("EB-TLS-1").reason.as_deref(),
            Some("not selected by --tags @x")
        );
        assert_eq!(run_verdict(&v, false), RunVerdict::Error);
    }

    #[test]
    fn complete_requires_every_testable_requirement() {
        let c = catalogue().unwrap();
        let v = verdicts(
            &c,
            Profile::Ebevis,
            &[sc("a:1", "EB-TLS-1", ScenarioStatus::Passed)],
            &Unselected::new(),
        );
        assert_eq!(run_verdict(&v, false), RunVerdict::Compliant);
        assert_eq!(run_verdict(&v, true), RunVerdict::NonCompliant);
        let cov = crate::report::model::Coverage::of(&v, true);
        assert_eq!((cov.tested, cov.passed, cov.complete), (1, 1, false));
        let testable = v
            .iter()
            .filter(|r| r.verdict != Verdict::NotTestable)
            .count();
        assert_eq!(cov.testable, testable);
    }

    #[test]
    fn a_harness_error_is_never_non_compliant() {
        let c = catalogue().unwrap();
        let scs = vec![
            sc("a:1", "EB-TLS-1", ScenarioStatus::Failed),
            sc("a:2", "EB-MTLS-1", ScenarioStatus::Error),
        ];
        let v = verdicts(&c, Profile::Ebevis, &scs, &Unselected::new());
        assert_eq!(run_verdict(&v, false), RunVerdict::Error);
    }

    #[test]
    fn unknown_profile_suggests_one() {
        let e = "ebevs".parse::<Profile>().unwrap_err();
        assert!(e.contains("did you mean \"ebevis\""), "{e}");
    }
}
