//! The IUT adapter: config, process control and readiness. Any IUT in any language is
//! certified through this one path; the embedded reference IUT takes it too.

pub(crate) mod allowlist;
pub(crate) mod config;
pub(crate) mod observe;
pub(crate) mod process;
pub(crate) mod setup;
pub(crate) mod sockets;
pub(crate) mod surface;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use config::{resolve_base_url, Placeholders};
pub(crate) use config::{ConfigSource, IutConfig, ReadyCheck};
use process::{IutProcess, StartSpec};

use crate::peers::{self, ClientSpec, Identity, Target};
use crate::pki::{self, Catalog, GenerateOptions, Pki};
pub(crate) use allowlist::{AllowlistControl, Reload};
pub(crate) use setup::{setup_error, SetupError};

/// The IUT as the steps see it, resolved for this run.
pub(crate) struct Iut {
    pub target: Target,
    pub protected_path: String,
    pub health_path: String,
    pub registered_orgs: Vec<String>,
    pub request_timeout: Duration,
    /// What a granted request looks like (`[api.granted]`).
    pub granted: config::GrantedSection,
    pub pki: Pki,
    /// Source-address filtering, if the config declares it.
    pub ip: Option<IpFilterContext>,
    /// Message types the IUT receives, schemas compiled and examples checked.
    pub messages: Vec<MessageType>,
    /// XML message types (`format = "xml"`, SDK-SPEC), XSDs compiled and examples checked.
    pub xml_messages: Vec<XmlMessageType>,
    /// Where accepted message ids can be read (GET → JSON array of strings).
    pub accepted_url: Option<String>,
    pub versions: Option<config::VersionsSection>,
    /// The declared resend policy, resolved.
    pub resend: Option<crate::shared::resend_policy::ResendPolicy>,
    /// Role `sender`: how to make the IUT send.
    pub sender: Option<SenderContext>,
    /// Role `router`, one context per lane (lane 1 first); empty without `[router]`.
    pub routers: Vec<RouterContext>,
    /// Role `client`: how to make the IUT call, and what it promises.
    pub client: Option<ClientContext>,
    pub receive: Option<config::ReceiveSection>,
    /// Role `server`: changes and iteration over a time window, paths expanded.
    pub iteration: Option<config::IterationSection>,
    pub undeliverable_url: Option<String>,
    pub audit_url: Option<String>,
    /// `[firewall]` (FMK-2.2-FW).
    pub firewall: Option<surface::FirewallContext>,
    /// `[inner]` (SDK-2.4-INNER).
    pub inner: Option<surface::InnerContext>,
    /// The started IUT, shared with steps that restart it.
    process: Option<Restarter>,
    crl_server: Option<tokio::task::JoinHandle<()>>,
    /// The OCSP responder at the PKI's `ocsp_base_url`, and what it was asked.
    pub(crate) ocsp: Option<pki::publish::OcspServer>,
    /// How the IUT declares it checks revocation (`[pki] revocation`).
    pub(crate) revocation: Vec<config::Revocation>,
    /// A generated PKI's private keys, outside the report folder; removed with the run.
    _private_pki: Option<tempfile::TempDir>,
}

/// A message type the IUT receives, ready for schema checks.
#[derive(Debug, Clone)]
pub(crate) struct MessageType {
    pub name: String,
    pub endpoint: String,
    pub schema: serde_json::Value,
    pub validator: Arc<crate::schema::Validator>,
    pub examples: Vec<serde_json::Value>,
    pub id_pointer: Option<String>,
    pub refused_statuses: Vec<u16>,
}

/// Compiles a message type's schema and checks its examples against it (exit 2 on error,
/// naming the file and the JSON pointer).
fn message_type(
    m: &config::MessageSection,
    config_dir: &Path,
    source: &ConfigSource,
) -> anyhow::Result<MessageType> {
    let key = format!("{}: message {:?}", source.name(), m.name);
    let (schema, validator, mut examples) = match m.schema.strip_prefix("builtin:") {
        Some(id) => {
            let b =
                crate::schema::catalogue::get(id).map_err(|e| anyhow!("{key}: schema: {e:#}"))?;
            (b.schema()?, b.validator()?, b.examples()?)
        }
        None => {
            let path = config_dir.join(&m.schema);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow!("{key}: schema {}: {e}", path.display()))?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow!("{key}: schema {}: not JSON: {e}", path.display()))?;
            let v = crate::schema::Validator::from_schema(&schema, &path.display().to_string())?;
            (schema, v, Vec::new())
        }
    };
    if !m.examples.is_empty() {
        examples.clear();
        for e in &m.examples {
            let path = config_dir.join(e);
            let text = std::fs::read_to_string(&path)
                .map_err(|err| anyhow!("{key}: example {}: {err}", path.display()))?;
            let v = serde_json::from_str(&text)
                .map_err(|err| anyhow!("{key}: example {}: not JSON: {err}", path.display()))?;
            examples.push((path.display().to_string(), v));
        }
    }
    if examples.is_empty() {
        bail!("{key}: no valid example (hint: examples = [\"example.json\"])");
    }
    validator
        .check_examples(&examples)
        .map_err(|e| anyhow!("{key}: {e:#}"))?;
    Ok(MessageType {
        name: m.name.clone(),
        endpoint: m.endpoint.clone(),
        schema,
        validator: Arc::new(validator),
        examples: examples.into_iter().map(|(_, v)| v).collect(),
        id_pointer: m.id_pointer.clone(),
        refused_statuses: m.refused_statuses.clone(),
    })
}

/// An XML message type the IUT receives (`format = "xml"`).
#[derive(Debug, Clone)]
pub(crate) struct XmlMessageType {
    pub name: String,
    pub endpoint: String,
    pub validator: Arc<crate::schema::xml::XmlValidator>,
    /// Valid examples as bytes; the first is the one the generator mutates.
    pub examples: Vec<Vec<u8>>,
    pub refused_statuses: Vec<u16>,
    pub receipt: Option<Receipts>,
    /// `signature = "enveloped"`: the IUT requires messages signed by the sending
    /// organisation; the harness signs every message of this type it sends.
    pub signature: Option<SignatureDecl>,
}

