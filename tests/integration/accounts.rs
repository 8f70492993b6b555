//! Teams in their own AWS accounts, against the emulator: the API in the
//! platform's account, functions in two team accounts, reached through the
//! roles the tenant policy names. The strict layer refuses AssumeRole as AWS
//! does (a role that does not exist, a trust that does not name the caller,
//! a wrong external id), which moto does not.

use serde_json::Value;

use crate::support::faults::Refusal;
use crate::support::iam::{iam_call, Policy};
use crate::support::{self, assert_exit_code, mount_yaml, show, write_manifest, Emulator, Fixture};

const PAYMENTS: &str = "222222222222";
const ORDERS: &str = "333333333333";
const ROLE: &str = "apimount-grants";

/// A file of `deploy/`, with its placeholders filled.
fn deploy_file(name: &str, fill: &[(&str, &str)]) -> String {
    let path = format!("{}/deploy/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in fill {
        text = text.replace(k, v);
    }
    text
}

/// The trust policy `deploy/team-role-trust.json` gives a team's role.
fn trust(platform: &str, external_id: &str) -> String {
    deploy_file(
        "team-role-trust.json",
        &[
            ("PARTITION", "aws"),
            ("PLATFORM_ACCOUNT_ID", platform),
            ("CONTROLLER_ROLE_NAME", "apimount-controller"),
            ("EXTERNAL_ID", external_id),
        ],
    )
}

