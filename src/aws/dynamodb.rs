//! The DynamoDB calls of the leader lease: one item, written and deleted
//! only under conditions, so that of several writers exactly one wins.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::map_err;
use super::{AwsConfig, AwsError};

/// The lease table, through the SDK.
pub struct LeaseTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// How a conditional write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition did not hold: another holder has the item.
    ConditionFailed,
}

impl LeaseTable {
    /// A client of `table` whose every call gives up after `timeout`
    /// (retries included), so a renewal cannot outlast the lease it renews.
    pub fn new(config: &AwsConfig, table: &str, timeout: Duration) -> LeaseTable {
        let conf = aws_sdk_dynamodb::config::Builder::from(&config.sdk)
            .timeout_config(super::bounded_timeouts(timeout));
        LeaseTable {
            client: aws_sdk_dynamodb::Client::from_conf(conf.build()),
            table: table.to_string(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes the lease item `key` for `holder` until `expires_ms` (Unix
    /// milliseconds), if there is no item, it expired before `now_ms`, or
    /// `holder` holds it already.
    pub async fn put_if_free(
        &self,
        key: &str,
        holder: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Written, AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(key.to_string()))
            .item("holder", AttributeValue::S(holder.to_string()))
            .item("expiresAt", AttributeValue::N(expires_ms.to_string()))
            .condition_expression("attribute_not_exists(id) OR expiresAt < :now OR holder = :me")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":me", AttributeValue::S(holder.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Yes),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::ConditionFailed)
            }
            Err(e) => Err(map_err("dynamodb:PutItem", e)),
        }
    }

    /// Deletes the lease item `key` if `holder` holds it.
    pub async fn delete_if_held(&self, key: &str, holder: &str) -> Result<Written, AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_string()))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", AttributeValue::S(holder.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Yes),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Written::ConditionFailed)
            }
            Err(e) => Err(map_err("dynamodb:DeleteItem", e)),
        }
    }
}
