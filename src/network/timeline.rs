//! Named fault timelines (`scenarios/*.toml`): phases with start offsets and durations, each
//! with the outages and toxics active during it. Continuity teams write these; steps and
//! exercises run them by name. Validated on load with file, line and what is wrong.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Deserialize;
use toml::Spanned;

use super::proxy::{Stream, ToxicSpec};

/// A fault timeline, validated.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub name: String,
    pub description: String,
    pub phases: Vec<Phase>,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub start: Duration,
    pub duration: Duration,
    pub faults: Vec<Fault>,
    /// Exercises: messages per second the IUT is asked to route during the phase.
    pub load: Option<f64>,
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// The link refuses new connections and closes existing ones.
    Down { link: String },
    /// A toxic on the link.
    Toxic { link: String, toxic: ToxicSpec },
}

/// How a fault reads in evidence: `down route-primary`, `latency on iut-api (downstream:
/// jitter=0, latency=400)`.
impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Down { link } => write!(f, "down {link}"),
            Fault::Toxic { link, toxic } => {
                write!(f, "{} on {link} ({}", toxic.kind, toxic.stream.as_str())?;
                if let Some(attributes) = toxic.attributes.as_object() {
                    let shown: Vec<String> =
                        attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    if !shown.is_empty() {
                        write!(f, ": {}", shown.join(", "))?;
                    }
                }
                write!(f, ")")
            }
        }
    }
}

impl Fault {
    pub fn link(&self) -> &str {
        match self {
            Fault::Down { link } | Fault::Toxic { link, .. } => link,
        }
    }
}

impl Timeline {
    /// When the last phase ends.
    pub fn duration(&self) -> Duration {
        self.phases
            .iter()
            .map(|p| p.start + p.duration)
            .max()
            .unwrap_or_default()
    }

