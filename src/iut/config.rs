//! The IUT configuration (`provsten.toml`): how to start or reach the IUT, how to tell it is
//! ready, its API and the PKI it uses. Parsed strictly: an unknown key is an error naming
//! the file and line.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::de::{self, Deserializer};
use serde::Deserialize;

pub(crate) const DEFAULT_CONFIG: &str = include_str!("default.toml");
pub(crate) const TEMPLATE_CONFIG: &str = include_str!("template.toml");
/// `provsten init --role client`: a client under test alone.
pub(crate) const CLIENT_TEMPLATE_CONFIG: &str = include_str!("template-client.toml");

/// Roles an IUT can play (DESIGN.md "The shape").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    Server,
    Receiver,
    Sender,
    Router,
    Client,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Receiver => "receiver",
            Role::Sender => "sender",
            Role::Router => "router",
            Role::Client => "client",
        }
    }
}

pub(crate) use crate::shared::duration::HumanDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IutConfig {
    pub iut: IutSection,
    /// The IUT's API (roles server, receiver, client); a pure sender may have none.
    #[serde(default)]
    pub api: Option<ApiSection>,
    pub pki: PkiSection,
    #[serde(default)]
    pub ip_filter: Option<IpFilterSection>,
    #[serde(default)]
    pub network: NetworkSection,
    /// Message types the IUT receives (schema checks, FMK-2.6.2 / EB-SCHEMA-1).
    #[serde(default, rename = "message")]
    pub messages: Vec<MessageSection>,
    /// API versions (EB-VER-1 / FMK-2.5-VER).
    #[serde(default)]
    pub versions: Option<VersionsSection>,
    #[serde(default)]
    pub observe: ObserveSection,
    /// The declared resend policy (roles `sender` and `router`; FMK-2.6.3-RESEND).
    #[serde(default)]
    pub resend: Option<crate::shared::resend_policy::ResendSection>,
    /// Role `sender`: how the harness makes the IUT send a message.
    #[serde(default)]
    pub sender: Option<SenderSection>,
    /// Role `receiver`: how the IUT treats resent messages.
    #[serde(default)]
    pub receive: Option<ReceiveSection>,
    /// Role `server`: changes to the holding and iteration over a time window
    /// (FMK-2.6.1-NOTIFY).
    #[serde(default)]
    pub iteration: Option<IterationSection>,
    /// Role `router`: its routes, failover time, failback and delivery promises
    /// (CONT-ROUTE-1, CONT-ROUTE-2, CONT-NOLOSS, CONT-FAILBACK).
    #[serde(default)]
    pub router: Option<RouterSection>,
    /// Role `client`: how the harness makes the IUT call a peer's API, and what the IUT
    /// promises about its load on that API (FMK-2.4-LOAD).
    #[serde(default)]
    pub client: Option<ClientSection>,
    /// The ports the IUT may expose to clients, and those only the harness may reach
    /// (FMK-2.2-FW).
    #[serde(default)]
    pub firewall: Option<FirewallSection>,
    /// An inner endpoint behind the access point (SDK-2.4-INNER).
    #[serde(default)]
    pub inner: Option<InnerSection>,
}

/// Role `client`: the IUT calls an API; the harness plays that API (a simulated server with
/// mutual TLS) and asks the IUT to call it through `trigger`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientSection {
    /// How to make the IUT call. `url`: POST `{"to", "calls"}`, the IUT makes `calls` reads
    /// of `to` one after another; `command`: run once per call. Placeholders: {to} (the
    /// simulated server's URL with `path`), {call} (1, 2, …), and the config's own.
    pub trigger: TriggerSection,
    /// The resource the IUT reads, appended to the simulated server's address.
    #[serde(default = "default_client_path")]
    pub path: String,
    /// Catalogue name of the certificate the IUT must present (EB-MTLS-2).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The most calls per second the IUT promises to make, over any second.
    pub request_rate: f64,
    /// The IUT retries a call answered 429 or 503 (or 5xx); false: it gives the call up.
    #[serde(default = "yes")]
    pub retries: bool,
    /// The shortest wait before a retry when the server gives no `Retry-After`.
    #[serde(default = "default_min_retry_delay")]
    pub min_retry_delay: HumanDuration,
    /// The query parameter later reads carry with the time of the last read (the
    /// changed-between-timestamps iteration); unset: the IUT re-reads everything each time.
    #[serde(default)]
    pub changed_from_param: Option<String>,
    /// How long the harness waits for the first call after triggering.
    #[serde(default = "ten_seconds")]
    pub first_call_timeout: HumanDuration,
    /// How far an observed time may be from the promised one (timers, scheduling).
    #[serde(default = "default_client_tolerance")]
    pub tolerance: HumanDuration,
}

fn default_client_path() -> String {
    "/".into()
}
fn default_min_retry_delay() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_client_tolerance() -> HumanDuration {
    HumanDuration(Duration::from_millis(150))
}

/// FMK-2.2-FW: only the declared ports answer clients. provsten lists the listening
/// sockets of an IUT it started (Linux); an attached IUT is found by a connect scan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FirewallSection {
    /// Ports clients may reach: numbers, or strings such as "{port:api}".
    pub ports: Vec<PortValue>,
    /// Ports only the harness uses (triggers, observation): they must refuse client
    /// addresses.
    #[serde(default)]
    pub harness_ports: Vec<PortValue>,
    /// The source address probes come from, as a client's would (default: a registered
    /// [ip_filter] address other than 127.0.0.1, else 127.0.0.2).
    #[serde(default)]
    pub client_address: Option<String>,
    /// For an attached IUT (or to look wider): "ADDRESS:FIRST-LAST", a connect scan of that
    /// range, at most 4096 ports.
    #[serde(default)]
    pub scan: Option<String>,
}

/// A port as written: `8443` or `"{port:api}"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum PortValue {
    Number(u16),
    Text(String),
}

/// SDK-2.4-INNER: an endpoint behind the access point (e.g. its message service) that the
/// connecting system reaches with mutual TLS only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InnerSection {
    /// https://HOST:PORT of the inner endpoint.
    pub base_url: String,
    /// SNI and verification name (default: [api] server_name).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Catalogue name of the connecting system's certificate, which it must accept.
    pub client_cert: String,
    /// The path requested (default "/").
    #[serde(default = "root_path")]
    pub path: String,
}

fn root_path() -> String {
    "/".into()
}

/// Role `router`: the IUT delivers each message through its primary route, or through
/// its ordered fallbacks while the primary is out. Each route is a simulated receiver the
/// harness puts behind a fault-proxy link listening at `listen`, the address the IUT is
/// configured to deliver to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterSection {
    /// The `[[message]]` type the IUT routes.
    pub message: String,
    /// How to make the IUT route one message. Placeholders: {message_id}, {message_file},
    /// {entity} (a URL trigger POSTs `{"message_id", "entity", "body"}`, no "to").
    pub trigger: TriggerSection,
    /// The path the IUT posts to on every route.
    #[serde(default = "default_receiver_path")]
    pub receiver_path: String,
    /// Catalogue name of the certificate the IUT must present on every route.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// In priority order: the primary first, then the fallbacks.
    pub routes: Vec<RouteSection>,
    /// From a route failing to the first delivery through the next one.
    pub failover_time: HumanDuration,
    /// `"stay"`, or how soon after the primary recovers deliveries return to it.
    pub failback: Failback,
    pub delivery: Delivery,
    /// Slack on every declared time (a loaded machine is not a slow router).
    #[serde(default = "quarter_second")]
    pub tolerance: HumanDuration,
    /// How long the harness waits for a message's first delivery when no fault is active.
    #[serde(default = "ten_seconds")]
    pub first_delivery_timeout: HumanDuration,
    /// Independent copies of the router, each with its own routes and trigger, so router
    /// scenarios run side by side (default 1: they take turns). `{lane}` (1, 2, …) in the
    /// trigger and in every route's `listen` tells the lanes apart.
    #[serde(default = "one_lane")]
    pub lanes: u16,
}