/// How the harness gets an XML message type's receipts.
#[derive(Debug, Clone)]
pub(crate) enum Receipts {
    /// In the HTTP answer.
    Answer,
    /// Sent back to the harness's inbox, within the timeout.
    Sent {
        inbox: Arc<crate::peers::receiver::SimulatedReceiver>,
        timeout: Duration,
    },
}

/// A declared XML signature (`[[message]] signature`, `signer`).
#[derive(Debug, Clone)]
pub(crate) struct SignatureDecl {
    /// The PKI identity that signs; `None`: the client identity the run uses.
    pub signer: Option<String>,
}

/// Compiles an XML message type's XSD (builtin, or a file whose imports resolve among the
/// `.xsd` files of its folder) and checks its examples (exit 2 on error).
fn xml_message_type(
    m: &config::MessageSection,
    config_dir: &Path,
    source: &ConfigSource,
) -> anyhow::Result<XmlMessageType> {
    use crate::schema::xml::XmlValidator;
    use crate::schema::MessageValidator;
    let key = format!("{}: message {:?}", source.name(), m.name);
    let (validator, mut examples) = match m.schema.strip_prefix("builtin:") {
        Some(id) => {
            let b = crate::schema::xml::get(id).map_err(|e| anyhow!("{key}: schema: {e:#}"))?;
            let v = XmlValidator::builtin(id).map_err(|e| anyhow!("{key}: {e:#}"))?;
            (v, b.examples.iter().map(|e| e.bytes.to_vec()).collect())
        }
        None => {
            let path = config_dir.join(&m.schema);
            let main = std::fs::read(&path)
                .map_err(|e| anyhow!("{key}: schema {}: {e}", path.display()))?;
            let mut others = Vec::new();
            if let Some(dir) = path.parent() {
                for entry in std::fs::read_dir(dir)
                    .map_err(|e| anyhow!("{key}: schema folder {}: {e}", dir.display()))?
                {
                    let p = entry?.path();
                    if p != path && p.extension().is_some_and(|x| x == "xsd") {
                        let bytes = std::fs::read(&p)
                            .map_err(|e| anyhow!("{key}: schema {}: {e}", p.display()))?;
                        others.push((p.display().to_string(), bytes));
                    }
                }
            }
            let v = XmlValidator::from_files((&path.display().to_string(), &main), &others)
                .map_err(|e| anyhow!("{key}: {e:#}"))?;
            (v, Vec::new())
        }
    };
    if !m.examples.is_empty() {
        examples.clear();
        for e in &m.examples {
            let path = config_dir.join(e);
            let bytes = std::fs::read(&path)
                .map_err(|err| anyhow!("{key}: example {}: {err}", path.display()))?;
            if let Err(v) = validator.validate_bytes(&bytes) {
                let lines: Vec<String> = v.iter().map(|v| format!("  {v}")).collect();
                bail!(
                    "{key}: example {} does not validate:\n{}",
                    path.display(),
                    lines.join("\n")
                );
            }
            examples.push(bytes);
        }
    }
    if examples.is_empty() {
        bail!("{key}: no valid example (hint: examples = [\"example.xml\"])");
    }
    Ok(XmlMessageType {
        name: m.name.clone(),
        endpoint: m.endpoint.clone(),
        validator: Arc::new(validator),
        examples,
        refused_statuses: m.refused_statuses.clone(),
        signature: m.signature.map(|_| SignatureDecl {
            signer: m.signer.clone(),
        }),
        // A sent receipt's inbox is started when the run prepares (`receipt_inbox`).
        receipt: (m.receipt == Some(config::ReceiptDelivery::Answer)).then_some(Receipts::Answer),
    })
}

/// The harness's inbox for receipts an IUT sends back: a simulated receiver on `listen`
/// (HTTPS as the PKI's `peer-receiver`, client certificates required), answering 200.
async fn receipt_inbox(
    pki: &Pki,
    listen: &str,
    key: &str,
    source: &ConfigSource,
    timeout: Duration,
) -> anyhow::Result<Receipts> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
        setup_error(format!(
            "{}: {key} {listen:?} is not host:port ({e}; hint: \"127.0.0.1:{{port:receipts}}\")",
            source.name()
        ))
    })?;
    let inbox =
        crate::peers::receiver::SimulatedReceiver::start(crate::peers::receiver::ReceiverSpec {
            pki: pki.clone(),
            cert: "peer-receiver".into(),
            id_pointer: None,
            validator: None,
            rules: Vec::new(),
            down_for: None,
            changed: None,
            bind: Some(addr),
        })
        .await
        .map_err(|e| {
            setup_error(format!(
                "{}: {key}: listening on {addr}: {e:#}",
                source.name()
            ))
        })?;
    Ok(Receipts::Sent {
        inbox: Arc::new(inbox),
        timeout,
    })
}

/// Role `sender`, expanded for this run.
#[derive(Debug, Clone)]
pub(crate) struct SenderContext {
    pub message: String,
    pub trigger: Trigger,
    pub receiver_path: String,
    pub client_cert: Option<String>,
    pub first_attempt_timeout: Duration,
    /// Where message files for command triggers are written.
    pub work_dir: PathBuf,
    /// XML message types the IUT also sends (`sender.xml_messages`).
    pub xml_messages: Vec<String>,
}

/// Role `client`, expanded for this run.
#[derive(Debug, Clone)]
pub(crate) struct ClientContext {
    pub trigger: Trigger,
    pub path: String,
    pub client_cert: Option<String>,
    pub request_rate: f64,
    pub retries: bool,
    pub min_retry_delay: Duration,
    pub changed_from_param: Option<String>,
    pub first_call_timeout: Duration,
    pub tolerance: Duration,
}

