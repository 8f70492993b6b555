//! The `apimount` command line: parses flags, sets up logging, and wires
//! settings, the AWS configuration and the library together. The logic
//! lives in the library (`apimount::cli` for what the commands print).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use apimount::aws::pacing::Pacer;
use apimount::aws::s3::S3Objects;
use apimount::aws::{Aws, AwsConfig, ClientOptions};
use apimount::cli::{self, render, StatusView};
use apimount::controller::admin::{self, Health, Progress};
use apimount::controller::budget::QuotaBudget;
use apimount::controller::lease::Lease;
use apimount::controller::metrics::Metrics;
use apimount::controller::policy::PolicyFile;
use apimount::controller::status_docs::{self, StatusTarget};
use apimount::controller::{self, LoopOptions, Parts};
use apimount::manifest::accounts::{check_external_id, parse_account_role, AccountRole};
use apimount::manifest::tenants::{load_policy, TenantPolicy};
use apimount::plan::throttle_limits::AccountLimit;
use apimount::reconcile::{Mode, Reconciler};
use apimount::settings::{
    self, DeleteLimit, Target, DEBOUNCE_BOUNDS, LEASE_BOUNDS, LIVENESS_BOUNDS, POLL_BOUNDS,
    RELEASE_POLL_BOUNDS, RESYNC_BOUNDS,
};
use apimount::source::{self, Layout, NameMemory, S3Location, S3Source, Snapshot, Source};

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
    /// Run the controller: watch the manifests, reconcile, resync, serve /metrics.
    Run(RunArgs),
    /// Show each mount's state against the live gateway (read-only).
    Status(StatusArgs),
    /// Wait until the live stage serves exactly the current version of one
    /// manifest. Exit 0 once it does, 1 at once when it cannot without a
    /// change (the reason is printed), 124 on timeout.
    Wait(WaitArgs),
    /// Ask a running controller's /healthz; exit 0 when healthy (for container HEALTHCHECK).
    Healthcheck {
        /// Address of the admin endpoint.
        #[arg(long, env = "APIMOUNT_ADMIN_ADDR", default_value = "127.0.0.1:9090")]
        admin_addr: String,
    },
    /// Print the JSON Schema (draft-07) of a ServiceMount manifest.
    Schema,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Manifest source: a folder path or s3://bucket/prefix (overrides --manifests).
    #[arg(long, env = "APIMOUNT_SOURCE")]
    source: Option<String>,
    /// Full resync interval (a pass even when nothing changed), e.g. 60s, 5m.
    #[arg(long, env = "APIMOUNT_RESYNC_INTERVAL", default_value = "60s", value_parser = |s: &str| RESYNC_BOUNDS.parse(s))]
    resync_interval: Duration,
    /// How often an S3 source is listed, e.g. 15s.
    #[arg(long, env = "APIMOUNT_POLL_INTERVAL", default_value = "15s", value_parser = |s: &str| POLL_BOUNDS.parse(s))]
    poll_interval: Duration,
    /// How often running releases (`spec.release`) are looked at between
    /// passes, besides at each step's end: one DescribeAlarms call per 100
    /// alarm names a tick.
    #[arg(long, env = "APIMOUNT_RELEASE_POLL", default_value = "10s", value_parser = |s: &str| RELEASE_POLL_BOUNDS.parse(s))]
    release_poll: Duration,
    /// Quiet time after a folder change before the pass starts.
    #[arg(long, env = "APIMOUNT_DEBOUNCE", default_value = "200ms", value_parser = |s: &str| DEBOUNCE_BOUNDS.parse(s))]
    debounce: Duration,
    /// Share of each AWS control-plane quota (shared with every tool in the
    /// account) that steady resyncs may use, e.g. 5% or 0.05; it can lengthen
    /// the resync interval and spreads policy reads over resyncs.
    #[arg(long, env = "APIMOUNT_QUOTA_SHARE", default_value = "5%", value_parser = settings::parse_share)]
    quota_share: f64,
    /// Address of the admin endpoint (/healthz, /readyz, /metrics).
    #[arg(long, env = "APIMOUNT_ADMIN_ADDR", default_value = "127.0.0.1:9090")]
    admin_addr: String,
    /// How long /healthz tolerates a loop that makes no progress (no AWS call
    /// finished, no pass ended, no idle beat); default: 3 × the resync
    /// interval (at least 60 s) + 5 min.
    #[arg(long, env = "APIMOUNT_LIVENESS_TIMEOUT", value_parser = |s: &str| LIVENESS_BOUNDS.parse(s))]
    liveness_timeout: Option<Duration>,
    /// DynamoDB table (string key `id`) holding the leader lease; lets several
    /// instances of one owner run, with exactly one writing. Without it, run one instance.
    #[arg(long, env = "APIMOUNT_LEASE_TABLE")]
    lease_table: Option<String>,
    /// Lease lifetime: a standby takes over at most this long after the leader dies.
    #[arg(long, env = "APIMOUNT_LEASE_DURATION", default_value = "15s", value_parser = |s: &str| LEASE_BOUNDS.parse(s))]
    lease_duration: Duration,
    /// Without --lease-table: each instance announces itself in a tag on the
    /// stage, renewed every third of this; an instance that finds another
    /// live instance of its owner there stands by. `off` turns it off.
    #[arg(long, env = "APIMOUNT_INSTANCE_LEASE", default_value = "60s", value_parser = settings::parse_instance_lease)]
    instance_lease: settings::InstanceLease,
    /// Write one status document (JSON, with the manifest's conditions) per
    /// manifest into this folder, replaced atomically after every pass.
    #[arg(long, env = "APIMOUNT_STATUS_DIR", conflicts_with = "status_prefix")]
    status_dir: Option<PathBuf>,
    /// Write the status documents as objects under s3://bucket/prefix/ (a
    /// tenant's under its own sub-prefix).
    #[arg(long, env = "APIMOUNT_STATUS_PREFIX")]
    status_prefix: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "APIMOUNT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Args, Clone)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["file", "name"])))]
