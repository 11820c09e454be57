//! XML attacks a receiver must survive without processing them (SDK-SPEC): each is the
//! valid example message with one hostile construct added, so that a receiver which
//! processed the construct would find an otherwise valid message. The URLs and the file
//! they name belong to the harness's canary ([`Bait`]): fetching or reading them is the
//! evidence. The unit tests show each attack is one (well-formed, expanding, fetching).

use std::fmt;
use std::str::FromStr;

use super::Limits;

/// Generates `XmlAttack`, `ALL`, `name` and `what` from one table.
macro_rules! attacks {
    ($($variant:ident, $name:literal, $what:literal;)*) => {
        /// One XML attack (`the client sends an XML message with the attack "NAME"`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        #[serde(into = "&'static str")]
        pub(crate) enum XmlAttack {
            $(#[doc = $what] $variant,)*
        }

        /// Every attack, in table order.
        pub(crate) const ALL: &[XmlAttack] = &[$(XmlAttack::$variant,)*];

        impl XmlAttack {
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(XmlAttack::$variant => $name,)*
                }
            }

            pub(crate) fn what(self) -> &'static str {
                match self {
                    $(XmlAttack::$variant => $what,)*
                }
            }
        }
    };
}

attacks! {
    XxeFile, "xxe-file", "an external entity reading the canary file (file://) into a free-text element";
    XxeHttp, "xxe-http", "an external entity fetched from the canary over HTTP into a free-text element";
    ParameterEntity, "parameter-entity", "an external parameter entity fetched from the canary, declaring the entity the message uses";
    BillionLaughs, "billion-laughs", "ten nested entities, each ten of the one below: 3 GB from under 1 KB";
    QuadraticBlowup, "quadratic-blowup", "one 60 kB entity referenced 10,000 times: 600 MB from 170 kB";
    ExternalDtd, "external-dtd", "a DOCTYPE naming an external DTD on the canary";
    SchemaLocation, "schema-location", "an xsi:schemaLocation hint naming a schema on the canary (valid XML: a hint the receiver must not follow)";
    OversizedText, "oversized-text", "a free-text value one byte past the body limit";
    OversizedAttribute, "oversized-attribute", "an attribute value one byte past the body limit";
    DeepNesting, "deep-nesting", "50,000 nested elements inside a free-text element";
}

impl From<XmlAttack> for &'static str {
    fn from(a: XmlAttack) -> &'static str {
        a.name()
    }
}

impl fmt::Display for XmlAttack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for XmlAttack {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter().copied().find(|a| a.name() == s).ok_or_else(|| {
            let all: Vec<_> = ALL.iter().map(|a| a.name()).collect();
            format!("unknown XML attack {s:?} (known: {})", all.join(", "))
        })
    }
}

/// What the canary offers: its base URL (`http://127.0.0.1:PORT`), a file only it wrote,
/// and the token in that file and in everything it serves.
#[derive(Debug, Clone)]
pub(crate) struct Bait {
    pub base_url: String,
    pub file: std::path::PathBuf,
    pub token: String,
}

impl Bait {
    /// What the canary answers at `path`: a DTD declaring the entity `provsten` as the
    /// token for `.dtd` paths, the token for any other.
    pub(crate) fn serves(&self, path: &str) -> String {
        if path.ends_with(".dtd") {
            format!("<!ENTITY provsten \"{}\">", self.token)
        } else {
            self.token.clone()
        }
    }
}

/// One attack message.
#[derive(Debug, Clone)]
pub(crate) struct Attack {
    pub body: Vec<u8>,
    /// Text that shows the attack was processed if the answer carries it.
    pub secrets: Vec<String>,
    /// Whether a compliant receiver must refuse it (all but the `schemaLocation` hint,
    /// which leaves the message valid).
    pub must_refuse: bool,
}

const ENTITY_VALUE: &str = "provstenQB";

