//! The planner: desired mounts + the observed gateway → the changes one pass
//! makes. Pure: no I/O, no clock, no randomness, so it is tested with tables
//! and a converged input must give an empty plan.
//!
//! # Rules it enforces
//! - Only methods carrying this owner's marker are changed or deleted. A route
//!   already served by anything else is a `PathConflict` for the mount that
//!   wants it (unless the mount asks to adopt a route of exactly its shape).
//! - A mount whose manifest is invalid, or that cannot be planned (conflict,
//!   missing function, unreadable policy), keeps every route it has: its
//!   methods and permission statements are never treated as orphans.
//! - Orphans (this owner's methods whose mount is gone) are removed deepest
//!   resource first; a resource stays while anything that stays lives on or
//!   below it. Their permission statements go first, while the method that
//!   names the function still exists, so a crash cannot leak them.
//! - A statement made stale by re-pointing a route to another function is
//!   removed only after the deployment, because the live stage still invokes
//!   the old function until then.
//! - Calls AWS would refuse are never planned: no CreateResource over an
//!   existing sibling, no PutMethod over an existing method (it is deleted and
//!   put again), no AddPermission over an existing statement id.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::manifest::{HttpMethod, Mount};
use crate::model::{
    is_statement_of, marker, MethodSettings, Methods, ObservedApi, ObservedMethod, Ownership,
    PolicyStatement, ResolvedFunction, Route,
};
use crate::status::{Problem, Reason};

/// A mount ready for planning: the validated manifest and its resolved function.
#[derive(Debug, Clone)]
pub struct DesiredMount {
    pub mount: Mount,
    pub function: Result<ResolvedFunction, Problem>,
}

/// What the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub owner: &'a str,
    pub api_id: &'a str,
    /// Region of the REST API (and of the execute-api source ARNs).
    pub region: &'a str,
    pub api: &'a ObservedApi,
    pub mounts: &'a [DesiredMount],
    /// Names of mounts whose manifest exists but is invalid: their routes stay.
    pub retained: &'a BTreeSet<String>,
    /// A manifest could not be read and its name is unknown: remove nothing.
    pub hold_orphans: bool,
    /// Resource policies by function ARN; `None` where it could not be read.
    pub policies: &'a BTreeMap<String, Option<Vec<PolicyStatement>>>,
    /// Most removed mounts one pass may delete; above it, none are (mass-deletion guard).
    pub delete_limit: Option<usize>,
    /// Method-less resources an interrupted pass of this owner left (see `journal`).
    pub abandoned: &'a BTreeSet<String>,
}

/// One change to the gateway or to a function's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create a resource; its parent exists or is created before it.
    CreateResource {
        path: String,
    },
    /// Create a method that does not exist yet.
    PutMethod {
        path: String,
        verb: HttpMethod,
        settings: MethodSettings,
    },
    /// A method of ours whose settings drifted (or one being adopted or taken
    /// over): delete it and put it again. Nothing is live until the deployment.
    ReplaceMethod {
        path: String,
        verb: HttpMethod,
        settings: MethodSettings,
        why: String,
    },
    /// Create or overwrite the Lambda proxy integration of a method.
    PutIntegration {
        path: String,
        verb: HttpMethod,
        uri: String,
        why: Option<String>,
    },
    AddPermission {
        function: String,
        sid: String,
        source_arn: String,
    },
    /// Our statement id exists with other content: remove it and add it again.
    ReplacePermission {
        function: String,
        sid: String,
        source_arn: String,
    },
    RemovePermission {
        function: String,
        sid: String,
    },
    DeleteMethod {
        path: String,
        verb: String,
    },
    /// Delete a resource (and, on AWS, its subtree; we delete deepest first).
    DeleteResource {
        path: String,
    },
}

