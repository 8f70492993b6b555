//! End-to-end tests of the long-running controller, `apimount run`: each test
//! starts its own emulator and its own daemon on a private admin port, changes
//! the manifests (a folder or an S3 prefix) or the gateway behind the daemon's
//! back, and waits — with deadlines, polling — for the gateway, the logs or
//! the admin endpoint to show the daemon's reaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, DEADLINE};
use crate::support::faults::FaultProxy;
use crate::support::logs::{metric, parse_metrics, text_field};
use crate::support::{self, manifest_dir, mount_yaml, Fixture, Integration, RouteTable};
use serde_json::Value;

/// The default owner, as it appears in the markers.
const OWNER: &str = "apimount";
/// The default stage.
const STAGE: &str = "prod";

// ----- manifests -----------------------------------------------------------------

/// Writes `dir/file_name` the way editors do: a hidden temporary file, then a
/// rename over the target.
fn write_atomically(dir: &Path, file_name: &str, content: &str) {
    let tmp = dir.join(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, content).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    let target = dir.join(file_name);
    std::fs::rename(&tmp, &target)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", tmp.display(), target.display()));
}

/// Writes `dir/file_name` in place (truncate and write).
fn write_in_place(dir: &Path, file_name: &str, content: &str) {
    let path = dir.join(file_name);
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ----- gateway state --------------------------------------------------------------

/// path → verb → method.
type Routes = RouteTable;

async fn routes(fx: &Fixture, api_id: &str) -> Routes {
    fx.route_table(api_id).await
}

fn marker(mount: &str) -> String {
    format!("apimount:{OWNER}:{mount}")
}

/// True when `path` serves exactly `verbs`, each an AWS_PROXY method marked
/// as `mount`'s.
fn serves(routes: &Routes, path: &str, mount: &str, verbs: &[&str]) -> bool {
    let Some(methods) = routes.get(path) else {
        return false;
    };
    let want: BTreeSet<&str> = verbs.iter().copied().collect();
    let have: BTreeSet<&str> = methods.keys().map(String::as_str).collect();
    want == have
        && methods.values().all(|m| {
            support::untagged(m.operation_name.as_deref()) == Some(marker(mount).as_str())
                && m.integration_type.as_deref() == Some("AWS_PROXY")
        })
}

/// True when `mount` is served at `path` and `path/{proxy+}` with `verbs`.
fn mounted(routes: &Routes, path: &str, mount: &str, verbs: &[&str]) -> bool {
    serves(routes, path, mount, verbs)
        && serves(routes, &format!("{path}/{{proxy+}}"), mount, verbs)
}

/// Creates `/health` with a GET method and a MOCK integration, owned by
/// nobody, so the API always has a method and can always be deployed.
async fn create_foreign_health_route(fx: &Fixture, api_id: &str, root_id: &str) {
    let health = fx.create_resource(api_id, root_id, "health").await;
    fx.put_foreign_method(api_id, &health, "GET", None, Integration::Mock)
        .await;
}

fn foreign_health_intact(routes: &Routes) -> bool {
    routes.get("/health").is_some_and(|m| {
        m.get("GET").is_some_and(|g| {
            g.operation_name.is_none() && g.integration_type.as_deref() == Some("MOCK")
        })
    })
}

// ----- logs and metrics ------------------------------------------------------------

/// Every stderr line as a JSON object; panics on a line that is not one.
fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"));
            assert!(v.is_object(), "stderr line is not a JSON object: {l}");
            v
        })
        .collect()
}

/// JSON log events whose message starts with `prefix`.
fn events(lines: &[String], prefix: &str) -> Vec<Value> {
    json_lines(lines)
        .into_iter()
        .filter(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.starts_with(prefix))
        })
        .collect()
}

/// Top-level keys that occur more than once in the JSON object `line`.
/// (`serde_json::Value` silently keeps the last of duplicate keys.)
fn duplicate_keys(line: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct KeyVisitor;
            impl<'de> serde::de::Visitor<'de> for KeyVisitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(KeyVisitor)
        }
    }
    let Keys(keys) = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("stderr line is not a JSON object ({e}): {line}"));
    let mut seen = BTreeSet::new();
    keys.into_iter()
        .filter(|k| !seen.insert(k.clone()))
        .collect()
}

fn u64_field(event: &Value, key: &str) -> u64 {
    event
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no integer field {key} in {event}"))
}

// ----- tests ------------------------------------------------------------------------

