//! Certification: an Ed25519 signature over the canonical report JSON, keys as PEM in the
//! form `openssl genpkey -algorithm ed25519` writes (PKCS#8 private key, SubjectPublicKeyInfo
//! public key), so a counterpart can check a report with tools of their own.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64ct::{Base64, Encoding};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::{Report, ReportSignature};
use crate::pki::generate::hex;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Writes `PREFIX.key.pem` (0600) and `PREFIX.pub.pem`; returns their paths.
pub(crate) fn keygen(prefix: &Path) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let doc = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
        .map_err(|_| anyhow!("generating an Ed25519 key failed"))?;
    let pair =
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc.as_ref()).map_err(|e| anyhow!("{e}"))?;
    let key_path = prefix.with_extension("key.pem");
    let pub_path = prefix.with_extension("pub.pem");
    if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key_pem = pem("PRIVATE KEY", doc.as_ref());
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::remove_file(&key_path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .with_context(|| format!("creating {}", key_path.display()))?;
        f.write_all(key_pem.as_bytes())?;
    }
    std::fs::write(
        &pub_path,
        pem("PUBLIC KEY", &spki(pair.public_key().as_ref())),
    )
    .with_context(|| format!("writing {}", pub_path.display()))?;
    Ok((key_path, pub_path))
}

/// Signs `report` in place with the PKCS#8 PEM key at `key_path`.
pub(crate) fn sign(report: &mut Report, key_path: &Path) -> anyhow::Result<()> {
    let der = PrivatePkcs8KeyDer::from_pem_file(key_path).with_context(|| {
        format!(
            "reading an Ed25519 private key (PKCS#8 PEM) from {}",
            key_path.display()
        )
    })?;
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der()).map_err(|e| {
        anyhow!("{}: not an Ed25519 key ({e}) (hint: `provsten keygen` or `openssl genpkey -algorithm ed25519`)", key_path.display())
    })?;
    report.signature = None;
    let message = canonical(report)?;
    let sig = pair.sign(&message);
    report.signature = Some(ReportSignature {
        algorithm: "ed25519".into(),
        public_key_sha256: hex(&Sha256::digest(spki(pair.public_key().as_ref()))),
        value: Base64::encode_string(sig.as_ref()),
    });
    Ok(())
}

/// Checks the signature of `report` against the SubjectPublicKeyInfo PEM at `pub_path`.
pub(crate) fn verify_signature(report: &Report, pub_path: &Path) -> anyhow::Result<()> {
    let spki_der = SubjectPublicKeyInfoDer::from_pem_file(pub_path).with_context(|| {
        format!(
            "reading a public key (SubjectPublicKeyInfo PEM) from {}",
            pub_path.display()
        )
    })?;
    let raw = spki_der
        .as_ref()
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .filter(|k| k.len() == 32)
        .ok_or_else(|| anyhow!("{}: not an Ed25519 public key", pub_path.display()))?;
    let Some(sig) = &report.signature else {
        bail!("the report is not signed (hint: `provsten run --sign KEY`)");
    };
    if sig.algorithm != "ed25519" {
        bail!("unsupported signature algorithm {:?}", sig.algorithm);
    }
    let fingerprint = hex(&Sha256::digest(spki_der.as_ref()));
    if fingerprint != sig.public_key_sha256 {
        bail!(
            "signed with another key: the report names key {}, {} is key {fingerprint}",
            sig.public_key_sha256,
            pub_path.display()
        );
    }
    let value =
        Base64::decode_vec(&sig.value).map_err(|_| anyhow!("the signature is not valid base64"))?;
    let mut unsigned = report.clone();
    unsigned.signature = None;
    let message = canonical(&unsigned)?;
    UnparsedPublicKey::new(&ED25519, raw)
        .verify(&message, &value)
        .map_err(|_| {
            anyhow!("the signature does not match the report: it was changed after signing")
        })
}

fn spki(raw: &[u8]) -> Vec<u8> {
    let mut v = ED25519_SPKI_PREFIX.to_vec();
    v.extend_from_slice(raw);
    v
}

fn pem(tag: &str, der: &[u8]) -> String {
    rsa::pkcs8::der::pem::encode_string(tag, rsa::pkcs8::der::pem::LineEnding::LF, der)
        .unwrap_or_default()
}

/// The bytes that are signed: compact JSON with object keys sorted, whatever map order
/// serde_json was built with.
pub(crate) fn canonical(report: &Report) -> anyhow::Result<Vec<u8>> {
    let value = serde_json::to_value(report)?;
    let mut out = String::new();
    write_canonical(&value, &mut out)?;
    Ok(out.into_bytes())
}

fn write_canonical(v: &Value, out: &mut String) -> anyhow::Result<()> {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k)?);
                out.push(':');
                write_canonical(&map[k], out)?;
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Verdict;

    #[test]
    fn signed_report_verifies_and_a_flipped_verdict_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keygen(&dir.path().join("signer")).unwrap();
        let mut report = crate::report::writers::sample_report();
        sign(&mut report, &key).unwrap();
        verify_signature(&report, &public).unwrap();
        let mut tampered = report.clone();
        tampered.requirements[0].verdict = if tampered.requirements[0].verdict == Verdict::Pass {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        let e = verify_signature(&tampered, &public)
            .unwrap_err()
            .to_string();
        assert!(e.contains("changed after signing"), "{e}");
    }

    #[test]
    fn another_key_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = keygen(&dir.path().join("a")).unwrap();
        let (_, other) = keygen(&dir.path().join("b")).unwrap();
        let mut report = crate::report::writers::sample_report();
        sign(&mut report, &key).unwrap();
        assert!(verify_signature(&report, &other)
            .unwrap_err()
            .to_string()
            .contains("signed with another key"));
    }

    #[test]
    fn private_key_is_0600_and_pem_is_openssl_shaped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keygen(&dir.path().join("k")).unwrap();
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let k = std::fs::read_to_string(&key).unwrap();
        // The PEM label is assembled so no file in the repository looks like a key.
        assert!(k.starts_with(&format!("-----BEGIN {}-----", "PRIVATE KEY")));
        let p = std::fs::read_to_string(&public).unwrap();
        assert!(p.starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut out = String::new();
        write_canonical(
            &serde_json::json!({"b": 1, "a": [true, {"d": null, "c": "x"}]}),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, r#"{"a":[true,{"c":"x","d":null}],"b":1}"#);
    }
}
