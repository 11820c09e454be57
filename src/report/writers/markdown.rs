//! `summary.md`: GitHub-flavoured Markdown for a PR comment or `$GITHUB_STEP_SUMMARY`.
//!
//! A verdict heading, the requirement table, then the failed and error scenarios with
//! their evidence folded in `<details>`. PR comments are capped at 65 536 characters, so
//! only the first [`MAX_DETAILED`] scenarios get details and each evidence block is cut at
//! [`MAX_EVIDENCE_CHARS`]; `report.html` and `report.json` have everything.

use std::fmt::{self, Write as _};

use super::markup::escape;
use super::{
    coverage_line, evidence_json, first_to_fix, format_duration_ms, needs_attention,
    run_verdict_label, scenario_tally, scenarios_by_key, status_label, truncate, verdict_label,
    verdict_reason,
};
use crate::report::model::*;

/// The file this writer produces in the output directory.
pub(crate) const FILE_NAME: &str = "summary.md";

/// How many failed or error scenarios are listed with their evidence.
pub(crate) const MAX_DETAILED: usize = 25;

/// Evidence longer than this (pretty JSON characters) is cut.
pub(crate) const MAX_EVIDENCE_CHARS: usize = 2_000;

/// The report as Markdown.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    // `fmt::Write for String` never fails.
    let _ = write_summary(&mut out, report);
    out
}

fn write_summary(out: &mut String, report: &Report) -> fmt::Result {
    writeln!(
        out,
        "## {}: {}\n",
        text(&report.harness.name),
        run_verdict_label(report.verdict)
    )?;
    writeln!(out, "{}.\n", text(&verdict_reason(report)))?;
    writeln!(out, "Coverage: {}.\n", text(&coverage_line(report)))?;
    if let Some(first) = first_to_fix(report) {
        writeln!(out, "**{}**\n", text(&first))?;
    }

    let roles = if report.iut.roles.is_empty() {
        "none".to_owned()
    } else {
        report.iut.roles.join(", ")
    };
    writeln!(
        out,
        "IUT {} (roles: {}) · profile {} · {} {} · {} → {}",
        code(&report.iut.name),
        text(&roles),
        code(&report.profile),
        text(&report.harness.name),
        text(&report.harness.version),
        text(&report.started_at),
        text(&report.finished_at),
    )?;
    if !report.iut.defects.is_empty() {
        writeln!(
            out,
            "\n> Seeded defects: {}. This run is a check of the harness, not a certification.",
            text(&report.iut.defects.join(", "))
        )?;
    }

    let by_key = scenarios_by_key(report);
    writeln!(out, "\n| Requirement | Verdict | Scenarios | Title |")?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    for requirement in &report.requirements {
        let (passed, total) = scenario_tally(requirement, &by_key);
        let tally = if total == 0 {
            "-".to_owned()
        } else {
            format!("{passed}/{total}")
        };
        let verdict = match requirement.verdict {
            Verdict::Error | Verdict::Fail => format!("**{}**", verdict_label(requirement.verdict)),
            other => verdict_label(other).to_owned(),
        };
        let mut title = text(&requirement.title);
        if let Some(reason) = &requirement.reason {
            write!(title, " — *{}*", text(reason))?;
        }
        writeln!(
            out,
            "| {} | {verdict} | {tally} | {title} |",
            code(&requirement.id)
        )?;
    }

    let attention: Vec<&ScenarioResult> = report
        .scenarios
        .iter()
        .filter(|s| needs_attention(s.status))
        .collect();
    if attention.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n### Failed and error scenarios ({})",
        attention.len()
    )?;
    for scenario in attention.iter().take(MAX_DETAILED) {
        writeln!(
            out,
            "\n**{}** {} {} ({})",
            status_label(scenario.status),
            code(&scenario.key),
            text(&scenario.name),
            format_duration_ms(scenario.duration_ms),
        )?;
        if !scenario.requirements.is_empty() {
            let ids: Vec<String> = scenario.requirements.iter().map(|id| code(id)).collect();
            writeln!(out, "requirements: {}", ids.join(", "))?;
        }
        if let Some(message) = &scenario.message {
            writeln!(out, "\n{}", paragraph(message))?;
        }
        if !scenario.evidence.is_empty() {
            let json = evidence_json(&scenario.evidence);
            let cut = json.chars().count() > MAX_EVIDENCE_CHARS;
            let json = truncate(&json, MAX_EVIDENCE_CHARS);
            let observations = scenario.evidence.len();
            let plural = if observations == 1 { "" } else { "s" };
            writeln!(
                out,
                "\n<details><summary>Evidence ({observations} observation{plural}{})</summary>\n",
                if cut { ", cut: see report.json" } else { "" }
            )?;
            let fence = fence_for(&json);
            writeln!(out, "{fence}json\n{json}\n{fence}\n\n</details>")?;
        }
    }
    if attention.len() > MAX_DETAILED {
        writeln!(
            out,
            "\n… and {} more; see report.html.",
            attention.len() - MAX_DETAILED
        )?;
    }
    Ok(())
}