/// Drop, edit and delete manifests in a watched folder: each change reaches
/// the gateway and is deployed; removing the last manifest is refused by the
/// mass-deletion guard; SIGTERM then stops the daemon cleanly.
#[tokio::test]
async fn lifecycle_of_a_manifest_in_a_watched_folder() {
    let fx = Fixture::start().await;
    let (api, root) = fx.create_rest_api("lifecycle").await;
    fx.create_function("account-service").await;
    fx.create_function("status-service").await;
    // A foreign route: the API never runs out of methods, so every pass that
    // changes something can deploy, and apimount must leave it alone.
    create_foreign_health_route(&fx, &api, &root).await;
    let dir = manifest_dir();

    let mut daemon = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "60s",
            "--debounce",
            "200ms",
        ],
    );
    daemon.wait_ready().await;
    assert_eq!(
        daemon
            .get("/healthz")
            .map(|(s, b)| (s, b.trim().to_string())),
        Some((200, "ok".to_string()))
    );
    assert!(
        fx.stage_deployment(&api, STAGE).await.is_none(),
        "an empty folder was deployed"
    );

    // 1. New manifests (one renamed into place like editors do, one written
    //    in place) are mounted and deployed.
    write_atomically(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
    );
    write_in_place(
        dir.path(),
        "status.yaml",
        &mount_yaml("status", "/status", "status-service", "  methods: [GET]\n"),
    );
    daemon
        .wait_for(
            "/accounts and /status mounted and deployed",
            DEADLINE,
            || async {
                let r = routes(&fx, &api).await;
                fx.stage_deployment(&api, STAGE).await?;
                (mounted(&r, "/accounts", "accounts", &["ANY"])
                    && mounted(&r, "/status", "status", &["GET"]))
                .then_some(())
            },
        )
        .await;
    assert!(
        !fx.policy_statements("account-service", None)
            .await
            .is_empty(),
        "no Lambda permission for the mounted routes"
    );
    assert!(foreign_health_intact(&routes(&fx, &api).await));

    // 2. An in-place edit changes the methods and is deployed again.
    let before = fx.deployment_ids(&api).await;
    write_in_place(
        dir.path(),
        "accounts.yaml",
        &mount_yaml(
            "accounts",
            "/accounts",
            "account-service",
            "  methods: [GET]\n",
        ),
    );
    daemon
        .wait_for(
            "/accounts to serve GET only, deployed",
            DEADLINE,
            || async {
                let r = routes(&fx, &api).await;
                let stage = fx.stage_deployment(&api, STAGE).await?;
                (mounted(&r, "/accounts", "accounts", &["GET"]) && !before.contains(&stage))
                    .then_some(())
            },
        )
        .await;

    // 3. Deleting a manifest removes its routes and permissions and deploys
    //    once more.
    let before = fx.deployment_ids(&api).await;
    std::fs::remove_file(dir.path().join("accounts.yaml")).expect("remove manifest");
    daemon
        .wait_for("/accounts removed, deployed", DEADLINE, || async {
            let r = routes(&fx, &api).await;
            let stage = fx.stage_deployment(&api, STAGE).await?;
            let gone = !r.contains_key("/accounts") && !r.contains_key("/accounts/{proxy+}");
            (gone && !before.contains(&stage)).then_some(())
        })
        .await;
    daemon
        .wait_for(
            "the Lambda permissions of the removed routes to go",
            DEADLINE,
            || async {
                fx.policy_statements("account-service", None)
                    .await
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
    let r = routes(&fx, &api).await;
    assert!(foreign_health_intact(&r), "foreign /health touched: {r:?}");
    assert!(mounted(&r, "/status", "status", &["GET"]), "{r:?}");

    // 4. Removing the last manifest empties the folder: the mass-deletion
    //    guard keeps the routes (an empty source never deletes anything).
    let passes_before = daemon.lines_with("pass finished").len();
    std::fs::remove_file(dir.path().join("status.yaml")).expect("remove manifest");
    daemon
        .wait_for("a pass over the empty folder", DEADLINE, || async {
            daemon.lines_with("pass finished")[passes_before..]
                .iter()
                .any(|l| text_field(l, "mounts") == Some("0"))
                .then_some(())
        })
        .await;
    let r = routes(&fx, &api).await;
    assert!(
        mounted(&r, "/status", "status", &["GET"]),
        "an empty folder removed routes: {r:?}"
    );
    assert!(
        !fx.policy_statements("status-service", None)
            .await
            .is_empty(),
        "an empty folder removed the permissions of kept routes"
    );
    assert!(
        !daemon.lines_with("refusing to remove").is_empty(),
        "the guard said nothing:\n{}",
        daemon.stderr()
    );

    // 5. SIGTERM: a clean exit.
    let status = daemon.terminate();
    assert!(
        status.success(),
        "apimount run exited with {status} after SIGTERM\n{}",
        daemon.stderr()
    );

    // Text logs: one summary line per pass, the mounts' state changes.
    let passes = daemon.lines_with("pass finished");
    let changing = passes
        .iter()
        .filter(|l| text_field(l, "changes").is_some_and(|c| c != "0"))
        .count();
    assert!(
        changing >= 3,
        "expected 3+ passes with changes:\n{passes:#?}"
    );
    assert!(
        daemon
            .lines_with("mount state changed")
            .iter()
            .any(|l| text_field(l, "mount") == Some("accounts")
                && text_field(l, "state") == Some("Ready")),
        "no Ready state change logged for accounts:\n{}",
        daemon.stderr()
    );
}

/// A method deleted behind the daemon's back is put back by the next resync;
/// when the drift was also deployed, the healed API is deployed again.
#[tokio::test]
async fn drift_is_healed_within_one_resync_interval() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("drift").await;
    fx.create_function("account-service").await;
    let dir = manifest_dir();
    support::write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
    );

    let daemon = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "2s",
            // Resyncs this close together need more than the default quota budget.
            "--quota-share",
            "100%",
        ],
    );
    daemon
        .wait_for("/accounts mounted and deployed", DEADLINE, || async {
            let r = routes(&fx, &api).await;
            fx.stage_deployment(&api, STAGE).await?;
            mounted(&r, "/accounts", "accounts", &["ANY"]).then_some(())
        })
        .await;
    daemon.wait_ready().await;
    let accounts_id = fx
        .resource_at(&api, "/accounts")
        .await
        .and_then(|r| r.id().map(str::to_string))
        .expect("/accounts resource");
    let delete_any = || async {
        fx.apigateway
            .delete_method()
            .rest_api_id(&api)
            .resource_id(&accounts_id)
            .http_method("ANY")
            .send()
            .await
            .expect("DeleteMethod ANY /accounts");
    };

    // 1. Drift in the API only: the stage still serves the deployed snapshot,
    //    which has the method, so putting the method back is enough.
    delete_any().await;
    daemon
        .wait_for(
            "ANY /accounts to be re-created",
            Duration::from_secs(15),
            || async {
                mounted(&routes(&fx, &api).await, "/accounts", "accounts", &["ANY"]).then_some(())
            },
        )
        .await;

    // 2. Drift that someone also deployed: the healed API must be deployed
    //    again, or the stage keeps serving the broken snapshot.
    let mut before = fx.deployment_ids(&api).await;
    delete_any().await;
    let drifted = fx
        .apigateway
        .create_deployment()
        .rest_api_id(&api)
        .stage_name(STAGE)
        .description("deployed by hand")
        .send()
        .await
        .expect("CreateDeployment by hand")
        .id()
        .expect("deployment id")
        .to_string();
    before.insert(drifted);
    daemon
        .wait_for(
            "ANY /accounts to be re-created and deployed",
            Duration::from_secs(15),
            || async {
                let r = routes(&fx, &api).await;
                let stage = fx.stage_deployment(&api, STAGE).await?;
                (mounted(&r, "/accounts", "accounts", &["ANY"]) && !before.contains(&stage))
                    .then_some(())
            },
        )
        .await;
}

/// Twenty manifests written at once are reconciled in very few passes and
/// deployed at most twice.
#[tokio::test]
async fn a_burst_of_manifests_is_debounced_into_few_passes_and_deployments() {
    const N: usize = 20;
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("burst").await;
    fx.create_function("burst-fn").await;
    let dir = manifest_dir();

    let daemon = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--log-format",
            "json",
        ],
    );
    daemon.wait_ready().await;
    daemon
        .wait_for("the first pass to be logged", DEADLINE, || async {
            (!events(&daemon.lines(), "pass finished").is_empty()).then_some(())
        })
        .await;
    let deployments_before = fx.deployment_ids(&api).await.len();
    let passes_before = events(&daemon.lines(), "pass finished").len();

    // As fast as possible, half of them written in place, half renamed in.
    for i in 0..N {
        let yaml = mount_yaml(&format!("s{i}"), &format!("/s{i}"), "burst-fn", "");
        let file = format!("s{i}.yaml");
        if i % 2 == 0 {
            write_in_place(dir.path(), &file, &yaml);
        } else {
            write_atomically(dir.path(), &file, &yaml);
        }
    }

    daemon
        .wait_for(
            "all 20 mounts served, deployed and reported Ready",
            Duration::from_secs(60),
            || async {
                let r = routes(&fx, &api).await;
                let all =
                    (0..N).all(|i| mounted(&r, &format!("/s{i}"), &format!("s{i}"), &["ANY"]));
                fx.stage_deployment(&api, STAGE).await?;
                // The last pass saw all of them and left nothing to do.
                let last = events(&daemon.lines(), "pass finished").pop()?;
                let settled = u64_field(&last, "mounts") == N as u64
                    && last.get("result").and_then(Value::as_str) == Some("success");
                (all && settled).then_some(())
            },
        )
        .await;

    let deployments = fx.deployment_ids(&api).await.len() - deployments_before;
    let passes = events(&daemon.lines(), "pass finished");
    let changing: Vec<&Value> = passes[passes_before..]
        .iter()
        .filter(|p| u64_field(p, "changes") > 0)
        .collect();
    eprintln!(
        "burst of {N}: {deployments} deployment(s), {} pass(es) with changes, {} pass(es) in all",
        changing.len(),
        passes.len() - passes_before
    );
    assert!(
        (1..=2).contains(&deployments),
        "{deployments} deployments for one burst\n{}",
        daemon.stderr()
    );
    assert!(
        (1..=3).contains(&changing.len()),
        "{} passes with changes for one burst: {changing:#?}",
        changing.len()
    );
}

