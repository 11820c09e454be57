//! Pure models that both the harness and the reference IUT read, named as shared so the
//! exception is visible: the reference is judged like a stranger and otherwise imports
//! nothing of the harness (see `lib.rs`). Nothing here does I/O or holds run state: a
//! declared resend policy is data both sides parse, as an IUT reads its own config; how a
//! policy is *judged* lives in `steps/resend.rs`, how the reference *follows* it in
//! `reference/sender.rs` and `reference/router.rs`.

pub mod duration;
pub mod requirement_id;
pub mod resend_policy;

pub use requirement_id::RequirementId;
