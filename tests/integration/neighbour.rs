//! The controller as a good neighbour, against the emulator: its steady use
//! of the account's shared quotas stays within its budget, churn and junk
//! in the source cost little, one mount's refused request does not make the
//! daemon re-read everything, bad durations are refused, no input can
//! forge a log line, and `/healthz` follows the loop's progress.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, DEADLINE};
use crate::support::logs::{metric, parse_metrics, Sample};
use crate::support::{localstack, manifest_dir, mount_yaml, show, write_manifest, Fixture};

fn samples(d: &Daemon) -> Vec<Sample> {
    let (code, body) = d.get("/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    parse_metrics(&body)
}

/// AWS calls counted so far, by `service:operation`.
fn calls(s: &[Sample]) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for x in s.iter().filter(|x| x.name == "apimount_aws_calls_total") {
        let service: String = x.labels["service"]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        let key = format!("{service}:{}", x.labels["operation"]);
        *out.entry(key).or_insert(0.0) += x.value;
    }
    out
}

fn passes(s: &[Sample]) -> f64 {
    metric(s, "apimount_passes_total", &[]).unwrap_or(0.0)
}

async fn api_with_functions(fx: &Fixture, dir: &Path, n: usize) -> String {
    let (api, _) = fx.create_rest_api("shared").await;
    for i in 0..n {
        let name = format!("svc-{i:03}");
        fx.create_function(&name).await;
        write_manifest(
            dir,
            &format!("{name}.yaml"),
            &mount_yaml(&name, &format!("/{name}"), &name, "  proxy: false\n"),
        );
    }
    api
}

#[tokio::test]
async fn steady_quota_use_stays_within_the_budget_and_drift_is_still_healed() {
    let fx = Fixture::start().await;
    let dir = manifest_dir();
    let functions = 24;
    let api = api_with_functions(&fx, dir.path(), functions).await;
    // 10 %: GetResources 0.25/s (one pass every 4 s), API Gateway 1/s,
    // Lambda 1.5/s (six policies a pass), whatever the resync asked for.
    let share = 0.10;
    let d = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "1s",
            "--quota-share",
            "10%",
        ],
    );
    d.wait_ready().await;
    let before = samples(&d);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(17)).await;
    let after = samples(&d);
    let secs = started.elapsed().as_secs_f64();
    let (b, a) = (calls(&before), calls(&after));
    let delta = |op: &str| a.get(op).copied().unwrap_or(0.0) - b.get(op).copied().unwrap_or(0.0);
    let apigw: f64 = a
        .keys()
        .filter(|k| k.starts_with("apigateway:"))
        .map(|k| delta(k))
        .sum();
    let lambda = delta("lambda:GetPolicy")
        + delta("lambda:AddPermission")
        + delta("lambda:RemovePermission");
    let resyncs = passes(&after) - passes(&before);
    assert!(resyncs >= 2.0, "resyncs ran: {resyncs}\n{}", d.stderr());
    // One pass of slack: a window of whole passes may hold one more.
    let slack = |per_pass: f64| per_pass / secs;
    assert!(
        delta("apigateway:GetResources") / secs <= 2.5 * share + slack(1.0),
        "GetResources {}/{secs}s",
        delta("apigateway:GetResources")
    );
    assert!(
        apigw / secs <= 10.0 * share + slack(2.0),
        "API Gateway {apigw}/{secs}s"
    );
    assert!(
        lambda / secs <= 15.0 * share + slack(6.0),
        "Lambda {lambda}/{secs}s"
    );
    assert!(lambda >= 6.0, "policies are still verified: {lambda}");

    // A permission removed by hand is restored within the stated time:
    // 24 functions at 6 a pass, passes 4 s apart plus up to 10 % jitter:
    // 4 passes and the one under way, 5 × 4.4 s, plus a second for the poll.
    let victim = "svc-007";
    let sid = fx.policy_statements(victim, None).await[0]["Sid"]
        .as_str()
        .unwrap()
        .to_string();
    fx.lambda
        .remove_permission()
        .function_name(victim)
        .statement_id(&sid)
        .send()
        .await
        .unwrap();
    let removed = Instant::now();
    d.wait_for(
        "the permission restored",
        Duration::from_secs(30),
        || async { (!fx.policy_statements(victim, None).await.is_empty()).then_some(()) },
    )
    .await;
    let took = removed.elapsed();
    assert!(took <= Duration::from_secs(23), "healed after {took:?}");
}

