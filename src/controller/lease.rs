//! Leader election: a lease item in a DynamoDB table, taken and renewed with
//! conditional writes, so that of several instances of the same owner on the
//! same API exactly one writes.
//!
//! # Protocol
//! - The item's key is `apimount/{owner}/{apiId}`; it records the holder (a
//!   random id per process) and when the lease expires (Unix milliseconds).
//! - Acquire or renew: PutItem with the condition "no item, or it expired, or
//!   I hold it". Only one writer can win a conditional write.
//! - The holder renews every third of the lease time, each renewal bounded
//!   by that third; it writes only until two thirds of the lease after the
//!   start of its last successful renewal, which is before any other
//!   instance can take the lease (see [`keep_lease`]).
//! - On clean shutdown the holder deletes the item (conditionally), so a
//!   standby takes over at once; if it dies, the lease runs out.
//!
//! # Assumptions
//! Clocks of the instances agree to well within the lease time (default 15 s).
//! The table exists with a string partition key named `id`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::dynamodb::{LeaseTable, Written};
use crate::aws::{AwsConfig, AwsError};
use crate::errors::chain;
use crate::reconcile::Stop;

/// The lease table could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("lease table {table}")]
pub struct LeaseError {
    table: String,
    #[source]
    source: AwsError,
}

/// One lease, as seen by one instance.
pub struct Lease {
    table: LeaseTable,
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
    pub fn new(config: &AwsConfig, table: &str, owner: &str, api_id: &str, ttl: Duration) -> Lease {
        let holder = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        Lease {
            // A renewal may take a third of the lease at most.
            table: LeaseTable::new(config, table, ttl / 3),
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

    fn error(&self, source: AwsError) -> LeaseError {
        LeaseError {
            table: self.table.table().to_string(),
            source,
        }
    }

    /// Takes or renews the lease. `Ok(false)` when another instance holds it.
    pub async fn try_acquire(&self) -> Result<bool, LeaseError> {
        let now = now_ms();
        let expires = now + self.ttl.as_millis() as i64;
        match self
            .table
            .put_if_free(&self.key, &self.holder, now, expires)
            .await
        {
            Ok(w) => Ok(w == Written::Yes),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Gives the lease up if this instance holds it.
    pub async fn release(&self) {
        if let Err(e) = self.table.delete_if_held(&self.key, &self.holder).await {
            tracing::debug!(error = %chain(&e), "could not release the lease; it runs out by itself");
        }
    }
}

/// Takes and renews the lease every third of its lifetime, each attempt
/// bounded by that third. After a renewal that started at `t`, this
/// instance writes until `t + 2/3 × lease`: another instance can take the
/// lease only after `t + lease` (the expiry the renewal recorded, computed
/// from before its call), so a third of the lease is left for clock skew and
/// one call in flight. A renewal that is slow or fails moves nothing
/// forward: writing stops by itself at the deadline (see `reconcile::Stop`).
pub(crate) async fn keep_lease(lease: Arc<Lease>, stop: Arc<Stop>) {
    let period = lease.ttl() / 3;
    let safe = lease.ttl() * 2 / 3;
    let mut held = false;
    loop {
        let started = Instant::now();
        match lease.try_acquire().await {
            Ok(true) => {
                stop.allow_writes_until(Some(started + safe));
                held = true;
            }
            Ok(false) => {
                stop.allow_writes_until(None);
                if std::mem::take(&mut held) {
                    tracing::warn!("lost the lease to another instance; stopping writes");
                }
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "could not renew the lease; writes stop at its safe end unless a renewal succeeds");
            }
        }
        tokio::time::sleep_until((started + period).into()).await;
    }
}
