//! The raw ClientHello probe against real `openssl s_server` processes: one that
//! speaks old TLS (the check can fail) and one that speaks only TLS 1.2 (the check
//! can pass), so a refusal reported by the probe is known to mean something.
//!
//! CI installs the `openssl` CLI; set `PROVSTEN_SKIP_OPENSSL=1` to skip these tests
//! on machines without it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use provsten::network::tls_probe::*;

/// Generous: OpenSSL answers a ClientHello within milliseconds on loopback.
const PROBE_DEADLINE: Duration = Duration::from_secs(10);
/// How long `s_server` may take to start listening.
const READY_DEADLINE: Duration = Duration::from_secs(15);
/// Attempts at a free port, since another process may take it between our probe
/// for a free port and `s_server`'s bind.
const START_ATTEMPTS: usize = 3;

/// A running `openssl s_server`; the process is killed on drop (panics included).
struct OpensslServer {
    addr: SocketAddr,
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// False (after saying so) when the tests are told to skip; panics when `openssl`
/// is missing, so CI cannot pass by silently skipping.
fn openssl_required() -> bool {
    if std::env::var_os("PROVSTEN_SKIP_OPENSSL").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_OPENSSL=1");
        return false;
    }
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "`openssl version` failed ({}): {}; set PROVSTEN_SKIP_OPENSSL=1 to skip",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "the `openssl` CLI is needed on PATH ({e}); install it or set \
             PROVSTEN_SKIP_OPENSSL=1 to skip"
        ),
    }
}

/// A throwaway self-signed RSA certificate and key in `dir`.
fn self_signed_cert(dir: &Path) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("run openssl req");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Starts `openssl s_server` with `args` on a free loopback port and waits until
/// it accepts TCP connections.
async fn start_s_server(args: &[&str]) -> OpensslServer {
    let dir = tempfile::tempdir().expect("tempdir");
    self_signed_cert(dir.path());
    let stderr_path = dir.path().join("s_server.stderr");
    let mut last_stderr = String::new();
    for _ in 0..START_ATTEMPTS {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
        let child = Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(addr.to_string())
            .arg("-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("-key")
            .arg(dir.path().join("key.pem"))
            // -www: answer HTTP after a handshake instead of reading stdin.
            .args(["-www", "-quiet"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn openssl s_server");
        let mut child = KillOnDrop(child);
        let ready_by = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.0.try_wait() {
                // Most likely lost the port race: try another port.
                last_stderr = format!(
                    "exited with {status}: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
                break;
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return OpensslServer {
                    addr,
                    _child: child,
                    _dir: dir,
                };
            }
            assert!(
                tokio::time::Instant::now() < ready_by,
                "openssl s_server {args:?} not listening on {addr} after {READY_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("openssl s_server {args:?} did not start: {last_stderr}");
}

async fn probe_ok(server: &OpensslServer, spec: &ProbeSpec) -> ProbeOutcome {
    probe(server.addr, spec, PROBE_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.addr))
}

fn server_hello(version: &str, outcome: &ProbeOutcome) -> u16 {
    match outcome {
        ProbeOutcome::ServerHello {
            version: got,
            cipher_suite,
            ..
        } if got == version => *cipher_suite,
        other => panic!("expected a {version} ServerHello, got {other:?}"),
    }
}

fn alert(description: &str) -> ProbeOutcome {
    ProbeOutcome::Alert {
        level: "fatal".to_owned(),
        description: description.to_owned(),
    }
}

/// OpenSSL 3 keeps TLS 1.0/1.1 out of security level 1 and up (SHA-1/MD5 in the
/// handshake signature), so old-TLS servers need `@SECLEVEL=0`.
const LEGACY_CIPHERS: &str = "ALL:@SECLEVEL=0";

#[tokio::test]
async fn tls11_server_accepts_tls11_probe() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_1", "-cipher", LEGACY_CIPHERS]).await;
    let spec = ProbeSpec::legacy(ProbeVersion::Tls11, Some("localhost".into()));
    let outcome = probe_ok(&server, &spec).await;
    assert!(outcome.accepted(), "{outcome:?}");
    let suite = server_hello("TLS 1.1", &outcome);
    assert!(spec.cipher_suites.contains(&suite), "{outcome:?}");
}

#[tokio::test]
async fn tls10_server_accepts_tls10_probe() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1", "-cipher", LEGACY_CIPHERS]).await;
    let spec = ProbeSpec::legacy(ProbeVersion::Tls10, Some("localhost".into()));
    let outcome = probe_ok(&server, &spec).await;
    let suite = server_hello("TLS 1.0", &outcome);
    assert!(spec.cipher_suites.contains(&suite), "{outcome:?}");
}

/// A TLS 1.2 ClientHello also offers every lower version, so an old server
/// answers it with its own version: acceptance alone does not say which
/// version was agreed.
#[tokio::test]
async fn tls12_probe_of_tls11_server_is_answered_with_tls11() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_1", "-cipher", LEGACY_CIPHERS]).await;
    let outcome = probe_ok(&server, &ProbeSpec::legacy(ProbeVersion::Tls12, None)).await;
    server_hello("TLS 1.1", &outcome);
}

#[tokio::test]
async fn tls12_only_server_refuses_tls10_and_tls11_with_protocol_version() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_2"]).await;
    for version in [ProbeVersion::Tls10, ProbeVersion::Tls11] {
        let spec = ProbeSpec::legacy(version, Some("localhost".into()));
        let outcome = probe_ok(&server, &spec).await;
        assert_eq!(outcome, alert("protocol_version"), "{version}");
    }
    // The same server accepts TLS 1.2, so the refusals above are about the version.
    let outcome = probe_ok(&server, &ProbeSpec::legacy(ProbeVersion::Tls12, None)).await;
    server_hello("TLS 1.2", &outcome);
}

/// OpenSSL 3 with no version flags still enables TLS 1.0/1.1, but at its default
/// security level it has no suite or signature algorithm for them and fails with
/// `internal_error` instead of `protocol_version`: a refusal's alert name depends
/// on the server, so the verdict must not.
#[tokio::test]
async fn default_openssl3_server_refuses_tls10_and_tls11_with_internal_error() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&[]).await;
    for version in [ProbeVersion::Tls10, ProbeVersion::Tls11] {
        let outcome = probe_ok(&server, &ProbeSpec::legacy(version, None)).await;
        assert_eq!(outcome, alert("internal_error"), "{version}");
    }
}

