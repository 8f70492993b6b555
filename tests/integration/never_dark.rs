//! A failed change never takes a serving route offline, and one mount's
//! failure never blocks another's deployment, judged by AWS's rules: on moto
//! behind the strict layer of the fault proxy (which refuses what AWS
//! refuses), and on LocalStack, whose stage serves what was deployed.

use std::path::Path;
use std::process::Output;

use aws_sdk_apigateway::types::{Op, PatchOperation};

use crate::support::faults::{Fault, FaultConfig, FaultProxy, Refusal, Rule};
use crate::support::localstack::{self, LocalStackFixture};
use crate::support::{manifest_dir, mount_yaml, show, write_manifest, Fixture};

const STAGE: &str = "prod";

fn strict(fx_endpoint: &str, rules: Vec<Rule>) -> FaultProxy {
    FaultProxy::strict(fx_endpoint, rules)
}

fn apply(fx: &Fixture, dir: &Path, api: &str, proxy: &FaultProxy) -> Output {
    fx.apimount_with_env(
        &[
            "apply",
            "--manifests",
            dir.to_str().unwrap(),
            "--rest-api-id",
            api,
            "--pacing",
            "off",
        ],
        &[("AWS_ENDPOINT_URL", &proxy.url())],
    )
}

async fn method_of(
    fx: &Fixture,
    api: &str,
    path: &str,
    verb: &str,
) -> Option<crate::support::MethodView> {
    fx.route_table(api).await.get(path)?.get(verb).cloned()
}

/// A method repaired by delete-and-put (moto cannot patch) whose put fails
/// is put back as it was, and the other mounts' changes go live in the same
/// pass.
#[tokio::test]
async fn a_failed_repair_puts_the_method_back_and_the_others_deploy() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("nd-a").await;
    fx.create_function("nd-c").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "a.yaml",
        &mount_yaml("a", "/a", "nd-a", "  proxy: false\n"),
    );
    let proxy = strict(&fx.endpoint(), Vec::new());
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // A hand edit: the API key becomes required on /a (moto cannot patch,
    // so it is made as a person with the SDK would on moto: delete, put).
    let before = method_of(&fx, &api, "/a", "ANY").await.unwrap();
    let rid = fx
        .resource_at(&api, "/a")
        .await
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    fx.apigateway
        .delete_method()
        .rest_api_id(&api)
        .resource_id(&rid)
        .http_method("ANY")
        .send()
        .await
        .unwrap();
    fx.apigateway
        .put_method()
        .rest_api_id(&api)
        .resource_id(&rid)
        .http_method("ANY")
        .authorization_type("NONE")
        .api_key_required(true)
        .set_operation_name(before.operation_name.clone())
        .send()
        .await
        .unwrap();
    fx.apigateway
        .put_integration()
        .rest_api_id(&api)
        .resource_id(&rid)
        .http_method("ANY")
        .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(before.integration_uri.clone().unwrap())
        .send()
        .await
        .unwrap();
    let drifted = method_of(&fx, &api, "/a", "ANY").await.unwrap();
    assert_eq!(drifted.api_key_required, Some(true));
    // Another team's change in the same pass.
    write_manifest(
        dir.path(),
        "c.yaml",
        &mount_yaml("c", "/c", "nd-c", "  proxy: false\n"),
    );
    let deployed_before = fx.stage_deployment(&api, STAGE).await;

    // The repair's PutMethod fails on every attempt of the SDK; the one after
    // (putting the method back) goes through.
    proxy.set_rules(vec![Rule::fail(
        "apigateway:PutMethod",
        Fault::InternalError,
    )
    .on_path(&format!("/resources/{rid}/"))
    .times(5)]);
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        proxy.ruled() >= 5,
        "the faults were not aimed at the repair"
    );
    assert_eq!(
        method_of(&fx, &api, "/a", "ANY").await.as_ref(),
        Some(&drifted),
        "the method is back as it was before the pass\n{}",
        show(&out)
    );
    assert!(method_of(&fx, &api, "/c", "ANY").await.is_some());
    let deployed_after = fx.stage_deployment(&api, STAGE).await;
    assert_ne!(
        deployed_after,
        deployed_before,
        "c went live in the same pass\n{}",
        show(&out)
    );
    let stats = proxy.stats();
    assert_eq!(stats.refusals[&Refusal::NoIntegration], 0, "{stats}");

    // Without faults the next pass repairs it.
    proxy.set_rules(Vec::new());
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        method_of(&fx, &api, "/a", "ANY")
            .await
            .unwrap()
            .api_key_required,
        Some(false)
    );
}

