//! The JSON Schema of a ServiceMount, generated from the same types that
//! parse manifests, in draft-07 (the draft editors' YAML plugins read).

use schemars::generate::SchemaSettings;

use crate::manifest::ServiceMountDoc;

/// The schema as pretty-printed JSON, with a trailing newline.
pub fn servicemount_schema_json() -> String {
    let generator = SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<ServiceMountDoc>();
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_draft_07_and_describes_a_service_mount() {
        let text = servicemount_schema_json();
        assert!(text.ends_with("}\n"));
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        for field in ["apiVersion", "kind", "metadata", "spec"] {
            assert!(schema["properties"].get(field).is_some(), "{field}");
        }
    }
}
