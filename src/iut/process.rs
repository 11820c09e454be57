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

/// Process groups of IUTs started and not yet stopped, with their stop timeouts. A signal
/// handler stops these: the run's own state may never be dropped (steps hold the IUT's
/// restarter), so dropping is not enough to take the IUT down on Ctrl-C or SIGTERM.
static LIVE: Mutex<Vec<(Pid, Duration)>> = Mutex::new(Vec::new());

fn register(pg: Pid, stop_timeout: Duration) {
    if let Ok(mut live) = LIVE.lock() {
        live.push((pg, stop_timeout));
    }
}

fn unregister(pg: Pid) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|(p, _)| *p != pg);
    }
}

/// Stops every IUT process group still running: SIGTERM, then SIGKILL to what is left after
/// its stop timeout. For signal handlers, before the process exits.
pub(crate) async fn stop_all() {
    let groups: Vec<(Pid, Duration)> = LIVE
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    for (pg, _) in &groups {
        let _ = killpg(*pg, Signal::SIGTERM);
    }
    for (pg, timeout) in groups {
        let deadline = tokio::time::Instant::now() + timeout;
        while group_alive(pg) && tokio::time::Instant::now() < deadline {
            // Poll for the group to empty: its members are not our children to wait on.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if group_alive(pg) {
            let _ = killpg(pg, Signal::SIGKILL);
        }
        // Reap the group leader (our child) so it does not linger as a zombie.
        let _ = nix::sys::wait::waitpid(pg, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
}

/// Whether any process of group `pg` is left (the leader is reaped first, so a zombie
/// leader does not count as alive).
fn group_alive(pg: Pid) -> bool {
    let _ = nix::sys::wait::waitpid(pg, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    killpg(pg, None).is_ok()
}

#[derive(Debug, Clone)]
pub(crate) struct StartSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    pub stop_timeout: Duration,
}

pub(crate) struct IutProcess {
    child: Child,
    pgid: Option<Pid>,
    output: Arc<Mutex<VecDeque<String>>>,
    stop_timeout: Duration,
}

impl IutProcess {
    pub(crate) fn spawn(spec: &StartSpec) -> anyhow::Result<IutProcess> {
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
        if let Some(pg) = pgid {
            register(pg, spec.stop_timeout);
        }
        Ok(IutProcess {
            child,
            pgid,
            output,
            stop_timeout: spec.stop_timeout,
        })
    }

    pub(crate) fn last_lines(&self, n: usize) -> Vec<String> {
        let out = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        out.iter()
            .skip(out.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The process group the IUT runs in (its leader's pid).
    pub(crate) fn pgid(&self) -> Option<i32> {
        self.pgid.map(Pid::as_raw)
    }

    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its exit status if it exits within `deadline`.
    pub(crate) async fn exits_within(&mut self, deadline: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// SIGTERM to the group, then SIGKILL after the stop timeout.
    pub(crate) async fn stop(mut self) {
        if let Some(pg) = self.pgid {
            unregister(pg);
        }
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
    pub(crate) async fn kill_now(mut self) {
        if let Some(pg) = self.pgid {
            unregister(pg);
        }
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
        if let Some(pg) = self.pgid {
            unregister(pg);
        }
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