#[tokio::test]
async fn tls13_only_server_refuses_every_probe_with_protocol_version() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_3"]).await;
    for version in [
        ProbeVersion::Tls10,
        ProbeVersion::Tls11,
        ProbeVersion::Tls12,
    ] {
        let outcome = probe_ok(&server, &ProbeSpec::legacy(version, None)).await;
        assert_eq!(outcome, alert("protocol_version"), "{version}");
    }
}

#[tokio::test]
async fn ecdhe_aead_only_server_refuses_weak_suites_with_handshake_failure() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_2", "-cipher", "ECDHE+AESGCM:ECDHE+CHACHA20"]).await;
    let outcome = probe_ok(&server, &ProbeSpec::weak_suites(None)).await;
    assert_eq!(outcome, alert("handshake_failure"));
}

/// OpenSSL 3.0's default cipher list still has plain-RSA key exchange, so a
/// server on OpenSSL defaults fails the weak-suite check.
#[tokio::test]
async fn default_openssl3_tls12_server_accepts_plain_rsa_suite() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_2"]).await;
    let outcome = probe_ok(&server, &ProbeSpec::weak_suites(None)).await;
    assert_eq!(server_hello("TLS 1.2", &outcome), 0x002f, "{outcome:?}");
}

#[tokio::test]
async fn seclevel0_tls12_server_accepts_a_weak_suite() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_2", "-cipher", LEGACY_CIPHERS]).await;
    let outcome = probe_ok(&server, &ProbeSpec::weak_suites(None)).await;
    let suite = server_hello("TLS 1.2", &outcome);
    assert!(suites::WEAK.contains(&suite), "{outcome:?}");
}

#[tokio::test]
async fn probe_stream_works_over_a_caller_bound_socket() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_2"]).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .expect("bind source address");
    let stream = socket.connect(server.addr).await.expect("connect");
    let spec = ProbeSpec::legacy(ProbeVersion::Tls11, None);
    let outcome = probe_stream(stream, &spec, PROBE_DEADLINE).await;
    assert_eq!(outcome, alert("protocol_version"));
}

/// `s_server` has one (RSA) certificate: with OpenSSL's defaults the RSA offer gets plain
/// RSA first and every other weak RSA suite after it, and the ECDSA suites are reported as
/// not examinable rather than refused.
#[tokio::test]
async fn examination_of_a_default_rsa_only_server_lists_its_weak_suites_and_no_ecdsa() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_2"]).await;
    let addr = server.addr;
    let classes = examine_weak_suites(
        || tokio::net::TcpStream::connect(addr),
        None,
        PROBE_DEADLINE,
    )
    .await
    .expect("examine");
    let [rsa, ecdsa] = &classes[..] else {
        panic!("{classes:?}");
    };
    assert_eq!(rsa.key, ServerKey::Rsa);
    assert_eq!(
        rsa.accepted[0].suite, "TLS_RSA_WITH_AES_128_CBC_SHA (0x002f)",
        "{rsa:?}"
    );
    assert!(
        rsa.accepted
            .iter()
            .any(|a| a.suite == "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA (0xc013)"),
        "{rsa:?}"
    );
    assert_eq!(rsa.answer, alert("handshake_failure"), "{rsa:?}");
    assert_eq!(ecdsa.key, ServerKey::Ecdsa);
    assert!(ecdsa.accepted.is_empty(), "{ecdsa:?}");
    assert!(
        ecdsa.not_examinable().is_some_and(|m| m
            .starts_with("ECDSA-authenticated suites: the server offered no ECDSA certificate")),
        "{ecdsa:?}"
    );
}

