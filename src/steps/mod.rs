//! The Gherkin step library, one file per feature area, around one [`ProvstenWorld`] per
//! scenario. Steps only observe the IUT through simulated peers and probes; every step
//! records what it saw as evidence, and failing steps say what was expected and observed.

/// Ends a step with the IUT's failure: the scenario is `failed`, with this message (record
/// the evidence first). Any other error a step returns, and any panic, is a harness error:
/// the scenario is `error`, never counted against the IUT.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::steps::iut_failure(format!($($arg)*)))
    };
}

/// The IUT's failure as an error value, for `ok_or_else` and `map_err` (see [`fail!`]).
macro_rules! failure {
    ($($arg:tt)*) => {
        $crate::steps::iut_failure(format!($($arg)*))
    };
}

pub(crate) mod client;
pub(crate) mod exercise;
pub(crate) mod fallback;
pub(crate) mod firewall;
pub(crate) mod inner;
pub(crate) mod ip_filter;
pub(crate) mod iteration;
pub(crate) mod mtls;
pub(crate) mod network;
pub(crate) mod receipt;
pub(crate) mod resend;
pub(crate) mod schema;
pub(crate) mod tls;
pub(crate) mod xml;
pub(crate) mod xml_attack;
pub(crate) mod xml_generated;
pub(crate) mod xml_sent;
pub(crate) mod xml_signature;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::iut::IpFilterContext;
use crate::network::proxy_protocol;
use crate::peers::{Exchange, Target, TlsVersions};
use crate::pki::Pki;
use crate::report::model::Evidence;

/// A step that cannot apply to this IUT fails with this prefix; the runner reports the
/// scenario `not-applicable` with the rest of the message as the reason.
pub(crate) const NOT_APPLICABLE: &str = "not applicable: ";

/// A step that saw the IUT do something wrong fails with this prefix ([`fail!`],
/// [`iut_failure`]); the runner reports the scenario `failed` with the rest of the message.
pub(crate) const IUT_FAILED: &str = "the IUT failed: ";

/// The error for a step that saw the IUT do something wrong (see [`fail!`]).
pub(crate) fn iut_failure(message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{IUT_FAILED}{message}")
}

/// Which of the IUT's listeners a client connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Api,
    Ipv6,
    DualStack,
}

/// What the steps know of the IUT for this run.
#[derive(Debug)]
pub(crate) struct RunContext {
    pub target: Target,
    pub pki: Pki,
    pub protected_path: String,
    pub health_path: String,
    pub registered_orgs: Vec<String>,
    pub request_timeout: Duration,
    /// What a granted request looks like (`[api.granted]`).
    pub granted: crate::iut::config::GrantedSection,
    pub ip: Option<IpFilterContext>,
    /// The flaky network: embedded fault proxy or an external Toxiproxy.
    pub faults: Arc<dyn crate::network::backend::FaultBackend>,
    /// Extra directories of fault timelines (`--scenarios`).
    pub timeline_dirs: Vec<std::path::PathBuf>,
    pub messages: Vec<crate::iut::MessageType>,
    pub xml_messages: Vec<crate::iut::XmlMessageType>,
    pub accepted_url: Option<String>,
    pub versions: Option<crate::iut::config::VersionsSection>,
    pub resend: Option<crate::shared::resend_policy::ResendPolicy>,
    pub sender: Option<crate::iut::SenderContext>,
    /// Role `client`: how to make the IUT call, and what it promises.
    pub client: Option<crate::iut::ClientContext>,
    /// Role `client` scenarios take turns: an IUT has one rate limiter and one idea of its
    /// last read, so two at once would judge each other's calls.
    pub client_turn: Arc<tokio::sync::Mutex<()>>,
    /// Role `router`: its routes and promises, one per lane; empty without `[router]`.
    pub routers: Vec<crate::iut::RouterContext>,
    /// The router lanes free for a scenario.
    pub router_lanes: Arc<fallback::LanePool>,
    /// Exercise mode: progress lines on the console while an exercise runs.
    pub progress: bool,
    pub receive: Option<crate::iut::config::ReceiveSection>,
    /// Role `server`: changes and iteration over a time window (FMK-2.6.1-NOTIFY).
    pub iteration: Option<crate::iut::config::IterationSection>,
    pub undeliverable_url: Option<String>,
    pub audit_url: Option<String>,
    /// Kills and restarts the IUT, when provsten started it.
    pub restarter: Option<crate::iut::Restarter>,
    /// How the IUT declares it checks revocation (`[pki] revocation`).
    pub revocation: Vec<crate::iut::config::Revocation>,
    /// The simulated CA's OCSP responder during the run, and what it was asked.
    pub ocsp: Option<Arc<crate::pki::ocsp::Responder>>,
    /// `[firewall]`: the ports the IUT may expose (FMK-2.2-FW).
    pub firewall: Option<crate::iut::surface::FirewallContext>,
    /// `[inner]`: the inner endpoint behind the access point (SDK-2.4-INNER).
    pub inner: Option<crate::iut::surface::InnerContext>,
}

