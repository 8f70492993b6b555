//! What a pass did (or, in plan mode, would do): per mount, per removal, the
//! deployment and the notes. The CLI renders it; the controller logs it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::release::ReleaseOutcome;
use crate::manifest::{ErrorKind, ManifestError, Mount, MountId};
use crate::plan::model::{ObservedApi, ResolvedFunction, StageMethodSetting};
use crate::plan::release::Released;
use crate::plan::{Change, DesiredMount, MountAction, Plan, Problem, Reason, State};

/// The outcome of one change.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    pub change: Change,
    pub error: Option<String>,
    /// How a change that was made differs from the plan's words (a removal
    /// the backend would not make, and what was done instead).
    pub note: Option<String>,
}

/// What a pass did (or would do) for one mount.
#[derive(Debug, Clone)]
pub struct MountReport {
    pub name: String,
    pub tenant: Option<String>,
    /// The manifest's generation (a digest of its meaning).
    pub generation: String,
    pub path: String,
    pub function: String,
    /// The account the function is in, where the manifest or AWS says.
    pub function_account: Option<String>,
    pub file: String,
    pub state: State,
    pub problem: Option<Problem>,
    pub changes: Vec<ChangeOutcome>,
    /// The version the manifest releases (mounts with `spec.release`).
    pub release_version: Option<String>,
    /// Where the mount's release stands.
    pub released: Option<Released>,
    /// A release call that failed in this pass (tried again next time).
    pub release_error: Option<String>,
}

/// A whole pass.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub revision: String,
    pub mounts: Vec<MountReport>,
    /// Manifest problems (invalid files and losing duplicates).
    pub invalid: Vec<ManifestError>,
    /// Removal of orphaned routes, by former mount (None: leftovers).
    pub cleanups: Vec<(Option<MountId>, Vec<ChangeOutcome>)>,
    pub after_deploy: Vec<ChangeOutcome>,
    /// Id of the deployment made by this pass.
    pub deployment: Option<String>,
    /// The stage would be (plan) or could not be (apply) redeployed.
    pub deploy_pending: bool,
    pub deploy_error: Option<String>,
    /// The deployment was blocked (see `Reason::DeployBlocked`).
    pub deploy_blocked: bool,
    /// The stage does not serve this owner's routes as the API has them
    /// (their fingerprint differs from the deployment's): what is in line
    /// on the API is not served yet. Plan mode, and apply mode when the
    /// deployment was left to the next start.
    pub stage_behind: bool,
    /// The API's account, once learnt.
    pub api_account: Option<String>,
    /// The role apimount acts through in each other account (by id).
    pub roles: BTreeMap<String, String>,
    pub notes: Vec<String>,
    /// The pass could not run at all (the API could not be read).
    pub fatal: Option<String>,
    pub fatal_reason: Option<Reason>,
    pub duration: Duration,
    /// The gateway as observed (plan mode only), for `status --tree`.
    pub api: Option<ObservedApi>,
    /// The stage's method settings as observed (plan mode only, when the
    /// stage exists), for the throttling shown by `status --tree`.
    pub stage_settings: Option<BTreeMap<String, StageMethodSetting>>,
    /// Releases of mounts that are gone, rolled back by this pass.
    pub withdrawn: Vec<(MountId, ReleaseOutcome)>,
    /// Alias writes of releases in this pass.
    pub release_writes: usize,
}

impl MountReport {
    pub fn id(&self) -> MountId {
        MountId {
            tenant: self.tenant.clone(),
            name: self.name.clone(),
        }
    }
}

impl PassReport {
    /// Puts the releases' outcomes on their mounts' reports (the gone
    /// mounts' in `withdrawn`).
    pub(crate) fn add_releases(&mut self, outcomes: BTreeMap<MountId, ReleaseOutcome>) {
        for (id, o) in outcomes {
            self.release_writes += o.writes;
            match self.mounts.iter_mut().find(|m| m.id() == id) {
                Some(m) => {
                    m.released = Some(o.status);
                    m.release_error = o.error;
                }
                None => self.withdrawn.push((id, o)),
            }
        }
    }

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

pub(crate) fn mount_report(m: &Mount, f: &Result<ResolvedFunction, Problem>) -> MountReport {
    MountReport {
        name: m.name.clone(),
        tenant: m.tenant.clone(),
        generation: m.generation(),
        path: m.path.to_string(),
        function: match f {
            Ok(f) => f.arn(),
            Err(_) => m.function.to_string(),
        },
        function_account: match (f, &m.function) {
            (Ok(f), _) => Some(f.account.clone()),
            (Err(_), crate::manifest::FunctionRef::Arn { account, .. }) => Some(account.clone()),
            (Err(_), _) => None,
        },
        file: m.file.display().to_string(),
        state: State::Ready,
        problem: None,
        changes: Vec::new(),
        release_version: m.release.as_ref().map(|r| r.version.clone()),
        released: None,
        release_error: None,
    }
}

pub(crate) fn fill_plan_report(report: &mut PassReport, plan: &Plan, desired: &[DesiredMount]) {
    let pending = |c: &Change| ChangeOutcome {
        change: c.clone(),
        error: None,
        note: None,
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

/// The reason a manifest problem is reported under.
pub fn invalid_reason(e: &ManifestError) -> Reason {
    match e.kind {
        ErrorKind::Duplicate => Reason::DuplicateManifest,
        ErrorKind::Misplaced => Reason::NotDelegated,
        _ => Reason::InvalidManifest,
    }
}
