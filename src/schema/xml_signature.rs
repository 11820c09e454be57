//! XML Signatures of SDK messages (SDK-5.4-KEYS): the sending organisation signs the XHE
//! envelope with an enveloped XMLDSig signature, as in the published examples:
//! `Reference URI=""`, the enveloped-signature transform then inclusive C14N 1.0, SHA-256,
//! the signing certificate (and its issuing CA) in `KeyInfo/X509Data`, the `Signature` the
//! XHE root's last child. RSA keys sign `rsa-sha256`, P-256 keys `ecdsa-sha256`.
//!
//! Signing and the signature check are the crate `xml-sec` (pure Rust); what it leaves to
//! its caller is done here: which certificate signed (the first `X509Certificate`), that it
//! chains to a CA the receiver trusts (rustls' WebPKI, the run's PKI), that the one
//! reference covers the whole document, and the organisation rule:
//!
//! **The XHE sender `Header/FromParty/PartyIdentification/ID` is `0007:<organisation
//! number>`** (0007: the ISO 6523 ICD of Swedish organisation numbers) **and the signing
//! certificate carries that organisation number** (`serialNumber`, else
//! `organizationIdentifier` `NTRSE-…`, as our PKI writes it, see [`crate::pki::org_number`]).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use base64ct::{Base64, Encoding};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use xml_sec::c14n::{C14nAlgorithm, C14nMode};
use xml_sec::xmldsig::{
    DigestAlgorithm, DsigStatus, EcdsaP256SigningKey, ReferenceBuilder, RsaSigningKey, SignContext,
    SignatureAlgorithm, SignatureBuilder, SigningKey, Transform, X509CertificateKeyInfoWriter,
};

use super::xml::{XHA, XHE};
use crate::pki::Pki;

pub(crate) const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const XHB: &str = "http://docs.oasis-open.org/bdxr/ns/XHE/1/BasicComponents";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The ISO 6523 ICD of Swedish organisation numbers: FromParty is `0007:<org>`.
pub(crate) const ORG_ICD: &str = "0007";

