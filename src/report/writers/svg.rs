//! Inline SVG charts for timeline evidence in `report.html` (model: [`ResendTimeline`],
//! [`ExerciseTimeline`]).
//!
//! Each chart is one `<svg>` element that needs nothing else: no scripts, no fonts, no
//! `url(…)` references, and no `xmlns` either, because the HTML parser puts `<svg>` in the
//! SVG namespace itself and `report.html` promises not to contain a single `http:` URL.
//! Coordinates come from [`Scale`], which never divides by zero, so empty timelines, single
//! points and zero durations draw an empty but well-formed chart. Every model string goes
//! through [`escape`]; detail that does not fit on the chart is in `<title>` tooltips.

use std::fmt::{self, Write as _};

use super::format_duration_ms;
use super::markup::escape;
use crate::report::model::{ExerciseTimeline, ResendTimeline};

/// viewBox width; the page scales the chart to its column (about 1.2×).
const WIDTH: f64 = 880.0;
/// Plot area left and right edges: room for y-axis labels and the last tick label.
const LEFT: f64 = 56.0;
const RIGHT: f64 = WIDTH - 24.0;
const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif";
const FONT_SIZE: f64 = 11.0;

const TEXT: &str = "#1f2328";
const MUTED: &str = "#59636e";
const GRID: &str = "#d1d9e0";
const PASS: &str = "#1a7f37";
const FAIL: &str = "#cf222e";
const BAND: &str = "#0969da";
/// Route colours: Okabe–Ito, which stays distinguishable with colour-blindness (its yellow
/// left out: unreadable on white). Routes beyond it cycle with a dash pattern.
const ROUTE_COLOURS: [&str; 7] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000",
];
const ROUTE_DASHES: [&str; 3] = ["", "7 4", "2 3"];

/// A one-line description of a resend timeline, for the chart's label and the page's list
/// of timelines: `message n-1: 4 attempts (1 accepted), 3 expected ± 500 ms, 1 outside
/// every tolerance band`.
pub(crate) fn resend_summary(t: &ResendTimeline) -> String {
    let accepted = t.attempts.iter().filter(|a| a.accepted).count();
    let outside = t
        .attempts
        .iter()
        .filter(|a| outside_bands(t, a.at_ms))
        .count();
    let schedule = if t.expected_ms.is_empty() {
        "no schedule declared".to_owned()
    } else {
        format!(
            "{} expected ± {}, {outside} outside every tolerance band",
            t.expected_ms.len(),
            short_duration(t.tolerance_ms)
        )
    };
    let series = match &t.subject {
        Some(_) => message_name(t).to_owned(),
        None => format!("message {}", message_name(t)),
    };
    format!(
        "{series}: {} ({accepted} accepted), {schedule}",
        plural(t.attempts.len(), "attempt", "attempts"),
    )
}

/// The message id, or `(no id)` rather than a dangling "message".
fn message_name(t: &ResendTimeline) -> &str {
    if t.message_id.trim().is_empty() {
        "(no id)"
    } else {
        &t.message_id
    }
}

/// A one-line description of an exercise timeline: `4 phases (2 outages) over 2 min 00 s,
/// 2 routes (primary 120 delivered, fallback 40 delivered)`.
pub(crate) fn exercise_summary(t: &ExerciseTimeline) -> String {
    let outages = t.phases.iter().filter(|p| p.outage).count();
    // The first few routes by name; the legend has them all.
    const NAMED: usize = 3;
    let mut routes: Vec<String> = t
        .routes
        .iter()
        .take(NAMED)
        .map(|r| format!("{} {} delivered", r.route, total(&r.delivered)))
        .collect();
    if t.routes.len() > NAMED {
        routes.push(format!("{} more", t.routes.len() - NAMED));
    }
    format!(
        "{} ({}) over {}, {}{}",
        plural(t.phases.len(), "phase", "phases"),
        plural(outages, "outage", "outages"),
        short_duration(t.duration_ms),
        plural(t.routes.len(), "route", "routes"),
        if routes.is_empty() {
            String::new()
        } else {
            format!(" ({})", routes.join(", "))
        }
    )
}

/// The resend attempts against the declared schedule: one tolerance band per expected
/// attempt, one marker per observed attempt (green circle accepted, red diamond refused),
/// a red ring around each attempt outside every band.
pub(crate) fn resend_chart(t: &ResendTimeline) -> String {
    let mut out = String::new();
    // `fmt::Write for String` never fails.
    let _ = draw_resend(&mut out, t);
    out
}

/// Deliveries per route over an outage exercise: outage phases shaded, one step line per
/// route of the messages delivered in each bucket.
pub(crate) fn exercise_chart(t: &ExerciseTimeline) -> String {
    let mut out = String::new();
    // `fmt::Write for String` never fails.
    let _ = draw_exercise(&mut out, t);
    out
}

// ---------------------------------------------------------------------------------------
// Resend chart

/// Whether an attempt at `at_ms` lies outside every `expected ± tolerance` band (and so
/// outside the declared policy). With no schedule declared, every attempt is.
/// Whether an attempt falls outside every band of a declared schedule; with none declared
/// there is nothing to be outside of.
fn outside_bands(t: &ResendTimeline, at_ms: u64) -> bool {
    !t.expected_ms.is_empty()
        && !t
            .expected_ms
            .iter()
            .any(|&e| e.abs_diff(at_ms) <= t.tolerance_ms)
}

