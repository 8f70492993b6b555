//! The IAM policy in `deploy/iam-policy.json` allows every call apimount
//! makes. Every request of the scenarios below is recorded at the proxy in
//! front of moto, named as the IAM action and resource ARN AWS authorises it
//! by, and judged against the policy with IAM's matching rules
//! (`support::iam`). A call the policy does not allow, or one the check
//! cannot name, fails the test with the call spelled out.
//!
//! The scenarios: a daemon with an S3 source under a tenant policy, status
//! documents in S3 and the DynamoDB lease, mounting every route option (CORS,
//! throttling, timeout), IAM and CUSTOM authorization (the authorizer
//! delegated by name), a Lambda alias, then an edit and a removal; a
//! release with a guard alarm, rolled back when the guard fires; and
//! `apply`, `plan`, `status` and `wait` on a folder while the answers of the
//! calls apimount must recover from are lost (CreateResource, PutMethod,
//! AddPermission).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::faults::{Fault, FaultProxy, Recorded, Rule};
use crate::support::iam::{iam_call, IamCall, Policy};
use crate::support::{manifest_dir, mount_yaml, show, write_manifest, Fixture};

const BUCKET: &str = "iam-config";
const TABLE: &str = "iam-lease";
const DEADLINE: Duration = Duration::from_secs(60);

