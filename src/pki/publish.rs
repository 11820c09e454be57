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
    fn only_crl_files_are_served() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("inter.crl"), b"x").unwrap();
        std::fs::write(d.path().join("inter.key.pem"), b"secret").unwrap();
        assert_eq!(answer(d.path(), "/crl", "/crl/inter.crl").status(), 200);
        assert_eq!(answer(d.path(), "/crl", "/crl/inter.key.pem").status(), 404);
        assert_eq!(answer(d.path(), "/crl", "/crl/../inter.crl").status(), 404);
    }
}