/// A PKI identity that signs: its key, its chain (leaf first) and who it is.
pub(crate) struct Signer {
    key: Box<dyn SigningKey + Send + Sync>,
    algorithm: SignatureAlgorithm,
    chain: Vec<CertificateDer<'static>>,
    /// The certificate's name in the PKI.
    pub name: String,
    pub subject: String,
    /// The organisation number the certificate carries.
    pub org: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The certificate `name` of the PKI, with its private key.
    pub(crate) fn from_pki(pki: &Pki, name: &str) -> Result<Signer> {
        let entry = pki.cert(name)?;
        let (chain, key) = pki.identity(name)?;
        let leaf = chain
            .first()
            .ok_or_else(|| anyhow!("{name}: the certificate file holds no certificate"))?;
        let (key, algorithm): (Box<dyn SigningKey + Send + Sync>, _) = match &key {
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der();
                match EcdsaP256SigningKey::from_pkcs8_der(der) {
                    Ok(ec) => (Box::new(ec), SignatureAlgorithm::EcdsaSha256),
                    Err(_) => (
                        Box::new(RsaSigningKey::from_pkcs8_der(der).map_err(|e| {
                            anyhow!("{name}: the key is neither P-256 nor RSA ({e}); XML signatures are made with those")
                        })?),
                        SignatureAlgorithm::RsaSha256,
                    ),
                }
            }
            PrivateKeyDer::Sec1(k) => (
                Box::new(
                    EcdsaP256SigningKey::from_sec1_der(k.secret_sec1_der())
                        .map_err(|e| anyhow!("{name}: not a P-256 key: {e}"))?,
                ),
                SignatureAlgorithm::EcdsaSha256,
            ),
            _ => bail!("{name}: a key format XML signing does not read (hint: PKCS#8)"),
        };
        Ok(Signer {
            key,
            algorithm,
            org: crate::pki::org_number(leaf),
            chain,
            name: name.to_owned(),
            subject: entry.subject.clone(),
        })
    }

    /// `xml` without its signatures, signed: an enveloped signature over the whole document,
    /// appended as the root's last child. FromParty is left as it is.
    pub(crate) fn sign(&self, xml: &str) -> Result<String> {
        let unsigned = strip_signatures(xml)?;
        let c14n = C14nAlgorithm::new(C14nMode::Inclusive1_0, false);
        let template = SignatureBuilder::new(c14n.clone(), self.algorithm)
            .ns_prefix("ds")
            .add_reference(
                ReferenceBuilder::new(DigestAlgorithm::Sha256)
                    .uri("")
                    .transform(Transform::Enveloped)
                    .transform(Transform::C14n(c14n)),
            )
            .key_info(true)
            .build_template()
            .map_err(|e| anyhow!("XML signature template: {e}"))?;
        let pems: Vec<String> = self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
        let key_info = X509CertificateKeyInfoWriter::from_pem_chain(&pems)
            .map_err(|e| anyhow!("{}: certificate for KeyInfo: {e}", self.name))?;
        let with_template =
            xml_sec::xmldsig::mutation::append_signature_to_root(&unsigned, &template)
                .map_err(|e| anyhow!("placing the XML signature: {e}"))?;
        let signed = SignContext::new(self.key.as_ref())
            .key_info_writer(&key_info)
            .sign_template(&with_template)
            .map_err(|e| anyhow!("signing as {}: {e}", self.name))?;
        // xml-sec writes no XML declaration: keep the message's own.
        match xml.strip_prefix("<?xml").and_then(|r| r.find("?>")) {
            Some(end) if !signed.starts_with("<?xml") => {
                let decl = xml
                    .get(.."<?xml".len() + end + "?>".len())
                    .unwrap_or_default();
                Ok(format!("{decl}\n{}", signed.trim_start()))
            }
            _ => Ok(signed),
        }
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = Base64::encode_string(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // 64-character lines; base64 is ASCII, so chunking bytes keeps characters whole.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn parse(xml: &str) -> Result<roxmltree::Document<'_>> {
    roxmltree::Document::parse(xml).context("the message is not well-formed XML (or has a DOCTYPE)")
}

fn is(n: &roxmltree::Node, ns: &str, local: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == local
}

/// `xml` with each text range replaced, ranges in document order and disjoint.
fn splice(xml: &str, edits: &[(std::ops::Range<usize>, String)]) -> Result<String> {
    let mut out = String::with_capacity(xml.len());
    let mut at = 0;
    for (r, with) in edits {
        out.push_str(
            xml.get(at..r.start)
                .ok_or_else(|| anyhow!("edit outside the text"))?,
        );
        out.push_str(with);
        at = r.end;
    }
    out.push_str(
        xml.get(at..)
            .ok_or_else(|| anyhow!("edit outside the text"))?,
    );
    Ok(out)
}

/// `xml` without the `ds:Signature` children of its root.
pub(crate) fn strip_signatures(xml: &str) -> Result<String> {
    let doc = parse(xml)?;
    let edits: Vec<_> = doc
        .root_element()
        .children()
        .filter(|n| is(n, DSIG, "Signature"))
        .map(|n| (n.range(), String::new()))
        .collect();
    splice(xml, &edits)
}

/// The `Header/FromParty/PartyIdentification/ID` element of an XHE document.
fn from_party<'a>(doc: &'a roxmltree::Document<'a>) -> Option<roxmltree::Node<'a, 'a>> {
    let root = doc.root_element();
    if !is(&root, XHE, "XHE") {
        return None;
    }
    let header = root.children().find(|n| is(n, XHA, "Header"))?;
    let party = header.children().find(|n| is(n, XHA, "FromParty"))?;
    let ident = party
        .children()
        .find(|n| is(n, XHA, "PartyIdentification"))?;
    ident.children().find(|n| is(n, XHB, "ID"))
}

