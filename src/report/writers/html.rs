//! `report.html`: the report for people, one self-contained file to hand over or print.
//!
//! Inline CSS only: no scripts, no external fetches, no web fonts. A header with the
//! verdict, the IUT and the run; the requirement matrix grouped by profile; a list of the
//! timeline charts, if any; then every scenario, anchored by its key
//! (`report.html#features/mtls.feature:12`), with its steps, message and evidence. Timeline
//! evidence ([`Evidence::ResendTimeline`], [`Evidence::ExerciseTimeline`]) is drawn as inline
//! SVG ([`super::svg`]) above the evidence JSON. Every string from the model goes through
//! [`escape`].

use std::fmt::{self, Write as _};

use super::evidence_table;
pub(crate) use super::markup::escape;
use super::{
    by_feature, coverage_line, evidence_json, format_duration_ms, key_path, needs_attention,
    run_verdict_label, scenario_tally, scenarios_by_key, status_label, svg, verdict_label,
    verdict_reason,
};
use crate::report::model::*;

/// The file this writer produces in the output directory.
pub(crate) const FILE_NAME: &str = "report.html";

/// The report as one HTML page.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    // `fmt::Write for String` never fails.
    let _ = write_page(&mut out, report);
    out
}

const STYLE: &str = r#"
:root {
  --pass: #1a7f37; --pass-bg: #dafbe1;
  --fail: #cf222e; --fail-bg: #ffebe9;
  --error: #9a6700; --error-bg: #fff8c5;
  --na: #57606a; --na-bg: #eaeef2;
  --text: #1f2328; --muted: #59636e; --line: #d1d9e0; --code-bg: #f6f8fa; --link: #0969da;
}
* { box-sizing: border-box; }
body {
  margin: 0 auto; max-width: 74rem; padding: 2rem 1.5rem 3rem;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--text); background: #fff;
}
code, pre, .mono {
  font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
  font-size: .88em;
}
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0; }
h2 { font-size: 1.25rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.75rem 0 .5rem; }
h3 .count { font-weight: normal; color: var(--muted); font-size: .9rem; }
.eyebrow { color: var(--muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .08em; margin: 0 0 .25rem; }
.run-title { display: flex; align-items: center; gap: 1rem; flex-wrap: wrap; }
.badge { padding: .25rem .8rem; border-radius: .4rem; border: 2px solid currentColor; font-weight: 700; letter-spacing: .05em; }
.verdict-reason { font-size: 1.05rem; margin: .6rem 0 1.25rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1.5rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.notice { border-left: 4px solid var(--error); background: var(--error-bg); padding: .5rem .8rem; margin: 1.25rem 0 0; }
.counts { display: flex; flex-wrap: wrap; gap: .4rem; margin-top: 1.25rem; align-items: center; }
.counts .label { color: var(--muted); margin-right: .2rem; }
.counts .label:not(:first-child) { margin-left: 1rem; }
.attention { margin: .75rem 0 0; padding-left: 1.25rem; }
.pill { display: inline-block; min-width: 3.6rem; padding: .05rem .5rem; border-radius: 999px; text-align: center;
  font-size: .75rem; font-weight: 600; letter-spacing: .03em; white-space: nowrap; }
.v-pass, .s-passed { color: var(--pass); background: var(--pass-bg); }
.v-fail, .s-failed { color: var(--fail); background: var(--fail-bg); }
.v-error, .s-error { color: var(--error); background: var(--error-bg); }
.v-not-applicable, .v-not-tested, .v-not-testable, .s-not-applicable, .s-missing { color: var(--na); background: var(--na-bg); }
table { width: 100%; border-collapse: collapse; font-size: .92rem; }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-size: .75rem; font-weight: 600; text-transform: uppercase; letter-spacing: .05em; }
/* Same column proportions in every profile's table, so they line up; without them the
   chip column takes most of the width and titles wrap word by word. */
table.matrix th:nth-child(1) { width: 14%; }
table.matrix th:nth-child(2) { width: 29%; }
table.matrix th:nth-child(3) { width: 16%; }
table.matrix th:nth-child(4) { width: 11%; }
table.matrix th:nth-child(5) { width: 30%; }
td.id { white-space: nowrap; }
td.source { color: var(--muted); font-size: .85rem; }
.reason { color: var(--muted); font-size: .85rem; margin-top: .15rem; }
.chip { display: inline-block; margin: 0 .3rem .3rem 0; padding: 0 .4rem; border-radius: .3rem; font-size: .8rem; }
a.chip:hover { text-decoration: none; filter: brightness(.93); }
.feature { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .98rem; }
article.scenario { border: 1px solid var(--line); border-left: 5px solid var(--na); border-radius: .4rem;
  padding: .7rem 1rem .8rem; margin: .75rem 0; }
article.passed { border-left-color: var(--pass); }
article.failed { border-left-color: var(--fail); }
article.error { border-left-color: var(--error); }
.scenario-head { display: flex; align-items: baseline; gap: .6rem; flex-wrap: wrap; }
.scenario-head h4 { margin: 0; font-size: 1rem; }
.scenario-head .key { color: var(--muted); font-size: .82rem; }
.scenario-head .duration { margin-left: auto; color: var(--muted); font-size: .85rem; }
.meta { margin: .35rem 0 0; font-size: .85rem; color: var(--muted); }
.tag { display: inline-block; margin-right: .25rem; padding: 0 .35rem; border: 1px solid var(--line); border-radius: .25rem;
  background: var(--code-bg); color: var(--text); }
ol.steps { list-style: none; margin: .6rem 0 0; padding: 0; font-size: .92rem; }
ol.steps li { display: grid; grid-template-columns: 5.5rem 1fr auto; gap: .6rem; padding: .08rem 0; }
.step-status { font-size: .72rem; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; padding-top: .15rem; }
.st-passed { color: var(--pass); } .st-failed { color: var(--fail); }
.st-undefined { color: var(--error); } .st-skipped { color: var(--na); }
li.step-skipped .step-text { color: var(--muted); }
.kw { font-weight: 600; }
.line { color: var(--muted); font-size: .8rem; }
.message { margin: .6rem 0 0; padding: .4rem .75rem; border-left: 3px solid currentColor; border-radius: 0 .3rem .3rem 0; overflow-wrap: anywhere; }
.message.passed, .message.not-applicable { color: var(--muted); background: var(--na-bg); }
.message.failed { color: var(--fail); background: var(--fail-bg); }
.message.error { color: var(--error); background: var(--error-bg); }
.evidence-label { margin: .7rem 0 .2rem; color: var(--muted); font-size: .72rem; font-weight: 600;
  text-transform: uppercase; letter-spacing: .05em; }
figure.chart { margin: .2rem 0 .6rem; padding: .5rem .6rem .3rem; border: 1px solid var(--line);
  border-radius: .3rem; background: #fff; }
figure.chart svg { display: block; width: 100%; height: auto; }
.chart-error { margin: .2rem 0 .6rem; color: var(--error); font-size: .85rem; }
ul.timelines { margin: 0; padding-left: 1.25rem; }
ul.timelines li { margin: .25rem 0; }
ul.timelines .summary, ul.timelines .in { color: var(--muted); font-size: .88rem; }
pre { margin: 0; padding: .6rem .8rem; overflow-x: auto; background: var(--code-bg); border: 1px solid var(--line);
  border-radius: .3rem; font-size: .8rem; line-height: 1.45; }
table.ev, table.ev-grid { width: 100%; margin: .2rem 0 .5rem; border-collapse: collapse; font-size: .82rem; }
table.ev th, table.ev td, table.ev-grid th, table.ev-grid td { padding: .2rem .45rem; border: 1px solid var(--line);
  text-align: left; vertical-align: top; overflow-wrap: anywhere; }
table.ev th, table.ev-grid th { color: var(--muted); font-weight: 600; background: var(--code-bg);
  font-size: .8rem; text-transform: none; letter-spacing: normal; }
table th.k { width: 1%; min-width: 6em; overflow-wrap: normal; }
table.ev-grid thead th { overflow-wrap: normal; }
table.ev table.ev { margin: 0; }
pre.ev-body { max-height: 18rem; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .78rem; }
.ev-note, .ev-none { color: var(--muted); font-size: .78rem; }
details.raw { margin: .3rem 0 .2rem; }
details.raw summary { color: var(--muted); font-size: .8rem; cursor: pointer; }
:target { outline: 2px solid var(--link); outline-offset: 2px; }
footer { margin-top: 3rem; padding-top: .75rem; border-top: 1px solid var(--line); color: var(--muted); font-size: .8rem; }
@page { margin: 14mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; }
  h2, h3 { break-after: avoid; }
  tr, ol.steps li, .message { break-inside: avoid; }
  article.scenario { break-inside: avoid-page; }
  figure.chart { break-inside: avoid; }
  pre { white-space: pre-wrap; overflow-wrap: anywhere; overflow: visible; }
  pre.ev-body { max-height: none; }
  table.ev, table.ev-grid { break-inside: auto; }
  details.raw { display: none; }
  :target { outline: none; }
}
"#;

fn write_page(out: &mut String, report: &Report) -> fmt::Result {
    writeln!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>")?;
    writeln!(out, "<meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(
        out,
        "<title>{}: {} — {} compliance report</title>",
        escape(&report.iut.name),
        run_verdict_label(report.verdict),
        escape(&report.harness.name)
    )?;
    writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>")?;
    write_header(out, report)?;
    writeln!(out, "<main>")?;
    write_matrix(out, report)?;
    write_timelines(out, report)?;
    write_scenarios(out, report)?;
    writeln!(out, "</main>")?;
    writeln!(
        out,
        "<footer>Written by {} {} · report schema_version {} · <code>report.json</code> \
         beside this file holds the same data.</footer>",
        escape(&report.harness.name),
        escape(&report.harness.version),
        report.schema_version
    )?;
    writeln!(out, "</body>\n</html>")
}

fn write_header(out: &mut String, report: &Report) -> fmt::Result {
    let verdict_class = match report.verdict {
        RunVerdict::Compliant => "v-pass",
        RunVerdict::Error => "v-error",
        RunVerdict::NonCompliant => "v-fail",
    };
    writeln!(out, "<header>")?;
    writeln!(
        out,
        "<p class=\"eyebrow\">{} compliance report</p>",
        escape(&report.harness.name)
    )?;
    writeln!(
        out,
        "<div class=\"run-title\"><h1>{}</h1><span class=\"badge {verdict_class}\">{}</span></div>",
        escape(&report.iut.name),
        run_verdict_label(report.verdict)
    )?;
    writeln!(
        out,
        "<p class=\"verdict-reason\">{}.</p>",
        escape(&verdict_reason(report))
    )?;

    writeln!(out, "<dl class=\"facts\">")?;
    let fact = |out: &mut String, term: &str, value: &str| {
        writeln!(out, "<dt>{term}</dt><dd>{value}</dd>")
    };
    fact(out, "Implementation under test", &escape(&report.iut.name))?;
    let roles = if report.iut.roles.is_empty() {
        "none declared".to_owned()
    } else {
        escape(&report.iut.roles.join(", "))
    };
    fact(out, "Roles", &roles)?;
    fact(out, "Coverage", &escape(&coverage_line(report)))?;
    let fingerprint = match &report.iut.server_certificate_sha256 {
        Some(hex) => format!("<code>{}</code>", escape(&colon_hex(hex))),
        None => "none: the IUT never completed a TLS handshake".to_owned(),
    };
    fact(out, "Server certificate SHA-256", &fingerprint)?;
    fact(
        out,
        "Profile",
        &format!("<code>{}</code>", escape(&report.profile)),
    )?;
    fact(out, "Started", &escape(&report.started_at))?;
    fact(out, "Finished", &escape(&report.finished_at))?;
    fact(
        out,
        "Harness",
        &format!(
            "{} {}",
            escape(&report.harness.name),
            escape(&report.harness.version)
        ),
    )?;
    writeln!(out, "</dl>")?;

    if !report.iut.defects.is_empty() {
        writeln!(
            out,
            "<p class=\"notice\"><strong>Seeded defects:</strong> <code>{}</code>. This run \
             checks the harness against the reference IUT; it is not a certification.</p>",
            escape(&report.iut.defects.join(", "))
        )?;
    }

    write_counts(out, report)?;

    let attention: Vec<&ScenarioResult> = report
        .scenarios
        .iter()
        .filter(|s| needs_attention(s.status))
        .collect();
    if !attention.is_empty() {
        writeln!(out, "<ul class=\"attention\">")?;
        for scenario in attention {
            writeln!(
                out,
                "<li><span class=\"pill {}\">{}</span> <a href=\"{}\">{}</a> <span \
                 class=\"mono line\">{}</span></li>",
                status_class(scenario.status),
                status_label(scenario.status),
                href(&scenario.key),
                escape(&scenario.name),
                escape(&scenario.key)
            )?;
        }
        writeln!(out, "</ul>")?;
    }
    writeln!(out, "</header>")
}

/// Requirement and scenario counts as pills: `Requirements 1 PASS 1 FAIL …`.
fn write_counts(out: &mut String, report: &Report) -> fmt::Result {
    writeln!(out, "<div class=\"counts\">")?;
    writeln!(
        out,
        "<span class=\"label\">Requirements ({})</span>",
        report.requirements.len()
    )?;
    for verdict in [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Error,
        Verdict::NotTested,
        Verdict::NotApplicable,
        Verdict::NotTestable,
    ] {
        let n = report
            .requirements
            .iter()
            .filter(|r| r.verdict == verdict)
            .count();
        if n > 0 {
            writeln!(
                out,
                "<span class=\"pill v-{}\">{n} {}</span>",
                verdict.as_str(),
                verdict_label(verdict)
            )?;
        }
    }
    writeln!(
        out,
        "<span class=\"label\">Scenarios ({})</span>",
        report.scenarios.len()
    )?;
    for status in [
        ScenarioStatus::Passed,
        ScenarioStatus::Failed,
        ScenarioStatus::Error,
        ScenarioStatus::NotApplicable,
    ] {
        let n = report
            .scenarios
            .iter()
            .filter(|s| s.status == status)
            .count();
        if n > 0 {
            writeln!(
                out,
                "<span class=\"pill {}\">{n} {}</span>",
                status_class(status),
                status_label(status)
            )?;
        }
    }
    writeln!(out, "</div>")
}

fn write_matrix(out: &mut String, report: &Report) -> fmt::Result {
    let by_key = scenarios_by_key(report);
    writeln!(out, "<section id=\"requirements\">\n<h2>Requirements</h2>")?;
    if report.requirements.is_empty() {
        writeln!(out, "<p>No requirements in this profile.</p>")?;
    }
    let mut profiles: Vec<&str> = Vec::new();
    for requirement in &report.requirements {
        if !profiles.contains(&requirement.profile.as_str()) {
            profiles.push(&requirement.profile);
        }
    }
    for profile in profiles {
        let requirements: Vec<&RequirementResult> = report
            .requirements
            .iter()
            .filter(|r| r.profile == profile)
            .collect();
        let plural = if requirements.len() == 1 { "" } else { "s" };
        writeln!(
            out,
            "<h3>Profile <code>{}</code> <span class=\"count\">· {} requirement{plural}</span></h3>",
            escape(profile),
            requirements.len()
        )?;
        writeln!(
            out,
            "<table class=\"matrix\">\n<thead><tr><th>ID</th><th>Requirement</th><th>Source</th>\
             <th>Verdict</th><th>Scenarios</th></tr></thead>\n<tbody>"
        )?;
        for requirement in requirements {
            let (passed, total) = scenario_tally(requirement, &by_key);
            writeln!(
                out,
                "<tr id=\"{}\"><td class=\"id\"><code>{}</code></td><td>{}",
                escape(&anchor(&format!("req-{}", requirement.id))),
                escape(&requirement.id),
                escape(&requirement.title)
            )?;
            if let Some(reason) = &requirement.reason {
                writeln!(out, "<div class=\"reason\">{}</div>", escape(reason))?;
            }
            writeln!(
                out,
                "</td><td class=\"source\">{}</td><td><span class=\"pill v-{}\">{}</span></td><td>",
                escape(&requirement.source),
                requirement.verdict.as_str(),
                verdict_label(requirement.verdict)
            )?;
            if total == 0 {
                write!(out, "<span class=\"line\">none</span>")?;
            } else if total > 1 {
                write!(out, "<div class=\"line\">{passed} of {total} passed</div>")?;
            }
            for key in &requirement.scenarios {
                match by_key.get(key.as_str()) {
                    Some(scenario) => write!(
                        out,
                        "<a class=\"chip {}\" href=\"{}\" title=\"{} — {}\">{}</a>",
                        status_class(scenario.status),
                        href(key),
                        status_label(scenario.status),
                        escape(&scenario.name),
                        escape(short_key(key))
                    )?,
                    None => write!(
                        out,
                        "<span class=\"chip s-missing\" title=\"not in this report\">{}</span>",
                        escape(short_key(key))
                    )?,
                }
            }
            writeln!(out, "</td></tr>")?;
        }
        writeln!(out, "</tbody>\n</table>")?;
    }
    writeln!(out, "</section>")
}

/// Timeline evidence `report.html` draws as a chart.
enum Timeline<'a> {
    Exercise(&'a ExerciseTimeline),
    Resend(&'a ResendTimeline),
}

impl Timeline<'_> {
    fn title(&self) -> &str {
        match self {
            Timeline::Exercise(_) => "Outage exercise",
            Timeline::Resend(t) => t.subject.as_deref().unwrap_or("Resend attempts"),
        }
    }

    fn summary(&self) -> String {
        match self {
            Timeline::Exercise(t) => svg::exercise_summary(t),
            Timeline::Resend(t) => svg::resend_summary(t),
        }
    }

    fn svg(&self) -> String {
        match self {
            Timeline::Exercise(t) => svg::exercise_chart(t),
            Timeline::Resend(t) => svg::resend_chart(t),
        }
    }
}

/// A timeline found in a scenario's evidence.
struct Chart<'a> {
    /// Element id: `<scenario key>-evidence-<n>-<kind's key>`, unique in the page because
    /// scenario keys are.
    id: String,
    /// 1-based position in the evidence array, as a reader counts the JSON.
    observation: usize,
    kind: ChartKind,
    /// The timeline, or why the observation does not fit the model.
    timeline: Result<Timeline<'a>, &'a str>,
}

