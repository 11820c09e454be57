use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser as _;

use provsten::cli::{exit, Cli, Command, PkiCommand, RunArgs};
use provsten::iut::SetupError;
use provsten::report::model::RunVerdict;
use provsten::report::writers;
use provsten::runner::{self, RunPlan};
use provsten::{iut, pki, reference, requirements, steps};

fn main() -> ExitCode {
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

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Init { dir, force } => init(&dir, force),
        Command::Pki {
            command:
                PkiCommand::Init {
                    out,
                    catalog,
                    crl_url,
                },
        } => {
            let catalog = load_catalog(catalog.as_deref())?;
            let m = pki::generate(
                &catalog,
                &out,
                &pki::GenerateOptions {
                    crl_base_url: crl_url,
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
            Ok(exit::COMPLIANT)
        }
        Command::ReferenceIut(a) => {
            reference::run(reference::ReferenceOptions {
                pki_dir: a.pki,
                api: a.api,
                admin: a.admin,
                allowlist: a.allowlist,
                trusted_proxies: a.trusted_proxies,
                server_cert: a.server_cert,
                registered_orgs: a.orgs,
                defects: reference::defects::Defects::new(a.defects),
            })
            .await?;
            Ok(exit::COMPLIANT)
        }
        Command::Requirements { profile } => {
            requirements::check_profile(&profile)?;
            let all = requirements::catalogue()?;
            for r in requirements::in_profile(&all, &profile) {
                let t = if r.testable { "" } else { "  [not testable]" };
                println!("{:<20} {:<11} {}{t}", r.id, r.profile, r.title);
            }
            Ok(exit::COMPLIANT)
        }
        Command::Defects => {
            for d in reference::defects::Defect::ALL {
                println!(
                    "{}\t{}\t{}",
                    d.name(),
                    d.breaks().join(","),
                    d.description()
                );
            }
            Ok(exit::COMPLIANT)
        }
        Command::Steps => {
            println!(
                "Steps for your own .feature files (run them with `provsten run --features DIR`)."
            );
            println!("Tag every scenario with @req:ID (`provsten requirements`) and @role:ROLE.\n");
            for (kw, pattern, example) in steps::VOCABULARY {
                println!("{kw:<5} {pattern}\n      e.g. {example}");
            }
            Ok(exit::COMPLIANT)
        }
    }
}

async fn run(a: RunArgs) -> anyhow::Result<u8> {
    let plan = RunPlan {
        config: a.config,
        profile: a.profile,
        tags: a.tags,
        defects: a.defects,
        out: a.out,
        concurrency: a.concurrency,
        features: a.features,
        shard: a.shard,
        progress: !a.quiet,
    };
    let report = tokio::select! {
        r = runner::run(&plan) => match r {
            Ok(r) => r,
            Err(e) if e.downcast_ref::<SetupError>().is_some() => {
                eprintln!("provsten: {e:#}");
                return Ok(exit::RUN_ERROR);
            }
            Err(e) => return Err(e),
        },
        _ = tokio::signal::ctrl_c() => {
            // Dropping the run future stopped the IUT's process group.
            eprintln!("provsten: interrupted; the IUT was stopped and no report was written");
            return Ok(exit::INTERRUPTED);
        }
    };
    let written = writers::write_all(&report, &plan.out)?;
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!("{}", writers::console::summary_table(&report, color));
    println!(
        "reports: {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(match report.verdict {
        RunVerdict::Compliant => exit::COMPLIANT,
        RunVerdict::NonCompliant => exit::NON_COMPLIANT,
        RunVerdict::Error => exit::RUN_ERROR,
    })
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

fn init(dir: &std::path::Path, force: bool) -> anyhow::Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("provsten.toml");
    if config.exists() && !force {
        anyhow::bail!("{} exists (hint: --force overwrites it)", config.display());
    }
    std::fs::write(&config, iut::config::TEMPLATE_CONFIG)
        .with_context(|| format!("writing {}", config.display()))?;
    let catalog_path = dir.join("certs.toml");
    if !catalog_path.exists() {
        std::fs::write(&catalog_path, pki::catalog::DEFAULT_CATALOG)
            .with_context(|| format!("writing {}", catalog_path.display()))?;
    }
    let catalog = load_catalog(Some(&catalog_path))?;
    let pki_dir = dir.join("pki");
    pki::generate(&catalog, &pki_dir, &pki::GenerateOptions::default())?;
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
    println!();
    println!("next:");
    println!(
        "  1. configure your IUT with {0}/iut-server.chain.pem + {0}/iut-server.key.pem,",
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
