//! What the loop reports about each pass: one summary line, a mount's state
//! when it changes, a bad manifest once per distinct problem, and the
//! metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use super::metrics::{Metrics, MountLabel, ResultLabel, StateLabel, TenantStateLabel};
use super::trigger::Trigger;
use crate::manifest::MountId;
use crate::plan::release::Released;
use crate::plan::{ChangeKind, Reason, State};
use crate::reconcile::release::ReleaseOutcome;
use crate::reconcile::{invalid_reason, PassReport, Reads};
use crate::source::{NameMemory, Snapshot};

/// What the loop remembers between passes, for logging changes only.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) names: NameMemory,
    states: BTreeMap<String, (State, Option<Reason>, String)>,
    reported_invalid: BTreeSet<String>,
    notes: BTreeSet<String>,
    /// Each release mount's standing, as last logged.
    releases: BTreeMap<String, String>,
    pub(crate) last_revision: Option<String>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Logs a pass and updates the metrics; `why` is what started the pass and
/// which functions it read.
pub(crate) fn log_pass(
    r: &PassReport,
    snap: &Snapshot,
    why: (Trigger, Reads),
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
    // The controller did its work: it read everything and deployed what it
    // had to. A mount that fails on its own shows in `mounts{state}` and does
    // not hold this back, so an alert on it means the controller is failing.
    if result != "error" && r.deploy_error.is_none() {
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
    if r.fatal.is_none() {
        metrics.deploy_blocked.set(i64::from(r.deploy_blocked));
    }

    if let Some(f) = &r.fatal {
        // One line per failed pass, whatever the number of mounts: what
        // was not done is counted, not listed.
        let functions: BTreeSet<&crate::manifest::FunctionRef> =
            snap.mounts.iter().map(|m| &m.function).collect();
        tracing::error!(
            revision = %r.revision,
            reason = r.fatal_reason.map(|x| x.as_str()).unwrap_or("AwsError"),
            error = %f,
            trigger = why.0.as_str(),
            duration_ms = r.duration.as_millis() as u64,
            mounts_not_evaluated = snap.mounts.len(),
            functions_not_read = functions.len(),
            "pass failed"
        );
        // AWS could not be observed: every valid mount's state is unknown.
        let counts: BTreeMap<&'static str, i64> = [
            ("Ready", 0),
            ("Progressing", 0),
            ("Failed", snap.errors.len() as i64),
            (UNKNOWN, snap.mounts.len() as i64),
        ]
        .into();
        set_mount_gauges(
            metrics,
            snap,
            &counts,
            snap.mounts
                .iter()
                .map(|m| (m.tenant.as_deref(), UNKNOWN))
                .collect(),
        );
        return;
    }
    // The changes in proportion: counts by kind and the first few (each
    // change is logged at debug level as it is made).
    let made: Vec<&crate::plan::Change> = r
        .all_changes()
        .filter(|c| c.error.is_none())
        .map(|c| &c.change)
        .collect();
    let count = |k: ChangeKind| made.iter().filter(|c| c.kind() == k).count();
    let first: Vec<String> = made
        .iter()
        .take(FIRST_CHANGES)
        .map(|c| c.to_string())
        .collect();
    let more = made.len().saturating_sub(FIRST_CHANGES);
    let first = match more {
        0 => first.join("; "),
        n => format!("{}; and {n} more", first.join("; ")),
    };
    tracing::info!(
        revision = %r.revision,
        mounts = r.mounts.len(),
        invalid = r.invalid.len(),
        changes,
        created = count(ChangeKind::Create),
        updated = count(ChangeKind::Update),
        deleted = count(ChangeKind::Delete),
        first = %first,
        failed = r.failed_changes(),
        deployment = r.deployment.as_deref().unwrap_or(""),
        duration_ms = r.duration.as_millis() as u64,
        result,
        trigger = why.0.as_str(),
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
            m.id().to_string(),
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
    let mut counts: BTreeMap<&'static str, i64> = [
        ("Ready", 0),
        ("Progressing", 0),
        ("Failed", 0),
        (UNKNOWN, 0),
    ]
    .into();
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
        let removed = r.cleanups.iter().any(|(m, c)| {
            m.as_ref().is_some_and(|m| m.to_string() == n) && c.iter().all(|c| c.error.is_none())
        });
        if removed {
            tracing::info!(mount = %n, "mount removed");
        } else {
            tracing::warn!(mount = %n, "manifest gone but its routes were kept (see the pass notes)");
        }
        mem.states.remove(&n);
    }
    if r.fatal.is_none() {
        let outcomes: Vec<(MountId, &Released, Option<&str>)> = r
            .mounts
            .iter()
            .filter_map(|m| Some((m.id(), m.released.as_ref()?, m.release_error.as_deref())))
            .collect();
        log_releases(&outcomes, &r.withdrawn, true, mem, metrics);
    }
    // Invalid manifests: once per distinct problem.
    let mut now_invalid = BTreeSet::new();
    for e in &r.invalid {
        let key = e.to_string();
        if !mem.reported_invalid.contains(&key) {
            tracing::warn!(
                file = %e.file.display(),
                reason = invalid_reason(e).as_str(),
                detail = %e,
                "manifest rejected; the routes of its last valid version are kept"
            );
        }
        now_invalid.insert(key);
    }
    mem.reported_invalid = now_invalid;
    *counts.entry("Failed").or_default() += snap.errors.len() as i64;
    set_mount_gauges(
        metrics,
        snap,
        &counts,
        r.mounts
            .iter()
            .map(|m| (m.tenant.as_deref(), m.state.as_str()))
            .collect(),
    );
}