/// The timelines in a scenario's evidence, drawable or not.
fn charts(scenario: &ScenarioResult) -> Vec<Chart<'_>> {
    let mut charts = Vec::new();
    for (i, item) in scenario.evidence.iter().enumerate() {
        let (kind, timeline) = match item {
            Evidence::ExerciseTimeline(t) => {
                (ChartKind::ExerciseTimeline, Ok(Timeline::Exercise(t)))
            }
            Evidence::Malformed { kind, error, .. } => (*kind, Err(error.as_str())),
            Evidence::Observation(_) => continue,
            Evidence::ResendTimeline(t) => (ChartKind::ResendTimeline, Ok(Timeline::Resend(t))),
        };
        charts.push(Chart {
            id: anchor(&format!(
                "{}-evidence-{}-{}",
                scenario.key,
                i + 1,
                kind.key()
            )),
            observation: i + 1,
            kind,
            timeline,
        });
    }
    charts
}

/// A list of every chart in the report, each linked to itself and its scenario; nothing
/// if there are none.
fn write_timelines(out: &mut String, report: &Report) -> fmt::Result {
    let mut items = Vec::new();
    for (_, scenarios) in by_feature(&report.scenarios) {
        for scenario in scenarios {
            for chart in charts(scenario) {
                if let Ok(timeline) = &chart.timeline {
                    items.push((
                        scenario,
                        chart.id.clone(),
                        timeline.title().to_owned(),
                        timeline.summary(),
                    ));
                }
            }
        }
    }
    if items.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<section id=\"timelines\">\n<h2>Timelines</h2>\n<ul class=\"timelines\">"
    )?;
    for (scenario, id, title, summary) in items {
        writeln!(
            out,
            "<li><a href=\"{}\">{}</a> <span class=\"summary\">· {}</span><br>\
             <span class=\"in\">in</span> <span class=\"pill {}\">{}</span> \
             <a href=\"{}\">{}</a> <span class=\"mono line\">{}</span></li>",
            href(&id),
            escape(&title),
            escape(&summary),
            status_class(scenario.status),
            status_label(scenario.status),
            href(&scenario.key),
            escape(&scenario.name),
            escape(&scenario.key)
        )?;
    }
    writeln!(out, "</ul>\n</section>")
}

