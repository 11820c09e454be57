//! Running the provsten binary and reading what it wrote.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The files every run writes to its report folder.
pub const REPORT_FILES: [&str; 6] = [
    "report.json",
    "junit.xml",
    "cucumber.json",
    "report.html",
    "summary.md",
    "messages.ndjson",
];

pub fn provsten() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_provsten"));
    c.env_remove("PROVSTEN_CONFIG")
        .env_remove("PROVSTEN_PROFILE")
        .env_remove("PROVSTEN_OUT")
        .env("NO_COLOR", "1");
    // Tests run on CI hosts too: their variables must not change what a test's run does
    // (a job summary, annotations, `--shard auto`); tests that want them set them.
    for var in [
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_WORKSPACE",
        "CI_NODE_INDEX",
        "CI_NODE_TOTAL",
        "PROVSTEN_SHARD_INDEX",
        "PROVSTEN_SHARD_TOTAL",
    ] {
        c.env_remove(var);
    }
    c
}

pub struct Run {
    pub output: Output,
    pub report: Option<Value>,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The report's entry for requirement `id`.
    pub fn requirement(&self, id: &str) -> Value {
        self.report()["requirements"]
            .as_array()
            .and_then(|all| all.iter().find(|q| q["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in the report: {}", self.explain()))
    }

    pub fn report(&self) -> &Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no report.json; stderr:\n{}", self.stderr()))
    }

    /// Requirement IDs with the given verdict.
    pub fn with_verdict(&self, verdict: &str) -> BTreeSet<String> {
        self.report()["requirements"]
            .as_array()
            .expect("requirements array")
            .iter()
            .filter(|r| r["verdict"] == verdict)
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Exit, output, and each scenario that failed or errored with its message: `-q`
    /// prints only the table, and a flaky failure must say why the first time it is seen.
    pub fn explain(&self) -> String {
        let mut bad = String::new();
        let scenarios = self.report.as_ref().and_then(|r| r["scenarios"].as_array());
        for s in scenarios.into_iter().flatten() {
            if s["status"] == "failed" || s["status"] == "error" {
                bad += &format!(
                    "{} [{}] {}: {}\n",
                    s["key"], s["status"], s["name"], s["message"]
                );
            }
        }
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}\nscenarios failed or in error:\n{bad}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

/// A selection for tests of the run's plumbing (sharding, merging), which does not depend
/// on what the scenarios do: the scenarios that take milliseconds (no sender or router
/// timelines).
pub const SMALL: &[&str] = &["--tags", "not @role:router and not @role:sender"];

/// `provsten run -q --out OUT ARGS…`
pub fn run(out: &Path, args: &[&str]) -> Run {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    subcommand("run", out, &all)
}

/// `provsten COMMAND --out OUT ARGS…`, with the report it wrote, if any.
pub fn subcommand(command: &str, out: &Path, args: &[&str]) -> Run {
    let output = provsten()
        .arg(command)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("running provsten");
    let report = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Run { output, report }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `provsten pki init --out DIR/pki`.
pub fn pki_init(dir: &Path) {
    let out = provsten()
        .args(["pki", "init", "--out"])
        .arg(dir.join("pki"))
        .output()
        .expect("running provsten pki init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A full run shared by every test of this binary that only reads what it wrote: the
/// suite takes seconds, so one configuration is run once per test binary, not per test.
/// It is written under cargo's `CARGO_TARGET_TMPDIR`, cleared when first asked for.
pub fn shared_run(args: &'static [&'static str]) -> &'static (Run, std::path::PathBuf) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Slot = &'static OnceLock<(Run, std::path::PathBuf)>;
    static RUNS: Mutex<Option<HashMap<&'static [&'static str], Slot>>> = Mutex::new(None);
    let slot: Slot = {
        let mut runs = RUNS.lock().unwrap_or_else(|p| p.into_inner());
        *runs
            .get_or_insert_with(HashMap::new)
            .entry(args)
            .or_insert_with(|| Box::leak(Box::new(OnceLock::new())))
    };
    slot.get_or_init(|| {
        let name: String = std::iter::once("shared-run")
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join("-");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&out);
        (run(&out, args), out)
    })
}

/// Whether curl is here to be tested; panics naming the fix unless `PROVSTEN_SKIP_CURL=1`.
pub fn curl_available() -> bool {
    if std::env::var_os("PROVSTEN_SKIP_CURL").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_CURL=1");
        return false;
    }
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "curl is needed (apt-get install curl), or PROVSTEN_SKIP_CURL=1"
    );
    true
}

/// `provsten init --role client DIR`: a client config and its PKI, as a user starts.
pub fn init_client(dir: &Path) -> PathBuf {
    let out = provsten()
        .args(["init", "--role", "client"])
        .arg(dir)
        .output()
        .expect("provsten init --role client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("provsten.toml")
}

/// Whether python3 with `modules` (comma-separated, as `import` takes them) is here to be
/// tested; panics naming the pip packages unless `PROVSTEN_SKIP_PYTHON=1`.
pub fn python_available(modules: &str, pip_packages: &str) -> bool {
    if std::env::var_os("PROVSTEN_SKIP_PYTHON").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_PYTHON=1");
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with {modules} is needed (python3 -m pip install {pip_packages}), or PROVSTEN_SKIP_PYTHON=1"
    );
    true
}
