//! Steps for change notification and iteration (FMK-2.6.1-NOTIFY): the client changes its
//! organisation's holding through the IUT's API, then iterates the whole holding and time
//! windows over those changes, and checks that a window returns exactly the changes its
//! declared edges include, and never another organisation's.
//!
//! Other scenarios (and other integrators of a real IUT) may change the same holding at
//! the same time, so "exactly" is judged on the changes this scenario made; any other item
//! a window returns must carry a change time inside the window, when it carries one.

use anyhow::{anyhow, bail};
use cucumber::{then, when};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::ProvstenWorld;
use crate::iut::config::IterationSection;
use crate::peers::{self, ClientSpec, Exchange, Identity};

/// Pause between two changes, so an IUT whose clock ticks in milliseconds still stamps
/// them apart (the window's edges then fall on distinct changes).
const BETWEEN_CHANGES: std::time::Duration = std::time::Duration::from_millis(3);

/// A change the scenario made, as the IUT answered it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Made {
    pub id: String,
    pub org: String,
    /// The change time exactly as the IUT wrote it.
    pub changed_at: String,
    #[serde(skip)]
    pub at: Option<OffsetDateTime>,
}

impl Made {
    fn at(&self) -> OffsetDateTime {
        self.at.unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

#[derive(Debug, Default)]
pub(crate) struct IterationState {
    /// Changes made by the scenario's client to its own organisation's holding, in order.
    own: Vec<Made>,
    /// A change made by another organisation's client to its own holding.
    other: Option<Made>,
}

/// Whether a change at `at` belongs in the window `from`..`to` with the declared edges.
pub(crate) fn in_declared_window(
    at: OffsetDateTime,
    from: OffsetDateTime,
    to: OffsetDateTime,
    from_inclusive: bool,
    to_inclusive: bool,
) -> bool {
    let after_start = if from_inclusive {
        at >= from
    } else {
        at > from
    };
    let before_end = if to_inclusive { at <= to } else { at < to };
    after_start && before_end
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A JSON id: a string, or a number written as text.
fn id_at(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(300).collect()
}

impl ProvstenWorld {
    fn iteration_cfg(&self) -> anyhow::Result<IterationSection> {
        self.ctx()?.iteration.clone().ok_or_else(|| {
            Self::not_applicable(
                "the IUT config declares no [iteration] (how to change the holding and ask for a time window)",
            )
        })
    }

    /// The scenario's client (default `client-5560000001`) and its organisation.
    fn own_client(&self) -> anyhow::Result<(Identity, String)> {
        let name = self.client_cert.as_deref().unwrap_or("client-5560000001");
        let org = self.ctx()?.pki.cert(name)?.org.clone().ok_or_else(|| {
            anyhow!("certificate {name:?} carries no organisation number, so it has no holding")
        })?;
        Ok((self.sender_identity()?, org))
    }

    /// A client of another registered organisation, from the catalogue (`client-ORG`).
    fn other_client(&self, own: &str) -> anyhow::Result<(Identity, String)> {
        let ctx = self.ctx()?;
        for org in ctx.registered_orgs.iter().filter(|o| *o != own) {
            let name = format!("client-{org}");
            if ctx
                .pki
                .cert(&name)
                .is_ok_and(|c| c.org.as_ref() == Some(org))
            {
                return Ok((Identity::from_pki(&ctx.pki, &name)?, org.clone()));
            }
        }
        Err(Self::not_applicable(format!(
            "no second registered organisation with a catalogue client certificate (api.registered_orgs = {:?})",
            ctx.registered_orgs
        )))
    }

    async fn send_as(
        &self,
        identity: &Identity,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Exchange> {
        let ctx = self.ctx()?;
        let mut spec = ClientSpec::new(Some(identity.clone()), ctx.request_timeout);
        if let Some(b) = body {
            spec.body = Some((Some("application/json".into()), serde_json::to_vec(b)?));
        }
        peers::request(&ctx.target, &spec, method, path).await
    }

    /// One change to `org`'s holding, as `identity`.
    async fn make_change(&mut self, identity: &Identity, org: &str) -> anyhow::Result<Made> {
        let it = self.iteration_cfg()?;
        let path = it.create_path_for(org);
        let ex = self
            .send_as(identity, "POST", &path, Some(&it.body()))
            .await?;
        if !ex.granted() {
            self.record(json!({"change": "refused", "exchange": ex}));
            fail!(
                "expected HTTP 2xx with the new item's id and change time; {}: {}",
                ex.describe(),
                excerpt(ex.body())
            );
        }
        let answer: Value = serde_json::from_str(ex.body()).map_err(|e| {
            failure!(
                "POST {path} answered HTTP {} but not JSON ({e}): {}",
                ex.status().unwrap_or(0),
                excerpt(ex.body())
            )
        })?;
        let id = id_at(&answer, &it.id_pointer).ok_or_else(|| {
            failure!(
                "POST {path}: no id at {:?} (iteration.id_pointer) in the answer {}",
                it.id_pointer,
                excerpt(ex.body())
            )
        })?;
        let changed_at = answer
            .pointer(&it.changed_at_pointer)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                failure!(
                    "POST {path}: no change time at {:?} (iteration.changed_at_pointer) in the answer {}",
                    it.changed_at_pointer,
                    excerpt(ex.body())
                )
            })?
            .to_string();
        let at = parse_time(&changed_at).ok_or_else(|| {
            failure!(
                "POST {path}: the change time {changed_at:?} of item {id} is not RFC 3339 (e.g. 2026-05-01T10:00:00.000001Z)"
            )
        })?;
        let made = Made {
            id,
            org: org.to_string(),
            changed_at,
            at: Some(at),
        };
        self.record(json!({"change": made, "status": ex.status(), "request": ex.request}));
        Ok(made)
    }

    /// GETs `path` as `identity` and returns the items' ids, and the items.
    async fn list(&mut self, identity: &Identity, path: &str) -> anyhow::Result<Vec<Value>> {
        let it = self.iteration_cfg()?;
        let ex = self.send_as(identity, "GET", path, None).await?;
        if !ex.granted() {
            self.record(json!({"query": path, "exchange": ex}));
            fail!(
                "GET {path}: expected HTTP 2xx with the items; {}: {}",
                ex.describe(),
                excerpt(ex.body())
            );
        }
        let answer: Value = serde_json::from_str(ex.body()).map_err(|e| {
            failure!(
                "GET {path}: the answer is not JSON ({e}): {}",
                excerpt(ex.body())
            )
        })?;
        let items = answer
            .pointer(&it.items_pointer)
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| {
                failure!(
                    "GET {path}: no array at {:?} (iteration.items_pointer) in {}",
                    it.items_pointer,
                    excerpt(ex.body())
                )
            })?;
        Ok(items)
    }

    /// Queries `org`'s window as `identity`; the ids returned, and the items.
    async fn window(
        &mut self,
        identity: &Identity,
        org: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<(String, Vec<String>, Vec<Value>)> {
        let it = self.iteration_cfg()?;
        let path = it.window_path_for(org, from, to);
        let items = self.list(identity, &path).await?;
        let ids = items
            .iter()
            .filter_map(|i| id_at(i, &it.id_pointer))
            .collect();
        Ok((path, ids, items))
    }

    fn own_changes(&self) -> anyhow::Result<Vec<Made>> {
        if self.iteration.own.is_empty() {
            bail!("no change was made before this step (hint: add `When the client makes 3 changes to its own organisation's holding`)");
        }
        Ok(self.iteration.own.clone())
    }
}

#[when(regex = r"^the client makes (\d+) changes? to its own organisation's holding$")]
async fn make_changes(w: &mut ProvstenWorld, n: usize) -> anyhow::Result<()> {
    w.iteration_cfg()?;
    let (identity, org) = w.own_client()?;
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(BETWEEN_CHANGES).await;
        }
        let made = w.make_change(&identity, &org).await?;
        if let Some(prev) = w.iteration.own.last() {
            if made.at() < prev.at() {
                fail!(
                    "change times go backwards: item {} was changed after item {} but is stamped {} < {}; an integrator iterating by time would miss it",
                    made.id, prev.id, made.changed_at, prev.changed_at
                );
            }
            if made.id == prev.id {
                fail!("two changes got the same id {}", made.id);
            }
        }
        w.iteration.own.push(made);
    }
    Ok(())
}

