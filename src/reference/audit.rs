//! The audit log (FMK-2.6.4-LOG): one entry per message the sender delivered and per
//! message the receiver accepted, with the time. The `no-audit` defect keeps it empty.

use std::sync::Mutex;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Sent,
    Received,
}

pub(super) struct Audit {
    enabled: bool,
    entries: Mutex<Vec<Value>>,
}

/// Now, as RFC 3339.
pub(super) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl Audit {
    pub(super) fn new(enabled: bool) -> Self {
        Audit {
            enabled,
            entries: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn record(&self, id: &str, direction: Direction) {
        self.record_at(id, direction, now_rfc3339());
    }

    pub(super) fn record_at(&self, id: &str, direction: Direction, at: String) {
        if !self.enabled {
            return;
        }
        let direction = match direction {
            Direction::Sent => "sent",
            Direction::Received => "received",
        };
        if let Ok(mut e) = self.entries.lock() {
            e.push(json!({"id": id, "direction": direction, "at": at}));
        }
    }

    pub(super) fn entries(&self) -> Vec<Value> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }
}
