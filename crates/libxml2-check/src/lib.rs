//! XSD and DTD validation with libxml2, the one place of provsten that calls C.
//!
//! Why libxml2: the only XSD 1.0 validator reachable from Rust that handles namespaces
//! correctly and compiles the SDK schemas (see provsten's README, "XML messages"); the
//! pure-Rust `xmlschema` crate (0.0.14) ignores namespaces. Why `xml2-sys/static`: it
//! builds libxml2 from vendored source with `cc`, so a machine with Rust alone builds it.
//!
//! Rules kept here, so the callers cannot get them wrong:
//! - every libxml2 call runs under one process-wide lock (libxml2's validation contexts
//!   and its global error and entity-loader hooks are not safe to share between threads);
//! - nothing is ever fetched: the external-entity loader answers only from the in-memory
//!   [`Catalog`] given to [`Schema::compile`], and refuses everything while an instance
//!   document is parsed (no external DTD, no external entity, no `schemaLocation`);
//! - instance documents are parsed without entity substitution and with `NONET`, unless
//!   the caller passes other [`ParseOptions`] (only the reference IUT's seeded defects do,
//!   to play a receiver configured unsafely).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::{Mutex, MutexGuard, Once};

// Linked for libxml2, which calls zlib (its vendored config enables it).
use libz_sys as _;
use xml2_sys as x;

/// One error libxml2 reported, at the node it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The XPath of the offending node (`/a/b[2]`), empty when there is no node
    /// (a parse error: see `line`).
    pub path: String,
    /// Line in the document, 0 when unknown.
    pub line: i32,
    /// libxml2's error code (`xmlParserErrors`), e.g. 1871 for an unexpected element.
    pub code: i32,
    /// libxml2's message, trimmed.
    pub message: String,
}

/// Schema documents by name, for `xs:import`/`xs:include`: a location resolves by its
/// exact text, an alias, its last path segment, or that segment percent-decoded.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    files: HashMap<String, Vec<u8>>,
    aliases: HashMap<String, String>,
}

impl Catalog {
    /// Adds a document under `name` (a file name such as `XHE-1.0.xsd`).
    pub fn add(&mut self, name: &str, text: &[u8]) {
        self.files.insert(name.to_owned(), text.to_vec());
    }

    /// Resolves the location `from` (as written, or its last segment) to the document `to`.
    pub fn alias(&mut self, from: &str, to: &str) {
        self.aliases.insert(from.to_owned(), to.to_owned());
    }

    fn find(&self, location: &str) -> Option<&[u8]> {
        let last = location.rsplit(['/', '\\']).next().unwrap_or(location);
        let decoded = percent_decode(last);
        for key in [location, last, decoded.as_str()] {
            if let Some(f) = self.files.get(key) {
                return Some(f);
            }
            if let Some(f) = self.aliases.get(key).and_then(|to| self.files.get(to)) {
                return Some(f);
            }
        }
        None
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers an external resource by URL (`None`: not available).
pub type Fetch = fn(&str) -> Option<Vec<u8>>;

/// How an instance document is parsed. The default is the safe one every check uses;
/// the other settings exist so the reference IUT can play an unsafely configured receiver.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// `XML_PARSE_NOENT`: substitute entities (internal and external) in content.
    pub substitute_entities: bool,
    /// `XML_PARSE_DTDLOAD`: load the external DTD subset a DOCTYPE names.
    pub load_dtd: bool,
    /// Answers external resources (entities, DTDs) by URL; `None` refuses them all.
    pub fetch: Option<Fetch>,
}

impl ParseOptions {
    fn flags(&self) -> c_int {
        let mut f = 0;
        if self.fetch.is_none() {
            f |= x::xmlParserOption_XML_PARSE_NONET;
        }
        if self.substitute_entities {
            f |= x::xmlParserOption_XML_PARSE_NOENT;
        }
        if self.load_dtd {
            f |= x::xmlParserOption_XML_PARSE_DTDLOAD;
        }
        f as c_int
    }
}

static LOCK: Mutex<()> = Mutex::new(());
static INIT: Once = Once::new();

thread_local! {
    // Set only while the lock is held: what the entity loader may answer with, and
    // where the error handler collects.
    static CATALOG: RefCell<Option<Catalog>> = const { RefCell::new(None) };
    static ISSUES: RefCell<Vec<Issue>> = const { RefCell::new(Vec::new()) };
    static FETCH: RefCell<Option<Fetch>> = const { RefCell::new(None) };
}

/// Holds the lock; while it lives, libxml2's hooks point here.
struct Session {
    _guard: MutexGuard<'static, ()>,
}

impl Session {
    fn start(catalog: Option<Catalog>) -> Session {
        let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        INIT.call_once(|| {
            // SAFETY: called once, under the lock, before any other libxml2 call.
            unsafe {
                x::xmlInitParser();
                x::xmlSetExternalEntityLoader(Some(loader));
            }
        });
        CATALOG.with(|c| *c.borrow_mut() = catalog);
        ISSUES.with(|i| i.borrow_mut().clear());
        // SAFETY: under the lock; the handler only touches thread-locals.
        unsafe { x::xmlSetStructuredErrorFunc(ptr::null_mut(), Some(on_error)) };
        Session { _guard: guard }
    }

