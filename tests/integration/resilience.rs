//! Resilience tests against the emulator: apimount must end in exactly the
//! gateway its manifests describe, with nothing duplicated and nothing leaked,
//! when
//! - every AWS call may fail (throttling, 5xx, concurrent modification,
//!   connection resets, delays), injected by a proxy in front of moto
//!   (`support/faults.rs`), and writes may be executed with their answer lost
//!   afterwards (a reset or a 5xx after moto ran them) — apimount is re-run
//!   until it reports success;
//! - the process is SIGKILLed at random points of large passes, while
//!   manifests come and go between the runs (and every pass that exits 0 on
//!   its own must have left exactly what the folder describes).
//!
//! Both go through the proxy's strict layer, which answers as AWS does where
//! moto is lenient: a duplicate sibling resource, a PutMethod over an existing
//! method, a statement id the policy already holds, a deployment while a
//! method has no integration, a delete of something missing. So the SDK's
//! retry of a create whose answer was lost gets AWS's 409, and a restart
//! after a crash is judged by AWS's rules, instead of moto quietly making a
//! duplicate.
//!
//! State is always verified directly against moto, never through the proxy.
//!
//! The random choices are seeded, by a fixed seed for each test unless
//! `APIMOUNT_RESILIENCE_SEED` gives another; the seed is printed (run with
//! `--nocapture` to see it).

use crate::support::faults;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    self, manifest_dir, mount_yaml, show, source_arn_of, write_manifest, Fixture, Integration,
};
use aws_sdk_apigateway::types::{IntegrationType, Resource};
use faults::{Fault, FaultConfig, FaultProxy, FaultStats, Refusal};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The default owner.
const OWNER: &str = "apimount";

// ----- manifests ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct MountSpec {
    name: String,
    path: String,
    function: String,
    methods: Vec<&'static str>,
    proxy: bool,
}

