//! What to retry after a pass, and when. A failure that waiting can fix
//! backs off on its own: a mount's transient failure (a throttled call, a
//! 5xx) retries that mount alone, while the others' functions are not read
//! again; a failure of the pass as a whole (the API unreadable, the source
//! unreadable, a failed deployment) retries everything. Failures that
//! retrying cannot fix (an invalid manifest, a refused request, access
//! denied, a tenant rule) wait for a change or the next resync.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use crate::manifest::MountId;
use crate::reconcile::PassReport;

/// What a pass left to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Nothing,
    /// These mounts failed for transient reasons; the rest is fine.
    Mounts(BTreeSet<MountId>),
    /// The pass as a whole failed for a transient reason.
    Everything,
}

impl Scope {
    /// The scope of a pass's failures.
    pub fn of(r: &PassReport) -> Scope {
        if let Some(reason) = r.fatal_reason {
            return if reason.is_transient() {
                Scope::Everything
            } else {
                Scope::Nothing
            };
        }
        let cleanups_failed = r
            .cleanups
            .iter()
            .flat_map(|(_, c)| c.iter())
            .chain(r.after_deploy.iter())
            .any(|c| c.error.is_some());
        if (r.deploy_error.is_some() && !r.deploy_blocked) || cleanups_failed {
            return Scope::Everything;
        }
        let mounts: BTreeSet<MountId> = r
            .mounts
            .iter()
            .filter(|m| m.problem.as_ref().is_some_and(|p| p.reason.is_transient()))
            .map(|m| m.id())
            .collect();
        if mounts.is_empty() {
            Scope::Nothing
        } else {
            Scope::Mounts(mounts)
        }
    }
}

/// Whole-pass retries in a row that back off freely; from the next one on
/// (a lasting outage rather than a passing fault) each waits at least the
/// quota budget's steady interval, since it spends a steady pass's reads.
pub const FREE_RETRIES: u32 = 2;

/// The retries pending, each with its own backoff.
pub struct Retries {
    min: Duration,
    max: Duration,
    everything: (Backoff, Option<Instant>),
    /// Whole-pass failures in a row.
    failures: u32,
    /// The shortest wait of a whole-pass retry past [`FREE_RETRIES`].
    floor: Duration,
    mounts: BTreeMap<MountId, (Backoff, Instant)>,
}

/// A retry that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    Everything,
    Mounts(BTreeSet<MountId>),
}

impl Retries {
    pub fn new(min: Duration, max: Duration) -> Retries {
        Retries {
            min,
            max,
            everything: (Backoff::new(min, max), None),
            failures: 0,
            floor: Duration::ZERO,
            mounts: BTreeMap::new(),
        }
    }

    /// The shortest wait of a whole-pass retry once the pass has failed
    /// more than [`FREE_RETRIES`] times in a row: the quota budget's
    /// interval between steady passes (a failed pass reads what one does).
    pub fn set_floor(&mut self, floor: Duration) {
        self.floor = floor;
    }

    /// Schedules what a pass that ended `now` left; returns the delay of
    /// the soonest retry, if any.
    pub fn after_pass(&mut self, scope: &Scope, now: Instant) -> Option<Duration> {
        match scope {
            Scope::Everything => {
                self.failures += 1;
                let mut d = self.everything.0.next_delay();
                if self.failures > FREE_RETRIES {
                    d = d.max(self.floor);
                }
                self.everything.1 = Some(now + d);
            }
            Scope::Mounts(ids) => {
                self.failures = 0;
                self.everything.0.reset();
                self.everything.1 = None;
                self.mounts.retain(|id, _| ids.contains(id));
                for id in ids {
                    let (min, max) = (self.min, self.max);
                    let entry = self
                        .mounts
                        .entry(id.clone())
                        .or_insert_with(|| (Backoff::new(min, max), now));
                    entry.1 = now + entry.0.next_delay();
                }
            }
            Scope::Nothing => {
                self.failures = 0;
                self.everything.0.reset();
                self.everything.1 = None;
                self.mounts.clear();
            }
        }
        self.next().map(|at| at.saturating_duration_since(now))
    }

