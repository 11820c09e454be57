//! Generated invalid XML, and shrinking an accepted one to a minimal counter-example (the
//! XML counterpart of `invalid.rs`).
//!
//! Every single edit of the valid example that the mutation kinds in [`KINDS`] can make is
//! listed once (dropped, duplicated, swapped and renamed elements, dropped attributes,
//! wrong or rule-breaking text, changed namespaces, ISO-8859-1 bytes in a UTF-8 document).
//! A case composes one to three of them, picked by a seeded generator, and is kept only if
//! the harness's own [`XmlValidator`] refuses it: a case the validator accepts is never sent
//! as invalid. When the IUT accepts a case, [`find_accepted_invalid`] shrinks it: it drops
//! the edits not needed, then deletes the parts of the document the example can do without
//! (optional elements, attributes, text, indentation), keeping each step only if the
//! validator still refuses the document for the same rule and the IUT still accepts it.
//! Each probe is one request, bounded in number and by a deadline.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::model::Violation;
use super::validate::MessageValidator;
use super::xml::XmlValidator;
use super::xml_invalid::path_of;

/// Upper bound on shrink probes: each is one request to the IUT.
pub(crate) const MAX_SHRINK_PROBES: u32 = 256;
/// How long a shrink may take, whatever the IUT's speed.
pub(crate) const SHRINK_DEADLINE: Duration = Duration::from_secs(60);
/// Attempts at drawing a case the validator refuses, per case, before giving up.
const MAX_DRAWS: u32 = 64;

/// How an edit breaks the example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    DropElement,
    DuplicateElement,
    SwapElements,
    RenameElement,
    DropAttribute,
    WrongText,
    Namespace,
    Encoding,
}

type Maker = fn(&Source<'_>) -> Vec<Edit>;

/// The mutation kinds and the edits each makes of a parsed example: the one table.
const KINDS: &[(Kind, Maker)] = &[
    (Kind::DropElement, drop_elements),
    (Kind::DuplicateElement, duplicate_elements),
    (Kind::SwapElements, swap_elements),
    (Kind::RenameElement, rename_elements),
    (Kind::DropAttribute, drop_attributes),
    (Kind::WrongText, wrong_texts),
    (Kind::Namespace, namespaces),
    (Kind::Encoding, encodings),
];

/// Replacement text for leaves: not of the type (dates, numbers, booleans, ids), empty
/// (Schematron's non-empty rules), another URN (the profile and scheme rules).
const VALUES: &[&str] = &["provsten-not-a-value", "", "urn:provsten:other", "-1"];

/// One edit of the example: byte ranges of the example and what replaces each.
#[derive(Debug, Clone)]
pub(crate) struct Edit {
    pub kind: Option<Kind>,
    /// In words, with the XPath-like path of the node.
    pub what: String,
    pieces: Vec<(Range<usize>, Vec<u8>)>,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::DropElement => "drop-element",
            Kind::DuplicateElement => "duplicate-element",
            Kind::SwapElements => "swap-elements",
            Kind::RenameElement => "rename-element",
            Kind::DropAttribute => "drop-attribute",
            Kind::WrongText => "wrong-text",
            Kind::Namespace => "namespace",
            Kind::Encoding => "encoding",
        }
    }
}

impl Edit {
    /// `kind: what`, as the evidence lists edits.
    fn described(&self) -> String {
        match self.kind {
            Some(k) => format!("{}: {}", k.name(), self.what),
            None => self.what.clone(),
        }
    }

    fn one(
        kind: Option<Kind>,
        what: String,
        range: Range<usize>,
        with: impl Into<Vec<u8>>,
    ) -> Self {
        Edit {
            kind,
            what,
            pieces: vec![(range, with.into())],
        }
    }

    fn overlaps(&self, other: &Edit) -> bool {
        self.pieces.iter().any(|(a, _)| {
            other.pieces.iter().any(|(b, _)| {
                (a.start < b.end && b.start < a.end) || (a.start == b.start && a.end == b.end)
            })
        })
    }
}

/// The parsed example the edit makers read.
struct Source<'a> {
    text: &'a str,
    doc: roxmltree::Document<'a>,
}

