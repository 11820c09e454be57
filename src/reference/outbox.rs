//! The sender's outbox: one record per queued message. Attempt counts, the next due time
//! and the final state live in the record; a restarted sender resumes from them.
//!
//! Two durable forms share one directory:
//! - messages with a `to` (the sender): one JSON file per record, written aside, synced and
//!   renamed (then the directory synced), so a record on disk is always whole and a message
//!   answered 202 survives a crash;
//! - routed messages (the router): appended as JSON lines to a journal segment
//!   (`journal-NNNNNN.log`) by one writer thread that syncs once per group of writes, so a
//!   batch of thousands costs one fsync. A later line for a record replaces an earlier
//!   one; a torn last line (a crash mid-append, never answered) is ignored. Each start
//!   appends to a new segment.
//!
//! In memory, records are indexed by id, by state and by entity (the pending ones), so
//! queueing, duplicate checks and per-entity order are O(1) or O(log n).
//!
//! Without a directory (or under the `lose-on-restart` defect) records live in memory only.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum State {
    Pending,
    Delivered,
    Undeliverable,
}

/// A message body. A routed message that is final keeps it as compact JSON text (a
/// tenth of the memory of a parsed value), enough to tell a resubmission from a conflict;
/// on disk it is always the JSON value.
#[derive(Debug, Clone)]
pub(super) enum Body {
    Value(Value),
    Compact(Box<str>),
}

impl Body {
    pub(super) fn value(&self) -> Cow<'_, Value> {
        match self {
            Body::Value(v) => Cow::Borrowed(v),
            // Written by `compact` from a Value: it parses.
            Body::Compact(s) => Cow::Owned(serde_json::from_str(s).unwrap_or(Value::Null)),
        }
    }

    /// Whether the body is `v` (a Value serialises the same way every time: object keys
    /// sorted).
    pub(super) fn is(&self, v: &Value) -> bool {
        match self {
            Body::Value(b) => b == v,
            Body::Compact(s) => serde_json::to_string(v).is_ok_and(|t| *t == **s),
        }
    }

    fn compact(&mut self) {
        if let Body::Value(v) = self {
            if let Ok(s) = serde_json::to_string(v) {
                *self = Body::Compact(s.into_boxed_str());
            }
        }
    }
}

impl From<Value> for Body {
    fn from(v: Value) -> Body {
        Body::Value(v)
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.value() == other.value()
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        Value::deserialize(d).map(Body::Value)
    }
}

/// One queued message and how far its delivery got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Record {
    /// Queue order (also the file name).
    pub seq: u64,
    pub id: String,
    /// The receiver's URL; None: a routed message (sent through the `--route`s).
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub entity: Option<String>,
    pub body: Body,
    pub state: State,
    /// Attempts started so far.
    pub attempts: u32,
    /// When the next attempt is due (Unix ms, wall clock).
    pub next_due_ms: u64,
    /// When attempt 1 started (Unix ms).
    #[serde(default)]
    pub first_attempt_ms: Option<u64>,
    /// The next attempt's offset from the first in the policy's own (unscaled) time, in ns:
    /// what `max_total` is compared with.
    #[serde(default)]
    pub policy_offset_ns: u64,
    /// When it was delivered (RFC 3339) or given up.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The last attempt's outcome, for the curious.
    #[serde(default)]
    pub last_outcome: Option<String>,
    /// The route a routed message was delivered through.
    #[serde(default)]
    pub route: Option<String>,
    /// The router lane (`--route LANE/NAME=URL`) a routed message goes through.
    #[serde(default = "first_lane", skip_serializing_if = "is_first_lane")]
    pub lane: u16,
}

fn first_lane() -> u16 {
    1
}

fn is_first_lane(lane: &u16) -> bool {
    *lane == 1
}

impl Record {
    /// A new pending record, due now.
    pub(super) fn new(
        seq: u64,
        id: String,
        to: Option<String>,
        entity: Option<String>,
        body: Value,
    ) -> Record {
        Record {
            seq,
            id,
            to,
            entity,
            body: Body::Value(body),
            state: State::Pending,
            attempts: 0,
            next_due_ms: now_ms(),
            first_attempt_ms: None,
            policy_offset_ns: 0,
            finished_at: None,
            last_outcome: None,
            route: None,
            lane: 1,
        }
    }