fn one_lane() -> u16 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSection {
    /// `primary`, `fallback-1`, …: the fault-proxy link is `route-NAME`.
    pub name: String,
    /// host:port the IUT delivers to for this route (e.g. "127.0.0.1:{port:route-primary}").
    pub listen: String,
}

/// What the router promises once the primary is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failback {
    Stay,
    Within(Duration),
}

/// As the config writes it: `stay`, `within 1s`.
impl std::fmt::Display for Failback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failback::Stay => f.write_str("stay"),
            Failback::Within(d) => write!(f, "within {}", humantime::format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for Failback {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "stay" {
            return Ok(Failback::Stay);
        }
        humantime::parse_duration(s.trim())
            .map(Failback::Within)
            .map_err(|_| {
                de::Error::custom(format!(
                    "{s:?} is neither \"stay\" nor a duration (hint: failback = \"2s\": back on the primary within 2 s of its recovery)"
                ))
            })
    }
}

/// Delivery semantics across routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Delivery {
    /// Every message arrives once.
    ExactlyOnce,
    /// A message whose acknowledgement may have been lost in a fault may arrive again,
    /// with the same id; any other repeat is a duplicate.
    AtLeastOnce,
}

/// Role `server`: how the harness makes a change to an organisation's holding, and how it
/// asks for what changed between two times (FMK-2.6.1-NOTIFY).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IterationSection {
    /// POST creates or changes one item; the 2xx JSON answer carries its id and change
    /// time. May use {org}.
    pub create_path: String,
    /// GET with {from} and {to} (URL-encoded RFC 3339), and usually {org}: the items
    /// changed in that window.
    pub window_path: String,
    /// JSON pointer of the items array in the window answer ("": the answer is the array).
    #[serde(default)]
    pub items_pointer: String,
    /// JSON pointer of the id, in each item and in the create answer.
    #[serde(default = "default_id_pointer")]
    pub id_pointer: String,
    /// JSON pointer of the change time (RFC 3339) in the create answer (and, when there,
    /// in each item).
    #[serde(default = "default_changed_at_pointer")]
    pub changed_at_pointer: String,
    /// The window includes a change made exactly at its start.
    #[serde(default = "yes")]
    pub from_inclusive: bool,
    /// The window includes a change made exactly at its end.
    #[serde(default)]
    pub to_inclusive: bool,
    /// The JSON body of each create request (default `{}`).
    #[serde(default)]
    pub create_body: Option<String>,
}

fn default_id_pointer() -> String {
    "/id".into()
}
fn default_changed_at_pointer() -> String {
    "/changedAt".into()
}
fn yes() -> bool {
    true
}

impl IterationSection {
    /// The create body, parsed (checked when the config is parsed).
    pub(crate) fn body(&self) -> serde_json::Value {
        self.create_body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_else(|| serde_json::json!({}))
    }

    pub(crate) fn create_path_for(&self, org: &str) -> String {
        self.create_path.replace("{org}", org)
    }

    /// The window query for `org` between two RFC 3339 times (URL-encoded here).
    pub(crate) fn window_path_for(&self, org: &str, from: &str, to: &str) -> String {
        self.window_path
            .replace("{org}", org)
            .replace("{from}", &url_encode(from))
            .replace("{to}", &url_encode(to))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so `+` and `:` in an
/// RFC 3339 time survive a query string).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Role `sender`: the harness asks the IUT to send one message to a simulated receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SenderSection {
    /// The `[[message]]` type the IUT sends; its valid examples are the bodies, with a
    /// fresh id at its `id_pointer` per message.
    pub message: String,
    /// How to make the IUT send. Placeholders: {to} (the simulated receiver's URL),
    /// {message_id}, {message_file} (the body: JSON, or XML for `xml_messages`),
    /// {message_type} (the `[[message]]` name), {entity}, and the config's own.
    pub trigger: TriggerSection,
    /// The path the IUT posts to on the receiver (appended to the receiver's address).
    #[serde(default = "default_receiver_path")]
    pub receiver_path: String,
    /// Catalogue name of the certificate the IUT must present to the receiver; the
    /// receiver checks the organisation of every attempt against it.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// How long the harness waits for the first delivery attempt.
    #[serde(default = "ten_seconds")]
    pub first_attempt_timeout: HumanDuration,
    /// XML `[[message]]` types (`format = "xml"`) the IUT also sends (SDK-SPEC): each goes
    /// to the simulated receiver at its `endpoint`; the trigger gets `message_type` and the
    /// body as an XML document (a `.xml` `{message_file}`).
    #[serde(default)]
    pub xml_messages: Vec<String>,
}

/// Exactly one of `command` (run per message; a non-zero exit is the IUT reporting the
/// message undeliverable) or `url` (POST `{"to", "message_id", "entity", "body"}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerSection {
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub url: Option<String>,
}

/// Role `receiver`: duplicates (same message id) after a lost acknowledgement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiveSection {
    /// The `[[message]]` type resends are checked with.
    pub message: String,
    /// Statuses that refuse a duplicate id with a changed body.
    #[serde(default = "default_conflict")]
    pub changed_duplicate_statuses: Vec<u16>,
}

fn default_receiver_path() -> String {
    "/notifications".into()
}
fn default_conflict() -> Vec<u16> {
    vec![409, 422]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageSection {
    /// The name features use: `Given the message type "notification"`.
    pub name: String,
    /// Where the IUT receives it (POST), e.g. "/v1/notifications".
    pub endpoint: String,
    /// "builtin:ID" (`fullmakt/agent-notification`, `ebevis/epoc`, `ebevis/epoc-pr`,
    /// `ebevis/epoc-response`) or the path of a JSON Schema (draft 2020-12) file.
    pub schema: String,
    /// Valid example files (JSON); default: the builtin schema's examples.
    #[serde(default)]
    pub examples: Vec<String>,
    /// JSON pointer of the message id (so accepted messages can be observed by id).
    #[serde(default)]
    pub id_pointer: Option<String>,
    /// Statuses that count as refusing an invalid message.
    #[serde(default = "default_refused")]
    pub refused_statuses: Vec<u16>,
    /// `json` (default) or `xml` (SDK-SPEC): with `xml`, `schema` is "builtin:sdk/…" or the
    /// path of an XSD file (its imports resolve among the `.xsd` files of its folder).
    #[serde(default)]
    pub format: MessageFormat,
    /// How the IUT gives its SDK receipt (Meddelandekvittens) for each message: `answer` (the
    /// HTTP answer's body) or `sent` (POSTed back to the harness at `receipt_listen`).
    /// Unset: receipts are not checked (their scenarios are not-applicable). XML only.
    #[serde(default)]
    pub receipt: Option<ReceiptDelivery>,
    /// With `receipt = "sent"`: where the harness listens (HTTPS, client certificates of the
    /// run's PKI) for the receipts the IUT sends back, e.g. "127.0.0.1:{port:receipts}".
    #[serde(default)]
    pub receipt_listen: Option<String>,
    /// With `receipt = "sent"`: how long the harness waits for a receipt.
    #[serde(default = "ten_seconds")]
    pub receipt_timeout: HumanDuration,
    /// XML only: `"enveloped"` declares the IUT requires messages signed by the sending
    /// organisation (SDK-5.4-KEYS); the harness then signs every message it sends.
    #[serde(default)]
    pub signature: Option<SignatureKind>,
    /// The PKI identity that signs (default: the client identity of the run).
    #[serde(default)]
    pub signer: Option<String>,
}

/// Where an XML message's receipt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReceiptDelivery {
    /// In the body of the HTTP answer to the message.
    Answer,
    /// POSTed by the IUT to the harness, as a message of its own.
    Sent,
}

