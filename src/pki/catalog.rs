//! The certificate catalogue as data (`certs/catalog.toml`): what the simulated CA issues.

use std::collections::HashSet;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The catalogue shipped with provsten, used unless `--catalog` names another.
pub const DEFAULT_CATALOG: &str = include_str!("../../certs/catalog.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "authority")]
    pub authorities: Vec<AuthoritySpec>,
    #[serde(rename = "certificate")]
    pub certificates: Vec<CertSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthoritySpec {
    pub name: String,
    pub common_name: String,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default = "yes")]
    pub trusted: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Client,
    Server,
    /// A delegated OCSP responder of its issuer (EKU id-kp-OCSPSigning).
    OcspResponder,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    #[default]
    Valid,
    Expired,
    NotYetValid,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Eku {
    ClientAuth,
    ServerAuth,
    OcspSigning,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KeySpec {
    #[default]
    EcP256,
    /// Servers need an RSA certificate beside the EC one: without it the plain-RSA and
    /// ECDHE-RSA suites of OpenSSL's default list can never be negotiated, so a check of
    /// those suites would pass without having looked (issue 14).
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-1024")]
    Rsa1024,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Tamper {
    Signature,
    KeyMismatch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSpec {
    pub name: String,
    pub role: Role,
    pub issuer: String,
    pub description: String,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub validity: Validity,
    #[serde(default)]
    pub revoked: bool,
    /// Revoked after the CRL was published: `revoked` at the OCSP responder, not on the CRL.
    #[serde(default)]
    pub revoked_after_crl: bool,
    #[serde(default)]
    pub eku: Option<Vec<Eku>>,
    #[serde(default)]
    pub key: KeySpec,
    #[serde(default)]
    pub tamper: Option<Tamper>,
}

impl CertSpec {
    pub fn ekus(&self) -> Vec<Eku> {
        match &self.eku {
            Some(e) => e.clone(),
            None => match self.role {
                Role::Client => vec![Eku::ClientAuth],
                Role::Server => vec![Eku::ServerAuth],
                Role::OcspResponder => vec![Eku::OcspSigning],
            },
        }
    }
}

impl Catalog {
    /// Parses and cross-checks a catalogue; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Catalog> {
        let catalog: Catalog = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
            .context("invalid certificate catalogue")?;
        catalog.check(origin)?;
        Ok(catalog)
    }

    fn check(&self, origin: &str) -> anyhow::Result<()> {
        let mut names = HashSet::new();
        for a in &self.authorities {
            check_name(&a.name, origin)?;
            if !names.insert(a.name.as_str()) {
                bail!("{origin}: duplicate name {:?} (hint: every authority and certificate needs its own name)", a.name);
            }
        }
        // Issuers must be declared before use, which also rules out cycles.
        let mut seen = HashSet::new();
        for a in &self.authorities {
            if let Some(issuer) = &a.issuer {
                if !seen.contains(issuer.as_str()) {
                    bail!("{origin}: authority {:?} has issuer {:?}, which is not an authority declared above it (hint: declare {:?} first)", a.name, issuer, issuer);
                }
            }
            seen.insert(a.name.as_str());
        }
        for c in &self.certificates {
            check_name(&c.name, origin)?;
            if !names.insert(c.name.as_str()) {
                bail!("{origin}: duplicate name {:?} (hint: every authority and certificate needs its own name)", c.name);
            }
            if c.issuer != "self" && !seen.contains(c.issuer.as_str()) {
                let known: Vec<_> = self.authorities.iter().map(|a| a.name.as_str()).collect();
                bail!(
                    "{origin}: certificate {:?}: unknown issuer {:?} (known: self, {})",
                    c.name,
                    c.issuer,
                    known.join(", ")
                );
            }
            if let Some(org) = &c.org {
                if org.is_empty()
                    || !org
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                {
                    bail!("{origin}: certificate {:?}: org {:?} must be letters, digits and '-' (it goes into a PrintableString)", c.name, org);
                }
            }
            if c.revoked && c.revoked_after_crl {
                bail!("{origin}: certificate {:?} has both `revoked` and `revoked_after_crl` (hint: keep one: on the CRL, or only at the OCSP responder)", c.name);
            }
            if (c.revoked || c.revoked_after_crl) && c.issuer == "self" {
                bail!("{origin}: certificate {:?} is self-signed and cannot be revoked (hint: remove `revoked` or give it an issuer)", c.name);
            }
            if c.role == Role::Server && c.sans.is_empty() {
                bail!("{origin}: server certificate {:?} has no `sans` (hint: sans = [\"iut.localhost\", \"127.0.0.1\"])", c.name);
            }
        }
        Ok(())
    }

    pub fn authority(&self, name: &str) -> Option<&AuthoritySpec> {
        self.authorities.iter().find(|a| a.name == name)
    }
}

fn check_name(name: &str, origin: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || name.starts_with('.')
    {
        bail!("{origin}: name {name:?} must be letters, digits, '-', '_' or '.' (it is used as a file name)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_parses() {
        let c = Catalog::parse(DEFAULT_CATALOG, "certs/catalog.toml").unwrap();
        assert!(c
            .certificates
            .iter()
            .any(|c| c.name == "client-revoked" && c.revoked));
        assert!(c
            .certificates
            .iter()
            .any(|c| c.name == "client-revoked-ocsp" && c.revoked_after_crl && !c.revoked));
        assert!(c
            .certificates
            .iter()
            .any(|c| c.role == Role::OcspResponder && c.issuer == "inter"));
        assert_eq!(
            c.authority("inter").unwrap().issuer.as_deref(),
            Some("root")
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "[[authority]]\nname = \"root\"\ncommon_name = \"x\"\ncolour = \"red\"\n[[certificate]]\nname=\"a\"\nrole=\"client\"\nissuer=\"root\"\ndescription=\"d\"\n";
        let err = format!("{:#}", Catalog::parse(text, "my.toml").unwrap_err());
        assert!(err.contains("my.toml"), "{err}");
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn unknown_issuer_lists_known_ones() {
        let text = "[[authority]]\nname = \"root\"\ncommon_name = \"x\"\n[[certificate]]\nname=\"a\"\nrole=\"client\"\nissuer=\"rot\"\ndescription=\"d\"\n";
        let err = format!("{:#}", Catalog::parse(text, "my.toml").unwrap_err());
        assert!(err.contains("unknown issuer \"rot\""), "{err}");
        assert!(err.contains("root"), "{err}");
    }
}