impl MountSpec {
    fn new(name: &str, path: &str, function: &str, methods: &[&'static str], proxy: bool) -> Self {
        MountSpec {
            name: name.to_string(),
            path: path.to_string(),
            function: function.to_string(),
            methods: methods.to_vec(),
            proxy,
        }
    }

    fn file(&self) -> String {
        format!("{}.yaml", self.name)
    }

    fn yaml(&self) -> String {
        let extra = format!(
            "  methods: [{}]\n  proxy: {}\n",
            self.methods.join(", "),
            self.proxy
        );
        mount_yaml(&self.name, &self.path, &self.function, &extra)
    }

    /// The mount path, and its `{proxy+}` child when `proxy`.
    fn routes(&self) -> Vec<String> {
        let mut r = vec![self.path.clone()];
        if self.proxy {
            r.push(format!("{}/{{proxy+}}", self.path));
        }
        r
    }

    fn marker(&self) -> String {
        format!("apimount:{OWNER}:{}", self.name)
    }
}

/// Every ancestor of `path`, excluding `/` and `path` itself.
fn ancestors(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    (1..segments.len())
        .map(|n| format!("/{}", segments[..n].join("/")))
        .collect()
}

/// The seed of a test's random choices: fixed by default (from the test's
/// name), so a run is repeatable; `APIMOUNT_RESILIENCE_SEED` picks others.
fn seed(test: &str) -> u64 {
    let fixed = test.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let seed = std::env::var("APIMOUNT_RESILIENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(fixed);
    eprintln!(
        "{test}: seed {seed} (set APIMOUNT_RESILIENCE_SEED={seed} to repeat the random choices)"
    );
    seed
}

// ----- the world: one API, one manifest folder --------------------------------------

struct World {
    fx: Fixture,
    api: String,
    dir: TempDir,
}

impl World {
    async fn start() -> World {
        let fx = Fixture::start().await;
        let (api, _root) = fx.create_rest_api("shared-api").await;
        World {
            fx,
            api,
            dir: manifest_dir(),
        }
    }

    fn write(&self, m: &MountSpec) {
        write_manifest(self.dir.path(), &m.file(), &m.yaml());
    }

    fn remove(&self, m: &MountSpec) {
        let file = self.dir.path().join(m.file());
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("remove {}: {e}", file.display()));
    }

    /// `CMD --manifests DIR --rest-api-id API --pacing off EXTRA…`
    fn args(&self, cmd: &str, dir: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            cmd,
            "--manifests",
            dir.to_str().expect("utf-8 temp path"),
            "--rest-api-id",
            &self.api,
            "--pacing",
            "off",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs apimount on the folder; `endpoint` overrides the emulator's.
    fn run(&self, cmd: &str, extra: &[&str], endpoint: Option<&str>) -> Output {
        let args = self.args(cmd, self.dir.path(), extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match endpoint {
            Some(url) => self
                .fx
                .apimount_with_env(&args, &[("AWS_ENDPOINT_URL", url)]),
            None => self.fx.apimount(&args),
        }
    }

    fn function_arn(&self, name: &str) -> String {
        self.fx.function_arn(name)
    }

    fn uri(&self, function: &str) -> String {
        self.fx.lambda_uri(&self.function_arn(function))
    }

    /// The execute-api SourceArn of a route (`{proxy+}` becomes `*`).
    fn source_arn(&self, route: &str) -> String {
        self.fx.source_arn(&self.api, route)
    }

    fn sid_prefix(&self, owner: &str) -> String {
        support::sid_prefix(&self.api, owner)
    }

    /// `apimount-{api}-{owner}-{first 8 bytes of sha256(route), hex}`, as the
    /// README specifies, computed independently of the crate.
    fn sid(&self, owner: &str, route: &str) -> String {
        let digest = Sha256::digest(route.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{hash}", self.sid_prefix(owner))
    }

    /// Runs `apply` through `endpoint` until it exits 0, at most `max` times;
    /// returns how many runs it took. Every run must exit 0 or 1 (never
    /// crash) under faults.
    fn converge(&self, endpoint: Option<&str>, extra: &[&str], max: usize) -> usize {
        let mut log = String::new();
        for attempt in 1..=max {
            let out = self.run("apply", extra, endpoint);
            match out.status.code() {
                Some(0) => {
                    eprintln!("converged on attempt {attempt}");
                    return attempt;
                }
                Some(1) => {
                    let summary = support::stdout(&out)
                        .lines()
                        .filter(|l| l.starts_with("Applied:"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    eprintln!("attempt {attempt} did not converge: {summary}");
                    log.push_str(&format!("=== attempt {attempt} ===\n{}\n", show(&out)));
                }
                _ => panic!(
                    "apply attempt {attempt} crashed instead of reporting failure\n{}",
                    show(&out)
                ),
            }
        }
        panic!("apply did not converge in {max} runs\n{log}");
    }

    /// `plan` against the emulator must exit 0 and deploy nothing.
    #[track_caller]
    fn assert_plan_in_sync(&self) {
        let out = self.run("plan", &[], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "plan after convergence\n{}",
            show(&out)
        );
        assert!(
            support::stdout(&out).contains("no deployment needed"),
            "plan after convergence should need no deployment\n{}",
            show(&out)
        );
    }
}

// ----- verification ---------------------------------------------------------------

/// Objects apimount must never change: resources by path (exact SDK objects,
/// methods and integrations embedded) and statements (by function) that are
/// not this owner's.
#[derive(Default)]
struct Untouched {
    resources: BTreeMap<String, Resource>,
    statements: BTreeMap<String, Vec<Value>>,
}

/// What the verification found, beyond the list of problems.
#[derive(Debug, Default)]
struct Findings {
    problems: Vec<String>,
    duplicate_paths: usize,
    orphan_methods: usize,
    empty_resources: usize,
    leaked_statements: usize,
    resources: usize,
}

/// Compares the gateway and the functions' policies with exactly what
/// `mounts` (all of this owner's) and `untouched` describe.
async fn verify(
    w: &World,
    mounts: &[MountSpec],
    functions: &[&str],
    untouched: &Untouched,
) -> Findings {
    let mut f = Findings::default();
    // GetResources must work (moto fails it when a resource lost its parent).
    let resources = w.fx.resources(&w.api).await;
    f.resources = resources.len();
    let parents: BTreeSet<&str> = resources.iter().filter_map(|r| r.parent_id()).collect();

    // No duplicates.
    let mut by_path: BTreeMap<String, Vec<&Resource>> = BTreeMap::new();
    for r in &resources {
        by_path
            .entry(r.path().unwrap_or_default().to_string())
            .or_default()
            .push(r);
    }
    for (path, list) in &by_path {
        if list.len() > 1 {
            f.duplicate_paths += 1;
            f.problems.push(format!(
                "duplicate resource {path}: {} resources ({:?})",
                list.len(),
                list.iter().map(|r| r.id()).collect::<Vec<_>>()
            ));
        }
    }

    // Expected paths.
    let mut routes: BTreeMap<String, &MountSpec> = BTreeMap::new();
    let mut intermediates: BTreeSet<String> = BTreeSet::new();
    for m in mounts {
        for route in m.routes() {
            assert!(
                routes.insert(route.clone(), m).is_none(),
                "test bug: two mounts on {route}"
            );
            intermediates.extend(ancestors(&route));
        }
    }
    let mut expected: BTreeSet<String> = BTreeSet::from(["/".to_string()]);
    expected.extend(routes.keys().cloned());
    expected.extend(intermediates.iter().cloned());
    expected.extend(untouched.resources.keys().cloned());
    let observed: BTreeSet<String> = by_path.keys().cloned().collect();
    for missing in expected.difference(&observed) {
        f.problems.push(format!("missing resource {missing}"));
    }
    for extra in observed.difference(&expected) {
        let verbs: Vec<String> = by_path[extra]
            .iter()
            .flat_map(|r| r.resource_methods().into_iter().flatten())
            .map(|(v, m)| format!("{v} ({:?})", m.operation_name()))
            .collect();
        f.problems.push(format!(
            "unexpected resource {extra} with methods {verbs:?}"
        ));
    }

    // Methods.
    for r in &resources {
        let path = r.path().unwrap_or_default();
        let methods = r.resource_methods().cloned().unwrap_or_default();
        // Orphans: a method of this owner that no manifest wants.
        for (verb, m) in &methods {
            let Some(marker) = support::untagged(m.operation_name()) else {
                continue;
            };
            let Some(mount) = marker.strip_prefix(&format!("apimount:{OWNER}:")) else {
                continue;
            };
            let wanted = mounts.iter().any(|s| {
                s.name == mount
                    && s.routes().iter().any(|r| r == path)
                    && s.methods.contains(&verb.as_str())
            });
            if !wanted {
                f.orphan_methods += 1;
                f.problems.push(format!(
                    "orphan method {verb} {path} (operationName {marker})"
                ));
            }
        }
        // Empty resources: not root, no method, no child.
        let has_child = r.id().is_some_and(|id| parents.contains(id));
        if path != "/" && methods.is_empty() && !has_child {
            f.empty_resources += 1;
            f.problems
                .push(format!("empty resource {path} (no method, no child)"));
        }
        if untouched.resources.contains_key(path) {
            continue;
        }
        if let Some(m) = routes.get(path) {
            let verbs: BTreeSet<&str> = methods.keys().map(String::as_str).collect();
            let want: BTreeSet<&str> = m.methods.iter().copied().collect();
            if verbs != want {
                f.problems.push(format!(
                    "{path}: methods {verbs:?}, expected {want:?} (mount {})",
                    m.name
                ));
            }
            for (verb, method) in &methods {
                let i = method.method_integration();
                let got = (
                    support::untagged(method.operation_name()),
                    method.authorization_type(),
                    method.api_key_required().unwrap_or(false),
                    i.and_then(|i| i.r#type()).cloned(),
                    i.and_then(|i| i.http_method()),
                    i.and_then(|i| i.uri()),
                );
                let uri = w.uri(&m.function);
                let marker = m.marker();
                let want = (
                    Some(marker.as_str()),
                    Some("NONE"),
                    false,
                    Some(IntegrationType::AwsProxy),
                    Some("POST"),
                    Some(uri.as_str()),
                );
                if got != want {
                    f.problems
                        .push(format!("{verb} {path}: got {got:?}, expected {want:?}"));
                }
            }
        } else if !methods.is_empty() && expected.contains(path) {
            f.problems.push(format!(
                "{path} should carry no method, has {:?}",
                methods.keys().collect::<Vec<_>>()
            ));
        }
    }

    // Untouched resources, field by field.
    for (path, before) in &untouched.resources {
        match by_path.get(path).map(Vec::as_slice) {
            Some([now]) if *now == before => {}
            now => f.problems.push(format!(
                "{path} was changed:\n  before {before:?}\n  now    {now:?}"
            )),
        }
    }

    // Statements: exactly one per route, on the route's function.
    let prefix = w.sid_prefix(OWNER);
    let mut want_statements: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for m in mounts {
        for route in m.routes() {
            want_statements
                .entry(m.function.clone())
                .or_default()
                .insert(w.sid(OWNER, &route), w.source_arn(&route));
        }
    }
    for function in functions {
        let all = w.fx.all_policy_statements(function).await;
        let mut sids: BTreeMap<String, usize> = BTreeMap::new();
        for s in &all {
            *sids
                .entry(s["Sid"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
        for (sid, n) in &sids {
            if *n > 1 {
                f.problems
                    .push(format!("{function}: Sid {sid} appears {n} times"));
            }
        }
        let arn = w.function_arn(function);
        let mut ours: BTreeMap<String, String> = BTreeMap::new();
        let mut others: Vec<Value> = Vec::new();
        for s in &all {
            let sid = s["Sid"].as_str().unwrap_or_default();
            if !sid.starts_with(&prefix) {
                others.push(s.clone());
                continue;
            }
            if s["Effect"] != "Allow"
                || s["Action"] != "lambda:InvokeFunction"
                || s["Principal"]["Service"] != "apigateway.amazonaws.com"
                || s["Resource"] != arn.as_str()
            {
                f.problems.push(format!(
                    "{function}: statement {sid} is not as apimount writes it: {s}"
                ));
            }
            ours.insert(
                sid.to_string(),
                source_arn_of(s).unwrap_or_default().to_string(),
            );
        }
        let want = want_statements.get(*function).cloned().unwrap_or_default();
        for (sid, source) in &ours {
            match want.get(sid) {
                None => {
                    f.leaked_statements += 1;
                    f.problems.push(format!(
                        "{function}: leaked statement {sid} (SourceArn {source}) matches no route"
                    ));
                }
                Some(w) if w != source => f.problems.push(format!(
                    "{function}: statement {sid} has SourceArn {source}, expected {w}"
                )),
                Some(_) => {}
            }
        }
        for (sid, source) in &want {
            if !ours.contains_key(sid) {
                f.problems
                    .push(format!("{function}: missing statement {sid} for {source}"));
            }
        }
        let before = untouched
            .statements
            .get(*function)
            .cloned()
            .unwrap_or_default();
        let key = |v: &Value| v.to_string();
        let mut now_sorted: Vec<String> = others.iter().map(key).collect();
        let mut before_sorted: Vec<String> = before.iter().map(key).collect();
        now_sorted.sort();
        before_sorted.sort();
        if now_sorted != before_sorted {
            f.problems.push(format!(
                "{function}: statements that are not apimount's (owner {OWNER}) changed:\n  before {before_sorted:?}\n  now    {now_sorted:?}"
            ));
        }
    }

    // The stage serves a deployment that exists.
    let deployments = w.fx.deployments(&w.api).await;
    match w.fx.stage(&w.api, "prod").await {
        None => f.problems.push("stage prod does not exist".into()),
        Some(stage) => match stage.deployment_id() {
            None => f.problems.push("stage prod has no deployment".into()),
            Some(id) if !deployments.iter().any(|d| d.id() == Some(id)) => f
                .problems
                .push(format!("stage prod points at unknown deployment {id}")),
            Some(_) => {}
        },
    }
    f
}

#[track_caller]
fn assert_clean(f: &Findings, context: &str) {
    assert!(
        f.problems.is_empty(),
        "{context}: {} problem(s) ({} duplicate paths, {} orphan methods, {} empty resources, {} leaked statements, {} resources in all):\n  {}",
        f.problems.len(),
        f.duplicate_paths,
        f.orphan_methods,
        f.empty_resources,
        f.leaked_statements,
        f.resources,
        f.problems.join("\n  ")
    );
}

// ----- 1. faults on every call --------------------------------------------------------

/// /legacy GET with a MOCK integration and no operationName, made by hand.
async fn create_foreign_legacy(w: &World) {
    let root =
        w.fx.resource_at(&w.api, "/")
            .await
            .and_then(|r| r.id().map(str::to_string))
            .expect("root resource");
    let legacy = w.fx.create_resource(&w.api, &root, "legacy").await;
    w.fx.put_foreign_method(&w.api, &legacy, "GET", None, Integration::Mock)
        .await;
}

/// Runs `apply` through the proxy until it succeeds, checks the proxy really
/// faulted ≥ 20 % of the calls of that phase, and verifies the result
/// against the emulator.
async fn converge_under_faults_and_verify(
    w: &World,
    proxy: &FaultProxy,
    mounts: &[MountSpec],
    functions: &[&str],
    untouched: &Untouched,
    phase: &str,
) -> FaultStats {
    let before = proxy.stats();
    let started = Instant::now();
    let attempts = w.converge(Some(&proxy.url()), &[], 15);
    let stats = proxy.stats().since(&before);
    eprintln!(
        "{phase}: converged after {attempts} run(s) in {:.1}s through the proxy: {stats}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        stats.requests >= 20,
        "{phase}: too few requests went through the proxy to mean anything: {stats}"
    );
    assert!(
        stats.fault_share() >= 0.2,
        "{phase}: the proxy faulted less than 20% of the requests: {stats}"
    );
    assert_eq!(
        stats.chunked_requests, 0,
        "the SDK was expected to send Content-Length bodies"
    );
    assert!(
        stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
        "{phase}: the strict layer did not check the writes: {stats}"
    );

    let findings = verify(w, mounts, functions, untouched).await;
    assert_clean(
        &findings,
        &format!("{phase}, after converging under faults"),
    );
    w.assert_plan_in_sync();
    stats
}

#[tokio::test]
async fn faults_converge_to_exact_state() {
    let seed = seed("faults_converge_to_exact_state");
    let w = World::start().await;
    let functions = ["f-alpha", "f-beta", "f-gamma", "f-delta", "b-service"];
    for f in functions {
        w.fx.create_function(f).await;
    }
    create_foreign_legacy(&w).await;

    // team-b mounts /b from its own folder, directly against the emulator.
    let team_b = manifest_dir();
    let b = MountSpec::new("b", "/b", "b-service", &["ANY"], true);
    write_manifest(team_b.path(), &b.file(), &b.yaml());
    let team_b_args = |cmd: &str| w.args(cmd, team_b.path(), &["--owner", "team-b"]);
    let out = w.fx.apimount(
        &team_b_args("apply")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(0), "team-b apply\n{}", show(&out));

    let mut untouched = Untouched::default();
    for p in ["/legacy", "/b", "/b/{proxy+}"] {
        let r =
            w.fx.resource_at(&w.api, p)
                .await
                .unwrap_or_else(|| panic!("{p} should exist"));
        untouched.resources.insert(p.to_string(), r);
    }
    let legacy_get = untouched.resources["/legacy"]
        .resource_methods()
        .and_then(|m| m.get("GET"))
        .expect("GET /legacy")
        .clone();
    assert_eq!(legacy_get.operation_name(), None);
    assert_eq!(
        legacy_get.method_integration().and_then(|i| i.r#type()),
        Some(&IntegrationType::Mock)
    );
    let b_statements = w.fx.all_policy_statements("b-service").await;
    assert_eq!(
        b_statements.len(),
        2,
        "team-b's statements: {b_statements:?}"
    );
    untouched
        .statements
        .insert("b-service".to_string(), b_statements);

    // Twelve mounts: nested ones, shared intermediate parents, proxy and
    // not, several functions and method lists.
    let mounts = vec![
        MountSpec::new("m1", "/m1", "f-alpha", &["ANY"], true),
        MountSpec::new("m1-admin", "/m1/admin", "f-beta", &["GET", "POST"], false),
        MountSpec::new("m2", "/m2", "f-alpha", &["GET"], false),
        MountSpec::new("m3", "/m3", "f-beta", &["GET"], true),
        MountSpec::new("m4", "/m4", "f-gamma", &["ANY"], true),
        MountSpec::new("m5", "/m5", "f-gamma", &["GET", "PUT", "DELETE"], false),
        MountSpec::new("m6", "/svc/m6", "f-delta", &["ANY"], true),
        MountSpec::new("m7", "/svc/m7", "f-delta", &["POST"], false),
        MountSpec::new("m8", "/m8", "f-alpha", &["ANY"], true),
        MountSpec::new("m9", "/m9", "f-beta", &["GET", "POST"], false),
        MountSpec::new("m10", "/deep/a/b", "f-gamma", &["ANY"], true),
        MountSpec::new("m11", "/m11", "f-delta", &["PATCH", "GET"], true),
    ];
    for m in &mounts {
        w.write(m);
    }

    // AWS's rules, faults before forwarding (30 %) and lost answers after
    // it (a fifth of the forwarded writes).
    let proxy = FaultProxy::start(
        &w.fx.endpoint(),
        FaultConfig {
            seed,
            strict: true,
            after_forward_rate: 0.2,
            ..FaultConfig::default()
        },
    );
    let started = Instant::now();
    converge_under_faults_and_verify(&w, &proxy, &mounts, &functions, &untouched, "12 mounts")
        .await;
    let team_b_plan = w.fx.apimount(
        &team_b_args("plan")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        team_b_plan.status.code(),
        Some(0),
        "team-b should still be in sync\n{}",
        show(&team_b_plan)
    );

    // Four manifests go: the outer one of a nested pair (its resource stays
    // for /m1/admin), one of two siblings under /svc, one whose parents go
    // with it (/deep/a/b), and a plain one.
    let removed = ["m1", "m7", "m10", "m5"];
    for m in mounts.iter().filter(|m| removed.contains(&m.name.as_str())) {
        w.remove(m);
    }
    let remaining: Vec<MountSpec> = mounts
        .iter()
        .filter(|m| !removed.contains(&m.name.as_str()))
        .cloned()
        .collect();
    converge_under_faults_and_verify(
        &w,
        &proxy,
        &remaining,
        &functions,
        &untouched,
        "8 mounts after removing 4",
    )
    .await;
    let paths = w.fx.resource_paths(&w.api).await;
    for gone in [
        "/m1/{proxy+}",
        "/svc/m7",
        "/deep",
        "/deep/a",
        "/deep/a/b",
        "/m5",
    ] {
        assert!(
            !paths.iter().any(|p| p == gone),
            "{gone} should be gone: {paths:?}"
        );
    }
    assert!(paths.iter().any(|p| p == "/m1"), "/m1 stays for /m1/admin");
    let team_b_plan = w.fx.apimount(
        &team_b_args("plan")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        team_b_plan.status.code(),
        Some(0),
        "team-b should still be in sync\n{}",
        show(&team_b_plan)
    );

    let total = proxy.stats();
    eprintln!(
        "faults_converge_to_exact_state: {:.1}s under faults; proxy totals: {total}",
        started.elapsed().as_secs_f64()
    );
    for kind in Fault::RANDOM {
        assert!(
            total.faults[&kind] > 0,
            "the proxy never injected {}: {total}",
            kind.name()
        );
    }
    for kind in Fault::LOST {
        assert!(
            total.lost[&kind] > 0,
            "the proxy never lost an answer by {} after forwarding: {total}",
            kind.name()
        );
    }
    // Lost creates were retried by the SDK and refused as AWS refuses them
    // (and apimount took the object over): on this bench a duplicate cannot
    // be made silently.
    let lost_creates =
        total.lost_of("apigateway:CreateResource") + total.lost_of("lambda:AddPermission");
    let refused_retries = total.retry_refusals[&Refusal::DuplicateSibling]
        + total.retry_refusals[&Refusal::DuplicateStatement];
    assert!(
        lost_creates > 0,
        "faults after forwarding never hit a CreateResource or AddPermission: {total}"
    );
    assert!(
        refused_retries > 0,
        "faults after forwarding hit {lost_creates} CreateResource/AddPermission calls, but the strict layer never refused a retried create: {total}"
    );
    // apimount never asked AWS to deploy an API with a method lacking an
    // integration: that would block every team's deployments.
    assert_eq!(
        total.refusals[&Refusal::NoIntegration],
        0,
        "apimount tried to deploy with a method without integration: {total}"
    );
}

// ----- 2. SIGKILL at random points ------------------------------------------------------

/// Thirty-two mounts directly under the root, on four functions.
fn root_mounts(functions: &[&str]) -> Vec<MountSpec> {
    let method_sets: [&[&'static str]; 4] = [&["ANY"], &["GET"], &["GET", "POST"], &["PUT"]];
    (0..32)
        .map(|i| {
            MountSpec::new(
                &format!("s{i:02}"),
                &format!("/s{i:02}"),
                functions[i % functions.len()],
                method_sets[(i / 4) % method_sets.len()],
                i % 3 != 0,
            )
        })
        .collect()
}

#[tokio::test]
async fn sigkill_during_large_apply_converges() {
    const TRIALS: usize = 40;
    let seed = seed("sigkill_during_large_apply_converges");
    let mut rng = StdRng::seed_from_u64(seed);
    let test_started = Instant::now();
    let w = World::start().await;
    let functions = ["k-fn-0", "k-fn-1", "k-fn-2", "k-fn-3"];
    for f in functions {
        w.fx.create_function(f).await;
    }
    // Every apimount run goes through the strict layer, without faults: the
    // crash is the fault, and the restart is judged by AWS's rules.
    let proxy = FaultProxy::start(
        &w.fx.endpoint(),
        FaultConfig {
            fault_rate: 0.0,
            delay_rate: 0.0,
            strict: true,
            seed,
            ..FaultConfig::default()
        },
    );
    let via_proxy = proxy.url();

    // Calibration, on a separate API with separate functions: how long a
    // full, uninterrupted apply of the same layout takes, and how long a pass
    // with nothing to do (process start and the reads) takes.
    let calibration_fns = ["c-fn-0", "c-fn-1", "c-fn-2", "c-fn-3"];
    for f in calibration_fns {
        w.fx.create_function(f).await;
    }
    let (calibration_api, _) = w.fx.create_rest_api("calibration-api").await;
    let calibration_dir = manifest_dir();
    for m in root_mounts(&calibration_fns) {
        write_manifest(calibration_dir.path(), &m.file(), &m.yaml());
    }
    let calibrate = || {
        let t = Instant::now();
        let out = w.fx.apimount_with_env(
            &[
                "apply",
                "--manifests",
                calibration_dir.path().to_str().expect("utf-8 temp path"),
                "--rest-api-id",
                &calibration_api,
                "--pacing",
                "off",
            ],
            &[("AWS_ENDPOINT_URL", &via_proxy)],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "calibration apply\n{}",
            show(&out)
        );
        t.elapsed()
    };
    let full = calibrate();
    let idle = calibrate();
    eprintln!("a full apply of 32 mounts takes {full:?}, a pass with nothing to do {idle:?}");
    let (full_ms, idle_ms) = (full.as_millis() as f64, idle.as_millis() as f64);

    // The stage exists before the first trial, as on any API in use: the
    // in-flight journal lives in a stage tag, and apimount documents that a
    // crash in the very first pass of an API with no stage yet can leave a
    // bare resource behind, which this test does not exercise.
    let root =
        w.fx.resource_at(&w.api, "/")
            .await
            .and_then(|r| r.id().map(str::to_string))
            .expect("root resource");
    let health = w.fx.create_resource(&w.api, &root, "health").await;
    w.fx.put_foreign_method(&w.api, &health, "GET", None, Integration::Mock)
        .await;
    let deployment =
        w.fx.apigateway
            .create_deployment()
            .rest_api_id(&w.api)
            .send()
            .await
            .expect("CreateDeployment");
    w.fx.apigateway
        .create_stage()
        .rest_api_id(&w.api)
        .stage_name("prod")
        .deployment_id(deployment.id().unwrap())
        .send()
        .await
        .expect("CreateStage");
    let mut untouched = Untouched::default();
    untouched.resources.insert(
        "/health".into(),
        w.fx.resource_at(&w.api, "/health").await.expect("/health"),
    );

    // The folder, and which manifests are in it.
    let all = root_mounts(&functions);
    let mut present: BTreeMap<String, MountSpec> = BTreeMap::new();
    for m in &all {
        w.write(m);
        present.insert(m.name.clone(), m.clone());
    }

    let logs = w.fx.emulator.scratch_dir().join("sigkill-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let (mut killed, mut finished) = (0usize, 0usize);
    let mut history = Vec::new();
    let mut exit0_problems: Vec<String> = Vec::new();
    // Work left by a killed trial, as a share of a full apply (a guess).
    let mut carried = 0.0f64;
    for trial in 0..TRIALS {
        // Trial 0 starts from an empty API with all 32 manifests. Then odd
        // trials remove a random subset (a quarter to a half of what is
        // there) and even ones put every removed manifest back, each on a
        // random function (re-pointing the routes a killed removal left).
        let (change, work) = if trial == 0 {
            ("all 32 manifests".to_string(), 1.0)
        } else if trial % 2 == 1 {
            let mut names: Vec<String> = present.keys().cloned().collect();
            names.shuffle(&mut rng);
            let most = (present.len() - 1) / 2;
            let k = if most == 0 {
                0
            } else {
                rng.random_range(most.div_ceil(2)..=most)
            };
            for name in &names[..k] {
                let m = present.remove(name).expect("present");
                w.remove(&m);
            }
            // A removal makes about half the calls of a creation.
            (format!("removed {k}"), 0.5 * k as f64 / 32.0)
        } else {
            let absent: Vec<MountSpec> = all
                .iter()
                .filter(|m| !present.contains_key(&m.name))
                .cloned()
                .collect();
            let restored = absent.len();
            for mut m in absent {
                m.function = functions[rng.random_range(0..functions.len())].to_string();
                w.write(&m);
                present.insert(m.name.clone(), m);
            }
            (format!("restored {restored}"), restored as f64 / 32.0)
        };

        // Kill at a random point of the writes: after the reads a pass with
        // nothing to do makes, before the estimated end of this pass.
        let estimate = idle_ms + (full_ms - idle_ms) * (work + carried).min(1.0);
        let sleep = rng.random_range((0.6 * idle_ms) as u64..=estimate.max(idle_ms) as u64);

        let stdout = logs.join(format!("trial-{trial}.out"));
        let stderr = logs.join(format!("trial-{trial}.err"));
        let args = w.args("apply", w.dir.path(), &["--allow-mass-delete"]);
        let mut child =
            w.fx.apimount_command(&args)
                .env("AWS_ENDPOINT_URL", &via_proxy)
                .env("RUST_LOG", "apimount=debug")
                .stdout(Stdio::from(File::create(&stdout).expect("stdout file")))
                .stderr(Stdio::from(File::create(&stderr).expect("stderr file")))
                .spawn()
                .expect("spawn apimount apply");
        std::thread::sleep(Duration::from_millis(sleep));
        let outcome = match child.try_wait().expect("poll apimount") {
            Some(status) => {
                finished += 1;
                carried = 0.0;
                assert!(
                    matches!(status.code(), Some(0) | Some(1)),
                    "trial {trial}: apply crashed ({status})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    std::fs::read_to_string(&stdout).unwrap_or_default(),
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
                // A pass that says it converged must have left exactly what
                // the folder describes, whatever the killed passes before it
                // left behind.
                if status.code() == Some(0) {
                    let mounts: Vec<MountSpec> = present.values().cloned().collect();
                    let f = verify(&w, &mounts, &functions, &untouched).await;
                    if !f.problems.is_empty() {
                        // The logs of this trial and the one before it: what
                        // was left, and what this pass made of it.
                        let log_of = |t: usize| {
                            std::fs::read_to_string(logs.join(format!("trial-{t}.err")))
                                .unwrap_or_default()
                        };
                        exit0_problems.push(format!(
                            "trial {trial} ({change}) exited 0, but:\n    {}\n--- log of trial {} ---\n{}\n--- log of trial {trial} ---\n{}",
                            f.problems.join("\n    "),
                            trial.saturating_sub(1),
                            log_of(trial.saturating_sub(1)),
                            log_of(trial)
                        ));
                    }
                }
                format!("finished ({status})")
            }
            None => {
                child.kill().expect("SIGKILL apimount");
                child.wait().expect("reap apimount");
                // What the killed process had sent lands before the next one
                // reads (see `FaultProxy::wait_idle`).
                proxy.wait_idle(Duration::from_secs(30));
                killed += 1;
                let done =
                    ((sleep as f64 - idle_ms) / (estimate - idle_ms).max(1.0)).clamp(0.0, 1.0);
                carried = (work + carried) * (1.0 - done);
                "killed".to_string()
            }
        };
        // What the trial left: resources without a method (a route cut
        // short, or a removal cut short), for the record.
        let methodless: Vec<String> = w
            .fx
            .resources(&w.api)
            .await
            .iter()
            .filter(|r| r.path() != Some("/") && r.resource_methods().is_none_or(|m| m.is_empty()))
            .filter_map(|r| r.path().map(str::to_string))
            .collect();
        history.push(format!(
            "trial {trial}: {change}, {} present, kill at {sleep} of ~{estimate:.0} ms: {outcome}; method-less resources left: {methodless:?}",
            present.len()
        ));
    }
    eprintln!("{}", history.join("\n"));
    // The trials' logs (debug level) outlive the test when asked for.
    if let Ok(keep) = std::env::var("APIMOUNT_KEEP_TRIAL_LOGS") {
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(&logs)
            .arg(&keep)
            .status();
    }
    eprintln!(
        "{TRIALS} trials: {killed} killed mid-pass, {finished} finished before the kill ({:.1}s so far)",
        test_started.elapsed().as_secs_f64()
    );
    assert!(
        killed * 3 >= TRIALS,
        "too few trials were actually killed mid-pass ({killed} of {TRIALS}):\n{}",
        history.join("\n")
    );

    // Uninterrupted passes now converge.
    let attempts = w.converge(Some(&via_proxy), &["--allow-mass-delete"], 3);
    let mounts: Vec<MountSpec> = present.values().cloned().collect();
    let findings = verify(&w, &mounts, &functions, &untouched).await;
    eprintln!(
        "after {attempts} clean apply run(s): {} resources, {} mounts",
        findings.resources,
        mounts.len()
    );
    assert_clean(
        &findings,
        &format!("after {TRIALS} SIGKILL trials ({})", history.join("; ")),
    );
    // Every mount is directly under the root: there are no intermediate
    // parents, so no resource may be empty.
    assert_eq!(findings.empty_resources, 0);
    assert_eq!(findings.orphan_methods, 0);
    assert_eq!(findings.leaked_statements, 0);
    assert!(
        exit0_problems.is_empty(),
        "apply exited 0 (\"the gateway matches every manifest\") while the gateway did not:\n  {}\n\nall trials:\n{}",
        exit0_problems.join("\n  "),
        history.join("\n")
    );

    // The stage serves the newest deployment (moto lists deployments in
    // creation order) and nothing is left to deploy.
    let deployments = w.fx.deployments(&w.api).await;
    let newest = deployments.last().expect("at least one deployment");
    let newest_date = deployments
        .iter()
        .filter_map(|d| d.created_date())
        .max()
        .expect("deployment dates");
    assert_eq!(newest.created_date(), Some(newest_date));
    let stage = w.fx.stage(&w.api, "prod").await.expect("stage prod");
    assert_eq!(
        stage.deployment_id(),
        newest.id(),
        "the stage should serve the newest of {} deployments",
        deployments.len()
    );
    w.assert_plan_in_sync();
    let stats = proxy.stats();
    eprintln!(
        "sigkill_during_large_apply_converges: {:.1}s; strict proxy: {stats}",
        test_started.elapsed().as_secs_f64()
    );
    assert!(
        stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
        "the strict layer did not check the writes: {stats}"
    );
    assert_eq!(stats.faulted() + stats.lost_answers(), 0, "{stats}");
}
