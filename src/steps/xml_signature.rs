//! Steps for signed SDK messages (SDK-SPEC, SDK-5.4-KEYS): send a correctly signed message
//! and one per way a signature can be wrong, each checked by the harness's own verifier
//! (`schema::xml_signature`) to be wrong for exactly that reason before it is sent. The
//! refusal, accepted-list and valid-after checks are the XML and schema steps'.

use std::str::FromStr;

use cucumber::{then, when};
use serde_json::json;

use super::xml::planted_example;
use super::ProvstenWorld;
use crate::iut::XmlMessageType;
use crate::pki::catalog::{Eku, Role, Validity};
use crate::pki::{CertEntry, Pki};
use crate::schema::xml_signature::{self as sig, SignatureError, Signer, Trust};

/// One way to sign a message, and what a compliant receiver does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Valid,
    Unsigned,
    AlteredSignatureValue,
    AlteredContent,
    OtherOrganisation,
    OtherDocument,
    UntrustedCa,
}

/// name, case, what is sent: the one table of signature cases.
const CASES: &[(&str, Case, &str)] = &[
    ("valid", Case::Valid, "signed by the sending organisation"),
    ("unsigned", Case::Unsigned, "no signature at all"),
    (
        "altered-signature-value",
        Case::AlteredSignatureValue,
        "one bit of the SignatureValue flipped",
    ),
    (
        "altered-content",
        Case::AlteredContent,
        "the message id changed after signing",
    ),
    (
        "other-organisation",
        Case::OtherOrganisation,
        "a valid signature by another organisation's certificate, FromParty still the sender's",
    ),
    (
        "other-document",
        Case::OtherDocument,
        "the valid Signature of another message of the same sender, copied in",
    ),
    (
        "untrusted-ca",
        Case::UntrustedCa,
        "signed by a certificate of the sender's organisation from a CA the receiver does not trust",
    ),
];

impl FromStr for Case {
    type Err = String;
    fn from_str(s: &str) -> Result<Case, String> {
        CASES
            .iter()
            .find(|(n, _, _)| *n == s)
            .map(|(_, c, _)| *c)
            .ok_or_else(|| {
                let known: Vec<_> = CASES.iter().map(|(n, _, _)| *n).collect();
                format!("unknown signature case {s:?} (known: {})", known.join(", "))
            })
    }
}

impl Case {
    fn what(self) -> &'static str {
        CASES
            .iter()
            .find(|(_, c, _)| *c == self)
            .map_or("", |(_, _, w)| *w)
    }

    /// Whether the harness's verifier judged `got` as this case must be.
    fn expected(self, got: &Result<sig::Signed, SignatureError>) -> bool {
        matches!(
            (self, got),
            (Case::Valid, Ok(_))
                | (Case::Unsigned, Err(SignatureError::Missing))
                | (Case::AlteredSignatureValue, Err(SignatureError::Value))
                | (
                    Case::AlteredContent | Case::OtherDocument,
                    Err(SignatureError::Digest)
                )
                | (
                    Case::OtherOrganisation,
                    Err(SignatureError::OtherOrganisation { .. })
                )
                | (Case::UntrustedCa, Err(SignatureError::Untrusted(_)))
        )
    }
}

/// The root of `c`'s chain is one the IUT is told to trust (`None`: self-signed or unknown).
fn root_trusted(pki: &Pki, c: &CertEntry) -> Option<bool> {
    let mut name = c.issuer.as_str();
    // The hierarchy is a few levels deep; the bound only stops a cyclic manifest.
    for _ in 0..8 {
        let a = pki.manifest.authorities.iter().find(|a| a.name == name)?;
        match &a.issuer {
            Some(up) => name = up,
            None => return Some(a.trusted),
        }
    }
    None
}

/// A valid client certificate of the PKI that signs, other than by what `pick` asks: the
/// first in catalogue order, registered organisations first.
fn pick_signer(
    pki: &Pki,
    registered: &[String],
    pick: impl Fn(&CertEntry, Option<bool>) -> bool,
) -> Option<String> {
    let fit: Vec<&CertEntry> = pki
        .manifest
        .certificates
        .iter()
        .filter(|c| {
            c.role == Role::Client
                && c.validity == Validity::Valid
                && !c.revoked
                && c.tamper.is_none()
                && c.eku.contains(&Eku::ClientAuth)
                && !c.key_algorithm.contains("1024")
                && pick(c, root_trusted(pki, c))
        })
        .collect();
    let registered_first = fit
        .iter()
        .find(|c| c.org.as_ref().is_some_and(|o| registered.contains(o)));
    registered_first.or(fit.first()).map(|c| c.name.clone())
}

/// What was sent for a case.
struct Built {
    body: String,
    id: Option<String>,
    signer: Option<Signer>,
}