/// Role `router`, one lane of it, expanded for this run.
#[derive(Debug, Clone)]
pub(crate) struct RouterContext {
    /// Which copy of the router (from 1; `[router] lanes`).
    pub lane: u16,
    pub message: String,
    pub trigger: Trigger,
    pub client_cert: Option<String>,
    /// Priority order: the primary first.
    pub routes: Vec<Route>,
    pub failover_time: Duration,
    pub failback: config::Failback,
    pub delivery: config::Delivery,
    pub tolerance: Duration,
    pub first_delivery_timeout: Duration,
    /// Where message files for command triggers are written.
    pub work_dir: PathBuf,
}

/// One of the router's routes: where the IUT delivers, which the harness's fault-proxy
/// link `route-NAME` listens on.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub name: String,
    pub listen: std::net::SocketAddr,
}

impl Route {
    /// The logical fault-proxy link of this route.
    pub(crate) fn link(&self) -> String {
        format!("route-{}", self.name)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    Command { argv: Vec<String>, workdir: PathBuf },
    Url(String),
}

/// The IUT's process and how to start it again (a step kills it mid-retry to prove its
/// outbox durable).
#[derive(Clone)]
pub(crate) struct Restarter {
    process: Arc<tokio::sync::Mutex<Option<IutProcess>>>,
    spec: StartSpec,
    target: Target,
    /// The API address to probe when a scenario fails while the process still runs (`None`
    /// without `[api]`: nothing to probe).
    probe: Option<std::net::SocketAddr>,
    identity: Option<Identity>,
    ready_path: String,
    ready_timeout: Duration,
    /// `[iut.ready] check`: a TCP-only IUT (a TLS pass-through router) cannot answer HTTPS
    /// while its routes are down.
    ready_check: ReadyCheck,
    /// Times the IUT exited on its own during the run.
    exits: Arc<Mutex<Vec<Exit>>>,
    /// Held for writing while a crashed IUT is restarted: scenarios wait to start.
    gate: Arc<tokio::sync::RwLock<()>>,
}

/// At most this many restarts after the IUT exits on its own: one crash must not hide every
/// other verdict, and an IUT that keeps crashing is not retried for ever.
pub(crate) const MAX_RESTARTS: usize = 3;

/// How long an IUT that no longer accepts connections after a failed scenario is given to
/// exit before its refusal is taken as the IUT's answer.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The IUT exited on its own (not stopped by provsten), noticed at `found_at`.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub found_at: std::time::Instant,
    /// `exit status 1`, `signal 11 (SIGSEGV)`.
    pub status: String,
    pub last_output: Vec<String>,
    /// Whether it was started again (false once [`MAX_RESTARTS`] is used up or the restart
    /// failed, with the reason).
    pub restarted: Result<(), String>,
    /// An attached IUT (not started by provsten) that stopped answering, rather than a
    /// process seen to exit.
    pub attached: bool,
}

impl Exit {
    /// `exited (exit status 1)` or `stopped answering (TCP connection refused)`.
    pub(crate) fn what(&self) -> String {
        if self.attached {
            format!("stopped answering ({})", self.status)
        } else {
            format!("exited ({})", self.status)
        }
    }
}

/// Watches an IUT provsten attached to (did not start): after each scenario a TCP connect
/// to its API tells whether it still answers. Once it does not, the rest of the run is not
/// tested against it.
pub(crate) struct AttachedWatch {
    target: std::net::SocketAddr,
    exit: tokio::sync::Mutex<Option<Exit>>,
}

impl AttachedWatch {
    pub(crate) fn new(target: std::net::SocketAddr) -> Self {
        AttachedWatch {
            target,
            exit: tokio::sync::Mutex::new(None),
        }
    }

    /// The first time the IUT does not answer a TCP connect within 2 s, records it.
    pub(crate) async fn notice_exit(&self) -> Option<Exit> {
        let mut exit = self.exit.lock().await;
        if exit.is_some() {
            return None;
        }
        let probe = tokio::time::timeout(
            Duration::from_secs(2),
            peers::client::connect_tcp(self.target, None),
        )
        .await;
        let why = match probe {
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => format!("TCP connect to {}: {e}", self.target),
            Err(_) => format!("no TCP connection to {} within 2 s", self.target),
        };
        let found = Exit {
            found_at: std::time::Instant::now(),
            status: why,
            last_output: Vec::new(),
            restarted: Err("not restarted: provsten attached to it and cannot start it".into()),
            attached: true,
        };
        *exit = Some(found.clone());
        Some(found)
    }

    pub(crate) async fn exits(&self) -> Vec<Exit> {
        self.exit.lock().await.iter().cloned().collect()
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({s})"),
            Err(_) => format!("signal {sig}"),
        },
        _ => status.to_string(),
    }
}

impl std::fmt::Debug for Restarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Restarter({})", self.spec.program)
    }
}

impl Restarter {
    /// SIGKILL to the IUT's process group (a crash, not a clean stop), then starts it with
    /// the same command and waits until its API answers again.
    pub(crate) async fn kill_and_restart(&self) -> anyhow::Result<Duration> {
        let started = std::time::Instant::now();
        let mut guard = self.process.lock().await;
        if let Some(p) = guard.take() {
            p.kill_now().await;
        }
        *guard = Some(IutProcess::spawn(&self.spec)?);
        drop(guard);
        self.wait_ready().await?;
        Ok(started.elapsed())
    }

