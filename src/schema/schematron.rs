//! A small ISO Schematron runner over libxml2's XPath 1.0: what of the shipped rules can
//! run is run, everything else is listed as *not checked* — never counted as passed.
//!
//! The shipped rules declare `queryBinding="xslt2"` (XPath 2.0). An assertion runs only if
//! its rule context and test mean the same in XPath 1.0: no XPath 2.0 operator or
//! function, no comparison with `true()`/`false()` (a node compared with a boolean is its
//! existence in 1.0, its typed value in 2.0), no variables. Abstract patterns run through
//! their `is-a` instances, parameters substituted. Rewrites, each meaning the same in both
//! versions: `exists(path)` is `boolean(path)` for a path argument; a value comparison
//! (`eq`, `le`, …) of a number or the context string against a literal is the general one
//! (`=`, `<=`, …); `name = true()` selects the names whose value is `true` or `1` (2.0
//! compares the value, 1.0 would test existence). XPath 2.0's `matches(input, pattern)` is provided (the regex crate's
//! syntax, two arguments). An assertion the engine still cannot evaluate on the type's
//! example is moved to *not checked* when the rules are loaded.

use anyhow::{bail, Context, Result};
use libxml2_check::{evaluate_rules, Outcome, XPathRule};

use super::model::Violation;

const SCH: &str = "http://purl.oclc.org/dsdl/schematron";

/// One assertion that runs.
#[derive(Debug, Clone)]
struct Assertion {
    id: String,
    /// The XPath 1.0 test (a `report`'s test is negated).
    test: String,
    message: String,
}

#[derive(Debug, Clone)]
struct Rule {
    context: String,
    asserts: Vec<Assertion>,
}

/// Compiled Schematron: the rules that run, and those that do not, with the reason.
#[derive(Debug, Clone)]
pub(crate) struct Schematron {
    origin: String,
    namespaces: Vec<(String, String)>,
    patterns: Vec<Vec<Rule>>,
    not_checked: Vec<(String, String)>,
}

/// Why an XPath expression may not mean the same in XPath 1.0, if it may not.
fn xpath2_only(expr: &str) -> Option<String> {
    let lower = expr.to_ascii_lowercase();
    let squeezed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    for f in [
        "replace(",
        "tokenize(",
        "upper-case(",
        "lower-case(",
        "ends-with(",
        "string-join(",
        "distinct-values(",
        "empty(",
        "exists(",
        "current-date",
        "current-time",
        "format-",
        "xs:",
        "index-of(",
        "reverse(",
        "subsequence(",
        "data(",
        "abs(",
        "avg(",
        "max(",
        "min(",
        "compare(",
        "codepoints",
        "normalize-unicode(",
        "base-uri(",
        "document-uri(",
        "root(",
        "in-scope-prefixes(",
        "resolve-",
        "adjust-",
        "years-from",
        "seconds-from",
        "doc(",
        "document(",
        "current(",
    ] {
        if squeezed.contains(f) {
            return Some(format!(
                "uses the XPath 2.0 function `{}`",
                f.trim_end_matches('(')
            ));
        }
    }
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .collect();
    for op in [
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "is",
        "instance",
        "castable",
        "treat",
        "some",
        "every",
        "for",
        "if",
        "return",
        "satisfies",
        "except",
        "intersect",
        "to",
    ] {
        // Only as an operator between operands: `x eq y`, not an element named `eq`.
        let pattern = format!(" {op} ");
        if words.contains(&op) && lower.contains(&pattern) {
            return Some(format!("uses the XPath 2.0 operator `{op}`"));
        }
    }
    if squeezed.contains("=true()")
        || squeezed.contains("=false()")
        || squeezed.contains("true()=")
        || squeezed.contains("false()=")
    {
        return Some(
            "compares with a boolean (XPath 1.0 compares existence, 2.0 the typed value)".into(),
        );
    }
    // A `$` outside string literals (inside, it is a regex anchor).
    let mut quote = None;
    for c in expr.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') => return Some("uses a variable or parameter".into()),
            _ => {}
        }
    }
    None
}

