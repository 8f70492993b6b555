//! Releases: moving each release mount's traffic along its alias, as
//! `plan::release` decides, with the alias's RevisionId so that a decision
//! made on a stale read is refused and made again.
//!
//! - Before a pass, [`Reconciler::prepare_releases`] makes the alias of a
//!   mount that has none yet (its first release): the mount's route names
//!   the alias, which must exist for the route to resolve. The function is
//!   checked against the tenant policy first.
//! - After a pass, and at each release tick of the daemon,
//!   [`Reconciler::step_releases`] reads the alarms the running releases
//!   watch (one DescribeAlarms call per 100 names and account), decides
//!   each release from what it last saw, and reads the alias again only
//!   where that decision writes (or at a resync, to see hand edits).
//! - A mount that goes away mid-release is rolled back.
//! - Passes that do not write ([`Reconciler::observe_releases`]) read the
//!   alias alone and report what it records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Reconciler;
use crate::aws::alarms::GuardSpec;
use crate::aws::AwsError;
use crate::manifest::release::{alias_name, Guard, ALIAS_PREFIX};
use crate::manifest::{FunctionRef, Mount, MountId};
use crate::plan::model::ObservedApi;
use crate::plan::names::Ownership;
use crate::plan::release::{
    alarms_to_read, decide, guard_alarm_name, observed, AlarmState, AliasView, Decision,
    GuardAction, Input, Released, Write,
};
use crate::plan::tenancy;
use crate::source::Snapshot;

/// What a release did in one step.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseOutcome {
    pub status: Released,
    /// The alias writes made.
    pub writes: usize,
    /// A call that failed (the release is decided again next time).
    pub error: Option<String>,
}

/// What is known of one release between steps.
#[derive(Debug, Clone)]
struct Known {
    /// The function as the manifest names it (without the alias).
    function: FunctionRef,
    alias: String,
    /// The manifest's version when last decided.
    target: String,
    /// The alias as last read or written (the revision of a write is not
    /// known: the next write reads the alias again first).
    view: Option<AliasView>,
    status: Released,
    deadline_ms: Option<u64>,
    unreadable_since_ms: Option<u64>,
    /// The manifest's guard, if it asks for one.
    guard_spec: Option<Guard>,
    /// Known only from a route of this owner whose mount is gone (seen on
    /// the API after a restart): its guard, if any, is not known.
    orphan: bool,
}

impl Known {
    /// The guard alarm's name, when the manifest asks for a guard.
    fn guard_name(&self) -> Option<String> {
        self.guard_spec
            .map(|_| guard_alarm_name(self.function.name(), &self.alias))
    }

    /// Whether the release needs watching: anything but a settled end.
    fn active(&self) -> bool {
        !matches!(
            self.status,
            Released::Promoted { .. } | Released::RolledBack { .. } | Released::Conflict { .. }
        )
    }
}

