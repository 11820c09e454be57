//! The commands of the `provsten` binary, one function each: each resolves its arguments,
//! then does its work. `src/main.rs` only installs the allocator and calls [`main`].

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser as _;

use crate::cli::{exit, Cli, Command, ExerciseArgs, PkiCommand, ReportCommand, RunArgs};
use crate::iut::SetupError;
use crate::report::model::RunVerdict;
use crate::report::writers;
use crate::runner::{self, RunPlan};
use crate::{iut, pki, reference, requirements, steps};

/// The `provsten` command line: parses the arguments, runs the command, and gives the exit
/// code the CLI contract names ([`crate::cli::exit`]).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROVSTEN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("provsten: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUN_ERROR);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("provsten: {e:#}");
            ExitCode::from(exit::RUN_ERROR)
        }
    }
}

/// One function per command: each resolves its arguments, then does its work.
async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Exercise(args) => exercise(args).await,
        Command::Init { dir, force, role } => init(&dir, force, role),
        Command::Pki {
            command:
                PkiCommand::Init {
                    out,
                    catalog,
                    crl_url,
                    crl_lifetime,
                    ocsp_url,
                },
        } => pki_init(&out, catalog.as_deref(), (crl_url, ocsp_url), crl_lifetime),
        Command::Pki {
            command: PkiCommand::Serve { dir, ocsp_signer },
        } => pki_serve(&dir, ocsp_signer).await,
        Command::Pki {
            command: PkiCommand::Refresh { dir, crl_lifetime },
        } => pki_refresh(&dir, crl_lifetime),
        Command::ReferenceIut(a) => reference_iut(*a).await,
        Command::Requirements { profile } => list_requirements(profile),
        Command::Defects => list_defects(),
        Command::Proxy { api, config } => proxy(api, config).await,
        Command::Bench { command } => bench(command).await,
        Command::Keygen { prefix } => keygen(&prefix),
        Command::Report { command } => report_command(command),
        Command::Steps => list_steps(),
    }
}

fn pki_init(
    out: &std::path::Path,
    catalog: Option<&std::path::Path>,
    (crl_url, ocsp_url): (Option<String>, Option<String>),
    crl_lifetime: std::time::Duration,
) -> anyhow::Result<u8> {
    let catalog = load_catalog(catalog)?;
    let m = pki::generate(
        &catalog,
        out,
        &pki::GenerateOptions {
            crl_base_url: crl_url.unwrap_or_else(pki::free_crl_base_url),
            ocsp_base_url: Some(ocsp_url.unwrap_or_else(pki::free_ocsp_base_url)),
            crl_lifetime,
        },
    )?;
    println!(
        "generated {} authorities and {} certificates in {}",
        m.authorities.len(),
        m.certificates.len(),
        out.display()
    );
    for c in &m.certificates {
        println!("  {:<26} {}", c.name, c.description);
    }
    println!(
        "described in {}; private keys are mode 0600 — never commit them",
        out.join(pki::MANIFEST_FILE).display()
    );
    println!(
        "CRLs are published at {} while `provsten run` runs (and are in crl-bundle.pem)",
        m.crl_base_url
    );
    if let Some(u) = &m.ocsp_base_url {
        println!(
            "the OCSP responder answers at {u} while `provsten run` runs, or `provsten pki serve --dir {}`",
            out.display()
        );
    }
    let until = time::OffsetDateTime::now_utc() + crl_lifetime;
    println!(
        "the CRLs last until {} (`provsten pki refresh --dir {}` re-issues them; a run warns 14 days before)",
        until
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        out.display()
    );
    Ok(exit::COMPLIANT)
}