fn write_scenarios(out: &mut String, report: &Report) -> fmt::Result {
    writeln!(out, "<section id=\"scenarios\">\n<h2>Scenarios</h2>")?;
    if report.scenarios.is_empty() {
        writeln!(out, "<p>No scenarios ran.</p>")?;
    }
    for (feature, scenarios) in by_feature(&report.scenarios) {
        let plural = if scenarios.len() == 1 { "" } else { "s" };
        writeln!(
            out,
            "<h3><span class=\"feature\">{}</span> <span class=\"count\">· {} scenario{plural}</span></h3>",
            escape(feature),
            scenarios.len()
        )?;
        for scenario in scenarios {
            write_scenario(out, scenario)?;
        }
    }
    writeln!(out, "</section>")
}

fn write_scenario(out: &mut String, scenario: &ScenarioResult) -> fmt::Result {
    let class = status_word(scenario.status);
    writeln!(
        out,
        "<article class=\"scenario {class}\" id=\"{}\">",
        escape(&anchor(&scenario.key))
    )?;
    writeln!(
        out,
        "<div class=\"scenario-head\"><span class=\"pill {}\">{}</span><h4>{}</h4>\
         <a class=\"key mono\" href=\"{}\">{}</a><span class=\"duration\">{}</span></div>",
        status_class(scenario.status),
        status_label(scenario.status),
        escape(&scenario.name),
        href(&scenario.key),
        escape(&scenario.key),
        format_duration_ms(scenario.duration_ms)
    )?;

    let mut meta = Vec::new();
    if !scenario.requirements.is_empty() {
        let links: Vec<String> = scenario
            .requirements
            .iter()
            .map(|id| {
                format!(
                    "<a href=\"{}\"><code>{}</code></a>",
                    href(&format!("req-{id}")),
                    escape(id)
                )
            })
            .collect();
        meta.push(format!("Requirements {}", links.join(", ")));
    }
    if !scenario.tags.is_empty() {
        let tags: Vec<String> = scenario
            .tags
            .iter()
            .map(|tag| format!("<span class=\"tag mono\">{}</span>", escape(tag)))
            .collect();
        meta.push(format!("Tags {}", tags.join("")));
    }
    if !meta.is_empty() {
        writeln!(
            out,
            "<p class=\"meta\">{}</p>",
            meta.join(" &nbsp;·&nbsp; ")
        )?;
    }

    if !scenario.steps.is_empty() {
        writeln!(out, "<ol class=\"steps\">")?;
        for step in &scenario.steps {
            let word = match step.status {
                StepStatus::Failed => "failed",
                StepStatus::Passed => "passed",
                StepStatus::Skipped => "skipped",
                StepStatus::Undefined => "undefined",
            };
            writeln!(
                out,
                "<li class=\"step-{word}\"><span class=\"step-status st-{word}\">{word}</span>\
                 <span class=\"step-text\"><span class=\"kw\">{}</span> {}</span>\
                 <span class=\"line\">line {}</span></li>",
                escape(step.keyword.trim()),
                escape(&step.text),
                step.line
            )?;
        }
        writeln!(out, "</ol>")?;
    }

    if let Some(message) = &scenario.message {
        writeln!(out, "<p class=\"message {class}\">{}</p>", escape(message))?;
    }
    if !scenario.evidence.is_empty() {
        writeln!(out, "<p class=\"evidence-label\">Evidence</p>")?;
        for chart in charts(scenario) {
            match &chart.timeline {
                Ok(timeline) => writeln!(
                    out,
                    "<figure class=\"chart\" id=\"{}\">\n{}</figure>",
                    escape(&chart.id),
                    timeline.svg()
                )?,
                // Said where the chart would be, so whoever writes the evidence sees why.
                Err(error) => writeln!(
                    out,
                    "<p class=\"chart-error\">Not drawn: <code>{}</code> in observation {} \
                     does not fit the model: {}</p>",
                    chart.kind.key(),
                    chart.observation,
                    escape(error)
                )?,
            }
        }
        // Observations as tables (charts are drawn above); the raw JSON one click away.
        let tables: String = scenario
            .evidence
            .iter()
            .filter_map(|e| match e {
                Evidence::Observation(v) => Some(evidence_table::observation(v)),
                Evidence::ResendTimeline(_)
                | Evidence::ExerciseTimeline(_)
                | Evidence::Malformed { .. } => None,
            })
            .collect();
        let json = escape(&evidence_json(&scenario.evidence));
        let raw = format!(
            "<details class=\"raw\"><summary>Raw JSON</summary><pre>{json}</pre></details>"
        );
        // Passed scenarios' evidence is folded (no script needed): a report of a hundred
        // scenarios stays readable, and what failed stays open. A charted one (an exercise,
        // a resend timeline) keeps its figures open beside the chart.
        let charted = scenario.evidence.iter().any(|e| {
            matches!(
                e,
                Evidence::ResendTimeline(_) | Evidence::ExerciseTimeline(_)
            )
        });
        if scenario.status == ScenarioStatus::Passed && !charted {
            writeln!(
                out,
                "<details><summary>{} observation{}</summary>{tables}{raw}</details>",
                scenario.evidence.len(),
                if scenario.evidence.len() == 1 {
                    ""
                } else {
                    "s"
                }
            )?;
        } else {
            writeln!(out, "{tables}{raw}")?;
        }
    }
    writeln!(out, "</article>")
}

