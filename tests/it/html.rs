//! `report.html` in a real browser: headless Chromium renders what a run wrote. The DOM
//! shows the verdict, the requirement matrix and the failing evidence; the page asks the
//! network for nothing; timeline evidence draws as charts.
//!
//! Needs Debian's `chromium` (or `PROVSTEN_CHROMIUM=/path`); without one these tests fail,
//! unless `PROVSTEN_SKIP_CHROMIUM=1`. With `PROVSTEN_SCREENSHOTS=1` the screenshots of a
//! compliant and a failing report are kept as `/tmp/report-{compliant,failing}.png`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::util::{provsten, shared_run, REPORT_FILES};

/// Chromium starts in about a second here; a minute means it hangs.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Flags for a headless, quiet, throwaway browser. `--host-resolver-rules` keeps the
/// browser's own background requests (time sync, updater: Chromium 156 makes them despite
/// `--disable-background-networking`) from leaving the machine; the net log still records
/// every request, resolvable or not.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
];

/// A child in its own process group, killed with the whole group on drop: Chromium forks
/// zygote, renderer and utility processes that must not outlive a failed assertion.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // ESRCH when everything already exited: nothing to do.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished child printed.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` to completion or `TIMEOUT`, stdout and stderr to files in `scratch`
/// (a pipe would fill up and stall `--dump-dom` while nobody reads it).
fn run_to_end(mut command: Command, scratch: &Path, what: &str) -> Finished {
    let (out_path, err_path) = (scratch.join("stdout"), scratch.join("stderr"));
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .process_group(0);
    let mut child = Group(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}")),
    );
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what} did not finish within {TIMEOUT:?}; stderr:\n{}",
                stderr_tail(&fs::read_to_string(&err_path).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(child); // whatever the leader left running in its group
    Finished {
        status,
        stdout: fs::read_to_string(&out_path).unwrap(),
        stderr: fs::read_to_string(&err_path).unwrap(),
    }
}

/// The last lines of Chromium's stderr, without its D-Bus complaints (no bus in CI).
fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("dbus")).collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `chromium` from `PROVSTEN_CHROMIUM` or `PATH`; `None` (and a note) only when it is
/// missing and `PROVSTEN_SKIP_CHROMIUM=1`.
fn chromium() -> Option<PathBuf> {
    let found = match std::env::var_os("PROVSTEN_CHROMIUM") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromium"))
                .find(|p| p.is_file())
        }),
    };
    if found.is_none() {
        if std::env::var_os("PROVSTEN_SKIP_CHROMIUM").is_some_and(|v| v == "1") {
            eprintln!("skipped: no chromium (PROVSTEN_SKIP_CHROMIUM=1)");
            return None;
        }
        panic!(
            "no chromium: these tests render report.html in headless Chromium. Install it \
             (`apt-get install chromium`), point PROVSTEN_CHROMIUM at the binary, or set \
             PROVSTEN_SKIP_CHROMIUM=1 to skip them"
        );
    }
    found
}

/// Runs headless Chromium on the file `page` with `extra` flags in a fresh profile and
/// returns its stdout.
fn browse(chromium: &Path, page: &Path, extra: &[OsString]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let profile = scratch.path().join("profile");
    let mut command = Command::new(chromium);
    command
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(file_url(page));
    let done = run_to_end(command, scratch.path(), "chromium");
    assert!(
        done.status.success(),
        "chromium {extra:?} {} exited {}; stderr:\n{}",
        page.display(),
        done.status,
        stderr_tail(&done.stderr)
    );
    done.stdout
}

/// The DOM Chromium built from `page`, serialised.
fn dump_dom(chromium: &Path, page: &Path) -> String {
    let dom = browse(chromium, page, &["--dump-dom".into()]);
    assert!(dom.contains("</html>"), "no DOM dumped: {dom:.200}");
    dom
}