struct WaitArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The manifest file to wait for.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The name of the manifest to wait for.
    #[arg(long)]
    name: Option<String>,
    /// The tenant of `--name`, under a tenant policy.
    #[arg(long, requires = "name")]
    tenant: Option<String>,
    /// How long to wait, e.g. 120s, 5m.
    #[arg(long, default_value = "120s", value_parser = settings::parse_duration)]
    timeout: Duration,
    /// Read the controller's status documents from this folder (as `run
    /// --status-dir` writes them) and ask AWS only to confirm what they say.
    #[arg(long, env = "APIMOUNT_STATUS_DIR", conflicts_with = "status_prefix")]
    status_dir: Option<PathBuf>,
    /// Read the controller's status documents under s3://bucket/prefix/.
    #[arg(long, env = "APIMOUNT_STATUS_PREFIX")]
    status_prefix: Option<String>,
    /// Share of the account's API Gateway quotas this wait may use, e.g. 5%:
    /// sets how often it looks.
    #[arg(long, env = "APIMOUNT_QUOTA_SHARE", default_value = "5%", value_parser = settings::parse_share)]
    quota_share: f64,
}

#[derive(Args, Clone)]
struct StatusArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Output: table or json.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
    /// Draw the gateway's whole route tree with who serves each path.
    #[arg(long)]
    tree: bool,
}

#[derive(Args, Clone)]
struct SourceArgs {
    /// Folder of ServiceMount manifests (.yaml, .yml, .json).
    #[arg(long, env = "APIMOUNT_MANIFESTS", default_value = "./manifests")]
    manifests: PathBuf,
    /// Tenant policy (kept outside the manifests): each tenant's manifests are
    /// in its own sub-folder, and may mount only what the policy delegates to it.
    #[arg(long, env = "APIMOUNT_TENANTS")]
    tenants: Option<PathBuf>,
}