impl std::fmt::Debug for dyn crate::network::backend::FaultBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A check of what a step (its text given) needs of the IUT config: `Err(reason)` when it
/// is missing.
pub(crate) type Need = fn(&RunContext, &str) -> Result<(), String>;

/// What steps need of the IUT config, by a phrase of their text. The runner checks every
/// step of a scenario against this table before the scenario runs, so whether a scenario
/// applies never depends on how far its steps got: a scenario whose third step needs an
/// `[ip_filter]` reload is `not-applicable` without one, not failed by its first steps.
/// (The steps check again when they run.)
pub(crate) const NEEDS: &[(&str, Need)] = &[
    ("the client connects from", ip_filter::need_loopback_ranges),
    (
        "header naming a registered address",
        ip_filter::need_loopback_ranges,
    ),
    ("the client connects over IPv6", ip_filter::need_ipv6),
    ("the IUT's dual-stack listener", ip_filter::need_dual_stack),
    ("the IUT's registered ranges", ip_filter::need_list_change),
    ("the data of organisation \"", mtls::need_registered_org),
    ("the certificate \"", mtls::need_certificate),
    ("the IUT checks revocation by OCSP", mtls::need_ocsp),
    ("the IUT's listening ports", firewall::need_ports),
    ("the inner endpoint", inner::need_inner),
    ("the receipt is ", receipt::need_receipts),
];

/// Why a scenario with these steps cannot apply to this IUT, if it cannot.
pub(crate) fn unmet_need<'a>(
    ctx: &RunContext,
    steps: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    steps.into_iter().find_map(|text| {
        NEEDS
            .iter()
            .filter(|(phrase, _)| text.contains(phrase))
            .find_map(|(_, need)| need(ctx, text).err())
    })
}

tokio::task_local! {
    /// The run's context, for the worlds cucumber builds (it gives `World::new` no
    /// arguments). Task-local, not global: each run has its own, so two runs fit in one
    /// process.
    static CONTEXT: Arc<RunContext>;
}
static NEXT_WORLD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runs `f` (the cucumber run) with `ctx` as the context its scenarios' worlds get.
/// cucumber polls every scenario inside this one task, so they all see it.
pub(crate) async fn with_context<F: std::future::Future>(ctx: Arc<RunContext>, f: F) -> F::Output {
    CONTEXT.scope(ctx, f).await
}

