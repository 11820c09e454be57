//! The terminal: a progress line per finished scenario while the run goes on, and a
//! per-requirement summary table with the failures' evidence at the end.
//!
//! Colour is plain ANSI SGR codes, only when asked for (the caller decides from the
//! terminal and `NO_COLOR`): green pass, red fail, yellow error, dim not-applicable and
//! not-testable.

use std::fmt::{self, Write as _};

use super::{
    condense_evidence, coverage_line, first_to_fix, id_list, needs_attention, run_verdict_label,
    scenario_tally, scenarios_by_key, status_label, truncate, verdict_label, verdict_reason,
};
use crate::report::model::*;

/// The width the summary table is laid out for.
const WIDTH: usize = 100;
/// Indent of the detail lines under a failed scenario.
const DETAIL_INDENT: usize = 8;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";
const YELLOW: &str = "\x1b[33m";

/// The end-of-run summary: one row per requirement (ID, verdict, scenarios passed/total,
/// title), then each failed or error scenario with its message and evidence in a line or
/// two, then the verdict line. No ANSI codes unless `color`.
pub(crate) fn summary_table(report: &Report, color: bool) -> String {
    let mut out = String::new();
    // `fmt::Write for String` never fails.
    let _ = write_summary(&mut out, report, Paint(color));
    out
}

/// Wraps text in an ANSI colour when enabled.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    fn verdict(self, verdict: Verdict, text: &str) -> String {
        self.paint(verdict_colour(verdict), text)
    }

    fn status(self, status: ScenarioStatus, text: &str) -> String {
        let code = match status {
            ScenarioStatus::Error => YELLOW,
            ScenarioStatus::Failed => RED,
            ScenarioStatus::NotApplicable => DIM,
            ScenarioStatus::Passed => GREEN,
        };
        self.paint(code, text)
    }
}

fn verdict_colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Error => YELLOW,
        Verdict::Fail => RED,
        Verdict::NotApplicable | Verdict::NotTested | Verdict::NotTestable => DIM,
        Verdict::Pass => GREEN,
    }
}

fn write_summary(out: &mut String, report: &Report, paint: Paint) -> fmt::Result {
    let by_key = scenarios_by_key(report);
    let id_width = report
        .requirements
        .iter()
        .map(|r| r.id.chars().count())
        .chain(["REQUIREMENT".len()])
        .max()
        .unwrap_or(0)
        .min(28);
    let verdict_width = "NOT-APPLICABLE".len();
    let tally_width = "SCENARIOS".len();
    let title_width = WIDTH
        .saturating_sub(id_width + verdict_width + tally_width + 6)
        .max(20);

    writeln!(
        out,
        "{}",
        paint.paint(
            BOLD,
            &format!(
                "{:<id_width$}  {:<verdict_width$}  {:<tally_width$}  TITLE",
                "REQUIREMENT", "VERDICT", "SCENARIOS"
            )
        )
    )?;
    for requirement in &report.requirements {
        let (passed, total) = scenario_tally(requirement, &by_key);
        let tally = if total == 0 {
            "-".to_owned()
        } else {
            format!("{passed}/{total}")
        };
        let verdict = format!("{:<verdict_width$}", verdict_label(requirement.verdict));
        writeln!(
            out,
            "{:<id_width$}  {}  {tally:<tally_width$}  {}",
            truncate(&requirement.id, id_width),
            paint.verdict(requirement.verdict, &verdict),
            truncate(&requirement.title, title_width),
        )?;
    }

    // Why requirements were not tested, each reason once with the IDs it covers.
    let mut not_tested: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in &report.requirements {
        if !matches!(r.verdict, Verdict::NotTested | Verdict::NotApplicable) {
            continue;
        }
        let why = r.reason.as_deref().unwrap_or("no reason recorded");
        match not_tested.iter_mut().find(|(w, _)| *w == why) {
            Some((_, ids)) => ids.push(&r.id),
            None => not_tested.push((why, vec![&r.id])),
        }
    }
    if !not_tested.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint.paint(BOLD, "not tested, and why:"))?;
        let detail_width = WIDTH - DETAIL_INDENT;
        for (why, ids) in not_tested {
            writeln!(out, "  {}", id_list(&ids, 8))?;
            for line in two_lines(why, detail_width) {
                writeln!(out, "{:DETAIL_INDENT$}{}", "", paint.paint(DIM, &line))?;
            }
        }
    }

    let attention: Vec<&ScenarioResult> = report
        .scenarios
        .iter()
        .filter(|s| needs_attention(s.status))
        .collect();
    if !attention.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint.paint(BOLD, "failed and error scenarios:"))?;
        let detail_width = WIDTH - DETAIL_INDENT;
        for scenario in attention {
            let label = format!("{:<5}", status_label(scenario.status));
            writeln!(
                out,
                "  {} {}  {}",
                paint.status(scenario.status, &label),
                scenario.key,
                truncate(
                    &scenario.name,
                    WIDTH.saturating_sub(scenario.key.len() + 10).max(20)
                ),
            )?;
            if let Some(message) = &scenario.message {
                let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
                writeln!(
                    out,
                    "{:DETAIL_INDENT$}{}",
                    "",
                    truncate(&message, detail_width)
                )?;
            }
            if !scenario.evidence.is_empty() {
                let evidence = condense_evidence(&scenario.evidence);
                for line in two_lines(&evidence, detail_width) {
                    writeln!(out, "{:DETAIL_INDENT$}{}", "", paint.paint(DIM, &line))?;
                }
            }
        }
    }

    if !report.iut.exits.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            paint.paint(BOLD, "the IUT exited or stopped answering during the run:")
        )?;
        for e in &report.iut.exits {
            let during = if e.during.is_empty() {
                "between scenarios".to_string()
            } else {
                format!("during {}", e.during.join(", "))
            };
            let restart = if e.restarted {
                "restarted".to_string()
            } else {
                e.note.clone().unwrap_or_else(|| "not restarted".into())
            };
            let what = if e.attached {
                format!("stopped answering ({})", e.status)
            } else {
                e.status.clone()
            };
            writeln!(out, "  {} {during}; {restart}", paint.paint(RED, &what))?;
            for line in e.last_output.iter().rev().take(3).rev() {
                writeln!(
                    out,
                    "{:DETAIL_INDENT$}{}",
                    "",
                    paint.paint(DIM, &truncate(line, WIDTH - DETAIL_INDENT))
                )?;
            }
        }
    }

    writeln!(out)?;
    writeln!(
        out,
        "{} {}",
        paint.paint(BOLD, "coverage:"),
        coverage_line(report)
    )?;
    if let Some(first) = first_to_fix(report) {
        writeln!(out, "{}", two_lines(&first, WIDTH).join("\n       "))?;
    }
    let label = run_verdict_label(report.verdict);
    let label = match report.verdict {
        RunVerdict::Compliant => paint.paint(GREEN, label),
        RunVerdict::Error => paint.paint(YELLOW, label),
        RunVerdict::NonCompliant => paint.paint(RED, label),
    };
    writeln!(
        out,
        "{} {label} — {}",
        paint.paint(BOLD, "verdict:"),
        verdict_reason(report)
    )
}

