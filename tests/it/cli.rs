//! The CLI as a user meets it: exit codes, errors that name the file, key and fix, the
//! IUT process cleaned up on every path, and a user's own IUT certified through a config.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::util::{free_port, pki_init, provsten, run, SMALL};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A config for the reference IUT started from an explicit command, as a user's IUT is.
fn reference_config(dir: &Path) -> String {
    let port = free_port();
    config_at(dir, port, true)
}

/// The reference IUT on `port`; without `start`, provsten attaches to it.
fn config_at(dir: &Path, port: u16, start: bool) -> String {
    let start = if start {
        format!(
            "[iut.start]\ncommand = [\"{bin}\", \"reference-iut\", \"--pki\", \"{{pki}}\", \"--api\", \"127.0.0.1:{port}\", \"--admin\", \"127.0.0.1:0\"]\n",
            bin = env!("CARGO_BIN_EXE_provsten")
        )
    } else {
        String::new()
    };
    format!(
        r#"
[iut]
name = "reference via config"
roles = ["server"]

{start}
[iut.ready]
check = "https"
timeout = "20s"
client_cert = "client-5560000001"

[api]
base_url = "https://127.0.0.1:{port}"
server_name = "iut.localhost"
registered_orgs = ["5560000001", "5560000002"]

[pki]
dir = "{pki}"
"#,
        pki = dir.join("pki").display()
    )
}

fn pid_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        if stat.is_empty() || stat.contains(") Z ") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A shell "IUT" that writes its pid to `dir/pid`, prints `output` and never listens.
/// Returns the config path and the pid file.
fn never_listening_iut(dir: &Path, output: &str, ready_timeout: &str) -> (PathBuf, PathBuf) {
    pki_init(dir);
    let pidfile = dir.join("pid");
    let cfg = dir.join("provsten.toml");
    write(
        &cfg,
        &format!(
            r#"
[iut]
name = "never listens"
roles = ["server"]
[iut.start]
command = ["sh", "-c", "echo $$ > {pid}; {output} exec sleep 60"]
[iut.ready]
check = "tcp"
timeout = "{ready_timeout}"
[api]
base_url = "https://127.0.0.1:1"
server_name = "iut.localhost"
registered_orgs = ["5560000001"]
[pki]
dir = "pki"
"#,
            pid = pidfile.display()
        ),
    );
    (cfg, pidfile)
}