/// How an XML message is signed (`[[message]] signature`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SignatureKind {
    /// An enveloped XMLDSig signature over the whole document (`schema::xml_signature`).
    Enveloped,
}

/// The body format of a `[[message]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MessageFormat {
    #[default]
    Json,
    Xml,
}

impl MessageSection {
    /// The format `schema` names, when it names one: a builtin of either catalogue, or a
    /// file ending in `.xsd` / `.json`.
    fn schema_format(&self) -> Option<MessageFormat> {
        match self.schema.strip_prefix("builtin:") {
            Some(id) if crate::schema::xml::get(id).is_ok() => Some(MessageFormat::Xml),
            Some(id) if crate::schema::catalogue::get(id).is_ok() => Some(MessageFormat::Json),
            Some(_) => None,
            None if self.schema.ends_with(".xsd") => Some(MessageFormat::Xml),
            None if self.schema.ends_with(".json") => Some(MessageFormat::Json),
            None => None,
        }
    }
}

/// The line (from 1) of `key` in the `index`-th `[[message]]` table of `text`.
fn message_key_line(text: &str, index: usize, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let messages = doc
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == "message")?
        .1;
    let DeValue::Array(items) = messages.get_ref() else {
        return None;
    };
    let table = items.get(index)?;
    let DeValue::Table(t) = table.get_ref() else {
        return None;
    };
    let start = t
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map_or(table.span().start, |(k, _)| k.span().start);
    Some(text.get(..start)?.matches('\n').count() + 1)
}

/// An XML schema on a JSON message, or the reverse, names the file and line; the other
/// roles read JSON messages only.
fn check_message_formats(cfg: &IutConfig, text: &str, source: &ConfigSource) -> anyhow::Result<()> {
    let name = source.name();
    for (i, m) in cfg.messages.iter().enumerate() {
        if let Some(found) = m.schema_format() {
            if found != m.format {
                let line = message_key_line(text, i, "schema")
                    .map(|l| format!(" line {l}:"))
                    .unwrap_or_default();
                let (is, hint) = match found {
                    MessageFormat::Xml => ("an XML schema", "format = \"xml\""),
                    MessageFormat::Json => ("a JSON schema", "remove format, or format = \"json\""),
                };
                let format = match m.format {
                    MessageFormat::Json => "json",
                    MessageFormat::Xml => "xml",
                };
                bail!(
                    "{name}:{line} message {:?}: schema {:?} is {is}, but the message's format is {format:?} (hint: {hint})",
                    m.name,
                    m.schema,
                );
            }
        }
        if (m.receipt == Some(ReceiptDelivery::Sent)) != m.receipt_listen.is_some() {
            let line = message_key_line(text, i, "receipt")
                .map(|l| format!(" line {l}:"))
                .unwrap_or_default();
            bail!(
                "{name}:{line} message {:?}: receipt = \"sent\" and receipt_listen go together (hint: receipt = \"sent\" with receipt_listen = \"127.0.0.1:{{port:receipts}}\", and give the IUT https://127.0.0.1:{{port:receipts}}/ as where to send receipts)",
                m.name
            );
        }
        if m.receipt.is_some() && m.format != MessageFormat::Xml {
            let line = message_key_line(text, i, "receipt")
                .map(|l| format!(" line {l}:"))
                .unwrap_or_default();
            bail!(
                "{name}:{line} message {:?}: receipts (Meddelandekvittens) are XML messages' answers (hint: format = \"xml\", or remove receipt)",
                m.name
            );
        }
    }
    for m in &cfg.messages {
        if m.signature.is_some() && m.format != MessageFormat::Xml {
            bail!(
                "{name}: message {:?}: signature is for XML messages (hint: format = \"xml\")",
                m.name
            );
        }
        if m.signer.is_some() && m.signature.is_none() {
            bail!(
                "{name}: message {:?}: signer without signature (hint: signature = \"enveloped\")",
                m.name
            );
        }
    }
    let xml = |n: &str| {
        cfg.messages
            .iter()
            .any(|m| m.name == n && m.format == MessageFormat::Xml)
    };
    let uses = [
        ("sender.message", cfg.sender.as_ref().map(|s| &s.message)),
        ("receive.message", cfg.receive.as_ref().map(|r| &r.message)),
        ("router.message", cfg.router.as_ref().map(|r| &r.message)),
    ];
    for (key, used) in uses {
        if let Some(m) = used.filter(|m| xml(m)) {
            let hint = if key == "sender.message" {
                format!(" (hint: sender.xml_messages = [{m:?}])")
            } else {
                String::new()
            };
            bail!(
                "{name}: {key} {m:?} is an XML message; that role checks JSON messages only so far{hint}"
            );
        }
    }
    for m in cfg.sender.iter().flat_map(|s| &s.xml_messages) {
        if !xml(m) {
            let hint = if cfg.messages.iter().any(|x| &x.name == m) {
                "its [[message]] needs format = \"xml\"; a JSON type goes in sender.message"
            } else {
                "add a [[message]] with that name and format = \"xml\""
            };
            bail!("{name}: sender.xml_messages names {m:?}, which is not a declared XML [[message]] (hint: {hint})");
        }
    }
    Ok(())
}

fn default_refused() -> Vec<u16> {
    vec![400, 413, 415, 422]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionsSection {
    /// A GET path with `{version}`, e.g. "/{version}/health".
    pub path: String,
    pub current: String,
    #[serde(default)]
    pub deprecated: Vec<String>,
    /// A version the IUT does not support, e.g. "v9".
    pub unsupported: String,
}

/// The flaky network between the harness's peers and the IUT.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSection {
    /// An external Toxiproxy server to use instead of the embedded fault proxy, e.g.
    /// "http://127.0.0.1:8474" (the `TOXIPROXY_URL` environment variable overrides it).
    #[serde(default)]
    pub toxiproxy_url: Option<String>,
}

