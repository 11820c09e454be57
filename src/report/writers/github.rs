//! GitHub Actions: the job summary appended to `$GITHUB_STEP_SUMMARY`, and `::error`
//! workflow commands that put each failing scenario on its line of the `.feature` file.
//!
//! Pure text from a [`Report`]; `commands.rs` decides when (`GITHUB_ACTIONS=true`) and
//! where it goes. The limits are GitHub's: a step summary over 1 MiB is refused whole, and
//! a step shows at most 10 error annotations.

use std::path::Path;

use super::{markdown, needs_attention, status_label, truncate};
use crate::report::model::*;

/// GitHub refuses a step summary larger than this (bytes, all writes of the step together).
pub(crate) const STEP_SUMMARY_LIMIT: usize = 1024 * 1024;

/// GitHub shows this many error annotations of a step; the rest are counted in a notice.
pub(crate) const MAX_ERROR_ANNOTATIONS: usize = 10;

/// An annotation's message is cut here (characters): the annotation points at the line,
/// the summary and `report.html` have the whole story.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// `summary.md`'s Markdown to append to the step summary, at most `budget` bytes (what is
/// left of [`STEP_SUMMARY_LIMIT`]). When cut, it ends at a line boundary, closes a code
/// fence or `<details>` the cut left open, and says it was cut. Empty when not even that
/// fits.
pub(crate) fn step_summary(report: &Report, budget: usize) -> String {
    fit(markdown::render(report), budget)
}

fn fit(markdown: String, budget: usize) -> String {
    if markdown.len() <= budget {
        return markdown;
    }
    let note = cut_note();
    // Walk the lines, remembering the last line end where the text so far, what closes
    // its open blocks, and the note still fit.
    let mut best: Option<(usize, String)> = None;
    let mut open = OpenBlocks::default();
    let mut end = 0;
    for line in markdown.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break; // a last line without its end is never a boundary
        }
        open.read(line);
        end += line.len();
        let closers = open.closers();
        if end + closers.len() + note.len() > budget {
            break;
        }
        best = Some((end, closers));
    }
    match best {
        Some((end, closers)) => format!("{}{closers}{note}", &markdown[..end]),
        None if note.trim_start().len() <= budget => note.trim_start().to_owned(),
        None => String::new(),
    }
}

/// Ends a cut summary, on a line of its own.
fn cut_note() -> String {
    format!(
        "\n*Cut here to fit GitHub's {} MiB step-summary limit: report.html and report.json \
         have everything.*\n",
        STEP_SUMMARY_LIMIT / (1024 * 1024)
    )
}

/// The blocks open at a point of [`markdown::render`]'s output: a code fence (its backtick
/// count) and `<details>`.
#[derive(Default)]
struct OpenBlocks {
    fence: Option<usize>,
    details: usize,
}

impl OpenBlocks {
    fn read(&mut self, line: &str) {
        let line = line.trim_end();
        let ticks = line.chars().take_while(|&c| c == '`').count();
        match self.fence {
            Some(open) if ticks >= open && ticks == line.len() => self.fence = None,
            Some(_) => {}
            None if ticks >= 3 => self.fence = Some(ticks),
            None => {
                self.details += line.matches("<details>").count();
                self.details = self
                    .details
                    .saturating_sub(line.matches("</details>").count());
            }
        }
    }

    fn closers(&self) -> String {
        let mut out = String::new();
        if let Some(ticks) = self.fence {
            out.push_str(&"`".repeat(ticks));
            out.push('\n');
        }
        for _ in 0..self.details {
            out.push_str("\n</details>\n");
        }
        out
    }
}

