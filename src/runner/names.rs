//! The names steps refer to (certificates, links, routes, timelines, message types), found
//! in the features and checked against what exists. A leaf of the runner: the IUT adapter
//! checks certificate names with it without importing the step library.

use cucumber::gherkin;

use crate::iut::setup::setup_error;

/// What a quoted name in a step refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// An entry of the certificate catalogue (`certs/catalog.toml` or the IUT's PKI).
    Certificate,
    /// A fault-proxy link: `iut-api`, or `route-NAME` of a router's route.
    Link,
    /// A router route (`[router] routes`).
    Route,
    /// A fault timeline (`scenarios/NAME.toml` or `--scenarios DIR`).
    Timeline,
    /// A `[[message]]` type of the IUT config.
    MessageType,
}

/// The names steps refer to, by the words before the opening quote: one table, so a new
/// step with a name is checked by adding a row.
const NAMED: &[(&str, NameKind)] = &[
    ("the certificate \"", NameKind::Certificate),
    ("the link \"", NameKind::Link),
    ("the route \"", NameKind::Route),
    ("the fault timeline \"", NameKind::Timeline),
    ("the outage exercise \"", NameKind::Timeline),
    ("the message type \"", NameKind::MessageType),
];

/// A name a step refers to and where (`file:line`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameUse {
    pub kind: NameKind,
    pub name: String,
    pub at: String,
}

/// Every name the steps of `features` refer to (backgrounds included).
pub(crate) fn name_uses(features: &[gherkin::Feature]) -> Vec<NameUse> {
    let mut uses = Vec::new();
    for f in features {
        let path = f
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let steps = f
            .background
            .iter()
            .flat_map(|b| b.steps.iter())
            .chain(f.scenarios.iter().flat_map(|s| s.steps.iter()))
            .chain(f.rules.iter().flat_map(|r| {
                r.background
                    .iter()
                    .flat_map(|b| b.steps.iter())
                    .chain(r.scenarios.iter().flat_map(|s| s.steps.iter()))
            }));
        for step in steps {
            for (phrase, kind) in NAMED {
                let mut rest = step.value.as_str();
                while let Some(at) = rest.find(phrase) {
                    rest = &rest[at + phrase.len()..];
                    let Some(end) = rest.find('"') else { break };
                    uses.push(NameUse {
                        kind: *kind,
                        name: rest[..end].to_string(),
                        at: format!("{path}:{}", step.position.line),
                    });
                    rest = &rest[end..];
                }
            }
        }
    }
    uses
}

/// Checks that every use of `kind` names one of `known`; a feature error (exit 2) naming
/// the file, line and the closest known name otherwise.
pub(crate) fn check_names(
    uses: &[NameUse],
    kind: NameKind,
    known: &[&str],
    what: &str,
) -> anyhow::Result<()> {
    for u in uses.iter().filter(|u| u.kind == kind) {
        if known.contains(&u.name.as_str()) {
            continue;
        }
        let hint = crate::reference::defects::closest(&u.name, known.iter().copied())
            .map(|c| format!("did you mean {c:?}? "))
            .unwrap_or_default();
        return Err(setup_error(format!(
            "{}: unknown {what} {:?} ({hint}known: {})",
            u.at,
            u.name,
            known.join(", ")
        )));
    }
    Ok(())
}
