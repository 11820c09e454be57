//! The compliance report: model, requirement verdicts, writers.

pub mod merge;
pub mod model;
pub mod sign;
pub mod writers;