/// `provsten pki serve`: the PKI's CRLs and OCSP responder until Ctrl-C or SIGTERM.
async fn pki_serve(dir: &std::path::Path, signer: pki::ocsp::Signer) -> anyhow::Result<u8> {
    use anyhow::Context as _;
    let pki = pki::Pki::load(dir)?;
    let (addr, prefix) = pki::publish::crl_listen_addr(&pki.manifest.crl_base_url)?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot serve the CRLs at {} (is a run using this PKI?)",
            pki.manifest.crl_base_url
        )
    })?;
    let crls = pki::publish::serve(listener, pki.dir.clone(), prefix);
    let ocsp = pki::publish::OcspServer::start(&pki, signer).await;
    let ocsp = match ocsp {
        Ok(o) => o,
        Err(e) => {
            crls.abort();
            return Err(e);
        }
    };
    println!(
        "CRLs at {}/NAME.crl (DER) and NAME.crl.pem",
        pki.manifest.crl_base_url
    );
    match &ocsp {
        Some(o) => println!(
            "OCSP responder at {} (answers signed by {})",
            o.url,
            match signer {
                pki::ocsp::Signer::Ca => "the CA",
                pki::ocsp::Signer::Delegated => "the delegated responder certificate",
            }
        ),
        None => println!(
            "no OCSP responder: the PKI in {} names none (make it with `provsten pki init`)",
            dir.display()
        ),
    }
    println!("serving until Ctrl-C or SIGTERM");
    crate::reference::shutdown_signal().await;
    crls.abort();
    let _ = crls.await;
    if let Some(o) = ocsp {
        o.stop().await;
    }
    println!("stopped");
    Ok(exit::COMPLIANT)
}

fn pki_refresh(dir: &std::path::Path, crl_lifetime: std::time::Duration) -> anyhow::Result<u8> {
    use time::format_description::well_known::Rfc3339;
    let done = pki::refresh(dir, crl_lifetime)?;
    for r in &done {
        println!(
            "  {:<14} CRL number {}, {} revoked, next update {}",
            r.authority,
            r.number,
            r.revoked,
            r.next_update.format(&Rfc3339).unwrap_or_default()
        );
    }
    println!(
        "re-issued {} CRLs in {} (keys and certificates unchanged); reload the IUT's CRL file",
        done.len(),
        dir.display()
    );
    Ok(exit::COMPLIANT)
}

async fn reference_iut(a: crate::cli::ReferenceArgs) -> anyhow::Result<u8> {
    let policy = a
        .resend_policy
        .as_deref()
        .map(reference::load_policy)
        .transpose()?;
    reference::run(
        reference::ReferenceOptions {
            pki_dir: a.pki,
            api: a.api,
            admin: a.admin,
            allowlist: a.allowlist,
            trusted_proxies: a.trusted_proxies,
            server_cert: a.server_cert,
            registered_orgs: a.orgs,
            defects: reference::defects::Defects::new(a.defects),
            ocsp: a.ocsp,
            inner: a.inner,
            receipt_url: a.receipt_url,
        },
        reference::SenderOptions {
            outbox: a.outbox,
            policy,
            client_cert: a.client_cert,
            router: reference::RouterOptions {
                routes: a.routes,
                route_timeout: a.route_timeout,
                failback_probe: a.failback_probe,
            },
            retention: Some(a.retention),
            client_rate: a.client_rate,
        },
    )
    .await?;
    Ok(exit::COMPLIANT)
}

fn list_requirements(profile: requirements::Profile) -> anyhow::Result<u8> {
    let all = requirements::catalogue()?;
    let mut text = String::new();
    for r in requirements::in_profile(&all, profile) {
        let t = if r.testable { "" } else { "  [not testable]" };
        text.push_str(&format!("{:<20} {:<11} {}{t}\n", r.id, r.profile, r.title));
    }
    print_listing(&text)
}

fn list_defects() -> anyhow::Result<u8> {
    let mut text = String::new();
    for d in reference::defects::Defect::ALL {
        text.push_str(&format!(
            "{}\t{}\t{}\n",
            d.name(),
            d.breaks().join(","),
            d.description()
        ));
    }
    print_listing(&text)
}

