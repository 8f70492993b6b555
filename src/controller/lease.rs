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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::dynamodb::{LeaseTable, Written};
use crate::aws::{AwsConfig, AwsError};
use crate::errors::chain;

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
            table: LeaseTable::new(config, table, Duration::from_secs(60)),
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

/// Takes and renews the lease every third of its lifetime. When it cannot be
/// renewed in time, the running pass is stopped at its next safe point.
pub(crate) async fn keep_lease(
    lease: Arc<Lease>,
    leader: Arc<AtomicBool>,
    stopper: Arc<AtomicBool>,
) {
    let period = lease.ttl() / 3;
    let mut last_ok = Instant::now();
    loop {
        match lease.try_acquire().await {
            Ok(true) => {
                last_ok = Instant::now();
                leader.store(true, Ordering::Relaxed);
            }
            Ok(false) => {
                if leader.swap(false, Ordering::Relaxed) {
                    tracing::warn!("lost the lease to another instance; stopping writes");
                    stopper.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "could not renew the lease");
                // Our lease is still valid until its expiry; give up before then.
                if last_ok.elapsed() > period * 2 && leader.swap(false, Ordering::Relaxed) {
                    tracing::warn!("lease about to expire without renewal; stopping writes");
                    stopper.store(true, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}
