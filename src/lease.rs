//! Leader election: a lease item in a DynamoDB table, taken and renewed with
//! conditional writes, so that of several instances of the same owner on the
//! same API exactly one writes.
//!
//! # Protocol
//! - The item's key is `apimount/{owner}/{apiId}`; it records the holder (a
//!   random id per process) and when the lease expires (Unix milliseconds).
//! - Acquire or renew: PutItem with the condition "no item, or it expired, or
//!   I hold it". Only one writer can win a conditional write.
//! - The holder renews every third of the lease time; a holder that cannot
//!   renew before expiry stops writing at the next safe point.
//! - On clean shutdown the holder deletes the item (conditionally), so a
//!   standby takes over at once; if it dies, the lease runs out.
//!
//! # Assumptions
//! Clocks of the instances agree to well within the lease time (default 15 s).
//! The table exists with a string partition key named `id`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

/// One lease, as seen by one instance.
pub struct Lease {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key: String,
    holder: String,
    ttl: Duration,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Lease {
    pub fn new(
        config: &aws_config::SdkConfig,
        table: &str,
        owner: &str,
        api_id: &str,
        ttl: Duration,
    ) -> Lease {
        let holder = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        Lease {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.to_string(),
            key: format!("apimount/{owner}/{api_id}"),
            holder,
            ttl,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes or renews the lease. `Ok(false)` when another instance holds it.
    pub async fn try_acquire(&self) -> Result<bool, String> {
        let now = now_ms();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(self.key.clone()))
            .item("holder", AttributeValue::S(self.holder.clone()))
            .item(
                "expiresAt",
                AttributeValue::N((now + self.ttl.as_millis() as i64).to_string()),
            )
            .condition_expression("attribute_not_exists(id) OR expiresAt < :now OR holder = :me")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":me", AttributeValue::S(self.holder.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let conditional = e
                    .as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception());
                if conditional {
                    Ok(false)
                } else {
                    Err(format!(
                        "lease table {}: {}",
                        self.table,
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    ))
                }
            }
        }
    }

    /// Gives the lease up if this instance holds it.
    pub async fn release(&self) {
        let _ = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(self.key.clone()))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", AttributeValue::S(self.holder.clone()))
            .send()
            .await;
    }
}