/// One `::error file=…,line=…,title=…::…` line per failed or error scenario, at most
/// [`MAX_ERROR_ANNOTATIONS`], then a `::notice::` counting the rest. `workspace` is
/// `$GITHUB_WORKSPACE`: a feature path under it (from `--features /abs/dir`) is made
/// relative to it, as GitHub needs a path in the repository.
pub(crate) fn annotations(report: &Report, workspace: Option<&Path>) -> String {
    let failing: Vec<&ScenarioResult> = report
        .scenarios
        .iter()
        .filter(|s| needs_attention(s.status))
        .collect();
    let mut out = String::new();
    for s in failing.iter().take(MAX_ERROR_ANNOTATIONS) {
        let (path, line) = match s.key.rsplit_once(':') {
            Some((path, line)) if line.parse::<usize>().is_ok() => (path, Some(line)),
            _ => (s.key.as_str(), None),
        };
        let mut properties = format!("file={}", property(&repository_path(path, workspace)));
        if let Some(line) = line {
            properties.push_str(&format!(",line={line}"));
        }
        let title = if s.requirements.is_empty() {
            report.harness.name.clone()
        } else {
            s.requirements
                .iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        properties.push_str(&format!(",title={}", property(&title)));
        let mut message = format!("{}: {}", status_label(s.status), s.name);
        if let Some(m) = &s.message {
            message.push_str(&format!(": {m}"));
        }
        out.push_str(&format!(
            "::error {properties}::{}\n",
            data(&truncate(&message, MAX_MESSAGE_CHARS))
        ));
    }
    if failing.len() > MAX_ERROR_ANNOTATIONS {
        let more = failing.len() - MAX_ERROR_ANNOTATIONS;
        out.push_str(&format!(
            "::notice::{more} more failed or error scenario{} not annotated (GitHub shows \
             {MAX_ERROR_ANNOTATIONS} error annotations per step): see the job summary or \
             report.html\n",
            if more == 1 { "" } else { "s" }
        ));
    }
    out
}

/// A feature path as GitHub wants it: relative to the repository, `/`-separated, no `./`.
fn repository_path(path: &str, workspace: Option<&Path>) -> String {
    let p = Path::new(path);
    let relative = workspace.and_then(|w| p.strip_prefix(w).ok()).unwrap_or(p);
    let mut text = relative.to_string_lossy().into_owned();
    while let Some(rest) = text.strip_prefix("./") {
        text = rest.to_owned();
    }
    text
}

/// A workflow command's message: `%`, CR and LF escaped (GitHub's `escapeData`).
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`data`], and `:` and `,` too (GitHub's
/// `escapeProperty`).
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::writers::sample_report;

    #[test]
    fn each_failed_or_error_scenario_is_an_error_on_its_feature_line() {
        let text = annotations(&sample_report(), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with(
                "::error file=features/mtls.feature,line=14,title=EB-MTLS-1::FAIL: expired \
                 client certificate is refused: "
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with(
                "::error file=features/resend.feature,line=20,title=FMK-4-RESEND::ERROR: "
            ),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn at_most_ten_errors_then_a_notice_with_the_rest() {
        let mut report = sample_report();
        let failed = report
            .scenarios
            .iter()
            .find(|s| s.status == ScenarioStatus::Failed)
            .cloned()
            .expect("a failed scenario");
        report.scenarios = (1..=13)
            .map(|i| ScenarioResult {
                key: format!("features/mtls.feature:{i}"),
                ..failed.clone()
            })
            .collect();
        let text = annotations(&report, None);
        assert_eq!(text.matches("::error ").count(), MAX_ERROR_ANNOTATIONS);
        assert!(text.contains(",line=10,") && !text.contains(",line=11,"));
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("::notice::3 more failed or error scenarios not annotated"),
            "{last}"
        );
        assert_eq!(text.lines().count(), MAX_ERROR_ANNOTATIONS + 1);
    }

    #[test]
    fn a_passing_run_has_no_annotations() {
        let mut report = sample_report();
        report.scenarios.retain(|s| !needs_attention(s.status));
        assert_eq!(annotations(&report, None), "");
    }

    #[test]
    fn messages_and_properties_are_escaped_as_github_says() {
        assert_eq!(data("50% a\r\nb: c, d"), "50%25 a%0D%0Ab: c, d");
        assert_eq!(property("50% a\nb: c, d"), "50%25 a%0Ab%3A c%2C d");
        let mut report = sample_report();
        report
            .scenarios
            .retain(|s| s.status == ScenarioStatus::Failed);
        report.scenarios[0].key = "my,dir/x:y.feature:7".to_owned();
        report.scenarios[0]
            .requirements
            .push("EB-MTLS-2".parse().expect("an ID"));
        report.scenarios[0].message = Some("line one\nline two: 100%".to_owned());
        let text = annotations(&report, None);
        assert!(
            text.starts_with(
                "::error file=my%2Cdir/x%3Ay.feature,line=7,title=EB-MTLS-1%2C EB-MTLS-2::"
            ),
            "{text}"
        );
        assert!(text.ends_with(": line one%0Aline two: 100%25\n"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn feature_paths_are_made_relative_to_the_repository() {
        let ws = Path::new("/home/runner/work/app/app");
        assert_eq!(
            repository_path("/home/runner/work/app/app/tests/x.feature", Some(ws)),
            "tests/x.feature"
        );
        assert_eq!(
            repository_path("./tests/x.feature", Some(ws)),
            "tests/x.feature"
        );
        assert_eq!(
            repository_path("features/mtls.feature", Some(ws)),
            "features/mtls.feature"
        );
        assert_eq!(
            repository_path("/elsewhere/x.feature", Some(ws)),
            "/elsewhere/x.feature"
        );
    }

    #[test]
    fn a_summary_that_fits_is_summary_md() {
        let report = sample_report();
        assert_eq!(
            step_summary(&report, STEP_SUMMARY_LIMIT),
            markdown::render(&report)
        );
    }

    #[test]
    fn a_summary_too_long_is_cut_at_a_line_and_says_so() {
        let mut report = sample_report();
        for s in &mut report.scenarios {
            if needs_attention(s.status) {
                s.message = Some("why ".repeat(200_000));
            }
        }
        let full = markdown::render(&report);
        assert!(
            full.len() > STEP_SUMMARY_LIMIT,
            "the test needs a long summary"
        );
        let cut = step_summary(&report, STEP_SUMMARY_LIMIT);
        assert!(cut.len() <= STEP_SUMMARY_LIMIT, "{}", cut.len());
        assert!(cut.ends_with("report.html and report.json have everything.*\n"));
        let kept = &cut[..cut.find("\n*Cut here").expect("the note")];
        assert!(full.starts_with(kept) && kept.ends_with('\n'));
        assert!(
            kept.contains("| `EB-MTLS-1` | **FAIL** |"),
            "the table is kept"
        );
    }

    #[test]
    fn a_cut_closes_the_fence_and_details_it_falls_in() {
        let md = format!(
            "# t\n\n<details><summary>E</summary>\n\n```json\n[\n  1,\n  2{}\n]\n```\n\n</details>\n",
            ",\n  3".repeat(100)
        );
        let note = cut_note().len();
        // Room up to "  1,\n", a closing fence and </details>, and the note.
        let budget = md.find("  2").expect("in the fence") + 4 + 12 + note;
        let cut = fit(md.clone(), budget);
        assert!(cut.len() <= budget, "{cut}");
        assert!(
            cut.contains("\n  1,\n```\n\n</details>\n\n*Cut here"),
            "{cut}"
        );
        assert_eq!(cut.matches("```").count(), 2, "{cut}");
        // Room for the note alone, then not even that.
        assert_eq!(fit(md.clone(), note - 1), cut_note().trim_start());
        assert_eq!(fit(md.clone(), 3), "");
    }
}
