//! Steps for schema errors and API versions (FMK-2.6.2-VALIDATE, EB-SCHEMA-1, EB-VER-1,
//! FMK-2.5-VER): send each class of invalid message, and property-generated ones, and check
//! the IUT refuses them, leaks nothing, accepts none, and still works.

use std::sync::Arc;

use cucumber::{given, then, when};
use serde_json::{json, Value};

use super::ProvstenWorld;
use crate::iut::MessageType;
use crate::peers::{self, ClientSpec, Exchange, Outcome};
use crate::schema::invalid::{self, DefectClass};
use crate::schema::Limits;

/// Text that should never be in an answer to a client: stack traces, source paths, SQL.
const INTERNALS: &[&str] = &[
    "panicked at",
    "Traceback (most recent call last)",
    "stack backtrace",
    "\tat ",
    "Exception in thread",
    "/home/",
    "/usr/src/",
    "/src/",
    ".rs:",
    ".py\", line",
    "C:\\",
    "SELECT ",
    "INSERT INTO",
    "syntax error at or near",
];

impl ProvstenWorld {
    pub(crate) fn message_type(&self) -> anyhow::Result<MessageType> {
        let name = self.message.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no message type chosen (hint: `Given the message type \"notification\"`)"
            )
        })?;
        self.ctx()?
            .messages
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| {
                ProvstenWorld::not_applicable(format!(
                    "the IUT config declares no message type {name:?} ([[message]])"
                ))
            })
    }

    /// The scenario's client certificate, or a valid one of a registered organisation:
    /// schema checks are about the message, not the sender.
    pub(crate) fn sender_identity(&self) -> anyhow::Result<peers::Identity> {
        let name = self
            .client_cert
            .as_deref()
            .unwrap_or(super::xml::DEFAULT_CLIENT);
        peers::Identity::from_pki(&self.ctx()?.pki, name)
    }

    pub(crate) async fn post(
        &mut self,
        path: &str,
        content_type: Option<String>,
        body: Vec<u8>,
    ) -> anyhow::Result<Exchange> {
        let ctx = self.ctx()?;
        let mut spec = ClientSpec::new(Some(self.sender_identity()?), ctx.request_timeout);
        spec.body = Some((content_type, body));
        peers::request(&ctx.target, &spec, "POST", path).await
    }

    /// The ids the IUT reports as accepted.
    pub(crate) async fn accepted_ids(&self) -> anyhow::Result<Vec<String>> {
        let url = self.ctx()?.accepted_url.clone().ok_or_else(|| {
            ProvstenWorld::not_applicable("the IUT config declares no observe.accepted_url")
        })?;
        let (addr, path) = crate::network::addr::http_url(&url)?;
        let fetch = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            anyhow::Ok(buf)
        };
        let buf = tokio::time::timeout(std::time::Duration::from_secs(5), fetch)
            .await
            .map_err(|_| anyhow::anyhow!("{url}: no answer within 5 s"))??;
        let text = String::from_utf8_lossy(&buf);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        serde_json::from_str(body)
            .map_err(|e| anyhow::anyhow!("{url}: not a JSON array of ids: {e}"))
    }
}

/// A fresh id of the same shape (digits → digits, hex letters → hex letters), so the
/// message can be told apart among the accepted ones.
fn fresh_id(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '0'..='9' => char::from(b'0' + rand::random::<u8>() % 10),
            'a'..='f' => char::from(b'a' + rand::random::<u8>() % 6),
            'A'..='F' => char::from(b'A' + rand::random::<u8>() % 6),
            other => other,
        })
        .collect()
}

pub(crate) fn plant_id(m: &MessageType, v: &mut Value) -> Option<String> {
    let ptr = m.id_pointer.as_deref()?;
    let slot = v.pointer_mut(ptr)?;
    let id = fresh_id(slot.as_str()?);
    *slot = Value::String(id.clone());
    Some(id)
}

#[given(expr = "the message type {string}")]
async fn message_type(w: &mut ProvstenWorld, name: String) -> anyhow::Result<()> {
    w.message = Some(name);
    w.message_type().map(|_| ())
}

