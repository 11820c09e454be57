//! Combining shard reports (`provsten run --shard I/N` on several CI runners) into the report
//! an unsharded run would have written.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};

use super::model::{Report, ScenarioResult};
use crate::requirements;

/// Merges shard reports; refuses shards of different runs (IUT, profile, features, config,
/// catalogue, harness version) and incomplete or overlapping shard sets.
pub(crate) fn merge(reports: Vec<(String, Report)>) -> anyhow::Result<Report> {
    let Some((first_name, first)) = reports.first().cloned() else {
        bail!("nothing to merge");
    };
    let same = |what: &str, a: String, b: String, name: &str| -> anyhow::Result<()> {
        if a != b {
            bail!("{name} is from another run than {first_name}: {what} differs ({b:?} vs {a:?})");
        }
        Ok(())
    };
    let mut indices = BTreeSet::new();
    let mut count = None;
    for (name, r) in &reports {
        same(
            "IUT",
            format!(
                "{} {:?} {:?}",
                first.iut.name, first.iut.roles, first.iut.defects
            ),
            format!("{} {:?} {:?}", r.iut.name, r.iut.roles, r.iut.defects),
            name,
        )?;
        same("profile", first.profile.clone(), r.profile.clone(), name)?;
        same(
            "harness version",
            first.harness.version.clone(),
            r.harness.version.clone(),
            name,
        )?;
        for key in ["features", "config", "catalogue"] {
            same(
                &format!("{key} digest"),
                first.inputs.digests.get(key).cloned().unwrap_or_default(),
                r.inputs.digests.get(key).cloned().unwrap_or_default(),
                name,
            )?;
        }
        let Some(shard) = r.shard else {
            bail!("{name} is not a shard report (it was not run with --shard I/N)");
        };
        if *count.get_or_insert(shard.count) != shard.count {
            bail!(
                "{name} is shard {}/{}, but {first_name} is of {} shards",
                shard.index,
                shard.count,
                count.unwrap_or(0)
            );
        }
        if !indices.insert(shard.index) {
            bail!(
                "shard {}/{} is given twice ({name})",
                shard.index,
                shard.count
            );
        }
    }
    let count = count.unwrap_or(0);
    let missing: Vec<u64> = (1..=count).filter(|i| !indices.contains(i)).collect();
    if !missing.is_empty() {
        bail!("shards {missing:?} of {count} are missing: a partial merge would under-report");
    }

    let mut scenarios: BTreeMap<String, ScenarioResult> = BTreeMap::new();
    for (name, r) in &reports {
        for s in &r.scenarios {
            if scenarios.insert(s.key.clone(), s.clone()).is_some() {
                bail!("scenario {} appears in two shards (last in {name})", s.key);
            }
        }
    }
    let scenarios: Vec<ScenarioResult> = scenarios.into_values().collect();
    let catalogue = requirements::catalogue().context("loading the requirement catalogue")?;
    let profile: requirements::Profile = first
        .profile
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{first_name}: {e}"))?;
    // A requirement no shard ran was left out by the same --tags in every shard.
    let unselected: requirements::Unselected = first
        .requirements
        .iter()
        .filter(|r| r.scenarios.is_empty())
        .filter_map(|r| Some((r.id.clone(), r.reason.clone()?)))
        .collect();
    let reqs = requirements::verdicts(&catalogue, profile, &scenarios, &unselected);
    let mut merged = first.clone();
    let complete_required = first.coverage.complete_required;
    merged.verdict = requirements::run_verdict(&reqs, complete_required);
    merged.coverage = crate::report::model::Coverage::of(&reqs, complete_required);
    merged.requirements = reqs;
    merged.scenarios = scenarios;
    merged.started_at = reports
        .iter()
        .map(|(_, r)| r.started_at.clone())
        .min()
        .unwrap_or_default();
    merged.finished_at = reports
        .iter()
        .map(|(_, r)| r.finished_at.clone())
        .max()
        .unwrap_or_default();
    merged.shard = None;
    merged.signature = None;
    // Each shard may have generated its own PKI: keep a digest only if all agree.
    let cas: BTreeSet<_> = reports
        .iter()
        .filter_map(|(_, r)| r.inputs.digests.get("ca_certificate"))
        .collect();
    if cas.len() > 1 {
        merged.inputs.digests.remove("ca_certificate");
    }
    let fps: BTreeSet<_> = reports
        .iter()
        .map(|(_, r)| r.iut.server_certificate_sha256.clone())
        .collect();
    if fps.len() > 1 {
        merged.iut.server_certificate_sha256 = None;
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Shard;
    use crate::report::writers::sample_report;

    fn shard(index: u64, count: u64) -> (String, Report) {
        let mut r = sample_report();
        r.shard = Some(Shard { index, count });
        (format!("shard{index}/report.json"), r)
    }

    #[test]
    fn a_missing_or_duplicated_shard_is_refused() {
        let e = merge(vec![shard(1, 3), shard(3, 3)]).expect_err("shard 2 is missing");
        assert!(e.to_string().contains("shards [2] of 3 are missing"), "{e}");
        let e = merge(vec![shard(1, 2), shard(2, 2), shard(2, 2)]).expect_err("2 twice");
        assert!(e.to_string().contains("shard 2/2 is given twice"), "{e}");
        let e = merge(vec![shard(1, 2), shard(2, 3)]).expect_err("counts differ");
        assert!(e.to_string().contains("is of 2 shards"), "{e}");
    }
}
