//! The schemas shipped in `schemas/` (see `schemas/README.md`), embedded in the binary and
//! listed once here by id. A test checks this table against the folder, so a schema or
//! example added there without a line here fails.

use anyhow::{bail, Result};
use serde_json::Value;

use super::validate::{parse_json, Validator};

/// One shipped schema and its valid examples.
#[derive(Debug)]
pub(crate) struct Builtin {
    /// `folder/name`, e.g. `fullmakt/agent-notification`.
    pub id: &'static str,
    /// Path under `schemas/`.
    pub file: &'static str,
    /// The schema's JSON text, embedded at build time.
    pub text: &'static str,
    /// Valid example messages; the first is the one the generator mutates.
    pub examples: &'static [Example],
}

/// A valid example message, shipped next to its schema.
#[derive(Debug)]
pub(crate) struct Example {
    /// Path under `schemas/`.
    pub file: &'static str,
    /// The example's JSON text, embedded at build time.
    pub text: &'static str,
}

macro_rules! shipped {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/", $file))
    };
}

macro_rules! example {
    ($file:literal) => {
        Example {
            file: $file,
            text: shipped!($file),
        }
    };
}

/// Every shipped schema, one line each.
pub(crate) const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "fullmakt/agent-notification",
        file: "fullmakt/agent-notification.schema.json",
        text: shipped!("fullmakt/agent-notification.schema.json"),
        examples: &[
            example!("fullmakt/agent-notification.example.json"),
            example!("fullmakt/agent-notification.null-reason.example.json"),
        ],
    },
    Builtin {
        id: "ebevis/epoc",
        file: "ebevis/epoc.schema.json",
        text: shipped!("ebevis/epoc.schema.json"),
        examples: &[example!("ebevis/epoc.example.json")],
    },
    Builtin {
        id: "ebevis/epoc-pr",
        file: "ebevis/epoc-pr.schema.json",
        text: shipped!("ebevis/epoc-pr.schema.json"),
        examples: &[example!("ebevis/epoc-pr.example.json")],
    },
    Builtin {
        id: "ebevis/epoc-response",
        file: "ebevis/epoc-response.schema.json",
        text: shipped!("ebevis/epoc-response.schema.json"),
        examples: &[
            example!("ebevis/epoc-response.example.json"),
            example!("ebevis/epoc-response.refusal.example.json"),
        ],
    },
];

/// The shipped schema `id`; an unknown id lists the known ones.
pub(crate) fn get(id: &str) -> Result<&'static Builtin> {
    match BUILTINS.iter().find(|b| b.id == id) {
        Some(b) => Ok(b),
        None => bail!(
            "unknown schema `{id}` (known schemas: {})",
            ids().join(", ")
        ),
    }
}

/// The ids of all shipped schemas, in table order.
pub(crate) fn ids() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.id).collect()
}

// `Validator::builtin` lives here so the validator need not import the catalogue that
// imports it.
impl Validator {
    /// A shipped schema by id (see [`BUILTINS`]).
    pub(crate) fn builtin(id: &str) -> Result<Validator> {
        get(id)?.validator()
    }
}

impl Builtin {
    /// The schema, parsed.
    pub(crate) fn schema(&self) -> Result<Value> {
        parse_json(self.text, self.file)
    }

    /// The examples as `(file, message)`, in table order.
    pub(crate) fn examples(&self) -> Result<Vec<(String, Value)>> {
        self.examples
            .iter()
            .map(|e| Ok((e.file.to_owned(), parse_json(e.text, e.file)?)))
            .collect()
    }

    /// The first example: the one the generator mutates.
    pub(crate) fn example(&self) -> Result<Value> {
        match self.examples.first() {
            Some(e) => parse_json(e.text, e.file),
            None => bail!("schema `{}` ships no example", self.id),
        }
    }

    /// The schema, compiled.
    pub(crate) fn validator(&self) -> Result<Validator> {
        Validator::from_schema(&self.schema()?, self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn files_under(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
        let entries = std::fs::read_dir(dir).expect("schemas/ readable");
        for entry in entries {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.path().is_dir() {
                files_under(&entry.path(), &rel, out);
            } else if rel.ends_with(".json") {
                out.insert(rel);
            }
        }
    }

    #[test]
    fn the_table_lists_exactly_the_json_files_in_schemas() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut on_disk = BTreeSet::new();
        files_under(&dir, "", &mut on_disk);
        let mut listed = BTreeSet::new();
        for b in BUILTINS {
            listed.insert(b.file.to_owned());
            listed.extend(b.examples.iter().map(|e| e.file.to_owned()));
        }
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn every_schema_states_id_title_description_and_draft() {
        for b in BUILTINS {
            let s = b.schema().expect("parses");
            for key in ["$id", "title", "description"] {
                assert!(
                    s.get(key).and_then(Value::as_str).is_some(),
                    "{} lacks {key}",
                    b.id
                );
            }
            assert_eq!(
                s.get("$schema").and_then(Value::as_str),
                Some("https://json-schema.org/draft/2020-12/schema"),
                "{}",
                b.id
            );
            let description = s["description"].as_str().unwrap_or_default();
            assert!(description.contains("not a published schema"), "{}", b.id);
        }
    }

    #[test]
    fn ids_match_file_names() {
        for b in BUILTINS {
            assert_eq!(format!("{}.schema.json", b.id), b.file);
            for e in b.examples {
                assert!(
                    e.file.starts_with(&format!("{}.", b.id)) && e.file.ends_with(".example.json"),
                    "{}",
                    e.file
                );
            }
        }
    }

    #[test]
    fn unknown_id_names_the_known_ones() {
        let e = get("ebevis/epoc-x").expect_err("unknown").to_string();
        assert!(e.contains("ebevis/epoc, ebevis/epoc-pr"), "{e}");
    }
}