/// The XHE sender id (`0007:5560000001`), if the document has one.
pub(crate) fn sender(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    from_party(&doc)
        .and_then(|n| n.text())
        .map(|t| t.trim().to_owned())
}

/// `xml` with its XHE sender set to organisation `org` (`0007:<org>`); a document without
/// a FromParty (a mutated one) is returned as it is.
pub(crate) fn set_from_party(xml: &str, org: &str) -> Result<String> {
    let doc = parse(xml)?;
    let Some(id) = from_party(&doc) else {
        return Ok(xml.to_owned());
    };
    let value = format!("{ORG_ICD}:{org}");
    let edit = match id.children().find(|c| c.is_text()) {
        Some(t) => (t.range(), value),
        // An empty ID: write the text before its end tag.
        None => {
            let r = id.range();
            let close = xml
                .get(r.clone())
                .and_then(|s| s.rfind("</"))
                .map(|p| r.start + p)
                .ok_or_else(|| anyhow!("FromParty ID is an empty element"))?;
            (close..close, value)
        }
    };
    splice(xml, &[edit])
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    #[error("the message is not signed (no ds:Signature child of the root)")]
    Missing,
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    #[error("the signature does not cover the whole message: {0}")]
    Coverage(String),
    #[error("the signature value does not verify with the certificate in KeyInfo")]
    Value,
    #[error("the signed content does not match its digest: the message was altered after signing, or the signature belongs to another document")]
    Digest,
    #[error("the signing certificate is not trusted: {0}")]
    Untrusted(String),
    #[error("the signing certificate's organisation {} is not the sender {} (FromParty must be {ORG_ICD}:<organisation number of the signer>)", .cert.as_deref().unwrap_or("(none)"), .sender.as_deref().unwrap_or("(none)"))]
    OtherOrganisation {
        sender: Option<String>,
        cert: Option<String>,
    },
}

impl SignatureError {
    /// Its short name in evidence (`xmldsig:<rule>`).
    pub(crate) fn rule(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed(_) => "malformed",
            SignatureError::Coverage(_) => "coverage",
            SignatureError::Value => "value",
            SignatureError::Digest => "digest",
            SignatureError::Untrusted(_) => "trust",
            SignatureError::OtherOrganisation { .. } => "sender",
        }
    }
}

/// A signature that verified: the certificate that made it, and the rest of KeyInfo's.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub leaf: CertificateDer<'static>,
    pub intermediates: Vec<CertificateDer<'static>>,
}

impl Signed {
    pub(crate) fn subject(&self) -> String {
        use x509_parser::prelude::*;
        X509Certificate::from_der(&self.leaf)
            .map(|(_, x)| x.subject().to_string())
            .unwrap_or_default()
    }

    pub(crate) fn org(&self) -> Option<String> {
        crate::pki::org_number(&self.leaf)
    }
}