fn policy(orders_external_id: &str) -> String {
    format!(
        "apiVersion: apimount/v1
kind: TenantPolicy
accounts:
  - id: \"{PAYMENTS}\"
    roleArn: arn:aws:iam::{PAYMENTS}:role/{ROLE}
    externalId: platform-apimount
  - id: \"{ORDERS}\"
    roleArn: arn:aws:iam::{ORDERS}:role/{ROLE}
    externalId: {orders_external_id}
tenants:
  - name: payments
    paths: [/payments]
    functions: [\"payment-*\"]
    authorizations: [NONE]
    accounts: [\"{PAYMENTS}\"]
  - name: orders
    paths: [/orders]
    functions: [\"order-*\", \"payment-*\"]
    authorizations: [NONE]
    accounts: [\"{ORDERS}\"]
"
    )
}

/// The SourceArn of a statement (`Condition.ArnLike.AWS:SourceArn`).
fn source_arn(statement: &Value) -> String {
    statement["Condition"]["ArnLike"]["AWS:SourceArn"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Two team accounts: each function's permission is granted in its own
/// account through its role, with the API's account in the SourceArn; a
/// tenant naming a function in an account it was not given is refused before
/// anything is read or written there; a role that cannot be assumed fails
/// only its account's mounts, with the role in the reason, and they apply
/// once the role's trust is right.
#[tokio::test]
async fn functions_in_team_accounts_are_mounted_through_their_roles() {
    let fx = Fixture::new(Emulator::start_multi_account()).await;
    let (api, _) = fx.create_rest_api("platform").await;
    let platform = fx.account_id();
    let payments = fx.team_account(PAYMENTS).await;
    let orders = fx.team_account(ORDERS).await;
    let payment_fn = payments.create_function("payment-service").await;
    let order_fn = orders.create_function("order-service").await;
    payments
        .create_grants_role(ROLE, &trust(platform, "platform-apimount"))
        .await;
    // The orders role asks for another external id than the policy gives.
    orders
        .create_grants_role(ROLE, &trust(platform, "the-right-one"))
        .await;

    let root = tempfile::tempdir().unwrap();
    let manifests = root.path().join("manifests");
    let tenants = root.path().join("tenants.yaml");
    std::fs::write(&tenants, policy("platform-apimount")).unwrap();
    let write = |file: &str, name: &str, path: &str, function: &str| {
        write_manifest(&manifests, file, &mount_yaml(name, path, function, ""))
    };
    write(
        "payments/payments.yaml",
        "payments",
        "/payments",
        &payment_fn,
    );
    write("orders/orders.yaml", "orders", "/orders", &order_fn);
    // The orders team names the payments team's function: its name matches
    // the team's patterns, its account is not one the team was given.
    write(
        "orders/sneaky.yaml",
        "sneaky",
        "/orders/sneaky",
        &payment_fn,
    );
    let apply = || {
        fx.apimount(&[
            "apply",
            "--manifests",
            manifests.to_str().unwrap(),
            "--tenants",
            tenants.to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--pacing",
            "off",
        ])
    };

    // validate sees the sneaky mount's account without AWS: the tenant lists
    // its accounts, and the ARN names another.
    let out = fx.apimount(&[
        "validate",
        "--manifests",
        manifests.to_str().unwrap(),
        "--tenants",
        tenants.to_str().unwrap(),
    ]);
    assert_exit_code(&out, 1);
    let text = show(&out);
    assert!(
        text.contains("sneaky.yaml") && text.contains("AccountNotAllowed"),
        "{text}"
    );
    assert!(!text.contains("orders.yaml:"), "{text}");

    // First apply: the orders role cannot be assumed (wrong external id).
    fx.expect_refusal(Refusal::RoleNotAssumable);
    let out = apply();
    assert_exit_code(&out, 1);
    let text = show(&out);
    assert!(
        text.contains("AccountNotAllowed") && text.contains(PAYMENTS),
        "the sneaky mount is refused, naming the account: {text}"
    );
    assert!(
        text.contains("AccessDenied")
            && text.contains(&format!("arn:aws:iam::{ORDERS}:role/{ROLE}")),
        "the orders mount fails with the role in the reason: {text}"
    );
    let paths = fx.resource_paths(&api).await;
    assert!(paths.contains(&"/payments".to_string()), "{paths:?}");
    assert!(!paths.contains(&"/orders".to_string()), "{paths:?}");
    let statements = payments.statements("payment-service").await;
    assert_eq!(statements.len(), 2, "{statements:#?}");
    for s in &statements {
        let arn = source_arn(s);
        assert!(
            arn.starts_with(&format!(
                "arn:aws:execute-api:{}:{platform}:{api}/*/*/payments",
                fx.region()
            )),
            "the SourceArn names the API's account, not the function's: {arn}"
        );
    }
    assert!(
        !statements
            .iter()
            .any(|s| source_arn(s).contains("/orders/sneaky")),
        "nothing of the sneaky mount reached the payments account: {statements:#?}"
    );
    assert!(orders.statements("order-service").await.is_empty());
    let stats = fx.strict_stats();
    assert!(stats.refusals[&Refusal::RoleNotAssumable] > 0, "{stats}");

    // The policy gives the external id the role asks for: orders applies.
    std::fs::write(&tenants, policy("the-right-one")).unwrap();
    let out = apply();
    assert_exit_code(&out, 1); // the sneaky mount is still refused
    let paths = fx.resource_paths(&api).await;
    assert!(paths.contains(&"/orders".to_string()), "{}", show(&out));
    assert!(!paths.contains(&"/orders/sneaky".to_string()), "{paths:?}");
    let statements = orders.statements("order-service").await;
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert!(statements
        .iter()
        .all(|s| source_arn(s).starts_with(&format!(
            "arn:aws:execute-api:{}:{platform}:{api}/*/*/orders",
            fx.region()
        ))));
    // Nothing was ever granted in the platform's own account.
    assert!(fx.all_policy_statements("payment-service").await.is_empty());

    // Without the sneaky mount, the pass is clean and a second changes nothing.
    std::fs::remove_file(manifests.join("orders/sneaky.yaml")).unwrap();
    let out = apply();
    assert_exit_code(&out, 0);
    let out = fx.apimount(&[
        "plan",
        "--manifests",
        manifests.to_str().unwrap(),
        "--tenants",
        tenants.to_str().unwrap(),
        "--rest-api-id",
        &api,
    ]);
    assert_exit_code(&out, 0);
    // What the CLI shows: the role a mount's permission goes through, the
    // function's account in the tree and in the status documents.
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--manifests",
            manifests.to_str().unwrap(),
            "--tenants",
            tenants.to_str().unwrap(),
            "--rest-api-id",
            &api,
        ]);
        fx.apimount(&all)
    };
    let role_of = |account: &str| format!("through role arn:aws:iam::{account}:role/{ROLE}");
    let out = cli(&["plan"]);
    assert_exit_code(&out, 0);
    assert!(show(&out).contains(&role_of(PAYMENTS)), "{}", show(&out));
    let out = cli(&["status", "--tree"]);
    assert_exit_code(&out, 0);
    assert!(
        show(&out).contains(&format!("payment-service (account {PAYMENTS})")),
        "{}",
        show(&out)
    );
    let out = cli(&["status", "--output", "json"]);
    assert_exit_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!("\"functionAccount\":\"{ORDERS}\""))
            || text.contains(&format!("\"functionAccount\": \"{ORDERS}\"")),
        "{text}"
    );

    let stats = fx.strict_stats();
    assert!(
        stats.strict_lookups > 0 && stats.strict_lookup_errors == 0,
        "{stats}"
    );

    // deploy/: every Lambda call in a team account is one the team's role
    // policy allows, and every AssumeRole one the controller's allows.
    let controller = Policy::parse(
        &deploy_file("iam-policy.json", &[]),
        &[("PARTITION", "aws"), ("TEAM_ROLE_NAME", ROLE)],
    );
    let team = |account: &str, prefix: &str| {
        Policy::parse(
            &deploy_file("team-role-policy.json", &[]),
            &[
                ("TEAM_ACCOUNT_ID", account),
                ("PARTITION", "aws"),
                ("REGION", fx.region()),
                ("FUNCTION_PREFIX", prefix),
            ],
        )
    };
    let teams = [
        (PAYMENTS, team(PAYMENTS, "payment-")),
        (ORDERS, team(ORDERS, "order-")),
    ];
    let (mut judged, mut denied) = (0, Vec::new());
    for r in fx.strict_requests() {
        let Ok(Some(call)) = iam_call(&r, "aws", platform) else {
            continue;
        };
        let by = if call.action == "sts:AssumeRole" {
            Some(&controller)
        } else {
            teams
                .iter()
                .find(|(a, _)| {
                    call.action.starts_with("lambda:") && call.resource.contains(&format!(":{a}:"))
                })
                .map(|(_, p)| p)
        };
        if let Some(policy) = by {
            judged += 1;
            if !policy.allows(&call) {
                denied.push(format!("{} on {}", call.action, call.resource));
            }
        }
    }
    assert!(
        judged >= 6,
        "AssumeRole and the team accounts' Lambda calls were judged: {judged}"
    );
    assert!(denied.is_empty(), "deploy/ does not allow: {denied:#?}");
}

/// Without a policy, `--account-role` names the role; a function in an
/// account with no role is refused before any call reaches it.
#[tokio::test]
async fn account_roles_by_flag_and_accounts_without_one() {
    let fx = Fixture::new(Emulator::start_multi_account()).await;
    let (api, _) = fx.create_rest_api("platform").await;
    let platform = fx.account_id();
    let payments = fx.team_account(PAYMENTS).await;
    let orders = fx.team_account(ORDERS).await;
    let payment_fn = payments.create_function("payment-service").await;
    let order_fn = orders.create_function("order-service").await;
    let role = payments
        .create_grants_role(ROLE, &trust(platform, "ext-1"))
        .await;
    let dir = support::manifest_dir();
    write_manifest(
        dir.path(),
        "payments.yaml",
        &mount_yaml("payments", "/payments", &payment_fn, ""),
    );
    write_manifest(
        dir.path(),
        "orders.yaml",
        &mount_yaml("orders", "/orders", &order_fn, ""),
    );
    let out = fx.apimount(&[
        "apply",
        "--manifests",
        dir.path().to_str().unwrap(),
        "--rest-api-id",
        &api,
        "--account-role",
        &format!("{PAYMENTS}={role}"),
        "--external-id",
        "ext-1",
    ]);
    assert_exit_code(&out, 1);
    let text = show(&out);
    assert!(
        text.contains("AccountNotAllowed") && text.contains(&format!("--account-role {ORDERS}=")),
        "{text}"
    );
    let paths = fx.resource_paths(&api).await;
    assert!(paths.contains(&"/payments".to_string()), "{text}");
    assert!(!paths.contains(&"/orders".to_string()), "{paths:?}");
    assert_eq!(payments.statements("payment-service").await.len(), 2);
    assert!(orders.statements("order-service").await.is_empty());
    // No request was signed for the orders account's function at all.
    let reached: Vec<String> = fx
        .strict_requests()
        .into_iter()
        .filter(|r| r.path.contains(ORDERS))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(reached.is_empty(), "{reached:?}");
    // A malformed flag is a usage error.
    let out = fx.apimount(&[
        "plan",
        "--manifests",
        dir.path().to_str().unwrap(),
        "--rest-api-id",
        &api,
        "--account-role",
        &format!("{PAYMENTS}=arn:aws:iam::{ORDERS}:role/x"),
    ]);
    assert_exit_code(&out, 2);
    assert!(show(&out).contains("not in account"), "{}", show(&out));
}

/// A long run through a role whose sessions are short: the daemon assumes
/// the role again before each session ends and keeps working with the new
/// credentials (a permission removed by hand in the team's account is put
/// back by a resync well after the first session ended).
#[tokio::test]
async fn assumed_credentials_are_refreshed_before_they_expire() {
    use crate::support::daemon::{Daemon, DEADLINE};
    let fx = Fixture::new(Emulator::start_multi_account()).await;
    let (api, _) = fx.create_rest_api("platform").await;
    let platform = fx.account_id();
    let payments = fx.team_account(PAYMENTS).await;
    let payment_fn = payments.create_function("payment-service").await;
    let role = payments
        .create_grants_role(ROLE, &trust(platform, "ext-1"))
        .await;
    let dir = support::manifest_dir();
    write_manifest(
        dir.path(),
        "payments.yaml",
        &mount_yaml("payments", "/payments", &payment_fn, ""),
    );
    let d = Daemon::start(
        &fx,
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--rest-api-id",
            &api,
            "--account-role",
            &format!("{PAYMENTS}={role}"),
            "--external-id",
            "ext-1",
            "--role-session",
            "15s",
            "--resync-interval",
            "1s",
            "--quota-share",
            "100%",
        ],
    );
    d.wait_for("the permissions granted", DEADLINE, || async {
        (payments.statements("payment-service").await.len() == 2).then_some(())
    })
    .await;
    let assumed = || {
        fx.strict_requests()
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("Action=AssumeRole"))
            .count()
    };
    let first = assumed();
    assert!(first >= 1, "the role was assumed");
    // 15 s sessions are refreshed when 10 s or less are left.
    d.wait_for("the role assumed again", DEADLINE, || async {
        (assumed() > first).then_some(())
    })
    .await;
    d.wait_for("a third session", DEADLINE, || async {
        (assumed() > first + 1).then_some(())
    })
    .await;
    payments.remove_statements("payment-service").await;
    d.wait_for("the permissions put back", DEADLINE, || async {
        (payments.statements("payment-service").await.len() == 2).then_some(())
    })
    .await;
    assert!(d.lines_with("AccessDenied").is_empty(), "{}", d.stderr());
}
