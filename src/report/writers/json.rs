//! `report.json`: the report model as pretty JSON, the source every other artefact can be
//! re-rendered from (`provsten report render`, `merge`, `verify`).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context as _};

use crate::report::model::*;

/// The file this writer produces in the output directory.
pub(crate) const FILE_NAME: &str = "report.json";

/// The report as pretty JSON, ending with a newline.
pub(crate) fn render(report: &Report) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(report).context("cannot serialise the report")?;
    text.push('\n');
    Ok(text)
}

/// Reads a `report.json`, refusing one written with another `schema_version`.
///
/// The version is checked before the rest is parsed, so a report from another provsten
/// gets a version error, not an error about whichever field changed.
pub(crate) fn read(path: &Path) -> anyhow::Result<Report> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let Some(version) = value.get("schema_version") else {
        bail!(
            "{}: no `schema_version`; this is not a provsten report.json",
            path.display()
        );
    };
    if version.as_u64() != Some(u64::from(SCHEMA_VERSION)) {
        let writer = value
            .pointer("/harness/version")
            .and_then(|v| v.as_str())
            .map(|v| format!(" (written by provsten {v})"))
            .unwrap_or_default();
        bail!(
            "{}: report schema_version {version}{writer} is not supported; this provsten \
             {} reads schema_version {SCHEMA_VERSION} (hint: use the provsten version that \
             wrote the report)",
            path.display(),
            env!("CARGO_PKG_VERSION"),
        );
    }
    // Parse the text again rather than the `Value`, so errors carry line and column.
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a valid report (schema_version {SCHEMA_VERSION})",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::writers::sample_report;

    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("provsten-json-{}-{name}", std::process::id()));
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn report_round_trips_to_an_equal_report() {
        let report = sample_report();
        let path = temp_file("round-trip.json", &render(&report).unwrap());
        let back = read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn rendered_json_is_pretty_and_uses_contract_names() {
        let text = render(&sample_report()).unwrap();
        assert!(text.starts_with("{\n  \"schema_version\": 2,"), "{text}");
        assert!(text.contains("\"verdict\": \"non-compliant\""));
        assert!(text.contains("\"status\": \"not-applicable\""));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn read_refuses_another_schema_version_naming_file_and_both_versions() {
        let mut value = serde_json::to_value(sample_report()).unwrap();
        value["schema_version"] = serde_json::json!(999);
        // A future version may also have changed fields; the version error must win.
        value.as_object_mut().unwrap().remove("scenarios");
        let path = temp_file("v999.json", &value.to_string());
        let err = format!("{:#}", read(&path).unwrap_err());
        fs::remove_file(&path).unwrap();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("schema_version 999"), "{err}");
        assert!(err.contains("reads schema_version 2"), "{err}");
    }

    #[test]
    fn read_refuses_a_file_without_schema_version() {
        let path = temp_file("no-version.json", "{\"verdict\": \"compliant\"}");
        let err = format!("{:#}", read(&path).unwrap_err());
        fs::remove_file(&path).unwrap();
        assert!(err.contains("no `schema_version`"), "{err}");
    }

    #[test]
    fn read_reports_a_broken_field_with_the_file_name() {
        let text = render(&sample_report())
            .unwrap()
            .replace("\"non-compliant\"", "\"maybe\"");
        let path = temp_file("bad-field.json", &text);
        let err = format!("{:#}", read(&path).unwrap_err());
        fs::remove_file(&path).unwrap();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("maybe"), "{err}");
    }
}
