//! LocalStack, the second emulator: stricter than moto in places (it cascades
//! DeleteResource, validates verbs, implements UpdateMethod) and, unlike moto,
//! it **serves deployed stages**, so a test can ask what the live stage
//! answers ([`LocalStack::stage_status`]). See AWS-NOTES.md.
//!
//! It runs in "host mode" (no container engine) from `<repo>/.venv-ls`, made by
//! `./scripts/setup-localstack`; `$APIMOUNT_LOCALSTACK_PYTHON` names another
//! interpreter that has LocalStack installed. Without a container engine a
//! Lambda function cannot run: a route whose function is called answers 5xx,
//! a route the stage does not have answers 403 ("Missing Authentication
//! Token") or 404.
//!
//! Starting LocalStack takes seconds (10–40 s on a loaded machine), so a test
//! module usually shares one: [`shared`] (one per test binary) or its own
//! `static LS: SharedLocalStack = SharedLocalStack::new();`. **Tests that share
//! a LocalStack must keep out of each other's way**: each makes its own REST
//! API and names every function and role after itself ([`LocalStackFixture`]
//! prefixes the role with the test's name; pass prefixed function names).
//!
//! Lifetime: LocalStack runs in a process group of its own. A [`LocalStack`]
//! that is dropped kills the whole group (TERM, then KILL). A shared one is a
//! static, never dropped: a watchdog process (`sh`) holds the read end of a
//! pipe whose write end only the test process has; when the test process ends
//! in any way (normal exit, panic, SIGKILL) the kernel closes the pipe and the
//! watchdog kills the group and removes LocalStack's scratch directory. So no
//! LocalStack outlives `cargo test`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_apigateway::operation::get_stage::GetStageOutput;
use aws_sdk_apigateway::types::Resource;
use tempfile::TempDir;
use tokio::sync::OnceCell;

use super::{
    free_loopback_port, is_executable, RouteTable, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY,
};

/// Env var naming the Python interpreter that has LocalStack installed.
pub const LOCALSTACK_PYTHON_ENV: &str = "APIMOUNT_LOCALSTACK_PYTHON";

/// The services the tests use; nothing else is loaded.
const SERVICES: &str = "apigateway,lambda,iam,s3,sts,dynamodb";
/// LocalStack is ready in 5–10 s on an idle machine, 10–40 s on a busy one.
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);
const PORT_ATTEMPTS: usize = 3;
/// How long a TERMed LocalStack may take to exit before it is KILLed.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// What LocalStack's gateway (twisted) logs when the port is taken. It then
/// keeps running (and even prints "Ready." when someone else answers there).
const PORT_TAKEN: &str = "Couldn't listen on";

/// The watchdog. `$1` is LocalStack's process group, `$2` its scratch
/// directory. `cat` returns when the test process closes its end of the pipe
/// on stdin: on drop of the [`LocalStack`] (which kills the watchdog first,
/// so this never runs then) or when the test process ends, however it ends.
/// dash's `kill` takes `-PGID` without `--`.
const WATCHDOG: &str = r#"
cat >/dev/null
kill -TERM "-$1" 2>/dev/null
i=0
while [ "$i" -lt 5 ] && kill -0 "-$1" 2>/dev/null; do sleep 1; i=$((i + 1)); done
kill -KILL "-$1" 2>/dev/null
rm -rf "$2"
"#;

/// A LocalStack running on a free port of its own (reached at 127.0.0.1;
/// 4.4.0's gateway binds the port on every interface). Killed on drop,
/// together with anything it started.
pub struct LocalStack {
    /// The Python process, leader of its own process group.
    child: Child,
    /// The watchdog; its stdin is the pipe that keeps LocalStack alive.
    watchdog: Child,
    port: u16,
    account_id: String,
    log_path: PathBuf,
    /// From spawning until GetCallerIdentity answered (all attempts).
    startup: Duration,
    // Scratch space and LocalStack's whole filesystem; removed on drop.
    dir: TempDir,
}