    fn issues(&self) -> Vec<Issue> {
        ISSUES.with(|i| std::mem::take(&mut *i.borrow_mut()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: still under the lock (the guard drops after this body).
        unsafe { x::xmlSetStructuredErrorFunc(ptr::null_mut(), None) };
        CATALOG.with(|c| *c.borrow_mut() = None);
        FETCH.with(|f| *f.borrow_mut() = None);
    }
}

fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libxml2 hands out NUL-terminated strings that live for the callback.
    unsafe { CStr::from_ptr(p) }
        .to_string_lossy()
        .trim()
        .to_owned()
}

unsafe extern "C" fn on_error(_user: *mut c_void, err: x::xmlErrorPtr) {
    if err.is_null() {
        return;
    }
    // SAFETY: libxml2 passes a valid error for the duration of the call.
    let e = unsafe { &*err };
    if e.level < x::xmlErrorLevel_XML_ERR_ERROR {
        return; // warnings do not make a document invalid
    }
    let mut path = String::new();
    if !e.node.is_null() {
        // SAFETY: `node` is the node the error is about, alive during validation.
        let p = unsafe { x::xmlGetNodePath(e.node as x::xmlNodePtr) };
        if !p.is_null() {
            path = cstr_lossy(p as *const c_char);
            // SAFETY: xmlGetNodePath's result is the caller's to free with xmlFree.
            unsafe {
                if let Some(free) = x::xmlFree {
                    free(p as *mut c_void);
                }
            }
        }
    }
    let issue = Issue {
        path,
        line: e.line,
        code: e.code,
        message: cstr_lossy(e.message),
    };
    ISSUES.with(|i| i.borrow_mut().push(issue));
}

unsafe extern "C" fn loader(
    url: *const c_char,
    _id: *const c_char,
    ctxt: x::xmlParserCtxtPtr,
) -> x::xmlParserInputPtr {
    let url = cstr_lossy(url);
    let found = CATALOG.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|c| c.find(&url).map(<[u8]>::to_vec))
    });
    // Only a caller that asked for fetching (a seeded defect) gets anything outside the
    // catalogue.
    let found = found.or_else(|| FETCH.with(|f| *f.borrow()).and_then(|fetch| fetch(&url)));
    let Some(bytes) = found else {
        ISSUES.with(|i| {
            i.borrow_mut().push(Issue {
                path: String::new(),
                line: 0,
                code: 1549, // XML_IO_LOAD_ERROR
                message: format!("refused to load external resource `{url}`: nothing is fetched"),
            })
        });
        return ptr::null_mut();
    };
    let Ok(len) = c_int::try_from(bytes.len()) else {
        return ptr::null_mut();
    };
    // SAFETY: CreateMem copies the bytes; the input takes ownership of the buffer.
    unsafe {
        let buf = x::xmlParserInputBufferCreateMem(
            bytes.as_ptr() as *const c_char,
            len,
            x::xmlCharEncoding_XML_CHAR_ENCODING_NONE,
        );
        if buf.is_null() {
            return ptr::null_mut();
        }
        x::xmlNewIOInputStream(ctxt, buf, x::xmlCharEncoding_XML_CHAR_ENCODING_NONE)
    }
}