#[tokio::test]
async fn touching_the_folder_costs_no_pass_and_rewrites_are_coalesced() {
    let fx = Fixture::start().await;
    let dir = manifest_dir();
    let api = api_with_functions(&fx, dir.path(), 1).await;
    // The loop's own decisions (each wake-up, each read that found no
    // change) are logged, so a failure shows where a rewrite was lost.
    let mut cmd = fx.apimount_command(["run"]);
    cmd.env("RUST_LOG", "info,apimount::controller=debug");
    let d = Daemon::start_command(
        cmd,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "600s",
        ],
    );
    d.wait_ready().await;
    let file = dir.path().join("svc-000.yaml");
    let before = samples(&d);
    // A touch loop: new mtimes, the same bytes (set in place: rewriting the
    // file would let a read catch it truncated, half-written).
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = samples(&d);
    assert_eq!(
        passes(&after),
        passes(&before),
        "a touch changes nothing\n{}",
        d.stderr()
    );
    let reads = |s: &[Sample]| {
        calls(s)
            .get("apigateway:GetResources")
            .copied()
            .unwrap_or(0.0)
    };
    assert_eq!(reads(&after), reads(&before));

    // A manifest rewritten every 100 ms for 5 s: passes start at least 1 s
    // apart, each taking everything written since. Every version differs
    // (a counter in a comment): with only two versions, reads a debounce
    // apart (200 ms, two rewrites) can find the same one each time, and
    // rightly make no pass.
    let deployments = fx.deployment_ids(&api).await.len();
    let until = Instant::now() + Duration::from_secs(5);
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        let extra = format!(
            "  proxy: false\n  methods: [{}]\n# rewrite {i}\n",
            if i % 2 == 0 { "GET" } else { "POST" }
        );
        std::fs::write(&file, mount_yaml("svc-000", "/svc-000", "svc-000", &extra)).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last version written is what ends up on the gateway.
    let last = if i % 2 == 0 { "GET" } else { "POST" };
    d.wait_for("the last rewrite applied", DEADLINE, || async {
        let table = fx.route_table(&api).await;
        let verbs: Vec<&str> = table.get("/svc-000")?.keys().map(String::as_str).collect();
        (verbs == [last]).then_some(())
    })
    .await;
    let end = d
        .wait_for("the passes settled", DEADLINE, || async {
            let a = samples(&d);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let b = samples(&d);
            (passes(&a) == passes(&b)).then_some(b)
        })
        .await;
    let churn_passes = passes(&end) - passes(&after);
    // At most one pass a second over the 5 s, the first, and the one that
    // reads the last rewrite: 7; one more for an event late on a loaded
    // machine. Uncoalesced, 50 rewrites would be dozens.
    assert!(
        (3.0..=8.0).contains(&churn_passes),
        "{churn_passes} passes for 50 rewrites in 5 s: the watch woke the loop, and passes were coalesced\n{}",
        d.stderr()
    );
    let made = fx.deployment_ids(&api).await.len() - deployments;
    eprintln!("{churn_passes} passes and {made} deployments for {i} rewrites");
    assert!(
        made >= 1 && made as f64 <= churn_passes,
        "{made} deployments"
    );
}

#[tokio::test]
async fn junk_beside_the_manifests_is_bounded_in_memory_and_the_manifests_apply() {
    let fx = Fixture::start().await;
    let dir = manifest_dir();
    let api = api_with_functions(&fx, dir.path(), 2).await;
    // 3000 files of 60 KB, named to sort before the real ones.
    let junk = vec![b'#'; 60 * 1024];
    for i in 0..3000 {
        std::fs::write(dir.path().join(format!("a-junk-{i:04}.yaml")), &junk).unwrap();
    }
    let d = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
        ],
    );
    d.wait_for(
        "both real manifests applied",
        Duration::from_secs(60),
        || async {
            let t = fx.route_table(&api).await;
            (t.contains_key("/svc-000") && t.contains_key("/svc-001")).then_some(())
        },
    )
    .await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid)).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(peak_kb < 100 * 1024, "peak RSS {peak_kb} kB");
}

