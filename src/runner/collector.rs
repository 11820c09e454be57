//! A cucumber writer that turns cucumber's event stream into report data (step statuses,
//! durations, failure messages) and prints live progress. Evidence comes from the worlds,
//! through the `after` hook, into the same store.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cucumber::event::{self, Cucumber, Feature, Rule, Scenario, Step, StepError};
use cucumber::gherkin;
use cucumber::{parser, Event};

use crate::report::model::{Evidence, StepResult, StepStatus};
use crate::steps::ProvstenWorld;

/// `path:line`, the stable scenario key.
pub(crate) fn key(feature: &gherkin::Feature, sc: &gherkin::Scenario) -> String {
    let path = feature
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{path}:{}", sc.position.line)
}

#[derive(Debug, Default)]
pub(crate) struct ScenarioRun {
    pub started: Option<Instant>,
    pub ended: Option<Instant>,
    pub duration_ms: u64,
    pub finished: bool,
    pub steps: Vec<StepResult>,
    pub failed: Option<String>,
    pub error: Option<String>,
    /// A step found the scenario cannot apply to this IUT (reason).
    pub not_applicable: Option<String>,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub scenarios: HashMap<String, ScenarioRun>,
    pub errors: Vec<String>,
}

pub(crate) type Shared = Arc<Mutex<Store>>;

pub(crate) struct Collector {
    pub store: Shared,
    pub total: usize,
    done: usize,
    progress: bool,
    /// A live bar on a terminal; plain lines otherwise (CI logs).
    bar: Option<indicatif::ProgressBar>,
}

impl Collector {
    pub(crate) fn new(store: Shared, total: usize, progress: bool) -> Self {
        use std::io::IsTerminal as _;
        let bar = (progress && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} scenarios  {wide_msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Collector {
            store,
            total,
            done: 0,
            progress,
            bar,
        }
    }

    fn scenario(
        &mut self,
        f: &gherkin::Feature,
        sc: &gherkin::Scenario,
        ev: Scenario<ProvstenWorld>,
    ) {
        let k = key(f, sc);
        let mut finished_line = None;
        {
            let Ok(mut store) = self.store.lock() else {
                return;
            };
            let run = store.scenarios.entry(k.clone()).or_default();
            match ev {
                Scenario::Started => {
                    run.started = Some(Instant::now());
                    if let Some(bar) = &self.bar {
                        let feature = f
                            .path
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default();
                        bar.set_message(format!("{feature}: {}", sc.name));
                    }
                }
                Scenario::Background(step, ev) | Scenario::Step(step, ev) => {
                    record_step(run, &step, ev)
                }
                Scenario::Hook(ty, event::Hook::Failed(_, info)) => {
                    run.error = Some(format!("{ty} hook failed: {}", panic_text(&info)));
                }
                Scenario::Hook(..) | Scenario::Log(_) => {}
                Scenario::Finished => {
                    run.finished = true;
                    run.ended = Some(Instant::now());
                    run.duration_ms = run
                        .started
                        .map(|s| s.elapsed().as_millis() as u64)
                        .unwrap_or(0);
                    self.done += 1;
                    let status = if run.not_applicable.is_some() {
                        "N/A  "
                    } else if run.error.is_some() {
                        "ERROR"
                    } else if run.failed.is_some() {
                        "FAIL "
                    } else {
                        "PASS "
                    };
                    finished_line = Some(format!(
                        "[{:>w$}/{}] {status} {k}  {} ({} ms)",
                        self.done,
                        self.total,
                        sc.name,
                        run.duration_ms,
                        w = self.total.to_string().len()
                    ));
                }
            }
        }
        let Some(line) = finished_line.filter(|_| self.progress) else {
            return;
        };
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                // On a terminal only what needs attention scrolls past the bar.
                if !line.contains("] PASS") {
                    bar.println(line);
                }
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        }
    }
}

