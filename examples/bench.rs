//! Benchmark of apimount against a hand-written baseline, on a local moto server.
//!
//! ```text
//! cargo run --release --example bench -- [--smoke] [--out DIR] [--apimount PATH]
//! cargo run --release --example bench -- baseline --api ID --root ID --from I --count N [--stage-exists]
//! ```
//!
//! The first form runs every measurement and writes `BENCHMARKS.md` and
//! `convergence.svg` into `--out` (default `docs/`). It starts its own moto
//! server; normally run through `./scripts/bench`, which builds everything in
//! release mode first.
//!
//! The second form is the BASELINE: a separate small process (so it pays
//! process start and config load like apimount does) that mounts functions
//! `bench-fn-I` at `/mI` with the minimal sequence of calls and nothing else:
//! per mount GetFunction, CreateResource×2, PutMethod×2, PutIntegration×2,
//! AddPermission×2; then one CreateDeployment and CreateStage (or UpdateStage).
//! It reads the AWS settings from the environment, like apimount.
//!
//! This is a benchmark, not a test: nothing here asserts on timings. The
//! report states each target, the measured value and whether it was met.

// The emulator launcher, the HTTP getter and the recording proxy are the
// test suite's (`tests/integration/support`).
//
// The module is shared with the test suite, which uses the rest of it; the
// bench uses only a few items.
#[allow(dead_code)]
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use apimount::aws::pacing::{
    APIGW_TOTAL_PER_SEC, GET_FUNCTION_PER_SEC, GET_RESOURCES_PER_SEC, LAMBDA_PER_SEC,
};
use apimount::controller::budget::QuotaBudget;
use apimount::controller::MIN_PASS_INTERVAL;
use apimount::plan::throttle_limits::AccountLimit;
use aws_config::BehaviorVersion;
use aws_sdk_apigateway::types::{IntegrationType, Op as PatchOp, PatchOperation};
use futures::StreamExt;
use support::faults::{FaultConfig, FaultProxy};
use support::{http_get, Emulator, ACCOUNT_ID, REGION};

const STAGE: &str = "prod";
const OWNER: &str = "apimount";
const DEBOUNCE_MS: u64 = 200;

// ----- sizes ---------------------------------------------------------------

/// How much of everything to do: the full run or the CI smoke run.
struct Sizes {
    one_mount_trials: usize,
    /// Mount counts for the convergence curve (first is 1, last is "many").
    apply_counts: Vec<usize>,
    apply_trials: usize,
    latency_trials: usize,
    burst: usize,
    burst_trials: usize,
    steady_counts: Vec<usize>,
    /// The count the "≥5× fewer calls" target is checked at.
    steady_target_count: usize,
    pacing_mounts: usize,
    pacing_trials: usize,
    footprint_mounts: usize,
    /// Daemon starts whose resident memory is measured.
    footprint_trials: usize,
    idle: Duration,
    plan_iterations: usize,
    /// Mount counts (one function each) whose steady daemon is held to the
    /// quota budget; the last also times the healing of a removed permission.
    budget_counts: Vec<usize>,
    /// Steady passes each budget window spans.
    budget_passes: usize,
    /// Mount counts (one function each) taken through an outage.
    outage_counts: Vec<usize>,
    /// How long each outage is watched.
    outage_window: Duration,
    /// Team accounts, and functions in each, whose steady Lambda calls are
    /// measured per account.
    accounts: usize,
    account_functions: usize,
    account_passes: usize,
    /// Releases taken through their steps and rolled back by an alarm, one
    /// at a time for the rollback timing.
    release_trials: usize,
    /// Releases running at once while the alarm reads are counted.
    release_running: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            one_mount_trials: 10,
            apply_counts: vec![1, 10, 50, 100],
            apply_trials: 7,
            latency_trials: 20,
            burst: 50,
            burst_trials: 5,
            steady_counts: vec![10, 100, 300],
            steady_target_count: 100,
            pacing_mounts: 20,
            pacing_trials: 3,
            footprint_mounts: 1000,
            footprint_trials: 5,
            idle: Duration::from_secs(60),
            plan_iterations: 20,
            budget_counts: vec![10, 100, 300],
            budget_passes: 3,
            outage_counts: vec![30, 300],
            outage_window: Duration::from_secs(120),
            accounts: 3,
            account_functions: 100,
            account_passes: 4,
            release_trials: 20,
            release_running: 50,
        }
    }

    fn smoke() -> Sizes {
        Sizes {
            one_mount_trials: 2,
            apply_counts: vec![1, 10],
            apply_trials: 1,
            latency_trials: 3,
            burst: 10,
            burst_trials: 1,
            steady_counts: vec![5, 10],
            steady_target_count: 10,
            pacing_mounts: 5,
            pacing_trials: 1,
            footprint_mounts: 30,
            footprint_trials: 1,
            idle: Duration::from_secs(5),
            plan_iterations: 5,
            budget_counts: vec![10],
            budget_passes: 1,
            outage_counts: vec![5],
            outage_window: Duration::from_secs(25),
            accounts: 2,
            account_functions: 5,
            account_passes: 1,
            release_trials: 3,
            release_running: 10,
        }
    }
}

// ----- entry point -----------------------------------------------------------

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Several workers, as the benchmark blocks one while it waits for a
    // child process. (The counting proxy runs on a runtime of its own.)
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some("baseline") {
        rt.block_on(baseline_main(&args[1..]))
    } else {
        rt.block_on(bench_main(&args))
    }
}

fn flag_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn fn_name(i: usize) -> String {
    format!("bench-fn-{i:04}")
}

fn mount_name(i: usize) -> String {
    format!("m{i:04}")
}

// ----- the baseline ------------------------------------------------------------

async fn baseline_main(args: &[String]) -> Result<()> {
    let need = |name: &str| flag_value(args, name).ok_or_else(|| anyhow!("baseline needs {name}"));
    let api = need("--api")?;
    let root = need("--root")?;
    let from: usize = need("--from")?.parse()?;
    let count: usize = need("--count")?.parse()?;
    let stage_exists = args.iter().any(|a| a == "--stage-exists");

    let conf = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let apigw = aws_sdk_apigateway::Client::new(&conf);
    let lambda = aws_sdk_lambda::Client::new(&conf);

    for i in from..from + count {
        let name = mount_name(i);
        let function = lambda
            .get_function()
            .function_name(fn_name(i))
            .send()
            .await?;
        let arn = function
            .configuration()
            .and_then(|c| c.function_arn())
            .ok_or_else(|| anyhow!("GetFunction returned no ARN"))?
            .to_string();
        let uri = format!(
            "arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
        );
        let outer = apigw
            .create_resource()
            .rest_api_id(&api)
            .parent_id(&root)
            .path_part(&name)
            .send()
            .await?
            .id
            .ok_or_else(|| anyhow!("CreateResource returned no id"))?;
        let proxy = apigw
            .create_resource()
            .rest_api_id(&api)
            .parent_id(&outer)
            .path_part("{proxy+}")
            .send()
            .await?
            .id
            .ok_or_else(|| anyhow!("CreateResource returned no id"))?;
        let resources = [outer, proxy];
        for id in &resources {
            apigw
                .put_method()
                .rest_api_id(&api)
                .resource_id(id)
                .http_method("ANY")
                .authorization_type("NONE")
                .operation_name(format!("apimount:baseline:{name}"))
                .send()
                .await?;
        }
        for id in &resources {
            apigw
                .put_integration()
                .rest_api_id(&api)
                .resource_id(id)
                .http_method("ANY")
                .r#type(IntegrationType::AwsProxy)
                .integration_http_method("POST")
                .uri(&uri)
                .send()
                .await?;
        }
        let source = format!("arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api}/*/*/{name}");
        for (sid, source_arn) in [
            (format!("baseline-{api}-{name}"), source.clone()),
            (
                format!("baseline-{api}-{name}-proxy"),
                format!("{source}/*"),
            ),
        ] {
            lambda
                .add_permission()
                .function_name(&arn)
                .statement_id(sid)
                .action("lambda:InvokeFunction")
                .principal("apigateway.amazonaws.com")
                .source_arn(source_arn)
                .send()
                .await?;
        }
    }
    let deployment = apigw
        .create_deployment()
        .rest_api_id(&api)
        .send()
        .await?
        .id
        .ok_or_else(|| anyhow!("CreateDeployment returned no id"))?;
    if stage_exists {
        apigw
            .update_stage()
            .rest_api_id(&api)
            .stage_name(STAGE)
            .patch_operations(
                PatchOperation::builder()
                    .op(PatchOp::Replace)
                    .path("/deploymentId")
                    .value(deployment)
                    .build(),
            )
            .send()
            .await?;
    } else {
        apigw
            .create_stage()
            .rest_api_id(&api)
            .stage_name(STAGE)
            .deployment_id(deployment)
            .send()
            .await?;
    }
    Ok(())
}

