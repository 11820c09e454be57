//! The Luhn (mod 10) check digit of Swedish personal identity numbers (personnummer) and
//! organisation numbers (organisationsnummer).
//!
//! Both are ten digits, the last a Luhn check digit over the first nine; a personal
//! identity number may be written with its century (twelve digits) and either may carry a
//! `-` (or `+`, for people aged 100 or more) before the last four digits. The check is
//! always over the last ten digits. JSON Schema cannot express it, hence the schemas'
//! `x-luhn` keyword, enforced by [`crate::schema::Validator`].

use std::fmt;

/// Why a number fails the Luhn check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LuhnError {
    /// Something other than digits and the `-`/`+` separator.
    NotDigits,
    /// Neither ten nor twelve digits.
    WrongLength(usize),
    /// The last digit is not the check digit of the nine before it.
    WrongCheckDigit {
        /// The check digit the Luhn algorithm gives.
        expected: u8,
        /// The last digit as written.
        found: u8,
    },
}

impl fmt::Display for LuhnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LuhnError::NotDigits => {
                f.write_str("contains characters other than digits, '-' and '+'")
            }
            LuhnError::WrongLength(n) => {
                write!(f, "has {n} digits (expected 10, or 12 with the century)")
            }
            LuhnError::WrongCheckDigit { expected, found } => {
                write!(
                    f,
                    "check digit is {found}, the Luhn algorithm gives {expected}"
                )
            }
        }
    }
}

impl std::error::Error for LuhnError {}

/// Checks a Swedish personal identity or organisation number's Luhn check digit.
pub(crate) fn check(number: &str) -> Result<(), LuhnError> {
    let digits = digits(number)?;
    let ten = &digits[digits.len() - 10..];
    let expected = check_digit(&ten[..9]);
    let found = ten[9];
    if expected == found {
        Ok(())
    } else {
        Err(LuhnError::WrongCheckDigit { expected, found })
    }
}

/// The Luhn check digit of `payload` (digit values 0–9), doubling from the first digit
/// as the Swedish numbers do (nine payload digits: positions 1, 3, 5, 7, 9 are doubled).
pub(crate) fn check_digit(payload: &[u8]) -> u8 {
    let parity = payload.len() % 2;
    let sum: u32 = payload
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 != parity {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    // The result is below 10, so the cast cannot truncate.
    ((10 - sum % 10) % 10) as u8
}

fn digits(number: &str) -> Result<Vec<u8>, LuhnError> {
    let mut digits = Vec::with_capacity(12);
    for c in number.chars() {
        match c {
            '0'..='9' => digits.push(c as u8 - b'0'),
            '-' | '+' => {}
            _ => return Err(LuhnError::NotDigits),
        }
    }
    match digits.len() {
        10 | 12 => Ok(digits),
        n => Err(LuhnError::WrongLength(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid_organisation_number_passes() {
        assert_eq!(check("556036-0793"), Ok(()));
        assert_eq!(check("5560360793"), Ok(()));
    }

    #[test]
    fn organisation_number_one_digit_off_fails() {
        assert_eq!(
            check("556036-0794"),
            Err(LuhnError::WrongCheckDigit {
                expected: 3,
                found: 4
            })
        );
        // A changed payload digit breaks it just the same.
        assert!(check("556036-1793").is_err());
    }

    #[test]
    fn test_personal_identity_number_passes_in_every_spelling() {
        for n in [
            "19121212-1212",
            "191212121212",
            "121212-1212",
            "1212121212",
            "121212+1212",
        ] {
            assert_eq!(check(n), Ok(()), "{n}");
        }
        assert!(check("19121212-1213").is_err());
    }

    #[test]
    fn non_numbers_are_refused_with_the_reason() {
        assert_eq!(check("55603607x3"), Err(LuhnError::NotDigits));
        assert_eq!(check("556036079"), Err(LuhnError::WrongLength(9)));
        assert_eq!(check(""), Err(LuhnError::WrongLength(0)));
    }

    #[test]
    fn every_single_digit_change_of_the_check_digit_is_caught() {
        for d in 0..10u8 {
            let n = format!("55603607{}{}", 9, d);
            assert_eq!(check(&n).is_ok(), d == 3, "{n}");
        }
    }
}