    /// What `GET /admin/outbox?detail` shows (the body left out).
    pub(super) fn summary(&self) -> Value {
        json!({
            "seq": self.seq,
            "id": self.id,
            "to": self.to,
            "entity": self.entity,
            "state": self.state,
            "attempts": self.attempts,
            "route": self.route,
            "finished_at": self.finished_at,
            "last_outcome": self.last_outcome,
        })
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// How long until a wall-clock time (zero when it is past).
pub(super) fn until_ms(at: u64) -> Duration {
    Duration::from_millis(at.saturating_sub(now_ms()))
}

/// A journal segment grows to about this size before the writer starts the next one.
const SEGMENT_BYTES: u64 = 128 << 20;
const JOURNAL_PREFIX: &str = "journal-";
const JOURNAL_SUFFIX: &str = ".log";

/// Waits until staged journal lines are on disk.
pub(super) struct Durable(Option<oneshot::Receiver<Result<(), String>>>);

impl Durable {
    pub(super) async fn wait(self) -> anyhow::Result<()> {
        match self.0 {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => bail!("{e}"),
                Err(_) => bail!("the outbox journal writer stopped"),
            },
        }
    }
}

struct Append {
    bytes: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The journal's writer thread: appends what it is given, one sync per group.
struct Journal {
    tx: mpsc::Sender<Append>,
}

impl Journal {
    /// Starts the writer; it creates segment `first_segment` on its first append.
    fn start(dir: &Path, first_segment: u64) -> anyhow::Result<Journal> {
        let (tx, rx) = mpsc::channel::<Append>();
        let dir = dir.to_path_buf();
        let open = move |n: u64| -> std::io::Result<std::fs::File> {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(segment_name(n)))?;
            std::fs::File::open(&dir)?.sync_all()?;
            Ok(f)
        };
        std::thread::Builder::new()
            .name("outbox-journal".into())
            .spawn(move || {
                let mut segment = first_segment;
                let mut file: Option<std::fs::File> = None;
                let mut written = 0u64;
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        group.push(more);
                    }
                    let mut bytes = Vec::new();
                    for w in &group {
                        bytes.extend_from_slice(&w.bytes);
                    }
                    if written >= SEGMENT_BYTES {
                        file = None;
                        segment += 1;
                        written = 0;
                    }
                    let f = match file.take() {
                        Some(f) => Ok(f),
                        None => open(segment),
                    };
                    let result = f
                        .and_then(|mut f| {
                            f.write_all(&bytes)?;
                            f.sync_data()?;
                            file = Some(f);
                            Ok(())
                        })
                        .map_err(|e| {
                            format!(
                                "appending to the outbox journal {}: {e}",
                                segment_name(segment)
                            )
                        });
                    written += bytes.len() as u64;
                    if result.is_err() {
                        // A partial line may end this segment: later lines go to a new one,
                        // so the torn line stays a last line.
                        segment += 1;
                        written = 0;
                    }
                    for w in group {
                        let _ = w.done.send(result.clone());
                    }
                }
            })
            .context("starting the outbox journal writer")?;
        Ok(Journal { tx })
    }

    fn append(&self, bytes: Vec<u8>) -> Durable {
        let (done, rx) = oneshot::channel();
        match self.tx.send(Append { bytes, done }) {
            Ok(()) => Durable(Some(rx)),
            Err(mpsc::SendError(w)) => {
                let _ = w.done.send(Err("the outbox journal writer stopped".into()));
                Durable(Some(rx))
            }
        }
    }
}

fn segment_name(n: u64) -> String {
    format!("{JOURNAL_PREFIX}{n:06}{JOURNAL_SUFFIX}")
}

fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix(JOURNAL_PREFIX)?
        .strip_suffix(JOURNAL_SUFFIX)?
        .parse()
        .ok()
}

pub(super) struct Outbox {
    dir: Option<PathBuf>,
    journal: Option<Journal>,
    /// Boxed: appended in order, the map's nodes stay half full, so they hold pointers.
    records: BTreeMap<u64, Box<Record>>,
    by_id: HashMap<String, u64>,
    pending: BTreeSet<u64>,
    undeliverable: BTreeSet<u64>,
    /// Pending records of each entity, in queue order.
    entity_pending: HashMap<String, BTreeSet<u64>>,
    /// The next sequence number: kept apart from `records`, whose newest may be forgotten.
    next: u64,
    /// How long a delivered routed record stays in memory (None: for ever).
    retention: Option<Duration>,
    /// Delivered routed records in the order they became final, to forget after
    /// `retention`. A router delivers millions; the journal keeps them on disk.
    delivered: std::collections::VecDeque<(std::time::Instant, u64)>,
}

