//! `apimount run`: the long-running loop around the reconcile pass.
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};
use rand::Rng;
use tokio::sync::mpsc;

use crate::admin::Health;
use crate::lease::Lease;
use crate::metrics::{Metrics, ResultLabel, StateLabel};
use crate::plan::ChangeKind;
use crate::reconcile::{Mode, PassReport, Reads, Reconciler};
use crate::s3source::S3Source;
use crate::source::{self, NameMemory, Snapshot};
use crate::status::{Reason, State};

/// Where manifests come from.
pub enum Source {
    Dir(PathBuf),
    S3(Box<S3Source>),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => d.display().to_string(),
            Source::S3(s) => s.describe(),
        }
    }

    async fn load(&mut self, memory: &mut NameMemory) -> Result<Snapshot, String> {
        match self {
            Source::Dir(d) => source::load_dir(d, memory).map_err(|e| e.to_string()),
            Source::S3(s) => s.load(memory).await,
        }
    }
}

/// Timings of the loop.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub resync_interval: Duration,
    pub debounce: Duration,
    pub poll_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            resync_interval: Duration::from_secs(60),
            debounce: Duration::from_millis(200),
            poll_interval: Duration::from_secs(15),
            backoff_min: Duration::from_millis(800),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Exponential backoff with full jitter on the upper half.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            failures: 0,
        }
    }

    /// The delay before the next retry; grows with each call.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.failures.min(16));
        self.failures += 1;
        let cap = exp.min(self.max);
        // Between half and all of the cap, so instances don't retry in step.
        let half = cap / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

fn jittered(interval: Duration) -> Duration {
    // ±10 %, so many instances don't resync in step.
    let tenth = interval / 10;
    interval - tenth + rand::rng().random_range(Duration::ZERO..=tenth * 2)
}

/// What the loop remembers between passes, for logging changes only.
#[derive(Default)]
struct Memory {
    names: NameMemory,
    states: BTreeMap<String, (State, Option<Reason>, String)>,
    reported_invalid: BTreeSet<String>,
    notes: BTreeSet<String>,
    last_revision: Option<String>,
}