#[when("another organisation makes a change to its own holding")]
async fn other_change(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    w.iteration_cfg()?;
    let (_, own) = w.own_client()?;
    let (identity, org) = w.other_client(&own)?;
    let made = w.make_change(&identity, &org).await?;
    // A positive control: the other organisation sees its own change in its own window.
    let from = format_time(made.at() - Duration::seconds(1));
    let to = format_time(made.at() + Duration::seconds(1));
    let (path, ids, _) = w.window(&identity, &org, &from, &to).await?;
    if !ids.contains(&made.id) {
        fail!(
            "organisation {org} changed item {} at {}, but its own window GET {path} does not list it (got {ids:?})",
            made.id,
            made.changed_at
        );
    }
    w.iteration.other = Some(made);
    Ok(())
}

#[then("a window from the first change to the last returns exactly the changes the declared edges include")]
async fn window_first_to_last(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let it = w.iteration_cfg()?;
    let own = w.own_changes()?;
    let (identity, org) = w.own_client()?;
    let (first, last) = (&own[0], &own[own.len() - 1]);
    let (from, to) = (first.at(), last.at());
    let (path, ids, items) = w
        .window(&identity, &org, &first.changed_at, &last.changed_at)
        .await?;
    let expected: Vec<&Made> = own
        .iter()
        .filter(|m| in_declared_window(m.at(), from, to, it.from_inclusive, it.to_inclusive))
        .collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|m| !ids.contains(&m.id))
        .map(|m| format!("{} ({})", m.id, m.changed_at))
        .collect();
    let extra: Vec<String> = own
        .iter()
        .filter(|m| !expected.iter().any(|e| e.id == m.id) && ids.contains(&m.id))
        .map(|m| format!("{} ({})", m.id, m.changed_at))
        .collect();
    // Items this scenario did not make: when they carry a change time, it must be inside.
    let outside: Vec<String> = items
        .iter()
        .filter_map(|i| {
            let id = id_at(i, &it.id_pointer)?;
            if own.iter().any(|m| m.id == id) {
                return None;
            }
            let s = i.pointer(&it.changed_at_pointer)?.as_str()?;
            let at = parse_time(s)?;
            (!in_declared_window(at, from, to, it.from_inclusive, it.to_inclusive))
                .then(|| format!("{id} ({s})"))
        })
        .collect();
    let edges = format!(
        "{}{}, {}{}",
        if it.from_inclusive { "[" } else { "(" },
        first.changed_at,
        last.changed_at,
        if it.to_inclusive { "]" } else { ")" }
    );
    w.record(json!({
        "window": edges, "query": path,
        "made": own, "expected": expected.iter().map(|m| &m.id).collect::<Vec<_>>(),
        "returned": ids, "missing": missing, "unexpected": extra, "outside_window": outside,
    }));
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "returned {} although the declared edges exclude it",
            extra.join(", ")
        ));
    }
    if !outside.is_empty() {
        problems.push(format!(
            "returned items changed outside the window: {}",
            outside.join(", ")
        ));
    }
    if !problems.is_empty() {
        fail!(
            "the window {edges} (from_inclusive = {}, to_inclusive = {}) must return exactly {:?} of the changes made; GET {path}: {}; it returned {ids:?}",
            it.from_inclusive,
            it.to_inclusive,
            expected.iter().map(|m| &m.id).collect::<Vec<_>>(),
            problems.join("; ")
        );
    }
    Ok(())
}

