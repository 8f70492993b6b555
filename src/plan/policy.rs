//! A Lambda resource policy, reduced to what apimount checks of it.

/// One statement of a Lambda resource policy, reduced to what apimount checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatement {
    pub sid: String,
    pub effect: String,
    pub action: String,
    pub principal_service: Option<String>,
    pub source_arn: Option<String>,
    /// The function ARN the statement is attached to, as the policy says.
    pub resource: Option<String>,
}

impl PolicyStatement {
    /// The statement AddPermission makes for apimount: API Gateway may
    /// invoke `function` from `source_arn`.
    pub fn invoke_from(sid: &str, source_arn: &str, function: &str) -> PolicyStatement {
        PolicyStatement {
            sid: sid.to_string(),
            effect: "Allow".into(),
            action: "lambda:InvokeFunction".into(),
            principal_service: Some("apigateway.amazonaws.com".into()),
            source_arn: Some(source_arn.to_string()),
            resource: Some(function.to_string()),
        }
    }

    /// Whether this statement is exactly the permission apimount would add.
    pub fn grants_invoke_from(&self, source_arn: &str) -> bool {
        self.effect == "Allow"
            && self.action == "lambda:InvokeFunction"
            && self.principal_service.as_deref() == Some("apigateway.amazonaws.com")
            && self.source_arn.as_deref() == Some(source_arn)
    }

    /// Parses a policy document as GetPolicy returns it.
    pub fn parse_policy(doc: &str) -> Result<Vec<PolicyStatement>, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_str(doc)?;
        let statements = match v.get("Statement") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(one @ serde_json::Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(statements
            .iter()
            .map(|s| {
                let text = |key: &str| -> String {
                    match s.get(key) {
                        Some(serde_json::Value::String(x)) => x.clone(),
                        Some(serde_json::Value::Array(a)) if a.len() == 1 => {
                            a[0].as_str().unwrap_or_default().to_string()
                        }
                        _ => String::new(),
                    }
                };
                let principal_service = match s.get("Principal") {
                    Some(serde_json::Value::Object(p)) => p
                        .get("Service")
                        .and_then(|x| x.as_str())
                        .map(str::to_string),
                    Some(serde_json::Value::String(x)) => Some(x.clone()),
                    _ => None,
                };
                let source_arn = s
                    .get("Condition")
                    .and_then(|c| c.get("ArnLike"))
                    .and_then(|c| c.get("AWS:SourceArn"))
                    .and_then(|x| x.as_str())
                    .map(str::to_string);
                let resource = Some(text("Resource")).filter(|r| !r.is_empty());
                PolicyStatement {
                    resource,
                    sid: text("Sid"),
                    effect: text("Effect"),
                    action: text("Action"),
                    principal_service,
                    source_arn,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parsing() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"s1","Effect":"Allow",
          "Principal":{"Service":"apigateway.amazonaws.com"},"Action":"lambda:InvokeFunction",
          "Resource":"arn:aws:lambda:us-east-1:1:function:f",
          "Condition":{"ArnLike":{"AWS:SourceArn":"arn:x"}}}]}"#;
        let s = PolicyStatement::parse_policy(doc).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s[0].grants_invoke_from("arn:x"));
        assert!(!s[0].grants_invoke_from("arn:y"));
        // The function a statement names, or none when it names none.
        assert_eq!(
            s[0].resource.as_deref(),
            Some("arn:aws:lambda:us-east-1:1:function:f")
        );
        let unnamed = doc.replace(r#""Resource":"arn:aws:lambda:us-east-1:1:function:f","#, "");
        assert!(!unnamed.contains("Resource"), "{unnamed}");
        assert_eq!(
            PolicyStatement::parse_policy(&unnamed).unwrap()[0].resource,
            None
        );
        // IAM lets a policy hold a single statement as an object, not a list.
        let single = doc.replacen("[{", "{", 1).replacen("}]}", "}}", 1);
        assert!(single.contains("\"Statement\":{"), "{single}");
        let s = PolicyStatement::parse_policy(&single).unwrap();
        assert_eq!(s.len(), 1, "{single}");
        assert!(s[0].grants_invoke_from("arn:x"));
        // A field may be a list of one: read as its one value.
        let listed = doc.replace(
            r#""Action":"lambda:InvokeFunction""#,
            r#""Action":["lambda:InvokeFunction"]"#,
        );
        assert!(listed.contains(r#"["lambda:InvokeFunction"]"#), "{listed}");
        let s = PolicyStatement::parse_policy(&listed).unwrap();
        assert_eq!(s[0].action, "lambda:InvokeFunction");
        assert!(s[0].grants_invoke_from("arn:x"));
        // A list of two is no one value.
        let two = doc.replace(
            r#""Action":"lambda:InvokeFunction""#,
            r#""Action":["lambda:InvokeFunction","lambda:GetFunction"]"#,
        );
        assert_eq!(PolicyStatement::parse_policy(&two).unwrap()[0].action, "");
    }
}