fn draw_resend(out: &mut String, t: &ResendTimeline) -> fmt::Result {
    const BAND_LABELS: [f64; 2] = [44.0, 57.0];
    const TOP: f64 = 64.0;
    const MID: f64 = 98.0;
    const OUTCOME_LABELS: [f64; 2] = [126.0, 139.0];
    const BOTTOM: f64 = 148.0;
    const HEIGHT: f64 = 222.0;

    let max_ms = t
        .attempts
        .iter()
        .map(|a| a.at_ms as f64)
        .chain(
            t.expected_ms
                .iter()
                .map(|&e| e as f64 + t.tolerance_ms as f64),
        )
        .fold(0.0, f64::max);
    let axis = TimeAxis::new(max_ms);
    let x = Scale::new(0.0, axis.end_ms, LEFT, RIGHT);

    let summary = resend_summary(t);
    open_svg(out, HEIGHT, &format!("Resend timeline, {summary}"))?;
    write_text(
        out,
        LEFT,
        18.0,
        "start",
        Tone::Title,
        &match &t.subject {
            Some(s) => format!("{s}: {}", message_name(t)),
            None => format!("Resend attempts for message {}", message_name(t)),
        },
    )?;
    write_text(
        out,
        RIGHT,
        18.0,
        "end",
        Tone::Muted,
        &format!(
            "declared schedule ± {} tolerance",
            short_duration(t.tolerance_ms)
        ),
    )?;

    axis.draw(
        out,
        &x,
        TOP,
        BOTTOM,
        "time since the first attempt",
        /* gridlines */ false,
    )?;

    // Bands first, so markers are drawn over them.
    let mut labels = Rows::new(BAND_LABELS.len());
    for (i, &expected) in t.expected_ms.iter().enumerate() {
        let n = i + 1;
        let from = x.at(expected.saturating_sub(t.tolerance_ms) as f64);
        let to = x.at(expected as f64 + t.tolerance_ms as f64);
        let centre = x.at(expected as f64);
        writeln!(
            out,
            "<g class=\"band\"><title>expected attempt #{n} at {} ± {}</title>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{BAND}\" \
             fill-opacity=\"0.12\" stroke=\"{BAND}\" stroke-opacity=\"0.35\"/>\
             <line x1=\"{c}\" y1=\"{}\" x2=\"{c}\" y2=\"{}\" stroke=\"{BAND}\" \
             stroke-dasharray=\"3 3\"/></g>",
            format_duration_ms(expected),
            format_duration_ms(t.tolerance_ms),
            num(from),
            num(TOP),
            num((to - from).max(1.0)),
            num(BOTTOM - TOP),
            num(TOP),
            num(BOTTOM),
            c = num(centre),
        )?;
        // Close bands get `#n` or no label; the tooltip still names them.
        for label in [format!("expected #{n}"), format!("#{n}")] {
            if let Some(row) = labels.place(centre, text_width(&label)) {
                write_text(out, centre, BAND_LABELS[row], "middle", Tone::Band, &label)?;
                break;
            }
        }
    }

    let mut labels = Rows::new(OUTCOME_LABELS.len());
    for (i, attempt) in t.attempts.iter().enumerate() {
        let n = i + 1;
        let cx = x.at(attempt.at_ms as f64);
        let outside = outside_bands(t, attempt.at_ms);
        let verdict = if attempt.accepted {
            "accepted"
        } else {
            "refused"
        };
        let mut tooltip = format!(
            "attempt #{n} at {}: {} ({verdict})",
            format_duration_ms(attempt.at_ms),
            attempt.outcome
        );
        if outside {
            tooltip.push_str(", outside every tolerance band");
            if let Some((k, e)) = t
                .expected_ms
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.abs_diff(attempt.at_ms))
            {
                let side = if attempt.at_ms < *e { "early" } else { "late" };
                write!(
                    tooltip,
                    " ({} {side} for expected #{})",
                    format_duration_ms(e.abs_diff(attempt.at_ms)),
                    k + 1
                )?;
            }
        }
        writeln!(
            out,
            "<g class=\"attempt {verdict}{}\"><title>{}</title>",
            if outside { " outside" } else { "" },
            escape(&tooltip)
        )?;
        if outside {
            writeln!(
                out,
                "<circle class=\"ring\" cx=\"{}\" cy=\"{MID}\" r=\"11\" fill=\"none\" \
                 stroke=\"{FAIL}\" stroke-width=\"2\"/>",
                num(cx)
            )?;
        }
        write_marker(out, cx, MID, attempt.accepted)?;
        writeln!(out, "</g>")?;
        let label = format!("#{n} {}", attempt.outcome);
        for label in [label, format!("#{n}")] {
            if let Some(row) = labels.place(cx, text_width(&label)) {
                write_text(out, cx, OUTCOME_LABELS[row], "middle", Tone::OnPlot, &label)?;
                break;
            }
        }
    }
    if t.attempts.is_empty() {
        write_text(
            out,
            (LEFT + RIGHT) / 2.0,
            MID + 4.0,
            "middle",
            Tone::Muted,
            "no attempts observed",
        )?;
    }

    let items = [
        (LegendKey::Band, "expected attempt ± tolerance"),
        (LegendKey::Marker { accepted: true }, "attempt accepted"),
        (LegendKey::Marker { accepted: false }, "attempt refused"),
        (LegendKey::Ring, "outside every tolerance band"),
    ]
    .map(|(key, label)| (key, label.to_owned()));
    write_legend(out, &items, 206.0)?;
    writeln!(out, "</svg>")
}