/// Which source addresses the IUT lets in (EB-IP-1/2), and how to change that.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IpFilterSection {
    /// Ranges (CIDR) or single addresses the IUT has registered.
    pub registered_ranges: Vec<String>,
    /// Sources allowed to name the client in X-Forwarded-For / Forwarded / PROXY headers.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// If set, the harness writes the registered ranges here (one per line) before the IUT
    /// starts and whenever a scenario changes them.
    #[serde(default)]
    pub allowlist_file: Option<String>,
    /// How the IUT is told to re-read `allowlist_file`.
    #[serde(default)]
    pub reload: Option<ReloadSection>,
    /// How long a reloaded list may take to take effect.
    #[serde(default = "ten_seconds")]
    pub reload_timeout: HumanDuration,
    /// Where the IUT also listens on IPv6 (e.g. https://[::1]:8443).
    #[serde(default)]
    pub ipv6_base_url: Option<String>,
    /// An IPv4 address served by a dual-stack socket, where IPv4 clients appear as
    /// v4-mapped IPv6 (::ffff:127.0.0.x).
    #[serde(default)]
    pub dual_stack_base_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReloadSection {
    /// A command to run (in the config's directory), e.g. ["nginx", "-s", "reload"].
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A URL to POST to, e.g. "http://127.0.0.1:9000/admin/reload".
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IutSection {
    pub name: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub start: Option<StartSection>,
    #[serde(default)]
    pub ready: ReadySection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartSection {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default = "five_seconds")]
    pub stop_timeout: HumanDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ReadyCheck {
    Tcp,
    Https,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadySection {
    #[serde(default = "https_check")]
    pub check: ReadyCheck,
    #[serde(default = "thirty_seconds")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub client_cert: Option<String>,
}

impl Default for ReadySection {
    fn default() -> Self {
        ReadySection {
            check: ReadyCheck::Https,
            timeout: thirty_seconds(),
            path: None,
            client_cert: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSection {
    pub base_url: String,
    pub server_name: String,
    #[serde(default = "default_protected_path")]
    pub protected_path: String,
    #[serde(default = "default_health_path")]
    pub health_path: String,
    pub registered_orgs: Vec<String>,
    #[serde(default = "five_seconds")]
    pub request_timeout: HumanDuration,
    /// What "access granted with the organisation's data" means for this API.
    #[serde(default)]
    pub granted: GrantedSection,
}

/// The positive control: what a granted request looks like. The default (any 2xx) is what
/// a correct server with no organisation-specific data passes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantedSection {
    /// Statuses that mean granted; empty: any 2xx.
    #[serde(default)]
    pub statuses: Vec<u16>,
    /// Text the body must contain, `{org}` replaced by the organisation number.
    #[serde(default)]
    pub body_contains: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PkiSection {
    pub dir: String,
    /// Generate a fresh PKI into `dir` for every run (the embedded reference does).
    #[serde(default)]
    pub generate: bool,
    /// Only with `generate`: the CRL distribution point written into the certificates.
    #[serde(default)]
    pub crl_base_url: Option<String>,
    /// Only with `generate`: from generation to each CRL's nextUpdate (default a year).
    #[serde(default)]
    pub crl_lifetime: Option<HumanDuration>,
    /// Only with `generate`: the OCSP responder URL written into the certificates' AIA.
    #[serde(default)]
    pub ocsp_base_url: Option<String>,
    /// How the IUT checks revocation: "crl", and "ocsp" when it asks the responder.
    #[serde(default = "crl_only")]
    pub revocation: Vec<Revocation>,
    /// Who signs the OCSP answers during a run.
    #[serde(default)]
    pub ocsp_signer: crate::pki::ocsp::Signer,
}

/// A way an IUT learns that a certificate was revoked (`[pki] revocation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Revocation {
    Crl,
    Ocsp,
}

fn crl_only() -> Vec<Revocation> {
    vec![Revocation::Crl]
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObserveSection {
    /// Accepted from configs written from older `provsten init` templates; nothing
    /// reads it (the observation URLs below are what steps use).
    #[serde(default, rename = "admin_url")]
    _admin_url: Option<String>,
    /// GET returns the ids of accepted messages as a JSON array of strings.
    #[serde(default)]
    pub accepted_url: Option<String>,
    /// GET returns the ids the IUT gave up delivering (JSON array of strings).
    #[serde(default)]
    pub undeliverable_url: Option<String>,
    /// GET returns the IUT's audit / transfer log: a JSON array of ids, or of objects with
    /// an `id` (FMK-2.6.4-LOG, SDK-5.1-TRACE).
    #[serde(default)]
    pub audit_url: Option<String>,
}

fn five_seconds() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn quarter_second() -> HumanDuration {
    HumanDuration(Duration::from_millis(250))
}
fn ten_seconds() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn thirty_seconds() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn https_check() -> ReadyCheck {
    ReadyCheck::Https
}
impl ApiSection {
    /// For an IUT without an API (a pure sender): nothing listens there, and no step that
    /// needs it runs, since its roles do not ask for one.
    pub(crate) fn absent() -> ApiSection {
        ApiSection {
            base_url: "https://127.0.0.1:9".into(),
            server_name: "localhost".into(),
            protected_path: default_protected_path(),
            health_path: default_health_path(),
            registered_orgs: Vec::new(),
            request_timeout: five_seconds(),
            granted: GrantedSection::default(),
        }
    }
}

fn default_protected_path() -> String {
    "/v1/orgs/{org}/fullmakter".into()
}
fn default_health_path() -> String {
    "/v1/health".into()
}

/// Where the config came from, for error messages and relative paths.
#[derive(Debug, Clone)]
pub(crate) enum ConfigSource {
    Embedded,
    File(PathBuf),
}

impl ConfigSource {
    pub(crate) fn name(&self) -> String {
        match self {
            ConfigSource::Embedded => "<embedded reference IUT config>".into(),
            ConfigSource::File(p) => p.display().to_string(),
        }
    }
}

pub(crate) fn parse(text: &str, source: &ConfigSource) -> anyhow::Result<IutConfig> {
    let cfg: IutConfig = toml::from_str(text).map_err(|e| anyhow!("{}: {e}", source.name()))?;
    if cfg.iut.roles.is_empty() {
        bail!(
            "{}: iut.roles is empty (hint: roles = [\"server\"])",
            source.name()
        );
    }
    if let Some(s) = &cfg.iut.start {
        if s.command.is_empty() {
            bail!("{}: iut.start.command is empty (hint: command = [\"./my-api\", \"--port\", \"8443\"], or remove [iut.start] to attach to a running IUT)", source.name());
        }
    }
    match &cfg.api {
        Some(api) => {
            if !api.protected_path.contains("{org}") {
                bail!("{}: api.protected_path {:?} has no {{org}} placeholder (hint: \"/v1/orgs/{{org}}/data\")", source.name(), api.protected_path);
            }
        }
        None => {
            if let Some(r) = cfg
                .iut
                .roles
                .iter()
                .find(|r| !matches!(r, Role::Sender | Role::Router | Role::Client))
            {
                bail!("{}: the role {:?} needs an [api] section (base_url, server_name, registered_orgs)", source.name(), r.as_str());
            }
        }
    }
    if let Some(ip) = &cfg.ip_filter {
        for (i, r) in ip
            .registered_ranges
            .iter()
            .chain(ip.trusted_proxies.iter())
            .enumerate()
        {
            crate::network::addr::parse_net(r).map_err(|e| {
                let key = if i < ip.registered_ranges.len() {
                    format!("ip_filter.registered_ranges[{i}]")
                } else {
                    format!(
                        "ip_filter.trusted_proxies[{}]",
                        i - ip.registered_ranges.len()
                    )
                };
                anyhow!("{}: {key}: {e}", source.name())
            })?;
        }
        if let Some(r) = &ip.reload {
            if r.command.is_some() == r.url.is_some() {
                bail!(
                    "{}: ip_filter.reload needs exactly one of `command` or `url`",
                    source.name()
                );
            }
            if ip.allowlist_file.is_none() {
                bail!("{}: ip_filter.reload is set but ip_filter.allowlist_file is not (hint: the harness writes the new list to that file, then reloads)", source.name());
            }
        }
    }
    if let Some(v) = &cfg.versions {
        if !v.path.contains("{version}") {
            bail!("{}: versions.path {:?} has no {{version}} placeholder (hint: \"/{{version}}/health\")", source.name(), v.path);
        }
    }
    check_message_formats(&cfg, text, source)?;
    check_resend(&cfg, source)?;
    check_iteration(&cfg, source)?;
    check_router(&cfg, source)?;
    check_client(&cfg, source)?;
    if cfg.pki.crl_lifetime.is_some() && !cfg.pki.generate {
        bail!("{}: pki.crl_lifetime only applies with pki.generate = true (hint: re-issue the CRLs of a PKI made by `provsten pki init` with `provsten pki refresh --dir {} --crl-lifetime 365d`)", source.name(), cfg.pki.dir);
    }
    if cfg.pki.crl_lifetime.as_ref().is_some_and(|d| d.0.is_zero()) {
        bail!(
            "{}: pki.crl_lifetime must be longer than 0 (hint: \"365d\")",
            source.name()
        );
    }
    if cfg.pki.ocsp_base_url.is_some() && !cfg.pki.generate {
        bail!("{}: pki.ocsp_base_url only applies with pki.generate = true (a PKI made by `provsten pki init` carries its own: `--ocsp-url`)", source.name());
    }
    if cfg.pki.crl_base_url.is_some() && !cfg.pki.generate {
        bail!("{}: pki.crl_base_url only applies with pki.generate = true (a PKI made by `provsten pki init` carries its own)", source.name());
    }
    Ok(cfg)
}

/// The sender / receiver sections must name declared message types and a policy.
fn check_resend(cfg: &IutConfig, source: &ConfigSource) -> anyhow::Result<()> {
    let name = source.name();
    if let Some(r) = &cfg.resend {
        r.resolve(&format!("{name}: [resend]"))?;
    }
    let has = |m: &str| cfg.messages.iter().any(|x| x.name == m);
    if let Some(s) = &cfg.sender {
        if !has(&s.message) {
            bail!("{name}: sender.message {:?} is not a declared [[message]] (hint: add a [[message]] with name = {:?})", s.message, s.message);
        }
        if s.trigger.command.is_some() == s.trigger.url.is_some() {
            bail!("{name}: sender.trigger needs exactly one of `command` or `url` (hint: trigger = {{ url = \"http://127.0.0.1:9000/admin/send\" }})");
        }
        if let Some(c) = &s.trigger.command {
            if c.is_empty() {
                bail!("{name}: sender.trigger.command is empty (hint: command = [\"curl\", \"--retry\", \"3\", \"{{to}}\"])");
            }
        }
        if cfg.resend.is_none() {
            bail!("{name}: [sender] needs a [resend] policy to certify (hint: [resend] delays = [\"1s\", \"2s\"], max_attempts = 3)");
        }
        if !s.receiver_path.starts_with('/') {
            bail!(
                "{name}: sender.receiver_path {:?} must start with / (hint: \"/notifications\")",
                s.receiver_path
            );
        }
    }
    if cfg.iut.roles.contains(&Role::Sender) && cfg.sender.is_none() {
        bail!("{name}: the role \"sender\" needs a [sender] section saying how to make the IUT send (hint: see `provsten init`)");
    }
    if let Some(r) = &cfg.receive {
        if !has(&r.message) {
            bail!(
                "{name}: receive.message {:?} is not a declared [[message]]",
                r.message
            );
        }
    }
    Ok(())
}

/// `[client]`: one trigger, a positive request rate, a path and parameter that fit a URL.
fn check_client(cfg: &IutConfig, source: &ConfigSource) -> anyhow::Result<()> {
    let name = source.name();
    if cfg.iut.roles.contains(&Role::Client) && cfg.client.is_none() {
        bail!("{name}: the role \"client\" needs a [client] section saying how to make the IUT call (trigger, request_rate; hint: see `provsten init --role client`)");
    }
    let Some(c) = &cfg.client else {
        return Ok(());
    };
    if c.trigger.command.is_some() == c.trigger.url.is_some() {
        bail!("{name}: client.trigger needs exactly one of `command` or `url` (hint: trigger = {{ command = [\"curl\", \"--cert\", \"...\", \"{{to}}\"] }})");
    }
    if c.trigger.command.as_ref().is_some_and(|a| a.is_empty()) {
        bail!("{name}: client.trigger.command is empty (hint: command = [\"curl\", \"{{to}}\"])");
    }
    if !(c.request_rate.is_finite() && c.request_rate > 0.0) {
        bail!("{name}: client.request_rate must be a positive number of calls per second (hint: request_rate = 10.0)");
    }
    if !c.path.starts_with('/') {
        bail!(
            "{name}: client.path {:?} must start with / (hint: \"/v1/orgs/5560000001/fullmakter\")",
            c.path
        );
    }
    if let Some(p) = &c.changed_from_param {
        let ok = !p.is_empty()
            && p.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
        if !ok {
            bail!("{name}: client.changed_from_param {p:?} must be a plain query parameter name (hint: \"changedFrom\")");
        }
    }
    Ok(())
}

/// `[router]`: a declared message type, a trigger, at least two uniquely named routes.
fn check_router(cfg: &IutConfig, source: &ConfigSource) -> anyhow::Result<()> {
    let name = source.name();
    if cfg.iut.roles.contains(&Role::Router) && cfg.router.is_none() {
        bail!("{name}: the role \"router\" needs a [router] section (routes, failover_time, failback, delivery; hint: see the README's \"Fallback routes\")");
    }
    let Some(r) = &cfg.router else {
        return Ok(());
    };
    if !cfg.messages.iter().any(|x| x.name == r.message) {
        bail!("{name}: router.message {:?} is not a declared [[message]] (hint: add a [[message]] with name = {:?})", r.message, r.message);
    }
    if r.trigger.command.is_some() == r.trigger.url.is_some() {
        bail!("{name}: router.trigger needs exactly one of `command` or `url` (hint: trigger = {{ url = \"http://127.0.0.1:9000/admin/send\" }})");
    }
    if r.trigger.command.as_ref().is_some_and(|c| c.is_empty()) {
        bail!("{name}: router.trigger.command is empty");
    }
    if r.routes.len() < 2 {
        bail!("{name}: router.routes has {} route(s); a router needs a primary and at least one fallback (hint: routes = [{{ name = \"primary\", listen = \"127.0.0.1:{{port:route-primary}}\" }}, {{ name = \"fallback-1\", listen = \"127.0.0.1:{{port:route-fallback-1}}\" }}])", r.routes.len());
    }
    for (i, route) in r.routes.iter().enumerate() {
        let ok = !route.name.is_empty()
            && route
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            bail!("{name}: router.routes[{i}].name {:?} must be letters, digits, - or _ (it names the link route-NAME)", route.name);
        }
        if r.routes[..i].iter().any(|o| o.name == route.name) {
            bail!(
                "{name}: router.routes[{i}]: the name {:?} is used twice",
                route.name
            );
        }
    }
    if !r.receiver_path.starts_with('/') {
        bail!(
            "{name}: router.receiver_path {:?} must start with /",
            r.receiver_path
        );
    }
    if r.lanes == 0 {
        bail!("{name}: router.lanes is 0 (hint: 1, or as many independent copies of the router as the IUT runs)");
    }
    if r.lanes > 1 {
        let trigger = r
            .trigger
            .url
            .iter()
            .chain(r.trigger.command.iter().flatten());
        if !trigger.into_iter().any(|t| t.contains("{lane}")) {
            bail!("{name}: router.lanes = {} but router.trigger has no {{lane}}: every lane would be asked through the same router (hint: url = \"http://127.0.0.1:{{port:admin}}/admin/send?lane={{lane}}\")", r.lanes);
        }
        if let Some(route) = r.routes.iter().find(|x| !x.listen.contains("{lane}")) {
            bail!("{name}: router.lanes = {} but the route {:?} listens at {:?} without {{lane}}: every lane would share its address (hint: listen = \"127.0.0.1:{{port:route-{{lane}}-{}}}\")", r.lanes, route.name, route.listen, route.name);
        }
    }
    if r.failover_time.0.is_zero() {
        bail!("{name}: router.failover_time is 0 (hint: the time from a route failing to the first delivery through the next, e.g. \"2s\")");
    }
    Ok(())
}

/// `[iteration]`: paths with the placeholders they need, pointers, a JSON create body.
fn check_iteration(cfg: &IutConfig, source: &ConfigSource) -> anyhow::Result<()> {
    let name = source.name();
    let Some(it) = &cfg.iteration else {
        return Ok(());
    };
    if cfg.api.is_none() {
        bail!(
            "{name}: [iteration] needs an [api] section (base_url, server_name, registered_orgs)"
        );
    }
    for (key, path) in [
        ("create_path", &it.create_path),
        ("window_path", &it.window_path),
    ] {
        if !path.starts_with('/') {
            bail!("{name}: iteration.{key} {path:?} must start with / (hint: \"/v1/orgs/{{org}}/fullmakter\")");
        }
    }
    for p in ["{from}", "{to}"] {
        if !it.window_path.contains(p) {
            bail!("{name}: iteration.window_path {:?} has no {p} placeholder (hint: \"/v1/orgs/{{org}}/fullmakter?changedFrom={{from}}&changedTo={{to}}\")", it.window_path);
        }
    }
    for (key, ptr) in [
        ("items_pointer", &it.items_pointer),
        ("id_pointer", &it.id_pointer),
        ("changed_at_pointer", &it.changed_at_pointer),
    ] {
        if !ptr.is_empty() && !ptr.starts_with('/') {
            bail!("{name}: iteration.{key} {ptr:?} is not a JSON pointer (hint: \"/{}\", or \"\" for the whole document)", ptr.trim_start_matches('#'));
        }
    }
    if it.id_pointer.is_empty() || it.changed_at_pointer.is_empty() {
        bail!("{name}: iteration.id_pointer and iteration.changed_at_pointer must point inside the answer (hint: \"/id\", \"/changedAt\")");
    }
    if let Some(b) = &it.create_body {
        serde_json::from_str::<serde_json::Value>(b).map_err(|e| {
            anyhow!("{name}: iteration.create_body is not JSON: {e} (hint: create_body = '{{\"omfattning\": \"forsakringsinformation\"}}')")
        })?;
    }
    Ok(())
}

pub(crate) fn load(path: &Path) -> anyhow::Result<(IutConfig, ConfigSource)> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the IUT config {} (hint: create one with `provsten init DIR`)",
            path.display()
        )
    })?;
    let source = ConfigSource::File(path.to_path_buf());
    Ok((parse(&text, &source)?, source))
}

