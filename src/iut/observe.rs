//! The IUT's observation and trigger hooks over plain HTTP on loopback: what it accepted,
//! what it gave up delivering, its audit log, and "send this message now".

use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(5);

/// One request to an `http://IP:PORT/...` hook; the status and the body as JSON (Null if
/// the body is empty or not JSON).
pub(crate) async fn call(
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let (addr, path) = crate::network::addr::http_url(url)?;
    let method: hyper::Method = method
        .parse()
        .map_err(|_| anyhow!("{method:?} is not an HTTP method"))?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let driver = tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string());
        let payload = match body {
            Some(v) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(v)?)
            }
            None => Bytes::new(),
        };
        let resp = send.send_request(req.body(Full::new(payload))?).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        driver.abort();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        anyhow::Ok((status, v))
    };
    tokio::time::timeout(DEADLINE, work)
        .await
        .map_err(|_| anyhow!("{url}: no answer within {} s", DEADLINE.as_secs()))?
}

/// GET a hook that lists message ids: a JSON array of strings, or of objects with `id`.
pub(crate) async fn ids(url: &str) -> anyhow::Result<Vec<String>> {
    let (status, v) = call("GET", url, None).await?;
    if !(200..300).contains(&status) {
        anyhow::bail!("{url}: answered {status}");
    }
    let arr = v
        .as_array()
        .ok_or_else(|| anyhow!("{url}: not a JSON array of ids (got {})", short(&v)))?;
    Ok(arr
        .iter()
        .filter_map(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("id").map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            _ => None,
        })
        .collect())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}
