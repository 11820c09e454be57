//! The compliance report: model, requirement verdicts, writers.

pub(crate) mod merge;
pub mod model;
pub(crate) mod sign;
pub(crate) mod writers;