#[test]
fn init_scaffolds_a_config_and_pki_that_certify_an_iut_of_ones_own() {
    let dir = tempfile::tempdir().unwrap();
    let out = provsten().arg("init").arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "provsten.toml",
        "certs.toml",
        "pki/catalog.json",
        "pki/trust.pem",
        "pki/crl-bundle.pem",
        "pki/iut-server.key.pem",
        "pki/iut-server-rsa.chain.pem",
        "pki/iut-server-rsa.key.pem",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    let template = std::fs::read_to_string(dir.path().join("provsten.toml")).unwrap();
    assert!(template.contains("# "), "the template is commented");
    // Both server certificates, and how to give them to the usual servers.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("iut-server-rsa.chain.pem"), "{stdout}");
    for server in ["ssl_certificate", "crt", "SSLCertificateFile"] {
        assert!(template.contains(server), "{server}");
    }
    // Point the scaffolded config at an IUT (here the reference, started by command).
    let cfg = dir.path().join("provsten.toml");
    write(&cfg, &reference_config(dir.path()));
    let r = run(
        &dir.path().join("report"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert_eq!(r.report()["iut"]["name"], "reference via config");
    assert!(r.report()["iut"]["server_certificate_sha256"]
        .as_str()
        .is_some_and(|s| s.len() == 64));
}

#[test]
fn pki_init_writes_pem_files_catalog_and_private_keys_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = provsten()
        .args(["pki", "init", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let catalog: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("catalog.json")).unwrap())
            .unwrap();
    let certs = catalog["certificates"].as_array().unwrap();
    for name in [
        "client-expired",
        "client-revoked",
        "client-weak-key",
        "client-key-mismatch",
        "server-wrong-host",
    ] {
        assert!(certs.iter().any(|c| c["name"] == name), "{name}");
    }
    for c in certs {
        let key = dir.path().join(c["key"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn unknown_config_key_is_exit_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("provsten.toml");
    write(
        &cfg,
        &reference_config(dir.path()).replace("[iut.ready]", "[iut.ready]\nchek = \"tcp\""),
    );
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    let e = r.stderr();
    assert!(
        e.contains("provsten.toml") && e.contains("chek") && e.contains("line"),
        "{e}"
    );
}

#[test]
fn duration_without_unit_is_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("provsten.toml");
    write(
        &cfg,
        &reference_config(dir.path()).replace("timeout = \"20s\"", "timeout = 20"),
    );
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(r.stderr().contains("hint: write \"20s\""), "{}", r.stderr());
}

#[test]
fn iut_never_ready_is_exit_2_with_its_last_output_and_the_process_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, pidfile) = never_listening_iut(
        dir.path(),
        "echo booting; echo cannot open database >&2;",
        "1s",
    );
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    let e = r.stderr();
    assert!(e.contains("not ready within 1s"), "{e}");
    assert!(
        e.contains("booting") && e.contains("cannot open database"),
        "{e}"
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_gone(pid), "the IUT process {pid} outlived the run");
}

#[test]
fn iut_that_exits_early_is_exit_2_naming_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("provsten.toml");
    let text = reference_config(dir.path()).replace("\"reference-iut\"", "\"no-such-subcommand\"");
    write(&cfg, &text);
    pki_init(dir.path());
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(r.stderr().contains("exited"), "{}", r.stderr());
    assert!(
        r.stderr().contains("no-such-subcommand"),
        "its output is shown: {}",
        r.stderr()
    );
}

