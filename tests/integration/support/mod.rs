//! Test harness for apimount's integration tests.
//!
//! Every test starts its own moto server ([`Emulator`]) on a free loopback
//! port, so tests can run in parallel without sharing AWS state. A
//! [`Fixture`] wraps an emulator with SDK clients and helpers to arrange
//! state (REST API, functions, aliases), to inspect what apimount did
//! (resources, permissions, stages, deployments) and to run the apimount
//! binary against the emulator.
//!
//! moto_server is found, in order, at `$APIMOUNT_MOTO_SERVER`,
//! `<repo>/.venv/bin/moto_server` (made by `./scripts/setup-emulator`), or
//! `moto_server` on `PATH`.
//!

pub mod accounts;
pub mod daemon;
pub mod faults;
pub mod iam;
pub mod localstack;
pub mod logs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_apigateway::operation::get_stage::GetStageOutput;
use aws_sdk_apigateway::types::{Deployment, IntegrationType, Resource};
use tempfile::TempDir;
use tokio::sync::OnceCell;

/// Account id the emulator is started with. Deliberately not moto's default
/// (123456789012) so that code which hard-codes an account id fails.
pub const ACCOUNT_ID: &str = "210987654321";
/// Region every test uses. Deliberately not us-east-1 for the same reason.
pub const REGION: &str = "eu-west-2";
/// The account moto acts in for credentials it does not know, when no
/// `MOTO_ACCOUNT_ID` pins one (see [`Emulator::start_multi_account`]).
pub const MOTO_DEFAULT_ACCOUNT: &str = "123456789012";
/// Static credentials; moto accepts any SigV4 signature.
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";

/// The prefix of every statement id `owner` writes for `api`.
pub fn sid_prefix(api: &str, owner: &str) -> String {
    format!("apimount-{api}-{owner}-")
}

/// Env var naming the moto_server executable to use.
pub const MOTO_SERVER_ENV: &str = "APIMOUNT_MOTO_SERVER";

const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 3;

/// A moto server running on a private loopback port. Killed on drop.
pub struct Emulator {
    child: Child,
    port: u16,
    /// The account the test's credentials act in.
    account: &'static str,
    // Holds the log file (and scratch space for tests) alive until drop.
    dir: TempDir,
}

impl Emulator {
    /// Starts a fresh moto server and waits until it answers HTTP.
    ///
    /// Panics with instructions if moto_server cannot be found, and with
    /// the server's log if it does not come up.
    pub fn start() -> Emulator {
        Emulator::start_in(Some(ACCOUNT_ID))
    }

    /// Starts a moto server that keeps accounts apart: without
    /// `MOTO_ACCOUNT_ID` (which puts every request in one account), the
    /// test's credentials act in moto's default account and an assumed
    /// role's credentials in the role's account.
    pub fn start_multi_account() -> Emulator {
        Emulator::start_in(None)
    }

    fn start_in(pinned: Option<&'static str>) -> Emulator {
        let server = find_moto_server();
        let dir = tempfile::Builder::new()
            .prefix("apimount-emulator-")
            .tempdir()
            .expect("create emulator tempdir");

        let mut last_failure = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_loopback_port();
            let log_path = dir.path().join(format!("moto-{attempt}.log"));
            match spawn_and_wait(&server, port, &log_path, pinned) {
                Ok(child) => {
                    return Emulator {
                        child,
                        port,
                        account: pinned.unwrap_or(MOTO_DEFAULT_ACCOUNT),
                        dir,
                    }
                }
                // Another process may have taken the port between our probe
                // and moto's bind; try a different one.
                Err(failure) => last_failure = failure,
            }
        }
        panic!(
            "moto_server ({}) did not start after {PORT_ATTEMPTS} attempts:\n{last_failure}",
            server.display()
        );
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    pub fn account_id(&self) -> &'static str {
        self.account
    }

    /// Scratch directory that lives as long as the emulator.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os(MOTO_SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return path;
        }
        panic!(
            "{MOTO_SERVER_ENV} is set to {}, which is not an executable file.\n\
             Run ./scripts/setup-emulator to install moto into .venv, or unset {MOTO_SERVER_ENV}.",
            path.display()
        );
    }

    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if is_executable(&venv) {
        return venv;
    }

    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("moto_server");
            if is_executable(&candidate) {
                return candidate;
            }
        }
    }

    panic!(
        "moto_server not found: the integration tests need the moto AWS emulator.\n\
         Run ./scripts/setup-emulator (installs it into {}/.venv),\n\
         or `pip install 'moto[server]>=5.2,<5.3'` so moto_server is on PATH,\n\
         or set {MOTO_SERVER_ENV}=/path/to/moto_server.",
        env!("CARGO_MANIFEST_DIR")
    );
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn free_loopback_port() -> u16 {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port on 127.0.0.1");
    listener.local_addr().expect("local addr").port()
}

