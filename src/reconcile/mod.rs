//! One reconcile pass, as a sequence of typed phases:
//! [`Observed`] → [`Desired`] → [`Planned`] → [`Applied`] → deployed.
//!
//! - [`functions`]: resolving function references and reading their policies;
//! - [`executor`]: making a plan's changes, in order, journaling ahead;
//! - [`lane`]: permission changes beside the API Gateway calls;
//! - [`journal`]: the in-flight stage tag;
//! - [`report`]: what a pass did, for the CLI and the controller;
//! - [`status`]: each manifest's conditions, as status documents;
//! - [`stop`]: when a pass must stop writing (shutdown, the lease).
//!
//! # Expected flow
//! 1. Read the whole API (one paged GetResources with methods embedded) and
//!    the stage, on every pass: what the gateway serves is never taken from
//!    an earlier pass.
//! 2. Settle duplicate manifests (the live incumbent keeps its name and path),
//!    resolve each mount's function, read the resource policy of every
//!    function involved (desired, and named by this owner's existing routes).
//!    With [`Reads::Changed`] (the daemon's pass after a manifest change) a
//!    function an earlier pass has read is taken from that read instead,
//!    brought up to date with apimount's own permission writes since: the
//!    Lambda control plane allows 15 requests a second, so re-reading
//!    hundreds of policies would make every edit wait for seconds. Every
//!    other pass ([`Reads::All`]) reads them all again and heals any drift
//!    in them.
//! 3. Plan (pure, see `plan`). In `plan` mode stop here.
//! 4. Apply mount by mount; a failure stops that mount only.
//! 5. Deploy once if this owner's routes differ from what the stage serves
//!    (recorded as a fingerprint in the deployment description), then point
//!    the stage at it; then remove statements that only the old deployment
//!    needed.
//!
//! # Guarantees
//! - Nothing apimount does not own is changed; nothing is deleted while any
//!   manifest is unreadable under an unknown name.
//! - A pass that finds nothing to do makes no write call.
//! - A change made before a crash is deployed by the next pass, because the
//!   stage's fingerprint no longer matches.
//!
//! # Caveats
//! - When a route is re-pointed to another function and the process dies
//!   after the deployment but before the old statement is removed, that
//!   statement stays on the old function (scoped to one route, harmless).
//! - Resources a crash leaves without any method (created just before it, or
//!   a parent whose child was just deleted) carry no owner marker; the
//!   in-flight journal (`journal`, a stage tag) lets the next pass remove
//!   them. Before the stage first exists there is nothing to tag, so the very
//!   first pass is not covered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::stream::{self, StreamExt};

use crate::aws::{Aws, AwsError, AwsErrorKind};
use crate::errors::chain;
use crate::manifest::{FunctionRef, HttpMethod, MountId};
use crate::plan::accounts::{self, AccountRoles};
use crate::plan::deploy::{self, Deploy, DeployFacts};
use crate::plan::model::{ObservedApi, ObservedStage};
use crate::plan::names::{
    deployment_description, fingerprint_in_description, managed_mounts, owner_fingerprint,
};
use crate::plan::tenancy;
use crate::plan::throttle_limits::AccountLimit;
use crate::plan::warnings::quota_warnings;
use crate::plan::{
    self, admission, DesiredMount, MountAction, Plan, PlanInput, Problem, Reason, State,
};
use crate::settings::{DeleteLimit, Target};
use crate::source::Snapshot;

pub mod executor;
pub mod functions;
pub mod journal;
pub mod lane;
#[cfg(test)]
mod noninterference;
pub mod release;
pub mod report;
pub mod status;
pub mod stop;

pub use report::{invalid_reason, ChangeOutcome, MountReport, PassReport};
pub use stop::Stop;

use executor::{problem_from, skipped, Executor, Journal, Outcomes};
use functions::{FunctionMemory, Inspected, KnownPolicy, Policies};
use lane::PermissionLane;
use report::{fill_plan_report, mount_report};

/// Which Lambda functions a pass reads (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Every function and its policy: one-shot commands, the daemon's first
    /// pass, resyncs and retries.
    All,
    /// Only functions no earlier pass has read, or whose policy change
    /// failed since (so what it holds is unknown).
    Changed,
    /// As `Changed`, and besides, this many of the functions read longest
    /// ago: the daemon's resyncs verify every policy in turn within the
    /// quota budget, instead of all at once.
    Rolling(usize),
}

impl Reads {
    pub fn as_str(self) -> &'static str {
        match self {
            Reads::All => "all",
            Reads::Changed => "changed",
            Reads::Rolling(_) => "rolling",
        }
    }
}

/// Plan only, or plan and apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
}

/// Reconciles one API for one owner. Remembers deployment descriptions (they
/// never change) and, for the daemon's passes after a manifest change, what
/// the last reads found of the functions (see [`Reads`]).
pub struct Reconciler {
    aws: Aws,
    target: Target,
    descriptions: Mutex<HashMap<String, Option<String>>>,
    functions: FunctionMemory,
    /// The function each mount of the last pass named, to forget it when
    /// the mount is retried (see [`Reconciler::forget`]).
    mount_functions: Mutex<BTreeMap<MountId, FunctionRef>>,
    /// Set on shutdown: the pass stops before its next change.
    stop: Arc<Stop>,
    /// The last pass could not read the API or the stage: the next reads
    /// them first and reads no function unless they answer (an outage
    /// costs two calls a pass, however many functions there are).
    blind: std::sync::atomic::AtomicBool,
    /// What is known of the mounts' releases between passes.
    releases: release::Releases,
}