/// Manifests under an S3 prefix: put, delete and put again, each picked up by
/// the poll.
#[tokio::test]
async fn s3_source_is_polled_for_new_changed_and_deleted_objects() {
    const BUCKET: &str = "apimount-manifests";
    let fx = Fixture::start().await;
    let (api, root) = fx.create_rest_api("s3-source").await;
    fx.create_function("account-service").await;
    fx.create_function("payment-service").await;
    create_foreign_health_route(&fx, &api, &root).await;

    let s3 = fx.s3();
    fx.create_bucket(BUCKET).await;
    let put = |key: &'static str, body: String| fx.put_object(BUCKET, key, body);
    put(
        "mounts/accounts.yaml",
        mount_yaml("accounts", "/accounts", "account-service", ""),
    )
    .await;
    // A second mount, so that deleting the first one does not empty the
    // source (an empty source never deletes anything).
    put(
        "mounts/status.json",
        serde_json::json!({
            "apiVersion": "apimount/v1",
            "kind": "ServiceMount",
            "metadata": {"name": "status"},
            "spec": {"path": "/status", "function": "account-service", "methods": ["GET"]}
        })
        .to_string(),
    )
    .await;
    // Outside the prefix, or in a "subfolder" of it: not manifests of ours.
    put(
        "other/ignored.yaml",
        mount_yaml("ignored", "/ignored", "account-service", ""),
    )
    .await;
    put(
        "mounts/nested/ignored.yaml",
        mount_yaml("nested", "/nested", "account-service", ""),
    )
    .await;

    let source = format!("s3://{BUCKET}/mounts");
    let daemon = Daemon::start(
        &fx,
        &[
            "--source",
            &source,
            "--poll-interval",
            "1s",
            "--rest-api-id",
            &api,
        ],
    );
    daemon
        .wait_for(
            "/accounts and /status mounted from S3",
            DEADLINE,
            || async {
                let r = routes(&fx, &api).await;
                fx.stage_deployment(&api, STAGE).await?;
                (mounted(&r, "/accounts", "accounts", &["ANY"])
                    && mounted(&r, "/status", "status", &["GET"]))
                .then_some(())
            },
        )
        .await;
    let r = routes(&fx, &api).await;
    assert!(
        !r.contains_key("/ignored") && !r.contains_key("/nested"),
        "objects outside the prefix were mounted: {r:?}"
    );

    // Deleting the object unmounts the route.
    let before = fx.deployment_ids(&api).await;
    s3.delete_object()
        .bucket(BUCKET)
        .key("mounts/accounts.yaml")
        .send()
        .await
        .expect("DeleteObject");
    daemon
        .wait_for(
            "/accounts removed after the object was deleted",
            DEADLINE,
            || async {
                let r = routes(&fx, &api).await;
                let stage = fx.stage_deployment(&api, STAGE).await?;
                let gone = !r.contains_key("/accounts") && !r.contains_key("/accounts/{proxy+}");
                (gone && !before.contains(&stage)).then_some(())
            },
        )
        .await;
    let r = routes(&fx, &api).await;
    assert!(foreign_health_intact(&r), "{r:?}");
    assert!(mounted(&r, "/status", "status", &["GET"]), "{r:?}");

    // Another object appears.
    let before = fx.deployment_ids(&api).await;
    put(
        "mounts/payments.yml",
        mount_yaml(
            "payments",
            "/payments",
            "payment-service",
            "  methods: [GET, POST]\n",
        ),
    )
    .await;
    daemon
        .wait_for("/payments mounted from a new object", DEADLINE, || async {
            let r = routes(&fx, &api).await;
            let stage = fx.stage_deployment(&api, STAGE).await?;
            (mounted(&r, "/payments", "payments", &["GET", "POST"]) && !before.contains(&stage))
                .then_some(())
        })
        .await;

    // A changed object (same key, new content) is picked up too.
    let before = fx.deployment_ids(&api).await;
    put(
        "mounts/payments.yml",
        mount_yaml(
            "payments",
            "/payments",
            "payment-service",
            "  methods: [PUT]\n",
        ),
    )
    .await;
    daemon
        .wait_for(
            "/payments changed from an updated object",
            DEADLINE,
            || async {
                let r = routes(&fx, &api).await;
                let stage = fx.stage_deployment(&api, STAGE).await?;
                (mounted(&r, "/payments", "payments", &["PUT"]) && !before.contains(&stage))
                    .then_some(())
            },
        )
        .await;
}

/// With --log-format json every stderr line is one JSON object, fields
/// flattened next to "message", no key twice.
#[tokio::test]
async fn json_log_format_writes_one_object_per_line() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("json-logs").await;
    fx.create_function("account-service").await;
    let dir = manifest_dir();
    support::write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
    );

    support::write_manifest(
        dir.path(),
        "broken.yaml",
        &mount_yaml("broken", "no-leading-slash", "account-service", ""),
    );

    let mut daemon = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--log-format",
            "json",
        ],
    );
    daemon.wait_ready().await;
    daemon
        .wait_for("a pass finished line", DEADLINE, || async {
            (!daemon.lines_with("pass finished").is_empty()).then_some(())
        })
        .await;
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status}");

    let lines = daemon.lines();
    let all = json_lines(&lines);
    assert!(!all.is_empty(), "no log lines");
    for event in &all {
        assert!(
            event.get("message").and_then(Value::as_str).is_some(),
            "no message in {event}"
        );
        assert!(event.get("level").is_some(), "no level in {event}");
        assert!(event.get("timestamp").is_some(), "no timestamp in {event}");
    }
    let passes = events(&lines, "pass finished");
    assert!(!passes.is_empty(), "no pass finished event:\n{lines:#?}");
    let first = &passes[0];
    for key in [
        "revision",
        "mounts",
        "invalid",
        "changes",
        "failed",
        "deployment",
        "duration_ms",
        "result",
    ] {
        assert!(
            first.get(key).is_some(),
            "pass finished has no flattened field {key}: {first}"
        );
    }
    assert_eq!(u64_field(first, "mounts"), 1, "{first}");
    assert_eq!(u64_field(first, "invalid"), 1, "{first}");
    assert!(u64_field(first, "changes") > 0, "{first}");
    assert_eq!(first["result"], "degraded", "{first}");
    assert!(
        first["deployment"].as_str().is_some_and(|d| !d.is_empty()),
        "{first}"
    );

    // A field named like one of the format's own keys would make the line
    // ambiguous: JSON parsers keep one of the two values, so the event's
    // message (or the field) is lost.
    let ambiguous: Vec<(Vec<String>, &String)> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (duplicate_keys(l), l))
        .filter(|(dups, _)| !dups.is_empty())
        .collect();
    assert!(
        ambiguous.is_empty(),
        "{} JSON log line(s) repeat a key:\n{ambiguous:#?}",
        ambiguous.len()
    );

    let rejected = events(&lines, "manifest rejected");
    assert_eq!(rejected.len(), 1, "{lines:#?}");
    assert!(
        rejected[0]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("broken.yaml")),
        "{}",
        rejected[0]
    );
    let states = events(&lines, "mount state changed");
    assert!(
        states
            .iter()
            .any(|e| e["mount"] == "accounts" && e["path"] == "/accounts" && e["state"] == "Ready"),
        "no Ready state change for accounts: {states:#?}"
    );
}

