//! Leader election, so that of several instances of the same owner on the
//! same API exactly one writes. Two stores:
//!
//! - **A lease table** (`--lease-table`): an item in DynamoDB, taken and
//!   renewed with conditional writes. Only one writer can win a conditional
//!   write, so this is the guarantee.
//! - **The instance tag** (the default without a table, `--instance-lease`):
//!   a tag on the stage naming the holder and its expiry
//!   (`plan::instance_tag`). API Gateway has no conditional tag write, so a
//!   claim is written, left to settle, and read back; two instances that
//!   start within the same moment can both believe they hold it until the
//!   next renewal, at which each reads the tag again and one stands by. It
//!   is there to notice the second instance an operator did not mean to run
//!   (a rolling update, a copy started by hand), not to replace the table.
//!   Before the stage first exists there is nothing to tag: an instance
//!   writes unannounced until the first deployment creates it.
//!
//! # Protocol (both stores)
//! - The item's key is `apimount/{owner}/{apiId}` (the tag's,
//!   `apimount:{owner}:instance`); it records the holder (a random id per
//!   process) and when the lease expires (Unix milliseconds).
//! - Acquire or renew: "no claim, or it expired, or I hold it".
//! - The holder renews every third of the lease time, each renewal bounded
//!   by that third; it writes only until two thirds of the lease after the
//!   start of its last successful renewal, which is before any other
//!   instance can take the lease (see [`keep_lease`]).
//! - On clean shutdown the holder gives the claim up, so a standby takes
//!   over at once; if it dies, the claim runs out.
//!
//! # Assumptions
//! Clocks of the instances agree to well within the lease time. The table
//! exists with a string partition key named `id`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::dynamodb::{LeaseTable, Written};
use crate::aws::stage_tags::StageTags;
use crate::aws::{AwsConfig, AwsError, NoRegion};
use crate::errors::chain;
use crate::plan::instance_tag::{self, Claim, Holder, Standing as TagStanding};
use crate::reconcile::Stop;

use super::metrics::Metrics;

/// The lease's store could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("lease {place}")]
pub struct LeaseError {
    place: String,
    #[source]
    source: AwsError,
}

/// Where an instance stands after an attempt to take or renew the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// This instance holds it.
    Held,
    /// There is no stage to announce this instance on yet: it writes, but a
    /// second instance would not notice it.
    Unannounced,
    /// Another instance holds it (named when the store says who).
    Other(Option<String>),
}

enum Store {
    Table {
        table: LeaseTable,
        key: String,
    },
    Stage {
        tags: StageTags,
        key: String,
        me: Holder,
        /// How long a fresh claim is left before it is read back.
        settle: Duration,
    },
}