async fn bench(command: crate::cli::BenchCommand) -> anyhow::Result<u8> {
    match command {
        crate::cli::BenchCommand::Proxy { quick, json } => {
            use crate::bench::proxy::{run, BenchOptions};
            let opts = if quick {
                BenchOptions::quick()
            } else {
                BenchOptions::default()
            };
            eprintln!("provsten bench proxy: direct, provsten, provsten + 0 ms latency, haproxy (if installed)…");
            // Ctrl-C cancels the run, so the benchmark's HAProxy child is dropped and killed.
            let Some(report) = interruptible(run(&opts)).await? else {
                return Ok(exit::INTERRUPTED);
            };
            print!("{}", report.table());
            write_json(json.as_deref(), &report)?;
            Ok(exit::COMPLIANT)
        }
        crate::cli::BenchCommand::Router {
            messages,
            rate,
            batch,
            outbox,
            retention,
            json,
        } => {
            use crate::bench::router::{run, RouterBenchOptions};
            let opts = RouterBenchOptions {
                messages,
                rate,
                batch,
                outbox,
                retention,
                ..RouterBenchOptions::default()
            };
            eprintln!("provsten bench router: {messages} messages at {rate:.0}/s through the reference IUT's router, the primary down for the middle 30 % of the send time…");
            // Ctrl-C drops the run, and with it the reference IUT child.
            let Some(b) = interruptible(run(&opts)).await? else {
                return Ok(exit::INTERRUPTED);
            };
            print!("{}", b.table());
            write_json(json.as_deref(), &b)?;
            // The goal is zero unaccounted; repeats after a cut connection are the
            // at-least-once the reference declares, reported as figures.
            Ok(if b.unaccounted == 0 {
                exit::COMPLIANT
            } else {
                exit::NON_COMPLIANT
            })
        }
        crate::cli::BenchCommand::Schema { messages, json } => {
            eprintln!("provsten bench schema: {messages} valid and {messages} invalid notifications and SDK messages (XML), then a shrink run of each…");
            let b = crate::bench::schema::run(messages).await?;
            print!("{}", b.table());
            write_json(json.as_deref(), &b)?;
            Ok(exit::COMPLIANT)
        }
    }
}

/// Runs a benchmark until it ends or Ctrl-C/SIGTERM comes (None): dropping it drops the
/// children it started (HAProxy, the reference IUT), which are killed on drop.
async fn interruptible<T>(
    bench: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<Option<T>> {
    tokio::select! {
        r = bench => r.map(Some),
        _ = reference::shutdown_signal() => {
            eprintln!("provsten: interrupted");
            Ok(None)
        }
    }
}

/// `--json FILE`: the figures as JSON too.
fn write_json(
    path: Option<&std::path::Path>,
    figures: &impl serde::Serialize,
) -> anyhow::Result<()> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_string_pretty(figures)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn keygen(prefix: &std::path::Path) -> anyhow::Result<u8> {
    let (key, public) = crate::report::sign::keygen(prefix)?;
    println!(
        "private key: {} (mode 0600; never commit it)",
        key.display()
    );
    println!(
        "public key:  {} (give it to whoever verifies your reports)",
        public.display()
    );
    Ok(exit::COMPLIANT)
}

fn list_steps() -> anyhow::Result<u8> {
    let mut text = String::from(
        "Steps for your own .feature files (run them with `provsten run --features DIR`).\nTag every scenario with @req:ID (`provsten requirements`) and @role:ROLE.\n\n",
    );
    for (kw, pattern, example) in steps::VOCABULARY {
        text.push_str(&format!("{kw:<5} {pattern}\n      e.g. {example}\n"));
    }
    print_listing(&text)
}

/// Prints a listing to stdout. A reader that stops early (`provsten steps | head -1`)
/// closes the pipe: that ends the listing, it is not an error.
fn print_listing(text: &str) -> anyhow::Result<u8> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(exit::COMPLIANT),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit::COMPLIANT),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

