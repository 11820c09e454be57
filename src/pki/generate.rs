//! Issues the catalogue: keys, certificates, chains, CRLs and `catalog.json`.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, Context};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, PublicKeyData, RevocationReason, RevokedCertParams, RsaKeySize,
    SerialNumber, SubjectPublicKeyInfo,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::catalog::{Catalog, CertSpec, Eku, KeySpec, Role, Tamper, Validity};
use super::{AuthorityEntry, CertEntry, PkiManifest, MANIFEST_FILE};

/// OIDs of the subject attributes that carry the organisation number.
const OID_ORGANIZATION_IDENTIFIER: [u64; 4] = [2, 5, 4, 97];
const OID_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];
/// Authority Information Access (RFC 5280 4.2.2.1) and id-pkix-ocsp-nocheck (RFC 6960).
const OID_AUTHORITY_INFO_ACCESS: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 1];
const OID_OCSP_NOCHECK: [u64; 10] = [1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// The Authority Information Access extension naming `url` as the OCSP responder.
fn aia_extension(url: &str) -> anyhow::Result<rcgen::CustomExtension> {
    use x509_cert::der::asn1::{Ia5String, ObjectIdentifier};
    use x509_cert::der::Encode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
    const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
    let uri = Ia5String::new(url).map_err(|e| anyhow!("OCSP URL {url:?} is not ASCII: {e}"))?;
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: ID_AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(uri),
    }]);
    let der = aia
        .to_der()
        .map_err(|e| anyhow!("encoding the Authority Information Access for {url}: {e}"))?;
    Ok(rcgen::CustomExtension::from_oid_content(
        &OID_AUTHORITY_INFO_ACCESS,
        der,
    ))
}

/// Where the CRLs are published over HTTP unless told otherwise (written into every
/// certificate's CRL distribution point): a loopback port free when the PKI is made, so
/// runs with different PKIs never share one (a fixed port made concurrent runs collide).
/// The PKI pins it for every later run, hence a port outside the ephemeral range.
pub fn free_crl_base_url() -> String {
    let port = crate::network::addr::reserve_port().unwrap_or(8479);
    format!("http://127.0.0.1:{port}/crl")
}

/// Where the OCSP responder answers unless told otherwise: a free loopback port, pinned by
/// the PKI as the CRL port is (see [`free_crl_base_url`]).
pub fn free_ocsp_base_url() -> String {
    let port = crate::network::addr::reserve_port().unwrap_or(8480);
    format!("http://127.0.0.1:{port}/ocsp")
}

/// How long a CRL lasts unless told otherwise: a year, as long as the valid certificates.
/// A CRL past its nextUpdate makes OpenSSL-based servers refuse every client.
pub const DEFAULT_CRL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

pub struct GenerateOptions {
    pub crl_base_url: String,
    /// The OCSP responder's URL written into every issued certificate's Authority
    /// Information Access (id-ad-ocsp); `None`: no AIA.
    pub ocsp_base_url: Option<String>,
    /// From now to each CRL's nextUpdate.
    pub crl_lifetime: std::time::Duration,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            crl_base_url: free_crl_base_url(),
            ocsp_base_url: Some(free_ocsp_base_url()),
            crl_lifetime: DEFAULT_CRL_LIFETIME,
        }
    }
}

struct IssuedCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// PEMs of the CA and its parents, leaf-most first, roots excluded.
    chain_pems: Vec<String>,
    revoked: Vec<RevokedCertParams>,
}

