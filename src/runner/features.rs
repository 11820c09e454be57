//! The feature files: the shipped ones embedded in the binary (so an installed `provsten`
//! works anywhere) plus a user's own from `--features DIR`, parsed and checked before
//! anything runs so a bad file is an exit-2 error naming file and line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cucumber::feature::Ext as _;
use cucumber::gherkin::{self, GherkinEnv};
use cucumber::World as _;
use include_dir::{include_dir, Dir};

pub(crate) use super::names::{check_names, name_uses, NameKind, NameUse};
use crate::iut::setup_error;
use crate::requirements::{Requirement, RequirementId};
use crate::steps::ProvstenWorld;

static SHIPPED: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/features");

/// The shipped features as (display path, text), sorted by path.
pub(crate) fn shipped() -> Vec<(String, String)> {
    let mut v: Vec<_> = SHIPPED
        .files()
        .filter(|f| f.path().extension().is_some_and(|e| e == "feature"))
        .filter_map(|f| {
            Some((
                format!("features/{}", f.path().display()),
                f.contents_utf8()?.to_string(),
            ))
        })
        .collect();
    v.sort();
    v
}

/// Hex SHA-256 over every feature's path and text, in order: what `report.json` records as
/// `inputs.digests.features`.
pub(crate) fn digest(sources: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut d = Sha256::new();
    for (path, text) in sources {
        d.update((path.len() as u64).to_be_bytes());
        d.update(path.as_bytes());
        d.update((text.len() as u64).to_be_bytes());
        d.update(text.as_bytes());
    }
    crate::pki::generate::hex(&d.finalize())
}

/// Every `*.feature` below `dir`, sorted.
pub(crate) fn from_dir(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    collect(dir, &mut found).with_context(|| format!("reading features from {}", dir.display()))?;
    if found.is_empty() {
        return Err(setup_error(format!(
            "--features {}: no *.feature files found there",
            dir.display()
        )));
    }
    found.sort();
    found
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "feature") {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses, expands outlines, and checks that every step is defined and every scenario
/// names known requirements.
pub(crate) fn parse_all(
    sources: &[(String, String)],
    catalogue: &[Requirement],
) -> anyhow::Result<Vec<gherkin::Feature>> {
    let steps = ProvstenWorld::collection();
    let mut features = Vec::new();
    for (path, text) in sources {
        let mut f = gherkin::Feature::parse(text, GherkinEnv::default()).map_err(|e| {
            if let Some((line, what)) = locate_gherkin_error(text) {
                return setup_error(format!("{path}:{line}: malformed Gherkin: {what}"));
            }
            // ParseError displays as "Error at LINE:COL: {expected tokens}".
            let msg = e.to_string();
            let loc = msg
                .strip_prefix("Error at ")
                .and_then(|r| r.split_once(": "))
                .map(|(l, rest)| format!("{path}:{l}: malformed Gherkin (expected one of {rest})"));
            setup_error(loc.unwrap_or_else(|| format!("{path}: malformed Gherkin: {msg}")))
        })?;
        f.path = Some(PathBuf::from(path));
        let mut f = f
            .expand_examples()
            .map_err(|e| setup_error(format!("{path}: {e}")))?;
        type_star_steps(&mut f, &steps);
        check(&f, path, &steps, catalogue)?;
        features.push(f);
    }
    Ok(features)
}

/// `* step` is a Gherkin keyword for any step; the parser types it as a Given. It takes the
/// type of the one step definition its text matches, so `* the request is refused …` is
/// the Then it reads as.
fn type_star_steps(f: &mut gherkin::Feature, steps: &cucumber::step::Collection<ProvstenWorld>) {
    use gherkin::StepType::{Given, Then, When};
    let retype = |step: &mut gherkin::Step| {
        if step.keyword.trim() != "*" {
            return;
        }
        let matching: Vec<gherkin::StepType> = [Given, When, Then]
            .into_iter()
            .filter(|ty| {
                let mut probe = step.clone();
                probe.ty = *ty;
                matches!(steps.find(&probe), Ok(Some(_)))
            })
            .collect();
        if let [only] = matching[..] {
            step.ty = only;
        }
    };
    let backgrounds = f
        .background
        .iter_mut()
        .chain(f.rules.iter_mut().filter_map(|r| r.background.as_mut()));
    for b in backgrounds {
        b.steps.iter_mut().for_each(retype);
    }
    let scenarios = f
        .scenarios
        .iter_mut()
        .chain(f.rules.iter_mut().flat_map(|r| r.scenarios.iter_mut()));
    for sc in scenarios {
        sc.steps.iter_mut().for_each(retype);
    }
}

fn check(
    f: &gherkin::Feature,
    path: &str,
    steps: &cucumber::step::Collection<ProvstenWorld>,
    catalogue: &[Requirement],
) -> anyhow::Result<()> {
    let scenarios = f.scenarios.iter().map(|s| (None, s)).chain(
        f.rules
            .iter()
            .flat_map(|r| r.scenarios.iter().map(move |s| (Some(r), s))),
    );
    for (rule, sc) in scenarios {
        let background = f
            .background
            .iter()
            .chain(rule.and_then(|r| r.background.as_ref()))
            .flat_map(|b| b.steps.iter());
        for step in background.chain(sc.steps.iter()) {
            match steps.find(step) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(setup_error(format!(
                        "{path}:{}: undefined step \"{}{}\" (hint: `provsten steps` lists the vocabulary)",
                        step.position.line,
                        step.keyword,
                        step.value
                    )))
                }
                Err(e) => {
                    return Err(setup_error(format!(
                        "{path}:{}: step \"{}\" is ambiguous: {e}",
                        step.position.line, step.value
                    )))
                }
            }
        }
        // A scenario without an assertion is a check that cannot fail.
        if !sc.steps.iter().any(|s| s.ty == gherkin::StepType::Then) {
            return Err(setup_error(format!(
                "{path}:{}: scenario {:?} has no Then step, so it cannot fail (hint: add the assertion, e.g. `Then the request is refused without protected data`; `provsten steps` lists them)",
                sc.position.line, sc.name
            )));
        }
        let tags = all_tags(f, rule, sc);
        let reqs = requirement_tags(&tags);
        if reqs.is_empty() {
            return Err(setup_error(format!(
                "{path}:{}: scenario {:?} names no requirement (hint: tag it @req:ID; `provsten requirements` lists the IDs)",
                sc.position.line, sc.name
            )));
        }
        for id in reqs {
            if !catalogue.iter().any(|r| r.id == id) {
                let hint =
                    crate::reference::defects::closest(id, catalogue.iter().map(|r| r.id.as_str()))
                        .map(|c| format!(" (did you mean @req:{c}?)"))
                        .unwrap_or_default();
                return Err(setup_error(format!(
                    "{path}:{}: unknown requirement @req:{id}{hint}",
                    sc.position.line
                )));
            }
        }
    }
    Ok(())
}