/// /metrics reports passes, deployments, AWS calls and mount states; /healthz
/// answers ok.
#[tokio::test]
async fn admin_endpoint_serves_metrics_health_and_readiness() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("metrics").await;
    fx.create_function("account-service").await;
    let dir = manifest_dir();
    support::write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
    );

    let daemon = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
        ],
    );
    // Before the first pass finishes /readyz may only say "not yet".
    daemon
        .wait_for("the admin endpoint to answer", DEADLINE, || async {
            daemon.get("/readyz").map(|(status, _)| status)
        })
        .await;
    daemon.wait_ready().await;
    daemon
        .wait_for("/accounts mounted", DEADLINE, || async {
            mounted(&routes(&fx, &api).await, "/accounts", "accounts", &["ANY"]).then_some(())
        })
        .await;

    let text = daemon
        .wait_for("metrics with one Ready mount", DEADLINE, || async {
            let (status, body) = daemon.get("/metrics")?;
            assert_eq!(status, 200, "{body}");
            let samples = parse_metrics(&body);
            (metric(&samples, "apimount_mounts", &[("state", "Ready")]) == Some(1.0))
                .then_some(body)
        })
        .await;
    let samples = parse_metrics(&text);
    let success = metric(&samples, "apimount_passes_total", &[("result", "success")]);
    assert!(success.is_some_and(|n| n >= 1.0), "{text}");
    let deployments = metric(&samples, "apimount_deployments_total", &[]);
    assert!(deployments.is_some_and(|n| n >= 1.0), "{text}");
    let creates = metric(
        &samples,
        "apimount_aws_calls_total",
        &[
            ("service", "apigateway"),
            ("operation", "CreateResource"),
            ("outcome", "success"),
        ],
    )
    .or_else(|| {
        metric(
            &samples,
            "apimount_aws_calls_total",
            &[("operation", "CreateResource")],
        )
    });
    assert!(creates.is_some_and(|n| n >= 2.0), "{text}");
    assert!(
        metric(&samples, "apimount_pass_duration_seconds_count", &[]).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        metric(
            &samples,
            "apimount_last_successful_pass_timestamp_seconds",
            &[]
        )
        .is_some_and(|t| t > 1.0e9),
        "{text}"
    );
    // Nothing corrected or removed yet: the counters say 0, not just exist.
    for name in [
        "apimount_drift_corrections_total",
        "apimount_orphans_removed_total",
    ] {
        assert_eq!(metric(&samples, name, &[]), Some(0.0), "{name}:\n{text}");
    }
    assert_eq!(
        metric(&samples, "apimount_mounts", &[("state", "Failed")]),
        Some(0.0),
        "{text}"
    );
    let counter = |name: &'static str| {
        let (_, body) = daemon.get("/metrics").expect("/metrics");
        metric(&parse_metrics(&body), name, &[]).unwrap_or(-1.0)
    };
    // A hand edit, found by the pass a new manifest starts: one correction.
    let elsewhere = fx.create_function("elsewhere").await;
    let accounts = fx.resource_at(&api, "/accounts").await.unwrap();
    fx.apigateway
        .put_integration()
        .rest_api_id(&api)
        .resource_id(accounts.id.unwrap())
        .http_method("ANY")
        .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(fx.lambda_uri(&elsewhere))
        .send()
        .await
        .unwrap();
    support::write_manifest(
        dir.path(),
        "extra.yaml",
        &mount_yaml("extra", "/extra", "account-service", "  proxy: false\n"),
    );
    daemon
        .wait_for("the drift corrected", DEADLINE, || async {
            (counter("apimount_drift_corrections_total") >= 1.0).then_some(())
        })
        .await;
    assert_eq!(counter("apimount_orphans_removed_total"), 0.0);
    // A manifest removed: its route's objects are counted as they go.
    std::fs::remove_file(dir.path().join("extra.yaml")).unwrap();
    daemon
        .wait_for("the orphan removed", DEADLINE, || async {
            (counter("apimount_orphans_removed_total") >= 1.0).then_some(())
        })
        .await;
    assert!(fx.resource_at(&api, "/extra").await.is_none());

    let (status, body) = daemon.get("/healthz").expect("/healthz answers");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, _) = daemon.get("/readyz").expect("/readyz answers");
    assert_eq!(status, 200);
    let (status, _) = daemon.get("/no-such-page").expect("answers");
    assert_eq!(status, 404);
}

/// A bad manifest is logged once, not on every resync; its neighbour works.
#[tokio::test]
async fn an_invalid_manifest_is_reported_once_across_passes() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("invalid").await;
    fx.create_function("account-service").await;
    let dir = manifest_dir();
    support::write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
    );
    support::write_manifest(
        dir.path(),
        "broken.yaml",
        &mount_yaml("broken", "no-leading-slash", "account-service", ""),
    );

    let daemon = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "1s",
            "--quota-share",
            "100%",
        ],
    );
    daemon
        .wait_for("four passes", DEADLINE, || async {
            (daemon.lines_with("pass finished").len() >= 4).then_some(())
        })
        .await;

    for p in daemon.lines_with("pass finished") {
        assert_eq!(text_field(&p, "invalid"), Some("1"), "{p}");
        assert_eq!(text_field(&p, "mounts"), Some("1"), "{p}");
    }
    let rejected = daemon.lines_with("manifest rejected");
    assert_eq!(
        rejected.len(),
        1,
        "the bad manifest should be reported once, got {}:\n{rejected:#?}",
        rejected.len()
    );
    let file = text_field(&rejected[0], "file").unwrap_or_default();
    assert!(file.ends_with("broken.yaml"), "{}", rejected[0]);
    assert!(
        rejected[0].contains("spec.path"),
        "the rejection does not say what is wrong: {}",
        rejected[0]
    );

    let r = routes(&fx, &api).await;
    assert!(mounted(&r, "/accounts", "accounts", &["ANY"]), "{r:?}");
    assert!(
        fx.stage_deployment(&api, STAGE).await.is_some(),
        "the valid mount was never deployed"
    );
    assert!(
        !r.keys().any(|p| p.contains("no-leading-slash")),
        "the invalid path was mounted: {r:?}"
    );
}

