//! Toxics: what the fault proxy does to the bytes of a live connection, one file each and
//! one table, [`TOXICS`], keyed by the Toxiproxy wire name (Toxiproxy's `toxics/*.go` and
//! its registry). The proxy API checks toxics against it, and the README's toxic table is
//! [`readme_table`] (a test fails when they differ).
//!
//! A toxic never touches a socket. It is a small planner ([`Toxic`]): each time the pump of
//! one direction of one connection has bytes waiting (or an end of stream, or nothing), it
//! asks each toxic of that stream, in order, how much of it may pass and when
//! ([`Verdict`]). The pump does all the waiting, in one place that also watches the
//! link's toxic list, so every wait is interruptible by construction: removing or updating
//! a toxic re-plans at once, and bytes that were held are released. Bytes only ever leave
//! in order and are never dropped, except when a toxic closes or resets the connection.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::network::proxy_model::{ProxyError, Stream, ToxicSpec};

mod bandwidth;
mod latency;
mod limit_data;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

pub use bandwidth::Bandwidth;
pub use latency::Latency;
pub use limit_data::LimitData;
pub use reset_peer::ResetPeer;
pub use slicer::Slicer;
pub use slow_close::SlowClose;
pub use timeout::Timeout;

/// Every toxic the proxy knows, by Toxiproxy wire name, in Toxiproxy's README order.
pub const TOXICS: &[ToxicKind] = &[
    ToxicKind::of::<Latency>(),
    ToxicKind::of::<Bandwidth>(),
    ToxicKind::of::<SlowClose>(),
    ToxicKind::of::<Timeout>(),
    ToxicKind::of::<ResetPeer>(),
    ToxicKind::of::<Slicer>(),
    ToxicKind::of::<LimitData>(),
];

/// One attribute of a toxic: its JSON name, unit and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute {
    /// The JSON key, as Toxiproxy spells it (`average_size`).
    pub name: &'static str,
    /// The unit of the (non-negative, whole) value: `ms`, `µs`, `bytes`, `KB/s`.
    pub unit: &'static str,
    /// One line on what it does.
    pub doc: &'static str,
}

/// One row of [`TOXICS`]: a toxic type's wire name, documentation and attributes.
#[derive(Clone, Copy)]
pub struct ToxicKind {
    /// The Toxiproxy wire name (`latency`, `reset_peer`).
    pub name: &'static str,
    /// One line on what it does to a connection.
    pub doc: &'static str,
    /// Its attributes, in the order the README lists them.
    pub attributes: &'static [Attribute],
    build: fn(&Map<String, Value>) -> Result<Built, ProxyError>,
}

impl ToxicKind {
    /// The table row of toxic type `T`.
    pub const fn of<T: Toxic>() -> ToxicKind {
        ToxicKind {
            name: T::NAME,
            doc: T::DOC,
            attributes: T::ATTRIBUTES,
            build: build::<T>,
        }
    }

    /// The row for wire name `name`, if there is one.
    pub fn find(name: &str) -> Option<&'static ToxicKind> {
        TOXICS.iter().find(|k| k.name == name)
    }

    /// `latency=<ms>,jitter=<ms>`: the attributes as toxiproxy-cli's help writes them.
    pub fn usage(&self) -> String {
        let parts: Vec<String> = self
            .attributes
            .iter()
            .map(|a| format!("{}=<{}>", a.name, a.unit))
            .collect();
        parts.join(",")
    }
}

/// The README's toxic table, one row per [`TOXICS`] entry.
pub fn readme_table() -> String {
    let mut t = String::from("| toxic | what it does | attributes |\n|---|---|---|\n");
    for k in TOXICS {
        let attrs: Vec<String> = k
            .attributes
            .iter()
            .map(|a| format!("`{}` ({}): {}", a.name, a.unit, a.doc))
            .collect();
        t += &format!("| `{}` | {} | {} |\n", k.name, k.doc, attrs.join("; "));
    }
    t
}

impl fmt::Debug for ToxicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToxicKind")
            .field("name", &self.name)
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