/// An attempt marker: accepted a green circle, refused a red diamond (shape as well as
/// colour, for readers who cannot tell red from green).
fn write_marker(out: &mut String, cx: f64, cy: f64, accepted: bool) -> fmt::Result {
    if accepted {
        writeln!(
            out,
            "<circle class=\"marker\" cx=\"{}\" cy=\"{}\" r=\"6\" fill=\"{PASS}\" \
             stroke=\"#fff\" stroke-width=\"1.5\"/>",
            num(cx),
            num(cy)
        )
    } else {
        let r = 7.0;
        writeln!(
            out,
            "<polygon class=\"marker\" points=\"{},{} {},{} {},{} {},{}\" fill=\"{FAIL}\" \
             stroke=\"#fff\" stroke-width=\"1.5\"/>",
            num(cx),
            num(cy - r),
            num(cx + r),
            num(cy),
            num(cx),
            num(cy + r),
            num(cx - r),
            num(cy)
        )
    }
}

// ---------------------------------------------------------------------------------------
// Exercise chart

fn draw_exercise(out: &mut String, t: &ExerciseTimeline) -> fmt::Result {
    const PHASE_LABELS: [f64; 2] = [44.0, 57.0];
    const TOP: f64 = 64.0;
    const BOTTOM: f64 = 264.0;

    let max_ms = t
        .phases
        .iter()
        .map(|p| p.start_ms.max(p.end_ms) as f64)
        .chain(
            t.routes
                .iter()
                .map(|r| r.delivered.len() as f64 * r.bucket_ms as f64),
        )
        .fold(t.duration_ms as f64, f64::max);
    let axis = TimeAxis::new(max_ms);
    let x = Scale::new(0.0, axis.end_ms, LEFT, RIGHT);
    let max_count = t
        .routes
        .iter()
        .filter(|r| r.bucket_ms > 0)
        .flat_map(|r| r.delivered.iter())
        .fold(0.0, |m, &v| f64::max(m, v as f64));
    let counts = CountAxis::new(max_count);
    let y = Scale::new(0.0, counts.end, BOTTOM, TOP);

    let items = exercise_legend(t);
    let legend_rows = legend_layout(&items).last().map_or(1, |&(row, _)| row + 1);
    let legend_y = BOTTOM + 52.0;
    let height = legend_y + 16.0 * legend_rows as f64;

    open_svg(
        out,
        height,
        &format!("Outage exercise timeline, {}", exercise_summary(t)),
    )?;
    write_text(
        out,
        LEFT,
        18.0,
        "start",
        Tone::Title,
        "Deliveries per route",
    )?;
    write_text(
        out,
        RIGHT,
        18.0,
        "end",
        Tone::Muted,
        &format!("exercise of {}", short_duration(t.duration_ms)),
    )?;

    // Shading first, so lines are drawn over it.
    let mut labels = Rows::new(PHASE_LABELS.len());
    for phase in &t.phases {
        let (start, end) = (
            phase.start_ms.min(phase.end_ms),
            phase.start_ms.max(phase.end_ms),
        );
        let (from, to) = (x.at(start as f64), x.at(end as f64));
        let tooltip = format!(
            "{}{}: {} to {}",
            phase.name,
            if phase.outage { " (outage)" } else { "" },
            format_duration_ms(start),
            format_duration_ms(end)
        );
        writeln!(
            out,
            "<g class=\"phase\"><title>{}</title>",
            escape(&tooltip)
        )?;
        if phase.outage {
            // At least 2 px wide, so a zero-length outage still shows.
            writeln!(
                out,
                "<rect class=\"outage\" x=\"{}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" \
                 fill=\"{FAIL}\" fill-opacity=\"0.12\"/>",
                num(from),
                num((to - from).max(2.0)),
                num(BOTTOM - TOP)
            )?;
        }
        for edge in [from, to] {
            writeln!(
                out,
                "<line x1=\"{e}\" y1=\"{}\" x2=\"{e}\" y2=\"{BOTTOM}\" stroke=\"{MUTED}\" \
                 stroke-opacity=\"0.5\" stroke-dasharray=\"2 3\"/>",
                num(TOP - 16.0),
                e = num(edge)
            )?;
        }
        writeln!(out, "</g>")?;
        let centre = (from + to) / 2.0;
        let tone = if phase.outage {
            Tone::Outage
        } else {
            Tone::Muted
        };
        let name = phase.name.trim();
        let shortened = truncate_to_width(name, (to - from).max(0.0) + 8.0);
        for label in [name.to_owned(), shortened] {
            if label.is_empty() {
                break;
            }
            if let Some(row) = labels.place(centre, text_width(&label)) {
                write_text(out, centre, PHASE_LABELS[row], "middle", tone, &label)?;
                break;
            }
        }
    }

    counts.draw(out, &y, "delivered per bucket", bucket_caption(t))?;
    axis.draw(
        out,
        &x,
        TOP,
        BOTTOM,
        "time since the start of the exercise",
        true,
    )?;

    // Routes that share a count would hide one another: each is nudged by 1.5 px, a
    // hair's breadth against the count scale, so every line stays visible.
    let n = t.routes.len() as f64;
    for (k, route) in t.routes.iter().enumerate() {
        let (colour, dash) = route_style(k);
        let nudge = (k as f64 - (n - 1.0) / 2.0) * 1.5;
        if route.bucket_ms == 0 || route.delivered.is_empty() {
            continue;
        }
        // A step line: one horizontal segment per run of equal counts (long flat
        // stretches, typical of outages, cost two points rather than two per bucket).
        let mut points = String::new();
        let mut start = 0;
        for (i, &count) in route.delivered.iter().enumerate() {
            if route.delivered.get(i + 1) == Some(&count) {
                continue;
            }
            let from = x.at(start as f64 * route.bucket_ms as f64);
            let to = x.at((i + 1) as f64 * route.bucket_ms as f64);
            let level = y.at(count as f64) + nudge;
            write!(
                points,
                "{},{} {},{} ",
                num(from),
                num(level),
                num(to),
                num(level)
            )?;
            start = i + 1;
        }
        writeln!(
            out,
            "<polyline class=\"route\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"2\" stroke-linejoin=\"round\"{}><title>{}: {} delivered</title>\
             </polyline>",
            points.trim_end(),
            dash_attr(dash),
            escape(&route.route),
            total(&route.delivered)
        )?;
    }
    if t.routes.is_empty() {
        write_text(
            out,
            (LEFT + RIGHT) / 2.0,
            (TOP + BOTTOM) / 2.0,
            "middle",
            Tone::Muted,
            "no deliveries recorded",
        )?;
    }

    write_legend(out, &items, legend_y)?;
    writeln!(out, "</svg>")
}