/// The attack `a` made from `example` (a valid message, as text).
pub(crate) fn build(
    a: XmlAttack,
    example: &[u8],
    bait: &Bait,
    limits: &Limits,
) -> Result<Attack, String> {
    let text = std::str::from_utf8(example).map_err(|_| "the example is not UTF-8".to_owned())?;
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("the example: {e}"))?;
    let root = doc.root_element();
    let root_range = root.range();
    let root_qname = text
        .get(root_range.start + 1..)
        .and_then(|t| {
            t.split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()
        })
        .ok_or("the example has no root element")?
        .to_owned();
    // Where a hostile value can go and leave the message valid: the last element of free
    // text (text with a space and no child elements). Last: in a message the body comes
    // after the headers, whose labels and titles have length limits (the SDK message's
    // subject at most 256 characters) that would refuse an expansion for its length.
    let free = doc
        .descendants()
        .filter(|n| n.is_element() && !n.children().any(|c| c.is_element()))
        .filter_map(|n| {
            let t = n.children().find(|c| c.is_text())?;
            t.text()?.trim().contains(' ').then(|| t.range().end)
        })
        .next_back()
        .ok_or("the example has no free-text element")?;
    let insert = |at: usize, what: &str| -> Result<String, String> {
        let (a, b) = (text.get(..at), text.get(at..));
        match (a, b) {
            (Some(a), Some(b)) => Ok(format!("{a}{what}{b}")),
            _ => Err("the example's text has no boundary there".to_owned()),
        }
    };
    // The DOCTYPE goes right before the root element (after any XML declaration).
    let with_doctype = |subset: &str, entity_ref: &str| -> Result<String, String> {
        let body = insert(free, entity_ref)?;
        let decl = format!("<!DOCTYPE {root_qname} {subset}>\n");
        let (a, b) = (body.get(..root_range.start), body.get(root_range.start..));
        match (a, b) {
            (Some(a), Some(b)) => Ok(format!("{a}{decl}{b}")),
            _ => Err("the example's root has no boundary".to_owned()),
        }
    };
    let base = bait.base_url.trim_end_matches('/');
    let token = vec![bait.token.clone()];
    let refused = |body: String, secrets: Vec<String>| Attack {
        body: body.into_bytes(),
        secrets,
        must_refuse: true,
    };
    Ok(match a {
        XmlAttack::XxeFile => refused(
            with_doctype(
                &format!(
                    "[<!ENTITY provsten SYSTEM \"file://{}\">]",
                    bait.file.display()
                ),
                "&provsten;",
            )?,
            token,
        ),
        XmlAttack::XxeHttp => refused(
            with_doctype(
                &format!("[<!ENTITY provsten SYSTEM \"{base}/xxe\">]"),
                "&provsten;",
            )?,
            token,
        ),
        XmlAttack::ParameterEntity => refused(
            with_doctype(
                &format!("[<!ENTITY % remote SYSTEM \"{base}/parameter.dtd\"> %remote;]"),
                "&provsten;",
            )?,
            token,
        ),
        XmlAttack::BillionLaughs => {
            let mut subset = String::from("[<!ENTITY lol0 \"lol\">");
            for i in 1..=9 {
                subset.push_str(&format!(
                    "<!ENTITY lol{i} \"{}\">",
                    format!("&lol{};", i - 1).repeat(10)
                ));
            }
            subset.push(']');
            refused(with_doctype(&subset, "&lol9;")?, vec!["lol".repeat(5)])
        }
        XmlAttack::QuadraticBlowup => {
            let value = ENTITY_VALUE.repeat(6_000);
            let subset = format!("[<!ENTITY provsten \"{value}\">]");
            // The value occurs once in the body: twice in a row only if expanded.
            refused(
                with_doctype(&subset, &"&provsten;".repeat(10_000))?,
                vec![value.repeat(2)],
            )
        }
        XmlAttack::ExternalDtd => refused(
            with_doctype(&format!("SYSTEM \"{base}/external.dtd\""), "")?,
            token,
        ),
        XmlAttack::SchemaLocation => {
            let ns = root.tag_name().namespace().unwrap_or("");
            let at = root_range.start + 1 + root_qname.len();
            let attr = format!(
                " xmlns:provsten-xsi=\"http://www.w3.org/2001/XMLSchema-instance\" provsten-xsi:schemaLocation=\"{ns} {base}/schema.xsd\""
            );
            Attack {
                body: insert(at, &attr)?.into_bytes(),
                secrets: token,
                must_refuse: false,
            }
        }
        XmlAttack::OversizedText => {
            let pad = (limits.max_body_bytes + 1).saturating_sub(text.len());
            refused(insert(free, &"A".repeat(pad))?, Vec::new())
        }
        XmlAttack::OversizedAttribute => {
            let value = doc
                .descendants()
                .flat_map(|n| n.attributes())
                .find(|at| !at.value().is_empty() && at.namespace().is_none())
                .map(|at| at.range_value())
                .ok_or("the example has no attribute")?;
            let pad = (limits.max_body_bytes + 1).saturating_sub(text.len());
            refused(insert(value.end, &"A".repeat(pad))?, Vec::new())
        }
        XmlAttack::DeepNesting => {
            let n = 50_000;
            refused(
                insert(free, &format!("{}{}", "<d>".repeat(n), "</d>".repeat(n)))?,
                Vec::new(),
            )
        }
    })
}

/// A document's internal entities expanded as a naive parser does, up to `cap` bytes of
/// expansion (then the remaining references are dropped): what the `expands-entities`
/// defect validates, and how the tests show an entity attack expands.
#[derive(Debug)]
pub(crate) struct Expanded {
    /// The document without its DOCTYPE, references to declared entities replaced.
    pub text: String,
    /// What the full expansion of the references would have added, in bytes (the tests
    /// read it: it shows an attack is one).
    #[cfg_attr(not(test), allow(dead_code))]
    pub full_len: u128,
    #[cfg_attr(not(test), allow(dead_code))]
    pub capped: bool,
}