#[test]
fn ctrl_c_stops_the_iut_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, pidfile) = never_listening_iut(dir.path(), "", "60s");
    let mut child = provsten()
        .args(["run", "-q", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pidfile.exists()
        || std::fs::read_to_string(&pidfile)
            .unwrap_or_default()
            .trim()
            .is_empty()
    {
        assert!(Instant::now() < deadline, "the IUT never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "provsten did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(130));
    assert!(pid_gone(pid), "the IUT process {pid} outlived Ctrl-C");
}

#[test]
fn malformed_feature_file_is_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir(&features).unwrap();
    write(&features.join("mine.feature"), "Feature: mine\n  Scenario: a\n    Given a client presenting no certificate\n  Nonsense here\n");
    let r = run(
        &dir.path().join("out"),
        &["--features", features.to_str().unwrap()],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(r.stderr().contains("mine.feature:4"), "{}", r.stderr());
}

#[test]
fn a_users_own_feature_runs_beside_the_shipped_ones() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir(&features).unwrap();
    write(
        &features.join("mine.feature"),
        "@role:server\nFeature: mine\n  @req:EB-MTLS-1 @mine\n  Scenario: a revoked certificate stays out\n    Given a client presenting the certificate \"client-revoked\"\n    When the client requests the data of organisation \"5560000001\"\n    Then the request is refused without protected data\n",
    );
    let r = run(
        &dir.path().join("out"),
        &["--features", features.to_str().unwrap(), "--tags", "@mine"],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    let scenarios = r.report()["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 1);
    assert_eq!(scenarios[0]["status"], "passed");
    // And the same scenario against a defect fails.
    let r = run(
        &dir.path().join("out2"),
        &[
            "--features",
            features.to_str().unwrap(),
            "--tags",
            "@mine",
            "--defect",
            "ignore-crl",
        ],
    );
    assert_eq!(r.code(), 1, "{}", r.explain());
}

#[test]
fn undefined_step_is_exit_2_pointing_at_the_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir(&features).unwrap();
    write(
        &features.join("x.feature"),
        "Feature: x\n  @req:EB-TLS-1\n  Scenario: y\n    Given a client wearing a hat\n",
    );
    let r = run(
        &dir.path().join("out"),
        &["--features", features.to_str().unwrap()],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(
        r.stderr().contains("x.feature:4: undefined step") && r.stderr().contains("provsten steps"),
        "{}",
        r.stderr()
    );
}

#[test]
fn unknown_defect_and_profile_suggest_the_closest_name() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["--defect", "accept-expired"]);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("accept-expired-cert"), "{}", r.stderr());
    let r = run(dir.path(), &["--profile", "ebevs"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr().contains("did you mean \"ebevis\""),
        "{}",
        r.stderr()
    );
}

/// Issue 14 items 1 and 9: a run that can test nothing is exit 2 saying why, never a
/// vacuous COMPLIANT; a requirement nothing exercised is `not-tested` with the real reason.
#[test]
fn a_run_that_tests_nothing_is_exit_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("provsten.toml");
    pki_init(dir.path());
    let server = reference_config(dir.path());
    // No scenario selected needs a declared role: refused before the IUT starts.
    let client = format!(
        "{}\n[client]\ntrigger = {{ command = [\"true\"] }}\nrequest_rate = 1.0\n",
        server.replace("roles = [\"server\"]", "roles = [\"client\"]")
    );
    write(&cfg, &client);
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--tags", "@role:server"],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(r.stderr().contains("nothing to test"), "{}", r.stderr());
    assert!(
        r.stderr().contains("iut.roles = [\"client\"]"),
        "{}",
        r.stderr()
    );
    assert!(!dir.path().join("out/report.json").exists());
    // Roles fine, but the selected requirement's scenarios need another role.
    write(&cfg, &server);
    let r = run(
        &dir.path().join("out"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--tags",
            "@req:CONT-NOLOSS",
        ],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(r.stderr().contains("need role router"), "{}", r.stderr());
    // The scenarios run but each finds the config section it needs missing: the run is
    // `error`, and the requirement says which section, not a role.
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--tags", "@req:EB-IP-2"],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert_eq!(r.report()["verdict"], "error", "{}", r.explain());
    let ip2 = r.requirement("EB-IP-2");
    assert_eq!(ip2["verdict"], "not-tested", "{ip2}");
    assert!(
        ip2["reason"].as_str().unwrap().contains("[ip_filter]"),
        "{ip2}"
    );
    assert!(r.stdout().contains("nothing was tested"), "{}", r.stdout());
    assert_eq!(r.report()["coverage"]["passed"], 0);
}

/// `--complete`: a run that leaves a testable requirement untested is not compliant (the
/// signed report's coverage, shown by `report verify`, is checked in `report.rs`).
#[test]
fn complete_certification_needs_every_testable_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let r = run(&out, &["--tags", "@req:EB-VER-1", "--profile", "ebevis"]);
    assert_eq!(r.code(), 0, "{}", r.explain());
    let tested = r.report()["coverage"]["tested"].as_u64().unwrap();
    assert!(tested >= 1, "{}", r.explain());
    assert!(
        r.stdout().contains(&format!(
            "coverage: {tested} of 8 testable requirements of profile ebevis tested"
        )),
        "{}",
        r.stdout()
    );
    let r = run(
        &out,
        &[
            "--tags",
            "@req:EB-VER-1",
            "--profile",
            "ebevis",
            "--complete",
        ],
    );
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert_eq!(r.report()["verdict"], "non-compliant");
    assert_eq!(r.report()["coverage"]["complete_required"], true);
    assert_eq!(r.report()["coverage"]["complete"], false);
    assert!(
        r.stdout().contains("incomplete certification"),
        "{}",
        r.stdout()
    );
}

#[test]
fn defect_is_refused_for_an_iut_that_is_not_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let cfg = dir.path().join("provsten.toml");
    write(&cfg, &reference_config(dir.path()));
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--defect", "ignore-crl"],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(
        r.stderr()
            .contains("--defect applies only to the reference IUT"),
        "{}",
        r.stderr()
    );
}

