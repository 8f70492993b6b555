//! A running `apimount run` for the tests: its stderr collected line by
//! line, its admin endpoint at hand, and polling with deadlines.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{http_get, Fixture};

/// How long a test waits for the daemon to react.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(100);
/// How long the daemon may take to exit after SIGTERM.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// A running `apimount run`, its stderr collected line by line. Killed (and
/// its stderr printed, when the test is failing) on drop.
pub struct Daemon {
    child: Mutex<Child>,
    pub pid: u32,
    /// The admin endpoint's address, as the daemon reports it once bound
    /// (it binds port 0: no port is picked and released by the test).
    admin: Mutex<Option<String>>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Starts `apimount run ARGS --admin-addr <free port> --pacing off`.
    pub fn start(fx: &Fixture, args: &[&str]) -> Daemon {
        Daemon::start_command(fx.apimount_command(["run"]), args)
    }

    /// Starts `apimount run ARGS` talking to AWS through `endpoint` (a test
    /// proxy in front of the emulator).
    pub fn start_through(fx: &Fixture, endpoint: &str, args: &[&str]) -> Daemon {
        let mut cmd = fx.apimount_command(["run"]);
        cmd.env("AWS_ENDPOINT_URL", endpoint);
        Daemon::start_command(cmd, args)
    }

    /// Starts `apimount run` from a command set up for an emulator (the
    /// binary and its environment), with ARGS and the test's settings.
    pub fn start_command(mut cmd: std::process::Command, args: &[&str]) -> Daemon {
        // The binary's own default filter, whatever the developer's shell
        // says, unless the test set one on the command.
        if !cmd.get_envs().any(|(k, v)| k == "RUST_LOG" && v.is_some()) {
            cmd.env_remove("RUST_LOG");
        }
        cmd.args(args)
            .args(["--admin-addr", "127.0.0.1:0"])
            // Client-side pacing to AWS quotas only slows an emulator down.
            .args(["--pacing", "off"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn apimount run {args:?}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        Daemon {
            pid: child.id(),
            child: Mutex::new(child),
            admin: Mutex::new(None),
            lines,
            reader: Some(reader),
        }
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.lines().join("\n")
    }

    /// Lines containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// The admin endpoint's address, from the daemon's `admin endpoint
    /// listening addr=…` line (waited for, up to [`DEADLINE`]).
    pub fn admin(&self) -> String {
        if let Some(a) = self.admin.lock().unwrap().clone() {
            return a;
        }
        let start = Instant::now();
        loop {
            // Text (`addr=…`) or JSON (`"addr":"…"`) logs.
            let found = self.lines().iter().find_map(|l| {
                if !l.contains("admin endpoint listening") {
                    return None;
                }
                let text = l
                    .split("addr=")
                    .nth(1)
                    .map(|a| a.split_whitespace().next().unwrap_or(""));
                let json = l
                    .split("\"addr\":\"")
                    .nth(1)
                    .and_then(|a| a.split('"').next());
                json.or(text).map(str::to_string)
            });
            if let Some(a) = found {
                *self.admin.lock().unwrap() = Some(a.clone());
                return a;
            }
            self.assert_running();
            assert!(
                start.elapsed() < DEADLINE,
                "the daemon never said where its admin endpoint listens\n{}",
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    /// GET on the admin endpoint.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.admin(), path)
    }

    /// Panics (with the daemon's stderr) if the daemon has exited.
    pub fn assert_running(&self) {
        let status = self
            .child
            .lock()
            .unwrap()
            .try_wait()
            .expect("poll apimount");
        if let Some(status) = status {
            panic!(
                "apimount run exited early with {status}\n--- apimount stderr ---\n{}",
                self.stderr()
            );
        }
    }

    /// Waits up to `timeout` for the process to exit by itself (after a
    /// signal the test sent); `None` if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.lock().unwrap().try_wait().expect("poll") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(s);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to `EXIT_DEADLINE` for the exit; then waits
    /// for the stderr reader so every line is collected.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.pid);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.lock().unwrap().try_wait().expect("poll") {
                break s;
            }
            assert!(
                start.elapsed() < EXIT_DEADLINE,
                "apimount run did not exit within {EXIT_DEADLINE:?} of SIGTERM\n--- apimount stderr ---\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }

    /// SIGKILL: the process ends wherever it is, releasing nothing.
    pub fn kill(&mut self) {
        let mut child = self.child.lock().unwrap();
        child.kill().expect("SIGKILL apimount");
        let _ = child.wait();
    }

    /// Polls `probe` until it yields a value; panics after `timeout` with the
    /// daemon's stderr, or as soon as the daemon exits.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            self.assert_running();
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- apimount stderr ---\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        self.wait_for("/readyz to answer 200", DEADLINE, || async {
            match self.get("/readyz") {
                Some((200, _)) => Some(()),
                _ => None,
            }
        })
        .await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(child) = self.child.get_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- apimount run stderr ({}) ---\n{}",
                self.pid,
                self.stderr()
            );
        }
    }
}
