//! Changing the IUT's registered source ranges during a run (EB-IP-2): write the list to
//! the file the IUT reads, then trigger its reload by command or HTTP POST.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use ipnet::IpNet;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::network::addr::http_url;

#[derive(Debug, Clone)]
pub(crate) enum Reload {
    Command { argv: Vec<String>, workdir: PathBuf },
    Url(String),
}

#[derive(Debug, Clone)]
pub(crate) struct AllowlistControl {
    pub file: PathBuf,
    pub reload: Option<Reload>,
    pub timeout: Duration,
}

impl AllowlistControl {
    pub(crate) fn write(&self, ranges: &[IpNet]) -> anyhow::Result<()> {
        let mut text = String::from("# registered source ranges, written by provsten\n");
        for r in ranges {
            text.push_str(&format!("{r}\n"));
        }
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Written aside and renamed, so an IUT that watches or re-reads the file never sees
        // half a list.
        let tmp = self.file.with_extension("provsten-tmp");
        std::fs::write(&tmp, text)
            .with_context(|| format!("writing the allowlist {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.file)
            .with_context(|| format!("replacing the allowlist {}", self.file.display()))
    }

    /// Writes `ranges` and triggers the reload; returns evidence of what was done.
    pub(crate) async fn apply(&self, ranges: &[IpNet]) -> anyhow::Result<serde_json::Value> {
        self.write(ranges)?;
        let reload = match &self.reload {
            None => bail!("the IUT config declares no ip_filter.reload: provsten cannot make the IUT re-read its list"),
            Some(r) => r,
        };
        let outcome = tokio::time::timeout(self.timeout, run_reload(reload))
            .await
            .map_err(|_| {
                anyhow!(
                    "the reload did not finish within {:?} (ip_filter.reload_timeout)",
                    self.timeout
                )
            })??;
        Ok(json!({
            "allowlist": ranges.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "reload": outcome,
        }))
    }
}

async fn run_reload(reload: &Reload) -> anyhow::Result<String> {
    match reload {
        Reload::Command { argv, workdir } => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| anyhow!("empty reload command"))?;
            let out = tokio::process::Command::new(program)
                .args(args)
                .current_dir(workdir)
                .kill_on_drop(true)
                .output()
                .await
                .with_context(|| format!("running the reload command {argv:?}"))?;
            if !out.status.success() {
                bail!(
                    "the reload command {argv:?} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(format!("command {argv:?}: {}", out.status))
        }
        Reload::Url(url) => {
            let (addr, path) = http_url(url)?;
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to the reload URL {url}"))?;
            let req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await?;
            let mut resp = Vec::new();
            s.read_to_end(&mut resp).await?;
            let text = String::from_utf8_lossy(&resp);
            let status_line = text.lines().next().unwrap_or("").to_string();
            if !status_line.contains(" 2") {
                bail!("the reload URL {url} answered {status_line:?}");
            }
            Ok(format!("POST {url}: {status_line}"))
        }
    }
}