impl Source<'_> {
    fn elements(&self) -> impl Iterator<Item = roxmltree::Node<'_, '_>> {
        self.doc
            .descendants()
            .filter(|n| n.is_element() && *n != self.doc.root_element())
    }

    fn leaves(&self) -> impl Iterator<Item = (roxmltree::Node<'_, '_>, Range<usize>)> {
        self.elements().filter_map(|n| {
            if n.children().any(|c| c.is_element()) {
                return None;
            }
            Some((n, n.children().find(|c| c.is_text())?.range()))
        })
    }
}

fn drop_elements(s: &Source<'_>) -> Vec<Edit> {
    s.elements()
        .map(|n| {
            let what = format!("{} removed", path_of(n));
            Edit::one(Some(Kind::DropElement), what, n.range(), "")
        })
        .collect()
}

fn duplicate_elements(s: &Source<'_>) -> Vec<Edit> {
    s.elements()
        .filter_map(|n| {
            let copy = s.text.get(n.range())?;
            let at = n.range().end;
            let what = format!("{} duplicated", path_of(n));
            Some(Edit::one(Some(Kind::DuplicateElement), what, at..at, copy))
        })
        .collect()
}

fn swap_elements(s: &Source<'_>) -> Vec<Edit> {
    s.elements()
        .filter_map(|n| {
            let next = n.next_sibling_element()?;
            if next.tag_name() == n.tag_name() {
                return None;
            }
            let (a, b) = (n.range(), next.range());
            let (first, second) = (s.text.get(a.clone())?, s.text.get(b.clone())?);
            Some(Edit {
                kind: Some(Kind::SwapElements),
                what: format!("{} moved after {}", path_of(n), path_of(next)),
                pieces: vec![(a, second.into()), (b, first.into())],
            })
        })
        .collect()
}

/// The element's qualified name as written, and where it stands in its start and end tags.
fn name_ranges(text: &str, n: roxmltree::Node<'_, '_>) -> Option<(String, Vec<Range<usize>>)> {
    let start = n.range().start + 1;
    let rest = text.get(start..n.range().end)?;
    let len = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
    let qname = rest.get(..len)?.to_owned();
    let mut ranges = Vec::new();
    ranges.push(start..start + len);
    let inner = text.get(..n.range().end)?;
    let close = format!("</{qname}");
    if let Some(at) = inner.rfind(&close) {
        if at > start {
            ranges.push(at + 2..at + 2 + len);
        }
    }
    Some((qname, ranges))
}

fn rename_elements(s: &Source<'_>) -> Vec<Edit> {
    s.elements()
        .filter_map(|n| {
            let (qname, ranges) = name_ranges(s.text, n)?;
            let renamed = match qname.split_once(':') {
                Some((prefix, _)) => format!("{prefix}:ProvstenRenamed"),
                None => "ProvstenRenamed".to_owned(),
            };
            Some(Edit {
                kind: Some(Kind::RenameElement),
                what: format!("{} renamed {renamed}", path_of(n)),
                pieces: ranges
                    .into_iter()
                    .map(|r| (r, renamed.clone().into()))
                    .collect(),
            })
        })
        .collect()
}

/// An attribute's range with the blank before it, so removing it leaves a tidy tag.
fn attribute_range(text: &str, r: Range<usize>) -> Range<usize> {
    let before = text.get(..r.start).unwrap_or("");
    let blank = before.len() - before.trim_end().len();
    r.start - blank..r.end
}

