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
use crate::schema::xml::{self, XmlValidator};
use crate::schema::xml_generate::{self, XmlGenerator};
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
    /// The same figures for SDK messages (XML) against the reference's SDK endpoint.
    pub xml: XmlBench,
}

/// The XML line: generated invalid SDK messages against valid ones in the same run, and
/// shrinking a counter-example against `accept-xsd-invalid`.
#[derive(Debug, Clone, Serialize)]
pub struct XmlBench {
    pub valid_per_second: f64,
    pub invalid_per_second: f64,
    /// invalid ÷ valid messages per second.
    pub invalid_ratio: f64,
    /// Generating (each case checked by provsten's validator, not sent) per second.
    pub generated_per_second: f64,
    pub shrink_ms: u64,
    /// Requests in the shrink run: the cases sent until one was accepted, then the probes.
    pub shrink_requests: u32,
    /// Shrink time ÷ the time the same number of valid SDK requests takes.
    pub shrink_ratio: f64,
    /// Bytes of the minimal counter-example, and of the example it was made from.
    pub counter_example_bytes: Option<usize>,
    pub example_bytes: usize,
    pub counter_example: Option<Value>,
}

impl SchemaBench {
    pub fn table(&self) -> String {
        format!(
            "valid notifications:      {:.0}/s (baseline)\n\
             invalid notifications:    {:.0}/s ({:.2}× valid)\n\
             generation alone:         {:.0}/s\n\
             shrinking a counter-example against accept-missing-field: {} ms, {} requests ({:.2}× the same number of valid requests)\n\
             valid SDK messages (XML): {:.0}/s (baseline)\n\
             invalid SDK messages:     {:.0}/s ({:.2}× valid)\n\
             XML generation alone:     {:.0}/s\n\
             shrinking an XML counter-example against accept-xsd-invalid: {} ms, {} requests ({:.2}× the same number of valid requests), {} of {} bytes left\n",
            self.valid_per_second, self.invalid_per_second, self.invalid_ratio, self.generated_per_second, self.shrink_ms, self.shrink_requests, self.shrink_ratio,
            self.xml.valid_per_second, self.xml.invalid_per_second, self.xml.invalid_ratio, self.xml.generated_per_second,
            self.xml.shrink_ms, self.xml.shrink_requests, self.xml.shrink_ratio,
            self.xml.counter_example_bytes.map_or("none".to_owned(), |b| b.to_string()), self.xml.example_bytes
        )
    }
}

async fn send(target: &Target, id: &Identity, body: Vec<u8>) -> anyhow::Result<Option<u16>> {
    post(target, id, "application/json", "/v1/notifications", body).await
}

async fn send_xml(target: &Target, id: &Identity, body: Vec<u8>) -> anyhow::Result<Option<u16>> {
    post(target, id, "application/xml", "/v1/sdk/messages", body).await
}

async fn post(
    target: &Target,
    id: &Identity,
    content_type: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Option<u16>> {
    let mut spec = ClientSpec::new(Some(id.clone()), Duration::from_secs(5));
    spec.body = Some((Some(content_type.into()), body));
    Ok(peers::request(target, &spec, "POST", path).await?.status())
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
    let xml_compliant = xml_rates(&target, &identity, messages).await?;
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
    let xml_lax = start(Defects::new([Defect::AcceptXsdInvalid])).await?;
    let xml_target = Target {
        addr: xml_lax.api[0],
        server_name: "iut.localhost".into(),
    };
    let xml = xml_shrink(xml_compliant, xml_target, identity.clone(), messages).await?;
    drop(xml_lax);
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
        xml,
    })
}

/// The SDK example and the XML rates against the compliant reference, before the shrink.
struct XmlRates {
    example: Vec<u8>,
    per_valid: f64,
    valid_per_second: f64,
    invalid_per_second: f64,
    invalid_ratio: f64,
    generated_per_second: f64,
}