/// Phase 1 of a pass: what it read. The API and the stage are read on every
/// pass; the functions as [`Reads`] says.
pub struct Observed<'s> {
    pub api: ObservedApi,
    pub stage: Option<ObservedStage>,
    /// The API's account (the controller's own), when it was needed.
    pub account: Option<String>,
    /// Mounts refused for their function's account before anything of it
    /// was read (see `plan::accounts`).
    refused: BTreeMap<MountId, Problem>,
    /// Each function reference of the manifests, resolved, with its policy.
    functions: BTreeMap<&'s FunctionRef, Inspected>,
}

/// What the plan starts from of AWS: the API, its stage, its account.
#[derive(Clone, Copy)]
struct Seen<'a> {
    api: &'a ObservedApi,
    stage: &'a Option<ObservedStage>,
    api_account: Option<&'a str>,
}

/// Phase 2: what the manifests ask for, with duplicates settled.
pub struct Desired {
    pub mounts: Vec<DesiredMount>,
    /// Mounts whose routes stay as they are: invalid manifests whose name is
    /// known, and the names losing duplicates hold.
    pub retained: BTreeSet<MountId>,
}

/// Phase 3: the plan, and what the stage serves now.
pub struct Planned {
    pub plan: Plan,
    /// This owner's fingerprint in the deployment the stage serves.
    deployed: Option<String>,
    /// The in-flight journal as the pass found it.
    journaled: BTreeSet<String>,
}

/// Phase 4: the changes made; the executor holds the API as it is now.
pub struct Applied<'a> {
    exec: Executor<'a>,
    /// Changes to the stage's method settings, made after the deployment
    /// step (see [`StageSettings`]).
    stage_settings: Vec<(StageSettings, Vec<plan::Change>)>,
}

/// Whose changes to the stage's method settings (per-route throttling) wait
/// for the deployment step: they need the stage, which the first deployment
/// makes; the throttling of a removed route stays until the stage no longer
/// serves it; and they take effect without a deployment, so nothing else
/// waits for them.
#[derive(Debug, Clone, Copy)]
enum StageSettings {
    /// Of the mount whose report is at this index.
    Mount(usize),
    /// Of the removal whose report is at this index.
    Cleanup(usize),
}

impl Reconciler {
    pub fn new(aws: Aws, target: Target) -> Reconciler {
        let stop = Arc::new(Stop::default());
        aws.guard_writes(stop.clone());
        Reconciler {
            aws,
            target,
            descriptions: Mutex::new(HashMap::new()),
            functions: FunctionMemory::default(),
            mount_functions: Mutex::new(BTreeMap::new()),
            stop,
            blind: std::sync::atomic::AtomicBool::new(false),
            releases: release::Releases::default(),
        }
    }

