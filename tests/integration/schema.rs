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