async fn run(a: RunArgs) -> anyhow::Result<u8> {
    // `--shard auto` becomes the CI host's I/N here; the run sees only (index, count).
    let shard = a
        .shard
        .map(|s| s.resolve(|k| std::env::var(k).ok()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let plan = RunPlan {
        config: a.config.clone(),
        profile: a.profile,
        tags: a.tags.clone(),
        defects: a.defects.clone(),
        out: a.out.clone(),
        concurrency: usize::from(a.concurrency),
        features: a.features.clone(),
        shard,
        timelines: a.timelines,
        progress: !a.quiet,
        exercise: None,
        complete: a.complete,
        provsten: None,
    };
    run_plan(plan, a.sign.as_deref()).await
}

/// `provsten exercise FILE|NAME`: the run of one generated scenario.
async fn exercise(a: ExerciseArgs) -> anyhow::Result<u8> {
    let path = &a.exercise;
    let (name, timelines) = if path.is_file() {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        (name, vec![dir])
    } else {
        let name = path.display().to_string();
        let shipped = crate::network::timeline::shipped_names();
        if name.contains('/') || name.ends_with(".toml") || !shipped.contains(&name) {
            eprintln!(
                "provsten: exercise {name:?}: no such file, and not a shipped exercise (shipped: {})",
                shipped.join(", ")
            );
            return Ok(exit::RUN_ERROR);
        }
        (name, Vec::new())
    };
    // A bad file is exit 2 before anything starts, naming file and line.
    if let Err(e) = crate::network::timeline::find_checked(&name, &timelines) {
        eprintln!("provsten: exercise: {e:#}");
        return Ok(exit::RUN_ERROR);
    }
    let plan = RunPlan {
        config: a.config.clone(),
        // The continuity requirements only: an exercise checks nothing else.
        profile: crate::requirements::Profile::Continuity,
        tags: None,
        defects: a.defects.clone(),
        out: a.out.clone(),
        concurrency: 1,
        features: Vec::new(),
        shard: None,
        timelines,
        progress: !a.quiet,
        exercise: Some(name),
        complete: false,
        provsten: None,
    };
    run_plan(plan, a.sign.as_deref()).await
}

async fn run_plan(plan: RunPlan, sign: Option<&std::path::Path>) -> anyhow::Result<u8> {
    if let Some(key) = sign {
        // Fail before the run, not after it.
        std::fs::metadata(key)
            .with_context(|| format!("--sign {}: cannot read the signing key", key.display()))?;
    }
    writers::remove_previous(&plan.out)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let report = tokio::select! {
        r = runner::run(&plan) => match r {
            Ok(r) => r,
            Err(e) if e.downcast_ref::<SetupError>().is_some() => {
                iut::process::stop_all().await;
                eprintln!("provsten: {e:#}");
                return Ok(exit::RUN_ERROR);
            }
            Err(e) => {
                iut::process::stop_all().await;
                return Err(e);
            }
        },
        _ = tokio::signal::ctrl_c() => {
            iut::process::stop_all().await;
            eprintln!("provsten: interrupted (SIGINT); the IUT's process group was stopped and no report was written");
            return Ok(exit::INTERRUPTED);
        }
        _ = term.recv() => {
            iut::process::stop_all().await;
            eprintln!("provsten: terminated (SIGTERM); the IUT's process group was stopped and no report was written");
            return Ok(exit::TERMINATED);
        }
    };
    let mut report = report;
    if let Some(key) = sign {
        crate::report::sign::sign(&mut report, key)?;
    }
    let written = writers::write_all(&report, &plan.out)?;
    Ok(show(&report, &written))
}

/// Prints the summary table and where the reports went; the exit code for the verdict.
fn show(report: &crate::report::model::Report, written: &[std::path::PathBuf]) -> u8 {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!("{}", writers::console::summary_table(report, color));
    println!(
        "reports: {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true") {
        github_actions(report);
    }
    match report.verdict {
        RunVerdict::Compliant => exit::COMPLIANT,
        RunVerdict::NonCompliant => exit::NON_COMPLIANT,
        RunVerdict::Error => exit::RUN_ERROR,
    }
}

/// Under GitHub Actions: the summary appended to `$GITHUB_STEP_SUMMARY` and an `::error`
/// annotation per failing scenario on stdout. Neither changes the verdict: a summary that
/// cannot be written is a warning.
fn github_actions(report: &crate::report::model::Report) {
    use std::io::Write as _;
    use writers::github;
    match std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        None => eprintln!("provsten: warning: GITHUB_STEP_SUMMARY is not set: no job summary"),
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            // The limit counts everything the step wrote, so what is there already too.
            let before = std::fs::metadata(&path).map_or(0, |m| m.len());
            let before = usize::try_from(before).unwrap_or(usize::MAX);
            let separator = if before > 0 { "\n" } else { "" };
            let budget = github::STEP_SUMMARY_LIMIT
                .saturating_sub(before)
                .saturating_sub(separator.len());
            let text = github::step_summary(report, budget);
            let written = if text.is_empty() {
                Err(std::io::Error::other(format!(
                    "the step's summary is already {before} bytes, at GitHub's limit"
                )))
            } else {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(format!("{separator}{text}").as_bytes()))
            };
            if let Err(e) = written {
                eprintln!(
                    "provsten: warning: no job summary written to {} (GITHUB_STEP_SUMMARY): {e}",
                    path.display()
                );
            }
        }
    }
    let workspace = std::env::var_os("GITHUB_WORKSPACE").map(std::path::PathBuf::from);
    print!("{}", github::annotations(report, workspace.as_deref()));
}