/// What a toxic is shown: what waits at its place in the chain of its stream.
///
/// Three shapes: bytes (`data` not empty), the end of the stream (`eof`, no data: the
/// source half-closed after everything before it passed), or nothing at all (idle: the
/// toxic may still act on time alone, as `timeout` does).
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// The bytes still to pass, as far as the toxics before this one let them through.
    pub data: &'a [u8],
    /// Whether this is the end of the stream.
    pub eof: bool,
    /// The number of the chunk on this stream, the same each time the chunk is re-planned.
    pub seq: u64,
    /// When the proxy read the chunk from the source (now, when idle).
    pub read_at: Instant,
    /// The earliest time the toxics before this one let it go (at least `read_at`).
    pub ready_at: Instant,
    /// Now.
    pub now: Instant,
}

impl Piece<'_> {
    /// Nothing waits: no bytes and no end of stream.
    pub fn is_idle(&self) -> bool {
        self.data.is_empty() && !self.eof
    }

    /// Let everything through as the toxics before allowed it.
    pub fn pass(&self) -> Verdict {
        Verdict::Pass {
            len: self.data.len(),
            at: self.ready_at,
        }
    }
}

/// A toxic's answer for one [`Piece`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the first `len` bytes (or the end of stream) go on, not before `at`.
    Pass {
        /// How many bytes of `data`; the rest waits for the next plan.
        len: usize,
        /// Not before this time.
        at: Instant,
    },
    /// Let nothing through until the toxic list changes (`timeout` 0).
    Hold,
    /// Let nothing through, and close the whole connection (a FIN both ways) at `at`.
    Close {
        /// When.
        at: Instant,
    },
    /// Let nothing through, and reset the whole connection (a TCP RST both ways) at `at`.
    Reset {
        /// When.
        at: Instant,
    },
}

