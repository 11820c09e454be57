//! report.html's evidence as an auditor reads it: each observation a table of its members,
//! a list of like records (attempts, phases, deliveries) a grid with one row each, a body
//! that is JSON pretty-printed and wrapped, long text bounded with its length. Pure: from
//! a JSON value to HTML, every string escaped; the raw JSON stays beside it in the page.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::markup::escape;

/// Text longer than this is shown as a wrapped block rather than inline.
const INLINE_CHARS: usize = 120;
/// A body or long text shows at most this many characters (its length is said).
const EXCERPT_CHARS: usize = 2_000;
/// A list of scalars shows at most this many items.
const MAX_ITEMS: usize = 12;
/// A grid shows at most this many rows and columns.
const MAX_ROWS: usize = 40;
const MAX_COLUMNS: usize = 10;
/// Up to this many records with more members than [`MAX_COLUMNS`] are shown transposed.
const MAX_TRANSPOSED: usize = 8;
/// A grid cell holds text up to this long, and up to this many members of a small record.
const COMPACT_CHARS: usize = 48;
const COMPACT_MEMBERS: usize = 6;
/// Members that name a record: a grid shows them in its first columns.
const NAMING: &[&str] = &["phase", "name", "attempt", "id", "route", "link"];
/// Nesting beyond this is shown as compact JSON.
const MAX_DEPTH: usize = 4;

/// One observation (a JSON object, usually) as an HTML table.
pub(crate) fn observation(value: &Value) -> String {
    match value {
        Value::Object(members) => table(members, 0),
        other => cell(other, "", 0),
    }
}

