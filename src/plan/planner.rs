//! The planner: [`plan()`] turns the desired mounts and the observed gateway
//! into the changes of one pass. The rules it enforces are in the
//! documentation of the `plan` module.
//!
//! It works in three steps: each desired mount is planned on its own
//! ([`Claims::plan_mount`]), which records what the mount claims; what this
//! owner has on the API that nothing claims or keeps is an orphan
//! ([`Claims::orphans`]); orphans are removed statements first, methods next,
//! resources last and deepest first ([`Claims::removals`]).

use std::collections::{BTreeMap, BTreeSet};

use super::admission;
use super::change::{short_uri, Change};
use super::conditions::{Problem, Reason};
use super::model::{
    MethodSettings, ObservedApi, ObservedIntegration, ObservedMethod, StageMethodSetting,
};
use super::names::{is_statement_of, marker, Ownership, Route};
use super::policy::PolicyStatement;
use super::route_options::Preflight;
use super::stage_settings::{self, route_keys, Holder};
use super::tenancy;
use super::throttle_limits::above_account_limit;
use super::{ancestors, routes, Cleanup, DesiredMount, MountAction, MountPlan, Plan, PlanInput};
use crate::manifest::tenants::{Tenant, TenantPolicy};
use crate::manifest::{Authorization, HttpMethod, Mount, MountId};

/// A permission statement: (function ARN, statement id).
type Statement = (String, String);
/// A method: (resource path, verb).
type MethodKey = (String, String);
/// Orphaned methods of this owner, by the mount in their marker.
type Orphans = BTreeMap<MountId, Vec<MethodKey>>;

/// Plans one pass. See the module documentation for the rules.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut claims = Claims::new(input);
    let mut plan = Plan::default();
    for (i, desired) in input.mounts.iter().enumerate() {
        let planned = claims.plan_mount(i, desired);
        plan.mounts.push(planned);
    }
    let orphans = claims.orphans(&mut plan.notes);
    let (cleanups, after_deploy) = claims.removals(&orphans);
    plan.cleanups = cleanups;
    plan.after_deploy = after_deploy;
    plan
}

/// What the mounts planned so far claim, and what must stay as it is: the
/// planner's bookkeeping between its steps.
struct Claims<'a> {
    input: &'a PlanInput<'a>,
    /// Mounts whose existing routes stay as they are: invalid manifests,
    /// blocked mounts, and removals the mass-deletion guard holds back.
    kept: BTreeSet<MountId>,
    /// Why its own tenant refuses each desired mount (by index), if it
    /// does: decided once, for the budget and for the mount's plan.
    refusals: Vec<Option<Problem>>,
    /// Desired mounts (by index) that would take their tenant over its
    /// `maxResources`, decided for all of them first (see [`over_budget`]).
    over_budget: BTreeMap<usize, Problem>,
    /// Mounts refused as outside their tenant's delegation: their paths
    /// are not theirs to keep.
    undelegated: BTreeSet<MountId>,
    /// Resources planned for creation so far, so a shared parent is created once.
    creating: BTreeSet<String>,
    /// Methods a desired mount claims: never orphans.
    claimed: BTreeSet<MethodKey>,
    /// Statements that must exist.
    wanted: BTreeSet<Statement>,
    /// Statements of routes re-pointed to another function (the old
    /// function's): the live stage needs them until the deployment.
    repointed: BTreeSet<Statement>,
}

impl<'a> Claims<'a> {
    fn new(input: &'a PlanInput<'a>) -> Claims<'a> {
        let refusals: Vec<Option<Problem>> = input
            .mounts
            .iter()
            .map(|d| input.tenancy.and_then(|p| tenant_refusal(p, input, d)))
            .collect();
        Claims {
            input,
            kept: input.retained.clone(),
            over_budget: over_budget(input, &refusals),
            refusals,
            undelegated: BTreeSet::new(),
            creating: BTreeSet::new(),
            claimed: BTreeSet::new(),
            wanted: BTreeSet::new(),
            repointed: BTreeSet::new(),
        }
    }

    /// Plans one desired mount and records what it claims; a mount that
    /// cannot be planned keeps its routes.
    fn plan_mount(&mut self, index: usize, desired: &DesiredMount) -> MountPlan {
        let m = &desired.mount;
        let planned = self
            .within_tenancy(index, desired)
            .and_then(|()| within_account_limit(self.input, m))
            .and_then(|()| plan_mount(self.input, desired, &mut self.creating));
        let action = match planned {
            Ok(p) => {
                self.claimed.extend(p.claimed);
                self.wanted.extend(p.statements);
                self.repointed.extend(p.repointed);
                MountAction::Apply(p.changes)
            }
            Err(problem) => {
                if problem.reason == Reason::NotDelegated {
                    self.undelegated.insert(m.id());
                }
                self.kept.insert(m.id());
                MountAction::Blocked(problem)
            }
        };
        MountPlan {
            id: m.id(),
            path: m.path.to_string(),
            action,
        }
    }

    /// Under a tenant policy: whether the mount stays within what its tenant
    /// may do, its resource budget included. Decided before any change is
    /// planned, so a refused mount costs no write call.
    fn within_tenancy(&self, index: usize, desired: &DesiredMount) -> Result<(), Problem> {
        if self.input.tenancy.is_none() {
            return Ok(());
        }
        desired.function.as_ref().map_err(Clone::clone)?;
        if let Some(p) = &self.refusals[index] {
            return Err(p.clone());
        }
        match self.over_budget.get(&index) {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }

    /// Whether a method of this owner, marked as `mount`'s, lies outside
    /// what the tenant policy delegates to that mount's tenant (a delegation
    /// removed, or a tenant dropped): it is removed, whatever its manifest.
    fn detached(&self, mount: &MountId, path: &str) -> bool {
        match (self.input.tenancy, &mount.tenant) {
            (Some(policy), Some(tenant)) => !tenancy::is_delegated(policy, tenant, path),
            _ => false,
        }
    }

    /// This owner's methods that no desired mount claims and no kept mount
    /// owns. None at all when the mass-deletion guard refuses the removal
    /// (the mounts are then kept) or a manifest of unknown name could not be
    /// read; `notes` says why.
    fn orphans(&mut self, notes: &mut Vec<String>) -> Orphans {
        let input = self.input;
        let mut orphans = Orphans::new();
        for (path, verb, method) in input.api.methods() {
            let Some(marker) = method.ownership().of(input.owner).cloned() else {
                continue;
            };
            // Claimed: a desired mount takes the method over.
            if self.claimed.contains(&(path.to_string(), verb.to_string())) {
                continue;
            }
            if self.kept.contains(&marker.mount) && !self.detached(&marker.mount, path) {
                continue;
            }
            orphans
                .entry(marker.mount)
                .or_default()
                .push((path.to_string(), verb.to_string()));
        }
        // Holds and the mass-deletion guard, per tenant: one tenant's
        // unreadable file or mass removal never holds another's removals.
        let mut by_tenant: BTreeMap<Option<String>, Vec<MountId>> = BTreeMap::new();
        for id in orphans.keys() {
            by_tenant
                .entry(id.tenant.clone())
                .or_default()
                .push(id.clone());
        }
        for (tenant, ids) in by_tenant {
            let of = match &tenant {
                Some(t) => format!(" of tenant '{t}'"),
                None => String::new(),
            };
            if input.held.contains(&tenant) {
                let routes: usize = ids.iter().map(|id| orphans[id].len()).sum();
                notes.push(format!(
                    "{routes} route(s) of removed mounts{of} are kept for now: a manifest could not be read, so a missing mount may only be unreadable"
                ));
                for id in &ids {
                    orphans.remove(id);
                }
                continue;
            }
            if let Some(&limit) = input.delete_limits.get(&tenant) {
                if ids.len() > limit {
                    let names: Vec<String> = ids.iter().map(MountId::to_string).collect();
                    notes.push(format!(
                        "refusing to remove {} mounts{of} ({}) in one pass: the limit is {limit} (--max-delete); nothing is removed. If this is intended, raise --max-delete or pass --allow-mass-delete",
                        ids.len(),
                        names.join(", ")
                    ));
                    for id in ids {
                        orphans.remove(&id);
                        self.kept.insert(id);
                    }
                }
            }
        }
        orphans
    }

    /// Statements of the routes kept mounts have now: they stay too.
    fn kept_statements(&self) -> BTreeSet<Statement> {
        let input = self.input;
        input
            .api
            .methods()
            .filter(|(path, _, m)| {
                m.ownership().of(input.owner).is_some_and(|mk| {
                    self.kept.contains(&mk.mount) && !self.detached(&mk.mount, path)
                })
            })
            .filter_map(|(path, _, m)| {
                let f = m.function()?;
                Some((f.arn(), statement_id(input, path)))
            })
            .collect()
    }

    /// The removal of the orphans, one cleanup group per former mount (and
    /// one for resources only the journal names, and one for leftover
    /// statements), and the statements to remove after the deployment.
    fn removals(&self, orphans: &Orphans) -> (Vec<Cleanup>, Vec<Change>) {
        let input = self.input;
        let api = input.api;
        let kept_statements = self.kept_statements();
        let mut removing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (path, verb) in orphans.values().flatten() {
            removing
                .entry(path.clone())
                .or_default()
                .insert(verb.clone());
        }
        // Resources only the journal names stay while their tenant is held.
        let abandoned: BTreeSet<String> = input
            .abandoned
            .iter()
            .filter(|p| !self.held_at(p))
            .cloned()
            .collect();
        let abandoned = &abandoned;
        let desired: Vec<Route> = input
            .mounts
            .iter()
            .filter(|d| !self.undelegated.contains(&d.mount.id()))
            .flat_map(|d| routes(&d.mount))
            .collect();
        let deletable = deletable_resources(api, &removing, abandoned, &desired);
        // The verbs wanted at each path: a removal leaves their throttling alone.
        let mut wanted_verbs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for d in input
            .mounts
            .iter()
            .filter(|d| !self.undelegated.contains(&d.mount.id()))
        {
            for route in routes(&d.mount) {
                let verbs = wanted_verbs.entry(route.0.clone()).or_default();
                verbs.extend(d.mount.methods.iter().map(|v| v.as_str().to_string()));
                if d.mount.cors.is_some() {
                    verbs.insert(HttpMethod::Options.as_str().to_string());
                }
            }
        }

        let mut cleanups = Vec::new();
        let mut removed: BTreeSet<Statement> = BTreeSet::new();
        for (mount, methods) in orphans {
            let mut changes = Vec::new();
            // Statements first, while the methods still say which function they name.
            let mut routes_done = BTreeSet::new();
            for (path, _) in methods {
                if !routes_done.insert(path.as_str()) {
                    continue;
                }
                let Some(res) = api.get(path) else { continue };
                let sid = statement_id(input, path);
                let functions: BTreeSet<String> = res
                    .methods
                    .values()
                    .filter(|m| m.ownership().is_mount(input.owner, mount))
                    .filter_map(ObservedMethod::function)
                    .map(|f| f.arn())
                    .collect();
                for function in functions {
                    let key = (function, sid.clone());
                    if self.wanted.contains(&key) || kept_statements.contains(&key) {
                        continue;
                    }
                    if has_statement(input.policies, &key.0, &sid) {
                        changes.push(Change::RemovePermission {
                            function: key.0.clone(),
                            sid: sid.clone(),
                        });
                        removed.insert(key);
                    }
                }
            }
            // Then methods on resources that stay.
            for (path, verb) in methods {
                if !deletable.contains(path) {
                    changes.push(Change::DeleteMethod {
                        path: path.clone(),
                        verb: verb.clone(),
                    });
                }
            }
            // Their throttling on the stage goes too (after the deployment:
            // the stage serves the routes until then): every verb they
            // answered that no other method, kept or wanted, answers.
            let mut by_path: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for (path, verb) in methods {
                by_path.entry(path).or_default().insert(verb);
            }
            for (path, verbs) in by_path {
                let Some(res) = api.get(path) else { continue };
                let before: BTreeMap<String, bool> = res
                    .methods
                    .keys()
                    .map(|v| (v.clone(), verbs.contains(v.as_str())))
                    .collect();
                let mut after: BTreeMap<String, Holder> = res
                    .methods
                    .keys()
                    .filter(|v| !verbs.contains(v.as_str()))
                    .map(|v| (v.clone(), Holder::Other))
                    .collect();
                for v in wanted_verbs.get(path).into_iter().flatten() {
                    after.insert(v.clone(), Holder::Other);
                }
                changes.extend(stage_settings::route_changes(
                    path,
                    &route_keys(&before, &after),
                    None,
                    stage_settings(input),
                ));
            }
            cleanups.push(Cleanup {
                mount: Some(mount.clone()),
                changes,
            });
        }
        // Each deletable resource goes to the last cleanup group that touches
        // it, deepest first within the group: groups run in order, so by then
        // every deeper part has had its turn. Resources only the journal names
        // go in a group of their own. (The executor also refuses to delete a
        // resource that still has a child, whatever the order.)
        let mut journal_only = Vec::new();
        let mut assigned: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for path in &deletable {
            let below = format!("{path}/");
            let group = orphans
                .values()
                .enumerate()
                .filter(|(_, methods)| {
                    methods.iter().any(|(p, _)| {
                        p == path || p.starts_with(&below) || path.starts_with(&format!("{p}/"))
                    })
                })
                .map(|(i, _)| i)
                .next_back();
            match group {
                Some(g) => assigned.entry(g).or_default().push(path.clone()),
                None => journal_only.push(path.clone()),
            }
        }
        for (g, paths) in assigned {
            cleanups[g].changes.extend(deepest_first(paths));
        }
        if !journal_only.is_empty() {
            cleanups.push(Cleanup {
                mount: None,
                changes: deepest_first(journal_only).collect(),
            });
        }

        let (leftovers, after_deploy) = self.leftover_statements(&kept_statements, &removed);
        if !leftovers.is_empty() {
            cleanups.push(Cleanup {
                mount: None,
                changes: leftovers,
            });
        }
        cleanups.retain(|c| !c.changes.is_empty());
        (cleanups, after_deploy)
    }

    /// Whether removals at `path` wait: the tenant it is delegated to (or,
    /// without a policy, the source) has a manifest of unknown name that
    /// could not be read. One tenant's hold never holds another's.
    fn held_at(&self, path: &str) -> bool {
        let held = self.input.held;
        if held.is_empty() {
            return false;
        }
        if held.contains(&None) {
            return true;
        }
        self.input
            .tenancy
            .and_then(|p| tenancy::delegate_of(p, path))
            .is_some_and(|t| held.contains(&Some(t.name.clone())))
    }

    /// Statements of this owner that nothing wants (crash leftovers, routes
    /// re-pointed to another function, or removed by hand): removed now, or
    /// after the deployment for re-pointed routes. While a tenant's manifest
    /// of unknown name could not be read, the statements its live routes
    /// name stay (that manifest may be one of them); without a policy, a
    /// hold keeps every statement.
    fn leftover_statements(
        &self,
        kept: &BTreeSet<Statement>,
        removed: &BTreeSet<Statement>,
    ) -> (Vec<Change>, Vec<Change>) {
        let input = self.input;
        let (mut now, mut after_deploy) = (Vec::new(), Vec::new());
        if input.held.contains(&None) {
            return (now, after_deploy);
        }
        let held: BTreeSet<Statement> = input
            .api
            .methods()
            .filter(|(_, _, m)| {
                m.ownership()
                    .of(input.owner)
                    .is_some_and(|mk| input.held.contains(&mk.mount.tenant))
            })
            .filter_map(|(path, _, m)| Some((m.function()?.arn(), statement_id(input, path))))
            .collect();
        for (function, statements) in input.policies {
            let Some(statements) = statements else {
                continue;
            };
            for s in statements {
                if !is_statement_of(&s.sid, input.api_id, input.owner) {
                    continue;
                }
                let key = (function.clone(), s.sid.clone());
                if self.wanted.contains(&key)
                    || kept.contains(&key)
                    || removed.contains(&key)
                    || held.contains(&key)
                {
                    continue;
                }
                let change = Change::RemovePermission {
                    function: function.clone(),
                    sid: s.sid.clone(),
                };
                if self.repointed.contains(&key) {
                    after_deploy.push(change);
                } else {
                    now.push(change);
                }
            }
        }
        (now, after_deploy)
    }
}