    /// Called after every scenario: if the IUT exited on its own, records it and starts it
    /// again (at most [`MAX_RESTARTS`] times, readiness awaited) while new scenarios wait.
    /// Returns the exit it noticed. After a failed scenario an IUT that still runs but no
    /// longer accepts connections is given [`EXIT_GRACE`] to exit: a server may close its
    /// listener well before its process ends (`openssl s_server -naccept`), and the
    /// scenario that met the closed port failed because the IUT was going away.
    pub(crate) async fn notice_exit(&self, failed: bool) -> Option<Exit> {
        let mut guard = self.process.lock().await;
        let p = guard.as_mut()?;
        let status = match p.exited() {
            Some(status) => status,
            None if failed && !self.accepts_connections().await => {
                p.exits_within(EXIT_GRACE).await?
            }
            None => return None,
        };
        let found_at = std::time::Instant::now();
        let last_output = p.last_lines(20);
        let restarts = self.exits.lock().map(|e| e.len()).unwrap_or(MAX_RESTARTS);
        let _gate = self.gate.write().await;
        let restarted = if restarts >= MAX_RESTARTS {
            guard.take();
            Err(format!(
                "not restarted: it had already been restarted {MAX_RESTARTS} times"
            ))
        } else {
            match IutProcess::spawn(&self.spec) {
                Ok(p) => {
                    *guard = Some(p);
                    drop(guard);
                    self.wait_ready()
                        .await
                        .map_err(|e| format!("restarted, but {e:#}"))
                }
                Err(e) => {
                    guard.take();
                    Err(format!("could not be restarted: {e:#}"))
                }
            }
        };
        let exit = Exit {
            found_at,
            status: describe_exit(status),
            last_output,
            restarted,
            attached: false,
        };
        if let Ok(mut exits) = self.exits.lock() {
            exits.push(exit.clone());
        }
        Some(exit)
    }

    /// Whether the IUT's API takes a TCP connection (true when there is none to probe).
    async fn accepts_connections(&self) -> bool {
        let Some(addr) = self.probe else { return true };
        tokio::time::timeout(
            Duration::from_secs(2),
            peers::client::connect_tcp(addr, None),
        )
        .await
        .is_ok_and(|c| c.is_ok())
    }

    /// Waits while a crashed IUT is being restarted (a scenario about to start).
    pub(crate) async fn wait_if_restarting(&self) {
        drop(self.gate.read().await);
    }

    /// The IUT's process group now (it changes when the IUT is restarted); `None` while
    /// it is not running.
    pub(crate) async fn process_group(&self) -> Option<i32> {
        self.process.lock().await.as_ref().and_then(|p| p.pgid())
    }

    /// The IUT's exits so far.
    pub(crate) fn exits(&self) -> Vec<Exit> {
        self.exits.lock().map(|e| e.clone()).unwrap_or_default()
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        loop {
            let ready = match self.ready_check {
                ReadyCheck::Tcp => peers::client::connect_tcp(self.target.addr, None)
                    .await
                    .is_ok(),
                ReadyCheck::Https => {
                    let spec = ClientSpec::new(self.identity.clone(), Duration::from_secs(2));
                    peers::request(&self.target, &spec, "GET", &self.ready_path)
                        .await
                        .is_ok_and(|ex| ex.status().is_some())
                }
            };
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let mut guard = self.process.lock().await;
                let out = guard
                    .as_mut()
                    .map(|p| indent(&p.last_lines(20)))
                    .unwrap_or_default();
                bail!(
                    "the restarted IUT was not ready within {}; its last output:\n{out}",
                    humantime::format_duration(self.ready_timeout)
                );
            }
            // Polling interval of the readiness check, bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn exited(&self) -> Option<(std::process::ExitStatus, Vec<String>)> {
        let mut guard = self.process.lock().await;
        let p = guard.as_mut()?;
        p.exited().map(|s| (s, p.last_lines(20)))
    }

    async fn last_lines(&self) -> Vec<String> {
        let guard = self.process.lock().await;
        guard.as_ref().map(|p| p.last_lines(20)).unwrap_or_default()
    }

