//! Outage exercises (CONT-EXERCISE): a fault timeline runs on the router's routes while
//! the IUT is asked to route a steady load (each phase's `load`, messages per second).
//! Afterwards every message is accounted for and each phase gets its figures: detection
//! time, time to the first fallback delivery (RTO), messages lost (RPO), duplicates,
//! delivery latency p50/p99 and per-route throughput. The report keeps the time series
//! for a chart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use cucumber::{then, when};
use serde_json::{json, Value};

use super::fallback::Arrival;
use super::network::{finish_timeline, spawn_timeline};
use super::ProvstenWorld;
use crate::iut::config::{Delivery, Failback};
use crate::network::timeline::{self, Fault, Timeline};
use crate::network::toxics::{Latency, LimitData, ResetPeer, Timeout, Toxic};
use crate::report::model::{ExercisePhase, ExerciseTimeline, RouteSeries};

/// Messages per second in a phase that declares no `load`.
pub(crate) const DEFAULT_LOAD: f64 = 10.0;
/// Width of the chart's buckets.
const BUCKET: Duration = Duration::from_millis(500);
/// How often the console shows progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What an exercise measured, kept for its `Then` step.
#[derive(Debug, Default, Clone)]
pub(crate) struct ExerciseState {
    pub name: String,
    /// The problems found (empty: the exercise met the promises).
    pub problems: Vec<String>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

/// Loads an exercise's timeline: shipped, or from the run's `--scenarios` directories.
fn load(w: &ProvstenWorld, name: &str) -> anyhow::Result<Timeline> {
    timeline::find_checked(name, &w.ctx()?.timeline_dirs)
}

#[when(expr = "the outage exercise {string} runs")]
async fn exercise(w: &mut ProvstenWorld, name: String) -> anyhow::Result<()> {
    let r = w.router()?;
    let t = load(w, &name)?;
    let routes: Vec<String> = r.routes.iter().map(|x| x.link()).collect();
    let mut links = Vec::new();
    for l in t.links() {
        if !routes.contains(&l) {
            bail!(
                "exercise {name:?} breaks the link {l:?}, which is not one of the router's routes ({})",
                routes.join(", ")
            );
        }
        links.push((l.clone(), w.ensure_link(&l).await?));
    }
    let ctx = w.ctx()?;
    let total = t.duration();
    let start = Instant::now();
    // Which backend injected the faults: the embedded proxy or a Toxiproxy (a sidecar, another
    // host), named in the evidence beside each fault.
    let backend = ctx.faults.describe();
    let driver = spawn_timeline(t.phases.clone(), links, ctx.faults.clone(), start);
    // The send schedule: each phase at its own rate (phases may leave gaps: no load there).
    let mut due: Vec<Duration> = Vec::new();
    for p in &t.phases {
        let rate = p.load.unwrap_or(DEFAULT_LOAD);
        if rate <= 0.0 {
            continue;
        }
        let every = Duration::from_secs_f64(1.0 / rate);
        let mut at = p.start;
        while at < p.start + p.duration {
            due.push(at);
            at += every;
        }
    }
    due.sort();
    due.dedup();
    let first = w.fallback.sent.len();
    let mut next_progress = start + PROGRESS_EVERY;
    for at in due {
        tokio::time::sleep_until((start + at).into()).await;
        w.route_one().await?;
        if ctx.progress && Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            eprintln!("{}", w.progress_line(&t, start, first));
        }
    }
    tokio::time::sleep_until((start + total).into()).await;
    let applied = finish_timeline(driver, total).await?;
    w.note_applied(&applied);
    // Everything sent must be accounted for: wait for the stragglers.
    let ids: Vec<String> = w.fallback.sent[first..]
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let (_, _) = w
        .wait_arrivals(Instant::now() + r.first_delivery_timeout, |a| {
            ids.iter().all(|id| a.contains_key(id))
        })
        .await;
    if ctx.progress {
        eprintln!("{}", w.progress_line(&t, start, first));
    }
    let (phases, problems, chart) = w.measure(&t, start, first);
    w.record(json!({"exercise": {"name": name, "description": t.description, "duration_ms": ms(total), "messages": ids.len(), "phases": phases, "problems": problems, "backend": backend, "faults": applied.iter().map(|a| json!({"phase": a.phase, "link": a.link, "fault": a.fault, "apply": a.apply, "at_ms": ms(a.at.saturating_duration_since(start)), "ok": a.ok, "backend": backend})).collect::<Vec<_>>()}}));
    w.record(chart);
    w.exercise = ExerciseState { name, problems };
    Ok(())
}

#[then("the exercise meets the router's declared promises")]
async fn exercise_verdict(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    if w.exercise.name.is_empty() {
        bail!("no exercise ran (hint: `When the outage exercise \"primary-node-outage\" runs`)");
    }
    if !w.exercise.problems.is_empty() {
        fail!(
            "exercise {:?}: {}",
            w.exercise.name,
            w.exercise.problems.join("; ")
        );
    }
    Ok(())
}

