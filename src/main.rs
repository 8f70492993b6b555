//! The `apimount` command line: wires settings, the AWS configuration and the
//! library together. The logic lives in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use apimount::aws::{self, Aws, ClientOptions};
use apimount::reconcile::{Mode, Reconciler};
use apimount::settings::{self, Target};
use apimount::source::{self, NameMemory};
use apimount::{manifest, report};

#[derive(Parser)]
#[command(
    name = "apimount",
    version,
    about = "Mount Lambda-backed services on one shared API Gateway REST API from a folder of manifests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the manifests (no AWS calls). Exit 0 when all are valid, 1 otherwise.
    Validate(SourceArgs),
    /// Show what a pass would change, changing nothing. Exit 0 in sync, 2 changes pending, 1 error.
    Plan(TargetArgs),
    /// Run one reconcile pass. Exit 0 when the gateway matches every valid manifest.
    Apply(TargetArgs),
}

#[derive(Args, Clone)]
struct SourceArgs {
    /// Folder of ServiceMount manifests (.yaml, .yml, .json).
    #[arg(long, env = "APIMOUNT_MANIFESTS", default_value = "./manifests")]
    manifests: PathBuf,
}

#[derive(Args, Clone)]
struct TargetArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Id of the shared REST API.
    #[arg(long, env = "APIMOUNT_REST_API_ID")]
    rest_api_id: Option<String>,
    /// Stage that serves the API.
    #[arg(long, env = "APIMOUNT_STAGE", default_value = "prod")]
    stage: String,
    /// Name under which this instance owns routes.
    #[arg(long, env = "APIMOUNT_OWNER", default_value = "apimount")]
    owner: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Plan(args) => run_pass(&args, Mode::Plan),
        Command::Apply(args) => run_pass(&args, Mode::Apply),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .init();
}

fn validate(args: &SourceArgs) -> anyhow::Result<u8> {
    let snap = source::load_dir(&args.manifests, &mut NameMemory::new())?;
    let dups = manifest::find_duplicates(&snap.mounts, &|_| false);
    let mut errors = snap.errors.clone();
    errors.extend(
        dups.iter()
            .map(|d| manifest::duplicate_error(&snap.mounts, d)),
    );
    errors.sort_by(|a, b| a.file.cmp(&b.file));
    print!("{}", report::render_invalid(&errors));
    let valid = snap.mounts.len() - dups.len();
    if errors.is_empty() {
        println!(
            "{} manifest(s) valid in {}",
            valid,
            args.manifests.display()
        );
        Ok(0)
    } else {
        println!(
            "{} problem(s); {} of {} manifest file(s) valid",
            errors.len(),
            valid,
            snap.files
        );
        Ok(1)
    }
}

fn run_pass(args: &TargetArgs, mode: Mode) -> anyhow::Result<u8> {
    let Some(api_id) = args.rest_api_id.clone() else {
        bail!("--rest-api-id (or APIMOUNT_REST_API_ID) is required");
    };
    settings::check_rest_api_id(&api_id).map_err(anyhow::Error::msg)?;
    settings::check_owner(&args.owner).map_err(anyhow::Error::msg)?;
    settings::check_stage(&args.stage).map_err(anyhow::Error::msg)?;
    let snap = source::load_dir(&args.source.manifests, &mut NameMemory::new())
        .context("no pass was run, nothing was changed")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = aws::load_config(&ClientOptions::default()).await;
        let aws = Aws::new(&config).map_err(anyhow::Error::msg)?;
        let target = Target {
            rest_api_id: api_id,
            stage: args.stage.clone(),
            owner: args.owner.clone(),
            region: aws.region().to_string(),
        };
        let reconciler = Reconciler::new(aws, target);
        let r = reconciler.pass(&snap, mode).await;
        print!("{}", report::render_pass(&r, mode));
        let code = if r.fatal.is_some() {
            1
        } else {
            match mode {
                Mode::Plan => {
                    if r.change_count() > 0 || r.deploy_pending {
                        2
                    } else if r.mounts.iter().any(|m| m.problem.is_some()) || !r.invalid.is_empty()
                    {
                        1
                    } else {
                        0
                    }
                }
                Mode::Apply => {
                    if r.converged() && r.invalid.is_empty() {
                        0
                    } else {
                        1
                    }
                }
            }
        };
        Ok(code)
    })
}