fn exercise_legend(t: &ExerciseTimeline) -> Vec<(LegendKey, String)> {
    let mut items = Vec::new();
    if t.phases.iter().any(|p| p.outage) {
        items.push((LegendKey::Outage, "outage phase".to_owned()));
    }
    for (k, route) in t.routes.iter().enumerate() {
        let note = if route.bucket_ms == 0 && !route.delivered.is_empty() {
            ", not drawn: bucket_ms is 0"
        } else {
            ""
        };
        items.push((
            LegendKey::Route(k),
            format!(
                "{} ({} delivered{note})",
                route.route,
                total(&route.delivered)
            ),
        ));
    }
    items
}

/// `per 1 s` when every route has the same bucket width, else nothing: the y-axis title
/// then only says "per bucket" and each route's width is in the data.
fn bucket_caption(t: &ExerciseTimeline) -> Option<String> {
    let first = t.routes.first()?.bucket_ms;
    (first > 0 && t.routes.iter().all(|r| r.bucket_ms == first))
        .then(|| format!("delivered per {}", short_duration(first)))
}

fn route_style(k: usize) -> (&'static str, &'static str) {
    (
        ROUTE_COLOURS[k % ROUTE_COLOURS.len()],
        ROUTE_DASHES[(k / ROUTE_COLOURS.len()) % ROUTE_DASHES.len()],
    )
}

fn dash_attr(dash: &str) -> String {
    if dash.is_empty() {
        String::new()
    } else {
        format!(" stroke-dasharray=\"{dash}\"")
    }
}

// ---------------------------------------------------------------------------------------
// Shared parts: root element, scales, axes, labels, legend.

fn open_svg(out: &mut String, height: f64, label: &str) -> fmt::Result {
    writeln!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {} {}\" width=\"100%\" role=\"img\" \
         aria-label=\"{label}\" font-family=\"{FONT}\" font-size=\"{FONT_SIZE}\" fill=\"{TEXT}\">\
         \n<title>{label}</title>",
        num(WIDTH),
        num(height),
        label = escape(label)
    )
}

/// How a label looks. Presentation attributes rather than a `<style>` element: a `<style>`
/// inside inline SVG applies to the whole page.
#[derive(Clone, Copy)]
enum Tone {
    Band,
    Muted,
    /// Inside the plot, over bands and lines: a white halo keeps it readable.
    OnPlot,
    Outage,
    Title,
}

impl Tone {
    fn attributes(self) -> String {
        match self {
            Tone::Band => format!(" fill=\"{BAND}\""),
            Tone::Muted => format!(" fill=\"{MUTED}\""),
            Tone::Outage => format!(" fill=\"{FAIL}\" font-weight=\"600\""),
            Tone::OnPlot => " stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\"".to_owned(),
            Tone::Title => " font-weight=\"600\" font-size=\"12.5\"".to_owned(),
        }
    }
}

/// `<text>` with escaped content, centred labels kept inside the viewBox.
fn write_text(
    out: &mut String,
    x: f64,
    y: f64,
    anchor: &str,
    tone: Tone,
    text: &str,
) -> fmt::Result {
    let half = text_width(text) / 2.0;
    let x = match anchor {
        "middle" => x.clamp(half + 2.0, (WIDTH - half - 2.0).max(half + 2.0)),
        _ => x,
    };
    writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\"{}>{}</text>",
        num(x),
        num(y),
        tone.attributes(),
        escape(text)
    )
}

/// A coordinate for SVG: one decimal, and never `NaN` or `inf` (which would make the
/// element invalid): non-finite values become 0.
fn num(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
    } else {
        "0".to_owned()
    }
}

/// An axis tick label: plain up to a million, then scientific (`5e12`), so absurd values
/// still fit beside the axis.
fn tick_label(value: f64, decimals: usize) -> String {
    if value.abs() >= 1e6 {
        format!("{value:.1e}").replace(".0e", "e")
    } else {
        format!("{value:.decimals$}")
    }
}

/// A round duration in its own unit (`10 s`, `5 min`), else as [`format_duration_ms`].
fn short_duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        _ if ms.is_multiple_of(3_600_000) => format!("{} h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{} min", ms / 60_000),
        _ if ms.is_multiple_of(1_000) && ms < 60_000 => format!("{} s", ms / 1_000),
        _ => format_duration_ms(ms),
    }
}

/// Estimated width of a label at [`FONT_SIZE`]: no font metrics without a browser, so an
/// average glyph width, generous enough that estimated gaps are real gaps.
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * FONT_SIZE * 0.6
}

/// `text` cut with `…` to fit `width`, empty if not even one character and `…` fit.
fn truncate_to_width(text: &str, width: f64) -> String {
    let fits = (width / (FONT_SIZE * 0.6)).floor() as usize;
    if text.chars().count() <= fits {
        text.to_owned()
    } else if fits < 2 {
        String::new()
    } else {
        let mut cut: String = text.chars().take(fits - 1).collect();
        cut.push('…');
        cut
    }
}

