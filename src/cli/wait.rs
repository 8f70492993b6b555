//! `apimount wait`: waits until the live stage serves exactly a given
//! version of a manifest, for a pipeline that dropped it and must know when
//! its route is live. It needs no running controller: it reads the manifest
//! and the gateway, and tells from AWS alone which version is served (every
//! route's ownership marker records its manifest's generation, and the
//! stage's deployment records a fingerprint of the routes it holds).

use std::path::{Path, PathBuf};

use crate::manifest::MountId;
use crate::plan::{Reason, State};
use crate::reconcile::{invalid_reason, PassReport};
use crate::source::Snapshot;

/// Which manifest to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    File(PathBuf),
    Name {
        name: String,
        tenant: Option<String>,
    },
}

/// Where the wait stands after one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The stage serves exactly this version.
    Served,
    /// Not yet; waiting can change it (the controller is at work).
    Pending(String),
    /// It cannot happen without a change (to the manifest, the policy, the
    /// gateway): give up at once.
    Impossible(Reason, String),
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The mount a wait is about (and its file), or why there is none to wait for.
pub fn find(snap: &Snapshot, target: &WaitFor) -> Result<(MountId, PathBuf), Verdict> {
    let found = snap.mounts.iter().find(|m| match target {
        WaitFor::File(f) => same_file(&m.file, f),
        WaitFor::Name { name, tenant } => &m.name == name && &m.tenant == tenant,
    });
    if let Some(m) = found {
        return Ok((m.id(), m.file.clone()));
    }
    if let WaitFor::File(f) = target {
        if let Some(e) = snap.errors.iter().find(|e| same_file(&e.file, f)) {
            return Err(Verdict::Impossible(invalid_reason(e), e.to_string()));
        }
    }
    let what = match target {
        WaitFor::File(f) => format!("{} is not a manifest of the source", f.display()),
        WaitFor::Name { name, tenant } => {
            let id = MountId {
                tenant: tenant.clone(),
                name: name.clone(),
            };
            format!("no valid manifest is named '{id}'")
        }
    };
    Err(Verdict::Impossible(Reason::InvalidManifest, what))
}

/// What a plan-mode pass says of `id`, whose manifest is `file`.
pub fn verdict(r: &PassReport, id: &MountId, file: &Path) -> Verdict {
    if let Some(f) = &r.fatal {
        return match r.fatal_reason {
            Some(reason) if reason.needs_a_change() => Verdict::Impossible(reason, f.clone()),
            _ => Verdict::Pending(f.clone()),
        };
    }
    let Some(m) = r.mounts.iter().find(|m| &m.id() == id) else {
        // A losing duplicate is reported among the manifest problems.
        return match r.invalid.iter().find(|e| same_file(&e.file, file)) {
            Some(e) => Verdict::Impossible(invalid_reason(e), e.to_string()),
            None => Verdict::Impossible(Reason::InvalidManifest, format!("'{id}' was not planned")),
        };
    };
    if let Some(p) = &m.problem {
        return if p.reason.needs_a_change() {
            Verdict::Impossible(p.reason, p.message.clone())
        } else {
            Verdict::Pending(format!("{}: {}", p.reason, p.message))
        };
    }
    if m.state != State::Ready {
        return Verdict::Pending(format!(
            "{} change(s) to make on the gateway",
            m.changes.len()
        ));
    }
    if r.stage_behind {
        return Verdict::Pending("the stage does not serve the routes yet".into());
    }
    Verdict::Served
}
