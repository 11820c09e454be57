//! Simulated peers: API clients that present any catalogue certificate and record exactly
//! how they were refused.

pub mod client;
pub mod danger;
pub mod receiver;
pub mod refusal;

pub use client::{
    request, ClientSpec, Exchange, Identity, Outcome, ServerCheck, Target, TlsVersions,
};
pub use refusal::{Refusal, Stage};