/// Linear map from a data range to a pixel range. A zero-width data range maps everything
/// to the start of the pixel range instead of dividing by zero.
struct Scale {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
}

impl Scale {
    fn new(d0: f64, d1: f64, p0: f64, p1: f64) -> Self {
        Scale { d0, d1, p0, p1 }
    }

    fn at(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if !(span.is_finite() && span > 0.0 && v.is_finite()) {
            return self.p0;
        }
        let t = ((v - self.d0) / span).clamp(0.0, 1.0);
        self.p0 + t * (self.p1 - self.p0)
    }
}

/// 1, 2 or 5 × a power of ten, at least `raw`; 1 for anything not positive and finite.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// About this many intervals on an axis.
const TARGET_TICKS: f64 = 6.0;

/// A time axis from 0 in the unit that suits its length (ms, s, min, h), ticks at nice
/// steps of that unit, ending on a tick.
struct TimeAxis {
    end_ms: f64,
    step_ms: f64,
    unit_ms: f64,
    unit: &'static str,
    decimals: usize,
}

impl TimeAxis {
    fn new(max_ms: f64) -> Self {
        let max_ms = if max_ms.is_finite() && max_ms > 0.0 {
            max_ms
        } else {
            1.0
        };
        const UNITS: [(f64, &str); 4] = [
            (1.0, "ms"),
            (1_000.0, "s"),
            (60_000.0, "min"),
            (3_600_000.0, "h"),
        ];
        let mut index = match max_ms {
            m if m < 2_000.0 => 0,
            m if m < 120_000.0 => 1,
            m if m < 7_200_000.0 => 2,
            _ => 3,
        };
        // Fractions of a minute or an hour read badly (0.5 min): step down to the smaller
        // unit (30 s). Fractions of a second stay (0.5 s), and ms steps are whole.
        let step = loop {
            let raw = max_ms / UNITS[index].0 / TARGET_TICKS;
            // Seconds and minutes count in sixties: 15 and 30 are rounder than 50.
            let step = match index {
                1 | 2 if raw >= 1.0 => [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0]
                    .into_iter()
                    .find(|&s| s >= raw)
                    .unwrap_or_else(|| nice_step(raw)),
                _ => nice_step(raw),
            };
            match index {
                0 => break step.max(1.0),
                2 | 3 if step < 1.0 => index -= 1,
                _ => break step,
            }
        };
        let (unit_ms, unit) = UNITS[index];
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10()).ceil().clamp(0.0, 3.0) as usize
        };
        let step_ms = step * unit_ms;
        let end_ms = ((max_ms / step_ms).ceil() * step_ms).max(step_ms);
        TimeAxis {
            end_ms,
            step_ms,
            unit_ms,
            unit,
            decimals,
        }
    }

    /// Tick positions in ms, at most 20 whatever rounding did.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = (self.end_ms / self.step_ms).round().clamp(0.0, 20.0) as usize;
        (0..=n).map(move |i| i as f64 * self.step_ms)
    }

    fn draw(
        &self,
        out: &mut String,
        x: &Scale,
        top: f64,
        bottom: f64,
        title: &str,
        gridlines: bool,
    ) -> fmt::Result {
        writeln!(
            out,
            "<g class=\"x-axis\"><line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{RIGHT}\" \
             y2=\"{bottom}\" stroke=\"{MUTED}\"/>"
        )?;
        for tick in self.ticks() {
            let px = num(x.at(tick));
            if gridlines {
                writeln!(
                    out,
                    "<line x1=\"{px}\" y1=\"{top}\" x2=\"{px}\" y2=\"{bottom}\" stroke=\"{GRID}\" \
                     stroke-opacity=\"0.6\"/>"
                )?;
            }
            writeln!(
                out,
                "<line x1=\"{px}\" y1=\"{bottom}\" x2=\"{px}\" y2=\"{}\" stroke=\"{MUTED}\"/>",
                num(bottom + 4.0)
            )?;
            let label = tick_label(tick / self.unit_ms, self.decimals);
            write_text(
                out,
                x.at(tick),
                bottom + 16.0,
                "middle",
                Tone::Muted,
                &label,
            )?;
        }
        write_text(
            out,
            (LEFT + RIGHT) / 2.0,
            bottom + 32.0,
            "middle",
            Tone::Muted,
            &format!("{title} ({})", self.unit),
        )?;
        writeln!(out, "</g>")
    }
}

/// A count axis from 0, integer ticks at nice steps, ending on a tick (at least 1).
struct CountAxis {
    end: f64,
    step: f64,
}

impl CountAxis {
    fn new(max: f64) -> Self {
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        let step = nice_step(max / 4.0).max(1.0);
        let end = ((max / step).ceil() * step).max(step);
        CountAxis { end, step }
    }

    fn draw(
        &self,
        out: &mut String,
        y: &Scale,
        title: &str,
        caption: Option<String>,
    ) -> fmt::Result {
        writeln!(
            out,
            "<g class=\"y-axis\"><line x1=\"{LEFT}\" y1=\"{}\" x2=\"{LEFT}\" y2=\"{}\" \
             stroke=\"{MUTED}\"/>",
            num(y.at(0.0)),
            num(y.at(self.end))
        )?;
        let n = (self.end / self.step).round().clamp(0.0, 20.0) as usize;
        for i in 0..=n {
            let value = i as f64 * self.step;
            let py = num(y.at(value));
            writeln!(
                out,
                "<line x1=\"{LEFT}\" y1=\"{py}\" x2=\"{RIGHT}\" y2=\"{py}\" stroke=\"{GRID}\" \
                 stroke-opacity=\"0.6\"/>"
            )?;
            writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED}\">{}</text>",
                num(LEFT - 6.0),
                num(y.at(value) + 4.0),
                tick_label(value, 0)
            )?;
        }
        let title = caption.unwrap_or_else(|| title.to_owned());
        let (tx, ty) = (14.0, (y.at(0.0) + y.at(self.end)) / 2.0);
        writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED}\" \
             transform=\"rotate(-90 {} {})\">{}</text></g>",
            num(tx),
            num(ty),
            num(tx),
            num(ty),
            escape(&title)
        )
    }
}