#[then(regex = r"^a window just (after the last|before the first) change returns none of them$")]
async fn window_outside(w: &mut ProvstenWorld, which: String) -> anyhow::Result<()> {
    let it = w.iteration_cfg()?;
    let own = w.own_changes()?;
    let (identity, org) = w.own_client()?;
    let micro = Duration::microseconds(1);
    let (from, to) = if which.starts_with("after") {
        // The first instant after the last change, whichever edge semantics.
        let t = own[own.len() - 1].at() + micro;
        (t, t + Duration::hours(1))
    } else {
        // Up to the first change: its own time when the end is exclusive.
        let first = own[0].at();
        let t = if it.to_inclusive {
            first - micro
        } else {
            first
        };
        (t - Duration::hours(1), t)
    };
    let (from, to) = (format_time(from), format_time(to));
    let (path, ids, _) = w.window(&identity, &org, &from, &to).await?;
    let leaked: Vec<String> = own
        .iter()
        .filter(|m| ids.contains(&m.id))
        .map(|m| format!("{} ({})", m.id, m.changed_at))
        .collect();
    w.record(json!({"window": format!("{from} .. {to}"), "query": path, "returned": ids, "made": own, "wrongly_included": leaked}));
    if !leaked.is_empty() {
        fail!(
            "a window from {from} to {to}, just {which} change, must return none of the changes made; GET {path} returned {}",
            leaked.join(", ")
        );
    }
    Ok(())
}