/// `exists(path)` → `boolean(path)` where the argument is a path; `None` if an `exists`
/// has any other argument.
fn rewrite_exists(expr: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find("exists(") {
        let (before, after) = rest.split_at(at);
        // `not(exists(`…: fine; a longer name ending in `exists(` is not this function.
        if before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return None;
        }
        let inner = &after["exists(".len()..];
        let mut depth = 1usize;
        let mut end = None;
        for (i, c) in inner.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end?;
        let arg = inner.get(..end)?;
        let first = arg.trim_start().chars().next()?;
        if !(first.is_ascii_alphabetic() || matches!(first, '/' | '@' | '.' | '*'))
            || arg.contains(['\'', '"'])
        {
            return None;
        }
        out.push_str(before);
        out.push_str("boolean(");
        out.push_str(arg);
        out.push(')');
        rest = inner.get(end + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// `LEFT op LITERAL` with an XPath 2.0 value comparison, rewritten to the general
/// comparison where both mean the same: a number (`count(…)`, `string-length(…)`) against
/// a number with any of `eq ne lt le gt ge`, or the context node's string (`.`,
/// `normalize-space(…)`, `string(…)`) against a string literal with `eq`/`ne` (1.0's `<`
/// would compare as numbers). `None` for anything else.
fn rewrite_value_comparison(expr: &str) -> Option<String> {
    const OPS: &[(&str, &str)] = &[
        ("eq", "="),
        ("ne", "!="),
        ("lt", "<"),
        ("le", "<="),
        ("gt", ">"),
        ("ge", ">="),
    ];
    let words: Vec<&str> = expr.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| OPS.iter().any(|(op, _)| op == w))?;
    let (op, general) = OPS.iter().find(|(op, _)| *op == words[at])?;
    let left = words.get(..at)?.join(" ");
    let right = words.get(at + 1..)?.join(" ");
    let balanced_call = |s: &str, names: &[&str]| {
        names.iter().any(|n| s.starts_with(&format!("{n}(")))
            && s.ends_with(')')
            && s.matches('(').count() == s.matches(')').count()
    };
    let number = !right.is_empty() && right.chars().all(|c| c.is_ascii_digit() || c == '.');
    let string_literal = right.len() >= 2
        && ((right.starts_with('\'') && right.ends_with('\'') && right.matches('\'').count() == 2)
            || (right.starts_with('"') && right.ends_with('"') && right.matches('"').count() == 2));
    let numeric = balanced_call(&left, &["count", "string-length"]) && number;
    let textual = (left == "." || balanced_call(&left, &["normalize-space", "string"]))
        && string_literal
        && matches!(*op, "eq" | "ne");
    (numeric || textual).then(|| format!("{left} {general} {right}"))
}

/// `PATH = true()` / `PATH = false()` for a relative path of names: XPath 2.0 compares the
/// typed (or untyped, cast) value with the boolean, 1.0 the node-set's existence. Rewritten
/// to select the nodes whose value is that boolean's lexical form (`true`/`1`,
/// `false`/`0`), which is what 2.0 finds on a schema-valid document. `None` if another
/// boolean comparison remains.
fn rewrite_boolean_comparison(expr: &str) -> Option<String> {
    let mut out = expr.to_owned();
    for (literal, forms) in [("true()", ["true", "1"]), ("false()", ["false", "0"])] {
        loop {
            let squeezed_at = out
                .find(&format!("={literal}"))
                .or_else(|| out.find(&format!("= {literal}")));
            let Some(eq) = squeezed_at else { break };
            let end = eq + out.get(eq..)?.find(literal)? + literal.len();
            let before = out.get(..eq)?.trim_end();
            let start = before
                .char_indices()
                .rev()
                .take_while(|(_, c)| {
                    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '/' | '.')
                })
                .last()
                .map(|(i, _)| i)?;
            let path = before.get(start..)?;
            if path.is_empty() || path.starts_with('/') {
                return None;
            }
            let test = format!(
                "{path}[normalize-space(.)='{}' or normalize-space(.)='{}']",
                forms[0], forms[1]
            );
            out = format!("{}{test}{}", out.get(..start)?, out.get(end..)?);
        }
    }
    Some(out)
}