/// Renders `page` as a 1280×2000 screenshot while logging the network, and returns the
/// URLs the page requested and the PNG.
fn screenshot_with_net_log(chromium: &Path, page: &Path) -> (Vec<String>, Vec<u8>) {
    let scratch = tempfile::tempdir().unwrap();
    let (log, png) = (
        scratch.path().join("net-log.json"),
        scratch.path().join("page.png"),
    );
    let mut flags: Vec<OsString> = vec![
        "--net-log-capture-mode=Default".into(),
        "--window-size=1280,2000".into(),
    ];
    let mut flag = |name: &str, path: &Path| {
        let mut f = OsString::from(name);
        f.push(path);
        flags.push(f)
    };
    flag("--log-net-log=", &log);
    flag("--screenshot=", &png);
    browse(chromium, page, &flags);
    let log = fs::read_to_string(&log).expect("chromium wrote no net log");
    (
        page_requests(&log),
        fs::read(&png).expect("chromium wrote no screenshot"),
    )
}

/// The URLs the page itself asked Chromium's network stack for, from a net log
/// (`--log-net-log`: `{"constants": {"logEventTypes": {NAME: id, …}, …}, "events": [{"type":
/// id, "params": {…}}, …]}`).
///
/// Each URL request logs one `URL_REQUEST_START_JOB` with `url`, `initiator` and
/// `network_isolation_key`. Chromium 156 also fetches things for itself (time sync,
/// account and update checks); those have initiator `not an origin` and a key that is not
/// the page's. A request is the page's when its initiator is the page's origin (`null`,
/// the opaque origin of `file://` pages) or a `file:` origin, or its key names the `file://`
/// site. `file:` and `data:` loads never reach the network stack, so a page that fetches
/// nothing leaves nothing here; [`net_log_catches_a_page_that_fetches`] checks that a page
/// that does fetch is caught.
fn page_requests(net_log: &str) -> Vec<String> {
    let log: Value = serde_json::from_str(net_log).unwrap_or_else(|e| {
        panic!("the net log is not JSON ({e}): did Chromium change its format or not finish?")
    });
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("net log constants name the URL_REQUEST_START_JOB event type");
    log["events"]
        .as_array()
        .expect("net log has an events array")
        .iter()
        .filter(|event| event["type"].as_u64() == Some(start_job))
        .map(|event| &event["params"])
        .filter(|params| {
            let initiator = params["initiator"].as_str().unwrap_or_default();
            let key = params["network_isolation_key"].as_str().unwrap_or_default();
            initiator == "null" || initiator.starts_with("file:") || key.contains("file://")
        })
        .map(|params| params["url"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Requests that would leave the machine: anything not `file:`, `data:` or `about:`.
fn remote(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|url| {
            !["file:", "data:", "about:"]
                .iter()
                .any(|s| url.starts_with(s))
        })
        .collect()
}

/// The static half of "no network": the page references nothing a browser could fetch,
/// including what a render does not load (print styles, a hover image, lazy content). No
/// scripts, stylesheet links, `@import` or `url(`; no `src` at all; every `href` an
/// in-page fragment.
fn assert_no_remote_references(html: &str) {
    for banned in [
        "<script", "<link", "@import", "url(", " src=", "<iframe", "<object",
    ] {
        assert!(
            !html.contains(banned),
            "report.html contains {banned:?}, which could load something"
        );
    }
    for value in html.split(" href=\"").skip(1) {
        let value = &value[..value.find('"').unwrap_or(value.len())];
        assert!(value.starts_with('#'), "href=\"{value}\" is not in-page");
    }
}

/// The PNG is a real 1280×2000 screenshot with content: a blank page of that size
/// compresses to about 12 KB, the report to several hundred.
fn assert_screenshot(png: &[u8], what: &str) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{what}: not a PNG");
    let dimension = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!(
        (dimension(16), dimension(20)),
        (1280, 2000),
        "{what}: IHDR size"
    );
    assert!(
        png.len() > 100 * 1024,
        "{what}: screenshot is {} bytes: a blank page?",
        png.len()
    );
}

fn keep_screenshot(png: &[u8], name: &str) {
    if std::env::var_os("PROVSTEN_SCREENSHOTS").is_some_and(|v| v == "1") {
        let path = Path::new("/tmp").join(name);
        fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

fn file_url(path: &Path) -> String {
    let path = path.canonicalize().unwrap();
    let mut url = String::from("file://");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(char::from(*byte))
            }
            _ => url.push_str(&format!("%{byte:02X}")),
        }
    }
    url
}