#[test]
fn steps_and_requirements_list_the_vocabulary_and_catalogue() {
    let out = provsten().arg("steps").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Given a client presenting the certificate \"client-expired\""),
        "{text}"
    );
    let out = provsten()
        .args(["requirements", "--profile", "sdk"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SDK-4.1-ISOLATION") && !text.contains("EB-TLS-1"),
        "{text}"
    );
}

#[test]
fn shards_split_the_scenarios_without_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let r = run(
            &dir.path().join(format!("s{i}")),
            &[SMALL, &["--shard", &shard]].concat(),
        );
        assert!(r.code() == 0 || r.code() == 2, "{}", r.explain());
        if let Some(rep) = &r.report {
            keys.extend(
                rep["scenarios"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["key"].to_string()),
            );
        }
    }
    let full = run(&dir.path().join("all"), SMALL);
    let mut all: Vec<_> = full.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].to_string())
        .collect();
    keys.sort();
    all.sort();
    assert_eq!(keys, all);
}

#[test]
fn attaches_to_an_iut_that_is_already_running() {
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let port = free_port();
    let mut iut = Kill(
        provsten()
            .args(["reference-iut", "--pki"])
            .arg(dir.path().join("pki"))
            .args([
                "--api",
                &format!("127.0.0.1:{port}"),
                "--admin",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // No [iut.start]: provsten waits for readiness and does not own the process.
    let cfg = dir.path().join("provsten.toml");
    write(&cfg, &config_at(dir.path(), port, false));
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(
        iut.0.try_wait().unwrap().is_none(),
        "provsten stopped an IUT it did not start"
    );
}

/// Issue 14 item 8: whether EB-IP-2 applies is decided before its scenario runs, from the
/// config, never by how far its steps got. Here the IUT filters nothing (the scenario's
/// first check would fail) and the config declares no `reload`: EB-IP-2 is `not-tested`
/// naming `ip_filter.reload`, not `fail`.
#[test]
fn applicability_never_depends_on_step_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("provsten.toml");
    pki_init(dir.path());
    write(
        &cfg,
        &format!(
            "{}\n[ip_filter]\nregistered_ranges = [\"127.0.0.1/32\"]\nallowlist_file = \"{}\"\n",
            reference_config(dir.path()),
            dir.path().join("allow.txt").display()
        ),
    );
    let r = run(
        &dir.path().join("out"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--tags",
            "@req:EB-IP-2 or @req:EB-TLS-1",
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    let ip2 = r.requirement("EB-IP-2");
    assert_eq!(ip2["verdict"], "not-tested", "{ip2}");
    assert!(
        ip2["reason"]
            .as_str()
            .unwrap()
            .contains("declares no ip_filter.reload"),
        "{ip2}"
    );
}

/// Every process's pid and its `/proc/PID/stat` fields after the command name (state,
/// ppid, pgrp, …).
fn processes() -> Vec<(u32, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if let Some((_, rest)) = stat.rsplit_once(')') {
            found.push((pid, rest.split_whitespace().map(str::to_string).collect()));
        }
    }
    found
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, f)| f.get(1).and_then(|p| p.parse().ok()) == Some(pid))
        .map(|(p, _)| p)
        .collect()
}

/// `pid` and every process below it.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        all.extend(children_of(all[i]));
        i += 1;
    }
    all
}

/// Socket inodes of TCP listeners (IPv4 and IPv6) in LISTEN state, with their ports.
fn listeners() -> Vec<(u64, u16)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" {
                let port = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                if let (Some(port), Ok(inode)) = (port, f[9].parse()) {
                    found.push((inode, port));
                }
            }
        }
    }
    found
}

/// The listening sockets processes `pids` hold open: (inode, port).
fn listeners_of(pids: &[u32]) -> Vec<(u64, u16)> {
    let mut inodes = std::collections::BTreeSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let link = std::fs::read_link(fd.path()).unwrap_or_default();
            let link = link.to_string_lossy();
            if let Some(inode) = link
                .strip_prefix("socket:[")
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|i| i.parse::<u64>().ok())
            {
                inodes.insert(inode);
            }
        }
    }
    listeners()
        .into_iter()
        .filter(|(inode, _)| inodes.contains(inode))
        .collect()
}