/// Generates every authority and certificate of `catalog` into `out` (created if needed).
/// Private keys are written with mode 0600.
pub fn generate(
    catalog: &Catalog,
    out: &Path,
    opts: &GenerateOptions,
) -> anyhow::Result<PkiManifest> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let now = OffsetDateTime::now_utc();
    let base = opts.crl_base_url.trim_end_matches('/');
    let ocsp = opts
        .ocsp_base_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_string());
    let aia = match &ocsp {
        Some(url) => Some(aia_extension(url)?),
        None => None,
    };

    // RSA keys take 0.1-0.3 s each where an EC key takes microseconds: they are made on
    // their own threads from the start, while the CAs and EC certificates are issued.
    let mut rsa_keys: HashMap<String, std::thread::JoinHandle<Result<KeyPair, rcgen::Error>>> =
        catalog
            .certificates
            .iter()
            .filter(|c| c.key == KeySpec::Rsa2048)
            .map(|c| {
                let key = std::thread::spawn(|| {
                    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
                });
                (c.name.clone(), key)
            })
            .collect();
    let mut cas: HashMap<String, IssuedCa> = HashMap::new();
    let mut manifest = PkiManifest {
        generated_at: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        crl_base_url: base.to_string(),
        ocsp_base_url: ocsp.clone(),
        trust_bundle: "trust.pem".into(),
        crl_bundle: "crl-bundle.pem".into(),
        authorities: Vec::new(),
        certificates: Vec::new(),
    };

    for a in &catalog.authorities {
        let key = KeyPair::generate().context("generating a CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&a.common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(random_serial());
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.use_authority_key_identifier_extension = a.issuer.is_some();
        let (cert_pem, der, chain_pems) = match &a.issuer {
            None => {
                let c = params.self_signed(&key)?;
                (c.pem(), c.der().to_vec(), Vec::new())
            }
            Some(parent) => {
                params.crl_distribution_points = vec![CrlDistributionPoint {
                    uris: vec![format!("{base}/{parent}.crl")],
                }];
                params.custom_extensions.extend(aia.clone());
                let p = cas
                    .get(parent)
                    .ok_or_else(|| anyhow!("issuer {parent} not generated"))?;
                let c = params.signed_by(&key, &p.issuer)?;
                let mut chain = vec![c.pem()];
                chain.extend(p.chain_pems.iter().cloned());
                (c.pem(), c.der().to_vec(), chain)
            }
        };
        write_public(out, &format!("{}.cert.pem", a.name), &cert_pem)?;
        write_private(out, &format!("{}.key.pem", a.name), &key.serialize_pem())?;
        manifest.authorities.push(AuthorityEntry {
            name: a.name.clone(),
            subject: format!("CN={}", a.common_name),
            issuer: a.issuer.clone(),
            trusted: a.issuer.is_none() && a.trusted,
            cert: format!("{}.cert.pem", a.name),
            crl: format!("{}.crl.pem", a.name),
            sha256: sha256_hex(&der),
        });
        cas.insert(
            a.name.clone(),
            IssuedCa {
                issuer: Issuer::new(params, key),
                cert_pem,
                chain_pems,
                revoked: Vec::new(),
            },
        );
    }

    for spec in &catalog.certificates {
        let rsa_key = rsa_keys.remove(&spec.name);
        let entry = issue(spec, rsa_key, out, now, (base, aia.as_ref()), &mut cas)?;
        manifest.certificates.push(entry);
    }

    // One CRL per CA, root included: OpenSSL-based servers (nginx, HAProxy) and rustls's
    // whole-chain revocation check refuse every client when a CA in the chain has none.
    let mut bundle = String::new();
    let mut trust = String::new();
    for a in &catalog.authorities {
        let ca = cas
            .get(&a.name)
            .ok_or_else(|| anyhow!("authority {} lost", a.name))?;
        let pem = write_crl(
            out,
            &a.name,
            &ca.issuer,
            ca.revoked.clone(),
            1,
            now,
            opts.crl_lifetime,
        )?;
        if a.issuer.is_none() && a.trusted || is_under_trusted(catalog, &a.name) {
            bundle.push_str(&pem);
        }
        if a.issuer.is_none() && a.trusted {
            trust.push_str(&ca.cert_pem);
        }
    }
    write_public(out, "crl-bundle.pem", &bundle)?;
    write_public(out, "trust.pem", &trust)?;

    let json = serde_json::to_string_pretty(&manifest)?;
    write_public(out, MANIFEST_FILE, &json)?;
    Ok(manifest)
}

/// Signs the CRL of authority `name` and writes it as NAME.crl.pem and NAME.crl (DER, as
/// served); returns the PEM. `Pki::expiry` warns before its nextUpdate passes.
pub(super) fn write_crl(
    out: &Path,
    name: &str,
    issuer: &Issuer<'_, KeyPair>,
    revoked: Vec<RevokedCertParams>,
    number: u64,
    now: OffsetDateTime,
    lifetime: std::time::Duration,
) -> anyhow::Result<String> {
    let lifetime = Duration::try_from(lifetime)
        .map_err(|_| anyhow!("CRL lifetime {lifetime:?} is too long"))?;
    let crl = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now
            .checked_add(lifetime)
            .ok_or_else(|| anyhow!("CRL lifetime {lifetime} is too long"))?,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .with_context(|| format!("signing the CRL of {name}"))?;
    let pem = crl.pem()?;
    write_public(out, &format!("{name}.crl.pem"), &pem)?;
    fs::write(out.join(format!("{name}.crl")), crl.der().as_ref())
        .with_context(|| format!("writing {name}.crl"))?;
    Ok(pem)
}