/// `None` when the document has no internal subset declaring general entities.
pub(crate) fn naive_expand(text: &str, cap: usize) -> Option<Expanded> {
    let start = text.find("<!DOCTYPE")?;
    let open = start + text.get(start..)?.find('[')?;
    let close = open + text.get(open..)?.find("]>")?;
    let subset = text.get(open + 1..close)?;
    let mut entities = std::collections::HashMap::new();
    let mut rest = subset;
    while let Some(i) = rest.find("<!ENTITY ") {
        rest = rest.get(i + 9..)?;
        let name: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        let after = rest.get(name.len()..)?.trim_start();
        if name == "%" || !after.starts_with('"') {
            continue; // parameter or external entities: not expanded here
        }
        let value = after.get(1..)?.split('"').next()?;
        entities.insert(name, value.to_owned());
    }
    if entities.is_empty() {
        return None;
    }
    let body = format!("{}{}", text.get(..start)?, text.get(close + 2..)?);
    fn len_of(
        name: &str,
        e: &std::collections::HashMap<String, String>,
        memo: &mut std::collections::HashMap<String, u128>,
        depth: u32,
    ) -> u128 {
        if let Some(l) = memo.get(name) {
            return *l;
        }
        let Some(v) = e.get(name).filter(|_| depth < 32) else {
            return 0;
        };
        let mut total: u128 = 0;
        let mut s = v.as_str();
        while let Some(i) = s.find('&') {
            total = total.saturating_add(i as u128);
            let tail = s.get(i + 1..).unwrap_or("");
            let Some(j) = tail.find(';') else {
                break;
            };
            total = total.saturating_add(len_of(tail.get(..j).unwrap_or(""), e, memo, depth + 1));
            s = tail.get(j + 1..).unwrap_or("");
        }
        total = total.saturating_add(s.len() as u128);
        memo.insert(name.to_owned(), total);
        total
    }
    fn expand(
        s: &str,
        e: &std::collections::HashMap<String, String>,
        out: &mut String,
        budget: &mut usize,
        depth: u32,
    ) {
        let mut s = s;
        while let Some(i) = s.find('&') {
            push_capped(out, s.get(..i).unwrap_or(""), budget, depth);
            let tail = s.get(i + 1..).unwrap_or("");
            let j = tail.find(';').unwrap_or(0);
            let name = tail.get(..j).unwrap_or("");
            match e.get(name) {
                Some(v) if depth < 32 && *budget > 0 => expand(v, e, out, budget, depth + 1),
                Some(_) => {}
                None => out.push_str(s.get(i..i + 2 + j).unwrap_or("")),
            }
            s = tail.get(j + 1..).unwrap_or("");
        }
        push_capped(out, s, budget, depth);
    }
    // Markup outside entities is kept whole; only expanded text counts against the cap.
    fn push_capped(out: &mut String, s: &str, budget: &mut usize, depth: u32) {
        if depth == 0 {
            out.push_str(s);
            return;
        }
        let take = s
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take_while(|end| *end <= *budget)
            .last()
            .unwrap_or(0);
        out.push_str(s.get(..take).unwrap_or(""));
        *budget = budget.saturating_sub(take);
    }
    let mut memo = std::collections::HashMap::new();
    let mut full_len: u128 = 0;
    let mut s = body.as_str();
    while let Some(i) = s.find('&') {
        let tail = s.get(i + 1..).unwrap_or("");
        let Some(j) = tail.find(';') else { break };
        full_len =
            full_len.saturating_add(len_of(tail.get(..j).unwrap_or(""), &entities, &mut memo, 0));
        s = tail.get(j + 1..).unwrap_or("");
    }
    let mut out = String::with_capacity(body.len());
    let mut budget = cap;
    expand(&body, &entities, &mut out, &mut budget, 0);
    Some(Expanded {
        text: out,
        full_len,
        capped: full_len > cap as u128,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::xml::{XmlValidator, XML_BUILTINS};
    use crate::schema::MessageValidator;
    use libxml2_check::{reparse, ParseOptions};

    fn bait() -> Bait {
        Bait {
            base_url: "http://127.0.0.1:9".into(),
            file: "/nonexistent/provsten-canary.txt".into(),
            token: "provsten-canary-0123".into(),
        }
    }

    fn example() -> &'static [u8] {
        XML_BUILTINS[0].examples[0].bytes
    }

    fn lax_fetch(url: &str) -> Option<Vec<u8>> {
        let b = bait();
        if url == format!("file://{}", b.file.display()) {
            return Some(b.token.into_bytes());
        }
        let path = url.strip_prefix(&b.base_url)?;
        Some(b.serves(path).into_bytes())
    }

    const LAX: ParseOptions = ParseOptions {
        substitute_entities: true,
        load_dtd: true,
        fetch: Some(lax_fetch),
    };

    #[test]
    fn entity_attacks_are_well_formed_and_a_resolving_parser_gets_a_valid_message() {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        for a in [
            XmlAttack::XxeFile,
            XmlAttack::XxeHttp,
            XmlAttack::ParameterEntity,
        ] {
            let attack = build(a, example(), &bait(), &Limits::default()).expect("built");
            // Well-formed for a parser that neither substitutes nor fetches (libxml2 calls
            // the entity a parameter entity declares undefined when it did not load it)…
            let safe = reparse(&attack.body, &ParseOptions::default());
            assert!(
                safe.is_ok() || a == XmlAttack::ParameterEntity,
                "{a}: {safe:?}"
            );
            // …and, resolved, the canary's token sits in an otherwise valid message.
            let resolved = reparse(&attack.body, &LAX).expect("resolves");
            let text = String::from_utf8_lossy(&resolved);
            assert!(
                text.contains("En rubrik") && text.contains(&bait().token),
                "{a}"
            );
            assert_eq!(v.validate_bytes(&resolved), Ok(()), "{a}");
        }
    }

    #[test]
    fn expansion_attacks_are_small_and_expand_enormously() {
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        for (a, at_least) in [
            (XmlAttack::BillionLaughs, 3_000_000_000u128),
            (XmlAttack::QuadraticBlowup, 600_000_000),
        ] {
            let attack = build(a, example(), &bait(), &Limits::default()).expect("built");
            assert!(attack.body.len() < 200_000, "{a}: {}", attack.body.len());
            let text = std::str::from_utf8(&attack.body).expect("utf-8");
            assert!(!attack.secrets.iter().any(|s| text.contains(s)), "{a}");
            let e = naive_expand(text, 1 << 20).expect("has entities");
            assert!(e.full_len >= at_least && e.capped, "{a}: {}", e.full_len);
            assert!(e.text.contains(&attack.secrets[0]), "{a}");
            // Capped, the expansion is a valid message: a naive receiver accepts it.
            assert_eq!(v.validate_bytes(e.text.as_bytes()), Ok(()), "{a}");
            // libxml2's own defence recognises the amplification when substituting.
            let e = reparse(&attack.body, &LAX).expect_err("amplification refused");
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn the_external_dtd_is_fetched_by_a_dtd_loading_parser_and_the_hint_is_valid() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static FETCHED: AtomicUsize = AtomicUsize::new(0);
        fn counting(url: &str) -> Option<Vec<u8>> {
            FETCHED.fetch_add(1, Ordering::SeqCst);
            lax_fetch(url)
        }
        let attack = build(
            XmlAttack::ExternalDtd,
            example(),
            &bait(),
            &Limits::default(),
        )
        .expect("built");
        let dtd_loading = ParseOptions {
            load_dtd: true,
            fetch: Some(counting),
            ..ParseOptions::default()
        };
        reparse(&attack.body, &dtd_loading).expect("well-formed");
        assert_eq!(FETCHED.load(Ordering::SeqCst), 1);
        let v = XmlValidator::builtin("sdk/meddelande").expect("compiles");
        let hint = build(
            XmlAttack::SchemaLocation,
            example(),
            &bait(),
            &Limits::default(),
        )
        .expect("built");
        assert!(!hint.must_refuse);
        assert_eq!(v.validate_bytes(&hint.body), Ok(()));
        assert!(String::from_utf8_lossy(&hint.body).contains("http://127.0.0.1:9/schema.xsd"));
    }

    #[test]
    fn size_and_depth_attacks_exceed_the_limits() {
        let limits = Limits::default();
        for a in [XmlAttack::OversizedText, XmlAttack::OversizedAttribute] {
            let attack = build(a, example(), &bait(), &limits).expect("built");
            assert_eq!(attack.body.len(), limits.max_body_bytes + 1, "{a}");
            roxmltree::Document::parse(std::str::from_utf8(&attack.body).expect("utf-8"))
                .expect("well-formed");
        }
        let deep = build(XmlAttack::DeepNesting, example(), &bait(), &limits).expect("built");
        assert!(deep.body.len() < limits.max_body_bytes);
        // libxml2 refuses the depth itself (its default limit is 256 levels).
        assert!(reparse(&deep.body, &ParseOptions::default()).is_err());
    }

    #[test]
    fn names_round_trip() {
        for a in ALL {
            assert_eq!(a.name().parse::<XmlAttack>(), Ok(*a));
        }
        assert!("xxe".parse::<XmlAttack>().is_err());
    }
}