/// One lease, as seen by one instance.
pub struct Lease {
    store: Store,
    holder: String,
    ttl: Duration,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether a process with this pid runs on this host. Where `/proc` cannot
/// say, every pid is taken to run (a claim then lives until its expiry).
fn pid_runs(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Lease {
    /// The lease item of `owner` on `api_id` in a DynamoDB table.
    pub fn in_table(
        config: &AwsConfig,
        table: &str,
        owner: &str,
        api_id: &str,
        ttl: Duration,
    ) -> Lease {
        let holder = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        Lease {
            store: Store::Table {
                // A renewal may take a third of the lease at most.
                table: LeaseTable::new(config, table, ttl / 3),
                key: format!("apimount/{owner}/{api_id}"),
            },
            holder,
            ttl,
        }
    }

    /// The instance tag of `owner` on `stage` of `api_id`.
    pub fn on_stage(
        config: &AwsConfig,
        owner: &str,
        api_id: &str,
        stage: &str,
        ttl: Duration,
    ) -> Result<Lease, NoRegion> {
        let me = Holder::new(
            &host_name(),
            std::process::id(),
            &format!("{:08x}", rand::random::<u32>()),
        );
        // A renewal reads and writes: each call gets a sixth of the lease.
        let tags = StageTags::new(config, api_id, stage, ttl / 6)?;
        Ok(Lease {
            holder: me.to_string(),
            store: Store::Stage {
                tags,
                key: instance_tag::key(owner),
                me,
                settle: (ttl / 20).min(Duration::from_secs(1)),
            },
            ttl,
        })
    }

    /// Whether the lease only notices other instances (the instance tag)
    /// rather than guaranteeing one writer (a table).
    pub fn advisory(&self) -> bool {
        matches!(self.store, Store::Stage { .. })
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Where the lease is kept, for logs.
    pub fn place(&self) -> String {
        match &self.store {
            Store::Table { table, key } => format!("table {} item {key}", table.table()),
            Store::Stage { tags, key, .. } => format!("tag {key} of {}", tags.arn()),
        }
    }

    fn error(&self, source: AwsError) -> LeaseError {
        LeaseError {
            place: self.place(),
            source,
        }
    }

    /// Takes or renews the lease.
    pub async fn try_acquire(&self) -> Result<Standing, LeaseError> {
        let now = now_ms();
        let expires = now + self.ttl.as_millis() as i64;
        match &self.store {
            Store::Table { table, key } => {
                match table.put_if_free(key, &self.holder, now, expires).await {
                    Ok(Written::Yes) => Ok(Standing::Held),
                    Ok(Written::ConditionFailed) => Ok(Standing::Other(None)),
                    Err(e) => Err(self.error(e)),
                }
            }
            Store::Stage {
                tags,
                key,
                me,
                settle,
            } => {
                let value = instance_tag::encode(&Claim {
                    holder: me.clone(),
                    expires_ms: expires,
                });
                let read = || async {
                    let tags = tags.get().await.map_err(|e| self.error(e))?;
                    Ok::<_, LeaseError>(tags.map(|t| {
                        instance_tag::standing(
                            t.get(key).map(String::as_str),
                            me,
                            now_ms(),
                            pid_runs,
                        )
                    }))
                };
                let Some(before) = read().await? else {
                    return Ok(Standing::Unannounced);
                };
                if let TagStanding::Other(c) = before {
                    return Ok(Standing::Other(Some(c.holder.to_string())));
                }
                if !tags.put(key, &value).await.map_err(|e| self.error(e))? {
                    return Ok(Standing::Unannounced);
                }
                if before == TagStanding::Mine {
                    return Ok(Standing::Held);
                }
                // A fresh claim: another instance may have read the claim
                // free at the same moment. Whichever wrote last holds it.
                tokio::time::sleep(*settle).await;
                match read().await? {
                    None => Ok(Standing::Unannounced),
                    Some(TagStanding::Mine) => Ok(Standing::Held),
                    Some(TagStanding::Other(c)) => Ok(Standing::Other(Some(c.holder.to_string()))),
                    Some(TagStanding::Free) => Ok(Standing::Other(None)),
                }
            }
        }
    }

    /// Gives the lease up if this instance holds it.
    pub async fn release(&self) {
        let result = match &self.store {
            Store::Table { table, key } => {
                table.delete_if_held(key, &self.holder).await.map(|_| ())
            }
            Store::Stage { tags, key, me, .. } => match tags.get().await {
                Ok(Some(t))
                    if instance_tag::standing(
                        t.get(key).map(String::as_str),
                        me,
                        now_ms(),
                        |_| true,
                    ) == TagStanding::Mine =>
                {
                    tags.remove(key).await
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
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
pub(crate) async fn keep_lease(lease: Arc<Lease>, stop: Arc<Stop>, metrics: Arc<Metrics>) {
    let period = lease.ttl() / 3;
    let safe = lease.ttl() * 2 / 3;
    let mut held = false;
    let mut last = None;
    let mut unreadable = false;
    loop {
        let started = Instant::now();
        match lease.try_acquire().await {
            Ok(standing) => {
                match &standing {
                    Standing::Held | Standing::Unannounced => {
                        stop.allow_writes_until(Some(started + safe));
                        held = true;
                    }
                    Standing::Other(_) => {
                        stop.allow_writes_until(None);
                        if std::mem::take(&mut held) {
                            tracing::warn!("lost the lease to another instance; stopping writes");
                        }
                    }
                }
                metrics
                    .other_instance
                    .set(i64::from(matches!(standing, Standing::Other(_))));
                if last.as_ref() != Some(&standing) {
                    announce(&lease, &standing);
                }
                last = Some(standing);
            }
            Err(e) if lease.advisory() => {
                // The instance tag notices a second instance; it does not
                // stop the only one because the tag cannot be read (an
                // outage, a policy without tag reads). A standby stays one.
                let standby = matches!(last, Some(Standing::Other(_)));
                if !standby {
                    stop.allow_writes_until(Some(started + safe));
                    held = true;
                }
                if !std::mem::replace(&mut unreadable, true) {
                    tracing::warn!(
                        error = %chain(&e),
                        "could not read or write the stage's instance tag; {} until it can",
                        if standby { "standing by" } else { "writing without the instance check" }
                    );
                }
                continue_after(started, period).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "could not renew the lease; writes stop at its safe end unless a renewal succeeds");
            }
        }
        unreadable = false;
        continue_after(started, period).await;
    }
}

async fn continue_after(started: Instant, period: Duration) {
    tokio::time::sleep_until((started + period).into()).await;
}

/// Logs where this instance stands, once a change.
fn announce(lease: &Lease, standing: &Standing) {
    match standing {
        Standing::Held => tracing::debug!(place = %lease.place(), "holding the lease"),
        Standing::Unannounced => tracing::info!(
            place = %lease.place(),
            "the stage does not exist yet: this instance cannot announce itself, and a second instance of this owner would go unnoticed until the first deployment creates the stage"
        ),
        Standing::Other(Some(holder)) => tracing::warn!(
            place = %lease.place(),
            other = %holder,
            "another instance of this owner is live on this API; this one stands by and writes nothing while it lives"
        ),
        Standing::Other(None) => {
            tracing::debug!(place = %lease.place(), "another instance holds the lease")
        }
    }
}
