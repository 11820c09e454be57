//! One interface to the flaky network, two backends: the embedded fault proxy, or an
//! external Toxiproxy server the team already runs (`TOXIPROXY_URL` or the config). Steps
//! and timelines never know which.
//!
//! The external backend speaks Toxiproxy's HTTP API with a small async client of its own
//! rather than wrapping `toxiproxy_rust`: that crate is blocking, pulls OpenSSL in through
//! reqwest 0.11, never checks status codes (a 409 passes silently), panics on transport
//! errors and has no `reset_peer`. `toxiproxy_rust` stays the judge of API compatibility in
//! the tests, driving `provsten proxy` unchanged.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::proxy::{LinkConfig, LinkUpdate, ProxyServer, ToxicSpec};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// What steps and timelines need from a flaky network.
pub trait FaultBackend: Send + Sync {
    /// Creates link `name` listening on `listen` (port 0: any) and forwarding to `upstream`;
    /// returns the address it listens on.
    fn create_link<'a>(
        &'a self,
        name: &'a str,
        listen: &'a str,
        upstream: &'a str,
    ) -> BoxFuture<'a, SocketAddr>;
    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()>;
    fn set_enabled<'a>(&'a self, name: &'a str, enabled: bool) -> BoxFuture<'a, ()>;
    fn add_toxic<'a>(&'a self, link: &'a str, toxic: ToxicSpec) -> BoxFuture<'a, ()>;
    fn remove_toxic<'a>(&'a self, link: &'a str, toxic: &'a str) -> BoxFuture<'a, ()>;
    /// Shown in evidence.
    fn describe(&self) -> String;
}

pub struct Embedded(pub Arc<ProxyServer>);

impl FaultBackend for Embedded {
    fn create_link<'a>(
        &'a self,
        name: &'a str,
        listen: &'a str,
        upstream: &'a str,
    ) -> BoxFuture<'a, SocketAddr> {
        Box::pin(async move {
            let info = self
                .0
                .create(LinkConfig {
                    name: name.to_string(),
                    listen: listen.to_string(),
                    upstream: upstream.to_string(),
                    enabled: true,
                })
                .await
                .map_err(|e| anyhow!("creating link {name}: {e}"))?;
            info.listen
                .parse()
                .with_context(|| format!("link {name} listens on {:?}", info.listen))
        })
    }

    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .delete(name)
                .await
                .map_err(|e| anyhow!("deleting link {name}: {e}"))
        })
    }

    fn set_enabled<'a>(&'a self, name: &'a str, enabled: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let update = LinkUpdate {
                enabled: Some(enabled),
                ..LinkUpdate::default()
            };
            self.0
                .update(name, update)
                .await
                .map(|_| ())
                .map_err(|e| anyhow!("link {name}: {e}"))
        })
    }

    fn add_toxic<'a>(&'a self, link: &'a str, toxic: ToxicSpec) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .add_toxic(link, toxic)
                .map(|_| ())
                .map_err(|e| anyhow!("adding a toxic to link {link}: {e}"))
        })
    }

    fn remove_toxic<'a>(&'a self, link: &'a str, toxic: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .remove_toxic(link, toxic)
                .map_err(|e| anyhow!("removing toxic {toxic} from link {link}: {e}"))
        })
    }

    fn describe(&self) -> String {
        "embedded fault proxy".into()
    }
}

/// A Toxiproxy server reached over its HTTP API.
pub struct External {
    pub api: SocketAddr,
    pub deadline: Duration,
}

impl External {
    /// From `http://host:port` (as `TOXIPROXY_URL` is written).
    pub fn from_url(url: &str) -> anyhow::Result<External> {
        let (api, _) =
            super::addr::http_url(url).with_context(|| format!("Toxiproxy URL {url:?}"))?;
        Ok(External {
            api,
            deadline: Duration::from_secs(10),
        })
    }

    /// One API call; non-2xx is an error carrying Toxiproxy's message.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let what = format!("{method} {path} on Toxiproxy at {}", self.api);
        tokio::time::timeout(self.deadline, self.call_inner(method, path, body))
            .await
            .map_err(|_| anyhow!("{what}: no answer within {:?}", self.deadline))?
            .map_err(|e| anyhow!("{what}: {e:#}"))
    }

    async fn call_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let tcp = tokio::net::TcpStream::connect(self.api).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let driver = tokio::spawn(conn);
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.api.to_string())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("provsten/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(bytes)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        driver.abort();
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        if !status.is_success() {
            let msg = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("HTTP {}: {msg}", status.as_u16());
        }
        Ok(value)
    }
}

impl FaultBackend for External {
    fn create_link<'a>(
        &'a self,
        name: &'a str,
        listen: &'a str,
        upstream: &'a str,
    ) -> BoxFuture<'a, SocketAddr> {
        Box::pin(async move {
            let v = self
                .call("POST", "/proxies", Some(json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true})))
                .await?;
            let listen = v.get("listen").and_then(Value::as_str).unwrap_or_default();
            listen
                .parse()
                .with_context(|| format!("Toxiproxy says link {name} listens on {listen:?}"))
        })
    }

    fn delete_link<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.call("DELETE", &format!("/proxies/{name}"), None)
                .await
                .map(|_| ())
        })
    }

    fn set_enabled<'a>(&'a self, name: &'a str, enabled: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let v = self
                .call(
                    "POST",
                    &format!("/proxies/{name}"),
                    Some(json!({"enabled": enabled})),
                )
                .await?;
            // Verify the state rather than trust the call.
            if v.get("enabled").and_then(Value::as_bool) != Some(enabled) {
                bail!("Toxiproxy did not set link {name} enabled={enabled}: {v}");
            }
            Ok(())
        })
    }

    fn add_toxic<'a>(&'a self, link: &'a str, toxic: ToxicSpec) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let body = serde_json::to_value(&toxic)?;
            self.call("POST", &format!("/proxies/{link}/toxics"), Some(body))
                .await
                .map(|_| ())
        })
    }

    fn remove_toxic<'a>(&'a self, link: &'a str, toxic: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.call("DELETE", &format!("/proxies/{link}/toxics/{toxic}"), None)
                .await
                .map(|_| ())
        })
    }

    fn describe(&self) -> String {
        format!("Toxiproxy at http://{}", self.api)
    }
}