/// Verifies the message's one enveloped signature: its structure (one `Reference` with
/// `URI=""` and the enveloped transform, so it covers the whole document, the root's last
/// child), its value with the first KeyInfo certificate, and the reference digest. Says
/// nothing yet about trusting the certificate ([`Trust::check`]) or its organisation
/// ([`check_sender`]).
pub(crate) fn verify(xml: &str) -> Result<Signed, SignatureError> {
    let malformed = |m: &str| SignatureError::Malformed(m.to_owned());
    let doc = roxmltree::Document::parse(xml).map_err(|e| malformed(&e.to_string()))?;
    let root = doc.root_element();
    let sigs: Vec<_> = doc
        .descendants()
        .filter(|n| is(n, DSIG, "Signature"))
        .collect();
    let sig = match sigs.as_slice() {
        [] => return Err(SignatureError::Missing),
        [one] => *one,
        _ => return Err(malformed("more than one ds:Signature")),
    };
    if sig.parent_element() != Some(root) || root.last_element_child() != Some(sig) {
        return Err(SignatureError::Coverage(
            "the ds:Signature is not the last child of the root".into(),
        ));
    }
    let refs: Vec<_> = sig
        .children()
        .filter(|n| is(n, DSIG, "SignedInfo"))
        .flat_map(|s| s.children().filter(|n| is(n, DSIG, "Reference")))
        .collect();
    let [reference] = refs.as_slice() else {
        return Err(SignatureError::Coverage(format!(
            "{} references, not one",
            refs.len()
        )));
    };
    match reference.attribute("URI") {
        Some("") => {}
        other => {
            return Err(SignatureError::Coverage(format!(
                "the reference URI is {other:?}, not \"\" (the whole document)"
            )))
        }
    }
    let transforms: Vec<_> = reference
        .descendants()
        .filter(|n| is(n, DSIG, "Transform"))
        .filter_map(|n| n.attribute("Algorithm"))
        .collect();
    if transforms.first() != Some(&ENVELOPED) {
        return Err(SignatureError::Coverage(format!(
            "the transforms are {transforms:?}: the first must be the enveloped-signature transform"
        )));
    }
    let certs: Vec<CertificateDer<'static>> = sig
        .descendants()
        .filter(|n| is(n, DSIG, "X509Certificate"))
        .map(|n| {
            let text: String = n
                .text()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            Base64::decode_vec(&text)
                .map(CertificateDer::from)
                .map_err(|_| malformed("an X509Certificate is not base64"))
        })
        .collect::<Result<_, _>>()?;
    let Some((leaf, intermediates)) = certs.split_first() else {
        return Err(malformed("no X509Certificate in KeyInfo"));
    };
    let spki = {
        use x509_parser::prelude::*;
        let (_, x) = X509Certificate::from_der(leaf)
            .map_err(|_| malformed("the X509Certificate does not parse"))?;
        x.public_key().raw.to_vec()
    };
    let result = xml_sec::xmldsig::verify::verify_signature_with_pem_key(
        xml,
        &pem("PUBLIC KEY", &spki),
        false,
    )
    .map_err(|e| malformed(&e.to_string()))?;
    match result.status {
        DsigStatus::Valid => {}
        DsigStatus::Invalid(xml_sec::xmldsig::verify::FailureReason::ReferenceDigestMismatch {
            ..
        }) => return Err(SignatureError::Digest),
        DsigStatus::Invalid(xml_sec::xmldsig::verify::FailureReason::SignatureMismatch) => {
            return Err(SignatureError::Value)
        }
        other => return Err(malformed(&format!("{other:?}"))),
    }
    if result
        .signed_info_references
        .iter()
        .any(|r| r.status != DsigStatus::Valid)
    {
        return Err(SignatureError::Digest);
    }
    Ok(Signed {
        leaf: leaf.clone(),
        intermediates: intermediates.to_vec(),
    })
}

/// The CAs a receiver trusts for signing certificates: the run's PKI roots.
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl Trust {
    pub(crate) fn new(pki: &Pki) -> Result<Trust> {
        let mut roots = rustls::RootCertStore::empty();
        for r in pki.trust_roots()? {
            roots.add(r)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        // The signing certificate is the organisation's client certificate: the WebPKI
        // client verifier checks its chain, validity, and clientAuth usage.
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("the signing certificate verifier")?;
        Ok(Trust { verifier })
    }

    pub(crate) fn check(&self, s: &Signed) -> Result<(), SignatureError> {
        self.verifier
            .verify_client_cert(&s.leaf, &s.intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| SignatureError::Untrusted(e.to_string()))
    }
}

/// The organisation rule: the XHE sender is `0007:` and the signing certificate's
/// organisation number.
pub(crate) fn check_sender(xml: &str, s: &Signed) -> Result<(), SignatureError> {
    let sender = sender(xml);
    let cert = s.org();
    let matches = match (&sender, &cert) {
        (Some(from), Some(org)) => from
            .strip_prefix(ORG_ICD)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|o| o == org),
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(SignatureError::OtherOrganisation { sender, cert })
    }
}