/// `text` in at most two lines of `width` characters, broken at a space where one is near
/// the end of the first line, the second cut with `…` if need be.
fn two_lines(text: &str, width: usize) -> Vec<String> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return vec![text];
    }
    let split = chars[..=width]
        .iter()
        .rposition(|c| *c == ' ')
        .filter(|&at| at > width / 2)
        .unwrap_or(width);
    let first: String = chars[..split].iter().collect();
    let rest: String = chars[split..].iter().collect();
    vec![first, truncate(rest.trim_start(), width)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::writers::sample_report;

    #[test]
    fn table_without_colour_has_no_escape_codes() {
        let table = summary_table(&sample_report(), false);
        assert!(!table.contains('\x1b'), "{table}");
    }

    #[test]
    fn table_with_colour_paints_verdicts() {
        let table = summary_table(&sample_report(), true);
        assert!(table.contains(&format!("{RED}FAIL")), "{table}");
        assert!(table.contains(&format!("{GREEN}PASS")), "{table}");
        assert!(table.contains(&format!("{YELLOW}ERROR")), "{table}");
        assert!(table.contains(&format!("{DIM}NOT-TESTED")), "{table}");
    }

    #[test]
    fn table_has_a_row_per_requirement_with_tallies() {
        let table = summary_table(&sample_report(), false);
        let row = |id: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("{id} ")))
                .unwrap_or_else(|| panic!("no row for {id} in\n{table}"))
                .to_owned()
        };
        assert!(row("EB-MTLS-1").contains("FAIL            0/1"), "{table}");
        assert!(row("EB-MTLS-2").contains("PASS            1/1"), "{table}");
        assert!(row("FMK-5-AUDIT").contains("NOT-TESTABLE    -"), "{table}");
        for line in table.lines().take_while(|l| !l.is_empty()) {
            assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
        }
        assert!(
            row("EB-MTLS-1").ends_with('…'),
            "long title truncated: {table}"
        );
    }

    #[test]
    fn failures_show_key_name_message_and_evidence() {
        let table = summary_table(&sample_report(), false);
        assert!(table
            .contains("  FAIL  features/mtls.feature:14  expired client certificate is refused\n"));
        assert!(
            table.contains("  ERROR features/resend.feature:20"),
            "{table}"
        );
        assert!(
            table.contains("        expected the handshake to fail"),
            "{table}"
        );
        assert!(table.contains("presented=client-expired"), "{table}");
        assert!(table.contains(" → "), "{table}");
        assert!(
            !table.contains("features/mtls.feature:6 "),
            "passed ones are not listed"
        );
    }

    #[test]
    fn last_line_is_the_verdict() {
        let table = summary_table(&sample_report(), false);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines.iter().any(|l| l.starts_with("first to fix: EB-MTLS-1 fails at features/mtls.feature:14")),
            "{table}"
        );
        assert_eq!(
            table.lines().last().unwrap(),
            "verdict: NON-COMPLIANT — 1 of 5 requirements fails (EB-MTLS-1); \
             1 could not be evaluated: a harness error, not a failure of the IUT (FMK-4-RESEND)"
        );
    }

    #[test]
    fn long_evidence_wraps_to_two_lines() {
        let text = "word ".repeat(100);
        let lines = two_lines(&text, 40);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert!(lines[1].ends_with('…'));
        assert_eq!(two_lines("short", 40), ["short"]);
    }
}
