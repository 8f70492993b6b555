//! Migration from a shared Serverless-style gateway (`spec.adopt`) and the
//! read-only `apimount status` views, against the emulator.

use crate::support::{
    assert_exit_code, assert_success, manifest_dir, mount_yaml, stdout, untagged, write_manifest,
    Fixture, Integration,
};

/// Creates a route the way Serverless Framework does on a shared API: ANY on
/// the path and its {proxy+}, Lambda proxy integrations, no apimount marker.
async fn serverless_route(fx: &Fixture, api: &str, root: &str, part: &str, fn_arn: &str) {
    let uri = fx.lambda_uri(fn_arn);
    let parent = fx.create_resource(api, root, part).await;
    let proxy = fx.create_resource(api, &parent, "{proxy+}").await;
    for id in [parent, proxy] {
        fx.put_foreign_method(api, &id, "ANY", None, Integration::LambdaProxy(&uri))
            .await;
    }
}

#[tokio::test]
async fn serverless_routes_are_adopted_then_managed() {
    let fx = Fixture::start().await;
    let (api, root) = fx.create_rest_api("shared").await;
    let orders = fx.create_function("orders").await;
    let other = fx.create_function("other").await;
    serverless_route(&fx, &api, &root, "orders", &orders).await;
    serverless_route(&fx, &api, &root, "mismatch", &other).await;
    let dir = manifest_dir();
    let args = |extra: &[&str]| {
        let mut v = vec![
            "--manifests".to_string(),
            dir.path().display().to_string(),
            "--rest-api-id".into(),
            api.clone(),
            "--pacing".into(),
            "off".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |cmd: &str, extra: &[&str]| {
        let a = args(extra);
        let mut all: Vec<&str> = vec![cmd];
        all.extend(a.iter().map(String::as_str));
        fx.apimount(&all)
    };

    // Without adopt: a conflict, nothing touched.
    write_manifest(
        dir.path(),
        "orders.yaml",
        &mount_yaml("orders", "/orders", "orders", ""),
    );
    let out = run("apply", &[]);
    assert_exit_code(&out, 1);
    assert!(stdout(&out).contains("PathConflict"), "{}", stdout(&out));

    // With adopt: taken over, marked, and the route shape is unchanged.
    write_manifest(
        dir.path(),
        "orders.yaml",
        &mount_yaml("orders", "/orders", "orders", "  adopt: true\n"),
    );
    // A route of another shape (other function) is reported, not taken.
    write_manifest(
        dir.path(),
        "mismatch.yaml",
        &mount_yaml("mismatch", "/mismatch", "orders", "  adopt: true\n"),
    );
    let out = run("apply", &[]);
    assert_exit_code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("adopt"), "{text}");
    assert!(text.contains("cannot be adopted"), "{text}");
    for path in ["/orders", "/orders/{proxy+}"] {
        let r = fx.resource_at(&api, path).await.expect(path);
        let m = &r.resource_methods().unwrap()["ANY"];
        assert_eq!(
            untagged(m.operation_name()),
            Some("apimount:apimount:orders")
        );
        let i = m.method_integration().unwrap();
        assert!(i.uri().unwrap().contains(&orders), "{:?}", i.uri());
    }
    let mismatch = fx.resource_at(&api, "/mismatch").await.unwrap();
    assert_eq!(
        mismatch.resource_methods().unwrap()["ANY"].operation_name(),
        None
    );

    // From now on it is managed: drift is healed ...
    std::fs::remove_file(dir.path().join("mismatch.yaml")).unwrap();
    let id = fx
        .resource_at(&api, "/orders")
        .await
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    fx.apigateway
        .delete_method()
        .rest_api_id(&api)
        .resource_id(&id)
        .http_method("ANY")
        .send()
        .await
        .unwrap();
    assert_success(&run("apply", &[]));
    assert!(fx
        .resource_at(&api, "/orders")
        .await
        .unwrap()
        .resource_methods()
        .is_some());
    assert_exit_code(&run("plan", &[]), 0);

    // ... and it goes when its manifest goes (the foreign /mismatch stays).
    std::fs::remove_file(dir.path().join("orders.yaml")).unwrap();
    write_manifest(
        dir.path(),
        "keep.yaml",
        &mount_yaml("keep", "/keep", "orders", ""),
    );
    assert_success(&run("apply", &[]));
    assert!(fx.resource_at(&api, "/orders").await.is_none());
    assert!(fx.resource_at(&api, "/mismatch").await.is_some());
}

#[tokio::test]
async fn status_shows_states_as_table_json_and_tree() {
    let fx = Fixture::start().await;
    let (api, root) = fx.create_rest_api("status").await;
    let f = fx.create_function("svc").await;
    serverless_route(&fx, &api, &root, "legacy", &f).await;
    let dir = manifest_dir();
    write_manifest(dir.path(), "a.yaml", &mount_yaml("svc-a", "/a", "svc", ""));
    write_manifest(
        dir.path(),
        "ghost.yaml",
        &mount_yaml("ghost", "/ghost", "no-such-fn", ""),
    );
    write_manifest(dir.path(), "bad.yaml", "apiVersion: apimount/v1\nkind: [\n");
    let d = dir.path().display().to_string();
    let base = [
        "--manifests",
        d.as_str(),
        "--rest-api-id",
        api.as_str(),
        "--pacing",
        "off",
    ];
    let with = |cmd: &str, extra: &[&str]| {
        let mut v = vec![cmd];
        v.extend(base);
        v.extend(extra);
        fx.apimount(&v)
    };
    // Before apply: pending.
    let table = stdout(&with("status", &[]));
    assert!(
        table.contains("Progressing") && table.contains("FunctionNotFound"),
        "{table}"
    );
    with("apply", &[]);
    let table = stdout(&with("status", &[]));
    let row = table.lines().find(|l| l.contains("/a ")).expect(&table);
    assert!(row.contains("Ready"), "{table}");
    assert!(table.contains("InvalidManifest"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&with("status", &["--output", "json"]))).unwrap();
    let mounts = json["mounts"].as_array().unwrap();
    let a = mounts.iter().find(|m| m["name"] == "svc-a").unwrap();
    assert_eq!(a["state"], "Ready");
    let ghost = mounts.iter().find(|m| m["name"] == "ghost").unwrap();
    assert_eq!(ghost["reason"], "FunctionNotFound");
    let tree = stdout(&with("status", &["--tree"]));
    assert!(tree.contains("mount svc-a (this owner)"), "{tree}");
    assert!(tree.contains("foreign"), "{tree}");
    assert!(tree.contains("/legacy"), "{tree}");
}