/// Everything a receiver checks: [`verify`], then [`Trust::check`], then [`check_sender`].
pub(crate) fn verify_all(xml: &str, trust: &Trust) -> Result<Signed, SignatureError> {
    let s = verify(xml)?;
    trust.check(&s)?;
    check_sender(xml, &s)?;
    Ok(s)
}

/// A copy of the base64 `SignatureValue` with one bit flipped in its first byte.
pub(crate) fn alter_signature_value(xml: &str) -> Result<String> {
    let doc = parse(xml)?;
    let v = doc
        .descendants()
        .find(|n| is(n, DSIG, "SignatureValue"))
        .and_then(|n| n.children().find(|c| c.is_text()))
        .ok_or_else(|| anyhow!("no SignatureValue text"))?;
    let text: String = v
        .text()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut bytes = Base64::decode_vec(&text).map_err(|e| anyhow!("SignatureValue: {e}"))?;
    let first = bytes
        .first_mut()
        .ok_or_else(|| anyhow!("an empty SignatureValue"))?;
    *first ^= 0x01;
    splice(xml, &[(v.range(), Base64::encode_string(&bytes))])
}

/// `target` (unsigned) with the `ds:Signature` of `donor` (another signed message)
/// appended as its root's last child.
pub(crate) fn transplant_signature(target: &str, donor: &str) -> Result<String> {
    let donor_doc = parse(donor)?;
    let sig = donor_doc
        .root_element()
        .children()
        .find(|n| is(n, DSIG, "Signature"))
        .ok_or_else(|| anyhow!("the donor message is not signed"))?;
    let mut text = donor
        .get(sig.range())
        .ok_or_else(|| anyhow!("signature range"))?
        .to_owned();
    // A prefix the donor's root declared must be declared on the moved element.
    if !text.contains("xmlns:ds=") && text.starts_with("<ds:Signature") {
        text = text.replacen(
            "<ds:Signature",
            &format!("<ds:Signature xmlns:ds=\"{DSIG}\""),
            1,
        );
    }
    let unsigned = strip_signatures(target)?;
    let doc = parse(&unsigned)?;
    let root = doc.root_element();
    let end = root.range().end;
    let close = unsigned
        .get(root.range())
        .and_then(|s| s.rfind("</"))
        .map(|p| root.range().start + p)
        .filter(|p| *p < end)
        .ok_or_else(|| anyhow!("the root element is empty"))?;
    splice(&unsigned, &[(close..close, text)])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pki::catalog::{Catalog, DEFAULT_CATALOG};
    use crate::pki::{generate, GenerateOptions};
    use crate::schema::xml::{XmlValidator, XML_BUILTINS};
    use crate::schema::MessageValidator;
    use std::sync::OnceLock;

    /// One generated PKI for every test of the process that signs.
    pub(crate) fn pki() -> &'static Pki {
        static PKI: OnceLock<(tempfile::TempDir, Pki)> = OnceLock::new();
        &PKI.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let catalog = Catalog::parse(DEFAULT_CATALOG, "catalog").unwrap();
            generate(&catalog, dir.path(), &GenerateOptions::default()).unwrap();
            let pki = Pki::load(dir.path()).unwrap();
            (dir, pki)
        })
        .1
    }

    fn example() -> &'static str {
        std::str::from_utf8(XML_BUILTINS[0].examples[0].bytes).unwrap()
    }

    fn signed(name: &str) -> String {
        let s = Signer::from_pki(pki(), name).unwrap();
        let from = set_from_party(example(), s.org.as_deref().unwrap()).unwrap();
        s.sign(&from).unwrap()
    }

    #[test]
    fn a_signed_message_verifies_validates_and_names_its_signer() {
        let trust = Trust::new(pki()).unwrap();
        let v = XmlValidator::builtin("sdk/meddelande").unwrap();
        for name in ["client-5560000001", "client-5560000001-rsa"] {
            let xml = signed(name);
            assert_eq!(sender(&xml).as_deref(), Some("0007:5560000001"));
            let s = verify_all(&xml, &trust).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.org().as_deref(), Some("5560000001"));
            assert!(s.subject().contains("5560000001"), "{}", s.subject());
            assert_eq!(v.validate_bytes(xml.as_bytes()), Ok(()), "{name}");
            // One signature, the example's own replaced, the root's last child.
            assert_eq!(xml.matches("SignatureValue>").count(), 2, "{name}");
            assert!(
                xml.trim_end().ends_with("</ds:Signature></ns5:XHE>"),
                "{name}"
            );
        }
        // The message's XML declaration is kept (xml-sec writes none).
        let s = Signer::from_pki(pki(), "client-5560000001").unwrap();
        let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
        let from = set_from_party(example(), "5560000001").unwrap();
        let xml = s.sign(&format!("{decl}\n{from}")).unwrap();
        assert!(xml.starts_with(decl), "{}", &xml[..80]);
        verify_all(&xml, &trust).unwrap();
        let rsa = signed("client-5560000001-rsa");
        assert!(rsa.contains("xmldsig-more#rsa-sha256"));
        assert!(signed("client-5560000001").contains("xmldsig-more#ecdsa-sha256"));
    }

    #[test]
    fn the_published_examples_signature_does_not_verify() {
        // The shipped example as published: neither its SignatureValue nor its digest
        // holds (checked independently with lxml's C14N and Python's `cryptography`,
        // which accept what `Signer` makes): it was edited after signing. A receiver
        // verifying it must refuse it, so the harness never sends it signed as it is.
        assert_eq!(verify(example()).unwrap_err(), SignatureError::Value);
    }

    #[test]
    fn each_tampering_is_refused_for_its_own_reason() {
        let trust = Trust::new(pki()).unwrap();
        let ok = signed("client-5560000001");
        let unsigned = strip_signatures(&ok).unwrap();
        assert_eq!(
            verify_all(&unsigned, &trust).unwrap_err(),
            SignatureError::Missing
        );
        let value = alter_signature_value(&ok).unwrap();
        assert_eq!(
            verify_all(&value, &trust).unwrap_err(),
            SignatureError::Value
        );
        let content = ok.replacen(
            "0203:testa.testbed.inera.se</ID>",
            "0203:testc.testbed.inera.se</ID>",
            1,
        );
        assert_ne!(content, ok);
        assert_eq!(
            verify_all(&content, &trust).unwrap_err(),
            SignatureError::Digest
        );
        // Org B's valid signature on a message from org A.
        let b = Signer::from_pki(pki(), "client-5560000002").unwrap();
        let from_a = set_from_party(example(), "5560000001").unwrap();
        let other = b.sign(&from_a).unwrap();
        assert!(verify(&other).is_ok());
        assert!(matches!(
            verify_all(&other, &trust).unwrap_err(),
            SignatureError::OtherOrganisation { .. }
        ));
        // The signature of another, validly signed message.
        let donor = ok.replacen("0203:testa.testbed.inera.se</ID>", "0203:x</ID>", 1);
        let donor = Signer::from_pki(pki(), "client-5560000001")
            .unwrap()
            .sign(&donor)
            .unwrap();
        assert!(verify_all(&donor, &trust).is_ok());
        let moved = transplant_signature(&ok, &donor).unwrap();
        assert_eq!(
            verify_all(&moved, &trust).unwrap_err(),
            SignatureError::Digest
        );
        // A reference to one element only.
        let narrowed = ok.replacen("URI=\"\"", "URI=\"#x\"", 1);
        assert!(matches!(
            verify_all(&narrowed, &trust).unwrap_err(),
            SignatureError::Coverage(_)
        ));
        let untrusted = signed("client-untrusted-root");
        assert!(verify(&untrusted).is_ok());
        assert!(matches!(
            verify_all(&untrusted, &trust).unwrap_err(),
            SignatureError::Untrusted(_)
        ));
    }
}