/// Parses an instance document with `opts` (the default: no network, no entity
/// substitution, no external DTD). Null when it is not well-formed (the issues say why).
///
/// # Safety
/// Call inside a [`Session`]; free the result with `xmlFreeDoc`.
unsafe fn parse_instance(doc: &[u8], opts: &ParseOptions) -> Result<x::xmlDocPtr, Issue> {
    let len = c_int::try_from(doc.len()).map_err(|_| Issue {
        path: String::new(),
        line: 0,
        code: 0,
        message: "document larger than 2 GiB".to_owned(),
    })?;
    let options = opts.flags();
    FETCH.with(|f| *f.borrow_mut() = opts.fetch);
    // SAFETY: pointer and length describe `doc`; libxml2 copies what it keeps.
    let d = unsafe {
        x::xmlReadMemory(
            doc.as_ptr() as *const c_char,
            len,
            c"message.xml".as_ptr(),
            ptr::null(),
            options,
        )
    };
    Ok(d)
}

fn not_well_formed(mut issues: Vec<Issue>) -> Vec<Issue> {
    if issues.is_empty() {
        issues.push(Issue {
            path: String::new(),
            line: 0,
            code: 0,
            message: "not a well-formed XML document".to_owned(),
        });
    }
    issues
}

/// A compiled XSD. Compile once, validate from any thread (calls are serialised).
pub struct Schema {
    ptr: x::xmlSchemaPtr,
}

// SAFETY: the compiled schema is immutable after xmlSchemaParse, and every use of it
// (validation, free) happens under the process-wide lock.
unsafe impl Send for Schema {}
// SAFETY: as above.
unsafe impl Sync for Schema {}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

impl Schema {
    /// Compiles the document `main` of `catalog`; its imports and includes resolve from
    /// `catalog` only. On failure, every error libxml2 gave (an unresolved import among them).
    pub fn compile(catalog: &Catalog, main: &str) -> Result<Schema, Vec<Issue>> {
        let Some(text) = catalog.files.get(main) else {
            return Err(vec![Issue {
                path: String::new(),
                line: 0,
                code: 0,
                message: format!("`{main}` is not in the schema catalogue"),
            }]);
        };
        let text = text.clone();
        let len = c_int::try_from(text.len()).unwrap_or(c_int::MAX);
        let session = Session::start(Some(catalog.clone()));
        // SAFETY: under the session's lock; contexts are freed before it ends.
        let schema = unsafe {
            let pctxt = x::xmlSchemaNewMemParserCtxt(text.as_ptr() as *const c_char, len);
            if pctxt.is_null() {
                ptr::null_mut()
            } else {
                x::xmlSchemaSetParserStructuredErrors(pctxt, Some(on_error), ptr::null_mut());
                let s = x::xmlSchemaParse(pctxt);
                x::xmlSchemaFreeParserCtxt(pctxt);
                s
            }
        };
        let issues = session.issues();
        if schema.is_null() || !issues.is_empty() {
            if !schema.is_null() {
                // SAFETY: under the lock, freed once.
                unsafe { x::xmlSchemaFree(schema) };
            }
            return Err(not_well_formed(issues));
        }
        Ok(Schema { ptr: schema })
    }