fn build(
    w: &ProvstenWorld,
    m: &XmlMessageType,
    case: Case,
    signer: Signer,
) -> anyhow::Result<Built> {
    let ctx = w.ctx()?;
    let (example, id) = planted_example(w, m)?;
    let example = String::from_utf8(example)
        .map_err(|_| anyhow::anyhow!("{}: the example is not UTF-8", m.name))?;
    let org = signer.org.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "the signer {} carries no organisation number: it cannot be the sender (hint: [[message]] signer = a client certificate with org)",
            signer.name
        )
    })?;
    let other = |what: &str, pick: &dyn Fn(&CertEntry, Option<bool>) -> bool| {
        pick_signer(&ctx.pki, &ctx.registered_orgs, pick)
            .ok_or_else(|| {
                ProvstenWorld::not_applicable(format!(
                    "the PKI has no valid client certificate {what} to sign with"
                ))
            })
            .and_then(|name| Signer::from_pki(&ctx.pki, &name))
    };
    Ok(match case {
        Case::Valid => Built {
            body: signer.sign(&example)?,
            id,
            signer: Some(signer),
        },
        Case::Unsigned => Built {
            body: sig::strip_signatures(&example)?,
            id,
            signer: None,
        },
        Case::AlteredSignatureValue => Built {
            body: sig::alter_signature_value(&signer.sign(&example)?)?,
            id,
            signer: Some(signer),
        },
        Case::AlteredContent => {
            // A fresh id planted after signing: the content changes, the XSD still holds.
            let signed = signer.sign(&example)?;
            let (body, id) = m.validator.plant_id(signed.as_bytes()).ok_or_else(|| {
                ProvstenWorld::not_applicable(format!(
                    "{}: no message id to alter after signing",
                    m.name
                ))
            })?;
            Built {
                body: String::from_utf8(body)?,
                id: Some(id),
                signer: Some(signer),
            }
        }
        Case::OtherOrganisation => {
            let b = other("of another organisation", &|c, trusted| {
                trusted == Some(true) && c.org.as_ref().is_some_and(|o| *o != org)
            })?;
            Built {
                body: b.sign(&example)?,
                id,
                signer: Some(b),
            }
        }
        Case::OtherDocument => {
            let (donor, _) = planted_example(w, m)?;
            let donor = signer.sign(std::str::from_utf8(&donor)?)?;
            Built {
                body: sig::transplant_signature(&example, &donor)?,
                id,
                signer: Some(signer),
            }
        }
        Case::UntrustedCa => {
            let u = other(
                "of the sender's organisation from an untrusted CA",
                &|c, trusted| trusted == Some(false) && c.org.as_deref() == Some(org.as_str()),
            )?;
            Built {
                body: u.sign(&example)?,
                id,
                signer: Some(u),
            }
        }
    })
}

#[when(expr = "the client sends an XML message with the signature case {string}")]
async fn send_signature_case(w: &mut ProvstenWorld, name: String) -> anyhow::Result<()> {
    let m = w.xml_message_type()?;
    let case: Case = name.parse().map_err(|e: String| anyhow::anyhow!("{e}"))?;
    let signer = w.xml_signer(&m)?.ok_or_else(|| {
        ProvstenWorld::not_applicable(format!(
            "the IUT config declares no signature for the XML message type {:?} ([[message]] signature = \"enveloped\")",
            m.name
        ))
    })?;
    let built = build(w, &m, case, signer)?;
    // The harness's own verifier must see exactly the intended fault, and the message
    // must be schema-valid: a refusal is then about the signature.
    let trust = Trust::new(&w.ctx()?.pki)?;
    let verdict = sig::verify_all(&built.body, &trust);
    if !case.expected(&verdict) {
        anyhow::bail!(
            "signature case {name}: the harness's verifier says {:?}",
            verdict.map(|s| s.subject())
        );
    }
    if let Err(v) =
        crate::schema::MessageValidator::validate_bytes(m.validator.as_ref(), built.body.as_bytes())
    {
        anyhow::bail!("signature case {name}: the message does not validate: {v:?}");
    }
    let ex = w
        .post(
            &m.endpoint,
            Some("application/xml".into()),
            built.body.clone().into_bytes(),
        )
        .await?;
    w.record(json!({
        "signature_case": name,
        "altered": case.what(),
        "signer": built.signer.as_ref().map(|s| &s.name),
        "signer_subject": built.signer.as_ref().map(|s| &s.subject),
        "from_party": sig::sender(&built.body),
        "harness_verifier": match &verdict { Ok(_) => "valid".to_owned(), Err(e) => e.to_string() },
        "planted_id": built.id,
        "status": ex.status(),
    }));
    w.record(json!({"exchange": ex}));
    w.planted_ids = built.id.into_iter().collect();
    w.exchanges = vec![ex];
    w.sent_xml = Some(super::xml::SentXml {
        body: built.body.into_bytes(),
        expect: (case != Case::Valid).then_some(crate::schema::receipt::Reason::Signature),
    });
    Ok(())
}

#[then("the signed XML message is accepted")]
async fn signed_accepted(w: &mut ProvstenWorld) -> anyhow::Result<()> {
    for ex in w.exchanges()? {
        if !ex.granted() {
            w.record(json!({"accepted": false, "summary": ex.describe()}));
            fail!(
                "a correctly signed XML message was not accepted: {}",
                ex.describe()
            );
        }
    }
    if let (Some(id), Some(_)) = (w.planted_ids.first().cloned(), &w.ctx()?.accepted_url) {
        if !w.accepted_ids().await?.contains(&id) {
            fail!("the IUT answered a correctly signed XML message but does not list {id} as accepted");
        }
        w.record(json!({"accepted": true, "listed": id}));
    }
    Ok(())
}