/// The CSS class of a scenario status pill.
fn status_class(status: ScenarioStatus) -> &'static str {
    match status {
        ScenarioStatus::Error => "s-error",
        ScenarioStatus::Failed => "s-failed",
        ScenarioStatus::NotApplicable => "s-not-applicable",
        ScenarioStatus::Passed => "s-passed",
    }
}

fn status_word(status: ScenarioStatus) -> &'static str {
    match status {
        ScenarioStatus::Error => "error",
        ScenarioStatus::Failed => "failed",
        ScenarioStatus::NotApplicable => "not-applicable",
        ScenarioStatus::Passed => "passed",
    }
}

/// An element id from a key: the key itself, whitespace (not allowed in ids) as `_`.
fn anchor(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// A link to [`anchor`]`(key)`, percent-encoded where a URL fragment needs it (browsers
/// decode the fragment before looking up the id), then HTML-escaped for the attribute.
fn href(key: &str) -> String {
    let mut fragment = String::from("#");
    for c in anchor(key).chars() {
        if c.is_ascii_alphanumeric() || "-._~/:@!$'()*+,;=".contains(c) {
            fragment.push(c);
        } else {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                // Writing into a String cannot fail.
                let _ = write!(fragment, "%{byte:02X}");
            }
        }
    }
    escape(&fragment)
}