/// The `<tag …id="id"…>…</tag>` element of `dom`, up to its first closing tag (enough
/// for table rows and articles, which do not nest).
fn element<'a>(dom: &'a str, tag: &str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<{tag} id=\"{id}\""))
        .or_else(|| {
            let at = dom.find(&format!(" id=\"{id}\""))?;
            dom[..at].rfind(&format!("<{tag} "))
        })
        .unwrap_or_else(|| panic!("no <{tag} id=\"{id}\"> in the DOM"));
    let end = dom[start..]
        .find(&format!("</{tag}>"))
        .unwrap_or_else(|| panic!("<{tag} id=\"{id}\"> does not close"));
    &dom[start..start + end]
}

/// Text as Chromium serialises it in element content.
fn as_dom_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

#[test]
fn failing_report_shows_verdict_matrix_and_evidence_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let (r, out) = shared_run(&["--defect", "accept-expired-cert"]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let dom = dump_dom(&chromium, &out.join("report.html"));

    assert!(dom.contains("<span class=\"badge v-fail\">NON-COMPLIANT</span>"));
    let mtls = element(&dom, "tr", "req-EB-MTLS-1");
    assert!(
        mtls.contains("<span class=\"pill v-fail\">FAIL</span>"),
        "{mtls}"
    );
    let tls = element(&dom, "tr", "req-EB-TLS-1");
    assert!(
        tls.contains("<span class=\"pill v-pass\">PASS</span>"),
        "{tls}"
    );

    let failed = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "failed")
        .expect("a failed scenario");
    let key = failed["key"].as_str().unwrap();
    let article = element(&dom, "article", key);
    assert!(article.starts_with("<article class=\"scenario failed\""));
    assert!(
        mtls.contains(&format!("href=\"#{key}\"")),
        "matrix links {key}"
    );
    let message = failed["message"].as_str().unwrap();
    assert!(article.contains(&as_dom_text(message)), "{article}");
    let summary = failed["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["summary"].as_str())
        .expect("evidence with a summary");
    assert!(article.contains(&as_dom_text(summary)), "{article}");
    assert!(article.contains("\"client_certificate\": \"client-expired\""));
}

#[test]
fn report_page_makes_no_network_request() {
    let Some(chromium) = chromium() else { return };
    for (args, code, name) in [
        (&[][..], 0, "report-compliant.png"),
        (
            &["--defect", "accept-expired-cert"][..],
            1,
            "report-failing.png",
        ),
    ] {
        let (r, out) = shared_run(args);
        assert_eq!(r.code(), code, "{}", r.explain());
        let page = out.join("report.html");
        assert_no_remote_references(&fs::read_to_string(&page).unwrap());
        let (requests, png) = screenshot_with_net_log(&chromium, &page);
        assert!(
            remote(&requests).is_empty(),
            "report.html ({name}) asked the network for {requests:?}"
        );
        assert_screenshot(&png, name);
        keep_screenshot(&png, name);
    }
}

/// The control for [`page_requests`]: were Chromium's log format to drift, the check
/// above would pass vacuously; this page fetches, and must be caught.
#[test]
fn net_log_catches_a_page_that_fetches() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("fetches.html");
    // Port 9 is on Chromium's blocked-port list: the request is logged, then refused
    // before any connection is made.
    fs::write(
        &page,
        "<!DOCTYPE html><html><head><link rel=\"stylesheet\" \
         href=\"http://127.0.0.1:9/provsten-control.css\"></head><body><p>control</p>\
         <img src=\"http://127.0.0.1:9/provsten-control.png\" alt=\"\"></body></html>",
    )
    .unwrap();
    let (requests, _) = screenshot_with_net_log(&chromium, &page);
    let remote = remote(&requests);
    for url in [
        "http://127.0.0.1:9/provsten-control.css",
        "http://127.0.0.1:9/provsten-control.png",
    ] {
        assert!(
            remote.iter().any(|u| *u == url),
            "{url} not caught: {requests:?}"
        );
    }
}