fn is_under_trusted(catalog: &Catalog, name: &str) -> bool {
    let mut cur = catalog.authority(name);
    while let Some(a) = cur {
        match &a.issuer {
            None => return a.trusted,
            Some(p) => cur = catalog.authority(p),
        }
    }
    false
}

fn issue(
    spec: &CertSpec,
    rsa_key: Option<std::thread::JoinHandle<Result<KeyPair, rcgen::Error>>>,
    out: &Path,
    now: OffsetDateTime,
    (base, aia): (&str, Option<&rcgen::CustomExtension>),
    cas: &mut HashMap<String, IssuedCa>,
) -> anyhow::Result<CertEntry> {
    let ctx = || format!("issuing certificate {:?}", spec.name);
    let cn = spec
        .common_name
        .clone()
        .unwrap_or_else(|| spec.name.clone());
    let mut params = CertificateParams::new(spec.sans.clone()).with_context(ctx)?;
    params.distinguished_name = dn(&cn, spec.org.as_deref());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = if spec.role == Role::OcspResponder {
        vec![KeyUsagePurpose::DigitalSignature]
    } else {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ]
    };
    params.extended_key_usages = spec
        .ekus()
        .iter()
        .map(|e| match e {
            Eku::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
            Eku::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Eku::OcspSigning => ExtendedKeyUsagePurpose::OcspSigning,
        })
        .collect();
    let (nb, na) = match spec.validity {
        Validity::Valid => (now - Duration::days(1), now + Duration::days(365)),
        Validity::Expired => (now - Duration::days(60), now - Duration::days(1)),
        Validity::NotYetValid => (now + Duration::days(1), now + Duration::days(60)),
    };
    params.not_before = nb;
    params.not_after = na;
    let serial = random_serial();
    params.serial_number = Some(serial.clone());
    params.use_authority_key_identifier_extension = spec.issuer != "self";
    if spec.issuer != "self" {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![format!("{base}/{}.crl", spec.issuer)],
        }];
        if spec.role == Role::OcspResponder {
            // RFC 6960 4.2.2.2.1: the responder's own status is not asked over OCSP.
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    &OID_OCSP_NOCHECK,
                    vec![0x05, 0x00],
                ));
        } else {
            params.custom_extensions.extend(aia.cloned());
        }
    }

    // The subject key, and the private key PEM that goes into NAME.key.pem.
    let (key_pem, key_algorithm, cert) = match spec.key {
        KeySpec::EcP256 => {
            let key = KeyPair::generate().with_context(ctx)?;
            let cert = sign(&params, &key, &spec.issuer, Some(&key), cas).with_context(ctx)?;
            (key.serialize_pem(), "ECDSA P-256", cert)
        }
        KeySpec::Rsa2048 => {
            // aws-lc-rs generates it (its bignum code is assembly, so a debug build is
            // as quick as `openssl genpkey`: 0.1-0.3 s a key here); the pure-Rust `rsa`
            // crate is kept for the 1024-bit key aws-lc-rs refuses to make.
            let key = match rsa_key {
                Some(pending) => pending
                    .join()
                    .map_err(|_| anyhow!("the RSA key generation thread panicked"))
                    .with_context(ctx)?,
                None => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
            }
            .with_context(ctx)?;
            let cert = sign(&params, &key, &spec.issuer, Some(&key), cas).with_context(ctx)?;
            (key.serialize_pem(), "RSA 2048", cert)
        }
        KeySpec::Rsa1024 => {
            let (pem, spki) = weak_rsa_key().with_context(ctx)?;
            if spec.issuer == "self" {
                anyhow::bail!("{}: an rsa-1024 certificate cannot be self-signed here (rcgen cannot sign with a 1024-bit key); give it an issuer", spec.name);
            }
            let cert = sign(&params, &spki, &spec.issuer, None, cas).with_context(ctx)?;
            (pem, "RSA 1024", cert)
        }
    };
    let mut der = cert.der().to_vec();
    let mut key_pem = key_pem;
    match spec.tamper {
        Some(Tamper::Signature) => {
            // The signature BIT STRING ends the DER: flipping its last byte keeps the
            // certificate parseable while making the issuer's signature invalid.
            if let Some(last) = der.last_mut() {
                *last ^= 0x5a;
            }
        }
        Some(Tamper::KeyMismatch) => {
            key_pem = KeyPair::generate().with_context(ctx)?.serialize_pem();
        }
        None => {}
    }
    let cert_pem = pem_encode("CERTIFICATE", &der);

    let mut chain = cert_pem.clone();
    if spec.issuer != "self" {
        let ca = cas
            .get(&spec.issuer)
            .ok_or_else(|| anyhow!("issuer {} missing", spec.issuer))?;
        for p in &ca.chain_pems {
            chain.push_str(p);
        }
    }
    write_public(out, &format!("{}.cert.pem", spec.name), &cert_pem)?;
    write_public(out, &format!("{}.chain.pem", spec.name), &chain)?;
    write_private(out, &format!("{}.key.pem", spec.name), &key_pem)?;

    // On the CRL: revoked before it was signed. After the CRL: revoked at generation,
    // after the CRL's thisUpdate, as between two CRL updates in real life.
    let revocation = if spec.revoked {
        let ca = cas
            .get_mut(&spec.issuer)
            .ok_or_else(|| anyhow!("issuer {} missing", spec.issuer))?;
        let at = now - Duration::minutes(30);
        ca.revoked.push(RevokedCertParams {
            serial_number: serial.clone(),
            revocation_time: at,
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
        Some(super::Revocation {
            time: rfc3339(at),
            reason: "keyCompromise".into(),
            on_crl: true,
        })
    } else if spec.revoked_after_crl {
        Some(super::Revocation {
            time: rfc3339(now),
            reason: "keyCompromise".into(),
            on_crl: false,
        })
    } else {
        None
    };

    Ok(CertEntry {
        name: spec.name.clone(),
        role: spec.role,
        description: spec.description.clone(),
        subject: subject_string(&cn, spec.org.as_deref()),
        issuer: spec.issuer.clone(),
        org: spec.org.clone(),
        sans: spec.sans.clone(),
        serial: hex(&serial.to_bytes()),
        not_before: rfc3339(nb),
        not_after: rfc3339(na),
        validity: spec.validity,
        revoked: revocation.is_some(),
        revocation,
        eku: spec.ekus(),
        key_algorithm: key_algorithm.to_string(),
        tamper: spec.tamper,
        sha256: sha256_hex(&der),
        cert: format!("{}.cert.pem", spec.name),
        chain: format!("{}.chain.pem", spec.name),
        key: format!("{}.key.pem", spec.name),
    })
}

fn sign(
    params: &CertificateParams,
    public: &impl PublicKeyData,
    issuer: &str,
    self_key: Option<&KeyPair>,
    cas: &HashMap<String, IssuedCa>,
) -> anyhow::Result<rcgen::Certificate> {
    if issuer == "self" {
        let key = self_key.ok_or_else(|| anyhow!("self-signed needs a key pair"))?;
        return Ok(params.self_signed(key)?);
    }
    let ca = cas
        .get(issuer)
        .ok_or_else(|| anyhow!("issuer {issuer} missing"))?;
    Ok(params.signed_by(public, &ca.issuer)?)
}

/// A 1024-bit RSA key: below every current minimum, which is the point. aws-lc-rs will not
/// generate one, so the pure-Rust `rsa` crate does.
fn weak_rsa_key() -> anyhow::Result<(String, SubjectPublicKeyInfo)> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let mut rng = rand::rngs::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 1024).context("generating an RSA-1024 key")?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the RSA key")?
        .to_string();
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .context("encoding the RSA public key")?;
    let spki = SubjectPublicKeyInfo::from_der(spki_der.as_bytes())?;
    Ok((pem, spki))
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "SE");
    dn.push(DnType::OrganizationName, "Provsten Test");
    if let Some(org) = org {
        dn.push(
            DnType::CustomDnType(OID_ORGANIZATION_IDENTIFIER.to_vec()),
            format!("NTRSE-{org}"),
        );
        // Checked to be alphanumeric by the catalogue, so PrintableString accepts it.
        if let Ok(p) = rcgen::string::PrintableString::try_from(org) {
            dn.push(
                DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
                DnValue::PrintableString(p),
            );
        }
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn subject_string(cn: &str, org: Option<&str>) -> String {
    match org {
        Some(o) => format!(
            "C=SE, O=Provsten Test, organizationIdentifier=NTRSE-{o}, serialNumber={o}, CN={cn}"
        ),
        None => format!("C=SE, O=Provsten Test, CN={cn}"),
    }
}

fn random_serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // no leading zero byte to strip
    SerialNumber::from_slice(&b)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn sha256_hex(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    use rsa::pkcs8::der::pem::{encode_string, LineEnding};
    encode_string(tag, LineEnding::LF, der).unwrap_or_default()
}

pub(super) fn write_public(dir: &Path, file: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Keys are created 0600 from the start rather than chmod-ed after writing.
fn write_private(dir: &Path, file: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    let _ = fs::remove_file(&path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
