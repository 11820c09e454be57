//! The compliance report: model, requirement verdicts, writers.

pub mod model;
pub mod writers;