/// On LocalStack, which refuses a method naming an authorizer that does not
/// exist (moto accepts it).
#[tokio::test]
async fn a_mount_aws_refuses_waits_without_making_the_others_re_read() {
    let ls = localstack::shared();
    let fx = ls.fixture("neighbour-refused").await;
    let (api, _) = fx.create_rest_api("neighbour-refused").await;
    let dir = manifest_dir();
    for i in 0..3 {
        let name = format!("nb-refused-{i}");
        fx.create_function(&name).await;
        write_manifest(
            dir.path(),
            &format!("{name}.yaml"),
            &mount_yaml(&name, &format!("/{name}"), &name, "  proxy: false\n"),
        );
    }
    write_manifest(
        dir.path(),
        "bad.yaml",
        &mount_yaml(
            "bad",
            "/bad",
            "nb-refused-0",
            "  proxy: false\n  authorization: CUSTOM\n  authorizerId: nosuchauth1\n",
        ),
    );
    let d = Daemon::start_command(
        fx.apimount_command(["run"]),
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "600s",
        ],
    );
    d.wait_ready().await;
    let state_of = |s: &[Sample], state: &str| {
        metric(s, "apimount_mounts", &[("state", state)]).unwrap_or(0.0)
    };
    d.wait_for("three mounts ready, one failed", DEADLINE, || async {
        let s = samples(&d);
        (state_of(&s, "Ready") == 3.0 && state_of(&s, "Failed") == 1.0).then_some(())
    })
    .await;
    assert!(
        !d.lines_with("InvalidRequest").is_empty(),
        "the refusal is reported as InvalidRequest\n{}",
        d.stderr()
    );
    let first = samples(&d);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = samples(&d);
    // The refused mount waits for a change: no retry pass, no re-read of
    // the others' functions, and the controller counts as healthy.
    let policy_reads = |s: &[Sample]| calls(s).get("lambda:GetPolicy").copied().unwrap_or(0.0);
    assert_eq!(policy_reads(&later), policy_reads(&first), "{}", d.stderr());
    assert_eq!(passes(&later), passes(&first), "no retries\n{}", d.stderr());
    assert!(
        metric(
            &later,
            "apimount_last_successful_pass_timestamp_seconds",
            &[]
        )
        .unwrap_or(0.0)
            > 0.0
    );
}

/// `/healthz` follows progress: through a proxy that holds every AWS call
/// for 1.5 s, a first pass far longer than `--liveness-timeout 3s` stays
/// healthy while its calls finish; a call held for 12 s (under the SDK's 15 s
/// attempt timeout) leaves the loop silent, and `/healthz` says so until the
/// call returns.
#[tokio::test]
async fn liveness_follows_a_long_pass_and_flags_a_stuck_one() {
    use crate::support::faults::{FaultConfig, FaultProxy, Rule, RuleAction};
    let fx = Fixture::start().await;
    let dir = manifest_dir();
    let api = api_with_functions(&fx, dir.path(), 4).await;
    fx.create_function("late-fn").await;
    let proxy = FaultProxy::start(
        &fx.endpoint(),
        FaultConfig {
            fault_rate: 0.0,
            delay_rate: 1.0,
            delay_ms: (1500, 1500),
            ..FaultConfig::default()
        },
    );
    let timeout = Duration::from_secs(3);
    let d = Daemon::start_through(
        &fx,
        &proxy.url(),
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "10m",
            "--liveness-timeout",
            "3s",
        ],
    );
    let healthz = |d: &Daemon| d.get("/healthz").map(|(status, _)| status);

    // 1. The first pass: every answer of /healthz is 200 until it is ready.
    let (mut answers, mut first_answer) = (Vec::new(), None);
    let ready_at = d
        .wait_for("the first pass to finish", Duration::from_secs(90), || {
            if let Some(status) = healthz(&d) {
                first_answer.get_or_insert_with(Instant::now);
                answers.push(status);
            }
            let ready = matches!(d.get("/readyz"), Some((200, _)));
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                ready.then(Instant::now)
            }
        })
        .await;
    let pass = ready_at - first_answer.expect("/healthz answered during the first pass");
    assert!(
        pass >= timeout * 2,
        "the first pass took {pass:?}, too short to show liveness over a pass longer than --liveness-timeout {timeout:?}"
    );
    assert!(
        answers.iter().all(|&s| s == 200),
        "/healthz during a first pass of {pass:?} that kept making calls: {answers:?}\n{}",
        d.stderr()
    );

    // 2. One call that hangs: the loop is silent, and /healthz reports it.
    proxy.set_rules(vec![Rule {
        operation: "lambda:GetFunction".into(),
        path_contains: Some("late-fn".into()),
        action: RuleAction::Delay(Duration::from_secs(12)),
        times: Some(1),
    }]);
    write_manifest(
        dir.path(),
        "late.yaml",
        &mount_yaml("late", "/late", "late-fn", "  proxy: false\n"),
    );
    let mut seen = Vec::new();
    d.wait_for(
        "/healthz to fail while the call hangs, then recover",
        Duration::from_secs(40),
        || {
            if let Some(status) = healthz(&d) {
                if seen.last() != Some(&status) {
                    seen.push(status);
                }
            }
            let done = seen.ends_with(&[503, 200]);
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                done.then_some(())
            }
        },
    )
    .await;
    let (status, body) = d.get("/healthz").expect("/healthz answers");
    assert_eq!(status, 200, "{body}");
    d.wait_for("the late mount's route", DEADLINE, || async {
        let paths = fx.resource_paths(&api).await;
        paths.iter().any(|p| p == "/late").then_some(())
    })
    .await;
}

