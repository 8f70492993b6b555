//! Progressive delivery on a real emulator: a mount with `spec.release`
//! moves its route's traffic to a published version in steps on the alias
//! apimount owns for it, promotes it, and rolls back by itself when an
//! alarm goes to ALARM; hand edits, reverts, new versions mid-release and
//! removal mid-release are each handled as OPERATIONS says.
//!
//! moto keeps aliases and their routing weights but checks nothing of them
//! and never changes an alias's RevisionId: the strict layer refuses the
//! weights AWS refuses and gives each alias a revision that changes with
//! every write, refusing a stale one (412). Alarms are driven with
//! SetAlarmState.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::{manifest_dir, write_manifest, Fixture};

const ALIAS: &str = "apimount_pay";
const ALARM: &str = "pay-5xx";

/// A manifest releasing `version` of `pay` at /pay.
fn release_yaml(version: &str, steps: &str) -> String {
    format!(
        "apiVersion: apimount/v1
kind: ServiceMount
metadata:
  name: pay
spec:
  path: /pay
  function: pay
  release:
    version: \"{version}\"
{steps}    alarms: [{ALARM}]
"
    )
}

const TWO_STEPS: &str = "    steps:
      - {weight: 10, pause: 2s}
      - {weight: 50, pause: 2s}
";

const LONG_STEP: &str = "    steps:
      - {weight: 20, pause: 1h}
";

fn cloudwatch(fx: &Fixture) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(fx.sdk_config())
}

async fn create_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutMetricAlarm {name}: {e:?}"));
}

async fn set_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str, state: StateValue) {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .unwrap_or_else(|e| panic!("SetAlarmState {name}: {e:?}"));
}