/// A repair by delete-and-put cut short after the delete (here the put and
/// the put-back both fail; a crash would do the same) leaves a bare
/// resource, which carries no owner's marker. The journal names it, so once
/// its manifest is gone the next pass removes it rather than leaving it to
/// nobody.
#[tokio::test]
async fn a_repair_cut_short_leaves_nothing_behind_once_its_manifest_goes() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("nd-r").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "r.yaml",
        &mount_yaml("r", "/r", "nd-r", "  proxy: false\n"),
    );
    // Another route, so the API still has one to deploy at the end.
    write_manifest(
        dir.path(),
        "k.yaml",
        &mount_yaml("k", "/k", "nd-r", "  proxy: false\n"),
    );
    let proxy = strict(&fx.endpoint(), Vec::new());
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // The manifest now asks for an API key: a repair of ANY /r, which moto
    // makes by delete-and-put. Every PutMethod on /r fails, the put-back too.
    write_manifest(
        dir.path(),
        "r.yaml",
        &mount_yaml(
            "r",
            "/r",
            "nd-r",
            "  proxy: false\n  apiKeyRequired: true\n",
        ),
    );
    let rid = fx
        .resource_at(&api, "/r")
        .await
        .and_then(|r| r.id().map(str::to_string))
        .expect("/r");
    proxy.set_rules(vec![Rule::fail(
        "apigateway:PutMethod",
        Fault::InternalError,
    )
    .on_path(&format!("/resources/{rid}/"))]);
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(proxy.ruled() > 0, "the faults were not aimed at the repair");
    let bare = fx.resource_at(&api, "/r").await.expect("/r stays");
    assert!(
        bare.resource_methods().is_none_or(|m| m.is_empty()),
        "the repair was meant to be cut short after its delete: {bare:?}\n{}",
        show(&out)
    );

    // The team removes its manifest: the bare resource goes with it.
    proxy.set_rules(Vec::new());
    std::fs::remove_file(dir.path().join("r.yaml")).expect("remove r.yaml");
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        fx.resource_at(&api, "/r").await.is_none(),
        "the bare resource a cut-short repair left is still there\n{}",
        show(&out)
    );
    let stats = proxy.stats();
    assert!(
        stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
        "{stats}"
    );
}

/// A mount whose PutIntegration keeps failing is rolled back, so the API
/// stays deployable (AWS refuses a deployment while a method lacks an
/// integration) and the other mount's change goes live.
#[tokio::test]
async fn a_mount_whose_integration_keeps_failing_does_not_block_the_others() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("nd-x").await;
    fx.create_function("nd-y").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "y.yaml",
        &mount_yaml("y", "/y", "nd-y", "  proxy: false\n"),
    );
    let proxy = strict(&fx.endpoint(), Vec::new());
    assert_eq!(apply(&fx, dir.path(), &api, &proxy).status.code(), Some(0));
    let deployed_before = fx.stage_deployment(&api, STAGE).await;

    write_manifest(
        dir.path(),
        "x.yaml",
        &mount_yaml("x", "/x", "nd-x", "  proxy: false\n  methods: [PUT]\n"),
    );
    write_manifest(
        dir.path(),
        "y.yaml",
        &mount_yaml("y", "/y", "nd-y", "  proxy: false\n  methods: [GET]\n"),
    );
    proxy.set_rules(vec![Rule::fail(
        "apigateway:PutIntegration",
        Fault::InternalError,
    )
    .on_path("/methods/PUT/")]);
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let table = fx.route_table(&api).await;
    assert!(
        table.get("/x").is_none_or(|m| m.is_empty()),
        "x's half-made method is gone: {:?}\n{}",
        table.get("/x"),
        show(&out)
    );
    assert!(table["/y"].contains_key("GET") && !table["/y"].contains_key("ANY"));
    let stats = proxy.stats();
    assert_eq!(
        stats.refusals[&Refusal::NoIntegration],
        0,
        "{stats}\n{}",
        show(&out)
    );
    assert_ne!(
        fx.stage_deployment(&api, STAGE).await,
        deployed_before,
        "y's change is deployed\n{}",
        show(&out)
    );
}

