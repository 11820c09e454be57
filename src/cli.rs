//! The command line (DESIGN.md "CLI contract"). Doc comments are the help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::reference::defects::Defect;

/// Exit codes, documented in the README and mapped in one place.
pub mod exit {
    /// At least one requirement passed and none failed or errored (with `--complete`: every
    /// testable requirement of the profile was tested and passed).
    pub const COMPLIANT: u8 = 0;
    /// At least one requirement failed (or, with `--complete`, one was not tested).
    pub const NON_COMPLIANT: u8 = 1;
    /// The run itself could not be done: bad config, IUT never ready, bad feature file, a
    /// harness error kept a requirement from being evaluated, or nothing was tested.
    pub const RUN_ERROR: u8 = 2;
    /// Interrupted by SIGINT (Ctrl-C); the IUT's process group was stopped first.
    pub const INTERRUPTED: u8 = 130;
    /// Terminated by SIGTERM (CI cancellation, `timeout`); the IUT's process group was
    /// stopped first.
    pub const TERMINATED: u8 = 143;
}

/// The parsed command line: `provsten COMMAND …`.
#[derive(Debug, Parser)]
#[command(
    name = "provsten",
    version,
    about = "Conformance and resilience harness for secure API connections",
    long_about = "provsten runs Gherkin scenarios with simulated peers, a simulated CA and flaky networks against an implementation under test (IUT) and reports compliance per requirement.\n\nWithout arguments to `run`, it certifies the embedded reference IUT."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// provsten's commands (DESIGN.md "CLI contract").
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the suite against the IUT and write the compliance report.
    Run(RunArgs),
    /// Run an outage exercise: a fault timeline on the router's routes under a steady
    /// load, with per-phase detection time, RTO, losses, duplicates, latency and per-route
    /// throughput. Outputs and exit codes as for `run`.
    Exercise(ExerciseArgs),
    /// Scaffold a commented IUT config and a PKI for an IUT of your own.
    Init {
        /// Directory to create (default: current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite an existing provsten.toml.
        #[arg(long)]
        force: bool,
        /// What the IUT is: `server` (an API, with the other roles commented) or `client`
        /// (it calls an API: a curl example).
        #[arg(long, value_enum, default_value_t = InitRole::Server)]
        role: InitRole,
    },
    /// Work with the simulated certificate authority.
    Pki {
        /// What to do with the PKI.
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Run the reference IUT on its own (what `run` starts as a child process).
    ReferenceIut(Box<ReferenceArgs>),
    /// List the requirement catalogue.
    Requirements {
        /// Only this profile: all, ebevis, fullmakt, sdk, continuity.
        #[arg(long, default_value = "all")]
        profile: crate::requirements::Profile,
    },
    /// List the reference IUT's seeded defects: NAME<TAB>REQ-IDS<TAB>description.
    Defects,
    /// Print the Gherkin step vocabulary with an example each.
    Steps,
    /// Run the fault proxy on its own, with a Toxiproxy-compatible HTTP API: existing
    /// Toxiproxy clients (toxiproxy-cli, toxiproxy_rust, toxiproxy-ruby…) drive it unchanged.
    Proxy {
        /// Where the API listens.
        #[arg(long, default_value = "127.0.0.1:8474", env = "PROVSTEN_PROXY_API", value_parser = parse_listen_addr)]
        api: SocketAddr,
        /// Proxies to create at start, in Toxiproxy's JSON config format (a list of
        /// {name, listen, upstream, enabled}).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Measure performance (figures as ratios against a baseline from the same run).
    Bench {
        /// What to measure.
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Make an Ed25519 key pair for signing reports: PREFIX.key.pem (0600) and PREFIX.pub.pem.
    Keygen {
        /// Path prefix of the two files.
        #[arg(default_value = "provsten-signing")]
        prefix: PathBuf,
    },
    /// Work with written reports: merge shards, verify a signed report, re-render.
    Report {
        /// What to do with the reports.
        #[command(subcommand)]
        command: ReportCommand,
    },
}

/// The commands of `provsten bench`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The fault proxy against a direct connection (and HAProxy in `mode tcp`, when
    /// installed): throughput, request rate and latency, connection rate, CPU per GB,
    /// memory per idle connection.
    Proxy {
        /// A ~10 s run instead of ~40 s.
        #[arg(long)]
        quick: bool,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// A day of national volume through the reference IUT's router across a primary-node
    /// outage, counting every id: wall time, messages/s, duplicates, unaccounted, CPU and
    /// peak RSS of the harness and of the IUT.
    Router {
        /// Messages to route (one day of the national message system: 1.5 million).
        #[arg(long, default_value_t = 1_500_000)]
        messages: u64,
        /// Messages per second offered (the acceleration).
        #[arg(long, default_value_t = 5_000.0)]
        rate: f64,
        /// Messages per /admin/send-batch request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// The IUT's outbox directory (default: a temporary one).
        #[arg(long)]
        outbox: Option<PathBuf>,
        /// The reference IUT's --retention: how long delivered records stay in its memory.
        #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
        retention: std::time::Duration,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Invalid messages per second against the reference IUT, and the time to shrink a
    /// counter-example, against valid messages in the same run.
    Schema {
        /// Messages of each kind.
        #[arg(long, default_value_t = 500)]
        messages: u32,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// The commands of `provsten report`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Combine the report.json of every shard into one report (all formats).
    Merge {
        /// Shard reports (report.json files).
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Output directory.
        #[arg(long, default_value = "provsten-report")]
        out: PathBuf,
    },
    /// Check a signed report's signature and, where given, the digests of its inputs.
    /// Exit 0 valid, 1 a mismatch, 2 unreadable.
    Verify {
        /// The signed report.json.
        report: PathBuf,
        /// The signer's public key (SubjectPublicKeyInfo PEM).
        #[arg(long)]
        key: PathBuf,
        /// The IUT config the run claims to have used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The CA certificate(s) (PEM) the run claims to have trusted.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Extra feature directories the run was given with --features.
        #[arg(long = "features", value_name = "DIR")]
        features: Vec<PathBuf>,
    },
    /// Regenerate every output format from a report.json.
    Render {
        #[allow(missing_docs)]
        report: PathBuf,
        #[allow(missing_docs)]
        #[arg(long, default_value = "provsten-report")]
        out: PathBuf,
    },
}

/// The arguments of `provsten run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// IUT config (see `provsten init`). Default: the embedded reference IUT.
    #[arg(long, env = "PROVSTEN_CONFIG", help_heading = "IUT")]
    pub config: Option<PathBuf>,
    /// Seed a defect into the reference IUT (repeatable; `provsten defects` lists them).
    #[arg(long = "defect", value_name = "NAME", help_heading = "IUT")]
    pub defects: Vec<Defect>,
    /// Requirement profile: all, ebevis, fullmakt, sdk, continuity.
    #[arg(
        long,
        default_value = "all",
        env = "PROVSTEN_PROFILE",
        help_heading = "Selection"
    )]
    pub profile: crate::requirements::Profile,
    /// Tag expression selecting scenarios, e.g. "@req:EB-MTLS-1 and not @role:client".
    #[arg(long, value_name = "EXPR", help_heading = "Selection")]
    pub tags: Option<String>,
    /// Extra directory of .feature files to run besides the shipped ones (repeatable).
    #[arg(long = "features", value_name = "DIR", help_heading = "Selection")]
    pub features: Vec<PathBuf>,
    /// Extra directory of fault timelines (NAME.toml) besides the shipped ones (repeatable).
    #[arg(long = "scenarios", value_name = "DIR", help_heading = "Selection")]
    pub timelines: Vec<PathBuf>,
    /// Run only shard I of N (1-based), split by a stable hash of the scenario key. `auto`
    /// takes I and N from the CI host: GitLab's CI_NODE_INDEX/CI_NODE_TOTAL (`parallel:`),
    /// else PROVSTEN_SHARD_INDEX/PROVSTEN_SHARD_TOTAL (e.g. from a GitHub Actions matrix).
    #[arg(long, value_name = "I/N|auto", value_parser = parse_shard, help_heading = "Selection")]
    pub shard: Option<ShardArg>,
    /// Report directory.
    #[arg(
        long,
        default_value = "provsten-report",
        env = "PROVSTEN_OUT",
        help_heading = "Output"
    )]
    pub out: PathBuf,
    /// Certification mode: compliant only when every testable requirement of the profile
    /// was tested and passed (a requirement left `not-tested` makes the run non-compliant).
    #[arg(long, help_heading = "Selection")]
    pub complete: bool,
    /// Scenarios run at the same time (at least 1). Most of a scenario is waiting on the
    /// IUT and on declared windows, and router scenarios wait here for a free lane.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..), help_heading = "Execution")]
    pub concurrency: u16,
    /// No live progress lines.
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    /// Sign report.json with this Ed25519 private key (PKCS#8 PEM; see `provsten keygen`).
    #[arg(
        long,
        value_name = "KEY",
        env = "PROVSTEN_SIGNING_KEY",
        help_heading = "Output"
    )]
    pub sign: Option<PathBuf>,
}