    /// Validates a raw document (as received: bytes, any declared encoding).
    pub fn validate(&self, doc: &[u8]) -> Result<(), Vec<Issue>> {
        let session = Session::start(None);
        // SAFETY: under the session's lock; the document and context are freed here,
        // and node paths are read inside the error callback while the document lives.
        let rc = unsafe {
            let d = match parse_instance(doc, &ParseOptions::default()) {
                Ok(d) => d,
                Err(e) => return Err(vec![e]),
            };
            if d.is_null() {
                return Err(not_well_formed(session.issues()));
            }
            let vctxt = x::xmlSchemaNewValidCtxt(self.ptr);
            let rc = if vctxt.is_null() {
                -1
            } else {
                x::xmlSchemaSetValidStructuredErrors(vctxt, Some(on_error), ptr::null_mut());
                let rc = x::xmlSchemaValidateDoc(vctxt, d);
                x::xmlSchemaFreeValidCtxt(vctxt);
                rc
            };
            x::xmlFreeDoc(d);
            rc
        };
        let mut issues = session.issues();
        if rc == 0 && issues.is_empty() {
            return Ok(());
        }
        if issues.is_empty() {
            issues.push(Issue {
                path: String::new(),
                line: 0,
                code: rc,
                message: format!("schema validation failed (libxml2 code {rc})"),
            });
        }
        Err(issues)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _session = Session::start(None);
        // SAFETY: under the lock; the pointer came from xmlSchemaParse and is freed once.
        unsafe { x::xmlSchemaFree(self.ptr) };
    }
}

/// Parses `doc` with `opts` and serialises what the parser made of it, without its DOCTYPE:
/// the document a receiver configured so goes on to validate (entities substituted,
/// external ones loaded, when `opts` says so). Errors when it is not well-formed.
pub fn reparse(doc: &[u8], opts: &ParseOptions) -> Result<Vec<u8>, Vec<Issue>> {
    let session = Session::start(None);
    // SAFETY: under the session's lock; the document, its DTDs and the dump buffer are
    // freed before return.
    unsafe {
        let d = match parse_instance(doc, opts) {
            Ok(d) => d,
            Err(e) => return Err(vec![e]),
        };
        if d.is_null() {
            return Err(not_well_formed(session.issues()));
        }
        for dtd in [(*d).intSubset, (*d).extSubset] {
            if !dtd.is_null() {
                x::xmlUnlinkNode(dtd as x::xmlNodePtr);
            }
        }
        let (int, ext) = ((*d).intSubset, (*d).extSubset);
        (*d).intSubset = ptr::null_mut();
        (*d).extSubset = ptr::null_mut();
        let mut mem: *mut x::xmlChar = ptr::null_mut();
        let mut len: c_int = 0;
        x::xmlDocDumpMemory(d, &mut mem, &mut len);
        let out = if mem.is_null() {
            Vec::new()
        } else {
            let bytes =
                std::slice::from_raw_parts(mem as *const u8, usize::try_from(len).unwrap_or(0))
                    .to_vec();
            if let Some(free) = x::xmlFree {
                free(mem as *mut c_void);
            }
            bytes
        };
        x::xmlFreeDoc(d);
        // Entities in the tree point into the DTDs: free them after the document.
        if !int.is_null() {
            x::xmlFreeDtd(int);
        }
        if !ext.is_null() && ext != int {
            x::xmlFreeDtd(ext);
        }
        let issues = session.issues();
        if out.is_empty() {
            return Err(not_well_formed(issues));
        }
        Ok(out)
    }
}