/// The releases' memory, kept by the reconciler.
#[derive(Debug, Default)]
pub(crate) struct Releases {
    known: Mutex<BTreeMap<MountId, Known>>,
    /// The mounts whose routes the last pass accepted: the ticks between
    /// passes move their releases only.
    eligible: Mutex<BTreeSet<MountId>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The account a function's alarms are in: the function's (`None`: the API's).
fn account(f: &FunctionRef) -> Option<String> {
    crate::aws::lambda::account_of(f).map(str::to_string)
}

impl Reconciler {
    /// Whether any release needs the daemon's ticks, and the earliest
    /// deadline among them (ms since the epoch).
    pub fn releases_active(&self) -> (bool, Option<u64>) {
        let known = self.releases.known.lock().expect("releases lock");
        let active: Vec<&Known> = known.values().filter(|k| k.active()).collect();
        (
            !active.is_empty(),
            active.iter().filter_map(|k| k.deadline_ms).min(),
        )
    }

    /// Makes the alias of each release mount that has none yet, at the
    /// manifest's version. Mounts whose alias was seen before cost nothing.
    pub(crate) async fn prepare_releases(
        &self,
        snap: &Snapshot,
    ) -> BTreeMap<MountId, ReleaseOutcome> {
        let owner = self.target.owner.as_str();
        let mut out = BTreeMap::new();
        for m in &snap.mounts {
            let Some(release) = &m.release else {
                continue;
            };
            if self
                .releases
                .known
                .lock()
                .expect("releases lock")
                .contains_key(&m.id())
            {
                continue;
            }
            let function = m.named_function();
            let alias = alias_name(m.tenant.as_deref(), &m.name);
            let view = match self.aws.get_alias(&function, &alias).await {
                Ok(v) => v,
                Err(e) => {
                    out.insert(
                        m.id(),
                        failed(
                            Released::Waiting {
                                why: "the alias could not be read".into(),
                            },
                            &e,
                        ),
                    );
                    continue;
                }
            };
            let id = m.id();
            let mut outcome = ReleaseOutcome {
                status: Released::Waiting {
                    why: "the release is to be decided".into(),
                },
                writes: 0,
                error: None,
            };
            if view.is_none() {
                // The first release: the alias is made at the version. The
                // function must be one the mount's tenant may use.
                if let Err(why) = self.may_release(snap, m, &function).await {
                    out.insert(
                        id,
                        ReleaseOutcome {
                            status: Released::Waiting { why },
                            writes: 0,
                            error: None,
                        },
                    );
                    continue;
                }
                let d = decide(&Input {
                    owner,
                    mount: &id,
                    release,
                    alias: None,
                    alarms: None,
                    guard: None,
                    unreadable_since_ms: None,
                    now_ms: now_ms(),
                });
                outcome = self
                    .carry_out(&function, &alias, d, None, &id, release.guard, false)
                    .await;
                if outcome.error.is_some() || outcome.writes == 0 {
                    out.insert(id, outcome);
                    continue;
                }
            }
            let status = outcome.status.clone();
            self.releases.known.lock().expect("releases lock").insert(
                id.clone(),
                Known {
                    function,
                    alias,
                    target: release.version.clone(),
                    view,
                    status,
                    deadline_ms: None,
                    unreadable_since_ms: None,
                    guard_spec: release.guard,
                    orphan: false,
                },
            );
            if outcome.writes > 0 {
                // Read again at the step after the pass.
                if let Some(k) = self
                    .releases
                    .known
                    .lock()
                    .expect("releases lock")
                    .get_mut(&id)
                {
                    k.view = None;
                }
                out.insert(id, outcome);
            }
        }
        out
    }

    /// Remembers the releases of this owner's routes whose mounts are gone
    /// (seen on the API), so that a release under way when its mount went
    /// is rolled back even by a controller that never saw the mount.
    pub(crate) fn note_release_orphans(&self, api: &ObservedApi, snap: &Snapshot) {
        let present: BTreeSet<MountId> = snap.mounts.iter().map(Mount::id).collect();
        let mut known = self.releases.known.lock().expect("releases lock");
        for (_, _, method) in api.methods() {
            let Ownership::Apimount(marker) = method.ownership() else {
                continue;
            };
            if marker.owner != self.target.owner
                || present.contains(&marker.mount)
                || snap.retained.contains(&marker.mount)
                || known.contains_key(&marker.mount)
            {
                continue;
            }
            let Some(f) = method.function() else {
                continue;
            };
            let Some(alias) = f.qualifier.clone().filter(|q| q.starts_with(ALIAS_PREFIX)) else {
                continue;
            };
            let function = FunctionRef::Arn {
                partition: f.partition,
                region: f.region,
                account: f.account,
                name: f.name,
                qualifier: None,
            };
            known.insert(
                marker.mount.clone(),
                Known {
                    function,
                    alias,
                    target: String::new(),
                    view: None,
                    status: Released::Waiting {
                        why: "the mount is gone".into(),
                    },
                    deadline_ms: None,
                    unreadable_since_ms: None,
                    guard_spec: None,
                    orphan: true,
                },
            );
        }
    }

    /// Whether the mount's tenant may release on `function` (none: always).
    async fn may_release(
        &self,
        snap: &Snapshot,
        m: &Mount,
        function: &FunctionRef,
    ) -> Result<(), String> {
        let (Some(policy), Some(name)) = (&snap.tenancy, m.tenant.as_deref()) else {
            return Ok(());
        };
        let Some(tenant) = tenancy::tenant(policy, name) else {
            return Err(format!("tenant '{name}' is not in the tenant policy"));
        };
        let resolved = self.aws.resolve_function(function).await.map_err(|e| {
            format!(
                "the function could not be read: {}",
                crate::errors::chain(&e)
            )
        })?;
        tenancy::check_release(policy, tenant, m, &resolved).map_err(|p| p.to_string())
    }

    /// A release tick between passes: the releases of the mounts the last
    /// pass accepted move on, deciding from what was last seen (see
    /// [`Reconciler::step_releases`]).
    pub async fn tick_releases(&self, snap: &Snapshot) -> BTreeMap<MountId, ReleaseOutcome> {
        let eligible = self
            .releases
            .eligible
            .lock()
            .expect("releases lock")
            .clone();
        self.step_releases(snap, &eligible, false).await
    }

    /// Moves each release on: `eligible` are the mounts whose routes are
    /// accepted (the others wait); `full` reads every alias again (a resync).
    /// Releases of mounts gone from `snap` (and not retained) roll back.
    pub async fn step_releases(
        &self,
        snap: &Snapshot,
        eligible: &BTreeSet<MountId>,
        full: bool,
    ) -> BTreeMap<MountId, ReleaseOutcome> {
        let owner = self.target.owner.as_str();
        let now = now_ms();
        eligible.clone_into(&mut self.releases.eligible.lock().expect("releases lock"));
        let mounts: Vec<&Mount> = snap
            .mounts
            .iter()
            .filter(|m| m.release.is_some() && eligible.contains(&m.id()))
            .collect();
        let mut out = BTreeMap::new();
        // What is known of each, made fresh for a mount seen the first time.
        for m in &mounts {
            let release = m.release.as_ref().expect("filtered");
            let function = m.named_function();
            let alias = alias_name(m.tenant.as_deref(), &m.name);
            let mut known = self.releases.known.lock().expect("releases lock");
            let k = known.entry(m.id()).or_insert_with(|| Known {
                function: function.clone(),
                alias: alias.clone(),
                target: release.version.clone(),
                view: None,
                status: Released::Waiting {
                    why: "the release is to be decided".into(),
                },
                deadline_ms: None,
                unreadable_since_ms: None,
                guard_spec: None,
                orphan: false,
            });
            k.guard_spec = release.guard;
            k.orphan = false;
            if k.target != release.version {
                k.target = release.version.clone();
                k.view = None;
            }
        }
        // The alarms of every release that may consult them, per account:
        // one call per 100 names.
        let mut wanted: BTreeMap<Option<String>, BTreeSet<String>> = BTreeMap::new();
        {
            let known = self.releases.known.lock().expect("releases lock");
            for m in &mounts {
                let k = &known[&m.id()];
                let settled = !k.active()
                    && k.view.as_ref().is_some_and(|v| {
                        v.version == k.target || matches!(k.status, Released::RolledBack { .. })
                    });
                // A settled release consults no alarm, even at a resync.
                if settled {
                    continue;
                }
                let guard = k.guard_name();
                let names = alarms_to_read(m.release.as_ref().expect("filtered"), guard.as_deref());
                wanted
                    .entry(account(&k.function))
                    .or_default()
                    .extend(names);
            }
        }
        let mut states: BTreeMap<Option<String>, Result<BTreeMap<String, AlarmState>, String>> =
            BTreeMap::new();
        for (acct, names) in &wanted {
            let names: Vec<String> = names.iter().cloned().collect();
            let read = if names.is_empty() {
                Ok(BTreeMap::new())
            } else {
                self.aws
                    .alarm_states(acct.as_deref(), &names)
                    .await
                    .map_err(|e| crate::errors::chain(&e))
            };
            states.insert(acct.clone(), read);
        }
        for m in &mounts {
            if self.stop.requested() {
                break;
            }
            let id = m.id();
            let release = m.release.as_ref().expect("filtered");
            let k = self.releases.known.lock().expect("releases lock")[&id].clone();
            let acct = account(&k.function);
            let alarms = match states.get(&acct) {
                Some(Ok(s)) => Some(s),
                Some(Err(_)) => None,
                // Not read: a settled release that does not consult them.
                None => None,
            };
            let unreadable_since = match states.get(&acct) {
                Some(Err(_)) => Some(k.unreadable_since_ms.unwrap_or(now)),
                _ => None,
            };
            let guard = k.guard_name();
            let base = Input {
                owner,
                mount: &id,
                release,
                alias: None,
                alarms,
                guard: guard.as_deref(),
                unreadable_since_ms: unreadable_since,
                now_ms: now,
            };
            // Decided first on what was last seen; the alias is read again
            // only when that decision would write, or at a resync.
            let remembered = k.view.as_ref().map(|v| {
                decide(&Input {
                    alias: Some(v),
                    ..base.clone()
                })
            });
            let read_again = full || remembered.as_ref().is_none_or(|d| d.write.is_some());
            let mut outcome = ReleaseOutcome {
                status: k.status.clone(),
                writes: 0,
                error: None,
            };
            let mut view = k.view.clone();
            if read_again {
                match self.aws.get_alias(&k.function, &k.alias).await {
                    Ok(v) => view = v,
                    Err(e) => {
                        outcome.error = Some(crate::errors::chain(&e));
                        out.insert(id, outcome);
                        continue;
                    }
                }
                // A revision refused as stale is read and decided again.
                for _ in 0..3 {
                    // The decision's clock is read after the reads, so a
                    // step begins as near its write as the calls allow.
                    let d = decide(&Input {
                        alias: view.as_ref(),
                        now_ms: now_ms(),
                        ..base.clone()
                    });
                    let deadline = d.deadline_ms;
                    let revision = view.as_ref().map(|v| v.revision.clone());
                    let next_view = written_view(&d);
                    let o = self
                        .carry_out(
                            &k.function,
                            &k.alias,
                            d,
                            revision.as_deref(),
                            &id,
                            k.guard_spec,
                            false,
                        )
                        .await;
                    let stale = o
                        .error
                        .as_deref()
                        .is_some_and(|e| e.contains(crate::aws::alias::STALE_REVISION));
                    outcome = ReleaseOutcome {
                        writes: outcome.writes + o.writes,
                        ..o
                    };
                    if stale {
                        match self.aws.get_alias(&k.function, &k.alias).await {
                            Ok(v) => {
                                view = v;
                                continue;
                            }
                            Err(e) => {
                                outcome.error = Some(crate::errors::chain(&e));
                                break;
                            }
                        }
                    }
                    if outcome.writes > 0 && outcome.error.is_none() {
                        view = next_view.or(view);
                    }
                    self.remember(&id, view.clone(), &outcome, deadline, unreadable_since);
                    break;
                }
            } else if let Some(d) = remembered {
                outcome.status = d.status.clone();
                self.remember(&id, view, &outcome, d.deadline_ms, unreadable_since);
            }
            out.insert(id, outcome);
        }
        // Mounts gone mid-release roll back.
        let gone: Vec<(MountId, Known)> = {
            let present: BTreeSet<MountId> = snap.mounts.iter().map(Mount::id).collect();
            let mut known = self.releases.known.lock().expect("releases lock");
            let ids: Vec<MountId> = known
                .keys()
                .filter(|id| !present.contains(id) && !snap.retained.contains(id))
                .cloned()
                .collect();
            ids.into_iter()
                .filter_map(|id| known.remove(&id).map(|k| (id, k)))
                .collect()
        };
        for (id, k) in gone {
            if let Some(o) = self.withdraw(&id, &k).await {
                out.insert(id, o);
            }
        }
        out
    }

    /// The release of a mount that is gone: if it was under way, the
    /// weights are cleared and the stable version kept.
    async fn withdraw(&self, id: &MountId, k: &Known) -> Option<ReleaseOutcome> {
        for _ in 0..3 {
            let view = match self.aws.get_alias(&k.function, &k.alias).await {
                Ok(Some(v)) => v,
                Ok(None) => return None,
                Err(e) => {
                    return Some(ReleaseOutcome {
                        status: k.status.clone(),
                        writes: 0,
                        error: Some(crate::errors::chain(&e)),
                    })
                }
            };
            let record = crate::plan::release::Record::parse(&view.description)?;
            if record.phase != crate::plan::release::Phase::Progressing
                || record.owner != self.target.owner
                || &record.mount != id
            {
                return None;
            }
            let d = crate::plan::release::withdraw(record, now_ms());
            let o = self
                .carry_out(
                    &k.function,
                    &k.alias,
                    d,
                    Some(&view.revision),
                    id,
                    k.guard_spec,
                    k.orphan,
                )
                .await;
            if o.error
                .as_deref()
                .is_some_and(|e| e.contains(crate::aws::alias::STALE_REVISION))
            {
                continue;
            }
            return Some(o);
        }
        None
    }

    fn remember(
        &self,
        id: &MountId,
        view: Option<AliasView>,
        outcome: &ReleaseOutcome,
        deadline: Option<u64>,
        unreadable_since: Option<u64>,
    ) {
        if let Some(k) = self
            .releases
            .known
            .lock()
            .expect("releases lock")
            .get_mut(id)
        {
            k.view = view;
            k.status = outcome.status.clone();
            k.deadline_ms = deadline;
            k.unreadable_since_ms = unreadable_since;
        }
    }

    /// Makes a decision's calls: the version's check, the guard alarm, the
    /// alias write (as of `revision`), the guard's removal (of `guard`, or
    /// of whatever guard there may be for an `orphan`).
    #[allow(clippy::too_many_arguments)]
    async fn carry_out(
        &self,
        function: &FunctionRef,
        alias: &str,
        d: Decision,
        revision: Option<&str>,
        id: &MountId,
        guard: Option<Guard>,
        orphan: bool,
    ) -> ReleaseOutcome {
        let status = d.status.clone();
        let mut outcome = ReleaseOutcome {
            status,
            writes: 0,
            error: None,
        };
        let Some(write) = d.write else {
            return outcome;
        };
        let acct = account(function);
        if let Some(v) = &d.check_version {
            match self.aws.version_exists(function, v).await {
                Ok(true) => {}
                Ok(false) => {
                    outcome.status = Released::Waiting {
                        why: format!("version {v} of {function} is not published"),
                    };
                    return outcome;
                }
                Err(e) => return failed(outcome.status, &e),
            }
        }
        let name = guard_alarm_name(function.name(), alias);
        if let (GuardAction::Put(version), Some(g)) = (&d.guard, &guard) {
            let description = format!(
                "apimount:{}:{id} guard of the release of version {version}",
                self.target.owner,
            );
            let spec = GuardSpec {
                name: &name,
                function_name: function.name(),
                alias,
                version,
                max_error_rate: g.max_error_rate(),
                description: &description,
            };
            if let Err(e) = self.aws.put_guard_alarm(acct.as_deref(), &spec).await {
                return failed(outcome.status, &e);
            }
        }
        let result = match &write {
            Write::Create { version, record } => {
                self.aws
                    .create_alias(function, alias, version, &record.render())
                    .await
            }
            Write::Update {
                version,
                weight,
                record,
            } => {
                self.aws
                    .update_alias(
                        function,
                        alias,
                        revision.unwrap_or_default(),
                        version,
                        weight.as_ref(),
                        &record.render(),
                    )
                    .await
            }
        };
        if let Err(e) = result {
            return failed(outcome.status, &e);
        }
        outcome.writes = 1;
        if d.guard == GuardAction::Delete && (guard.is_some() || orphan) {
            if let Err(e) = self.aws.delete_alarm(acct.as_deref(), &name).await {
                outcome.error = Some(format!(
                    "the guard alarm {name} could not be deleted: {}",
                    crate::errors::chain(&e)
                ));
            }
        }
        outcome
    }

    /// What each release mount's alias records, read without deciding or
    /// writing (for `plan`, `status` and `wait`): one GetAlias a mount.
    pub(crate) async fn observe_releases(
        &self,
        snap: &Snapshot,
        only: Option<&MountId>,
    ) -> BTreeMap<MountId, ReleaseOutcome> {
        let mut out = BTreeMap::new();
        for m in &snap.mounts {
            let Some(release) = &m.release else {
                continue;
            };
            if only.is_some_and(|id| id != &m.id()) {
                continue;
            }
            let alias = alias_name(m.tenant.as_deref(), &m.name);
            let outcome = match self.aws.get_alias(&m.named_function(), &alias).await {
                Ok(view) => ReleaseOutcome {
                    status: observed(release, view.as_ref()),
                    writes: 0,
                    error: None,
                },
                Err(e) => failed(
                    Released::Waiting {
                        why: "the alias could not be read".into(),
                    },
                    &e,
                ),
            };
            out.insert(m.id(), outcome);
        }
        out
    }
}

impl Reconciler {
    /// Where the release of `id` stands, as its alias records it (one
    /// GetAlias); `None` when it has none or the alias cannot be read.
    pub async fn release_status(&self, snap: &Snapshot, id: &MountId) -> Option<Released> {
        let o = self.observe_releases(snap, Some(id)).await.remove(id)?;
        o.error.is_none().then_some(o.status)
    }
}

fn failed(status: Released, e: &AwsError) -> ReleaseOutcome {
    ReleaseOutcome {
        status,
        writes: 0,
        error: Some(crate::errors::chain(e)),
    }
}

/// The alias as a decision's write leaves it (its revision unknown).
fn written_view(d: &Decision) -> Option<AliasView> {
    match d.write.as_ref()? {
        Write::Create { version, record } => Some(AliasView {
            version: version.clone(),
            weight: None,
            description: record.render(),
            revision: String::new(),
        }),
        Write::Update {
            version,
            weight,
            record,
        } => Some(AliasView {
            version: version.clone(),
            weight: weight.clone(),
            description: record.render(),
            revision: String::new(),
        }),
    }
}