#[test]
fn zero_and_absurd_durations_are_refused() {
    let fx_bin = env!("CARGO_BIN_EXE_apimount");
    for (flag, value, bound) in [
        ("--resync-interval", "0s", "at least 1s"),
        ("--lease-duration", "0s", "at least 3s"),
        ("--poll-interval", "200ms", "at least 1s"),
        ("--resync-interval", "48h", "at most"),
        ("--quota-share", "0%", "above 0"),
    ] {
        let out = std::process::Command::new(fx_bin)
            .args(["run", "--rest-api-id", "abc123", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}\n{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(flag) && err.contains(bound),
            "{flag} {value}: {err}"
        );
    }
}

#[tokio::test]
async fn no_file_name_can_forge_a_log_line() {
    let fx = Fixture::start().await;
    let dir = manifest_dir();
    let api = api_with_functions(&fx, dir.path(), 1).await;
    let forged =
        "x\npass finished revision=000000 result=\"success\" trigger=forged\n\u{1b}[2J.yaml";
    std::fs::write(dir.path().join(forged), "kind: [\n").unwrap();
    let d = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
        ],
    );
    d.wait_for("the bad file reported", DEADLINE, || async {
        (!d.lines_with("manifest rejected").is_empty()).then_some(())
    })
    .await;
    let lines = d.lines();
    for l in &lines {
        assert!(!l.starts_with("pass finished"), "a forged line: {l}");
        assert!(!l.contains('\u{1b}'), "a raw escape: {l:?}");
        assert!(
            !l.contains("trigger=forged") || l.contains("x\\npass finished"),
            "{l}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("x\\npass finished")),
        "the name is shown, escaped\n{}",
        d.stderr()
    );
}

/// When each write to AWS in a proxy's call log arrived (see [`aws_writes`]).
fn writes(calls: &[(Instant, String)]) -> Vec<Instant> {
    aws_writes(calls).into_iter().map(|(at, _)| at).collect()
}

