//! What the reference exposes besides its API: the inner endpoint behind the access point
//! (`--inner`, mutual TLS like the API: SDK-2.4-INNER), and, seeded, a debug port
//! (FMK-2.2-FW).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::defects::{Defect, Defects};
use super::legacy_tls::answer_defective_hello;
use super::verifier::PolicyVerifier;
use crate::pki::{org_number, Pki};

const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);

/// The inner endpoint, bound: its listener and, unless `inner-plaintext`, its TLS.
pub(super) struct Inner {
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    registered: Arc<BTreeSet<String>>,
    defects: Defects,
}

impl Inner {
    /// Binds `addr`. Its TLS verifies client certificates against the same CA and CRLs as
    /// the API, with none of the API's seeded defects: the inner ones are its own.
    pub(super) async fn bind(
        addr: SocketAddr,
        pki: &Pki,
        server_cert: &str,
        registered: &[String],
        defects: &Defects,
    ) -> anyhow::Result<Inner> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the inner endpoint {addr}"))?;
        let acceptor = if defects.has(Defect::InnerPlaintext) {
            None
        } else {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let (chain, key) = pki
                .identity(server_cert)
                .with_context(|| format!("loading the server certificate {server_cert:?}"))?;
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?;
            let builder = if defects.has(Defect::InnerNoClientAuth) {
                builder.with_no_client_auth()
            } else {
                let verifier = PolicyVerifier::new(pki, provider, Defects::default())?;
                builder.with_client_cert_verifier(Arc::new(verifier))
            };
            let mut config = builder
                .with_single_cert(chain, key)
                .context("the inner endpoint's server certificate")?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(Inner {
            listener,
            acceptor,
            registered: Arc::new(registered.iter().cloned().collect()),
            defects: defects.clone(),
        })
    }

    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub(super) async fn serve(self) {
        let legacy = Defects::new([Defect::AcceptLegacyTls]);
        loop {
            let Ok((mut tcp, peer)) = self.listener.accept().await else {
                continue;
            };
            let acceptor = self.acceptor.clone();
            let registered = self.registered.clone();
            let defects = self.defects.clone();
            let legacy = legacy.clone();
            tokio::spawn(async move {
                let Some(acceptor) = acceptor else {
                    serve_http(TokioIo::new(tcp), None, registered, defects).await;
                    return;
                };
                if defects.has(Defect::InnerLegacyTls)
                    && answer_defective_hello(&mut tcp, &legacy).await
                {
                    return;
                }
                let tls = match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "inner endpoint: TLS handshake refused");
                        return;
                    }
                    Err(_) => return,
                };
                let org = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| org_number(c));
                serve_http(TokioIo::new(tls), Some(org), registered, defects).await;
            });
        }
    }
}

/// `cert`: `None` for plain text, `Some(org)` after TLS (`Some(None)`: no organisation in
/// the certificate, or no certificate).
async fn serve_http<T>(
    io: TokioIo<T>,
    cert: Option<Option<String>>,
    registered: Arc<BTreeSet<String>>,
    defects: Defects,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
        let cert = cert.clone();
        let registered = registered.clone();
        let defects = defects.clone();
        async move {
            let (status, body) = if defects.has(Defect::RefuseValidClients) {
                (StatusCode::FORBIDDEN, json!({"error": "access denied"}))
            } else {
                match cert {
                    Some(Some(org)) if registered.contains(&org) => (
                        StatusCode::OK,
                        json!({"service": "inner", "organisation": org, "messages": []}),
                    ),
                    Some(Some(_)) => (
                        StatusCode::FORBIDDEN,
                        json!({"error": "the organisation is not registered"}),
                    ),
                    // Only reachable under a seeded defect: no client certificate asked
                    // for, or no TLS at all.
                    _ if defects.has(Defect::InnerNoClientAuth)
                        || defects.has(Defect::InnerPlaintext) =>
                    {
                        (StatusCode::OK, json!({"service": "inner", "messages": []}))
                    }
                    _ => (
                        StatusCode::FORBIDDEN,
                        json!({"error": "a client certificate is required"}),
                    ),
                }
            };
            Ok::<_, Infallible>(json_response(status, body))
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let _ = tokio::time::timeout(CONNECTION_DEADLINE, builder.serve_connection(io, svc)).await;
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `debug-port-exposed`: a plain-HTTP metrics port on a free loopback port, answering
/// anyone, that no config declares.
pub(super) async fn bind_debug() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the debug port")
}

pub(super) async fn serve_debug(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"# debug metrics\nreference_requests_total 42\n",
                )));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain"),
                );
                Ok::<_, Infallible>(r)
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}