const TENANTS: &str = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: accounts
    paths: [/accounts]
    functions: [\"iam-accounts*\"]
    authorizations: [NONE, AWS_IAM]
  - name: payments
    paths: [/payments]
    functions: [\"iam-payments*\"]
    authorizations: [NONE, CUSTOM]
    authorizers: [payments-jwt]
";

const OPTIONS: &str = "  authorization: AWS_IAM
  cors:
    allowOrigins: [\"https://app.example.com\"]
  throttle:
    rateLimit: 100
    burstLimit: 200
  timeoutMs: 5000
";

/// Every action the scenarios must have made, so the check cannot pass by
/// seeing nothing.
const EXPECTED: [&str; 22] = [
    "apigateway:GET",
    "apigateway:POST",
    "apigateway:PUT",
    "apigateway:PATCH",
    "apigateway:DELETE",
    "lambda:GetFunction",
    "lambda:GetPolicy",
    "lambda:AddPermission",
    "lambda:RemovePermission",
    "lambda:GetAlias",
    "lambda:CreateAlias",
    "lambda:UpdateAlias",
    "lambda:GetFunctionConfiguration",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:DeleteAlarms",
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
];

async fn status_doc(fx: &Fixture, key: &str) -> Option<Value> {
    let o = fx
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = o.body.collect().await.ok()?.into_bytes();
    serde_json::from_slice(&bytes).ok()
}

fn programmed(doc: &Value) -> bool {
    doc["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Programmed" && c["status"] == "True")
}

#[tokio::test]
async fn the_iam_policy_allows_every_call_apimount_makes() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("shared").await;
    fx.create_function("iam-accounts").await;
    fx.create_function("iam-payments").await;
    fx.create_alias("iam-payments", "live").await;
    fx.create_bucket(BUCKET).await;
    fx.create_lease_table(TABLE).await;
    let authorizer = fx
        .create_token_authorizer(&api, "payments-jwt", "iam-payments")
        .await;
    let policy_dir = manifest_dir();
    let tenants = policy_dir.path().join("tenants.yaml");
    std::fs::write(&tenants, TENANTS).unwrap();
    let put = |key: &'static str, body: String| fx.put_object(BUCKET, key, body);
    put(
        "manifests/accounts/accounts.yaml",
        mount_yaml("accounts", "/accounts", "iam-accounts", OPTIONS),
    )
    .await;
    put(
        "manifests/payments/payments.yaml",
        mount_yaml(
            "payments",
            "/payments",
            "iam-payments:live",
            &format!("  authorization: CUSTOM\n  authorizerId: {authorizer}\n"),
        ),
    )
    .await;

    // The daemon: S3 source, tenants, status documents in S3, the lease.
    let mut d = Daemon::start(
        &fx,
        &[
            "--rest-api-id",
            &api,
            "--source",
            &format!("s3://{BUCKET}/manifests"),
            "--tenants",
            tenants.to_str().unwrap(),
            "--status-prefix",
            &format!("s3://{BUCKET}/status/"),
            "--lease-table",
            TABLE,
            "--poll-interval",
            "1s",
            "--allow-mass-delete",
        ],
    );
    d.wait_ready().await;
    for key in [
        "status/accounts/accounts.yaml.status.json",
        "status/payments/payments.yaml.status.json",
    ] {
        d.wait_for(&format!("{key} programmed"), DEADLINE, || async {
            status_doc(&fx, key).await.filter(programmed).map(|_| ())
        })
        .await;
    }
    // An edit (the throttle goes) and a removal (payments goes).
    put(
        "manifests/accounts/accounts.yaml",
        mount_yaml(
            "accounts",
            "/accounts",
            "iam-accounts",
            &OPTIONS.replace("  throttle:\n    rateLimit: 100\n    burstLimit: 200\n", ""),
        ),
    )
    .await;
    fx.s3()
        .delete_object()
        .bucket(BUCKET)
        .key("manifests/payments/payments.yaml")
        .send()
        .await
        .unwrap();
    d.wait_for("payments' status document removed", DEADLINE, || async {
        status_doc(&fx, "status/payments/payments.yaml.status.json")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    d.wait_for("/payments unmounted", DEADLINE, || async {
        (!fx.resource_paths(&api)
            .await
            .iter()
            .any(|p| p == "/payments"))
        .then_some(())
    })
    .await;
    let status = d.terminate();
    assert!(status.success(), "{}", d.stderr());

    // The CLI on a folder, with the answers to recover from lost.
    let lossy = FaultProxy::strict(
        &fx.endpoint(),
        vec![
            Rule::lose("apigateway:CreateResource", Fault::Reset).times(1),
            Rule::lose("apigateway:PutMethod", Fault::Reset).times(1),
            Rule::lose("lambda:AddPermission", Fault::Reset).times(1),
        ],
    );
    let dir = manifest_dir();
    write_manifest(
        dir.path(),
        "orders.yaml",
        &mount_yaml("orders", "/orders", "iam-accounts", "  proxy: false\n"),
    );
    let folder = dir.path().to_str().unwrap();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--manifests", folder, "--rest-api-id", &api]);
        let mut cmd = fx.apimount_command(&all);
        cmd.env("AWS_ENDPOINT_URL", lossy.url());
        cmd.output().expect("run apimount")
    };
    let out = cli(&["apply", "--allow-mass-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        lossy.stats().lost_answers(),
        3,
        "each recovery ran: {}",
        lossy.stats()
    );
    for args in [
        &["plan"][..],
        &["status"][..],
        &["wait", "--name", "orders", "--timeout", "20s"][..],
    ] {
        let out = cli(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", show(&out));
    }
    // A daemon without the lease table announces itself on the stage: the
    // instance tag is claimed, renewed and given up.
    let mut tagged = Daemon::start(
        &fx,
        &[
            "--rest-api-id",
            &api,
            "--manifests",
            folder,
            "--instance-lease",
            "3s",
        ],
    );
    tagged.wait_ready().await;
    let claimed = || async {
        fx.stage_tags(&api, "prod")
            .await
            .contains_key("apimount:apimount:instance")
    };
    tagged
        .wait_for("the instance tag written", DEADLINE, || async {
            claimed().await.then_some(())
        })
        .await;
    tagged
        .wait_for("the instance tag renewed", DEADLINE, || async {
            (fx.strict_requests()
                .iter()
                .filter(|r| r.method == "PUT" && r.path.starts_with("/tags/"))
                .count()
                >= 2)
                .then_some(())
        })
        .await;
    let status = tagged.terminate();
    assert!(status.success(), "{}", tagged.stderr());
    assert!(!claimed().await, "the tag is removed on SIGTERM");

    // A release with a guard alarm: the alias made, the guard made, the
    // traffic moved, the guard's alarm firing, the rollback, the guard gone.
    fx.create_function("iam-orders").await;
    let (v1, v2) = (
        fx.publish_version("iam-orders", 1).await,
        fx.publish_version("iam-orders", 2).await,
    );
    fx.create_alarm("iam-orders-5xx").await;
    let cw = aws_sdk_cloudwatch::Client::new(fx.sdk_config());
    let releases = manifest_dir();
    let release = |v: &str| {
        mount_yaml(
            "orders",
            "/orders",
            "iam-orders",
            &format!("  release:\n    version: \"{v}\"\n    steps: [{{weight: 10, pause: 1h}}]\n    alarms: [iam-orders-5xx]\n    guard: {{maxErrorRate: 5}}\n"),
        )
    };
    write_manifest(releases.path(), "orders.yaml", &release(&v1));
    let mut releasing = Daemon::start(
        &fx,
        &[
            "--rest-api-id",
            &api,
            "--manifests",
            releases.path().to_str().unwrap(),
            "--release-poll",
            "1s",
            "--allow-mass-delete",
        ],
    );
    releasing.wait_ready().await;
    let weights = || async {
        fx.lambda
            .get_alias()
            .function_name("iam-orders")
            .name("apimount_orders")
            .send()
            .await
            .ok()
            .map(|a| {
                a.routing_config()
                    .and_then(|r| r.additional_version_weights())
                    .map_or(0, |w| w.len())
            })
    };
    releasing
        .wait_for("the alias", DEADLINE, || async { weights().await })
        .await;
    write_manifest(releases.path(), "orders.yaml", &release(&v2));
    releasing
        .wait_for("the release under way", DEADLINE, || async {
            weights().await.filter(|n| *n == 1)
        })
        .await;
    cw.set_alarm_state()
        .alarm_name("apimount-guard-iam-orders-apimount_orders")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("the test")
        .send()
        .await
        .expect("SetAlarmState");
    releasing
        .wait_for("the rollback", DEADLINE, || async {
            weights().await.filter(|n| *n == 0)
        })
        .await;
    releasing
        .wait_for("the guard deleted", DEADLINE, || async {
            fx.strict_requests()
                .iter()
                .any(|r| r.path.ends_with("/DeleteAlarms"))
                .then_some(())
        })
        .await;
    let status = releasing.terminate();
    assert!(status.success(), "{}", releasing.stderr());

    // The layer refused only the SDK's retries of the lost calls, as AWS would.
    let stats = lossy.stats();
    assert_eq!(stats.refusals, stats.retry_refusals, "{stats}");
    assert_eq!(stats.strict_lookup_errors, 0, "{stats}");

    // Every call, judged.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/iam-policy.json"
    ))
    .expect("deploy/iam-policy.json");
    let policy = Policy::parse(
        &text,
        &[
            ("PARTITION", "aws"),
            ("REGION", fx.region()),
            ("ACCOUNT_ID", fx.account_id()),
            ("REST_API_ID", &api),
            ("STAGE", "prod"),
            ("FUNCTION_PREFIX", "iam-"),
            ("MANIFEST_BUCKET", BUCKET),
            ("MANIFEST_PREFIX", "manifests"),
            ("STATUS_BUCKET", BUCKET),
            ("STATUS_PREFIX", "status"),
            ("LEASE_TABLE", TABLE),
        ],
    );
    let recorded: Vec<Recorded> = fx
        .strict_requests()
        .into_iter()
        .chain(lossy.requests())
        .collect();
    let mut unknown = Vec::new();
    let mut denied: BTreeSet<IamCall> = BTreeSet::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for r in &recorded {
        match iam_call(r, "aws", fx.account_id()) {
            Err(e) => unknown.push(e),
            Ok(None) => {}
            Ok(Some(call)) => {
                seen.insert(call.action.clone());
                if !policy.allows(&call) {
                    denied.insert(call);
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "calls the check cannot name: {unknown:#?}"
    );
    assert!(
        denied.is_empty(),
        "deploy/iam-policy.json does not allow {} call(s) apimount made:\n{}",
        denied.len(),
        denied
            .iter()
            .map(|c| format!("  {} on {} {:?}", c.action, c.resource, c.context))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|a| !seen.contains(*a))
        .collect();
    assert!(
        missing.is_empty(),
        "the scenarios never made {missing:?}; seen {seen:?}"
    );
}