fn report_command(command: ReportCommand) -> anyhow::Result<u8> {
    use crate::report::writers::json;
    match command {
        ReportCommand::Render { report, out } => {
            let r = json::read(&report)?;
            let written = writers::write_all(&r, &out)?;
            Ok(show(&r, &written))
        }
        ReportCommand::Merge { reports, out } => {
            let mut loaded = Vec::new();
            for p in &reports {
                loaded.push((p.display().to_string(), json::read(p)?));
            }
            let merged = crate::report::merge::merge(loaded)?;
            let written = writers::write_all(&merged, &out)?;
            Ok(show(&merged, &written))
        }
        ReportCommand::Verify {
            report,
            key,
            config,
            ca,
            features,
        } => {
            let r = json::read(&report)?;
            let mut problems = Vec::new();
            match crate::report::sign::verify_signature(&r, &key) {
                Ok(()) => println!(
                    "signature: ok (ed25519, key sha256 {})",
                    r.signature
                        .as_ref()
                        .map(|s| s.public_key_sha256.as_str())
                        .unwrap_or("")
                ),
                Err(e) => problems.push(format!("signature: {e:#}")),
            }
            if r.harness.version != env!("CARGO_PKG_VERSION") {
                println!(
                    "note: the report was written by provsten {}, this is {}: shipped features and catalogue may differ",
                    r.harness.version,
                    env!("CARGO_PKG_VERSION")
                );
            }
            let mut sources = crate::runner::features::shipped();
            for dir in &features {
                sources.extend(crate::runner::features::from_dir(dir)?);
            }
            let sha = |bytes: &[u8]| {
                crate::pki::generate::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
            };
            let read =
                |p: &Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
                    match p {
                        Some(p) => Ok(Some(sha(&std::fs::read(p)
                            .with_context(|| format!("reading {}", p.display()))?))),
                        None => Ok(None),
                    }
                };
            let checks = [
                (
                    "features",
                    "features",
                    Some(crate::runner::features::digest(&sources)),
                ),
                (
                    "catalogue",
                    "catalogue",
                    Some(sha(requirements::CATALOGUE.as_bytes())),
                ),
                ("config", "config", read(&config)?),
                ("ca_certificate", "ca", read(&ca)?),
            ];
            for (name, flag, actual) in checks {
                match (r.inputs.digests.get(name), actual) {
                    (None, _) => println!("{name}: not recorded in the report"),
                    (Some(_), None) => println!("{name}: not checked (give --{flag})"),
                    (Some(c), Some(a)) if *c == a => println!("{name}: ok"),
                    (Some(c), Some(a)) => problems.push(format!(
                        "{name}: MISMATCH: the report claims {c}, the given input is {a}"
                    )),
                }
            }
            let c = &r.coverage;
            println!(
                "coverage: {} of {} testable requirements of profile {} tested, {} pass; certification {}",
                c.tested,
                c.testable,
                r.profile,
                c.passed,
                match (c.complete_required, c.complete) {
                    (true, true) => "complete (--complete: every testable requirement tested and passed)",
                    (true, false) => "INCOMPLETE (--complete was asked, not every testable requirement was tested and passed)",
                    (false, true) => "complete (every testable requirement tested and passed; --complete was not asked)",
                    (false, false) => "not complete (--complete was not asked)",
                }
            );
            if problems.is_empty() {
                println!("verified: {} (verdict {:?})", report.display(), r.verdict);
                Ok(exit::COMPLIANT)
            } else {
                for p in &problems {
                    println!("{p}");
                }
                println!("NOT verified: {} problem(s)", problems.len());
                Ok(exit::NON_COMPLIANT)
            }
        }
    }
}

fn load_catalog(path: Option<&std::path::Path>) -> anyhow::Result<pki::Catalog> {
    match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            pki::Catalog::parse(&text, &p.display().to_string())
        }
        None => pki::Catalog::parse(pki::catalog::DEFAULT_CATALOG, "certs/catalog.toml"),
    }
}

