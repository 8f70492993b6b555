//! The pure core: what the gateway looks like, what apimount owns of it, and
//! the planner that turns desired mounts + the observed gateway into the
//! changes one pass makes. No I/O, no clock, no randomness and no AWS SDK
//! type anywhere below this module, so it is tested with tables and a
//! converged input must give an empty plan.
//!
//! - [`model`]: the observed REST API, stage and resolved functions;
//! - [`names`]: ownership markers, statement ids, source ARNs, fingerprints;
//! - [`policy`]: Lambda resource policy statements;
//! - [`change`]: one change to the gateway or a policy;
//! - [`planner`]: the planner itself ([`plan()`]);
//! - [`accounts`]: functions in other accounts, and the roles apimount assumes there;
//! - [`admission`]: which manifests take part in a pass, tenant first;
//! - [`incumbency`]: which manifest a contested name or path goes to;
//! - [`instance_tag`]: the stage tag by which instances without a lease table see each other;
//! - [`deploy`]: whether a pass deploys;
//! - [`route_options`]: CORS preflights and per-route throttling as gateway objects;
//! - [`tenancy`]: what a tenant policy allows a mount;
//! - [`throttle_limits`]: the account's throttle limit a route cannot pass;
//! - [`warnings`]: notes before per-API and per-function limits are hit;
//! - [`conditions`]: mount states and the reasons vocabulary.
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

use crate::manifest::tenants::TenantPolicy;
use crate::manifest::{Mount, MountId};

pub mod accounts;
pub mod admission;
pub mod change;
pub mod conditions;
pub mod deploy;
pub mod incumbency;
pub mod instance_tag;
pub mod model;
pub mod names;
pub mod planner;
pub mod policy;
pub mod release;
pub mod route_options;
pub mod stage_settings;
pub mod tenancy;
pub mod throttle_limits;
pub mod warnings;

pub use change::{Change, ChangeKind};
pub use conditions::{Problem, Reason, State};
pub use planner::plan;

use model::{ObservedApi, ObservedStage, ResolvedFunction};
use names::Route;
use policy::PolicyStatement;

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
    /// The API's account: every permission's SourceArn names it, whatever
    /// the function's account (API Gateway invokes as the API's owner).
    /// `None` when every function is named by name, so in the API's account
    /// (the function's account is then the API's).
    pub api_account: Option<&'a str>,
    /// Region of the REST API (and of the execute-api source ARNs).
    pub region: &'a str,
    pub api: &'a ObservedApi,
    /// The stage, when it exists: its method settings hold per-route throttling.
    pub stage: Option<&'a ObservedStage>,
    pub mounts: &'a [DesiredMount],
    /// Mounts whose manifest exists but is invalid (or misplaced): their routes stay.
    pub retained: &'a BTreeSet<MountId>,
    /// Tenants (`None`: the single-tenant source, and routes made before a
    /// policy) of which a manifest could not be read and its name is
    /// unknown: none of their routes are removed.
    pub held: &'a BTreeSet<Option<String>>,
    /// Resource policies by function ARN; `None` where it could not be read.
    pub policies: &'a BTreeMap<String, Option<Vec<PolicyStatement>>>,
    /// Per tenant, the most removed mounts one pass may delete; above it,
    /// none of that tenant's are (mass-deletion guard). No entry: no limit.
    pub delete_limits: &'a BTreeMap<Option<String>, usize>,
    /// The tenant policy, when one is in force.
    pub tenancy: Option<&'a TenantPolicy>,
    /// Method-less resources an interrupted pass of this owner left (see `journal`).
    pub abandoned: &'a BTreeSet<String>,
    /// The account's throttle limit in the API's region: a mount throttled
    /// above it is refused.
    pub account_limit: &'a throttle_limits::AccountLimit,
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
    pub id: MountId,
    pub path: String,
    pub action: MountAction,
}

/// Removal of what an orphaned mount (or a leftover) left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// The mount in the markers, or `None` for leftover statements.
    pub mount: Option<MountId>,
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

/// The proper ancestors of a path, outermost first, without `/`.
pub fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut idx = 0;
    while let Some(i) = path[idx + 1..].find('/') {
        idx += 1 + i;
        out.push(path[..idx].to_string());
    }
    out
}