impl Outbox {
    /// Opens (creating it if missing) a durable outbox, or a memory-only one.
    pub(super) fn open(dir: Option<&Path>) -> anyhow::Result<Outbox> {
        let mut records = BTreeMap::new();
        let mut journal = None;
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the outbox directory {}", dir.display()))?;
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("reading the outbox directory {}", dir.display()))?;
            let mut segments = BTreeMap::new();
            for e in entries {
                let path = e?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                if let Some(n) = segment_number(&name) {
                    segments.insert(n, path);
                    continue;
                }
                if name.ends_with(".tmp") {
                    // A write that never reached its rename: the message was not answered 202.
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if !name.ends_with(".json") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let r: Record = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a provsten outbox record", path.display()))?;
                records.insert(r.seq, r);
            }
            for path in segments.values() {
                read_segment(path, &mut records)?;
            }
            let next = segments.keys().next_back().map_or(1, |n| n + 1);
            journal = Some(Journal::start(dir, next)?);
        }
        let mut o = Outbox {
            dir: dir.map(Path::to_path_buf),
            journal,
            records: BTreeMap::new(),
            by_id: HashMap::new(),
            pending: BTreeSet::new(),
            undeliverable: BTreeSet::new(),
            entity_pending: HashMap::new(),
            next: 1,
            retention: None,
            delivered: std::collections::VecDeque::new(),
        };
        for (_, r) in records {
            o.keep(r);
        }
        Ok(o)
    }

    /// Forget delivered routed records this long after they were delivered (or, for those
    /// read back from disk, after now): a repeat of such an id is then a new message.
    pub(super) fn set_retention(&mut self, retention: Option<Duration>) {
        self.retention = retention;
        self.expire();
    }

    fn expire(&mut self) {
        let Some(keep_for) = self.retention else {
            return;
        };
        let now = std::time::Instant::now();
        while let Some(&(at, seq)) = self.delivered.front() {
            if now.saturating_duration_since(at) < keep_for {
                break;
            }
            self.delivered.pop_front();
            if self
                .records
                .get(&seq)
                .is_some_and(|r| r.state == State::Delivered)
            {
                if let Some(old) = self.records.remove(&seq) {
                    self.unindex(&old);
                }
            }
        }
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.next
    }

    pub(super) fn get(&self, seq: u64) -> Option<&Record> {
        self.records.get(&seq).map(|r| &**r)
    }

    pub(super) fn find_id(&self, id: &str) -> Option<&Record> {
        self.by_id
            .get(id)
            .and_then(|s| self.records.get(s))
            .map(|r| &**r)
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &Record> {
        self.records.values().map(|r| &**r)
    }

    /// Pending records in queue order.
    pub(super) fn pending(&self) -> impl Iterator<Item = &Record> {
        self.pending
            .iter()
            .filter_map(|s| self.records.get(s))
            .map(|r| &**r)
    }

    pub(super) fn ids_in(&self, state: State) -> Vec<String> {
        let index = match state {
            State::Pending => &self.pending,
            State::Undeliverable => &self.undeliverable,
            State::Delivered => {
                return self
                    .records
                    .values()
                    .filter(|r| r.state == state)
                    .map(|r| r.id.clone())
                    .collect()
            }
        };
        index
            .iter()
            .filter_map(|s| self.records.get(s))
            .map(|r| r.id.clone())
            .collect()
    }

    /// The first pending record of `entity` (the one whose turn it is).
    pub(super) fn first_pending_of(&self, entity: &str) -> Option<u64> {
        self.entity_pending
            .get(entity)
            .and_then(|s| s.first().copied())
    }

    /// Whether an earlier record of the same entity is still pending.
    pub(super) fn waits_for_predecessor(&self, seq: u64) -> bool {
        let Some(entity) = self.records.get(&seq).and_then(|r| r.entity.as_deref()) else {
            return false;
        };
        self.first_pending_of(entity)
            .is_some_and(|first| first < seq)
    }

    /// Writes the record durably (when the outbox has a directory), then keeps it. For
    /// messages with a `to`: one file per record.
    pub(super) fn put(&mut self, r: Record) -> anyhow::Result<()> {
        if let Some(dir) = &self.dir {
            write_durably(
                dir,
                &format!("{:012}.json", r.seq),
                &serde_json::to_vec(&r)?,
            )?;
        }
        self.keep(r);
        Ok(())
    }

    /// Keeps the records at once and appends them to the journal in one write; the
    /// returned [`Durable`] resolves when they are on disk. Appends made under one lock
    /// of the outbox reach the disk in the order they were made.
    pub(super) fn stage(&mut self, records: Vec<Record>) -> Durable {
        let durable = self.append(&records);
        for r in records {
            self.keep(r);
        }
        durable
    }

    /// Appends the records to the journal without keeping them: [`Outbox::keep`] them
    /// once the [`Durable`] resolved, and nobody sees a state that is not on disk yet.
    pub(super) fn append(&self, records: &[Record]) -> Durable {
        let Some(journal) = &self.journal else {
            return Durable(None);
        };
        let mut bytes = Vec::new();
        for r in records {
            // A Record always serialises (string keys, no non-finite floats).
            if serde_json::to_writer(&mut bytes, r).is_ok() {
                bytes.push(b'\n');
            }
        }
        journal.append(bytes)
    }

    /// Forgets records whose durable write failed (they were never answered 202).
    pub(super) fn forget(&mut self, seqs: &[u64]) {
        for s in seqs {
            if let Some(old) = self.records.remove(s) {
                self.unindex(&old);
            }
        }
    }

    /// Keeps the record in memory (indexed), replacing an older state of it.
    pub(super) fn keep(&mut self, mut r: Record) {
        if r.to.is_none() && r.state != State::Pending {
            // Up to millions of routed messages are kept: final ones compactly.
            r.body.compact();
        }
        if let Some(old) = self.records.remove(&r.seq) {
            self.unindex(&old);
        }
        self.next = self.next.max(r.seq + 1);
        self.by_id.insert(r.id.clone(), r.seq);
        if r.state == State::Delivered && r.to.is_none() {
            self.delivered.push_back((std::time::Instant::now(), r.seq));
        }
        match r.state {
            State::Pending => {
                self.pending.insert(r.seq);
                if let Some(e) = &r.entity {
                    self.entity_pending
                        .entry(e.clone())
                        .or_default()
                        .insert(r.seq);
                }
            }
            State::Undeliverable => {
                self.undeliverable.insert(r.seq);
            }
            State::Delivered => {}
        }
        self.records.insert(r.seq, Box::new(r));
        self.expire();
    }

    fn unindex(&mut self, old: &Record) {
        if self.by_id.get(&old.id) == Some(&old.seq) {
            self.by_id.remove(&old.id);
        }
        self.pending.remove(&old.seq);
        self.undeliverable.remove(&old.seq);
        if let Some(e) = &old.entity {
            if let Some(set) = self.entity_pending.get_mut(e) {
                set.remove(&old.seq);
                if set.is_empty() {
                    self.entity_pending.remove(e);
                }
            }
        }
    }
}