fn init(dir: &std::path::Path, force: bool, role: crate::cli::InitRole) -> anyhow::Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("provsten.toml");
    if config.exists() && !force {
        anyhow::bail!("{} exists (hint: --force overwrites it)", config.display());
    }
    let template = match role {
        crate::cli::InitRole::Server => iut::config::TEMPLATE_CONFIG,
        crate::cli::InitRole::Client => iut::config::CLIENT_TEMPLATE_CONFIG,
    };
    std::fs::write(&config, template).with_context(|| format!("writing {}", config.display()))?;
    let catalog_path = dir.join("certs.toml");
    if !catalog_path.exists() {
        std::fs::write(&catalog_path, pki::catalog::DEFAULT_CATALOG)
            .with_context(|| format!("writing {}", catalog_path.display()))?;
    }
    let catalog = load_catalog(Some(&catalog_path))?;
    let pki_dir = dir.join("pki");
    let manifest = pki::generate(&catalog, &pki_dir, &pki::GenerateOptions::default())?;
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(&gitignore, "pki/\nprovsten-report/\n")?;
    }
    println!("wrote {}", config.display());
    println!(
        "wrote {} (the certificate catalogue; add your own entries)",
        catalog_path.display()
    );
    println!(
        "generated the PKI in {} (keys 0600, git-ignored)",
        pki_dir.display()
    );
    let runs_out = pki::Pki::load(&pki_dir)
        .map(|p| {
            p.expiry(
                time::OffsetDateTime::now_utc(),
                time::Duration::days(366 * 10),
            )
            .expiring
        })
        .unwrap_or_default();
    if let Some(first) = runs_out
        .iter()
        .min_by_key(|e| e.rsplit(' ').next().map(str::to_string))
    {
        println!(
            "its CRLs and certificates last a year ({first}); `provsten run` warns 14 days before; `provsten pki refresh --dir {}` re-issues the CRLs, `provsten init --force` makes a new PKI",
            pki_dir.display()
        );
    }
    println!(
        "CRLs are published at {} while `provsten run` runs (and are in crl-bundle.pem)",
        manifest.crl_base_url
    );
    if let Some(u) = &manifest.ocsp_base_url {
        println!(
            "the OCSP responder named in the certificates answers at {u} while `provsten run` runs; if your IUT asks it (nginx: ssl_ocsp on;), set revocation = [\"crl\", \"ocsp\"] under [pki]"
        );
    }
    println!();
    println!("next:");
    if role == crate::cli::InitRole::Client {
        println!(
            "  1. give your client {0}/client-5560000001.chain.pem + .key.pem as its identity,",
            pki_dir.display()
        );
        println!(
            "     {0}/trust.pem as the CAs it trusts and {0}/crl-bundle.pem as its CRL",
            pki_dir.display()
        );
        println!(
            "  2. edit {} (how to make it call: the curl example, or your own)",
            config.display()
        );
        println!("  3. provsten run --config {}", config.display());
        return Ok(exit::COMPLIANT);
    }
    println!(
        "  1. configure your IUT with {0}/iut-server.chain.pem + {0}/iut-server.key.pem (ECDSA)",
        pki_dir.display()
    );
    println!(
        "     and {0}/iut-server-rsa.chain.pem + {0}/iut-server-rsa.key.pem (RSA; see provsten.toml),",
        pki_dir.display()
    );
    println!(
        "     client CA {0}/trust.pem and CRL {0}/crl-bundle.pem",
        pki_dir.display()
    );
    println!(
        "  2. edit {} (how to start it, its address, its organisations)",
        config.display()
    );
    println!("  3. provsten run --config {}", config.display());
    Ok(exit::COMPLIANT)
}

/// `provsten proxy`: the embedded fault proxy behind Toxiproxy's API, until Ctrl-C or SIGTERM.
async fn proxy(
    api: std::net::SocketAddr,
    config: Option<std::path::PathBuf>,
) -> anyhow::Result<u8> {
    use crate::network::proxy::{LinkConfig, ProxyServer};
    let server = ProxyServer::new();
    if let Some(path) = &config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let links: Vec<LinkConfig> = serde_json::from_str(&text).with_context(|| {
            format!("{}: not a Toxiproxy config (a JSON list of {{\"name\", \"listen\", \"upstream\"}})", path.display())
        })?;
        for l in links {
            let name = l.name.clone();
            server
                .create(l)
                .await
                .map_err(|e| anyhow::anyhow!("{}: proxy {name:?}: {e}", path.display()))?;
        }
    }
    let (bound, task) = crate::network::toxiproxy_api::start(api, server.clone())
        .await
        .with_context(|| {
            format!("binding the API on {api} (hint: --api 127.0.0.1:0 picks a free port)")
        })?;
    println!("provsten proxy: Toxiproxy-compatible API on http://{bound}");
    reference::shutdown_signal().await;
    task.abort();
    server.shutdown().await;
    Ok(exit::COMPLIANT)
}
