//! One reconcile pass: observe the gateway, plan, apply, deploy.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::aws::{Aws, AwsError, AwsErrorKind, StageInfo};
use crate::journal;
use crate::manifest::{self, ErrorKind, FunctionRef, ManifestError, Mount};
use crate::model::{
    deployment_description, fingerprint_in_description, is_statement_of, owner_fingerprint,
    ObservedApi, Ownership, PolicyStatement, ResolvedFunction,
};
use crate::plan::{self, Change, DesiredMount, MountAction, Plan, PlanInput};
use crate::settings::Target;
use crate::source::Snapshot;
use crate::status::{Problem, Reason, State};

/// Which Lambda functions a pass reads (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Every function and its policy: one-shot commands, the daemon's first
    /// pass, resyncs and retries.
    All,
    /// Only functions no earlier pass has read, or whose policy change
    /// failed since (so what it holds is unknown).
    Changed,
}

impl Reads {
    pub fn as_str(self) -> &'static str {
        match self {
            Reads::All => "all",
            Reads::Changed => "changed",
        }
    }
}

/// Plan only, or plan and apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
}

/// The outcome of one change.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    pub change: Change,
    pub error: Option<String>,
}

/// What a pass did (or would do) for one mount.
#[derive(Debug, Clone)]
pub struct MountReport {
    pub name: String,
    pub path: String,
    pub function: String,
    pub file: String,
    pub state: State,
    pub problem: Option<Problem>,
    pub changes: Vec<ChangeOutcome>,
}

/// A whole pass.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub revision: String,
    pub mounts: Vec<MountReport>,
    /// Manifest problems (invalid files and losing duplicates).
    pub invalid: Vec<ManifestError>,
    /// Removal of orphaned routes, by former mount name (None: leftover statements).
    pub cleanups: Vec<(Option<String>, Vec<ChangeOutcome>)>,
    pub after_deploy: Vec<ChangeOutcome>,
    /// Id of the deployment made by this pass.
    pub deployment: Option<String>,
    /// The stage would be (plan) or could not be (apply) redeployed.
    pub deploy_pending: bool,
    pub deploy_error: Option<String>,
    pub notes: Vec<String>,
    /// The pass could not run at all (the API could not be read).
    pub fatal: Option<String>,
    pub fatal_reason: Option<Reason>,
    pub duration: Duration,
    /// The gateway as observed (plan mode only), for `status --tree`.
    pub api: Option<ObservedApi>,
}

impl PassReport {
    pub fn all_changes(&self) -> impl Iterator<Item = &ChangeOutcome> {
        self.mounts
            .iter()
            .flat_map(|m| m.changes.iter())
            .chain(self.cleanups.iter().flat_map(|(_, c)| c.iter()))
            .chain(self.after_deploy.iter())
    }

    /// Changes made (apply) or pending (plan), without errors.
    pub fn change_count(&self) -> usize {
        self.all_changes().filter(|c| c.error.is_none()).count()
    }

    pub fn failed_changes(&self) -> usize {
        self.all_changes().filter(|c| c.error.is_some()).count()
    }

    /// Whether everything valid is in line (apply) and deployed.
    pub fn converged(&self) -> bool {
        self.fatal.is_none()
            && self.deploy_error.is_none()
            && self.failed_changes() == 0
            && self.mounts.iter().all(|m| m.state == State::Ready)
    }
}

/// A resolved function (or why it cannot be mounted) and its resource policy
/// (`None` when it could not be read).
type Inspected = (Result<ResolvedFunction, Problem>, Option<KnownPolicy>);

/// A function's resource policy reduced to what a pass uses: this owner's
/// statements for this API, and how many statements the policy has in all
/// (for the policy-size warning). Statements of other APIs and tools are not
/// kept: a function shared widely can carry hundreds of them.
#[derive(Debug, Clone)]
struct KnownPolicy {
    ours: Vec<PolicyStatement>,
    total: usize,
}

impl KnownPolicy {
    fn of(statements: Vec<PolicyStatement>, api_id: &str, owner: &str) -> KnownPolicy {
        let total = statements.len();
        let ours = statements
            .into_iter()
            .filter(|s| is_statement_of(&s.sid, api_id, owner))
            .collect();
        KnownPolicy { ours, total }
    }

    /// Adds (or resets) a statement of ours, as a successful change did.
    fn put(&mut self, statement: PolicyStatement) {
        self.remove(&statement.sid);
        self.ours.push(statement);
        self.total += 1;
    }

    fn remove(&mut self, sid: &str) {
        let before = self.ours.len();
        self.ours.retain(|s| s.sid != sid);
        self.total -= before - self.ours.len();
    }
}

/// The policies a plan works from, by function ARN: this owner's statements
/// (`None` where the policy could not be read), and each policy's size.
#[derive(Default)]
struct Policies {
    ours: BTreeMap<String, Option<Vec<PolicyStatement>>>,
    counts: BTreeMap<String, usize>,
}

impl Policies {
    /// Keeps the first policy seen for a function.
    fn keep(&mut self, arn: String, policy: Option<KnownPolicy>) {
        if self.ours.contains_key(&arn) {
            return;
        }
        if let Some(p) = &policy {
            self.counts.insert(arn.clone(), p.total);
        }
        self.ours.insert(arn, policy.map(|p| p.ours));
    }
}