    /// A flag that, once set, makes the running pass stop at the next safe
    /// point: between two AWS calls. Every call leaves the gateway in a state
    /// the next pass understands (a method is created with its owner marker
    /// in the same call), so any such point is safe.
    pub fn stopper(&self) -> Arc<Stop> {
        self.stop.clone()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// How many GetResources pages a read of the whole API takes (as of the
    /// last pass).
    pub fn api_pages(&self) -> usize {
        self.aws.api_pages()
    }

    /// Forgets what was read of the functions of `mounts`, so that a
    /// [`Reads::Changed`] pass reads them again (a retry of those mounts
    /// alone) and no other function.
    pub fn forget(&self, mounts: &BTreeSet<MountId>) {
        let known = self.mount_functions.lock().expect("lock");
        for id in mounts {
            if let Some(f) = known.get(id) {
                self.functions.forget(f);
            }
        }
    }

    /// The roles for other accounts: the tenant policy's, when one is in
    /// force; else those of `--account-role`.
    fn account_roles(&self, snap: &Snapshot) -> AccountRoles {
        match &snap.tenancy {
            Some(p) => p
                .accounts
                .iter()
                .map(|r| (r.account.clone(), r.clone()))
                .collect(),
            None => self.target.account_roles.clone(),
        }
    }

    /// Runs one pass over a snapshot of the manifests, reading everything.
    pub async fn pass(&self, snap: &Snapshot, mode: Mode) -> PassReport {
        self.pass_with(snap, mode, Reads::All).await
    }

    /// Runs one pass, reading the functions `reads` says.
    pub async fn pass_with(&self, snap: &Snapshot, mode: Mode, reads: Reads) -> PassReport {
        self.pass_inner(snap, mode, reads, false).await
    }

    /// The stage alone (one GetStage), for `apimount wait`'s cheap looks.
    pub async fn stage(&self) -> Result<Option<ObservedStage>, Problem> {
        let t = &self.target;
        self.aws
            .get_stage(&t.rest_api_id, &t.stage)
            .await
            .map_err(|e| problem_from(&e, "reading the stage"))
    }

    /// A plan-mode pass about one mount (for `apimount wait`): the manifests
    /// that contend for its name or path are weighed as always, every other
    /// mount is left as it is, and only its own function is read. So a
    /// poll costs the reads of the API and the stage and one policy read,
    /// however many mounts there are.
    pub async fn pass_for(&self, snap: &Snapshot, mount: &MountId) -> PassReport {
        let Some(target) = snap.mounts.iter().find(|m| &m.id() == mount) else {
            return self.pass_inner(snap, Mode::Plan, Reads::All, true).await;
        };
        let mut focused = snap.clone();
        focused.mounts = snap
            .mounts
            .iter()
            .filter(|m| &m.id() == mount || m.path == target.path)
            .cloned()
            .collect();
        for m in &snap.mounts {
            if &m.id() != mount {
                focused.retained.insert(m.id());
            }
        }
        self.pass_inner(&focused, Mode::Plan, Reads::All, true)
            .await
    }

    async fn pass_inner(
        &self,
        snap: &Snapshot,
        mode: Mode,
        reads: Reads,
        focused: bool,
    ) -> PassReport {
        let started = Instant::now();
        let mut report = PassReport {
            revision: snap.revision.clone(),
            invalid: snap.errors.clone(),
            ..PassReport::default()
        };
        let releases = snap.mounts.iter().any(|m| m.release.is_some());
        let prepared = match (mode, releases && !focused) {
            (Mode::Apply, true) => self.prepare_releases(snap).await,
            _ => BTreeMap::new(),
        };
        if let Err(p) = self.run(snap, mode, reads, focused, &mut report).await {
            report.fatal = Some(p.message);
            report.fatal_reason = Some(p.reason);
        }
        if report.fatal.is_none() {
            let outcomes = match mode {
                Mode::Apply => {
                    // Releases move only on routes that are accepted and
                    // resolved; the others wait.
                    let eligible: BTreeSet<MountId> = report
                        .mounts
                        .iter()
                        .filter(|m| {
                            m.problem.as_ref().is_none_or(|p| {
                                p.reason.condition() == plan::conditions::ConditionType::Programmed
                            })
                        })
                        .map(|m| m.id())
                        .collect();
                    let mut stepped = self
                        // Every alias is read again at a resync (to see
                        // hand edits); a change pass reads only where a
                        // decision writes.
                        .step_releases(snap, &eligible, reads != Reads::Changed)
                        .await;
                    for (id, o) in prepared {
                        stepped.entry(id).or_insert(o);
                    }
                    stepped
                }
                // A focused pass (`wait`) has only its mount and those
                // contending for its path: every alias of those is read.
                Mode::Plan if releases => self.observe_releases(snap, None).await,
                Mode::Plan => BTreeMap::new(),
            };
            report.add_releases(outcomes);
        }
        self.functions.remember_writes(&report);
        report.duration = started.elapsed();
        report
    }

    /// The phases of a pass. An error means the pass could not run at all.
    async fn run(
        &self,
        snap: &Snapshot,
        mode: Mode,
        reads: Reads,
        focused: bool,
        report: &mut PassReport,
    ) -> Result<(), Problem> {
        let observed = self.observe(snap, reads).await?;
        report.api_account = observed.account.clone();
        report.roles = self
            .account_roles(snap)
            .into_iter()
            .filter(|(a, _)| Some(a) != observed.account.as_ref())
            .map(|(a, r)| (a, r.role_arn))
            .collect();
        let desired = self.desire(snap, &observed, report);
        let Observed {
            api,
            stage,
            account,
            functions,
            ..
        } = observed;
        let policies = self.inventory(functions, &desired, &api, focused).await;
        let planned = self
            .plan(
                snap,
                Seen {
                    api: &api,
                    stage: &stage,
                    api_account: account.as_deref(),
                },
                &desired,
                &policies,
                report,
            )
            .await;
        match mode {
            Mode::Plan => self.report_plan(api, &stage, &desired, &planned, report),
            Mode::Apply => {
                if snap.mounts.iter().any(|m| m.release.is_some()) || api_has_release_aliases(&api)
                {
                    self.note_release_orphans(&api, snap);
                }
                let applied = self.apply(&api, &stage, &desired, &planned, report).await;
                self.deploy(applied, &api, &stage, &desired, &planned, report)
                    .await;
            }
        }
        Ok(())
    }

    /// Reads the API, the stage and every function (with its policy) at
    /// once: none of the reads depends on another.
    async fn observe<'s>(&self, snap: &'s Snapshot, reads: Reads) -> Result<Observed<'s>, Problem> {
        let t = &self.target;
        // The API's account, learnt once a process, is needed before any
        // function is read when one may be in another account: a manifest
        // names a function by ARN, or a tenant lists its accounts. Otherwise
        // every function is named by name, so in the API's account, and
        // nothing needs STS.
        let needed = snap
            .mounts
            .iter()
            .any(|m| matches!(m.function, FunctionRef::Arn { .. }))
            || snap
                .tenancy
                .as_ref()
                .is_some_and(|p| p.tenants.iter().any(|t| t.accounts.is_some()));
        let account = match needed {
            true => Some(self.aws.api_account().await.map_err(|e| {
                problem_from(&e, "learning the API's account (sts:GetCallerIdentity)")
            })?),
            false => self.aws.known_api_account(),
        };
        let roles = self.account_roles(snap);
        self.aws.set_account_roles(&roles).await;
        let refused: BTreeMap<MountId, Problem> = snap
            .mounts
            .iter()
            .filter_map(|m| {
                let account = account.as_deref()?;
                let tenant = snap.tenancy.as_ref().and_then(|p| {
                    let name = m.tenant.as_deref()?;
                    p.tenants.iter().find(|x| x.name == name)
                });
                accounts::check_account(&m.function, account, &roles, tenant)
                    .err()
                    .map(|p| (m.id(), p))
            })
            .collect();
        let refs: BTreeSet<&FunctionRef> = snap
            .mounts
            .iter()
            .filter(|m| !refused.contains_key(&m.id()))
            .map(|m| &m.function)
            .collect();
        match reads {
            Reads::All => self.functions.clear(),
            Reads::Rolling(n) => self.functions.expire_oldest(&refs, n),
            Reads::Changed => {}
        }
        let functions = stream::iter(refs)
            .map(|f| async move { (f, self.inspect_with(f, reads).await) })
            .buffered(4)
            .collect::<BTreeMap<&FunctionRef, Inspected>>();
        // Authorizer names are read only when a mount's authorizer may be
        // listed by name (not for every pass of a policy with authorizers,
        // nor for every look `apimount wait` takes).
        let names = snap.tenancy.as_ref().is_some_and(|p| {
            snap.mounts
                .iter()
                .any(|m| tenancy::needs_authorizer_names(p, m))
        });
        let authorizers = async {
            match names {
                true => self.aws.authorizer_names(&t.rest_api_id).await.map(Some),
                false => Ok(None),
            }
        };
        // The API and the stage (and the authorizers' names) first, or
        // beside the functions: either way, when they cannot be read the
        // function reads stop (those in flight are dropped) and the pass ends.
        let gateway = async {
            let (api, stage, authorizers) = tokio::join!(
                self.aws.observe_api(&t.rest_api_id),
                self.aws.get_stage(&t.rest_api_id, &t.stage),
                authorizers
            );
            let mut api = api.map_err(|e| {
                let what = format!("reading the REST API {}", t.rest_api_id);
                problem_from(&e, &what)
            })?;
            if let Some(names) =
                authorizers.map_err(|e| problem_from(&e, "reading the API's authorizers"))?
            {
                api.authorizers = names;
            }
            if api.get("/").is_none() {
                return Err(Problem::new(
                    Reason::AwsError,
                    format!(
                        "REST API {} has no root resource; is the id right?",
                        t.rest_api_id
                    ),
                ));
            }
            let stage = stage.map_err(|e| problem_from(&e, "reading the stage"))?;
            Ok((api, stage))
        };
        use std::sync::atomic::Ordering;
        let read = if self.blind.load(Ordering::Relaxed) {
            match gateway.await {
                Ok(g) => Ok((g, functions.await)),
                Err(p) => Err(p),
            }
        } else {
            tokio::try_join!(gateway, async { Ok(functions.await) })
        };
        self.blind.store(read.is_err(), Ordering::Relaxed);
        let ((api, stage), functions) = read?;
        Ok(Observed {
            api,
            stage,
            account,
            refused,
            functions,
        })
    }

    /// Settles contested names and paths, inside each tenant first (see
    /// `plan::admission`): a live mount stays with the file that made it;
    /// the others are reported.
    fn desire(&self, snap: &Snapshot, observed: &Observed<'_>, report: &mut PassReport) -> Desired {
        let owner = self.target.owner.as_str();
        let function = |m: &crate::manifest::Mount| {
            if observed.refused.contains_key(&m.id()) {
                return None;
            }
            observed.functions[&m.function].0.as_ref().ok()
        };
        let settled = admission::admit(
            &observed.api,
            owner,
            &snap.mounts,
            &snap.keys,
            snap.tenancy.as_deref(),
            &function,
        );
        report.invalid.extend(settled.losers);
        let mut retained = snap.retained.clone();
        retained.extend(settled.retained);
        *self.mount_functions.lock().expect("lock") = snap
            .mounts
            .iter()
            .map(|m| (m.id(), m.function.clone()))
            .collect();
        let mounts = settled
            .desired
            .iter()
            .map(|&i| {
                let m = &snap.mounts[i];
                DesiredMount {
                    mount: m.clone(),
                    function: match observed.refused.get(&m.id()) {
                        Some(p) => Err(p.clone()),
                        None => observed.functions[&m.function].0.clone(),
                    },
                }
            })
            .collect();
        Desired { mounts, retained }
    }

    /// The policies the plan works from: those of the desired mounts'
    /// functions (moved, not copied: with a thousand functions a second copy
    /// of every policy is megabytes that stay resident), and those of
    /// functions that only this owner's existing routes name, read now.
    async fn inventory(
        &self,
        functions: BTreeMap<&FunctionRef, Inspected>,
        desired: &Desired,
        api: &ObservedApi,
        focused: bool,
    ) -> Policies {
        let owner = self.target.owner.as_str();
        let mut policies = Policies::default();
        let wanted: BTreeSet<&FunctionRef> =
            desired.mounts.iter().map(|d| &d.mount.function).collect();
        for (f, (resolved, policy)) in functions {
            if let (true, Ok(resolved)) = (wanted.contains(f), resolved) {
                policies.keep(resolved.arn(), policy);
            }
        }
        let mut others = BTreeMap::new();
        for (_, _, m) in api.methods().filter(|_| !focused) {
            if !m.ownership().is(owner) {
                continue;
            }
            if let Some(f) = m.function() {
                if !policies.ours.contains_key(&f.arn()) {
                    others.entry(f.arn()).or_insert(f);
                }
            }
        }
        let fetched: Vec<(String, Option<KnownPolicy>)> = stream::iter(others)
            .map(|(arn, f)| async move {
                match self.aws.get_policy(&f).await {
                    Ok(p) => (
                        arn,
                        Some(KnownPolicy::of(p, &self.target.rest_api_id, owner)),
                    ),
                    Err(e) => {
                        tracing::warn!(function = %arn, error = %chain(&e), "could not read the function's resource policy");
                        (arn, None)
                    }
                }
            })
            .buffered(4)
            .collect()
            .await;
        for (arn, policy) in fetched {
            policies.keep(arn, policy);
        }
        policies
    }

    /// Plans the pass (pure, see `plan`), with what an interrupted pass of
    /// this owner left (see `journal`), and reads what the stage serves.
    async fn plan(
        &self,
        snap: &Snapshot,
        seen: Seen<'_>,
        desired: &Desired,
        policies: &Policies,
        report: &mut PassReport,
    ) -> Planned {
        let Seen {
            api,
            stage,
            api_account,
        } = seen;
        let t = &self.target;
        let owner = t.owner.as_str();
        let journaled: BTreeSet<String> = stage
            .as_ref()
            .and_then(|s| s.tags.get(&journal::key(owner)))
            .map(|v| journal::decode(v))
            .unwrap_or_default();
        let abandoned = journal::abandoned(api, &journaled);
        if !abandoned.is_empty() {
            tracing::info!(paths = ?abandoned, "an interrupted pass left method-less resources");
        }
        let input = PlanInput {
            owner,
            api_id: &t.rest_api_id,
            api_account,
            region: &t.region,
            api,
            stage: stage.as_ref(),
            mounts: &desired.mounts,
            retained: &desired.retained,
            held: &snap.held,
            policies: &policies.ours,
            delete_limits: &delete_limits(api, owner, snap, &t.delete_limit),
            tenancy: snap.tenancy.as_deref(),
            abandoned: &abandoned,
            account_limit: &AccountLimit::in_force(&t.region, t.account_throttle.as_ref()),
        };
        let plan = plan::plan(&input);
        report.notes.extend(plan.notes.iter().cloned());
        report
            .notes
            .extend(quota_warnings(api, &plan, &policies.counts));
        Planned {
            plan,
            deployed: self.deployed_fingerprint(stage).await,
            journaled,
        }
    }

    /// Plan mode ends here: the report says what a pass would do.
    fn report_plan(
        &self,
        api: ObservedApi,
        stage: &Option<ObservedStage>,
        desired: &Desired,
        planned: &Planned,
        report: &mut PassReport,
    ) {
        let owner = self.target.owner.as_str();
        fill_plan_report(report, &planned.plan, &desired.mounts);
        let current = owner_fingerprint(&api, owner);
        let facts = DeployFacts {
            changes_routes: planned.plan.changes().any(|c| c.alters_routes(&api)),
            ..DeployFacts::of(
                &api,
                owner,
                &current,
                stage.is_some(),
                planned.deployed.as_deref(),
            )
        };
        report.deploy_pending = deploy::decide(&facts).is_pending();
        report.stage_behind = deploy::stage_is_behind(&facts);
        // What the stage would be given, were the plan applied.
        if report.deploy_pending {
            let mut projected = api.clone();
            for c in planned.plan.changes() {
                c.apply_to(&mut projected);
            }
            if let Some(why) = deploy::blocker(&projected, &[]) {
                report.deploy_blocked = true;
                for m in &mut report.mounts {
                    if m.problem.is_none() {
                        m.problem = Some(Problem::new(Reason::DeployBlocked, why.clone()));
                    }
                }
            }
        }
        report.api = Some(api);
        report.stage_settings = stage.as_ref().map(|s| s.method_settings.clone());
    }

    /// Applies the plan mount by mount, then the removals, journaling what a
    /// crash could leave method-less.
    async fn apply<'a>(
        &'a self,
        api: &ObservedApi,
        stage: &'a Option<ObservedStage>,
        desired: &Desired,
        planned: &Planned,
        report: &mut PassReport,
    ) -> Applied<'a> {
        let t = &self.target;
        let plan = &planned.plan;
        let groups = plan
            .mounts
            .iter()
            .filter_map(|mp| match &mp.action {
                MountAction::Apply(changes) => Some(changes.as_slice()),
                MountAction::Blocked(_) => None,
            })
            .chain(plan.cleanups.iter().map(|c| c.changes.as_slice()));
        let needs: Vec<BTreeSet<String>> = groups.map(|g| journal::at_risk(api, g)).collect();
        let mut exec = Executor {
            aws: &self.aws,
            api_id: &t.rest_api_id,
            owner: &t.owner,
            stage_name: &t.stage,
            api: api.clone(),
            wrote_routes: false,
            stop: &self.stop,
            journal: Journal {
                stage: stage.is_some().then_some(t.stage.as_str()),
                key: journal::key(&t.owner),
                chunks: journal::chunks(&needs),
                next_group: 0,
                in_force: planned.journaled.clone(),
                chunk: BTreeSet::new(),
                failed: None,
            },
        };
        let mut lane = PermissionLane::default();
        let mut stage_settings = Vec::new();
        let failed = "skipped: an earlier change of this mount failed";
        for (mp, d) in plan.mounts.iter().zip(&desired.mounts) {
            let mut mr = mount_report(&d.mount, &d.function);
            match &mp.action {
                MountAction::Blocked(p) => {
                    mr.state = State::Failed;
                    mr.problem = Some(p.clone());
                }
                MountAction::Apply(all) => {
                    let (settings, changes): (Vec<plan::Change>, Vec<plan::Change>) = all
                        .iter()
                        .cloned()
                        .partition(plan::Change::is_stage_setting);
                    let (outcomes, problem) = self
                        .apply_mount(&mut exec, &mut lane, &mut report.mounts, &changes)
                        .await;
                    mr.changes = outcomes;
                    if let Some(p) = problem {
                        if !self.stop.requested() {
                            let note = roll_back(&mut exec, api, &mr.id(), &changes).await;
                            report.notes.extend(note);
                        }
                        mr.state = State::Failed;
                        mr.problem = Some(p);
                        mr.changes.extend(skipped(&settings, failed));
                    } else if !settings.is_empty() {
                        let at = StageSettings::Mount(report.mounts.len());
                        stage_settings.push((at, settings));
                    }
                }
            }
            report.mounts.push(mr);
        }
        // Cleanups remove statements too: one writer per policy at a time.
        lane.finish(&mut report.mounts).await;
        for c in &plan.cleanups {
            let (settings, changes): (Vec<plan::Change>, Vec<plan::Change>) = c
                .changes
                .iter()
                .cloned()
                .partition(plan::Change::is_stage_setting);
            let (mut outcomes, problem) = exec.run_group(&changes).await;
            if problem.is_some() {
                outcomes.extend(skipped(&settings, "skipped: the removal did not finish"));
            } else if !settings.is_empty() {
                let at = StageSettings::Cleanup(report.cleanups.len());
                stage_settings.push((at, settings));
            }
            if let Some(p) = problem {
                report.notes.push(format!(
                    "removing {} did not finish: {p}; the next pass tries again",
                    c.mount
                        .as_ref()
                        .map(|m| format!("mount '{m}'"))
                        .unwrap_or_else(|| "leftovers".into())
                ));
            }
            report.cleanups.push((c.mount.clone(), outcomes));
        }
        Applied {
            exec,
            stage_settings,
        }
    }

    /// Makes the changes to the stage's method settings once the deployment
    /// step is over: the stage exists then (unless its first deployment
    /// failed), and a removed route's throttling goes only once the stage no
    /// longer serves the route. Outcomes go to their mount or removal; a
    /// failure fails the mount (its routes stay as they are).
    async fn apply_stage_settings(
        &self,
        exec: &mut Executor<'_>,
        deferred: Vec<(StageSettings, Vec<plan::Change>)>,
        stage_exists: bool,
        report: &mut PassReport,
    ) {
        // A failed or blocked deployment leaves removed routes served.
        let still_served = report.deploy_error.is_some();
        let skips: Vec<Option<&str>> = deferred
            .iter()
            .map(|(at, _)| {
                if !stage_exists {
                    Some("skipped: the stage does not exist yet (its first deployment makes it)")
                } else if matches!(at, StageSettings::Cleanup(_)) && still_served {
                    Some("skipped: the stage still serves these routes until a deployment removes them")
                } else {
                    None
                }
            })
            .collect();
        // Every group's changes go out together, in as few calls as fit.
        let sent: Vec<&plan::Change> = deferred
            .iter()
            .zip(&skips)
            .filter(|(_, skip)| skip.is_none())
            .flat_map(|((_, changes), _)| changes)
            .collect();
        let mut results = exec.run_stage_settings(&sent).await.into_iter();
        for ((at, changes), skip) in deferred.into_iter().zip(skips) {
            let (outcomes, problem) = match skip {
                Some(why) => (skipped(&changes, why), None),
                None => {
                    let mut problem = None;
                    let outcomes = changes
                        .into_iter()
                        .map(|change| match results.next().expect("one result a change") {
                            Ok(note) => {
                                tracing::debug!(change = %change, note = note.as_deref().unwrap_or(""), "applied");
                                ChangeOutcome { change, error: None, note }
                            }
                            Err(p) => {
                                tracing::warn!(change = %change, error = %p, "change failed");
                                let error = Some(p.to_string());
                                problem.get_or_insert(p);
                                ChangeOutcome { change, error, note: None }
                            }
                        })
                        .collect::<Vec<_>>();
                    (outcomes, problem)
                }
            };
            match at {
                StageSettings::Mount(i) => {
                    let mr = &mut report.mounts[i];
                    mr.changes.extend(outcomes);
                    if let Some(p) = problem {
                        if mr.state != State::Failed {
                            mr.state = State::Failed;
                            mr.problem = Some(p);
                        }
                    }
                }
                StageSettings::Cleanup(i) => {
                    let (mount, outcomes_of) = &mut report.cleanups[i];
                    outcomes_of.extend(outcomes);
                    if let Some(p) = problem {
                        let whose = mount
                            .as_ref()
                            .map(|m| format!("mount '{m}'"))
                            .unwrap_or_else(|| "leftovers".into());
                        report.notes.push(format!(
                            "removing the throttling of {whose} did not finish: {p}; the next pass tries again"
                        ));
                    }
                }
            }
        }
    }

    /// Makes one mount's changes; its report goes to `reports.len()`.
    ///
    /// The planner puts a mount's permissions last. They start as soon as one
    /// of its methods names the function (a crash then cannot leave a
    /// statement nothing points at) and run in `lane`, beside the mount's
    /// remaining API Gateway calls and the next mount's: the two services
    /// have separate quotas.
    async fn apply_mount(
        &self,
        exec: &mut Executor<'_>,
        lane: &mut PermissionLane,
        reports: &mut [MountReport],
        changes: &[plan::Change],
    ) -> Outcomes {
        let grants = changes.iter().rev().take_while(|c| c.is_grant()).count();
        let (head, grants) = changes.split_at(changes.len() - grants);
        let gate = head
            .iter()
            .position(|c| matches!(c, plan::Change::PutIntegration { .. }))
            .map_or(head.len(), |i| i + 1);
        let (mut outcomes, problem) = exec.run_group(&head[..gate]).await;
        if problem.is_some() {
            outcomes.extend(skipped(
                &changes[gate..],
                "skipped: an earlier change of this mount failed",
            ));
            return (outcomes, problem);
        }
        if !grants.is_empty() {
            lane.finish(reports).await;
            lane.start(reports.len(), &self.aws, &self.stop, grants);
        }
        let (rest, problem) = exec.run_all(&head[gate..]).await;
        outcomes.extend(rest);
        (outcomes, problem)
    }

    /// Deploys once if the stage is behind this owner's routes (see
    /// `plan::deploy`), settles the journal beside it, then removes the
    /// statements only the old deployment needed.
    async fn deploy(
        &self,
        applied: Applied<'_>,
        observed: &ObservedApi,
        stage: &Option<ObservedStage>,
        desired: &Desired,
        planned: &Planned,
        report: &mut PassReport,
    ) {
        let owner = self.target.owner.as_str();
        let Applied {
            mut exec,
            stage_settings,
        } = applied;
        let stopping = self.stop.requested();
        let facts = |exec: &Executor<'_>, current: &str, blocked: bool| -> Deploy {
            deploy::decide(&DeployFacts {
                changes_routes: exec.wrote_routes,
                stopping,
                blocked,
                ..DeployFacts::of(
                    &exec.api,
                    owner,
                    current,
                    stage.is_some(),
                    planned.deployed.as_deref(),
                )
            })
        };
        let mut decision = facts(&exec, &owner_fingerprint(&exec.api, owner), false);
        // Check what would be published: no half-made method of ours (they
        // are removed), no served and wanted route left without its method.
        let mut blocked = None;
        if decision == Deploy::Now {
            if report.failed_changes() > 0 {
                if let Err(p) = exec.reread().await {
                    tracing::warn!(error = %p, "could not check the API before deploying");
                }
            }
            let problems = exec.remove_half_made().await;
            for p in &problems {
                tracing::warn!(error = %p, "could not remove a method without integration");
            }
            // What the stage serves is known only when it was in sync with
            // the API at the start of the pass.
            let in_sync =
                planned.deployed.as_deref() == Some(owner_fingerprint(observed, owner).as_str());
            let lost = if in_sync {
                lost_routes(observed, &exec.api, owner, &planned.plan, desired)
            } else {
                Vec::new()
            };
            blocked = deploy::blocker(&exec.api, &lost);
            let current = owner_fingerprint(&exec.api, owner);
            decision = facts(&exec, &current, blocked.is_some());
        }
        // The journal is settled beside the deployment: they do not depend
        // on each other. On shutdown the next start deploys instead.
        let deployed = async {
            match decision {
                Deploy::Now => Some(self.make_deployment(&exec.api, stage).await),
                Deploy::EmptyApi => Some(Err(empty_api())),
                Deploy::UpToDate | Deploy::Deferred | Deploy::Blocked => None,
            }
        };
        let (deployed, unsettled) = tokio::join!(deployed, exec.settle_journal());
        if let Some(e) = exec.journal.failed.take().or(unsettled) {
            report.notes.push(format!(
                "the in-flight journal (stage tag {}) could not be written: {e}; if this pass is cut short, resources it leaves without methods are not removed by a later pass",
                exec.journal.key
            ));
        }
        report.stage_behind = decision == Deploy::Deferred;
        if let (Deploy::Blocked, Some(why)) = (decision, blocked) {
            tracing::warn!(reason = Reason::DeployBlocked.as_str(), detail = %why, "deployment blocked; the stage keeps serving its last deployment");
            deploy_blocked(report, why);
        }
        match deployed {
            Some(Ok(id)) => report.deployment = Some(id),
            // AWS refused the deployment as invalid (a private API without a
            // resource policy, a method it will not publish): retrying the
            // same request cannot help, so it waits for a change, as a
            // deployment apimount blocks itself does.
            Some(Err(e))
                if e.kind == AwsErrorKind::BadRequest
                    && e.operation == "apigateway:CreateDeployment" =>
            {
                let why = format!("AWS refused the deployment: {}", chain(&e));
                tracing::warn!(reason = Reason::DeployBlocked.as_str(), detail = %why, "deployment refused; the stage keeps serving its last deployment");
                deploy_blocked(report, why);
            }
            Some(Err(e)) => {
                report.deploy_pending = true;
                report.deploy_error = Some(chain(&e));
                for m in &mut report.mounts {
                    if m.state == State::Ready {
                        m.state = State::Progressing;
                        m.problem = Some(problem_from(&e, "deploying the stage"));
                    }
                }
            }
            None => {}
        }
        let stage_exists = stage.is_some() || report.deployment.is_some();
        self.apply_stage_settings(&mut exec, stage_settings, stage_exists, report)
            .await;
        // Statements only the old deployment needed.
        let after = &planned.plan.after_deploy;
        if report.deploy_error.is_none() && !after.is_empty() {
            let (outcomes, problem) = exec.run_all(after).await;
            if let Some(p) = problem {
                report
                    .notes
                    .push(format!("removing stale permissions did not finish: {p}"));
            }
            report.after_deploy = outcomes;
        }
    }

    /// The fingerprint of this owner's routes in the deployment the stage serves.
    async fn deployed_fingerprint(&self, stage: &Option<ObservedStage>) -> Option<String> {
        let id = stage.as_ref()?.deployment_id.clone()?;
        let owner = self.target.owner.as_str();
        if let Some(d) = self.descriptions.lock().expect("lock").get(&id) {
            return d
                .as_deref()
                .and_then(|d| fingerprint_in_description(d, owner))
                .map(str::to_string);
        }
        match self
            .aws
            .deployment_description(&self.target.rest_api_id, &id)
            .await
        {
            Ok(d) => {
                let fp = d
                    .as_deref()
                    .and_then(|d| fingerprint_in_description(d, owner))
                    .map(str::to_string);
                self.descriptions.lock().expect("lock").insert(id, d);
                fp
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "could not read the stage's deployment; assuming it is behind");
                None
            }
        }
    }

    /// Creates one deployment of the API as it is now (`now`: as observed at
    /// the start of the pass, with this pass's changes applied) and points the
    /// stage at it.
    async fn make_deployment(
        &self,
        now: &ObservedApi,
        stage: &Option<ObservedStage>,
    ) -> Result<String, AwsError> {
        let t = &self.target;
        let description = deployment_description(now);
        let id = self
            .aws
            .create_deployment(&t.rest_api_id, &description)
            .await?;
        self.descriptions
            .lock()
            .expect("lock")
            .insert(id.clone(), Some(description));
        self.aws
            .point_stage(&t.rest_api_id, &t.stage, &id, stage.is_some())
            .await?;
        Ok(id)
    }
}

