//! The HTTP client side both the sender and its routers use: `https://` targets, the mutual
//! TLS connector, and how a failed attempt maps to a policy [`Outcome`]. A leaf, so the
//! router need not import the sender that owns it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::pki::Pki;
use crate::shared::resend_policy::Outcome;

/// Where a message goes, from its `https://` URL.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// host:port to connect to (IPv6 in brackets).
    pub connect: String,
    pub authority: String,
    pub path: String,
    pub server_name: ServerName<'static>,
    /// The URL names its port (else 443).
    pub explicit_port: bool,
}

impl Target {
    /// The URL as one string, to key what a client remembers per resource.
    pub(super) fn key(&self) -> String {
        format!("{}{}", self.authority, self.path)
    }
}

/// A message's `"to"`.
pub(super) fn parse_target(to: &str) -> Result<Target, String> {
    parse_url("\"to\"", to)
}

/// An `https://` URL; `what` names it in errors.
pub(super) fn parse_url(what: &str, to: &str) -> Result<Target, String> {
    let uri: hyper::Uri = to
        .parse()
        .map_err(|e| format!("{what} {to:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{what} {to:?} is not an https:// URL (messages go over mutual TLS)"
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{what} {to:?} has no host"));
    };
    let host = authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(bare.to_string())
        .map_err(|e| format!("{what} {to:?}: host {host:?} is not a server name: {e}"))?;
    let port = authority.port_u16().unwrap_or(443);
    Ok(Target {
        connect: format!("{host}:{port}"),
        authority: authority.as_str().to_string(),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
        server_name,
        explicit_port: authority.port_u16().is_some(),
    })
}

/// A TLS client presenting the catalogue certificate `cert`, checking servers against the
/// PKI's roots (or, `accept_any`, not at all).
pub(super) fn client_connector(
    pki: &Pki,
    cert: &str,
    accept_any: bool,
) -> anyhow::Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (chain, key) = pki
        .identity(cert)
        .with_context(|| format!("loading the client certificate {cert:?}"))?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?;
    let builder = if accept_any {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(super::verifier::NoServerCheck(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        for c in pki.trust_roots()? {
            roots
                .add(c)
                .context("adding a PKI trust root for the sender")?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
        builder.with_webpki_verifier(verifier)
    };
    let mut config = builder
        .with_client_auth_cert(chain, key)
        .with_context(|| format!("the client certificate {cert:?}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

pub(super) fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Status {
            status,
            retry_after,
        } => match retry_after {
            Some(ra) => format!("{status} (Retry-After {} ms)", ra.as_millis()),
            None => status.to_string(),
        },
        Outcome::Timeout => "timeout".into(),
        Outcome::Reset => "reset".into(),
        Outcome::Refused => "refused".into(),
        Outcome::Tls => "tls".into(),
    }
}

/// Whether a rustls error is somewhere in the chain (io::Error hides its inner error
/// from `source()`, so look inside each one).
/// A failed connection as the policy classes it: refused by TLS, or cut.
pub(super) fn tls_or_reset(e: &(dyn std::error::Error + 'static)) -> Outcome {
    if is_tls(e) {
        Outcome::Tls
    } else {
        Outcome::Reset
    }
}

pub(super) fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if inner.is::<rustls::Error>() {
                    return true;
                }
            }
        }
        cur = e.source();
    }
    false
}

/// `Retry-After`: delay-seconds or an HTTP-date (made relative to now).
pub(super) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let d = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}