/// The arguments of `provsten exercise`.
#[derive(Debug, Args)]
pub struct ExerciseArgs {
    /// The exercise: a timeline file (scenarios/NAME.toml) or a shipped exercise's name
    /// (primary-node-outage, black-holed-primary, flapping-primary, degraded-network,
    /// total-outage-and-recovery).
    pub exercise: PathBuf,
    /// IUT config (its role `router`). Default: the embedded reference IUT.
    #[arg(long, env = "PROVSTEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seed a defect into the reference IUT (repeatable).
    #[arg(long = "defect", value_name = "NAME")]
    pub defects: Vec<Defect>,
    /// Report directory.
    #[arg(long, default_value = "provsten-report", env = "PROVSTEN_OUT")]
    pub out: PathBuf,
    /// No live progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Sign report.json with this Ed25519 private key.
    #[arg(long, value_name = "KEY", env = "PROVSTEN_SIGNING_KEY")]
    pub sign: Option<PathBuf>,
}

/// `provsten init --role`: which commented config to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitRole {
    /// An API server (role server; sender, receiver, router commented).
    Server,
    /// An API client (role client), with curl as the worked example.
    Client,
}

/// The commands of `provsten pki`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Generate the CA and the certificate catalogue as PEM files (keys 0600) and catalog.json.
    Init {
        /// Output directory.
        #[arg(long, default_value = "certs/out")]
        out: PathBuf,
        /// Certificate catalogue (default: the shipped certs/catalog.toml).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// CRL distribution point written into the certificates (served during `run`).
        /// Default: http://127.0.0.1:PORT/crl on a loopback port free now.
        #[arg(long)]
        crl_url: Option<String>,
        /// How long the CRLs last (their nextUpdate), e.g. 365d, 2years.
        #[arg(long, default_value = "365d", value_parser = parse_lifetime)]
        crl_lifetime: std::time::Duration,
        /// OCSP responder URL written into the certificates' Authority Information Access
        /// (served during `run` and by `provsten pki serve`).
        /// Default: http://127.0.0.1:PORT/ocsp on a loopback port free now.
        #[arg(long)]
        ocsp_url: Option<String>,
    },
    /// Serve a PKI folder's CRLs and OCSP responder at the URLs its certificates carry,
    /// until Ctrl-C or SIGTERM: for an IUT checked outside `provsten run`.
    Serve {
        /// The PKI folder made by `provsten pki init` (CA keys included: OCSP answers are signed).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Who signs the OCSP answers: "ca", or "delegated" (the catalogue's
        /// ocsp-responder certificate, sent with each answer).
        #[arg(long, default_value = "ca")]
        ocsp_signer: crate::pki::ocsp::Signer,
    },
    /// Re-issue a PKI's CRLs (same revoked certificates, CRL number + 1, a new nextUpdate)
    /// with its CAs' existing keys: no key or certificate changes, so an IUT's trust store
    /// stays as it is. Reload the IUT (or its CRL file) afterwards.
    Refresh {
        /// The PKI folder made by `provsten pki init` (or `provsten init`: its pki/).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// How long the new CRLs last, from now.
        #[arg(long, default_value = "365d", value_parser = parse_lifetime)]
        crl_lifetime: std::time::Duration,
    },
}

