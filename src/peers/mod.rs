//! Simulated peers: API clients that present any catalogue certificate and record exactly
//! how they were refused.

pub(crate) mod canary;
pub(crate) mod client;
pub(crate) mod danger;
pub(crate) mod receiver;
pub(crate) mod refusal;

pub(crate) use client::{
    request, ClientSpec, Exchange, Identity, Outcome, ServerCheck, Target, TlsVersions,
};
pub(crate) use refusal::Refusal;
