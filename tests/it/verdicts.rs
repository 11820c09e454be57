//! Honest verdicts (issue 14): a harness fault is `error` (exit 2), never the IUT's failure.

use std::path::Path;

use super::util::{provsten, run, Run};

/// The embedded reference config, as a file a user could have written.
fn reference_config(dir: &Path, edit: impl Fn(String) -> String) -> String {
    let text = edit(include_str!("../../src/iut/default.toml").to_string());
    let path = dir.join("provsten.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The scenarios ran, could not be evaluated, and nothing counts against the IUT.
fn assert_harness_error(r: &Run, id: &str, cause: &str) {
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert_eq!(r.report()["verdict"], "error", "{}", r.explain());
    assert_eq!(r.requirement(id)["verdict"], "error", "{}", r.explain());
    assert!(r.with_verdict("fail").is_empty(), "{}", r.explain());
    let scenarios = r.report()["scenarios"].as_array().unwrap();
    assert!(!scenarios.is_empty());
    for s in scenarios {
        assert_eq!(s["status"], "error", "{s}");
        let message = s["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("harness error: "), "{s}");
        assert!(message.contains(cause), "{s}");
    }
    assert!(
        r.stdout()
            .contains("a harness error, not a failure of the IUT"),
        "{}",
        r.stdout()
    );
}

/// The server's network-fault scenarios with the faults applied through the external
/// Toxiproxy at `url`.
fn fault_scenarios_through(url: &str, out: &Path) -> Run {
    let output = provsten()
        .env("TOXIPROXY_URL", url)
        .args(["run", "-q", "--out"])
        .arg(out)
        .args(["--tags", "@req:CONT-FAULT-PROC and not @role:router"])
        .output()
        .unwrap();
    let report = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Run { output, report }
}

/// A user's own feature file `name` in `dir/features`; its path.
fn own_feature(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let features = dir.join("features");
    std::fs::create_dir_all(&features).unwrap();
    let file = features.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// A port the harness must bind is taken: the router's primary route listens where another
/// program already does.
#[test]
fn a_taken_port_the_harness_must_bind_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();
    // One lane, so every router scenario needs the squatted address.
    let cfg = reference_config(dir.path(), |t| {
        t.replace("lanes = 5", "lanes = 1")
            .replace("{port:route-1-primary}", &port)
            .replace("{port:route-{lane}-primary}", &port)
    });
    let r = run(
        &dir.path().join("out"),
        &[
            "--config",
            &cfg,
            "--tags",
            "@req:CONT-ROUTE-1 and not @req:CONT-NOLOSS",
        ],
    );
    assert_harness_error(&r, "CONT-ROUTE-1", "must be free");
    drop(squatter);
}

/// A harness helper fails: the external Toxiproxy the run was pointed at does not answer,
/// so no fault can be applied.
#[test]
fn a_failing_harness_helper_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    let url = format!("http://{addr}");
    drop(closed);
    let r = fault_scenarios_through(&url, &dir.path().join("out"));
    assert_harness_error(&r, "CONT-FAULT-PROC", &format!("Toxiproxy at {addr}"));
}

/// A user's feature with a scenario that has no Then step: exit 2 naming file and line
/// (it could never fail), before anything runs.
#[test]
fn a_scenario_without_an_assertion_is_a_feature_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = own_feature(
        dir.path(),
        "mine.feature",
        "@role:server\nFeature: mine\n\n  @req:EB-AUTH-1\n  Scenario: no assertion\n    Given a client presenting no certificate\n    When the client requests the health endpoint\n",
    );
    let features = dir.path().join("features");
    let out = dir.path().join("out");
    let r = run(
        &out,
        &[
            "--features",
            features.to_str().unwrap(),
            "--tags",
            "@req:EB-AUTH-1",
        ],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(
        r.stderr().contains(&format!(
            "{}:5: scenario \"no assertion\" has no Then step",
            file.display()
        )),
        "{}",
        r.stderr()
    );
    assert!(!out.join("report.json").exists());
}

/// A typo in a certificate name is the feature's error (exit 2, file:line, did-you-mean),
/// never the IUT's non-compliance; `*` steps read as the step they match.
#[test]
fn a_misspelt_certificate_is_a_feature_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = own_feature(
        dir.path(),
        "typo.feature",
        "@role:server @mine\nFeature: typo\n\n  @req:EB-MTLS-1\n  Scenario: an expired certificate is refused\n    * a client presenting the certificate \"client-expierd\"\n    * the client requests the health endpoint\n    * the request is refused without protected data\n",
    );
    let features = dir.path().join("features");
    let out = dir.path().join("out");
    let r = run(
        &out,
        &["--features", features.to_str().unwrap(), "--tags", "@mine"],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(
        r.stderr().contains(&format!(
            "{}:6: unknown certificate (the PKI catalogue) \"client-expierd\" (did you mean \"client-expired\"?",
            file.display()
        )),
        "{}",
        r.stderr()
    );
    assert!(!out.join("report.json").exists());
    // Spelt right, the `*` scenario runs and passes against the compliant reference.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("client-expierd", "client-expired"),
    )
    .unwrap();
    let r = run(
        &out,
        &["--features", features.to_str().unwrap(), "--tags", "@mine"],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert_eq!(r.with_verdict("pass").len(), 1, "{}", r.explain());
}

/// Issue 14 item 7: a correct mTLS server whose data set is empty (`200 []`) passes the
/// positive controls with the default `[api.granted]` (any 2xx); declaring
/// `body_contains = "{org}"` makes the same server fail them, so the check can fail.
#[test]
fn a_correct_server_with_no_organisation_data_passes_the_positive_controls() {
    if std::env::var_os("PROVSTEN_SKIP_PYTHON").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_PYTHON=1");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    super::util::pki_init(dir.path());
    let pki = dir.path().join("pki");
    let port = super::util::free_port();
    // Python's ssl module: client certificates required against the agreed CA.
    let server = format!(
        r#"
import http.server, ssl
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
ctx.load_cert_chain("{pki}/iut-server.chain.pem", "{pki}/iut-server.key.pem")
ctx.load_verify_locations("{pki}/trust.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
s = http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#,
        pki = pki.display()
    );
    std::fs::write(dir.path().join("server.py"), server).unwrap();
    let config = |granted: &str| {
        format!(
            r#"
[iut]
name = "empty mTLS server"
roles = ["server"]
[iut.start]
command = ["python3", "{dir}/server.py"]
[iut.ready]
check = "tcp"
timeout = "20s"
[api]
base_url = "https://127.0.0.1:{port}"
server_name = "iut.localhost"
registered_orgs = ["5560000001", "5560000002"]
{granted}
[pki]
dir = "{pki}"
"#,
            dir = dir.path().display(),
            pki = pki.display()
        )
    };
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(&cfg, config("")).unwrap();
    let tags = "@req:EB-AUTH-1";
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--tags", tags],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(
        r.with_verdict("pass").contains("EB-AUTH-1"),
        "{}",
        r.explain()
    );
    std::fs::write(&cfg, config("[api.granted]\nbody_contains = \"{org}\"")).unwrap();
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--tags", tags],
    );
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert!(
        r.with_verdict("fail").contains("EB-AUTH-1"),
        "{}",
        r.explain()
    );
}

/// Runs the EB-AUTH-1 and EB-TLS-1 scenarios one at a time against an `openssl s_server`
/// on `port` serving `dir/pki`, started as `start` says (empty: attached).
fn certify_one_by_one(dir: &Path, port: u16, start: &str) -> Run {
    let cfg = dir.join("provsten.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[iut]
name = "openssl s_server"
roles = ["server"]
{start}
[api]
base_url = "https://127.0.0.1:{port}"
server_name = "iut.localhost"
registered_orgs = ["5560000001", "5560000002"]
[pki]
dir = "{pki}"
"#,
            pki = dir.join("pki").display()
        ),
    )
    .unwrap();
    run(
        &dir.join("out"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--tags",
            "@req:EB-AUTH-1 or @req:EB-TLS-1",
            "--concurrency",
            "1",
        ],
    )
}