/// Runs until `shutdown` resolves. Returns after the pass in flight stopped.
pub async fn run(
    reconciler: Arc<Reconciler>,
    mut source: Source,
    opts: LoopOptions,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    lease: Option<Arc<Lease>>,
) -> Result<(), String> {
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    // The watcher lives as long as the loop; dropping it stops the thread.
    let _watcher = match &source {
        Source::Dir(dir) => Some(watch_dir(dir, wake_tx.clone())?),
        Source::S3(_) => None,
    };
    let is_s3 = matches!(source, Source::S3(_));

    let mut mem = Memory::default();
    let mut backoff = Backoff::new(opts.backoff_min, opts.backoff_max);
    let mut retry_at: Option<Instant>;
    let mut next_resync = Instant::now() + jittered(opts.resync_interval);
    let mut next_poll = Instant::now() + opts.poll_interval;
    let mut pending_snapshot: Option<Snapshot> = None;
    // What started the next pass, and which functions it reads (see `Reads`).
    let mut reads = Reads::All;
    let mut trigger = "start";
    let stopper = reconciler.stopper();
    let leader = Arc::new(AtomicBool::new(lease.is_none()));
    let renewer = lease
        .clone()
        .map(|l| tokio::spawn(keep_lease(l, leader.clone(), stopper.clone())));

    tracing::info!(
        source = %source.describe(),
        api = %reconciler.target().rest_api_id,
        stage = %reconciler.target().stage,
        owner = %reconciler.target().owner,
        resync_s = opts.resync_interval.as_secs_f64(),
        "apimount controller started"
    );
    loop {
        health.beat();
        if lease.is_some() && !leader.load(Ordering::Relaxed) {
            tracing::info!("standing by: another instance of this owner holds the lease");
            loop {
                tokio::select! {
                    _ = shutdown.changed() => {
                        if let Some(r) = &renewer { r.abort(); }
                        return Ok(());
                    }
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                health.beat();
                if leader.load(Ordering::Relaxed) {
                    break;
                }
            }
            tracing::info!("acquired the lease: this instance now reconciles");
            stopper.store(false, Ordering::Relaxed);
            pending_snapshot = None;
            reads = Reads::All;
            trigger = "lease acquired";
        }
        if !*shutdown.borrow() {
            stopper.store(false, Ordering::Relaxed);
        }
        // One pass.
        let snapshot = match pending_snapshot.take() {
            Some(s) => Ok(s),
            None => source.load(&mut mem.names).await,
        };
        let transient = match snapshot {
            Err(e) => {
                tracing::error!(source = %source.describe(), error = %e, "manifest source unreadable; pass skipped, nothing changed");
                metrics
                    .passes
                    .get_or_create(&ResultLabel {
                        result: "source_error".into(),
                    })
                    .inc();
                true
            }
            Ok(snap) => {
                mem.last_revision = Some(snap.revision.clone());
                // The pass stops at a safe point by itself once the stopper is set.
                let report = reconciler.pass_with(&snap, Mode::Apply, reads).await;
                log_pass(&report, &snap, (trigger, reads), &mut mem, &metrics);
                if report.fatal.is_none() {
                    health.ready.store(true, Ordering::Relaxed);
                }
                needs_retry(&report)
            }
        };
        health.beat();
        if *shutdown.borrow() {
            tracing::info!("shutdown requested; stopped after the pass");
            break;
        }
        if stopper.load(Ordering::Relaxed) {
            // The lease was lost during the pass: stand by again.
            continue;
        }
        if transient {
            let d = backoff.next_delay();
            tracing::info!(
                retry_in_ms = d.as_millis() as u64,
                "transient failure; retrying with backoff"
            );
            retry_at = Some(Instant::now() + d);
        } else {
            backoff.reset();
            retry_at = None;
        }

        // Wait for a reason to run again.
        let reason = loop {
            let wake_at = [Some(next_resync), retry_at, is_s3.then_some(next_poll)]
                .into_iter()
                .flatten()
                .min()
                .expect("resync is always set");
            let heartbeat = tokio::time::sleep(Duration::from_secs(10));
            tokio::select! {
                _ = shutdown.changed() => {
                    stopper.store(true, Ordering::Relaxed);
                    tracing::info!("shutdown requested; stopping");
                    if let Some(r) = &renewer { r.abort(); }
                    if let Some(l) = &lease { l.release().await; }
                    return Ok(());
                }
                Some(()) = wake_rx.recv() => {
                    // Debounce: let the burst finish, then take everything that came.
                    tokio::time::sleep(opts.debounce).await;
                    while wake_rx.try_recv().is_ok() {}
                    break "manifests changed";
                }
                _ = tokio::time::sleep_until(wake_at.into()) => {
                    let now = Instant::now();
                    if retry_at.is_some_and(|t| t <= now) {
                        break "retry";
                    }
                    if now >= next_resync {
                        next_resync = now + jittered(opts.resync_interval);
                        break "resync";
                    }
                    if is_s3 && now >= next_poll {
                        next_poll = now + opts.poll_interval;
                        match source.load(&mut mem.names).await {
                            Ok(s) if Some(&s.revision) != mem.last_revision.as_ref() => {
                                pending_snapshot = Some(s);
                                break "manifests changed";
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "polling the manifest source failed; keeping everything as it is"),
                        }
                    }
                }
                _ = heartbeat => { health.beat(); }
                _ = tokio::time::sleep(Duration::from_millis(250)), if lease.is_some() => {
                    if !leader.load(Ordering::Relaxed) {
                        break "lease lost";
                    }
                }
            }
        };
        // A changed manifest is acted on with what is known of the functions;
        // a resync, a retry, or any pass after one that failed for a
        // transient reason reads them all again.
        reads = if reason == "manifests changed" && !transient {
            Reads::Changed
        } else {
            Reads::All
        };
        trigger = reason;
    }
    if let Some(r) = &renewer {
        r.abort();
    }
    if let Some(l) = &lease {
        l.release().await;
    }
    Ok(())
}

/// Takes and renews the lease every third of its lifetime. When it cannot be
/// renewed in time, the running pass is stopped at its next safe point.
async fn keep_lease(lease: Arc<Lease>, leader: Arc<AtomicBool>, stopper: Arc<AtomicBool>) {
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
                tracing::warn!(error = %e, "could not renew the lease");
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

/// Retry with backoff only for failures that waiting can fix.
fn needs_retry(r: &PassReport) -> bool {
    if let Some(reason) = r.fatal_reason {
        return reason.is_transient();
    }
    r.deploy_error.is_some()
        || r.failed_changes() > 0
        || r.mounts
            .iter()
            .any(|m| m.problem.as_ref().is_some_and(|p| p.reason.is_transient()))
}

fn watch_dir(
    dir: &std::path::Path,
    wake: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, String> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => {}
            // Any other event, an error or an overflow: rescan (the pass reads everything).
            _ => {
                let _ = wake.try_send(());
            }
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(watcher)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Logs a pass and updates the metrics; `why` is what started the pass and
/// which functions it read.
fn log_pass(
    r: &PassReport,
    snap: &Snapshot,
    why: (&str, Reads),
    mem: &mut Memory,
    metrics: &Metrics,
) {
    let changes = r.change_count();
    let result = if r.fatal.is_some() {
        "error"
    } else if r.converged() && r.invalid.is_empty() {
        "success"
    } else {
        "degraded"
    };
    metrics
        .passes
        .get_or_create(&ResultLabel {
            result: result.into(),
        })
        .inc();
    metrics.pass_duration.observe(r.duration.as_secs_f64());
    if result != "error" && r.failed_changes() == 0 && r.deploy_error.is_none() {
        metrics.last_success.set(unix_now());
    }
    let updates = r
        .mounts
        .iter()
        .flat_map(|m| m.changes.iter())
        .filter(|c| c.error.is_none() && c.change.kind() == ChangeKind::Update)
        .count();
    metrics.drift_corrections.inc_by(updates as u64);
    let removed = r
        .cleanups
        .iter()
        .flat_map(|(_, c)| c.iter())
        .filter(|c| c.error.is_none())
        .count();
    metrics.orphans_removed.inc_by(removed as u64);
    if r.deployment.is_some() {
        metrics.deployments.inc();
    }

    if let Some(f) = &r.fatal {
        tracing::error!(
            revision = %r.revision,
            reason = r.fatal_reason.map(|x| x.as_str()).unwrap_or("AwsError"),
            error = %f,
            trigger = why.0,
            duration_ms = r.duration.as_millis() as u64,
            "pass failed"
        );
        return;
    }
    tracing::info!(
        revision = %r.revision,
        mounts = r.mounts.len(),
        invalid = r.invalid.len(),
        changes,
        failed = r.failed_changes(),
        deployment = r.deployment.as_deref().unwrap_or(""),
        duration_ms = r.duration.as_millis() as u64,
        result,
        trigger = why.0,
        functions_read = why.1.as_str(),
        "pass finished"
    );
    for c in r.all_changes() {
        if let Some(e) = &c.error {
            tracing::warn!(change = %c.change, error = %e, "change failed");
        }
    }
    // Notes (held-back deletions, quota warnings) are logged when they first appear.
    let notes: BTreeSet<String> = r.notes.iter().cloned().collect();
    for n in notes.difference(&mem.notes) {
        tracing::warn!(note = %n, "pass note");
    }
    mem.notes = notes;

    // Mount states, logged on change only.
    let mut current: BTreeMap<String, (State, Option<Reason>, String, String, String)> =
        BTreeMap::new();
    for m in &r.mounts {
        current.insert(
            m.name.clone(),
            (
                m.state,
                m.problem.as_ref().map(|p| p.reason),
                m.problem
                    .as_ref()
                    .map(|p| p.message.clone())
                    .unwrap_or_default(),
                m.path.clone(),
                m.file.clone(),
            ),
        );
    }
    let mut counts: BTreeMap<&'static str, i64> =
        [("Ready", 0), ("Progressing", 0), ("Failed", 0)].into();
    for (name, (state, reason, message, path, file)) in &current {
        *counts.entry(state.as_str()).or_default() += 1;
        let key = (*state, *reason, message.clone());
        if mem.states.get(name) != Some(&key) {
            match state {
                State::Failed => tracing::warn!(
                    mount = %name, path = %path, file = %file, state = state.as_str(),
                    reason = reason.map(|r| r.as_str()).unwrap_or(""), detail = %message,
                    "mount state changed"
                ),
                _ => tracing::info!(
                    mount = %name, path = %path, file = %file, state = state.as_str(),
                    reason = reason.map(|r| r.as_str()).unwrap_or(""), detail = %message,
                    "mount state changed"
                ),
            }
            mem.states.insert(name.clone(), key);
        }
    }
    let gone: Vec<String> = mem
        .states
        .keys()
        .filter(|n| !current.contains_key(*n))
        .cloned()
        .collect();
    for n in gone {
        let removed = r
            .cleanups
            .iter()
            .any(|(m, c)| m.as_deref() == Some(n.as_str()) && c.iter().all(|c| c.error.is_none()));
        if removed {
            tracing::info!(mount = %n, "mount removed");
        } else {
            tracing::warn!(mount = %n, "manifest gone but its routes were kept (see the pass notes)");
        }
        mem.states.remove(&n);
    }
    // Invalid manifests: once per distinct problem.
    let mut now_invalid = BTreeSet::new();
    for e in &r.invalid {
        let key = e.to_string();
        if !mem.reported_invalid.contains(&key) {
            tracing::warn!(
                file = %e.file.display(),
                reason = crate::reconcile::invalid_reason(e).as_str(),
                detail = %e,
                "manifest rejected; the routes of its last valid version are kept"
            );
        }
        now_invalid.insert(key);
    }
    mem.reported_invalid = now_invalid;
    *counts.entry("Failed").or_default() += snap.errors.len() as i64;
    for (state, n) in counts {
        metrics
            .mounts
            .get_or_create(&StateLabel {
                state: state.into(),
            })
            .set(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(800), Duration::from_secs(300));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(400) && first <= Duration::from_millis(800));
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
        }
        assert!(last >= Duration::from_secs(150) && last <= Duration::from_secs(300));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(800));
    }

    #[test]
    fn jitter_stays_near_the_interval() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(60));
            assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66));
        }
    }
}