/// Coarse kind of a change, for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::CreateResource { .. }
            | Change::PutMethod { .. }
            | Change::AddPermission { .. } => ChangeKind::Create,
            Change::PutIntegration { why: None, .. } => ChangeKind::Create,
            Change::ReplaceMethod { .. }
            | Change::PutIntegration { .. }
            | Change::ReplacePermission { .. } => ChangeKind::Update,
            Change::RemovePermission { .. }
            | Change::DeleteMethod { .. }
            | Change::DeleteResource { .. } => ChangeKind::Delete,
        }
    }

    /// Whether the change gives a route its invoke permission.
    pub fn is_grant(&self) -> bool {
        matches!(
            self,
            Change::AddPermission { .. } | Change::ReplacePermission { .. }
        )
    }

    /// Whether the change, made on `api` as it is just before it, alters what
    /// a deployment would serve. Permissions are not part of a deployment,
    /// and a bare resource (no method at or below it) serves nothing.
    pub fn alters_routes(&self, api: &ObservedApi) -> bool {
        match self {
            Change::AddPermission { .. }
            | Change::ReplacePermission { .. }
            | Change::RemovePermission { .. }
            | Change::CreateResource { .. } => false,
            Change::DeleteResource { path } => api.serves_at_or_below(path),
            _ => true,
        }
    }
}

impl Change {
    /// Mirrors a change that AWS carried out onto a model of the API, so the
    /// state after a pass is known without reading the whole API again.
    /// Resources this creates get an empty id (the executor records real ids);
    /// permission changes do not touch the API model.
    pub fn apply_to(&self, api: &mut ObservedApi) {
        fn resource(api: &mut ObservedApi, path: &str) {
            if api.get(path).is_none() {
                api.resources.insert(
                    path.to_string(),
                    crate::model::ObservedResource {
                        id: String::new(),
                        parent_id: None,
                        path: path.to_string(),
                        methods: Methods::new(),
                    },
                );
            }
        }
        match self {
            Change::CreateResource { path } => resource(api, path),
            Change::PutMethod {
                path,
                verb,
                settings,
            }
            | Change::ReplaceMethod {
                path,
                verb,
                settings,
                ..
            } => {
                resource(api, path);
                // A replaced method loses its integration until it is put back.
                api.resources
                    .get_mut(path)
                    .expect("just ensured")
                    .methods
                    .insert(
                        verb.as_str().into(),
                        ObservedMethod::from_settings(settings),
                    );
            }
            Change::PutIntegration {
                path, verb, uri, ..
            } => {
                if let Some(m) = api
                    .resources
                    .get_mut(path)
                    .and_then(|r| r.methods.get_mut(verb.as_str()))
                {
                    m.integration = Some(crate::model::ObservedIntegration::lambda_proxy(uri));
                }
            }
            Change::DeleteMethod { path, verb } => {
                if let Some(r) = api.resources.get_mut(path) {
                    r.methods.remove(verb);
                }
            }
            Change::DeleteResource { path } => {
                // AWS deletes the whole subtree.
                let below = format!("{path}/");
                api.resources
                    .retain(|p, _| p != path && !p.starts_with(&below));
            }
            Change::AddPermission { .. }
            | Change::ReplacePermission { .. }
            | Change::RemovePermission { .. } => {}
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateResource { path } => write!(f, "+ resource {path}"),
            Change::PutMethod {
                path,
                verb,
                settings,
            } => write!(
                f,
                "+ method {verb} {path} (authorization {}{})",
                settings.authorization.as_str(),
                if settings.api_key_required {
                    ", API key required"
                } else {
                    ""
                }
            ),
            Change::ReplaceMethod {
                path, verb, why, ..
            } => write!(f, "~ method {verb} {path}: {why}"),
            Change::PutIntegration {
                path,
                verb,
                uri,
                why,
            } => match why {
                None => write!(f, "+ integration {verb} {path} -> {}", short_uri(uri)),
                Some(w) => write!(f, "~ integration {verb} {path} -> {}: {w}", short_uri(uri)),
            },
            Change::AddPermission {
                function,
                sid,
                source_arn,
            } => write!(f, "+ permission {sid} on {function} for {source_arn}"),
            Change::ReplacePermission {
                function,
                sid,
                source_arn,
            } => write!(f, "~ permission {sid} on {function}: reset to {source_arn}"),
            Change::RemovePermission { function, sid } => {
                write!(f, "- permission {sid} on {function}")
            }
            Change::DeleteMethod { path, verb } => write!(f, "- method {verb} {path}"),
            Change::DeleteResource { path } => write!(f, "- resource {path}"),
        }
    }
}