/// A toxic type: its attributes are the struct's fields (Toxiproxy's field names), its
/// behaviour a planner over the bytes waiting on one stream of one connection.
///
/// `plan` may be asked about the same piece more than once (after any change of the toxic
/// list, or when more bytes are read), so it must not count anything: it may only cache
/// (a random size, a sampled jitter) in its state. `commit` is told what was actually
/// written, and is where counting happens.
pub trait Toxic:
    Serialize + DeserializeOwned + Default + fmt::Debug + Send + Sync + 'static
{
    /// The Toxiproxy wire name.
    const NAME: &'static str;
    /// One line on what it does.
    const DOC: &'static str;
    /// Its attributes (the serde fields of `Self`).
    const ATTRIBUTES: &'static [Attribute];

    /// Per-connection state: made when the toxic starts acting on a connection (when the
    /// connection opens, or when the toxic is added to a live one).
    type State: Send + 'static;

    /// Checks beyond "every attribute is a non-negative whole number"; the message names
    /// the attribute and what would work.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// The state for a connection this toxic starts acting on at `now`.
    fn start(&self, now: Instant) -> Self::State;

    /// The state after the toxic's attributes were updated on a live connection: by
    /// default a fresh start (as Toxiproxy restarts a toxic's pipe); counters keep theirs.
    fn restart(&self, old: Self::State, now: Instant) -> Self::State {
        let _ = old;
        self.start(now)
    }

    /// What may pass of `piece`, and when.
    fn plan(&self, state: &mut Self::State, piece: &Piece<'_>) -> Verdict;

    /// `written` bytes of the planned piece were written at `now`.
    fn commit(&self, state: &mut Self::State, written: usize, now: Instant) {
        let _ = (state, written, now);
    }
}

/// Per-connection state of a toxic, type-erased.
pub(crate) type DynState = Box<dyn Any + Send>;

/// [`Toxic`] with its state type erased, so one chain holds toxics of any type.
pub(crate) trait DynToxic: Send + Sync + fmt::Debug {
    fn start(&self, now: Instant) -> DynState;
    fn restart(&self, old: DynState, now: Instant) -> DynState;
    fn plan(&self, state: &mut DynState, piece: &Piece<'_>) -> Verdict;
    fn commit(&self, state: &mut DynState, written: usize, now: Instant);
}

impl<T: Toxic> DynToxic for T {
    fn start(&self, now: Instant) -> DynState {
        Box::new(Toxic::start(self, now))
    }

    fn restart(&self, old: DynState, now: Instant) -> DynState {
        match old.downcast::<T::State>() {
            Ok(old) => Box::new(Toxic::restart(self, *old, now)),
            Err(_) => DynToxic::start(self, now),
        }
    }

    fn plan(&self, state: &mut DynState, piece: &Piece<'_>) -> Verdict {
        if state.downcast_ref::<T::State>().is_none() {
            // Invariant: the pump makes each toxic's state with that toxic's `start`; a
            // mismatch can only come from a bug, and a fresh state is the safe repair.
            *state = DynToxic::start(self, piece.now);
        }
        match state.downcast_mut::<T::State>() {
            Some(s) => Toxic::plan(self, s, piece),
            None => piece.pass(),
        }
    }

    fn commit(&self, state: &mut DynState, written: usize, now: Instant) {
        if let Some(s) = state.downcast_mut::<T::State>() {
            Toxic::commit(self, s, written, now);
        }
    }
}

/// A parsed toxic: the behaviour, and its attributes written back in full (every field,
/// defaults included, as Toxiproxy shows them).
pub(crate) struct Built {
    pub(crate) toxic: Arc<dyn DynToxic>,
    pub(crate) attributes: Value,
}

fn build<T: Toxic>(attributes: &Map<String, Value>) -> Result<Built, ProxyError> {
    let known = || {
        T::ATTRIBUTES
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (key, value) in attributes {
        if !T::ATTRIBUTES.iter().any(|a| a.name == key) {
            return Err(bad_request(format!(
                "{}: unknown attribute {key:?} (known attributes: {})",
                T::NAME,
                known()
            )));
        }
        if value.as_u64().is_none() {
            let why = match value.as_f64() {
                Some(v) if v < 0.0 => "must not be negative",
                _ => "must be a whole number",
            };
            return Err(bad_request(format!(
                "{}: attribute {key:?} {why}, got {value}",
                T::NAME
            )));
        }
    }
    let toxic: T = serde_json::from_value(Value::Object(attributes.clone()))
        .map_err(|e| bad_request(format!("{}: attributes: {e}", T::NAME)))?;
    toxic
        .validate()
        .map_err(|e| bad_request(format!("{}: {e}", T::NAME)))?;
    let attributes = serde_json::to_value(&toxic)
        .map_err(|e| bad_request(format!("{}: attributes: {e}", T::NAME)))?;
    Ok(Built {
        toxic: Arc::new(toxic),
        attributes,
    })
}

fn bad_request(detail: String) -> ProxyError {
    ProxyError::BadRequest(format!("bad request body: {detail}"))
}

fn attribute_map(value: &Value) -> Result<Map<String, Value>, ProxyError> {
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map.clone()),
        other => Err(bad_request(format!(
            "attributes must be a JSON object, got {other}"
        ))),
    }
}

fn check_toxicity(toxicity: f32) -> Result<(), ProxyError> {
    if (0.0..=1.0).contains(&toxicity) {
        Ok(())
    } else {
        Err(bad_request(format!(
            "toxicity {toxicity} is not a probability (hint: between 0.0 and 1.0)"
        )))
    }
}

fn find_kind(kind: &str) -> Result<&'static ToxicKind, ProxyError> {
    ToxicKind::find(kind).ok_or_else(|| {
        let known: Vec<&str> = TOXICS.iter().map(|k| k.name).collect();
        ProxyError::InvalidToxicType(format!(
            "invalid toxic type: {kind:?} (known types: {})",
            known.join(", ")
        ))
    })
}

/// Parses a toxic as given to the API: the type must be known, toxicity a probability and
/// every attribute known and a non-negative whole number. Returns it as it will be shown:
/// name defaulted to `{type}_{stream}`, every attribute written out.
pub fn check(spec: &ToxicSpec) -> Result<ToxicSpec, ProxyError> {
    check_built(spec).map(|(spec, _)| spec)
}

/// [`check`], also returning the behaviour.
pub(crate) fn check_built(spec: &ToxicSpec) -> Result<(ToxicSpec, Arc<dyn DynToxic>), ProxyError> {
    let kind = find_kind(&spec.kind)?;
    check_toxicity(spec.toxicity)?;
    let built = (kind.build)(&attribute_map(&spec.attributes)?)?;
    let name = if spec.name.is_empty() {
        format!("{}_{}", spec.kind, spec.stream)
    } else {
        spec.name.clone()
    };
    let spec = ToxicSpec {
        name,
        kind: spec.kind.clone(),
        stream: spec.stream,
        toxicity: spec.toxicity,
        attributes: built.attributes,
    };
    Ok((spec, built.toxic))
}