/// Spawns moto on `port` and waits until it answers. On failure the child is
/// reaped and the error carries the server's log.
fn spawn_and_wait(
    server: &Path,
    port: u16,
    log_path: &Path,
    account: Option<&str>,
) -> Result<Child, String> {
    let log = File::create(log_path).expect("create moto log file");
    let log_err = log.try_clone().expect("clone moto log handle");
    let mut command = Command::new(server);
    match account {
        Some(a) => command.env("MOTO_ACCOUNT_ID", a),
        None => command.env_remove("MOTO_ACCOUNT_ID"),
    };
    let mut child = command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // Keep moto's own AWS lookups (e.g. region defaults) off the
        // developer's configuration.
        .env("AWS_DEFAULT_REGION", REGION)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", server.display()));

    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("poll moto_server") {
            return Err(format!(
                "moto_server exited with {status} before answering on port {port}; log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            ));
        }
        if answers_http(port) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "moto_server did not answer on port {port} within {STARTUP_DEADLINE:?}; log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True once something on the port answers a plain HTTP request.
fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// An emulator plus SDK clients and helpers for arranging and inspecting
/// AWS state in a test.
/// An alias's version, additional version weights and description.
pub type AliasState = (String, Vec<(String, f64)>, String);

pub struct Fixture {
    pub emulator: Emulator,
    pub apigateway: aws_sdk_apigateway::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    sdk_config: aws_config::SdkConfig,
    role_arn: OnceCell<String>,
    // AWS config/credentials paths handed to apimount; never created.
    no_such_aws_dir: PathBuf,
    /// The strict layer apimount talks to by default: it refuses what AWS
    /// refuses and moto accepts (see `faults::Refusal`). The test's own SDK
    /// clients talk to moto directly.
    strict: faults::FaultProxy,
    /// Refusals a test provokes on purpose (and asserts on itself).
    expected_refusals: std::sync::Mutex<BTreeSet<faults::Refusal>>,
}

impl Drop for Fixture {
    /// A test that passed must not have been judged by moto's rules: the
    /// strict layer refused nothing apimount sent (but the removal of a
    /// method setting, which moto cannot do and apimount works around), and
    /// no call went through unchecked because a look-up failed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let stats = self.strict.stats();
        let expected = self.expected_refusals.lock().unwrap().clone();
        let refused: usize = stats
            .refusals
            .iter()
            .filter(|(r, _)| !expected.contains(r))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            refused, 0,
            "apimount sent what AWS refuses (the strict layer said no): {stats}"
        );
        assert_eq!(
            stats.strict_lookup_errors, 0,
            "calls went to moto unchecked: {stats}"
        );
    }
}

impl Fixture {
    /// A refusal of the strict layer the test provokes on purpose: the
    /// fixture does not count it as apimount sending what AWS refuses.
    pub fn expect_refusal(&self, refusal: faults::Refusal) {
        self.expected_refusals.lock().unwrap().insert(refusal);
    }

    /// Starts a fresh emulator and builds a fixture around it.
    pub async fn start() -> Fixture {
        Fixture::new(Emulator::start()).await
    }

    pub async fn new(emulator: Emulator) -> Fixture {
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(emulator.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_apigateway::config::Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "static",
            ))
            .load()
            .await;
        let no_such_aws_dir = emulator.scratch_dir().join("no-such-aws-config");
        let strict = faults::FaultProxy::strict(&emulator.endpoint(), Vec::new());
        Fixture {
            strict,
            apigateway: aws_sdk_apigateway::Client::new(&sdk_config),
            lambda: aws_sdk_lambda::Client::new(&sdk_config),
            iam: aws_sdk_iam::Client::new(&sdk_config),
            sdk_config,
            role_arn: OnceCell::new(),
            no_such_aws_dir,
            emulator,
            expected_refusals: Default::default(),
        }
    }

    /// SDK config pointing at the emulator, for clients the fixture lacks.
    pub fn sdk_config(&self) -> &aws_config::SdkConfig {
        &self.sdk_config
    }

    /// The emulator itself (moto's rules): for the test's own clients and
    /// proxies.
    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }

    /// What apimount talks to by default: the strict layer in front of the
    /// emulator (AWS's rules).
    pub fn strict_endpoint(&self) -> String {
        self.strict.url()
    }

    /// What the default strict layer saw so far.
    pub fn strict_stats(&self) -> faults::FaultStats {
        self.strict.stats()
    }

    /// How many calls of `operation` the default strict layer forwarded so far.
    pub fn strict_count(&self, operation: &str) -> usize {
        self.strict
            .calls()
            .iter()
            .filter(|(_, o)| o == operation)
            .count()
    }

    /// Every request that reached the default strict layer so far.
    pub fn strict_requests(&self) -> Vec<faults::Recorded> {
        self.strict.requests()
    }

    /// The requests other than GET that reached the default strict layer
    /// so far, as `METHOD path`.
    pub fn strict_writes(&self) -> Vec<String> {
        self.strict
            .requests()
            .into_iter()
            .filter(|r| r.is_write())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Creates a DynamoDB table with the string key `id`, as `--lease-table`
    /// wants it.
    pub async fn create_lease_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        aws_sdk_dynamodb::Client::new(&self.sdk_config)
            .create_table()
            .table_name(name)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create lease table");
    }

    pub fn region(&self) -> &'static str {
        self.emulator.region()
    }

    pub fn account_id(&self) -> &'static str {
        self.emulator.account_id()
    }

    // Expected names, written out here independently of the crate so the
    // tests check apimount's naming rather than repeat it.

    /// The ARN of an (unqualified) function in the emulator's account and region.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region(),
            self.account_id()
        )
    }

    /// The Lambda proxy integration URI for a function ARN.
    pub fn lambda_uri(&self, function_arn: &str) -> String {
        format!(
            "arn:aws:apigateway:{}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
            self.region()
        )
    }

    /// Creates a TOKEN authorizer named `name` on `api`, backed by `function`;
    /// its id.
    pub async fn create_token_authorizer(&self, api: &str, name: &str, function: &str) -> String {
        self.apigateway
            .create_authorizer()
            .rest_api_id(api)
            .name(name)
            .r#type(aws_sdk_apigateway::types::AuthorizerType::Token)
            .authorizer_uri(self.lambda_uri(&self.function_arn(function)))
            .identity_source("method.request.header.Authorization")
            .send()
            .await
            .expect("CreateAuthorizer")
            .id
            .expect("an authorizer id")
    }

    /// The execute-api SourceArn of a route of `api` (`{proxy+}` becomes `*`).
    pub fn source_arn(&self, api: &str, route: &str) -> String {
        let pattern = route.trim_start_matches('/').replace("{proxy+}", "*");
        format!(
            "arn:aws:execute-api:{}:{}:{api}/*/*/{pattern}",
            self.region(),
            self.account_id()
        )
    }

    // ----- arranging state -------------------------------------------------

    /// Creates a REST API; returns `(api_id, root_resource_id)`.
    pub async fn create_rest_api(&self, name: &str) -> (String, String) {
        let api = self
            .apigateway
            .create_rest_api()
            .name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateRestApi {name}: {e:?}"));
        let api_id = api.id().expect("CreateRestApi returned no id").to_string();
        let root = self
            .resources(&api_id)
            .await
            .into_iter()
            .find(|r| r.path() == Some("/"))
            .expect("new REST API has no root resource");
        let root_id = root.id().expect("root resource has no id").to_string();
        (api_id, root_id)
    }

    /// The execution role every test function uses, created on first use.
    pub async fn role_arn(&self) -> &str {
        self.role_arn
            .get_or_init(|| async {
                let trust = serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole"
                    }]
                });
                self.iam
                    .create_role()
                    .role_name("apimount-test-lambda")
                    .assume_role_policy_document(trust.to_string())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("CreateRole: {e:?}"))
                    .role()
                    .expect("CreateRole returned no role")
                    .arn()
                    .to_string()
            })
            .await
    }

    /// Creates a Lambda function (never invoked; moto does not inspect the
    /// code) and returns its unqualified ARN.
    pub async fn create_function(&self, name: &str) -> String {
        let role = self.role_arn().await.to_string();
        let code = aws_sdk_lambda::types::FunctionCode::builder()
            .zip_file(aws_sdk_lambda::primitives::Blob::new(
                b"apimount test function".to_vec(),
            ))
            .build();
        let created = self
            .lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("index.handler")
            .role(role)
            .code(code)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateFunction {name}: {e:?}"));
        created
            .function_arn()
            .expect("CreateFunction returned no ARN")
            .to_string()
    }

    /// Publishes a version of `function` and points a new alias at it;
    /// returns the alias ARN.
    pub async fn create_alias(&self, function: &str, alias: &str) -> String {
        let version = self.publish(function).await;
        self.lambda
            .create_alias()
            .function_name(function)
            .name(alias)
            .function_version(version)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateAlias {function}:{alias}: {e:?}"))
            .alias_arn()
            .expect("CreateAlias returned no ARN")
            .to_string()
    }

    /// Publishes a new version of `function`, as a new build would (its
    /// description changes first: Lambda, and moto, publish a version only
    /// when something changed); returns the version's number.
    pub async fn publish_version(&self, function: &str, build: usize) -> String {
        self.lambda
            .update_function_configuration()
            .function_name(function)
            .description(format!("build {build}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("UpdateFunctionConfiguration {function}: {e:?}"));
        self.publish(function).await
    }

    /// PublishVersion of `function` as it is; the version's number.
    async fn publish(&self, function: &str) -> String {
        self.lambda
            .publish_version()
            .function_name(function)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PublishVersion {function}: {e:?}"))
            .version()
            .expect("PublishVersion returned no version")
            .to_string()
    }

    /// An alias as moto holds it: its version, its additional version
    /// weights (sorted) and its description; `None` if it does not exist.
    pub async fn alias_state(&self, function: &str, alias: &str) -> Option<AliasState> {
        let a = self
            .lambda
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
            .ok()?;
        let mut weights: Vec<(String, f64)> = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        weights.sort_by(|x, y| x.0.cmp(&y.0));
        Some((
            a.function_version().unwrap_or_default().to_string(),
            weights,
            a.description().unwrap_or_default().to_string(),
        ))
    }

    /// A CloudWatch alarm on a Lambda metric (the tests drive its state
    /// with SetAlarmState).
    pub async fn create_alarm(&self, name: &str) {
        aws_sdk_cloudwatch::Client::new(&self.sdk_config)
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold,
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutMetricAlarm {name}: {e:?}"));
    }

    // ----- inspecting state ------------------------------------------------

    /// All resources of `api_id`, each with its methods (and their
    /// integrations) embedded.
    pub async fn resources(&self, api_id: &str) -> Vec<Resource> {
        let mut all = Vec::new();
        let mut position: Option<String> = None;
        loop {
            let page = self
                .apigateway
                .get_resources()
                .rest_api_id(api_id)
                .embed("methods")
                .limit(500)
                .set_position(position.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetResources {api_id}: {e:?}"));
            all.extend(page.items().iter().cloned());
            match page.position() {
                Some(next) if !next.is_empty() => position = Some(next.to_string()),
                _ => break,
            }
        }
        all
    }

    /// The resource at `path` (e.g. `/orders/{id}`), if any.
    pub async fn resource_at(&self, api_id: &str, path: &str) -> Option<Resource> {
        self.resources(api_id)
            .await
            .into_iter()
            .find(|r| r.path() == Some(path))
    }

    /// All resource paths of `api_id`, sorted.
    pub async fn resource_paths(&self, api_id: &str) -> Vec<String> {
        let mut paths: Vec<String> = self
            .resources(api_id)
            .await
            .iter()
            .filter_map(|r| r.path().map(str::to_string))
            .collect();
        paths.sort();
        paths
    }

    /// Statements of the resource policy of `function` (name or ARN) for
    /// `qualifier` (`None` = the unqualified function). Empty when there is
    /// no policy.
    ///
    /// moto keeps a single policy per function and ignores `Qualifier` on
    /// GetPolicy, whereas AWS keeps one policy per qualifier. To give tests
    /// AWS's view, statements are filtered on their `Resource`: only those
    /// whose ARN carries exactly `qualifier` are returned. Use
    /// [`Fixture::all_policy_statements`] for the unfiltered list.
    pub async fn policy_statements(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Vec<serde_json::Value> {
        self.get_policy_statements(function, qualifier)
            .await
            .into_iter()
            .filter(|s| statement_qualifier(s).as_deref() == qualifier)
            .collect()
    }

    /// Every statement GetPolicy returns for `function`, whatever its
    /// qualifier.
    pub async fn all_policy_statements(&self, function: &str) -> Vec<serde_json::Value> {
        self.get_policy_statements(function, None).await
    }

    async fn get_policy_statements(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Vec<serde_json::Value> {
        let result = self
            .lambda
            .get_policy()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await;
        let policy = match result {
            Ok(out) => out.policy().unwrap_or_default().to_string(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                return Vec::new()
            }
            Err(e) => panic!("GetPolicy {function} {qualifier:?}: {e:?}"),
        };
        if policy.is_empty() {
            return Vec::new();
        }
        let doc: serde_json::Value = serde_json::from_str(&policy)
            .unwrap_or_else(|e| panic!("GetPolicy returned invalid JSON ({e}): {policy}"));
        match doc.get("Statement") {
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(single @ serde_json::Value::Object(_)) => vec![single.clone()],
            _ => Vec::new(),
        }
    }

    /// The stage `name` of `api_id`, or `None` if it does not exist.
    pub async fn stage(&self, api_id: &str, name: &str) -> Option<GetStageOutput> {
        let result = self
            .apigateway
            .get_stage()
            .rest_api_id(api_id)
            .stage_name(name)
            .send()
            .await;
        match result {
            Ok(out) => Some(out),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("GetStage {api_id}/{name}: {e:?}"),
        }
    }

    /// The tags of stage `name` of `api_id` (none when it does not exist).
    pub async fn stage_tags(&self, api_id: &str, name: &str) -> HashMap<String, String> {
        self.stage(api_id, name)
            .await
            .and_then(|s| s.tags)
            .unwrap_or_default()
    }

    /// All deployments of `api_id`.
    pub async fn deployments(&self, api_id: &str) -> Vec<Deployment> {
        let mut all = Vec::new();
        let mut position: Option<String> = None;
        loop {
            let page = self
                .apigateway
                .get_deployments()
                .rest_api_id(api_id)
                .limit(500)
                .set_position(position.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetDeployments {api_id}: {e:?}"));
            all.extend(page.items().iter().cloned());
            match page.position() {
                Some(next) if !next.is_empty() => position = Some(next.to_string()),
                _ => break,
            }
        }
        all
    }

    // ----- running apimount ------------------------------------------------

    /// A `Command` for the apimount binary, wired to the emulator and
    /// isolated from the developer's AWS configuration. Use it directly to
    /// spawn long-running modes (e.g. with `tokio::process::Command::from`).
    /// The ids of every deployment of the API.
    pub async fn deployment_ids(&self, api_id: &str) -> BTreeSet<String> {
        self.deployments(api_id)
            .await
            .iter()
            .filter_map(|d| d.id().map(str::to_string))
            .collect()
    }

    /// The deployment the stage serves, if the stage exists.
    pub async fn stage_deployment(&self, api_id: &str, stage: &str) -> Option<String> {
        self.stage(api_id, stage)
            .await
            .and_then(|s| s.deployment_id().map(str::to_string))
    }

    /// The whole API as a route table.
    pub async fn route_table(&self, api_id: &str) -> RouteTable {
        route_table(&self.resources(api_id).await)
    }

    /// Creates the resource `part` below `parent_id`, as a hand-made route
    /// would, and returns its id.
    pub async fn create_resource(&self, api_id: &str, parent_id: &str, part: &str) -> String {
        self.apigateway
            .create_resource()
            .rest_api_id(api_id)
            .parent_id(parent_id)
            .path_part(part)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateResource {part}: {e:?}"))
            .id()
            .expect("resource id")
            .to_string()
    }

    /// Puts a method with `operation_name` (none: no apimount marker) and an
    /// integration on a resource, as a hand-made route or another tool would.
    pub async fn put_foreign_method(
        &self,
        api_id: &str,
        resource_id: &str,
        verb: &str,
        operation_name: Option<&str>,
        integration: Integration<'_>,
    ) {
        self.apigateway
            .put_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb)
            .authorization_type("NONE")
            .set_operation_name(operation_name.map(str::to_string))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutMethod {verb}: {e:?}"));
        let put = self
            .apigateway
            .put_integration()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(verb);
        let put = match integration {
            Integration::Mock => put
                .r#type(IntegrationType::Mock)
                .request_templates("application/json", "{\"statusCode\": 200}"),
            Integration::HttpProxy(method, url) => put
                .r#type(IntegrationType::HttpProxy)
                .integration_http_method(method)
                .uri(url),
            Integration::LambdaProxy(uri) => put
                .r#type(IntegrationType::AwsProxy)
                .integration_http_method("POST")
                .uri(uri),
        };
        put.send()
            .await
            .unwrap_or_else(|e| panic!("PutIntegration {verb}: {e:?}"));
    }

    pub fn apimount_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // Set by Cargo for test targets; the benchmark, which shares this
        // module, never runs apimount through it (it would find it on PATH).
        let binary = option_env!("CARGO_BIN_EXE_apimount").unwrap_or("apimount");
        let mut cmd = Command::new(binary);
        cmd.args(args);
        // Drop every inherited AWS_* variable (profiles, session tokens,
        // service-specific endpoint overrides like AWS_ENDPOINT_URL_LAMBDA…)
        // so only what is set below reaches the binary.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("AWS_ENDPOINT_URL", self.strict_endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_PROFILE", "apimount-test-no-such-profile")
            .env("AWS_CONFIG_FILE", self.no_such_aws_dir.join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.no_such_aws_dir.join("credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs apimount to completion with `args`.
    pub fn apimount(&self, args: &[&str]) -> Output {
        self.apimount_with_env(args, &[])
    }

    /// Runs apimount to completion with `args` and extra environment
    /// variables (applied last, so they can override the defaults).
    pub fn apimount_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.apimount_command(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("run apimount {args:?}: {e}"))
    }
}

/// The qualifier in a policy statement's `Resource` ARN
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`).
fn statement_qualifier(statement: &serde_json::Value) -> Option<String> {
    let resource = statement.get("Resource")?.as_str()?;
    resource.splitn(8, ':').nth(7).map(str::to_string)
}

// ----- the gateway, reduced to what the tests compare -------------------------

/// A method with its integration, without ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodView {
    pub authorization_type: Option<String>,
    pub authorizer_id: Option<String>,
    pub api_key_required: Option<bool>,
    pub operation_name: Option<String>,
    pub integration_type: Option<String>,
    pub integration_http_method: Option<String>,
    pub integration_uri: Option<String>,
}

/// path → verb → method, for every resource of the API (root included).
pub type RouteTable = BTreeMap<String, BTreeMap<String, MethodView>>;

/// The route table of a GetResources(embed=methods) answer.
pub fn route_table(resources: &[Resource]) -> RouteTable {
    let mut table = RouteTable::new();
    for r in resources {
        let mut methods = BTreeMap::new();
        if let Some(map) = r.resource_methods() {
            for (verb, m) in map {
                let i = m.method_integration();
                methods.insert(
                    verb.clone(),
                    MethodView {
                        authorization_type: m.authorization_type().map(str::to_string),
                        authorizer_id: m.authorizer_id().map(str::to_string),
                        api_key_required: m.api_key_required(),
                        operation_name: m.operation_name().map(str::to_string),
                        integration_type: i
                            .and_then(|i| i.r#type())
                            .map(|t| t.as_str().to_string()),
                        integration_http_method: i
                            .and_then(|i| i.http_method())
                            .map(str::to_string),
                        integration_uri: i.and_then(|i| i.uri()).map(str::to_string),
                    },
                );
            }
        }
        table.insert(r.path().unwrap_or_default().to_string(), methods);
    }
    table
}

/// The integration of a route made without apimount.
pub enum Integration<'a> {
    /// MOCK, answering 200.
    Mock,
    /// HTTP_PROXY with this method to this URL.
    HttpProxy(&'a str, &'a str),
    /// A Lambda proxy integration (AWS_PROXY, POST) with this URI.
    LambdaProxy(&'a str),
}

// ----- manifests and output ------------------------------------------------

/// A fresh temporary directory for manifests.
pub fn manifest_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("apimount-manifests-")
        .tempdir()
        .expect("create manifest tempdir")
}

/// Writes `yaml` to `dir/file_name` (creating subdirectories) and returns the
/// file's path.
pub fn write_manifest(dir: &Path, file_name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(file_name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A ServiceMount manifest; `extra` holds more `spec` lines (indented by two).
pub fn mount_yaml(name: &str, path: &str, function: &str, extra: &str) -> String {
    format!(
        "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: {path}\n  function: {function}\n{extra}"
    )
}

/// An operationName without the tags apimount records after the mount in
/// its marker (`@{source}.{generation}`, 8 hex digits each): what the tests
/// compare with `apimount:{owner}:{mount}`. Malformed tags are left on.
pub fn untagged(operation_name: Option<&str>) -> Option<&str> {
    let op = operation_name?;
    let Some((head, tags)) = op.split_once('@') else {
        return Some(op);
    };
    let hex8 = |t: &str| t.len() == 8 && t.chars().all(|c| c.is_ascii_hexdigit());
    match tags.split_once('.') {
        Some((a, b)) if hex8(a) && hex8(b) => Some(head),
        _ => Some(op),
    }
}

/// A finished run's exit status, stdout and stderr, for failure messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        stdout(o),
        stderr(o)
    )
}

/// The `AWS:SourceArn` condition of a policy statement.
pub fn source_arn_of(statement: &serde_json::Value) -> Option<&str> {
    statement
        .get("Condition")?
        .get("ArnLike")?
        .get("AWS:SourceArn")?
        .as_str()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Panics with the command's stdout and stderr unless it exited 0.
#[track_caller]
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "apimount exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Panics with the command's output unless it exited with `code`.
#[track_caller]
pub fn assert_exit_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "unexpected exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

// ----- long-running modes: S3 and the admin endpoint -------------------------

impl Fixture {
    /// An S3 client on the emulator. Path-style addressing, since the
    /// emulator serves buckets by path, not by virtual host.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates `bucket` in the fixture's region.
    pub async fn create_bucket(&self, bucket: &str) {
        self.s3()
            .create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e:?}"));
    }

    /// Writes the object `bucket/key`.
    pub async fn put_object(&self, bucket: &str, key: &str, body: String) {
        self.s3()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {bucket}/{key}: {e:?}"));
    }
}

/// `127.0.0.1:PORT` on a port that was free a moment ago (for `--admin-addr`).
/// (The benchmark's daemon; the tests' daemons bind port 0 themselves.)
#[allow(dead_code)]
pub fn free_loopback_addr() -> String {
    format!("127.0.0.1:{}", free_loopback_port())
}

/// A plain HTTP/1.1 GET of `path` on `addr` (`host:port`), with short
/// timeouts. Returns the status code and the body, or `None` when nothing
/// answered (not listening yet, connection reset, timeout).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path, &[]).map(|(status, _, body)| (status, body))
}

/// One HTTP/1.1 request to `addr` with `headers`: the status, the response
/// headers (names lowercased) and the body; `None` when nothing answered.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, BTreeMap<String, String>, String)> {
    let sock: SocketAddr = addr.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, body.to_string()))
}
