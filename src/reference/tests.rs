//! In-process checks of the reference IUT through the simulated client (the suite proper
//! runs it as a child process, like any IUT).

use std::sync::Arc;
use std::time::Duration;

use super::defects::{Defect, Defects};
use super::server::Running;
use super::*;
use crate::peers::{request, ClientSpec, Identity, Outcome, Refusal, Target, TlsVersions};
use crate::pki::{generate, Catalog, GenerateOptions, Pki};

struct Fixture {
    _dir: tempfile::TempDir,
    pki: Pki,
}

fn pki() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::parse(crate::pki::catalog::DEFAULT_CATALOG, "catalog").unwrap();
    generate(&catalog, dir.path(), &GenerateOptions::default()).unwrap();
    let pki = Pki::load(dir.path()).unwrap();
    Fixture { _dir: dir, pki }
}

async fn iut(f: &Fixture, defects: &[Defect]) -> Running {
    iut_with(f, defects, false).await
}

/// The reference on free loopback ports; `ocsp`: it asks the responder too.
async fn iut_with(f: &Fixture, defects: &[Defect], ocsp: bool) -> Running {
    start(ReferenceOptions {
        pki_dir: f.pki.dir.clone(),
        api: vec!["127.0.0.1:0".parse().unwrap()],
        allowlist: None,
        trusted_proxies: vec![],
        admin: "127.0.0.1:0".parse().unwrap(),
        server_cert: "iut-server".into(),
        registered_orgs: vec!["5560000001".into(), "5560000002".into()],
        defects: Defects::new(defects.iter().copied()),
        ocsp,
        inner: None,
        receipt_url: None,
    })
    .await
    .unwrap()
}

async fn get(
    f: &Fixture,
    r: &Running,
    cert: Option<&str>,
    path: &str,
    versions: TlsVersions,
) -> crate::peers::Exchange {
    let identity = cert.map(|name| {
        let (chain, key) = f.pki.identity(name).unwrap();
        Identity {
            name: name.into(),
            chain,
            key: Arc::new(key),
        }
    });
    let mut spec = ClientSpec::new(identity, Duration::from_secs(5));
    spec.versions = versions;
    let target = Target {
        addr: r.api[0],
        server_name: "iut.localhost".into(),
    };
    request(&target, &spec, "GET", path).await.unwrap()
}

const OWN: &str = "/v1/orgs/5560000001/fullmakter";

#[tokio::test]
async fn valid_client_reads_its_own_data_on_tls12_and_tls13() {
    let f = pki();
    let r = iut(&f, &[]).await;
    for v in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let ex = get(&f, &r, Some("client-5560000001"), OWN, v).await;
        assert_eq!(ex.status(), Some(200), "{ex:?}");
        assert!(ex.body().contains("FM-5560000001-001"));
    }
}

#[tokio::test]
async fn every_bad_client_certificate_is_refused_without_data() {
    let f = pki();
    let r = iut(&f, &[]).await;
    for cert in [
        "client-expired",
        "client-not-yet-valid",
        "client-revoked",
        "client-untrusted-root",
        "client-self-signed",
        "client-eku-server",
        "client-weak-key",
        "client-bad-signature",
        "client-key-mismatch",
    ] {
        for v in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
            let ex = get(&f, &r, Some(cert), OWN, v).await;
            assert!(
                matches!(&ex.outcome, Outcome::Refused { refusal } if refusal.is_by_server()),
                "{cert} {v:?}: {ex:?}"
            );
        }
    }
    let ex = get(&f, &r, None, OWN, TlsVersions::Tls13Only).await;
    assert!(
        matches!(&ex.outcome, Outcome::Refused { refusal: Refusal::TlsAlert { alert, .. } } if alert == "CertificateRequired"),
        "{ex:?}"
    );
    for cert in ["client-no-org", "client-unregistered-org"] {
        let ex = get(&f, &r, Some(cert), OWN, TlsVersions::Any).await;
        assert_eq!(ex.status(), Some(403), "{cert}: {ex:?}");
    }
    let other = get(
        &f,
        &r,
        Some("client-5560000001"),
        "/v1/orgs/5560000002/fullmakter",
        TlsVersions::Any,
    )
    .await;
    assert_eq!(other.status(), Some(404), "{other:?}");
}