/// Publishes a new version of `function` (its description changed, so AWS
/// would publish one too) and returns its number.
async fn publish(fx: &Fixture, function: &str, n: usize) -> String {
    fx.lambda
        .update_function_configuration()
        .function_name(function)
        .description(format!("build {n}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("UpdateFunctionConfiguration {function}: {e:?}"));
    fx.lambda
        .publish_version()
        .function_name(function)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PublishVersion {function}: {e:?}"))
        .version()
        .expect("a version number")
        .to_string()
}

/// The alias as moto holds it: (version, additional version weights, description).
async fn alias(fx: &Fixture) -> Option<(String, Vec<(String, f64)>, String)> {
    let a = fx
        .lambda
        .get_alias()
        .function_name("pay")
        .name(ALIAS)
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

fn daemon(fx: &Fixture, dir: &std::path::Path, api: &str, status: &std::path::Path) -> Daemon {
    Daemon::start(
        fx,
        &[
            "--manifests",
            dir.to_str().unwrap(),
            "--rest-api-id",
            api,
            "--release-poll",
            "1s",
            "--status-dir",
            status.to_str().unwrap(),
        ],
    )
}

/// The `Released` condition of the status document of pay.yaml.
fn released(status: &std::path::Path) -> Option<Value> {
    let text = std::fs::read_to_string(status.join("pay.yaml.status.json")).ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    doc["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Released")
        .cloned()
}

/// The operations the strict layer forwarded since `from` (an index into its call log).
fn calls_since(fx: &Fixture, from: usize) -> Vec<String> {
    fx.strict_requests()[from..]
        .iter()
        .filter(|r| r.is_write())
        .map(|r| crate::support::faults::operation_of(&r.method, &r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_moves_in_steps_and_is_promoted_with_no_gateway_write() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("releases").await;
    fx.create_function("pay").await;
    let v1 = publish(&fx, "pay", 1).await;
    let v2 = publish(&fx, "pay", 2).await;
    let cw = cloudwatch(&fx);
    create_alarm(&cw, ALARM).await;
    let dir = manifest_dir();
    let status = manifest_dir();
    write_manifest(dir.path(), "pay.yaml", &release_yaml(&v1, TWO_STEPS));
    let d = daemon(&fx, dir.path(), &api, status.path());
    d.wait_ready().await;

    // The first release: the alias is made at the version, and the route
    // and its permission name the alias.
    let first = d
        .wait_for(
            "the alias at the first version",
            Duration::from_secs(20),
            || async { alias(&fx).await.filter(|a| a.0 == v1) },
        )
        .await;
    assert!(
        first.1.is_empty(),
        "no weights on a first release: {first:?}"
    );
    let table = fx.route_table(&api).await;
    let uri = table["/pay"]["ANY"]
        .integration_uri
        .clone()
        .unwrap_or_default();
    assert!(uri.contains(&format!("function:pay:{ALIAS}/")), "{uri}");
    let statements = fx.policy_statements("pay", Some(ALIAS)).await;
    assert!(
        !statements.is_empty(),
        "the alias has the invoke permission"
    );
    d.wait_for("Released True", Duration::from_secs(20), || async {
        released(status.path()).filter(|c| c["status"] == "True")
    })
    .await;

    // A new version: 10 %, then 50 %, then all of it; API Gateway untouched.
    let mark = fx.strict_requests().len();
    write_manifest(dir.path(), "pay.yaml", &release_yaml(&v2, TWO_STEPS));
    let step1 = d
        .wait_for("the first step", Duration::from_secs(20), || async {
            alias(&fx).await.filter(|a| !a.1.is_empty())
        })
        .await;
    assert_eq!(
        (step1.0.as_str(), step1.1.clone()),
        (v1.as_str(), vec![(v2.clone(), 0.1)])
    );
    assert!(step1.2.contains("phase=progressing"), "{}", step1.2);
    let c = d
        .wait_for("Released Progressing", Duration::from_secs(10), || async {
            released(status.path()).filter(|c| c["reason"] == "Progressing")
        })
        .await;
    assert_eq!(c["status"], "False", "{c}");
    d.wait_for("the second step", Duration::from_secs(20), || async {
        alias(&fx).await.filter(|a| a.1 == vec![(v2.clone(), 0.5)])
    })
    .await;
    let done = d
        .wait_for("the promotion", Duration::from_secs(20), || async {
            alias(&fx).await.filter(|a| a.0 == v2 && a.1.is_empty())
        })
        .await;
    assert!(done.2.contains("phase=promoted"), "{}", done.2);
    d.wait_for(
        "Released True at the new version",
        Duration::from_secs(10),
        || async {
            released(status.path()).filter(|c| {
                c["status"] == "True"
                    && c["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains(&format!("version {v2}"))
            })
        },
    )
    .await;
    let writes = calls_since(&fx, mark);
    let gateway: Vec<&String> = writes
        .iter()
        .filter(|w| w.starts_with("apigateway:"))
        .collect();
    assert!(
        gateway.is_empty(),
        "a release writes nothing to API Gateway: {writes:?}"
    );
    let alias_writes = writes.iter().filter(|w| *w == "lambda:UpdateAlias").count();
    assert_eq!(
        alias_writes, 3,
        "2 steps: the start, one advance, the promotion: {writes:?}"
    );
    let metrics = d.get("/metrics").expect("metrics").1;
    assert!(
        metrics.contains("apimount_release_weight{mount=\"pay\"} 100"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_rolls_a_release_back_and_it_stays_back_until_a_new_version() {
    let fx = Fixture::start().await;
    let (api, _) = fx.create_rest_api("releases").await;
    fx.create_function("pay").await;
    let v1 = publish(&fx, "pay", 1).await;
    let v2 = publish(&fx, "pay", 2).await;
    let v3 = publish(&fx, "pay", 3).await;
    let cw = cloudwatch(&fx);
    create_alarm(&cw, ALARM).await;
    let dir = manifest_dir();
    let status = manifest_dir();
    write_manifest(dir.path(), "pay.yaml", &release_yaml(&v1, LONG_STEP));
    let d = daemon(&fx, dir.path(), &api, status.path());
    d.wait_ready().await;
    d.wait_for("the alias", Duration::from_secs(20), || async {
        alias(&fx).await.filter(|a| a.0 == v1)
    })
    .await;

    write_manifest(dir.path(), "pay.yaml", &release_yaml(&v2, LONG_STEP));
    d.wait_for("the first step", Duration::from_secs(20), || async {
        alias(&fx).await.filter(|a| a.1 == vec![(v2.clone(), 0.2)])
    })
    .await;
    set_alarm(&cw, ALARM, StateValue::Alarm).await;
    let back = d
        .wait_for("the rollback", Duration::from_secs(10), || async {
            alias(&fx).await.filter(|a| a.1.is_empty())
        })
        .await;
    assert_eq!(back.0, v1, "the stable version is kept");
    assert!(
        back.2.contains("phase=rolledback") && back.2.contains(ALARM),
        "{}",
        back.2
    );
    let c = d
        .wait_for("Released RolledBack", Duration::from_secs(10), || async {
            released(status.path()).filter(|c| c["reason"] == "RolledBack")
        })
        .await;
    assert!(c["message"].as_str().unwrap_or("").contains(ALARM), "{c}");

    // `wait` gives up at once, naming the alarm.
    let out = fx.apimount(&[
        "wait",
        "--manifests",
        dir.path().to_str().unwrap(),
        "--rest-api-id",
        &api,
        "--name",
        "pay",
        "--timeout",
        "30s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", crate::support::show(&out));
    assert!(
        crate::support::stdout(&out).contains(ALARM),
        "{}",
        crate::support::show(&out)
    );

    // The rollback stands: the alarm going back to OK changes nothing.
    set_alarm(&cw, ALARM, StateValue::Ok).await;
    let mark = fx.strict_requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        alias(&fx).await.map(|a| (a.0, a.1)),
        Some((v1.clone(), vec![]))
    );
    let writes = calls_since(&fx, mark);
    assert!(
        !writes.iter().any(|w| w.starts_with("lambda:")),
        "{writes:?}"
    );

    // A new version starts again from the stable one.
    write_manifest(dir.path(), "pay.yaml", &release_yaml(&v3, LONG_STEP));
    let again = d
        .wait_for("the new release", Duration::from_secs(20), || async {
            alias(&fx).await.filter(|a| !a.1.is_empty())
        })
        .await;
    assert_eq!((again.0, again.1), (v1.clone(), vec![(v3.clone(), 0.2)]));
    let metrics = d.get("/metrics").expect("metrics").1;
    assert!(
        metrics.contains("apimount_release_rollbacks_total 1"),
        "{metrics}"
    );
}
