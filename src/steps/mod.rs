//! The Gherkin step library, one file per feature area, around one [`ProvstenWorld`] per
//! scenario. Steps only observe the IUT through simulated peers and probes; every step
//! records what it saw as evidence, and failing steps say what was expected and observed.

pub mod mtls;
pub mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::peers::{Exchange, Target, TlsVersions};
use crate::pki::Pki;

/// What the steps know of the IUT for this run.
#[derive(Debug)]
pub struct RunContext {
    pub target: Target,
    pub pki: Pki,
    pub protected_path: String,
    pub health_path: String,
    pub registered_orgs: Vec<String>,
    pub request_timeout: Duration,
}

static CONTEXT: Mutex<Option<Arc<RunContext>>> = Mutex::new(None);

/// Installs the context the next scenarios' worlds are built with.
pub fn set_context(ctx: Arc<RunContext>) {
    if let Ok(mut c) = CONTEXT.lock() {
        *c = Some(ctx);
    }
}

/// One scenario's state: the client it plays, what it last observed, and the evidence.
#[derive(Debug, cucumber::World)]
#[world(init = Self::new)]
pub struct ProvstenWorld {
    ctx: Option<Arc<RunContext>>,
    /// Catalogue name of the client certificate; `None` presents none.
    pub client_cert: Option<String>,
    pub versions: TlsVersions,
    pub last: Option<Exchange>,
    pub probe: Option<serde_json::Value>,
    pub probe_accepted: Option<bool>,
    pub probe_refused: Option<bool>,
    /// Observations as data, copied into the report.
    pub evidence: Vec<serde_json::Value>,
}

impl ProvstenWorld {
    fn new() -> Self {
        ProvstenWorld {
            ctx: CONTEXT.lock().ok().and_then(|c| c.clone()),
            client_cert: None,
            versions: TlsVersions::Any,
            last: None,
            probe: None,
            probe_accepted: None,
            probe_refused: None,
            evidence: Vec::new(),
        }
    }

    pub fn ctx(&self) -> anyhow::Result<Arc<RunContext>> {
        self.ctx
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no IUT context: steps run only inside `provsten run`"))
    }

    pub fn record(&mut self, v: serde_json::Value) {
        self.evidence.push(v);
    }

    pub fn last(&self) -> anyhow::Result<&Exchange> {
        self.last
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no request was made before this step (hint: add a `When the client requests …` step)"))
    }
}

/// The step vocabulary for `provsten steps`: keyword, pattern, example. A test checks that
/// every example matches exactly one step definition, so this list cannot drift.
pub const VOCABULARY: &[(&str, &str, &str)] = &[
    (
        "Given",
        "a client presenting the certificate \"NAME\"",
        "Given a client presenting the certificate \"client-expired\"",
    ),
    (
        "Given",
        "a client presenting no certificate",
        "Given a client presenting no certificate",
    ),
    (
        "Given",
        "the client only speaks TLS 1.2|TLS 1.3",
        "Given the client only speaks TLS 1.3",
    ),
    (
        "When",
        "the client requests the data of organisation \"ORG\"",
        "When the client requests the data of organisation \"5560000002\"",
    ),
    (
        "When",
        "the client requests its own organisation's data",
        "When the client requests its own organisation's data",
    ),
    (
        "When",
        "the client requests the health endpoint",
        "When the client requests the health endpoint",
    ),
    (
        "When",
        "the client connects verifying the server certificate against the agreed CA",
        "When the client connects verifying the server certificate against the agreed CA",
    ),
    (
        "When",
        "a client offers only TLS 1.0|TLS 1.1 in a raw ClientHello",
        "When a client offers only TLS 1.1 in a raw ClientHello",
    ),
    (
        "When",
        "a client offers TLS 1.2 with only weak cipher suites",
        "When a client offers TLS 1.2 with only weak cipher suites",
    ),
    (
        "Then",
        "the request is refused without protected data",
        "Then the request is refused without protected data",
    ),
    (
        "Then",
        "the request succeeds with the organisation's data",
        "Then the request succeeds with the organisation's data",
    ),
    (
        "Then",
        "the response contains no data of organisation \"ORG\"",
        "Then the response contains no data of organisation \"5560000002\"",
    ),
    (
        "Then",
        "the server certificate is accepted",
        "Then the server certificate is accepted",
    ),
    (
        "Then",
        "the handshake uses TLS 1.2|TLS 1.3",
        "Then the handshake uses TLS 1.2",
    ),
    (
        "Then",
        "the IUT refuses the handshake",
        "Then the IUT refuses the handshake",
    ),
];

#[cfg(test)]
mod tests {
    use cucumber::World as _;

    use super::*;

    #[test]
    fn every_documented_example_matches_exactly_one_step() {
        let steps = ProvstenWorld::collection();
        for (kw, _, example) in VOCABULARY {
            let text = example.strip_prefix(kw).unwrap().trim();
            let ty = match *kw {
                "Given" => cucumber::gherkin::StepType::Given,
                "When" => cucumber::gherkin::StepType::When,
                _ => cucumber::gherkin::StepType::Then,
            };
            let step = cucumber::gherkin::Step {
                keyword: format!("{kw} "),
                ty,
                value: text.to_string(),
                docstring: None,
                table: None,
                span: Default::default(),
                position: Default::default(),
            };
            let found = steps
                .find(&step)
                .unwrap_or_else(|e| panic!("{example}: ambiguous: {e}"));
            assert!(found.is_some(), "no step matches {example:?}");
        }
    }
}
