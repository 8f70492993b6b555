//! The command line's logic behind main.rs (which parses flags and wires the
//! parts together): what the one-shot commands print and the exit codes they
//! end with.
//!
//! - [`render`]: plans and pass reports for people;
//! - [`status`]: `apimount status` as a table, JSON or a route tree;
//! - [`logging`]: text log lines that no input can forge;
//! - [`wait`]: `apimount wait`, until the stage serves a manifest.

use std::fmt::Write;
use std::path::Path;

use crate::manifest::tenants::TenantPolicy;
use crate::manifest::{self, ErrorKind, ManifestError};
use crate::plan::{tenancy, Reason};
use crate::reconcile::{Mode, PassReport};
use crate::source::{self, Layout, NameMemory, SourceError};

pub mod logging;
pub mod render;
pub mod status;
pub mod wait;

/// `apimount validate`: the report to print and the exit code (0 valid,
/// 1 problems). Under a tenant policy, each manifest must also be in its
/// tenant's folder and within what can be checked of its tenant's rules
/// without AWS (the path, the authorization, adoption, and the function as
/// the manifest names it).
pub fn validate(dir: &Path, tenancy: Option<&TenantPolicy>) -> Result<(String, u8), SourceError> {
    let snap = source::load_dir(dir, &Layout::of(tenancy), &mut NameMemory::new())?;
    let dups = manifest::find_duplicates(&snap.mounts, &|_| false);
    let mut errors = snap.errors.clone();
    errors.extend(
        dups.iter()
            .map(|d| manifest::duplicate_error(&snap.mounts, d)),
    );
    let mut refused = 0;
    if let Some(policy) = tenancy {
        for m in &snap.mounts {
            let checked = m
                .tenant
                .as_deref()
                .and_then(|t| tenancy::tenant(policy, t))
                .map(|t| tenancy::check_static(policy, t, m));
            if let Some(Err(p)) = checked {
                refused += 1;
                let field = p.field.unwrap_or(match p.reason {
                    Reason::NotDelegated => "spec.path",
                    Reason::FunctionNotAllowed => "spec.function",
                    Reason::AuthorizationNotAllowed => "spec.authorization",
                    _ => "spec.adopt",
                });
                errors.push(ManifestError {
                    file: m.file.clone(),
                    position: None,
                    field: Some(field.into()),
                    message: format!("{}: {}", p.reason, p.message),
                    kind: ErrorKind::Invalid,
                });
            }
        }
    }
    errors.sort_by(|a, b| a.file.cmp(&b.file));
    let mut out = render::render_invalid(&errors);
    let valid = snap.mounts.len() - dups.len() - refused;
    let code = if errors.is_empty() {
        let _ = writeln!(out, "{} manifest(s) valid in {}", valid, dir.display());
        0
    } else {
        let _ = writeln!(
            out,
            "{} problem(s); {} of {} manifest file(s) valid",
            errors.len(),
            valid,
            snap.files
        );
        1
    };
    Ok((out, code))
}

/// The exit code of `apimount plan` (0 in sync, 2 changes pending, 1 error)
/// and `apimount apply` (0 when the gateway matches every manifest).
pub fn pass_exit_code(r: &PassReport, mode: Mode) -> u8 {
    if r.fatal.is_some() {
        return 1;
    }
    match mode {
        Mode::Plan => {
            if r.change_count() > 0 || r.deploy_pending {
                2
            } else if r.mounts.iter().any(|m| m.problem.is_some()) || !r.invalid.is_empty() {
                1
            } else {
                0
            }
        }
        Mode::Apply => {
            if r.converged() && r.invalid.is_empty() {
                0
            } else {
                1
            }
        }
    }
}

/// How `apimount status` shows the mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusView {
    Table,
    Json,
    Tree,
}

/// The output of `apimount status` for a plan-mode pass.
pub fn status_output(r: &PassReport, view: StatusView, owner: &str) -> String {
    match view {
        StatusView::Json => status::status_json(r, owner),
        StatusView::Tree => status::render_tree(r, owner),
        StatusView::Table => status::render_status(r),
    }
}
