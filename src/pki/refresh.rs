//! `provsten pki refresh`: re-issues a PKI's CRLs with their CAs' existing keys, so a
//! long-lived test PKI (installed in an IUT's trust store) outlives its CRLs' nextUpdate
//! without a single certificate or key changing.

use std::path::Path;

use anyhow::{anyhow, Context};
use rcgen::{Issuer, KeyPair, RevocationReason, RevokedCertParams, SerialNumber};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use time::OffsetDateTime;

use super::generate::{write_crl, write_public};
use super::{Pki, PkiManifest};

/// One authority whose CRL was re-issued.
#[derive(Debug)]
pub struct Refreshed {
    pub authority: String,
    /// The new CRL number (the old one plus one).
    pub number: u64,
    pub revoked: usize,
    pub next_update: OffsetDateTime,
}

/// Re-signs every CA's CRL in `dir` with the same revoked entries, a CRL number one higher
/// and nextUpdate `lifetime` from now; rewrites the CRL bundle. Keys and certificates are
/// read, never written.
pub fn refresh(dir: &Path, lifetime: std::time::Duration) -> anyhow::Result<Vec<Refreshed>> {
    let pki = Pki::load(dir)?;
    let now = OffsetDateTime::now_utc();
    let mut done = Vec::new();
    let mut bundle = String::new();
    for a in &pki.manifest.authorities {
        let read = |file: &str| {
            let path = pki.path(file);
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (hint: refresh needs the PKI folder `provsten pki init` made, CA keys included)",
                    path.display()
                )
            })
        };
        let key_file = format!("{}.key.pem", a.name);
        let key = KeyPair::from_pem(&read(&key_file)?)
            .with_context(|| format!("{}: not a private key", pki.path(&key_file).display()))?;
        let issuer = Issuer::from_ca_cert_pem(&read(&a.cert)?, key)
            .with_context(|| format!("{}: not a CA certificate", pki.path(&a.cert).display()))?;
        let old_path = pki.path(&a.crl);
        let old = CertificateRevocationListDer::from_pem_file(&old_path)
            .with_context(|| format!("reading the CRL {}", old_path.display()))?;
        let (_, crl) = x509_parser::parse_x509_crl(old.as_ref())
            .map_err(|e| anyhow!("{}: not a CRL ({e})", old_path.display()))?;
        let revoked: Vec<RevokedCertParams> = crl
            .iter_revoked_certificates()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.raw_serial()),
                revocation_time: r.revocation_date.to_datetime(),
                reason_code: r.reason_code().and_then(|(_, c)| reason(c.0)),
                invalidity_date: r.invalidity_date().map(|(_, t)| t.to_datetime()),
            })
            .collect();
        let number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0)
            .saturating_add(1);
        let count = revoked.len();
        let pem = write_crl(dir, &a.name, &issuer, revoked, number, now, lifetime)?;
        if in_bundle(&pki.manifest, &a.name) {
            bundle.push_str(&pem);
        }
        done.push(Refreshed {
            authority: a.name.clone(),
            number,
            revoked: count,
            next_update: now + lifetime,
        });
    }
    write_public(dir, &pki.manifest.crl_bundle, &bundle)?;
    Ok(done)
}

/// Whether an authority's CRL belongs in the bundle: it is a trusted root or under one
/// (as `generate` decides from the catalogue).
fn in_bundle(m: &PkiManifest, name: &str) -> bool {
    let mut cur = m.authorities.iter().find(|a| a.name == name);
    // Bounded by the number of authorities, so a cycle in a hand-edited manifest ends.
    for _ in 0..=m.authorities.len() {
        match cur {
            Some(a) => match &a.issuer {
                None => return a.trusted,
                Some(p) => cur = m.authorities.iter().find(|x| &x.name == p),
            },
            None => return false,
        }
    }
    false
}

fn reason(code: u8) -> Option<RevocationReason> {
    use RevocationReason::*;
    Some(match code {
        0 => Unspecified,
        1 => KeyCompromise,
        2 => CaCompromise,
        3 => AffiliationChanged,
        4 => Superseded,
        5 => CessationOfOperation,
        6 => CertificateHold,
        8 => RemoveFromCrl,
        9 => PrivilegeWithdrawn,
        10 => AaCompromise,
        _ => return None,
    })
}