/// [`certify_one_by_one`] with the IUT started by provsten as `command` (a TOML array),
/// readiness by TCP; returns the run and the IUT exits it reported.
fn certify_started(dir: &Path, port: u16, command: &str) -> (Run, Vec<serde_json::Value>) {
    let start = format!(
        "[iut.start]\ncommand = {command}\n[iut.ready]\ncheck = \"tcp\"\ntimeout = \"20s\""
    );
    let r = certify_one_by_one(dir, port, &start);
    let exits = r.report()["iut"]["exits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!exits.is_empty(), "{}", r.explain());
    (r, exits)
}

/// Issue 14 item 5: an IUT that dies mid-run is named. `openssl s_server -naccept 4` exits
/// after four connections; the scenario running then fails with "the IUT exited" and the
/// IUT's last output, provsten restarts it (at most `MAX_RESTARTS` times) and goes on, and
/// once it is not restarted the remaining scenarios are not tested, never failed with
/// "connection refused" evidence.
#[test]
fn an_iut_that_exits_mid_run_is_named_and_restarted() {
    if std::env::var_os("PROVSTEN_SKIP_OPENSSL").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_OPENSSL=1");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    super::util::pki_init(dir.path());
    let pki = dir.path().join("pki");
    let port = super::util::free_port();
    let (r, exits) = certify_started(
        dir.path(),
        port,
        &format!(
            r#"["openssl", "s_server", "-accept", "127.0.0.1:{port}", "-naccept", "4", "-www",
    "-cert", "{pki}/iut-server.cert.pem", "-key", "{pki}/iut-server.key.pem",
    "-cert_chain", "{pki}/iut-server.chain.pem", "-CAfile", "{pki}/trust.pem", "-Verify", "3"]"#,
            pki = pki.display()
        ),
    );
    assert_eq!(exits[0]["restarted"], true, "{exits:?}");
    assert!(
        exits[0]["status"]
            .as_str()
            .unwrap()
            .starts_with("exit status"),
        "{exits:?}"
    );
    assert!(
        !exits[0]["during"].as_array().unwrap().is_empty(),
        "{exits:?}"
    );
    let scenarios = r.report()["scenarios"].as_array().unwrap();
    // Every failure names the exit; nothing is blamed on the dead IUT's silence.
    for s in scenarios.iter().filter(|s| s["status"] == "failed") {
        let m = s["message"].as_str().unwrap_or_default();
        assert!(m.contains("the IUT exited (exit status"), "{s}");
        assert!(s["evidence"].to_string().contains("iut_exited"), "{s}");
    }
    assert!(scenarios.iter().any(|s| s["status"] == "failed"));
    // More exits than restarts: the last is not restarted (what follows it is not tested;
    // the attached test below shows that path).
    if exits.len() > 3 {
        assert_eq!(exits[3]["restarted"], false, "{exits:?}");
    }
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert!(
        r.stdout()
            .contains("the IUT exited or stopped answering during the run"),
        "{}",
        r.stdout()
    );
}