impl LocalStack {
    /// Starts a fresh LocalStack and waits until STS GetCallerIdentity
    /// answers. Panics with instructions if LocalStack is not installed, and
    /// with the tail of its log if it does not come up.
    pub fn start() -> LocalStack {
        LocalStack::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`LocalStack::start`], returning the failure instead of panicking.
    pub fn try_start() -> Result<LocalStack, String> {
        let python = find_localstack_python()?;
        let dir = tempfile::Builder::new()
            .prefix("apimount-localstack-")
            .tempdir()
            .map_err(|e| format!("create LocalStack tempdir: {e}"))?;
        let begin = Instant::now();
        let mut last_failure = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_loopback_port();
            match spawn_and_wait(&python, dir.path(), port, attempt) {
                Ok(started) => {
                    return Ok(LocalStack {
                        child: started.child,
                        watchdog: started.watchdog,
                        port,
                        account_id: started.account_id,
                        log_path: started.log_path,
                        startup: begin.elapsed(),
                        dir,
                    })
                }
                Err(Failure::PortTaken(why)) => last_failure = why,
                Err(Failure::Fatal(why)) => return Err(why),
            }
        }
        Err(format!(
            "LocalStack ({}) did not start after {PORT_ATTEMPTS} attempts: {last_failure}",
            python.display()
        ))
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

    /// The account LocalStack reported in GetCallerIdentity (000000000000 for
    /// the tests' credentials), never a constant.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The process id of LocalStack (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How long LocalStack took to answer, from the first spawn.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Scratch directory that lives as long as LocalStack.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of LocalStack's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// What the live stage answers to `GET /{path}`: status and body of
    /// `GET {endpoint}/restapis/{api_id}/{stage}/_user_request_/{path}`, or
    /// `None` when nothing answered. 403/404: the stage has no such route;
    /// 5xx: the route exists and its function was called (and cannot run).
    pub fn stage_get(&self, api_id: &str, stage: &str, path: &str) -> Option<(u16, String)> {
        let path = path.trim_start_matches('/');
        super::http_get(
            &format!("127.0.0.1:{}", self.port),
            &format!("/restapis/{api_id}/{stage}/_user_request_/{path}"),
        )
    }

    /// The status of [`LocalStack::stage_get`]; panics when nothing answers.
    #[track_caller]
    pub fn stage_status(&self, api_id: &str, stage: &str, path: &str) -> u16 {
        match self.stage_get(api_id, stage, path) {
            Some((status, _)) => status,
            None => panic!(
                "LocalStack did not answer GET {path} on stage {stage} of {api_id}; log tail:\n{}",
                self.log_tail(40)
            ),
        }
    }

    /// A fixture on this LocalStack for one test; `test_name` prefixes what
    /// the fixture names itself (the execution role).
    pub async fn fixture(&self, test_name: &str) -> LocalStackFixture<'_> {
        LocalStackFixture::new(self, test_name).await
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // The watchdog goes first, so it cannot signal a process group id
        // that has been reused after LocalStack is gone.
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        kill_group(&mut self.child);
    }
}

/// One LocalStack shared by the tests that call [`SharedLocalStack::get`],
/// started on first use. A failed start is remembered: every later caller
/// fails at once with the same message instead of waiting again.
pub struct SharedLocalStack(OnceLock<Result<LocalStack, String>>);

impl SharedLocalStack {
    pub const fn new() -> SharedLocalStack {
        SharedLocalStack(OnceLock::new())
    }

    /// The shared LocalStack, started on first call (blocking up to the
    /// startup deadline). Tests sharing it must use their own REST APIs and
    /// uniquely named (test-name-prefixed) functions and roles.
    pub fn get(&'static self) -> &'static LocalStack {
        match self.0.get_or_init(LocalStack::try_start) {
            Ok(localstack) => localstack,
            Err(e) => panic!("shared LocalStack unavailable: {e}"),
        }
    }
}

impl Default for SharedLocalStack {
    fn default() -> SharedLocalStack {
        SharedLocalStack::new()
    }
}

static SHARED: SharedLocalStack = SharedLocalStack::new();

/// The LocalStack shared by the whole test binary; see [`SharedLocalStack`].
/// Tests that share it must use their own REST APIs and uniquely named
/// functions and roles (prefix them with the test's name).
pub fn shared() -> &'static LocalStack {
    SHARED.get()
}