impl ProvstenWorld {
    /// `[exercise] phase 2/3 primary-down  4.0 s / 12.0 s  sent 80  delivered primary 20,
    /// fallback-1 58  pending 2`
    fn progress_line(&self, t: &Timeline, start: Instant, first: usize) -> String {
        let elapsed = start.elapsed();
        let (i, phase) = t
            .phases
            .iter()
            .enumerate()
            .rev()
            .find(|(_, p)| p.start <= elapsed)
            .map(|(i, p)| (i + 1, p.name.as_str()))
            .unwrap_or((0, "-"));
        let arrivals = self.arrivals();
        let mine = &self.fallback.sent[first..];
        let mut per_route: BTreeMap<&str, u64> = BTreeMap::new();
        let mut pending = 0;
        for s in mine {
            match arrivals.get(&s.id) {
                Some(v) => *per_route.entry(v[0].route.as_str()).or_default() += 1,
                None => pending += 1,
            }
        }
        let routes = per_route
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "[exercise] phase {i}/{} {phase}  {:.1} s / {:.1} s  sent {}  delivered {}  pending {pending}",
            t.phases.len(),
            elapsed.as_secs_f64().min(t.duration().as_secs_f64()),
            t.duration().as_secs_f64(),
            mine.len(),
            if routes.is_empty() { "0".into() } else { routes },
        )
    }

    /// Per-phase figures, the promises broken, and the chart.
    fn measure(
        &self,
        t: &Timeline,
        start: Instant,
        first: usize,
    ) -> (Vec<Value>, Vec<String>, ExerciseTimeline) {
        let Ok(r) = self.router() else {
            return (Vec::new(), vec!["no [router]".into()], empty_chart());
        };
        let primary = r.routes[0].name.clone();
        let fallback_links: Vec<String> = r.routes[1..].iter().map(|x| x.link()).collect();
        let arrivals = self.arrivals();
        let sent = &self.fallback.sent[first..];
        let all_attempts = self.route_attempts();
        let grace = r.failover_time;
        let mut phases = Vec::new();
        let mut problems = Vec::new();
        let mut prev_outage = false;
        for p in &t.phases {
            let ps = start + p.start;
            let pe = ps + p.duration;
            let secs = p.duration.as_secs_f64();
            let in_phase: Vec<_> = sent.iter().filter(|s| s.at >= ps && s.at < pe).collect();
            let mut latencies = Vec::new();
            let mut lost = Vec::new();
            let mut duplicates = 0u64;
            let mut repeats = 0u64;
            let mut repeated = Vec::new();
            for s in &in_phase {
                match arrivals.get(&s.id) {
                    None => lost.push(s.id.clone()),
                    Some(v) => {
                        latencies.push(ms(v[0].at.saturating_duration_since(s.at)));
                        for i in 1..v.len() {
                            let excused = r.delivery == Delivery::AtLeastOnce
                                && self.allowed_repeat(&v[..i], &v[i], grace, r.tolerance);
                            if excused {
                                repeats += 1;
                            } else {
                                duplicates += 1;
                            }
                            if repeated.len() < 10 {
                                repeated.push(json!({
                                    "id": s.id,
                                    "allowed": excused,
                                    "arrivals": v.iter().map(|a| json!({"route": a.route, "at_ms": ms(a.at.saturating_duration_since(start)), "began_ms": ms(a.attempt.started.saturating_duration_since(start))})).collect::<Vec<_>>(),
                                }));
                            }
                        }
                    }
                }
            }
            latencies.sort_unstable();
            // Deliveries made during the phase, whichever phase sent them.
            let mut per_route: BTreeMap<String, u64> =
                r.routes.iter().map(|x| (x.name.clone(), 0)).collect();
            for a in arrivals.values().flatten() {
                if a.at >= ps && a.at < pe {
                    *per_route.entry(a.route.clone()).or_default() += 1;
                }
            }
            let throughput: BTreeMap<&String, f64> = per_route
                .iter()
                .map(|(k, v)| (k, (*v as f64 / secs * 10.0).round() / 10.0))
                .collect();
            let out = r.failover_time;
            let primary_out = p
                .faults
                .iter()
                .any(|f| f.link() == format!("route-{primary}") && breaks_route(f, out));
            let fallback_up = !fallback_links.iter().all(|l| {
                p.faults
                    .iter()
                    .any(|f| f.link() == l && breaks_route(f, out))
            });
            let outage = p.faults.iter().any(|f| breaks_route(f, out));
            // The router's first move to a fallback: its first connection there.
            let detection = all_attempts
                .iter()
                .filter(|(route, at)| *route != primary && *at >= ps && *at < pe)
                .map(|(_, at)| at.saturating_duration_since(ps))
                .min();
            let rto = arrivals
                .values()
                .flatten()
                .filter(|a| a.route != primary && a.at >= ps && a.at < pe)
                .map(|a| a.at.saturating_duration_since(ps))
                .min();
            let back_on_primary = arrivals
                .iter()
                .filter(|(id, _)| in_phase.iter().any(|s| &s.id == *id))
                .filter_map(|(_, v)| v.first())
                .filter(|a| a.route == primary)
                .map(|a| a.at.saturating_duration_since(ps))
                .min();
            let mut row = json!({
                "phase": p.name,
                "start_ms": ms(p.start),
                "duration_ms": ms(p.duration),
                "outage": outage,
                "load_per_s": p.load.unwrap_or(DEFAULT_LOAD),
                "sent": in_phase.len(),
                "delivered": in_phase.len() - lost.len(),
                "lost": lost.len(),
                "lost_ids": lost,
                "duplicates": duplicates,
                "repeats_after_unconfirmed_delivery": repeats,
                "repeated": repeated,
                "latency_p50_ms": percentile(&latencies, 0.5),
                "latency_p99_ms": percentile(&latencies, 0.99),
                "per_route": per_route,
                "per_route_per_s": throughput,
            });
            if primary_out && fallback_up {
                row["detection_ms"] = json!(detection.map(ms));
                row["rto_ms"] = json!(rto.map(ms));
                let allowed = r.failover_time + r.tolerance;
                match rto {
                    Some(d) if d <= allowed => {}
                    Some(d) => problems.push(format!(
                        "phase {:?}: first delivery through a fallback {} ms after the primary went out, allowed {} ms",
                        p.name,
                        ms(d),
                        ms(allowed)
                    )),
                    None if in_phase.is_empty() => {}
                    None => problems.push(format!(
                        "phase {:?}: nothing arrived through a fallback while the primary was out",
                        p.name
                    )),
                }
            }
            if !outage && prev_outage {
                row["failback_ms"] = json!(back_on_primary.map(ms));
                if let Failback::Within(d) = r.failback {
                    let allowed = d + r.tolerance;
                    // Only a phase long enough to show it can judge it.
                    if p.duration > allowed + Duration::from_millis(300) {
                        match back_on_primary {
                            Some(b) if b <= allowed => {}
                            other => problems.push(format!(
                                "phase {:?}: deliveries were back on {primary:?} {} after the recovery, allowed {} ms",
                                p.name,
                                other.map_or("never".to_string(), |b| format!("{} ms", ms(b))),
                                ms(allowed)
                            )),
                        }
                    }
                }
            }
            if !lost.is_empty() {
                problems.push(format!(
                    "phase {:?}: {} of {} messages never arrived (RPO {} messages)",
                    p.name,
                    lost.len(),
                    in_phase.len(),
                    lost.len()
                ));
            }
            if duplicates > 0 {
                problems.push(format!(
                    "phase {:?}: {duplicates} messages delivered twice ({})",
                    p.name,
                    match r.delivery {
                        Delivery::ExactlyOnce => "exactly-once declared",
                        Delivery::AtLeastOnce => "after an acknowledged delivery",
                    }
                ));
            }
            prev_outage = outage;
            phases.push(row);
        }
        let chart = self.chart(t, start, &arrivals, &r.routes);
        (phases, problems, chart)
    }

    fn chart(
        &self,
        t: &Timeline,
        start: Instant,
        arrivals: &BTreeMap<String, Vec<Arrival>>,
        routes: &[crate::iut::Route],
    ) -> ExerciseTimeline {
        let total = t.duration();
        let buckets = (ms(total) / ms(BUCKET) + 1) as usize;
        let series = routes
            .iter()
            .map(|route| {
                let mut delivered = vec![0u64; buckets];
                for a in arrivals
                    .values()
                    .flatten()
                    .filter(|a| a.route == route.name)
                {
                    if a.at < start {
                        continue;
                    }
                    let b = (ms(a.at - start) / ms(BUCKET)) as usize;
                    if let Some(slot) = delivered.get_mut(b) {
                        *slot += 1;
                    }
                }
                RouteSeries {
                    route: route.name.clone(),
                    bucket_ms: ms(BUCKET),
                    delivered,
                }
            })
            .collect();
        ExerciseTimeline {
            duration_ms: ms(total),
            phases: t
                .phases
                .iter()
                .map(|p| ExercisePhase {
                    name: p.name.clone(),
                    start_ms: ms(p.start),
                    end_ms: ms(p.start + p.duration),
                    outage: !p.faults.is_empty(),
                })
                .collect(),
            routes: series,
        }
    }
}

/// Whether a fault takes a route out (the router must fail over), rather than degrading
/// it: down, a black hole, resets, cut data, or latency of at least the failover time.
fn breaks_route(f: &Fault, failover: Duration) -> bool {
    match f {
        Fault::Down { .. } => true,
        Fault::Toxic { toxic, .. } => match toxic.kind.as_str() {
            Timeout::NAME | ResetPeer::NAME | LimitData::NAME => true,
            Latency::NAME => toxic
                .toxic::<Latency>()
                .is_some_and(|l| Duration::from_millis(l.latency) >= failover),
            _ => false,
        },
    }
}

fn empty_chart() -> ExerciseTimeline {
    ExerciseTimeline {
        duration_ms: 0,
        phases: Vec::new(),
        routes: Vec::new(),
    }
}
