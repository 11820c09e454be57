//! FMK-2.2-FW against an IUT provsten attaches to: a declared scan range finds an
//! undeclared port that answers, and without a scan the port check is not applicable
//! rather than passed.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::util::{pki_init, provsten, run};

/// The reference IUT, started by the test (provsten attaches to it); killed on drop.
struct Iut(std::process::Child);

impl Drop for Iut {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A listener on `port` that answers every connection with a plain-HTTP page, as a
/// forgotten debug port would; stopped and joined on drop.
struct Debug {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Debug {
    fn start(listener: TcpListener) -> Debug {
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(mut c) = conn {
                    let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\ndebug metrics\n");
                }
            }
        });
        Debug {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Debug {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Three free consecutive loopback ports, held until the caller lets go.
fn three_ports() -> [TcpListener; 3] {
    for _ in 0..200 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = first.local_addr().unwrap().port();
        let (Some(b1), Some(b2)) = (base.checked_add(1), base.checked_add(2)) else {
            continue;
        };
        if let (Ok(l1), Ok(l2)) = (
            TcpListener::bind(("127.0.0.1", b1)),
            TcpListener::bind(("127.0.0.1", b2)),
        ) {
            return [first, l1, l2];
        }
    }
    panic!("no three consecutive free ports");
}

fn config(dir: &Path, api: u16, admin: u16, scan: Option<&str>) -> String {
    let scan = scan
        .map(|s| format!("scan = \"{s}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[iut]
name = "attached reference"
roles = ["server"]

[iut.ready]
check = "https"
timeout = "20s"
client_cert = "client-5560000001"

[api]
base_url = "https://127.0.0.1:{api}"
server_name = "iut.localhost"
registered_orgs = ["5560000001", "5560000002"]

[pki]
dir = "{pki}"

[firewall]
ports = [{api}]
harness_ports = [{admin}]
{scan}"#,
        pki = dir.join("pki").display()
    )
}

fn start_reference(dir: &Path, api: u16, admin: u16) -> Iut {
    Iut(provsten()
        .args(["reference-iut", "--pki"])
        .arg(dir.join("pki"))
        .args([
            "--api",
            &format!("127.0.0.1:{api}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap())
}

fn scenario<'a>(r: &'a super::util::Run, name: &str) -> &'a serde_json::Value {
    r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name:?}: {}", r.explain()))
}

#[test]
fn a_scan_of_an_attached_iut_finds_an_undeclared_port_and_passes_without_one() {
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let [api_l, admin_l, extra] = three_ports();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let (api, admin, extra_port) = (port(&api_l), port(&admin_l), port(&extra));
    // The test keeps the third port and answers on it; the reference takes the first two.
    drop((api_l, admin_l));
    let _iut = start_reference(dir.path(), api, admin);
    let scan = format!("127.0.0.1:{api}-{extra_port}");
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(&cfg, config(dir.path(), api, admin, Some(&scan))).unwrap();
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--tags",
        "@req:FMK-2.2-FW",
    ];

    let debug = Debug::start(extra);
    let r = run(&dir.path().join("out-open"), &args);
    assert_eq!(r.code(), 1, "{}", r.explain());
    let s = scenario(&r, "only the declared ports answer a client address");
    assert_eq!(s["status"], "failed", "{}", r.explain());
    let msg = s["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("port {extra_port} ")) && msg.contains("debug metrics"),
        "{msg}"
    );
    // The admin port, harness-only, refused the client address; the API is declared.
    assert!(!msg.contains(&format!("port {admin} ")), "{msg}");
    drop(debug);

    let r = run(&dir.path().join("out-closed"), &args);
    assert_eq!(r.code(), 0, "{}", r.explain());
    let s = scenario(&r, "only the declared ports answer a client address");
    assert_eq!(s["status"], "passed", "{}", r.explain());
    let ev = serde_json::to_string(&s["evidence"]).unwrap();
    assert!(ev.contains(&format!("a connect scan of {scan}")), "{ev}");
    assert!(ev.contains("\"probed\":2"), "{ev}");
}

#[test]
fn an_attached_iut_without_a_scan_is_not_applicable_for_the_port_check() {
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let [api_l, admin_l, _extra] = three_ports();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let (api, admin) = (port(&api_l), port(&admin_l));
    drop((api_l, admin_l));
    let _iut = start_reference(dir.path(), api, admin);
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(&cfg, config(dir.path(), api, admin, None)).unwrap();
    let r = run(
        &dir.path().join("out"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--tags",
            "@req:FMK-2.2-FW",
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.explain());
    let s = scenario(&r, "only the declared ports answer a client address");
    assert_ne!(s["status"], "passed", "{}", r.explain());
    let text = s.to_string();
    assert!(text.contains("firewall.scan"), "{text}");
}