#[then("the whole holding includes every change")]
async fn whole_holding(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let it = w.iteration_cfg()?;
    let own = w.own_changes()?;
    let (identity, org) = w.own_client()?;
    let path = w.ctx()?.protected_path.replace("{org}", &org);
    let items = w.list(&identity, &path).await?;
    let ids: Vec<String> = items
        .iter()
        .filter_map(|i| id_at(i, &it.id_pointer))
        .collect();
    let missing: Vec<&str> = own
        .iter()
        .filter(|m| !ids.contains(&m.id))
        .map(|m| m.id.as_str())
        .collect();
    w.record(json!({"holding": path, "items": ids.len(), "made": own, "missing": missing}));
    if !missing.is_empty() {
        fail!(
            "the whole holding (GET {path}, items at {:?}) must include every change made; missing {missing:?} among {} items",
            it.items_pointer,
            ids.len()
        );
    }
    Ok(())
}

#[then("the other organisation's change appears in none of the client's windows or holding")]
async fn other_never_appears(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    let it = w.iteration_cfg()?;
    let other = w.iteration.other.clone().ok_or_else(|| {
        anyhow!("no other organisation made a change (hint: add `When another organisation makes a change to its own holding`)")
    })?;
    let (identity, org) = w.own_client()?;
    // A window around every change made, the other organisation's included.
    let own = w.iteration.own.clone();
    let times = own.iter().map(Made::at).chain([other.at()]);
    let from = times.clone().min().unwrap_or(other.at()) - Duration::seconds(1);
    let to = times.max().unwrap_or(other.at()) + Duration::seconds(1);
    let (from, to) = (format_time(from), format_time(to));
    let (path, ids, _) = w.window(&identity, &org, &from, &to).await?;
    let holding = w.ctx()?.protected_path.replace("{org}", &org);
    let holding_ids: Vec<String> = w
        .list(&identity, &holding)
        .await?
        .iter()
        .filter_map(|i| id_at(i, &it.id_pointer))
        .collect();
    w.record(json!({"other_change": other, "window_query": path, "window_returned": ids, "holding": holding, "holding_items": holding_ids.len()}));
    if ids.contains(&other.id) {
        fail!(
            "organisation {}'s change {} ({}) appears in organisation {org}'s window GET {path}",
            other.org,
            other.id,
            other.changed_at
        );
    }
    if holding_ids.contains(&other.id) {
        fail!(
            "organisation {}'s change {} appears in organisation {org}'s holding GET {holding}",
            other.org,
            other.id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> OffsetDateTime {
        parse_time(s).unwrap()
    }

    #[test]
    fn declared_edges_decide_the_window() {
        let (t1, t2, t3) = (
            t("2026-05-01T10:00:00.000001Z"),
            t("2026-05-01T10:00:00.000002Z"),
            t("2026-05-01T12:00:00.000003+02:00"),
        );
        let inside = |fi, ti| {
            [t1, t2, t3]
                .iter()
                .map(|at| in_declared_window(*at, t1, t3, fi, ti))
                .collect::<Vec<_>>()
        };
        assert_eq!(inside(true, false), [true, true, false]);
        assert_eq!(inside(false, false), [false, true, false]);
        assert_eq!(inside(true, true), [true, true, true]);
        assert_eq!(inside(false, true), [false, true, true]);
        // Just after the last: nothing, whichever edges.
        let after = t3 + Duration::microseconds(1);
        assert!(!in_declared_window(
            t3,
            after,
            after + Duration::hours(1),
            true,
            true
        ));
    }

    #[test]
    fn ids_and_times_are_read_as_the_iut_writes_them() {
        let v = json!({"id": 17, "x": {"id": "a"}});
        assert_eq!(id_at(&v, "/id").as_deref(), Some("17"));
        assert_eq!(id_at(&v, "/x/id").as_deref(), Some("a"));
        assert_eq!(id_at(&v, "/nope"), None);
        let at = t("2026-05-01T10:00:00.5+01:00");
        assert_eq!(format_time(at), "2026-05-01T10:00:00.5+01:00");
        assert_eq!(
            format_time(at + Duration::microseconds(1)),
            "2026-05-01T10:00:00.500001+01:00"
        );
    }
}