#[test]
fn timeline_evidence_renders_as_svg_charts_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = shared_run(&["--defect", "accept-expired-cert"]);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let mut report = r.report().clone();
    let scenario = report["scenarios"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["status"] == "failed")
        .expect("a failed scenario");
    let key = scenario["key"].as_str().unwrap().to_owned();
    let evidence = scenario["evidence"].as_array_mut().unwrap();
    evidence.push(json!({"resend_timeline": {
        "message_id": "n-1",
        "attempts": [
            {"at_ms": 0, "outcome": "503", "accepted": false},
            {"at_ms": 2_100, "outcome": "reset", "accepted": false},
            {"at_ms": 7_900, "outcome": "timeout", "accepted": false},
            {"at_ms": 14_200, "outcome": "200", "accepted": true},
        ],
        "expected_ms": [0, 2_000, 6_000, 14_000],
        "tolerance_ms": 500,
    }}));
    evidence.push(json!({"exercise_timeline": {
        "duration_ms": 120_000,
        "phases": [
            {"name": "normal", "start_ms": 0, "end_ms": 30_000, "outage": false},
            {"name": "primary down", "start_ms": 30_000, "end_ms": 75_000, "outage": true},
            {"name": "failback", "start_ms": 75_000, "end_ms": 120_000, "outage": false},
        ],
        "routes": [
            {"route": "primary", "bucket_ms": 10_000,
             "delivered": [12, 11, 12, 0, 0, 0, 0, 0, 9, 12, 11, 12]},
            {"route": "fallback", "bucket_ms": 10_000,
             "delivered": [0, 0, 0, 6, 11, 12, 12, 11, 3, 0, 0, 0]},
        ],
    }}));
    let observations = evidence.len();
    let input = dir.path().join("with-timelines.json");
    fs::write(&input, serde_json::to_string_pretty(&report).unwrap()).unwrap();

    let out = dir.path().join("rendered");
    let mut render = provsten();
    render
        .arg("report")
        .arg("render")
        .arg(&input)
        .arg("--out")
        .arg(&out);
    let scratch = tempfile::tempdir().unwrap();
    let done = run_to_end(render, scratch.path(), "provsten report render");
    // It exits with the report's verdict, as `run` does; 2 would be a failure to render.
    assert!(
        matches!(done.status.code(), Some(0 | 1)),
        "provsten report render exited {}: {}\n{}",
        done.status,
        done.stdout,
        done.stderr
    );
    for file in REPORT_FILES {
        assert!(out.join(file).is_file(), "render wrote no {file}");
    }

    let page = out.join("report.html");
    let dom = dump_dom(&chromium, &page);
    let article = element(&dom, "article", &key);
    assert_eq!(article.matches("<svg").count(), 2, "two charts");
    for shape in [
        format!("{}-resend_timeline", observations - 1),
        format!("{observations}-exercise_timeline"),
    ] {
        let id = format!("{key}-evidence-{shape}");
        assert!(article.contains(&format!("<figure class=\"chart\" id=\"{id}\">")));
        assert!(
            dom.contains(&format!("<a href=\"#{id}\">")),
            "Timelines lists {id}"
        );
    }
    assert!(article.contains("aria-label=\"Resend timeline, message n-1: 4 attempts"));
    assert!(article.contains(">primary down</text>"));

    assert_no_remote_references(&fs::read_to_string(&page).unwrap());
    let (requests, png) = screenshot_with_net_log(&chromium, &page);
    assert!(
        remote(&requests).is_empty(),
        "charts page asked for {requests:?}"
    );
    assert_screenshot(&png, "report with charts");
}