/// Reads one journal segment into `records` (a later line replaces an earlier one). A
/// last line that does not parse is a torn append and is skipped; any other is an error.
fn read_segment(path: &Path, records: &mut BTreeMap<u64, Record>) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => {
                records.insert(r.seq, r);
            }
            // The last line has no newline after it: it is the one a crash can tear.
            Err(_) if i == last => {
                tracing::warn!(file = %path.display(), "skipping a torn last line of the outbox journal");
            }
            Err(e) => bail!(
                "{} line {}: not a provsten outbox record ({e})",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(())
}

/// Temp file, fsync, rename, fsync the directory.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        bail!("writing the outbox record {}: {e}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, id: &str) -> Record {
        Record::new(
            seq,
            id.into(),
            Some("https://127.0.0.1:1/v1/notifications".into()),
            None,
            serde_json::json!({"Identity": id}),
        )
    }

    fn routed(seq: u64, id: &str, entity: Option<&str>) -> Record {
        let mut r = record(seq, id);
        r.to = None;
        r.entity = entity.map(str::to_string);
        r
    }

    #[test]
    fn records_survive_reopening_and_half_writes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(Some(dir.path())).unwrap();
        o.put(record(1, "a")).unwrap();
        let mut b = record(2, "b");
        o.put(b.clone()).unwrap();
        b.attempts = 3;
        b.state = State::Undeliverable;
        o.put(b.clone()).unwrap();
        std::fs::write(dir.path().join("000000000003.json.tmp"), b"{half").unwrap();
        drop(o);
        let o = Outbox::open(Some(dir.path())).unwrap();
        assert_eq!(o.ids_in(State::Pending), vec!["a"]);
        assert_eq!(o.ids_in(State::Undeliverable), vec!["b"]);
        assert_eq!(o.get(2), Some(&b));
        assert_eq!(o.next_seq(), 3);
        assert!(!dir.path().join("000000000003.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("000000000001.json"), b"nope").unwrap();
        let err = Outbox::open(Some(dir.path())).err().unwrap();
        assert!(format!("{err:#}").contains("000000000001.json"), "{err:#}");
    }

    #[test]
    fn memory_only_outbox_writes_nothing() {
        let mut o = Outbox::open(None).unwrap();
        o.put(record(1, "a")).unwrap();
        assert_eq!(o.find_id("a").map(|r| r.seq), Some(1));
    }

    #[test]
    fn records_without_a_route_field_still_load() {
        let r: Record = serde_json::from_str(
            r#"{"seq":1,"id":"a","to":"https://h:1/","body":{},"state":"pending","attempts":0,"next_due_ms":0}"#,
        )
        .unwrap();
        assert_eq!((r.route, r.to.as_deref()), (None, Some("https://h:1/")));
    }

    #[tokio::test]
    async fn journal_lines_replay_the_latest_state_and_a_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(Some(dir.path())).unwrap();
        o.put(record(1, "file")).unwrap();
        let batch = vec![routed(2, "r2", Some("E")), routed(3, "r3", Some("E"))];
        o.stage(batch).wait().await.unwrap();
        assert!(o.waits_for_predecessor(3));
        assert!(!o.waits_for_predecessor(2));
        let mut done = o.get(2).unwrap().clone();
        done.state = State::Delivered;
        done.route = Some("backup".into());
        o.stage(vec![done.clone()]).wait().await.unwrap();
        assert!(!o.waits_for_predecessor(3));
        assert_eq!(o.first_pending_of("E"), Some(3));
        drop(o);
        // A crash mid-append: half a line at the end of the segment.
        let seg = dir.path().join(segment_name(1));
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"seq\":4,\"id\":\"r").unwrap();
        drop(f);
        let mut o = Outbox::open(Some(dir.path())).unwrap();
        assert_eq!(o.get(2), Some(&done));
        assert!(matches!(o.get(2).unwrap().body, Body::Compact(_)));
        assert!(o.get(2).unwrap().body.is(&json!({"Identity": "r2"})));
        assert!(!o.get(2).unwrap().body.is(&json!({"Identity": "r3"})));
        assert_eq!(o.ids_in(State::Pending), vec!["file", "r3"]);
        assert_eq!(o.find_id("r3").map(|r| r.seq), Some(3));
        assert_eq!(o.next_seq(), 4);
        // The reopened outbox appends to a new segment.
        o.stage(vec![routed(4, "r4", None)]).wait().await.unwrap();
        assert!(dir.path().join(segment_name(2)).is_file());
        drop(o);
        let o = Outbox::open(Some(dir.path())).unwrap();
        assert_eq!(o.ids_in(State::Pending), vec!["file", "r3", "r4"]);
    }

    #[test]
    fn a_corrupt_journal_line_before_the_last_is_an_error_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(segment_name(1)), b"nope\n{}\n").unwrap();
        let err = format!("{:#}", Outbox::open(Some(dir.path())).err().unwrap());
        assert!(err.contains("journal-000001.log line 1"), "{err}");
    }

    #[test]
    fn delivered_routed_records_are_forgotten_after_the_retention_and_nothing_else() {
        let mut o = Outbox::open(None).unwrap();
        let done = |mut r: Record, state| {
            r.state = state;
            r
        };
        o.keep(done(routed(1, "delivered", None), State::Delivered));
        o.keep(done(routed(2, "undeliverable", None), State::Undeliverable));
        o.keep(routed(3, "pending", None));
        o.keep(done(record(4, "addressed"), State::Delivered));
        o.set_retention(Some(Duration::from_millis(30)));
        assert!(
            o.find_id("delivered").is_some(),
            "forgotten before its time"
        );
        std::thread::sleep(Duration::from_millis(40));
        o.keep(done(routed(5, "later", None), State::Delivered));
        assert!(o.find_id("delivered").is_none());
        for kept in ["undeliverable", "pending", "addressed", "later"] {
            assert!(o.find_id(kept).is_some(), "{kept} forgotten");
        }
        assert_eq!(o.ids_in(State::Undeliverable), ["undeliverable"]);
        // Sequence numbers never go back, whatever was forgotten.
        o.keep(done(routed(6, "last", None), State::Delivered));
        std::thread::sleep(Duration::from_millis(40));
        o.set_retention(Some(Duration::from_millis(30)));
        assert!(o.find_id("last").is_none());
        assert_eq!(o.next_seq(), 7);
    }

    #[test]
    fn forgotten_records_leave_no_index_behind() {
        let mut o = Outbox::open(None).unwrap();
        let _ = o.stage(vec![routed(1, "a", Some("E")), routed(2, "b", Some("E"))]);
        o.forget(&[1, 2]);
        assert!(o.find_id("a").is_none());
        assert!(o.first_pending_of("E").is_none());
        assert!(o.ids_in(State::Pending).is_empty());
    }
}
