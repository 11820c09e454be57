//! `provsten bench schema`: how fast invalid messages can be generated and sent to the
//! reference IUT, and how long shrinking a counter-example takes. Figures are ratios against
//! valid messages sent in the same run (shared machines are noisy).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::peers::{self, ClientSpec, Identity, Target};
use crate::pki::{generate, Catalog, GenerateOptions, Pki};
use crate::reference::defects::{Defect, Defects};
use crate::reference::{self, ReferenceOptions};
use crate::schema::invalid::{self, invalid_mutations};
use crate::schema::{catalogue, Validator};

#[derive(Debug, Clone, Serialize)]
pub struct SchemaBench {
    pub messages: u32,
    pub valid_per_second: f64,
    pub invalid_per_second: f64,
    /// invalid ÷ valid messages per second.
    pub invalid_ratio: f64,
    /// Generating (not sending) invalid messages per second.
    pub generated_per_second: f64,
    pub shrink_ms: u64,
    pub shrink_requests: u32,
    /// Shrink time ÷ the time the same number of valid requests takes.
    pub shrink_ratio: f64,
    pub counter_example: Option<Value>,
}

impl SchemaBench {
    pub fn table(&self) -> String {
        format!(
            "valid notifications:      {:.0}/s (baseline)\n\
             invalid notifications:    {:.0}/s ({:.2}× valid)\n\
             generation alone:         {:.0}/s\n\
             shrinking a counter-example against accept-missing-field: {} ms, {} requests ({:.2}× the same number of valid requests)\n",
            self.valid_per_second, self.invalid_per_second, self.invalid_ratio, self.generated_per_second, self.shrink_ms, self.shrink_requests, self.shrink_ratio
        )
    }
}

async fn send(target: &Target, id: &Identity, body: Vec<u8>) -> anyhow::Result<Option<u16>> {
    let mut spec = ClientSpec::new(Some(id.clone()), Duration::from_secs(5));
    spec.body = Some((Some("application/json".into()), body));
    Ok(peers::request(target, &spec, "POST", "/v1/notifications")
        .await?
        .status())
}

/// Runs the benchmark with `messages` of each kind.
pub async fn run(messages: u32) -> anyhow::Result<SchemaBench> {
    let dir = tempfile_dir()?;
    let catalog = Catalog::parse(crate::pki::catalog::DEFAULT_CATALOG, "certs/catalog.toml")?;
    generate(&catalog, &dir, &GenerateOptions::default())?;
    let pki = Pki::load(&dir)?;
    let start = |defects: Defects| {
        reference::start(ReferenceOptions {
            pki_dir: dir.clone(),
            api: vec!["127.0.0.1:0"
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))],
            admin: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            allowlist: None,
            trusted_proxies: vec![],
            server_cert: "iut-server".into(),
            registered_orgs: vec!["5560000001".into()],
            defects,
            ocsp: false,
            inner: None,
            receipt_url: None,
        })
    };
    let identity = Identity::from_pki(&pki, "client-5560000001")?;
    let builtin = catalogue::get("fullmakt/agent-notification")?;
    let schema = builtin.schema()?;
    let example = builtin.example()?;
    let validator = Arc::new(builtin.validator()?);

    let compliant = start(Defects::default()).await?;
    let target = Target {
        addr: compliant.api[0],
        server_name: "iut.localhost".into(),
    };
    let valid = serde_json::to_vec(&example)?;
    let t = Instant::now();
    for _ in 0..messages {
        send(&target, &identity, valid.clone()).await?;
    }
    let valid_elapsed = t.elapsed();

    // Generate first (timed on its own), then send.
    let t = Instant::now();
    let bodies = generate_invalid(validator.clone(), &schema, &example, messages)?;
    let generated_elapsed = t.elapsed();
    let t = Instant::now();
    for b in &bodies {
        send(&target, &identity, b.clone()).await?;
    }
    let invalid_elapsed = t.elapsed();
    drop(compliant);

    let lax = start(Defects::new([Defect::AcceptMissingField])).await?;
    let lax_target = Target {
        addr: lax.api[0],
        server_name: "iut.localhost".into(),
    };
    let handle = tokio::runtime::Handle::current();
    let requests = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (counter, v2, s2, e2, id2) = (
        requests.clone(),
        validator.clone(),
        schema.clone(),
        example.clone(),
        identity.clone(),
    );
    let t = Instant::now();
    let found = tokio::task::spawn_blocking(move || {
        invalid::find_accepted_invalid(v2, &s2, &e2, 200, 0x5eed, |msg| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = serde_json::to_vec(msg).unwrap_or_default();
            matches!(
                handle.block_on(send(&lax_target, &id2, body)),
                Ok(Some(200..=299))
            )
        })
    })
    .await
    .context("the shrink run failed")?;
    let shrink = t.elapsed();
    drop(lax);
    let shrink_requests = requests.load(std::sync::atomic::Ordering::Relaxed);
    let per_valid = valid_elapsed.as_secs_f64() / f64::from(messages.max(1));
    let _ = std::fs::remove_dir_all(&dir);
    let rate = |d: Duration| f64::from(messages) / d.as_secs_f64().max(1e-9);
    Ok(SchemaBench {
        messages,
        valid_per_second: rate(valid_elapsed),
        invalid_per_second: rate(invalid_elapsed),
        invalid_ratio: valid_elapsed.as_secs_f64() / invalid_elapsed.as_secs_f64().max(1e-9),
        generated_per_second: rate(generated_elapsed),
        shrink_ms: shrink.as_millis() as u64,
        shrink_requests,
        shrink_ratio: shrink.as_secs_f64()
            / (per_valid * f64::from(shrink_requests.max(1))).max(1e-9),
        counter_example: found.map(|c| c.message),
    })
}

/// `n` invalid notifications from the proptest strategy, deterministic.
fn generate_invalid(
    validator: Arc<Validator>,
    schema: &Value,
    example: &Value,
    n: u32,
) -> anyhow::Result<Vec<Vec<u8>>> {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let strategy = invalid_mutations(validator, schema.clone(), example.clone());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut out = Vec::new();
    for _ in 0..n {
        let tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| anyhow::anyhow!("generating an invalid message: {e}"))?;
        out.push(serde_json::to_vec(&tree.current())?);
    }
    Ok(out)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("provsten-bench-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
