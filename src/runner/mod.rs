//! One run of the suite: resolve the plan, start the IUT, run the scenarios with cucumber,
//! and build the report. `provsten run` is a thin shell around [`run`].

pub(crate) mod collector;
pub(crate) mod features;
pub(crate) mod names;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use cucumber::event;
use cucumber::gherkin::{self, tagexpr::TagOperation};
use cucumber::tag::Ext as _;
use cucumber::World as _;
use futures::FutureExt as _;

use crate::iut::{self, setup_error, ConfigSource, Iut, PrepareOptions};
use crate::reference::defects::Defect;
use features::NameKind;
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::pki::generate::hex;
use crate::report::model::{
    Coverage, Harness, Inputs, IutExit, IutInfo, Report, ScenarioResult, ScenarioStatus, Shard,
    StepResult, StepStatus, SCHEMA_VERSION,
};
use crate::requirements;
use crate::steps::{self, ProvstenWorld, RunContext};
use collector::{Collector, Store};

/// Validated user input for one run (the CLI's "low args" turned into a plan).
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The IUT config file; `None`: the embedded reference IUT.
    pub config: Option<PathBuf>,
    /// The requirement profile to certify: only scenarios naming one of its requirements
    /// are selected.
    pub profile: requirements::Profile,
    /// A cucumber tag expression selecting scenarios (`--tags`); `None`: no filter.
    pub tags: Option<String>,
    /// Defects to seed into the reference IUT: the IUT's start command gets `--defect NAME`
    /// for each in place of its `{defects}` argument (a run error if it has none).
    pub defects: Vec<Defect>,
    /// The report directory, created if missing; also the IUT config's `{out}`, where the
    /// run's working files (message files for triggers) go.
    pub out: PathBuf,
    /// How many scenarios run at the same time (0 is taken as 1).
    pub concurrency: usize,
    /// Extra directories of `.feature` files, run besides the shipped ones (or, with
    /// `exercise`, besides the exercise's scenario).
    pub features: Vec<PathBuf>,
    /// `(index, count)`, index 1-based.
    pub shard: Option<(u64, u64)>,
    /// Extra directories of fault timelines.
    pub timelines: Vec<PathBuf>,
    /// Print live progress on stderr while the run goes on (`false` with `--quiet`).
    pub progress: bool,
    /// `provsten exercise`: run only this outage exercise (a timeline name).
    pub exercise: Option<String>,
    /// `--complete`: compliant only when every testable requirement of the profile was
    /// tested and passed.
    pub complete: bool,
    /// The provsten binary `{provsten}` names in the IUT config (the embedded reference is
    /// started as `{provsten} reference-iut`); `None`: this process's own. A program that
    /// embeds the library (a test) names the binary here.
    pub provsten: Option<PathBuf>,
}

/// The one scenario `provsten exercise NAME` runs (CONT-EXERCISE).
pub fn exercise_feature(name: &str) -> String {
    format!(
        "@role:router\nFeature: Outage exercise {name}\n  An outage exercise run with `provsten exercise`.\n\n  @req:CONT-EXERCISE\n  Scenario: the outage exercise {name}\n    Given the router's routes run through the fault proxy\n    When the outage exercise \"{name}\" runs\n    Then the exercise meets the router's declared promises\n"
    )
}

struct Planned {
    feature: Arc<gherkin::Feature>,
    scenario: gherkin::Scenario,
    key: String,
    tags: Vec<String>,
    requirements: Vec<requirements::RequirementId>,
    /// `Some(reason)` when not run because a role is missing.
    not_applicable: Option<String>,
}