fn parse_lifetime(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than 0 (e.g. 365d)".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (e.g. 365d, 90days, 2years)")),
    }
}

/// The arguments of `provsten reference-iut`.
#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// PKI directory made by `provsten pki init`.
    #[arg(long)]
    pub pki: PathBuf,
    /// API listen address (HTTPS, mTLS); repeatable, e.g. also [::1]:8443, or
    /// [::ffff:127.0.0.1]:8445 for a dual-stack socket that sees IPv4 clients as v4-mapped.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub api: Vec<SocketAddr>,
    /// Admin listen address (plain HTTP, loopback only).
    #[arg(long, default_value = "127.0.0.1:8444")]
    pub admin: SocketAddr,
    /// Inner endpoint listen address (HTTPS, mutual TLS): the message service behind the
    /// access point (SDK-2.4-INNER). Off without it.
    #[arg(long, value_name = "ADDR")]
    pub inner: Option<SocketAddr>,
    /// Registered organisation numbers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "5560000001,5560000002")]
    pub orgs: Vec<String>,
    /// Source-address allowlist: one range per line; re-read on POST /admin/reload.
    /// Without it every source is let in.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,
    /// Sources whose PROXY protocol and X-Forwarded-For/Forwarded headers are believed.
    #[arg(long, value_delimiter = ',', value_parser = parse_net, value_name = "CIDR")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Catalogue name of the server certificate. Its RSA twin NAME-rsa, when the
    /// catalogue has one, is presented to clients that cannot use the first (ECDSA).
    #[arg(long, default_value = "iut-server")]
    pub server_cert: String,
    /// Seeded defect (repeatable; `provsten defects` lists them).
    #[arg(long = "defect", value_name = "NAME")]
    pub defects: Vec<Defect>,
    /// Check client certificates by OCSP too: ask the responder in each certificate's
    /// Authority Information Access after the handshake (answers kept per serial), and
    /// refuse with HTTP 403 what is not `good` or cannot be learned.
    #[arg(long)]
    pub ocsp: bool,
    /// Also send each SDK receipt (Meddelandekvittens) back here: POST over mutual TLS with
    /// --client-cert, as a message of its own (provsten's `receipt = "sent"`).
    #[arg(long, value_name = "URL")]
    pub receipt_url: Option<String>,
    /// Durable outbox of the sender (created if missing): queued messages, their attempts
    /// and state survive a restart.
    #[arg(long, value_name = "DIR")]
    pub outbox: Option<PathBuf>,
    /// The resend policy as JSON (provsten writes it to {out}/resend-policy.json). Without
    /// it the sender is off and POST /admin/send answers 503.
    #[arg(long, value_name = "FILE")]
    pub resend_policy: Option<PathBuf>,
    /// Catalogue name of the client certificate the sender presents (on every route too).
    #[arg(long, value_name = "NAME", default_value = crate::reference::DEFAULT_CLIENT_CERT)]
    pub client_cert: String,
    /// Role client: the most calls per second the API client makes (`POST /admin/call`).
    #[arg(long, value_name = "N", default_value_t = crate::reference::DEFAULT_CLIENT_RATE)]
    pub client_rate: f64,
    /// A route for messages queued without "to" (role router): NAME=https://HOST:PORT/PATH.
    /// Repeatable, in priority order: the first is the primary, the rest are fallbacks tried
    /// in order. Needs --resend-policy.
    #[arg(long = "route", value_name = "NAME=URL")]
    pub routes: Vec<crate::reference::RouteSpec>,
    /// How long a delivered routed message's record and each audit entry stay in memory:
    /// a router delivers millions. The outbox journal keeps them on disk; a message
    /// queued again with a forgotten id is taken as new.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    pub retention: std::time::Duration,
    /// Deadline of one attempt on one route: connect, TLS, request and answer.
    #[arg(long, value_name = "DUR", default_value = "300ms", value_parser = parse_duration)]
    pub route_timeout: std::time::Duration,
    /// While the primary route is not active, probe it this often (TCP connect and TLS
    /// handshake); when it answers, traffic returns to it.
    #[arg(long, value_name = "DUR", default_value = "100ms", value_parser = parse_duration)]
    pub failback_probe: std::time::Duration,
}