/// Logs each release whose standing changed (and each failed release
/// call), and sets the release metrics. `all` says whether `outcomes`
/// covers every release mount (a pass), so the others' gauges can go.
pub(crate) fn log_releases(
    outcomes: &[(MountId, &Released, Option<&str>)],
    withdrawn: &[(MountId, ReleaseOutcome)],
    all: bool,
    mem: &mut Memory,
    metrics: &Metrics,
) {
    let mut seen = BTreeSet::new();
    for (id, status, error) in outcomes {
        let name = id.to_string();
        let text = format!("{}: {status}", status.reason());
        if mem.releases.get(&name) != Some(&text) {
            match status {
                Released::Progressing { .. } | Released::Promoted { .. } => {
                    tracing::info!(mount = %name, release = status.reason(), detail = %status, "release")
                }
                _ => {
                    tracing::warn!(mount = %name, release = status.reason(), detail = %status, "release")
                }
            }
            if matches!(status, Released::RolledBack { why, .. } if !why.starts_with("by hand"))
                && mem.releases.contains_key(&name)
            {
                metrics.release_rollbacks.inc();
            }
            mem.releases.insert(name.clone(), text);
        }
        if let Some(e) = error {
            tracing::warn!(mount = %name, error = %e, "release call failed; tried again at the next tick");
        }
        metrics
            .release_weight
            .get_or_create(&MountLabel {
                mount: name.clone(),
            })
            .set(i64::from(status.weight()));
        seen.insert(name);
    }
    for (id, o) in withdrawn {
        match &o.error {
            None => {
                tracing::info!(mount = %id, detail = %o.status, "release of a removed mount rolled back");
                metrics.release_rollbacks.inc();
            }
            Some(e) => {
                tracing::warn!(mount = %id, error = %e, "release of a removed mount could not be rolled back; tried again at the next pass")
            }
        }
    }
    if all {
        let gone: Vec<String> = mem
            .releases
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        for n in gone {
            mem.releases.remove(&n);
            metrics.release_weight.remove(&MountLabel { mount: n });
        }
    }
}

/// How many changes the `pass finished` line names.
const FIRST_CHANGES: usize = 3;

/// The state of a mount while AWS cannot be observed.
const UNKNOWN: &str = "Unknown";

/// Sets `apimount_mounts{state}` from `counts`, and under a policy
/// `apimount_tenant_mounts{tenant,state}` from each mount's (tenant, state)
/// and the failing files of each tenant's folder.
fn set_mount_gauges(
    metrics: &Metrics,
    snap: &Snapshot,
    counts: &BTreeMap<&'static str, i64>,
    states: Vec<(Option<&str>, &str)>,
) {
    // Per tenant, under a policy: the tenants come from the policy, so the
    // label set stays bounded whatever the manifests say.
    if let Some(policy) = &snap.tenancy {
        let mut by_tenant: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for t in &policy.tenants {
            for state in [
                State::Ready.as_str(),
                State::Progressing.as_str(),
                State::Failed.as_str(),
                UNKNOWN,
            ] {
                by_tenant.insert((t.name.as_str(), state), 0);
            }
        }
        for (tenant, state) in states {
            if let Some(n) = tenant.and_then(|t| by_tenant.get_mut(&(t, state))) {
                *n += 1;
            }
        }
        // A file that failed counts against the tenant whose folder holds it.
        let tenant_of_file: BTreeMap<&std::path::Path, &str> = snap
            .keys
            .iter()
            .filter_map(|(key, shown)| Some((shown.as_path(), key.split_once('/')?.0)))
            .collect();
        let failed_files: BTreeSet<&std::path::Path> =
            snap.errors.iter().map(|e| e.file.as_path()).collect();
        for file in failed_files {
            if let Some(n) = tenant_of_file
                .get(file)
                .and_then(|t| by_tenant.get_mut(&(*t, State::Failed.as_str())))
            {
                *n += 1;
            }
        }
        for ((tenant, state), n) in by_tenant {
            metrics
                .tenant_mounts
                .get_or_create(&TenantStateLabel {
                    tenant: tenant.into(),
                    state: state.into(),
                })
                .set(n);
        }
    }
    for (state, n) in counts {
        metrics
            .mounts
            .get_or_create(&StateLabel {
                state: (*state).into(),
            })
            .set(*n);
    }
}