/// Live (not zombie) processes of process group `pg`.
fn group_members(pg: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, f)| f.get(2).and_then(|p| p.parse().ok()) == Some(pg) && f[0] != "Z")
        .map(|(p, _)| p)
        .collect()
}

/// Issue 15 items 1 and 2: a signal while a scenario runs (a sender mid-schedule, not the
/// readiness wait) stops the IUT's whole process group, and provsten exits 130 / 143.
fn signal_mid_scenario_stops_the_iut(
    signal: &str,
    code: i32,
    command: &[&str],
    tags: Option<&str>,
    started: fn(&str) -> bool,
) {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    // The reference IUT with its output not piped to provsten, as many IUTs log to a file:
    // nothing but provsten's signal handling can then take it down.
    let config = include_str!("../../src/iut/default.toml").replace(
        r#""{provsten}", "reference-iut","#,
        r#""sh", "-c", "exec \"$0\" \"$@\" >/dev/null 2>&1", "{provsten}", "reference-iut","#,
    );
    assert!(
        config.contains("exec"),
        "the default config's start command changed"
    );
    let cfg = dir.path().join("provsten.toml");
    write(&cfg, &config);
    // An earlier run's report: it must not be left looking like this run's.
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    write(
        &dir.path().join("out/report.json"),
        r#"{"verdict": "compliant"}"#,
    );
    let mut cmd = provsten();
    cmd.args(command)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"));
    if let Some(t) = tags {
        cmd.args(["--tags", t]);
    }
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Scenarios are running (one finished, or the exercise reports progress).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("no progress within 60 s");
        if started(&line) {
            break;
        }
    }
    let iut: Vec<u32> = children_of(child.id());
    assert!(!iut.is_empty(), "the reference IUT is not running");
    // Everything of the run: provsten, the IUT, the IUT's children, and the listeners they
    // hold (the IUT's API, the harness's simulated peers, proxy links, the CRL publisher).
    let run = descendants(child.id());
    let bound = listeners_of(&run);
    assert!(
        bound.len() >= 2,
        "expected the IUT's and the harness's listeners, found {bound:?}"
    );
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            Instant::now() < deadline,
            "provsten did not stop on {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit, Some(code));
    for pid in &run {
        assert!(pid_gone(*pid), "process {pid} of the run outlived {signal}");
    }
    // By socket, not port: a port another test binds afterwards is not this run's.
    let left: Vec<(u64, u16)> = listeners()
        .into_iter()
        .filter(|l| bound.contains(l))
        .collect();
    assert!(
        left.is_empty(),
        "listeners of the run outlived {signal}: {left:?}"
    );
    for pg in iut {
        assert!(
            group_members(pg).is_empty(),
            "process group {pg} of the IUT outlived {signal}: {:?}",
            group_members(pg)
        );
    }
    assert!(!dir.path().join("out/report.json").exists());
}

/// `[ 1/14] PASS …`: one scenario finished, the others run.
fn first_finished(line: &str) -> bool {
    line.strip_prefix('[')
        .is_some_and(|l| l.trim_start().starts_with("1/"))
}

#[test]
fn sigint_with_the_sender_mid_schedule_stops_the_iut_and_exits_130() {
    let tags = "@req:FMK-2.6.3-RESEND and @role:sender";
    signal_mid_scenario_stops_the_iut("-INT", 130, &["run"], Some(tags), first_finished);
}

#[test]
fn sigterm_during_server_scenarios_stops_the_iut_and_exits_143() {
    let tags = "@req:CONT-FAULT-PROC and @role:server";
    signal_mid_scenario_stops_the_iut("-TERM", 143, &["run"], Some(tags), first_finished);
}

#[test]
fn sigint_during_router_scenarios_stops_the_iut_and_exits_130() {
    let tags = "@req:CONT-ROUTE-1";
    signal_mid_scenario_stops_the_iut("-INT", 130, &["run"], Some(tags), first_finished);
}

