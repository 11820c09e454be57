//! The audit log (FMK-2.6.4-LOG): one entry per message the sender delivered and per
//! message the receiver accepted, with the time. The `no-audit` defect keeps it empty.

use std::sync::Mutex;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Sent,
    Received,
}

/// One entry; kept as a struct, not a JSON value: a router logs millions.
#[derive(Debug, Clone, Serialize)]
struct Entry {
    id: String,
    direction: &'static str,
    at: String,
}

pub(super) struct Audit {
    enabled: bool,
    /// How long an entry is kept (None: for ever); a router logs millions.
    retention: Option<std::time::Duration>,
    entries: Mutex<std::collections::VecDeque<(std::time::Instant, Entry)>>,
}

/// Now, as RFC 3339.
pub(super) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl Audit {
    pub(super) fn new(enabled: bool, retention: Option<std::time::Duration>) -> Self {
        Audit {
            enabled,
            retention,
            entries: Mutex::new(std::collections::VecDeque::new()),
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
            let now = std::time::Instant::now();
            if let Some(keep_for) = self.retention {
                while e
                    .front()
                    .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= keep_for)
                {
                    e.pop_front();
                }
            }
            e.push_back((
                now,
                Entry {
                    id: id.to_string(),
                    direction,
                    at,
                },
            ));
        }
    }

    /// The log as a JSON array of `{"id", "direction", "at"}`.
    pub(super) fn json(&self) -> String {
        self.entries
            .lock()
            .ok()
            .and_then(|e| serde_json::to_string(&e.iter().map(|(_, x)| x).collect::<Vec<_>>()).ok())
            .unwrap_or_else(|| "[]".into())
    }
}