#[when(expr = "the client sends a message with the defect {string}")]
async fn send_defect(w: &mut ProvstenWorld, class: String) -> anyhow::Result<()> {
    let m = w.message_type()?;
    let class: DefectClass = class.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Plant a fresh id in the example first, so a wrongly accepted message can be found.
    let mut example = m.examples.first().cloned().unwrap_or(Value::Null);
    let id = plant_id(&m, &mut example);
    let limits = Limits::default();
    let all = invalid::catalogue(&m.schema, &example, &limits);
    let Some(msg) = all.into_iter().find(|x| x.class == class) else {
        let why = invalid::skipped(&m.schema, &example, &limits)
            .into_iter()
            .find(|(c, _)| *c == class)
            .map(|(_, r)| r)
            .unwrap_or_else(|| "not generated".into());
        return Err(ProvstenWorld::not_applicable(format!(
            "{class} does not apply to {}: {why}",
            m.name
        )));
    };
    let ex = w
        .post(&m.endpoint, msg.content_type.clone(), msg.body.clone())
        .await?;
    let shown = String::from_utf8_lossy(&msg.body[..msg.body.len().min(300)]).into_owned();
    w.record(json!({"defect_class": class, "mutation": msg.mutation, "rule": msg.pointer, "content_type": msg.content_type,
                    "body_bytes": msg.body.len(), "body": shown, "planted_id": id}));
    w.record(json!({"exchange": ex}));
    w.planted_ids = id.into_iter().collect();
    w.exchanges = vec![ex];
    Ok(())
}

#[then("the message is refused with a declared status")]
async fn refused_declared(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.message_type()?;
    for ex in w.exchanges()? {
        match &ex.outcome {
            Outcome::Response { status, .. } if m.refused_statuses.contains(status) => {
                w.record(json!({"refused": true, "status": status, "summary": ex.describe()}));
            }
            Outcome::Response { status, .. } => {
                w.record(json!({"refused": false, "summary": ex.describe()}));
                fail!(
                    "the IUT answered HTTP {status}; an invalid message must get one of {:?} (message.refused_statuses)",
                    m.refused_statuses
                );
            }
            Outcome::Refused { refusal } => {
                fail!(
                    "no HTTP answer to an invalid message: {}",
                    refusal.describe()
                );
            }
        }
    }
    Ok(())
}

#[then("the refusal leaks no internals")]
async fn no_internals(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        if let Some(hit) = INTERNALS.iter().find(|p| ex.body().contains(*p)) {
            w.record(json!({"leak": hit, "body": ex.body()}));
            fail!(
                "the error answer shows internals ({hit:?}): {:.300}",
                ex.body()
            );
        }
    }
    Ok(())
}

#[then("the message is not among the accepted messages")]
async fn not_accepted(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    if w.planted_ids.is_empty() {
        // Bodies that are not JSON carry no id; their refusal status was checked above.
        return Ok(());
    }
    if w.ctx()?.accepted_url.is_none() {
        w.record(json!({"accepted_observed": false, "note": "the IUT declares no observe.accepted_url: only its answer was checked"}));
        return Ok(());
    }
    let accepted = w.accepted_ids().await?;
    for id in w.planted_ids.clone() {
        if accepted.contains(&id) {
            fail!("the IUT lists message {id} among its accepted messages although it is invalid");
        }
    }
    Ok(())
}

#[then("a valid message is accepted right after")]
async fn valid_after(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let m = w.message_type()?;
    let mut example = m.examples.first().cloned().unwrap_or(Value::Null);
    let id = plant_id(&m, &mut example);
    let ex = w
        .post(
            &m.endpoint,
            Some("application/json".into()),
            serde_json::to_vec(&example)?,
        )
        .await?;
    if !ex.granted() {
        w.record(json!({"valid_after": false, "summary": ex.describe()}));
        fail!(
            "a valid message was not accepted after the invalid one: {}",
            ex.describe()
        );
    }
    if let (Some(id), Some(_)) = (&id, &w.ctx()?.accepted_url) {
        if !w.accepted_ids().await?.contains(id) {
            fail!(
                "the IUT answered {} to a valid message but does not list {id} as accepted",
                ex.status().unwrap_or(0)
            );
        }
    }
    w.record(json!({"valid_after": true, "id": id, "status": ex.status()}));
    Ok(())
}

