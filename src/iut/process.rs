//! The IUT as a child process: started in its own process group, its output kept for error
//! reports, and stopped (the whole group) on exit, on error and on Ctrl-C.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

const KEPT_LINES: usize = 200;

#[derive(Debug, Clone)]
pub struct StartSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    pub stop_timeout: Duration,
}

pub struct IutProcess {
    child: Child,
    pgid: Option<Pid>,
    output: Arc<Mutex<VecDeque<String>>>,
    stop_timeout: Duration,
}

impl IutProcess {
    pub fn spawn(spec: &StartSpec) -> anyhow::Result<IutProcess> {
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &spec.workdir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "starting the IUT: {} {} (hint: check iut.start.command and iut.start.workdir)",
                spec.program,
                spec.args.join(" ")
            )
        })?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, output.clone(), ""));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, output.clone(), "stderr: "));
        }
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        Ok(IutProcess {
            child,
            pgid,
            output,
            stop_timeout: spec.stop_timeout,
        })
    }

    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let out = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        out.iter()
            .skip(out.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM to the group, then SIGKILL after the stop timeout.
    pub async fn stop(mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pg) = self.pgid {
            let _ = killpg(pg, Signal::SIGTERM);
        }
        if tokio::time::timeout(self.stop_timeout, self.child.wait())
            .await
            .is_err()
        {
            self.kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        }
        self.pgid = None;
    }

    /// SIGKILL to the group at once, as a crash would end it.
    pub async fn kill_now(mut self) {
        self.kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.pgid = None;
    }

    fn kill(&mut self) {
        if let Some(pg) = self.pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
    }
}

impl Drop for IutProcess {
    /// Reached on errors and Ctrl-C, when `stop` did not run: take the whole group down.
    fn drop(&mut self) {
        if self.pgid.is_some() && self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

async fn collect(
    stream: impl AsyncRead + Unpin,
    sink: Arc<Mutex<VecDeque<String>>>,
    prefix: &'static str,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "iut", "{line}");
        if let Ok(mut s) = sink.lock() {
            if s.len() == KEPT_LINES {
                s.pop_front();
            }
            s.push_back(format!("{prefix}{line}"));
        }
    }
}