/// A server may close its listener well before its process ends (`openssl s_server -naccept`
/// does; CI once met it): the scenario that meets the closed port still names the exit, not
/// "connection refused". This IUT takes 4 connections, closes its listener, and exits 2 s
/// later.
#[test]
fn an_iut_that_closes_its_listener_before_it_exits_is_named() {
    let dir = tempfile::tempdir().unwrap();
    super::util::pki_init(dir.path());
    let script = dir.path().join("slow_exit.py");
    std::fs::write(
        &script,
        r#"import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
for _ in range(4):
    c, _ = s.accept()
    c.close()
s.close()
print("listener closed; exiting in 2 s", flush=True)
time.sleep(2)
sys.exit(3)
"#,
    )
    .unwrap();
    let port = super::util::free_port();
    let (r, exits) = certify_started(
        dir.path(),
        port,
        &format!(r#"["python3", "{}", "{port}"]"#, script.display()),
    );
    assert_eq!(exits[0]["status"], "exit status 3", "{exits:?}");
    assert!(
        !exits[0]["during"].as_array().unwrap().is_empty(),
        "{exits:?}"
    );
    let scenarios = r.report()["scenarios"].as_array().unwrap();
    for s in scenarios {
        let refused = s["evidence"].to_string().contains("connection-refused");
        let m = s["message"].as_str().unwrap_or_default();
        assert!(
            !refused
                || m.contains("the IUT exited (exit status 3)")
                || s["status"] == "not-applicable",
            "a refused connection not blamed on the exit: {s}"
        );
    }
    assert_eq!(r.code(), 1, "{}", r.explain());
}

/// Issue 14 items 7 and 10: isolation needs a second registered organisation or is not
/// tested (a refusal of an unknown one proves nothing); the sender-side certificate
/// checks say how the IUT refused (the alert it sent, by name and number).
#[test]
fn isolation_needs_a_registered_organisation_and_sender_refusals_are_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = reference_config(dir.path(), |t| {
        t.replace(
            "registered_orgs = [\"5560000001\", \"5560000002\"]",
            "registered_orgs = [\"5560000001\"]",
        )
    });
    let r = run(
        &dir.path().join("out"),
        &[
            "--config",
            &cfg,
            "--tags",
            "@req:SDK-4.1-ISOLATION or (@role:sender and @req:EB-MTLS-1)",
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    let iso = r.requirement("SDK-4.1-ISOLATION");
    assert_eq!(iso["verdict"], "not-tested", "{iso}");
    assert!(
        iso["reason"]
            .as_str()
            .unwrap()
            .contains("5560000002 is not registered"),
        "{iso}"
    );
    let senders: Vec<&serde_json::Value> = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tags"].to_string().contains("role:sender"))
        .collect();
    assert_eq!(senders.len(), 2, "{}", r.explain());
    for s in senders {
        assert_eq!(s["status"], "passed", "{s}");
        let refusal = s["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e.get("refusal"))
            .unwrap_or_else(|| panic!("no refusal evidence: {s}"));
        assert_eq!(refusal["kind"], "tls-alert", "{s}");
        assert!(refusal["number"].as_u64().is_some(), "{s}");
    }
}

/// Issue 14 item 5, attached: an IUT provsten did not start (`openssl s_server -naccept 6`
/// started here) stops answering mid-run; the scenario then running fails saying so and
/// every later one is not tested, with that reason.
#[test]
fn an_attached_iut_that_stops_answering_leaves_the_rest_not_tested() {
    if std::env::var_os("PROVSTEN_SKIP_OPENSSL").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_OPENSSL=1");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    super::util::pki_init(dir.path());
    let pki = dir.path().join("pki");
    let port = super::util::free_port();
    let p = |f: &str| pki.join(f).display().to_string();
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-naccept",
            "6",
            "-www",
        ])
        .args([
            "-cert",
            &p("iut-server.cert.pem"),
            "-key",
            &p("iut-server.key.pem"),
        ])
        .args([
            "-cert_chain",
            &p("iut-server.chain.pem"),
            "-CAfile",
            &p("trust.pem"),
        ])
        .args(["-Verify", "3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Readiness: the listener is up once a connect succeeds (each connect is one accept,
    // so wait for the port with a bound instead of probing it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .contains(&format!("0100007F:{port:04X} 00000000:0000 0A"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = certify_one_by_one(dir.path(), port, "");
    let _ = server.kill();
    let _ = server.wait();
    let exits = r.report()["iut"]["exits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(exits.len(), 1, "{}", r.explain());
    assert_eq!(exits[0]["attached"], true, "{exits:?}");
    assert_eq!(exits[0]["restarted"], false, "{exits:?}");
    let scenarios = r.report()["scenarios"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> = scenarios
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", r.explain());
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("the IUT stopped answering"),
        "{}",
        failed[0]
    );
    let untested = scenarios
        .iter()
        .filter(|s| {
            s["status"] == "not-applicable"
                && s["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("not tested: the IUT had stopped answering")
        })
        .count();
    assert!(untested >= 1, "{}", r.explain());
    assert_eq!(r.code(), 1, "{}", r.explain());
}

/// A harness deadline passes for a reason that is not the IUT's: the external Toxiproxy
/// accepts connections and never answers, so the fault steps give up after their own
/// deadline. That is a harness error, not the IUT failing.
#[test]
fn a_harness_deadline_that_passes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        // Hold every connection open without a byte of answer.
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    let r = fault_scenarios_through(&format!("http://{addr}"), &dir.path().join("out"));
    assert_harness_error(&r, "CONT-FAULT-PROC", "no answer within");
}

/// Issue 15 item 5: the report folder holds no private key (CI uploads it): the run's PKI
/// keys live in a private folder removed after the run, the report folder gets the public
/// half, and keys an earlier provsten left there are removed.
#[test]
fn the_report_folder_holds_no_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("pki")).unwrap();
    std::fs::write(out.join("pki/root.key.pem"), "left by an older provsten").unwrap();
    let r = run(&out, &["--tags", "@req:EB-AUTH-1"]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(out.join("pki/trust.pem").is_file());
    assert!(out.join("pki/iut-server.chain.pem").is_file());
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            assert!(
                !p.to_string_lossy().ends_with(".key.pem") && !text.contains("PRIVATE KEY"),
                "a private key in the report folder: {}",
                p.display()
            );
        }
    }
}

/// The run's context is a value, not a global: two runs in one process, side by side, one
/// against a compliant reference and one against a reference that ignores its CRL, each
/// judge only their own IUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_in_one_process_keep_their_own_context() {
    use provsten::reference::defects::Defect;
    use provsten::report::model::Verdict;
    use provsten::runner::{run, RunPlan};

    let dir = tempfile::tempdir().expect("a temporary folder");
    let plan = |name: &str, defects: Vec<Defect>| RunPlan {
        config: None,
        profile: provsten::requirements::Profile::All,
        tags: Some("@req:FMK-2.1-REVOKE or @req:EB-TLS-1".into()),
        defects,
        out: dir.path().join(name),
        concurrency: 4,
        features: Vec::new(),
        shard: None,
        timelines: Vec::new(),
        progress: false,
        exercise: None,
        complete: false,
        provsten: Some(env!("CARGO_BIN_EXE_provsten").into()),
    };
    let compliant = plan("compliant", Vec::new());
    let broken = plan("ignore-crl", vec![Defect::IgnoreCrl]);
    let (a, b) = tokio::join!(run(&compliant), run(&broken));
    let (a, b) = (
        a.expect("the compliant run"),
        b.expect("the ignore-crl run"),
    );
    let verdict = |r: &provsten::report::model::Report, id: &str| {
        r.requirements
            .iter()
            .find(|x| x.id == id)
            .map(|x| x.verdict)
            .unwrap_or_else(|| panic!("{id} is in the report"))
    };
    assert_eq!(verdict(&a, "FMK-2.1-REVOKE"), Verdict::Pass);
    assert_eq!(verdict(&b, "FMK-2.1-REVOKE"), Verdict::Fail);
    assert_eq!(verdict(&a, "EB-TLS-1"), Verdict::Pass);
    assert_eq!(verdict(&b, "EB-TLS-1"), Verdict::Pass);
    assert!(a.iut.defects.is_empty());
    assert_eq!(b.iut.defects, vec!["ignore-crl".to_string()]);
    assert_eq!(a.scenarios.len(), b.scenarios.len());
}
