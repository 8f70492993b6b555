//! Other AWS accounts on the emulator: moto keeps accounts apart and acts in
//! the account of an assumed role's ARN, so a test reaches a team's account
//! by assuming a role there (moto lets the test assume any), and creates its
//! functions and the role apimount assumes, as the team would.

use aws_sdk_lambda::config::Credentials;
use serde_json::{json, Value};

use super::Fixture;

/// One team's account, acted in through an assumed role.
pub struct TeamAccount {
    pub id: String,
    lambda: aws_sdk_lambda::Client,
    iam: aws_sdk_iam::Client,
}

impl Fixture {
    /// Clients acting in account `id`.
    pub async fn team_account(&self, id: &str) -> TeamAccount {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config);
        let out = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{id}:role/test-admin"))
            .role_session_name("apimount-test")
            .send()
            .await
            .unwrap_or_else(|e| panic!("AssumeRole into {id}: {e:?}"));
        let c = out.credentials().expect("AssumeRole returned credentials");
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "team-account",
        );
        let lambda = aws_sdk_lambda::config::Builder::from(&self.sdk_config)
            .credentials_provider(creds.clone())
            .build();
        let iam = aws_sdk_iam::config::Builder::from(&self.sdk_config)
            .credentials_provider(creds)
            .build();
        TeamAccount {
            id: id.to_string(),
            lambda: aws_sdk_lambda::Client::from_conf(lambda),
            iam: aws_sdk_iam::Client::from_conf(iam),
        }
    }
}

impl TeamAccount {
    /// Creates a function in this account; returns its ARN.
    pub async fn create_function(&self, name: &str) -> String {
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
        });
        let role = match self
            .iam
            .create_role()
            .role_name("team-lambda")
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
        {
            Ok(out) => out.role().expect("a role").arn().to_string(),
            Err(_) => format!("arn:aws:iam::{}:role/team-lambda", self.id),
        };
        let code = aws_sdk_lambda::types::FunctionCode::builder()
            .zip_file(aws_sdk_lambda::primitives::Blob::new(
                b"team function".to_vec(),
            ))
            .build();
        let arn = self
            .lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("index.handler")
            .role(role)
            .code(code)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateFunction {name} in {}: {e:?}", self.id))
            .function_arn()
            .expect("an ARN")
            .to_string();
        assert!(
            arn.contains(&format!(":{}:function:", self.id)),
            "the function is in account {}: {arn}",
            self.id
        );
        arn
    }

    /// Creates the role apimount assumes here, with this trust policy;
    /// returns its ARN.
    pub async fn create_grants_role(&self, name: &str, trust: &str) -> String {
        self.iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateRole {name} in {}: {e:?}", self.id))
            .role()
            .expect("a role")
            .arn()
            .to_string()
    }

    /// Removes every statement of a function's resource policy (a hand
    /// edit in the team's account).
    pub async fn remove_statements(&self, function: &str) {
        for s in self.statements(function).await {
            let sid = s["Sid"].as_str().expect("a statement id");
            self.lambda
                .remove_permission()
                .function_name(function)
                .statement_id(sid)
                .send()
                .await
                .unwrap_or_else(|e| panic!("RemovePermission {sid}: {e:?}"));
        }
    }

    /// The statements of a function's resource policy here.
    pub async fn statements(&self, function: &str) -> Vec<Value> {
        let policy = match self
            .lambda
            .get_policy()
            .function_name(function)
            .send()
            .await
        {
            Ok(out) => out.policy().unwrap_or_default().to_string(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                return Vec::new()
            }
            Err(e) => panic!("GetPolicy {function} in {}: {e:?}", self.id),
        };
        let doc: Value = serde_json::from_str(&policy).unwrap_or(Value::Null);
        match doc.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(single @ Value::Object(_)) => vec![single.clone()],
            _ => Vec::new(),
        }
    }
}