/// The parser reports where it gave up (often the end of the file); this finds the first
/// line a person would call wrong: free text where only a step, table or keyword may stand.
fn locate_gherkin_error(text: &str) -> Option<(usize, String)> {
    const HEADERS: &[&str] = &[
        "Feature:",
        "Rule:",
        "Background:",
        "Scenario:",
        "Scenario Outline:",
        "Scenario Template:",
        "Example:",
        "Examples:",
        "Scenarios:",
    ];
    const STEPS: &[&str] = &["Given ", "When ", "Then ", "And ", "But ", "* "];
    let mut description_allowed = false;
    let mut in_docstring: Option<&str> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(fence) = in_docstring {
            if line.starts_with(fence) {
                in_docstring = None;
            }
            continue;
        }
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with('@')
            || line.starts_with('|')
        {
            continue;
        }
        if line.starts_with("\"\"\"") || line.starts_with("```") {
            in_docstring = Some(if line.starts_with("```") {
                "```"
            } else {
                "\"\"\""
            });
            continue;
        }
        if HEADERS.iter().any(|h| line.starts_with(h)) {
            description_allowed = true;
            continue;
        }
        if STEPS.iter().any(|s| line.starts_with(s)) {
            description_allowed = false;
            continue;
        }
        if !description_allowed {
            return Some((
                i + 1,
                format!("unexpected text {line:?} (a step starts with Given, When, Then, And or But; a block with Scenario:, Examples:, Rule: or Background:)"),
            ));
        }
    }
    None
}

/// Feature, rule and scenario tags (examples' tags are already on expanded scenarios).
pub(crate) fn all_tags(
    f: &gherkin::Feature,
    rule: Option<&gherkin::Rule>,
    sc: &gherkin::Scenario,
) -> Vec<String> {
    let mut tags: Vec<String> = f
        .tags
        .iter()
        .chain(rule.iter().flat_map(|r| r.tags.iter()))
        .chain(sc.tags.iter())
        .cloned()
        .collect();
    tags.dedup();
    tags
}