/// One scenario's state: the client it plays, what it last observed, and the evidence.
#[derive(Debug, cucumber::World)]
#[world(init = Self::new)]
pub(crate) struct ProvstenWorld {
    ctx: Option<Arc<RunContext>>,
    /// Catalogue name of the client certificate; `None` presents none.
    pub client_cert: Option<String>,
    pub versions: TlsVersions,
    /// Source addresses to connect from; empty: the machine's default.
    pub sources: Vec<IpAddr>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// A PROXY protocol header sent before TLS, naming `.1` as the client.
    pub proxy_header: Option<(proxy_protocol::Version, IpAddr)>,
    pub via: Via,
    /// The exchanges of the last `When` step, one per source address.
    pub exchanges: Vec<Exchange>,
    /// A scenario changed the IUT's registered ranges; they are restored after it.
    pub allowlist_changed: bool,
    /// Unique per world, so concurrent scenarios' fault links never share a name.
    pub scenario_id: u64,
    /// Fault-proxy links this scenario created (removed after it).
    pub links: Vec<String>,
    /// Toxics this scenario added: (link, toxic name).
    pub toxics: Vec<(String, String)>,
    pub toxic_seq: u32,
    /// Where the scenario's `iut-api` link listens; requests go there when set.
    pub api_link: Option<std::net::SocketAddr>,
    /// A shorter request deadline while a step expects silence.
    pub deadline: Option<Duration>,
    /// The message type chosen for schema steps.
    pub message: Option<String>,
    /// Ids planted in invalid messages just sent.
    pub planted_ids: Vec<String>,
    /// A property run's shrunk counter-example, if the IUT accepted an invalid message.
    pub counter_example: Option<serde_json::Value>,
    pub probe: Option<serde_json::Value>,
    pub probe_accepted: Option<bool>,
    pub probe_refused: Option<bool>,
    /// Role `sender`: the simulated receiver's program, its run, and what was sent.
    pub resend: resend::ResendState,
    /// Role `server`: the changes this scenario made (FMK-2.6.1-NOTIFY).
    pub iteration: iteration::IterationState,
    /// Role `router`: its routes, what was sent, and the faults applied.
    pub fallback: fallback::FallbackState,
    /// An outage exercise's figures (CONT-EXERCISE).
    pub exercise: exercise::ExerciseState,
    /// Role `client`: the simulated API server and what the IUT was asked to do.
    pub client_role: client::ClientState,
    /// XML attacks (SDK-SPEC): the canary and what the attack sent.
    pub xml_attack: xml_attack::AttackState,
    /// The last XML message sent and the receipt it calls for (SDK-SPEC).
    pub sent_xml: Option<xml::SentXml>,
    /// Observations as data, copied into the report.
    pub evidence: Vec<Evidence>,
    /// How many OCSP requests the responder had answered when the scenario began.
    pub ocsp_mark: usize,
}

impl ProvstenWorld {
    fn new() -> Self {
        ProvstenWorld {
            ctx: CONTEXT.try_with(Arc::clone).ok(),
            client_cert: None,
            versions: TlsVersions::Any,
            sources: Vec::new(),
            headers: Vec::new(),
            proxy_header: None,
            via: Via::Api,
            exchanges: Vec::new(),
            allowlist_changed: false,
            scenario_id: NEXT_WORLD.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            links: Vec::new(),
            toxics: Vec::new(),
            toxic_seq: 0,
            api_link: None,
            deadline: None,
            message: None,
            planted_ids: Vec::new(),
            counter_example: None,
            probe: None,
            probe_accepted: None,
            probe_refused: None,
            resend: Default::default(),
            iteration: Default::default(),
            fallback: Default::default(),
            exercise: Default::default(),
            client_role: Default::default(),
            xml_attack: Default::default(),
            sent_xml: None,
            evidence: Vec::new(),
            ocsp_mark: 0,
        }
    }

    pub(crate) fn ctx(&self) -> anyhow::Result<Arc<RunContext>> {
        self.ctx
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no IUT context: steps run only inside `provsten run`"))
    }

    /// Adds an observation: a chart, or (from `json!`) any object of named facts.
    pub(crate) fn record(&mut self, v: impl Into<Evidence>) {
        self.evidence.push(v.into());
    }

    /// The exchanges of the last request step (at least one).
    pub(crate) fn exchanges(&self) -> anyhow::Result<Vec<Exchange>> {
        if self.exchanges.is_empty() {
            anyhow::bail!("no request was made before this step (hint: add a `When the client requests …` step)");
        }
        Ok(self.exchanges.clone())
    }

    pub(crate) fn not_applicable(reason: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{NOT_APPLICABLE}{reason}")
    }

    pub(crate) fn ip(&self) -> anyhow::Result<IpFilterContext> {
        self.ctx()?
            .ip
            .clone()
            .ok_or_else(|| Self::not_applicable("the IUT config declares no [ip_filter]"))
    }

    /// Puts the IUT's registered ranges back if a step changed them (runs after every
    /// scenario, failed ones included).
    pub(crate) async fn cleanup(&mut self) {
        self.remove_links().await;
        // Route receivers stop and the next router scenario gets its turn.
        drop(std::mem::take(&mut self.fallback));
        // The simulated API server stops and the next client scenario gets its turn.
        drop(std::mem::take(&mut self.client_role));
        if !self.allowlist_changed {
            return;
        }
        if let Ok(ip) = self.ip() {
            if let Some(a) = &ip.allowlist {
                if let Err(e) = a.apply(&ip.registered).await {
                    eprintln!(
                        "provsten: warning: restoring the IUT's registered ranges failed: {e:#}"
                    );
                }
            }
        }
        self.allowlist_changed = false;
    }
}

