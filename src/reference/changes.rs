//! The reference IUT's changes to each organisation's holding, and iteration over what
//! changed between two times (FMK-2.6.1-NOTIFY).
//!
//! Every change gets a fresh id and a change time in microseconds that is strictly later
//! than every earlier one, so a window's edges are never ambiguous. A window is
//! `from <= changedAt < to`.

use std::sync::Mutex;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use super::defects::{Defect, Defects};

/// Changes kept in memory; past this the reference refuses more (it is a test IUT).
const CHANGES_CAP: usize = 100_000;

/// One change to an organisation's holding.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub id: String,
    pub org: String,
    pub at: OffsetDateTime,
    /// The fields the client posted (a JSON object).
    pub fields: Map<String, Value>,
}

impl Change {
    /// The item as the API shows it.
    pub(super) fn item(&self) -> Value {
        let mut m = self.fields.clone();
        m.insert("id".into(), json!(self.id));
        m.insert("organisation".into(), json!(self.org));
        m.insert("changedAt".into(), json!(format_time(self.at)));
        Value::Object(m)
    }
}

#[derive(Debug)]
pub(super) struct Changes {
    /// Per process, so ids from an earlier run of the reference are never reused.
    prefix: u32,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    list: Vec<Change>,
    last: Option<OffsetDateTime>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            prefix: rand::random(),
            inner: Mutex::new(Inner::default()),
        }
    }
}

impl Changes {
    /// Records a change for `org`, stamped now (at microsecond precision, and always after
    /// the previous change). `None` when the store is full.
    pub(super) fn record(&self, org: &str, fields: Map<String, Value>) -> Option<Change> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.list.len() >= CHANGES_CAP {
            return None;
        }
        let now = truncate_to_micros(OffsetDateTime::now_utc());
        let at = match inner.last {
            Some(last) if now <= last => last + Duration::microseconds(1),
            _ => now,
        };
        inner.last = Some(at);
        let change = Change {
            id: format!("FM-{org}-{:08x}-{:06}", self.prefix, inner.list.len() + 1),
            org: org.to_string(),
            at,
            fields,
        };
        inner.list.push(change.clone());
        Some(change)
    }

    /// Every change to `org`'s holding, oldest first.
    pub(super) fn of_org(&self, org: &str) -> Vec<Change> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .list
            .iter()
            .filter(|c| c.org == org)
            .cloned()
            .collect()
    }

    /// The changes to `org`'s holding in the window, oldest first (the seeded defects bend
    /// the edge or the organisation filter).
    pub(super) fn window(
        &self,
        org: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        defects: &Defects,
    ) -> Vec<Change> {
        let from_inclusive = !defects.has(Defect::WindowExcludesStart);
        let any_org = defects.has(Defect::WindowLeaksOtherOrgs);
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .list
            .iter()
            .filter(|c| (any_org || c.org == org) && in_window(c.at, from, to, from_inclusive))
            .cloned()
            .collect()
    }
}

/// `from <= at < to` (`from < at < to` when the start is not inclusive).
pub(super) fn in_window(
    at: OffsetDateTime,
    from: OffsetDateTime,
    to: OffsetDateTime,
    from_inclusive: bool,
) -> bool {
    let after_start = if from_inclusive {
        from <= at
    } else {
        from < at
    };
    after_start && at < to
}

fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

/// RFC 3339 in UTC with exactly six fractional digits: `2026-05-01T10:00:00.000001Z`.
pub(super) fn format_time(t: OffsetDateTime) -> String {
    let f =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(UtcOffset::UTC)
        .format(&f)
        .unwrap_or_else(|_| t.to_string())
}

