//! The reference IUT: a compliant implementation shipped inside the binary, with seeded
//! defects (`--defect`). It is judged like a stranger: it runs as a child process, is
//! reached only over the network, and never imports the steps, peers or report.

mod api_client;
mod audit;
mod changes;
mod client;
pub mod defects;
mod ip_filter;
mod legacy_tls;
mod messages;
mod ocsp;
mod outbox;
mod receipts;
mod router;
mod sender;
mod server;
mod surface;
mod verifier;
mod xml_receiver;

/// A query-string value: `+` is a space, `%XX` escapes decoded (invalid UTF-8 replaced).
fn query_value(v: &str) -> String {
    percent_encoding::percent_decode_str(&v.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub(crate) use router::{RouteSpec, RouterOptions};
pub(crate) use sender::{load_policy, SenderOptions, DEFAULT_CLIENT_CERT, DEFAULT_CLIENT_RATE};
pub(crate) use server::{run, shutdown_signal, start, ReferenceOptions};

#[cfg(test)]
mod tests;