/// The step vocabulary for `provsten steps`: keyword, pattern, example. Tests check both
/// ways — every example matches exactly one step definition, and every step definition
/// (cucumber's inventory) has an example here — so this list cannot drift.
pub(crate) const VOCABULARY: &[(&str, &str, &str)] = &[
    (
        "Given",
        "a client presenting the certificate \"NAME\"",
        "Given a client presenting the certificate \"client-expired\"",
    ),
    (
        "Given",
        "the IUT checks revocation by OCSP",
        "Given the IUT checks revocation by OCSP",
    ),
    (
        "Then",
        "the request is refused without protected data, and the evidence shows what the OCSP responder was asked",
        "Then the request is refused without protected data, and the evidence shows what the OCSP responder was asked",
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
    ("Given", "the client connects from a registered address", "Given the client connects from a registered address"),
    ("Given", "the client connects from an|a second unregistered address", "Given the client connects from an unregistered address"),
    ("Given", "the client connects from the first|last address of each registered range", "Given the client connects from the last address of each registered range"),
    ("Given", "the client connects from the address just below|above each registered range", "Given the client connects from the address just above each registered range"),
    ("Given", "the client sends a forged X-Forwarded-For|X-Real-IP|Forwarded header naming a registered address", "Given the client sends a forged X-Forwarded-For header naming a registered address"),
    ("Given", "the client sends a PROXY protocol v1|v2 header naming a registered address", "Given the client sends a PROXY protocol v2 header naming a registered address"),
    ("Given", "the client connects over IPv6", "Given the client connects over IPv6"),
    ("Given", "the client connects to the IUT's dual-stack listener", "Given the client connects to the IUT's dual-stack listener"),
    ("Given", "the link \"iut-api\" adds N ms latency", "Given the link \"iut-api\" adds 300 ms latency"),
    ("Given", "the link \"iut-api\" is limited to N KB/s", "Given the link \"iut-api\" is limited to 32 KB/s"),
    ("Given", "the link \"iut-api\" slices the client's writes into N-byte pieces M ms apart", "Given the link \"iut-api\" slices the client's writes into 8-byte pieces 20 ms apart"),
    ("Given", "the link \"iut-api\" black-holes traffic", "Given the link \"iut-api\" black-holes traffic"),
    ("Given", "the link \"iut-api\" resets connections after N ms", "Given the link \"iut-api\" resets connections after 0 ms"),
    ("Given", "the link \"iut-api\" is down", "Given the link \"iut-api\" is down"),
    ("When", "the link \"iut-api\" is restored", "When the link \"iut-api\" is restored"),
    ("When", "the fault timeline \"NAME\" runs while the client requests its own organisation's data every N ms", "When the fault timeline \"latency-spike\" runs while the client requests its own organisation's data every 250 ms"),
    ("Then", "the client gets no answer", "Then the client gets no answer"),
    ("When", "the client's address is added to the IUT's registered ranges", "When the client's address is added to the IUT's registered ranges"),
    ("When", "the client's address is removed from the IUT's registered ranges", "When the client's address is removed from the IUT's registered ranges"),
    ("Given", "a simulated receiver that answers N to every attempt but the last the policy allows", "Given a simulated receiver that answers 503 to every attempt but the last the policy allows"),
    ("Given", "a simulated receiver that answers a permanent error to every attempt", "Given a simulated receiver that answers a permanent error to every attempt"),
    ("Given", "a simulated receiver that answers N to every attempt", "Given a simulated receiver that answers 503 to every attempt"),
    ("Given", "a simulated receiver that answers N to every attempt during the first N ms", "Given a simulated receiver that answers 503 to every attempt during the first 1500 ms"),
    ("Given", "a simulated receiver that answers N to the first message's first N attempts", "Given a simulated receiver that answers 503 to the first message's first 2 attempts"),
    ("Given", "a simulated receiver that answers N with Retry-After N seconds once", "Given a simulated receiver that answers 429 with Retry-After 2 seconds once"),
    ("Given", "a simulated receiver that answers N with a Retry-After date N seconds ahead once", "Given a simulated receiver that answers 503 with a Retry-After date 3 seconds ahead once"),
    ("Given", "a simulated receiver that drops the acknowledgement once", "Given a simulated receiver that drops the acknowledgement once"),
    ("Given", "a simulated receiver that resets the connection once", "Given a simulated receiver that resets the connection once"),
    ("Given", "a simulated receiver that hangs past the delivery timeout once", "Given a simulated receiver that hangs past the delivery timeout once"),
    ("Given", "a simulated receiver that presents the certificate \"NAME\" once", "Given a simulated receiver that presents the certificate \"server-expired\" once"),
    ("Given", "a simulated receiver that is down for the first attempt", "Given a simulated receiver that is down for the first attempt"),
    ("Given", "a simulated receiver that answers 200", "Given a simulated receiver that answers 200"),
    ("When", "the IUT sends a message to the simulated receiver", "When the IUT sends a message to the simulated receiver"),
    ("When", "the IUT sends N messages to the simulated receiver", "When the IUT sends 10 messages to the simulated receiver"),
    ("When", "the IUT sends N messages about the same entity to the simulated receiver", "When the IUT sends 3 messages about the same entity to the simulated receiver"),
    ("When", "the IUT is killed and restarted after its first attempt", "When the IUT is killed and restarted after its first attempt"),
    ("Then", "the receiver gets every attempt the policy allows", "Then the receiver gets every attempt the policy allows"),
    ("Then", "the receiver gets exactly one attempt", "Then the receiver gets exactly one attempt"),
    ("Then", "the intervals between attempts follow the declared policy", "Then the intervals between attempts follow the declared policy"),
    ("Then", "every attempt carries the same message id and body", "Then every attempt carries the same message id and body"),
    ("Then", "the message is accepted exactly once", "Then the message is accepted exactly once"),
    ("Then", "every message is accepted exactly once", "Then every message is accepted exactly once"),
    ("Then", "every message the IUT sent is valid against its schema", "Then every message the IUT sent is valid against its schema"),
    ("Then", "the IUT reports the message as undeliverable", "Then the IUT reports the message as undeliverable"),
    ("Then", "the retry waits at least the Retry-After", "Then the retry waits at least the Retry-After"),
    ("Then", "the IUT refuses the receiver's certificate", "Then the IUT refuses the receiver's certificate"),
    ("Then", "the failure is handled as the policy declares", "Then the failure is handled as the policy declares"),
    ("Then", "the backlog is not sent faster than the declared rate", "Then the backlog is not sent faster than the declared rate"),
    ("Then", "the messages are accepted in the order they were sent", "Then the messages are accepted in the order they were sent"),
    ("Then", "the message id appears in the IUT's audit log", "Then the message id appears in the IUT's audit log"),
    ("When", "the client delivers a valid message twice with the same id", "When the client delivers a valid message twice with the same id"),
    ("When", "the client delivers a valid message, then the same id with a changed body", "When the client delivers a valid message, then the same id with a changed body"),
    ("When", "the client delivers N valid messages in reverse order, each twice", "When the client delivers 3 valid messages in reverse order, each twice"),
    ("Then", "every delivery is answered with success", "Then every delivery is answered with success"),
    ("Then", "the changed duplicate is refused with a conflict status", "Then the changed duplicate is refused with a conflict status"),
    ("Then", "the IUT processed each message once", "Then the IUT processed each message once"),
    ("When", "the client makes N changes to its own organisation's holding", "When the client makes 3 changes to its own organisation's holding"),
    ("When", "another organisation makes a change to its own holding", "When another organisation makes a change to its own holding"),
    ("Then", "a window from the first change to the last returns exactly the changes the declared edges include", "Then a window from the first change to the last returns exactly the changes the declared edges include"),
    ("Then", "a window just after the last|before the first change returns none of them", "Then a window just after the last change returns none of them"),
    ("Then", "the whole holding includes every change", "Then the whole holding includes every change"),
    ("Then", "the other organisation's change appears in none of the client's windows or holding", "Then the other organisation's change appears in none of the client's windows or holding"),
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
    (
        "Given",
        "the router's routes run through the fault proxy",
        "Given the router's routes run through the fault proxy",
    ),
    (
        "Given",
        "the router delivers through the primary",
        "Given the router delivers through the primary",
    ),
    (
        "Given",
        "the route \"NAME\" is down",
        "Given the route \"primary\" is down",
    ),
    (
        "Given",
        "the route \"NAME\" black-holes traffic",
        "Given the route \"primary\" black-holes traffic",
    ),
    (
        "Given",
        "the route \"NAME\" resets every connection",
        "Given the route \"primary\" resets every connection",
    ),
    (
        "Given",
        "the route \"NAME\" is slower than the failover time",
        "Given the route \"primary\" is slower than the failover time",
    ),
    (
        "Given",
        "the route \"NAME\" tears writes into N-byte pieces M ms apart",
        "Given the route \"primary\" tears writes into 16-byte pieces 20 ms apart",
    ),
    (
        "Given",
        "the primary holds the next message without answering",
        "Given the primary holds the next message without answering",
    ),
    (
        "When",
        "the router is asked to send N message(s)",
        "When the router is asked to send 1 message",
    ),
    (
        "When",
        "the router is asked to send N messages, M ms apart",
        "When the router is asked to send 5 messages, 50 ms apart",
    ),
    (
        "When",
        "the router has had the failover time to deliver what was sent",
        "When the router has had the failover time to deliver what was sent",
    ),
    (
        "When",
        "the primary has the message in flight",
        "When the primary has the message in flight",
    ),
    (
        "When",
        "the route \"NAME\" starts black-holing traffic",
        "When the route \"primary\" starts black-holing traffic",
    ),
    (
        "When",
        "the route \"NAME\" goes down",
        "When the route \"primary\" goes down",
    ),
    (
        "When",
        "the route \"NAME\" recovers",
        "When the route \"primary\" recovers",
    ),
    (
        "When",
        "every route recovers",
        "When every route recovers",
    ),
    (
        "When",
        "the router is killed and restarted",
        "When the router is killed and restarted",
    ),
    (
        "When",
        "the fault timeline \"NAME\" runs while the router is asked to send a message every N ms",
        "When the fault timeline \"flapping-primary\" runs while the router is asked to send a message every 100 ms",
    ),
    (
        "When",
        "the outage exercise \"NAME\" runs",
        "When the outage exercise \"primary-node-outage\" runs",
    ),
    (
        "Then",
        "every message sent during the outage arrives through a fallback within the failover time",
        "Then every message sent during the outage arrives through a fallback within the failover time",
    ),
    (
        "Then",
        "the fallback deliveries are valid and carry the router's identity",
        "Then the fallback deliveries are valid and carry the router's identity",
    ),
    (
        "Then",
        "no message is lost or delivered twice",
        "Then no message is lost or delivered twice",
    ),
    (
        "Then",
        "deliveries return to the primary within the failback time",
        "Then deliveries return to the primary within the failback time",
    ),
    (
        "Then",
        "the exercise meets the router's declared promises",
        "Then the exercise meets the router's declared promises",
    ),
    (
        "Given",
        "the message type \"NAME\" (a declared [[message]])",
        "Given the message type \"notification\"",
    ),
    (
        "When",
        "the client sends a message with the defect \"CLASS\" (missing-required-field, wrong-type, unknown-enum-value, pattern-violation, out-of-range, extra-property, malformed-json, truncated-body, invalid-utf8, wrong-content-type, missing-content-type, oversize-body, deep-nesting, duplicate-keys, empty-body)",
        "When the client sends a message with the defect \"missing-required-field\"",
    ),
    (
        "Given",
        "the XML message type \"NAME\" (a declared [[message]] with format = \"xml\")",
        "Given the XML message type \"sdk-meddelande\"",
    ),
    (
        "When",
        "the client sends an XML message with the defect \"CLASS\" (not-well-formed, wrong-namespace, missing-namespace, missing-required-element, element-out-of-order, unexpected-element, wrong-type, enumeration-or-pattern, encoding-mismatch, schematron-rule, shipped-negative)",
        "When the client sends an XML message with the defect \"wrong-namespace\"",
    ),
    (
        "Then",
        "the XML message is refused with a declared status",
        "Then the XML message is refused with a declared status",
    ),
    (
        "Then",
        "a valid XML message is accepted right after",
        "Then a valid XML message is accepted right after",
    ),
    (
        "When",
        "the client sends a valid XML message (the type's example with a fresh id)",
        "When the client sends a valid XML message",
    ),
    (
        "Then",
        "the receipt is ACCEPTED | REJECTED with the code the specification prescribes (the answer's Meddelandekvittens; needs receipt = \"answer\" or \"sent\")",
        "Then the receipt is REJECTED with the code the specification prescribes",
    ),
    (
        "When",
        "the IUT sends N XML messages to the simulated receiver (a type in sender.xml_messages, to its endpoint)",
        "When the IUT sends 3 XML messages to the simulated receiver",
    ),
    (
        "Then",
        "every XML message the IUT sent is valid against its XSD and Schematron",
        "Then every XML message the IUT sent is valid against its XSD and Schematron",
    ),
    (
        "Then",
        "every XML message the IUT sent is signed by the IUT's organisation (value, digest, trusted CA, FromParty = signer = sender.client_cert)",
        "Then every XML message the IUT sent is signed by the IUT's organisation",
    ),
    (
        "When",
        "the client sends N generated invalid XML messages (random edits of the example, each refused by provsten's validator; seed in the evidence)",
        "When the client sends 100 generated invalid XML messages",
    ),
    (
        "Then",
        "every generated invalid XML message is refused (else: the shrunk, minimal counter-example)",
        "Then every generated invalid XML message is refused",
    ),
    (
        "When",
        "the client sends an XML message with the signature case \"CASE\" (valid, unsigned, altered-signature-value, altered-content, other-organisation, other-document, untrusted-ca; needs [[message]] signature = \"enveloped\")",
        "When the client sends an XML message with the signature case \"unsigned\"",
    ),
    (
        "Then",
        "the signed XML message is accepted (and listed among the accepted)",
        "Then the signed XML message is accepted",
    ),
    (
        "Given",
        "a canary server the IUT must not contact (loopback HTTP, records every request; writes a canary file)",
        "Given a canary server the IUT must not contact",
    ),
    (
        "When",
        "the client sends an XML message with the attack \"ATTACK\" (xxe-file, xxe-http, parameter-entity, billion-laughs, quadratic-blowup, external-dtd, schema-location, oversized-text, oversized-attribute, deep-nesting)",
        "When the client sends an XML message with the attack \"xxe-http\"",
    ),
    (
        "Then",
        "the XML attack is refused in time with a declared status | answered in time without a server error",
        "Then the XML attack is refused in time with a declared status",
    ),
    (
        "Then",
        "the answer reveals nothing of the attack (the canary's token, an expanded entity)",
        "Then the answer reveals nothing of the attack",
    ),
    (
        "Then",
        "the IUT fetched nothing from the canary",
        "Then the IUT fetched nothing from the canary",
    ),
    (
        "When",
        "the client sends N generated invalid messages",
        "When the client sends 200 generated invalid messages",
    ),
    (
        "When",
        "the client calls the current|deprecated|unsupported API version",
        "When the client calls the deprecated API version",
    ),
    (
        "Then",
        "the message is refused with a declared status",
        "Then the message is refused with a declared status",
    ),
    (
        "Then",
        "the refusal leaks no internals",
        "Then the refusal leaks no internals",
    ),
    (
        "Then",
        "the message is not among the accepted messages",
        "Then the message is not among the accepted messages",
    ),
    (
        "Then",
        "a valid message is accepted right after",
        "Then a valid message is accepted right after",
    ),
    (
        "Then",
        "every generated invalid message is refused",
        "Then every generated invalid message is refused",
    ),
    (
        "Then",
        "the call succeeds",
        "Then the call succeeds",
    ),
    (
        "Then",
        "the answer carries Deprecation and Sunset headers",
        "Then the answer carries Deprecation and Sunset headers",
    ),
    (
        "Then",
        "the call is refused with an error naming the version",
        "Then the call is refused with an error naming the version",
    ),
    // Role client (steps/client.rs).
    ("Given", "a simulated API server", "Given a simulated API server"),
    (
        "Given",
        "a simulated API server that answers STATUS with Retry-After N s to the first call",
        "Given a simulated API server that answers 429 with Retry-After 1 s to the first call",
    ),
    (
        "Given",
        "a simulated API server that answers STATUS with a Retry-After date N s ahead to the first call",
        "Given a simulated API server that answers 503 with a Retry-After date 2 s ahead to the first call",
    ),
    (
        "Given",
        "a simulated API server that answers STATUS without Retry-After during the first N ms",
        "Given a simulated API server that answers 429 without Retry-After during the first 2000 ms",
    ),
    (
        "Given",
        "a simulated API server that resets the first N calls",
        "Given a simulated API server that resets the first 3 calls",
    ),
    (
        "Given",
        "a simulated API server presenting its certificate without the intermediate",
        "Given a simulated API server presenting its certificate without the intermediate",
    ),
    (
        "Given",
        "a simulated API server presenting the certificate \"NAME\"",
        "Given a simulated API server presenting the certificate \"server-expired\"",
    ),
    (
        "When",
        "the IUT makes N call(s) to the simulated API server",
        "When the IUT makes 3 calls to the simulated API server",
    ),
    (
        "When",
        "the IUT makes calls to the simulated API server as fast as it may",
        "When the IUT makes calls to the simulated API server as fast as it may",
    ),
    (
        "Then",
        "the IUT presents its organisation's certificate",
        "Then the IUT presents its organisation's certificate",
    ),
    (
        "Then",
        "the IUT refuses the server's certificate",
        "Then the IUT refuses the server's certificate",
    ),
    (
        "Then",
        "the IUT waits as long as the Retry-After asks before calling again",
        "Then the IUT waits as long as the Retry-After asks before calling again",
    ),
    (
        "Then",
        "the IUT keeps to its declared request rate",
        "Then the IUT keeps to its declared request rate",
    ),
    (
        "Then",
        "the IUT backs off from the failing server",
        "Then the IUT backs off from the failing server",
    ),
    (
        "Then",
        "later calls ask only for what changed since the last read",
        "Then later calls ask only for what changed since the last read",
    ),
    ("When", "a client sends an HTTP/1.1 request for protected data|a bare line break|an HTTP/2 preface in plain text to the IUT's TLS port", "When a client sends an HTTP/2 preface in plain text to the IUT's TLS port"),
    ("Then", "the plain-text request is refused without protected data", "Then the plain-text request is refused without protected data"),
    ("When", "the IUT's listening ports are found and probed from a client address", "When the IUT's listening ports are found and probed from a client address"),
    ("Then", "every port answering a client address is declared for clients", "Then every port answering a client address is declared for clients"),
    ("Then", "the harness-only ports refuse client addresses", "Then the harness-only ports refuse client addresses"),
    ("When", "a client sends plain HTTP to the inner endpoint", "When a client sends plain HTTP to the inner endpoint"),
    ("When", "a client offers only TLS 1.0|TLS 1.1 in a raw ClientHello to the inner endpoint", "When a client offers only TLS 1.0 in a raw ClientHello to the inner endpoint"),
    ("Given", "a client presenting the inner endpoint's declared certificate", "Given a client presenting the inner endpoint's declared certificate"),
    ("When", "the client requests the inner endpoint", "When the client requests the inner endpoint"),
    ("Then", "the inner endpoint lets the connecting system in", "Then the inner endpoint lets the connecting system in"),
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

    /// The other way round: every step definition has an example in `VOCABULARY`, so
    /// `provsten steps` lists every step there is.
    #[test]
    fn every_step_definition_has_an_example() {
        use cucumber::codegen::{StepConstructor as _, WorldInventory};
        let mut defs = Vec::new();
        let mut add = |kw: &'static str,
                       (loc, re, _): (
            cucumber::step::Location,
            cucumber::codegen::LazyRegex,
            _,
        )| {
            defs.push((kw, format!("{}:{}", loc.path, loc.line), re()));
        };
        for s in cucumber::codegen::inventory::iter::<<ProvstenWorld as WorldInventory>::Given> {
            add("Given", s.inner());
        }
        for s in cucumber::codegen::inventory::iter::<<ProvstenWorld as WorldInventory>::When> {
            add("When", s.inner());
        }
        for s in cucumber::codegen::inventory::iter::<<ProvstenWorld as WorldInventory>::Then> {
            add("Then", s.inner());
        }
        assert!(
            defs.len() > 50,
            "the step inventory is not seen: {}",
            defs.len()
        );
        let missing: Vec<String> = defs
            .iter()
            .filter(|(kw, _, re)| {
                !VOCABULARY.iter().any(|(k, _, example)| {
                    k == kw
                        && example
                            .strip_prefix(k)
                            .is_some_and(|t| re.is_match(t.trim()))
                })
            })
            .map(|(kw, at, re)| format!("{kw} /{re}/ ({at})"))
            .collect();
        assert!(
            missing.is_empty(),
            "steps without an example in VOCABULARY:\n{}",
            missing.join("\n")
        );
    }
}