fn drop_attributes(s: &Source<'_>) -> Vec<Edit> {
    s.doc
        .descendants()
        .filter(|n| n.is_element())
        .flat_map(|n| {
            n.attributes()
                .map(|a| {
                    let what = format!("{}/@{} removed", path_of(n), a.name());
                    let r = attribute_range(s.text, a.range());
                    Edit::one(Some(Kind::DropAttribute), what, r, "")
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn wrong_texts(s: &Source<'_>) -> Vec<Edit> {
    s.leaves()
        .flat_map(|(n, r)| {
            VALUES.iter().map(move |v| {
                let what = format!("the text of {} set to `{v}`", path_of(n));
                Edit::one(Some(Kind::WrongText), what, r.clone(), *v)
            })
        })
        .collect()
}

/// Each namespace declaration's URI, changed to another or to none.
fn namespaces(s: &Source<'_>) -> Vec<Edit> {
    let mut out = Vec::new();
    for d in ns_declarations(s.text) {
        for (to, how) in [
            (
                "urn:provsten:wrong-namespace",
                "replaced by urn:provsten:wrong-namespace",
            ),
            ("", "emptied"),
        ] {
            out.push(Edit::one(
                Some(Kind::Namespace),
                format!("the namespace declared by {} {how}", d.name),
                d.value.clone(),
                to,
            ));
        }
    }
    out
}

/// A namespace declaration as written: `xmlns` or `xmlns:p`, the whole attribute (with
/// the blank before it) and its value.
struct NsDeclaration {
    name: String,
    whole: Range<usize>,
    value: Range<usize>,
}

/// The namespace declarations in start tags (roxmltree does not give their ranges).
fn ns_declarations(text: &str) -> Vec<NsDeclaration> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text.get(from..).and_then(|t| t.find("xmlns")) {
        let decl = from + at;
        from = decl + 5;
        let Some(rest) = text.get(decl..) else {
            break;
        };
        // Only an attribute: after a blank, its name ending at `=`.
        let after_blank = text
            .get(..decl)
            .and_then(|b| b.chars().last())
            .is_some_and(char::is_whitespace);
        let (Some(eq), Some(name_end)) = (
            rest.find('='),
            rest.find(|c: char| c == '=' || c.is_whitespace()),
        ) else {
            continue;
        };
        if name_end != eq || !after_blank {
            continue;
        }
        let Some(quote) = rest.get(eq + 1..eq + 2) else {
            continue;
        };
        if quote != "\"" && quote != "'" {
            continue;
        }
        let value_start = decl + eq + 2;
        let Some(len) = text.get(value_start..).and_then(|t| t.find(quote)) else {
            continue;
        };
        let end = value_start + len + 1;
        out.push(NsDeclaration {
            name: rest.get(..eq).unwrap_or("xmlns").to_owned(),
            whole: attribute_range(text, decl..end),
            value: value_start..value_start + len,
        });
    }
    out
}

/// ISO-8859-1 "åäö" at the start of a leaf's text, in a document that is (or defaults to)
/// UTF-8.
fn encodings(s: &Source<'_>) -> Vec<Edit> {
    s.leaves()
        .map(|(n, r)| {
            let what = format!("ISO-8859-1 bytes (åäö) in the text of {}", path_of(n));
            Edit::one(
                Some(Kind::Encoding),
                what,
                r.start..r.start,
                b"\xe5\xe4\xf6".to_vec(),
            )
        })
        .collect()
}

/// What the shrinker may delete: the parts whose removal leaves the example valid.
fn deletions(s: &Source<'_>) -> Vec<Edit> {
    let mut out: Vec<Edit> = s
        .elements()
        .map(|n| Edit::one(None, format!("{} deleted", path_of(n)), n.range(), ""))
        .collect();
    for n in s.doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes() {
            let r = attribute_range(s.text, a.range());
            out.push(Edit::one(
                None,
                format!("{}/@{} deleted", path_of(n), a.name()),
                r,
                "",
            ));
        }
    }
    // Declarations no element or attribute uses (the others fail to parse when deleted).
    for d in ns_declarations(s.text) {
        out.push(Edit::one(None, format!("{} deleted", d.name), d.whole, ""));
    }
    for (n, r) in s.leaves() {
        if !r.is_empty() {
            out.push(Edit::one(
                None,
                format!("the text of {} deleted", path_of(n)),
                r,
                "",
            ));
        }
    }
    // Largest first: one probe then saves the most.
    out.sort_by_key(|e| std::cmp::Reverse(e.pieces.iter().map(|(r, _)| r.len()).sum::<usize>()));
    out
}

/// Whitespace between elements (indentation), which the shrinker deletes last, all at once.
fn blanks(s: &Source<'_>) -> Vec<Range<usize>> {
    s.doc
        .descendants()
        .filter(|n| n.is_text() && n.text().is_some_and(|t| t.trim().is_empty()))
        .filter(|n| {
            n.parent()
                .is_some_and(|p| p.children().any(|c| c.is_element()))
        })
        .map(|n| n.range())
        .collect()
}

/// `example` with `edits` applied; `None` when two of them touch the same bytes.
fn apply(example: &[u8], edits: &[&Edit]) -> Option<Vec<u8>> {
    for (i, a) in edits.iter().enumerate() {
        if edits.iter().skip(i + 1).any(|b| a.overlaps(b)) {
            return None;
        }
    }
    let mut pieces: Vec<&(Range<usize>, Vec<u8>)> =
        edits.iter().flat_map(|e| e.pieces.iter()).collect();
    // From the end backwards, a removal before an insertion at the same place.
    pieces.sort_by_key(|p| std::cmp::Reverse((p.0.start, p.0.end)));
    let mut out = example.to_vec();
    for (r, with) in pieces {
        if r.end > out.len() || r.start > r.end {
            return None;
        }
        out.splice(r.clone(), with.iter().copied());
    }
    Some(out)
}

/// SplitMix64: a seeded generator that is the same on every platform and release.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// The edits of one valid example, ready to compose.
pub(crate) struct XmlGenerator<'v> {
    validator: &'v XmlValidator,
    example: Vec<u8>,
    /// Per kind, the edits of that kind (kinds are drawn first, so that a kind with many
    /// sites does not crowd out the others).
    by_kind: Vec<Vec<Edit>>,
    deletions: Vec<Edit>,
    blanks: Vec<Range<usize>>,
}

/// A generated case: the edits, the document and the validator's verdict (never empty).
#[derive(Debug, Clone)]
pub(crate) struct XmlCase {
    pub edits: Vec<Edit>,
    pub body: Vec<u8>,
    pub violations: Vec<Violation>,
}

impl<'v> XmlGenerator<'v> {
    /// Lists every edit of `example` (which must be valid) and the deletions it survives.
    pub(crate) fn new(validator: &'v XmlValidator, example: &[u8]) -> Result<Self, String> {
        let text =
            std::str::from_utf8(example).map_err(|_| "the example is not UTF-8".to_owned())?;
        let doc = roxmltree::Document::parse(text).map_err(|e| format!("the example: {e}"))?;
        if let Err(v) = validator.validate_bytes(example) {
            return Err(format!(
                "the example does not validate: {}",
                v.first().map(|x| x.message.as_str()).unwrap_or("")
            ));
        }
        let s = Source { text, doc };
        let by_kind: Vec<Vec<Edit>> = KINDS
            .iter()
            .map(|(_, make)| make(&s))
            .filter(|e| !e.is_empty())
            .collect();
        let deletions = deletions(&s)
            .into_iter()
            .filter(|d| apply(example, &[d]).is_some_and(|b| validator.validate_bytes(&b).is_ok()))
            .collect();
        Ok(XmlGenerator {
            validator,
            example: example.to_vec(),
            by_kind,
            deletions,
            blanks: blanks(&s),
        })
    }

    /// Case `index` of the run with `seed`: one to three edits the validator refuses
    /// together, or `None` if no draw gave one.
    pub(crate) fn case(&self, seed: u64, index: u32) -> Option<XmlCase> {
        let mut rng = Rng(seed ^ u64::from(index).wrapping_mul(0xA24B_AED4_963E_E407));
        for _ in 0..MAX_DRAWS {
            let count = 1 + rng.below(3);
            let mut edits: Vec<&Edit> = Vec::new();
            for _ in 0..count {
                let kind = self.by_kind.get(rng.below(self.by_kind.len()))?;
                let e = kind.get(rng.below(kind.len()))?;
                if !edits.iter().any(|x| x.overlaps(e)) {
                    edits.push(e);
                }
            }
            let Some(body) = apply(&self.example, &edits) else {
                continue;
            };
            if let Err(violations) = self.validator.validate_bytes(&body) {
                return Some(XmlCase {
                    edits: edits.into_iter().cloned().collect(),
                    body,
                    violations,
                });
            }
        }
        None
    }
}

/// A minimal accepted invalid document, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct XmlCounterExample {
    pub seed: u64,
    /// Which generated case the IUT accepted first (0-based).
    pub case: u32,
    /// The edits of the example the case was made of.
    pub generated: Vec<String>,
    /// The edits still needed after shrinking.
    pub mutations: Vec<String>,
    /// What else the shrinker deleted from the example.
    pub deleted: Vec<String>,
    /// The rule the validator refuses the document for, before and after shrinking.
    pub rule: String,
    pub violations: Vec<Violation>,
    /// The minimal document (lossy UTF-8 when an edit wrote other bytes).
    pub document: String,
    pub document_bytes: usize,
    pub example_bytes: usize,
    /// Shrink steps kept, and probes (requests) made while shrinking.
    pub shrink_steps: u32,
    pub shrink_probes: u32,
    /// The shrink stopped at the probe bound or the deadline.
    pub shrink_cut_short: bool,
}

/// What a run found: the counter-example, if any, and how many requests it took.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct XmlRun {
    pub seed: u64,
    /// Cases sent (each refused by the validator first).
    pub sent: u32,
    /// Requests in all, shrink probes included.
    pub requests: u32,
    pub counter_example: Option<XmlCounterExample>,
}