fn count_ops(log: &[(Instant, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, op) in log {
        *out.entry(op.clone()).or_default() += 1;
    }
    out
}

fn is_read(op: &str) -> bool {
    let name = op.split(':').nth(1).unwrap_or(op);
    name.starts_with("Get") || name.starts_with("List")
}

// ----- AWS quotas --------------------------------------------------------------

/// One account-level quota: a token bucket over a set of operations.
struct Quota {
    name: &'static str,
    rate: f64,
    burst: f64,
    applies: fn(&str) -> bool,
}

fn quotas() -> Vec<Quota> {
    vec![
        Quota {
            name: "API Gateway total (10/s, burst 40)",
            rate: 10.0,
            burst: 40.0,
            applies: |op| op.starts_with("apigateway:"),
        },
        Quota {
            name: "CreateResource (5/s)",
            rate: 5.0,
            burst: 5.0,
            applies: |op| op == "apigateway:CreateResource",
        },
        Quota {
            name: "GetResources (5 per 2 s)",
            rate: 2.5,
            burst: 5.0,
            applies: |op| op == "apigateway:GetResources",
        },
        Quota {
            name: "CreateDeployment (1 per 5 s)",
            rate: 0.2,
            burst: 1.0,
            applies: |op| op == "apigateway:CreateDeployment",
        },
        Quota {
            name: "Lambda control plane (15/s; GetFunction excluded)",
            rate: 15.0,
            burst: 15.0,
            applies: |op| op.starts_with("lambda:") && op != "lambda:GetFunction",
        },
        Quota {
            name: "Lambda GetFunction (100/s)",
            rate: 100.0,
            burst: 100.0,
            applies: |op| op == "lambda:GetFunction",
        },
    ]
}

/// Most calls seen in any window of `window` length.
fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Replays the calls through the quota's token bucket; returns the lowest
/// token level reached (negative: the quota would have throttled).
fn lowest_tokens(times: &[Instant], q: &Quota) -> f64 {
    let mut tokens = q.burst;
    let mut lowest = tokens;
    let mut last = match times.first() {
        Some(t) => *t,
        None => return tokens,
    };
    for t in times {
        tokens = (tokens + t.duration_since(last).as_secs_f64() * q.rate).min(q.burst);
        last = *t;
        tokens -= 1.0;
        lowest = lowest.min(tokens);
    }
    lowest
}

// ----- the bench world -------------------------------------------------------------

struct Bench {
    apimount: PathBuf,
    me: PathBuf,
    moto: Emulator,
    scratch: tempfile::TempDir,
    apigw: aws_sdk_apigateway::Client,
    lambda: aws_sdk_lambda::Client,
    iam: aws_sdk_iam::Client,
    /// apimount's own AWS adapter (pacing off), for the reads that check results.
    aws: apimount::aws::Aws,
    role: Option<String>,
    functions: usize,
    apis: usize,
}

/// `(api id, root resource id)`
type Api = (String, String);

impl Bench {
    async fn new(apimount: PathBuf) -> Result<Bench> {
        let scratch = tempfile::Builder::new()
            .prefix("apimount-bench-")
            .tempdir()?;
        let moto = Emulator::start();
        let sdk = sdk_config(&moto.endpoint()).await;
        Ok(Bench {
            apimount,
            me: std::env::current_exe()?,
            apigw: aws_sdk_apigateway::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            aws: apimount::aws::Aws::new(&apimount::aws::AwsConfig::from_sdk(sdk.clone()))?
                .with_pacer(apimount::aws::pacing::Pacer::disabled()),
            moto,
            scratch,
            role: None,
            functions: 0,
            apis: 0,
        })
    }

    /// Makes sure functions `bench-fn-0000` … `bench-fn-{n-1}` exist.
    async fn ensure_functions(&mut self, n: usize) -> Result<()> {
        if self.role.is_none() {
            let trust = serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]
            });
            let role = self
                .iam
                .create_role()
                .role_name("apimount-bench")
                .assume_role_policy_document(trust.to_string())
                .send()
                .await?;
            self.role = role.role().map(|r| r.arn().to_string());
        }
        let role = self.role.clone().unwrap_or_default();
        let lambda = self.lambda.clone();
        let results: Vec<Result<()>> = futures::stream::iter(self.functions..n)
            .map(|i| {
                let (lambda, role) = (lambda.clone(), role.clone());
                async move { create_function(&lambda, &role, &fn_name(i)).await }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        results.into_iter().collect::<Result<()>>()?;
        self.functions = self.functions.max(n);
        Ok(())
    }

    async fn new_api(&mut self) -> Result<Api> {
        self.apis += 1;
        let api = self
            .apigw
            .create_rest_api()
            .name(format!("bench-{}", self.apis))
            .send()
            .await?;
        let id = api.id().ok_or_else(|| anyhow!("no api id"))?.to_string();
        let root = self
            .apigw
            .get_resources()
            .rest_api_id(&id)
            .send()
            .await?
            .items()
            .iter()
            .find(|r| r.path() == Some("/"))
            .and_then(|r| r.id())
            .ok_or_else(|| anyhow!("no root resource"))?
            .to_string();
        Ok((id, root))
    }

    fn manifest_dir(&self, label: &str) -> Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{label}-"))
            .tempdir_in(self.scratch.path())?
            .keep();
        Ok(dir)
    }

    /// Runs a command with only the emulator's AWS settings in its environment.
    fn command(&self, program: &Path, endpoint: &str) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(&key);
            }
        }
        let nowhere = self.scratch.path().join("no-aws-config");
        cmd.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_CONFIG_FILE", nowhere.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", nowhere.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// `apimount apply`: wall time; fails on a non-zero exit.
    fn apimount_once(
        &self,
        api: &str,
        dir: &Path,
        pacing: &str,
        endpoint: &str,
    ) -> Result<Duration> {
        let mut cmd = self.command(&self.apimount, endpoint);
        cmd.args(["apply", "--rest-api-id", api, "--manifests"])
            .arg(dir)
            .args(["--pacing", pacing]);
        let started = Instant::now();
        let out = cmd.output()?;
        let took = started.elapsed();
        if !out.status.success() {
            bail!(
                "apimount apply exited with {}:\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    }

    /// The baseline process for mounts `from..from+count`: wall time.
    fn baseline_once(
        &self,
        api: &Api,
        from: usize,
        count: usize,
        stage_exists: bool,
    ) -> Result<Duration> {
        let mut cmd = self.command(&self.me, &self.moto.endpoint());
        cmd.args(["baseline", "--api", &api.0, "--root", &api.1])
            .args(["--from", &from.to_string(), "--count", &count.to_string()]);
        if stage_exists {
            cmd.arg("--stage-exists");
        }
        let started = Instant::now();
        let out = cmd.output()?;
        let took = started.elapsed();
        if !out.status.success() {
            bail!(
                "baseline exited with {}:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(took)
    }

    fn start_daemon(&self, api: &str, dir: &Path, resync: &str, endpoint: &str) -> Result<Daemon> {
        self.start_daemon_with(api, dir, resync, endpoint, &[])
    }

    /// [`Bench::start_daemon`] with more arguments for `apimount run`.
    fn start_daemon_with(
        &self,
        api: &str,
        dir: &Path,
        resync: &str,
        endpoint: &str,
        extra: &[&str],
    ) -> Result<Daemon> {
        let admin = support::free_loopback_addr();
        let log = self.scratch.path().join(format!(
            "daemon-{api}-{}.log",
            admin.replace([':', '.'], "-")
        ));
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = self.command(&self.apimount, endpoint);
        cmd.args(["run", "--rest-api-id", api, "--manifests"])
            .arg(dir)
            .args(["--pacing", "off", "--debounce", &format!("{DEBOUNCE_MS}ms")])
            .args(["--resync-interval", resync, "--admin-addr", &admin])
            .args(extra)
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file));
        let child = cmd.spawn()?;
        let daemon = Daemon { child, admin, log };
        daemon.wait_for_passes(1.0, Duration::from_secs(600))?;
        Ok(daemon)
    }

    async fn stage_deployment(&self, api: &str) -> Result<Option<String>> {
        Ok(self
            .aws
            .get_stage(api, STAGE)
            .await?
            .and_then(|s| s.deployment_id))
    }

    async fn deployment_count(&self, api: &str) -> Result<usize> {
        let mut n = 0;
        let mut position: Option<String> = None;
        loop {
            let page = self
                .apigw
                .get_deployments()
                .rest_api_id(api)
                .limit(500)
                .set_position(position.take())
                .send()
                .await?;
            n += page.items().len();
            match page.position() {
                Some(p) if !p.is_empty() => position = Some(p.to_string()),
                _ => return Ok(n),
            }
        }
    }

    /// True when the stage's deployment serves exactly the owner's current
    /// routes (apimount's own fingerprint in the deployment description) and
    /// every path in `paths` is among them.
    async fn deployed(&self, api: &str, deployment: &str, paths: &[String]) -> Result<bool> {
        let observed = self.aws.observe_api(api).await?;
        let all_there = paths.iter().all(|p| {
            observed
                .get(p)
                .is_some_and(|r| r.methods.values().any(|m| m.ownership().is(OWNER)))
        });
        if !all_there {
            return Ok(false);
        }
        let description = self
            .aws
            .deployment_description(api, deployment)
            .await?
            .unwrap_or_default();
        let want = apimount::plan::names::owner_fingerprint(&observed, OWNER);
        Ok(
            apimount::plan::names::fingerprint_in_description(&description, OWNER)
                == Some(want.as_str()),
        )
    }

    /// Polls the stage every 20 ms until a deployment other than `before`
    /// serves all `paths`; returns the time since `since`.
    /// Waits for the daemon to end a pass after `since` (Unix seconds),
    /// watching only its `/metrics` so the emulator serves nothing but the
    /// daemon meanwhile; then checks once that the stage has moved on from
    /// `before` to a deployment serving `paths`, and if not, waits for the
    /// next pass. Returns the seconds from `since` to the end of the pass
    /// that deployed them.
    async fn wait_deployed(
        &self,
        daemon: &Daemon,
        api: &str,
        before: Option<String>,
        paths: &[String],
        since: f64,
    ) -> Result<f64> {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut after = since;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ended = daemon.pass_ended_after(after, left)?;
            let now = self.stage_deployment(api).await?;
            if let Some(id) = now.as_deref().filter(|_| now != before) {
                if self.deployed(api, id, paths).await? {
                    return Ok(ended - since);
                }
            }
            after = ended;
        }
    }
}

async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_apigateway::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

fn write_mount(dir: &Path, i: usize) -> Result<String> {
    let name = mount_name(i);
    let yaml = format!(
        "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: /{name}\n  function: {}\n",
        fn_name(i)
    );
    std::fs::write(dir.join(format!("{name}.yaml")), yaml)?;
    Ok(format!("/{name}"))
}

/// A running `apimount run`; killed on drop.
struct Daemon {
    child: Child,
    admin: String,
    log: PathBuf,
}

impl Daemon {
    fn metrics(&self) -> BTreeMap<String, f64> {
        let body = http_get(&self.admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    fn passes(&self) -> f64 {
        sum_of(&self.metrics(), "apimount_passes_total")
    }

    fn wait_for_passes(&self, n: f64, timeout: Duration) -> Result<()> {
        self.wait_metric("apimount_passes_total", |v| v >= n, timeout)
            .map(|_| ())
            .map_err(|e| anyhow!("daemon made fewer than {n} passes: {e}"))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When the daemon's last successful pass ended (Unix seconds), once it
    /// is later than `after`: the pass logs and records this right after it
    /// has pointed the stage at its deployment.
    fn pass_ended_after(&self, after: f64, timeout: Duration) -> Result<f64> {
        self.wait_metric(
            "apimount_last_successful_pass_timestamp_seconds",
            |v| v > after,
            timeout,
        )
        .map_err(|e| anyhow!("no successful pass ended: {e}"))
    }

    /// Polls `/metrics` every 5 ms until the sum of the samples named `name`
    /// satisfies `done`; returns that value.
    fn wait_metric(
        &self,
        name: &str,
        done: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> Result<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = sum_of(&self.metrics(), name);
            if done(value) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} is {value} after {timeout:?}; log {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sum_of(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

/// AWS calls by `service:operation` from the daemon's counters.
fn aws_calls(metrics: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (k, v) in metrics {
        let Some(labels) = k.strip_prefix("apimount_aws_calls_total{") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches(['"', '}']).to_string())
                .unwrap_or_default()
        };
        *out.entry(format!(
            "{}:{}",
            label("service").to_lowercase().replace(' ', ""),
            label("operation")
        ))
        .or_default() += v;
    }
    out
}

// ----- /proc ------------------------------------------------------------------------

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields of /proc/PID/stat after the command name (field 3 is index 0).
fn stat_fields(pid: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let f = stat_fields(&pid.to_string());
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) as f64 / clock_ticks()
}

/// cutime + cstime of this process (CPU of waited-for children), in seconds.
fn children_cpu_seconds() -> f64 {
    let f = stat_fields("self");
    (f.get(13).unwrap_or(&0) + f.get(14).unwrap_or(&0)) as f64 / clock_ticks()
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

// ----- statistics ----------------------------------------------------------------------

/// Median, min and max of a sample.
#[derive(Clone, Copy, Default)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

fn stat(values: &[f64]) -> Stat {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Stat::default();
    }
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    Stat {
        median,
        min: v[0],
        max: v[v.len() - 1],
        n: v.len(),
    }
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn ms(s: Stat) -> String {
    // Sub-10 ms values (planning) need decimals to say anything.
    let d = if s.max < 0.01 { 2 } else { 0 };
    format!(
        "{:.d$} ms (min {:.d$}, max {:.d$}, n={})",
        s.median * 1e3,
        s.min * 1e3,
        s.max * 1e3,
        s.n
    )
}

fn secs(s: Stat) -> String {
    format!(
        "{:.2} s (min {:.2}, max {:.2}, n={})",
        s.median, s.min, s.max, s.n
    )
}

// ----- the report ------------------------------------------------------------------------

/// One target line of the summary.
struct Target {
    what: String,
    target: String,
    measured: String,
    met: bool,
}

#[derive(Default)]
struct Report {
    sections: String,
    targets: Vec<Target>,
    /// `(mounts, apimount median s, baseline median s)`
    curve: Vec<(usize, f64, f64)>,
}

impl Report {
    fn target(&mut self, what: &str, target: &str, measured: String, met: bool) {
        println!(
            "bench: {what}: {measured} (target {target}) {}",
            if met { "MET" } else { "MISSED" }
        );
        self.targets.push(Target {
            what: what.into(),
            target: target.into(),
            measured,
            met,
        });
    }

    fn section(&mut self, title: &str, body: &str) {
        let _ = write!(self.sections, "\n## {title}\n\n{body}\n");
    }
}

// ----- the measurements ---------------------------------------------------------------------

/// Apply from empty for each count: apimount vs baseline, fresh API per trial.
/// The measurements `--only` can pick, in the order they run.
const SECTIONS: [&str; 10] = [
    "convergence",
    "latency",
    "burst",
    "steady",
    "pacing",
    "footprint",
    "budget",
    "outage",
    "accounts",
    "releases",
];

/// The one-mount baseline alone, for a run that measures latency without the
/// convergence curve.
async fn measure_one_baseline(b: &mut Bench, s: &Sizes) -> Result<Stat> {
    b.ensure_functions(1).await?;
    let mut base = Vec::new();
    for _ in 0..s.one_mount_trials {
        let api = b.new_api().await?;
        base.push(b.baseline_once(&api, 0, 1, false)?.as_secs_f64());
    }
    Ok(stat(&base))
}

/// 1–2. The convergence curve; returns the one-mount baseline.
async fn measure_convergence(b: &mut Bench, s: &Sizes, r: &mut Report) -> Result<Stat> {
    let mut body = String::from(
        "Fresh REST API per trial, mounts from empty, one function per mount. \
         apimount: `apimount apply --pacing off` (process wall time). Baseline: \
         `bench baseline` process (wall time), minimal call sequence.\n\n\
         | mounts | apimount | baseline | ratio (medians) |\n|---:|---|---|---:|\n",
    );
    let mut one_baseline = Stat::default();
    let mut spread_note = String::new();
    let max = *s.apply_counts.iter().max().unwrap_or(&1);
    b.ensure_functions(max).await?;
    for &n in &s.apply_counts {
        let trials = if n == 1 {
            s.one_mount_trials
        } else {
            s.apply_trials
        };
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for t in 0..trials {
            // Alternate who goes first so drift in moto's speed hits both.
            for side in [t % 2, 1 - t % 2] {
                let api = b.new_api().await?;
                if side == 0 {
                    let dir = b.manifest_dir("apply")?;
                    for i in 0..n {
                        write_mount(&dir, i)?;
                    }
                    let endpoint = b.moto.endpoint();
                    ours.push(
                        b.apimount_once(&api.0, &dir, "off", &endpoint)?
                            .as_secs_f64(),
                    );
                } else {
                    base.push(b.baseline_once(&api, 0, n, false)?.as_secs_f64());
                }
            }
        }
        let (o, ba) = (stat(&ours), stat(&base));
        println!(
            "bench: apply {n} mounts: apimount {} baseline {}",
            ms(o),
            ms(ba)
        );
        let _ = writeln!(
            body,
            "| {n} | {} | {} | {:.2}× |",
            ms(o),
            ms(ba),
            o.median / ba.median
        );
        r.curve.push((n, o.median, ba.median));
        if n == 1 {
            one_baseline = ba;
            let ratio = o.median / ba.median;
            r.target(
                "1. one mount, one-shot",
                "≤ 1.5× baseline",
                format!("{ratio:.2}× ({} vs {})", ms(o), ms(ba)),
                ratio <= 1.5,
            );
        }
        if n == max && n > 1 {
            let ratio = o.median / ba.median;
            r.target(
                &format!("2. {n} mounts from empty"),
                "≤ 1.1× baseline",
                format!("{ratio:.2}× ({} vs {})", secs(o), secs(ba)),
                ratio <= 1.1,
            );
            spread_note = format!(
                "\nAt {n} mounts the medians differ by {:+.0} %, while the baseline's own trials \
                 range from {:+.0} % to {:+.0} % of its median: from run to run this ratio moves \
                 by about as much as the target's 10 % margin.\n",
                (ratio - 1.0) * 100.0,
                (ba.min / ba.median - 1.0) * 100.0,
                (ba.max / ba.median - 1.0) * 100.0
            );
        }
    }
    body.push_str(&spread_note);
    r.section("1–2. Convergence from empty (one-shot apply)", &body);
    Ok(one_baseline)
}

/// 3. Daemon: one new manifest → deployed.
async fn measure_latency(
    b: &mut Bench,
    s: &Sizes,
    one_baseline: Stat,
    r: &mut Report,
) -> Result<()> {
    let first = 5000; // functions/mounts 5000… are used by no other measurement
    b.ensure_functions(0).await?; // the role the functions below run as
    let api = b.new_api().await?;
    let dir = b.manifest_dir("latency")?;
    let daemon = b.start_daemon(&api.0, &dir, "10m", &b.moto.endpoint())?;
    let mut samples = Vec::new();
    for t in 0..s.latency_trials {
        let i = first + t;
        create_function(
            &b.lambda,
            b.role.as_deref().unwrap_or_default(),
            &fn_name(i),
        )
        .await?;
        let before = b.stage_deployment(&api.0).await?;
        // An idle daemon: the churn limit keeps pass starts a second apart,
        // and the trial before has just had its pass.
        tokio::time::sleep(MIN_PASS_INTERVAL).await;
        let written_at = unix_now();
        let path = write_mount(&dir, i)?;
        samples.push(
            b.wait_deployed(&daemon, &api.0, before, &[path], written_at)
                .await?,
        );
    }
    drop(daemon);
    let (p50, p95) = (percentile(&samples, 50.0), percentile(&samples, 95.0));
    let bound = DEBOUNCE_MS as f64 / 1e3 + 1.5 * one_baseline.median;
    let spread = stat(&samples);
    let measured = format!(
        "p50 {:.0} ms, p95 {:.0} ms (min {:.0}, max {:.0}, n={})",
        p50 * 1e3,
        p95 * 1e3,
        spread.min * 1e3,
        spread.max * 1e3,
        samples.len()
    );
    r.target(
        "3. daemon: manifest written → deployed",
        &format!(
            "p50 ≤ debounce + 1.5× one-mount baseline = {:.0} ms",
            bound * 1e3
        ),
        measured.clone(),
        p50 <= bound,
    );
    r.section(
        "3. Daemon latency",
        &format!(
            "`apimount run --pacing off --debounce {DEBOUNCE_MS}ms --resync-interval 10m` on a folder; each trial \
             waits 1 s (the churn limit keeps the starts of two passes that far apart, so the \
             daemon is idle), writes one new manifest and watches the daemon's `/metrics` (every 5 ms) for the end of a \
             pass: `apimount_last_successful_pass_timestamp_seconds`, recorded after UpdateStage has \
             returned (same clock as the write). Then it checks on the emulator (GetStage, \
             GetResources, GetDeployment) that the stage serves a new deployment with the route and \
             that the deployment's owner fingerprint matches the live routes. Nothing polls the \
             emulator while the daemon works: a poll every few milliseconds would take a share of \
             the single emulator process that the baseline does not have to share. The latency is \
             the time from the write to the end of that pass; it includes the debounce.\n\n{measured}\n"
        ),
    );
    Ok(())
}

/// One stand-in Lambda function (never invoked).
async fn create_function(lambda: &aws_sdk_lambda::Client, role: &str, name: &str) -> Result<()> {
    let code = aws_sdk_lambda::types::FunctionCode::builder()
        .zip_file(aws_sdk_lambda::primitives::Blob::new(b"bench".to_vec()))
        .build();
    lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .handler("index.handler")
        .role(role)
        .code(code)
        .send()
        .await
        .map_err(|e| anyhow!("CreateFunction {name}: {e:?}"))?;
    Ok(())
}

/// 4. Burst: many manifests at once into the watched folder.
async fn measure_burst(b: &mut Bench, s: &Sizes, r: &mut Report) -> Result<()> {
    b.ensure_functions(s.burst).await?;
    let (mut ours, mut base, mut deployments) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.burst_trials {
        let api = b.new_api().await?;
        let dir = b.manifest_dir("burst")?;
        let daemon = b.start_daemon(&api.0, &dir, "10m", &b.moto.endpoint())?;
        // Past the churn limit of the daemon's first pass: the burst meets an
        // idle daemon.
        tokio::time::sleep(MIN_PASS_INTERVAL).await;
        let before_count = b.deployment_count(&api.0).await?;
        let before = b.stage_deployment(&api.0).await?;
        let written_at = unix_now();
        let mut paths = Vec::new();
        for i in 0..s.burst {
            paths.push(write_mount(&dir, i)?);
        }
        ours.push(
            b.wait_deployed(&daemon, &api.0, before, &paths, written_at)
                .await?,
        );
        // Let a trailing pass (if any) finish before counting deployments.
        tokio::time::sleep(Duration::from_millis(DEBOUNCE_MS * 3 + 1000)).await;
        deployments.push(b.deployment_count(&api.0).await? - before_count);
        drop(daemon);
        let api = b.new_api().await?;
        base.push(b.baseline_once(&api, 0, s.burst, false)?.as_secs_f64());
    }
    let (o, ba) = (stat(&ours), stat(&base));
    let most = deployments.iter().copied().max().unwrap_or(0);
    r.target(
        &format!("4. burst of {} manifests: deployments", s.burst),
        "≤ 2",
        format!("{deployments:?} per trial"),
        most <= 2,
    );
    let ratio = o.median / ba.median;
    // As target 3: the daemon's time includes its debounce, which the
    // baseline (a process told to start) does not wait.
    let debounce = DEBOUNCE_MS as f64 / 1000.0;
    let bound = debounce + 1.2 * ba.median;
    r.target(
        &format!("4. burst of {} manifests: time to deployed", s.burst),
        &format!(
            "≤ debounce + 1.2× the baseline for {} = {bound:.2} s",
            s.burst
        ),
        format!(
            "{:.2} s, {ratio:.2}× ({} vs {})",
            o.median,
            secs(o),
            secs(ba)
        ),
        o.median <= bound,
    );
    r.section(
        "4. Burst",
        &format!(
            "{} manifests written back to back into the folder of a running daemon (fresh API and \
             daemon per trial, the burst 1 s after its first pass, past the churn limit). Time from the first write until the end of the pass after which the stage \
             serves them all, observed as for the latency (the daemon's `/metrics`, then one check on \
             the emulator), vs the baseline process doing the same {} mounts from empty. The \
             daemon's time includes the {DEBOUNCE_MS} ms debounce.\n\n| | time |\n|---|---|\n\
             | apimount run | {} |\n| baseline | {} |\n\
             | ratio (medians) | {ratio:.2}× |\n\nDeployments made per trial: {deployments:?}\n",
            s.burst,
            s.burst,
            secs(o),
            secs(ba),
        ),
    );
    Ok(())
}

/// 5. Calls of a pass that finds nothing to do.
async fn measure_steady(
    b: &mut Bench,
    s: &Sizes,
    proxy: &FaultProxy,
    r: &mut Report,
) -> Result<()> {
    let max = *s.steady_counts.iter().max().unwrap_or(&1);
    b.ensure_functions(max).await?;
    let mut body = String::from(
        "Converge n mounts (n functions), then one `apimount apply --pacing off` through the \
         counting proxy; it finds nothing to do. \"Per-object refresh\" is what a tool that \
         refreshes every object with one GET would make: 2n resources + 2n methods + 2n \
         integrations + 2n permissions (one GetPolicy each) + n functions + REST API + stage + \
         deployment = 9n + 3. The daemon row is one resync pass of `apimount run \
         --resync-interval 2s` (difference of its `apimount_aws_calls_total` counters across one \
         pass).\n\n",
    );
    let mut apigw_reads = Vec::new();
    let mut table = String::from(
        "| mounts | one-shot calls | by operation | daemon pass calls | by operation | per-object refresh | per-object ÷ one-shot |\n|---:|---:|---|---:|---|---:|---:|\n",
    );
    for &n in &s.steady_counts {
        let api = b.new_api().await?;
        let dir = b.manifest_dir("steady")?;
        for i in 0..n {
            write_mount(&dir, i)?;
        }
        b.apimount_once(&api.0, &dir, "off", &b.moto.endpoint())?;
        proxy.take_calls();
        b.apimount_once(&api.0, &dir, "off", &proxy.url())?;
        let calls = count_ops(&proxy.take_calls());
        let total: usize = calls.values().sum();
        let reads_apigw: usize = calls
            .iter()
            .filter(|(op, _)| op.starts_with("apigateway:") && is_read(op))
            .map(|(_, c)| c)
            .sum();
        let lambda_reads: usize = calls
            .iter()
            .filter(|(op, _)| op.starts_with("lambda:") && is_read(op))
            .map(|(_, c)| c)
            .sum();
        apigw_reads.push((n, reads_apigw));

        // The daemon's resync pass.
        let daemon = b.start_daemon(&api.0, &dir, "2s", &b.moto.endpoint())?;
        let p = daemon.passes();
        daemon.wait_for_passes(p + 1.0, Duration::from_secs(600))?;
        // One snapshot gives both the pass count and the counters it goes with.
        let before = daemon.metrics();
        let p = sum_of(&before, "apimount_passes_total");
        daemon.wait_for_passes(p + 1.0, Duration::from_secs(600))?;
        let m0 = aws_calls(&before);
        let m1 = aws_calls(&daemon.metrics());
        drop(daemon);
        let daemon_calls: BTreeMap<String, f64> = m1
            .iter()
            .map(|(k, v)| (k.clone(), v - m0.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        let daemon_total: f64 = daemon_calls.values().sum();
        let daemon_lambda_reads: f64 = daemon_calls
            .iter()
            .filter(|(op, _)| op.starts_with("lambda:") && is_read(op))
            .map(|(_, c)| c)
            .sum();

        let per_object = 9 * n + 3;
        let ratio = per_object as f64 / total as f64;
        let _ = writeln!(
            table,
            "| {n} | {total} | {} | {daemon_total} | {} | {per_object} | {ratio:.1}× |",
            fmt_ops(&calls),
            fmt_ops(&daemon_calls)
        );
        println!("bench: steady {n}: one-shot {total} calls, daemon {daemon_total}, per-object {per_object}");
        if n == s.steady_target_count {
            r.target(
                &format!("5c. one-shot steady pass at {n} mounts vs per-object refresh"),
                "≥ 5× fewer calls",
                format!("{ratio:.1}× fewer ({total} vs {per_object})"),
                ratio >= 5.0,
            );
            let daemon_ratio = per_object as f64 / daemon_total;
            r.target(
                &format!("5c. daemon resync pass at {n} mounts vs per-object refresh"),
                "≥ 5× fewer calls",
                format!("{daemon_ratio:.1}× fewer ({daemon_total} vs {per_object})"),
                daemon_ratio >= 5.0,
            );
        }
        if n == max {
            let per_fn = lambda_reads as f64 / n as f64;
            r.target(
                &format!("5b. Lambda reads per distinct function, one-shot apply, {n} mounts"),
                "≤ 1",
                format!("{per_fn:.2} ({lambda_reads} reads / {n} functions)"),
                per_fn <= 1.0,
            );
            let per_fn = daemon_lambda_reads / n as f64;
            r.target(
                &format!("5b. Lambda reads per distinct function, daemon resync, {n} mounts"),
                "≤ 1",
                format!("{per_fn:.2} ({daemon_lambda_reads} reads / {n} functions)"),
                per_fn <= 1.0,
            );
        }
    }
    let distinct: BTreeSet<usize> = apigw_reads.iter().map(|(_, c)| *c).collect();
    r.target(
        "5a. API Gateway reads of a steady pass vs mount count",
        "independent of mount count",
        apigw_reads
            .iter()
            .map(|(n, c)| format!("{n} mounts: {c}"))
            .collect::<Vec<_>>()
            .join("; "),
        distinct.len() == 1,
    );
    body.push_str(&table);
    r.section("5. Steady-state pass: AWS calls", &body);
    Ok(())
}

/// 6. `--pacing aws` from empty vs the quota-bound minimum.
async fn measure_pacing(
    b: &mut Bench,
    s: &Sizes,
    proxy: &FaultProxy,
    r: &mut Report,
) -> Result<()> {
    let n = s.pacing_mounts;
    b.ensure_functions(n).await?;
    let qs = quotas();
    let (mut walls, mut bounds) = (Vec::new(), Vec::new());
    let mut table = String::new();
    let mut all_within = true;
    for t in 0..s.pacing_trials {
        let api = b.new_api().await?;
        let dir = b.manifest_dir("pacing")?;
        for i in 0..n {
            write_mount(&dir, i)?;
        }
        proxy.take_calls();
        let wall = b.apimount_once(&api.0, &dir, "aws", &proxy.url())?;
        let log = proxy.take_calls();
        walls.push(wall.as_secs_f64());
        let mut bound: (f64, &str) = (0.0, "none");
        if t == 0 {
            table.push_str(
                "| quota | calls | quota-bound minimum | max in 1 s | max in quota window | lowest bucket level (≥ 0: within quota) |\n|---|---:|---:|---:|---:|---:|\n",
            );
        }
        for q in &qs {
            let times: Vec<Instant> = log
                .iter()
                .filter(|(_, op)| (q.applies)(op))
                .map(|(t, _)| *t)
                .collect();
            let minimum = ((times.len() as f64 - q.burst) / q.rate).max(0.0);
            if minimum > bound.0 {
                bound = (minimum, q.name);
            }
            let window = Duration::from_secs_f64((q.burst / q.rate).max(1.0));
            let lowest = lowest_tokens(&times, q);
            // Half a token of slack: the proxy stamps arrival, not the pacer's send.
            let within = lowest >= -0.5;
            all_within &= within;
            if t == 0 {
                let _ = writeln!(
                    table,
                    "| {} | {} | {:.1} s | {} | {} in {:.0} s | {:.2} |",
                    q.name,
                    times.len(),
                    minimum,
                    max_in_window(&times, Duration::from_secs(1)),
                    max_in_window(&times, window),
                    window.as_secs_f64(),
                    lowest
                );
            }
        }
        if t == 0 {
            let _ = writeln!(
                table,
                "\nCalls by operation (trial 1): {:?}\n",
                count_ops(&log)
            );
        }
        bounds.push(bound);
    }
    let w = stat(&walls);
    let (bound, bucket) = bounds.first().copied().unwrap_or((0.0, "none"));
    let paced_ratio = if bound > 0.0 {
        w.median / bound
    } else {
        f64::NAN
    };
    r.target(
        &format!("6. {n} mounts with --pacing aws: wall time vs quota-bound minimum"),
        "≤ 1.1×",
        format!("{paced_ratio:.2}× ({} vs {bound:.1} s, {bucket})", secs(w)),
        paced_ratio <= 1.1,
    );
    r.target(
        &format!("6. {n} mounts with --pacing aws: within AWS quotas"),
        "no quota exceeded",
        if all_within {
            "all buckets ≥ -0.5 token".into()
        } else {
            "a bucket went below -0.5 token (see table)".into()
        },
        all_within,
    );
    r.section(
        "6. Quota pacing",
        &format!(
            "{n} mounts from empty with `apimount apply` (default `--pacing aws`) through the counting \
             proxy. The quota-bound minimum of a quota is (calls − burst) ÷ rate; the pass cannot be \
             faster than its slowest bucket. AWS enforces quotas as token buckets, so the check \
             replays the observed call times through each bucket: a level below zero (with half a \
             token of slack for proxy timestamps) would have been throttled. The 1-second maximum \
             can exceed the rate by up to the burst without breaking the quota. Quotas used: CreateResource 5/s, GetResources 5 per 2 s, \
             CreateDeployment 1 per 5 s, API Gateway total 10/s (burst 40), Lambda 15/s.\n\n\
             Wall time: {} — quota-bound minimum {bound:.1} s (slowest bucket: {bucket}); ratio {:.2}×.\n\n{table}",
            secs(w),
            paced_ratio
        ),
    );
    Ok(())
}

/// 7. Idle daemon footprint, one no-change pass, planning time.
async fn measure_footprint(b: &mut Bench, s: &Sizes, r: &mut Report) -> Result<()> {
    let n = s.footprint_mounts;
    b.ensure_functions(n).await?;
    let api = b.new_api().await?;
    let dir = b.manifest_dir("footprint")?;
    for i in 0..n {
        write_mount(&dir, i)?;
    }
    let endpoint = b.moto.endpoint();
    let converge = b.apimount_once(&api.0, &dir, "off", &endpoint)?;
    println!(
        "bench: footprint: converged {n} mounts in {:.1} s",
        converge.as_secs_f64()
    );

    // Resident memory varies from start to start (which thread's arena a
    // page lands in), so several daemons are started one after another; the
    // first is also left idle to measure CPU and whether RSS moves.
    let (mut rss, mut hwm) = (Vec::new(), Vec::new());
    let (mut idle_cpu, mut rss_idle_end) = (0.0, 0.0);
    for trial in 0..s.footprint_trials {
        let daemon = b.start_daemon(&api.0, &dir, "10m", &endpoint)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mb = |key| status_kb(daemon.pid(), key).unwrap_or(0) as f64 / 1024.0;
        rss.push(mb("VmRSS"));
        hwm.push(mb("VmHWM"));
        if trial == 0 {
            let cpu_before = cpu_seconds(daemon.pid());
            tokio::time::sleep(s.idle).await;
            idle_cpu = cpu_seconds(daemon.pid()) - cpu_before;
            rss_idle_end = mb("VmRSS");
        }
        println!(
            "bench: footprint: daemon {trial}: RSS {:.1} MB 1 s after its first pass, peak {:.1} MB",
            rss[trial], hwm[trial]
        );
    }
    let (rss, hwm) = (stat(&rss), stat(&hwm));

    // One no-change pass: CPU of a one-shot apply that finds nothing to do.
    let cpu0 = children_cpu_seconds();
    let pass_wall = b.apimount_once(&api.0, &dir, "off", &endpoint)?;
    let pass_cpu = children_cpu_seconds() - cpu0;

    let plan_times = measure_plan(b, &api.0, &dir, s.plan_iterations).await?;

    r.target(
        &format!("7. idle daemon RSS, {n} mounts"),
        "≤ 30 MB",
        format!(
            "{} (peak {:.1} MB); {rss_idle_end:.1} MB after {} s idle",
            mb_stat(rss),
            hwm.median,
            s.idle.as_secs()
        ),
        rss.median <= 30.0,
    );
    let idle_share = idle_cpu / s.idle.as_secs_f64();
    r.target(
        &format!("7. idle daemon CPU over {} s", s.idle.as_secs()),
        "≈ 0 (≤ 0.5 % of a core)",
        format!(
            "{idle_cpu:.2} s CPU ({:.2} % of a core)",
            idle_share * 100.0
        ),
        idle_share <= 0.005,
    );
    let (fresh, converged) = plan_times;
    r.target(
        &format!("7. planning time, {n} mounts (converged input)"),
        "≤ 50 ms",
        ms(converged),
        converged.median <= 0.05,
    );
    r.section(
        "7. Footprint",
        &format!(
            "{n} mounts converged with `apimount apply --pacing off` ({:.1} s), then \
             `apimount run --pacing off --resync-interval 10m` started and left to make its first \
             pass; this is repeated with {} daemons, one after another. RSS is VmRSS from \
             /proc/PID/status 1 s after that pass (median over the daemons), and again for the first \
             daemon after it has been idle; idle CPU is utime+stime from /proc/PID/stat over {} s.\n\n\
             | | |\n|---|---|\n| RSS after convergence | {} (VmHWM {}) |\n\
             | RSS after {} s idle | {rss_idle_end:.1} MB |\n\
             | idle CPU over {} s | {idle_cpu:.2} s |\n\
             | one no-change pass (one-shot `apply`, process CPU utime+stime) | {pass_cpu:.2} s CPU, {:.2} s wall |\n\
             | `plan::plan`, {n} mounts, converged input | {} |\n\
             | `plan::plan`, {n} mounts, empty API | {} |\n\n\
             Planning is timed in-process by calling `apimount::plan::plan` on the API as \
             `apimount::aws::Aws::observe_api` reads it from the emulator, with the functions' \
             policies from `get_policy`, {} iterations.\n",
            converge.as_secs_f64(),
            s.footprint_trials,
            s.idle.as_secs(),
            mb_stat(rss),
            mb_stat(hwm),
            s.idle.as_secs(),
            s.idle.as_secs(),
            pass_wall.as_secs_f64(),
            ms(converged),
            ms(fresh),
            s.plan_iterations
        ),
    );
    Ok(())
}

/// `27.4 MB (min 26.9, max 28.0, n=5)`.
fn mb_stat(s: Stat) -> String {
    format!(
        "{:.1} MB (min {:.1}, max {:.1}, n={})",
        s.median, s.min, s.max, s.n
    )
}

/// `op count, op count, …` of a per-operation tally.
fn fmt_ops<V: std::fmt::Display>(m: &BTreeMap<String, V>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Times `plan::plan` on a converged input read from the emulator and on an
/// empty API; `(empty, converged)`.
/// The control-plane quotas a steady daemon draws on (per account and
/// region), and which calls count against each.
/// A quota's name, its rate per second, and whether a call counts against it.
type BudgetQuota = (&'static str, f64, fn(&str) -> bool);

const BUDGET_QUOTAS: [BudgetQuota; 4] = [
    ("GetResources", GET_RESOURCES_PER_SEC, |op| {
        op == "apigateway:GetResources"
    }),
    ("API Gateway total", APIGW_TOTAL_PER_SEC, |op| {
        op.starts_with("apigateway:")
    }),
    ("Lambda control plane", LAMBDA_PER_SEC, |op| {
        op.starts_with("lambda:") && op != "lambda:GetFunction"
    }),
    ("GetFunction", GET_FUNCTION_PER_SEC, |op| {
        op == "lambda:GetFunction"
    }),
];

/// Measurement 8, the quota budget: a converged daemon's steady calls per
/// second for each quota at several sizes, against `--quota-share 5%`;
/// then, at the largest size, the time until a permission removed by hand
/// is back.
async fn measure_budget(b: &mut Bench, s: &Sizes, r: &mut Report) -> Result<()> {
    const SHARE: f64 = 0.05;
    let budget = QuotaBudget::new(SHARE);
    let max = *s.budget_counts.iter().max().unwrap_or(&1);
    b.ensure_functions(max).await?;
    let mut body = format!(
        "n mounts, one function each, converged by a one-shot apply; then `apimount run \
         --quota-share 5% --resync-interval 1s` (the budget stretches the interval). The rate is \
         the daemon's own `apimount_aws_calls_total` over {} steady passes, from the end of one \
         pass to the end of the last, divided by that time. Budget = 5 % of the quota.\n\n\
         | mounts | pass interval | {} |\n|---:|---:|{}\n",
        s.budget_passes,
        BUDGET_QUOTAS
            .iter()
            .map(|(name, quota, _)| format!("{name} calls/s (budget {:.3}/s)", quota * SHARE))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(BUDGET_QUOTAS.len())
    );
    let mut worst: Vec<(String, f64)> = Vec::new();
    let mut heal_daemon = None;
    for &n in &s.budget_counts {
        let api = b.new_api().await?;
        let dir = b.manifest_dir("budget")?;
        for i in 0..n {
            write_mount(&dir, i)?;
        }
        b.apimount_once(&api.0, &dir, "off", &b.moto.endpoint())?;
        let daemon = b.start_daemon_with(
            &api.0,
            &dir,
            "1s",
            &b.moto.endpoint(),
            &["--quota-share", "5%"],
        )?;
        // The first pass after start reads everything; steady ones follow.
        let first = daemon.passes();
        let wait = Duration::from_secs(900);
        daemon.wait_for_passes(first + 1.0, wait)?;
        let m0 = daemon.metrics();
        let t0 = Instant::now();
        let p0 = sum_of(&m0, "apimount_passes_total");
        daemon.wait_for_passes(p0 + s.budget_passes as f64, wait)?;
        let m1 = daemon.metrics();
        let secs = t0.elapsed().as_secs_f64();
        let (c0, c1) = (aws_calls(&m0), aws_calls(&m1));
        let delta =
            |op: &str| c1.get(op).copied().unwrap_or(0.0) - c0.get(op).copied().unwrap_or(0.0);
        let interval = secs / s.budget_passes as f64;
        let mut cells = Vec::new();
        for (name, quota, counts) in BUDGET_QUOTAS {
            let calls: f64 = c1.keys().filter(|op| counts(op)).map(|op| delta(op)).sum();
            // `+ 0.0`: no calls at all prints 0, not -0.
            let rate = calls / secs + 0.0;
            cells.push(format!(
                "{rate:.3} ({:.0} % of budget)",
                100.0 * rate / (quota * SHARE)
            ));
            let used = rate / (quota * SHARE);
            match worst.iter_mut().find(|(q, _)| q == name) {
                Some((_, w)) => *w = w.max(used),
                None => worst.push((name.to_string(), used)),
            }
        }
        println!(
            "bench: budget {n} mounts: interval {interval:.1} s, {}",
            cells.join(", ")
        );
        let _ = writeln!(body, "| {n} | {interval:.1} s | {} |", cells.join(" | "));
        if n == max {
            heal_daemon = Some((daemon, api.0, n, interval));
        }
    }
    for (name, used) in &worst {
        r.target(
            &format!("8. steady daemon within --quota-share 5 %: {name}"),
            "≤ 100 % of the budget at every size",
            format!("at most {:.0} % of the budget", used * 100.0),
            *used <= 1.0,
        );
    }

    // Healing: every policy of one function removed by hand, then timed
    // until the daemon's rolling verification has put them back.
    if let Some((daemon, api, n, interval)) = heal_daemon {
        let function = fn_name(n / 2);
        let sids = policy_sids(&b.lambda, &function, &api).await?;
        if sids.is_empty() {
            bail!(
                "{function} has no permission to remove; log {}",
                daemon.log.display()
            );
        }
        for sid in &sids {
            b.lambda
                .remove_permission()
                .function_name(&function)
                .statement_id(sid)
                .send()
                .await?;
        }
        let removed = Instant::now();
        // The interval the budget sets, plus the resync jitter's 10 % at most.
        let resync = Duration::from_secs_f64(interval);
        let bound = (budget.verification_time(n, resync) + resync).mul_f64(1.1);
        let give_up = bound * 2 + Duration::from_secs(60);
        let healed = loop {
            if policy_sids(&b.lambda, &function, &api).await? == sids {
                break Some(removed.elapsed());
            }
            if removed.elapsed() > give_up {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        drop(daemon);
        let stated = format!(
            "≤ {:.0} s (every function verified within {n} ÷ {} reads a pass × {interval:.0} s, plus one pass, plus 10 % jitter)",
            bound.as_secs_f64(),
            budget.policy_reads(resync)
        );
        let _ = write!(
            body,
            "\nHealing at {n} functions (API `{api}`): every permission of `{function}` for this API \
             removed by hand with RemovePermission, then GetPolicy polled every 0.5 s until they were back: \
             {}; the stated bound is {stated}. Where in the rotation the function stands decides \
             the time: anything from one pass to the whole rotation.\n",
            match healed {
                Some(t) => format!("{:.0} s", t.as_secs_f64()),
                None => format!("not back after {:.0} s", give_up.as_secs_f64()),
            }
        );
        r.target(
            &format!("8. permission removed by hand, {n} functions: back within"),
            &stated,
            match healed {
                Some(t) => format!("{:.0} s", t.as_secs_f64()),
                None => format!("not back after {:.0} s", give_up.as_secs_f64()),
            },
            healed.is_some_and(|t| t <= bound),
        );
    }
    r.section(
        "8. Quota budget: steady calls per second and healing",
        &body,
    );
    Ok(())
}

/// An outage: n mounts converged, then their REST API deleted under the
/// daemon, so that every pass fails reading it. Over the window: the log
/// lines the daemon writes and the AWS calls it makes, per minute, by
/// service. Neither may grow with the number of functions.
async fn measure_outage(b: &mut Bench, s: &Sizes, r: &mut Report) -> Result<()> {
    let max = *s.outage_counts.iter().max().unwrap_or(&1);
    b.ensure_functions(max).await?;
    let window = s.outage_window;
    let mut body = format!(
        "n mounts, one function each, converged by a one-shot apply; then `apimount run \
         --resync-interval 1s` (stretched by the default `--quota-share 5%`) until its first pass, and the REST \
         API deleted: every pass fails reading it. Counted over {:.0} s from the deletion: the lines \
         of the daemon's log and its own `apimount_aws_calls_total`, per minute.\n\n\
         | functions | failed passes | log lines/min | API Gateway calls/min | Lambda calls/min |\n\
         |---:|---:|---:|---:|---:|\n",
        window.as_secs_f64()
    );
    let mut rows: Vec<(usize, f64, f64)> = Vec::new();
    for &n in &s.outage_counts {
        let api = b.new_api().await?;
        let dir = b.manifest_dir("outage")?;
        for i in 0..n {
            write_mount(&dir, i)?;
        }
        b.apimount_once(&api.0, &dir, "off", &b.moto.endpoint())?;
        // Resyncs as often as the budget lets them (about 8 s): nothing else
        // makes a pass after the API is gone.
        let daemon = b.start_daemon_with(&api.0, &dir, "1s", &b.moto.endpoint(), &[])?;
        // The first pass's last lines (a state line per mount) may still be
        // coming: count from when the log has been quiet for a second.
        let mut lines_before = std::fs::read_to_string(&daemon.log)?.lines().count();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = std::fs::read_to_string(&daemon.log)?.lines().count();
            if now == lines_before {
                break;
            }
            lines_before = now;
        }
        let m0 = daemon.metrics();
        let deleted = Instant::now();
        b.apigw.delete_rest_api().rest_api_id(&api.0).send().await?;
        // The first failed pass may have had function reads in flight
        // already; from its end on, none may start.
        let first_failed = loop {
            let log = std::fs::read_to_string(&daemon.log)?;
            if log
                .lines()
                .skip(lines_before)
                .any(|l| l.contains("pass failed"))
            {
                break daemon.metrics();
            }
            if deleted.elapsed() > window {
                bail!(
                    "no pass failed after the API was deleted; log {}",
                    daemon.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::time::sleep(window.saturating_sub(deleted.elapsed())).await;
        let m1 = daemon.metrics();
        let log = std::fs::read_to_string(&daemon.log)?;
        let lines: Vec<&str> = log.lines().skip(lines_before).collect();
        let failed = lines.iter().filter(|l| l.contains("pass failed")).count();
        let (c0, c1) = (aws_calls(&m0), aws_calls(&m1));
        let per_min = 60.0 / window.as_secs_f64();
        let calls = |service: &str| -> f64 {
            c1.iter()
                .filter(|(op, _)| op.starts_with(service))
                .map(|(op, v)| v - c0.get(op).copied().unwrap_or(0.0))
                .sum::<f64>()
                * per_min
                + 0.0
        };
        let (line_rate, apigw, lambda) = (
            lines.len() as f64 * per_min,
            calls("apigateway:"),
            calls("lambda:"),
        );
        let cf = aws_calls(&first_failed);
        let lambda_after_first: f64 = c1
            .iter()
            .filter(|(op, _)| op.starts_with("lambda:"))
            .map(|(op, v)| v - cf.get(op).copied().unwrap_or(0.0))
            .sum();
        println!(
            "bench: outage {n} functions: {failed} failed passes, {line_rate:.1} log lines/min, \
             {apigw:.1} API Gateway calls/min, {lambda:.1} Lambda calls/min \
             ({lambda_after_first:.0} after the first failed pass)"
        );
        let _ = writeln!(
            body,
            "| {n} | {failed} | {line_rate:.1} | {apigw:.1} | {lambda:.1} ({lambda_after_first:.0} after the first failed pass) |"
        );
        rows.push((n, line_rate, lambda_after_first));
        drop(daemon);
    }
    let most_lines = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let fewest_lines = rows.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    let most_lambda = rows.iter().map(|r| r.2).fold(0.0, f64::max);
    r.target(
        "9. outage: Lambda calls after the first failed pass",
        "0 at every size (only reads already in flight when the first pass failed)",
        format!("at most {most_lambda:.0}"),
        most_lambda == 0.0,
    );
    r.target(
        "9. outage: log lines per minute, largest vs smallest size",
        "independent of the number of functions (≤ 1.5× apart)",
        format!("{most_lines:.1} vs {fewest_lines:.1} lines/min"),
        most_lines <= 1.5 * fewest_lines.max(1.0),
    );
    r.section("9. An outage: what it costs", &body);
    Ok(())
}

/// The statement ids of a function's resource policy, sorted.
/// The statement ids of `function`'s policy that let `api` invoke it. Other
/// sections reuse the functions with other APIs; their statements are not
/// this daemon's to heal.
/// Mounts spread over team accounts (a multi-account moto of its own, one
/// role per account): the steady daemon's Lambda calls per second in each
/// account, which the per-account budget holds to the share of that
/// account's own quota.
async fn measure_accounts(b: &mut Bench, s: &Sizes, r: &mut Report) -> Result<()> {
    const SHARE: f64 = 0.05;
    let fx = support::Fixture::new(Emulator::start_multi_account()).await;
    let (api, _) = fx.create_rest_api("accounts").await;
    let platform = fx.account_id();
    let dir = b.manifest_dir("accounts")?;
    let mut roles = Vec::new();
    let accounts: Vec<String> = (0..s.accounts)
        .map(|k| format!("{}", 222_222_222_222u64 + k as u64 * 111_111_111_111))
        .collect();
    for (k, account) in accounts.iter().enumerate() {
        let team = fx.team_account(account).await;
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{platform}:root")}, "Action": "sts:AssumeRole"}]
        });
        let role = team
            .create_grants_role("apimount-grants", &trust.to_string())
            .await;
        roles.push(format!("{account}={role}"));
        for i in 0..s.account_functions {
            let arn = team.create_function(&format!("team{k}-fn{i:04}")).await;
            std::fs::write(
                dir.join(format!("t{k}-m{i:04}.yaml")),
                format!(
                    "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: t{k}-m{i:04}\nspec:\n  path: /t{k}/m{i:04}\n  function: {arn}\n"
                ),
            )?;
        }
    }
    let role_args: Vec<&str> = roles
        .iter()
        .flat_map(|r| ["--account-role", r.as_str()])
        .collect();
    // Converge first (a one-shot apply), then watch the steady daemon
    // through a proxy that logs every request.
    let mut cmd = b.command(&b.apimount, &fx.endpoint());
    cmd.args(["apply", "--rest-api-id", &api, "--manifests"])
        .arg(&dir)
        .args(["--pacing", "off"])
        .args(&role_args);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "apply across accounts: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let proxy = FaultProxy::start(
        &fx.endpoint(),
        FaultConfig {
            fault_rate: 0.0,
            delay_rate: 0.0,
            ..FaultConfig::default()
        },
    );
    let mut extra = vec!["--quota-share", "5%"];
    extra.extend(role_args.iter().copied());
    let daemon = b.start_daemon_with(&api, &dir, "1s", &proxy.url(), &extra)?;
    let wait = Duration::from_secs(900);
    let first = daemon.passes();
    daemon.wait_for_passes(first + 1.0, wait)?;
    let count = |reqs: &[support::faults::Recorded], account: &str| {
        reqs.iter()
            .filter(|r| r.scope.as_ref().is_some_and(|(_, svc)| svc == "lambda"))
            .filter(|r| {
                r.path.contains(&format!("%3A{account}%3A"))
                    || r.path.contains(&format!(":{account}:"))
            })
            .count()
    };
    let before = proxy.requests();
    let t0 = Instant::now();
    let p0 = daemon.passes();
    daemon.wait_for_passes(p0 + s.account_passes as f64, wait)?;
    let after = proxy.requests();
    let secs = t0.elapsed().as_secs_f64();
    drop(daemon);
    let budget = LAMBDA_PER_SEC * SHARE;
    let mut body = format!(
        "{} team accounts with {} functions each (a moto of its own that keeps accounts apart; \
         one role per account, assumed by the daemon), every function mounted. After a one-shot \
         apply, `apimount run --quota-share 5% --resync-interval 1s` with `--account-role` for \
         each account; every request it makes goes through a logging proxy. Over {} steady \
         passes ({secs:.0} s), the Lambda requests naming each account's functions, per second. \
         Lambda's control-plane quota (15/s) is per account; the budget is 5 % of it in each.\n\n\
         | account | Lambda calls/s | share of that account's budget ({budget:.2}/s) |\n|---|---:|---:|\n",
        s.accounts, s.account_functions, s.account_passes
    );
    let mut worst: f64 = 0.0;
    for account in &accounts {
        let calls = count(&after, account) - count(&before, account);
        let rate = calls as f64 / secs + 0.0;
        worst = worst.max(rate / budget);
        println!("bench: accounts {account}: {rate:.3} Lambda calls/s");
        let _ = writeln!(
            body,
            "| {account} | {rate:.3} | {:.0} % |",
            100.0 * rate / budget
        );
    }
    r.target(
        "10. steady daemon across team accounts: Lambda calls per account",
        "≤ 100 % of 5 % of each account's quota",
        format!("at most {:.0} % of an account's budget", worst * 100.0),
        worst <= 1.0,
    );
    r.section(
        "10. Teams in their own accounts: steady Lambda calls per account",
        &body,
    );
    Ok(())
}

fn release_manifest(name: &str, version: &str, steps: &str, alarm: &str, guard: bool) -> String {
    format!(
        "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: /{name}\n  function: {name}\n  release:\n    version: \"{version}\"\n    steps: [{steps}]\n    alarms: [{alarm}]\n{}",
        if guard { "    guard: {maxErrorRate: 5}\n" } else { "" }
    )
}

/// Section 11, releases: each step's timing, the alarm-to-rollback time, the
/// calls a release makes, and the alarm reads of many running releases.
async fn measure_releases(b: &mut Bench, s: &Sizes, r: &mut Report) -> Result<()> {
    const POLL_S: f64 = 1.0;
    const PAUSE_S: f64 = 3.0;
    let fx = support::Fixture::start().await;
    let (api, _) = fx.create_rest_api("releases").await;
    let cw = aws_sdk_cloudwatch::Client::new(fx.sdk_config());
    let trials: Vec<String> = (0..s.release_trials)
        .map(|i| format!("rel{i:02}"))
        .collect();
    let running: Vec<String> = (0..s.release_running)
        .map(|i| format!("run{i:02}"))
        .collect();
    let dir = b.manifest_dir("releases")?;
    for n in trials.iter().chain(&running) {
        fx.create_function(n).await;
        for build in 1..=3 {
            fx.publish_version(n, build).await;
        }
    }
    for n in &trials {
        fx.create_alarm(&format!("{n}-5xx")).await;
        std::fs::write(
            dir.join(format!("{n}.yaml")),
            release_manifest(
                n,
                "1",
                "{weight: 10, pause: 3s}, {weight: 50, pause: 3s}",
                &format!("{n}-5xx"),
                true,
            ),
        )?;
    }
    fx.create_alarm("shared-5xx").await;
    for n in &running {
        std::fs::write(
            dir.join(format!("{n}.yaml")),
            release_manifest(n, "1", "{weight: 20, pause: 1h}", "shared-5xx", false),
        )?;
    }
    let daemon = b.start_daemon_with(
        &api,
        &dir,
        "10m",
        &fx.strict_endpoint(),
        &["--release-poll", "1s"],
    )?;
    let fx = &fx;
    let until = |what: &'static str, names: Vec<String>, test: fn(&support::AliasState) -> bool| async move {
        let t0 = Instant::now();
        loop {
            let mut all = true;
            for n in &names {
                if !fx
                    .alias_state(n, &format!("apimount_{n}"))
                    .await
                    .as_ref()
                    .is_some_and(test)
                {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(300) {
                bail!("releases: timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    until(
        "the aliases",
        trials.iter().chain(&running).cloned().collect(),
        |a| a.0 == "1",
    )
    .await?;

    // Phase 1: every trial releases version 2 in two steps of 3 s; the
    // moments each alias changes are seen by polling it every 50 ms.
    let mark = fx.strict_requests().len();
    for n in &trials {
        std::fs::write(
            dir.join(format!("{n}.yaml")),
            release_manifest(
                n,
                "2",
                "{weight: 10, pause: 3s}, {weight: 50, pause: 3s}",
                &format!("{n}-5xx"),
                true,
            ),
        )?;
    }
    let mut seen: BTreeMap<String, Vec<(f64, Instant)>> = BTreeMap::new();
    let t0 = Instant::now();
    loop {
        let mut done = true;
        for n in &trials {
            let a = fx.alias_state(n, &format!("apimount_{n}")).await;
            let share = match &a {
                Some((v, w, _)) if v == "2" && w.is_empty() => 1.0,
                Some((_, w, _)) => w.first().map_or(0.0, |x| x.1),
                None => 0.0,
            };
            let list = seen.entry(n.clone()).or_default();
            if list.last().map(|l| l.0) != Some(share) && share > 0.0 {
                list.push((share, Instant::now()));
            }
            done &= share == 1.0;
        }
        if done {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("releases: the promotions did not come");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each step's length: from the share it began with to the next change.
    let mut steps: Vec<f64> = Vec::new();
    for list in seen.values() {
        if let [(_, a), (_, b2), (_, c)] = list[..] {
            steps.push(b2.duration_since(a).as_secs_f64());
            steps.push(c.duration_since(b2).as_secs_f64());
        }
    }
    // The guard's deletion follows the promotion's write: let it come.
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(5)
        && fx.strict_requests()[mark..]
            .iter()
            .filter(|q| q.path.ends_with("/DeleteAlarms"))
            .count()
            < trials.len()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let phase1: Vec<String> = fx.strict_requests()[mark..]
        .iter()
        .map(|q| support::faults::operation_of(&q.method, &q.path))
        .collect();
    let count = |ops: &[String], op: &str| ops.iter().filter(|o| *o == op).count();
    let gateway_writes = fx.strict_requests()[mark..]
        .iter()
        .filter(|q| q.is_write() && q.scope.as_ref().is_some_and(|(_, svc)| svc == "apigateway"))
        .count();
    let alias_writes = count(&phase1, "lambda:UpdateAlias") as f64 / trials.len() as f64;
    let guards = (
        count(&phase1, "cloudwatch:PutMetricAlarm"),
        count(&phase1, "cloudwatch:DeleteAlarms"),
    );

    // Phase 2: each trial starts version 3 (an hour-long step); then, one
    // at a time, its alarm goes to ALARM and the time until its weights are
    // gone is measured.
    for n in &trials {
        std::fs::write(
            dir.join(format!("{n}.yaml")),
            release_manifest(
                n,
                "3",
                "{weight: 10, pause: 1h}",
                &format!("{n}-5xx"),
                false,
            ),
        )?;
    }
    until("the third versions under way", trials.clone(), |a| {
        !a.1.is_empty()
    })
    .await?;
    let mut rollbacks: Vec<f64> = Vec::new();
    for n in &trials {
        let fired = Instant::now();
        cw.set_alarm_state()
            .alarm_name(format!("{n}-5xx"))
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("the benchmark")
            .send()
            .await?;
        until("a rollback", vec![n.clone()], |a| a.1.is_empty()).await?;
        rollbacks.push(fired.elapsed().as_secs_f64());
    }

    // Phase 3: many releases running at once (hour-long steps) share one
    // alarm; the alarm reads and alias reads over a window are counted.
    for n in &running {
        std::fs::write(
            dir.join(format!("{n}.yaml")),
            release_manifest(n, "2", "{weight: 20, pause: 1h}", "shared-5xx", false),
        )?;
    }
    until("the running releases under way", running.clone(), |a| {
        !a.1.is_empty()
    })
    .await?;
    let window = Duration::from_secs(10);
    let mark = fx.strict_requests().len();
    tokio::time::sleep(window).await;
    let ops: Vec<String> = fx.strict_requests()[mark..]
        .iter()
        .map(|q| support::faults::operation_of(&q.method, &q.path))
        .collect();
    drop(daemon);
    let describe = count(&ops, "cloudwatch:DescribeAlarms");
    let ticks = window.as_secs_f64() / POLL_S;
    let per_tick = describe as f64 / ticks;

    let st = stat(&steps);
    let rb = stat(&rollbacks);
    let step_ok = steps
        .iter()
        .all(|x| *x >= PAUSE_S - 0.2 && *x <= PAUSE_S + POLL_S + 2.0);
    r.target(
        "11. release: each step lasts its pause … pause + poll + 2 s",
        &format!("{PAUSE_S:.0} s … {:.0} s", PAUSE_S + POLL_S + 2.0),
        secs(st),
        step_ok && !steps.is_empty(),
    );
    r.target(
        "11. release: alarm in ALARM → weights removed",
        &format!("≤ poll + 2 s = {:.0} s", POLL_S + 2.0),
        secs(rb),
        rb.max <= POLL_S + 2.0,
    );
    r.target(
        "11. release: API Gateway writes during releases",
        "0",
        gateway_writes.to_string(),
        gateway_writes == 0,
    );
    r.target(
        "11. release: alias writes per release of 2 steps",
        "≤ n + 1 = 3",
        format!("{alias_writes:.2}"),
        alias_writes <= 3.0,
    );
    r.target(
        "11. release: guard alarms made and deleted per release",
        "1 and 1",
        format!(
            "{:.2} and {:.2}",
            guards.0 as f64 / trials.len() as f64,
            guards.1 as f64 / trials.len() as f64
        ),
        guards == (trials.len(), trials.len()),
    );
    r.target(
        &format!(
            "11. release: DescribeAlarms per tick, {} releases running",
            running.len()
        ),
        "1",
        format!(
            "{per_tick:.2} ({describe} in {:.0} s at a {POLL_S:.0} s poll)",
            window.as_secs_f64()
        ),
        per_tick <= 1.1,
    );
    let body = format!(
        "{} release mounts (one function each, with its own alarm and a guard) on a strict-layer \
         moto, under `apimount run --release-poll 1s`. Phase 1: each releases version 2 in two \
         steps of {PAUSE_S:.0} s; each alias is read every 50 ms to see when its share changes (so \
         a step's length is known to ±0.1 s; a step's clock starts at the decision, a call or two before the write it makes, so the lower bound has 0.2 s of tolerance). Phase 2: each \
         starts version 3; then one at a time its alarm is set to ALARM (SetAlarmState) and the \
         time until the alias's weights are gone is measured. Phase 3: {} more releases run at \
         once (hour-long steps) sharing one alarm; the calls over {:.0} s are counted.\n\n\
         | measure | value |\n|---|---|\n\
         | step length ({} steps) | {} |\n\
         | alarm → weights removed ({} trials) | {} |\n\
         | API Gateway writes during phases 1 and 2 | {gateway_writes} |\n\
         | UpdateAlias per release of 2 steps | {alias_writes:.2} |\n\
         | guard alarms made / deleted in phase 1 | {} / {} |\n\
         | DescribeAlarms calls in {:.0} s with {} releases running | {describe} |\n\
         | GetAlias calls in that window | {} |\n",
        trials.len(),
        running.len(),
        window.as_secs_f64(),
        steps.len(),
        secs(st),
        rollbacks.len(),
        secs(rb),
        guards.0,
        guards.1,
        window.as_secs_f64(),
        running.len(),
        count(&ops, "lambda:GetAlias"),
    );
    r.section("11. Releases: steps, rollbacks and what they cost", &body);
    Ok(())
}

async fn policy_sids(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    api: &str,
) -> Result<Vec<String>> {
    let policy = match lambda.get_policy().function_name(function).send().await {
        Ok(out) => out.policy.unwrap_or_default(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e.into()),
    };
    let v: serde_json::Value = serde_json::from_str(&policy)?;
    let mut sids: Vec<String> = v["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|st| st.to_string().contains(&format!(":{api}/")))
        .filter_map(|st| st["Sid"].as_str().map(str::to_string))
        .collect();
    sids.sort();
    Ok(sids)
}

async fn measure_plan(b: &Bench, api: &str, dir: &Path, iterations: usize) -> Result<(Stat, Stat)> {
    use apimount::plan::model::ObservedApi;
    use apimount::plan::{plan, DesiredMount, PlanInput};
    type Policies = BTreeMap<String, Option<Vec<apimount::plan::policy::PolicyStatement>>>;
    let aws = &b.aws;
    let observed = aws.observe_api(api).await?;
    // The manifests and functions as a pass reads them.
    let snap = apimount::source::load_dir(
        dir,
        &apimount::source::Layout::Flat,
        &mut Default::default(),
    )?;
    let mut desired = Vec::new();
    let mut policies = Policies::new();
    for mount in snap.mounts {
        let (function, statements) = aws.inspect_function(&mount.function).await?;
        policies.insert(function.arn(), Some(statements));
        desired.push(DesiredMount {
            mount,
            function: Ok(function),
        });
    }
    let retained = BTreeSet::new();
    let empty_policies: Policies = policies
        .keys()
        .map(|k| (k.clone(), Some(Vec::new())))
        .collect();
    let root_only = ObservedApi::from_resources(observed.get("/").cloned().into_iter().collect());
    let time = |observed: &ObservedApi, policies: &Policies| {
        let input = PlanInput {
            owner: OWNER,
            api_id: api,
            api_account: Some(ACCOUNT_ID),
            region: REGION,
            api: observed,
            stage: None,
            mounts: &desired,
            retained: &retained,
            held: &BTreeSet::new(),
            policies,
            delete_limits: &BTreeMap::new(),
            tenancy: None,
            abandoned: &BTreeSet::new(),
            account_limit: &AccountLimit::default_in(REGION),
        };
        let mut samples = Vec::new();
        let mut changes = 0;
        for _ in 0..iterations {
            let started = Instant::now();
            let p = plan(&input);
            samples.push(started.elapsed().as_secs_f64());
            changes = p.changes().count();
        }
        (stat(&samples), changes)
    };
    let (fresh, fresh_changes) = time(&root_only, &empty_policies);
    let (converged, _) = time(&observed, &policies);
    println!(
        "bench: plan {} mounts: empty API {} ({fresh_changes} changes), converged {}",
        desired.len(),
        ms(fresh),
        ms(converged)
    );
    Ok((fresh, converged))
}

// ----- the SVG --------------------------------------------------------------------------

fn convergence_svg(curve: &[(usize, f64, f64)]) -> String {
    let (w, h) = (640.0, 400.0);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0);
    let max_x = curve.iter().map(|c| c.0).max().unwrap_or(1).max(1) as f64;
    let max_y = curve
        .iter()
        .map(|c| c.1.max(c.2))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let x = |v: f64| left + v / max_x * (w - left - right);
    let y = |v: f64| h - bottom - v / max_y * (h - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Convergence time from empty (one-shot, median)</text>\n",
        w / 2.0
    );
    // Axes and ticks.
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for k in 0..=5 {
        let v = max_y * k as f64 / 5.0;
        let (x2, yv, tx, ty) = (w - right, y(v), left - 6.0, y(v) + 4.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{yv:.1}\" x2=\"{x2}\" y2=\"{yv:.1}\" stroke=\"#ddd\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{v:.1} s</text>"
        );
    }
    for c in curve {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(c.0 as f64),
            h - bottom + 18.0,
            c.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">mounts</text>",
        (left + w - right) / 2.0,
        h - 18.0
    );
    // Series.
    for (label, color, pick) in [
        ("apimount apply --pacing off", "#d62728", 0usize),
        ("baseline (minimal calls)", "#1f77b4", 1),
    ] {
        let value = |c: &(usize, f64, f64)| if pick == 0 { c.1 } else { c.2 };
        let points: Vec<String> = curve
            .iter()
            .map(|c| format!("{:.1},{:.1}", x(c.0 as f64), y(value(c))))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for c in curve {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"/>",
                x(c.0 as f64),
                y(value(c))
            );
        }
        let ly = top + 10.0 + pick as f64 * 18.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{label}</text>",
            left + 15.0,
            left + 40.0,
            left + 46.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

// ----- the run ---------------------------------------------------------------------------

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cores} cores ({cpu}), {:.1} GiB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

fn git_commit(repo: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

async fn bench_main(args: &[String]) -> Result<()> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = flag_value(args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("docs"));
    let apimount = flag_value(args, "--apimount")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/release/apimount"));
    if !apimount.exists() {
        bail!(
            "{} not found; run ./scripts/bench (it builds it)",
            apimount.display()
        );
    }
    let s = if smoke { Sizes::smoke() } else { Sizes::full() };
    let only: Option<Vec<String>> =
        flag_value(args, "--only").map(|v| v.split(',').map(|p| p.trim().to_string()).collect());
    if let Some(unknown) = only
        .iter()
        .flatten()
        .find(|p| !SECTIONS.contains(&p.as_str()))
    {
        bail!(
            "--only: unknown measurement '{unknown}' (one or more of {}, comma-separated)",
            SECTIONS.join(", ")
        );
    }
    let wants = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == name));
    let started = Instant::now();
    let mut b = Bench::new(apimount).await?;
    // The test suite's fault proxy with no faults and no delays: it forwards
    // everything and logs each call's arrival time and operation.
    let proxy = FaultProxy::start(
        &b.moto.endpoint(),
        FaultConfig {
            fault_rate: 0.0,
            delay_rate: 0.0,
            ..FaultConfig::default()
        },
    );
    let mut r = Report::default();

    println!(
        "bench: moto at {}, counting proxy at {}",
        b.moto.endpoint(),
        proxy.url()
    );
    let one_baseline = if wants("convergence") {
        Some(measure_convergence(&mut b, &s, &mut r).await?)
    } else {
        None
    };
    if wants("latency") {
        let one_baseline = match one_baseline {
            Some(one) => one,
            None => measure_one_baseline(&mut b, &s).await?,
        };
        measure_latency(&mut b, &s, one_baseline, &mut r).await?;
    }
    if wants("burst") {
        measure_burst(&mut b, &s, &mut r).await?;
    }
    if wants("steady") {
        measure_steady(&mut b, &s, &proxy, &mut r).await?;
    }
    if wants("pacing") {
        measure_pacing(&mut b, &s, &proxy, &mut r).await?;
    }
    if wants("footprint") {
        measure_footprint(&mut b, &s, &mut r).await?;
    }
    if wants("budget") {
        measure_budget(&mut b, &s, &mut r).await?;
    }
    if wants("outage") {
        measure_outage(&mut b, &s, &mut r).await?;
    }
    if wants("accounts") {
        measure_accounts(&mut b, &s, &mut r).await?;
    }
    if wants("releases") {
        measure_releases(&mut b, &s, &mut r).await?;
    }

    let mut md = format!(
        "# apimount benchmarks\n\n\
         Generated by `./scripts/bench{}` (`examples/bench.rs`); do not edit by hand except the \
         \"why\" lines.\n\n\
         - commit: `{}`\n- machine: {}\n- emulator: moto_server (local, loopback), account {ACCOUNT_ID}, region {REGION}\n\
         - run: {} mode{}, {:.0} s in total\n\n\
         ## Method\n\n\
         Everything runs against one local moto server started by the benchmark; each trial uses a \
         fresh REST API. Times are wall-clock medians with min/max over repeated trials. apimount is \
         the release binary, run as a separate process per one-shot command. The BASELINE is a \
         second mode of the same example binary (`bench baseline`), also run as a separate process \
         so it pays process start and SDK config load too; it makes exactly the minimal sequential \
         calls with the same SDK (per mount GetFunction, CreateResource×2, PutMethod×2, \
         PutIntegration×2, AddPermission×2; then CreateDeployment and CreateStage) and nothing \
         else — no reads of the API, no checks. Call counts come from a counting HTTP proxy between \
         apimount and moto (the test suite's fault proxy with faults off; one connection per call), or from the daemon's `/metrics`. moto is much faster \
         than AWS and has no quotas, so absolute times say little about production; ratios and call \
         counts are the point. Numbers are noisy when other work shares the machine.\n\n\
         ## Targets\n\n| target | goal | measured | |\n|---|---|---|---|\n",
        if smoke { " --smoke" } else { "" },
        git_commit(&repo),
        machine(),
        if smoke { "smoke (tiny sizes, not representative)" } else { "full" },
        match &only {
            Some(o) => format!(", only {}", o.join(", ")),
            None => String::new(),
        },
        started.elapsed().as_secs_f64()
    );
    for t in &r.targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.what,
            t.target,
            t.measured,
            if t.met { "met" } else { "**missed**" }
        );
    }
    let misses: Vec<&Target> = r.targets.iter().filter(|t| !t.met).collect();
    if !misses.is_empty() {
        md.push_str("\n### Why the misses\n\n");
        for t in misses {
            let _ = writeln!(md, "- {}: why: _(to be filled in)_", t.what);
        }
    }
    md.push_str(&r.sections);
    md.push_str("\n![convergence time vs mounts](convergence.svg)\n");

    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("BENCHMARKS.md"), md)?;
    std::fs::write(out.join("convergence.svg"), convergence_svg(&r.curve))?;
    println!(
        "bench: wrote {} and {} in {:.0} s",
        out.join("BENCHMARKS.md").display(),
        out.join("convergence.svg").display(),
        started.elapsed().as_secs_f64()
    );
    let (met, total) = (r.targets.iter().filter(|t| t.met).count(), r.targets.len());
    println!("bench: targets met: {met}/{total}");
    Ok(())
}