/// The same server restricted to ECDHE+AEAD refuses the weak RSA offer and accepts the
/// control: an examined refusal.
#[tokio::test]
async fn examination_of_an_ecdhe_aead_rsa_server_is_an_examined_refusal() {
    if !openssl_required() {
        return;
    }
    let server = start_s_server(&["-tls1_2", "-cipher", "ECDHE+AESGCM:ECDHE+CHACHA20"]).await;
    let addr = server.addr;
    let classes = examine_weak_suites(
        || tokio::net::TcpStream::connect(addr),
        None,
        PROBE_DEADLINE,
    )
    .await
    .expect("examine");
    let rsa = &classes[0];
    assert!(rsa.accepted.is_empty() && rsa.examined(), "{rsa:?}");
    assert_eq!(rsa.answer, alert("handshake_failure"));
    assert!(!classes[1].examined(), "{:?}", classes[1]);
}

/// A running HAProxy TLS frontend; killed on drop.
struct Haproxy {
    addr: SocketAddr,
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
}

/// HAProxy with both server certificates as the generated provsten.toml says: the chain
/// and key of each concatenated into `iut-server.pem.ecdsa` and `iut-server.pem.rsa`, and
/// `crt iut-server.pem`. `None` (after saying so) when told to skip.
async fn start_haproxy(ciphers: &str) -> Option<Haproxy> {
    if std::env::var_os("PROVSTEN_SKIP_HAPROXY").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_HAPROXY=1");
        return None;
    }
    let haproxy = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("haproxy is needed (apt-get install haproxy), or PROVSTEN_SKIP_HAPROXY=1");
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = provsten::pki::Catalog::parse(
        provsten::pki::catalog::DEFAULT_CATALOG,
        "certs/catalog.toml",
    )
    .expect("catalogue");
    let pki = dir.path().join("pki");
    provsten::pki::generate(&catalog, &pki, &Default::default()).expect("PKI");
    for (name, suffix) in [("iut-server", "ecdsa"), ("iut-server-rsa", "rsa")] {
        let chain = std::fs::read_to_string(pki.join(format!("{name}.chain.pem"))).expect("chain");
        let key = std::fs::read_to_string(pki.join(format!("{name}.key.pem"))).expect("key");
        std::fs::write(
            dir.path().join(format!("iut-server.pem.{suffix}")),
            chain + &key,
        )
        .expect("bundle");
    }
    let mut last_log = String::new();
    for _ in 0..START_ATTEMPTS {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
                 frontend api\n  bind {addr} ssl crt {}/iut-server.pem ssl-min-ver TLSv1.2 ciphers {ciphers}\n\
                 \x20 http-request return status 200 content-type application/json string '{{}}'\n",
                dir.path().display()
            ),
        )
        .expect("config");
        let log_path = dir.path().join("haproxy.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let mut child = KillOnDrop(child);
        let ready_by = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.0.try_wait() {
                last_log = format!(
                    "exited with {status}: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
                break;
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Some(Haproxy {
                    addr,
                    _child: child,
                    _dir: dir,
                });
            }
            assert!(
                tokio::time::Instant::now() < ready_by,
                "haproxy not listening on {addr} after {READY_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("haproxy did not start: {last_log}");
}

async fn examine_haproxy(server: &Haproxy) -> Vec<WeakSuiteClass> {
    let addr = server.addr;
    // HAProxy chooses between its certificates only under the name the client asks for
    // (SNI); without it every client gets the first certificate.
    examine_weak_suites(
        || tokio::net::TcpStream::connect(addr),
        Some("iut.localhost".into()),
        PROBE_DEADLINE,
    )
    .await
    .expect("examine")
}

/// The HAProxy how-to in the generated provsten.toml really gives HAProxy both
/// certificates: with OpenSSL's DEFAULT list both key types choose weak suites.
#[tokio::test]
async fn haproxy_with_an_rsa_and_ecdsa_bundle_and_default_ciphers_chooses_weak_suites_for_both() {
    let Some(server) = start_haproxy("DEFAULT").await else {
        return;
    };
    let classes = examine_haproxy(&server).await;
    // HAProxy follows its own order (prefer-server-ciphers), so look for, not at, a suite.
    let chose = |i: usize, suite: &str| classes[i].accepted.iter().any(|a| a.suite == suite);
    assert!(
        chose(0, "TLS_RSA_WITH_AES_128_CBC_SHA (0x002f)")
            && chose(0, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA (0xc013)"),
        "{classes:?}"
    );
    assert!(
        chose(1, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA (0xc009)"),
        "{classes:?}"
    );
}

#[tokio::test]
async fn haproxy_with_ecdhe_aead_ciphers_refuses_weak_suites_for_both_certificates() {
    let Some(server) = start_haproxy("ECDHE+AESGCM:ECDHE+CHACHA20").await else {
        return;
    };
    for class in examine_haproxy(&server).await {
        assert!(class.accepted.is_empty() && class.examined(), "{class:?}");
        assert_eq!(class.answer, alert("handshake_failure"), "{class:?}");
    }
}