/// Text from the model for running Markdown: one line, HTML-escaped (so it cannot open a
/// tag) and with Markdown punctuation backslash-escaped (so it cannot format or break a
/// table cell).
fn text(raw: &str) -> String {
    let one_line = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(one_line.len());
    for c in escape(&one_line).chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// [`text`] for the start of a line, where it must not become a heading or a list either.
fn paragraph(raw: &str) -> String {
    let mut out = text(raw);
    if out.starts_with(['#', '-', '+', '=']) {
        out.insert(0, '\\');
    }
    let digits = out.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && out[digits..].starts_with(['.', ')']) {
        out.insert(digits, '\\');
    }
    out
}

/// Inline code: a backtick run longer than any inside, padded when the text touches one.
/// Pipes are escaped: GitHub splits table cells on them even inside code.
fn code(raw: &str) -> String {
    let raw = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let ticks = "`".repeat(longest_backtick_run(&raw) + 1);
    let pad = if raw.starts_with('`') || raw.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{}{pad}{ticks}", raw.replace('|', "\\|"))
}

/// A code fence longer than any backtick run in `body`.
fn fence_for(body: &str) -> String {
    "`".repeat((longest_backtick_run(body) + 1).max(3))
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::writers::sample_report;

    #[test]
    fn heading_and_reason_come_first() {
        let md = render(&sample_report());
        assert!(md.starts_with(
            "## provsten: NON-COMPLIANT\n\n1 of 5 requirements fails (EB-MTLS-1); \
             1 could not be evaluated: a harness error, not a failure of the IUT (FMK-4-RESEND).\n"
        ));
        assert!(md.contains("IUT `reference-iut` (roles: server, sender) · profile `all`"));
        assert!(md.contains("· provsten 0.1.0 · 2025-11-23T12:00:00Z → 2025-11-23T12:00:04.250Z\n"));
        assert!(md.contains("> Seeded defects: accept-expired-cert."));
        assert!(
            md.contains("\n**first to fix: EB-MTLS-1 fails at features/mtls.feature:14 ("),
            "the one sentence an integrator needs first follows the coverage line: {md}"
        );
    }

    #[test]
    fn table_has_a_row_per_requirement() {
        let md = render(&sample_report());
        assert!(
            md.contains("| Requirement | Verdict | Scenarios | Title |\n| --- | --- | --- | --- |")
        );
        assert!(md.contains("| `EB-MTLS-1` | **FAIL** | 0/1 | The server refuses"));
        assert!(md.contains("| `EB-MTLS-2` | PASS | 1/1 |"));
        assert!(md.contains(
            "| `FMK-5-AUDIT` | NOT-TESTABLE | - | Every refused request is written to the audit \
             log — *needs an audit log; the IUT config declares none* |"
        ));
        assert_eq!(md.matches("\n| `").count(), 5);
    }

    #[test]
    fn failures_have_evidence_in_details() {
        let md = render(&sample_report());
        assert!(md.contains("### Failed and error scenarios (2)"));
        assert!(md.contains(
            "**FAIL** `features/mtls.feature:14` expired client certificate is refused (41 ms)"
        ));
        assert!(md.contains("<details><summary>Evidence (2 observations)</summary>\n\n```json\n["));
        assert!(md.contains("\"presented\": \"client-expired\""));
        assert_eq!(
            md.matches("<details>").count(),
            md.matches("</details>").count()
        );
        assert!(!md.contains("valid client certificate is accepted"));
    }

    #[test]
    fn model_text_cannot_break_the_table_or_open_tags() {
        let mut report = sample_report();
        report.requirements[0].title = "a | b <script>x</script>\nnext".to_owned();
        let md = render(&report);
        let row = md.lines().find(|l| l.contains("`EB-MTLS-1`")).unwrap();
        assert_eq!(row.matches(" | ").count(), 3, "{row}");
        assert!(!md.contains("<script>"));
        assert!(
            row.contains("a \\| b &lt;script&gt;x&lt;/script&gt; next"),
            "{row}"
        );
    }

    #[test]
    fn text_at_line_start_cannot_become_a_heading_or_list() {
        assert_eq!(paragraph("# not a heading"), "\\# not a heading");
        assert_eq!(paragraph("- item"), "\\- item");
        assert_eq!(paragraph("12. item"), "12\\. item");
        assert_eq!(text("version 0.1.0"), "version 0.1.0");
        assert_eq!(text("it's *bold*"), "it&#39;s \\*bold\\*");
    }

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(fence_for("``` inside"), "````");
    }

    #[test]
    fn a_compliant_run_has_no_failure_section() {
        let mut report = sample_report();
        report.scenarios.retain(|s| !needs_attention(s.status));
        report.verdict = RunVerdict::Compliant;
        let md = render(&report);
        assert!(md.starts_with("## provsten: COMPLIANT"));
        assert!(!md.contains("Failed and error scenarios"));
    }
}
