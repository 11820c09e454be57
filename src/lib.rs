//! provsten: simulated peers, a simulated CA and flaky networks run Gherkin scenarios
//! against an implementation under test (IUT) and report compliance per requirement.
//!
//! One module per concept of the architecture (DESIGN.md): [`pki`] (simulated CA),
//! [`peers`] (simulated clients), [`network`] (raw TLS probes), [`iut`] (IUT adapter),
//! [`reference`] (reference IUT and its seeded defects), [`steps`] (Gherkin step library),
//! [`runner`] (the cucumber run), [`report`] (model and writers).
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod iut;
pub mod network;
pub mod peers;
pub mod pki;
pub mod reference;
pub mod report;
pub mod requirements;
pub mod runner;
pub mod schema;
pub mod steps;