/// Why the mount's own tenant refuses it (all but the budget), if it does.
fn tenant_refusal(
    policy: &TenantPolicy,
    input: &PlanInput<'_>,
    desired: &DesiredMount,
) -> Option<Problem> {
    let f = desired.function.as_ref().ok();
    admission::refusal(policy, input.api, &desired.mount, &|_| f)
}

/// The resources (paths with their parents) each of this owner's mounts
/// occupies on the API now, by the mount in its methods' markers.
fn live_resources(input: &PlanInput<'_>) -> BTreeMap<MountId, BTreeSet<String>> {
    let mut live: BTreeMap<MountId, BTreeSet<String>> = BTreeMap::new();
    for (path, _, m) in input.api.methods() {
        if let Some(mk) = m.ownership().of(input.owner) {
            let used = live.entry(mk.mount.clone()).or_default();
            used.extend(ancestors(path));
            used.insert(path.to_string());
        }
    }
    live
}

/// The resource budget (`maxResources`), decided for every desired mount of
/// every tenant that has one, before anything is planned: which mounts
/// would take their tenant over it.
///
/// What a tenant occupies is what its routes use on the API after the pass:
/// the live routes that stay (mounts whose manifests are invalid, refused or
/// cannot be applied, and removals the pass holds back) count first; then
/// the live mounts whose manifests apply, each for what its manifest needs
/// now (a live mount that does not grow keeps its place, even over a budget
/// lowered since); then newcomers, in file order, while they fit. So no
/// newcomer can push a live mount out, and a tenant is never above its
/// budget after a pass it was within before.
fn over_budget(input: &PlanInput<'_>, refusals: &[Option<Problem>]) -> BTreeMap<usize, Problem> {
    let mut out = BTreeMap::new();
    let Some(policy) = input.tenancy else {
        return out;
    };
    let budgeted: Vec<&Tenant> = policy
        .tenants
        .iter()
        .filter(|t| t.max_resources.is_some())
        .collect();
    if budgeted.is_empty() {
        return out;
    }
    let live = live_resources(input);
    let desired_ids: BTreeSet<MountId> = input.mounts.iter().map(|d| d.mount.id()).collect();
    let no_resources = BTreeSet::new();
    let live_of = |id: &MountId| live.get(id).unwrap_or(&no_resources);
    for tenant in budgeted {
        let max = tenant.max_resources.unwrap_or(usize::MAX);
        let ours = |id: &MountId| id.tenant.as_deref() == Some(tenant.name.as_str());
        // Live mounts no manifest asks for: kept, or removed by this pass
        // unless a hold or the mass-deletion guard keeps them (counted
        // generously, so the guess errs towards keeping).
        let gone: Vec<&MountId> = live
            .keys()
            .filter(|id| ours(id) && !desired_ids.contains(*id))
            .collect();
        let removable = gone
            .iter()
            .filter(|id| !input.retained.contains(**id))
            .count();
        let key = Some(tenant.name.clone());
        let removal_held = input.held.contains(&key)
            || input
                .delete_limits
                .get(&key)
                .is_some_and(|&limit| removable > limit);
        let mut used: BTreeSet<String> = BTreeSet::new();
        for id in gone {
            if removal_held || input.retained.contains(id) {
                used.extend(live_of(id).iter().cloned());
            }
        }
        // Desired mounts that cannot apply keep what they have.
        let mut scratch = BTreeSet::new();
        let (mut incumbents, mut newcomers) = (Vec::new(), Vec::new());
        for (i, d) in input.mounts.iter().enumerate() {
            let id = d.mount.id();
            if !ours(&id) {
                continue;
            }
            let applies = refusals[i].is_none() && plan_mount(input, d, &mut scratch).is_ok();
            if !applies {
                used.extend(live_of(&id).iter().cloned());
            } else if live.contains_key(&id) {
                incumbents.push(i);
            } else {
                newcomers.push(i);
            }
        }
        // What the live mounts not decided yet hold now, counted per resource.
        let mut held_later: BTreeMap<&String, usize> = BTreeMap::new();
        for &i in &incumbents {
            for r in live_of(&input.mounts[i].mount.id()) {
                *held_later.entry(r).or_default() += 1;
            }
        }
        let refuse = |m: &Mount, total: usize, in_use: usize| {
            Problem::new(
                Reason::OverBudget,
                format!(
                    "tenant '{}' may use {max} API resources; with {} its routes would need {total} ({in_use} in use by routes that stay)",
                    tenant.name,
                    m.file.display()
                ),
            )
        };
        for &i in &incumbents {
            let m = &input.mounts[i].mount;
            let old = live_of(&m.id());
            for r in old {
                if let Some(n) = held_later.get_mut(r) {
                    *n -= 1;
                    if *n == 0 {
                        held_later.remove(r);
                    }
                }
            }
            let reserved: BTreeSet<&String> =
                used.iter().chain(held_later.keys().copied()).collect();
            let new = tenancy::resources_needed(m);
            let with_new = reserved.len() + new.iter().filter(|r| !reserved.contains(r)).count();
            let with_old = reserved.len() + old.iter().filter(|r| !reserved.contains(r)).count();
            if with_new <= max.max(with_old) {
                used.extend(new);
            } else {
                out.insert(i, refuse(m, with_new, reserved.len()));
                used.extend(old.iter().cloned());
            }
        }
        for &i in &newcomers {
            let m = &input.mounts[i].mount;
            let new = tenancy::resources_needed(m);
            let total = used.len() + new.iter().filter(|r| !used.contains(*r)).count();
            if total <= max {
                used.extend(new);
            } else {
                out.insert(i, refuse(m, total, used.len()));
            }
        }
    }
    out
}

/// Resource deletions, deepest first.
fn deepest_first(mut paths: Vec<String>) -> impl Iterator<Item = Change> {
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    paths
        .into_iter()
        .map(|path| Change::DeleteResource { path })
}

fn statement_id(input: &PlanInput<'_>, path: &str) -> String {
    Route(path.to_string()).statement_id(input.api_id, input.owner)
}

fn settings_for(owner: &str, mount: &Mount) -> MethodSettings {
    MethodSettings {
        authorization: mount.authorization,
        authorizer_id: mount.authorizer_id.clone(),
        api_key_required: mount.api_key_required,
        operation_name: marker(owner, mount),
    }
}

/// The settings of a mount's CORS preflight: no authorization (a browser
/// sends no credentials with a preflight), no API key, the owner's marker.
fn preflight_settings(owner: &str, mount: &Mount) -> MethodSettings {
    MethodSettings {
        authorization: Authorization::None,
        authorizer_id: None,
        api_key_required: false,
        operation_name: marker(owner, mount),
    }
}

/// The stage's method settings, when the stage exists.
fn stage_settings<'a>(
    input: &PlanInput<'a>,
) -> Option<&'a std::collections::BTreeMap<String, StageMethodSetting>> {
    input.stage.map(|s| &s.method_settings)
}