/// A LocalStack that answers.
struct Started {
    child: Child,
    watchdog: Child,
    account_id: String,
    log_path: PathBuf,
}

enum Failure {
    /// Someone else has the port: worth another attempt on another port.
    PortTaken(String),
    Fatal(String),
}

fn find_localstack_python() -> Result<PathBuf, String> {
    let setup = format!(
        "Run ./scripts/setup-localstack (installs LocalStack into {}/.venv-ls)",
        env!("CARGO_MANIFEST_DIR")
    );
    if let Some(path) = std::env::var_os(LOCALSTACK_PYTHON_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return Ok(path);
        }
        return Err(format!(
            "{LOCALSTACK_PYTHON_ENV} is set to {}, which is not an executable file.\n\
             {setup}, or unset {LOCALSTACK_PYTHON_ENV}.",
            path.display()
        ));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-ls/bin/python");
    if is_executable(&venv) {
        return Ok(venv);
    }
    Err(format!(
        "LocalStack not found: the LocalStack integration tests need it in host mode.\n\
         {setup},\n\
         or set {LOCALSTACK_PYTHON_ENV}=/path/to/python (a Python 3.11 with \
         localstack-core[runtime]==4.4.0 installed)."
    ))
}

/// Spawns LocalStack (and its watchdog) on `port` and waits until it
/// answers. On failure both are killed and the error carries the log's tail.
fn spawn_and_wait(
    python: &Path,
    dir: &Path,
    port: u16,
    attempt: usize,
) -> Result<Started, Failure> {
    let fatal = |what: String| Failure::Fatal(what);
    let run_dir = dir.join(format!("run-{attempt}"));
    for sub in ["fs", "volume", "home", "tmp"] {
        std::fs::create_dir_all(run_dir.join(sub))
            .map_err(|e| fatal(format!("create {}: {e}", run_dir.join(sub).display())))?;
    }
    let log_path = dir.join(format!("localstack-{attempt}.log"));
    let log = File::create(&log_path).map_err(|e| fatal(format!("create LocalStack log: {e}")))?;
    let log_err = log
        .try_clone()
        .map_err(|e| fatal(format!("clone LocalStack log handle: {e}")))?;

    let mut cmd = Command::new(python);
    cmd.args(["-m", "localstack.runtime.main"])
        // LocalStack reads dozens of settings from the environment (DEBUG,
        // PERSISTENCE, LOCALSTACK_*, AWS_*…): start from nothing so the
        // developer's shell cannot change what the tests run against.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", run_dir.join("home"))
        .env("TMPDIR", run_dir.join("tmp"))
        .env("LANG", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        // 4.4.0's twisted gateway ignores the IPv4 host and binds 0.0.0.0
        // (its hypercorn gateway binds the host but cannot serve Lambda's
        // internal calls); the port is what matters.
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("SERVICES", SERVICES)
        .env("DISABLE_EVENTS", "1")
        .env("LOCALSTACK_VOLUME_DIR", run_dir.join("volume"))
        // A machine that looks like a container (this one, CI runners) makes
        // LocalStack use /var/lib/localstack and /tmp/localstack, shared by
        // every instance: host mode with a private root keeps them apart.
        .env("OVERRIDE_IN_DOCKER", "0")
        .env("FILESYSTEM_ROOT", run_dir.join("fs"))
        // No DNS server (as root it would bind port 53 on every interface),
        // no download of a TLS certificate from localstack.cloud.
        .env("DNS_ADDRESS", "0")
        .env("SKIP_SSL_CERT_DOWNLOAD", "1")
        .env("AWS_DEFAULT_REGION", REGION)
        .current_dir(&run_dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    let mut child = cmd
        .spawn()
        .map_err(|e| fatal(format!("spawn {}: {e}", python.display())))?;

    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("apimount-localstack-watchdog")
        .arg(child.id().to_string())
        .arg(dir)
        // Its own group: a Ctrl-C on the terminal ends the test process,
        // then the watchdog does its work.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut watchdog = match watchdog {
        Ok(w) => w,
        Err(e) => {
            kill_group(&mut child);
            return Err(fatal(format!("spawn the LocalStack watchdog (sh): {e}")));
        }
    };

    let give_up = |child: &mut Child, watchdog: &mut Child| {
        let _ = watchdog.kill();
        let _ = watchdog.wait();
        kill_group(child);
    };
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                give_up(&mut child, &mut watchdog);
                return Err(fatal(format!(
                    "LocalStack exited with {status} before answering on port {port}.\n\
                     Is it installed? Run ./scripts/setup-localstack. Log tail:\n{}",
                    log_tail(&log_path, 60)
                )));
            }
            Ok(None) => {}
            Err(e) => {
                give_up(&mut child, &mut watchdog);
                return Err(fatal(format!("poll LocalStack: {e}")));
            }
        }
        if std::fs::read_to_string(&log_path).is_ok_and(|log| log.contains(PORT_TAKEN)) {
            give_up(&mut child, &mut watchdog);
            return Err(Failure::PortTaken(format!(
                "port {port} was taken; log tail:\n{}",
                log_tail(&log_path, 20)
            )));
        }
        if let Some(account_id) = caller_account(port) {
            // Something answers STS on the port: make sure it is ours and
            // not another emulator that took the port first.
            if listener_owned_by(child.id(), port) == Some(false) {
                give_up(&mut child, &mut watchdog);
                return Err(Failure::PortTaken(format!(
                    "another process answers on port {port}"
                )));
            }
            return Ok(Started {
                child,
                watchdog,
                account_id,
                log_path,
            });
        }
        if Instant::now() >= deadline {
            give_up(&mut child, &mut watchdog);
            return Err(fatal(format!(
                "LocalStack did not answer STS GetCallerIdentity on port {port} within \
                 {STARTUP_DEADLINE:?}. Log tail:\n{}",
                log_tail(&log_path, 60)
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// TERMs the process group led by `child`, KILLs it after [`TERM_GRACE`],
/// and reaps `child`.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let signal = |sig: &str| {
        Command::new("kill")
            .args(["-s", sig, "--", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !signal("TERM") {
        // No such group any more.
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let deadline = Instant::now() + TERM_GRACE;
    let mut reaped = false;
    while Instant::now() < deadline {
        // Reap the leader first: a zombie still counts as a member.
        if !reaped {
            reaped = matches!(child.try_wait(), Ok(Some(_)));
        }
        if reaped && !signal("0") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("KILL");
    let _ = child.wait();
}

/// STS GetCallerIdentity on the port, as a plain HTTP request (LocalStack
/// picks the service from the credential scope and does not check the
/// signature). The account id, or `None` when nothing answers it yet.
fn caller_account(port: u16) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         X-Amz-Date: 20250101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20250101/{REGION}/sts/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature=00\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let (_, rest) = text.split_once("<Account>")?;
    let (account, _) = rest.split_once("</Account>")?;
    let account = account.trim();
    (!account.is_empty() && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

/// Whether the process `pid` holds the socket listening on `port`, from
/// `/proc` (Linux). `None` when that cannot be told (no `/proc`, no listener
/// found).
fn listener_owned_by(pid: u32, port: u16) -> Option<bool> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is fields[1] (ADDR:PORT in hex), st fields[3]
            // (0A = LISTEN), inode fields[9].
            if fields.len() < 10 || fields[3] != "0A" {
                continue;
            }
            let listening_port = fields[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if listening_port == Some(port) {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let owned = fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == OsStr::new(i)))
    });
    Some(owned)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ----- a fixture on LocalStack ------------------------------------------------

/// SDK clients on a [`LocalStack`] and the helpers a test needs to arrange
/// state there and run apimount against it. The counterpart of
/// `support::Fixture` (which owns a moto [`super::Emulator`] and its fixed
/// account id, so it cannot point at LocalStack).
pub struct LocalStackFixture<'a> {
    pub localstack: &'a LocalStack,
    pub apigateway: aws_sdk_apigateway::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    prefix: String,
    role_arn: OnceCell<String>,
    // AWS config/credentials paths handed to apimount (never created).
    scratch: TempDir,
}

impl<'a> LocalStackFixture<'a> {
    /// `test_name` prefixes the names this fixture makes (its role), so that
    /// tests sharing one LocalStack do not collide.
    pub async fn new(localstack: &'a LocalStack, test_name: &str) -> LocalStackFixture<'a> {
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(localstack.endpoint())
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
        let scratch = tempfile::Builder::new()
            .prefix("apimount-ls-fixture-")
            .tempdir()
            .expect("create fixture tempdir");
        LocalStackFixture {
            apigateway: aws_sdk_apigateway::Client::new(&sdk_config),
            lambda: aws_sdk_lambda::Client::new(&sdk_config),
            iam: aws_sdk_iam::Client::new(&sdk_config),
            prefix: test_name.to_string(),
            role_arn: OnceCell::new(),
            scratch,
            localstack,
        }
    }

    pub fn endpoint(&self) -> String {
        self.localstack.endpoint()
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    pub fn account_id(&self) -> &str {
        self.localstack.account_id()
    }

    /// The ARN of an (unqualified) function in LocalStack's account and region.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region(),
            self.account_id()
        )
    }

    /// Creates a REST API; returns `(api_id, root_resource_id)`.
    pub async fn create_rest_api(&self, name: &str) -> (String, String) {
        let api = self
            .apigateway
            .create_rest_api()
            .name(format!("{}-{name}", self.prefix))
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
        (api_id, root.id().expect("root resource id").to_string())
    }

    /// This test's execution role (`{test_name}-lambda`), made on first use.
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
                let name: String = format!("{}-lambda", self.prefix).chars().take(64).collect();
                self.iam
                    .create_role()
                    .role_name(&name)
                    .assume_role_policy_document(trust.to_string())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("CreateRole {name}: {e:?}"))
                    .role()
                    .expect("CreateRole returned no role")
                    .arn()
                    .to_string()
            })
            .await
    }

    /// Creates a Python function `name` (pass a test-prefixed name on a
    /// shared LocalStack) with real code, a zip holding `index.py`: LocalStack
    /// unzips the code ("Could not unzip uploaded file" otherwise). Waits until
    /// the function has left state Pending (without a container engine it
    /// ends Failed, which only matters for invoking it) and returns its ARN.
    pub async fn create_function(&self, name: &str) -> String {
        let role = self.role_arn().await.to_string();
        let code = aws_sdk_lambda::types::FunctionCode::builder()
            .zip_file(aws_sdk_lambda::primitives::Blob::new(stored_zip(
                "index.py",
                b"def handler(event, context):\n    return {\"statusCode\": 200, \"body\": \"ok\"}\n",
            )))
            .build();
        let arn = self
            .lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("index.handler")
            .role(role)
            .code(code)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateFunction {name}: {e:?}"))
            .function_arn()
            .expect("CreateFunction returned no ARN")
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self
                .lambda
                .get_function()
                .function_name(name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetFunction {name}: {e:?}"))
                .configuration()
                .and_then(|c| c.state().cloned());
            if state != Some(aws_sdk_lambda::types::State::Pending) {
                return arn;
            }
            assert!(
                Instant::now() < deadline,
                "function {name} still Pending after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// All resources of `api_id`, with their methods embedded.
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

    /// The whole API as a route table.
    pub async fn route_table(&self, api_id: &str) -> RouteTable {
        super::route_table(&self.resources(api_id).await)
    }

    /// The stage `name` of `api_id`, or `None` if it does not exist.
    pub async fn stage(&self, api_id: &str, name: &str) -> Option<GetStageOutput> {
        match self
            .apigateway
            .get_stage()
            .rest_api_id(api_id)
            .stage_name(name)
            .send()
            .await
        {
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

    /// What the live stage answers to `GET /{path}` (see
    /// [`LocalStack::stage_status`]).
    #[track_caller]
    pub fn stage_status(&self, api_id: &str, stage: &str, path: &str) -> u16 {
        self.localstack.stage_status(api_id, stage, path)
    }

    /// A `Command` for the apimount binary, wired to LocalStack and isolated
    /// from the developer's AWS configuration (as `Fixture::apimount_command`).
    pub fn apimount_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // Set by Cargo for test targets; the benchmark, which shares this
        // module, does not run apimount through it.
        let binary = option_env!("CARGO_BIN_EXE_apimount").unwrap_or("apimount");
        let mut cmd = Command::new(binary);
        cmd.args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(&key);
            }
        }
        let no_such = self.scratch.path().join("no-such-aws-config");
        cmd.env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_PROFILE", "apimount-test-no-such-profile")
            .env("AWS_CONFIG_FILE", no_such.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", no_such.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs apimount to completion with `args`.
    pub fn apimount(&self, args: &[&str]) -> Output {
        self.apimount_command(args)
            .output()
            .unwrap_or_else(|e| panic!("run apimount {args:?}: {e}"))
    }
}

// ----- a zip file, by hand ------------------------------------------------------

/// A zip archive holding one file, stored (not compressed): enough for
/// Lambda's "unzip the code" check without a zip dependency.
pub fn stored_zip(name: &str, content: &[u8]) -> Vec<u8> {
    let crc = crc32(content);
    let size = u32::try_from(content.len()).expect("zip entry under 4 GiB");
    let name_len = u16::try_from(name.len()).expect("short zip entry name");
    const VERSION: u16 = 20; // 2.0: plain stored entries
    const DOS_DATE: u16 = (1 << 5) | 1; // 1980-01-01
    let mut zip = Vec::new();
    let put16 = |zip: &mut Vec<u8>, v: u16| zip.extend_from_slice(&v.to_le_bytes());
    let put32 = |zip: &mut Vec<u8>, v: u32| zip.extend_from_slice(&v.to_le_bytes());

    // Local file header, then the data.
    put32(&mut zip, 0x0403_4b50);
    for v in [VERSION, 0, 0, 0, DOS_DATE] {
        put16(&mut zip, v); // version, flags, method (stored), time, date
    }
    for v in [crc, size, size] {
        put32(&mut zip, v);
    }
    put16(&mut zip, name_len);
    put16(&mut zip, 0); // extra field length
    zip.extend_from_slice(name.as_bytes());
    zip.extend_from_slice(content);

    // Central directory.
    let central_start = u32::try_from(zip.len()).expect("small zip");
    put32(&mut zip, 0x0201_4b50);
    put16(&mut zip, (3 << 8) | VERSION); // made by: Unix
    for v in [VERSION, 0, 0, 0, DOS_DATE] {
        put16(&mut zip, v);
    }
    for v in [crc, size, size] {
        put32(&mut zip, v);
    }
    for v in [name_len, 0, 0, 0, 0] {
        put16(&mut zip, v); // name, extra, comment, disk, internal attributes
    }
    put32(&mut zip, 0o100_644 << 16); // external attributes: a rw-r--r-- file
    put32(&mut zip, 0); // offset of the local header
    zip.extend_from_slice(name.as_bytes());
    let central_size = u32::try_from(zip.len()).expect("small zip") - central_start;

    // End of central directory.
    put32(&mut zip, 0x0605_4b50);
    for v in [0, 0, 1, 1] {
        put16(&mut zip, v); // this disk, directory disk, entries here, entries
    }
    put32(&mut zip, central_size);
    put32(&mut zip, central_start);
    put16(&mut zip, 0); // comment length
    zip
}

/// CRC-32 (IEEE, as zip uses), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