/// Two instances of one owner with a lease table: exactly one writes; when it
/// is killed, the other takes over within the lease duration.
#[tokio::test]
async fn with_a_lease_table_one_instance_leads_and_a_standby_takes_over() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("lease").await;
    fx.create_function("account-service").await;
    fx.create_lease_table("apimount-leases").await;
    let dir = manifest_dir();
    support::write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
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
    ];
    let a = Daemon::start(&fx, &args);
    let b = Daemon::start(&fx, &args);
    a.wait_for("/accounts mounted", DEADLINE, || async {
        mounted(&routes(&fx, &api).await, "/accounts", "accounts", &["ANY"]).then_some(())
    })
    .await;
    let leading = |d: &Daemon| !d.lines_with("pass finished").is_empty();
    let standing_by = |d: &Daemon| !d.lines_with("standing by").is_empty();
    // Both settled: one has run a pass, the other says it stands by (a
    // condition waited for, not a sleep).
    a.wait_for("one leader and one standby", DEADLINE, || async {
        ((leading(&a) && standing_by(&b)) || (leading(&b) && standing_by(&a))).then_some(())
    })
    .await;
    assert!(
        leading(&a) != leading(&b),
        "exactly one instance must run passes\n--- a ---\n{}\n--- b ---\n{}",
        a.stderr(),
        b.stderr()
    );
    let (leader, standby) = if leading(&a) { (a, b) } else { (b, a) };
    assert!(!standby.lines_with("standing by").is_empty());

    // Kill the leader (SIGKILL: no release), then change the manifests.
    drop(leader);
    let killed_at = Instant::now();
    support::write_manifest(
        dir.path(),
        "payments.yaml",
        &mount_yaml("payments", "/payments", "account-service", ""),
    );
    standby
        .wait_for("the standby to mount /payments", DEADLINE, || async {
            mounted(&routes(&fx, &api).await, "/payments", "payments", &["ANY"]).then_some(())
        })
        .await;
    let took = killed_at.elapsed();
    assert!(
        !standby.lines_with("acquired the lease").is_empty(),
        "{}",
        standby.stderr()
    );
    // Lease 3 s; allow for the renewal period and a pass on a loaded machine.
    assert!(took < Duration::from_secs(15), "takeover took {took:?}");
}

/// Two instances of one owner without a lease table (a rolling update, a copy
/// started by hand): the second finds the first's tag on the stage, says so
/// in a line and a metric, and sends no write; the first applies a change
/// with one deployment. When the first stops (SIGTERM gives the tag up), the
/// second takes over at its next look; an instance killed outright is
/// replaced on the same host at once (its pid is gone). Two started at the
/// same moment end with one writer.
#[tokio::test]
async fn a_second_instance_without_a_lease_table_stands_by() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("instances").await;
    fx.create_function("account-service").await;
    let dir = manifest_dir();
    support::write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
    );
    let args = [
        "--manifests",
        dir.path().to_str().unwrap(),
        "--rest-api-id",
        &api,
        "--instance-lease",
        "3s",
    ];
    let tag_key = format!("apimount:{OWNER}:instance");
    let other = |d: &Daemon| {
        d.get("/metrics")
            .map(|(_, body)| metric(&parse_metrics(&body), "apimount_other_instance", &[]))
            .and_then(|v| v)
    };
    let mut first = Daemon::start(&fx, &args);
    first
        .wait_for(
            "/accounts mounted and the tag written",
            DEADLINE,
            || async {
                (mounted(&routes(&fx, &api).await, "/accounts", "accounts", &["ANY"])
                    && fx.stage_tags(&api, STAGE).await.contains_key(&tag_key))
                .then_some(())
            },
        )
        .await;
    assert_eq!(other(&first), Some(0.0));

    // The second, through its own strict proxy so its calls are its own.
    let seconds = FaultProxy::strict(&fx.endpoint(), vec![]);
    let second = Daemon::start_through(&fx, &seconds.url(), &args);
    second
        .wait_for("the second to see the first", DEADLINE, || async {
            (other(&second) == Some(1.0)).then_some(())
        })
        .await;
    let seen = second.lines_with("another instance of this owner is live");
    assert_eq!(seen.len(), 1, "{}", second.stderr());
    assert!(
        seen[0].contains(&format!("/{}/", first.pid)),
        "the line names the first instance: {}",
        seen[0]
    );
    let deployments = fx.deployments(&api).await.len();
    support::write_manifest(
        dir.path(),
        "payments.yaml",
        &mount_yaml("payments", "/payments", "account-service", ""),
    );
    first
        .wait_for("/payments mounted", DEADLINE, || async {
            mounted(&routes(&fx, &api).await, "/payments", "payments", &["ANY"]).then_some(())
        })
        .await;
    // Two renewals of the second's look, then nothing it sent may write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes: Vec<String> = seconds
        .requests()
        .into_iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "the standby wrote: {writes:?}");
    assert!(second.lines_with("pass finished").is_empty());
    assert_eq!(fx.deployments(&api).await.len(), deployments + 1);
    let stats = fx.strict_stats();
    assert!(stats.refusals.values().all(|n| *n == 0), "{stats}");
    assert!(
        stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
        "{stats}"
    );

    // A rolling update: the first stops, the second takes over.
    assert!(first.terminate().success(), "{}", first.stderr());
    let stopped = Instant::now();
    support::write_manifest(
        dir.path(),
        "orders.yaml",
        &mount_yaml("orders", "/orders", "account-service", ""),
    );
    second
        .wait_for("the second to mount /orders", DEADLINE, || async {
            mounted(&routes(&fx, &api).await, "/orders", "orders", &["ANY"]).then_some(())
        })
        .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "handover took {:?}",
        stopped.elapsed()
    );
    assert!(!second.lines_with("acquired the lease").is_empty());
    assert_eq!(other(&second), Some(0.0));

    // Killed outright, the second leaves its tag; a new instance on this
    // host takes over at once, as that pid is gone.
    let second_pid = second.pid;
    drop(second);
    let tag = fx.stage_tags(&api, STAGE).await;
    assert!(
        tag.get(&tag_key)
            .is_some_and(|v| v.contains(&format!("/{second_pid}/"))),
        "{tag:?}"
    );
    let third = Daemon::start(&fx, &args);
    support::write_manifest(
        dir.path(),
        "refunds.yaml",
        &mount_yaml("refunds", "/refunds", "account-service", ""),
    );
    third
        .wait_for("the third to mount /refunds", DEADLINE, || async {
            mounted(&routes(&fx, &api).await, "/refunds", "refunds", &["ANY"]).then_some(())
        })
        .await;
    assert!(
        third.lines_with("another instance").is_empty(),
        "{}",
        third.stderr()
    );
    drop(third);

    // Two at once on a tag that is free: after the settling, one writer.
    let a = Daemon::start(&fx, &args);
    let b = Daemon::start(&fx, &args);
    a.wait_for("one of the two standing by", DEADLINE, || async {
        let (x, y) = (other(&a)?, other(&b)?);
        (x + y == 1.0).then_some(())
    })
    .await;
    // Still so after the next renewals.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        other(&a).zip(other(&b)).map(|(x, y)| x + y),
        Some(1.0),
        "--- a ---\n{}\n--- b ---\n{}",
        a.stderr(),
        b.stderr()
    );
}