async fn xml_rates(
    target: &Target,
    identity: &Identity,
    messages: u32,
) -> anyhow::Result<XmlRates> {
    let validator = xml_validator()?;
    let example = sdk_example()?;
    let t = Instant::now();
    for _ in 0..messages {
        send_xml(target, identity, example.clone()).await?;
    }
    let valid = t.elapsed();
    let t = Instant::now();
    let g = XmlGenerator::new(validator, &example)
        .map_err(|e| anyhow::anyhow!("the SDK example: {e}"))?;
    let bodies: Vec<Vec<u8>> = (0..messages)
        .filter_map(|i| g.case(XML_SEED, i).map(|c| c.body))
        .collect();
    let generated = t.elapsed();
    let t = Instant::now();
    for b in &bodies {
        send_xml(target, identity, b.clone()).await?;
    }
    let invalid = t.elapsed();
    let n = |count: usize| u32::try_from(count).map_or(f64::MAX, f64::from);
    let rate = |count: f64, d: Duration| count / d.as_secs_f64().max(1e-9);
    let valid_per_second = rate(f64::from(messages), valid);
    let invalid_per_second = rate(n(bodies.len()), invalid);
    Ok(XmlRates {
        example,
        per_valid: valid.as_secs_f64() / f64::from(messages.max(1)),
        valid_per_second,
        invalid_per_second,
        invalid_ratio: invalid_per_second / valid_per_second.max(1e-9),
        generated_per_second: rate(n(bodies.len()), generated),
    })
}

/// Shrinks a counter-example against the `accept-xsd-invalid` reference at `target`.
async fn xml_shrink(
    rates: XmlRates,
    target: Target,
    identity: Identity,
    messages: u32,
) -> anyhow::Result<XmlBench> {
    let handle = tokio::runtime::Handle::current();
    let example = rates.example.clone();
    let t = Instant::now();
    let run = tokio::task::spawn_blocking(move || {
        let g = XmlGenerator::new(xml_validator()?, &example)
            .map_err(|e| anyhow::anyhow!("the SDK example: {e}"))?;
        anyhow::Ok(xml_generate::find_accepted_invalid(
            &g,
            messages,
            XML_SEED,
            |body| {
                matches!(
                    handle.block_on(send_xml(&target, &identity, body.to_vec())),
                    Ok(Some(200..=299))
                )
            },
        ))
    })
    .await
    .context("the XML shrink run failed")??;
    let shrink = t.elapsed();
    Ok(XmlBench {
        valid_per_second: rates.valid_per_second,
        invalid_per_second: rates.invalid_per_second,
        invalid_ratio: rates.invalid_ratio,
        generated_per_second: rates.generated_per_second,
        shrink_ms: u64::try_from(shrink.as_millis()).unwrap_or(u64::MAX),
        shrink_requests: run.requests,
        shrink_ratio: shrink.as_secs_f64()
            / (rates.per_valid * f64::from(run.requests.max(1))).max(1e-9),
        counter_example_bytes: run.counter_example.as_ref().map(|c| c.document_bytes),
        example_bytes: rates.example.len(),
        counter_example: run.counter_example.map(serde_json::to_value).transpose()?,
    })
}

/// Seed of the XML cases, as in the SDK-SPEC scenario.
const XML_SEED: u64 = 0x5eed;

fn xml_validator() -> anyhow::Result<&'static XmlValidator> {
    static V: std::sync::OnceLock<Option<XmlValidator>> = std::sync::OnceLock::new();
    V.get_or_init(|| XmlValidator::builtin("sdk/meddelande").ok())
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the builtin sdk/meddelande schema does not compile"))
}

fn sdk_example() -> anyhow::Result<Vec<u8>> {
    xml::XML_BUILTINS
        .iter()
        .find(|b| b.id == "sdk/meddelande")
        .and_then(|b| b.examples.first())
        .map(|f| f.bytes.to_vec())
        .ok_or_else(|| anyhow::anyhow!("no builtin sdk/meddelande example"))
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
