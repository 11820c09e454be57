//! The simulated certificate authority: issues the certificate catalogue (`certs/`), writes
//! it as PEM files with a `catalog.json` manifest, and publishes CRLs over HTTP.

pub mod catalog;
pub mod generate;
pub mod ocsp;
pub mod publish;
pub mod refresh;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

pub use catalog::{Catalog, Eku, Role, Tamper, Validity};
pub use generate::{
    free_crl_base_url, free_ocsp_base_url, generate, GenerateOptions, DEFAULT_CRL_LIFETIME,
};
pub use refresh::refresh;

/// Manifest written beside the PEM files.
pub const MANIFEST_FILE: &str = "catalog.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PkiManifest {
    pub generated_at: String,
    pub crl_base_url: String,
    /// The OCSP responder's URL in every certificate's Authority Information Access; absent
    /// in PKIs made before OCSP (or without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp_base_url: Option<String>,
    /// Trusted roots, concatenated (what a compliant IUT trusts).
    pub trust_bundle: String,
    /// One CRL per CA of the trusted hierarchy, root included.
    pub crl_bundle: String,
    pub authorities: Vec<AuthorityEntry>,
    pub certificates: Vec<CertEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorityEntry {
    pub name: String,
    pub subject: String,
    pub issuer: Option<String>,
    pub trusted: bool,
    pub cert: String,
    pub crl: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertEntry {
    pub name: String,
    pub role: Role,
    pub description: String,
    pub subject: String,
    pub issuer: String,
    pub org: Option<String>,
    pub sans: Vec<String>,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub validity: Validity,
    /// Revoked, on the CRL or only at the OCSP responder (`revocation` says which).
    pub revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
    pub eku: Vec<Eku>,
    pub key_algorithm: String,
    pub tamper: Option<Tamper>,
    pub sha256: String,
    pub cert: String,
    pub chain: String,
    pub key: String,
}

/// When and why a certificate was revoked, and whether its CA's CRL lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    /// RFC 3339.
    pub time: String,
    /// The CRLReason name (`keyCompromise`).
    pub reason: String,
    /// False for a revocation after the CRL was signed: only the OCSP responder knows.
    pub on_crl: bool,
}

/// A generated PKI on disk, as the harness and IUT adapters use it.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub manifest: PkiManifest,
}

/// What of a PKI has run out, or soon will.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Past their end: `crl inter.crl.pem: nextUpdate 2026-01-01T00:00:00Z`.
    pub expired: Vec<String>,
    /// Ending before the horizon given.
    pub expiring: Vec<String>,
}

impl Pki {
    /// CRLs past their nextUpdate (OpenSSL-based servers then refuse every client) and
    /// certificates meant to be valid past their notAfter, at `now` and before
    /// `now + soon`. A PKI generated once for an IUT ages: this says so before a run blames
    /// the IUT for refusing clients.
    pub fn expiry(&self, now: time::OffsetDateTime, soon: time::Duration) -> Expiry {
        use time::format_description::well_known::Rfc3339;
        let mut out = Expiry::default();
        let mut judge = |what: String, end: time::OffsetDateTime| {
            let at = end.format(&Rfc3339).unwrap_or_default();
            if end <= now {
                out.expired.push(format!("{what} ended {at}"));
            } else if end <= now + soon {
                out.expiring.push(format!("{what} ends {at}"));
            }
        };
        for a in &self.manifest.authorities {
            let Ok(der) = CertificateRevocationListDer::from_pem_file(self.path(&a.crl)) else {
                continue;
            };
            let Ok((_, crl)) = x509_parser::parse_x509_crl(der.as_ref()) else {
                continue;
            };
            if let Some(next) = crl.next_update() {
                judge(format!("the CRL {}", a.crl), next.to_datetime());
            }
        }
        for c in &self.manifest.certificates {
            if c.validity != catalog::Validity::Valid {
                continue;
            }
            if let Ok(end) = time::OffsetDateTime::parse(&c.not_after, &Rfc3339) {
                judge(format!("the certificate {}", c.name), end);
            }
        }
        out
    }

    pub fn load(dir: &Path) -> anyhow::Result<Pki> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (hint: generate the PKI with `provsten pki init --out {}`)",
                path.display(),
                dir.display()
            )
        })?;
        let manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a provsten PKI manifest", path.display()))?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn cert(&self, name: &str) -> anyhow::Result<&CertEntry> {
        self.manifest
            .certificates
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                let known: Vec<_> = self
                    .manifest
                    .certificates
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                anyhow!(
                    "no certificate {name:?} in {} (known: {})",
                    self.path(MANIFEST_FILE).display(),
                    known.join(", ")
                )
            })
    }

    /// The chain (leaf first) and private key a peer presents for certificate `name`.
    pub fn identity(
        &self,
        name: &str,
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let entry = self.cert(name)?;
        let chain = read_certs(&self.path(&entry.chain))?;
        let key = read_key(&self.path(&entry.key))?;
        Ok((chain, key))
    }

    pub fn trust_roots(&self) -> anyhow::Result<Vec<CertificateDer<'static>>> {
        read_certs(&self.path(&self.manifest.trust_bundle))
    }

    pub fn crls(&self) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
        read_crls(&self.path(&self.manifest.crl_bundle))
    }
}

pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: malformed PEM certificate", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: holds no PEM certificate", path.display());
    }
    Ok(certs)
}

pub fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading a private key from {}", path.display()))
}

pub fn read_crls(path: &Path) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    CertificateRevocationListDer::pem_file_iter(path)
        .with_context(|| format!("reading CRLs from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: malformed PEM CRL", path.display()))
}

#[cfg(test)]
mod tests;

/// The organisation number a certificate carries: `serialNumber` in the subject, else
/// `organizationIdentifier` with its `NTRSE-` prefix removed.
pub fn org_number(cert_der: &[u8]) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, x) = X509Certificate::from_der(cert_der).ok()?;
    let mut org_id = None;
    for attr in x.subject().iter_attributes() {
        let oid = attr.attr_type().to_id_string();
        let value = attr.as_str().ok()?.to_string();
        match oid.as_str() {
            "2.5.4.5" if !value.is_empty() => return Some(value),
            "2.5.4.97" => org_id = value.strip_prefix("NTRSE-").map(str::to_string),
            _ => {}
        }
    }
    org_id
}

/// Size in bits of an RSA subject key, `None` for other key types or unparsable input.
pub fn rsa_key_bits(cert_der: &[u8]) -> Option<usize> {
    use x509_parser::prelude::*;
    let (_, x) = X509Certificate::from_der(cert_der).ok()?;
    match x.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(r) => Some(r.key_size()),
        _ => None,
    }
}