/// The whole bad-manifest corpus dropped beside valid manifests, and a live
/// manifest broken at the same moment: the daemon keeps running, the valid
/// mounts stay, the broken manifest's routes stay live, and every bad file is
/// reported once per problem (the problems `apimount validate` lists), not
/// again on later passes.
#[tokio::test]
async fn the_bad_corpus_beside_valid_manifests_costs_no_route() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("corpus").await;
    fx.create_function("account-service").await;
    fx.create_function("payment-service").await;
    let dir = manifest_dir();
    support::write_manifest(
        dir.path(),
        "accounts.yaml",
        &mount_yaml("accounts", "/accounts", "account-service", ""),
    );
    support::write_manifest(
        dir.path(),
        "payments.yaml",
        &mount_yaml("payments", "/payments", "payment-service", ""),
    );
    let daemon = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "1s",
            "--quota-share",
            "100%",
            "--log-format",
            "json",
        ],
    );
    let deployed = daemon
        .wait_for("both mounts live", DEADLINE, || async {
            let r = routes(&fx, &api).await;
            let deployed = fx.stage_deployment(&api, STAGE).await?;
            (mounted(&r, "/accounts", "accounts", &["ANY"])
                && mounted(&r, "/payments", "payments", &["ANY"]))
            .then_some(deployed)
        })
        .await;

    // Break the live payments manifest and drop in every bad file.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad");
    let mut bad_files = vec!["payments.yaml".to_string()];
    for entry in std::fs::read_dir(&corpus).expect("read the corpus") {
        let entry = entry.expect("corpus entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "EXPECTED.tsv" {
            continue;
        }
        std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy a corpus file");
        bad_files.push(name);
    }
    write_atomically(
        dir.path(),
        "payments.yaml",
        &mount_yaml(
            "payments",
            "/payments",
            "payment-service",
            "  proxy: maybe\n",
        ),
    );
    let expected = problems_per_file(&fx, dir.path());
    for f in &bad_files {
        assert!(
            expected.get(f).is_some_and(|n| *n > 0),
            "apimount validate does not refuse {f}: {expected:?}"
        );
    }

    let seen = daemon.lines().len();
    daemon
        .wait_for("three passes over the bad folder", DEADLINE, || async {
            let lines = daemon.lines();
            let passes = events(&lines[seen..], "pass finished")
                .iter()
                .filter(|p| u64_field(p, "invalid") as usize >= bad_files.len())
                .count();
            (passes >= 3).then_some(())
        })
        .await;
    daemon.assert_running();

    let lines = daemon.lines();
    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    for e in events(&lines[seen..], "manifest rejected") {
        let file = e
            .get("file")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no file in {e}"));
        let name = Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        *reported.entry(name).or_default() += 1;
    }
    assert_eq!(
        reported, expected,
        "each bad file must be reported once per problem, over three passes"
    );

    let r = routes(&fx, &api).await;
    assert!(mounted(&r, "/accounts", "accounts", &["ANY"]), "{r:?}");
    assert!(
        mounted(&r, "/payments", "payments", &["ANY"]),
        "the broken manifest's routes were removed: {r:?}"
    );
    assert_eq!(
        fx.stage_deployment(&api, STAGE).await,
        Some(deployed),
        "nothing changed, so nothing may be deployed"
    );
}

/// Problems per file name, as `apimount validate` lists them (`error: DIR/FILE…`).
fn problems_per_file(fx: &Fixture, dir: &Path) -> BTreeMap<String, usize> {
    let out = fx.apimount(&["validate", "--manifests", dir.to_str().unwrap()]);
    let prefix = format!("error: {}/", dir.display());
    let names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut counts = BTreeMap::new();
    for line in support::stdout(&out).lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        // The longest file name the line starts with (names can hold ':').
        if let Some(name) = names
            .iter()
            .filter(|n| rest.starts_with(&format!("{n}:")))
            .max_by_key(|n| n.len())
        {
            *counts.entry(name.clone()).or_default() += 1;
        }
    }
    counts
}

