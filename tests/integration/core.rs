//! End-to-end tests of `apimount validate|plan|apply` against a moto
//! emulator: each test starts its own emulator, arranges a REST API and
//! Lambda functions with the SDK, runs the apimount binary and then inspects
//! the resulting gateway objects and resource policies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};

use crate::support::{
    self, manifest_dir, mount_yaml, show, source_arn_of, write_manifest, Fixture, Integration,
    RouteTable,
};
use aws_sdk_apigateway::types::{IntegrationType, Resource};
use serde_json::Value;
use tempfile::TempDir;

/// The default owner.
const OWNER: &str = "apimount";

// ----- manifests ------------------------------------------------------------

// ----- observed state, reduced to what apimount manages -----------------------

/// Statements of one policy keyed by Sid.
type Statements = BTreeMap<String, Value>;

fn by_sid(statements: Vec<Value>) -> Statements {
    let mut out = Statements::new();
    for s in statements {
        let sid = s["Sid"].as_str().unwrap_or_default().to_string();
        assert!(
            out.insert(sid.clone(), s).is_none(),
            "Sid {sid} appears twice in one policy"
        );
    }
    out
}

/// The lines of apimount's output about mount `name`: its header line and the
/// indented lines below it.
fn mount_block(out: &str, name: &str) -> String {
    let header = format!("{name} (");
    let mut lines = out.lines().skip_while(|l| !l.starts_with(&header));
    let Some(first) = lines.next() else {
        return String::new();
    };
    let mut block = vec![first];
    block.extend(lines.take_while(|l| l.starts_with(' ')));
    block.join("\n")
}

// ----- the test environment -------------------------------------------------

/// A fixture with one shared REST API and a manifest folder.
struct Env {
    fx: Fixture,
    api: String,
    dir: TempDir,
}

impl Env {
    async fn start() -> Env {
        let fx = Fixture::start().await;
        let (api, _root) = fx.create_rest_api("shared-api").await;
        Env {
            fx,
            api,
            dir: manifest_dir(),
        }
    }