/// A humantime duration above zero ("300ms", "2s", "1m").
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err(format!("{s:?} is zero (e.g. 300ms)")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{s:?} is not a duration: {e} (e.g. 300ms, 2s)")),
    }
}

fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    crate::network::addr::parse_net(s)
}

/// `HOST:PORT` to listen on: an address, or a name such as `localhost` (its first
/// address), as Toxiproxy's `-host localhost` allows.
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?}: not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{s:?}: the name has no address"))
}

/// `--shard`: a slice given on the command line, or `auto` for the CI host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// `--shard auto`: resolved from the environment by [`ShardArg::resolve`].
    Auto,
    /// `--shard I/N`: shard I (1-based) of N.
    Fixed(u64, u64),
}

impl ShardArg {
    /// The `(index, count)` of the slice, 1-based; `env` looks up a variable (the process
    /// environment in `provsten run`, a table in tests).
    ///
    /// `auto` takes GitLab's `CI_NODE_INDEX`/`CI_NODE_TOTAL` when `CI_NODE_INDEX` is set
    /// (GitLab sets it only in `parallel:` jobs), else `PROVSTEN_SHARD_INDEX`/
    /// `PROVSTEN_SHARD_TOTAL`. A GitLab job without `parallel:` (`CI_NODE_TOTAL=1`, no
    /// index) is shard 1/1.
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<(u64, u64), String> {
        let ShardArg::Fixed(i, n) = self else {
            return resolve_auto(|k| env(k).filter(|v| !v.trim().is_empty()));
        };
        Ok((i, n))
    }
}