/// The Lambda reads of a daemon pass (GetPolicy and GetFunction, whatever
/// their outcome), from its `/metrics`.
fn lambda_reads(daemon: &Daemon) -> f64 {
    let (status, body) = daemon.get("/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    let samples = parse_metrics(&body);
    ["GetPolicy", "GetFunction"]
        .iter()
        .filter_map(|op| metric(&samples, "apimount_aws_calls_total", &[("operation", op)]))
        .sum()
}

/// Removes every statement `apimount` wrote on `function`, as a person in the
/// console might.
async fn strip_statements(fx: &Fixture, api: &str, function: &str) -> usize {
    let ours: Vec<String> = fx
        .all_policy_statements(function)
        .await
        .iter()
        .filter_map(|s| s.get("Sid").and_then(Value::as_str).map(str::to_string))
        .filter(|sid| sid.starts_with(&support::sid_prefix(api, OWNER)))
        .collect();
    for sid in &ours {
        fx.lambda
            .remove_permission()
            .function_name(function)
            .statement_id(sid)
            .send()
            .await
            .unwrap_or_else(|e| panic!("RemovePermission {function} {sid}: {e:?}"));
    }
    ours.len()
}

/// After a manifest change the daemon reads only the functions it has not
/// read before (a new mount's), so an edit does not wait for every policy
/// under the 15-per-second Lambda quota; a resync reads every function again
/// and heals a statement removed by hand.
#[tokio::test]
async fn a_manifest_change_reads_only_new_functions_and_a_resync_reads_all() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("reads").await;
    let dir = manifest_dir();
    for name in ["alpha", "beta", "gamma"] {
        fx.create_function(&format!("{name}-service")).await;
        support::write_manifest(
            dir.path(),
            &format!("{name}.yaml"),
            &mount_yaml(name, &format!("/{name}"), &format!("{name}-service"), ""),
        );
    }
    let args = |resync: &'static str| {
        vec![
            "--manifests".to_string(),
            dir.path().to_str().unwrap().to_string(),
            "--rest-api-id".to_string(),
            api.clone(),
            "--resync-interval".to_string(),
            resync.to_string(),
            "--quota-share".to_string(),
            "100%".to_string(),
        ]
    };
    let all_mounted = |names: &'static [&'static str]| {
        let (fx, api) = (&fx, &api);
        move || async move {
            let r = routes(fx, api).await;
            fx.stage_deployment(api, STAGE).await?;
            names
                .iter()
                .all(|n| mounted(&r, &format!("/{n}"), n, &["ANY"]))
                .then_some(())
        }
    };

    // 1. No resync during this part: every pass is the start or a change.
    let first_args = args("10m");
    let first_args: Vec<&str> = first_args.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&fx, &first_args);
    daemon
        .wait_for(
            "three mounts deployed",
            DEADLINE,
            all_mounted(&["alpha", "beta", "gamma"]),
        )
        .await;
    daemon.wait_ready().await;
    let start_reads = lambda_reads(&daemon);
    assert!(
        start_reads >= 3.0,
        "the first pass reads every function: {start_reads}"
    );
    assert_eq!(strip_statements(&fx, &api, "alpha-service").await, 2);

    fx.create_function("delta-service").await;
    let deployed_before = fx.stage_deployment(&api, STAGE).await;
    support::write_manifest(
        dir.path(),
        "delta.yaml",
        &mount_yaml("delta", "/delta", "delta-service", ""),
    );
    daemon
        .wait_for("/delta mounted and deployed", DEADLINE, || async {
            let r = routes(&fx, &api).await;
            let now = fx.stage_deployment(&api, STAGE).await;
            (mounted(&r, "/delta", "delta", &["ANY"]) && now != deployed_before).then_some(())
        })
        .await;
    // The pass logs its line after it deployed: wait for the line too.
    let passes = daemon
        .wait_for("the change's pass line", DEADLINE, || async {
            let passes = daemon.lines_with("pass finished");
            (passes.len() >= 2).then_some(passes)
        })
        .await;
    let last = passes.last().expect("a pass line");
    assert!(
        last.contains("trigger=\"manifests changed\"")
            && text_field(last, "functions_read") == Some("changed"),
        "the last pass was the change's: {last}"
    );
    // delta-service has no policy yet: GetPolicy answers 404, then
    // GetFunction resolves it. Nothing else is read.
    let change_reads = lambda_reads(&daemon) - start_reads;
    assert_eq!(
        change_reads,
        2.0,
        "the change's pass reads only the new function\n{}",
        daemon.stderr()
    );
    assert!(
        fx.all_policy_statements("alpha-service").await.is_empty(),
        "alpha's statements are not re-read, so not restored, on a change"
    );
    drop(daemon);

    // 2. A resync every 2 s and no manifest changes: every pass after the
    //    first is a resync, and a resync reads (and heals) every function.
    let second_args = args("2s");
    let second_args: Vec<&str> = second_args.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&fx, &second_args);
    daemon.wait_ready().await;
    let sids = |f: &'static str| {
        let fx = &fx;
        async move { fx.all_policy_statements(f).await.len() }
    };
    assert_eq!(sids("alpha-service").await, 2, "the first pass heals alpha");
    let healed_by_start = daemon.lines_with("pass finished").len();
    assert_eq!(strip_statements(&fx, &api, "beta-service").await, 2);
    daemon
        .wait_for(
            "a resync to restore beta's statements",
            Duration::from_secs(15),
            || async { (sids("beta-service").await == 2).then_some(()) },
        )
        .await;
    let resyncs: Vec<String> = daemon
        .lines_with("pass finished")
        .into_iter()
        .skip(healed_by_start)
        .collect();
    assert!(!resyncs.is_empty());
    for line in &resyncs {
        assert!(
            text_field(line, "trigger") == Some("resync")
                && text_field(line, "functions_read") == Some("rolling"),
            "passes without a manifest change are resyncs verifying the functions in turn: {line}"
        );
    }
    daemon
        .wait_for(
            "four mounts still deployed",
            DEADLINE,
            all_mounted(&["alpha", "beta", "gamma", "delta"]),
        )
        .await;
}