#[tokio::test]
async fn each_certificate_defect_lets_exactly_its_certificate_in() {
    let f = pki();
    let cases = [
        (Defect::AcceptExpiredCert, "client-expired"),
        (Defect::AcceptNotYetValidCert, "client-not-yet-valid"),
        (Defect::IgnoreCrl, "client-revoked"),
        (Defect::TrustAnyRoot, "client-untrusted-root"),
        (Defect::TrustAnyRoot, "client-self-signed"),
        (Defect::IgnoreEku, "client-eku-server"),
        (Defect::AcceptWeakKey, "client-weak-key"),
        (Defect::IgnoreCertSignature, "client-bad-signature"),
        (Defect::SkipProofOfPossession, "client-key-mismatch"),
    ];
    for (defect, cert) in cases {
        let r = iut(&f, &[defect]).await;
        for v in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
            let ex = get(&f, &r, Some(cert), OWN, v).await;
            assert_eq!(ex.status(), Some(200), "{defect} {cert} {v:?}: {ex:?}");
        }
        // and the defect does not let in the expired certificate unless it is that defect
        if defect != Defect::AcceptExpiredCert {
            let ex = get(&f, &r, Some("client-expired"), OWN, TlsVersions::Any).await;
            assert!(!ex.granted(), "{defect}: {ex:?}");
        }
    }
}

