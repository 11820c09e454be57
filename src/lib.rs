//! provsten: simulated peers, a simulated CA and flaky networks run Gherkin scenarios
//! against an implementation under test (IUT) and report compliance per requirement.
//!
//! One module per concept of the architecture (DESIGN.md): [`pki`] (simulated CA),
//! [`peers`] (simulated clients), [`network`] (raw TLS probes), [`iut`] (IUT adapter),
//! [`reference`] (reference IUT and its seeded defects), [`steps`] (Gherkin step library),
//! [`runner`] (the cucumber run), [`report`] (model and writers), [`bench`] (performance
//! figures as ratios), [`shared`] (pure models both the harness and the reference read).
//!
//! **The architecture rule:** the reference IUT is judged like a stranger. [`reference`]
//! imports nothing of the harness — not [`steps`], [`peers`], [`iut`], [`runner`] or
//! [`report`] — so a mistake in a check cannot be mirrored by the IUT it checks and pass.
//! It may use what any IUT could: [`pki`] (to load its certificates), [`schema`] (its own
//! validation, as a real receiver validates), [`network`]'s address parsing, and
//! [`shared`]. A unit test in this file enforces it.
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
mod commands;
pub mod iut;
pub mod network;
pub mod peers;
pub mod pki;
pub mod reference;
pub mod report;
pub mod requirements;
pub mod runner;
pub mod schema;
pub mod shared;
pub mod steps;

pub use commands::main;

#[cfg(test)]
mod architecture {
    /// The reference's own files (tests may drive it with the harness's clients).
    #[test]
    fn the_reference_imports_nothing_of_the_harness() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/reference");
        let mut offences = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("src/reference") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                for harness in ["steps", "peers", "iut", "runner", "report"] {
                    if line.contains(&format!("crate::{harness}")) {
                        offences.push(format!("src/reference/{name}:{}: {}", i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offences.is_empty(),
            "the reference imports the harness:\n{}",
            offences.join("\n")
        );
    }
}
