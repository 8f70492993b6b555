//! The Lambda alias a release moves traffic on: read it, create it, update
//! it only as of the revision read (Lambda refuses a stale RevisionId with
//! 412), and check that a version exists.

use std::collections::HashMap;

use aws_sdk_lambda::types::AliasRoutingConfiguration;

use super::accounts::through_role;
use super::error::map_err;
use super::lambda::account_of;
use super::pacing::Op as Paced;
use super::{Aws, AwsError, AwsErrorKind};
use crate::manifest::FunctionRef;
use crate::plan::release::AliasView;

/// The code Lambda answers a write made with a stale RevisionId with.
pub const STALE_REVISION: &str = "PreconditionFailedException";

impl AwsError {
    /// Whether this is Lambda's refusal of a write based on a stale read.
    pub fn is_stale_revision(&self) -> bool {
        self.code.as_deref() == Some(STALE_REVISION)
    }
}

impl Aws {
    /// The alias `name` of `function` (its qualifier is ignored), or `None` if it does not exist.
    pub async fn get_alias(
        &self,
        function: &FunctionRef,
        name: &str,
    ) -> Result<Option<AliasView>, AwsError> {
        let (lambda, pacer, role) = self.lambda_in(account_of(function));
        pacer.take(Paced::Lambda).await;
        match lambda
            .get_alias()
            .function_name(function.unqualified())
            .name(name)
            .send()
            .await
        {
            Ok(a) => Ok(Some(AliasView {
                version: a.function_version().unwrap_or_default().to_string(),
                weight: weight_of(a.routing_config()),
                description: a.description().unwrap_or_default().to_string(),
                revision: a.revision_id().unwrap_or_default().to_string(),
            })),
            Err(e) => {
                let e = through_role(map_err("lambda:GetAlias", e), role.as_ref());
                match e.kind {
                    AwsErrorKind::NotFound => Ok(None),
                    _ => Err(e),
                }
            }
        }
    }

    /// Creates the alias at `version`, with no routing weights.
    pub async fn create_alias(
        &self,
        function: &FunctionRef,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<(), AwsError> {
        let (lambda, pacer, role) = self.lambda_in(account_of(function));
        pacer.take(Paced::Lambda).await;
        lambda
            .create_alias()
            .function_name(function.unqualified())
            .name(name)
            .function_version(version)
            .description(description)
            .send()
            .await
            .map_err(|e| through_role(map_err("lambda:CreateAlias", e), role.as_ref()))?;
        Ok(())
    }

    /// Sets the alias's version, weights and description, if it is still at
    /// `revision`; a stale revision is refused ([`AwsError::is_stale_revision`]).
    pub async fn update_alias(
        &self,
        function: &FunctionRef,
        name: &str,
        revision: &str,
        version: &str,
        weight: Option<&(String, f64)>,
        description: &str,
    ) -> Result<(), AwsError> {
        let (lambda, pacer, role) = self.lambda_in(account_of(function));
        pacer.take(Paced::Lambda).await;
        let weights: HashMap<String, f64> = weight.cloned().into_iter().collect();
        lambda
            .update_alias()
            .function_name(function.unqualified())
            .name(name)
            .revision_id(revision)
            .function_version(version)
            .description(description)
            .routing_config(
                AliasRoutingConfiguration::builder()
                    .set_additional_version_weights(Some(weights))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| through_role(map_err("lambda:UpdateAlias", e), role.as_ref()))?;
        Ok(())
    }

    /// Whether `version` of `function` is published.
    pub async fn version_exists(
        &self,
        function: &FunctionRef,
        version: &str,
    ) -> Result<bool, AwsError> {
        let (lambda, pacer, role) = self.lambda_in(account_of(function));
        pacer.take(Paced::GetFunction).await;
        match lambda
            .get_function_configuration()
            .function_name(function.unqualified())
            .qualifier(version)
            .send()
            .await
        {
            Ok(c) => Ok(c.version() == Some(version)),
            Err(e) => {
                let e = through_role(map_err("lambda:GetFunctionConfiguration", e), role.as_ref());
                match e.kind {
                    AwsErrorKind::NotFound => Ok(false),
                    _ => Err(e),
                }
            }
        }
    }
}

/// The one additional version of a routing configuration, if any.
fn weight_of(config: Option<&AliasRoutingConfiguration>) -> Option<(String, f64)> {
    let weights = config?.additional_version_weights()?;
    let mut list: Vec<(&String, &f64)> = weights.iter().collect();
    list.sort_by(|a, b| a.0.cmp(b.0));
    list.first().map(|(v, w)| ((*v).clone(), **w))
}
