//! Lambda calls: resolving a function reference, reading its resource policy,
//! and adding and removing apimount's invoke permissions.

use super::accounts::through_role;
use super::error::{ignore_not_found, map_err};
use super::pacing::Op as Paced;
use super::{Aws, AwsError, AwsErrorKind};
use crate::manifest::FunctionRef;
use crate::plan::model::ResolvedFunction;
use crate::plan::policy::PolicyStatement;

impl Aws {
    /// Resolves a function reference to its ARN with GetFunction.
    pub async fn resolve_function(&self, f: &FunctionRef) -> Result<ResolvedFunction, AwsError> {
        let name = f.unqualified();
        let (lambda, pacer, role) = self.lambda_in(account_of(f));
        pacer.take(Paced::GetFunction).await;
        let out = lambda
            .get_function()
            .function_name(name)
            .set_qualifier(f.qualifier().map(str::to_string))
            .send()
            .await
            .map_err(|e| through_role(map_err("lambda:GetFunction", e), role.as_ref()))?;
        let arn = out
            .configuration()
            .and_then(|c| c.function_arn())
            .ok_or_else(|| {
                AwsError::local(
                    "lambda:GetFunction",
                    AwsErrorKind::Other,
                    "the answer carried no function ARN",
                )
            })?;
        let mut resolved = ResolvedFunction::from_arn(arn).ok_or_else(|| {
            AwsError::local(
                "lambda:GetFunction",
                AwsErrorKind::Other,
                format!("unexpected function ARN {arn}"),
            )
        })?;
        // The integration must name exactly what the manifest asked for.
        resolved.qualifier = f.qualifier().map(str::to_string);
        Ok(resolved)
    }

    /// Resolves a function reference and reads its resource policy, in one
    /// Lambda read when it can: GetPolicy accepts the bare name, and any
    /// statement of the policy names the function's full ARN in `Resource`.
    /// GetFunction is asked only when the policy is missing or names no ARN
    /// (a function apimount has not mounted yet), so a pass that finds
    /// nothing to change costs one Lambda read per function.
    pub async fn inspect_function(
        &self,
        f: &FunctionRef,
    ) -> Result<(ResolvedFunction, Vec<PolicyStatement>), AwsError> {
        let (lambda, pacer, role) = self.lambda_in(account_of(f));
        pacer.take(Paced::Lambda).await;
        let answer = lambda
            .get_policy()
            .function_name(f.unqualified())
            .set_qualifier(f.qualifier().map(str::to_string))
            .send()
            .await;
        let statements = match answer {
            Ok(p) => parse_policy_answer(p.policy())?,
            Err(e) => {
                let e = through_role(map_err("lambda:GetPolicy", e), role.as_ref());
                if e.kind != AwsErrorKind::NotFound {
                    return Err(e);
                }
                // No policy, or no function: GetFunction tells them apart.
                Vec::new()
            }
        };
        let named = statements.iter().find_map(|s| {
            let r = ResolvedFunction::from_arn(s.resource.as_deref()?)?;
            let same = r.name == f.name()
                && r.qualifier.as_deref() == f.qualifier()
                && match f {
                    FunctionRef::Name { .. } => true,
                    FunctionRef::Arn {
                        partition,
                        region,
                        account,
                        ..
                    } => &r.partition == partition && &r.region == region && &r.account == account,
                };
            same.then_some(r)
        });
        let resolved = match named {
            Some(r) => r,
            None => self.resolve_function(f).await?,
        };
        Ok((resolved.clone(), only_statements_of(statements, &resolved)))
    }

    /// The function's resource policy; empty when it has none.
    pub async fn get_policy(
        &self,
        function: &ResolvedFunction,
    ) -> Result<Vec<PolicyStatement>, AwsError> {
        let (lambda, pacer, role) = self.lambda_in(Some(&function.account));
        pacer.take(Paced::Lambda).await;
        match lambda
            .get_policy()
            .function_name(function.unqualified_arn())
            .set_qualifier(function.qualifier.clone())
            .send()
            .await
        {
            Ok(p) => Ok(only_statements_of(
                parse_policy_answer(p.policy())?,
                function,
            )),
            Err(e) => {
                let e = through_role(map_err("lambda:GetPolicy", e), role.as_ref());
                if e.kind == AwsErrorKind::NotFound {
                    // No policy yet (or no function: GetFunction tells those apart).
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            }
        }
    }

    pub async fn add_permission(
        &self,
        function: &ResolvedFunction,
        sid: &str,
        source_arn: &str,
    ) -> Result<(), AwsError> {
        let (lambda, pacer, role) = self.lambda_in(Some(&function.account));
        pacer.take(Paced::Lambda).await;
        lambda
            .add_permission()
            .function_name(function.unqualified_arn())
            .set_qualifier(function.qualifier.clone())
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal("apigateway.amazonaws.com")
            .source_arn(source_arn)
            .send()
            .await
            .map_err(|e| through_role(map_err("lambda:AddPermission", e), role.as_ref()))?;
        Ok(())
    }

    pub async fn remove_permission(
        &self,
        function: &ResolvedFunction,
        sid: &str,
    ) -> Result<(), AwsError> {
        let (lambda, pacer, role) = self.lambda_in(Some(&function.account));
        pacer.take(Paced::Lambda).await;
        match lambda
            .remove_permission()
            .function_name(function.unqualified_arn())
            .set_qualifier(function.qualifier.clone())
            .statement_id(sid)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => ignore_not_found(through_role(
                map_err("lambda:RemovePermission", e),
                role.as_ref(),
            )),
        }
    }
}

/// The account a reference names, if it names one (an ARN).
pub(crate) fn account_of(f: &FunctionRef) -> Option<&str> {
    match f {
        FunctionRef::Arn { account, .. } => Some(account),
        FunctionRef::Name { .. } => None,
    }
}

fn parse_policy_answer(doc: Option<&str>) -> Result<Vec<PolicyStatement>, AwsError> {
    PolicyStatement::parse_policy(doc.unwrap_or("{}")).map_err(|e| {
        AwsError::local(
            "lambda:GetPolicy",
            AwsErrorKind::Other,
            format!("unreadable policy document: {e}"),
        )
    })
}

/// The statements of this exact function and qualifier (Lambda keeps one
/// policy per version or alias; some emulators keep one per function).
fn only_statements_of(
    mut statements: Vec<PolicyStatement>,
    function: &ResolvedFunction,
) -> Vec<PolicyStatement> {
    let arn = function.arn();
    statements.retain(|s| s.resource.is_none() || s.resource.as_deref() == Some(arn.as_str()));
    statements
}