/// Answers lost after AWS executed a create: the SDK's retry gets the 409
/// AWS gives, and apimount takes the object as its own, in the same pass.
#[tokio::test]
async fn lost_answers_to_creates_are_resolved_in_the_same_pass() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("nd-l").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "l.yaml",
        &mount_yaml("l", "/l/deep", "nd-l", ""),
    );
    let proxy = strict(
        &fx.endpoint(),
        vec![
            Rule::lose("apigateway:CreateResource", Fault::Reset).times(1),
            Rule::lose("apigateway:PutMethod", Fault::InternalError).times(1),
            Rule::lose("lambda:AddPermission", Fault::Unavailable).times(1),
        ],
    );
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(
        out.status.code(),
        Some(0),
        "one pass converges\n{}",
        show(&out)
    );
    let stats = proxy.stats();
    assert!(proxy.ruled() >= 3, "{stats}");
    assert!(
        stats.retry_refusals.values().sum::<usize>() >= 3,
        "the retries met AWS's 409s: {stats}"
    );
    let paths = fx.resource_paths(&api).await;
    assert_eq!(
        paths,
        ["/", "/l", "/l/deep", "/l/deep/{proxy+}"],
        "no duplicates"
    );
    assert_eq!(fx.policy_statements("nd-l", None).await.len(), 2);
    let plan = fx.apimount_with_env(
        &[
            "plan",
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
        ],
        &[("AWS_ENDPOINT_URL", &proxy.url())],
    );
    assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));
}

// ---- on LocalStack: what the live stage serves ----------------------------------------

fn ls_apply(fx: &LocalStackFixture<'_>, dir: &Path, api: &str, endpoint: &str) -> Output {
    let mut cmd = fx.apimount_command([
        "apply",
        "--manifests",
        dir.to_str().unwrap(),
        "--rest-api-id",
        api,
        "--pacing",
        "off",
    ]);
    cmd.env("AWS_ENDPOINT_URL", endpoint);
    cmd.output().unwrap()
}

/// The body of GET `path` on the stage says whether the stage has the route.
fn served(fx: &LocalStackFixture<'_>, api: &str, path: &str) -> bool {
    // No answer at all says nothing about the route: it fails the test.
    let Some((status, body)) = fx.localstack.stage_get(api, STAGE, path) else {
        panic!(
            "LocalStack did not answer GET {path} on stage {STAGE}; log tail:\n{}",
            fx.localstack.log_tail(30)
        )
    };
    // No route: 403 "Missing Authentication Token" (or 404). Anything else
    // (the Lambda cannot run here: 5xx; an API key now required: 403
    // "Forbidden") means the stage has the route.
    !(status == 404 || (status == 403 && body.contains("Missing Authentication Token")))
}