/// The `@req:` tags as written (checked against the catalogue when features are loaded).
fn requirement_tags(tags: &[String]) -> Vec<&str> {
    let mut ids: Vec<&str> = tags.iter().filter_map(|t| t.strip_prefix("req:")).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The requirements a scenario's tags name; a tag that is no requirement ID was refused
/// when the features were loaded.
pub(crate) fn requirement_ids(tags: &[String]) -> Vec<RequirementId> {
    requirement_tags(tags)
        .into_iter()
        .filter_map(|t| t.parse().ok())
        .collect()
}

pub(crate) fn role_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("role:"))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_features_parse_and_every_step_is_defined() {
        let cat = crate::requirements::catalogue().unwrap();
        let f = parse_all(&shipped(), &cat).unwrap();
        assert!(f.len() >= 2);
    }

    #[test]
    fn malformed_feature_names_file_and_line() {
        let cat = crate::requirements::catalogue().unwrap();
        let src = vec![(
            "my.feature".to_string(),
            "Feature: x\n  Scenario: y\n    Given a client presenting no certificate\n  Blah: z\n"
                .to_string(),
        )];
        let e = parse_all(&src, &cat).unwrap_err().to_string();
        assert!(e.starts_with("my.feature:4:"), "{e}");
    }

    #[test]
    fn a_scenario_without_then_is_a_feature_error_and_star_is_a_keyword() {
        let cat = crate::requirements::catalogue().unwrap();
        let src = vec![(
            "n.feature".to_string(),
            "Feature: x\n  @req:EB-AUTH-1\n  Scenario: y\n    Given a client presenting no certificate\n    When the client requests the health endpoint\n".to_string(),
        )];
        let e = parse_all(&src, &cat).unwrap_err().to_string();
        assert!(
            e.starts_with("n.feature:3: scenario \"y\" has no Then step"),
            "{e}"
        );
        let src = vec![(
            "s.feature".to_string(),
            "Feature: x\n  @req:EB-AUTH-1\n  Scenario: y\n    * a client presenting no certificate\n    When the client requests the health endpoint\n    Then the request is refused without protected data\n    * the response contains no data of organisation \"5560000002\"\n".to_string(),
        )];
        parse_all(&src, &cat).unwrap();
    }

    #[test]
    fn names_in_steps_are_found_and_checked_with_a_suggestion() {
        let cat = crate::requirements::catalogue().unwrap();
        let src = vec![(
            "c.feature".to_string(),
            "Feature: x\n  @req:EB-MTLS-1\n  Scenario: y\n    Given a client presenting the certificate \"client-expierd\"\n    And the link \"iut-api\" adds 300 ms latency\n    When the client requests the health endpoint\n    Then the request is refused without protected data\n".to_string(),
        )];
        let f = parse_all(&src, &cat).unwrap();
        let uses = name_uses(&f);
        assert_eq!(uses.len(), 2, "{uses:?}");
        let e = check_names(
            &uses,
            NameKind::Certificate,
            &["client-expired", "client-5560000001"],
            "certificate",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "c.feature:4: unknown certificate \"client-expierd\" (did you mean \"client-expired\"? known: client-expired, client-5560000001)"
        );
        check_names(&uses, NameKind::Link, &["iut-api"], "link").unwrap();
    }

    #[test]
    fn undefined_step_and_unknown_requirement_are_named() {
        let cat = crate::requirements::catalogue().unwrap();
        let src = vec![(
            "a.feature".to_string(),
            "Feature: x\n  @req:EB-TLS-1\n  Scenario: y\n    Given a client with a hat\n"
                .to_string(),
        )];
        let e = parse_all(&src, &cat).unwrap_err().to_string();
        assert!(
            e.contains("a.feature:4: undefined step \"Given a client with a hat\""),
            "{e}"
        );
        let src = vec![("b.feature".to_string(), "Feature: x\n  @req:EB-TSL-1\n  Scenario: y\n    Given a client presenting no certificate\n    Then the request is refused without protected data\n".to_string())];
        let e = parse_all(&src, &cat).unwrap_err().to_string();
        assert!(
            e.contains("unknown requirement @req:EB-TSL-1 (did you mean @req:EB-TLS-1?)"),
            "{e}"
        );
    }
}