/// The function ARN inside a Lambda integration URI, for display.
fn short_uri(uri: &str) -> String {
    match ResolvedFunction::from_integration_uri(uri) {
        Some(f) => f.arn(),
        None => uri.to_string(),
    }
}

/// What happens to one desired mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountAction {
    /// Apply these changes (possibly none: already in line).
    Apply(Vec<Change>),
    /// Cannot be applied; its existing routes are left as they are.
    Blocked(Problem),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub name: String,
    pub path: String,
    pub action: MountAction,
}

/// Removal of what an orphaned mount (or a leftover) left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// The mount name in the markers, or `None` for leftover statements.
    pub mount: Option<String>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub mounts: Vec<MountPlan>,
    pub cleanups: Vec<Cleanup>,
    /// Changes to make after the deployment (stale statements of re-pointed routes).
    pub after_deploy: Vec<Change>,
    /// Things a person should know that are not changes (held-back deletions).
    pub notes: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.mounts
            .iter()
            .filter_map(|m| match &m.action {
                MountAction::Apply(c) => Some(c.iter()),
                MountAction::Blocked(_) => None,
            })
            .flatten()
            .chain(self.cleanups.iter().flat_map(|c| c.changes.iter()))
            .chain(self.after_deploy.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.changes().next().is_none()
    }

    /// (create, update, delete) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for c in self.changes() {
            match c.kind() {
                ChangeKind::Create => n.0 += 1,
                ChangeKind::Update => n.1 += 1,
                ChangeKind::Delete => n.2 += 1,
            }
        }
        n
    }

    pub fn blocked(&self) -> impl Iterator<Item = (&MountPlan, &Problem)> {
        self.mounts.iter().filter_map(|m| match &m.action {
            MountAction::Blocked(p) => Some((m, p)),
            MountAction::Apply(_) => None,
        })
    }
}

/// The routes (resource paths) of a mount.
pub fn routes(mount: &Mount) -> Vec<Route> {
    let mut r = vec![Route(mount.path.as_str().to_string())];
    if mount.proxy {
        r.push(Route(format!("{}/{{proxy+}}", mount.path)));
    }
    r
}

fn settings_for(owner: &str, mount: &Mount) -> MethodSettings {
    MethodSettings {
        authorization: mount.authorization,
        authorizer_id: mount.authorizer_id.clone(),
        api_key_required: mount.api_key_required,
        operation_name: marker(owner, &mount.name),
    }
}