/// The leader's lease renewals stall (DynamoDB answers ten seconds late)
/// while teams keep adding manifests: the leader stops writing at its
/// lease's safe end, the standby takes over once the lease has expired, and
/// no write of one lands while the other may still write. Each instance
/// talks to the emulator through its own proxy, whose call log times its
/// writes on one clock.
#[tokio::test]
async fn a_leader_whose_renewals_stall_stops_writing_before_the_standby_starts() {
    use crate::support::faults::{FaultConfig, FaultProxy, Rule, RuleAction};
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("lease-fn").await;
    fx.create_lease_table("apimount-leases").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "m0.yaml",
        &mount_yaml("m0", "/m0", "lease-fn", ""),
    );
    let clean = || FaultConfig {
        fault_rate: 0.0,
        delay_rate: 0.0,
        ..FaultConfig::default()
    };
    let (proxy_a, proxy_b) = (
        FaultProxy::start(&fx.endpoint(), clean()),
        FaultProxy::start(&fx.endpoint(), clean()),
    );
    let args = [
        "--manifests",
        dir.path().to_str().unwrap(),
        "--rest-api-id",
        &api,
        "--lease-table",
        "apimount-leases",
        "--lease-duration",
        "3s",
        "--quota-share",
        "100%",
    ];
    let through = |p: &FaultProxy| {
        let mut cmd = fx.apimount_command(["run"]);
        cmd.env("AWS_ENDPOINT_URL", p.url());
        Daemon::start_command(cmd, &args)
    };
    let a = through(&proxy_a);
    a.wait_for("the first instance to lead", DEADLINE, || async {
        (!a.lines_with("pass finished").is_empty()).then_some(())
    })
    .await;
    let b = through(&proxy_b);
    b.wait_for("the second instance to stand by", DEADLINE, || async {
        (!b.lines_with("standing by").is_empty()).then_some(())
    })
    .await;

    // From now on every lease write of the leader arrives ten seconds late.
    proxy_a.set_rules(vec![Rule {
        operation: "DynamoDB_20120810.PutItem".into(),
        path_contains: None,
        action: RuleAction::Delay(Duration::from_secs(10)),
        times: None,
    }]);
    let stalled_at = Instant::now();
    // Teams keep adding manifests, so whoever leads has writes to make.
    let mut i = 1;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        write_manifest(
            dir.path(),
            &format!("m{i}.yaml"),
            &mount_yaml(&format!("m{i}"), &format!("/m{i}"), "lease-fn", ""),
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let b_writes = writes(&proxy_b.calls());
        if b_writes.len() >= 3 && stalled_at.elapsed() > Duration::from_secs(8) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the standby never took over\n--- a ---\n{}\n--- b ---\n{}",
            a.stderr(),
            b.stderr()
        );
    }
    let (a_writes, b_writes) = (writes(&proxy_a.calls()), writes(&proxy_b.calls()));
    let a_last = *a_writes.iter().max().expect("the leader wrote");
    let b_first = *b_writes.iter().min().expect("the standby wrote");
    assert!(
        a_last < b_first,
        "the two instances' writes overlap: the leader's last write came {:?} after the standby's first\n--- a ---\n{}\n--- b ---\n{}",
        a_last - b_first,
        a.stderr(),
        b.stderr()
    );
    assert!(
        !a.lines_with("could not renew the lease").is_empty()
            || !a.lines_with("lost the lease").is_empty(),
        "{}",
        a.stderr()
    );
    assert!(
        !b.lines_with("acquired the lease").is_empty(),
        "{}",
        b.stderr()
    );
    assert!(proxy_a.ruled() > 0, "no renewal was delayed");
    // Every manifest ends up mounted by the new leader.
    let last = format!("/m{}", i - 1);
    b.wait_for(
        "the new leader to mount every manifest",
        DEADLINE,
        || async { fx.route_table(&api).await.contains_key(&last).then_some(()) },
    )
    .await;
}

/// How many times the freeze test stops a leader (`APIMOUNT_TEST_FREEZES`,
/// default 20).
fn freezes() -> usize {
    std::env::var("APIMOUNT_TEST_FREEZES")
        .ok()
        .map(|v| v.parse().expect("APIMOUNT_TEST_FREEZES is a count"))
        .unwrap_or(20)
}

/// Writes to AWS in a proxy's call log (API Gateway and Lambda; not the
/// lease's own DynamoDB calls), with their arrival times.
fn aws_writes(calls: &[(Instant, String)]) -> Vec<(Instant, String)> {
    calls
        .iter()
        .filter(|(_, op)| {
            let apigw = op
                .strip_prefix("apigateway:")
                .is_some_and(|name| !name.starts_with("Get"));
            let lambda = op
                .strip_prefix("lambda:")
                .is_some_and(|name| !name.starts_with("Get") && !name.starts_with("List"));
            apigw || lambda
        })
        .cloned()
        .collect()
}

fn signal(d: &Daemon, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &d.pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {}", d.pid);
}