/// `$name` replaced by each parameter's value (longest names first, so `$path` does not
/// eat `$pathX`).
fn instantiate(text: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut out = text.to_owned();
    for (name, value) in sorted {
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// An XSLT match pattern as an XPath selecting the same nodes from the document node.
fn context_xpath(pattern: &str) -> String {
    let mut branches = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0usize);
    for (i, c) in pattern.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => depth -= 1,
            (None, '|') if depth == 0 => {
                branches.push(pattern.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    branches.push(pattern.get(start..).unwrap_or(""));
    branches
        .iter()
        .map(|b| {
            let b = b.trim();
            if b.starts_with('/') {
                b.to_owned()
            } else {
                format!("//{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    let mut s = String::new();
    for d in n.descendants() {
        if d.is_text() {
            s.push_str(d.text().unwrap_or(""));
        } else if d.is_element() && d.tag_name().name() == "name" {
            s.push_str("<name/>");
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Schematron {
    /// Loads ISO Schematron `text` (named `origin` in errors), then evaluates the runnable
    /// assertions on `example` to move those XPath 1.0 cannot evaluate to *not checked*.
    pub(crate) fn load(text: &str, origin: &str, example: &[u8]) -> Result<Schematron> {
        let doc = roxmltree::Document::parse(text)
            .with_context(|| format!("Schematron `{origin}` is not XML"))?;
        let root = doc.root_element();
        if root.tag_name().namespace() != Some(SCH) || root.tag_name().name() != "schema" {
            bail!("`{origin}` is not an ISO Schematron schema (root sch:schema)");
        }
        let binding = root
            .attribute("queryBinding")
            .unwrap_or("xslt")
            .to_ascii_lowercase();
        let xpath1 = matches!(binding.as_str(), "xslt" | "xpath" | "exslt");
        let sch = |n: &roxmltree::Node<'_, '_>, name: &str| {
            n.is_element() && n.tag_name().namespace() == Some(SCH) && n.tag_name().name() == name
        };
        let namespaces: Vec<(String, String)> = root
            .children()
            .filter(|n| sch(n, "ns"))
            .filter_map(|n| {
                Some((
                    n.attribute("prefix")?.to_owned(),
                    n.attribute("uri")?.to_owned(),
                ))
            })
            .collect();
        let mut patterns = Vec::new();
        let mut not_checked = Vec::new();
        let global_lets = root.children().any(|n| sch(&n, "let"));
        let abstracts: std::collections::HashMap<&str, roxmltree::Node<'_, '_>> = root
            .children()
            .filter(|n| sch(n, "pattern") && n.attribute("abstract") == Some("true"))
            .filter_map(|n| Some((n.attribute("id")?, n)))
            .collect();
        for (pi, p) in root.children().filter(|n| sch(n, "pattern")).enumerate() {
            let pid = p
                .attribute("id")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("pattern {}", pi + 1));
            // An abstract pattern is a template: its instances (is-a) run it.
            if p.attribute("abstract") == Some("true") {
                continue;
            }
            let params: Vec<(String, String)> = p
                .children()
                .filter(|n| sch(n, "param"))
                .filter_map(|n| {
                    Some((
                        n.attribute("name")?.to_owned(),
                        n.attribute("value")?.to_owned(),
                    ))
                })
                .collect();
            let (body, pattern_reason) = match p.attribute("is-a") {
                None => (p, None),
                Some(of) => match abstracts.get(of) {
                    Some(a) => (*a, None),
                    None => (p, Some(format!("is-a {of:?} names no abstract pattern"))),
                },
            };
            let pattern_reason = pattern_reason.or_else(|| {
                (global_lets || body.children().any(|n| sch(&n, "let")))
                    .then(|| "uses let variables".to_owned())
            });
            if let Some(why) = pattern_reason {
                not_checked.push((pid.clone(), why));
                continue;
            }
            let p = body;
            let mut rules = Vec::new();
            for r in p.children().filter(|n| sch(n, "rule")) {
                let asserts: Vec<_> = r
                    .children()
                    .filter(|n| sch(n, "assert") || sch(n, "report"))
                    .collect();
                let id_of = |_ai: usize, a: &roxmltree::Node<'_, '_>| {
                    // The assert's id, else its pattern's (which may cover several).
                    a.attribute("id").map_or_else(|| pid.clone(), str::to_owned)
                };
                let context = instantiate(r.attribute("context").unwrap_or(""), &params);
                let context = if xpath1 {
                    context
                } else {
                    rewrite_boolean_comparison(&context).unwrap_or(context)
                };
                let context = context.as_str();
                let rule_reason = if r.attribute("abstract") == Some("true")
                    || r.children().any(|n| sch(&n, "extends"))
                {
                    Some("an abstract or extending rule".to_owned())
                } else if r.children().any(|n| sch(&n, "let")) {
                    Some("uses let variables".to_owned())
                } else if xpath1 {
                    None
                } else {
                    xpath2_only(context).map(|w| format!("its rule context {w}"))
                };
                let mut kept = Vec::new();
                for (ai, a) in asserts.iter().enumerate() {
                    let id = id_of(ai, a);
                    if let Some(why) = &rule_reason {
                        not_checked.push((id, why.clone()));
                        continue;
                    }
                    let raw = instantiate(a.attribute("test").unwrap_or(""), &params);
                    let raw = raw.as_str();
                    let test = if xpath1 {
                        Some(raw.to_owned())
                    } else {
                        rewrite_exists(raw).map(|t| rewrite_value_comparison(&t).unwrap_or(t))
                    };
                    let why = match &test {
                        None => Some("uses exists() on something other than a path".to_owned()),
                        Some(t) if !xpath1 => xpath2_only(t),
                        Some(_) => None,
                    };
                    match (test, why) {
                        (Some(t), None) => {
                            let t = if sch(a, "report") {
                                format!("not({t})")
                            } else {
                                t
                            };
                            kept.push(Assertion {
                                id,
                                test: t,
                                message: instantiate(&text_of(*a), &params),
                            });
                        }
                        (_, Some(why)) => not_checked.push((id, format!("its test `{raw}` {why}"))),
                        (None, None) => not_checked.push((id, "not translatable".into())),
                    }
                }
                rules.push(Rule {
                    context: context_xpath(context),
                    asserts: kept,
                });
            }
            patterns.push(rules);
        }
        let mut s = Schematron {
            origin: origin.to_owned(),
            namespaces,
            patterns,
            not_checked,
        };
        s.drop_unevaluable(example)?;
        Ok(s)
    }

    fn queries(&self) -> Vec<Vec<XPathRule>> {
        self.patterns
            .iter()
            .map(|p| {
                p.iter()
                    .map(|r| XPathRule {
                        context: r.context.clone(),
                        tests: r.asserts.iter().map(|a| a.test.clone()).collect(),
                    })
                    .collect()
            })
            .collect()
    }

    fn drop_unevaluable(&mut self, example: &[u8]) -> Result<()> {
        let got = evaluate_rules(example, &self.namespaces, &self.queries()).map_err(|e| {
            anyhow::anyhow!(
                "Schematron `{}`: the example is not XML: {e:?}",
                self.origin
            )
        })?;
        for (p, rules) in self.patterns.iter_mut().zip(got) {
            for (r, outcomes) in p.iter_mut().zip(rules) {
                let mut keep = Vec::new();
                for (a, o) in r.asserts.drain(..).zip(outcomes) {
                    match o {
                        Outcome::NotEvaluated(why) => self
                            .not_checked
                            .push((a.id, format!("XPath 1.0 cannot evaluate it: {why}"))),
                        _ => keep.push(a),
                    }
                }
                r.asserts = keep;
            }
        }
        Ok(())
    }

    /// The assertions that run, by id (an id may cover several assertions).
    pub(crate) fn checked(&self) -> Vec<&str> {
        self.patterns
            .iter()
            .flatten()
            .flat_map(|r| r.asserts.iter().map(|a| a.id.as_str()))
            .collect()
    }

    /// The assertions that do not run, with the reason: report them as not checked.
    pub(crate) fn not_checked(&self) -> &[(String, String)] {
        &self.not_checked
    }

    /// Every failed assertion, at the XPath of its context node, rule `schematron:ID`.
    /// An assertion the engine cannot evaluate on this document is neither pass nor fail.
    pub(crate) fn validate(&self, body: &[u8]) -> Vec<Violation> {
        let Ok(got) = evaluate_rules(body, &self.namespaces, &self.queries()) else {
            return Vec::new(); // not XML: the XSD check reports it
        };
        let mut out = Vec::new();
        for (p, rules) in self.patterns.iter().zip(got) {
            for (r, outcomes) in p.iter().zip(rules) {
                for (a, o) in r.asserts.iter().zip(outcomes) {
                    if let Outcome::Failed(nodes) = o {
                        for (path, line) in nodes {
                            out.push(Violation {
                                instance_path: path,
                                schema_path: format!("schematron:{}", a.id),
                                message: format!("line {line}: {}", a.message),
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xpath2_constructs_are_recognised_and_exists_rewritten() {
        assert!(xpath2_only("matches(., '^0203:.*')").is_none());
        assert!(xpath2_only("replace(., 'a', 'b')").is_some());
        assert!(xpath2_only("matches(., '^a$')").is_none());
        assert!(xpath2_only("string-length(.) le $length").is_some());
        assert!(xpath2_only("count(tns:conversationId) eq 1").is_some());
        assert!(xpath2_only("string-length(.) le $length").is_some());
        assert!(xpath2_only("xhb:InstanceEncryptionIndicator=true()").is_some());
        assert!(xpath2_only("normalize-space(@schemeID)='iso6523-actorid-upis'").is_none());
        assert!(xpath2_only("count(cac:Status)=1").is_none());
        assert_eq!(
            rewrite_exists("not(exists(//cac:LineResponse))").as_deref(),
            Some("not(boolean(//cac:LineResponse))")
        );
        assert_eq!(rewrite_exists("exists('')"), None);
        assert_eq!(
            rewrite_value_comparison("count(tns:conversationId) eq 1").as_deref(),
            Some("count(tns:conversationId) = 1")
        );
        assert_eq!(
            rewrite_value_comparison("string-length(.) le 256").as_deref(),
            Some("string-length(.) <= 256")
        );
        assert_eq!(
            rewrite_value_comparison(". eq 'urn:a b'").as_deref(),
            Some(". = 'urn:a b'")
        );
        assert_eq!(
            rewrite_boolean_comparison("/x:P[xhb:I=true()] | /x:Q[a:b = false()]").as_deref(),
            Some("/x:P[xhb:I[normalize-space(.)='true' or normalize-space(.)='1']] | /x:Q[a:b[normalize-space(.)='false' or normalize-space(.)='0']]")
        );
        assert_eq!(rewrite_boolean_comparison("a!=true()"), None);
        // 1.0 would compare these as numbers, or as node-sets.
        assert_eq!(rewrite_value_comparison(". lt 'b'"), None);
        assert_eq!(rewrite_value_comparison("a/b eq 1"), None);
        assert_eq!(rewrite_value_comparison("count(x) eq 1 and y"), None);
        assert_eq!(
            instantiate(
                "string-length($path) le $length in $pathX",
                &[
                    ("path".into(), "tns:label".into()),
                    ("pathX".into(), "X".into()),
                    ("length".into(), "256".into()),
                ]
            ),
            "string-length(tns:label) le 256 in X"
        );
        assert_eq!(
            context_xpath("/x:XHE/a | x:b[c | d]"),
            "/x:XHE/a | //x:b[c | d]"
        );
    }
}