#[tokio::test]
async fn on_localstack_a_failed_repair_stays_served_and_healed_drift_is_served_again() {
    let ls = localstack::shared();
    let fx = ls.fixture("never-dark").await;
    let (api, _) = fx.create_rest_api("never-dark").await;
    fx.create_function("never-dark-a").await;
    fx.create_function("never-dark-c").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "a.yaml",
        &mount_yaml("a", "/a", "never-dark-a", "  proxy: false\n"),
    );
    let proxy = FaultProxy::start(
        &fx.endpoint(),
        FaultConfig {
            fault_rate: 0.0,
            delay_rate: 0.0,
            ..FaultConfig::default()
        },
    );
    let out = ls_apply(&fx, dir.path(), &api, &proxy.url());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(served(&fx, &api, "/a"));

    // Drift: the API key required on /a by hand (on the API, not deployed).
    let rid = fx
        .resources(&api)
        .await
        .into_iter()
        .find(|r| r.path() == Some("/a"))
        .and_then(|r| r.id().map(str::to_string))
        .unwrap();
    fx.apigateway
        .update_method()
        .rest_api_id(&api)
        .resource_id(&rid)
        .http_method("ANY")
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/apiKeyRequired")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    write_manifest(
        dir.path(),
        "c.yaml",
        &mount_yaml("c", "/c", "never-dark-c", "  proxy: false\n"),
    );
    // The repair fails on every attempt.
    proxy.set_rules(vec![Rule::fail(
        "apigateway:UpdateMethod",
        Fault::InternalError,
    )]);
    let out = ls_apply(&fx, dir.path(), &api, &proxy.url());
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        proxy.ruled() > 0,
        "the repair was tried in place\n{}",
        show(&out)
    );
    assert!(
        served(&fx, &api, "/a"),
        "/a is still served after the failed repair\n{}",
        show(&out)
    );
    assert!(
        served(&fx, &api, "/c"),
        "c went live in the same pass\n{}",
        show(&out)
    );

    // Drift that takes the route off the stage (a hand deployment without
    // the method) is healed and served again.
    proxy.set_rules(Vec::new());
    fx.apigateway
        .delete_method()
        .rest_api_id(&api)
        .resource_id(&rid)
        .http_method("ANY")
        .send()
        .await
        .unwrap();
    let d = fx
        .apigateway
        .create_deployment()
        .rest_api_id(&api)
        .send()
        .await
        .unwrap();
    fx.apigateway
        .update_stage()
        .rest_api_id(&api)
        .stage_name(STAGE)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/deploymentId")
                .value(d.id().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(!served(&fx, &api, "/a"), "the hand deployment dropped /a");
    let out = ls_apply(&fx, dir.path(), &api, &proxy.url());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        served(&fx, &api, "/a"),
        "/a is served again\n{}",
        show(&out)
    );
}

/// A deployment AWS refuses as invalid (400, as for a private API without a
/// resource policy) is `DeployBlocked` with AWS's message: the daemon does
/// not retry it as transient, the stage keeps its deployment, and the next
/// change deploys once AWS accepts.
#[tokio::test]
async fn a_deployment_aws_refuses_is_blocked_not_retried() {
    use crate::support::daemon::{Daemon, DEADLINE};
    use crate::support::logs::{metric, parse_metrics};
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("nd-d").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "d.yaml",
        &mount_yaml("d", "/d", "nd-d", "  proxy: false\n"),
    );
    let proxy = strict(&fx.endpoint(), Vec::new());
    assert_eq!(apply(&fx, dir.path(), &api, &proxy).status.code(), Some(0));
    let deployed_before = fx.stage_deployment(&api, STAGE).await;
    assert!(deployed_before.is_some());

    proxy.set_rules(vec![Rule::fail(
        "apigateway:CreateDeployment",
        Fault::BadRequest,
    )]);
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
    d.wait_ready().await;
    write_manifest(
        dir.path(),
        "e.yaml",
        &mount_yaml("e", "/e", "nd-d", "  proxy: false\n"),
    );
    let line = d
        .wait_for("the refusal reported", DEADLINE, || async {
            d.lines_with("deployment refused").into_iter().next()
        })
        .await;
    assert!(
        line.contains("DeployBlocked") && line.contains("resource policy"),
        "{line}"
    );
    let passes = |d: &Daemon| {
        let (_, body) = d.get("/metrics").expect("/metrics");
        metric(&parse_metrics(&body), "apimount_passes_total", &[]).unwrap_or(0.0)
    };
    let refused = proxy.ruled();
    let before = passes(&d);
    // A transient failure would be retried within a few seconds (backoff
    // from 800 ms); a refusal waits for a change.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(passes(&d), before, "no retry pass\n{}", d.stderr());
    assert_eq!(proxy.ruled(), refused, "no second CreateDeployment");
    assert_eq!(fx.stage_deployment(&api, STAGE).await, deployed_before);

    // AWS accepts again; the next change deploys both.
    proxy.set_rules(Vec::new());
    write_manifest(
        dir.path(),
        "f.yaml",
        &mount_yaml("f", "/f", "nd-d", "  proxy: false\n"),
    );
    d.wait_for("a new deployment", DEADLINE, || async {
        let now = fx.stage_deployment(&api, STAGE).await;
        (now != deployed_before).then_some(())
    })
    .await;
    let table = fx.route_table(&api).await;
    assert!(table.contains_key("/e") && table.contains_key("/f"));
    let status = d.terminate();
    assert!(status.success(), "{status}");
    proxy.stats().assert_nothing_refused();
}