/// A leader frozen (SIGSTOP: a VM pause, `docker pause`) for longer than
/// its lease and its attempt timeout, while its writes are in flight and a
/// standby takes over, sends no write when it wakes: not the write it had
/// in flight, not a retry, not the rest of its pass. Done again and again,
/// freezing whichever instance leads; teams keep moving mounts the whole
/// time, so there is always a write to make.
#[tokio::test]
async fn a_leader_frozen_past_its_lease_writes_nothing_when_it_wakes() {
    use crate::support::faults::{FaultProxy, Rule, RuleAction};
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("lease-fn").await;
    fx.create_lease_table("apimount-leases").await;
    let dir = manifest_dir();
    const MOUNTS: usize = 6;
    for k in 0..MOUNTS {
        write_manifest(
            dir.path(),
            &format!("m{k}.yaml"),
            &mount_yaml(&format!("m{k}"), &format!("/m{k}/r0"), "lease-fn", ""),
        );
    }
    // Each write is answered 300 ms late, so a freeze often catches one in
    // flight (its answer then arrives while the process is stopped).
    let slow_writes = || {
        [
            "PutMethod",
            "PutIntegration",
            "CreateResource",
            "DeleteResource",
        ]
        .into_iter()
        .map(|op| Rule {
            operation: format!("apigateway:{op}"),
            path_contains: None,
            action: RuleAction::Delay(Duration::from_millis(300)),
            times: None,
        })
        .collect::<Vec<_>>()
    };
    let proxies = [
        FaultProxy::strict(&fx.endpoint(), slow_writes()),
        FaultProxy::strict(&fx.endpoint(), slow_writes()),
    ];
    let args = [
        "--manifests",
        dir.path().to_str().unwrap(),
        "--rest-api-id",
        &api,
        "--lease-table",
        "apimount-leases",
        "--lease-duration",
        "3s",
        "--debounce",
        "100ms",
        "--quota-share",
        "100%",
    ];
    let daemons = [
        Daemon::start_through(&fx, &proxies[0].url(), &args),
        Daemon::start_through(&fx, &proxies[1].url(), &args),
    ];
    let logs = || {
        format!(
            "--- 0 ---\n{}\n--- 1 ---\n{}",
            daemons[0].stderr(),
            daemons[1].stderr()
        )
    };
    // Teams move their mounts to new paths every 250 ms until the end.
    let moving = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mover = {
        let (moving, dir) = (moving.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut step = 1usize;
            while moving.load(std::sync::atomic::Ordering::Relaxed) {
                let k = step % MOUNTS;
                write_manifest(
                    &dir,
                    &format!("m{k}.yaml"),
                    &mount_yaml(&format!("m{k}"), &format!("/m{k}/r{step}"), "lease-fn", ""),
                );
                step += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let leading = |i: usize, since: Instant| {
        aws_writes(&proxies[i].calls())
            .iter()
            .any(|(at, _)| *at > since)
    };
    let started = Instant::now();
    let mut leader = daemons[0]
        .wait_for("one instance to lead", DEADLINE, || async {
            (0..2).find(|&i| leading(i, started))
        })
        .await;
    let mut stale = Vec::new();
    for round in 0..freezes() {
        let (l, s) = (leader, 1 - leader);
        let before = Instant::now();
        daemons[l]
            .wait_for("the leader to write", DEADLINE, || async {
                leading(l, before).then_some(())
            })
            .await;
        signal(&daemons[l], "STOP");
        let frozen = Instant::now();
        // Frozen until the standby has taken over and written, and at least
        // past the lease (3 s) and its attempt timeout (1 s).
        let takeover = Instant::now() + Duration::from_secs(20);
        while !(leading(s, frozen) && frozen.elapsed() > Duration::from_millis(3_500)) {
            if Instant::now() > takeover {
                signal(&daemons[l], "CONT");
                panic!("round {round}: the standby did not take over\n{}", logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal(&daemons[l], "CONT");
        let woke = Instant::now();
        // The woken instance finds its lease gone within one renewal (1 s);
        // whatever it sends after waking is a stale write.
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        stale.extend(
            aws_writes(&proxies[l].calls())
                .into_iter()
                .filter(|(at, _)| *at >= woke)
                .map(|(at, op)| format!("round {round}: {op} {:?} after waking", at - woke)),
        );
        leader = s;
    }
    moving.store(false, std::sync::atomic::Ordering::Relaxed);
    mover.join().unwrap();
    assert!(stale.is_empty(), "stale writes: {stale:#?}\n{}", logs());
    for (i, p) in proxies.iter().enumerate() {
        let stats = p.stats();
        assert!(
            stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
            "{i}: {stats:?}"
        );
        assert!(p.ruled() > 0, "{i}: no write was slowed");
    }
    // Every takeover was a real one: each instance acquired the lease again
    // and again.
    for d in &daemons {
        assert!(
            d.lines_with("acquired the lease").len() >= freezes() / 2,
            "{}",
            logs()
        );
    }
}
