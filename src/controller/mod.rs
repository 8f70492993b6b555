//! `apimount run`: the long-running loop around the reconcile pass.
//!
//! - [`trigger`]: why a pass runs; [`backoff`]: waiting before a retry;
//! - [`budget`]: the share of the account's quotas steady resyncs may use;
//! - [`retry`]: what a failure retries, and when; [`status_docs`]: documents for pipelines;
//! - [`watcher`]: the folder watch; [`lease`]: leader election;
//! - [`events`]: the pass's log lines and metrics; [`policy`]: the tenant policy file;
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`; [`metrics`]: the registry.
//!
//! # Expected flow
//! A pass runs at start, then whenever something wakes the loop: a change in
//! the manifest folder (debounced, so a burst of writes is one pass), a new
//! revision of the S3 prefix, the periodic resync (with jitter), or a retry
//! after a transient failure. Wake-ups that arrive during a pass are merged
//! into one follow-up pass. Only one pass runs at a time.
//!
//! # Guarantees
//! - Level-based: every pass reads the manifests and the whole gateway again;
//!   why the loop woke never changes what the pass does.
//! - A source that cannot be read (folder missing, S3 listing failing) skips
//!   the pass: nothing is deleted because of it.
//! - Transient failures (throttling, 5xx, timeouts) retry with exponential
//!   backoff and jitter, 800 ms doubling to 5 min, reset after a clean pass.
//!   Failures retrying cannot fix (invalid manifest, conflict, access denied)
//!   wait for a change or the next resync instead.
//! - SIGTERM/SIGINT stop the pass at the next safe point and exit 0.
//!
//! # Logs
//! One summary line per pass; a mount's state is logged only when it
//! changes; a bad manifest is reported once per distinct problem.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub mod admin;
pub mod backoff;
pub mod budget;
pub mod events;
pub mod lease;
pub mod metrics;
pub mod policy;
pub mod retry;
pub mod status_docs;
pub mod trigger;
pub mod watcher;

use std::collections::BTreeSet;

use crate::errors::chain;
use crate::manifest::tenants::TenantPolicy;
use crate::manifest::MountId;
use crate::reconcile::{Mode, Reads, Reconciler, Stop};
use crate::source::{Snapshot, Source};
use admin::Health;
use backoff::jittered;
use budget::QuotaBudget;
use events::{log_pass, Memory};
use lease::{keep_lease, Lease};
use metrics::{Metrics, ResultLabel};
use policy::PolicyFile;
use retry::{Due, Retries, Scope};
use status_docs::{StatusTarget, StatusWriter};
use trigger::Trigger;
use watcher::{FolderWatch, Followed};

/// Why the controller could not run.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot start the folder watch")]
    Watch(#[from] watcher::WatchError),
}

/// How often an unwatchable manifest folder is looked at.
const UNWATCHED_POLL: Duration = Duration::from_secs(1);

/// The next message of an optional channel; never, without one.
async fn recv(rx: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The shortest time between the starts of two passes.
pub const MIN_PASS_INTERVAL: Duration = Duration::from_secs(1);

/// Timings of the loop.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub resync_interval: Duration,
    pub debounce: Duration,
    pub poll_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The share of the account's quotas steady resyncs may use.
    pub quota: QuotaBudget,
    /// How often the loop beats while it waits (liveness between passes).
    pub heartbeat: Duration,
    /// How often running releases are looked at between passes (and at
    /// each step's end).
    pub release_poll: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        let resync_interval = Duration::from_secs(60);
        LoopOptions {
            resync_interval,
            debounce: Duration::from_millis(200),
            poll_interval: Duration::from_secs(15),
            backoff_min: Duration::from_millis(800),
            backoff_max: Duration::from_secs(300),
            quota: QuotaBudget::new(0.05),
            heartbeat: crate::settings::idle_heartbeat(crate::settings::default_liveness_timeout(
                resync_interval,
            )),
            release_poll: Duration::from_secs(10),
        }
    }
}

/// What the loop runs with.
pub struct Parts {
    pub reconciler: Arc<Reconciler>,
    pub source: Source,
    /// The tenant policy, when one is in force.
    pub tenancy: Option<PolicyFile>,
    pub opts: LoopOptions,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Turns true on SIGTERM/SIGINT.
    pub shutdown: watch::Receiver<bool>,
    /// A message per SIGHUP: read the tenant policy again, re-arm the watch.
    pub hangup: Option<mpsc::Receiver<()>>,
    pub lease: Option<Arc<Lease>>,
    /// Where each manifest's status document goes, if anywhere.
    pub status: Option<StatusTarget>,
}

/// Runs until `shutdown` turns true. Returns after the pass in flight stopped.
pub async fn run(parts: Parts) -> Result<(), ControllerError> {
    let mut c = Controller::start(parts)?;
    let mut trigger = Trigger::Start;
    let mut reads = Reads::All;
    loop {
        match c.await_leadership().await {
            Leadership::Shutdown => return Ok(()),
            Leadership::Acquired => {
                trigger = Trigger::LeaseAcquired;
                reads = Reads::All;
            }
            Leadership::Held => {}
        }
        let scope = c.pass(trigger, reads).await;
        if c.shutting_down() {
            tracing::info!("shutdown requested; stopped after the pass");
            break;
        }
        if !c.stopper.may_write() {
            // The lease was lost during the pass: stand by again.
            continue;
        }
        c.schedule_retry(&scope);
        let Some(next) = c.next_trigger().await else {
            return Ok(());
        };
        reads = match next.reads(scope == Scope::Everything) {
            // A steady resync verifies the policies in turn, within the budget.
            Reads::All if next == Trigger::Resync => Reads::Rolling(c.policy_reads()),
            other => other,
        };
        trigger = next;
    }
    c.stop().await;
    Ok(())
}

/// Where the loop stands with the lease.
enum Leadership {
    /// Leader all along (or no lease at all).
    Held,
    /// Leader again after standing by: the next pass starts afresh.
    Acquired,
    /// Shutdown was asked for while standing by.
    Shutdown,
}

/// The loop's state between passes.
struct Controller {
    reconciler: Arc<Reconciler>,
    source: Source,
    tenancy: Option<PolicyFile>,
    opts: LoopOptions,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
    lease: Option<Arc<Lease>>,
    /// The reconciler's stop signal: shutdown, and the lease's deadline.
    stopper: Arc<Stop>,
    renewer: Option<JoinHandle<()>>,
    wake: mpsc::Receiver<()>,
    /// The folder watch, for as long as the loop runs.
    watch: Option<FolderWatch>,
    /// The watch could not be armed: the folder is polled every second
    /// (logged once an episode).
    unwatched: bool,
    hangup: Option<mpsc::Receiver<()>>,
    memory: Memory,
    retries: Retries,
    /// The mounts a `RetryMounts` pass retries.
    retrying: BTreeSet<MountId>,
    /// When the last pass started, to keep passes apart.
    last_pass: Option<Instant>,
    next_resync: Instant,
    next_poll: Instant,
    /// A snapshot already read (by the S3 poll, or after a folder event),
    /// for the next pass.
    pending: Option<Snapshot>,
    /// The tenant policy the last pass ran under.
    last_tenancy: Option<Arc<TenantPolicy>>,
    status: Option<StatusWriter>,
    /// The snapshot of the last pass, kept only when it has releases (the
    /// release ticks between passes work from it).
    release_snap: Option<Snapshot>,
    /// When the next release tick is due, while a release runs.
    next_tick: Option<Instant>,
}

impl Controller {
    fn start(parts: Parts) -> Result<Controller, ControllerError> {
        let Parts {
            reconciler,
            source,
            tenancy,
            opts,
            metrics,
            health,
            shutdown,
            hangup,
            lease,
            status,
        } = parts;
        let (wake_tx, wake) = mpsc::channel::<()>(1);
        let policy_dir = tenancy.as_ref().map(|t| match t.path().parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        });
        let others: Vec<&std::path::Path> = policy_dir.iter().map(|d| d.as_path()).collect();
        let watcher = match &source {
            Source::Dir(dir) => Some(FolderWatch::start(
                dir,
                tenancy.is_some(),
                &others,
                wake_tx,
            )?),
            Source::S3(_) if !others.is_empty() => {
                Some(FolderWatch::start(others[0], false, &[], wake_tx)?)
            }
            Source::S3(_) => None,
        };
        metrics.watch_armed.set(i64::from(watcher.is_some()));
        let stopper = reconciler.stopper();
        if lease.is_some() {
            // Not the leader until the first renewal says so.
            stopper.allow_writes_until(None);
        }
        let renewer = lease
            .clone()
            .map(|l| tokio::spawn(keep_lease(l, stopper.clone(), metrics.clone())));
        tracing::info!(
            source = %source.describe(),
            api = %reconciler.target().rest_api_id,
            stage = %reconciler.target().stage,
            owner = %reconciler.target().owner,
            resync_s = opts.resync_interval.as_secs_f64(),
            "apimount controller started"
        );
        let now = Instant::now();
        let opts_refresh = opts.resync_interval;
        Ok(Controller {
            next_resync: now + jittered(opts.resync_interval),
            next_poll: now + opts.poll_interval,
            retries: Retries::new(opts.backoff_min, opts.backoff_max),
            retrying: BTreeSet::new(),
            last_pass: None,
            reconciler,
            source,
            tenancy,
            opts,
            metrics,
            health,
            shutdown,
            lease,
            stopper,
            renewer,
            wake,
            watch: watcher,
            unwatched: false,
            hangup,
            memory: Memory::default(),
            pending: None,
            last_tenancy: None,
            status: status.map(|t| StatusWriter::start(t, opts_refresh)),
            release_snap: None,
            next_tick: None,
        })
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Stands by while another instance holds the lease.
    async fn await_leadership(&mut self) -> Leadership {
        self.health.beat();
        if self.lease.is_none() || self.stopper.may_write() {
            return Leadership::Held;
        }
        tracing::debug!("not writing now: waiting for the lease");
        // Said once another instance is known to hold it, not while the
        // first attempt to take it is still under way.
        let mut said = false;
        loop {
            if !said && self.metrics.other_instance.get() == 1 {
                tracing::info!("standing by: another instance of this owner holds the lease");
                said = true;
            }
            tokio::select! {
                _ = self.shutdown.changed() => {
                    if let Some(r) = &self.renewer { r.abort(); }
                    return Leadership::Shutdown;
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            self.health.beat();
            if self.stopper.may_write() {
                break;
            }
        }
        tracing::info!("acquired the lease: this instance now reconciles");
        self.pending = None;
        Leadership::Acquired
    }

    /// Sleeps, beating as an idle loop does (a debounce can outlast a short
    /// `--liveness-timeout`).
    async fn wait_beating(&self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(self.opts.heartbeat)).await;
            self.health.beat();
        }
    }

    /// Reads the source and runs one pass. Returns what it left to retry.
    async fn pass(&mut self, trigger: Trigger, reads: Reads) -> Scope {
        // Passes are kept apart, so a manifest rewritten many times a
        // second costs a pass a second at most (the wake-ups in between are
        // merged into the next pass).
        if let Some(last) = self.last_pass {
            tokio::time::sleep_until((last + MIN_PASS_INTERVAL).into()).await;
        }
        self.last_pass = Some(Instant::now());
        if trigger == Trigger::RetryMounts {
            self.reconciler.forget(&std::mem::take(&mut self.retrying));
        }
        if let Some(t) = &mut self.tenancy {
            t.refresh();
        }
        let snapshot = match self.pending.take() {
            Some(s) => Ok(s),
            None => {
                let tenancy = self.tenancy.as_ref().map(PolicyFile::current);
                self.source.load(tenancy, &mut self.memory.names).await
            }
        };
        let scope = match snapshot {
            Err(e) => {
                tracing::error!(source = %self.source.describe(), error = %chain(&e), "manifest source unreadable; pass skipped, nothing changed");
                self.metrics
                    .passes
                    .get_or_create(&ResultLabel {
                        result: "source_error".into(),
                    })
                    .inc();
                Scope::Everything
            }
            Ok(snap) => {
                self.memory.last_revision = Some(snap.revision.clone());
                // The pass stops at a safe point by itself once the stopper is set.
                let report = self.reconciler.pass_with(&snap, Mode::Apply, reads).await;
                log_pass(
                    &report,
                    &snap,
                    (trigger, reads),
                    &mut self.memory,
                    &self.metrics,
                );
                if report.fatal.is_none() {
                    self.health.ready.store(true, Ordering::Relaxed);
                }
                self.last_tenancy = snap.tenancy.clone();
                if let Some(w) = &mut self.status {
                    w.publish(&report, &snap);
                }
                let scope = Scope::of(&report);
                self.release_snap = snap
                    .mounts
                    .iter()
                    .any(|m| m.release.is_some())
                    .then_some(snap);
                self.schedule_release_tick();
                scope
            }
        };
        self.health.beat();
        scope
    }

    /// Sets the next release tick: every `--release-poll` while a release
    /// runs, and at the end of the earliest step.
    fn schedule_release_tick(&mut self) {
        let (active, deadline) = self.reconciler.releases_active();
        let now = Instant::now();
        self.next_tick = active.then(|| {
            let poll = now + self.opts.release_poll;
            match deadline {
                Some(ms) => {
                    let wall = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    // A little after the end, so the step has ended when looked at.
                    poll.min(now + Duration::from_millis(ms.saturating_sub(wall) + 20))
                }
                None => poll,
            }
        });
    }

    /// Moves the running releases on between passes.
    async fn release_tick(&mut self) {
        let Some(snap) = self.release_snap.as_ref() else {
            self.next_tick = None;
            return;
        };
        let outcomes = self.reconciler.tick_releases(snap).await;
        let present: BTreeSet<MountId> = snap.mounts.iter().map(|m| m.id()).collect();
        let list: Vec<(MountId, &crate::plan::release::Released, Option<&str>)> = outcomes
            .iter()
            .filter(|(id, _)| present.contains(*id))
            .map(|(id, o)| (id.clone(), &o.status, o.error.as_deref()))
            .collect();
        let withdrawn: Vec<(MountId, crate::reconcile::release::ReleaseOutcome)> = outcomes
            .iter()
            .filter(|(id, _)| !present.contains(*id))
            .map(|(id, o)| (id.clone(), o.clone()))
            .collect();
        events::log_releases(&list, &withdrawn, false, &mut self.memory, &self.metrics);
        if let Some(w) = &mut self.status {
            w.update_releases(&outcomes, snap);
        }
        self.schedule_release_tick();
        self.health.beat();
    }

    fn schedule_retry(&mut self, scope: &Scope) {
        let floor = self.opts.quota.min_interval(self.reconciler.api_pages());
        self.retries.set_floor(floor);
        if let Some(d) = self.retries.after_pass(scope, Instant::now()) {
            let what = match scope {
                Scope::Mounts(ids) => format!("{} mount(s)", ids.len()),
                _ => "the pass".to_string(),
            };
            tracing::info!(
                retry_in_ms = d.as_millis() as u64,
                retrying = %what,
                "transient failure; retrying with backoff"
            );
        }
    }

    /// The time between resyncs: as asked, or longer when the quota budget
    /// needs it (a large API takes more GetResources pages).
    fn resync_interval(&self) -> Duration {
        self.opts
            .quota
            .resync_interval(self.opts.resync_interval, self.reconciler.api_pages())
    }

    /// How many policies a resync reads: the Lambda share, less the
    /// release aliases the resync reads too.
    fn policy_reads(&self) -> usize {
        let aliases = self.release_snap.as_ref().map_or(0, |s| {
            s.mounts.iter().filter(|m| m.release.is_some()).count()
        });
        self.opts
            .quota
            .policy_reads_beside(self.resync_interval(), aliases)
    }

    /// Whether the source shows nothing new since the last pass (same files,
    /// same policy): a folder event such as a `touch` then needs no pass.
    fn unchanged(&self, snap: &Snapshot) -> bool {
        let same_policy = match (&snap.tenancy, &self.last_tenancy) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_policy && Some(&snap.revision) == self.memory.last_revision.as_ref()
    }

    /// Waits for a reason to run again: a change in the folder (debounced),
    /// a new revision of the S3 prefix, the resync, a retry, or the loss of
    /// the lease. `None` on shutdown, once everything is stopped.
    async fn next_trigger(&mut self) -> Option<Trigger> {
        let is_s3 = matches!(self.source, Source::S3(_));
        loop {
            // While the folder cannot be watched, it is looked at every second.
            let unwatched_poll = self.unwatched.then(|| Instant::now() + UNWATCHED_POLL);
            let wake_at = [
                Some(self.next_resync),
                self.retries.next(),
                is_s3.then_some(self.next_poll),
                unwatched_poll,
                self.next_tick,
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("resync is always set");
            let heartbeat = tokio::time::sleep(self.opts.heartbeat);
            tokio::select! {
                _ = self.shutdown.changed() => {
                    self.stopper.shut_down();
                    tracing::info!("shutdown requested; stopping");
                    self.stop().await;
                    return None;
                }
                Some(()) = recv(&mut self.hangup) => {
                    if let Some(t) = &mut self.tenancy {
                        t.refresh();
                    }
                    let rearmed = match self.watch.as_mut().map(FolderWatch::rearm) {
                        Some(Err(e)) => {
                            self.watch_lost(&e);
                            "could not be re-armed"
                        }
                        Some(Ok(())) => {
                            self.watch_back(false);
                            "re-armed"
                        }
                        None => "not used (S3 source)",
                    };
                    tracing::info!(watch = rearmed, tenant_policy = self.tenancy.is_some(), "SIGHUP: the tenant policy is read again and the folder watch re-armed");
                    return Some(Trigger::Reload);
                }
                Some(()) = self.wake.recv() => {
                    // Debounce: let the burst finish, then take everything that came.
                    self.wait_beating(self.opts.debounce).await;
                    let mut more = 0;
                    while self.wake.try_recv().is_ok() {
                        more += 1;
                    }
                    tracing::debug!(more, "folder event; reading the manifests");
                    self.follow_folder();
                    if let Some(t) = &mut self.tenancy {
                        t.refresh();
                    }
                    let tenancy = self.tenancy.as_ref().map(PolicyFile::current);
                    match self.source.load(tenancy, &mut self.memory.names).await {
                        // Touched, not changed (and nothing waits for a retry).
                        Ok(s) if self.unchanged(&s) && self.retries.next().is_none() => {
                            tracing::debug!("folder event without a change to the manifests; no pass");
                        }
                        Ok(s) => {
                            self.pending = Some(s);
                            return Some(Trigger::ManifestsChanged);
                        }
                        Err(_) => return Some(Trigger::ManifestsChanged),
                    }
                }
                _ = tokio::time::sleep_until(wake_at.into()) => {
                    let now = Instant::now();
                    if self.next_tick.is_some_and(|t| now >= t) {
                        self.release_tick().await;
                        if self.shutting_down() {
                            continue;
                        }
                    }
                    match self.retries.due(now) {
                        Some(Due::Everything) => return Some(Trigger::Retry),
                        Some(Due::Mounts(ids)) => {
                            self.retrying = ids;
                            return Some(Trigger::RetryMounts);
                        }
                        None => {}
                    }
                    if now >= self.next_resync {
                        self.next_resync = now + jittered(self.resync_interval());
                        return Some(Trigger::Resync);
                    }
                    if is_s3 && now >= self.next_poll && self.poll(false).await {
                        return Some(Trigger::ManifestsChanged);
                    }
                    if self.unwatched {
                        self.follow_folder();
                        // Quietly: the watch's warning said it once.
                        if self.poll(true).await {
                            return Some(Trigger::ManifestsChanged);
                        }
                    }
                }
                _ = heartbeat => {
                    self.health.beat();
                    // A replaced folder the parent's watch did not report.
                    if self.follow_folder() {
                        return Some(Trigger::ManifestsChanged);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(250)), if self.lease.is_some() => {
                    if !self.stopper.may_write() {
                        return Some(Trigger::LeaseLost);
                    }
                }
            }
        }
    }

    /// Keeps the watch on the folder the manifest path leads to: re-armed
    /// when the folder was replaced (deleted and made again, a link pointed
    /// elsewhere), polled while it cannot be. Whether it was re-armed.
    fn follow_folder(&mut self) -> bool {
        let Some(w) = self.watch.as_mut() else {
            return false;
        };
        match w.follow() {
            Ok(Followed::Same) => false,
            Ok(Followed::Rearmed) => {
                self.watch_back(true);
                true
            }
            Err(e) => {
                self.watch_lost(&e);
                false
            }
        }
    }

    fn watch_back(&mut self, replaced: bool) {
        self.metrics.watch_armed.set(1);
        if replaced || self.unwatched {
            tracing::info!(source = %self.source.describe(), "the manifest folder was replaced or is back; watching it again");
        }
        self.unwatched = false;
    }

    fn watch_lost(&mut self, e: &watcher::WatchError) {
        self.metrics.watch_armed.set(0);
        if !self.unwatched {
            tracing::warn!(error = %chain(e), "the manifest folder cannot be watched; looking at it every second until it can");
        }
        self.unwatched = true;
    }

    /// Reads the source (the S3 listing, or a folder that cannot be
    /// watched); whether it shows a new revision (kept for the next pass).
    /// A failure is logged unless `quiet`.
    async fn poll(&mut self, quiet: bool) -> bool {
        self.next_poll = Instant::now() + self.opts.poll_interval;
        if let Some(t) = &mut self.tenancy {
            t.refresh();
        }
        let tenancy = self.tenancy.as_ref().map(PolicyFile::current);
        match self.source.load(tenancy, &mut self.memory.names).await {
            Ok(s) if !self.unchanged(&s) => {
                self.pending = Some(s);
                true
            }
            Ok(_) => false,
            Err(e) => {
                if !quiet {
                    tracing::warn!(error = %chain(&e), "polling the manifest source failed; keeping everything as it is");
                }
                false
            }
        }
    }

    /// Stops renewing the lease and gives it up.
    async fn stop(&self) {
        if let Some(r) = &self.renewer {
            r.abort();
        }
        if let Some(l) = &self.lease {
            l.release().await;
        }
    }
}