    /// Every link the timeline touches.
    pub fn links(&self) -> Vec<String> {
        let mut l: Vec<String> = self
            .phases
            .iter()
            .flat_map(|p| p.faults.iter().map(|f| f.link().to_string()))
            .collect();
        l.sort();
        l.dedup();
        l
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTimeline {
    #[serde(default)]
    description: String,
    /// Exercises: messages per second in every phase that sets none.
    #[serde(default)]
    load: Option<f64>,
    #[serde(rename = "phase")]
    phases: Vec<Spanned<FilePhase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePhase {
    name: String,
    start: String,
    duration: String,
    #[serde(default)]
    load: Option<f64>,
    #[serde(default, rename = "fault")]
    faults: Vec<Spanned<FileFault>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFault {
    link: String,
    #[serde(default)]
    down: bool,
    #[serde(default)]
    toxic: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    toxicity: Option<f32>,
    #[serde(default)]
    attributes: Option<toml::Table>,
}

/// Checks a toxic (type and attributes) the way the proxy will; an error says what is wrong.
pub type ToxicCheck<'a> = &'a dyn Fn(&ToxicSpec) -> Result<(), String>;

/// Parses `text` (the file `origin`), named `name`.
pub fn parse(
    text: &str,
    origin: &str,
    name: &str,
    check: ToxicCheck<'_>,
) -> anyhow::Result<Timeline> {
    let file: FileTimeline = toml::from_str(text).map_err(|e| anyhow!("{origin}: {e}"))?;
    let line =
        |span: std::ops::Range<usize>| text[..span.start.min(text.len())].matches('\n').count() + 1;
    if file.phases.is_empty() {
        bail!("{origin}: no [[phase]] (hint: a timeline needs at least one phase with name, start and duration)");
    }
    let mut phases = Vec::new();
    for sp in &file.phases {
        let at = line(sp.span());
        let p = sp.get_ref();
        let dur = |field: &str, v: &str| {
            humantime::parse_duration(v)
                .map_err(|_| anyhow!("{origin}:{at}: phase {:?}: {field} {v:?} is not a duration (hint: \"30s\", \"500ms\")", p.name))
        };
        let start = dur("start", &p.start)?;
        let duration = dur("duration", &p.duration)?;
        if duration.is_zero() {
            bail!("{origin}:{at}: phase {:?} has a zero duration", p.name);
        }
        let load = p.load.or(file.load);
        if let Some(l) = load {
            if !(l.is_finite() && (0.0..=10_000.0).contains(&l)) {
                bail!("{origin}:{at}: phase {:?}: load {l} is not a rate from 0 to 10000 messages per second", p.name);
            }
        }
        let mut faults = Vec::new();
        for sf in &p.faults {
            let fat = line(sf.span());
            let f = sf.get_ref();
            let fault = match (&f.toxic, f.down) {
                (Some(_), true) => bail!("{origin}:{fat}: a fault is either `down = true` or a `toxic`, not both"),
                (None, false) => bail!("{origin}:{fat}: the fault on link {:?} does nothing (hint: `down = true` or `toxic = \"latency\"`)", f.link),
                (None, true) => Fault::Down { link: f.link.clone() },
                (Some(kind), false) => {
                    let stream = match f.stream.as_deref() {
                        None | Some("downstream") => Stream::Downstream,
                        Some("upstream") => Stream::Upstream,
                        Some(other) => bail!("{origin}:{fat}: stream {other:?} is neither \"upstream\" nor \"downstream\""),
                    };
                    let toxicity = f.toxicity.unwrap_or(1.0);
                    if !(0.0..=1.0).contains(&toxicity) {
                        bail!("{origin}:{fat}: toxicity {toxicity} is not a probability between 0 and 1");
                    }
                    let attributes = serde_json::to_value(f.attributes.clone().unwrap_or_default())
                        .map_err(|e| anyhow!("{origin}:{fat}: attributes: {e}"))?;
                    let toxic = ToxicSpec {
                        name: format!("{name}-{}-{}", p.name, faults.len()),
                        kind: kind.clone(),
                        stream,
                        toxicity,
                        attributes,
                    };
                    check(&toxic).map_err(|e| anyhow!("{origin}:{fat}: phase {:?}, link {:?}: {e}", p.name, f.link))?;
                    Fault::Toxic {
                        link: f.link.clone(),
                        toxic,
                    }
                }
            };
            faults.push(fault);
        }
        phases.push(Phase {
            name: p.name.clone(),
            start,
            duration,
            faults,
            load,
        });
    }
    phases.sort_by_key(|p| p.start);
    Ok(Timeline {
        name: name.to_string(),
        description: file.description,
        phases,
    })
}

static SHIPPED: include_dir::Dir<'_> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/scenarios");

/// The shipped timelines' names.
pub fn shipped_names() -> Vec<String> {
    let mut v: Vec<String> = SHIPPED
        .files()
        .filter_map(|f| {
            f.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v
}

/// Finds timeline `name` in the user's directories (first) or among the shipped ones.
pub fn find(
    name: &str,
    dirs: &[std::path::PathBuf],
    check: ToxicCheck<'_>,
) -> anyhow::Result<Timeline> {
    for dir in dirs {
        let path = dir.join(format!("{name}.toml"));
        if path.is_file() {
            return load(dir, name, check);
        }
    }
    let file = format!("{name}.toml");
    match SHIPPED.get_file(&file).and_then(|f| f.contents_utf8()) {
        Some(text) => parse(text, &format!("scenarios/{file}"), name, check),
        None => bail!(
            "no fault timeline {name:?} (shipped: {}{})",
            shipped_names().join(", "),
            if dirs.is_empty() {
                "; add your own with --scenarios DIR".to_string()
            } else {
                String::new()
            }
        ),
    }
}

/// [`find`], with toxics checked as the embedded proxy checks them.
pub fn find_checked(name: &str, dirs: &[std::path::PathBuf]) -> anyhow::Result<Timeline> {
    let check = |spec: &ToxicSpec| {
        crate::network::toxics::check(spec)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    find(name, dirs, &check)
}

/// Loads `DIR/NAME.toml`, listing the timelines there when NAME is not one of them.
pub fn load(dir: &Path, name: &str, check: ToxicCheck<'_>) -> anyhow::Result<Timeline> {
    let path = dir.join(format!("{name}.toml"));
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path.display().to_string(), name, check),
        Err(_) => {
            let mut known: Vec<String> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter_map(|e| {
                            e.path()
                                .file_stem()
                                .map(|s| s.to_string_lossy().into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            known.sort();
            bail!(
                "no fault timeline {name:?} in {} (known: {})",
                dir.display(),
                known.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: &ToxicSpec) -> Result<(), String> {
        Ok(())
    }

    const FLAPPING: &str = r#"
description = "the primary route goes down and up twice"

[[phase]]
name = "down-1"
start = "0s"
duration = "2s"
[[phase.fault]]
link = "route-primary"
down = true

[[phase]]
name = "slow"
start = "4s"
duration = "1s"
[[phase.fault]]
link = "route-primary"
toxic = "latency"
attributes = { latency = 200, jitter = 10 }
"#;

    #[test]
    fn faults_read_as_words_in_evidence() {
        let down = Fault::Down {
            link: "route-primary".into(),
        };
        assert_eq!(down.to_string(), "down route-primary");
        let toxic = Fault::Toxic {
            link: "iut-api".into(),
            toxic: crate::network::proxy::ToxicSpec {
                name: "latency_downstream_0".into(),
                kind: "latency".into(),
                stream: crate::network::proxy::Stream::Downstream,
                toxicity: 1.0,
                attributes: serde_json::json!({"latency": 400, "jitter": 0}),
            },
        };
        assert_eq!(
            toxic.to_string(),
            "latency on iut-api (downstream: jitter=0, latency=400)"
        );
    }

    #[test]
    fn phases_faults_and_total_duration() {
        let t = parse(FLAPPING, "flapping.toml", "flapping", &any).unwrap();
        assert_eq!(t.phases.len(), 2);
        assert_eq!(t.duration(), Duration::from_secs(5));
        assert_eq!(t.links(), vec!["route-primary".to_string()]);
        match &t.phases[1].faults[0] {
            Fault::Toxic { toxic, .. } => {
                assert_eq!(toxic.kind, "latency");
                assert_eq!(toxic.attributes["latency"], 200);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_per_phase_inherits_the_default_and_is_checked() {
        let text = format!("load = 20.0\n{FLAPPING}")
            .replace("name = \"slow\"", "name = \"slow\"\nload = 5.0");
        let t = parse(&text, "x.toml", "x", &any).unwrap();
        assert_eq!(t.phases[0].load, Some(20.0));
        assert_eq!(t.phases[1].load, Some(5.0));
        let bad = FLAPPING.replace("name = \"slow\"", "name = \"slow\"\nload = -1.0");
        let e = parse(&bad, "x.toml", "x", &any).unwrap_err().to_string();
        assert!(e.contains("x.toml:"), "{e}");
        assert!(e.contains("load -1"), "{e}");
    }

    #[test]
    fn every_shipped_timeline_is_valid() {
        let check = |t: &ToxicSpec| {
            crate::network::toxics::check(t)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        for name in shipped_names() {
            let t = find(&name, &[], &check).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!t.phases.is_empty());
        }
        assert!(find("nope", &[], &check)
            .unwrap_err()
            .to_string()
            .contains("flapping"));
    }

    #[test]
    fn errors_name_file_line_and_fix() {
        let bad = FLAPPING.replace("duration = \"1s\"", "duration = \"1\"");
        let e = parse(&bad, "flapping.toml", "flapping", &any)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("flapping.toml:"), "{e}");
        assert!(e.contains("not a duration") && e.contains("hint"), "{e}");
        let unknown = |t: &ToxicSpec| {
            if t.kind == "latency" {
                Err("invalid toxic type \"latency\" (known: …)".to_string())
            } else {
                Ok(())
            }
        };
        let e = parse(FLAPPING, "f.toml", "f", &unknown)
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.toml:16:"), "{e}");
        let both = FLAPPING.replace("down = true", "down = true\ntoxic = \"latency\"");
        assert!(parse(&both, "f.toml", "f", &any)
            .unwrap_err()
            .to_string()
            .contains("not both"));
    }
}