/// Rows of labels along the x axis: a label goes in the first row where it does not
/// overlap the label before it, or nowhere.
struct Rows {
    right_edges: Vec<f64>,
}

impl Rows {
    fn new(rows: usize) -> Self {
        Rows {
            right_edges: vec![f64::NEG_INFINITY; rows],
        }
    }

    fn place(&mut self, centre: f64, width: f64) -> Option<usize> {
        let half = width / 2.0;
        // Same clamp as `write_text`, so the edges tracked are the edges drawn.
        let centre = centre.clamp(half + 2.0, (WIDTH - half - 2.0).max(half + 2.0));
        let row = self
            .right_edges
            .iter()
            .position(|&edge| centre - half >= edge + 6.0)?;
        self.right_edges[row] = centre + half;
        Some(row)
    }
}

#[derive(Clone, Copy)]
enum LegendKey {
    Band,
    Marker { accepted: bool },
    Outage,
    Ring,
    Route(usize),
}

/// `(row, x)` of each legend item, wrapping to a new row at the right edge.
fn legend_layout(items: &[(LegendKey, String)]) -> Vec<(usize, f64)> {
    let mut placed = Vec::with_capacity(items.len());
    let (mut row, mut x) = (0, LEFT);
    for (_, label) in items {
        let width = 22.0 + text_width(label) + 18.0;
        if x > LEFT && x + width > RIGHT {
            row += 1;
            x = LEFT;
        }
        placed.push((row, x));
        x += width;
    }
    placed
}

fn write_legend(out: &mut String, items: &[(LegendKey, String)], top: f64) -> fmt::Result {
    writeln!(out, "<g class=\"legend\">")?;
    for ((key, label), (row, x)) in items.iter().zip(legend_layout(items)) {
        let cy = top + 16.0 * row as f64;
        let cx = x + 8.0;
        match *key {
            LegendKey::Band => writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"16\" height=\"12\" fill=\"{BAND}\" \
                 fill-opacity=\"0.12\" stroke=\"{BAND}\" stroke-opacity=\"0.35\"/>",
                num(x),
                num(cy - 6.0)
            )?,
            LegendKey::Outage => writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"16\" height=\"12\" fill=\"{FAIL}\" \
                 fill-opacity=\"0.12\"/>",
                num(x),
                num(cy - 6.0)
            )?,
            LegendKey::Marker { accepted } => write_marker(out, cx, cy, accepted)?,
            LegendKey::Ring => writeln!(
                out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"6\" fill=\"none\" stroke=\"{FAIL}\" \
                 stroke-width=\"2\"/>",
                num(cx),
                num(cy)
            )?,
            LegendKey::Route(k) => {
                let (colour, dash) = route_style(k);
                writeln!(
                    out,
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" \
                     stroke-width=\"2.5\"{}/>",
                    num(x),
                    num(cy),
                    num(x + 16.0),
                    num(cy),
                    dash_attr(dash)
                )?
            }
        }
        writeln!(
            out,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            num(x + 22.0),
            num(cy + 4.0),
            escape(label)
        )?;
    }
    writeln!(out, "</g>")
}