impl SourceArgs {
    /// The tenant policy, if one is given; an invalid one is an error.
    fn tenancy(&self) -> anyhow::Result<Option<TenantPolicy>> {
        let Some(path) = &self.tenants else {
            return Ok(None);
        };
        match load_policy(path) {
            Ok(p) => Ok(Some(p)),
            Err(errors) => {
                eprint!("{}", render::render_invalid(&errors));
                bail!("the tenant policy {} is invalid", path.display())
            }
        }
    }

    /// One read of the manifest folder, laid out as the tenant policy says.
    fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let tenancy = self.tenancy()?.map(Arc::new);
        let layout = Layout::of(tenancy.as_deref());
        let mut snap = source::load_dir(&self.manifests, &layout, &mut NameMemory::new())?;
        snap.tenancy = tenancy;
        Ok(snap)
    }
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
    /// Client-side pacing: `aws` keeps calls within API Gateway's and Lambda's
    /// fixed account quotas (shared with every tool in the account); `off` for emulators.
    #[arg(long, env = "APIMOUNT_PACING", default_value = "aws", value_parser = ["aws", "off"])]
    pacing: String,
    /// Most removed mounts one pass may delete: a count (3) or a share of the
    /// mounts this owner manages (50%). Above it nothing is removed. An empty
    /// source never removes anything.
    #[arg(long, env = "APIMOUNT_MAX_DELETE", default_value = "50%", value_parser = DeleteLimit::parse)]
    max_delete: DeleteLimit,
    /// Lift the mass-deletion guard, including for an empty source.
    #[arg(long, env = "APIMOUNT_ALLOW_MASS_DELETE")]
    allow_mass_delete: bool,
    /// The account's API Gateway throttle limit in the region, RATE/BURST,
    /// when AWS has raised it (default: 10000/5000, or 2500/1250 in the
    /// regions with the lower default). A mount throttled above it is refused.
    #[arg(long, env = "APIMOUNT_ACCOUNT_THROTTLE", value_name = "RATE/BURST")]
    account_throttle: Option<AccountLimit>,
    /// The role apimount assumes in another account for the Lambda calls on
    /// its functions, ACCOUNT=ROLE_ARN (repeatable). A tenant policy names
    /// them in its `accounts` instead.
    #[arg(long = "account-role", env = "APIMOUNT_ACCOUNT_ROLES", value_name = "ACCOUNT=ROLE_ARN", value_delimiter = ',', value_parser = parse_account_role)]
    account_roles: Vec<AccountRole>,
    /// How long the credentials of an assumed role last before apimount
    /// refreshes them (15 min to 12 h).
    #[arg(long, env = "APIMOUNT_ROLE_SESSION", default_value = "1h", value_parser = settings::parse_duration)]
    role_session: Duration,
    /// The external id the roles of --account-role expect, if they do.
    #[arg(long, env = "APIMOUNT_EXTERNAL_ID", value_parser = |s: &str| check_external_id(s).map(|_| s.to_string()))]
    external_id: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = matches!(&cli.command, Command::Run(r) if r.log_format == "json");
    let default_level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    init_tracing(json_logs, default_level);
    let result = match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Plan(args) => run_pass(&args, Mode::Plan),
        Command::Apply(args) => run_pass(&args, Mode::Apply),
        Command::Run(args) => run_controller(&args),
        Command::Status(args) => status(&args),
        Command::Wait(args) => wait(&args),
        Command::Healthcheck { admin_addr } => healthcheck(&admin_addr),
        Command::Schema => {
            print!("{}", apimount::manifest::schema::servicemount_schema_json());
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Log targets (by prefix) that can carry request headers or credentials.
const CREDENTIAL_BEARING_TARGETS: &[&str] =
    &["aws", "hyper", "h2", "http", "rustls", "tower", "reqwest"];

/// A RUST_LOG value without its directives for the capped targets (an
/// explicit `aws_sigv4=trace` would otherwise win over the cap).
fn without_capped_targets(directives: &str) -> String {
    directives
        .split(',')
        .filter(|d| {
            let target = d.split(['=', '[']).next().unwrap_or("").trim();
            !CREDENTIAL_BEARING_TARGETS
                .iter()
                .any(|t| target.starts_with(t))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn init_tracing(json: bool, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    // The AWS SDK and HTTP crates log requests (signed headers, session
    // tokens, canonical requests) at debug and trace level. They are capped at
    // warn whatever RUST_LOG says, so no credential reaches a log line at any
    // level; apimount's own lines name the failed action instead.
    let asked = std::env::var("RUST_LOG").unwrap_or_else(|_| default_level.to_string());
    let mut filter = EnvFilter::new(without_capped_targets(&asked));
    for target in CREDENTIAL_BEARING_TARGETS {
        filter = filter.add_directive(
            format!("{target}=warn")
                .parse()
                .expect("a valid log directive"),
        );
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        // No colours: their escape sequences are what the writer removes
        // from input, so that no field can forge a line or a terminal command.
        builder
            .with_writer(|| apimount::cli::logging::EscapedStderr)
            .with_ansi(false)
            .fmt_fields(apimount::cli::logging::QuotedFields)
            .init();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn check_target(args: &TargetArgs) -> anyhow::Result<String> {
    let Some(api_id) = args.rest_api_id.clone() else {
        bail!("--rest-api-id (or APIMOUNT_REST_API_ID) is required");
    };
    settings::check_rest_api_id(&api_id)?;
    settings::check_owner(&args.owner)?;
    settings::check_stage(&args.stage)?;
    Ok(api_id)
}

async fn reconciler(
    args: &TargetArgs,
    api_id: String,
    config: &AwsConfig,
) -> anyhow::Result<Reconciler> {
    let mut aws = Aws::new(config)?;
    if let Err(e) =
        settings::ROLE_SESSION_BOUNDS.parse(&format!("{}s", args.role_session.as_secs_f64()))
    {
        // Shorter sessions only against an emulator, where tests use them.
        if !(config.has_endpoint_override() && args.role_session >= Duration::from_secs(5)) {
            bail!("{e}");
        }
    }
    aws = aws.with_role_session(args.role_session);
    if args.pacing == "off" {
        aws = aws.with_pacer(Pacer::disabled());
    }
    let target = Target {
        rest_api_id: api_id,
        stage: args.stage.clone(),
        owner: args.owner.clone(),
        region: aws.region().to_string(),
        delete_limit: if args.allow_mass_delete {
            DeleteLimit::Unlimited
        } else {
            args.max_delete
        },
        account_throttle: args.account_throttle.clone(),
        account_roles: args
            .account_roles
            .iter()
            .map(|r| {
                let role = AccountRole {
                    external_id: args.external_id.clone(),
                    ..r.clone()
                };
                (r.account.clone(), role)
            })
            .collect(),
    };
    Ok(Reconciler::new(aws, target))
}

fn run_controller(args: &RunArgs) -> anyhow::Result<u8> {
    let api_id = check_target(&args.target)?;
    let tenancy = match (&args.target.source.tenants, args.target.source.tenancy()?) {
        (Some(path), Some(valid)) => Some(PolicyFile::new(path.clone(), valid)),
        _ => None,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let metrics = Metrics::new();
        let health = Arc::new(Health::default());
        health.beat();
        let progress = Progress {
            health: health.clone(),
            metrics: metrics.clone(),
        };
        // Under a lease, one attempt may take at most the third of it the
        // lease leaves for a call in flight (each write attempt is also
        // checked against the lease before it is sent).
        let defaults = ClientOptions::default();
        let lease_ttl = match &args.lease_table {
            Some(_) => Some(args.lease_duration),
            None => args.instance_lease.0,
        };
        let client_options = match lease_ttl {
            Some(ttl) => ClientOptions {
                attempt_timeout: defaults.attempt_timeout.min(ttl / 3),
                ..defaults
            },
            None => defaults,
        };
        let config = AwsConfig::load(&client_options)
            .await
            .with_sink(Arc::new(progress));
        let reconciler = reconciler(&args.target, api_id, &config).await?;
        let source = match args.source.as_deref() {
            Some(s) if s.starts_with("s3://") => {
                let loc = S3Location::parse(s)?;
                Source::S3(Box::new(S3Source::new(S3Objects::new(&config), loc)))
            }
            Some(dir) => Source::Dir(PathBuf::from(dir)),
            None => Source::Dir(args.target.source.manifests.clone()),
        };
        let listener = tokio::net::TcpListener::bind(&args.admin_addr)
            .await
            .with_context(|| format!("cannot listen on --admin-addr {}", args.admin_addr))?;
        tracing::info!(addr = %listener.local_addr()?, "admin endpoint listening");
        let max_silence = args
            .liveness_timeout
            .unwrap_or_else(|| settings::default_liveness_timeout(args.resync_interval));
        let admin = tokio::spawn(admin::serve(
            listener,
            health.clone(),
            metrics.clone(),
            max_silence,
        ));
        let reconciler = Arc::new(reconciler);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stopper = reconciler.stopper();
        tokio::spawn(async move {
            wait_for_signal().await;
            stopper.shut_down();
            let _ = tx.send(true);
        });
        // SIGHUP reloads (the tenant policy, the folder watch) instead of
        // ending the process, its default.
        let (hup_tx, hup_rx) = tokio::sync::mpsc::channel(1);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = hup_tx.try_send(());
            }
        });
        let opts = LoopOptions {
            resync_interval: args.resync_interval,
            debounce: args.debounce,
            poll_interval: args.poll_interval,
            quota: QuotaBudget::new(args.quota_share)
                .with_background(instance_tag_calls(args)),
            heartbeat: settings::idle_heartbeat(max_silence),
            release_poll: args.release_poll,
            ..LoopOptions::default()
        };
        let target = reconciler.target();
        let lease = match (&args.lease_table, args.instance_lease.0) {
            (Some(table), _) => Some(Lease::in_table(
                &config,
                table,
                &target.owner,
                &target.rest_api_id,
                args.lease_duration,
            )),
            (None, Some(ttl)) => Some(
                Lease::on_stage(&config, &target.owner, &target.rest_api_id, &target.stage, ttl)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
            (None, None) => None,
        }
        .map(Arc::new);
        if let Some(l) = &lease {
            // The timings the lease sets, side by side: a write attempt
            // (bounded by attempt_timeout) that starts before writes_until
            // ends before another instance can take the lease.
            tracing::info!(
                holder = l.holder(),
                place = %l.place(),
                lease_s = l.ttl().as_secs_f64(),
                renew_every_s = (l.ttl() / 3).as_secs_f64(),
                writes_until_s = (l.ttl() * 2 / 3).as_secs_f64(),
                attempt_timeout_s = client_options.attempt_timeout.as_secs_f64(),
                "leader election on"
            );
        }
        if opts.quota.background_too_large() {
            tracing::warn!(
                instance_lease_s = args.instance_lease.0.map(|d| d.as_secs_f64()),
                calls_per_s = instance_tag_calls(args),
                quota_share = args.quota_share,
                "the instance tag's renewals take more than half of --quota-share of API Gateway's quota: lengthen --instance-lease or raise --quota-share"
            );
        }
        let status = match (&args.status_dir, &args.status_prefix) {
            (Some(dir), _) => Some(StatusTarget::Dir(dir.clone())),
            (None, Some(url)) => Some(StatusTarget::S3 {
                objects: S3Objects::new(&config),
                location: S3Location::parse(url)?,
            }),
            (None, None) => None,
        };
        if let Some(target) = &status {
            status_docs::check_outside_source(target, &source).map_err(anyhow::Error::msg)?;
        }
        controller::run(Parts {
            reconciler,
            source,
            tenancy,
            opts,
            metrics,
            health,
            shutdown: rx,
            hangup: Some(hup_rx),
            lease,
            status,
        })
        .await?;
        admin.abort();
        tracing::info!("apimount stopped");
        Ok(0)
    })
}

/// API Gateway calls a second the instance tag's renewals make: a read and
/// a write every third of `--instance-lease` (none with a lease table).
fn instance_tag_calls(args: &RunArgs) -> f64 {
    match (&args.lease_table, args.instance_lease.0) {
        (None, Some(ttl)) => 2.0 / (ttl / 3).as_secs_f64(),
        _ => 0.0,
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn healthcheck(addr: &str) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(admin::check(addr)) {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("unhealthy: {}", apimount::errors::chain(&e));
            Ok(1)
        }
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<u8> {
    let api_id = check_target(&args.target)?;
    let snap = args.target.source.snapshot()?;
    let view = if args.output == "json" {
        StatusView::Json
    } else if args.tree {
        StatusView::Tree
    } else {
        StatusView::Table
    };
    runtime()?.block_on(async {
        let config = AwsConfig::load(&ClientOptions::default()).await;
        let reconciler = reconciler(&args.target, api_id, &config).await?;
        let r = reconciler.pass(&snap, Mode::Plan).await;
        if let Some(f) = &r.fatal {
            bail!("{f}");
        }
        print!("{}", cli::status_output(&r, view, &args.target.owner));
        Ok(0)
    })
}

/// Exit code of a wait that timed out, as timeout(1) has it.
const TIMED_OUT: u8 = 124;

fn wait(args: &WaitArgs) -> anyhow::Result<u8> {
    use apimount::cli::wait::{
        find, full_look_due, release_verdict, verdict, Document, LastLook, Pace, Verdict, WaitFor,
    };
    let api_id = check_target(&args.target)?;
    let target = match (&args.file, &args.name) {
        (Some(f), _) => WaitFor::File(f.clone()),
        (None, Some(n)) => WaitFor::Name {
            name: n.clone(),
            tenant: args.tenant.clone(),
        },
        (None, None) => bail!("give --file or --name"),
    };
    let pace = Pace::within(args.quota_share);
    runtime()?.block_on(async {
        let config = AwsConfig::load(&ClientOptions::default()).await;
        let reconciler = reconciler(&args.target, api_id, &config).await?;
        let docs = match (&args.status_dir, &args.status_prefix) {
            (Some(dir), _) => Some(StatusTarget::Dir(dir.clone())),
            (None, Some(url)) => Some(StatusTarget::S3 {
                objects: S3Objects::new(&config),
                location: S3Location::parse(url)?,
            }),
            (None, None) => None,
        };
        let deadline = std::time::Instant::now() + args.timeout;
        let mut last = String::new();
        let mut last_look: Option<LastLook> = None;
        // With documents: the text last confirmed on AWS.
        let mut confirmed: Option<(String, std::time::Instant)> = None;
        // The route was live at the last whole look, its release not done.
        let mut releasing = false;
        loop {
            let snap = args.target.source.snapshot()?;
            let verdict = match find(&snap, &target) {
                Err(v) => v,
                Ok((id, file)) => {
                    let mount = snap.mounts.iter().find(|m| m.id() == id);
                    let generation = mount.map(|m| m.generation()).unwrap_or_default();
                    let release = mount.and_then(|m| m.release.as_ref()).map(|r| r.version.clone());
                    let now = std::time::Instant::now();
                    let look = match &docs {
                        // The controller's document first; AWS only to confirm it.
                        Some(t) => {
                            let name = snap
                                .keys
                                .iter()
                                .find(|(_, shown)| **shown == file)
                                .map(|(key, _)| key.clone())
                                .ok_or_else(|| {
                                    anyhow::anyhow!("{} has no key in the source", file.display())
                                })
                                .and_then(|k| {
                                    status_docs::document_name(&k).map_err(anyhow::Error::msg)
                                })?;
                            let text = status_docs::read(t, &name)
                                .await
                                .map_err(anyhow::Error::msg)?;
                            let doc = Document::read(text.as_deref(), &generation, release.as_deref());
                            let fresh = match &confirmed {
                                Some((seen, at)) => {
                                    Some(seen) != text.as_ref()
                                        || now.duration_since(*at) >= pace.full_every
                                }
                                None => true,
                            };
                            if doc.to_confirm() && fresh {
                                confirmed = text.map(|t| (t, now));
                                Ok(())
                            } else {
                                Err(Verdict::Pending(doc.why()))
                            }
                        }
                        // The stage alone; the whole API when it moved.
                        None => match reconciler.stage().await {
                            Err(p) => Err(Verdict::Pending(p.to_string())),
                            Ok(stage) => {
                                if full_look_due(
                                    last_look.as_ref(),
                                    &stage,
                                    &generation,
                                    now,
                                    &pace,
                                ) {
                                    last_look = Some(LastLook {
                                        stage,
                                        generation: generation.clone(),
                                        at: now,
                                    });
                                    Ok(())
                                } else {
                                    Err(Verdict::Pending(last.clone()))
                                }
                            }
                        },
                    };
                    match look {
                        // The route was live at the last whole look and
                        // its release is moving: the alias alone tells
                        // (one Lambda read; nothing of API Gateway's quota).
                        Err(Verdict::Pending(_)) if releasing && docs.is_none() => {
                            match reconciler.release_status(&snap, &id).await {
                                Some(r) => release_verdict(&r),
                                None => Verdict::Pending(last.clone()),
                            }
                        }
                        Err(v) => v,
                        Ok(()) => {
                            let report = reconciler.pass_for(&snap, &id).await;
                            let v = verdict(&report, &id, &file);
                            releasing = release.is_some()
                                && matches!(&v, Verdict::Pending(why) if why.starts_with("release"));
                            v
                        }
                    }
                }
            };
            match verdict {
                Verdict::Served => {
                    println!("served: the stage serves this version of the manifest");
                    return Ok(0);
                }
                Verdict::Impossible(reason, message) => {
                    println!("{reason}: {message}");
                    return Ok(1);
                }
                Verdict::ReleaseStopped(message) => {
                    println!("{message}");
                    return Ok(1);
                }
                Verdict::Pending(why) => {
                    if why != last {
                        eprintln!("waiting: {why}");
                        last = why;
                    }
                }
            }
            // The last look is taken at the deadline itself.
            let now = std::time::Instant::now();
            if now >= deadline {
                println!("timed out after {}s: {last}", args.timeout.as_secs_f64());
                return Ok(TIMED_OUT);
            }
            tokio::time::sleep(pace.poll.min(deadline - now)).await;
        }
    })
}

fn validate(args: &SourceArgs) -> anyhow::Result<u8> {
    let tenancy = args.tenancy()?;
    let (out, code) = cli::validate(&args.manifests, tenancy.as_ref())?;
    print!("{out}");
    Ok(code)
}

fn run_pass(args: &TargetArgs, mode: Mode) -> anyhow::Result<u8> {
    let api_id = check_target(args)?;
    let snap = args
        .source
        .snapshot()
        .context("no pass was run, nothing was changed")?;
    runtime()?.block_on(async {
        let config = AwsConfig::load(&ClientOptions::default()).await;
        let reconciler = reconciler(args, api_id, &config).await?;
        let r = reconciler.pass(&snap, mode).await;
        print!("{}", render::render_pass(&r, mode));
        Ok(cli::pass_exit_code(&r, mode))
    })
}