/// Runs the suite and returns the finished report. Errors are run errors (exit 2).
///
/// Resolve, then do: everything that can be wrong with the input is found by `resolve`
/// before anything is started, so a typo never leaves an IUT or a port behind.
pub async fn run(plan: &RunPlan) -> anyhow::Result<Report> {
    let mut r = resolve(plan)?;
    let started_at = now_rfc3339();
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("creating {}", plan.out.display()))?;
    if plan.progress {
        eprintln!(
            "provsten: starting {} ({})",
            r.cfg.iut.name,
            r.source.name()
        );
    }
    let iut = Iut::prepare(&r.cfg, r.source.clone(), &prepare_options(&r, plan)).await?;
    let ctx = Arc::new(run_context(&iut, r.faults.clone(), plan));
    // Config sections the steps need, checked up front (so step order cannot matter).
    for p in r.planned.iter_mut().filter(|p| p.not_applicable.is_none()) {
        let background = p.feature.background.iter().flat_map(|b| b.steps.iter());
        let texts = background
            .chain(p.scenario.steps.iter())
            .map(|s| s.value.as_str());
        p.not_applicable = steps::unmet_need(&ctx, texts);
    }
    let server_fp = server_fingerprint(&iut).await;
    let trust = std::fs::read(iut.pki.path(&iut.pki.manifest.trust_bundle)).unwrap_or_default();
    r.digests
        .insert("ca_certificate".to_string(), hex(&Sha256::digest(&trust)));

    let (mut store, exits) = execute(&r, plan, iut, ctx).await?;
    let mut results = Vec::new();
    let mut exit_report: Vec<IutExit> = exits
        .iter()
        .map(|e| IutExit {
            status: e.status.clone(),
            during: Vec::new(),
            attached: e.attached,
            restarted: e.restarted.is_ok(),
            note: e.restarted.clone().err(),
            last_output: e.last_output.clone(),
        })
        .collect();
    for p in &r.planned {
        let run = store.scenarios.remove(&p.key);
        let mut result = result_for(p, run.as_ref());
        if let Some(run) = &run {
            blame_exits(&mut result, run, &exits, &mut exit_report);
        }
        results.push(result);
    }
    let reqs = requirements::verdicts(&r.catalogue, plan.profile, &results, &r.unselected);
    let verdict = requirements::run_verdict(&reqs, plan.complete);
    let coverage = Coverage::of(&reqs, plan.complete);
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        harness: Harness {
            name: "provsten".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        iut: IutInfo {
            name: r.cfg.iut.name.clone(),
            roles: r.roles,
            server_certificate_sha256: server_fp,
            defects: plan.defects.iter().map(|d| d.name().to_string()).collect(),
            exits: exit_report,
        },
        profile: plan.profile.to_string(),
        started_at,
        finished_at: now_rfc3339(),
        verdict,
        coverage,
        requirements: reqs,
        scenarios: results,
        inputs: Inputs { digests: r.digests },
        shard: plan.shard.map(|(index, count)| Shard { index, count }),
        signature: None,
    })
}

/// What a run knows before it starts anything: the features and the scenarios selected
/// from them, the IUT config, the fault backend, and the digests of its inputs.
struct Resolved {
    catalogue: Vec<requirements::Requirement>,
    cfg: iut::config::IutConfig,
    source: ConfigSource,
    roles: Vec<String>,
    planned: Vec<Planned>,
    unselected: requirements::Unselected,
    /// Paths of the shipped features (their names are checked differently from a user's).
    shipped: Vec<String>,
    faults: Arc<dyn crate::network::backend::FaultBackend>,
    /// The embedded fault proxy, shut down after the run (unused with an external one).
    embedded_proxy: Arc<crate::network::proxy::ProxyServer>,
    digests: BTreeMap<String, String>,
}