    fn write(&self, file: &str, yaml: &str) {
        write_manifest(self.dir.path(), file, yaml);
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file))
            .unwrap_or_else(|e| panic!("remove {file}: {e}"));
    }

    /// Runs `apimount <cmd> --manifests <dir> --rest-api-id <api> <extra…>`.
    fn run_in(&self, cmd: &str, dir: &std::path::Path, extra: &[&str]) -> Output {
        let dir = dir.to_str().expect("utf-8 temp path");
        let mut args = vec![cmd, "--manifests", dir, "--rest-api-id", &self.api];
        args.extend_from_slice(extra);
        self.fx.apimount(&args)
    }

    fn apply(&self) -> Output {
        self.run_in("apply", self.dir.path(), &[])
    }

    fn plan(&self) -> Output {
        self.run_in("plan", self.dir.path(), &[])
    }

    #[track_caller]
    fn apply_ok(&self) -> Output {
        let o = self.apply();
        assert_eq!(
            o.status.code(),
            Some(0),
            "apply should succeed\n{}",
            show(&o)
        );
        o
    }

    #[track_caller]
    fn plan_code(&self, code: i32) -> Output {
        let o = self.plan();
        assert_eq!(o.status.code(), Some(code), "plan exit code\n{}", show(&o));
        o
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>` from the emulator's values.
    fn function_arn(&self, name: &str) -> String {
        self.fx.function_arn(name)
    }

    /// The Lambda proxy integration URI for a function ARN.
    fn uri(&self, function_arn: &str) -> String {
        self.fx.lambda_uri(function_arn)
    }

    /// The execute-api SourceArn of a route (`{proxy+}` becomes `*`).
    fn source_arn(&self, route: &str) -> String {
        self.fx.source_arn(&self.api, route)
    }

    fn sid_prefix(&self, owner: &str) -> String {
        support::sid_prefix(&self.api, owner)
    }

    async fn routes(&self) -> RouteTable {
        self.fx.route_table(&self.api).await
    }

    async fn resource(&self, path: &str) -> Option<Resource> {
        self.fx.resource_at(&self.api, path).await
    }

    async fn resource_id(&self, path: &str) -> String {
        self.resource(path)
            .await
            .unwrap_or_else(|| panic!("no resource at {path}"))
            .id()
            .expect("resource id")
            .to_string()
    }

    async fn statements(&self, function: &str) -> Statements {
        by_sid(self.fx.policy_statements(function, None).await)
    }

    async fn deployment_ids(&self) -> BTreeSet<String> {
        self.fx.deployment_ids(&self.api).await
    }

    /// Checks that exactly one deployment was created since `before`, that it
    /// is apimount's, and that the stage `prod` serves it.
    async fn assert_one_new_deployment(&self, before: &BTreeSet<String>) -> String {
        let deployments = self.fx.deployments(&self.api).await;
        let new: Vec<_> = deployments
            .iter()
            .filter(|d| !before.contains(d.id().unwrap_or_default()))
            .collect();
        assert_eq!(
            new.len(),
            1,
            "expected exactly one new deployment, got {new:?} (before: {before:?})"
        );
        let d = new[0];
        let id = d.id().unwrap().to_string();
        let description = d.description().unwrap_or_default();
        assert!(
            description.starts_with("apimount "),
            "deployment description {description:?} should start with 'apimount '"
        );
        let stage = self
            .fx
            .stage(&self.api, "prod")
            .await
            .expect("stage prod should exist");
        assert_eq!(
            stage.deployment_id(),
            Some(id.as_str()),
            "stage prod should point at the new deployment"
        );
        id
    }

    /// Checks the method at `path`/`verb` is apimount's Lambda proxy to `function_arn`.
    #[track_caller]
    fn assert_lambda_method(
        &self,
        table: &RouteTable,
        path: &str,
        verb: &str,
        marker: &str,
        authorization: &str,
        function_arn: &str,
    ) {
        let m = table
            .get(path)
            .and_then(|ms| ms.get(verb))
            .unwrap_or_else(|| panic!("no method {verb} {path} in {table:#?}"));
        assert_eq!(
            m.authorization_type.as_deref(),
            Some(authorization),
            "{verb} {path}"
        );
        assert_eq!(
            support::untagged(m.operation_name.as_deref()),
            Some(marker),
            "{verb} {path}"
        );
        assert!(!m.api_key_required.unwrap_or(false), "{verb} {path}");
        assert_eq!(
            m.integration_type.as_deref(),
            Some("AWS_PROXY"),
            "{verb} {path}"
        );
        assert_eq!(
            m.integration_http_method.as_deref(),
            Some("POST"),
            "{verb} {path}"
        );
        assert_eq!(
            m.integration_uri.as_deref(),
            Some(self.uri(function_arn).as_str()),
            "{verb} {path}"
        );
    }

    /// Checks `function`'s unqualified policy holds exactly one apimount
    /// statement per route in `routes`, each with the exact SourceArn, and
    /// nothing else. Returns the statements.
    async fn assert_permissions(&self, function: &str, owner: &str, routes: &[&str]) -> Statements {
        let statements = self.statements(function).await;
        self.check_statements(&statements, &self.function_arn(function), owner, routes);
        statements
    }

    #[track_caller]
    fn check_statements(
        &self,
        statements: &Statements,
        resource_arn: &str,
        owner: &str,
        routes: &[&str],
    ) {
        assert_eq!(
            statements.len(),
            routes.len(),
            "expected one statement per route {routes:?} on {resource_arn}, got {statements:#?}"
        );
        let prefix = self.sid_prefix(owner);
        let mut seen = BTreeSet::new();
        for (sid, s) in statements {
            let hash = sid
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("Sid {sid} should start with {prefix}"));
            assert!(
                hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
                "Sid {sid} should end in 16 hex digits"
            );
            assert_eq!(s["Effect"], "Allow", "{s}");
            assert_eq!(s["Action"], "lambda:InvokeFunction", "{s}");
            assert_eq!(s["Principal"]["Service"], "apigateway.amazonaws.com", "{s}");
            assert_eq!(s["Resource"], resource_arn, "{s}");
            let source = source_arn_of(s).unwrap_or_else(|| panic!("no SourceArn in {s}"));
            seen.insert(source.to_string());
        }
        let want: BTreeSet<String> = routes.iter().map(|r| self.source_arn(r)).collect();
        assert_eq!(seen, want, "SourceArns on {resource_arn}");
    }
}

// ----- 1. fresh apply ---------------------------------------------------------

#[tokio::test]
async fn fresh_apply_mounts_every_route_and_a_second_pass_changes_nothing() {
    let env = Env::start().await;
    let accounts_arn = env.fx.create_function("account-service").await;
    let payments_arn = env.fx.create_function("payment-service").await;
    // The expected ARNs are built from the emulator's account and region.
    assert_eq!(accounts_arn, env.function_arn("account-service"));
    assert_eq!(
        env.uri(&accounts_arn),
        format!(
            "arn:aws:apigateway:eu-west-2:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-2:{}:function:account-service/invocations",
            env.fx.account_id()
        )
    );
    env.write(
        "accounts.yaml",
        &mount_yaml(
            "account-service",
            "/accounts",
            "account-service",
            "  proxy: true\n",
        ),
    );
    env.write(
        "payments.yaml",
        &mount_yaml(
            "payment-service",
            "/payments",
            "payment-service",
            "  methods: [GET, POST]\n  proxy: false\n",
        ),
    );

    let out = env.apply_ok();
    let text = support::stdout(&out);
    assert!(
        text.contains("+ method ANY /accounts (authorization NONE)"),
        "{}",
        show(&out)
    );
    assert!(text.contains("Applied:"), "{}", show(&out));

    // Resources.
    let table = env.routes().await;
    assert_eq!(
        table.keys().map(String::as_str).collect::<Vec<_>>(),
        ["/", "/accounts", "/accounts/{proxy+}", "/payments"],
        "{table:#?}"
    );
    assert!(table["/"].is_empty(), "root gets no method: {table:#?}");
    // Methods and integrations.
    let verbs = |p: &str| table[p].keys().cloned().collect::<Vec<_>>();
    assert_eq!(verbs("/accounts"), ["ANY"]);
    assert_eq!(verbs("/accounts/{proxy+}"), ["ANY"]);
    assert_eq!(verbs("/payments"), ["GET", "POST"]);
    let acc_marker = "apimount:apimount:account-service";
    let pay_marker = "apimount:apimount:payment-service";
    env.assert_lambda_method(
        &table,
        "/accounts",
        "ANY",
        acc_marker,
        "NONE",
        &accounts_arn,
    );
    env.assert_lambda_method(
        &table,
        "/accounts/{proxy+}",
        "ANY",
        acc_marker,
        "NONE",
        &accounts_arn,
    );
    env.assert_lambda_method(
        &table,
        "/payments",
        "GET",
        pay_marker,
        "NONE",
        &payments_arn,
    );
    env.assert_lambda_method(
        &table,
        "/payments",
        "POST",
        pay_marker,
        "NONE",
        &payments_arn,
    );
    // Permissions: one per route, exact SourceArns.
    let acc_policy = env
        .assert_permissions(
            "account-service",
            OWNER,
            &["/accounts", "/accounts/{proxy+}"],
        )
        .await;
    let pay_policy = env
        .assert_permissions("payment-service", OWNER, &["/payments"])
        .await;
    assert_eq!(
        source_arn_of(
            acc_policy
                .values()
                .find(|s| source_arn_of(s).unwrap().ends_with("/*"))
                .unwrap()
        ),
        Some(
            format!(
                "arn:aws:execute-api:eu-west-2:{}:{}/*/*/accounts/*",
                env.fx.account_id(),
                env.api
            )
            .as_str()
        )
    );
    // Deployment and stage.
    let first = env.assert_one_new_deployment(&BTreeSet::new()).await;

    // A plan and a second apply find nothing to do.
    let out = env.plan_code(0);
    assert!(
        support::stdout(&out).contains("Plan: 0 to create, 0 to update, 0 to delete"),
        "{}",
        show(&out)
    );
    env.apply_ok();
    assert_eq!(env.routes().await, table, "second apply changed routes");
    assert_eq!(env.statements("account-service").await, acc_policy);
    assert_eq!(env.statements("payment-service").await, pay_policy);
    assert_eq!(
        env.deployment_ids().await,
        BTreeSet::from([first.clone()]),
        "a pass with nothing to do made a deployment"
    );
    let stage = env.fx.stage(&env.api, "prod").await.expect("stage");
    assert_eq!(stage.deployment_id(), Some(first.as_str()));
    // Every function named by name: all in the API's account, so nothing
    // asked STS for the account.
    let sts: Vec<String> = env
        .fx
        .strict_requests()
        .into_iter()
        .filter(|r| r.scope.as_ref().is_some_and(|(_, s)| s == "sts"))
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
    assert!(sts.is_empty(), "{sts:?}");
}

// ----- 2. plan exit codes -------------------------------------------------------

#[tokio::test]
async fn plan_exit_codes_pending_in_sync_and_error() {
    let env = Env::start().await;
    env.fx.create_function("account-service").await;
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );

    // Changes pending: exit 2, and nothing is created.
    let out = env.plan_code(2);
    let text = support::stdout(&out);
    assert!(
        text.contains("+ method ANY /accounts (authorization NONE)"),
        "{}",
        show(&out)
    );
    assert!(
        text.contains("+ method ANY /accounts/{proxy+} (authorization NONE)"),
        "{}",
        show(&out)
    );
    assert!(text.contains("Plan:"), "{}", show(&out));
    assert_eq!(env.fx.resource_paths(&env.api).await, ["/"]);
    assert!(env.fx.deployments(&env.api).await.is_empty());
    assert!(env.fx.stage(&env.api, "prod").await.is_none());
    assert!(env.statements("account-service").await.is_empty());

    // In sync after an apply: exit 0.
    env.apply_ok();
    env.plan_code(0);

    // A REST API that does not exist: exit 1, and nothing is written anywhere.
    let before = env.routes().await;
    let dir = env.dir.path().to_str().unwrap().to_string();
    let out = env
        .fx
        .apimount(&["plan", "--manifests", &dir, "--rest-api-id", "nosuchapi1"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        support::stdout(&out).contains("error") || support::stderr(&out).contains("error"),
        "{}",
        show(&out)
    );
    assert_eq!(env.routes().await, before);
}

// ----- 3. drift healing ----------------------------------------------------------

/// The state a drift test starts from and must return to.
struct Baseline {
    routes: RouteTable,
    accounts: Statements,
    other: Statements,
    deployments: BTreeSet<String>,
}

/// accounts (proxy) mounted on account-service; other-service exists unused.
async fn drift_setup() -> (Env, Baseline) {
    let env = Env::start().await;
    env.fx.create_function("account-service").await;
    env.fx.create_function("other-service").await;
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    env.apply_ok();
    let baseline = Baseline {
        routes: env.routes().await,
        accounts: env
            .assert_permissions(
                "account-service",
                OWNER,
                &["/accounts", "/accounts/{proxy+}"],
            )
            .await,
        other: env.statements("other-service").await,
        deployments: env.deployment_ids().await,
    };
    assert_eq!(baseline.deployments.len(), 1);
    assert!(baseline.other.is_empty());
    (env, baseline)
}

/// After a drift: plan shows it (exit 2, with `expect` in its output), apply
/// restores the baseline exactly, deploys once when routes changed (a Lambda
/// permission is not part of a deployment, so healing one deploys nothing),
/// and a new plan is clean.
async fn heal_and_check(env: &Env, baseline: &Baseline, expect: &str) {
    heal_and_check_deploying(env, baseline, expect, true).await
}

async fn heal_and_check_deploying(env: &Env, baseline: &Baseline, expect: &str, deploys: bool) {
    let out = env.plan_code(2);
    assert!(
        support::stdout(&out).contains(expect),
        "plan should show {expect:?}\n{}",
        show(&out)
    );
    let out = env.apply_ok();
    assert!(
        support::stdout(&out).contains(expect),
        "apply should show {expect:?}\n{}",
        show(&out)
    );
    assert_eq!(env.routes().await, baseline.routes, "routes not healed");
    assert_eq!(
        env.statements("account-service").await,
        baseline.accounts,
        "account-service policy not healed"
    );
    assert_eq!(
        env.statements("other-service").await,
        baseline.other,
        "other-service policy changed"
    );
    // In sync again, and the stage still serves an apimount deployment.
    env.plan_code(0);
    let stage = env.fx.stage(&env.api, "prod").await.expect("stage prod");
    assert!(stage.deployment_id().is_some(), "stage lost its deployment");
    if deploys {
        env.assert_one_new_deployment(&baseline.deployments).await;
    } else {
        let now = env.deployment_ids().await;
        assert_eq!(
            now, baseline.deployments,
            "a permission heal made a deployment"
        );
    }
}

#[tokio::test]
async fn drift_deleted_method_is_healed() {
    let (env, baseline) = drift_setup().await;
    let id = env.resource_id("/accounts").await;
    env.fx
        .apigateway
        .delete_method()
        .rest_api_id(&env.api)
        .resource_id(id)
        .http_method("ANY")
        .send()
        .await
        .expect("DeleteMethod");
    heal_and_check(
        &env,
        &baseline,
        "+ method ANY /accounts (authorization NONE)",
    )
    .await;
}

#[tokio::test]
async fn drift_changed_method_settings_are_healed() {
    let (env, baseline) = drift_setup().await;
    let id = env.resource_id("/accounts/{proxy+}").await;
    // A hand edit of the authorization keeps the method's operationName.
    let marker = env.routes().await["/accounts/{proxy+}"]["ANY"]
        .operation_name
        .clone()
        .expect("apimount's marker");
    env.fx
        .apigateway
        .delete_method()
        .rest_api_id(&env.api)
        .resource_id(&id)
        .http_method("ANY")
        .send()
        .await
        .expect("DeleteMethod");
    env.fx
        .apigateway
        .put_method()
        .rest_api_id(&env.api)
        .resource_id(&id)
        .http_method("ANY")
        .authorization_type("AWS_IAM")
        .operation_name(marker)
        .send()
        .await
        .expect("PutMethod");
    heal_and_check(
        &env,
        &baseline,
        "~ method ANY /accounts/{proxy+}: authorization AWS_IAM -> NONE",
    )
    .await;
}

#[tokio::test]
async fn drift_changed_integration_is_healed() {
    let (env, baseline) = drift_setup().await;
    let id = env.resource_id("/accounts").await;
    let other = env.uri(&env.function_arn("other-service"));
    env.fx
        .apigateway
        .put_integration()
        .rest_api_id(&env.api)
        .resource_id(id)
        .http_method("ANY")
        .r#type(IntegrationType::AwsProxy)
        .integration_http_method("POST")
        .uri(other)
        .send()
        .await
        .expect("PutIntegration");
    heal_and_check(&env, &baseline, "~ integration ANY /accounts -> ").await;
}

#[tokio::test]
async fn drift_removed_permission_is_healed() {
    let (env, baseline) = drift_setup().await;
    let (sid, _) = baseline
        .accounts
        .iter()
        .find(|(_, s)| source_arn_of(s) == Some(env.source_arn("/accounts/{proxy+}").as_str()))
        .expect("proxy statement");
    env.fx
        .lambda
        .remove_permission()
        .function_name("account-service")
        .statement_id(sid)
        .send()
        .await
        .expect("RemovePermission");
    assert_eq!(env.statements("account-service").await.len(), 1);
    heal_and_check_deploying(&env, &baseline, &format!("+ permission {sid} on "), false).await;
}

#[tokio::test]
async fn drift_altered_permission_is_healed() {
    let (env, baseline) = drift_setup().await;
    let (sid, _) = baseline
        .accounts
        .iter()
        .find(|(_, s)| source_arn_of(s) == Some(env.source_arn("/accounts").as_str()))
        .expect("/accounts statement");
    env.fx
        .lambda
        .remove_permission()
        .function_name("account-service")
        .statement_id(sid)
        .send()
        .await
        .expect("RemovePermission");
    env.fx
        .lambda
        .add_permission()
        .function_name("account-service")
        .statement_id(sid)
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(env.source_arn("/somewhere-else"))
        .send()
        .await
        .expect("AddPermission");
    heal_and_check_deploying(&env, &baseline, &format!("~ permission {sid} on "), false).await;
}

#[tokio::test]
async fn drift_deleted_proxy_resource_is_healed() {
    let (env, baseline) = drift_setup().await;
    let id = env.resource_id("/accounts/{proxy+}").await;
    env.fx
        .apigateway
        .delete_resource()
        .rest_api_id(&env.api)
        .resource_id(id)
        .send()
        .await
        .expect("DeleteResource");
    assert!(env.resource("/accounts/{proxy+}").await.is_none());
    heal_and_check(&env, &baseline, "+ resource /accounts/{proxy+}").await;
}

/// A drift that someone deployed by hand is live: healing it must deploy.
#[tokio::test]
async fn drift_deployed_by_hand_is_healed_and_redeployed() {
    let (env, baseline) = drift_setup().await;
    let id = env.resource_id("/accounts").await;
    env.fx
        .apigateway
        .delete_method()
        .rest_api_id(&env.api)
        .resource_id(id)
        .http_method("ANY")
        .send()
        .await
        .expect("DeleteMethod");
    let manual = env
        .fx
        .apigateway
        .create_deployment()
        .rest_api_id(&env.api)
        .description("deployed by hand")
        .send()
        .await
        .expect("CreateDeployment")
        .id()
        .unwrap()
        .to_string();
    env.fx
        .apigateway
        .update_stage()
        .rest_api_id(&env.api)
        .stage_name("prod")
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/deploymentId")
                .value(&manual)
                .build(),
        )
        .send()
        .await
        .expect("UpdateStage");
    let before = env.deployment_ids().await;
    assert_eq!(before.len(), 2);

    env.plan_code(2);
    env.apply_ok();
    assert_eq!(env.routes().await, baseline.routes, "routes not healed");
    assert_eq!(env.statements("account-service").await, baseline.accounts);
    let new = env.assert_one_new_deployment(&before).await;
    assert_ne!(new, manual);
    env.plan_code(0);
}

/// A deleted stage is created again, on a new deployment.
#[tokio::test]
async fn drift_deleted_stage_is_recreated() {
    let (env, baseline) = drift_setup().await;
    env.fx
        .apigateway
        .delete_stage()
        .rest_api_id(&env.api)
        .stage_name("prod")
        .send()
        .await
        .expect("DeleteStage");
    assert!(env.fx.stage(&env.api, "prod").await.is_none());
    let out = env.plan_code(2);
    assert!(
        support::stdout(&out).contains("a new deployment of the stage would follow"),
        "{}",
        show(&out)
    );
    env.apply_ok();
    assert_eq!(env.routes().await, baseline.routes);
    env.assert_one_new_deployment(&baseline.deployments).await;
    env.plan_code(0);
}

// ----- edits of a manifest ------------------------------------------------------------

/// One edit changes the methods, drops the proxy route and re-points the
/// mount to another function: one pass converges, old statements go.
#[tokio::test]
async fn edited_manifest_converges_in_one_pass() {
    let (env, baseline) = drift_setup().await;
    let other_arn = env.function_arn("other-service");
    env.write(
        "accounts.yaml",
        &mount_yaml(
            "account-service",
            "/accounts",
            "other-service",
            "  methods: [GET, POST]\n  proxy: false\n",
        ),
    );
    env.plan_code(2);
    env.apply_ok();
    let table = env.routes().await;
    assert_eq!(
        table.keys().map(String::as_str).collect::<Vec<_>>(),
        ["/", "/accounts"],
        "{table:#?}"
    );
    assert_eq!(
        table["/accounts"]
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["GET", "POST"]
    );
    let marker = "apimount:apimount:account-service";
    for verb in ["GET", "POST"] {
        env.assert_lambda_method(&table, "/accounts", verb, marker, "NONE", &other_arn);
    }
    env.assert_permissions("other-service", OWNER, &["/accounts"])
        .await;
    assert!(
        env.statements("account-service").await.is_empty(),
        "the old function keeps statements: {:#?}",
        env.statements("account-service").await
    );
    env.assert_one_new_deployment(&baseline.deployments).await;
    env.plan_code(0);
}

// ----- 4. orphans -------------------------------------------------------------------

#[tokio::test]
async fn removed_manifest_takes_its_routes_and_permissions_along() {
    let env = Env::start().await;
    let accounts_arn = env.fx.create_function("account-service").await;
    env.fx.create_function("payment-service").await;
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    env.write(
        "payments.yaml",
        &mount_yaml("payment-service", "/v1/payments", "payment-service", ""),
    );
    env.apply_ok();
    assert_eq!(
        env.fx.resource_paths(&env.api).await,
        [
            "/",
            "/accounts",
            "/accounts/{proxy+}",
            "/v1",
            "/v1/payments",
            "/v1/payments/{proxy+}"
        ]
    );
    env.assert_permissions(
        "payment-service",
        OWNER,
        &["/v1/payments", "/v1/payments/{proxy+}"],
    )
    .await;
    let accounts_before = env.statements("account-service").await;
    let table_before = env.routes().await;
    let deployments = env.deployment_ids().await;

    env.remove("payments.yaml");
    env.plan_code(2);
    let out = env.apply_ok();
    assert!(
        support::stdout(&out).contains("payment-service (manifest removed)"),
        "{}",
        show(&out)
    );

    // Everything of payments is gone, its parent /v1 too (nothing else lives there).
    assert_eq!(
        env.fx.resource_paths(&env.api).await,
        ["/", "/accounts", "/accounts/{proxy+}"]
    );
    assert!(
        env.statements("payment-service").await.is_empty(),
        "payment-service keeps statements: {:#?}",
        env.statements("payment-service").await
    );
    // accounts is intact.
    let table = env.routes().await;
    for p in ["/", "/accounts", "/accounts/{proxy+}"] {
        assert_eq!(table[p], table_before[p], "{p} changed");
    }
    env.assert_lambda_method(
        &table,
        "/accounts/{proxy+}",
        "ANY",
        "apimount:apimount:account-service",
        "NONE",
        &accounts_arn,
    );
    assert_eq!(env.statements("account-service").await, accounts_before);
    env.assert_one_new_deployment(&deployments).await;
    env.plan_code(0);
}

/// The in-flight journal's entry for a path: the first 4 bytes of its SHA-256, in hex.
fn journal_hash(path: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(path.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn stage_tags(env: &Env) -> BTreeMap<String, String> {
    env.fx
        .stage(&env.api, "prod")
        .await
        .expect("stage prod")
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn resources_a_crash_left_without_methods_are_removed_when_journaled() {
    let env = Env::start().await;
    env.fx.create_function("account-service").await;
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    env.apply_ok();
    let key = format!("apimount:{OWNER}:inflight");
    let tags = stage_tags(&env).await;
    assert!(
        !tags.contains_key(&key),
        "a pass that finished leaves no journal: {tags:?}"
    );

    // What a pass killed right after creating /v2/orders (before its method)
    // leaves, with the manifest gone since: two bare resources and the
    // journal naming them. /scratch is as bare but not in the journal
    // (someone else's, maybe being built right now); /accounts is in the
    // journal but carries routes.
    let root = env.resource_id("/").await;
    let mut ids = BTreeMap::new();
    for (parent, part, path) in [
        (None, "v2", "/v2"),
        (Some("/v2"), "orders", "/v2/orders"),
        (None, "scratch", "/scratch"),
    ] {
        let parent_id = match parent {
            None => root.clone(),
            Some(p) => ids.get(p).cloned().expect("parent created first"),
        };
        let r = env
            .fx
            .apigateway
            .create_resource()
            .rest_api_id(&env.api)
            .parent_id(parent_id)
            .path_part(part)
            .send()
            .await
            .expect("create resource");
        ids.insert(path, r.id().expect("id").to_string());
    }
    let stage_arn = format!(
        "arn:aws:apigateway:{}::/restapis/{}/stages/prod",
        env.fx.region(),
        env.api
    );
    let journal = ["/v2", "/v2/orders", "/accounts"]
        .iter()
        .map(|p| journal_hash(p))
        .collect::<Vec<_>>()
        .join(" ");
    env.fx
        .apigateway
        .tag_resource()
        .resource_arn(&stage_arn)
        .tags(&key, journal)
        .tags("team", "platform")
        .send()
        .await
        .expect("tag the stage");
    let table_before = env.routes().await;

    let out = env.plan_code(2);
    assert!(
        support::stdout(&out).contains("/v2/orders"),
        "plan names the leftovers\n{}",
        show(&out)
    );
    let deployments = env.deployment_ids().await;
    env.apply_ok();
    assert_eq!(
        env.fx.resource_paths(&env.api).await,
        ["/", "/accounts", "/accounts/{proxy+}", "/scratch"]
    );
    let table = env.routes().await;
    for p in ["/", "/accounts", "/accounts/{proxy+}", "/scratch"] {
        assert_eq!(table[p], table_before[p], "{p} changed");
    }
    let tags = stage_tags(&env).await;
    assert!(!tags.contains_key(&key), "journal left behind: {tags:?}");
    assert_eq!(tags.get("team").map(String::as_str), Some("platform"));
    // Bare resources serve nothing: removing them needs no deployment.
    assert_eq!(env.deployment_ids().await, deployments);
    env.plan_code(0);
}

#[tokio::test]
async fn credentials_never_reach_the_logs_even_at_trace_level() {
    let env = Env::start().await;
    env.fx.create_function("account-service").await;
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    // The emulator accepts any credentials; these are recognisable.
    let secret = "Zq8SECRETxKEYxVALUEx0000000000000000000000";
    let token = "FwoGZXIvTOKENxVALUExIamASessionTokenx1234567890";
    let key_id = "ASIAAPIMOUNTTESTKEY1";
    let dir = env.dir.path().to_str().expect("utf-8 temp path");
    for (cmd, filter) in [
        ("apply", "trace"),
        (
            "plan",
            "trace,aws_sigv4=trace,aws_smithy_runtime=trace,hyper=trace",
        ),
    ] {
        let out = env.fx.apimount_with_env(
            &[cmd, "--manifests", dir, "--rest-api-id", &env.api],
            &[
                ("AWS_ACCESS_KEY_ID", key_id),
                ("AWS_SECRET_ACCESS_KEY", secret),
                ("AWS_SESSION_TOKEN", token),
                ("RUST_LOG", filter),
            ],
        );
        assert!(
            out.status.code() == Some(0),
            "{cmd} with RUST_LOG={filter}\n{}",
            show(&out)
        );
        let logs = format!("{}{}", support::stdout(&out), support::stderr(&out));
        assert!(
            logs.lines().count() > 3,
            "{cmd}: expected trace-level lines of apimount's own\n{logs}"
        );
        let lowered = logs.to_ascii_lowercase();
        for (what, needle) in [
            ("the secret access key", secret),
            ("the session token", token),
            ("the session token header", "x-amz-security-token"),
            ("the signature", "Signature="),
            ("the authorization header", "AWS4-HMAC-SHA256"),
            ("the access key id", key_id),
        ] {
            let hit = lowered
                .lines()
                .find(|l| l.contains(&needle.to_ascii_lowercase()));
            assert!(
                hit.is_none(),
                "{cmd} with RUST_LOG={filter} logged {what}: {}",
                hit.unwrap_or_default()
            );
        }
    }
}

// ----- 5. nested mounts ---------------------------------------------------------------

#[tokio::test]
async fn nested_mounts_share_a_parent_and_removing_the_outer_one_keeps_the_inner() {
    let env = Env::start().await;
    let accounts_arn = env.fx.create_function("account-service").await;
    let admin_arn = env.fx.create_function("admin-service").await;
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    env.write(
        "admin.yaml",
        &mount_yaml("account-admin", "/accounts/admin", "admin-service", ""),
    );
    env.apply_ok();

    let table = env.routes().await;
    assert_eq!(
        table.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "/",
            "/accounts",
            "/accounts/admin",
            "/accounts/admin/{proxy+}",
            "/accounts/{proxy+}"
        ]
    );
    let outer = "apimount:apimount:account-service";
    let inner = "apimount:apimount:account-admin";
    env.assert_lambda_method(&table, "/accounts", "ANY", outer, "NONE", &accounts_arn);
    env.assert_lambda_method(
        &table,
        "/accounts/{proxy+}",
        "ANY",
        outer,
        "NONE",
        &accounts_arn,
    );
    env.assert_lambda_method(&table, "/accounts/admin", "ANY", inner, "NONE", &admin_arn);
    env.assert_lambda_method(
        &table,
        "/accounts/admin/{proxy+}",
        "ANY",
        inner,
        "NONE",
        &admin_arn,
    );
    env.assert_permissions(
        "account-service",
        OWNER,
        &["/accounts", "/accounts/{proxy+}"],
    )
    .await;
    let admin_policy = env
        .assert_permissions(
            "admin-service",
            OWNER,
            &["/accounts/admin", "/accounts/admin/{proxy+}"],
        )
        .await;
    let deployments = env.deployment_ids().await;
    assert_eq!(deployments.len(), 1);
    env.plan_code(0);

    // The outer mount goes; /accounts stays as the inner mount's parent.
    env.remove("accounts.yaml");
    env.apply_ok();
    let after = env.routes().await;
    assert_eq!(
        after.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "/",
            "/accounts",
            "/accounts/admin",
            "/accounts/admin/{proxy+}"
        ],
        "{after:#?}"
    );
    assert!(
        after["/accounts"].is_empty(),
        "/accounts should keep no method: {:#?}",
        after["/accounts"]
    );
    assert_eq!(after["/accounts/admin"], table["/accounts/admin"]);
    assert_eq!(
        after["/accounts/admin/{proxy+}"],
        table["/accounts/admin/{proxy+}"]
    );
    assert!(env.statements("account-service").await.is_empty());
    assert_eq!(env.statements("admin-service").await, admin_policy);
    env.assert_one_new_deployment(&deployments).await;
    env.plan_code(0);
}

// ----- 6. foreign routes and other owners -------------------------------------------------

/// Creates by hand /legacy with GET (an HTTP proxy, operationName getLegacy)
/// and POST (a MOCK, no operationName): routes apimount does not own.
async fn create_foreign_legacy(env: &Env) {
    let root = env.resource_id("/").await;
    let legacy = env.fx.create_resource(&env.api, &root, "legacy").await;
    let http = Integration::HttpProxy("GET", "https://legacy.example.com/");
    env.fx
        .put_foreign_method(&env.api, &legacy, "GET", Some("getLegacy"), http)
        .await;
    env.fx
        .put_foreign_method(&env.api, &legacy, "POST", None, Integration::Mock)
        .await;
}

#[tokio::test]
async fn foreign_routes_and_other_owners_routes_are_never_touched() {
    let env = Env::start().await;
    let a_arn = env.fx.create_function("a-service").await;
    let b_arn = env.fx.create_function("b-service").await;
    create_foreign_legacy(&env).await;

    // team-b mounts /b from its own folder.
    let team_b = manifest_dir();
    write_manifest(
        team_b.path(),
        "b.yaml",
        &mount_yaml("b", "/b", "b-service", ""),
    );
    let out = env.run_in("apply", team_b.path(), &["--owner", "team-b"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // The default owner mounts /a.
    env.write("a.yaml", &mount_yaml("a", "/a", "a-service", ""));
    env.apply_ok();

    let table = env.routes().await;
    env.assert_lambda_method(&table, "/a", "ANY", "apimount:apimount:a", "NONE", &a_arn);
    env.assert_lambda_method(&table, "/b", "ANY", "apimount:team-b:b", "NONE", &b_arn);
    env.assert_lambda_method(
        &table,
        "/b/{proxy+}",
        "ANY",
        "apimount:team-b:b",
        "NONE",
        &b_arn,
    );
    let b_policy = env
        .assert_permissions("b-service", "team-b", &["/b", "/b/{proxy+}"])
        .await;
    env.assert_permissions("a-service", OWNER, &["/a", "/a/{proxy+}"])
        .await;

    // Exact SDK objects (ids included) of everything apimount must not touch.
    let untouched = ["/legacy", "/b", "/b/{proxy+}"];
    let mut before: BTreeMap<&str, Resource> = BTreeMap::new();
    for p in untouched {
        before.insert(p, env.resource(p).await.unwrap());
    }
    let legacy = &table["/legacy"];
    assert_eq!(legacy["GET"].operation_name.as_deref(), Some("getLegacy"));
    assert_eq!(
        legacy["GET"].integration_type.as_deref(),
        Some("HTTP_PROXY")
    );
    assert_eq!(
        legacy["GET"].integration_uri.as_deref(),
        Some("https://legacy.example.com/")
    );
    assert_eq!(legacy["POST"].integration_type.as_deref(), Some("MOCK"));
    let deployments = env.deployment_ids().await;

    // Every manifest of the default owner goes: only its own routes go with them.
    // (An empty folder trips the mass-deletion guard, a later feature; this
    // test is about ownership, so the guard is lifted explicitly.)
    env.remove("a.yaml");
    let out = env.run_in("apply", env.dir.path(), &["--allow-mass-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let paths = env.fx.resource_paths(&env.api).await;
    assert_eq!(paths, ["/", "/b", "/b/{proxy+}", "/legacy"]);
    for p in untouched {
        assert_eq!(
            env.resource(p).await.as_ref(),
            Some(&before[p]),
            "{p} was changed by the default owner"
        );
    }
    assert!(env.statements("a-service").await.is_empty());
    assert_eq!(env.statements("b-service").await, b_policy);
    env.assert_one_new_deployment(&deployments).await;

    // Both owners are in sync.
    env.plan_code(0);
    let out = env.run_in("plan", team_b.path(), &["--owner", "team-b"]);
    assert_eq!(out.status.code(), Some(0), "team-b plan\n{}", show(&out));
}

#[tokio::test]
async fn mount_on_a_foreign_or_other_owners_route_is_a_conflict_and_others_are_applied() {
    let env = Env::start().await;
    let a_arn = env.fx.create_function("a-service").await;
    env.fx.create_function("b-service").await;
    create_foreign_legacy(&env).await;
    let team_b = manifest_dir();
    write_manifest(
        team_b.path(),
        "b.yaml",
        &mount_yaml("b", "/b", "b-service", ""),
    );
    let out = env.run_in("apply", team_b.path(), &["--owner", "team-b"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let b_policy = env.statements("b-service").await;
    let mut before: BTreeMap<&str, Resource> = BTreeMap::new();
    for p in ["/legacy", "/b", "/b/{proxy+}"] {
        before.insert(p, env.resource(p).await.unwrap());
    }
    let deployments = env.deployment_ids().await;

    env.write(
        "legacy.yaml",
        &mount_yaml("legacy", "/legacy", "a-service", "  proxy: false\n"),
    );
    env.write("steal.yaml", &mount_yaml("steal", "/b", "a-service", ""));
    env.write("a.yaml", &mount_yaml("a", "/a", "a-service", ""));
    let out = env.apply();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = support::stdout(&out);
    for name in ["legacy", "steal"] {
        let block = mount_block(&text, name);
        assert!(
            block.contains("Failed: PathConflict"),
            "mount {name} should fail with PathConflict:\n{}",
            show(&out)
        );
    }
    assert!(
        !mount_block(&text, "a").contains("Failed"),
        "mount a should not fail:\n{}",
        show(&out)
    );

    // The conflicting routes are untouched…
    for (p, r) in &before {
        assert_eq!(env.resource(p).await.as_ref(), Some(r), "{p} was changed");
    }
    assert_eq!(env.statements("b-service").await, b_policy);
    // …and the other mount is applied, with permissions only for its own routes.
    let table = env.routes().await;
    env.assert_lambda_method(&table, "/a", "ANY", "apimount:apimount:a", "NONE", &a_arn);
    env.assert_lambda_method(
        &table,
        "/a/{proxy+}",
        "ANY",
        "apimount:apimount:a",
        "NONE",
        &a_arn,
    );
    env.assert_permissions("a-service", OWNER, &["/a", "/a/{proxy+}"])
        .await;
    env.assert_one_new_deployment(&deployments).await;
}

// ----- 7. missing function --------------------------------------------------------------

#[tokio::test]
async fn missing_function_fails_only_its_mount() {
    let env = Env::start().await;
    let accounts_arn = env.fx.create_function("account-service").await;
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    env.write(
        "ghost.yaml",
        &mount_yaml("ghost", "/ghost", "does-not-exist", ""),
    );
    let out = env.apply();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = support::stdout(&out);
    assert!(
        mount_block(&text, "ghost").contains("FunctionNotFound"),
        "{}",
        show(&out)
    );
    assert!(
        !mount_block(&text, "account-service").contains("Failed"),
        "{}",
        show(&out)
    );

    let table = env.routes().await;
    assert_eq!(
        table.keys().map(String::as_str).collect::<Vec<_>>(),
        ["/", "/accounts", "/accounts/{proxy+}"],
        "nothing of ghost may be created"
    );
    let marker = "apimount:apimount:account-service";
    env.assert_lambda_method(&table, "/accounts", "ANY", marker, "NONE", &accounts_arn);
    env.assert_lambda_method(
        &table,
        "/accounts/{proxy+}",
        "ANY",
        marker,
        "NONE",
        &accounts_arn,
    );
    env.assert_permissions(
        "account-service",
        OWNER,
        &["/accounts", "/accounts/{proxy+}"],
    )
    .await;
    env.assert_one_new_deployment(&BTreeSet::new()).await;
}

// ----- 8. invalid manifests --------------------------------------------------------------

#[tokio::test]
async fn invalid_manifest_keeps_its_routes_and_unreadable_one_holds_all_deletions() {
    let env = Env::start().await;
    env.fx.create_function("account-service").await;
    env.fx.create_function("payment-service").await;
    let accounts = mount_yaml("account-service", "/accounts", "account-service", "");
    env.write("accounts.yaml", &accounts);
    env.write(
        "payments.yaml",
        &mount_yaml("payment-service", "/payments", "payment-service", ""),
    );
    env.apply_ok();
    let table = env.routes().await;
    let acc_policy = env.statements("account-service").await;
    let pay_policy = env.statements("payment-service").await;
    assert_eq!(acc_policy.len(), 2);
    assert_eq!(pay_policy.len(), 2);
    let deployments = env.deployment_ids().await;

    // A semantic error: the name is still readable, the routes stay.
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/bad//path", "account-service", ""),
    );
    let out = env.apply();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = support::stdout(&out);
    assert!(
        text.contains("accounts.yaml") && text.contains("spec.path"),
        "{}",
        show(&out)
    );
    assert_eq!(
        env.routes().await,
        table,
        "routes of an invalid manifest changed"
    );
    assert_eq!(env.statements("account-service").await, acc_policy);
    assert_eq!(env.statements("payment-service").await, pay_policy);
    assert_eq!(env.deployment_ids().await, deployments);

    // Pure garbage (name unknown) and another manifest removed: nothing may go.
    env.write("accounts.yaml", "{{{");
    env.remove("payments.yaml");
    let out = env.apply();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(
        env.routes().await,
        table,
        "a deletion happened while a manifest was unreadable\n{}",
        show(&out)
    );
    assert_eq!(env.statements("account-service").await, acc_policy);
    assert_eq!(env.statements("payment-service").await, pay_policy);
    assert_eq!(env.deployment_ids().await, deployments);

    // Fixed: the pass converges, and the removed manifest's routes now go.
    env.write("accounts.yaml", &accounts);
    env.apply_ok();
    let after = env.routes().await;
    assert_eq!(
        after.keys().map(String::as_str).collect::<Vec<_>>(),
        ["/", "/accounts", "/accounts/{proxy+}"]
    );
    for p in ["/accounts", "/accounts/{proxy+}"] {
        assert_eq!(after[p], table[p], "{p}");
    }
    assert_eq!(env.statements("account-service").await, acc_policy);
    assert!(env.statements("payment-service").await.is_empty());
    env.assert_one_new_deployment(&deployments).await;
    env.plan_code(0);
}

// ----- 9. aliases ----------------------------------------------------------------------------

#[tokio::test]
async fn alias_is_integrated_and_permitted_on_the_alias() {
    let env = Env::start().await;
    env.fx.create_function("account-service").await;
    let alias_arn = env.fx.create_alias("account-service", "live").await;
    assert_eq!(
        alias_arn,
        format!("{}:live", env.function_arn("account-service"))
    );
    env.write(
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service:live", ""),
    );
    env.apply_ok();

    let table = env.routes().await;
    let marker = "apimount:apimount:account-service";
    for route in ["/accounts", "/accounts/{proxy+}"] {
        env.assert_lambda_method(&table, route, "ANY", marker, "NONE", &alias_arn);
        let uri = table[route]["ANY"].integration_uri.clone().unwrap();
        assert!(
            uri.ends_with("function:account-service:live/invocations"),
            "{uri}"
        );
    }
    let on_alias = by_sid(
        env.fx
            .policy_statements("account-service", Some("live"))
            .await,
    );
    env.check_statements(
        &on_alias,
        &alias_arn,
        OWNER,
        &["/accounts", "/accounts/{proxy+}"],
    );
    assert!(
        env.statements("account-service").await.is_empty(),
        "the unqualified function got statements: {:#?}",
        env.fx.all_policy_statements("account-service").await
    );
    env.assert_one_new_deployment(&BTreeSet::new()).await;
    env.plan_code(0);
}

// ----- 10. validate -------------------------------------------------------------------------

/// Runs `apimount validate` without an emulator: validation makes no AWS call
/// (the endpoint points at a closed port to be sure).
fn validate(dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apimount"));
    cmd.args(["validate", "--manifests", dir.to_str().unwrap()]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", support::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run apimount validate")
}

#[test]
fn validate_lists_every_problem_and_accepts_a_good_folder() {
    let bad = manifest_dir();
    write_manifest(
        bad.path(),
        "good.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    write_manifest(
        bad.path(),
        "broken-path.yaml",
        &mount_yaml(
            "broken-path",
            "/bad//path",
            "payment-service",
            "  authorization: MAGIC\n",
        ),
    );
    write_manifest(bad.path(), "garbage.yaml", "{{{");
    let out = validate(bad.path());
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = support::stdout(&out);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 3, "{}", show(&out));
    let mentions =
        |file: &str, what: &str| errors.iter().any(|l| l.contains(file) && l.contains(what));
    assert!(mentions("broken-path.yaml", "spec.path"), "{}", show(&out));
    assert!(
        mentions("broken-path.yaml", "spec.authorization"),
        "{}",
        show(&out)
    );
    assert!(mentions("garbage.yaml", ""), "{}", show(&out));
    assert!(
        !errors.iter().any(|l| l.contains("good.yaml")),
        "{}",
        show(&out)
    );
    assert!(text.contains("3 problem(s)"), "{}", show(&out));
    assert!(
        text.contains("1 of 3 manifest file(s) valid"),
        "{}",
        show(&out)
    );

    let good = manifest_dir();
    write_manifest(
        good.path(),
        "accounts.yaml",
        &mount_yaml("account-service", "/accounts", "account-service", ""),
    );
    write_manifest(
        good.path(),
        "payments.yaml",
        &mount_yaml(
            "payment-service",
            "/payments",
            "payment-service",
            "  methods: [GET, POST]\n  proxy: false\n",
        ),
    );
    let out = validate(good.path());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        support::stdout(&out).contains("2 manifest(s) valid"),
        "{}",
        show(&out)
    );
}