fn total(delivered: &[u64]) -> u64 {
    delivered.iter().fold(0u64, |sum, &v| sum.saturating_add(v))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::model::{ExercisePhase, ResendAttempt, RouteSeries};

    /// A well-formedness check good enough for what these writers emit: every tag closes
    /// in order, attribute values are quoted, and every `&` starts an entity.
    pub(crate) fn assert_well_formed(markup: &str) {
        let mut open: Vec<String> = Vec::new();
        let mut rest = markup;
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt]);
            let gt = rest[lt..]
                .find('>')
                .unwrap_or_else(|| panic!("unclosed tag at {:?}", &rest[lt..]))
                + lt;
            let tag = &rest[lt + 1..gt];
            rest = &rest[gt + 1..];
            if tag.starts_with('!') || tag.starts_with('?') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let expected = open.pop().unwrap_or_else(|| panic!("stray </{name}>"));
                assert_eq!(name.trim(), expected, "</{name}> closes <{expected}>");
                continue;
            }
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            for value in tag.split('"').skip(1).step_by(2) {
                check_text(value);
            }
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or_default();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "bad tag name in <{tag}>"
            );
            if !tag.ends_with('/') && !["meta", "br", "hr", "img", "input", "link"].contains(&name)
            {
                open.push(name.to_owned());
            }
        }
        check_text(rest);
        assert!(open.is_empty(), "unclosed elements: {open:?}");
    }

    fn check_text(text: &str) {
        assert!(!text.contains('>'), "raw > in {text:?}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
            assert!(
                matches!(
                    entity,
                    "&amp;" | "&lt;" | "&gt;" | "&quot;" | "&#39;" | "&nbsp;"
                ),
                "bare & in {text:?}"
            );
        }
    }

    fn attempt(at_ms: u64, outcome: &str, accepted: bool) -> ResendAttempt {
        ResendAttempt {
            at_ms,
            outcome: outcome.to_owned(),
            accepted,
        }
    }

    fn resend() -> ResendTimeline {
        ResendTimeline {
            message_id: "n-1".to_owned(),
            attempts: vec![
                attempt(0, "503", false),
                attempt(2_100, "reset", false),
                attempt(7_900, "timeout", false),
                attempt(12_000, "200", true),
            ],
            expected_ms: vec![0, 2_000, 6_000, 14_000],
            tolerance_ms: 500,
            subject: None,
        }
    }

    fn phase(name: &str, start_ms: u64, end_ms: u64, outage: bool) -> ExercisePhase {
        ExercisePhase {
            name: name.to_owned(),
            start_ms,
            end_ms,
            outage,
        }
    }

    fn route(name: &str, bucket_ms: u64, delivered: &[u64]) -> RouteSeries {
        RouteSeries {
            route: name.to_owned(),
            bucket_ms,
            delivered: delivered.to_vec(),
        }
    }

    fn exercise() -> ExerciseTimeline {
        ExerciseTimeline {
            duration_ms: 60_000,
            phases: vec![
                phase("normal", 0, 20_000, false),
                phase("primary down", 20_000, 40_000, true),
                phase("recovered", 40_000, 60_000, false),
            ],
            routes: vec![
                route("primary", 10_000, &[12, 11, 0, 0, 9, 12]),
                route("fallback", 10_000, &[0, 0, 10, 11, 3, 0]),
            ],
        }
    }

    fn assert_finite_numbers(svg: &str) {
        for bad in ["NaN", "inf"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
    }

    #[test]
    fn resend_chart_is_well_formed_with_one_marker_per_attempt_and_a_band_per_expected() {
        let svg = resend_chart(&resend());
        assert_well_formed(&svg);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("role=\"img\"") && svg.contains("width=\"100%\""));
        assert!(svg.contains("<title>Resend timeline, message n-1: 4 attempts (1 accepted)"));
        assert_eq!(svg.matches("<g class=\"attempt ").count(), 4);
        assert_eq!(
            svg.matches("class=\"marker\"").count(),
            4 + 2,
            "4 + 2 in legend"
        );
        assert_eq!(svg.matches("<g class=\"band\">").count(), 4);
        assert!(svg.contains(">expected #1<"));
        assert!(svg.contains("attempt #2 at 2.10 s: reset (refused)"));
        assert_finite_numbers(&svg);
    }

    #[test]
    fn attempts_outside_every_band_are_ringed_and_say_how_far_off() {
        let svg = resend_chart(&resend());
        // 7.9 s is 1.9 s late for 6 s; 12 s is 2 s early for 14 s.
        assert_eq!(svg.matches("class=\"ring\"").count(), 2);
        assert_eq!(
            svg.matches("<g class=\"attempt refused outside\">").count(),
            1
        );
        assert_eq!(
            svg.matches("<g class=\"attempt accepted outside\">")
                .count(),
            1
        );
        assert!(svg.contains("outside every tolerance band (1.90 s late for expected #3)"));
        assert!(svg.contains("(2.00 s early for expected #4)"));
        assert_eq!(
            resend_summary(&resend()),
            "message n-1: 4 attempts (1 accepted), 4 expected ± 500 ms, 2 outside every \
             tolerance band"
        );
    }

    #[test]
    fn time_axis_speaks_human_units() {
        let svg = resend_chart(&resend());
        assert!(svg.contains("time since the first attempt (s)"), "{svg}");
        assert!(svg.contains(">15<"), "ticks run to a nice end past 14.5 s");
        let axis = TimeAxis::new(90.0 * 60_000.0);
        assert_eq!(
            (axis.unit, axis.step_ms, axis.end_ms),
            ("min", 900_000.0, 5_400_000.0)
        );
        let axis = TimeAxis::new(1.0);
        assert_eq!((axis.unit, axis.step_ms, axis.end_ms), ("ms", 1.0, 1.0));
        assert_eq!(TimeAxis::new(1_500.0).decimals, 0);
        assert_eq!(TimeAxis::new(3_000.0).decimals, 1, "0.5 s steps");
        let axis = TimeAxis::new(120_000.0);
        assert_eq!((axis.unit, axis.step_ms), ("s", 20_000.0), "not 0.5 min");
        let axis = TimeAxis::new(3.0 * 3_600_000.0);
        assert_eq!((axis.unit, axis.step_ms), ("min", 1_800_000.0), "not 0.5 h");
    }

    #[test]
    fn exercise_chart_shades_each_outage_and_draws_a_line_per_route() {
        let mut t = exercise();
        t.phases.push(phase("second outage", 50_000, 55_000, true));
        let svg = exercise_chart(&t);
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<rect class=\"outage\"").count(), 2);
        assert_eq!(svg.matches("<polyline class=\"route\"").count(), 2);
        assert!(svg.contains(">primary down<"));
        assert!(svg.contains(">primary (44 delivered)<"));
        assert!(svg.contains(">fallback (24 delivered)<"));
        assert!(svg.contains("delivered per 10 s"));
        assert!(svg.contains("stroke=\"#0072b2\"") && svg.contains("stroke=\"#e69f00\""));
        // A step line from x = LEFT to the last bucket's end: two points per run of equal
        // counts (12, 11, 0 0, 9, 12), each pair level.
        let primary = svg.split("<polyline").nth(1).unwrap();
        let points = primary.split("points=\"").nth(1).unwrap();
        let points: Vec<(f64, f64)> = points[..points.find('"').unwrap()]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(points.len(), 10);
        assert_eq!(points[0].0, LEFT);
        assert_eq!(points[9].0, RIGHT, "60 s of buckets fill the 60 s axis");
        assert!(points.chunks(2).all(|pair| pair[0].1 == pair[1].1));
        assert_eq!(points[4].0, points[3].0, "vertical step between runs");
        assert_finite_numbers(&svg);
    }

    #[test]
    fn empty_and_zero_inputs_draw_well_formed_charts_without_nan() {
        let empty_resend = ResendTimeline {
            message_id: String::new(),
            attempts: vec![],
            expected_ms: vec![],
            tolerance_ms: 0,
            subject: None,
        };
        let single = ResendTimeline {
            attempts: vec![attempt(0, "200", true)],
            expected_ms: vec![0],
            ..empty_resend.clone()
        };
        let empty_exercise = ExerciseTimeline {
            duration_ms: 0,
            phases: vec![],
            routes: vec![],
        };
        let zero_exercise = ExerciseTimeline {
            duration_ms: 0,
            phases: vec![phase("blip", 0, 0, true)],
            routes: vec![
                route("zero-bucket", 0, &[3, 4]),
                route("no-data", 1_000, &[]),
                route("one", 1_000, &[0]),
            ],
        };
        for svg in [
            resend_chart(&empty_resend),
            resend_chart(&single),
            exercise_chart(&empty_exercise),
            exercise_chart(&zero_exercise),
        ] {
            assert_well_formed(&svg);
            assert_finite_numbers(&svg);
        }
        assert!(resend_chart(&empty_resend).contains("no attempts observed"));
        assert!(resend_summary(&empty_resend).starts_with("message (no id): 0 attempts"));
        let zero = exercise_chart(&zero_exercise);
        assert_eq!(zero.matches("<rect class=\"outage\"").count(), 1);
        assert!(zero.contains("not drawn: bucket_ms is 0"));
        assert_eq!(zero.matches("<polyline class=\"route\"").count(), 1);
    }

    #[test]
    fn huge_values_stay_finite() {
        let huge = ResendTimeline {
            message_id: "m".to_owned(),
            attempts: vec![attempt(u64::MAX, "x", false), attempt(0, "y", true)],
            expected_ms: vec![u64::MAX],
            tolerance_ms: u64::MAX,
            subject: None,
        };
        let svg = resend_chart(&huge);
        assert_well_formed(&svg);
        assert_finite_numbers(&svg);
        let svg = exercise_chart(&ExerciseTimeline {
            duration_ms: u64::MAX,
            phases: vec![phase("all", 0, u64::MAX, true)],
            routes: vec![route("r", u64::MAX, &[u64::MAX, 0, u64::MAX])],
        });
        assert_well_formed(&svg);
        assert_finite_numbers(&svg);
        assert!(
            svg.contains(&format!("({} delivered)", u64::MAX)),
            "total saturates"
        );
    }

    #[test]
    fn labels_are_escaped() {
        let evil = "<script>alert(\"x\")</script> & 'co'";
        let mut t = exercise();
        t.routes[0].route = evil.to_owned();
        t.phases[1].name = evil.to_owned();
        let mut r = resend();
        r.message_id = evil.to_owned();
        r.attempts[0].outcome = evil.to_owned();
        let mut calls = r.clone();
        calls.subject = Some(evil.to_owned());
        for svg in [exercise_chart(&t), resend_chart(&r), resend_chart(&calls)] {
            assert!(!svg.contains("<script"), "{svg}");
            assert!(svg.contains("&lt;script&gt;"));
            assert_well_formed(&svg);
        }
    }

    #[test]
    fn many_routes_cycle_colours_then_dashes_and_wrap_the_legend() {
        let t = ExerciseTimeline {
            duration_ms: 1_000,
            phases: vec![],
            routes: (0..9)
                .map(|i| route(&format!("route number {i}"), 100, &[i, i + 1]))
                .collect(),
        };
        let svg = exercise_chart(&t);
        assert_well_formed(&svg);
        assert_eq!(svg.matches("stroke-dasharray=\"7 4\"").count(), 2 * 2);
        assert!(exercise_summary(&t).ends_with(
            "9 routes (route number 0 1 delivered, route number 1 3 delivered, \
             route number 2 5 delivered, 6 more)"
        ));
        let rows = legend_layout(&exercise_legend(&t));
        assert!(rows.last().unwrap().0 >= 1, "{rows:?}");
        assert!(rows.iter().all(|&(_, x)| x < RIGHT));
    }

    #[test]
    fn crowded_labels_shorten_or_stay_in_the_tooltip() {
        let mut rows = Rows::new(2);
        assert_eq!(rows.place(100.0, 60.0), Some(0));
        assert_eq!(rows.place(110.0, 60.0), Some(1));
        assert_eq!(rows.place(120.0, 60.0), None);
        assert_eq!(rows.place(200.0, 60.0), Some(0));
        assert_eq!(truncate_to_width("primary down", 40.0), "prima…");
        assert_eq!(truncate_to_width("primary down", 5.0), "");
    }

    #[test]
    fn numbers_never_print_nan_or_inf() {
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(num(f64::INFINITY), "0");
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.26), "12.3");
        assert_eq!(Scale::new(5.0, 5.0, 10.0, 20.0).at(5.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert!((nice_step(0.03) - 0.05).abs() < 1e-12);
        assert_eq!(tick_label(5e12, 0), "5e12");
        assert_eq!(tick_label(2.5, 1), "2.5");
        assert_eq!(short_duration(10_000), "10 s");
        assert_eq!(short_duration(1_500), "1.50 s");
        assert_eq!(short_duration(300_000), "5 min");
    }
}