    /// When the soonest retry is due.
    pub fn next(&self) -> Option<Instant> {
        self.everything
            .1
            .into_iter()
            .chain(self.mounts.values().map(|(_, at)| *at))
            .min()
    }

    /// What is due at `now`.
    pub fn due(&self, now: Instant) -> Option<Due> {
        if self.everything.1.is_some_and(|at| at <= now) {
            return Some(Due::Everything);
        }
        let ids: BTreeSet<MountId> = self
            .mounts
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        (!ids.is_empty()).then_some(Due::Mounts(ids))
    }

    /// Whether the pass as a whole is waiting for a retry (the next pass
    /// must read everything).
    pub fn everything_pending(&self) -> bool {
        self.everything.1.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> MountId {
        MountId {
            tenant: None,
            name: name.into(),
        }
    }

    #[test]
    fn a_mount_backs_off_alone_and_recovers() {
        let t0 = Instant::now();
        let mut r = Retries::new(Duration::from_millis(800), Duration::from_secs(300));
        let one = Scope::Mounts([id("a")].into());
        let d1 = r.after_pass(&one, t0).unwrap();
        assert!(d1 <= Duration::from_millis(800), "{d1:?}");
        assert!(!r.everything_pending());
        assert_eq!(r.due(t0), None);
        assert_eq!(r.due(t0 + d1), Some(Due::Mounts([id("a")].into())));
        // It keeps failing: the wait grows for a alone; b joins from the start.
        let later = t0 + d1;
        r.after_pass(&Scope::Mounts([id("a")].into()), later);
        r.after_pass(&Scope::Mounts([id("a"), id("b")].into()), later);
        let (a_at, b_at) = (r.mounts[&id("a")].1, r.mounts[&id("b")].1);
        assert!(b_at - later <= Duration::from_millis(800));
        assert!(
            a_at - later >= Duration::from_millis(1600),
            "{:?}",
            a_at - later
        );
        // a recovers: only b is left.
        r.after_pass(&Scope::Mounts([id("b")].into()), later);
        assert!(!r.mounts.contains_key(&id("a")));
        r.after_pass(&Scope::Nothing, later);
        assert_eq!(r.next(), None);
    }

    #[test]
    fn a_failure_of_the_whole_pass_retries_everything() {
        let t0 = Instant::now();
        let mut r = Retries::new(Duration::from_millis(800), Duration::from_secs(300));
        let d = r.after_pass(&Scope::Everything, t0).unwrap();
        assert!(r.everything_pending());
        assert_eq!(r.due(t0 + d), Some(Due::Everything));
        r.after_pass(&Scope::Nothing, t0 + d);
        assert!(!r.everything_pending());
    }

    #[test]
    fn a_lasting_outage_retries_no_faster_than_the_budget_allows() {
        let t0 = Instant::now();
        let floor = Duration::from_secs(8);
        let mut r = Retries::new(Duration::from_millis(800), Duration::from_secs(300));
        r.set_floor(floor);
        let delays: Vec<Duration> = (0..6)
            .map(|_| r.after_pass(&Scope::Everything, t0).unwrap())
            .collect();
        // The first retries cure a passing fault quickly.
        for d in &delays[..FREE_RETRIES as usize] {
            assert!(*d < floor, "{delays:?}");
        }
        // Then each waits at least the budget's interval, and still grows.
        for d in &delays[FREE_RETRIES as usize..] {
            assert!(*d >= floor, "{delays:?}");
        }
        assert!(delays[5] > floor, "{delays:?}");
        // A pass that works ends the outage: quick retries again.
        r.after_pass(&Scope::Nothing, t0);
        let d = r.after_pass(&Scope::Everything, t0).unwrap();
        assert!(d < floor, "{d:?}");
    }
}