fn record_step(run: &mut ScenarioRun, step: &gherkin::Step, ev: Step<ProvstenWorld>) {
    let status = match &ev {
        Step::Started => return,
        Step::Passed(..) => StepStatus::Passed,
        // cucumber reports an unmatched step as skipped; features are checked for
        // undefined steps before the run, so this is a safety net.
        Step::Skipped => {
            run.error.get_or_insert_with(|| {
                format!("step not run (undefined?): {}{}", step.keyword, step.value)
            });
            StepStatus::Undefined
        }
        Step::Failed(_, _, _, err) => {
            let text = match err {
                StepError::Panic(info) => panic_text(info),
                other => other.to_string(),
            };
            match err {
                StepError::NotFound | StepError::AmbiguousMatch(_) => run.error = Some(text),
                StepError::Panic(_) => {
                    if let Some(reason) = text.strip_prefix(crate::steps::NOT_APPLICABLE) {
                        run.not_applicable = Some(reason.to_string());
                    } else if let Some(failure) = text.strip_prefix(crate::steps::IUT_FAILED) {
                        run.failed = Some(failure.to_string());
                    } else {
                        // Not the IUT's doing: a harness fault, a bug or a panic.
                        run.error = Some(format!("harness error: {text}"));
                    }
                }
            }
            StepStatus::Failed
        }
    };
    run.steps.push(StepResult {
        keyword: step.keyword.trim().to_string(),
        text: step.value.clone(),
        line: step.position.line,
        status,
    });
}

fn panic_text(info: &event::Info) -> String {
    info.downcast_ref::<String>()
        .cloned()
        .or_else(|| info.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "step panicked".to_string())
}

impl cucumber::Writer<ProvstenWorld> for Collector {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(
        &mut self,
        ev: parser::Result<Event<Cucumber<ProvstenWorld>>>,
        _cli: &Self::Cli,
    ) {
        match ev {
            Err(e) => {
                if let Ok(mut s) = self.store.lock() {
                    s.errors.push(e.to_string());
                }
            }
            Ok(Event { value, .. }) => match value {
                Cucumber::Feature(f, Feature::Scenario(sc, ev)) => self.scenario(&f, &sc, ev.event),
                Cucumber::Feature(f, Feature::Rule(_, Rule::Scenario(sc, ev))) => {
                    self.scenario(&f, &sc, ev.event)
                }
                Cucumber::Finished => {
                    if let Some(bar) = self.bar.take() {
                        bar.finish_and_clear();
                    }
                }
                _ => {}
            },
        }
    }
}

// Events are keyed by scenario, so interleaved (unnormalised) order is fine here.
impl cucumber::writer::Normalized for Collector {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn outcome(text: &str) -> ScenarioRun {
        let mut run = ScenarioRun::default();
        let step = gherkin::Step {
            keyword: "Then ".into(),
            ty: gherkin::StepType::Then,
            value: "the request is refused without protected data".into(),
            docstring: None,
            table: None,
            span: Default::default(),
            position: Default::default(),
        };
        let info: event::Info = Arc::new(text.to_string());
        record_step(
            &mut run,
            &step,
            Step::Failed(None, None, None, StepError::Panic(info)),
        );
        run
    }

    #[test]
    fn only_a_declared_iut_failure_fails_a_scenario() {
        let run = outcome(&format!(
            "{}the IUT granted access",
            crate::steps::IUT_FAILED
        ));
        assert_eq!(run.failed.as_deref(), Some("the IUT granted access"));
        assert!(run.error.is_none());
        let run = outcome(&format!("{}no [ip_filter]", crate::steps::NOT_APPLICABLE));
        assert_eq!(run.not_applicable.as_deref(), Some("no [ip_filter]"));
        // Anything else a step returns, or a panic of the harness, is never the IUT's.
        let run = outcome("binding 127.0.0.1:4000: address in use");
        assert!(run.failed.is_none());
        assert_eq!(
            run.error.as_deref(),
            Some("harness error: binding 127.0.0.1:4000: address in use")
        );
    }
}
