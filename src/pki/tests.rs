use std::os::unix::fs::PermissionsExt;

use x509_parser::prelude::*;

use super::*;

fn generated() -> (tempfile::TempDir, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::parse(catalog::DEFAULT_CATALOG, "certs/catalog.toml").unwrap();
    generate(&catalog, dir.path(), &GenerateOptions::default()).unwrap();
    let pki = Pki::load(dir.path()).unwrap();
    (dir, pki)
}

#[test]
fn keys_are_private_and_every_cert_loads() {
    let (_d, pki) = generated();
    for c in &pki.manifest.certificates {
        let mode = std::fs::metadata(pki.path(&c.key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", c.key);
        let (chain, _key) = pki.identity(&c.name).unwrap();
        assert!(!chain.is_empty());
    }
}

#[test]
fn org_number_is_in_organization_identifier_and_serial_number() {
    let (_d, pki) = generated();
    let (chain, _) = pki.identity("client-5560000001").unwrap();
    let (_, x) = X509Certificate::from_der(&chain[0]).unwrap();
    let attrs: Vec<(String, String)> = x
        .subject()
        .iter_attributes()
        .map(|a| {
            (
                a.attr_type().to_id_string(),
                a.as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        attrs.contains(&("2.5.4.97".into(), "NTRSE-5560000001".into())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("2.5.4.5".into(), "5560000001".into())),
        "{attrs:?}"
    );
}

#[test]
fn revoked_certificate_is_in_the_issuers_crl_and_every_ca_has_one() {
    let (_d, pki) = generated();
    let revoked = pki.cert("client-revoked").unwrap();
    let crls = pki.crls().unwrap();
    // root and inter, the trusted hierarchy
    assert_eq!(crls.len(), 2);
    let serials: Vec<String> = crls
        .iter()
        .flat_map(|c| {
            let (_, crl) = CertificateRevocationList::from_der(c).unwrap();
            crl.iter_revoked_certificates()
                .map(|r| generate::hex(r.raw_serial()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut want = vec![
        revoked.serial.clone(),
        pki.cert("server-revoked").unwrap().serial.clone(),
    ];
    let mut serials = serials;
    serials.sort();
    want.sort();
    assert_eq!(serials, want);
}

#[test]
fn crl_distribution_point_names_the_issuer() {
    let (_d, pki) = generated();
    let (chain, _) = pki.identity("client-5560000002").unwrap();
    let (_, x) = X509Certificate::from_der(&chain[0]).unwrap();
    let dp = x
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(p) => Some(format!("{p:?}")),
            _ => None,
        })
        .unwrap();
    assert!(
        dp.contains(&format!("{}/inter.crl", pki.manifest.crl_base_url)),
        "{dp}"
    );
    assert!(pki.manifest.crl_base_url.starts_with("http://127.0.0.1:"));
}

#[test]
fn tampered_certificates_are_tampered() {
    let (_d, pki) = generated();
    // corrupted signature: still parses, no longer verifies against the issuer
    let (chain, _) = pki.identity("client-bad-signature").unwrap();
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let (_, inter) = X509Certificate::from_der(&chain[1]).unwrap();
    assert!(leaf.verify_signature(Some(inter.public_key())).is_err());
    let (chain, _) = pki.identity("client-5560000001").unwrap();
    let (_, good) = X509Certificate::from_der(&chain[0]).unwrap();
    assert!(good.verify_signature(Some(inter.public_key())).is_ok());
    // weak key really is RSA-1024
    let (chain, _) = pki.identity("client-weak-key").unwrap();
    let (_, weak) = X509Certificate::from_der(&chain[0]).unwrap();
    match weak.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(r) => assert_eq!(r.key_size(), 1024),
        other => panic!("not RSA: {other:?}"),
    }
}

#[test]
fn rsa_twins_are_rsa_2048_with_the_same_names_as_their_ec_originals() {
    let (_d, pki) = generated();
    for (rsa, ec) in [
        ("iut-server-rsa", "iut-server"),
        ("client-5560000001-rsa", "client-5560000001"),
    ] {
        let (chain, _key) = pki.identity(rsa).unwrap();
        assert_eq!(rsa_key_bits(&chain[0]), Some(2048), "{rsa}");
        assert_eq!(pki.cert(rsa).unwrap().key_algorithm, "RSA 2048");
        let (ec_chain, _) = pki.identity(ec).unwrap();
        assert_eq!(rsa_key_bits(&ec_chain[0]), None, "{ec} stays EC");
        assert_eq!(org_number(&chain[0]), org_number(&ec_chain[0]));
        assert_eq!(pki.cert(rsa).unwrap().sans, pki.cert(ec).unwrap().sans);
        // Same issuing CA: one trust anchor and CRL bundle serves both.
        assert_eq!(chain[1..], ec_chain[1..]);
    }
    let (client, _) = pki.identity("client-5560000001-rsa").unwrap();
    assert_eq!(org_number(&client[0]).as_deref(), Some("5560000001"));
    // The server twin answers to the same name, so SNI and verification need no change.
    let (server, _) = pki.identity("iut-server-rsa").unwrap();
    let (_, x) = X509Certificate::from_der(&server[0]).unwrap();
    assert!(x.subject().to_string().ends_with("CN=iut.localhost"));
}

#[test]
fn expiry_names_crls_and_certificates_that_ran_out() {
    let (_d, pki) = generated();
    let now = ::time::OffsetDateTime::now_utc();
    assert_eq!(
        pki.expiry(now, ::time::Duration::days(14)),
        Expiry::default()
    );
    let soon = pki.expiry(
        now + ::time::Duration::days(355),
        ::time::Duration::days(14),
    );
    assert!(soon.expired.is_empty(), "{soon:?}");
    assert!(
        soon.expiring
            .iter()
            .any(|e| e.starts_with("the CRL root.crl.pem ends")),
        "{soon:?}"
    );
    let late = pki.expiry(
        now + ::time::Duration::days(400),
        ::time::Duration::days(14),
    );
    assert!(
        late.expired
            .iter()
            .any(|e| e.starts_with("the CRL inter.crl.pem ended")),
        "{late:?}"
    );
    assert!(
        late.expired
            .iter()
            .any(|e| e.starts_with("the certificate client-5560000001 ended")),
        "{late:?}"
    );
}

/// Whether a client verifier built from the PKI's roots and CRL bundle lets `name` in.
fn verifies(pki: &Pki, name: &str) -> Result<(), rustls::Error> {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for r in pki.trust_roots().unwrap() {
        roots.add(r).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .with_crls(pki.crls().unwrap())
            .build()
            .unwrap();
    let (chain, _) = pki.identity(name).unwrap();
    verifier
        .verify_client_cert(&chain[0], &chain[1..], rustls_pki_types::UnixTime::now())
        .map(|_| ())
}

#[test]
fn refresh_reissues_the_crls_with_the_same_keys_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::parse(catalog::DEFAULT_CATALOG, "certs/catalog.toml").unwrap();
    let opts = GenerateOptions {
        crl_lifetime: std::time::Duration::from_secs(10 * 86_400),
        ..GenerateOptions::default()
    };
    generate(&catalog, dir.path(), &opts).unwrap();
    let pki = Pki::load(dir.path()).unwrap();
    let now = ::time::OffsetDateTime::now_utc();
    // A ten-day CRL is what the run's 14-day warning is for.
    let soon = pki.expiry(now, ::time::Duration::days(14));
    assert!(
        soon.expiring.iter().all(|e| e.starts_with("the CRL")),
        "{soon:?}"
    );
    assert_eq!(
        soon.expiring.len(),
        pki.manifest.authorities.len(),
        "{soon:?}"
    );

    let crl_files = |pki: &Pki| -> Vec<String> {
        pki.manifest
            .authorities
            .iter()
            .map(|a| a.crl.clone())
            .chain([pki.manifest.crl_bundle.clone()])
            .collect()
    };
    let snapshot = |skip: &[String]| -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                !skip
                    .iter()
                    .any(|s| name == *s || name == s.replace(".crl.pem", ".crl"))
            })
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        all.sort();
        all
    };
    let revoked = |pki: &Pki| -> Vec<(String, Vec<Vec<u8>>)> {
        pki.manifest
            .authorities
            .iter()
            .map(|a| {
                let der =
                    rustls_pki_types::CertificateRevocationListDer::from_pem_file(pki.path(&a.crl))
                        .unwrap();
                let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).unwrap();
                (
                    a.name.clone(),
                    crl.iter_revoked_certificates()
                        .map(|r| r.raw_serial().to_vec())
                        .collect(),
                )
            })
            .collect()
    };
    let before = snapshot(&crl_files(&pki));
    let revoked_before = revoked(&pki);
    assert!(
        revoked_before.iter().any(|(_, r)| !r.is_empty()),
        "the catalogue revokes something"
    );
    assert!(verifies(&pki, "client-revoked").is_err());

    let done = refresh(dir.path(), std::time::Duration::from_secs(800 * 86_400)).unwrap();
    assert_eq!(done.len(), pki.manifest.authorities.len());
    assert!(done.iter().all(|r| r.number == 2), "{done:?}");
    let pki = Pki::load(dir.path()).unwrap();
    // Keys, certificates, chains and the manifest are byte for byte what they were.
    assert_eq!(snapshot(&crl_files(&pki)), before);
    assert_eq!(revoked(&pki), revoked_before);
    let e = pki.expiry(
        now + ::time::Duration::days(700),
        ::time::Duration::days(14),
    );
    assert!(
        e.expired
            .iter()
            .chain(&e.expiring)
            .all(|x| !x.starts_with("the CRL")),
        "{e:?}"
    );
    for a in &pki.manifest.authorities {
        let der = rustls_pki_types::CertificateRevocationListDer::from_pem_file(pki.path(&a.crl))
            .unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).unwrap();
        let cert = rustls_pki_types::CertificateDer::from_pem_file(pki.path(&a.cert)).unwrap();
        let (_, cert) = X509Certificate::from_der(cert.as_ref()).unwrap();
        assert_eq!(crl.issuer().as_raw(), cert.subject().as_raw(), "{}", a.name);
        assert_eq!(
            crl.crl_number().map(|n| n.to_string()).as_deref(),
            Some("2")
        );
    }
    // rustls (webpki) checks the refreshed CRLs' signatures and issuers: the revoked
    // certificate is still refused and a valid one still let in.
    assert!(verifies(&pki, "client-5560000001").is_ok());
    let refused = verifies(&pki, "client-revoked").unwrap_err();
    assert!(format!("{refused:?}").contains("Revoked"), "{refused:?}");
}

#[test]
fn refresh_of_a_folder_without_a_pki_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = refresh(dir.path(), std::time::Duration::from_secs(86_400)).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("catalog.json") && text.contains("provsten pki init"),
        "{text}"
    );
}