/// `existing` with the keys of `update` replaced (Toxiproxy's PATCH of a toxic), checked
/// again as a whole.
pub(crate) fn merge(
    existing: &ToxicSpec,
    attributes: Option<&Value>,
    toxicity: Option<f32>,
) -> Result<(ToxicSpec, Arc<dyn DynToxic>), ProxyError> {
    let mut merged = attribute_map(&existing.attributes)?;
    if let Some(update) = attributes {
        merged.extend(attribute_map(update)?);
    }
    let spec = ToxicSpec {
        name: existing.name.clone(),
        kind: existing.kind.clone(),
        stream: existing.stream,
        toxicity: toxicity.unwrap_or(existing.toxicity),
        attributes: Value::Object(merged),
    };
    check_built(&spec)
}

// Here rather than beside `ToxicSpec`, so the proxy's records need not import the toxics.
impl ToxicSpec {
    /// Toxic `toxic` on `stream`, always acting, named as Toxiproxy defaults a name
    /// (`{type}_{stream}`); its attributes are the struct's fields.
    pub fn of<T: Toxic>(toxic: &T, stream: Stream) -> ToxicSpec {
        ToxicSpec {
            name: format!("{}_{stream}", T::NAME),
            kind: T::NAME.to_string(),
            stream,
            toxicity: 1.0,
            // Invariant: a toxic's attributes are a struct of plain numbers, which always
            // serialize.
            attributes: serde_json::to_value(toxic).expect("toxic attributes serialize"),
        }
    }

    /// Its attributes as toxic `T`: `None` when it is another type, or its attributes are
    /// not `T`'s.
    pub fn toxic<T: Toxic>(&self) -> Option<T> {
        if self.kind != T::NAME {
            return None;
        }
        serde_json::from_value(self.attributes.clone()).ok()
    }
}

/// `t + d`, saturating far in the future instead of overflowing (attributes are
/// unbounded `u64`s).
pub fn later(t: Instant, d: Duration) -> Instant {
    const CAP: Duration = Duration::from_secs(365 * 24 * 3600);
    t.checked_add(d.min(CAP)).unwrap_or(t)
}

