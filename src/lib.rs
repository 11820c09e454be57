//! provsten: simulated peers, a simulated CA and flaky networks run Gherkin scenarios
//! against an implementation under test (IUT) and report compliance per requirement.
//!
//! The interface is the command line ([`main`], [`cli`] with its exit codes), one run
//! ([`runner::run`] with a [`runner::RunPlan`]) and what it reports ([`report::model`],
//! verdicts per [`requirements::RequirementId`], the seeded defects of the reference IUT in
//! [`reference::defects`]). `network`, `pki`, `shared` and `bench` are public only for the
//! crate's own integration tests and benchmarks.
//!
//! One module per concept of the architecture (DESIGN.md): `pki` (simulated CA), `peers`
//! (simulated clients), `network` (fault proxy, toxics, raw TLS probes), `iut` (IUT
//! adapter), `reference` (reference IUT and its seeded defects), `steps` (Gherkin step
//! library), `runner` (the cucumber run), `report` (model and writers), `bench`
//! (performance figures as ratios), `shared` (pure models both the harness and the
//! reference read), `commands` (one function per CLI command).
//!
//! **The architecture rule:** the reference IUT is judged like a stranger. `reference`
//! imports nothing of the harness — not `steps`, `peers`, `iut`, `runner` or `report` — so a
//! mistake in a check cannot be mirrored by the IUT it checks and pass. It may use what any
//! IUT could: `pki` (to load its certificates), `schema` (its own validation, as a real
//! receiver validates), `network`'s address parsing, and `shared`. A unit test in this file
//! enforces it, and another that no modules import each other in a cycle (what two modules
//! share lives in a leaf module both import).
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

// The interface: the command line and its contract, a run, and what it reports.
pub mod cli;
pub mod reference;
pub mod report;
pub mod requirements;
pub mod runner;

pub use commands::main;

// Public only for this crate's own integration tests and benchmarks (`tests/`, `benches/`
// drive the fault proxy, the TLS probes and the CA directly): not an interface.
#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod network;
#[doc(hidden)]
pub mod pki;
#[doc(hidden)]
pub mod shared;

mod commands;
mod iut;
mod peers;
mod schema;
mod steps;