/// The reference presents its ECDSA and RSA certificates by the client's signature
/// algorithms, so the weak-suite probe examines both key types, and rustls refuses every
/// weak offer; with `accept-weak-suites` the same offers get ServerHellos.
#[tokio::test]
async fn weak_suites_are_examined_with_both_certificates_and_refused_unless_seeded() {
    use crate::network::tls_probe::{examine_weak_suites, ProbeOutcome, ServerKey};
    let f = pki();
    let compliant = iut(&f, &[]).await;
    let addr = compliant.api[0];
    let classes = examine_weak_suites(
        || tokio::net::TcpStream::connect(addr),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(classes.len(), 2);
    for c in &classes {
        assert!(c.accepted.is_empty(), "{c:?}");
        assert!(
            matches!(&c.answer, ProbeOutcome::Alert { description, .. } if description == "handshake_failure"),
            "{c:?}"
        );
        // The control got the certificate of its key type: the suite says which.
        let Some(ProbeOutcome::ServerHello {
            cipher_suite_name: Some(name),
            ..
        }) = &c.control
        else {
            panic!("control not accepted: {c:?}");
        };
        let want = match c.key {
            ServerKey::Rsa => "TLS_ECDHE_RSA_",
            ServerKey::Ecdsa => "TLS_ECDHE_ECDSA_",
        };
        assert!(name.starts_with(want), "{c:?}");
        assert_eq!(c.not_examinable(), None);
    }
    drop(compliant);

    let seeded = iut(&f, &[Defect::AcceptWeakSuites]).await;
    let addr = seeded.api[0];
    let classes = examine_weak_suites(
        || tokio::net::TcpStream::connect(addr),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(
        classes[0].accepted[0].suite == "TLS_RSA_WITH_AES_128_CBC_SHA (0x002f)",
        "{classes:?}"
    );
    assert!(
        classes[1].accepted[0].suite == "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA (0xc009)",
        "{classes:?}"
    );
    // Modern clients still get rustls: the defect answers weak-only hellos alone.
    let ok = get(
        &f,
        &seeded,
        Some("client-5560000001-rsa"),
        OWN,
        TlsVersions::Tls12Only,
    )
    .await;
    assert_eq!(ok.status(), Some(200), "{}", ok.describe());
}

/// A hello that arrives in pieces is still read whole by the weak-suite defect (it waits
/// for the kernel to say more bytes came, not on a timer), and a hello cut short by the
/// client's close is left alone.
#[tokio::test]
async fn weak_suite_defect_reads_a_hello_split_over_segments() {
    use crate::network::tls_probe::{classify, client_hello, ProbeOutcome, ProbeSpec, ServerKey};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = pki();
    let r = iut(&f, &[Defect::AcceptWeakSuites]).await;
    let hello = client_hello(&ProbeSpec::weak_suites_for(ServerKey::Rsa, None));
    let mut tcp = tokio::net::TcpStream::connect(r.api[0]).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    for piece in hello.chunks(30) {
        // The defect answers once it has read the suites, and closes: the rest of the
        // hello may meet a closed socket.
        if tcp.write_all(piece).await.is_err() {
            break;
        }
        // The pause makes each piece its own segment: that is the case under test.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let outcome = classify(&answer).unwrap();
    assert!(
        matches!(
            outcome,
            ProbeOutcome::ServerHello {
                cipher_suite: 0x002f,
                ..
            }
        ),
        "{outcome:?}"
    );

    // Cut short: the defect gives up at the close, long before its 5 s deadline.
    let mut tcp = tokio::net::TcpStream::connect(r.api[0]).await.unwrap();
    tcp.write_all(&hello[..50]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

async fn iut_ocsp(f: &Fixture, defects: &[Defect]) -> Running {
    iut_with(f, defects, true).await
}

#[tokio::test]
async fn with_ocsp_a_certificate_revoked_since_the_crl_is_refused_unless_ignores_ocsp() {
    use crate::pki::ocsp::Signer;
    use crate::pki::publish::OcspServer;
    let f = pki();
    for signer in [Signer::Ca, Signer::Delegated] {
        let responder = OcspServer::start(&f.pki, signer).await.unwrap().unwrap();
        let r = iut_ocsp(&f, &[]).await;
        let ok = get(&f, &r, Some("client-5560000001"), OWN, TlsVersions::Any).await;
        assert_eq!(ok.status(), Some(200), "{signer:?}: {ok:?}");
        for v in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
            let ex = get(&f, &r, Some("client-revoked-ocsp"), OWN, v).await;
            assert_eq!(ex.status(), Some(403), "{signer:?} {v:?}: {ex:?}");
            assert!(ex.body().contains("revoked (OCSP)"), "{ex:?}");
        }
        // One query per serial: the answer is kept.
        let asked = responder.responder.queries();
        let late: Vec<_> = asked
            .iter()
            .filter(|q| q.certificate.as_deref() == Some("client-revoked-ocsp"))
            .collect();
        assert_eq!(late.len(), 1, "{asked:?}");
        assert!(late[0].nonce && late[0].answer == "revoked");
        drop(r);
        responder.stop().await;
    }
    // The seeded defect asks nobody; without the flag the CRL alone cannot know.
    let _responder = OcspServer::start(&f.pki, Signer::Ca)
        .await
        .unwrap()
        .unwrap();
    for r in [
        iut_ocsp(&f, &[Defect::IgnoresOcsp]).await,
        iut(&f, &[]).await,
    ] {
        let ex = get(&f, &r, Some("client-revoked-ocsp"), OWN, TlsVersions::Any).await;
        assert_eq!(ex.status(), Some(200), "{ex:?}");
    }
}

#[tokio::test]
async fn with_ocsp_and_no_responder_answering_clients_are_refused() {
    let f = pki();
    let r = iut_ocsp(&f, &[]).await;
    let ex = get(&f, &r, Some("client-5560000001"), OWN, TlsVersions::Any).await;
    assert_eq!(ex.status(), Some(403), "fails closed: {ex:?}");
    assert!(ex.body().contains("OCSP responder"), "{ex:?}");
}