/// Members as rows: name, then the value.
fn table(members: &Map<String, Value>, depth: usize) -> String {
    let mut out = String::from("<table class=\"ev\"><tbody>");
    for (key, value) in members {
        let _ = write!(
            out,
            "<tr><th class=\"k\" scope=\"row\">{}</th><td>{}</td></tr>",
            escape(&label(key)),
            cell(value, key, depth + 1)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `cipher_suite` → `cipher suite`: the JSON names read as words.
fn label(key: &str) -> String {
    key.replace('_', " ")
}

/// A value where a table cell holds it; `key` is its member name (units follow from it).
fn cell(value: &Value, key: &str, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return format!("<code>{}</code>", escape(&bounded(&value.to_string())));
    }
    match value {
        Value::Null => "<span class=\"ev-none\">—</span>".to_owned(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => number(n, key),
        Value::String(s) => text(s),
        Value::Array(items) => array(items, depth),
        Value::Object(members) if members.is_empty() => {
            "<span class=\"ev-none\">—</span>".to_owned()
        }
        Value::Object(members) => table(members, depth),
    }
}

/// A number, with its unit when the member name says it (`_ms`, `_bytes`), fractions to one
/// decimal.
fn number(n: &serde_json::Number, key: &str) -> String {
    let shown = match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (_, Some(u), _) => u.to_string(),
        (_, _, Some(f)) => format!("{f:.1}"),
        _ => n.to_string(),
    };
    let unit = if key.ends_with("_ms") || key == "ms" {
        " ms"
    } else if key.ends_with("_bytes") || key == "bytes" {
        " bytes"
    } else {
        ""
    };
    format!("{shown}{unit}")
}

/// Short text inline; a JSON body pretty-printed; long text wrapped, bounded, its length
/// said.
fn text(s: &str) -> String {
    let trimmed = s.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(body) = serde_json::from_str::<Value>(s) {
            let pretty = serde_json::to_string_pretty(&body).unwrap_or_else(|_| s.to_owned());
            return block(&pretty, s.len(), "JSON, ");
        }
    }
    if s.chars().count() > INLINE_CHARS || s.contains('\n') {
        return block(s, s.len(), "");
    }
    escape(s)
}

/// A wrapped block of at most [`EXCERPT_CHARS`] characters, labelled with its length.
fn block(shown: &str, bytes: usize, kind: &str) -> String {
    let total = shown.chars().count();
    let cut = total > EXCERPT_CHARS;
    let excerpt: String = shown.chars().take(EXCERPT_CHARS).collect();
    let note = if cut {
        format!("{kind}{bytes} bytes, the first {EXCERPT_CHARS} characters shown")
    } else {
        format!("{kind}{bytes} bytes")
    };
    format!(
        "<pre class=\"ev-body\">{}</pre><span class=\"ev-note\">{}</span>",
        escape(&excerpt),
        escape(&note)
    )
}

/// Text bounded to [`EXCERPT_CHARS`] characters.
fn bounded(s: &str) -> String {
    if s.chars().count() <= EXCERPT_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(EXCERPT_CHARS).collect();
    out.push('…');
    out
}

/// Records (objects) as a grid, one row each; scalars as a list; a mix one per line.
fn array(items: &[Value], depth: usize) -> String {
    if items.is_empty() {
        return "<span class=\"ev-none\">none</span>".to_owned();
    }
    if items.iter().all(Value::is_object) {
        return grid(items);
    }
    if let Some(pairs) = name_value_pairs(items) {
        // Headers and the like, `[["host", "…"], …]`: a row each.
        let mut out = String::from("<table class=\"ev\"><tbody>");
        for (name, value) in pairs.iter().take(MAX_ROWS) {
            let _ = write!(
                out,
                "<tr><th class=\"k\" scope=\"row\">{}</th><td>{}</td></tr>",
                escape(name),
                cell(value, name, depth + 1)
            );
        }
        out.push_str("</tbody></table>");
        return out;
    }
    let scalars = items.iter().all(|v| !v.is_object() && !v.is_array());
    let shown: Vec<String> = items
        .iter()
        .take(MAX_ITEMS)
        .map(|v| cell(v, "", depth + 1))
        .collect();
    let more = items.len().saturating_sub(MAX_ITEMS);
    let tail = if more > 0 {
        format!(" <span class=\"ev-note\">… and {more} more</span>")
    } else {
        String::new()
    };
    if scalars {
        format!("{}{tail}", shown.join(", "))
    } else {
        format!("{}{tail}", shown.join("<br>"))
    }
}

/// `[[name, value], …]` with string names: headers, query parameters.
fn name_value_pairs(items: &[Value]) -> Option<Vec<(&str, &Value)>> {
    items
        .iter()
        .map(|item| match item.as_array().map(Vec::as_slice) {
            Some([Value::String(name), value]) => Some((name.as_str(), value)),
            _ => None,
        })
        .collect()
}

/// Names the members left out of a grid for their length.
fn long_note(long: &[&str]) -> String {
    if long.is_empty() {
        return String::new();
    }
    let names: Vec<String> = long.iter().map(|c| label(c)).collect();
    format!(
        "<span class=\"ev-note\">Too long for the table, in the raw JSON: {}.</span> ",
        escape(&names.join(", "))
    )
}

/// Records as columns, members as rows; the first (naming) member heads the columns.
fn transposed(items: &[Value], columns: &[&str]) -> String {
    let mut out = String::from("<table class=\"ev-grid\"><thead><tr><th scope=\"col\"></th>");
    let (head, rows) = match columns.split_first() {
        Some((first, rest)) if NAMING.contains(first) => (Some(*first), rest),
        _ => (None, columns),
    };
    for (i, item) in items.iter().enumerate() {
        let name = match head.and_then(|h| item.get(h)) {
            Some(v) => compact_cell(v, ""),
            None => format!("#{}", i + 1),
        };
        let _ = write!(out, "<th scope=\"col\">{name}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for c in rows {
        let _ = write!(
            out,
            "<tr><th class=\"k\" scope=\"row\">{}</th>",
            escape(&label(c))
        );
        for item in items {
            let value = item.get(*c).unwrap_or(&Value::Null);
            let _ = write!(out, "<td>{}</td>", compact_cell(value, c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// Whether a value fits a grid cell: short text, a number, or a few short members.
fn compact(value: &Value) -> bool {
    match value {
        Value::String(s) => s.chars().count() <= COMPACT_CHARS,
        Value::Array(items) => {
            items.len() <= COMPACT_MEMBERS
                && items
                    .iter()
                    .all(|v| !v.is_object() && !v.is_array() && compact(v))
        }
        Value::Object(members) => {
            members.len() <= COMPACT_MEMBERS
                && members
                    .values()
                    .all(|v| !v.is_object() && !v.is_array() && compact(v))
        }
        _ => true,
    }
}

/// A compact value as one line of text: `primary: 20, fallback-1: 3`.
fn compact_cell(value: &Value, key: &str) -> String {
    match value {
        Value::Object(members) if !members.is_empty() => members
            .iter()
            .map(|(k, v)| format!("{}: {}", escape(k), cell(v, k, MAX_DEPTH)))
            .collect::<Vec<_>>()
            .join(", "),
        other => cell(other, key, MAX_DEPTH),
    }
}

/// Objects as a grid: a column per member whose values all fit a cell (what names a row
/// first), a row per object; the members that do not fit are named below it.
fn grid(items: &[Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        if let Value::Object(members) = item {
            for key in members.keys() {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
    }
    // What names a row comes first (JSON objects arrive with their members sorted).
    columns.sort_by_key(|c| !NAMING.contains(c));
    let (mut columns, long): (Vec<&str>, Vec<&str>) = columns
        .into_iter()
        .partition(|c| items.iter().all(|i| i.get(*c).is_none_or(compact)));
    if columns.len() > MAX_COLUMNS && items.len() <= MAX_TRANSPOSED {
        // Few records with many figures (an exercise's phases): a column per record, a
        // row per figure, so nothing is cut.
        return transposed(items, &columns) + &long_note(&long);
    }
    let hidden = columns.len().saturating_sub(MAX_COLUMNS);
    columns.truncate(MAX_COLUMNS);
    let mut out = String::from("<table class=\"ev-grid\"><thead><tr>");
    for c in &columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(&label(c)));
    }
    out.push_str("</tr></thead><tbody>");
    for item in items.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for c in &columns {
            let value = item.get(*c).unwrap_or(&Value::Null);
            let _ = write!(out, "<td>{}</td>", compact_cell(value, c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out.push_str(&long_note(&long));
    let more_rows = items.len().saturating_sub(MAX_ROWS);
    if more_rows > 0 || hidden > 0 {
        let _ = write!(
            out,
            "<span class=\"ev-note\">{}{}{} (all in the raw JSON)</span>",
            if more_rows > 0 {
                format!("{more_rows} more rows")
            } else {
                String::new()
            },
            if more_rows > 0 && hidden > 0 {
                ", "
            } else {
                ""
            },
            if hidden > 0 {
                format!("{hidden} more columns")
            } else {
                String::new()
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_observation_is_a_table_of_its_members_with_units_and_words() {
        let html = observation(&json!({
            "cipher_suite": "TLS13_AES_256_GCM_SHA384",
            "elapsed_ms": 5,
            "granted": true,
            "refusal": {"alert": "CertificateExpired", "number": 45, "stage": "handshake"},
            "note": null,
        }));
        assert!(html.starts_with("<table class=\"ev\">"), "{html}");
        assert!(
            html.contains(
                "<th class=\"k\" scope=\"row\">cipher suite</th><td>TLS13_AES_256_GCM_SHA384</td>"
            ),
            "{html}"
        );
        assert!(html.contains("<td>5 ms</td>"), "{html}");
        assert!(
            html.contains("<th class=\"k\" scope=\"row\">granted</th><td>yes</td>"),
            "{html}"
        );
        assert!(
            html.contains("<th class=\"k\" scope=\"row\">alert</th><td>CertificateExpired</td>"),
            "{html}"
        );
        assert!(
            html.contains("<th class=\"k\" scope=\"row\">number</th><td>45</td>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"ev-none\">—</span>"), "{html}");
    }

    #[test]
    fn records_are_a_grid_with_a_row_each() {
        let html = observation(&json!({"phases": [
            {"phase": "baseline", "rto_ms": null, "per_route": {"primary": 20}},
            {"phase": "primary-down", "rto_ms": 812, "detection_ms": 10, "per_route": {"fallback-1": 38}},
        ]}));
        assert!(html.contains("<table class=\"ev-grid\"><thead><tr><th scope=\"col\">phase</th><th scope=\"col\">per route</th><th scope=\"col\">rto ms</th><th scope=\"col\">detection ms</th></tr></thead>"), "{html}");
        assert!(
            html.contains("<tr><td>primary-down</td><td>fallback-1: 38</td><td>812 ms</td><td>10 ms</td></tr>"),
            "{html}"
        );
        assert_eq!(html.matches("<tr><td>").count(), 2, "{html}");
    }

    #[test]
    fn long_members_leave_the_grid_and_headers_are_rows() {
        let html = observation(&json!({"attempts": [
            {"answer": "503", "client_subject": "C=SE, O=Provsten Test, serialNumber=5560000001, CN=client-5560000001",
             "headers": [["host", "127.0.0.1:4943"], ["x-attempt", "1"]]},
        ], "headers": [["host", "127.0.0.1:4943"], ["x-attempt", "1"]]}));
        assert!(
            html.contains("<th scope=\"col\">answer</th></tr></thead>"),
            "{html}"
        );
        assert!(
            html.contains("Too long for the table, in the raw JSON: client subject, headers."),
            "{html}"
        );
        assert!(
            html.contains("<tr><th class=\"k\" scope=\"row\">x-attempt</th><td>1</td></tr>"),
            "{html}"
        );
    }

    #[test]
    fn few_records_with_many_figures_are_transposed() {
        let phase = |name: &str, rto: u64| {
            let mut p = serde_json::Map::new();
            p.insert("phase".into(), json!(name));
            for i in 0..12 {
                p.insert(format!("figure_{i:02}"), json!(i));
            }
            p.insert("rto_ms".into(), json!(rto));
            Value::Object(p)
        };
        let html =
            observation(&json!({"phases": [phase("baseline", 0), phase("primary-down", 812)]}));
        assert!(html.contains("<thead><tr><th scope=\"col\"></th><th scope=\"col\">baseline</th><th scope=\"col\">primary-down</th></tr></thead>"), "{html}");
        assert!(
            html.contains(
                "<tr><th class=\"k\" scope=\"row\">rto ms</th><td>0 ms</td><td>812 ms</td></tr>"
            ),
            "{html}"
        );
        assert!(!html.contains("more columns"), "{html}");
    }

    #[test]
    fn a_json_body_is_pretty_printed_with_its_length_and_long_text_is_bounded() {
        let body = r#"{"fullmakter":[{"id":"FM-1"}]}"#;
        let html = observation(&json!({ "body": body }));
        assert!(
            html.contains("<pre class=\"ev-body\">{\n  &quot;fullmakter&quot;: ["),
            "{html}"
        );
        assert!(
            html.contains(&format!("JSON, {} bytes", body.len())),
            "{html}"
        );
        let long = "x".repeat(5_000);
        let html = observation(&json!({ "last_output": long }));
        assert!(
            html.contains("5000 bytes, the first 2000 characters shown"),
            "{html}"
        );
        assert!(!html.contains(&"x".repeat(2_001)), "bounded");
    }

    #[test]
    fn lists_are_bounded_and_everything_is_escaped() {
        let many: Vec<u32> = (0..30).collect();
        let html = observation(&json!({ "ids": many, "<script>": "<b>&</b>" }));
        assert!(html.contains("… and 18 more"), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;") && html.contains("&lt;b&gt;&amp;&lt;/b&gt;"),
            "{html}"
        );
    }

    #[test]
    fn deep_nesting_ends_in_compact_json() {
        let html = observation(&json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}));
        assert!(
            html.contains("<code>{&quot;f&quot;:1}</code>")
                || html.contains("<code>{&quot;e&quot;:{&quot;f&quot;:1}}</code>"),
            "{html}"
        );
    }
}