/// `features/mtls.feature:12` → `mtls.feature:12`, for compact scenario chips.
fn short_key(key: &str) -> &str {
    let path = key_path(key);
    match path.rfind('/') {
        Some(slash) => &key[slash + 1..],
        None => key,
    }
}

/// `3f1a…` → `3F:1A:…`, the way `openssl x509 -fingerprint` prints it; other text as is.
fn colon_hex(hex: &str) -> String {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex.to_owned();
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::writers::sample_report;

    #[test]
    fn escape_neutralises_markup_quotes_and_ampersands() {
        assert_eq!(
            escape("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("a \"b\" & c"), "a &quot;b&quot; &amp; c");
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(escape("plain åäö"), "plain åäö");
    }

    #[test]
    fn planted_script_in_model_strings_is_escaped() {
        let mut report = sample_report();
        let evil = "<script>alert(\"pwned\")</script>";
        report.scenarios[1].name = evil.to_owned();
        report.scenarios[1].key = format!("features/{evil}.feature:3");
        report.scenarios[1].tags.push(evil.to_owned());
        report.scenarios[1]
            .evidence
            .push(serde_json::json!({ "body": evil }).into());
        report.requirements[0].title = evil.to_owned();
        report.requirements[0].scenarios = vec![report.scenarios[1].key.clone()];
        report.iut.name = evil.to_owned();
        report.profile = "\"><script>x</script>".to_owned();
        let html = render(&report);
        assert!(!html.contains("<script"), "unescaped markup in report.html");
        assert!(html.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;"));
    }

    #[test]
    fn page_is_self_contained() {
        let html = render(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("<link"));
        assert!(!html.contains("@import"));
        assert!(!html.contains("url("));
        assert!(!html.contains("src="));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn header_names_verdict_iut_roles_fingerprint_profile_and_times() {
        let html = render(&sample_report());
        assert!(html.contains("<span class=\"badge v-fail\">NON-COMPLIANT</span>"));
        assert!(html.contains("<h1>reference-iut</h1>"));
        assert!(html.contains("<dt>Roles</dt><dd>server, sender</dd>"));
        assert!(html.contains("<code>3F:1A:9C:0E:"));
        assert!(html.contains("<dt>Profile</dt><dd><code>all</code></dd>"));
        assert!(html.contains("<dt>Started</dt><dd>2025-11-23T12:00:00Z</dd>"));
        assert!(html.contains("<dt>Finished</dt><dd>2025-11-23T12:00:04.250Z</dd>"));
        assert!(html.contains("Seeded defects"));
    }

    #[test]
    fn matrix_groups_by_profile_and_links_scenarios() {
        let html = render(&sample_report());
        let e_evidence = html.find("Profile <code>e-evidence</code>").unwrap();
        let fmk = html.find("Profile <code>fmk</code>").unwrap();
        let audit = html.find("<tr id=\"req-FMK-5-AUDIT\">").unwrap();
        assert!(e_evidence < fmk && fmk < audit);
        assert!(html.contains("<span class=\"pill v-not-testable\">NOT-TESTABLE</span>"));
        assert!(html.contains(
            "<a class=\"chip s-failed\" href=\"#features/mtls.feature:14\" \
             title=\"FAIL — expired client certificate is refused\">mtls.feature:14</a>"
        ));
        assert!(html.contains("<div class=\"reason\">needs an audit log"));
    }

    #[test]
    fn scenarios_are_anchored_by_key_with_steps_message_and_evidence() {
        let html = render(&sample_report());
        let start = html
            .find("<article class=\"scenario failed\" id=\"features/mtls.feature:14\">")
            .unwrap();
        let article = &html[start..start + html[start..].find("</article>").unwrap()];
        assert!(article.contains("<span class=\"step-status st-failed\">failed</span>"));
        assert!(article.contains("<span class=\"kw\">Then</span> the handshake fails"));
        assert!(article.contains(
            "<p class=\"message failed\">expected the handshake to fail, but the IUT answered \
             HTTP 200</p>"
        ));
        assert!(article.contains("<pre>[\n  {"));
        assert!(article.contains("&quot;presented&quot;: &quot;client-expired&quot;"));
        assert!(article.contains("<a href=\"#req-EB-MTLS-1\"><code>EB-MTLS-1</code></a>"));
        assert_eq!(html.matches("<article ").count(), 4);
    }

    #[test]
    fn links_percent_encode_what_a_fragment_cannot_hold() {
        assert_eq!(
            href("features/mtls.feature:12"),
            "#features/mtls.feature:12"
        );
        assert_eq!(
            href("features/my tls.feature:1"),
            "#features/my_tls.feature:1"
        );
        assert_eq!(href("a\"b<c>&ö"), "#a%22b%3Cc%3E%26%C3%B6");
        assert_eq!(
            anchor("features/my tls.feature:1"),
            "features/my_tls.feature:1"
        );
    }

    /// The sample's error scenario, which carries one timeline of each shape.
    fn resend_article(html: &str) -> &str {
        let start = html
            .find("<article class=\"scenario error\" id=\"features/resend.feature:20\">")
            .unwrap();
        &html[start..start + html[start..].find("</article>").unwrap()]
    }

    #[test]
    fn timeline_evidence_is_drawn_above_the_evidence_json() {
        let html = render(&sample_report());
        assert_eq!(html.matches("<svg").count(), 2);
        let article = resend_article(&html);
        let resend = article
            .find("<figure class=\"chart\" id=\"features/resend.feature:20-evidence-2-resend_timeline\">")
            .unwrap();
        let exercise = article
            .find("<figure class=\"chart\" id=\"features/resend.feature:20-evidence-3-exercise_timeline\">")
            .unwrap();
        let json = article.find("<pre>").unwrap();
        assert!(resend < exercise && exercise < json);
        assert!(
            article.contains("&quot;resend_timeline&quot;: {"),
            "JSON kept"
        );
        assert!(article.contains("aria-label=\"Resend timeline, message n-1"));
        assert!(article.contains("aria-label=\"Outage exercise timeline, 3 phases (1 outage)"));
    }

    #[test]
    fn timelines_section_follows_the_matrix_and_links_chart_and_scenario() {
        let html = render(&sample_report());
        let matrix = html.find("<section id=\"requirements\">").unwrap();
        let timelines = html.find("<section id=\"timelines\">").unwrap();
        let scenarios = html.find("<section id=\"scenarios\">").unwrap();
        assert!(matrix < timelines && timelines < scenarios);
        let section = &html[timelines..scenarios];
        assert_eq!(section.matches("<li>").count(), 2);
        assert!(section.contains(
            "<a href=\"#features/resend.feature:20-evidence-2-resend_timeline\">Resend attempts</a> \
             <span class=\"summary\">· message n-1: 4 attempts (1 accepted), 4 expected ± 500 ms, \
             1 outside every tolerance band</span>"
        ));
        assert!(section.contains(
            "<a href=\"#features/resend.feature:20-evidence-3-exercise_timeline\">Outage exercise</a>"
        ));
        assert!(section.contains(
            "<a href=\"#features/resend.feature:20\">sender follows its declared resend policy</a>"
        ));
    }

    #[test]
    fn no_timelines_section_without_timeline_evidence() {
        let mut report = sample_report();
        report.scenarios[3].evidence.truncate(1);
        let html = render(&report);
        assert!(!html.contains("id=\"timelines\""));
        assert!(!html.contains("<svg"));
    }

    #[test]
    fn timeline_evidence_that_does_not_fit_the_model_says_why_and_keeps_the_json() {
        let mut report = sample_report();
        report.scenarios[3].evidence[1] =
            serde_json::json!({ "resend_timeline": { "message_id": "n-1" } }).into();
        let html = render(&report);
        assert_eq!(
            html.matches("<svg").count(),
            1,
            "the exercise chart still draws"
        );
        let article = resend_article(&html);
        assert!(article.contains(
            "<p class=\"chart-error\">Not drawn: <code>resend_timeline</code> in observation 2 \
             does not fit the model: missing field `attempts`</p>"
        ));
        assert!(article.contains("&quot;message_id&quot;: &quot;n-1&quot;"));
        let timelines = &html[html.find("<section id=\"timelines\">").unwrap()..];
        let timelines = &timelines[..timelines.find("</section>").unwrap()];
        assert_eq!(
            timelines.matches("<li>").count(),
            1,
            "only drawn charts are listed"
        );
    }

    #[test]
    fn page_with_charts_is_well_formed_and_escapes_chart_labels() {
        let mut report = sample_report();
        let evil = "<script>alert(1)</script>";
        let evidence = &mut report.scenarios[3].evidence;
        let Evidence::ExerciseTimeline(exercise) = &mut evidence[2] else {
            panic!("the sample's third observation is an exercise timeline");
        };
        exercise.routes[0].route = evil.into();
        let Evidence::ResendTimeline(resend) = &mut evidence[1] else {
            panic!("the sample's second observation is a resend timeline");
        };
        resend.attempts[0].outcome = evil.into();
        // A client's calls are titled by their subject (in the timelines list too).
        resend.subject = Some(evil.into());
        let html = render(&report);
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; (79 delivered)"));
        crate::report::writers::svg::tests::assert_well_formed(&html);
    }

    #[test]
    fn fingerprints_print_as_colon_separated_pairs() {
        assert_eq!(colon_hex("0aff"), "0A:FF");
        assert_eq!(colon_hex("not hex"), "not hex");
    }
}
