//! Checks the emulator harness itself (`support`), not apimount: if
//! these fail, every other integration test is suspect.

use crate::support::{self, Emulator, Fixture};

#[tokio::test]
async fn emulator_serves_api_gateway_and_lambda_in_the_test_account() {
    let fx = Fixture::start().await;
    assert_eq!(fx.account_id(), support::ACCOUNT_ID);
    assert_eq!(fx.region(), support::REGION);
    assert!(fx.endpoint().starts_with("http://127.0.0.1:"));

    let (api_id, root_id) = fx.create_rest_api("apimount-smoke").await;
    assert!(!api_id.is_empty() && !root_id.is_empty());
    let resources = fx.resources(&api_id).await;
    assert_eq!(resources.len(), 1, "{resources:?}");
    assert_eq!(resources[0].path(), Some("/"));
    assert_eq!(resources[0].id(), Some(root_id.as_str()));

    let arn = fx.create_function("smoke-fn").await;
    assert_eq!(
        arn,
        format!(
            "arn:aws:lambda:{}:{}:function:smoke-fn",
            fx.region(),
            fx.account_id()
        )
    );
    // The execution role is created once and reused.
    let second = fx.create_function("smoke-fn-2").await;
    assert!(second.contains(fx.account_id()), "{second}");

    let alias_arn = fx.create_alias("smoke-fn", "live").await;
    assert_eq!(alias_arn, format!("{arn}:live"));

    assert!(fx.policy_statements("smoke-fn", None).await.is_empty());
    assert!(fx.stage(&api_id, "prod").await.is_none());
    assert!(fx.deployments(&api_id).await.is_empty());
}

#[tokio::test]
async fn policy_statements_are_split_by_qualifier() {
    let fx = Fixture::start().await;
    let arn = fx.create_function("policy-fn").await;
    fx.create_alias("policy-fn", "live").await;
    for (sid, qualifier) in [("unqualified", None), ("on-alias", Some("live"))] {
        fx.lambda
            .add_permission()
            .function_name("policy-fn")
            .set_qualifier(qualifier.map(str::to_string))
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .send()
            .await
            .expect("AddPermission");
    }

    let sids = |statements: Vec<serde_json::Value>| -> Vec<String> {
        statements
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        sids(fx.policy_statements("policy-fn", None).await),
        ["unqualified"]
    );
    assert_eq!(
        sids(fx.policy_statements(&arn, Some("live")).await),
        ["on-alias"]
    );
    assert_eq!(fx.all_policy_statements("policy-fn").await.len(), 2);
}

#[test]
fn emulators_are_independent_and_stop_on_drop() {
    let a = Emulator::start();
    let b = Emulator::start();
    assert_ne!(a.port(), b.port());
    let port = a.port();
    drop(a);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "moto_server still listening on {port} after drop"
    );
    drop(b);
}

#[test]
fn write_manifest_creates_nested_files() {
    let dir = support::manifest_dir();
    let path = support::write_manifest(dir.path(), "team/orders.yaml", "name: orders\n");
    assert_eq!(std::fs::read_to_string(path).unwrap(), "name: orders\n");
}