/// Every ancestor path of `path`, shortest first, excluding `/` and `path` itself.
/// The proper ancestors of a path, outermost first, without `/`.
pub(crate) fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut idx = 0;
    while let Some(i) = path[idx + 1..].find('/') {
        idx += 1 + i;
        out.push(path[..idx].to_string());
    }
    out
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
    let observed_auth = observed.authorizer_id.as_deref().filter(|s| !s.is_empty());
    if observed_auth != want.authorizer_id.as_deref() {
        parts.push(format!(
            "authorizer {} -> {}",
            observed_auth.unwrap_or("(none)"),
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

fn integration_diff(observed: &ObservedMethod) -> String {
    match &observed.integration {
        None => "integration missing".to_string(),
        Some(i) if i.kind != "AWS_PROXY" => format!("type {} -> AWS_PROXY", i.kind),
        Some(i) if i.http_method.as_deref() != Some("POST") => format!(
            "integration method {} -> POST",
            i.http_method.as_deref().unwrap_or("(none)")
        ),
        Some(i) => format!(
            "was {}",
            i.uri
                .as_deref()
                .map(short_uri)
                .unwrap_or_else(|| "(no uri)".into())
        ),
    }
}

/// Plans one pass. See the module documentation for the rules.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let owner = input.owner;
    let api = input.api;
    let mut plan = Plan::default();

    // Mounts whose existing routes must be kept as they are: invalid manifests
    // now, blocked mounts once we know which they are.
    let mut keep_names: BTreeSet<String> = input.retained.clone();

    // Resources planned for creation so far, so a shared parent is listed once.
    let mut planned_resources: BTreeSet<String> = BTreeSet::new();
    // (path, verb) pairs a desired mount claims, so they are not orphans.
    let mut claimed: BTreeSet<(String, String)> = BTreeSet::new();
    // (function ARN, sid) statements that must exist.
    let mut wanted_statements: BTreeSet<(String, String)> = BTreeSet::new();
    // Statements of routes being re-pointed: (old function, sid).
    let mut repointed: BTreeSet<(String, String)> = BTreeSet::new();

    for desired in input.mounts {
        let m = &desired.mount;
        let result = plan_mount(input, desired, &mut planned_resources);
        match result {
            Ok(p) => {
                for (path, verb) in &p.claimed {
                    claimed.insert((path.clone(), verb.clone()));
                }
                wanted_statements.extend(p.statements);
                repointed.extend(p.repointed);
                plan.mounts.push(MountPlan {
                    name: m.name.clone(),
                    path: m.path.to_string(),
                    action: MountAction::Apply(p.changes),
                });
            }
            Err(problem) => {
                keep_names.insert(m.name.clone());
                plan.mounts.push(MountPlan {
                    name: m.name.clone(),
                    path: m.path.to_string(),
                    action: MountAction::Blocked(problem),
                });
            }
        }
    }

    // Orphans: our methods not claimed by any desired mount and not kept.
    let mut orphans: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (path, verb, method) in api.methods() {
        let Ownership::Apimount { owner: o, mount } = method.ownership() else {
            continue;
        };
        if o != owner || keep_names.contains(&mount) {
            continue;
        }
        if claimed.contains(&(path.to_string(), verb.to_string())) {
            continue;
        }
        orphans
            .entry(mount)
            .or_default()
            .push((path.to_string(), verb.to_string()));
    }

    let desired_paths: Vec<Route> = input.mounts.iter().flat_map(|d| routes(&d.mount)).collect();

    if let Some(limit) = input.delete_limit {
        if orphans.len() > limit {
            plan.notes.push(format!(
                "refusing to remove {} mounts ({}) in one pass: the limit is {limit} (--max-delete); nothing is removed. If this is intended, raise --max-delete or pass --allow-mass-delete",
                orphans.len(),
                orphans.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            keep_names.extend(std::mem::take(&mut orphans).into_keys());
        }
    }
    if input.hold_orphans && !orphans.is_empty() {
        plan.notes.push(format!(
            "{} route(s) of removed mounts are kept for now: a manifest could not be read, so a missing mount may only be unreadable",
            orphans.values().map(Vec::len).sum::<usize>()
        ));
        orphans.clear();
    }

    // Statements of kept mounts' existing routes must stay too.
    let mut kept_statements: BTreeSet<(String, String)> = BTreeSet::new();
    for (path, _verb, method) in api.methods() {
        if let Ownership::Apimount { owner: o, mount } = method.ownership() {
            if o == owner && keep_names.contains(&mount) {
                if let Some(f) = method_function(method) {
                    kept_statements.insert((
                        f.arn(),
                        Route(path.to_string()).statement_id(input.api_id, owner),
                    ));
                }
            }
        }
    }

    // Which methods go, per resource path.
    let mut removing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for list in orphans.values() {
        for (path, verb) in list {
            removing
                .entry(path.clone())
                .or_default()
                .insert(verb.clone());
        }
    }
    let abandoned = if input.hold_orphans {
        BTreeSet::new()
    } else {
        input.abandoned.clone()
    };
    let deletable = deletable_resources(api, &removing, &abandoned, &desired_paths);

    let mut removed_statements: BTreeSet<(String, String)> = BTreeSet::new();
    for (mount_name, list) in &orphans {
        let mut changes = Vec::new();
        // Statements first, while the methods still say which function they name.
        let mut routes_done = BTreeSet::new();
        for (path, _) in list {
            if !routes_done.insert(path.clone()) {
                continue;
            }
            let Some(res) = api.get(path) else { continue };
            let sid = Route(path.clone()).statement_id(input.api_id, owner);
            let functions: BTreeSet<String> = res
                .methods
                .values()
                .filter(|m| m.ownership().is_mount(owner, mount_name))
                .filter_map(method_function)
                .map(|f| f.arn())
                .collect();
            for function in functions {
                let key = (function.clone(), sid.clone());
                if wanted_statements.contains(&key) || kept_statements.contains(&key) {
                    continue;
                }
                if has_statement(input.policies, &function, &sid) {
                    removed_statements.insert(key);
                    changes.push(Change::RemovePermission {
                        function,
                        sid: sid.clone(),
                    });
                }
            }
        }
        // Then methods on resources that stay, then resources, deepest first.
        for (path, verb) in list {
            if !deletable.contains(path) {
                changes.push(Change::DeleteMethod {
                    path: path.clone(),
                    verb: verb.clone(),
                });
            }
        }
        plan.cleanups.push(Cleanup {
            mount: Some(mount_name.clone()),
            changes,
        });
    }
    // Each deletable resource goes to the last cleanup group that touches it,
    // deepest first within the group: groups run in order, so by then every
    // deeper part has had its turn. (The executor also refuses to delete a
    // resource that still has a child, whatever the order.)
    let first_group = plan.cleanups.len() - orphans.len();
    let mut assigned: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let journal_group = plan.cleanups.len();
    for path in &deletable {
        let below = format!("{path}/");
        let group = orphans
            .values()
            .enumerate()
            .filter(|(_, list)| {
                list.iter().any(|(lp, _)| {
                    lp == path || lp.starts_with(&below) || path.starts_with(&format!("{lp}/"))
                })
            })
            .map(|(i, _)| i)
            .next_back();
        // Resources only the journal names go in a group of their own.
        let g = group.map_or(journal_group, |g| first_group + g);
        assigned.entry(g).or_default().push(path.clone());
    }
    if assigned.contains_key(&journal_group) {
        plan.cleanups.push(Cleanup {
            mount: None,
            changes: Vec::new(),
        });
    }
    for (g, mut paths) in assigned {
        paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        plan.cleanups[g].changes.extend(
            paths
                .into_iter()
                .map(|path| Change::DeleteResource { path }),
        );
    }

    // Leftover statements of ours that nothing wants (crash leftovers, routes
    // re-pointed to another function, or removed by hand).
    let mut leftovers = Vec::new();
    for (function, statements) in input.policies {
        let Some(statements) = statements else {
            continue;
        };
        for s in statements {
            if !is_statement_of(&s.sid, input.api_id, owner) {
                continue;
            }
            let key = (function.clone(), s.sid.clone());
            if wanted_statements.contains(&key)
                || kept_statements.contains(&key)
                || removed_statements.contains(&key)
            {
                continue;
            }
            if input.hold_orphans {
                continue;
            }
            let change = Change::RemovePermission {
                function: function.clone(),
                sid: s.sid.clone(),
            };
            if repointed.contains(&key) {
                plan.after_deploy.push(change);
            } else {
                leftovers.push(change);
            }
        }
    }
    if !leftovers.is_empty() {
        plan.cleanups.push(Cleanup {
            mount: None,
            changes: leftovers,
        });
    }
    plan.cleanups.retain(|c| !c.changes.is_empty());
    plan
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

fn method_function(m: &ObservedMethod) -> Option<ResolvedFunction> {
    m.integration
        .as_ref()
        .and_then(|i| i.uri.as_deref())
        .and_then(ResolvedFunction::from_integration_uri)
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
    let routes = routes(m);

    // Conflicts first: nothing is planned for a mount that cannot be applied whole.
    let mut adopting: BTreeSet<(String, String)> = BTreeSet::new();
    for route in &routes {
        let Some(res) = api.get(&route.0) else {
            continue;
        };
        for (verb, method) in &res.methods {
            match method.ownership() {
                Ownership::Apimount { owner: o, mount } if o == owner => {
                    if mount != m.name && input.retained.contains(&mount) {
                        return Err(Problem::new(
                            Reason::PathConflict,
                            format!(
                                "{verb} {} still belongs to mount '{mount}', whose manifest is invalid; fix or delete that manifest first",
                                route.0
                            ),
                        ));
                    }
                }
                Ownership::Apimount { owner: o, mount } => {
                    return Err(Problem::new(
                        Reason::PathConflict,
                        format!(
                            "{verb} {} is served by mount '{mount}' of apimount owner '{o}'; apimount leaves other owners' routes alone",
                            route.0
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
                        why: None,
                    });
                }
                Some(method) => {
                    let adopt = adopting.contains(&(route.0.clone(), v.clone()));
                    let method_ok = method.matches(&want);
                    let integration_ok = method
                        .integration
                        .as_ref()
                        .is_some_and(|i| i.is_lambda_proxy_to(&uri));
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
                            why: Some(if integration_ok {
                                "restored after the method was replaced".into()
                            } else {
                                integration_diff(method)
                            }),
                        });
                    } else if !integration_ok {
                        changes.push(Change::PutIntegration {
                            path: route.0.clone(),
                            verb: *verb,
                            uri: uri.clone(),
                            why: Some(integration_diff(method)),
                        });
                    }
                    if let Some(old) = method_function(method) {
                        if old.arn() != function.arn() && method.ownership().is(owner) {
                            repointed.push((old.arn(), route.statement_id(input.api_id, owner)));
                        }
                    }
                }
            }
        }
        // Our methods on this route that the manifest no longer lists.
        if let Some(res) = observed {
            for (verb, method) in &res.methods {
                if method.ownership().is(owner) && !m.methods.iter().any(|mv| mv.as_str() == verb) {
                    changes.push(Change::DeleteMethod {
                        path: route.0.clone(),
                        verb: verb.clone(),
                    });
                    claimed.push((route.0.clone(), verb.clone()));
                }
            }
        }

        // The permission for this route.
        let sid = route.statement_id(input.api_id, owner);
        let source_arn = route.source_arn(
            &function.partition,
            input.region,
            &function.account,
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
    // leave a statement that no method points at.
    let (perms, mut rest): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(Change::is_grant);
    rest.extend(perms);

    Ok(MountChanges {
        changes: rest,
        claimed,
        statements,
        repointed,
    })
}

/// Whether a foreign method has exactly the shape the manifest asks for, so
/// it can be adopted: a Lambda proxy integration to the same function, the
/// same authorization, on a verb the manifest lists.
fn adoptable(method: &ObservedMethod, verb: &str, m: &Mount, uri: &str) -> bool {
    m.methods.iter().any(|v| v.as_str() == verb)
        && method.authorization_type == m.authorization.as_str()
        && method.authorizer_id.as_deref().filter(|s| !s.is_empty()) == m.authorizer_id.as_deref()
        && method.api_key_required == m.api_key_required
        && method
            .integration
            .as_ref()
            .is_some_and(|i| i.is_lambda_proxy_to(uri))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse, Authorization};
    use crate::model::{ObservedIntegration, ObservedResource};
    use std::path::Path;

    const API: &str = "api0000001";
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
    }

    impl World {
        fn new() -> World {
            let mut w = World::default();
            w.add_resource("/");
            w
        }

        fn add_resource(&mut self, path: &str) {
            self.next_id += 1;
            self.api.resources.insert(
                path.to_string(),
                ObservedResource {
                    id: format!("r{}", self.next_id),
                    parent_id: None,
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
                    }),
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
                }
                c.apply_to(&mut self.api);
            }
        }

        fn plan(&self, mounts: &[DesiredMount], retained: &[&str], hold: bool) -> Plan {
            let retained: BTreeSet<String> = retained.iter().map(|s| s.to_string()).collect();
            plan(&PlanInput {
                owner: OWNER,
                api_id: API,
                region: REGION,
                api: &self.api,
                mounts,
                retained: &retained,
                hold_orphans: hold,
                policies: &self.policies,
                delete_limit: None,
                abandoned: &self.abandoned,
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
        assert_eq!(
            m.operation_name.as_deref(),
            Some("apimount:team-a:accounts")
        );
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
            .map(|(m, pr)| (m.name.as_str(), pr.reason))
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
            mm.integration = Some(ObservedIntegration {
                kind: "AWS_PROXY".into(),
                http_method: Some("POST".into()),
                uri: Some(func("acct").integration_uri(REGION)),
            });
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
        let retained = BTreeSet::new();
        let limited = |mounts: &[DesiredMount], limit| {
            plan(&PlanInput {
                owner: OWNER,
                api_id: API,
                region: REGION,
                api: &w.api,
                mounts,
                retained: &retained,
                hold_orphans: false,
                policies: &w.policies,
                delete_limit: Some(limit),
                abandoned: &BTreeSet::new(),
            })
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
}