/// Reads and checks every input of the run; starts nothing.
fn resolve(plan: &RunPlan) -> anyhow::Result<Resolved> {
    let catalogue = requirements::catalogue()?;
    let tag_filter = match &plan.tags {
        Some(t) => Some(
            TagOperation::from_str(t)
                .map_err(|e| setup_error(format!("--tags {t:?} is not a tag expression: {e} (hint: \"@req:EB-MTLS-1 and not @role:client\")")))?,
        ),
        None => None,
    };
    let mut sources = match &plan.exercise {
        Some(name) => vec![(format!("exercise/{name}.feature"), exercise_feature(name))],
        None => features::shipped(),
    };
    for dir in &plan.features {
        sources.extend(features::from_dir(dir)?);
    }
    let parsed = features::parse_all(&sources, &catalogue)?;

    let (cfg, source, config_text) = match &plan.config {
        Some(p) => {
            let (cfg, source) = iut::config::load(p).map_err(|e| setup_error(format!("{e:#}")))?;
            (cfg, source, std::fs::read(p).unwrap_or_default())
        }
        None => (
            iut::config::parse(iut::config::DEFAULT_CONFIG, &ConfigSource::Embedded)?,
            ConfigSource::Embedded,
            iut::config::DEFAULT_CONFIG.as_bytes().to_vec(),
        ),
    };
    let mut digests = BTreeMap::new();
    digests.insert("features".to_string(), features::digest(&sources));
    digests.insert("config".to_string(), hex(&Sha256::digest(&config_text)));
    digests.insert(
        "catalogue".to_string(),
        hex(&Sha256::digest(requirements::CATALOGUE.as_bytes())),
    );
    let roles: Vec<String> = cfg
        .iut
        .roles
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();

    let (planned, unselected) = select(parsed, plan, &catalogue, tag_filter.as_ref(), &roles);
    if planned.is_empty() {
        return Err(setup_error(format!(
            "no scenario selected (profile {:?}, tags {:?}): nothing to certify",
            plan.profile.name(),
            plan.tags.as_deref().unwrap_or("none")
        )));
    }
    if planned.iter().all(|p| p.not_applicable.is_some()) {
        return Err(setup_error(nothing_applies(&planned, &roles)));
    }
    let shipped: Vec<String> = features::shipped().into_iter().map(|(p, _)| p).collect();
    check_step_names(&planned, &shipped, &cfg, plan)?;

    let toxiproxy_url = std::env::var("TOXIPROXY_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| cfg.network.toxiproxy_url.clone());
    let embedded_proxy = crate::network::proxy::ProxyServer::new();
    let faults: Arc<dyn crate::network::backend::FaultBackend> = match &toxiproxy_url {
        Some(url) => Arc::new(
            crate::network::backend::External::from_url(url)
                .map_err(|e| setup_error(format!("{e:#}")))?,
        ),
        None => Arc::new(crate::network::backend::Embedded(embedded_proxy.clone())),
    };
    Ok(Resolved {
        catalogue,
        cfg,
        source,
        roles,
        planned,
        unselected,
        shipped,
        faults,
        embedded_proxy,
        digests,
    })
}

/// The scenarios of the profile that the tag filter and the shard select, each marked
/// not-applicable when it needs a role the IUT does not declare; and why the requirements
/// of those left out were not selected.
fn select(
    parsed: Vec<gherkin::Feature>,
    plan: &RunPlan,
    catalogue: &[requirements::Requirement],
    tag_filter: Option<&TagOperation>,
    roles: &[String],
) -> (Vec<Planned>, requirements::Unselected) {
    let in_profile: Vec<&requirements::RequirementId> =
        requirements::in_profile(catalogue, plan.profile)
            .into_iter()
            .map(|r| &r.id)
            .collect();
    let mut planned = Vec::new();
    let mut unselected = requirements::Unselected::new();
    for f in parsed {
        let feature = Arc::new(f);
        let scenarios = feature.scenarios.iter().map(|s| (None, s)).chain(
            feature
                .rules
                .iter()
                .flat_map(|r| r.scenarios.iter().map(move |s| (Some(r), s))),
        );
        for (rule, sc) in scenarios {
            let tags = features::all_tags(&feature, rule, sc);
            let reqs = features::requirement_ids(&tags);
            if !reqs.iter().any(|r| in_profile.contains(&r)) {
                continue;
            }
            if let Some(t) = tag_filter {
                if !t.eval(tags.iter()) {
                    let why = format!(
                        "not selected: its scenarios do not match --tags {:?}",
                        plan.tags.as_deref().unwrap_or_default()
                    );
                    for r in &reqs {
                        unselected.entry(r.clone()).or_insert_with(|| why.clone());
                    }
                    continue;
                }
            }
            let key = collector::key(&feature, sc);
            if let Some((i, n)) = plan.shard {
                let mut h = DefaultHasher::new();
                key.hash(&mut h);
                if h.finish() % n != i - 1 {
                    for r in &reqs {
                        unselected.entry(r.clone()).or_insert_with(|| {
                            format!("its scenarios are in other shards than {i}/{n}")
                        });
                    }
                    continue;
                }
            }
            let needed = features::role_tags(&tags);
            let not_applicable = (!needed.is_empty() && !needed.iter().any(|r| roles.contains(r)))
                .then(|| {
                    format!(
                        "needs role {}, which the IUT does not declare (iut.roles = {:?})",
                        needed.join(" or "),
                        roles
                    )
                });
            planned.push(Planned {
                feature: feature.clone(),
                scenario: sc.clone(),
                key,
                tags,
                requirements: reqs,
                not_applicable,
            });
        }
    }
    (planned, unselected)
}

/// What the IUT adapter needs of the run: where to write, the defects to seed, and the
/// certificate names a user's own features use (checked against the PKI it loads).
fn prepare_options(r: &Resolved, plan: &RunPlan) -> PrepareOptions {
    let runs: Vec<&Planned> = r
        .planned
        .iter()
        .filter(|p| p.not_applicable.is_none())
        .collect();
    PrepareOptions {
        provsten: plan.provsten.clone(),
        out_dir: plan.out.clone(),
        defects: plan.defects.iter().map(|d| d.name().to_string()).collect(),
        certificate_uses: features::name_uses(&planned_features(&runs))
            .into_iter()
            // The shipped features name catalogue certificates; a PKI without one makes
            // those scenarios not-applicable (`steps::NEEDS`). A user's own are checked.
            .filter(|u| u.kind == NameKind::Certificate && !is_shipped(&u.at, &r.shipped))
            .collect(),
    }
}

/// The steps' view of the prepared IUT.
fn run_context(
    iut: &Iut,
    faults: Arc<dyn crate::network::backend::FaultBackend>,
    plan: &RunPlan,
) -> RunContext {
    RunContext {
        faults,
        timeline_dirs: plan.timelines.clone(),
        messages: iut.messages.clone(),
        xml_messages: iut.xml_messages.clone(),
        accepted_url: iut.accepted_url.clone(),
        versions: iut.versions.clone(),
        resend: iut.resend.clone(),
        sender: iut.sender.clone(),
        routers: iut.routers.clone(),
        client: iut.client.clone(),
        client_turn: Default::default(),
        router_lanes: Arc::new(crate::steps::fallback::LanePool::new(iut.routers.len())),
        progress: plan.progress && plan.exercise.is_some(),
        receive: iut.receive.clone(),
        iteration: iut.iteration.clone(),
        undeliverable_url: iut.undeliverable_url.clone(),
        audit_url: iut.audit_url.clone(),
        restarter: iut.restarter(),
        revocation: iut.revocation.clone(),
        ocsp: iut.ocsp.as_ref().map(|o| o.responder.clone()),
        firewall: iut.firewall.clone(),
        inner: iut.inner.clone(),
        target: iut.target.clone(),
        pki: iut.pki.clone(),
        protected_path: iut.protected_path.clone(),
        health_path: iut.health_path.clone(),
        registered_orgs: iut.registered_orgs.clone(),
        request_timeout: iut.request_timeout,
        granted: iut.granted.clone(),
        ip: iut.ip.clone(),
    }
}

/// Runs the applicable scenarios against the started IUT, watching it for exits, then
/// stops it and the fault proxy: what the scenarios recorded, and the exits seen.
async fn execute(
    r: &Resolved,
    plan: &RunPlan,
    iut: Iut,
    ctx: Arc<RunContext>,
) -> anyhow::Result<(Store, Vec<iut::Exit>)> {
    let to_run: Vec<&Planned> = r
        .planned
        .iter()
        .filter(|p| p.not_applicable.is_none())
        .collect();
    if plan.progress {
        eprintln!(
            "provsten: running {} scenarios against {} ({} not applicable)",
            to_run.len(),
            iut.target.addr,
            r.planned.len() - to_run.len()
        );
    }
    let store: collector::Shared = Arc::new(Mutex::new(Store::default()));
    let run_started = Instant::now();
    let watch = match iut.restarter() {
        Some(restarter) => Watch::Started(Box::new(restarter)),
        // An attached IUT is probed after each scenario, if it has an API to probe.
        None if r.cfg.api.is_some() => {
            Watch::Attached(Arc::new(iut::AttachedWatch::new(iut.target.addr)))
        }
        None => Watch::Nothing,
    };
    steps::with_context(
        ctx,
        run_cucumber(&to_run, store.clone(), plan, watch.clone()),
    )
    .await;
    let exits = watch.exits().await;
    tracing::debug!(
        elapsed_ms = run_started.elapsed().as_millis() as u64,
        "scenarios finished"
    );
    iut.stop().await;
    r.embedded_proxy.shutdown().await;
    let store = store
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .map_err(|_| anyhow::anyhow!("result store poisoned"))?;
    Ok((store, exits))
}

/// Whether `file:line` is in one of the shipped features.
fn is_shipped(at: &str, shipped: &[String]) -> bool {
    shipped.iter().any(|p| at.starts_with(&format!("{p}:")))
}

/// The planned scenarios as features holding only them, for reading their steps.
fn planned_features(planned: &[&Planned]) -> Vec<gherkin::Feature> {
    planned
        .iter()
        .map(|p| {
            let mut f = (*p.feature).clone();
            f.scenarios = vec![p.scenario.clone()];
            f.rules.clear();
            f
        })
        .collect()
}

/// Links, routes, message types and timelines the steps name must exist (certificates are
/// checked once the PKI is loaded, before the IUT starts): a typo is a feature error, never
/// the IUT's failure.
fn check_step_names(
    planned: &[Planned],
    shipped: &[String],
    cfg: &iut::config::IutConfig,
    plan: &RunPlan,
) -> anyhow::Result<()> {
    let runs: Vec<&Planned> = planned
        .iter()
        .filter(|p| p.not_applicable.is_none())
        .collect();
    let uses = features::name_uses(&planned_features(&runs));
    // The shipped features name the documented routes and message types; an IUT config
    // without them makes those scenarios not-applicable. A user's own features are checked.
    let own: Vec<features::NameUse> = uses
        .iter()
        .filter(|u| !is_shipped(&u.at, shipped))
        .cloned()
        .collect();
    let uses = &uses[..];
    let routes: Vec<&str> = cfg
        .router
        .iter()
        .flat_map(|r| r.routes.iter().map(|x| x.name.as_str()))
        .collect();
    let mut links = vec![crate::steps::network::API_LINK.to_string()];
    links.extend(routes.iter().map(|r| format!("route-{r}")));
    let links: Vec<&str> = links.iter().map(String::as_str).collect();
    features::check_names(uses, NameKind::Link, &links, "link")?;
    // Without the section the scenarios are not applicable; with it, names must match.
    if cfg.router.is_some() {
        features::check_names(&own, NameKind::Route, &routes, "route (router.routes)")?;
    }
    let messages: Vec<&str> = cfg.messages.iter().map(|m| m.name.as_str()).collect();
    if !messages.is_empty() {
        features::check_names(
            &own,
            NameKind::MessageType,
            &messages,
            "message type ([[message]] name)",
        )?;
    }
    for u in uses.iter().filter(|u| u.kind == NameKind::Timeline) {
        if let Err(e) = crate::network::timeline::find_checked(&u.name, &plan.timelines) {
            return Err(setup_error(format!("{}: {e:#}", u.at)));
        }
    }
    Ok(())
}

/// Why a run in which every selected scenario needs a role the IUT lacks tests nothing.
fn nothing_applies(planned: &[Planned], roles: &[String]) -> String {
    let mut needed: Vec<String> = planned
        .iter()
        .flat_map(|p| features::role_tags(&p.tags))
        .collect();
    needed.sort();
    needed.dedup();
    format!(
        "nothing to test: the {} selected scenarios need role {}, and the IUT config declares iut.roles = {:?} (hint: declare the roles your IUT plays, or select scenarios of its roles with --tags/--profile)",
        planned.len(),
        needed.join(" or "),
        roles
    )
}

/// A scenario running when provsten noticed the IUT had exited fails with that as its
/// evidence (whatever its steps concluded: a refusal by a dead IUT proves nothing); one that
/// started after an exit the IUT was not restarted from is not tested.
fn blame_exits(
    result: &mut ScenarioResult,
    run: &collector::ScenarioRun,
    exits: &[iut::Exit],
    report: &mut [IutExit],
) {
    let (Some(started), Some(ended)) = (run.started, run.ended) else {
        return;
    };
    for (exit, reported) in exits.iter().zip(report.iter_mut()) {
        if started <= exit.found_at && exit.found_at <= ended {
            reported.during.push(result.key.clone());
            result.status = ScenarioStatus::Failed;
            result.message = Some(exit_message(exit));
            result.evidence.push(
                serde_json::json!({
                    "iut_exited": {
                        "status": exit.status,
                        "attached": exit.attached,
                        "restarted": exit.restarted.is_ok(),
                        "last_output": exit.last_output,
                    },
                    "summary": format!("the IUT {} during this scenario", exit.what()),
                })
                .into(),
            );
            return;
        }
        if exit.found_at < started {
            if let Err(why) = &exit.restarted {
                result.status = ScenarioStatus::NotApplicable;
                result.message = Some(format!(
                    "not tested: the IUT had {} earlier in the run and was {why}",
                    exit.what()
                ));
                return;
            }
        }
    }
}

fn exit_message(exit: &iut::Exit) -> String {
    let restart = match &exit.restarted {
        Ok(()) => "provsten restarted it".to_string(),
        Err(why) => why.clone(),
    };
    format!("the IUT {} during this scenario; {restart}", exit.what())
}

/// How the runner notices the IUT going away: a process it started (restarted on exit),
/// an attached IUT probed over TCP, or nothing to watch (no API, not started by provsten).
#[derive(Clone)]
enum Watch {
    Started(Box<iut::Restarter>),
    Attached(Arc<iut::AttachedWatch>),
    Nothing,
}

impl Watch {
    async fn notice_exit(&self, failed: bool) -> Option<iut::Exit> {
        match self {
            Watch::Started(r) => r.notice_exit(failed).await,
            Watch::Attached(a) => a.notice_exit().await,
            Watch::Nothing => None,
        }
    }

    async fn wait_if_restarting(&self) {
        if let Watch::Started(r) = self {
            r.wait_if_restarting().await;
        }
    }

    async fn exits(&self) -> Vec<iut::Exit> {
        match self {
            Watch::Started(r) => r.exits(),
            Watch::Attached(a) => a.exits().await,
            Watch::Nothing => Vec::new(),
        }
    }
}

async fn run_cucumber(to_run: &[&Planned], store: collector::Shared, plan: &RunPlan, watch: Watch) {
    // Rebuild features holding only the selected scenarios, in file order.
    let mut features: Vec<gherkin::Feature> = Vec::new();
    for p in to_run {
        let path = p.feature.path.clone();
        let idx = match features.iter().position(|f| f.path == path) {
            Some(i) => i,
            None => {
                let mut f = (*p.feature).clone();
                f.scenarios.clear();
                for r in &mut f.rules {
                    r.scenarios.clear();
                }
                features.push(f);
                features.len() - 1
            }
        };
        let f = &mut features[idx];
        match f.rules.iter_mut().find(|r| {
            p.feature.rules.iter().any(|orig| {
                orig.name == r.name
                    && orig
                        .scenarios
                        .iter()
                        .any(|s| s.position == p.scenario.position)
            })
        }) {
            Some(rule) => rule.scenarios.push(p.scenario.clone()),
            None => f.scenarios.push(p.scenario.clone()),
        }
    }
    let total = to_run.len();
    let evidence_store = store.clone();
    let before_watch = watch.clone();
    let _ = ProvstenWorld::cucumber::<&str>()
        .with_parser(Preparsed(features))
        .with_writer(Collector::new(store, total, plan.progress))
        .max_concurrent_scenarios(plan.concurrency.max(1))
        .before(move |_feature, _rule, _sc, _world| {
            let watch = before_watch.clone();
            async move { watch.wait_if_restarting().await }.boxed_local()
        })
        .after(move |feature, _rule, sc, ev, world| {
            let store = evidence_store.clone();
            let watch = watch.clone();
            let k = collector::key(feature, sc);
            let failed = matches!(
                ev,
                event::ScenarioFinished::StepFailed(..)
                    | event::ScenarioFinished::BeforeHookFailed(_)
            );
            async move {
                // Before the scenario counts as finished, so an exit falls inside it.
                if let Some(exit) = watch.notice_exit(failed).await {
                    // So the live progress line already says FAIL; `blame_exits` adds the
                    // evidence to this and any other scenario that was running.
                    if let Ok(mut s) = store.lock() {
                        s.scenarios.entry(k.clone()).or_default().failed =
                            Some(exit_message(&exit));
                    }
                }
                let Some(w) = world else { return };
                w.cleanup().await;
                let evidence = std::mem::take(&mut w.evidence);
                if let Ok(mut s) = store.lock() {
                    s.scenarios.entry(k).or_default().evidence = evidence;
                }
            }
            .boxed_local()
        })
        .with_default_cli()
        .run(())
        .await;
}

/// Hands cucumber the features parsed and checked up front.
struct Preparsed(Vec<gherkin::Feature>);

impl cucumber::Parser<()> for Preparsed {
    type Cli = cucumber::cli::Empty;
    type Output =
        futures::stream::Iter<std::vec::IntoIter<cucumber::parser::Result<gherkin::Feature>>>;

    fn parse(self, _input: (), _cli: Self::Cli) -> Self::Output {
        futures::stream::iter(self.0.into_iter().map(Ok).collect::<Vec<_>>())
    }
}

fn result_for(p: &Planned, run: Option<&collector::ScenarioRun>) -> ScenarioResult {
    let feature = p
        .feature
        .path
        .as_ref()
        .map(|x| x.display().to_string())
        .unwrap_or_default();
    let base = |status, steps, message, evidence, duration_ms| ScenarioResult {
        key: p.key.clone(),
        feature: feature.clone(),
        feature_name: Some(p.feature.name.clone()),
        name: p.scenario.name.clone(),
        tags: p.tags.clone(),
        requirements: p.requirements.clone(),
        status,
        duration_ms,
        steps,
        message,
        evidence,
    };
    let declared_steps = |status: StepStatus| -> Vec<StepResult> {
        p.scenario
            .steps
            .iter()
            .map(|s| StepResult {
                keyword: s.keyword.trim().to_string(),
                text: s.value.clone(),
                line: s.position.line,
                status,
            })
            .collect()
    };
    if let Some(reason) = &p.not_applicable {
        return base(
            ScenarioStatus::NotApplicable,
            declared_steps(StepStatus::Skipped),
            Some(reason.clone()),
            vec![],
            0,
        );
    }
    let Some(run) = run.filter(|r| r.finished) else {
        return base(
            ScenarioStatus::Error,
            declared_steps(StepStatus::Skipped),
            Some("the scenario did not finish".into()),
            vec![],
            0,
        );
    };
    // Steps after a failure were never run: list them as skipped.
    let mut steps = run.steps.clone();
    for s in declared_steps(StepStatus::Skipped) {
        if !steps.iter().any(|r| r.line == s.line) {
            steps.push(s);
        }
    }
    steps.sort_by_key(|s| s.line);
    let (status, message) = if let Some(reason) = run.not_applicable.clone() {
        (ScenarioStatus::NotApplicable, Some(reason))
    } else if let Some(e) = run.error.clone() {
        (ScenarioStatus::Error, Some(e))
    } else if let Some(f) = run.failed.clone() {
        (ScenarioStatus::Failed, Some(f))
    } else {
        (ScenarioStatus::Passed, None)
    };
    base(
        status,
        steps,
        message,
        run.evidence.clone(),
        run.duration_ms,
    )
}

async fn server_fingerprint(iut: &Iut) -> Option<String> {
    let spec = crate::peers::ClientSpec::new(None, iut.request_timeout);
    let ex = crate::peers::request(&iut.target, &spec, "GET", &iut.health_path)
        .await
        .ok()?;
    ex.server_certificate_sha256
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