/// Values for placeholders, fixed for one run.
pub(crate) struct Placeholders {
    pub provsten: PathBuf,
    pub config_dir: PathBuf,
    pub out: PathBuf,
    pub pki: PathBuf,
    ports: HashMap<String, u16>,
}

impl Placeholders {
    pub(crate) fn new(provsten: PathBuf, config_dir: PathBuf, out: PathBuf, pki: PathBuf) -> Self {
        Placeholders {
            provsten,
            config_dir,
            out,
            pki,
            ports: HashMap::new(),
        }
    }

    /// Replaces every `{...}` in `value`; `key` names the config key in errors.
    pub(crate) fn expand(
        &mut self,
        value: &str,
        key: &str,
        source: &ConfigSource,
    ) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| anyhow!("{}: {key}: unclosed '{{' in {value:?}", source.name()))?;
            let name = &rest[open + 1..open + close];
            let replacement = match name {
                "provsten" => self.provsten.display().to_string(),
                "config_dir" => self.config_dir.display().to_string(),
                "out" => self.out.display().to_string(),
                "pki" => self.pki.display().to_string(),
                "org" => "{org}".to_string(),         // filled per request
                "version" => "{version}".to_string(), // filled per request
                "from" => "{from}".to_string(),       // filled per window query ({to} below)
                // Filled per message by the sender trigger ({to} also per window query).
                "to" | "message_id" | "message_file" | "message_type" | "entity" | "call" => format!("{{{name}}}"),
                n if n.starts_with("port:") => self.port(&n[5..])?.to_string(),
                other => bail!(
                    "{}: {key}: unknown placeholder {{{other}}} in {value:?} (known: {{port:NAME}}, {{pki}}, {{config_dir}}, {{out}}, {{provsten}}, and {{defects}} as a whole command argument)",
                    source.name()
                ),
            };
            out.push_str(&replacement);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A free loopback port per name, stable within the run.
    fn port(&mut self, name: &str) -> anyhow::Result<u16> {
        if let Some(p) = self.ports.get(name) {
            return Ok(*p);
        }
        // Bind-and-release has a small race with other processes; the IUT's bind error
        // would then name the port.
        let p = crate::network::addr::reserve_port().context("finding a free loopback port")?;
        self.ports.insert(name.to_string(), p);
        Ok(p)
    }
}

