//! Message schemas, validation and invalid-message generation: the pure part of
//! FMK-2.6.2-VALIDATE ("information that cannot be interpreted or is invalid is not
//! accepted") and EB-SCHEMA-1 ("messages follow the schema definitions").
//!
//! The public interface is:
//! - [`catalogue`]: the schemas shipped in `schemas/`, embedded in the binary, by id
//!   (`fullmakt/agent-notification`, `ebevis/epoc`, `ebevis/epoc-pr`, `ebevis/epoc-response`);
//! - [`validate`]: [`Validator`] (JSON Schema draft 2020-12 plus the `x-luhn` keyword) and the
//!   [`MessageValidator`] trait that checks a raw body as an IUT would receive it;
//! - [`invalid`]: the defect classes, one concrete invalid message per class
//!   ([`invalid::catalogue`]), a proptest strategy of schema-breaking mutations and
//!   [`invalid::find_accepted_invalid`], which shrinks an accepted invalid message to a
//!   minimal counter-example;
//! - [`luhn`]: the check digit of Swedish personal identity and organisation numbers.
//!
//! Nothing here does I/O: sending the messages to an IUT is the steps' business.

pub(crate) mod catalogue;
pub(crate) mod invalid;
pub(crate) mod luhn;
pub(crate) mod receipt;
mod schematron;
pub(crate) mod validate;
pub(crate) mod xml;
pub(crate) mod xml_attack;
pub(crate) mod xml_generate;
pub(crate) mod xml_invalid;
pub(crate) mod xml_signature;

mod body;
mod model;
mod sites;

pub(crate) use invalid::Limits;
pub(crate) use validate::{MessageValidator, Validator};