#[when(regex = r"^the client sends (\d+) generated invalid messages$")]
async fn property(w: &mut ProvstenWorld, n: u32) -> anyhow::Result<()> {
    let m = w.message_type()?;
    let ctx = w.ctx()?;
    let example = m.examples.first().cloned().unwrap_or(Value::Null);
    let identity = w.sender_identity()?;
    let handle = tokio::runtime::Handle::current();
    let (target, endpoint, timeout) = (ctx.target.clone(), m.endpoint.clone(), ctx.request_timeout);
    let refused = m.refused_statuses.clone();
    let sent = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = sent.clone();
    let (validator, schema) = (m.validator.clone(), m.schema.clone());
    // The generator and shrinker are synchronous; each probe is a real request.
    let found = tokio::task::spawn_blocking(move || {
        invalid::find_accepted_invalid(validator, &schema, &example, n, 0x5eed, |msg| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut spec = ClientSpec::new(Some(identity.clone()), timeout);
            spec.body = Some((
                Some("application/json".into()),
                serde_json::to_vec(msg).unwrap_or_default(),
            ));
            match handle.block_on(peers::request(&target, &spec, "POST", &endpoint)) {
                Ok(ex) => !matches!(ex.status(), Some(s) if refused.contains(&s)),
                Err(_) => false,
            }
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("the property run failed: {e}"))?;
    w.record(json!({"generated": n, "requests": sent.load(std::sync::atomic::Ordering::Relaxed), "seed": 0x5eed}));
    w.counter_example = found.map(|c| serde_json::to_value(c).unwrap_or(Value::Null));
    Ok(())
}

#[then("every generated invalid message is refused")]
async fn all_refused(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    if let Some(c) = w.counter_example.clone() {
        let pointer = c["violations"][0]["instance_path"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let rule = c["violations"][0]["schema_path"]
            .as_str()
            .unwrap_or("")
            .to_string();
        w.record(json!({"counter_example": c}));
        fail!(
            "the IUT accepted an invalid message; minimal counter-example (violates {rule} at {pointer:?}): {}",
            c["message"]
        );
    }
    Ok(())
}

#[when(regex = r"^the client calls the (current|deprecated|unsupported) API version$")]
async fn call_version(w: &mut ProvstenWorld, which: String) -> anyhow::Result<()> {
    let v =
        w.ctx()?.versions.clone().ok_or_else(|| {
            ProvstenWorld::not_applicable("the IUT config declares no [versions]")
        })?;
    let version = match which.as_str() {
        "current" => v.current.clone(),
        "deprecated" => v.deprecated.first().cloned().ok_or_else(|| {
            ProvstenWorld::not_applicable("the IUT declares no deprecated version")
        })?,
        _ => v.unsupported.clone(),
    };
    let path = v.path.replace("{version}", &version);
    if w.client_cert.is_none() {
        w.client_cert = Some("client-5560000001".into());
    }
    super::mtls::send(w, path, peers::ServerCheck::AcceptAny).await?;
    w.record(json!({"api_version": version, "kind": which}));
    Ok(())
}

#[then("the call succeeds")]
async fn call_succeeds(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        if !ex.granted() {
            fail!("expected HTTP 2xx: {}", ex.describe());
        }
    }
    Ok(())
}

#[then("the answer carries Deprecation and Sunset headers")]
async fn deprecation_headers(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        let (dep, sunset) = (
            ex.header("deprecation").map(str::to_string),
            ex.header("sunset").map(str::to_string),
        );
        w.record(json!({"deprecation": dep, "sunset": sunset}));
        match (dep, sunset) {
            (Some(_), Some(s)) if httpdate_like(&s) => {}
            (d, s) => fail!("a deprecated version must answer with Deprecation and Sunset (an HTTP date); got Deprecation {d:?}, Sunset {s:?}"),
        }
    }
    Ok(())
}

fn httpdate_like(s: &str) -> bool {
    s.ends_with(" GMT") && s.len() >= 25
}

#[then("the call is refused with an error naming the version")]
async fn version_refused(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let v = w
        .ctx()?
        .versions
        .clone()
        .ok_or_else(|| ProvstenWorld::not_applicable("no [versions]"))?;
    for ex in w.exchanges()? {
        let ok = matches!(ex.status(), Some(400..=499))
            && (ex.body().contains(&v.unsupported) || ex.body().contains(&v.current));
        w.record(
            json!({"status": ex.status(), "body": ex.body().chars().take(300).collect::<String>()}),
        );
        if !ok {
            fail!(
                "an unsupported version ({}) must get a clear 4xx error naming it or the supported versions; {}",
                v.unsupported,
                ex.describe()
            );
        }
    }
    Ok(())
}