/// Sends up to `n` generated cases (deterministic for `seed`) through `accepts` (did the
/// IUT accept this document?); the first accepted is shrunk. `accepts` is called once per
/// case and once per shrink probe that the validator lets through.
pub(crate) fn find_accepted_invalid(
    g: &XmlGenerator<'_>,
    n: u32,
    seed: u64,
    mut accepts: impl FnMut(&[u8]) -> bool,
) -> XmlRun {
    let mut run = XmlRun {
        seed,
        sent: 0,
        requests: 0,
        counter_example: None,
    };
    for index in 0..n {
        let Some(case) = g.case(seed, index) else {
            continue;
        };
        run.sent += 1;
        run.requests += 1;
        if accepts(&case.body) {
            let c = shrink(g, seed, index, case, &mut accepts);
            run.requests += c.shrink_probes;
            run.counter_example = Some(c);
            break;
        }
    }
    run
}

fn shrink(
    g: &XmlGenerator<'_>,
    seed: u64,
    index: u32,
    case: XmlCase,
    accepts: &mut impl FnMut(&[u8]) -> bool,
) -> XmlCounterExample {
    let deadline = Instant::now() + SHRINK_DEADLINE;
    let rule = case
        .violations
        .first()
        .map(|v| v.schema_path.clone())
        .unwrap_or_default();
    let mut edits = case.edits.clone();
    let mut deleted: Vec<Edit> = Vec::new();
    let (mut body, mut violations) = (case.body.clone(), case.violations.clone());
    let (mut probes, mut steps, mut cut_short) = (0u32, 0u32, false);
    // Same reason: the validator still refuses with the rule; then (one request) the IUT
    // still accepts.
    let mut keeps = |candidate: &[&Edit], probes: &mut u32, cut: &mut bool| {
        if *probes >= MAX_SHRINK_PROBES || Instant::now() >= deadline {
            *cut = true;
            return None;
        }
        let b = apply(&g.example, candidate)?;
        let vs = g.validator.validate_bytes(&b).err()?;
        if !vs.iter().any(|v| v.schema_path == rule) {
            return None;
        }
        *probes += 1;
        accepts(&b).then_some((b, vs))
    };
    // Edits not needed.
    let mut i = 0;
    while edits.len() > 1 && i < edits.len() {
        let candidate: Vec<&Edit> = edits
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, e)| e)
            .chain(deleted.iter())
            .collect();
        if let Some((b, vs)) = keeps(&candidate, &mut probes, &mut cut_short) {
            edits.remove(i);
            (body, violations, steps) = (b, vs, steps + 1);
        } else {
            i += 1;
        }
    }
    // Parts of the example not needed, largest first.
    for d in &g.deletions {
        if edits.iter().chain(deleted.iter()).any(|e| e.overlaps(d)) {
            continue;
        }
        let candidate: Vec<&Edit> = edits.iter().chain(deleted.iter()).chain([d]).collect();
        if let Some((b, vs)) = keeps(&candidate, &mut probes, &mut cut_short) {
            deleted.push(d.clone());
            (body, violations, steps) = (b, vs, steps + 1);
        }
        if cut_short {
            break;
        }
    }
    // The indentation outside what is already edited or deleted, in one probe.
    let taken: Vec<&Edit> = edits.iter().chain(deleted.iter()).collect();
    let indentation = Edit {
        kind: None,
        what: "the indentation between elements deleted".into(),
        pieces: g
            .blanks
            .iter()
            .filter(|r| {
                let one = Edit::one(None, String::new(), (*r).clone(), "");
                !taken.iter().any(|e| e.overlaps(&one))
            })
            .map(|r| (r.clone(), Vec::new()))
            .collect(),
    };
    if !indentation.pieces.is_empty() && !cut_short {
        let candidate: Vec<&Edit> = taken.iter().copied().chain([&indentation]).collect();
        if let Some((b, vs)) = keeps(&candidate, &mut probes, &mut cut_short) {
            deleted.push(indentation);
            (body, violations, steps) = (b, vs, steps + 1);
        }
    }
    XmlCounterExample {
        seed,
        case: index,
        generated: case.edits.iter().map(Edit::described).collect(),
        mutations: edits.iter().map(Edit::described).collect(),
        deleted: deleted.iter().map(|e| e.what.clone()).collect(),
        rule,
        violations,
        document: String::from_utf8_lossy(&body).into_owned(),
        document_bytes: body.len(),
        example_bytes: g.example.len(),
        shrink_steps: steps,
        shrink_probes: probes,
        shrink_cut_short: cut_short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::xml::XML_BUILTINS;

    fn sdk() -> (XmlValidator, &'static [u8]) {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        (v, XML_BUILTINS[0].examples[0].bytes)
    }

    #[test]
    fn every_kind_has_edits_and_every_case_is_refused_by_the_validator() {
        let (v, example) = sdk();
        let g = XmlGenerator::new(&v, example).expect("generator");
        assert_eq!(g.by_kind.len(), KINDS.len());
        assert!(!g.deletions.is_empty());
        for i in 0..100 {
            let c = g.case(7, i).expect("a case");
            assert!(v.validate_bytes(&c.body).is_err(), "{i}");
            assert!(!c.violations.is_empty() && !c.edits.is_empty() && c.edits.len() <= 3);
            assert_ne!(c.body, example);
        }
    }

    #[test]
    fn cases_are_deterministic_for_a_seed() {
        let (v, example) = sdk();
        let g = XmlGenerator::new(&v, example).expect("generator");
        let bodies = |seed| {
            (0..20)
                .map(|i| g.case(seed, i).expect("case").body)
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(1), bodies(1));
        assert_ne!(bodies(1), bodies(2));
    }

    #[test]
    fn a_compliant_iut_yields_nothing() {
        let (v, example) = sdk();
        let g = XmlGenerator::new(&v, example).expect("generator");
        let run = find_accepted_invalid(&g, 30, 3, |b| v.validate_bytes(b).is_ok());
        assert!(run.counter_example.is_none());
        assert_eq!(run.requests, 30);
    }

    #[test]
    fn an_iut_ignoring_schematron_is_shrunk_to_one_rule_breaking_edit() {
        let (v, example) = sdk();
        let g = XmlGenerator::new(&v, example).expect("generator");
        let lax = |b: &[u8]| match v.validate_bytes(b) {
            Ok(()) => true,
            Err(vs) => vs.iter().all(|x| x.schema_path.starts_with("schematron:")),
        };
        let run = find_accepted_invalid(&g, 200, 0x5eed, lax);
        let c = run.counter_example.expect("caught");
        assert_eq!(c.mutations.len(), 1, "{c:?}");
        assert!(c.rule.starts_with("schematron:"), "{c:?}");
        assert!(c.document_bytes < c.example_bytes / 2, "{c:?}");
        assert!(c.deleted.iter().any(|d| d.contains("indentation")), "{c:?}");
        // An unused namespace declaration goes; the used ones stay (the document parses).
        assert!(c.deleted.iter().any(|d| d.starts_with("xmlns:")), "{c:?}");
        assert!(c.shrink_probes <= MAX_SHRINK_PROBES && !c.shrink_cut_short);
        let vs = v
            .validate_bytes(c.document.as_bytes())
            .expect_err("still invalid");
        assert!(vs.iter().any(|x| x.schema_path == c.rule));
        assert!(lax(c.document.as_bytes()));
    }

    #[test]
    fn an_iut_accepting_xsd_errors_is_shrunk_and_the_probes_are_bounded() {
        let (v, example) = sdk();
        let g = XmlGenerator::new(&v, example).expect("generator");
        let lax = |b: &[u8]| match v.validate_bytes(b) {
            Ok(()) => true,
            Err(vs) => vs.iter().all(|x| x.schema_path.starts_with("xsd:")),
        };
        let run = find_accepted_invalid(&g, 50, 1, lax);
        let c = run.counter_example.expect("caught");
        assert!(c.rule.starts_with("xsd:"), "{c:?}");
        assert!(c.mutations.len() <= c.generated.len());
        assert!(c.document_bytes < c.example_bytes, "{c:?}");
        assert_eq!(run.requests, c.case + 1 + c.shrink_probes);
    }

    #[test]
    fn overlapping_edits_are_not_composed() {
        let a = Edit::one(None, "a".into(), 0..4, "");
        let b = Edit::one(None, "b".into(), 2..6, "x");
        let c = Edit::one(None, "c".into(), 4..4, "y");
        assert!(apply(b"0123456789", &[&a, &b]).is_none());
        assert_eq!(apply(b"0123456789", &[&a, &c]).expect("apart"), b"y456789");
    }
}