/// The `changedFrom` / `changedTo` of a query string: `Ok(None)` when neither is there
/// (the whole holding is asked for), an error naming the parameter otherwise.
pub(super) fn window_query(
    query: &str,
) -> Result<Option<(OffsetDateTime, OffsetDateTime)>, String> {
    let mut from = None;
    let mut to = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "changedFrom" => from = Some(super::query_value(v)),
            "changedTo" => to = Some(super::query_value(v)),
            _ => {}
        }
    }
    let parse = |name: &str, v: Option<String>| -> Result<OffsetDateTime, String> {
        let v = v.ok_or_else(|| {
            format!("{name} is missing: a window needs both changedFrom and changedTo (RFC 3339)")
        })?;
        OffsetDateTime::parse(&v, &Rfc3339).map_err(|e| {
            format!("{name} {v:?} is not an RFC 3339 time ({e}); e.g. 2026-05-01T10:00:00.000001Z")
        })
    };
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    let (from, to) = (parse("changedFrom", from)?, parse("changedTo", to)?);
    if from > to {
        return Err(format!(
            "changedFrom ({}) is after changedTo ({})",
            format_time(from),
            format_time(to)
        ));
    }
    Ok(Some((from, to)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn change_times_are_strictly_increasing_microseconds() {
        let c = Changes::default();
        let list: Vec<_> = (0..200)
            .map(|_| c.record("5560000001", Map::new()).unwrap())
            .collect();
        for pair in list.windows(2) {
            assert!(pair[0].at < pair[1].at, "{:?}", pair);
            assert_ne!(format_time(pair[0].at), format_time(pair[1].at));
            assert_ne!(pair[0].id, pair[1].id);
        }
        let s = format_time(list[0].at);
        assert_eq!(t(&s), list[0].at, "{s}");
        assert_eq!(s.len(), "2026-05-01T10:00:00.000001Z".len(), "{s}");
    }

    #[test]
    fn window_edges_and_organisations() {
        let c = Changes::default();
        let a1 = c.record("A", Map::new()).unwrap();
        let b = c.record("B", Map::new()).unwrap();
        let a2 = c.record("A", Map::new()).unwrap();
        let a3 = c.record("A", Map::new()).unwrap();
        let ids = |v: Vec<Change>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        let ok = Defects::default();
        assert_eq!(
            ids(c.window("A", a1.at, a3.at, &ok)),
            [a1.id.clone(), a2.id.clone()]
        );
        assert!(c.window("A", a3.at, a3.at, &ok).is_empty());
        let excl = Defects::new([Defect::WindowExcludesStart]);
        assert_eq!(ids(c.window("A", a1.at, a3.at, &excl)), vec![a2.id.clone()]);
        let leak = Defects::new([Defect::WindowLeaksOtherOrgs]);
        assert_eq!(
            ids(c.window("A", a1.at, a3.at, &leak)),
            [a1.id.clone(), b.id.clone(), a2.id.clone()]
        );
        assert_eq!(ids(c.of_org("A")), [a1.id, a2.id, a3.id]);
    }

    #[test]
    fn window_queries_parse_or_say_why_not() {
        assert_eq!(window_query("").unwrap(), None);
        assert_eq!(window_query("x=1").unwrap(), None);
        let (f, to) = window_query(
            "changedFrom=2026-05-01T10%3A00%3A00.000001%2B02%3A00&changedTo=2026-05-01T09:00:00Z",
        )
        .unwrap()
        .unwrap();
        assert_eq!(format_time(f), "2026-05-01T08:00:00.000001Z");
        assert_eq!(format_time(to), "2026-05-01T09:00:00.000000Z");
        let e = window_query("changedFrom=2026-05-01T10:00:00Z").unwrap_err();
        assert!(e.contains("changedTo is missing"), "{e}");
        let e = window_query("changedFrom=yesterday&changedTo=2026-05-01T10:00:00Z").unwrap_err();
        assert!(e.contains("changedFrom \"yesterday\""), "{e}");
        let e = window_query("changedFrom=2026-05-02T00:00:00Z&changedTo=2026-05-01T00:00:00Z")
            .unwrap_err();
        assert!(e.contains("after"), "{e}");
        assert!(window_query("changedFrom=%zz&changedTo=x").is_err());
    }
}