/// `https://host:port/...` → the socket address to connect to.
pub(crate) async fn resolve_base_url(
    base_url: &str,
    source: &ConfigSource,
) -> anyhow::Result<SocketAddr> {
    let rest = base_url.strip_prefix("https://").ok_or_else(|| {
        anyhow!("{}: api.base_url {base_url:?} must start with https:// (the API is only reached over TLS)", source.name())
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port: u16 = p
                .parse()
                .map_err(|_| anyhow!("{}: api.base_url: {p:?} is not a port", source.name()))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (authority.trim_start_matches('[').trim_end_matches(']'), 443),
    };
    tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| anyhow!("{}: api.base_url: {host:?} does not resolve (hint: use an IP address such as https://127.0.0.1:8443)", source.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_and_template_parse() {
        parse(DEFAULT_CONFIG, &ConfigSource::Embedded).unwrap();
        parse(TEMPLATE_CONFIG, &ConfigSource::Embedded).unwrap();
        let client = parse(CLIENT_TEMPLATE_CONFIG, &ConfigSource::Embedded).unwrap();
        assert_eq!(client.iut.roles, vec![Role::Client]);
        assert!(client.api.is_none() && client.client.is_some());
    }

    #[test]
    fn an_xml_schema_on_a_json_message_and_the_reverse_name_file_and_line() {
        let source = ConfigSource::File("x/provsten.toml".into());
        let cfg = parse(DEFAULT_CONFIG, &source).unwrap();
        let xml = cfg
            .messages
            .iter()
            .find(|m| m.name == "sdk-meddelande")
            .unwrap();
        assert_eq!(xml.format, MessageFormat::Xml);
        let line =
            |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let text = DEFAULT_CONFIG.replacen("format = \"xml\"\n", "", 1);
        let err = parse(&text, &source).unwrap_err().to_string();
        let at = line(&text, "schema = \"builtin:sdk/meddelande\"");
        assert!(
            err.contains(&format!("x/provsten.toml: line {at}:")),
            "{err}"
        );
        assert!(
            err.contains("is an XML schema") && err.contains("hint: format = \"xml\""),
            "{err}"
        );
        let text = DEFAULT_CONFIG.replacen(
            "schema = \"builtin:ebevis/epoc\"",
            "schema = \"builtin:ebevis/epoc\"\nformat = \"xml\"",
            1,
        );
        let err = parse(&text, &source).unwrap_err().to_string();
        let at = line(&text, "schema = \"builtin:ebevis/epoc\"");
        assert!(
            err.contains(&format!("line {at}:")) && err.contains("is a JSON schema"),
            "{err}"
        );
        let text = DEFAULT_CONFIG.replacen(
            "message = \"notification\"",
            "message = \"sdk-meddelande\"",
            1,
        );
        let err = parse(&text, &source).unwrap_err().to_string();
        assert!(err.contains("JSON messages only"), "{err}");
        assert!(
            err.contains("hint: sender.xml_messages = [\"sdk-meddelande\"]"),
            "{err}"
        );
    }

    #[test]
    fn sender_xml_messages_must_name_declared_xml_types() {
        let source = ConfigSource::File("x/provsten.toml".into());
        let cfg = parse(DEFAULT_CONFIG, &source).unwrap();
        let s = cfg.sender.expect("the default config sends");
        assert_eq!(s.xml_messages, vec!["sdk-meddelande".to_string()]);
        for (named, hint) in [
            ("notification", "needs format = \"xml\""),
            ("nope", "add a [[message]] with that name"),
        ] {
            let text = DEFAULT_CONFIG.replacen(
                "xml_messages = [\"sdk-meddelande\"]",
                &format!("xml_messages = [\"{named}\"]"),
                1,
            );
            assert_ne!(text, DEFAULT_CONFIG);
            let err = parse(&text, &source).unwrap_err().to_string();
            assert!(
                err.starts_with("x/provsten.toml: sender.xml_messages names")
                    && err.contains(named)
                    && err.contains(hint),
                "{err}"
            );
        }
    }

    #[test]
    fn a_signature_is_declared_on_xml_messages_only() {
        let source = ConfigSource::File("x/provsten.toml".into());
        let cfg = parse(DEFAULT_CONFIG, &source).unwrap();
        let sdk = cfg.messages.iter().find(|m| m.name == "sdk-meddelande");
        assert_eq!(
            sdk.and_then(|m| m.signature),
            Some(SignatureKind::Enveloped)
        );
        let text = DEFAULT_CONFIG.replacen(
            "schema = \"builtin:ebevis/epoc\"",
            "schema = \"builtin:ebevis/epoc\"\nsignature = \"enveloped\"",
            1,
        );
        let err = parse(&text, &source).unwrap_err().to_string();
        assert!(err.contains("signature is for XML messages"), "{err}");
        let text = DEFAULT_CONFIG.replacen("signature = \"enveloped\"\n", "signer = \"x\"\n", 1);
        let err = parse(&text, &source).unwrap_err().to_string();
        assert!(err.contains("signer without signature"), "{err}");
        let text = DEFAULT_CONFIG.replacen("\"enveloped\"", "\"detached\"", 1);
        let err = parse(&text, &source).unwrap_err().to_string();
        assert!(err.contains("enveloped"), "{err}");
    }

    #[test]
    fn duration_without_unit_gets_a_hint() {
        let text = DEFAULT_CONFIG.replace("timeout = \"20s\"", "timeout = \"5\"");
        let err = parse(&text, &ConfigSource::File("x/provsten.toml".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x/provsten.toml"), "{err}");
        assert!(err.contains("hint: write \"5s\""), "{err}");
        assert!(err.contains("line "), "{err}");
    }

    /// The error parsing the default config with `from` replaced by `to`.
    fn bad(from: &str, to: &str) -> String {
        let text = DEFAULT_CONFIG.replace(from, to);
        assert_ne!(text, DEFAULT_CONFIG, "{from:?} not in the default config");
        parse(&text, &ConfigSource::Embedded)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn client_section_is_checked() {
        let cfg = parse(DEFAULT_CONFIG, &ConfigSource::Embedded).unwrap();
        let c = cfg.client.unwrap();
        assert_eq!(c.request_rate, 10.0);
        assert_eq!(c.changed_from_param.as_deref(), Some("changedFrom"));
        let e = bad("request_rate = 10.0", "request_rate = 0.0");
        assert!(e.contains("client.request_rate must be a positive"), "{e}");
        let e = bad("request_rate = 10.0", "request_rate = nan");
        assert!(e.contains("client.request_rate"), "{e}");
        let e = bad(
            "path = \"/v1/orgs/5560000001/fullmakter\"",
            "path = \"v1/x\"",
        );
        assert!(e.contains("must start with /"), "{e}");
        let e = bad(
            "changed_from_param = \"changedFrom\"",
            "changed_from_param = \"a&b\"",
        );
        assert!(e.contains("plain query parameter"), "{e}");
        let e = bad(
            "trigger = { url = \"http://127.0.0.1:{port:admin}/admin/call\" }",
            "trigger = { url = \"http://x/\", command = [\"a\"] }",
        );
        assert!(e.contains("client.trigger needs exactly one"), "{e}");
        let e = bad("[client]\n", "[client_off]\n");
        assert!(e.contains("client_off") || e.contains("unknown"), "{e}");
        // The role without its section.
        let text = DEFAULT_CONFIG.replace("[client]\n", "[unused]\n");
        let start = text.find("[unused]").unwrap();
        let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
        let text = format!("{}{}", &text[..start], &text[end..]);
        let e = parse(&text, &ConfigSource::Embedded)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the role \"client\" needs a [client] section"),
            "{e}"
        );
    }

    #[test]
    fn router_section_is_checked() {
        let cfg = parse(DEFAULT_CONFIG, &ConfigSource::Embedded).unwrap();
        let r = cfg.router.unwrap();
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.failback, Failback::Within(Duration::from_secs(1)));
        assert_eq!(r.failback.to_string(), "within 1s");
        assert_eq!(Failback::Stay.to_string(), "stay");
        assert_eq!(r.delivery, Delivery::AtLeastOnce);
        let e = bad("failback = \"1s\"", "failback = \"soon\"");
        assert!(e.contains("neither \"stay\" nor a duration"), "{e}");
        let e = bad("delivery = \"at-least-once\"", "delivery = \"twice\"");
        assert!(e.contains("exactly-once"), "{e}");
        let e = bad(
            "    { name = \"fallback-1\", listen = \"127.0.0.1:{port:route-{lane}-fallback-1}\" },\n",
            "",
        );
        assert!(e.contains("at least one fallback"), "{e}");
        assert_eq!(r.lanes, 5);
        let e = bad("lanes = 5", "lanes = 0");
        assert!(e.contains("router.lanes is 0"), "{e}");
        let e = bad("/admin/send?lane={lane}", "/admin/send");
        assert!(e.contains("router.trigger has no {lane}"), "{e}");
        let e = bad("{port:route-{lane}-primary}", "{port:route-primary}");
        assert!(
            e.contains("the route \"primary\" listens at") && e.contains("without {lane}"),
            "{e}"
        );
        let e = bad("{ name = \"fallback-1\"", "{ name = \"primary\"");
        assert!(e.contains("used twice"), "{e}");
        let e = bad("{ name = \"fallback-1\"", "{ name = \"fall back\"");
        assert!(e.contains("letters, digits"), "{e}");
        let e = bad("failover_time = \"1s\"", "failover_time = \"0s\"");
        assert!(e.contains("failover_time is 0"), "{e}");
        let e = bad(
            "roles = [\"server\", \"receiver\", \"sender\", \"router\", \"client\"]",
            "roles = [\"server\", \"receiver\", \"sender\", \"router\", \"client\"]\n[x]",
        );
        assert!(e.contains('x'), "{e}");
        let text = DEFAULT_CONFIG.replace("[router]", "[router_off]");
        let e = parse(&text, &ConfigSource::Embedded)
            .unwrap_err()
            .to_string();
        assert!(e.contains("router_off"), "{e}");
        let stay = DEFAULT_CONFIG.replace("failback = \"1s\"", "failback = \"stay\"");
        let cfg = parse(&stay, &ConfigSource::Embedded).unwrap();
        assert_eq!(cfg.router.unwrap().failback, Failback::Stay);
    }

    #[test]
    fn the_router_role_needs_its_section() {
        let start = DEFAULT_CONFIG.find("[router]").unwrap();
        let end = DEFAULT_CONFIG.find("# Role receiver").unwrap();
        let text = format!("{}{}", &DEFAULT_CONFIG[..start], &DEFAULT_CONFIG[end..]);
        let e = parse(&text, &ConfigSource::Embedded)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a [router] section"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let text = DEFAULT_CONFIG.replace("[iut.ready]", "[iut.ready]\nchek = \"tcp\"");
        let err = parse(&text, &ConfigSource::Embedded)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chek"), "{err}");
        assert!(err.contains("check"), "{err}");
    }

    #[tokio::test]
    async fn base_url_resolves_literals_and_names() {
        let src = ConfigSource::Embedded;
        assert_eq!(
            resolve_base_url("https://127.0.0.1:8443/x", &src)
                .await
                .unwrap()
                .port(),
            8443
        );
        assert_eq!(
            resolve_base_url("https://[::1]:9", &src)
                .await
                .unwrap()
                .port(),
            9
        );
        assert_eq!(
            resolve_base_url("https://localhost:7", &src)
                .await
                .unwrap()
                .port(),
            7
        );
        assert!(resolve_base_url("http://127.0.0.1:1", &src).await.is_err());
    }

    #[test]
    fn placeholders_expand_and_unknown_ones_are_refused() {
        let mut p = Placeholders::new(
            "/bin/provsten".into(),
            "/c".into(),
            "/o".into(),
            "/o/pki".into(),
        );
        let a = p
            .expand("127.0.0.1:{port:api}", "k", &ConfigSource::Embedded)
            .unwrap();
        let b = p
            .expand(
                "https://127.0.0.1:{port:api}/x",
                "k",
                &ConfigSource::Embedded,
            )
            .unwrap();
        assert_eq!(
            a.split(':').nth(1).unwrap(),
            b.rsplit(':').next().unwrap().trim_end_matches("/x")
        );
        assert_eq!(
            p.expand("{pki}/a", "k", &ConfigSource::Embedded).unwrap(),
            "/o/pki/a"
        );
        let e = p
            .expand(
                "{prot:api}",
                "iut.start.command[2]",
                &ConfigSource::Embedded,
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("iut.start.command[2]") && e.contains("unknown placeholder {prot:api}"),
            "{e}"
        );
    }

    fn with_iteration(section: &str) -> anyhow::Result<IutConfig> {
        // The embedded config declares its own [iteration]; test against a copy without it.
        let base: String = DEFAULT_CONFIG
            .split("\n[")
            .filter(|part| !part.starts_with("iteration]"))
            .collect::<Vec<_>>()
            .join("\n[");
        parse(
            &format!("{base}\n{section}"),
            &ConfigSource::File("x/provsten.toml".into()),
        )
    }

    #[test]
    fn iteration_defaults_and_placeholders() {
        let cfg = with_iteration(
            "[iteration]\ncreate_path = \"/v1/orgs/{org}/f\"\nwindow_path = \"/v1/orgs/{org}/f?a={from}&b={to}\"\n",
        )
        .unwrap();
        let it = cfg.iteration.unwrap();
        assert_eq!(it.items_pointer, "");
        assert_eq!(it.id_pointer, "/id");
        assert_eq!(it.changed_at_pointer, "/changedAt");
        assert!(it.from_inclusive && !it.to_inclusive);
        assert_eq!(it.body(), serde_json::json!({}));
        assert_eq!(
            it.window_path_for("556", "2026-01-02T03:04:05.000001+01:00", "x y"),
            "/v1/orgs/556/f?a=2026-01-02T03%3A04%3A05.000001%2B01%3A00&b=x%20y"
        );
        assert_eq!(it.create_path_for("556"), "/v1/orgs/556/f");
        let mut p = Placeholders::new("/p".into(), "/c".into(), "/o".into(), "/k".into());
        assert_eq!(
            p.expand(
                &it.window_path,
                "iteration.window_path",
                &ConfigSource::Embedded
            )
            .unwrap(),
            it.window_path
        );
    }

    #[test]
    fn iteration_errors_name_the_file_and_key() {
        let cases = [
            (
                "[iteration]\ncreate_path = \"/c\"\nwindow_path = \"/w?from={from}\"\n",
                "iteration.window_path",
                "{to}",
            ),
            (
                "[iteration]\ncreate_path = \"c\"\nwindow_path = \"/w?{from}{to}\"\n",
                "iteration.create_path",
                "must start with /",
            ),
            (
                "[iteration]\ncreate_path = \"/c\"\nwindow_path = \"/w?{from}{to}\"\nid_pointer = \"id\"\n",
                "iteration.id_pointer",
                "hint: \"/id\"",
            ),
            (
                "[iteration]\ncreate_path = \"/c\"\nwindow_path = \"/w?{from}{to}\"\ncreate_body = \"{x\"\n",
                "iteration.create_body",
                "not JSON",
            ),
            (
                "[iteration]\ncreate_path = \"/c\"\nwindow_path = \"/w?{from}{to}\"\nfrom_inclusiv = true\n",
                "from_inclusiv",
                "from_inclusive",
            ),
        ];
        for (section, key, what) in cases {
            let e = with_iteration(section).unwrap_err().to_string();
            assert!(
                e.contains("x/provsten.toml") && e.contains(key) && e.contains(what),
                "{section}: {e}"
            );
        }
    }
}