/// Reconciles one API for one owner. Remembers deployment descriptions (they
/// never change) and, for the daemon's passes after a manifest change, what
/// the last reads found of the functions (see [`Reads`]).
pub struct Reconciler {
    aws: Aws,
    target: Target,
    descriptions: Mutex<HashMap<String, Option<String>>>,
    /// Functions as the last read saw them: the resolved function and its
    /// policy statements, updated with each permission change made since.
    /// Emptied by every [`Reads::All`] pass; an entry goes when a change to
    /// that function's policy fails.
    functions: Mutex<BTreeMap<FunctionRef, (ResolvedFunction, KnownPolicy)>>,
    /// Set on shutdown: the pass stops before its next change.
    stop: Arc<AtomicBool>,
}

fn problem_from(e: &AwsError, what: &str) -> Problem {
    let reason = match e.kind {
        AwsErrorKind::AccessDenied => Reason::AccessDenied,
        AwsErrorKind::Throttled => Reason::Throttled,
        AwsErrorKind::LimitExceeded => Reason::LimitExceeded,
        _ => Reason::AwsError,
    };
    let hint = match e.kind {
        AwsErrorKind::AccessDenied => {
            " (grant apimount this action; see the IAM policy in the README)"
        }
        _ => "",
    };
    Problem::new(reason, format!("{what}: {e}{hint}"))
}