/// Validates a document against a DTD given in memory (the document's own DOCTYPE
/// system id is not loaded). The root element must be `root`.
pub fn validate_dtd(doc: &[u8], dtd: &[u8], root: &str) -> Result<(), Vec<Issue>> {
    let session = Session::start(None);
    let Ok(dtd_len) = c_int::try_from(dtd.len()) else {
        return Err(not_well_formed(Vec::new()));
    };
    // SAFETY: under the session's lock; everything allocated is freed before return.
    let (valid, root_ok) = unsafe {
        let d = match parse_instance(doc, &ParseOptions::default()) {
            Ok(d) => d,
            Err(e) => return Err(vec![e]),
        };
        if d.is_null() {
            return Err(not_well_formed(session.issues()));
        }
        let buf = x::xmlParserInputBufferCreateMem(
            dtd.as_ptr() as *const c_char,
            dtd_len,
            x::xmlCharEncoding_XML_CHAR_ENCODING_NONE,
        );
        let parsed = if buf.is_null() {
            ptr::null_mut()
        } else {
            x::xmlIOParseDTD(
                ptr::null_mut(),
                buf,
                x::xmlCharEncoding_XML_CHAR_ENCODING_NONE,
            )
        };
        let mut valid = false;
        let mut root_ok = false;
        if !parsed.is_null() {
            let vctxt = x::xmlNewValidCtxt();
            if !vctxt.is_null() {
                valid = x::xmlValidateDtd(vctxt, d, parsed) == 1;
                x::xmlFreeValidCtxt(vctxt);
            }
            x::xmlFreeDtd(parsed);
        }
        let r = x::xmlDocGetRootElement(d);
        if !r.is_null() && !(*r).name.is_null() {
            root_ok = cstr_lossy((*r).name as *const c_char) == root;
        }
        x::xmlFreeDoc(d);
        (valid, root_ok)
    };
    let mut issues = session.issues();
    if !root_ok {
        issues.push(Issue {
            path: "/".to_owned(),
            line: 0,
            code: 0,
            message: format!("the root element is not `{root}`"),
        });
    }
    if valid && issues.is_empty() {
        return Ok(());
    }
    if issues.is_empty() {
        issues.push(Issue {
            path: String::new(),
            line: 0,
            code: 0,
            message: "not valid against the DTD".to_owned(),
        });
    }
    Err(issues)
}

/// Takes a string libxml2 allocated (may be null), frees it.
///
/// SAFETY: `p` is null or a string from libxml2's allocator, not used afterwards.
unsafe fn take_string(p: *mut x::xmlChar) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let s = cstr_lossy(p as *const c_char);
    if let Some(free) = x::xmlFree {
        free(p as *mut c_void);
    }
    Some(s)
}

/// XPath 2.0 `fn:matches($input, $pattern)` (two arguments; flags are not supported and
/// make the call an error, so the rule is reported not evaluated): whether the pattern
/// matches anywhere in the input. A pattern the regex crate cannot compile is an error too.
unsafe extern "C" fn xpath_matches(ctxt: x::xmlXPathParserContextPtr, nargs: c_int) {
    if nargs != 2 {
        x::xmlXPathErr(ctxt, x::xmlXPathError_XPATH_INVALID_ARITY as c_int);
        return;
    }
    let pattern = take_string(x::xmlXPathPopString(ctxt));
    let input = take_string(x::xmlXPathPopString(ctxt));
    let (Some(pattern), Some(input)) = (pattern, input) else {
        x::xmlXPathErr(ctxt, x::xmlXPathError_XPATH_INVALID_TYPE as c_int);
        return;
    };
    match regex::Regex::new(&pattern) {
        Ok(re) => {
            x::valuePush(
                ctxt,
                x::xmlXPathNewBoolean(c_int::from(re.is_match(&input))),
            );
        }
        Err(_) => x::xmlXPathErr(ctxt, x::xmlXPathError_XPATH_EXPR_ERROR as c_int),
    }
}

/// The outcome of one boolean test over a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// True at every node its rule's context selected (or the context selected none).
    Held,
    /// False at these nodes: (XPath of the node, line).
    Failed(Vec<(String, i32)>),
    /// The context or the test could not be evaluated with XPath 1.0 (libxml2's error).
    NotEvaluated(String),
}

/// A rule: an XPath 1.0 expression selecting context nodes (evaluated at the document
/// node), and boolean tests evaluated at each of them.
#[derive(Debug, Clone)]
pub struct XPathRule {
    pub context: String,
    pub tests: Vec<String>,
}