/// SIGTERM or SIGINT while a pass is held half-way (every PutMethod held
/// 2 s by the proxy): the daemon stops between two calls and exits 0, and
/// the next start converges and deploys what is left.
#[tokio::test]
async fn a_signal_during_a_pass_stops_it_cleanly_and_the_next_start_converges() {
    use crate::support::faults::{FaultProxy, Rule, RuleAction};
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("signals").await;
    fx.create_function("sig-fn").await;
    let dir = manifest_dir();
    for signal in ["TERM", "INT"] {
        for i in 0..4 {
            support::write_manifest(
                dir.path(),
                &format!("{signal}-{i}.yaml"),
                &mount_yaml(
                    &format!("{}-{i}", signal.to_lowercase()),
                    &format!("/{}/{i}", signal.to_lowercase()),
                    "sig-fn",
                    "",
                ),
            );
        }
        let proxy = FaultProxy::strict(
            &fx.endpoint(),
            vec![Rule {
                operation: "apigateway:PutMethod".into(),
                path_contains: None,
                action: RuleAction::Delay(Duration::from_secs(2)),
                times: None,
            }],
        );
        let mut d = Daemon::start_through(
            &fx,
            &proxy.url(),
            &[
                "--manifests",
                dir.path().to_str().unwrap(),
                "--rest-api-id",
                &api,
                "--resync-interval",
                "600s",
            ],
        );
        d.wait_for("a PutMethod held", DEADLINE, || async {
            (proxy.ruled() >= 1).then_some(())
        })
        .await;
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &d.pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let started = Instant::now();
        let status = d
            .wait_for_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no exit after SIG{signal}\n{}", d.stderr()));
        assert_eq!(status.code(), Some(0), "SIG{signal}\n{}", d.stderr());
        // Between two calls: at most the held call and one more.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "stopped after {:?}",
            started.elapsed()
        );
        let held = proxy.ruled();
        assert!(
            held < 8,
            "the pass went on after SIG{signal}: {held} PutMethods"
        );
        proxy.stats().assert_nothing_refused();
        // The next start (a one-shot pass here) finishes the job.
        let out = fx.apimount(&[
            "apply",
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--pacing",
            "off",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", support::show(&out));
        let table = routes(&fx, &api).await;
        for i in 0..4 {
            let path = format!("/{}/{i}", signal.to_lowercase());
            assert!(table.contains_key(&path), "{path}");
        }
        let plan = fx.apimount(&[
            "plan",
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
        ]);
        assert_eq!(plan.status.code(), Some(0), "{}", support::show(&plan));
    }
}

/// A source that cannot be read (the manifest folder removed) is a pass
/// skipped: no write call reaches AWS, every route stays, and the pass is
/// counted as `source_error`.
#[tokio::test]
async fn a_source_that_cannot_be_read_deletes_nothing() {
    use crate::support::faults::FaultProxy;
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("unreadable-source").await;
    fx.create_function("src-fn").await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("manifests");
    for name in ["one", "two"] {
        support::write_manifest(
            &dir,
            &format!("{name}.yaml"),
            &mount_yaml(name, &format!("/{name}"), "src-fn", ""),
        );
    }
    let proxy = FaultProxy::strict(&fx.endpoint(), Vec::new());
    let mut d = Daemon::start_through(
        &fx,
        &proxy.url(),
        &[
            "--manifests",
            dir.to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--resync-interval",
            "2s",
        ],
    );
    d.wait_ready().await;
    let before = routes(&fx, &api).await;
    assert!(before.contains_key("/one") && before.contains_key("/two"));
    let deployed = fx.stage_deployment(&api, "prod").await;
    proxy.take_calls();

    std::fs::remove_dir_all(&dir).unwrap();
    d.wait_for("two passes skipped", DEADLINE, || async {
        (source_errors(&d) >= 2.0).then_some(())
    })
    .await;
    let writes = writes_since(&proxy);
    assert!(
        writes.is_empty(),
        "writes after the folder went: {writes:?}"
    );
    assert_eq!(routes(&fx, &api).await, before);
    assert_eq!(fx.stage_deployment(&api, "prod").await, deployed);
    assert!(
        !d.lines_with("manifest source unreadable").is_empty(),
        "{}",
        d.stderr()
    );
    let status = d.terminate();
    assert!(status.success(), "{status}");
    proxy.stats().assert_nothing_refused();
}

/// Passes the daemon skipped because the source could not be read.
fn source_errors(d: &Daemon) -> f64 {
    let (_, body) = d.get("/metrics").expect("/metrics");
    metric(
        &parse_metrics(&body),
        "apimount_passes_total",
        &[("result", "source_error")],
    )
    .unwrap_or(0.0)
}

/// The calls other than reads the proxy forwarded since it was last asked.
fn writes_since(proxy: &crate::support::faults::FaultProxy) -> Vec<String> {
    proxy
        .take_calls()
        .into_iter()
        .map(|(_, op)| op)
        .filter(|op| !(op.contains(":Get") || op.contains(":List") || op.starts_with("GET ")))
        .collect()
}

/// An S3 source whose listing fails writes nothing it should not: one
/// tenant's sub-prefix failing holds that tenant's routes while the others
/// go on; the whole prefix failing skips the pass (counted as
/// `source_error`) and writes nothing at all.
#[tokio::test]
async fn an_s3_listing_that_fails_deletes_nothing() {
    use crate::support::faults::{Fault, FaultProxy, Rule};
    const BUCKET: &str = "failing-source";
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("failing-s3").await;
    fx.create_function("acct-fn").await;
    fx.create_function("pay-fn").await;
    fx.create_bucket(BUCKET).await;
    let policy_dir = manifest_dir();
    let policy = policy_dir.path().join("tenants.yaml");
    std::fs::write(
        &policy,
        "apiVersion: apimount/v1\nkind: TenantPolicy\ntenants:\n  - name: accounts\n    paths: [/accounts]\n    functions: [\"acct-*\"]\n    authorizations: [NONE]\n  - name: payments\n    paths: [/payments]\n    functions: [\"pay-*\"]\n    authorizations: [NONE]\n",
    )
    .unwrap();
    let put = |key: &'static str, body: String| fx.put_object(BUCKET, key, body);
    put(
        "m/accounts/a.yaml",
        mount_yaml("a", "/accounts", "acct-fn", ""),
    )
    .await;
    put(
        "m/payments/p.yaml",
        mount_yaml("p", "/payments", "pay-fn", ""),
    )
    .await;
    put(
        "m/payments/q.yaml",
        mount_yaml("q", "/payments/q", "pay-fn", "  proxy: false\n"),
    )
    .await;
    let proxy = FaultProxy::strict(&fx.endpoint(), Vec::new());
    let source = format!("s3://{BUCKET}/m");
    let d = Daemon::start_through(
        &fx,
        &proxy.url(),
        &[
            "--source",
            &source,
            "--tenants",
            policy.to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--poll-interval",
            "1s",
            "--resync-interval",
            "2s",
            "--allow-mass-delete",
        ],
    );
    let has = |path: &'static str| {
        let fx = &fx;
        let api = api.clone();
        move || {
            let api = api.clone();
            async move { routes(fx, &api).await.contains_key(path).then_some(()) }
        }
    };
    d.wait_for("both tenants mounted", DEADLINE, has("/payments"))
        .await;
    d.wait_for("accounts mounted", DEADLINE, has("/accounts"))
        .await;

    // payments' sub-prefix cannot be listed, and its manifest is gone: its
    // route stays; accounts goes on (a new mount is made).
    proxy.set_rules(vec![Rule::fail(
        &format!("GET /{BUCKET}"),
        Fault::InternalError,
    )
    .on_path("prefix=m%2Fpayments")]);
    fx.s3()
        .delete_object()
        .bucket(BUCKET)
        .key("m/payments/p.yaml")
        .send()
        .await
        .unwrap();
    let deployed = fx.stage_deployment(&api, "prod").await;
    let passes = d.lines_with("pass finished").len();
    put(
        "m/accounts/b.yaml",
        mount_yaml("b", "/accounts/b", "acct-fn", "  proxy: false\n"),
    )
    .await;
    d.wait_for("accounts' new mount made", DEADLINE, has("/accounts/b"))
        .await;
    d.wait_for("and deployed", DEADLINE, || async {
        (fx.stage_deployment(&api, "prod").await != deployed).then_some(())
    })
    .await;
    // The pass that made it is over (its last writes are after the deployment).
    d.wait_for("its pass finished", DEADLINE, || async {
        (d.lines_with("pass finished").len() > passes).then_some(())
    })
    .await;
    assert!(
        proxy.ruled() > 0,
        "the listing of payments was failed: {:?}",
        proxy
            .requests()
            .iter()
            .filter(|r| r.query.as_deref().unwrap_or("").contains("payments"))
            .map(|r| format!("{} {}?{:?}", r.method, r.path, r.query))
            .collect::<Vec<_>>()
    );
    assert!(
        routes(&fx, &api).await.contains_key("/payments"),
        "a tenant whose prefix cannot be listed keeps its routes"
    );

    // The whole prefix cannot be listed: no pass writes anything.
    proxy.set_rules(vec![Rule::fail(
        &format!("GET /{BUCKET}"),
        Fault::InternalError,
    )]);
    fx.s3()
        .delete_object()
        .bucket(BUCKET)
        .key("m/accounts/b.yaml")
        .send()
        .await
        .unwrap();
    // Passes run one at a time: once one has been skipped, a pass that
    // started before the listing failed is over, and nothing may write.
    d.wait_for("a pass skipped", DEADLINE, || async {
        (source_errors(&d) >= 1.0).then_some(())
    })
    .await;
    let before = routes(&fx, &api).await;
    proxy.take_calls();
    d.wait_for("two more passes skipped", DEADLINE, || async {
        (source_errors(&d) >= 3.0).then_some(())
    })
    .await;
    let writes = writes_since(&proxy);
    assert!(
        writes.is_empty(),
        "writes while the source cannot be listed: {writes:?}"
    );
    assert_eq!(routes(&fx, &api).await, before);
}
