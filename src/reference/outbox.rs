//! The sender's outbox: one JSON record per queued message, written aside, synced and
//! renamed (then the directory synced), so a record on disk is always whole and a message
//! answered 202 survives a crash. Attempt counts, the next due time and the final state
//! live in the record; a restarted sender resumes from them.
//!
//! Without a directory (or under the `lose-on-restart` defect) records live in memory only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum State {
    Pending,
    Delivered,
    Undeliverable,
}

/// One queued message and how far its delivery got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Record {
    /// Queue order (also the file name).
    pub seq: u64,
    pub id: String,
    pub to: String,
    #[serde(default)]
    pub entity: Option<String>,
    pub body: Value,
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

pub(super) struct Outbox {
    dir: Option<PathBuf>,
    records: BTreeMap<u64, Record>,
}

impl Outbox {
    /// Opens (creating it if missing) a durable outbox, or a memory-only one.
    pub(super) fn open(dir: Option<&Path>) -> anyhow::Result<Outbox> {
        let mut records = BTreeMap::new();
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the outbox directory {}", dir.display()))?;
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("reading the outbox directory {}", dir.display()))?;
            for e in entries {
                let path = e?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
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
        }
        Ok(Outbox {
            dir: dir.map(Path::to_path_buf),
            records,
        })
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.records.keys().next_back().map_or(1, |s| s + 1)
    }

    pub(super) fn get(&self, seq: u64) -> Option<&Record> {
        self.records.get(&seq)
    }

    pub(super) fn find_id(&self, id: &str) -> Option<&Record> {
        self.records.values().find(|r| r.id == id)
    }

    pub(super) fn all(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    pub(super) fn ids_in(&self, state: State) -> Vec<String> {
        self.records
            .values()
            .filter(|r| r.state == state)
            .map(|r| r.id.clone())
            .collect()
    }

    /// Writes the record durably (when the outbox has a directory), then keeps it.
    pub(super) fn put(&mut self, r: Record) -> anyhow::Result<()> {
        if let Some(dir) = &self.dir {
            write_durably(
                dir,
                &format!("{:012}.json", r.seq),
                &serde_json::to_vec(&r)?,
            )?;
        }
        self.records.insert(r.seq, r);
        Ok(())
    }
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
        Record {
            seq,
            id: id.into(),
            to: "https://127.0.0.1:1/v1/notifications".into(),
            entity: None,
            body: serde_json::json!({"Identity": id}),
            state: State::Pending,
            attempts: 0,
            next_due_ms: 0,
            first_attempt_ms: None,
            policy_offset_ns: 0,
            finished_at: None,
            last_outcome: None,
        }
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
}