/// A pass whose deployment is blocked (by apimount, or refused by AWS):
/// the stage keeps its deployment, and the mounts in line wait for it with
/// the reason. It is not retried until something changes.
/// Whether any method of the API routes to an alias of apimount's releases.
fn api_has_release_aliases(api: &ObservedApi) -> bool {
    api.methods().any(|(_, _, m)| {
        m.function()
            .and_then(|f| f.qualifier)
            .is_some_and(|q| q.starts_with(crate::manifest::release::ALIAS_PREFIX))
    })
}

fn deploy_blocked(report: &mut PassReport, why: String) {
    report.deploy_pending = true;
    report.deploy_blocked = true;
    report.deploy_error = Some(format!("{}: {why}", Reason::DeployBlocked));
    for m in &mut report.mounts {
        if m.state == State::Ready {
            m.state = State::Progressing;
            m.problem = Some(Problem::new(Reason::DeployBlocked, why.clone()));
        }
    }
}

/// The mass-deletion guard's limit for each tenant (and for routes of no
/// tenant): a share of the mounts it manages, nothing when its folder holds
/// no manifest at all. Routes made before a policy count against the whole
/// source.
pub(crate) fn delete_limits(
    api: &ObservedApi,
    owner: &str,
    snap: &Snapshot,
    limit: &DeleteLimit,
) -> BTreeMap<Option<String>, usize> {
    let mut managed: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for id in managed_mounts(api, owner) {
        *managed.entry(id.tenant).or_default() += 1;
    }
    for tenant in snap.files_by_tenant.keys() {
        managed.entry(tenant.clone()).or_default();
    }
    managed
        .into_iter()
        .filter_map(|(tenant, n)| {
            let files = match (&tenant, &snap.tenancy) {
                (None, Some(_)) => snap.files,
                _ => snap.files_by_tenant.get(&tenant).copied().unwrap_or(0),
            };
            let limit = limit.allowed(n, files)?;
            Some((tenant, limit))
        })
        .collect()
}

