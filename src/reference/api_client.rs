//! The reference IUT as an API client (role `client`): `POST /admin/call {"to", "calls"}`
//! makes it read `to` that many times, one read after another, as an integration polling a
//! registry would. It keeps its request rate, honours `429`/`503` with `Retry-After`, backs
//! off from a failing server, asks only for what changed since its last read, and checks
//! the server's certificate (chain, validity, host name, revocation by CRL, and by OCSP
//! with `--ocsp`). Each seeded
//! `client-*` defect, `hammers-on-429` and `full-reread` breaks exactly one of these.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::client::{parse_retry_after, parse_url, Target};
use super::defects::{Defect, Defects};
use super::ocsp::OcspChecker;
use crate::pki::Pki;

/// The client's retry policy: the first wait, doubled after each failure, and the attempts
/// one read may take in all.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_ATTEMPTS: u32 = 5;
/// `hammers-on-429`: the retry loop that forgot its limiter.
const HAMMER_RETRY: Duration = Duration::from_millis(5);
/// Deadline of one call: connect, TLS, request and answer.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// The most reads one trigger may ask for.
const MAX_CALLS: u64 = 1000;

/// The query parameter later reads carry (the changed-between iteration).
pub(super) const CHANGED_FROM: &str = "changedFrom";

pub(super) struct ApiClient {
    connector: TlsConnector,
    /// Seconds between the starts of two calls.
    spacing: Duration,
    defects: Defects,
    /// When the next call may start.
    next_slot: tokio::sync::Mutex<Instant>,
    /// Servers' certificates' OCSP status (`--ocsp`), asked after the handshake.
    ocsp: Option<OcspChecker>,
    /// Per URL read: the start (wall clock, RFC 3339) of its last read that succeeded.
    last_read: Mutex<std::collections::HashMap<String, String>>,
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

impl ApiClient {
    /// A client presenting `cert` (or, `client-presents-other-org`, another organisation's)
    /// at most `rate` calls per second.
    pub(super) fn new(
        pki: &Pki,
        cert: &str,
        rate: f64,
        defects: Defects,
        ocsp: Option<OcspChecker>,
    ) -> anyhow::Result<ApiClient> {
        let cert = if defects.has(Defect::ClientPresentsOtherOrg) {
            "client-5560000002"
        } else {
            cert
        };
        if !(rate.is_finite() && rate > 0.0) {
            anyhow::bail!("--client-rate {rate} must be a positive number of calls per second");
        }
        Ok(ApiClient {
            connector: connector(pki, cert, &defects)?,
            spacing: Duration::from_secs_f64(1.0 / rate),
            defects,
            ocsp,
            next_slot: tokio::sync::Mutex::new(Instant::now()),
            last_read: Mutex::new(Default::default()),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
        })
    }

    /// `POST /admin/call`: checks the request and starts the reads in the background.
    pub(super) fn call(self: &Arc<Self>, body: &[u8]) -> (hyper::StatusCode, Value) {
        let req: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return bad(format!("the body is not JSON: {e}")),
        };
        let Some(to) = req.get("to").and_then(Value::as_str) else {
            return bad("\"to\" (the https:// URL to read) is missing".into());
        };
        let target = match parse_url("\"to\"", to) {
            Ok(t) => t,
            Err(e) => return bad(e),
        };
        let calls = req.get("calls").and_then(Value::as_u64).unwrap_or(1);
        if calls == 0 || calls > MAX_CALLS {
            return bad(format!("\"calls\" must be 1 to {MAX_CALLS}"));
        }
        let me = self.clone();
        if let Ok(mut t) = self.tasks.lock() {
            while t.try_join_next().is_some() {}
            t.spawn(async move {
                for _ in 0..calls {
                    me.read(&target).await;
                }
            });
        }
        (hyper::StatusCode::ACCEPTED, json!({"calls": calls}))
    }

    /// One read: attempts until one succeeds, the server refuses for good, or the policy's
    /// attempts are spent.
    async fn read(&self, t: &Target) {
        let mut wait = FIRST_RETRY;
        for attempt in 1..=MAX_ATTEMPTS {
            let hammering = attempt > 1 && self.defects.has(Defect::HammersOn429);
            if !hammering {
                self.pace().await;
            }
            let started = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            let path = self.with_changed_from(t);
            let answer = tokio::time::timeout(CALL_DEADLINE, self.get(t, &path)).await;
            let (status, retry_after) = match answer {
                Ok(Ok(x)) => x,
                // A server the client does not trust is never called again for this read.
                Ok(Err(CallError::Untrusted)) => return,
                // A reset, a refused connection or silence is retried like a 503.
                Ok(Err(CallError::Transient)) | Err(_) => (503, None),
            };
            if (200..300).contains(&status) {
                if let Ok(mut l) = self.last_read.lock() {
                    l.insert(t.key(), started);
                }
                return;
            }
            let retryable = status == 429 || status >= 500;
            if !retryable || attempt == MAX_ATTEMPTS {
                return;
            }
            let delay = if self.defects.has(Defect::HammersOn429) {
                HAMMER_RETRY
            } else {
                match retry_after {
                    Some(ra) if !self.defects.has(Defect::ClientIgnoresRetryAfter) => ra.max(wait),
                    _ => wait,
                }
            };
            tokio::time::sleep(delay).await;
            wait = wait.saturating_mul(2);
        }
    }

