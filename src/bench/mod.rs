//! `provsten bench`: whole-path performance figures, each as a ratio against a baseline
//! measured in the same run.

pub mod proxy;
pub mod router;
pub mod schema;