/// Routes served before the pass (methods of this owner), still wanted by a
/// mount the plan applies, that have no method now.
fn lost_routes(
    observed: &ObservedApi,
    now: &ObservedApi,
    owner: &str,
    plan: &Plan,
    desired: &Desired,
) -> Vec<(String, String)> {
    let mut lost = Vec::new();
    for (mp, d) in plan.mounts.iter().zip(&desired.mounts) {
        if !matches!(mp.action, MountAction::Apply(_)) {
            continue;
        }
        // The CORS preflight is a route too.
        let preflight = d.mount.cors.is_some().then_some(HttpMethod::Options);
        for route in plan::routes(&d.mount) {
            for verb in d.mount.methods.iter().chain(&preflight) {
                let had = observed
                    .get(&route.0)
                    .and_then(|r| r.methods.get(verb.as_str()))
                    .is_some_and(|m| m.ownership().is(owner));
                let has = now
                    .get(&route.0)
                    .is_some_and(|r| r.methods.contains_key(verb.as_str()));
                if had && !has {
                    lost.push((route.0.clone(), verb.as_str().to_string()));
                }
            }
        }
    }
    lost
}

/// Puts the methods a failed mount touched back to their observed shape (see
/// `Executor::roll_back`); the note says how that went, when there was
/// anything to do.
async fn roll_back(
    exec: &mut Executor<'_>,
    observed: &ObservedApi,
    mount: &MountId,
    changes: &[plan::Change],
) -> Option<String> {
    use plan::Change;
    let keys: BTreeSet<(String, HttpMethod)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::PutMethod { path, verb, .. }
            | Change::ReplaceMethod { path, verb, .. }
            | Change::PutIntegration { path, verb, .. } => Some((path.clone(), *verb)),
            Change::PutPreflight { path, .. } => Some((path.clone(), HttpMethod::Options)),
            Change::DeleteMethod { path, verb } => {
                HttpMethod::parse(verb).map(|v| (path.clone(), v))
            }
            _ => None,
        })
        .filter(|(path, verb)| {
            let was = observed
                .get(path)
                .and_then(|r| r.methods.get(verb.as_str()));
            let now = exec
                .api
                .get(path)
                .and_then(|r| r.methods.get(verb.as_str()));
            was != now
        })
        .collect();
    if keys.is_empty() {
        return None;
    }
    let problems = exec.roll_back(&keys, observed).await;
    if problems.is_empty() {
        tracing::info!(mount = %mount, methods = keys.len(), "rolled the failed mount back to its observed shape");
        return Some(format!(
            "mount '{mount}' failed and was rolled back to its shape before the pass"
        ));
    }
    let first = &problems[0];
    Some(format!(
        "mount '{mount}' failed and could not be rolled back entirely ({first}); methods left without an integration are removed before deploying"
    ))
}

/// AWS refuses a deployment of an API without methods, so the stage keeps
/// serving its last deployment: say so, do not pretend.
fn empty_api() -> AwsError {
    AwsError::local(
        "apigateway:CreateDeployment",
        AwsErrorKind::BadRequest,
        "the API has no methods left, and API Gateway cannot deploy an empty API: the stage still serves its last deployment. Add a route (any mount) or delete the stage by hand",
    )
}