/// A pass that finds the gateway in line with the manifests makes no write
/// call at all: every call the strict layer sees is a read.
#[tokio::test]
async fn a_pass_that_finds_nothing_to_do_writes_nothing() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("nd-q").await;
    let dir = manifest_dir();
    for (name, extra) in [
        ("q", ""),
        ("r", "  methods: [GET, POST]\n  proxy: false\n"),
        (
            "s",
            "  cors:\n    allowOrigins: [\"https://app.example.com\"]\n  timeoutMs: 5000\n",
        ),
    ] {
        write_manifest(
            dir.path(),
            &format!("{name}.yaml"),
            &mount_yaml(name, &format!("/{name}"), "nd-q", extra),
        );
    }
    let proxy = strict(&fx.endpoint(), Vec::new());
    assert_eq!(apply(&fx, dir.path(), &api, &proxy).status.code(), Some(0));
    let made = proxy.take_calls();
    assert!(
        made.iter()
            .any(|(_, op)| op == "apigateway:CreateDeployment"),
        "the first pass wrote: {made:?}"
    );
    let out = apply(&fx, dir.path(), &api, &proxy);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let calls = proxy.take_calls();
    assert!(!calls.is_empty(), "the second pass read the API");
    let writes: Vec<&String> = calls
        .iter()
        .map(|(_, op)| op)
        .filter(|op| !(op.contains(":Get") || op.contains(":List")))
        .collect();
    assert!(
        writes.is_empty(),
        "a pass with nothing to do wrote: {writes:?}\n{}",
        show(&out)
    );
    proxy.stats().assert_nothing_refused();
}

/// A deployment AWS would refuse (a method of another tool without an
/// integration) is blocked before it is sent, through the strict layer:
/// `apply` exits 1 naming the method, no CreateDeployment reaches AWS, the
/// stage keeps its deployment, `wait` exits 1 with the reason; once the
/// method is fixed the next pass deploys and `wait` exits 0.
#[tokio::test]
async fn deploy_blocked_end_to_end() {
    let fx = Fixture::start().await;
    let (api, root) = fx.create_rest_api("shared").await;
    fx.create_function("nd-b").await;
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "a.yaml",
        &mount_yaml("a", "/a", "nd-b", "  proxy: false\n"),
    );
    let args = |verb: &'static str| {
        vec![
            verb.to_string(),
            "--manifests".into(),
            dir.path().to_str().unwrap().to_string(),
            "--rest-api-id".into(),
            api.clone(),
            "--pacing".into(),
            "off".into(),
        ]
    };
    let run = |verb: &'static str, more: &[&str]| {
        let mut a = args(verb);
        a.extend(more.iter().map(|s| s.to_string()));
        fx.apimount_command(&a).output().unwrap()
    };
    assert_eq!(run("apply", &[]).status.code(), Some(0));
    let deployed = fx.stage_deployment(&api, STAGE).await;
    // Another tool's method, put without an integration.
    let hand = fx.create_resource(&api, &root, "hand").await;
    fx.apigateway
        .put_method()
        .rest_api_id(&api)
        .resource_id(&hand)
        .http_method("GET")
        .authorization_type("NONE")
        .send()
        .await
        .unwrap();
    write_manifest(
        dir.path(),
        "b.yaml",
        &mount_yaml("b", "/b", "nd-b", "  proxy: false\n"),
    );
    let out = run("apply", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("DeployBlocked") && text.contains("GET /hand has no integration"),
        "{text}"
    );
    assert_eq!(fx.stage_deployment(&api, STAGE).await, deployed);
    assert_eq!(
        fx.strict_stats().refusals[&Refusal::NoIntegration],
        0,
        "a CreateDeployment AWS refuses was sent"
    );
    let b = dir.path().join("b.yaml");
    let b = b.to_str().unwrap();
    let out = run("wait", &["--file", b, "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DeployBlocked"),
        "{}",
        show(&out)
    );
    // Fixed by its owner: the next pass deploys.
    fx.apigateway
        .put_integration()
        .rest_api_id(&api)
        .resource_id(&hand)
        .http_method("GET")
        .r#type(aws_sdk_apigateway::types::IntegrationType::Mock)
        .send()
        .await
        .unwrap();
    let out = run("apply", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_ne!(fx.stage_deployment(&api, STAGE).await, deployed);
    let out = run("wait", &["--file", b, "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}