fn is_variable(path_part: &str) -> bool {
    path_part.starts_with('{')
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// Why a method's settings differ, in words.
fn method_diff(observed: &ObservedMethod, want: &MethodSettings) -> String {
    let mut parts = Vec::new();
    if observed.operation_name.as_deref() != Some(want.operation_name.as_str()) {
        parts.push(format!(
            "owner marker {} -> {}",
            observed.operation_name.as_deref().unwrap_or("(none)"),
            want.operation_name
        ));
    }
    if observed.authorization_type != want.authorization.as_str() {
        parts.push(format!(
            "authorization {} -> {}",
            observed.authorization_type,
            want.authorization.as_str()
        ));
    }
    if observed.authorizer_for(want) != want.authorizer_id.as_deref() {
        parts.push(format!(
            "authorizer {} -> {}",
            observed.authorizer_for(want).unwrap_or("(none)"),
            want.authorizer_id.as_deref().unwrap_or("(none)")
        ));
    }
    if observed.api_key_required != want.api_key_required {
        parts.push(format!(
            "API key required {} -> {}",
            observed.api_key_required, want.api_key_required
        ));
    }
    parts.join(", ")
}

fn integration_diff(observed: &ObservedMethod, want: &ObservedIntegration) -> String {
    match &observed.integration {
        None => "integration missing".to_string(),
        Some(i) if i.kind != "AWS_PROXY" => format!("type {} -> AWS_PROXY", i.kind),
        Some(i) if i.http_method.as_deref() != Some("POST") => format!(
            "integration method {} -> POST",
            i.http_method.as_deref().unwrap_or("(none)")
        ),
        Some(i) if i.uri == want.uri && i.timeout() != want.timeout() => {
            format!("timeout {} ms -> {} ms", i.timeout(), want.timeout())
        }
        Some(i) => format!(
            "was {}",
            i.uri
                .as_deref()
                .map(short_uri)
                .unwrap_or_else(|| "(no uri)".into())
        ),
    }
}

fn has_statement(
    policies: &BTreeMap<String, Option<Vec<PolicyStatement>>>,
    function: &str,
    sid: &str,
) -> bool {
    policies
        .get(function)
        .and_then(|p| p.as_ref())
        .is_some_and(|s| s.iter().any(|s| s.sid == sid))
}

/// Resources that can be deleted whole: after the planned method removals they
/// carry no method, everything below them is deleted too, and no desired route
/// needs them.
fn deletable_resources(
    api: &ObservedApi,
    removing: &BTreeMap<String, BTreeSet<String>>,
    abandoned: &BTreeSet<String>,
    desired: &[Route],
) -> BTreeSet<String> {
    let needed: BTreeSet<String> = desired
        .iter()
        .flat_map(|r| {
            let mut v = ancestors(&r.0);
            v.push(r.0.clone());
            v
        })
        .collect();
    // Candidates: resources losing a method, and their ancestors.
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    for path in removing.keys() {
        candidates.insert(path.clone());
        candidates.extend(ancestors(path));
        // Empty resources below a route being removed (e.g. a `{proxy+}` whose
        // method was never created because a pass was cut short) go with it.
        candidates.extend(
            api.descendants(path)
                .into_iter()
                .filter(|d| d.methods.is_empty())
                .map(|d| d.path.clone()),
        );
    }
    candidates.extend(abandoned.iter().cloned());
    let mut deletable = BTreeSet::new();
    // Deepest first, so a parent can look at its children's verdicts.
    let mut ordered: Vec<String> = candidates.into_iter().collect();
    ordered.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for path in ordered {
        if path == "/" || needed.contains(&path) {
            continue;
        }
        let Some(res) = api.get(&path) else { continue };
        let gone = removing.get(&path);
        let methods_left = res
            .methods
            .keys()
            .any(|v| !gone.is_some_and(|g| g.contains(v)));
        if methods_left {
            continue;
        }
        if api
            .children(&path)
            .into_iter()
            .all(|c| deletable.contains(&c.path))
        {
            deletable.insert(path);
        }
    }
    deletable
}

struct MountChanges {
    changes: Vec<Change>,
    claimed: Vec<(String, String)>,
    statements: Vec<(String, String)>,
    repointed: Vec<(String, String)>,
}

/// Whether the mount's throttle fits the account's limit (see `throttle_limits`).
fn within_account_limit(input: &PlanInput<'_>, m: &Mount) -> Result<(), Problem> {
    match above_account_limit(m, input.account_limit) {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

fn plan_mount(
    input: &PlanInput<'_>,
    desired: &DesiredMount,
    planned_resources: &mut BTreeSet<String>,
) -> Result<MountChanges, Problem> {
    let owner = input.owner;
    let api = input.api;
    let m = &desired.mount;
    let function = desired.function.clone()?;
    let uri = function.integration_uri(input.region);
    let want = settings_for(owner, m);
    let want_integration = ObservedIntegration::lambda_proxy(&uri).with_timeout(m.timeout_ms);
    let preflight = Preflight::of(m);
    let want_preflight = preflight_settings(owner, m);
    let routes = routes(m);

    // Conflicts first: nothing is planned for a mount that cannot be applied whole.
    let mut adopting: BTreeSet<(String, String)> = BTreeSet::new();
    for route in &routes {
        let Some(res) = api.get(&route.0) else {
            continue;
        };
        for (verb, method) in &res.methods {
            match method.ownership() {
                Ownership::Apimount(mk) if mk.owner == owner => {
                    if mk.mount != m.id() && input.retained.contains(&mk.mount) {
                        return Err(Problem::new(
                            Reason::PathConflict,
                            format!(
                                "{verb} {} still belongs to mount '{}', whose manifest is invalid or misplaced; fix or delete that manifest first",
                                route.0, mk.mount
                            ),
                        ));
                    }
                }
                Ownership::Apimount(mk) => {
                    return Err(Problem::new(
                        Reason::PathConflict,
                        format!(
                            "{verb} {} is served by mount '{}' of apimount owner '{}'; apimount leaves other owners' routes alone",
                            route.0, mk.mount, mk.owner
                        ),
                    ))
                }
                Ownership::Foreign => {
                    if m.adopt && adoptable(method, verb, m, &uri) {
                        adopting.insert((route.0.clone(), verb.clone()));
                        continue;
                    }
                    let hint = if m.adopt {
                        " and does not match this manifest's shape, so it cannot be adopted"
                    } else {
                        "; set spec.adopt: true to take over a route of exactly this shape"
                    };
                    return Err(Problem::new(
                        Reason::PathConflict,
                        format!(
                            "{verb} {} already exists and was not made by apimount owner '{owner}' (operationName {}){hint}",
                            route.0,
                            method.operation_name.as_deref().unwrap_or("unset"),
                        ),
                    ));
                }
            }
        }
    }
    if m.proxy {
        for sibling in api.children(m.path.as_str()) {
            let part = last_segment(&sibling.path);
            if is_variable(part) && part != "{proxy+}" {
                return Err(Problem::new(
                    Reason::PathConflict,
                    format!(
                        "{} already has the path parameter {part}; API Gateway allows one variable child, so {{proxy+}} cannot be added (set proxy: false, or remove {})",
                        m.path, sibling.path
                    ),
                ));
            }
        }
    }
    // An ancestor that is a greedy path variable would swallow the mount.
    for a in ancestors(m.path.as_str()) {
        if a.ends_with("+}") {
            return Err(Problem::new(
                Reason::PathConflict,
                format!("{a} is a greedy path variable above the mount path"),
            ));
        }
    }

    let mut changes = Vec::new();
    let mut claimed = Vec::new();
    let mut statements = Vec::new();
    let mut repointed = Vec::new();
    // Changes to the stage's method settings: last (see `Change::is_stage_setting`).
    let mut stage_changes = Vec::new();

    // Resources, parents first.
    for route in &routes {
        let mut chain = ancestors(&route.0);
        chain.push(route.0.clone());
        for p in chain {
            if api.get(&p).is_none() && planned_resources.insert(p.clone()) {
                changes.push(Change::CreateResource { path: p });
            }
        }
    }

    let policy = input.policies.get(&function.arn());
    for route in &routes {
        let observed = api.get(&route.0);
        for verb in &m.methods {
            let v = verb.as_str().to_string();
            claimed.push((route.0.clone(), v.clone()));
            let existing = observed.and_then(|r| r.methods.get(&v));
            match existing {
                None => {
                    changes.push(Change::PutMethod {
                        path: route.0.clone(),
                        verb: *verb,
                        settings: want.clone(),
                    });
                    changes.push(Change::PutIntegration {
                        path: route.0.clone(),
                        verb: *verb,
                        uri: uri.clone(),
                        timeout_ms: m.timeout_ms,
                        why: None,
                    });
                }
                Some(method) => {
                    let adopt = adopting.contains(&(route.0.clone(), v.clone()));
                    let method_ok = method.matches(&want);
                    let integration_ok = method.integration.as_ref().is_some_and(|i| {
                        i.is_lambda_proxy_to(&uri) && i.timeout() == want_integration.timeout()
                    });
                    if !method_ok {
                        let why = if adopt {
                            "adopt: mark as owned by this manifest".to_string()
                        } else {
                            method_diff(method, &want)
                        };
                        changes.push(Change::ReplaceMethod {
                            path: route.0.clone(),
                            verb: *verb,
                            settings: want.clone(),
                            why,
                        });
                        // Deleting the method deletes its integration: put it back.
                        changes.push(Change::PutIntegration {
                            path: route.0.clone(),
                            verb: *verb,
                            uri: uri.clone(),
                            timeout_ms: m.timeout_ms,
                            why: Some(if integration_ok {
                                "restored after the method was replaced".into()
                            } else {
                                integration_diff(method, &want_integration)
                            }),
                        });
                    } else if !integration_ok {
                        changes.push(Change::PutIntegration {
                            path: route.0.clone(),
                            verb: *verb,
                            uri: uri.clone(),
                            timeout_ms: m.timeout_ms,
                            why: Some(integration_diff(method, &want_integration)),
                        });
                    }
                    if let Some(old) = method.function() {
                        if old.arn() != function.arn() && method.ownership().is(owner) {
                            repointed.push((old.arn(), route.statement_id(input.api_id, owner)));
                        }
                    }
                }
            }
        }
        // The CORS preflight, when the manifest asks for one.
        if let Some(pf) = &preflight {
            let verb = HttpMethod::Options;
            let v = verb.as_str().to_string();
            claimed.push((route.0.clone(), v.clone()));
            match observed.and_then(|r| r.methods.get(&v)) {
                None => {
                    changes.push(Change::PutMethod {
                        path: route.0.clone(),
                        verb,
                        settings: want_preflight.clone(),
                    });
                    changes.push(Change::PutPreflight {
                        path: route.0.clone(),
                        settings: want_preflight.clone(),
                        preflight: pf.clone(),
                        why: None,
                    });
                }
                Some(method) => {
                    let answers = pf.answered_by(method);
                    if !method.matches(&want_preflight) {
                        let why = if adopting.contains(&(route.0.clone(), v.clone())) {
                            "adopt: mark as owned by this manifest".to_string()
                        } else {
                            method_diff(method, &want_preflight)
                        };
                        changes.push(Change::ReplaceMethod {
                            path: route.0.clone(),
                            verb,
                            settings: want_preflight.clone(),
                            why,
                        });
                        changes.push(Change::PutPreflight {
                            path: route.0.clone(),
                            settings: want_preflight.clone(),
                            preflight: pf.clone(),
                            why: Some(if answers {
                                "restored after the method was replaced".into()
                            } else {
                                pf.diff(method)
                            }),
                        });
                    } else if !answers {
                        changes.push(Change::PutPreflight {
                            path: route.0.clone(),
                            settings: want_preflight.clone(),
                            preflight: pf.clone(),
                            why: Some(pf.diff(method)),
                        });
                    }
                }
            }
        }

        // Our methods on this route that the manifest no longer lists, and
        // their throttling.
        let listed = |verb: &str| {
            m.methods.iter().any(|mv| mv.as_str() == verb)
                || (preflight.is_some() && verb == HttpMethod::Options.as_str())
        };
        if let Some(res) = observed {
            for (verb, method) in &res.methods {
                if method.ownership().is(owner) && !listed(verb) {
                    changes.push(Change::DeleteMethod {
                        path: route.0.clone(),
                        verb: verb.clone(),
                    });
                    claimed.push((route.0.clone(), verb.clone()));
                }
            }
        }

        // The throttling of every verb its methods answer (ANY answers each
        // verb without a method of its own; a preflight is not throttled),
        // and none on the verbs they answered before and no longer do.
        let before: BTreeMap<String, bool> = observed
            .map(|r| {
                r.methods
                    .iter()
                    .map(|(v, meth)| (v.clone(), meth.ownership().is(owner)))
                    .collect()
            })
            .unwrap_or_default();
        let mut after: BTreeMap<String, Holder> = observed
            .map(|r| {
                r.methods
                    .iter()
                    .filter(|(_, meth)| !meth.ownership().is(owner))
                    .map(|(v, _)| (v.clone(), Holder::Other))
                    .collect()
            })
            .unwrap_or_default();
        for verb in &m.methods {
            after.insert(verb.as_str().to_string(), Holder::Listed);
        }
        if preflight.is_some() {
            after.insert(HttpMethod::Options.as_str().to_string(), Holder::Preflight);
        }
        stage_changes.extend(stage_settings::route_changes(
            &route.0,
            &route_keys(&before, &after),
            m.throttle,
            stage_settings(input),
        ));

        // The permission for this route.
        let sid = route.statement_id(input.api_id, owner);
        let source_arn = route.source_arn(
            &function.partition,
            input.region,
            input.api_account.unwrap_or(&function.account),
            input.api_id,
        );
        statements.push((function.arn(), sid.clone()));
        match policy {
            None | Some(None) => {
                return Err(Problem::new(
                    Reason::AwsError,
                    format!(
                        "the resource policy of {} could not be read, so its permissions cannot be checked",
                        function.arn()
                    ),
                ))
            }
            Some(Some(list)) => match list.iter().find(|s| s.sid == sid) {
                None => changes.push(Change::AddPermission {
                    function: function.arn(),
                    sid,
                    source_arn,
                }),
                Some(s) if !s.grants_invoke_from(&source_arn) => {
                    changes.push(Change::ReplacePermission {
                        function: function.arn(),
                        sid,
                        source_arn,
                    })
                }
                Some(_) => {}
            },
        }
    }

    // Permissions go last within a route's changes so that a crash can never
    // leave a statement that no method points at; the stage's method
    // settings after them.
    let (perms, mut rest): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(Change::is_grant);
    rest.extend(perms);
    rest.extend(stage_changes);

    Ok(MountChanges {
        changes: rest,
        claimed,
        statements,
        repointed,
    })
}

/// Whether a foreign method has exactly the shape the manifest asks for, so
/// it can be adopted: a Lambda proxy integration to the same function, the
/// same authorization, on a verb the manifest lists; or, for a manifest with
/// `cors`, an OPTIONS method with a MOCK integration (another tool's CORS
/// preflight, answered as the manifest says once adopted).
fn adoptable(method: &ObservedMethod, verb: &str, m: &Mount, uri: &str) -> bool {
    if m.cors.is_some() && verb == HttpMethod::Options.as_str() {
        return method.authorization_type == Authorization::None.as_str()
            && method
                .integration
                .as_ref()
                .is_some_and(|i| i.kind == "MOCK");
    }
    m.methods.iter().any(|v| v.as_str() == verb)
        && method.authorization_type == m.authorization.as_str()
        && method.authorizer() == m.authorizer_id.as_deref()
        && method.api_key_required == m.api_key_required
        && method
            .integration
            .as_ref()
            .is_some_and(|i| i.is_lambda_proxy_to(uri))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tenants::{parse_policy, TenantPolicy};
    use crate::manifest::{parse, Authorization};
    use crate::plan::model::{
        Behaviour, Methods, ObservedIntegration, ObservedResource, ObservedStage, Rate,
        ResolvedFunction,
    };
    use crate::plan::stage_settings::settings_key;
    use crate::plan::throttle_limits::AccountLimit;
    use std::path::Path;

    const API: &str = "api0000001";
    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "eu-west-2";
    const OWNER: &str = "team-a";

    fn mount(name: &str, path: &str, function: &str, extra: &str) -> Mount {
        let text = format!(
            "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: {path}\n  function: {function}\n{extra}"
        );
        parse(Path::new(&format!("{name}.yaml")), text.as_bytes()).unwrap()
    }

    fn func(name: &str) -> ResolvedFunction {
        ResolvedFunction::from_arn(&format!(
            "arn:aws:lambda:{REGION}:111122223333:function:{name}"
        ))
        .unwrap()
    }

    fn id(tenant: Option<&str>, name: &str) -> MountId {
        MountId {
            tenant: tenant.map(str::to_string),
            name: name.to_string(),
        }
    }

    fn desired(m: Mount) -> DesiredMount {
        let f = func(m.function.name());
        DesiredMount {
            mount: m,
            function: Ok(f),
        }
    }

    /// A tiny in-memory gateway + policies that applies changes the way AWS would.
    #[derive(Clone, Default)]
    struct World {
        api: ObservedApi,
        policies: BTreeMap<String, Option<Vec<PolicyStatement>>>,
        next_id: u32,
        /// What the journal says an interrupted pass left.
        abandoned: BTreeSet<String>,
        tenancy: Option<TenantPolicy>,
        /// The stage, with its method settings (it exists from the start).
        stage: Option<ObservedStage>,
    }

    impl World {
        fn new() -> World {
            let mut w = World {
                stage: Some(ObservedStage {
                    deployment_id: None,
                    tags: BTreeMap::new(),
                    method_settings: BTreeMap::new(),
                }),
                ..World::default()
            };
            w.add_resource("/");
            w
        }

        fn settings(&mut self) -> &mut BTreeMap<String, StageMethodSetting> {
            &mut self.stage.as_mut().unwrap().method_settings
        }

        fn add_resource(&mut self, path: &str) {
            self.next_id += 1;
            self.api.resources.insert(
                path.to_string(),
                ObservedResource {
                    id: format!("r{}", self.next_id),
                    path: path.to_string(),
                    methods: Methods::new(),
                },
            );
        }

        fn add_function(&mut self, name: &str) {
            self.policies.insert(func(name).arn(), Some(Vec::new()));
        }

        fn foreign(&mut self, path: &str, verb: &str, operation_name: Option<&str>) {
            if self.api.get(path).is_none() {
                self.add_resource(path);
            }
            self.api.resources.get_mut(path).unwrap().methods.insert(
                verb.into(),
                ObservedMethod {
                    authorization_type: "NONE".into(),
                    authorizer_id: None,
                    api_key_required: false,
                    operation_name: operation_name.map(str::to_string),
                    integration: Some(ObservedIntegration {
                        kind: "HTTP_PROXY".into(),
                        http_method: Some("GET".into()),
                        uri: Some("https://example.com".into()),
                        ..ObservedIntegration::lambda_proxy("")
                    }),
                    responses: Default::default(),
                },
            );
        }

        /// Applies changes as AWS would, asserting the calls AWS refuses are
        /// never planned.
        fn apply(&mut self, changes: &[Change]) {
            for c in changes {
                match c {
                    Change::CreateResource { path } => {
                        assert!(self.api.get(path).is_none(), "duplicate sibling {path}");
                    }
                    Change::PutMethod { path, verb, .. } => {
                        let r = self.api.get(path).expect("resource exists");
                        assert!(
                            !r.methods.contains_key(verb.as_str()),
                            "PutMethod over existing"
                        );
                    }
                    Change::ReplaceMethod { path, .. } | Change::DeleteMethod { path, .. } => {
                        assert!(self.api.get(path).is_some(), "resource exists");
                    }
                    Change::PutIntegration { path, verb, .. } => {
                        let r = self.api.get(path).expect("resource exists");
                        assert!(r.methods.contains_key(verb.as_str()), "method exists");
                    }
                    Change::AddPermission {
                        function,
                        sid,
                        source_arn,
                    }
                    | Change::ReplacePermission {
                        function,
                        sid,
                        source_arn,
                    } => {
                        let p = self.policies.get_mut(function).unwrap().as_mut().unwrap();
                        if matches!(c, Change::AddPermission { .. }) {
                            assert!(
                                !p.iter().any(|s| &s.sid == sid),
                                "AddPermission over existing sid"
                            );
                        }
                        p.retain(|s| &s.sid != sid);
                        p.push(PolicyStatement::invoke_from(sid, source_arn, function));
                    }
                    Change::RemovePermission { function, sid } => {
                        let p = self.policies.get_mut(function).unwrap().as_mut().unwrap();
                        assert!(p.iter().any(|s| &s.sid == sid));
                        p.retain(|s| &s.sid != sid);
                    }
                    Change::DeleteResource { path } => {
                        let below = format!("{path}/");
                        assert!(
                            !self.api.resources.keys().any(|p| p.starts_with(&below)),
                            "deleting {path} before its children"
                        );
                    }
                    Change::PutPreflight { path, .. } => {
                        let r = self.api.get(path).expect("resource exists");
                        assert!(r.methods.contains_key("OPTIONS"), "method exists");
                    }
                    // Stage method settings, as UpdateStage changes them.
                    Change::PutThrottle {
                        path,
                        verb,
                        throttle,
                        copy,
                        ..
                    } => {
                        // AWS starts a new entry from its own defaults.
                        let e = self
                            .settings()
                            .entry(settings_key(path, verb.as_str()))
                            .or_insert(StageMethodSetting {
                                rate_limit: Rate(-1.0),
                                burst_limit: -1,
                                behaviour: Behaviour::default(),
                            });
                        e.rate_limit = Rate(throttle.rate_limit.get());
                        e.burst_limit = throttle.burst_limit as i32;
                        if let Some(b) = copy {
                            e.behaviour = b.clone();
                        }
                    }
                    Change::ClearThrottle {
                        path,
                        verb,
                        keep,
                        to,
                        ..
                    } => {
                        let key = settings_key(path, verb);
                        if *keep {
                            let e = self.settings().get_mut(&key).expect("entry exists");
                            (e.rate_limit, e.burst_limit) = *to;
                        } else {
                            // AWS: 400 "no method setting for this method" when absent.
                            assert!(self.settings().remove(&key).is_some(), "{key}");
                        }
                    }
                }
                c.apply_to(&mut self.api);
            }
        }

        fn plan(&self, mounts: &[DesiredMount], retained: &[&str], hold: bool) -> Plan {
            let retained: BTreeSet<MountId> = retained.iter().map(|s| id(None, s)).collect();
            let held: BTreeSet<Option<String>> = if hold { [None].into() } else { BTreeSet::new() };
            self.plan_with(mounts, &retained, &held, &BTreeMap::new())
        }

        /// A plan with these mounts retained, these tenants' removals held
        /// back, and per-tenant delete limits.
        fn plan_with(
            &self,
            mounts: &[DesiredMount],
            retained: &BTreeSet<MountId>,
            held: &BTreeSet<Option<String>>,
            delete_limits: &BTreeMap<Option<String>, usize>,
        ) -> Plan {
            plan(&PlanInput {
                owner: OWNER,
                api_id: API,
                api_account: Some(ACCOUNT),
                region: REGION,
                api: &self.api,
                stage: self.stage.as_ref(),
                mounts,
                retained,
                held,
                policies: &self.policies,
                delete_limits,
                tenancy: self.tenancy.as_ref(),
                abandoned: &self.abandoned,
                account_limit: &AccountLimit::default_in(REGION),
            })
        }

        /// Plans and applies until converged; returns the first plan.
        fn converge(&mut self, mounts: &[DesiredMount]) -> Plan {
            let first = self.plan(mounts, &[], false);
            let all: Vec<Change> = first.changes().cloned().collect();
            self.apply(&all);
            let again = self.plan(mounts, &[], false);
            assert!(again.is_empty(), "not converged: {:#?}", again);
            first
        }

        fn paths(&self) -> Vec<&str> {
            self.api.resources.keys().map(String::as_str).collect()
        }

        fn statements(&self, function: &str) -> usize {
            self.policies[&func(function).arn()].as_ref().unwrap().len()
        }
    }

    fn world() -> World {
        let mut w = World::new();
        for f in ["acct", "pay", "admin"] {
            w.add_function(f);
        }
        w
    }

    #[test]
    fn a_function_in_another_account_is_invoked_as_the_apis_account() {
        let mut w = World::new();
        let team = ResolvedFunction::from_arn(&format!(
            "arn:aws:lambda:{REGION}:222222222222:function:pay"
        ))
        .unwrap();
        w.policies.insert(team.arn(), Some(Vec::new()));
        let m = mount(
            "payments",
            "/payments",
            &format!("arn:aws:lambda:{REGION}:222222222222:function:pay"),
            "",
        );
        let ms = vec![DesiredMount {
            mount: m,
            function: Ok(team.clone()),
        }];
        let p = w.converge(&ms);
        let sources: Vec<&str> = p
            .changes()
            .filter_map(|c| match c {
                Change::AddPermission {
                    function,
                    source_arn,
                    ..
                } if function == &team.arn() => Some(source_arn.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            sources,
            vec![
                format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/*/*/payments"),
                format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/*/*/payments/*"),
            ],
            "{p:#?}"
        );
        // The integration names the function where it is.
        assert!(
            p.changes().any(|c| c.to_string().contains("222222222222")),
            "{p:#?}"
        );
    }

    #[test]
    fn fresh_mount_then_converged_plan_is_empty() {
        let mut w = world();
        let ms = vec![desired(mount("accounts", "/v1/accounts", "acct", ""))];
        let p = w.converge(&ms);
        let lines: Vec<String> = p.changes().map(|c| c.to_string()).collect();
        assert_eq!(lines[0], "+ resource /v1");
        assert_eq!(lines[1], "+ resource /v1/accounts");
        assert_eq!(lines[2], "+ resource /v1/accounts/{proxy+}");
        // Permissions come after the methods that name the function.
        let first_perm = lines
            .iter()
            .position(|l| l.starts_with("+ permission"))
            .unwrap();
        assert!(lines[..first_perm]
            .iter()
            .any(|l| l.starts_with("+ integration")));
        assert_eq!(p.counts(), (9, 0, 0));
        assert_eq!(
            w.paths(),
            vec!["/", "/v1", "/v1/accounts", "/v1/accounts/{proxy+}"]
        );
        assert_eq!(w.statements("acct"), 2);
        let m = &w.api.get("/v1/accounts").unwrap().methods["ANY"];
        let op = m.operation_name.as_deref().unwrap();
        assert_eq!(op, marker(OWNER, &ms[0].mount));
        assert!(op.starts_with("apimount:team-a:accounts@"), "{op}");
    }

    #[test]
    fn shared_parent_is_created_once() {
        let mut w = world();
        let ms = vec![
            desired(mount("accounts", "/v1/accounts", "acct", "")),
            desired(mount("payments", "/v1/payments", "pay", "")),
        ];
        let p = w.converge(&ms);
        let creates = p
            .changes()
            .filter(|c| matches!(c, Change::CreateResource { path } if path == "/v1"))
            .count();
        assert_eq!(creates, 1);
    }

    #[test]
    fn drift_is_planned_back() {
        let mut w = world();
        let ms = vec![desired(mount("accounts", "/accounts", "acct", ""))];
        w.converge(&ms);
        // Hand edits: authorization changed, integration re-pointed, statement altered.
        {
            let r = w.api.resources.get_mut("/accounts").unwrap();
            let m = r.methods.get_mut("ANY").unwrap();
            m.authorization_type = "AWS_IAM".into();
            let r = w.api.resources.get_mut("/accounts/{proxy+}").unwrap();
            let m = r.methods.get_mut("ANY").unwrap();
            m.integration.as_mut().unwrap().uri = Some(func("pay").integration_uri(REGION));
            let p = w
                .policies
                .get_mut(&func("acct").arn())
                .unwrap()
                .as_mut()
                .unwrap();
            p[0].source_arn = Some("arn:aws:execute-api:x".into());
        }
        let p = w.plan(&ms, &[], false);
        let lines: Vec<String> = p.changes().map(|c| c.to_string()).collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("~ method ANY /accounts: authorization AWS_IAM -> NONE")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("~ integration ANY /accounts/{proxy+}")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("~ permission")),
            "{lines:?}"
        );
        w.converge(&ms);
    }

    #[test]
    fn orphans_go_statements_first_deepest_resource_first() {
        let mut w = world();
        let both = vec![
            desired(mount("accounts", "/v1/accounts", "acct", "")),
            desired(mount("payments", "/v2/payments", "pay", "")),
        ];
        w.converge(&both);
        let one = vec![both[1].clone()];
        let p = w.plan(&one, &[], false);
        assert_eq!(p.cleanups.len(), 1);
        let lines: Vec<String> = p.cleanups[0]
            .changes
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(lines[0].starts_with("- permission"), "{lines:?}");
        assert!(lines[1].starts_with("- permission"), "{lines:?}");
        assert_eq!(
            &lines[2..],
            [
                "- resource /v1/accounts/{proxy+}",
                "- resource /v1/accounts",
                "- resource /v1"
            ]
        );
        w.converge(&one);
        assert_eq!(
            w.paths(),
            vec!["/", "/v2", "/v2/payments", "/v2/payments/{proxy+}"]
        );
        assert_eq!(w.statements("acct"), 0);
    }

    #[test]
    fn removing_the_outer_of_nested_mounts_keeps_the_inner() {
        let mut w = world();
        let both = vec![
            desired(mount("accounts", "/accounts", "acct", "")),
            desired(mount("admin", "/accounts/admin", "admin", "")),
        ];
        w.converge(&both);
        let inner = vec![both[1].clone()];
        let p = w.plan(&inner, &[], false);
        let lines: Vec<String> = p.changes().map(|c| c.to_string()).collect();
        assert!(
            lines.contains(&"- method ANY /accounts".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"- resource /accounts/{proxy+}".to_string()),
            "{lines:?}"
        );
        assert!(
            !lines.contains(&"- resource /accounts".to_string()),
            "{lines:?}"
        );
        w.converge(&inner);
        assert!(w.api.get("/accounts/admin/{proxy+}").is_some());
        assert!(w.api.get("/accounts").unwrap().methods.is_empty());
        assert_eq!(w.statements("admin"), 2);
    }

    #[test]
    fn foreign_and_other_owner_routes_conflict_and_are_never_touched() {
        let mut w = world();
        w.foreign("/legacy", "GET", None);
        w.foreign("/other", "ANY", Some("apimount:team-b:other"));
        w.foreign("/keep", "GET", Some("getKeep"));
        let ms = vec![
            desired(mount("legacy", "/legacy", "acct", "  proxy: false\n")),
            desired(mount("other", "/other", "pay", "")),
            desired(mount("fine", "/fine", "admin", "")),
        ];
        let p = w.plan(&ms, &[], false);
        let blocked: Vec<(&str, Reason)> = p
            .blocked()
            .map(|(m, pr)| (m.id.name.as_str(), pr.reason))
            .collect();
        assert_eq!(
            blocked,
            vec![
                ("legacy", Reason::PathConflict),
                ("other", Reason::PathConflict)
            ]
        );
        for c in p.changes() {
            let s = c.to_string();
            assert!(
                !s.contains("/legacy") && !s.contains("/other") && !s.contains("/keep"),
                "{s}"
            );
        }
        assert!(p.cleanups.is_empty());
    }

    #[test]
    fn adopting_a_route_of_the_same_shape() {
        let mut w = world();
        let m = mount(
            "accounts",
            "/accounts",
            "acct",
            "  proxy: false\n  adopt: true\n",
        );
        // Made by another tool: same function, no marker.
        w.foreign("/accounts", "ANY", Some("serverless"));
        {
            let mm = w
                .api
                .resources
                .get_mut("/accounts")
                .unwrap()
                .methods
                .get_mut("ANY")
                .unwrap();
            mm.integration = Some(ObservedIntegration::lambda_proxy(
                &func("acct").integration_uri(REGION),
            ));
        }
        let p = w.converge(&[desired(m.clone())]);
        assert!(p.changes().any(|c| c.to_string().contains("adopt")));
        // A different shape is not adopted.
        let mut w2 = world();
        w2.foreign("/accounts", "ANY", Some("serverless"));
        let p = w2.plan(&[desired(m)], &[], false);
        assert_eq!(p.blocked().count(), 1);
    }

    #[test]
    fn a_foreign_method_is_adoptable_only_in_the_manifests_exact_shape() {
        let f = func("acct");
        let uri = f.integration_uri(REGION);
        let other_uri = func("pay").integration_uri(REGION);
        let plain = mount("m", "/m", "acct", "  methods: [GET]\n");
        let cors = mount("m", "/m", "acct", &format!("  methods: [GET]\n{CORS}"));
        let proxy = ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name: None,
            integration: Some(ObservedIntegration::lambda_proxy(&uri)),
            responses: Default::default(),
        };
        let mock = ObservedMethod {
            integration: Some(ObservedIntegration {
                kind: "MOCK".into(),
                http_method: None,
                uri: None,
                ..ObservedIntegration::lambda_proxy("")
            }),
            ..proxy.clone()
        };
        let with = |change: &dyn Fn(&mut ObservedMethod)| {
            let mut m = proxy.clone();
            change(&mut m);
            m
        };
        let iam_mock = ObservedMethod {
            authorization_type: "AWS_IAM".into(),
            ..mock.clone()
        };
        let iam = with(&|m| m.authorization_type = "AWS_IAM".into());
        let authorizer = with(&|m| m.authorizer_id = Some("auth1".into()));
        let key = with(&|m| m.api_key_required = true);
        let elsewhere =
            with(&|m| m.integration = Some(ObservedIntegration::lambda_proxy(&other_uri)));
        let bare = with(&|m| m.integration = None);
        let cases: Vec<(&str, &ObservedMethod, &str, &Mount, bool)> = vec![
            ("the exact shape", &proxy, "GET", &plain, true),
            (
                "a verb the manifest does not list",
                &proxy,
                "POST",
                &plain,
                false,
            ),
            ("another authorization", &iam, "GET", &plain, false),
            ("an authorizer", &authorizer, "GET", &plain, false),
            ("an API key", &key, "GET", &plain, false),
            ("another function", &elsewhere, "GET", &plain, false),
            ("no integration", &bare, "GET", &plain, false),
            ("a preflight with cors", &mock, "OPTIONS", &cors, true),
            ("a preflight behind IAM", &iam_mock, "OPTIONS", &cors, false),
            (
                "a Lambda OPTIONS with cors",
                &proxy,
                "OPTIONS",
                &cors,
                false,
            ),
            ("a preflight without cors", &mock, "OPTIONS", &plain, false),
        ];
        for (what, method, verb, m, want) in cases {
            assert_eq!(adoptable(method, verb, m, &uri), want, "{what}");
        }
    }

    #[test]
    fn an_integration_diff_names_what_differs() {
        let want = ObservedIntegration::lambda_proxy("arn:want").with_timeout(Some(5000));
        let method = |i: Option<ObservedIntegration>| ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name: None,
            integration: i,
            responses: Default::default(),
        };
        let with = |change: &dyn Fn(&mut ObservedIntegration)| {
            let mut i = want.clone();
            change(&mut i);
            method(Some(i))
        };
        let table: Vec<(ObservedMethod, &str)> = vec![
            (method(None), "integration missing"),
            (with(&|i| i.kind = "HTTP".into()), "type HTTP -> AWS_PROXY"),
            (
                with(&|i| i.http_method = Some("GET".into())),
                "integration method GET -> POST",
            ),
            (
                with(&|i| i.timeout_ms = Some(1000)),
                "timeout 1000 ms -> 5000 ms",
            ),
        ];
        for (observed, diff) in table {
            assert_eq!(integration_diff(&observed, &want), diff);
        }
        let moved = integration_diff(&with(&|i| i.uri = Some("arn:old".into())), &want);
        assert!(moved.starts_with("was "), "{moved}");
    }

    #[test]
    fn a_method_diff_names_each_setting_that_differs() {
        let want = MethodSettings {
            authorization: Authorization::Custom,
            authorizer_id: Some("def456".into()),
            api_key_required: true,
            operation_name: "apimount:o:m".into(),
        };
        let method = crate::plan::model::test_method;
        let op = Some("apimount:o:m");
        let table = [
            (method("CUSTOM", Some("def456"), true, op), ""),
            (
                method("CUSTOM", Some("def456"), true, Some("getThings")),
                "owner marker getThings -> apimount:o:m",
            ),
            (
                method("CUSTOM", Some("def456"), true, None),
                "owner marker (none) -> apimount:o:m",
            ),
            (
                method("NONE", None, true, op),
                "authorization NONE -> CUSTOM, authorizer (none) -> def456",
            ),
            (
                method("CUSTOM", Some("abc123"), true, op),
                "authorizer abc123 -> def456",
            ),
            (
                method("CUSTOM", Some("def456"), false, op),
                "API key required false -> true",
            ),
        ];
        for (observed, diff) in table {
            assert_eq!(method_diff(&observed, &want), diff, "{observed:?}");
        }
    }

    #[test]
    fn invalid_manifests_and_unknown_files_keep_routes() {
        let mut w = world();
        let both = vec![
            desired(mount("accounts", "/accounts", "acct", "")),
            desired(mount("payments", "/payments", "pay", "")),
        ];
        w.converge(&both);
        let one = vec![both[0].clone()];
        // payments' file is invalid but its name is known: nothing of it goes.
        assert!(w.plan(&one, &["payments"], false).is_empty());
        // A file of unknown name failed: nothing goes at all.
        let p = w.plan(&one, &[], true);
        assert!(p.is_empty());
        assert_eq!(p.notes.len(), 1);
        // The incumbent's path can't be taken by another mount of ours meanwhile.
        let thief = vec![
            one[0].clone(),
            desired(mount("thief", "/payments", "acct", "")),
        ];
        let p = w.plan(&thief, &["payments"], false);
        assert_eq!(p.blocked().next().unwrap().1.reason, Reason::PathConflict);
    }

    #[test]
    fn missing_function_blocks_only_its_mount() {
        let mut w = world();
        let mut bad = desired(mount("ghost", "/ghost", "ghost", ""));
        bad.function = Err(Problem::new(Reason::FunctionNotFound, "no such function"));
        let ms = vec![bad, desired(mount("accounts", "/accounts", "acct", ""))];
        let p = w.plan(&ms, &[], false);
        assert_eq!(p.blocked().count(), 1);
        assert!(p.changes().any(|c| c.to_string().contains("/accounts")));
        assert!(!p.changes().any(|c| c.to_string().contains("/ghost")));
        w.apply(&p.changes().cloned().collect::<Vec<_>>());
        assert!(w.plan(&ms, &[], false).is_empty());
    }

    #[test]
    fn repointing_removes_the_old_statement_after_deploying() {
        let mut w = world();
        w.converge(&[desired(mount("accounts", "/accounts", "acct", ""))]);
        let moved = vec![desired(mount("accounts", "/accounts", "pay", ""))];
        let p = w.plan(&moved, &[], false);
        assert_eq!(p.after_deploy.len(), 2, "{p:#?}");
        assert!(p.cleanups.is_empty());
        w.converge(&moved);
        assert_eq!(w.statements("acct"), 0);
        assert_eq!(w.statements("pay"), 2);
    }

    #[test]
    fn methods_and_proxy_changes() {
        let mut w = world();
        w.converge(&[desired(mount("accounts", "/accounts", "acct", ""))]);
        let narrower = vec![desired(mount(
            "accounts",
            "/accounts",
            "acct",
            "  methods: [GET, POST]\n  proxy: false\n  authorization: AWS_IAM\n  apiKeyRequired: true\n",
        ))];
        w.converge(&narrower);
        assert_eq!(w.paths(), vec!["/", "/accounts"]);
        let r = w.api.get("/accounts").unwrap();
        assert_eq!(r.methods.keys().collect::<Vec<_>>(), vec!["GET", "POST"]);
        assert_eq!(
            r.methods["GET"].authorization_type,
            Authorization::AwsIam.as_str()
        );
        assert_eq!(w.statements("acct"), 1);
    }

    #[test]
    fn empty_leftovers_below_a_removed_route_go_with_it() {
        let mut w = world();
        let m = vec![desired(mount("x", "/x", "acct", ""))];
        w.converge(&m);
        // A crash left /x/{proxy+} without its method.
        w.api
            .resources
            .get_mut("/x/{proxy+}")
            .unwrap()
            .methods
            .clear();
        w.converge(&[]);
        assert_eq!(w.paths(), vec!["/"]);
    }

    #[test]
    fn journaled_method_less_resources_go_unless_needed() {
        let mut w = world();
        let keep = vec![desired(mount("b", "/b/inner", "acct", ""))];
        w.converge(&keep);
        // A pass creating /a/deep was cut short before any method; someone
        // else's /c is as empty, but is not in the journal.
        for p in ["/a", "/a/deep", "/c"] {
            w.add_resource(p);
        }
        w.abandoned = ["/a", "/a/deep", "/b"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let p = w.plan(&keep, &[], false);
        let deletes: Vec<&Change> = p.changes().collect();
        assert_eq!(
            deletes,
            vec![
                &Change::DeleteResource {
                    path: "/a/deep".into()
                },
                &Change::DeleteResource { path: "/a".into() },
            ],
            "deepest first, and /b (needed by a mount) stays"
        );
        // While a manifest is unreadable, nothing is deleted.
        assert!(w.plan(&keep, &[], true).is_empty());
        let all: Vec<Change> = p.changes().cloned().collect();
        w.apply(&all);
        assert!(w.paths().contains(&"/c"));
        assert!(!w.paths().contains(&"/a"));
    }

    #[test]
    fn mass_deletion_is_refused_above_the_limit() {
        let mut w = world();
        let all = vec![
            desired(mount("a", "/a", "acct", "")),
            desired(mount("b", "/b", "acct", "")),
            desired(mount("c", "/c", "acct", "")),
        ];
        w.converge(&all);
        let limited = |mounts: &[DesiredMount], limit| {
            w.plan_with(
                mounts,
                &BTreeSet::new(),
                &BTreeSet::new(),
                &[(None, limit)].into(),
            )
        };
        let p = limited(&all[..1], 1);
        assert!(p.is_empty(), "{p:#?}");
        assert!(p.notes[0].contains("refusing to remove 2 mounts"));
        assert!(!limited(&all[..1], 2).is_empty());
        assert!(limited(&[], 0).is_empty());
    }

    #[test]
    fn variable_sibling_blocks_proxy() {
        let mut w = world();
        w.add_resource("/accounts");
        w.add_resource("/accounts/{id}");
        let p = w.plan(
            &[desired(mount("accounts", "/accounts", "acct", ""))],
            &[],
            false,
        );
        assert_eq!(p.blocked().next().unwrap().1.reason, Reason::PathConflict);
    }

    #[test]
    fn unreadable_policy_blocks_the_mount_and_deletes_nothing() {
        let mut w = world();
        let ms = vec![desired(mount("accounts", "/accounts", "acct", ""))];
        w.converge(&ms);
        w.policies.insert(func("acct").arn(), None);
        let p = w.plan(&ms, &[], false);
        assert_eq!(p.blocked().next().unwrap().1.reason, Reason::AwsError);
        assert!(p.is_empty());
    }

    // ---- tenants ------------------------------------------------------------------

    const POLICY: &str = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: accounts
    paths: [/accounts]
    functions: [acct]
    authorizations: [NONE]
  - name: payments
    paths: [/payments]
    functions: [\"pay*\"]
    authorizations: [NONE]
    maxResources: 4
";

    fn tenanted(policy: &str) -> World {
        let mut w = world();
        w.tenancy = Some(parse_policy(Path::new("tenants.yaml"), policy.as_bytes()).unwrap());
        w
    }

    /// A mount from `tenant`'s folder.
    fn tmount(tenant: &str, name: &str, path: &str, function: &str, extra: &str) -> DesiredMount {
        let m = mount(name, path, function, extra);
        desired(Mount {
            tenant: Some(tenant.into()),
            key: format!("{tenant}/{name}.yaml"),
            ..m
        })
    }

    fn blocked(p: &Plan) -> Vec<(String, Reason)> {
        p.blocked()
            .map(|(m, pr)| (m.id.to_string(), pr.reason))
            .collect()
    }

    fn touches(p: &Plan, what: &str) -> bool {
        p.changes().any(|c| c.to_string().contains(what))
    }

    #[test]
    fn a_tenant_mounts_only_what_it_is_delegated_and_refusals_cost_no_change() {
        let mut w = tenanted(POLICY);
        w.converge(&[tmount("accounts", "accounts", "/accounts", "acct", "")]);
        let ms = vec![
            tmount("accounts", "accounts", "/accounts", "acct", ""),
            // Shadowing another tenant's route with a more specific literal path.
            tmount("payments", "login", "/accounts/login", "pay", ""),
            // Another tenant's function, around its authorizer.
            tmount("payments", "export", "/payments/export", "acct", ""),
            tmount(
                "payments",
                "iam",
                "/payments/iam",
                "pay",
                "  authorization: AWS_IAM\n",
            ),
            tmount(
                "payments",
                "adopt",
                "/payments/adopt",
                "pay",
                "  adopt: true\n",
            ),
            tmount("payments", "fine", "/payments", "pay", ""),
        ];
        let p = w.plan(&ms, &[], false);
        assert_eq!(
            blocked(&p),
            vec![
                ("payments/login".to_string(), Reason::NotDelegated),
                ("payments/export".to_string(), Reason::FunctionNotAllowed),
                ("payments/iam".to_string(), Reason::AuthorizationNotAllowed),
                ("payments/adopt".to_string(), Reason::AdoptNotAllowed),
            ]
        );
        for refused in [
            "/accounts/login",
            "/payments/export",
            "/payments/iam",
            "/payments/adopt",
        ] {
            assert!(!touches(&p, refused), "{refused}: {p:#?}");
        }
        assert!(!p.changes().any(|c| matches!(c, Change::AddPermission { function, .. } if function == &func("acct").arn())));
        assert!(touches(&p, "+ resource /payments"), "{p:#?}");
        assert!(p.cleanups.is_empty(), "nothing of accounts goes: {p:#?}");
        w.converge(&[ms[0].clone(), ms[5].clone()]);
    }

    #[test]
    fn a_tenant_over_its_resource_budget_is_refused_and_the_rest_applies() {
        let w = tenanted(POLICY);
        let ms = vec![
            // /payments, /payments/{proxy+}
            tmount("payments", "a", "/payments", "pay", ""),
            // + /payments/b/c, /payments/b/c/{proxy+} and the parent /payments/b: 5 > 4
            tmount("payments", "b", "/payments/b/c", "pay", ""),
            // + /payments/d: 3 in all, still fits
            tmount("payments", "d", "/payments/d", "pay", "  proxy: false\n"),
            tmount("accounts", "x", "/accounts", "acct", ""),
        ];
        let p = w.plan(&ms, &[], false);
        assert_eq!(
            blocked(&p),
            vec![("payments/b".to_string(), Reason::OverBudget)]
        );
        assert!(!touches(&p, "/payments/b"), "{p:#?}");
        assert!(touches(&p, "/payments/d") && touches(&p, "/accounts"));
    }

    #[test]
    fn holds_and_the_mass_deletion_guard_are_per_tenant() {
        let mut w = tenanted(POLICY);
        let all = vec![
            tmount("accounts", "a1", "/accounts", "acct", "  proxy: false\n"),
            tmount(
                "accounts",
                "a2",
                "/accounts/two",
                "acct",
                "  proxy: false\n",
            ),
            tmount("payments", "p1", "/payments", "pay", "  proxy: false\n"),
            tmount("payments", "p2", "/payments/two", "pay", "  proxy: false\n"),
        ];
        w.converge(&all);
        let kept = vec![all[0].clone(), all[2].clone()];
        // An unreadable file in accounts' folder holds only accounts' removals.
        let held: BTreeSet<Option<String>> = [Some("accounts".to_string())].into();
        let input = |held, limits| w.plan_with(&kept, &BTreeSet::new(), held, limits);
        let no_limits = BTreeMap::new();
        let p = input(&held, &no_limits);
        let removed: Vec<Option<String>> = p
            .cleanups
            .iter()
            .map(|c| c.mount.as_ref().map(MountId::to_string))
            .collect();
        assert_eq!(removed, vec![Some("payments/p2".to_string())], "{p:#?}");
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("of tenant 'accounts' are kept")));
        // A tenant over its guard keeps its routes; the other's go.
        let limits: BTreeMap<Option<String>, usize> = [(Some("accounts".to_string()), 0)].into();
        let p = input(&BTreeSet::new(), &limits);
        let removed: Vec<Option<String>> = p
            .cleanups
            .iter()
            .map(|c| c.mount.as_ref().map(MountId::to_string))
            .collect();
        assert_eq!(removed, vec![Some("payments/p2".to_string())], "{p:#?}");
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("refusing to remove 1 mounts of tenant 'accounts'")));
    }

    #[test]
    fn removals_the_guard_holds_back_still_count_against_the_budget() {
        let mut w = tenanted(POLICY);
        // /payments, /payments/a, /payments/b: 3 of payments' 4.
        let old = vec![
            tmount("payments", "a", "/payments/a", "pay", "  proxy: false\n"),
            tmount("payments", "b", "/payments/b", "pay", "  proxy: false\n"),
        ];
        w.converge(&old);
        // Both go, and a newcomer needs /payments, /payments/c, /payments/c/d:
        // 3 if the old routes are removed, 5 if they stay.
        let new = vec![tmount(
            "payments",
            "c",
            "/payments/c/d",
            "pay",
            "  proxy: false\n",
        )];
        // (the tenant's --max-delete, whether the newcomer is refused)
        for (limit, refused) in [(1, true), (2, false), (usize::MAX, false)] {
            let limits: BTreeMap<Option<String>, usize> =
                [(Some("payments".to_string()), limit)].into();
            let p = w.plan_with(&new, &BTreeSet::new(), &BTreeSet::new(), &limits);
            let want = if refused {
                vec![("payments/c".to_string(), Reason::OverBudget)]
            } else {
                vec![]
            };
            assert_eq!(blocked(&p), want, "limit {limit}: {p:#?}");
            assert_eq!(p.cleanups.is_empty(), refused, "limit {limit}: {p:#?}");
        }
    }

    #[test]
    fn a_live_mount_may_not_grow_past_the_budget_and_keeps_its_routes() {
        let mut w = tenanted(POLICY);
        let at = |path: &str| vec![tmount("payments", "a", path, "pay", "  proxy: false\n")];
        w.converge(&at("/payments"));
        // /payments, /payments/b, /payments/b/c, /payments/b/c/d: 4 of 4.
        assert!(blocked(&w.plan(&at("/payments/b/c/d"), &[], false)).is_empty());
        // One level more is 5: refused, and nothing of it is touched.
        let p = w.plan(&at("/payments/b/c/d/e"), &[], false);
        assert_eq!(
            blocked(&p),
            vec![("payments/a".to_string(), Reason::OverBudget)]
        );
        assert!(p.is_empty(), "{p:#?}");
        assert!(w.api.get("/payments").is_some());
        // A move frees the resources it leaves: from /payments/x/y (3) to
        // /payments/b/c/d (4) fits, though both together would be 6.
        w.converge(&at("/payments/x/y"));
        let p = w.plan(&at("/payments/b/c/d"), &[], false);
        assert!(blocked(&p).is_empty(), "{p:#?}");
        assert!(touches(&p, "/payments/b/c/d"), "{p:#?}");
    }

    #[test]
    fn removals_leave_the_root_and_a_path_still_needed() {
        let mut w = world();
        let a = desired(mount("a", "/a/x", "acct", "  proxy: false\n"));
        let b = desired(mount("b", "/a", "pay", "  proxy: false\n"));
        w.converge(&[a.clone(), b.clone()]);
        // /a/x goes; /a stays, as b's route.
        let p = w.plan(&[b], &[], false);
        assert_eq!(
            lines(&p)
                .into_iter()
                .filter(|l| l.starts_with("- resource"))
                .collect::<Vec<_>>(),
            vec!["- resource /a/x".to_string()]
        );
        // Everything goes but the root resource, which AWS never deletes.
        let p = w.plan(&[], &[], false);
        let l = lines(&p);
        assert!(l.contains(&"- resource /a".to_string()), "{l:?}");
        assert!(!l.contains(&"- resource /".to_string()), "{l:?}");
        w.converge(&[]);
        assert_eq!(w.paths(), ["/"]);
        // Not even when the journal names it (a stage tag edited by hand).
        w.abandoned.insert("/".into());
        let p = w.plan(&[], &[], false);
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn a_statement_already_gone_is_not_removed_again() {
        let mut w = world();
        let a = desired(mount("a", "/a", "acct", "  proxy: false\n"));
        let b = desired(mount("b", "/b", "acct", "  proxy: false\n"));
        w.converge(std::slice::from_ref(&a));
        let sid_a = w.policies[&func("acct").arn()].as_ref().unwrap()[0]
            .sid
            .clone();
        w.converge(&[a.clone(), b]);
        assert_eq!(w.statements("acct"), 2);
        // b's statement deleted by hand: removing b removes its method and
        // resource, and no statement (AWS would answer 404; a's stays).
        w.policies
            .get_mut(&func("acct").arn())
            .unwrap()
            .as_mut()
            .unwrap()
            .retain(|s| s.sid == sid_a);
        let p = w.plan(&[a], &[], false);
        assert!(touches(&p, "/b"), "{p:#?}");
        assert!(
            !p.changes()
                .any(|c| matches!(c, Change::RemovePermission { .. })),
            "{p:#?}"
        );
    }

    #[test]
    fn a_mounts_grants_come_after_all_its_api_gateway_changes() {
        let w = world();
        // Two routes (/acct and /acct/{proxy+}), each with its method,
        // integration and permission.
        let p = w.plan(&[desired(mount("a", "/acct", "acct", ""))], &[], false);
        let changes: Vec<&Change> = p.changes().collect();
        let grant = |c: &&Change| matches!(c, Change::AddPermission { .. });
        let grants = changes.iter().filter(|c| grant(c)).count();
        assert_eq!(grants, 2, "{changes:#?}");
        // The grants are one block at the end, where the reconciler takes
        // them for the permission lane.
        assert!(
            changes[changes.len() - grants..].iter().all(grant),
            "{changes:#?}"
        );
    }

    #[test]
    fn a_plan_counts_its_creates_updates_and_deletes_as_its_lines_show() {
        let mut w = world();
        let get = "  proxy: false\n  methods: [GET, POST]\n";
        w.converge(&[
            desired(mount("a", "/a", "acct", get)),
            desired(mount("b", "/b", "acct", get)),
        ]);
        // a: another function (updates); b: a verb fewer (a delete); c: new.
        let p = w.plan(
            &[
                desired(mount("a", "/a", "pay", get)),
                desired(mount(
                    "b",
                    "/b",
                    "acct",
                    "  proxy: false\n  methods: [GET]\n",
                )),
                desired(mount("c", "/c", "acct", "  proxy: false\n")),
            ],
            &[],
            false,
        );
        let l = lines(&p);
        let signs = |sign: char| l.iter().filter(|l| l.starts_with(sign)).count();
        let counts = p.counts();
        assert_eq!(counts, (signs('+'), signs('~'), signs('-')), "{l:?}");
        assert!(counts.0 > 0 && counts.1 > 0 && counts.2 > 0, "{l:?}");
    }

    #[test]
    fn a_statement_of_ours_that_no_route_needs_is_removed() {
        let mut w = world();
        w.converge(&[desired(mount(
            "pay",
            "/payments",
            "pay",
            "  proxy: false\n",
        ))]);
        assert_eq!(w.statements("pay"), 1);
        // The route deleted by hand, then its manifest: the statement is all
        // that is left of it.
        w.api.resources.remove("/payments");
        let p = w.plan(&[], &[], false);
        assert_eq!(
            lines(&p),
            vec![format!(
                "- permission {} on {}",
                Route("/payments".into()).statement_id(API, OWNER),
                func("pay").arn()
            )]
        );
        w.converge(&[]);
        assert_eq!(w.statements("pay"), 0);
    }

    #[test]
    fn a_removed_delegation_detaches_the_tenants_routes() {
        let mut w = tenanted(POLICY);
        let ms = vec![
            tmount("accounts", "a", "/accounts", "acct", ""),
            tmount("payments", "p", "/payments", "pay", ""),
        ];
        w.converge(&ms);
        w.tenancy = Some(
            parse_policy(
                Path::new("tenants.yaml"),
                POLICY
                    .replace("paths: [/accounts]", "paths: [/elsewhere]")
                    .as_bytes(),
            )
            .unwrap(),
        );
        let p = w.plan(&ms, &[], false);
        assert_eq!(
            blocked(&p),
            vec![("accounts/a".to_string(), Reason::NotDelegated)]
        );
        assert!(touches(&p, "- resource /accounts"), "{p:#?}");
        assert!(!touches(&p, "/payments"), "{p:#?}");
        w.converge(&ms);
        assert_eq!(w.paths(), vec!["/", "/payments", "/payments/{proxy+}"]);
    }

    #[test]
    fn routes_made_before_the_policy_are_taken_over_in_place() {
        let mut w = world();
        w.converge(&[desired(mount("accounts", "/accounts", "acct", ""))]);
        w.tenancy = tenanted(POLICY).tenancy;
        let ms = vec![tmount("accounts", "accounts", "/accounts", "acct", "")];
        let p = w.plan(&ms, &[], false);
        assert!(p.cleanups.is_empty(), "nothing is removed: {p:#?}");
        assert!(!p.changes().any(|c| matches!(
            c,
            Change::DeleteResource { .. } | Change::DeleteMethod { .. }
        )));
        assert!(
            p.changes()
                .any(|c| matches!(c, Change::ReplaceMethod { .. })),
            "{p:#?}"
        );
        w.converge(&ms);
        let m = &w.api.get("/accounts").unwrap().methods["ANY"];
        assert!(m
            .ownership()
            .is_mount(OWNER, &id(Some("accounts"), "accounts")));
    }

    // ---- route options -------------------------------------------------------------

    const CORS: &str = "  cors:\n    allowOrigins: [\"https://app.example\"]\n";
    const THROTTLE: &str = "  throttle:\n    rateLimit: 100\n    burstLimit: 200\n";

    fn entry(rate: f64, burst: i32, logging: Option<&str>) -> StageMethodSetting {
        StageMethodSetting {
            rate_limit: Rate(rate),
            burst_limit: burst,
            behaviour: Behaviour {
                logging_level: logging.unwrap_or("OFF").to_string(),
                metrics: logging.is_some(),
                ..Behaviour::default()
            },
        }
    }

    /// The lines of one change per verb ANY answers (no preflight).
    fn per_verb(sign: &str, path: &str, rest: &str) -> Vec<String> {
        ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
            .iter()
            .map(|v| format!("{sign} throttle {v} {path}{rest}"))
            .collect()
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.changes().map(|c| c.to_string()).collect()
    }

    /// The lines of the `i`th mount's own changes (not its removals); it
    /// must not be blocked.
    fn mount_lines(p: &Plan, i: usize) -> Vec<String> {
        match &p.mounts[i].action {
            MountAction::Apply(c) => c.iter().map(|c| c.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cors_preflight_is_made_healed_and_removed() {
        let mut w = world();
        let ms = vec![desired(mount("accounts", "/accounts", "acct", CORS))];
        let p = w.converge(&ms);
        let l = lines(&p);
        for path in ["/accounts", "/accounts/{proxy+}"] {
            assert!(
                l.contains(&format!("+ method OPTIONS {path} (authorization NONE)")),
                "{l:?}"
            );
            assert!(
                l.contains(&format!(
                    "+ CORS preflight OPTIONS {path}: origins https://app.example"
                )),
                "{l:?}"
            );
        }
        let options = &w.api.get("/accounts").unwrap().methods["OPTIONS"];
        assert!(options.ownership().is_mount(OWNER, &id(None, "accounts")));
        assert_eq!(options.integration.as_ref().unwrap().kind, "MOCK");
        // Only the Lambda routes get permissions: two statements, as before.
        assert_eq!(w.statements("acct"), 2);
        // Drift: a header changed by hand.
        {
            let m = w
                .api
                .resources
                .get_mut("/accounts/{proxy+}")
                .unwrap()
                .methods
                .get_mut("OPTIONS")
                .unwrap();
            let r = m
                .integration
                .as_mut()
                .unwrap()
                .responses
                .get_mut("200")
                .unwrap();
            r.parameters.insert(
                "method.response.header.Access-Control-Allow-Origin".into(),
                "'*'".into(),
            );
        }
        let p = w.plan(&ms, &[], false);
        assert_eq!(
            lines(&p),
            vec!["~ CORS preflight OPTIONS /accounts/{proxy+}: Access-Control-Allow-Origin '*' -> 'https://app.example'"]
        );
        assert!(p.changes().all(|c| c.alters_routes(&w.api)));
        w.converge(&ms);
        // The field removed: the preflights go, nothing else.
        let plain = vec![desired(mount("accounts", "/accounts", "acct", ""))];
        let p = w.plan(&plain, &[], false);
        let l = lines(&p);
        assert!(
            l.contains(&"- method OPTIONS /accounts".to_string()),
            "{l:?}"
        );
        assert!(
            l.contains(&"- method OPTIONS /accounts/{proxy+}".to_string()),
            "{l:?}"
        );
        assert!(!l.iter().any(|l| l.starts_with('+')), "{l:?}");
        w.converge(&plain);
        assert!(!w
            .api
            .get("/accounts")
            .unwrap()
            .methods
            .contains_key("OPTIONS"));
    }

    #[test]
    fn a_verb_dropped_from_a_mount_with_cors_goes_and_its_preflight_stays() {
        let mut w = world();
        let both = vec![desired(mount(
            "m",
            "/m",
            "acct",
            &format!("  proxy: false\n  methods: [GET, POST]\n{CORS}"),
        ))];
        w.converge(&both);
        let get = vec![desired(mount(
            "m",
            "/m",
            "acct",
            &format!("  proxy: false\n  methods: [GET]\n{CORS}"),
        ))];
        // POST goes; the preflight stops offering it (and the markers take
        // the manifest's new fingerprint).
        let l = lines(&w.plan(&get, &[], false));
        assert!(l.contains(&"- method POST /m".to_string()), "{l:?}");
        assert!(
            l.contains(&"~ CORS preflight OPTIONS /m: Access-Control-Allow-Methods 'GET,OPTIONS,POST' -> 'GET,OPTIONS'".to_string()),
            "{l:?}"
        );
        assert!(
            !l.iter().any(|l| l.starts_with("- method OPTIONS")),
            "{l:?}"
        );
        // It is this mount's own change, not a removal: it is made while
        // removals are held back (an unreadable file in the folder).
        let held = w.plan(&get, &[], true);
        let l = mount_lines(&held, 0);
        assert!(l.contains(&"- method POST /m".to_string()), "{held:#?}");
        w.converge(&get);
        let verbs: Vec<&String> = w.api.get("/m").unwrap().methods.keys().collect();
        assert_eq!(verbs, ["GET", "OPTIONS"]);
    }

    #[test]
    fn another_tools_preflight_is_adopted_with_cors() {
        let mut w = world();
        w.foreign("/accounts", "OPTIONS", Some("serverless-cors"));
        w.api
            .resources
            .get_mut("/accounts")
            .unwrap()
            .methods
            .get_mut("OPTIONS")
            .unwrap()
            .integration = Some(ObservedIntegration {
            kind: "MOCK".into(),
            http_method: None,
            uri: None,
            ..ObservedIntegration::lambda_proxy("")
        });
        let without = vec![desired(mount(
            "accounts",
            "/accounts",
            "acct",
            "  adopt: true\n  proxy: false\n",
        ))];
        assert_eq!(w.plan(&without, &[], false).blocked().count(), 1);
        let with = vec![desired(mount(
            "accounts",
            "/accounts",
            "acct",
            &format!("  adopt: true\n  proxy: false\n{CORS}"),
        ))];
        let p = w.converge(&with);
        assert!(
            lines(&p).contains(
                &"~ method OPTIONS /accounts: adopt: mark as owned by this manifest".to_string()
            ),
            "{:?}",
            lines(&p)
        );
    }

    #[test]
    fn the_timeout_is_set_healed_and_reset() {
        let mut w = world();
        let ms = vec![desired(mount(
            "accounts",
            "/accounts",
            "acct",
            "  timeoutMs: 5000\n",
        ))];
        let p = w.converge(&ms);
        assert!(
            lines(&p)
                .iter()
                .any(|l| l.starts_with("+ integration ANY /accounts -> ")
                    && l.ends_with("(timeout 5000 ms)")),
            "{:?}",
            lines(&p)
        );
        let i = w.api.get("/accounts").unwrap().methods["ANY"]
            .integration
            .clone()
            .unwrap();
        assert_eq!(i.timeout_ms, Some(5000));
        // Drift: changed by hand.
        w.api
            .resources
            .get_mut("/accounts")
            .unwrap()
            .methods
            .get_mut("ANY")
            .unwrap()
            .integration
            .as_mut()
            .unwrap()
            .timeout_ms = Some(29_000);
        let p = w.plan(&ms, &[], false);
        let l = lines(&p);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(
            l[0].ends_with("(timeout 5000 ms): timeout 29000 ms -> 5000 ms"),
            "{l:?}"
        );
        w.converge(&ms);
        // Without the field, the default again; an integration that shows no
        // timeout has the default.
        let plain = vec![desired(mount("accounts", "/accounts", "acct", ""))];
        w.converge(&plain);
        let i = w.api.get("/accounts").unwrap().methods["ANY"]
            .integration
            .clone()
            .unwrap();
        assert_eq!(i.timeout(), 29_000);
    }

    #[test]
    fn throttling_touches_only_this_mounts_entries_and_never_deploys() {
        let mut w = world();
        let plain = vec![
            desired(mount("accounts", "/accounts", "acct", "")),
            desired(mount("payments", "/payments", "pay", THROTTLE)),
        ];
        w.converge(&plain[..1]);
        // The stage default logs and caches; another team's route has its
        // own entry; an earlier version left an ANY entry on ours.
        let mut default = entry(-1.0, -1, Some("INFO"));
        default.behaviour.caching = true;
        default.behaviour.cache_ttl_seconds = 60;
        w.settings().insert("*/*".into(), default.clone());
        w.settings()
            .insert("~1other/GET".into(), entry(7.0, 8, None));
        w.settings().insert(
            "~1accounts/ANY".into(),
            StageMethodSetting {
                rate_limit: Rate(100.0),
                burst_limit: 200,
                behaviour: default.behaviour.clone(),
            },
        );
        let foreign = w.stage.clone();
        let ms = vec![
            desired(mount("accounts", "/accounts", "acct", THROTTLE)),
            plain[1].clone(),
        ];
        let before = w.api.clone();
        let p = w.plan(&ms, &[], false);
        let accounts = mount_lines(&p, 0);
        // A throttle edit is made on the stage alone: no marker is
        // rewritten. Each verb ANY answers has its own entry; the ANY entry goes.
        let mut want = per_verb("+", "/accounts", ": 100 requests/s, burst 200");
        want.push("- throttle ANY /accounts (was 100 requests/s, burst 200)".into());
        want.extend(per_verb(
            "+",
            "/accounts/{proxy+}",
            ": 100 requests/s, burst 200",
        ));
        assert_eq!(accounts, want);
        // Every throttle change, and nothing else, is a stage setting.
        let throttles = p
            .changes()
            .filter(|c| c.to_string().contains("throttle "))
            .count();
        assert!(throttles >= want.len(), "{p:#?}");
        assert_eq!(
            p.changes().filter(|c| c.is_stage_setting()).count(),
            throttles
        );
        for c in p.changes().filter(|c| c.is_stage_setting()) {
            assert!(!c.alters_routes(&w.api), "{c}");
        }
        w.converge(&ms);
        assert_eq!(w.api, {
            let mut api = before.clone();
            for c in p.changes().filter(|c| !c.is_stage_setting()) {
                c.apply_to(&mut api);
            }
            api
        });
        let settings = w.settings().clone();
        let ours = &settings["~1accounts/GET"];
        assert_eq!((ours.rate_limit, ours.burst_limit), (Rate(100.0), 200));
        // The new entry logs and caches as the stage default does.
        assert_eq!(ours.behaviour, default.behaviour);
        assert!(!settings.contains_key("~1accounts/ANY"));
        assert_eq!(
            settings
                .keys()
                .filter(|k| k.starts_with("~1accounts"))
                .count(),
            14
        );
        for key in ["*/*", "~1other/GET"] {
            assert_eq!(
                settings[key],
                foreign.as_ref().unwrap().method_settings[key],
                "{key}"
            );
        }
        // Drift: changed by hand.
        w.settings()
            .get_mut("~1accounts~1{proxy+}/GET")
            .unwrap()
            .rate_limit = Rate(5000.0);
        assert_eq!(
            lines(&w.plan(&ms, &[], false)),
            vec!["~ throttle GET /accounts/{proxy+}: 100 requests/s, burst 200 (was 5000 requests/s, burst 200)"]
        );
        w.converge(&ms);
        // The stage default changed: every entry follows.
        w.settings()
            .get_mut("*/*")
            .unwrap()
            .behaviour
            .cache_ttl_seconds = 30;
        // (Both mounts throttle: 2 routes × 7 verbs each.)
        assert_eq!(lines(&w.plan(&ms, &[], false)).len(), 28);
        w.converge(&ms);
        assert_eq!(
            settings_of(&mut w, "~1accounts/POST")
                .behaviour
                .cache_ttl_seconds,
            30
        );
        // Someone set logging on one of our entries: it stays when the
        // throttle goes, following the stage default; the others go.
        w.settings()
            .get_mut("~1accounts/GET")
            .unwrap()
            .behaviour
            .logging_level = "ERROR".into();
        let l = lines(&w.plan(&plain, &[], false));
        assert!(l.contains(&"- throttle GET /accounts (was 100 requests/s, burst 200); its other method settings stay, its throttling follows the stage default (throttling disabled)".to_string()), "{l:?}");
        assert!(
            l.contains(
                &"- throttle POST /accounts/{proxy+} (was 100 requests/s, burst 200)".to_string()
            ),
            "{l:?}"
        );
        assert_eq!(l.len(), 14);
        w.converge(&plain);
        let settings = w.settings().clone();
        assert_eq!(settings["~1accounts/GET"].throttling(), (Rate(-1.0), -1));
        assert!(!settings.contains_key("~1accounts~1{proxy+}/GET"));
        // The mount removed: its entries go with it, in its cleanup.
        let p = w.plan(&plain[..1], &[], false);
        let cleanup: Vec<String> = p.cleanups[0]
            .changes
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(
            cleanup
                .contains(&"- throttle PUT /payments (was 100 requests/s, burst 200)".to_string()),
            "{cleanup:?}"
        );
        w.converge(&plain[..1]);
        let settings = w.settings().clone();
        assert!(
            !settings.keys().any(|k| k.starts_with("~1payments")),
            "{settings:?}"
        );
        assert_eq!(
            settings["~1other/GET"],
            foreign.as_ref().unwrap().method_settings["~1other/GET"]
        );
    }

    fn settings_of(w: &mut World, key: &str) -> StageMethodSetting {
        w.settings()[key].clone()
    }

    #[test]
    fn narrowed_methods_lose_their_throttling_and_a_first_stage_is_planned_for() {
        let mut w = world();
        w.stage = None;
        let ms = vec![desired(mount(
            "accounts",
            "/accounts",
            "acct",
            &format!("  methods: [GET, POST]\n  proxy: false\n{THROTTLE}"),
        ))];
        let p = w.plan(&ms, &[], false);
        assert!(p.changes().any(|c| matches!(
            c,
            Change::PutThrottle {
                copy: None,
                was: None,
                ..
            }
        )));
        w.stage = World::new().stage;
        w.converge(&ms);
        assert_eq!(w.settings().len(), 2);
        let get_only = vec![desired(mount(
            "accounts",
            "/accounts",
            "acct",
            &format!("  methods: [GET]\n  proxy: false\n{THROTTLE}"),
        ))];
        let l = lines(&w.plan(&get_only, &[], false));
        assert!(l.contains(&"- method POST /accounts".to_string()), "{l:?}");
        assert!(
            l.contains(&"- throttle POST /accounts (was 100 requests/s, burst 200)".to_string()),
            "{l:?}"
        );
        w.converge(&get_only);
        assert_eq!(
            w.settings().keys().collect::<Vec<_>>(),
            vec!["~1accounts/GET"]
        );
    }

    #[test]
    fn a_tenant_outside_its_option_bounds_is_refused_before_any_change() {
        let policy = POLICY.replace(
            "    maxResources: 4\n",
            "    maxResources: 4\n    cors: false\n    maxRateLimit: 50\n",
        );
        let w = tenanted(&policy);
        let ms = vec![
            tmount("payments", "open", "/payments", "pay", ""),
            tmount("payments", "fast", "/payments/fast", "pay", THROTTLE),
            tmount(
                "accounts",
                "fine",
                "/accounts",
                "acct",
                &format!("{CORS}{THROTTLE}"),
            ),
        ];
        let p = w.plan(&ms, &[], false);
        assert_eq!(
            blocked(&p),
            vec![
                ("payments/open".to_string(), Reason::OptionNotAllowed),
                ("payments/fast".to_string(), Reason::OptionNotAllowed),
            ]
        );
        assert!(!touches(&p, "/payments"), "{p:#?}");
        assert!(touches(&p, "+ CORS preflight OPTIONS /accounts"), "{p:#?}");
    }

    #[test]
    fn a_renamed_mount_keeps_the_permission_its_route_still_needs() {
        let mut w = world();
        let only = |verb: &str| format!("  methods: [{verb}]\n  proxy: false\n");
        w.converge(&[desired(mount(
            "accounts",
            "/accounts",
            "acct",
            &only("POST"),
        ))]);
        let before = w.statements("acct");
        // The manifest is renamed and serves GET instead: the old mount's
        // POST is an orphan, the new one serves the same route with the
        // same function, so the statement both name stays.
        let renamed = [desired(mount(
            "accounts-v2",
            "/accounts",
            "acct",
            &only("GET"),
        ))];
        let p = w.converge(&renamed);
        assert!(
            !p.changes()
                .chain(p.cleanups.iter().flat_map(|c| c.changes.iter()))
                .chain(p.after_deploy.iter())
                .any(|c| matches!(c, Change::RemovePermission { .. })),
            "{p:#?}"
        );
        assert_eq!(w.statements("acct"), before);
    }

    #[test]
    fn a_throttle_above_the_accounts_limit_keeps_its_routes_and_plans_nothing() {
        let mut w = world();
        let fast = "  throttle:\n    rateLimit: 20000\n    burstLimit: 200\n";
        let ms = vec![
            desired(mount("accounts", "/accounts", "acct", THROTTLE)),
            desired(mount("payments", "/payments", "pay", "")),
        ];
        w.converge(&ms);
        // The same mount asks for more than the account's default limit:
        // refused at its field, its routes (and entries) stay as they are.
        let ms = vec![
            desired(mount("accounts", "/accounts", "acct", fast)),
            ms[1].clone(),
        ];
        let p = w.plan(&ms, &[], false);
        assert_eq!(
            blocked(&p),
            vec![("accounts".to_string(), Reason::LimitExceeded)]
        );
        let MountAction::Blocked(problem) = &p.mounts[0].action else {
            unreachable!()
        };
        assert_eq!(problem.field, Some("spec.throttle.rateLimit"));
        assert!(problem.message.contains("--account-throttle"), "{problem}");
        assert_eq!(p.changes().count(), 0, "{p:#?}");
        assert!(p.cleanups.is_empty() && p.after_deploy.is_empty(), "{p:#?}");
    }
}