#[cfg(test)]
mod architecture {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// The reference's own files (tests may drive it with the harness's clients).
    #[test]
    fn the_reference_imports_nothing_of_the_harness() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/reference");
        let mut offences = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("src/reference") {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                for harness in ["steps", "peers", "iut", "runner", "report"] {
                    if line.contains(&format!("crate::{harness}")) {
                        offences.push(format!("src/reference/{name}:{}: {}", i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offences.is_empty(),
            "the reference imports the harness:\n{}",
            offences.join("\n")
        );
    }

    /// No import cycles between modules (one file is one module): a cycle means neither
    /// side can be understood, tested or moved without the other. Counted are the
    /// `crate::`/`super::` paths of non-test code outside comments; a child using its
    /// parent's items is fine (the parent declares it).
    #[test]
    fn modules_import_each_other_in_no_cycle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let module = |f: &Path| -> String {
            let rel = f.strip_prefix(&src).expect("below src").with_extension("");
            let mut name = vec!["crate".to_string()];
            name.extend(rel.iter().map(|s| s.to_string_lossy().into_owned()));
            if matches!(name.last().map(String::as_str), Some("mod" | "lib")) {
                name.pop();
            }
            name.join("::")
        };
        // main.rs is the binary, a crate of its own; test files are test code.
        files.retain(|f| {
            let n = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !matches!(n, "main.rs" | "tests.rs" | "testutil.rs") && !n.ends_with("_tests.rs")
        });
        let mods: BTreeSet<String> = files.iter().map(|f| module(f)).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let m = module(f);
            let text = std::fs::read_to_string(f).expect("a source file");
            let deps = imports(&m, &code(&text), &mods);
            edges.insert(m, deps);
        }
        let reach = |from: &String| {
            let (mut seen, mut todo) = (BTreeSet::new(), vec![from]);
            while let Some(m) = todo.pop() {
                for d in &edges[m] {
                    if seen.insert(d) {
                        todo.push(d);
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&String, BTreeSet<&String>> =
            edges.keys().map(|m| (m, reach(m))).collect();
        let mut cycles = BTreeSet::new();
        for (m, r) in &reaches {
            let scc: Vec<&String> = r
                .iter()
                .copied()
                .filter(|w| reaches[w].contains(m))
                .collect();
            let parent_child = |a: &str, b: &str| a.rsplit_once("::").map(|(p, _)| p) == Some(b);
            if scc.len() < 2
                || scc.len() == 2 && (parent_child(scc[0], scc[1]) || parent_child(scc[1], scc[0]))
            {
                continue;
            }
            let lines: Vec<String> = scc
                .iter()
                .map(|a| {
                    let to: Vec<&str> = edges[*a]
                        .iter()
                        .filter(|d| scc.contains(d))
                        .map(String::as_str)
                        .collect();
                    format!("  {a} -> {}", to.join(", "))
                })
                .collect();
            cycles.insert(lines.join("\n"));
        }
        assert!(
            cycles.is_empty(),
            "modules import each other in a cycle (move what they share to a leaf module):\n{}",
            cycles.into_iter().collect::<Vec<_>>().join("\n\n")
        );
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// `text` without comments and `#[cfg(test)]` items (rustfmt layout: an item of more
    /// than one line ends with `}` at its own indentation).
    fn code(text: &str) -> String {
        let mut out = String::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let t = line.trim_start();
            if t.starts_with("//") {
                continue;
            }
            if t.starts_with("#[cfg(test)]") {
                let indent = &line[..line.len() - t.len()];
                let first = lines.by_ref().find(|l| !l.trim_start().starts_with("#["));
                if first.is_some_and(|l| !l.ends_with(';')) {
                    let _ = lines.by_ref().find(|l| l.strip_prefix(indent) == Some("}"));
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The modules of `mods` that `code` of module `m` names through `crate::` or `super::`
    /// paths: the longest prefix of each path (or of each item of a `{…}` group) that is a
    /// module.
    fn imports(m: &str, code: &str, mods: &BTreeSet<String>) -> BTreeSet<String> {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let parent = m.rsplit_once("::").map_or("crate", |(p, _)| p);
        let mut deps = BTreeSet::new();
        for (kw, base) in [("crate::", "crate"), ("super::", parent)] {
            for (at, _) in code.match_indices(kw) {
                if code[..at].ends_with(ident) {
                    continue;
                }
                let rest = &code[at + kw.len()..];
                let end = rest
                    .find(|c: char| !ident(c) && c != ':')
                    .unwrap_or(rest.len());
                let path = match rest[..end].trim_end_matches(':') {
                    "" => base.to_string(),
                    segs => format!("{base}::{segs}"),
                };
                let items = match rest[end..].strip_prefix('{') {
                    Some(group) => group_items(group),
                    None => vec![""],
                };
                for item in items {
                    let item = item.trim();
                    let item = &item[..item
                        .find(|c: char| !ident(c) && c != ':')
                        .unwrap_or(item.len())];
                    let mut p = match item.trim_end_matches(':') {
                        "" | "self" => path.clone(),
                        _ => format!("{path}::{item}"),
                    };
                    while !mods.contains(&p) {
                        match p.rsplit_once("::") {
                            Some((q, _)) => p = q.to_string(),
                            None => break,
                        }
                    }
                    if mods.contains(&p) && p != m {
                        deps.insert(p);
                    }
                }
            }
        }
        deps
    }

    /// The items of a `use` group, `group` starting after its `{`: split at its own commas,
    /// up to its own `}`.
    fn group_items(group: &str) -> Vec<&str> {
        let (mut depth, mut start, mut items) = (0, 0, Vec::new());
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items
    }
}