    /// Waits for the next call slot: starts at least `spacing` apart.
    async fn pace(&self) {
        if self.defects.has(Defect::ClientIgnoresRate) {
            return;
        }
        let slot = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.spacing;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    fn with_changed_from(&self, t: &Target) -> String {
        let path = &t.path;
        if self.defects.has(Defect::FullReread) {
            return path.to_string();
        }
        let last = self
            .last_read
            .lock()
            .ok()
            .and_then(|l| l.get(&t.key()).cloned());
        match last {
            Some(at) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                let value =
                    percent_encoding::utf8_percent_encode(&at, percent_encoding::NON_ALPHANUMERIC);
                format!("{path}{sep}{CHANGED_FROM}={value}")
            }
            None => path.to_string(),
        }
    }

    /// GET `path` on `t`: the status and `Retry-After`.
    async fn get(&self, t: &Target, path: &str) -> Result<(u16, Option<Duration>), CallError> {
        let tcp = TcpStream::connect(&t.connect)
            .await
            .map_err(|_| CallError::Transient)?;
        let tls = self
            .connector
            .connect(t.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                if super::client::is_tls(&e) {
                    CallError::Untrusted
                } else {
                    CallError::Transient
                }
            })?;
        if let Some(checker) = &self.ocsp {
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
                .ok_or(CallError::Untrusted)?;
            // Not good (or not known): hang up before any request.
            if let Err(why) = checker.check(&leaf).await {
                tracing::debug!(%why, "the server certificate's OCSP status");
                return Err(CallError::Untrusted);
            }
        }
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|_| CallError::Transient)?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::get(path)
            .header(hyper::header::HOST, t.authority.as_str())
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| CallError::Untrusted)?;
        let resp = send.send_request(req).await;
        conn.abort();
        let resp = resp.map_err(|_| CallError::Transient)?;
        let retry_after = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        Ok((resp.status().as_u16(), retry_after))
    }
}

/// Why a call got no answer.
enum CallError {
    /// The server's certificate was refused (or the request could not be made at all):
    /// the read is given up.
    Untrusted,
    /// A refused or reset connection: retried as a server error is.
    Transient,
}

fn bad(error: String) -> (hyper::StatusCode, Value) {
    (hyper::StatusCode::BAD_REQUEST, json!({ "error": error }))
}

/// The client's TLS: its certificate, and the server checked against the PKI's roots and
/// CRLs, less what a seeded defect leaves out.
fn connector(pki: &Pki, cert: &str, defects: &Defects) -> anyhow::Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (chain, key) = pki
        .identity(cert)
        .with_context(|| format!("loading the API client's certificate {cert:?}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if defects.has(Defect::ClientTrustsAnyRoot) {
        Arc::new(super::verifier::NoServerCheck(provider.clone()))
    } else {
        let mut roots = RootCertStore::empty();
        for c in pki.trust_roots()? {
            roots
                .add(c)
                .context("adding a PKI trust root for the API client")?;
        }
        let mut b = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if !defects.has(Defect::ClientIgnoresRevocation) {
            b = b.with_crls(pki.crls()?);
        }
        Arc::new(Lenient {
            inner: b.build()?,
            defects: defects.clone(),
        })
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .with_context(|| format!("the API client's certificate {cert:?}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The PKI's verifier, with the errors a seeded defect ignores taken as success.
#[derive(Debug)]
struct Lenient {
    inner: Arc<WebPkiServerVerifier>,
    defects: Defects,
}

impl Lenient {
    fn ignores(&self, e: &CertificateError) -> bool {
        use CertificateError as E;
        match e {
            E::Expired
            | E::ExpiredContext { .. }
            | E::NotValidYet
            | E::NotValidYetContext { .. } => {
                self.defects.has(Defect::ClientIgnoresServerCertExpiry)
            }
            E::NotValidForName | E::NotValidForNameContext { .. } => {
                self.defects.has(Defect::ClientNoHostnameCheck)
            }
            _ => false,
        }
    }
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(e)) if self.ignores(&e) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
