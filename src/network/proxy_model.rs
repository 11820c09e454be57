//! The records the fault proxy and its toxics share: [`Stream`], [`ToxicSpec`],
//! [`ToxicUpdate`] and [`ProxyError`], with Toxiproxy's JSON. A leaf, so the toxics need not
//! import the proxy that runs them; [`crate::network::proxy`] re-exports each.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which way bytes flow on a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Server → client.
    #[default]
    Downstream,
    /// Client → server.
    Upstream,
}

impl Stream {
    /// Both, in the order Toxiproxy lists a link's toxics.
    pub const ALL: [Stream; 2] = [Stream::Upstream, Stream::Downstream];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Downstream => "downstream",
            Stream::Upstream => "upstream",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Upstream => 0,
            Stream::Downstream => 1,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_toxicity() -> f32 {
    1.0
}

/// A toxic: Toxiproxy's toxic object (`POST /proxies/{name}/toxics`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ToxicSpec {
    /// Unique on its link; defaults to `{type}_{stream}`.
    #[serde(default)]
    pub name: String,
    /// The wire name of its type ([`crate::network::toxics::TOXICS`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// The stream it acts on (default downstream).
    #[serde(default)]
    pub stream: Stream,
    /// The chance it acts on a given connection, 0.0 to 1.0 (default 1.0).
    #[serde(default = "default_toxicity")]
    pub toxicity: f32,
    /// Its attributes; shown with every field, defaults included.
    #[serde(default)]
    pub attributes: serde_json::Value,
}

/// A change to a toxic: only the given attribute keys change; toxicity if given.
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
pub struct ToxicUpdate {
    /// Attribute keys to change (a JSON object).
    pub attributes: Option<serde_json::Value>,
    /// New toxicity.
    pub toxicity: Option<f32>,
}

/// Why a proxy operation failed; `Display` is Toxiproxy's message with the details after
/// a colon, and [`ProxyError::status`] its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No such link or toxic (404).
    #[error("{0}")]
    NotFound(String),
    /// The name is taken (409).
    #[error("{0}")]
    AlreadyExists(String),
    /// No toxic type of that name (400).
    #[error("{0}")]
    InvalidToxicType(String),
    /// A missing field or a bad attribute, toxicity or address (400).
    #[error("{0}")]
    BadRequest(String),
    /// The listener could not be bound (500).
    #[error("{0}")]
    Io(String),
}

impl ProxyError {
    /// The HTTP status Toxiproxy answers with.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::NotFound(_) => 404,
            ProxyError::AlreadyExists(_) => 409,
            ProxyError::InvalidToxicType(_) | ProxyError::BadRequest(_) => 400,
            ProxyError::Io(_) => 500,
        }
    }

    /// Toxiproxy's error body: `{"error": "...", "status": N}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": self.to_string(), "status": self.status()})
    }

    pub(crate) fn proxy_not_found(name: &str) -> ProxyError {
        ProxyError::NotFound(format!("proxy not found: {name}"))
    }

    pub(crate) fn proxy_already_exists(name: &str) -> ProxyError {
        ProxyError::AlreadyExists(format!("proxy already exists: {name}"))
    }

    pub(crate) fn toxic_not_found(link: &str, name: &str) -> ProxyError {
        ProxyError::NotFound(format!("toxic not found: {name} (on proxy {link})"))
    }

    pub(crate) fn toxic_already_exists(link: &str, name: &str) -> ProxyError {
        ProxyError::AlreadyExists(format!(
            "toxic already exists: {name} (on proxy {link}; hint: give the toxic another name, or update it)"
        ))
    }

    pub(crate) fn missing_field(field: &str) -> ProxyError {
        ProxyError::BadRequest(format!("missing required field: {field}"))
    }
}
