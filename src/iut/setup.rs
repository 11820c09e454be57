//! The error of a run that cannot be done at all (exit 2). A leaf, so the feature checks
//! can raise it without importing the IUT adapter.

use anyhow::anyhow;

/// Raised when the run itself cannot be done (exit 2): bad config, IUT never ready.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SetupError(pub String);

/// A [`SetupError`] carrying `msg`.
pub(crate) fn setup_error(msg: impl Into<String>) -> anyhow::Error {
    anyhow!(SetupError(msg.into()))
}
