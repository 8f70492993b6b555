//! The stage-tag calls of the instance claim (`plan::instance_tag`): read the
//! stage's tags, set one, remove one.
//!
//! The client is apart from the reconciler's: it has no write gate, since a
//! standby must be able to announce itself, and every call is bounded by a
//! short timeout, so a renewal cannot outlast the claim it renews.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::map_err;
use super::{partition_of_region, AwsConfig, AwsError, AwsErrorKind, NoRegion};

/// One stage's tags, through the SDK.
pub struct StageTags {
    client: aws_sdk_apigateway::Client,
    arn: String,
}

impl StageTags {
    /// A client of the tags of `stage` of `api_id`, every call of which gives
    /// up after `timeout` (retries included).
    pub fn new(
        config: &AwsConfig,
        api_id: &str,
        stage: &str,
        timeout: Duration,
    ) -> Result<StageTags, NoRegion> {
        let region = config.region().ok_or(NoRegion)?;
        let conf = aws_sdk_apigateway::config::Builder::from(&config.sdk)
            .timeout_config(super::bounded_timeouts(timeout))
            .interceptor(config.calls());
        Ok(StageTags {
            client: aws_sdk_apigateway::Client::from_conf(conf.build()),
            arn: format!(
                "arn:{}:apigateway:{region}::/restapis/{api_id}/stages/{stage}",
                partition_of_region(&region)
            ),
        })
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The stage's tags; `None` when the stage (or the API) does not exist.
    pub async fn get(&self) -> Result<Option<BTreeMap<String, String>>, AwsError> {
        match self.client.get_tags().resource_arn(&self.arn).send().await {
            Ok(out) => Ok(Some(
                out.tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            )),
            Err(e) => {
                let e = map_err("apigateway:GetTags", e);
                if e.kind == AwsErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Sets one tag (the others stay). `Ok(false)` when the stage does not
    /// exist.
    pub async fn put(&self, key: &str, value: &str) -> Result<bool, AwsError> {
        match self
            .client
            .tag_resource()
            .resource_arn(&self.arn)
            .tags(key, value)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = map_err("apigateway:TagResource", e);
                if e.kind == AwsErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Removes one tag; a stage that is gone has none to remove.
    pub async fn remove(&self, key: &str) -> Result<(), AwsError> {
        match self
            .client
            .untag_resource()
            .resource_arn(&self.arn)
            .tag_keys(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = map_err("apigateway:UntagResource", e);
                if e.kind == AwsErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}
