//! Publishes the CA's CRLs over plain HTTP at the distribution point written into the
//! certificates (`{crl_base_url}/{ca}.crl`, DER; `.crl.pem` for PEM).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Address and path prefix of the CRL base URL.
pub fn crl_listen_addr(crl_base_url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let (addr, path) = crate::network::addr::http_url(crl_base_url).with_context(|| {
        format!("CRL base URL {crl_base_url:?} (CRLs are published over plain HTTP)")
    })?;
    Ok((addr, path.trim_end_matches('/').to_string()))
}

/// A running OCSP responder: its task and what it was asked.
pub struct OcspServer {
    pub url: String,
    pub responder: std::sync::Arc<super::ocsp::Responder>,
    task: Option<JoinHandle<()>>,
}

impl OcspServer {
    /// Answers for `pki` at its `ocsp_base_url` when that is a loopback HTTP URL: `None`
    /// for a PKI without one (or elsewhere: the IUT's own responder then answers); an
    /// error if the port is taken (the certificates name it, so no other port will do).
    pub async fn start(
        pki: &super::Pki,
        signer: super::ocsp::Signer,
    ) -> anyhow::Result<Option<OcspServer>> {
        let Some(url) = &pki.manifest.ocsp_base_url else {
            return Ok(None);
        };
        let Ok((addr, prefix)) = crl_listen_addr(url) else {
            return Ok(None);
        };
        if !addr.ip().is_loopback() {
            return Ok(None);
        }
        let responder = std::sync::Arc::new(super::ocsp::Responder::load(pki, signer)?);
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot answer OCSP at {url}, where the certificates of the PKI in {} say the responder is: is another run or `provsten pki serve` using this PKI? (hint: stop it, or make another PKI: `provsten pki init --out DIR` picks a free port)",
                pki.dir.display()
            )
        })?;
        Ok(Some(OcspServer {
            url: url.clone(),
            task: Some(serve_ocsp(listener, responder.clone(), prefix)),
            responder,
        }))
    }

    /// Stops answering and waits until the port is closed (dropping only begins that).
    pub async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for OcspServer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Serves the CRL files in `dir` under `prefix` until the task is aborted.
pub fn serve(listener: TcpListener, dir: PathBuf, prefix: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let dir = dir.clone();
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let resp = answer(&dir, &prefix, req.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
            });
        }
    })
}

fn answer(dir: &std::path::Path, prefix: &str, path: &str) -> Response<Full<Bytes>> {
    let file = path
        .strip_prefix(prefix)
        .and_then(|p| p.strip_prefix('/'))
        .filter(|f| {
            (f.ends_with(".crl") || f.ends_with(".crl.pem"))
                && !f.contains('/')
                && !f.starts_with('.')
        });
    let body = file.and_then(|f| std::fs::read(dir.join(f)).ok());
    match body {
        Some(b) => {
            let ct = if path.ends_with(".pem") {
                "application/x-pem-file"
            } else {
                "application/pkix-crl"
            };
            Response::builder()
                .header("content-type", ct)
                .body(Full::new(Bytes::from(b)))
                .unwrap_or_default()
        }
        None => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"no such CRL\n")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// Serves `responder` at `prefix` until the task is aborted: RFC 6960 appendix A, a DER
/// request POSTed to the URL, or base64 (URL-encoded) after it in a GET.
pub fn serve_ocsp(
    listener: TcpListener,
    responder: std::sync::Arc<super::ocsp::Responder>,
    prefix: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let responder = responder.clone();
            let prefix = prefix.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let responder = responder.clone();
                    let prefix = prefix.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            ocsp_answer(&responder, &prefix, req).await,
                        )
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
            });
        }
    })
}

/// An OCSP request is a few hundred bytes; anything much larger is not one.
const OCSP_REQUEST_LIMIT: usize = 64 * 1024;

async fn ocsp_answer(
    responder: &super::ocsp::Responder,
    prefix: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let status = |code: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = code;
        r
    };
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(prefix) else {
        return status(StatusCode::NOT_FOUND, "no OCSP responder here\n");
    };
    let (body, method) = match *req.method() {
        hyper::Method::POST if rest.is_empty() || rest == "/" => {
            match http_body_util::Limited::new(req.into_body(), OCSP_REQUEST_LIMIT)
                .collect()
                .await
            {
                Ok(b) => (b.to_bytes().to_vec(), "POST"),
                Err(_) => return status(StatusCode::PAYLOAD_TOO_LARGE, "request too large\n"),
            }
        }
        hyper::Method::GET => {
            let Some(encoded) = rest.strip_prefix('/') else {
                return status(StatusCode::NOT_FOUND, "no OCSP responder here\n");
            };
            (ocsp_get_body(encoded), "GET")
        }
        _ => {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST or GET an OCSP request\n",
            )
        }
    };
    Response::builder()
        .header("content-type", "application/ocsp-response")
        .body(Full::new(Bytes::from(responder.answer(&body, method))))
        .unwrap_or_default()
}

/// The DER of a GET request's path: URL-decoded base64. What does not decode is answered
/// `malformedRequest` by the responder (an empty body is not a request).
fn ocsp_get_body(encoded: &str) -> Vec<u8> {
    use base64ct::Encoding;
    let text = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    base64ct::Base64::decode_vec(text.trim()).unwrap_or_default()
}

/// Copies the public half of a PKI folder (everything but `*.key.pem`) into `to`: what a
/// report folder may hold and a counterpart needs (trust bundle, certificates, CRLs).
/// Private keys an earlier run left in `to` are removed.
pub fn copy_public(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(to).with_context(|| format!("reading {}", to.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", to.display()))?
            .path();
        if path.to_string_lossy().ends_with(".key.pem") {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the private key {}", path.display()))?;
        }
    }
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let name = entry.file_name();
        let private = name.to_string_lossy().ends_with(".key.pem");
        if private || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let target = to.join(&name);
        std::fs::copy(entry.path(), &target).with_context(|| {
            format!("copying {} to {}", entry.path().display(), target.display())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_url_splits_into_address_and_prefix() {
        let (a, p) = crl_listen_addr("http://127.0.0.1:8479/crl/").unwrap();
        assert_eq!(a.port(), 8479);
        assert_eq!(p, "/crl");
        assert!(crl_listen_addr("https://127.0.0.1:1/crl").is_err());
        assert!(crl_listen_addr("http://localhost:1/crl").is_err());
    }

    #[test]
    fn ocsp_get_paths_are_url_decoded_base64() {
        assert_eq!(ocsp_get_body("MAM%3D"), vec![0x30, 0x03]);
        assert_eq!(ocsp_get_body("MAM="), vec![0x30, 0x03]);
        assert!(ocsp_get_body("%%%not base64").is_empty());
    }

    #[test]
    fn only_crl_files_are_served() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("inter.crl"), b"x").unwrap();
        std::fs::write(d.path().join("inter.key.pem"), b"secret").unwrap();
        assert_eq!(answer(d.path(), "/crl", "/crl/inter.crl").status(), 200);
        assert_eq!(answer(d.path(), "/crl", "/crl/inter.key.pem").status(), 404);
        assert_eq!(answer(d.path(), "/crl", "/crl/../inter.crl").status(), 404);
    }
}