/// Milliseconds as a [`Duration`].
pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Planning a toxic without a socket.

    use super::*;

    /// A data piece of `data` read at `at`, seen at `at`.
    pub(crate) fn piece(data: &[u8], seq: u64, at: Instant) -> Piece<'_> {
        Piece {
            data,
            eof: false,
            seq,
            read_at: at,
            ready_at: at,
            now: at,
        }
    }

    /// The end of stream read at `at`.
    pub(crate) fn eof(seq: u64, at: Instant) -> Piece<'static> {
        Piece {
            data: &[],
            eof: true,
            seq,
            read_at: at,
            ready_at: at,
            now: at,
        }
    }

    /// Nothing waiting, at `at`.
    pub(crate) fn idle(seq: u64, at: Instant) -> Piece<'static> {
        Piece {
            eof: false,
            ..eof(seq, at)
        }
    }

    /// Parses `attributes` (a JSON object) as toxic `T`.
    pub(crate) fn parse<T: Toxic>(attributes: Value) -> Result<T, ProxyError> {
        let map = attribute_map(&attributes)?;
        let built = build::<T>(&map)?;
        serde_json::from_value(built.attributes).map_err(|e| ProxyError::BadRequest(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(kind: &str, attributes: Value) -> ToxicSpec {
        ToxicSpec {
            name: String::new(),
            kind: kind.into(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            attributes,
        }
    }

    #[test]
    fn a_typed_toxic_makes_the_spec_its_json_would() {
        let latency = Latency {
            latency: 250,
            jitter: 0,
        };
        let spec = ToxicSpec::of(&latency, Stream::Upstream);
        let by_hand = json!({"name": "latency_upstream", "type": "latency", "stream": "upstream",
            "toxicity": 1.0, "attributes": {"latency": 250, "jitter": 0}});
        assert_eq!(serde_json::to_value(&spec).unwrap(), by_hand);
        assert_eq!(check(&spec).unwrap(), spec);
        assert_eq!(spec.toxic::<Latency>(), Some(latency));
        assert_eq!(spec.toxic::<Timeout>(), None, "another type");
    }

    #[test]
    fn the_readme_shows_the_toxic_table() {
        let readme = include_str!("../../../README.md");
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md's toxic table is not the TOXICS table; replace it with:\n{table}"
        );
    }

    #[test]
    fn table_is_keyed_by_unique_toxiproxy_names() {
        let names: Vec<&str> = TOXICS.iter().map(|k| k.name).collect();
        assert_eq!(
            names,
            [
                "latency",
                "bandwidth",
                "slow_close",
                "timeout",
                "reset_peer",
                "slicer",
                "limit_data"
            ]
        );
        for kind in TOXICS {
            assert!(
                !kind.doc.is_empty() && !kind.attributes.is_empty(),
                "{kind:?}"
            );
            // Every documented attribute is a field the toxic shows, and no other.
            let ones: Map<String, Value> = kind
                .attributes
                .iter()
                .map(|a| (a.name.to_string(), json!(1)))
                .collect();
            let shown =
                check(&spec(kind.name, Value::Object(ones))).expect("all attributes 1 parse");
            let mut keys: Vec<&str> = shown
                .attributes
                .as_object()
                .expect("object")
                .keys()
                .map(|k| k.as_str())
                .collect();
            keys.sort_unstable();
            let mut documented: Vec<&str> = kind.attributes.iter().map(|a| a.name).collect();
            documented.sort_unstable();
            assert_eq!(keys, documented, "{}", kind.name);
        }
        assert_eq!(
            ToxicKind::find("slicer").map(|k| k.usage()).as_deref(),
            Some("average_size=<bytes>,size_variation=<bytes>,delay=<µs>")
        );
    }

    #[test]
    fn check_defaults_name_and_writes_every_attribute() {
        let got = check(&spec("latency", json!({"latency": 100}))).expect("valid");
        assert_eq!(got.name, "latency_downstream");
        assert_eq!(got.attributes, json!({"latency": 100, "jitter": 0}));
        let got = check(&spec("latency", Value::Null)).expect("valid");
        assert_eq!(got.attributes, json!({"latency": 0, "jitter": 0}));
    }

    #[test]
    fn unknown_type_is_invalid_toxic_type() {
        let e = check(&spec("latencyy", json!({}))).expect_err("unknown");
        assert!(matches!(e, ProxyError::InvalidToxicType(_)), "{e:?}");
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string()
                .starts_with("invalid toxic type: \"latencyy\""),
            "{e}"
        );
        assert!(e.to_string().contains("latency, bandwidth"), "{e}");
    }

    #[test]
    fn unknown_or_negative_attribute_is_bad_request_naming_it() {
        let e = check(&spec("latency", json!({"latncy": 5}))).expect_err("unknown key");
        assert!(matches!(e, ProxyError::BadRequest(_)), "{e:?}");
        assert!(
            e.to_string().contains("\"latncy\"") && e.to_string().contains("latency, jitter"),
            "{e}"
        );
        let e = check(&spec("latency", json!({"jitter": -5}))).expect_err("negative");
        assert!(
            e.to_string().contains("\"jitter\" must not be negative"),
            "{e}"
        );
        let e = check(&spec("latency", json!({"jitter": "5"}))).expect_err("string");
        assert!(
            e.to_string().contains("\"jitter\" must be a whole number"),
            "{e}"
        );
        let e = check(&spec("latency", json!([1]))).expect_err("array");
        assert!(e.to_string().contains("JSON object"), "{e}");
        let mut s = spec("latency", json!({}));
        s.toxicity = 1.5;
        assert!(matches!(check(&s), Err(ProxyError::BadRequest(_))));
    }

    #[test]
    fn merge_changes_only_given_keys() {
        let existing =
            check(&spec("latency", json!({"latency": 100, "jitter": 10}))).expect("valid");
        let (merged, _) = merge(&existing, Some(&json!({"jitter": 20})), Some(0.5)).expect("valid");
        assert_eq!(merged.attributes, json!({"latency": 100, "jitter": 20}));
        assert_eq!(merged.toxicity, 0.5);
        assert!(merge(&existing, Some(&json!({"bogus": 1})), None).is_err());
    }

    #[test]
    fn later_saturates() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(later(now, ms(5)), now + ms(5));
    }
}