/// Evaluates rules grouped in patterns, as Schematron does: within a pattern, a node is
/// handled only by the first rule whose context selects it. `namespaces` binds prefixes.
/// Besides XPath 1.0's functions, `matches(input, pattern)` of XPath 2.0 is available.
/// Returns, per pattern, per rule, per test, the outcome; `Err` if `doc` is not XML.
pub fn evaluate_rules(
    doc: &[u8],
    namespaces: &[(String, String)],
    patterns: &[Vec<XPathRule>],
) -> Result<Vec<Vec<Vec<Outcome>>>, Vec<Issue>> {
    use std::ffi::CString;
    let session = Session::start(None);
    // SAFETY: under the session's lock; the context and document are freed before
    // return, node pointers are used only while the document lives.
    unsafe {
        let d = match parse_instance(doc, &ParseOptions::default()) {
            Ok(d) => d,
            Err(e) => return Err(vec![e]),
        };
        if d.is_null() {
            return Err(not_well_formed(session.issues()));
        }
        let ctx = x::xmlXPathNewContext(d);
        if ctx.is_null() {
            x::xmlFreeDoc(d);
            return Err(not_well_formed(Vec::new()));
        }
        for (prefix, uri) in namespaces {
            if let (Ok(p), Ok(u)) = (CString::new(prefix.as_str()), CString::new(uri.as_str())) {
                x::xmlXPathRegisterNs(ctx, p.as_ptr() as *const u8, u.as_ptr() as *const u8);
            }
        }
        x::xmlXPathRegisterFunc(ctx, c"matches".as_ptr() as *const u8, Some(xpath_matches));
        let eval = |expr: &str, at: x::xmlNodePtr| -> Result<x::xmlXPathObjectPtr, String> {
            let Ok(c) = CString::new(expr) else {
                return Err("the expression contains NUL".to_owned());
            };
            session.issues();
            (*ctx).node = at;
            let obj = x::xmlXPathEvalExpression(c.as_ptr() as *const u8, ctx);
            let errors = session.issues();
            if obj.is_null() || !errors.is_empty() {
                if !obj.is_null() {
                    x::xmlXPathFreeObject(obj);
                }
                let why: Vec<String> = errors.into_iter().map(|i| i.message).collect();
                return Err(format!("`{expr}`: {}", why.join("; ")));
            }
            Ok(obj)
        };
        let mut out = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let mut handled: std::collections::HashSet<usize> = std::collections::HashSet::new();
            let mut rules_out = Vec::with_capacity(pattern.len());
            for rule in pattern {
                let nodes: Result<Vec<x::xmlNodePtr>, String> =
                    match eval(&rule.context, d as x::xmlNodePtr) {
                        Err(e) => Err(e),
                        Ok(obj) => {
                            let r = if (*obj).type_ != x::xmlXPathObjectType_XPATH_NODESET {
                                Err(format!("`{}` does not select nodes", rule.context))
                            } else {
                                let set = (*obj).nodesetval;
                                let mut v = Vec::new();
                                if !set.is_null() && !(*set).nodeTab.is_null() {
                                    for i in 0..usize::try_from((*set).nodeNr).unwrap_or(0) {
                                        v.push(*(*set).nodeTab.add(i));
                                    }
                                }
                                Ok(v)
                            };
                            x::xmlXPathFreeObject(obj);
                            r
                        }
                    };
                let nodes = match nodes {
                    Ok(n) => n,
                    Err(e) => {
                        rules_out.push(vec![Outcome::NotEvaluated(e); rule.tests.len()]);
                        continue;
                    }
                };
                // First matching rule of the pattern wins.
                let mine: Vec<x::xmlNodePtr> = nodes
                    .into_iter()
                    .filter(|n| handled.insert(*n as usize))
                    .collect();
                let mut tests_out = Vec::with_capacity(rule.tests.len());
                for test in &rule.tests {
                    let mut failed = Vec::new();
                    let mut error = None;
                    for n in &mine {
                        match eval(test, *n) {
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                            Ok(obj) => {
                                let held = x::xmlXPathCastToBoolean(obj) != 0;
                                x::xmlXPathFreeObject(obj);
                                if !held {
                                    let p = x::xmlGetNodePath(*n);
                                    let path = cstr_lossy(p as *const c_char);
                                    if !p.is_null() {
                                        if let Some(free) = x::xmlFree {
                                            free(p as *mut c_void);
                                        }
                                    }
                                    let line = i32::try_from(x::xmlGetLineNo(*n)).unwrap_or(0);
                                    failed.push((path, line));
                                }
                            }
                        }
                    }
                    tests_out.push(match error {
                        Some(e) => Outcome::NotEvaluated(e),
                        None if failed.is_empty() => Outcome::Held,
                        None => Outcome::Failed(failed),
                    });
                }
                rules_out.push(tests_out);
            }
            out.push(rules_out);
        }
        x::xmlXPathFreeContext(ctx);
        x::xmlFreeDoc(d);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XSD: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:a"
        xmlns="urn:a" elementFormDefault="qualified">
      <xs:include schemaLocation="http://example.invalid/dir/types%20a.xsd"/>
      <xs:element name="r"><xs:complexType><xs:sequence>
        <xs:element name="c" type="code"/><xs:element name="d" type="xs:int" minOccurs="0"/>
      </xs:sequence></xs:complexType></xs:element></xs:schema>"#;
    const TYPES: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:a">
      <xs:simpleType name="code"><xs:restriction base="xs:string">
        <xs:enumeration value="A"/><xs:enumeration value="B"/></xs:restriction></xs:simpleType></xs:schema>"#;

    fn schema() -> Schema {
        let mut c = Catalog::default();
        c.add("main.xsd", XSD.as_bytes());
        c.add("types-a.xsd", TYPES.as_bytes());
        c.alias("types a.xsd", "types-a.xsd");
        Schema::compile(&c, "main.xsd").expect("compiles")
    }

    #[test]
    fn namespaces_order_types_and_enumerations_are_checked_with_node_paths() {
        let s = schema();
        assert_eq!(
            s.validate(br#"<r xmlns="urn:a"><c>A</c><d>1</d></r>"#),
            Ok(())
        );
        for (doc, path) in [
            (&br#"<r xmlns="urn:b"><c>A</c></r>"#[..], "/*"),
            (br#"<r><c>A</c></r>"#, "/r"),
            (br#"<r xmlns="urn:a"><c>C</c></r>"#, "/*/*"),
            (br#"<r xmlns="urn:a"><d>1</d><c>A</c></r>"#, "/*/*"),
            (br#"<r xmlns="urn:a"><c>A</c><d>x</d></r>"#, "/*/*[2]"),
            (br#"<r xmlns="urn:a"><c>A</c><e/></r>"#, "/*/*[2]"),
        ] {
            let e = s.validate(doc).expect_err("invalid");
            assert!(
                e.iter().any(|i| i.path.starts_with(path)),
                "{}: {e:?}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn ill_formed_documents_and_undecodable_bytes_are_refused() {
        let s = schema();
        for doc in [
            &b"<r xmlns=\"urn:a\"><c>A</c>"[..],
            b"",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><r xmlns=\"urn:a\"><c>\xe4</c></r>",
        ] {
            let e = s.validate(doc).expect_err("refused");
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn external_entities_and_unmapped_imports_are_never_fetched() {
        let s = schema();
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><r xmlns="urn:a"><c>&x;</c></r>"#;
        // The entity is not substituted, so `c` holds no enumeration value.
        assert!(s.validate(xxe).is_err());
        let mut c = Catalog::default();
        c.add("main.xsd", XSD.as_bytes());
        let e = Schema::compile(&c, "main.xsd").expect_err("unresolved include");
        assert!(
            e.iter().any(|i| i.message.contains("nothing is fetched")),
            "{e:?}"
        );
    }

    #[test]
    fn reparse_substitutes_and_fetches_only_when_asked() {
        let xxe = br#"<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/secret">]><r>a&x;</r>"#;
        let safe = reparse(xxe, &ParseOptions::default()).expect("well-formed");
        let safe = String::from_utf8_lossy(&safe);
        assert!(safe.contains("&x;") && !safe.contains("DOCTYPE"), "{safe}");
        fn fetch(url: &str) -> Option<Vec<u8>> {
            (url == "http://127.0.0.1:9/secret").then(|| b"TOKEN".to_vec())
        }
        let lax = ParseOptions {
            substitute_entities: true,
            load_dtd: true,
            fetch: Some(fetch),
        };
        let got = reparse(xxe, &lax).expect("well-formed");
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.contains("<r>aTOKEN</r>") && !got.contains("DOCTYPE"),
            "{got}"
        );
        // The option is per call: the next safe parse fetches nothing again.
        let again = reparse(xxe, &ParseOptions::default()).expect("well-formed");
        assert!(!String::from_utf8_lossy(&again).contains("TOKEN"));
    }

    #[test]
    fn dtd_validation_checks_content_models_and_the_root() {
        let dtd = b"<!ELEMENT a (b)><!ELEMENT b (#PCDATA)><!ATTLIST b n NMTOKEN #REQUIRED>";
        assert_eq!(validate_dtd(b"<a><b n='x'>t</b></a>", dtd, "a"), Ok(()));
        assert!(validate_dtd(b"<a><b>t</b></a>", dtd, "a").is_err());
        assert!(validate_dtd(b"<a><b n='x y'>t</b></a>", dtd, "a").is_err());
        assert!(validate_dtd(b"<b n='x'>t</b>", dtd, "a").is_err());
    }

    #[test]
    fn rules_hold_fail_at_nodes_or_are_not_evaluated() {
        let doc = br#"<a xmlns="urn:a"><b>1</b><b>2</b><c/></a>"#;
        let ns = vec![("p".to_owned(), "urn:a".to_owned())];
        let rule = |context: &str, tests: &[&str]| XPathRule {
            context: context.to_owned(),
            tests: tests.iter().map(|t| (*t).to_owned()).collect(),
        };
        let got = evaluate_rules(
            doc,
            &ns,
            &[
                vec![
                    rule("//p:b[. = '1']", &["false()"]),
                    rule("//p:b", &[". = '1'", "exists(.)", "count(../p:b) = 2"]),
                ],
                vec![rule("//p:nothing", &["false()"])],
            ],
        )
        .expect("evaluates");
        assert_eq!(
            got[0][0],
            vec![Outcome::Failed(vec![("/*/*[1]".to_owned(), 1)])]
        );
        // The first b was handled by the first rule: only the second is checked here.
        assert_eq!(
            got[0][1][0],
            Outcome::Failed(vec![("/*/*[2]".to_owned(), 1)])
        );
        assert!(
            matches!(got[0][1][1], Outcome::NotEvaluated(_)),
            "{:?}",
            got[0][1][1]
        );
        assert_eq!(got[0][1][2], Outcome::Held);
        assert_eq!(got[1][0][0], Outcome::Held);
    }

    #[test]
    fn matches_is_xpath_2s_regex_match() {
        let doc = br#"<a><id>7bc5576a-3f87-4cf5-a0c5-277da06fcacb</id><id>3 Sept.</id></a>"#;
        let uuid = "matches(., '^[0-9a-fA-F]{8}\\-[0-9a-fA-F]{4}\\-[0-9a-fA-F]{4}\\-[0-9a-fA-F]{4}\\-[0-9a-fA-F]{12}$')";
        let rule = |tests: &[&str]| XPathRule {
            context: "//id".to_owned(),
            tests: tests.iter().map(|t| (*t).to_owned()).collect(),
        };
        let got = evaluate_rules(
            doc,
            &[],
            &[vec![rule(&[
                uuid,
                "matches(., 'Sept')",
                "matches(., '(')",
                "matches(., 'a', 'i')",
            ])]],
        )
        .expect("evaluates");
        assert_eq!(
            got[0][0][0],
            Outcome::Failed(vec![("/a/id[2]".to_owned(), 1)])
        );
        assert_eq!(
            got[0][0][1],
            Outcome::Failed(vec![("/a/id[1]".to_owned(), 1)])
        );
        assert!(
            matches!(got[0][0][2], Outcome::NotEvaluated(_)),
            "{:?}",
            got[0][0][2]
        );
        assert!(
            matches!(got[0][0][3], Outcome::NotEvaluated(_)),
            "{:?}",
            got[0][0][3]
        );
    }

    #[test]
    fn validation_from_many_threads_is_serialised() {
        let s = std::sync::Arc::new(schema());
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let ok = s.validate(br#"<r xmlns="urn:a"><c>B</c></r>"#);
                        let bad = s.validate(br#"<r xmlns="urn:a"><c>Z</c></r>"#);
                        assert!(ok.is_ok() && bad.is_err(), "thread {i}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    }
}
