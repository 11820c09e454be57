//! The simulated CA's OCSP responder judged by an independent client, `openssl ocsp`,
//! through `provsten pki serve`, which must stop cleanly on SIGTERM.
//!
//! `scripts/test` installs openssl; `PROVSTEN_SKIP_OPENSSL=1` skips on machines without it.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{free_port, provsten};

fn openssl_available() -> bool {
    if std::env::var_os("PROVSTEN_SKIP_OPENSSL").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_OPENSSL=1");
        return false;
    }
    assert!(
        Command::new("openssl").arg("version").output().is_ok(),
        "openssl is needed for this test (apt-get install openssl); set PROVSTEN_SKIP_OPENSSL=1 to skip"
    );
    true
}

/// Kills the server if a test ends early; a clean stop is checked by the test itself.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `provsten pki serve` on `dir`, once it has said it is serving (10 s deadline).
fn serve(dir: &Path, signer: &str) -> Serve {
    let mut child = provsten()
        .args(["pki", "serve", "--dir"])
        .arg(dir)
        .args(["--ocsp-signer", signer])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting provsten pki serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = Serve(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("serving until") => return guard,
            Ok(line) => seen.push(line),
            Err(_) => panic!("pki serve did not say it was serving within 10 s: {seen:?}"),
        }
    }
}

/// SIGTERM, then exit 0 within 5 s, and the ports closed.
fn stop(mut s: Serve, ports: &[u16]) {
    let pid = nix::unistd::Pid::from_raw(s.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = s.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "pki serve ignored SIGTERM for 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "pki serve exit on SIGTERM");
    for p in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *p)).is_err(),
            "port {p} still answers after pki serve exited"
        );
    }
}

/// `openssl ocsp` about one certificate (or serial): (stdout, stderr).
fn ask(pki: &Path, url: &str, what: &[&str]) -> (String, String) {
    let out = Command::new("openssl")
        .arg("ocsp")
        .arg("-issuer")
        .arg(pki.join("inter.cert.pem"))
        .args(what)
        .args(["-url", url, "-resp_text", "-CAfile"])
        .arg(pki.join("trust.pem"))
        .arg("-verify_other")
        .arg(pki.join("inter.cert.pem"))
        .current_dir(pki)
        .output()
        .expect("running openssl ocsp");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn openssl_ocsp_gets_good_revoked_and_unknown_verified_answers_with_the_nonce() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let (crl_port, ocsp_port) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{ocsp_port}/ocsp");
    let out = provsten()
        .args(["pki", "init", "--out"])
        .arg(&pki)
        .args(["--crl-url", &format!("http://127.0.0.1:{crl_port}/crl")])
        .args(["--ocsp-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for signer in ["ca", "delegated"] {
        let server = serve(&pki, signer);
        let cases: [(&[&str], &str); 4] = [
            (
                &["-cert", "client-5560000001.cert.pem"],
                "client-5560000001.cert.pem: good",
            ),
            (
                &["-cert", "client-revoked.cert.pem"],
                "client-revoked.cert.pem: revoked",
            ),
            (
                &["-cert", "client-revoked-ocsp.cert.pem"],
                "client-revoked-ocsp.cert.pem: revoked",
            ),
            (&["-serial", "0x7f0102030405"], "0x7f0102030405: unknown"),
        ];
        for (what, expected) in cases {
            let (stdout, stderr) = ask(&pki, &url, what);
            let context = format!("{signer} {what:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
            assert!(stdout.contains(expected), "{context}");
            assert!(stderr.contains("Response verify OK"), "{context}");
            assert!(
                !stderr.contains("nonce"),
                "nonce missing or wrong: {context}"
            );
            assert!(stdout.contains("OCSP Nonce"), "{context}");
            assert!(stdout.contains("Next Update:"), "{context}");
            if expected.contains("revoked") {
                assert!(stdout.contains("Reason: keyCompromise"), "{context}");
            }
            if signer == "delegated" {
                assert!(
                    stdout.contains("ocsp-responder"),
                    "responder certificate sent: {context}"
                );
            }
        }
        stop(server, &[crl_port, ocsp_port]);
    }
}