    async fn stop(&self) {
        if let Some(p) = self.process.lock().await.take() {
            p.stop().await;
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct IpFilterContext {
    pub registered: Vec<ipnet::IpNet>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub ipv6_target: Option<Target>,
    pub dual_stack_target: Option<Target>,
    pub allowlist: Option<AllowlistControl>,
}

pub(crate) struct PrepareOptions {
    /// The binary `{provsten}` names; `None`: this process's own.
    pub provsten: Option<PathBuf>,
    pub out_dir: PathBuf,
    pub defects: Vec<String>,
    /// Certificates the selected steps name: each must be in the PKI's catalogue, checked
    /// before the IUT starts (a typo is a feature error, exit 2).
    pub certificate_uses: Vec<crate::runner::names::NameUse>,
}

impl Iut {
    /// Expands the config, generates the PKI if asked, publishes CRLs, starts the IUT and
    /// waits until it is ready.
    pub(crate) async fn prepare(
        cfg: &IutConfig,
        source: ConfigSource,
        opts: &PrepareOptions,
    ) -> anyhow::Result<Iut> {
        let config_dir = match &source {
            // `provsten.toml` alone has the empty path as its parent: the current folder.
            ConfigSource::File(p) => absolute(
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            ),
            ConfigSource::Embedded => absolute(Path::new(".")),
        };
        let provsten = match &opts.provsten {
            Some(p) => p.clone(),
            None => std::env::current_exe().context("locating the provsten binary")?,
        };
        let out = absolute(&opts.out_dir);
        let mut ph = Placeholders::new(provsten, config_dir.clone(), out.clone(), PathBuf::new());
        let pki_dir = config_dir.join(ph.expand(&cfg.pki.dir, "pki.dir", &source)?);
        ph.pki = pki_dir.clone();

        let (pki, private_pki) = load_pki(cfg, opts, &mut ph, &source, pki_dir)?;

        let api = cfg.api.clone().unwrap_or_else(config::ApiSection::absent);
        let base_url = ph.expand(&api.base_url, "api.base_url", &source)?;
        let addr = resolve_base_url(&base_url, &source).await?;
        let target = Target {
            addr,
            server_name: api.server_name.clone(),
        };

        let ip = match &cfg.ip_filter {
            None => None,
            Some(f) => {
                Some(ip_filter_context(f, &api.server_name, &mut ph, &source, &config_dir).await?)
            }
        };

        let firewall = match &cfg.firewall {
            None => None,
            Some(f) => {
                let registered = ip
                    .as_ref()
                    .map(|i| i.registered.clone())
                    .unwrap_or_default();
                Some(surface::firewall_context(f, &registered, &mut ph, &source)?)
            }
        };
        let inner = match &cfg.inner {
            None => None,
            Some(i) => Some(surface::inner_context(i, &api.server_name, &mut ph, &source).await?),
        };

        let mut messages = Vec::new();
        let mut xml_messages = Vec::new();
        for m in &cfg.messages {
            if m.format == config::MessageFormat::Xml {
                let mut t = xml_message_type(m, &config_dir, &source)
                    .map_err(|e| setup_error(format!("{e:#}")))?;
                if let Some(listen) = &m.receipt_listen {
                    let key = format!("message {:?} receipt_listen", m.name);
                    let listen = ph.expand(listen, &key, &source)?;
                    t.receipt = Some(
                        receipt_inbox(&pki, &listen, &key, &source, m.receipt_timeout.0).await?,
                    );
                }
                xml_messages.push(t);
                continue;
            }
            messages.push(
                message_type(m, &config_dir, &source).map_err(|e| setup_error(format!("{e:#}")))?,
            );
        }
        let accepted_url = match &cfg.observe.accepted_url {
            Some(u) => Some(ph.expand(u, "observe.accepted_url", &source)?),
            None => None,
        };

        let resend = match &cfg.resend {
            Some(r) => Some(r.resolve(&format!("{}: [resend]", source.name()))?),
            None => None,
        };
        let sender = match &cfg.sender {
            None => None,
            Some(s) => {
                let trigger = expand_trigger(&s.trigger, "sender", &mut ph, &source, &config_dir)?;
                Some(SenderContext {
                    message: s.message.clone(),
                    trigger,
                    receiver_path: s.receiver_path.clone(),
                    client_cert: s.client_cert.clone(),
                    first_attempt_timeout: s.first_attempt_timeout.0,
                    work_dir: out.join("messages"),
                    xml_messages: s.xml_messages.clone(),
                })
            }
        };
        let client = match &cfg.client {
            None => None,
            Some(c) => Some(ClientContext {
                trigger: expand_trigger(&c.trigger, "client", &mut ph, &source, &config_dir)?,
                path: c.path.clone(),
                client_cert: c.client_cert.clone(),
                request_rate: c.request_rate,
                retries: c.retries,
                min_retry_delay: c.min_retry_delay.0,
                changed_from_param: c.changed_from_param.clone(),
                first_call_timeout: c.first_call_timeout.0,
                tolerance: c.tolerance.0,
            }),
        };
        let mut routers = Vec::new();
        if let Some(r) = &cfg.router {
            for lane in 1..=r.lanes {
                routers.push(router_lane(r, lane, &mut ph, &source, &config_dir, &out)?);
            }
        }
        let observe_url = |ph: &mut Placeholders, u: &Option<String>, key: &str| {
            u.as_ref().map(|u| ph.expand(u, key, &source)).transpose()
        };
        let undeliverable_url = observe_url(
            &mut ph,
            &cfg.observe.undeliverable_url,
            "observe.undeliverable_url",
        )?;
        let audit_url = observe_url(&mut ph, &cfg.observe.audit_url, "observe.audit_url")?;
        let iteration = match &cfg.iteration {
            None => None,
            Some(it) => Some(config::IterationSection {
                create_path: ph.expand(&it.create_path, "iteration.create_path", &source)?,
                window_path: ph.expand(&it.window_path, "iteration.window_path", &source)?,
                ..it.clone()
            }),
        };

        let protected_path = ph.expand(&api.protected_path, "api.protected_path", &source)?;
        let start = start_spec(cfg, opts, &mut ph, &source, &config_dir)?;

        // Resolved: now start what the run needs, the IUT last.
        if matches!(source, ConfigSource::Embedded) {
            // The embedded reference keeps its outbox per run: a report folder reused for
            // another run must not resend the last run's messages.
            let outbox = out.join("outbox");
            if outbox.exists() {
                std::fs::remove_dir_all(&outbox)
                    .with_context(|| format!("clearing {}", outbox.display()))?;
            }
        }
        if let Some(p) = &resend {
            // The IUT may read the declared policy (the reference IUT does).
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let path = out.join("resend-policy.json");
            std::fs::write(&path, serde_json::to_vec_pretty(p)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let crl_server = publish_crls(&pki).await?;
        let ocsp = match pki::publish::OcspServer::start(&pki, cfg.pki.ocsp_signer).await {
            Ok(o) => o,
            // Only an IUT declared to ask the responder needs it; others keep the run a
            // PKI without CA keys (a report's public copy) always allowed.
            Err(e) if !cfg.pki.revocation.contains(&config::Revocation::Ocsp) => {
                eprintln!("provsten: warning: no OCSP responder this run: {e:#}");
                None
            }
            Err(e) => {
                if let Some(t) = &crl_server {
                    t.abort();
                }
                return Err(setup_error(format!("{e:#}")));
            }
        };
        let process = match start {
            None => None,
            Some(spec) => {
                let identity = match &cfg.iut.ready.client_cert {
                    Some(name) => Some(Identity::from_pki(&pki, name)?),
                    None => None,
                };
                let spawned = IutProcess::spawn(&spec)?;
                Some(Restarter {
                    process: Arc::new(tokio::sync::Mutex::new(Some(spawned))),
                    spec,
                    target: target.clone(),
                    probe: cfg.api.is_some().then_some(target.addr),
                    identity,
                    ready_path: cfg
                        .iut
                        .ready
                        .path
                        .clone()
                        .unwrap_or_else(|| api.health_path.clone()),
                    ready_timeout: cfg.iut.ready.timeout.0,
                    ready_check: cfg.iut.ready.check,
                    exits: Arc::default(),
                    gate: Arc::default(),
                })
            }
        };

        let mut iut = Iut {
            target,
            protected_path,
            health_path: api.health_path.clone(),
            registered_orgs: api.registered_orgs.clone(),
            request_timeout: api.request_timeout.0,
            granted: api.granted.clone(),
            pki,
            ip,
            messages,
            xml_messages,
            accepted_url,
            versions: cfg.versions.clone(),
            resend,
            sender,
            routers,
            client,
            receive: cfg.receive.clone(),
            iteration,
            undeliverable_url,
            audit_url,
            firewall,
            inner,
            process,
            crl_server,
            ocsp,
            revocation: cfg.pki.revocation.clone(),
            _private_pki: private_pki,
        };
        // Without [api] there is no readiness target (ApiSection::absent points nowhere):
        // say so rather than silently skip a declared [iut.ready].
        if cfg.api.is_some() {
            iut.wait_ready(cfg).await?;
        } else if cfg.iut.start.is_some() && cfg.iut.ready.check == ReadyCheck::Tcp {
            eprintln!("provsten: [iut.ready] check = \"tcp\" needs [api] base_url as its target; without [api] the IUT is not waited for");
        }
        Ok(iut)
    }

    async fn wait_ready(&mut self, cfg: &IutConfig) -> anyhow::Result<()> {
        let ready = &cfg.iut.ready;
        let deadline = tokio::time::Instant::now() + ready.timeout.0;
        let identity = match &ready.client_cert {
            Some(name) => Some(self.identity(name)?),
            None => None,
        };
        let path = ready
            .path
            .clone()
            .unwrap_or_else(|| self.health_path.clone());
        let mut last;
        loop {
            if let Some(p) = self.process.as_ref() {
                if let Some((status, _)) = p.exited().await {
                    // Give the output readers a moment to drain the pipes.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    bail!(SetupError(format!(
                        "the IUT exited ({status}) before it was ready; its last output:\n{}",
                        indent(&p.last_lines().await)
                    )));
                }
            }
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                self.probe_ready(ready.check, identity.clone(), &path),
            )
            .await;
            match attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => last = "readiness probe timed out after 2s".into(),
            }
            if tokio::time::Instant::now() >= deadline {
                let output = match self.process.as_ref() {
                    Some(p) => format!("; its last output:\n{}", indent(&p.last_lines().await)),
                    None => String::new(),
                };
                bail!(SetupError(format!(
                    "the IUT at {} was not ready within {} (iut.ready.timeout): {last}{output}",
                    self.target.addr,
                    humantime::format_duration(ready.timeout.0)
                )));
            }
            // Polling interval of the readiness check, bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn probe_ready(
        &self,
        check: ReadyCheck,
        identity: Option<Identity>,
        path: &str,
    ) -> Result<(), String> {
        match check {
            ReadyCheck::Tcp => peers::client::connect_tcp(self.target.addr, None)
                .await
                .map(|_| ())
                .map_err(|e| format!("TCP connect to {}: {e}", self.target.addr)),
            ReadyCheck::Https => {
                let with_cert = identity.is_some();
                let spec = ClientSpec::new(identity, Duration::from_secs(2));
                let ex = peers::request(&self.target, &spec, "GET", path)
                    .await
                    .map_err(|e| e.to_string())?;
                let ok = if with_cert {
                    ex.status().is_some()
                } else {
                    ex.tls_version.is_some()
                };
                if ok {
                    Ok(())
                } else {
                    Err(ex.describe())
                }
            }
        }
    }

    /// A catalogue certificate as a client identity.
    pub(crate) fn identity(&self, name: &str) -> anyhow::Result<Identity> {
        Identity::from_pki(&self.pki, name)
    }

    /// Restarts the IUT (kill, start, wait until ready), if provsten started it.
    pub(crate) fn restarter(&self) -> Option<Restarter> {
        self.process.clone()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(p) = self.process.take() {
            p.stop().await;
        }
        if let Some(t) = self.crl_server.take() {
            t.abort();
        }
        if let Some(o) = self.ocsp.take() {
            o.stop().await;
        }
    }
}

impl Drop for Iut {
    fn drop(&mut self) {
        if let Some(t) = self.crl_server.take() {
            t.abort();
        }
    }
}

/// Serves the PKI's CRLs at its distribution point when that is a loopback address this
/// process can bind; otherwise the IUT must use the CRL files.
/// A port pinned by the PKI (its certificates name it) that is taken is exit 2: an IUT
/// that fetches CRLs would get another run's, or none.
async fn publish_crls(pki: &Pki) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Ok((addr, prefix)) = pki::publish::crl_listen_addr(&pki.manifest.crl_base_url) else {
        return Ok(None);
    };
    if !addr.ip().is_loopback() {
        return Ok(None);
    }
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(pki::publish::serve(l, pki.dir.clone(), prefix))),
        Err(e) => Err(setup_error(format!(
            "cannot publish the CRLs at {}, where the PKI in {} says they are ({e}): is another run using this PKI? (hint: wait for it, or give this run its own PKI: `provsten pki init --out DIR` picks a free port)",
            pki.manifest.crl_base_url,
            pki.dir.display()
        ))),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn indent(lines: &[String]) -> String {
    if lines.is_empty() {
        return "    (no output)".into();
    }
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `[sender]` or `[router]` trigger with the run's placeholders filled in.
fn expand_trigger(
    t: &config::TriggerSection,
    role: &str,
    ph: &mut Placeholders,
    source: &ConfigSource,
    config_dir: &Path,
) -> anyhow::Result<Trigger> {
    match (&t.command, &t.url) {
        (Some(argv), _) => {
            let mut expanded = Vec::new();
            for (i, a) in argv.iter().enumerate() {
                expanded.push(ph.expand(a, &format!("{role}.trigger.command[{i}]"), source)?);
            }
            Ok(Trigger::Command {
                argv: expanded,
                workdir: config_dir.to_path_buf(),
            })
        }
        (None, Some(u)) => Ok(Trigger::Url(ph.expand(
            u,
            &format!("{role}.trigger.url"),
            source,
        )?)),
        (None, None) => bail!(SetupError(format!(
            "{}: {role}.trigger needs `command` or `url`",
            source.name()
        ))),
    }
}

/// Loads the IUT's PKI, or generates it, and checks it: not expiring during the run, and
/// holding every certificate a user's own features name.
///
/// A generated PKI is made in a private folder (0700, removed after the run) that
/// `{pki}` names; `pki.dir` (the report folder, for the embedded config) gets only its
/// public half: certificates, chains, CRLs, the trust bundle, the catalogue. CI uploads
/// report folders: no private key may land there.
fn load_pki(
    cfg: &IutConfig,
    opts: &PrepareOptions,
    ph: &mut Placeholders,
    source: &ConfigSource,
    mut pki_dir: PathBuf,
) -> anyhow::Result<(Pki, Option<tempfile::TempDir>)> {
    let mut private_pki = None;
    if cfg.pki.generate {
        let private = generate_private_pki(&cfg.pki, ph, source, &pki_dir)?;
        pki_dir = private.path().to_path_buf();
        ph.pki = pki_dir.clone();
        private_pki = Some(private);
    }
    let pki = Pki::load(&pki_dir)?;
    check_expiry(&pki, &pki_dir)?;
    let names: Vec<&str> = pki
        .manifest
        .certificates
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    crate::runner::names::check_names(
        &opts.certificate_uses,
        crate::runner::names::NameKind::Certificate,
        &names,
        "certificate (the PKI catalogue)",
    )?;
    Ok((pki, private_pki))
}

/// The command line, environment and folder that start the IUT (`[iut.start]`), with
/// placeholders expanded and `{defects}` replaced by `--defect NAME` pairs; `None` for an
/// IUT that runs on its own (which `--defect` cannot apply to).
fn start_spec(
    cfg: &IutConfig,
    opts: &PrepareOptions,
    ph: &mut Placeholders,
    source: &ConfigSource,
    config_dir: &Path,
) -> anyhow::Result<Option<StartSpec>> {
    let Some(start) = &cfg.iut.start else {
        if !opts.defects.is_empty() {
            bail!(SetupError(
                "--defect applies only to the reference IUT, which provsten starts itself".into()
            ));
        }
        return Ok(None);
    };
    let mut argv = Vec::new();
    let mut saw_defects = false;
    for (i, arg) in start.command.iter().enumerate() {
        if arg == "{defects}" {
            saw_defects = true;
            for d in &opts.defects {
                argv.push("--defect".to_string());
                argv.push(d.clone());
            }
        } else {
            argv.push(ph.expand(arg, &format!("iut.start.command[{i}]"), source)?);
        }
    }
    if !opts.defects.is_empty() && !saw_defects {
        bail!(SetupError(format!(
            "--defect applies only to the reference IUT ({}: iut.start.command has no \"{{defects}}\" argument)",
            source.name()
        )));
    }
    let mut env = Vec::new();
    for (k, v) in &start.env {
        env.push((
            k.clone(),
            ph.expand(v, &format!("iut.start.env.{k}"), source)?,
        ));
    }
    let workdir = match &start.workdir {
        Some(w) => config_dir.join(ph.expand(w, "iut.start.workdir", source)?),
        None => config_dir.to_path_buf(),
    };
    if argv.is_empty() {
        bail!(SetupError(format!(
            "{}: iut.start.command has no program before \"{{defects}}\" (hint: command = [\"./my-server\", \"{{defects}}\"])",
            source.name()
        )));
    }
    Ok(Some(StartSpec {
        program: argv.remove(0),
        args: argv,
        env,
        workdir: Some(workdir),
        stop_timeout: start.stop_timeout.0,
    }))
}

/// A fresh PKI from the shipped catalogue, in a private folder (0700, removed when the
/// returned handle drops); only its public half is copied to `public_dir`.
fn generate_private_pki(
    section: &config::PkiSection,
    ph: &mut Placeholders,
    source: &ConfigSource,
    public_dir: &Path,
) -> anyhow::Result<tempfile::TempDir> {
    let crl_base_url = match &section.crl_base_url {
        Some(u) => ph.expand(u, "pki.crl_base_url", source)?,
        None => pki::free_crl_base_url(),
    };
    // An IUT declared to check OCSP gets a responder even when the config names no URL.
    let ocsp_base_url = match &section.ocsp_base_url {
        Some(u) => Some(ph.expand(u, "pki.ocsp_base_url", source)?),
        None if section.revocation.contains(&config::Revocation::Ocsp) => {
            Some(pki::free_ocsp_base_url())
        }
        None => None,
    };
    let private = tempfile::Builder::new()
        .prefix("provsten-pki-")
        .tempdir()
        .context("creating a private folder for the run's PKI")?;
    let catalog = Catalog::parse(pki::catalog::DEFAULT_CATALOG, "certs/catalog.toml")?;
    let crl_lifetime = section
        .crl_lifetime
        .as_ref()
        .map_or(pki::DEFAULT_CRL_LIFETIME, |d| d.0);
    let opts = GenerateOptions {
        crl_base_url,
        ocsp_base_url,
        crl_lifetime,
    };
    pki::generate(&catalog, private.path(), &opts)
        .with_context(|| format!("generating the PKI into {}", private.path().display()))?;
    pki::publish::copy_public(private.path(), public_dir)?;
    Ok(private)
}

/// A PKI that has run out is a setup error (an IUT using it refuses valid clients, and
/// that would be blamed on the IUT); one running out within 14 days is a warning.
fn check_expiry(pki: &Pki, pki_dir: &Path) -> anyhow::Result<()> {
    let expiry = pki.expiry(time::OffsetDateTime::now_utc(), time::Duration::days(14));
    // Only CRLs ran out: re-signing them keeps every key and certificate the IUT has.
    let fix = |items: &[String]| {
        if items.iter().all(|e| e.starts_with("the CRL")) {
            format!(
                "re-issue its CRLs with `provsten pki refresh --dir {}` and reload the IUT",
                pki_dir.display()
            )
        } else {
            format!(
                "regenerate it with `provsten pki init --out {}` and give the IUT the new files",
                pki_dir.display()
            )
        }
    };
    if !expiry.expired.is_empty() {
        return Err(setup_error(format!(
            "the PKI in {} has run out: {} — an IUT using it refuses valid clients, which would be blamed on the IUT (hint: {})",
            pki_dir.display(),
            expiry.expired.join("; "),
            fix(&expiry.expired)
        )));
    }
    for e in &expiry.expiring {
        eprintln!(
            "provsten: warning: in the PKI {}: {e} ({} before then)",
            pki_dir.display(),
            fix(std::slice::from_ref(e))
        );
    }
    Ok(())
}

/// `[ip_filter]` resolved: the registered ranges (written to the IUT's allowlist file, if
/// it has one), the IPv6 and dual-stack targets, and how the list is reloaded.
async fn ip_filter_context(
    f: &config::IpFilterSection,
    server_name: &str,
    ph: &mut Placeholders,
    source: &ConfigSource,
    config_dir: &Path,
) -> anyhow::Result<IpFilterContext> {
    let nets = |list: &[String]| -> anyhow::Result<Vec<ipnet::IpNet>> {
        list.iter()
            .map(|r| crate::network::addr::parse_net(r).map_err(|e| anyhow!(e)))
            .collect()
    };
    let mut url_target = |url: &Option<String>, key: &str| -> anyhow::Result<Option<String>> {
        url.as_ref().map(|u| ph.expand(u, key, source)).transpose()
    };
    let v6 = url_target(&f.ipv6_base_url, "ip_filter.ipv6_base_url")?;
    let ds = url_target(&f.dual_stack_base_url, "ip_filter.dual_stack_base_url")?;
    let to_target = |addr| Target {
        addr,
        server_name: server_name.to_string(),
    };
    let ipv6_target = match v6 {
        Some(u) => Some(to_target(resolve_base_url(&u, source).await?)),
        None => None,
    };
    let dual_stack_target = match ds {
        Some(u) => Some(to_target(resolve_base_url(&u, source).await?)),
        None => None,
    };
    let allowlist = match &f.allowlist_file {
        None => None,
        Some(file) => {
            let file = config_dir.join(ph.expand(file, "ip_filter.allowlist_file", source)?);
            let reload = match &f.reload {
                None => None,
                Some(r) => match (&r.command, &r.url) {
                    (Some(argv), _) => {
                        let mut expanded = Vec::new();
                        for (i, a) in argv.iter().enumerate() {
                            expanded.push(ph.expand(
                                a,
                                &format!("ip_filter.reload.command[{i}]"),
                                source,
                            )?);
                        }
                        Some(Reload::Command {
                            argv: expanded,
                            workdir: config_dir.to_path_buf(),
                        })
                    }
                    (None, Some(u)) => {
                        Some(Reload::Url(ph.expand(u, "ip_filter.reload.url", source)?))
                    }
                    (None, None) => None,
                },
            };
            Some(AllowlistControl {
                file,
                reload,
                timeout: f.reload_timeout.0,
            })
        }
    };
    let registered = nets(&f.registered_ranges)?;
    if let Some(a) = &allowlist {
        a.write(&registered)?;
    }
    Ok(IpFilterContext {
        registered,
        trusted_proxies: nets(&f.trusted_proxies)?,
        ipv6_target,
        dual_stack_target,
        allowlist,
    })
}

/// Router lane `lane` of `[router]`: `{lane}` filled in, then the run's placeholders.
fn router_lane(
    r: &config::RouterSection,
    lane: u16,
    ph: &mut Placeholders,
    source: &ConfigSource,
    config_dir: &Path,
    out: &Path,
) -> anyhow::Result<RouterContext> {
    let n = lane.to_string();
    let fill = |t: &str| t.replace("{lane}", &n);
    let trigger = config::TriggerSection {
        command: r
            .trigger
            .command
            .as_ref()
            .map(|argv| argv.iter().map(|a| fill(a)).collect()),
        url: r.trigger.url.as_deref().map(fill),
    };
    let trigger = expand_trigger(&trigger, "router", ph, source, config_dir)?;
    let mut routes = Vec::new();
    for (i, route) in r.routes.iter().enumerate() {
        let key = format!("router.routes[{i}].listen");
        let listen = ph.expand(&fill(&route.listen), &key, source)?;
        let listen = listen.parse().map_err(|e| {
            SetupError(format!(
                "{}: {key} {listen:?} is not host:port ({e}; hint: \"127.0.0.1:{{port:route-{}}}\")",
                source.name(),
                route.name
            ))
        })?;
        routes.push(Route {
            name: route.name.clone(),
            listen,
        });
    }
    Ok(RouterContext {
        lane,
        message: r.message.clone(),
        trigger,
        client_cert: r.client_cert.clone(),
        routes,
        failover_time: r.failover_time.0,
        failback: r.failback,
        delivery: r.delivery,
        tolerance: r.tolerance.0,
        first_delivery_timeout: r.first_delivery_timeout.0,
        work_dir: out.join("messages"),
    })
}
