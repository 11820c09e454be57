//! A requirement's ID as a type. A leaf: the catalogue (`requirements`), the report model
//! and the seeded-defect table all name requirements, and none of them may import another
//! for it.

use std::borrow::{Borrow, Cow};

use serde::Deserialize;

/// A requirement's stable ID (`EB-MTLS-1`, `FMK-2.6.3-RESEND`): the contract between
/// feature tags, the catalogue, the seeded-defect table and the reports. Its shape is
/// checked where it enters (serde, [`FromStr`](std::str::FromStr)); that it names a
/// catalogue entry is checked where features are loaded, and for the built-in tables
/// (defects, schemas) by unit tests.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RequirementId(Cow<'static, str>);

impl RequirementId {
    /// An ID written in one of the crate's own tables (a unit test checks each against the
    /// catalogue).
    pub const fn of(id: &'static str) -> RequirementId {
        RequirementId(Cow::Borrowed(id))
    }

    /// The ID as written in the catalogue.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Upper-case letters, digits, `-` and `.`, starting with a letter and holding a `-`: the
/// catalogue's convention (source system prefix, clause, topic).
impl std::str::FromStr for RequirementId {
    type Err = String;

    fn from_str(s: &str) -> Result<RequirementId, String> {
        let well_formed = s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.contains('-')
            && !s.ends_with(['-', '.'])
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if well_formed {
            Ok(RequirementId(Cow::Owned(s.to_owned())))
        } else {
            Err(format!(
                "{s:?} is not a requirement ID (upper-case letters, digits, '-' and '.', like \"EB-MTLS-1\"; `provsten requirements` lists them)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for RequirementId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RequirementId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for RequirementId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// Read as text by the writers; text becomes an ID only through parsing.
impl std::ops::Deref for RequirementId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for RequirementId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for RequirementId {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for RequirementId {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_ids_are_checked_where_they_enter() {
        for good in [
            "EB-TLS-1",
            "FMK-2.6.3-RESEND",
            "CONT-EXERCISE",
            "SDK-2.4-INNER",
        ] {
            let id: RequirementId = good.parse().unwrap();
            assert_eq!(id, RequirementId::of(good));
            assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{good}\""));
            let back: RequirementId = serde_json::from_str(&format!("\"{good}\"")).unwrap();
            assert_eq!(back, id);
        }
        for bad in [
            "",
            "eb-tls-1",
            "EBTLS1",
            "EB-TLS-",
            "EB TLS-1",
            "1-EB",
            "EB-TLS-1\n",
            "EB-TLS-ä",
        ] {
            let e = bad.parse::<RequirementId>().unwrap_err();
            assert!(e.contains("is not a requirement ID"), "{bad:?}: {e}");
            assert!(
                serde_json::from_value::<RequirementId>(bad.into()).is_err(),
                "{bad:?}"
            );
        }
    }
}