impl Reconciler {
    pub fn new(aws: Aws, target: Target) -> Reconciler {
        Reconciler {
            aws,
            target,
            descriptions: Mutex::new(HashMap::new()),
            functions: Mutex::new(BTreeMap::new()),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag that, once set, makes the running pass stop at the next safe
    /// point: between two AWS calls. Every call leaves the gateway in a state
    /// the next pass understands (a method is created with its owner marker
    /// in the same call), so any such point is safe.
    pub fn stopper(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs one pass over a snapshot of the manifests, reading everything.
    pub async fn pass(&self, snap: &Snapshot, mode: Mode) -> PassReport {
        self.pass_with(snap, mode, Reads::All).await
    }

    /// Runs one pass, reading the functions `reads` says.
    pub async fn pass_with(&self, snap: &Snapshot, mode: Mode, reads: Reads) -> PassReport {
        let started = Instant::now();
        let mut report = PassReport {
            revision: snap.revision.clone(),
            invalid: snap.errors.clone(),
            ..PassReport::default()
        };
        self.run(snap, mode, reads, &mut report).await;
        self.remember_writes(&report);
        report.duration = started.elapsed();
        report
    }

    /// Brings the remembered policies up to date with this pass's permission
    /// changes; a function whose change failed is forgotten, since what it
    /// holds now is unknown.
    fn remember_writes(&self, report: &PassReport) {
        // By function first: a first pass makes thousands of permission changes.
        let mut by_function: BTreeMap<&str, Vec<&ChangeOutcome>> = BTreeMap::new();
        for outcome in report.all_changes() {
            if let Change::AddPermission { function, .. }
            | Change::ReplacePermission { function, .. }
            | Change::RemovePermission { function, .. } = &outcome.change
            {
                by_function.entry(function).or_default().push(outcome);
            }
        }
        if by_function.is_empty() {
            return;
        }
        self.functions
            .lock()
            .expect("lock")
            .retain(|_, (f, policy)| {
                let Some(outcomes) = by_function.get(f.arn().as_str()) else {
                    return true;
                };
                for outcome in outcomes {
                    if outcome.error.is_some() {
                        return false;
                    }
                    match &outcome.change {
                        Change::AddPermission {
                            function,
                            sid,
                            source_arn,
                        }
                        | Change::ReplacePermission {
                            function,
                            sid,
                            source_arn,
                        } => policy.put(PolicyStatement::invoke_from(sid, source_arn, function)),
                        Change::RemovePermission { sid, .. } => policy.remove(sid),
                        _ => {}
                    }
                }
                true
            });
    }

    /// A function's resolution and policy: from the last read when `reads`
    /// allows and there is one, else read now (and remembered when it worked).
    async fn inspect_with(&self, f: &FunctionRef, reads: Reads) -> Inspected {
        if reads == Reads::Changed {
            if let Some((resolved, policy)) = self.functions.lock().expect("lock").get(f) {
                return (Ok(resolved.clone()), Some(policy.clone()));
            }
        }
        let (resolved, policy) = self.inspect(f).await;
        if let (Ok(resolved), Some(policy)) = (&resolved, &policy) {
            self.functions
                .lock()
                .expect("lock")
                .insert(f.clone(), (resolved.clone(), policy.clone()));
        }
        (resolved, policy)
    }

    async fn run(&self, snap: &Snapshot, mode: Mode, reads: Reads, report: &mut PassReport) {
        let t = &self.target;
        if reads == Reads::All {
            self.functions.lock().expect("lock").clear();
        }
        // The API, the stage and every function (with its policy) are read at
        // once: none of the reads depends on another.
        let refs: BTreeSet<&FunctionRef> = snap.mounts.iter().map(|m| &m.function).collect();
        let functions = stream::iter(refs)
            .map(|f| async move { (f, self.inspect_with(f, reads).await) })
            .buffered(4)
            .collect::<BTreeMap<&FunctionRef, Inspected>>();
        let (api, stage, inspected) = tokio::join!(
            self.aws.observe_api(&t.rest_api_id),
            self.aws.get_stage(&t.rest_api_id, &t.stage),
            functions
        );
        let api = match api {
            Ok(a) => a,
            Err(e) => return fatal(report, &e, "reading the REST API"),
        };
        if api.get("/").is_none() {
            report.fatal = Some(format!(
                "REST API {} has no root resource; is the id right?",
                t.rest_api_id
            ));
            report.fatal_reason = Some(Reason::AwsError);
            return;
        }
        let stage = match stage {
            Ok(s) => s,
            Err(e) => return fatal(report, &e, "reading the stage"),
        };

        // Duplicates: the incumbent (live) manifest keeps its name and path.
        let owner = t.owner.as_str();
        let incumbent = |m: &Mount| {
            api.get(m.path.as_str()).is_some_and(|r| {
                r.methods
                    .values()
                    .any(|x| x.ownership().is_mount(owner, &m.name))
            })
        };
        let dups = manifest::find_duplicates(&snap.mounts, &incumbent);
        let losers: BTreeSet<usize> = dups.iter().map(|d| d.loser).collect();
        let mut retained = snap.retained.clone();
        for d in &dups {
            report
                .invalid
                .push(manifest::duplicate_error(&snap.mounts, d));
            let loser = &snap.mounts[d.loser];
            if loser.name != snap.mounts[d.winner].name {
                retained.insert(loser.name.clone());
            }
        }
        let valid: Vec<&Mount> = snap
            .mounts
            .iter()
            .enumerate()
            .filter(|(i, _)| !losers.contains(i))
            .map(|(_, m)| m)
            .collect();

        let desired: Vec<DesiredMount> = valid
            .iter()
            .map(|m| DesiredMount {
                mount: (*m).clone(),
                function: inspected[&m.function].0.clone(),
            })
            .collect();
        // Moved, not copied: with a thousand functions a second copy of
        // every policy is megabytes that stay resident.
        let mut policies = Policies::default();
        let wanted: BTreeSet<&FunctionRef> = valid.iter().map(|m| &m.function).collect();
        for (f, (resolved, policy)) in inspected {
            if let (true, Ok(resolved)) = (wanted.contains(f), resolved) {
                policies.keep(resolved.arn(), policy);
            }
        }

        // Policies of functions only this owner's existing routes name.
        let mut others: BTreeMap<String, ResolvedFunction> = BTreeMap::new();
        for (_, _, m) in api.methods() {
            if !m.ownership().is(owner) {
                continue;
            }
            if let Some(f) = m
                .integration
                .as_ref()
                .and_then(|i| i.uri.as_deref())
                .and_then(ResolvedFunction::from_integration_uri)
            {
                if !policies.ours.contains_key(&f.arn()) {
                    others.entry(f.arn()).or_insert(f);
                }
            }
        }
        let fetched: Vec<(String, Option<KnownPolicy>)> = stream::iter(others)
            .map(|(arn, f)| async move {
                match self.aws.get_policy(&f).await {
                    Ok(p) => (arn, Some(KnownPolicy::of(p, &t.rest_api_id, owner))),
                    Err(e) => {
                        tracing::warn!(function = %arn, error = %e, "could not read the function's resource policy");
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

        // What an interrupted pass of this owner left (see `journal`).
        let journal_key = journal::key(owner);
        let journaled: BTreeSet<String> = stage
            .as_ref()
            .and_then(|s| s.tags.get(&journal_key))
            .map(|v| journal::decode(v))
            .unwrap_or_default();
        let abandoned = journal::abandoned(&api, &journaled);
        if !abandoned.is_empty() {
            tracing::info!(paths = ?abandoned, "an interrupted pass left method-less resources");
        }
        let input = PlanInput {
            owner,
            api_id: &t.rest_api_id,
            region: &t.region,
            api: &api,
            mounts: &desired,
            retained: &retained,
            hold_orphans: snap.hold_orphans,
            policies: &policies.ours,
            delete_limit: t
                .delete_limit
                .allowed(managed_mounts(&api, owner), snap.files),
            abandoned: &abandoned,
        };
        let plan = plan::plan(&input);
        report.notes.extend(plan.notes.iter().cloned());
        report
            .notes
            .extend(quota_warnings(&api, &plan, &policies.counts));

        let deployed_fp = self.deployed_fingerprint(&stage).await;
        let start_fp = owner_fingerprint(&api, owner);
        let stage_behind = stage_is_behind(&stage, deployed_fp.as_deref(), &start_fp, &api, owner);

        if mode == Mode::Plan {
            fill_plan_report(report, &plan, &desired);
            report.api = Some(api.clone());
            report.deploy_pending = stage_behind || plan.changes().any(|c| c.alters_routes(&api));
            return;
        }

        // Apply, journaling what a crash could leave method-less.
        let groups = plan
            .mounts
            .iter()
            .filter_map(|mp| match &mp.action {
                MountAction::Apply(changes) => Some(changes.as_slice()),
                MountAction::Blocked(_) => None,
            })
            .chain(plan.cleanups.iter().map(|c| c.changes.as_slice()));
        let needs: Vec<BTreeSet<String>> = groups.map(|g| journal::at_risk(&api, g)).collect();
        let mut exec = Executor {
            aws: &self.aws,
            api_id: &t.rest_api_id,
            api: api.clone(),
            wrote_routes: false,
            stop: &self.stop,
            journal: Journal {
                stage: stage.is_some().then_some(t.stage.as_str()),
                key: journal_key,
                chunks: journal::chunks(&needs),
                next_group: 0,
                in_force: journaled,
            },
        };
        let mut lane = PermissionLane::default();
        for (mp, d) in plan.mounts.iter().zip(&desired) {
            let mut mr = mount_report(&d.mount, &d.function);
            match &mp.action {
                MountAction::Blocked(p) => {
                    mr.state = State::Failed;
                    mr.problem = Some(p.clone());
                }
                MountAction::Apply(changes) => {
                    let (outcomes, problem) = self
                        .apply_mount(&mut exec, &mut lane, &mut report.mounts, changes)
                        .await;
                    mr.changes = outcomes;
                    if let Some(p) = problem {
                        mr.state = State::Failed;
                        mr.problem = Some(p);
                    }
                }
            }
            report.mounts.push(mr);
        }
        // Cleanups remove statements too: one writer per policy at a time.
        lane.finish(&mut report.mounts).await;
        for c in &plan.cleanups {
            let (outcomes, problem) = exec.run_group(&c.changes).await;
            if let Some(p) = problem {
                report.notes.push(format!(
                    "removing {} did not finish: {p}; the next pass tries again",
                    c.mount
                        .as_deref()
                        .map(|m| format!("mount '{m}'"))
                        .unwrap_or_else(|| "leftovers".into())
                ));
            }
            report.cleanups.push((c.mount.clone(), outcomes));
        }

        // Deploy if what the stage serves is behind this owner's routes. On
        // shutdown the next start deploys instead (the fingerprint tells it).
        let needs_deploy =
            (exec.wrote_routes || stage_behind) && !self.stop.load(Ordering::Relaxed);
        // The journal is settled beside the deployment: they do not depend
        // on each other.
        let deployed = async {
            if needs_deploy {
                Some(
                    self.deploy(&exec.api, exec.wrote_routes, &stage, deployed_fp.as_deref())
                        .await,
                )
            } else {
                None
            }
        };
        let (deployed, ()) = tokio::join!(deployed, exec.settle_journal());
        if let Some(deployed) = deployed {
            match deployed {
                Ok(id) => report.deployment = id,
                Err(e) => {
                    report.deploy_pending = true;
                    report.deploy_error = Some(e.to_string());
                    for m in &mut report.mounts {
                        if m.state == State::Ready {
                            m.state = State::Progressing;
                            m.problem = Some(problem_from(&e, "deploying the stage"));
                        }
                    }
                }
            }
        }
        // Statements only the old deployment needed.
        if report.deploy_error.is_none() && !plan.after_deploy.is_empty() {
            let (outcomes, problem) = exec.run_all(&plan.after_deploy).await;
            if let Some(p) = problem {
                report
                    .notes
                    .push(format!("removing stale permissions did not finish: {p}"));
            }
            report.after_deploy = outcomes;
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
        changes: &[Change],
    ) -> Outcomes {
        let grants = changes.iter().rev().take_while(|c| c.is_grant()).count();
        let (head, grants) = changes.split_at(changes.len() - grants);
        let gate = head
            .iter()
            .position(|c| matches!(c, Change::PutIntegration { .. }))
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

    /// Resolves one function reference and reads its resource policy.
    async fn inspect(&self, f: &FunctionRef) -> Inspected {
        let (resolved, statements) = match self.aws.inspect_function(f).await {
            Ok(x) => x,
            Err(e) if e.kind == AwsErrorKind::NotFound => {
                let problem = Problem::new(
                    Reason::FunctionNotFound,
                    format!(
                        "Lambda function '{f}' does not exist in {} (as seen with the current credentials)",
                        self.target.region
                    ),
                );
                return (Err(problem), None);
            }
            Err(e) if e.operation == "lambda:GetPolicy" => {
                // The function may be fine; only its policy is unreadable.
                tracing::warn!(function = %f, error = %e, "could not read the function's resource policy");
                return match self.aws.resolve_function(f).await {
                    Ok(r) => (self.check_region(f, r), None),
                    Err(e) => (Err(problem_from(&e, "resolving the function")), None),
                };
            }
            Err(e) => return (Err(problem_from(&e, "resolving the function")), None),
        };
        let policy = KnownPolicy::of(statements, &self.target.rest_api_id, &self.target.owner);
        (self.check_region(f, resolved), Some(policy))
    }

    /// A function must live in the API's region and partition.
    fn check_region(
        &self,
        f: &FunctionRef,
        r: ResolvedFunction,
    ) -> Result<ResolvedFunction, Problem> {
        if r.region != self.target.region {
            return Err(Problem::new(
                Reason::FunctionNotFound,
                format!(
                    "function {} is in region {}, but the API is in {}; mount a function of the API's region",
                    r.arn(),
                    r.region,
                    self.target.region
                ),
            ));
        }
        if let FunctionRef::Arn { partition, .. } = f {
            if partition != &r.partition {
                return Err(Problem::new(
                    Reason::FunctionNotFound,
                    format!(
                        "function ARN is in partition {partition}, but the API is in {}",
                        r.partition
                    ),
                ));
            }
        }
        Ok(r)
    }

    /// The fingerprint of this owner's routes in the deployment the stage serves.
    async fn deployed_fingerprint(&self, stage: &Option<StageInfo>) -> Option<String> {
        let id = stage.as_ref()?.deployment_id.clone()?;
        if let Some(d) = self.descriptions.lock().expect("lock").get(&id) {
            return d
                .as_deref()
                .and_then(|d| fingerprint_in_description(d, &self.target.owner))
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
                    .and_then(|d| fingerprint_in_description(d, &self.target.owner))
                    .map(str::to_string);
                self.descriptions.lock().expect("lock").insert(id, d);
                fp
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the stage's deployment; assuming it is behind");
                None
            }
        }
    }

    /// Creates one deployment of the API as it is now (`now`: as observed at
    /// the start of the pass, with this pass's changes applied) and points the
    /// stage at it.
    async fn deploy(
        &self,
        now: &ObservedApi,
        changed: bool,
        stage: &Option<StageInfo>,
        deployed_fp: Option<&str>,
    ) -> Result<Option<String>, AwsError> {
        let t = &self.target;
        let fp = owner_fingerprint(now, &t.owner);
        // Without changes in this pass, deploy only if the stage is behind.
        if !changed && stage.is_some() && deployed_fp == Some(fp.as_str()) {
            return Ok(None);
        }
        let has_methods = now.methods().next().is_some();
        if !has_methods {
            // AWS refuses a deployment of an API without methods, so the stage
            // keeps serving its last deployment: say so, do not pretend.
            return Err(AwsError {
                operation: "apigateway:CreateDeployment",
                kind: AwsErrorKind::BadRequest,
                code: None,
                message: "the API has no methods left, and API Gateway cannot deploy an empty API: the stage still serves its last deployment. Add a route (any mount) or delete the stage by hand".into(),
            });
        }
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
        Ok(Some(id))
    }
}

/// Whether the stage serves something other than this owner's current routes.
fn stage_is_behind(
    stage: &Option<StageInfo>,
    deployed_fp: Option<&str>,
    current_fp: &str,
    api: &ObservedApi,
    owner: &str,
) -> bool {
    let has_routes = api.methods().any(|(_, _, m)| m.ownership().is(owner));
    match stage {
        None => has_routes,
        Some(_) => match deployed_fp {
            Some(fp) => fp != current_fp,
            // A deployment that does not mention us: behind if we have routes.
            None => has_routes,
        },
    }
}

fn fatal(report: &mut PassReport, e: &AwsError, what: &str) {
    let p = problem_from(e, what);
    report.fatal = Some(p.message);
    report.fatal_reason = Some(p.reason);
}

fn mount_report(m: &Mount, f: &Result<ResolvedFunction, Problem>) -> MountReport {
    MountReport {
        name: m.name.clone(),
        path: m.path.to_string(),
        function: match f {
            Ok(f) => f.arn(),
            Err(_) => m.function.to_string(),
        },
        file: m.file.display().to_string(),
        state: State::Ready,
        problem: None,
        changes: Vec::new(),
    }
}

fn fill_plan_report(report: &mut PassReport, plan: &Plan, desired: &[DesiredMount]) {
    let pending = |c: &Change| ChangeOutcome {
        change: c.clone(),
        error: None,
    };
    for (mp, d) in plan.mounts.iter().zip(desired) {
        let mut mr = mount_report(&d.mount, &d.function);
        match &mp.action {
            MountAction::Blocked(p) => {
                mr.state = State::Failed;
                mr.problem = Some(p.clone());
            }
            MountAction::Apply(changes) => {
                if !changes.is_empty() {
                    mr.state = State::Progressing;
                }
                mr.changes = changes.iter().map(pending).collect();
            }
        }
        report.mounts.push(mr);
    }
    for c in &plan.cleanups {
        report
            .cleanups
            .push((c.mount.clone(), c.changes.iter().map(pending).collect()));
    }
    report.after_deploy = plan.after_deploy.iter().map(pending).collect();
}

/// Applies changes, keeping a model of the API current: its resource ids
/// serve later changes, and its state is what the deployment records.
struct Executor<'a> {
    aws: &'a Aws,
    api_id: &'a str,
    api: ObservedApi,
    /// Whether any change altered what a deployment would contain.
    wrote_routes: bool,
    stop: &'a AtomicBool,
    journal: Journal<'a>,
}

/// The executor's side of the in-flight journal (see `journal`).
struct Journal<'a> {
    /// The stage to tag; `None` before the stage exists.
    stage: Option<&'a str>,
    key: String,
    /// Per group, in execution order: the chunk to write before it runs.
    chunks: Vec<Option<BTreeSet<String>>>,
    next_group: usize,
    /// The hashes the tag holds now.
    in_force: BTreeSet<String>,
}

impl Executor<'_> {
    /// Runs one group of changes (a mount, a removal), journaling first when
    /// the group starts a new chunk.
    async fn run_group(&mut self, changes: &[Change]) -> Outcomes {
        let group = self.journal.next_group;
        self.journal.next_group += 1;
        let chunk = self.journal.chunks.get_mut(group).and_then(Option::take);
        if let (Some(mut chunk), Some(stage)) = (chunk, self.journal.stage) {
            // Keep what earlier groups left method-less (a failed change).
            let left = journal::abandoned(&self.api, &self.journal.in_force);
            for path in left {
                if chunk.len() < journal::CAPACITY {
                    chunk.insert(journal::path_hash(&path));
                }
            }
            if chunk != self.journal.in_force && !self.stop.load(Ordering::Relaxed) {
                match self
                    .aws
                    .tag_stage(
                        self.api_id,
                        stage,
                        &self.journal.key,
                        &journal::encode(&chunk),
                    )
                    .await
                {
                    Ok(()) => {
                        self.journal.in_force = chunk;
                    }
                    // Going on is safe: at worst a crash now leaves an empty
                    // resource behind, never a deleted route.
                    Err(e) => {
                        tracing::warn!(error = %e, "could not write the in-flight journal (stage tag)")
                    }
                }
            }
        }
        self.run_all(changes).await
    }

    /// Ends the journal: removes the tag when nothing it names is left
    /// method-less, or narrows it to what is.
    async fn settle_journal(&self) {
        let Some(stage) = self.journal.stage else {
            return;
        };
        if self.journal.in_force.is_empty() {
            return;
        }
        let left: BTreeSet<String> = journal::abandoned(&self.api, &self.journal.in_force)
            .iter()
            .map(|p| journal::path_hash(p))
            .collect();
        let result = if left.is_empty() {
            self.aws
                .untag_stage(self.api_id, stage, &self.journal.key)
                .await
        } else if left != self.journal.in_force {
            self.aws
                .tag_stage(
                    self.api_id,
                    stage,
                    &self.journal.key,
                    &journal::encode(&left),
                )
                .await
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not update the in-flight journal (stage tag)");
        }
    }

    /// Runs changes in order; stops at the first failure (later changes of the
    /// same mount depend on earlier ones) and reports it as the mount's problem.
    async fn run_all(&mut self, changes: &[Change]) -> Outcomes {
        let mut seq = InOrder::new(changes);
        while let Some(c) = seq.next(self.stop) {
            let alters_routes = c.alters_routes(&self.api);
            let result = self.run(c).await;
            if result.is_ok() {
                c.apply_to(&mut self.api);
                self.wrote_routes |= alters_routes;
            }
            seq.record(result);
        }
        seq.finish()
    }

    /// Records a resource that exists on AWS with its id.
    fn record_resource(&mut self, path: &str, id: String) {
        Change::CreateResource {
            path: path.to_string(),
        }
        .apply_to(&mut self.api);
        if let Some(r) = self.api.resources.get_mut(path) {
            r.id = id;
        }
    }

    /// The id of a resource, creating it (and missing parents) when absent.
    async fn ensure_path(&mut self, path: &str) -> Result<String, Problem> {
        if let Some(r) = self.api.get(path) {
            return Ok(r.id.clone());
        }
        let (parent, part) = path.rsplit_once('/').expect("absolute path");
        let parent = if parent.is_empty() { "/" } else { parent };
        let parent_id = Box::pin(self.ensure_path(parent)).await?;
        match self
            .aws
            .create_resource(self.api_id, &parent_id, part)
            .await
        {
            Ok(id) => {
                tracing::info!(path, "created resource");
                self.record_resource(path, id.clone());
                Ok(id)
            }
            Err(e) if e.kind == AwsErrorKind::Conflict => {
                // Someone created it since we looked: use theirs.
                let api = self
                    .aws
                    .observe_api(self.api_id)
                    .await
                    .map_err(|e| problem_from(&e, "re-reading the API"))?;
                match api.get(path) {
                    Some(r) => {
                        self.record_resource(path, r.id.clone());
                        Ok(r.id.clone())
                    }
                    None => Err(problem_from(&e, &format!("creating resource {path}"))),
                }
            }
            Err(e) => Err(problem_from(&e, &format!("creating resource {path}"))),
        }
    }

    fn id_of(&self, path: &str) -> Result<String, Problem> {
        self.api.get(path).map(|r| r.id.clone()).ok_or_else(|| {
            Problem::new(
                Reason::AwsError,
                format!("resource {path} disappeared during the pass"),
            )
        })
    }

    async fn run(&mut self, c: &Change) -> Result<(), Problem> {
        let api_id = self.api_id;
        match c {
            Change::CreateResource { path } => {
                self.ensure_path(path).await?;
            }
            Change::PutMethod {
                path,
                verb,
                settings,
            } => {
                let id = self.ensure_path(path).await?;
                self.aws
                    .put_method(api_id, &id, *verb, settings)
                    .await
                    .map_err(|e| problem_from(&e, &format!("creating {verb} {path}")))?;
            }
            Change::ReplaceMethod {
                path,
                verb,
                settings,
                ..
            } => {
                let id = self.id_of(path)?;
                self.aws
                    .delete_method(api_id, &id, verb.as_str())
                    .await
                    .map_err(|e| problem_from(&e, &format!("replacing {verb} {path}")))?;
                self.aws
                    .put_method(api_id, &id, *verb, settings)
                    .await
                    .map_err(|e| problem_from(&e, &format!("replacing {verb} {path}")))?;
            }
            Change::PutIntegration {
                path, verb, uri, ..
            } => {
                let id = self.id_of(path)?;
                self.aws
                    .put_integration(api_id, &id, *verb, uri)
                    .await
                    .map_err(|e| problem_from(&e, &format!("integrating {verb} {path}")))?;
            }
            Change::AddPermission { .. }
            | Change::ReplacePermission { .. }
            | Change::RemovePermission { .. } => apply_permission(self.aws, c).await?,
            Change::DeleteMethod { path, verb } => {
                let id = self.id_of(path)?;
                self.aws
                    .delete_method(api_id, &id, verb)
                    .await
                    .map_err(|e| problem_from(&e, &format!("deleting {verb} {path}")))?;
            }
            Change::DeleteResource { path } => {
                if let Some(child) = self.api.descendants(path).first() {
                    return Err(Problem::new(
                        Reason::AwsError,
                        format!(
                            "{path} still has {} below it; it is kept for now",
                            child.path
                        ),
                    ));
                }
                let id = self.id_of(path)?;
                self.aws
                    .delete_resource(api_id, &id)
                    .await
                    .map_err(|e| problem_from(&e, &format!("deleting resource {path}")))?;
            }
        }
        Ok(())
    }
}

/// Outcomes for changes that were not tried, and why.
fn skipped(changes: &[Change], why: &str) -> Vec<ChangeOutcome> {
    changes
        .iter()
        .map(|c| ChangeOutcome {
            change: c.clone(),
            error: Some(why.into()),
        })
        .collect()
}

/// The bookkeeping of changes run one after another: each outcome is logged
/// and recorded; at the first failure, or on shutdown, the rest are marked
/// skipped and the failure becomes the problem.
struct InOrder<'c> {
    changes: &'c [Change],
    next: usize,
    out: Vec<ChangeOutcome>,
    problem: Option<Problem>,
}

impl<'c> InOrder<'c> {
    fn new(changes: &'c [Change]) -> InOrder<'c> {
        InOrder {
            changes,
            next: 0,
            out: Vec::with_capacity(changes.len()),
            problem: None,
        }
    }

    /// The next change to make, unless done, failed or shutting down.
    fn next(&mut self, stop: &AtomicBool) -> Option<&'c Change> {
        if self.problem.is_some() || self.next == self.changes.len() {
            return None;
        }
        if stop.load(Ordering::Relaxed) {
            self.out.extend(skipped(
                &self.changes[self.next..],
                "skipped: shutting down",
            ));
            self.problem = Some(Problem::new(Reason::AwsError, "interrupted by shutdown"));
            return None;
        }
        self.next += 1;
        Some(&self.changes[self.next - 1])
    }

    /// Records how the change [`InOrder::next`] gave went.
    fn record(&mut self, result: Result<(), Problem>) {
        let c = &self.changes[self.next - 1];
        match result {
            Ok(()) => {
                tracing::info!(change = %c, "applied");
                self.out.push(ChangeOutcome {
                    change: c.clone(),
                    error: None,
                });
            }
            Err(p) => {
                tracing::warn!(change = %c, error = %p, "change failed");
                self.out.push(ChangeOutcome {
                    change: c.clone(),
                    error: Some(p.to_string()),
                });
                self.out.extend(skipped(
                    &self.changes[self.next..],
                    "skipped: an earlier change of this mount failed",
                ));
                self.problem = Some(p);
            }
        }
    }

    fn finish(self) -> Outcomes {
        (self.out, self.problem)
    }
}

/// Makes one change to a function's resource policy.
async fn apply_permission(aws: &Aws, c: &Change) -> Result<(), Problem> {
    let function = |arn: &str| {
        ResolvedFunction::from_arn(arn)
            .ok_or_else(|| Problem::new(Reason::AwsError, format!("not a function ARN: {arn}")))
    };
    match c {
        Change::AddPermission {
            function: arn,
            sid,
            source_arn,
        } => {
            aws.add_permission(&function(arn)?, sid, source_arn)
                .await
                .map_err(|e| problem_from(&e, &format!("adding permission {sid}")))?;
        }
        Change::ReplacePermission {
            function: arn,
            sid,
            source_arn,
        } => {
            let f = function(arn)?;
            aws.remove_permission(&f, sid)
                .await
                .map_err(|e| problem_from(&e, &format!("resetting permission {sid}")))?;
            aws.add_permission(&f, sid, source_arn)
                .await
                .map_err(|e| problem_from(&e, &format!("resetting permission {sid}")))?;
        }
        Change::RemovePermission { function: arn, sid } => {
            aws.remove_permission(&function(arn)?, sid)
                .await
                .map_err(|e| problem_from(&e, &format!("removing permission {sid}")))?;
        }
        other => unreachable!("not a permission change: {other}"),
    }
    Ok(())
}

type Outcomes = (Vec<ChangeOutcome>, Option<Problem>);

/// At most one mount's permissions in flight beside the API Gateway calls.
/// One at a time, so that two writes never race on one function's policy.
#[derive(Default)]
struct PermissionLane {
    /// The mount report the running grants belong to, and the task.
    running: Option<(usize, tokio::task::JoinHandle<Outcomes>)>,
}

impl PermissionLane {
    /// Starts `grants` (for the mount whose report will be at `report`) in
    /// the background, in order, stopping at the first failure.
    fn start(&mut self, report: usize, aws: &Aws, stop: &Arc<AtomicBool>, grants: &[Change]) {
        debug_assert!(self.running.is_none(), "finish the previous grants first");
        let (aws, stop, grants) = (aws.clone(), stop.clone(), grants.to_vec());
        let task = tokio::spawn(async move {
            let mut seq = InOrder::new(&grants);
            while let Some(c) = seq.next(&stop) {
                let result = apply_permission(&aws, c).await;
                seq.record(result);
            }
            seq.finish()
        });
        self.running = Some((report, task));
    }

    /// Waits for the running grants and adds their outcomes to their mount.
    async fn finish(&mut self, reports: &mut [MountReport]) {
        let Some((index, task)) = self.running.take() else {
            return;
        };
        let (outcomes, problem) = task.await.unwrap_or_else(|e| {
            let p = Problem::new(Reason::AwsError, format!("permission task failed: {e}"));
            (Vec::new(), Some(p))
        });
        let mr = &mut reports[index];
        mr.changes.extend(outcomes);
        if let Some(p) = problem {
            if mr.problem.is_none() {
                mr.state = State::Failed;
                mr.problem = Some(p);
            }
        }
    }
}

/// Mount states from a report, for `status` and logs.
pub fn invalid_reason(e: &ManifestError) -> Reason {
    match e.kind {
        ErrorKind::Duplicate => Reason::DuplicateManifest,
        _ => Reason::InvalidManifest,
    }
}

/// Default per-API resource quota (raisable; CreateResource fails past it).
pub const RESOURCE_QUOTA: usize = 300;
/// Lambda's cap on one function's resource policy.
pub const POLICY_CAP_BYTES: usize = 20 * 1024;
/// A generous estimate of one permission statement's size in a policy.
const STATEMENT_BYTES: usize = 400;

/// Warnings before per-API and per-function limits are hit (at 90 % and 80 %).
fn quota_warnings(
    api: &ObservedApi,
    plan: &Plan,
    statement_counts: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut out = Vec::new();
    let creates = plan
        .changes()
        .filter(|c| matches!(c, Change::CreateResource { .. }))
        .count();
    let after = api.resources.len() + creates;
    if after * 10 >= RESOURCE_QUOTA * 9 {
        out.push(format!(
            "the API will have {after} resources; API Gateway's default quota is {RESOURCE_QUOTA} per API (ask AWS to raise it before CreateResource starts failing with LimitExceeded)"
        ));
    }
    for (function, &count) in statement_counts {
        let adds = plan
            .changes()
            .filter(|c| matches!(c, Change::AddPermission { function: f, .. } if f == function))
            .count();
        let estimate = (count + adds) * STATEMENT_BYTES;
        if estimate * 10 >= POLICY_CAP_BYTES * 8 {
            out.push(format!(
                "{function} will carry {} policy statements (about {} KB of Lambda's 20 KB policy cap); mount fewer routes on it or use one mount with proxy: true",
                count + adds,
                estimate / 1024
            ));
        }
    }
    out
}

/// How many distinct mounts `owner` has routes for.
fn managed_mounts(api: &ObservedApi, owner: &str) -> usize {
    api.methods()
        .filter_map(|(_, _, m)| match m.ownership() {
            Ownership::Apimount { owner: o, mount } if o == owner => Some(mount),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Route;

    fn statement_id(api: &str, owner: &str, path: &str) -> String {
        Route(path.to_string()).statement_id(api, owner)
    }

    fn statement(sid: &str) -> PolicyStatement {
        PolicyStatement::invoke_from(sid, "arn:aws:execute-api:r:1:api/*/*/x", "arn:f")
    }

    #[test]
    fn a_known_policy_keeps_only_this_owners_statements_and_counts_all() {
        let ours = statement_id("abc123", "team", "/x");
        let other_owner = statement_id("abc123", "other", "/x");
        let other_api = statement_id("zzz999", "team", "/x");
        let all = vec![
            statement(&ours),
            statement(&other_owner),
            statement(&other_api),
            statement("hand-made"),
        ];
        let mut p = KnownPolicy::of(all, "abc123", "team");
        assert_eq!(p.total, 4);
        assert_eq!(
            p.ours.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
            vec![ours.as_str()]
        );

        // Resetting a statement does not count it twice; adding and removing do.
        p.put(statement(&ours));
        assert_eq!((p.ours.len(), p.total), (1, 4));
        let second = statement_id("abc123", "team", "/y");
        p.put(statement(&second));
        assert_eq!((p.ours.len(), p.total), (2, 5));
        p.remove(&ours);
        p.remove(&ours);
        assert_eq!((p.ours.len(), p.total), (1, 4));
    }

    #[test]
    fn the_policy_size_warning_counts_every_statement_of_the_function() {
        let api = ObservedApi::default();
        let plan = Plan::default();
        // The fewest statements that reach 80 % of the cap.
        let near_cap = (POLICY_CAP_BYTES * 8).div_ceil(10 * STATEMENT_BYTES);
        let counts: BTreeMap<String, usize> = [
            ("arn:big".to_string(), near_cap),
            ("arn:small".to_string(), near_cap - 1),
        ]
        .into();
        let notes = quota_warnings(&api, &plan, &counts);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("arn:big will carry"), "{notes:?}");
    }
}