#[test]
fn sigterm_during_an_exercise_stops_the_iut_and_exits_143() {
    signal_mid_scenario_stops_the_iut(
        "-TERM",
        143,
        &["exercise", "primary-node-outage"],
        None,
        |line| line.starts_with("[exercise] phase"),
    );
}

/// Issue 15 item 9: a reader that closes the pipe early (`provsten steps | head -1`) ends
/// the listing quietly; `--concurrency 0` is refused.
#[test]
fn a_closed_stdout_ends_a_listing_and_concurrency_0_is_refused() {
    for command in ["steps", "defects", "requirements"] {
        let mut child = provsten()
            .arg(command)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before provsten writes: its write meets a broken pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["--concurrency", "0"]);
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(r.stderr().contains("--concurrency"), "{}", r.stderr());
}

/// Issue 15 item 4: each PKI publishes its CRLs on its own port (picked free when it is
/// made), so runs with different PKIs never collide; a port the PKI pins that is taken
/// (another run of the same PKI) is exit 2 saying so, not a warning.
#[test]
fn a_taken_crl_port_is_exit_2_and_pkis_get_their_own_ports() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    pki_init(a.path());
    pki_init(b.path());
    let url = |d: &Path| -> String {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("pki/catalog.json")).unwrap())
                .unwrap();
        m["crl_base_url"].as_str().unwrap().to_string()
    };
    assert_ne!(url(a.path()), url(b.path()));
    let addr = url(a.path())
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let squatter = std::net::TcpListener::bind(&addr).unwrap();
    let cfg = a.path().join("provsten.toml");
    write(&cfg, &reference_config(a.path()));
    let r = run(
        &a.path().join("out"),
        &["--config", cfg.to_str().unwrap(), "--tags", "@req:EB-TLS-1"],
    );
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(
        r.stderr().contains("cannot publish the CRLs") && r.stderr().contains(&addr),
        "{}",
        r.stderr()
    );
    drop(squatter);
}

/// Issue 15 item 6: the CRL lifetime is chosen at `pki init`, a run warns 14 days before it
/// ends naming the fix, and `pki refresh` re-issues the CRLs so the same certificates (and
/// the revoked one, still refused) work on.
#[test]
fn a_short_lived_crl_is_warned_about_and_refresh_renews_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = provsten()
        .args(["pki", "init", "--crl-lifetime", "10d", "--out"])
        .arg(&pki)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("the CRLs last until") && said.contains("provsten pki refresh --dir"),
        "{said}"
    );
    let cfg = dir.path().join("provsten.toml");
    write(&cfg, &reference_config(dir.path()));
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--tags",
        "@req:FMK-2.1-REVOKE",
    ];
    let r = run(&dir.path().join("out1"), &args);
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(
        r.stderr().contains("warning: in the PKI")
            && r.stderr().contains("the CRL root.crl.pem ends")
            && r.stderr().contains("provsten pki refresh --dir"),
        "{}",
        r.stderr()
    );
    let keys_before = std::fs::read(pki.join("root.key.pem")).unwrap();
    let out = provsten()
        .args(["pki", "refresh", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("CRL number 2"), "{said}");
    assert_eq!(
        std::fs::read(pki.join("root.key.pem")).unwrap(),
        keys_before
    );
    let r = run(&dir.path().join("out2"), &args);
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(
        !r.stderr().contains("warning: in the PKI"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        r.requirement("FMK-2.1-REVOKE")["verdict"],
        "pass",
        "{}",
        r.explain()
    );

    // A lifetime of nothing is a usage error; a lifetime for a PKI the run does not make
    // names the command that does the job.
    let out = provsten()
        .args(["pki", "refresh", "--crl-lifetime", "0s", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = reference_config(dir.path()).replace("[pki]\n", "[pki]\ncrl_lifetime = \"30d\"\n");
    write(&cfg, &text);
    let r = run(&dir.path().join("out3"), &args);
    assert_eq!(r.code(), 2, "{}", r.explain());
    assert!(
        r.stderr().contains("pki.crl_lifetime") && r.stderr().contains("provsten pki refresh"),
        "{}",
        r.stderr()
    );
}