/// `--shard auto`, with `set` giving only variables that are set and not blank.
fn resolve_auto(set: impl Fn(&str) -> Option<String>) -> Result<(u64, u64), String> {
    let (index, total) = if set("CI_NODE_INDEX").is_some() {
        ("CI_NODE_INDEX", "CI_NODE_TOTAL")
    } else if set("PROVSTEN_SHARD_INDEX").is_some() || set("PROVSTEN_SHARD_TOTAL").is_some() {
        ("PROVSTEN_SHARD_INDEX", "PROVSTEN_SHARD_TOTAL")
    } else {
        return match set("CI_NODE_TOTAL") {
            Some(n) if n.trim() == "1" => Ok((1, 1)),
            Some(n) => Err(format!(
                "--shard auto: CI_NODE_TOTAL={n:?} but CI_NODE_INDEX is not set \
                 (hint: GitLab sets both in a job with `parallel:`)"
            )),
            None => Err(
                "--shard auto: no shard in the environment: set CI_NODE_INDEX and \
                 CI_NODE_TOTAL (GitLab `parallel:` does) or PROVSTEN_SHARD_INDEX and \
                 PROVSTEN_SHARD_TOTAL (1-based), or give --shard I/N"
                    .to_owned(),
            ),
        };
    };
    let number = |k: &str| -> Result<u64, String> {
        let other = if k == index { total } else { index };
        let v = set(k).ok_or_else(|| format!("--shard auto: {other} is set but {k} is not"))?;
        v.trim()
            .parse()
            .map_err(|_| format!("--shard auto: {k}={v:?} is not a whole number"))
    };
    let (i, n) = (number(index)?, number(total)?);
    if n == 0 {
        return Err(format!("--shard auto: {total}=0: must be at least 1"));
    }
    if i == 0 || i > n {
        return Err(format!(
            "--shard auto: {index}={i} with {total}={n}: the index is 1-based, from 1 to {n}"
        ));
    }
    Ok((i, n))
}

