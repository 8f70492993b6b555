//! The committed JSON Schema must be exactly what `apimount schema` prints,
//! and the example manifests must satisfy the same types.

#[test]
fn committed_schema_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/servicemount.schema.json"
    ))
    .expect("schemas/servicemount.schema.json exists");
    let generated = apimount::manifest::schema::servicemount_schema_json();
    assert!(
        committed == generated,
        "schemas/servicemount.schema.json is out of date; regenerate it with\n  cargo run -- schema > schemas/servicemount.schema.json"
    );
}

#[test]
fn schema_is_draft07_and_closed() {
    let v: serde_json::Value =
        serde_json::from_str(&apimount::manifest::schema::servicemount_schema_json()).unwrap();
    assert_eq!(v["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(v["additionalProperties"], false);
    let required: Vec<&str> = v["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(required, ["apiVersion", "kind", "metadata", "spec"]);
}

#[test]
fn example_manifests_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");
    let snap = apimount::source::load_dir(
        std::path::Path::new(dir),
        &apimount::source::Layout::Flat,
        &mut Default::default(),
    )
    .unwrap();
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    assert_eq!(snap.mounts.len(), 2);
}

/// deploy/kubernetes.yaml meets the restricted Pod Security profile and
/// ships a NetworkPolicy; the IAM policy lets apimount grant invoke to API
/// Gateway only.
#[test]
fn deployment_files_are_hardened() {
    use serde_json::Value;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("deploy/kubernetes.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let pod = &kind("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        kind("ServiceAccount")["automountServiceAccountToken"],
        false
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for c in pod["containers"].as_array().unwrap() {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{c}"
        );
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
    }
    let np = &kind("NetworkPolicy")["spec"];
    assert_eq!(np["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let ingress = np["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(ingress[0]["ports"][0]["port"], 9090);
    let egress_ports: Vec<i64> = np["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_i64().unwrap())
        })
        .collect();
    assert!(
        egress_ports.iter().all(|p| *p == 443 || *p == 53),
        "{egress_ports:?}"
    );

    let iam: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/iam-policy.json")).unwrap(),
    )
    .unwrap();
    let grants: Vec<&Value> = iam["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].to_string().contains("lambda:AddPermission"))
        .collect();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0]["Condition"]["StringEquals"]["lambda:Principal"],
        "apigateway.amazonaws.com"
    );
}