fn parse_shard(s: &str) -> Result<ShardArg, String> {
    if s.trim() == "auto" {
        return Ok(ShardArg::Auto);
    }
    let hint = "expected I/N with 1 <= I <= N, e.g. 2/4, or auto";
    let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?}: {hint}"))?;
    let (i, n): (u64, u64) = (
        i.trim().parse().map_err(|_| format!("{s:?}: {hint}"))?,
        n.trim().parse().map_err(|_| format!("{s:?}: {hint}"))?,
    );
    if i == 0 || n == 0 || i > n {
        return Err(format!("{s:?}: {hint}"));
    }
    Ok(ShardArg::Fixed(i, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parses_and_rejects_nonsense() {
        assert_eq!(parse_shard("2/4"), Ok(ShardArg::Fixed(2, 4)));
        assert_eq!(parse_shard("auto"), Ok(ShardArg::Auto));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
        assert!(parse_shard("x").is_err());
    }

    /// `--shard auto` against a table of variables, never the process environment.
    fn auto(vars: &[(&str, &str)]) -> Result<(u64, u64), String> {
        ShardArg::Auto.resolve(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn shard_auto_reads_gitlab_then_provsten_variables() {
        assert_eq!(
            auto(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]),
            Ok((2, 3))
        );
        assert_eq!(
            auto(&[("PROVSTEN_SHARD_INDEX", "1"), ("PROVSTEN_SHARD_TOTAL", "4")]),
            Ok((1, 4))
        );
        // A GitLab job without `parallel:` has CI_NODE_TOTAL=1 and no index: the GitHub
        // variables still apply there, and alone it is the one shard.
        assert_eq!(
            auto(&[
                ("CI_NODE_TOTAL", "1"),
                ("PROVSTEN_SHARD_INDEX", "3"),
                ("PROVSTEN_SHARD_TOTAL", "3")
            ]),
            Ok((3, 3))
        );
        assert_eq!(auto(&[("CI_NODE_TOTAL", "1")]), Ok((1, 1)));
        // GitLab's pair wins when both are there.
        assert_eq!(
            auto(&[
                ("CI_NODE_INDEX", "1"),
                ("CI_NODE_TOTAL", "2"),
                ("PROVSTEN_SHARD_INDEX", "2"),
                ("PROVSTEN_SHARD_TOTAL", "2")
            ]),
            Ok((1, 2))
        );
        assert_eq!(
            ShardArg::Fixed(2, 5).resolve(|_| Some("9".into())),
            Ok((2, 5))
        );
    }

    #[test]
    fn shard_auto_refuses_missing_or_bad_values_naming_the_variable() {
        let err = |vars: &[(&str, &str)], names: &[&str]| {
            let e = auto(vars).expect_err("refused");
            for n in names {
                assert!(e.contains(n), "{e:?} does not name {n}");
            }
        };
        let all = [
            "CI_NODE_INDEX",
            "CI_NODE_TOTAL",
            "PROVSTEN_SHARD_INDEX",
            "PROVSTEN_SHARD_TOTAL",
        ];
        err(&[], &all);
        err(&[("CI_NODE_INDEX", " ")], &all);
        err(&[("CI_NODE_TOTAL", "3")], &["CI_NODE_INDEX", "\"3\""]);
        err(&[("CI_NODE_INDEX", "1")], &["CI_NODE_TOTAL is not"]);
        err(
            &[("PROVSTEN_SHARD_TOTAL", "2")],
            &["PROVSTEN_SHARD_INDEX is not"],
        );
        err(
            &[("CI_NODE_INDEX", "x"), ("CI_NODE_TOTAL", "2")],
            &["CI_NODE_INDEX=\"x\"", "whole number"],
        );
        err(
            &[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "2")],
            &["CI_NODE_INDEX=0", "1-based"],
        );
        err(
            &[("PROVSTEN_SHARD_INDEX", "3"), ("PROVSTEN_SHARD_TOTAL", "2")],
            &["PROVSTEN_SHARD_INDEX=3", "PROVSTEN_SHARD_TOTAL=2"],
        );
        err(
            &[("PROVSTEN_SHARD_INDEX", "1"), ("PROVSTEN_SHARD_TOTAL", "0")],
            &["PROVSTEN_SHARD_TOTAL=0"],
        );
        err(
            &[
                ("PROVSTEN_SHARD_INDEX", "1"),
                ("PROVSTEN_SHARD_TOTAL", "-2"),
            ],
            &["PROVSTEN_SHARD_TOTAL=\"-2\""],
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn routes_keep_their_order_and_bad_ones_name_the_option_and_the_fix() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["provsten", "reference-iut", "--pki", "p"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        let cli = parse(&[
            "--route",
            "primary=https://127.0.0.1:9001/v1/notifications",
            "--route",
            "backup=https://127.0.0.1:9002/v1/notifications",
            "--route-timeout",
            "1s",
        ])
        .unwrap();
        let Command::ReferenceIut(a) = cli.command else {
            panic!("not reference-iut")
        };
        let names: Vec<&str> = a.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["primary", "backup"]);
        assert_eq!(a.route_timeout, std::time::Duration::from_secs(1));
        assert_eq!(a.failback_probe, std::time::Duration::from_millis(100));
        for bad in [
            "primary",
            "=https://127.0.0.1:1/",
            "p=http://127.0.0.1:1/",
            "p=https://127.0.0.1/x",
        ] {
            let e = parse(&["--route", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let text = e.to_string();
            assert!(
                text.contains("--route") && text.contains("NAME=https://HOST:PORT/PATH"),
                "{bad}: {text}"
            );
        }
        let e = parse(&["--route-timeout", "0s"]).unwrap_err();
        assert!(e.to_string().contains("--route-timeout"), "{e}");
    }

    #[test]
    fn the_proxy_api_listens_on_a_name_too() {
        let a = parse_listen_addr("localhost:8474").unwrap();
        assert!(a.ip().is_loopback() && a.port() == 8474, "{a}");
        assert!(parse_listen_addr("127.0.0.1:1").is_ok());
        assert!(parse_listen_addr("8474").is_err());
    }

    #[test]
    fn unknown_defect_is_a_clap_error_with_a_suggestion() {
        let e = Cli::try_parse_from(["provsten", "run", "--defect", "accept-expired"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("did you mean \"accept-expired-cert\""),
            "{e}"
        );
    }
}
