//! Renders plans and pass results for a person at a terminal: one line per
//! change, a line per problem, a summary at the end.

use std::fmt::Write;

use crate::manifest::ManifestError;
use crate::plan::{ChangeKind, State};
use crate::reconcile::{ChangeOutcome, Mode, PassReport};

/// Renders manifest problems, one per line.
pub fn render_invalid(errors: &[ManifestError]) -> String {
    let mut s = String::new();
    for e in errors {
        let _ = writeln!(s, "error: {e}");
    }
    s
}

/// One line per change, with its failure if it failed.
fn render_outcomes(s: &mut String, changes: &[ChangeOutcome]) {
    for c in changes {
        match (&c.error, &c.note) {
            (None, None) => {
                let _ = writeln!(s, "  {}", c.change);
            }
            (None, Some(n)) => {
                let _ = writeln!(s, "  {}  ({n})", c.change);
            }
            (Some(e), _) => {
                let _ = writeln!(s, "  {}  FAILED: {e}", c.change);
            }
        }
    }
}

/// Renders a plan or an apply.
pub fn render_pass(r: &PassReport, mode: Mode) -> String {
    let mut s = String::new();
    if let Some(f) = &r.fatal {
        let _ = writeln!(s, "error: {f}");
        return s;
    }
    s.push_str(&render_invalid(&r.invalid));
    for m in &r.mounts {
        let role = m
            .function_account
            .as_ref()
            .and_then(|a| r.roles.get(a))
            .map(|arn| format!(", through role {arn}"))
            .unwrap_or_default();
        let _ = writeln!(s, "{} ({} -> {}{role})", m.id(), m.path, m.function);
        render_outcomes(&mut s, &m.changes);
        match (&m.problem, m.state) {
            (Some(p), _) => {
                let _ = writeln!(s, "  {}: {}", m.state, p);
            }
            (None, State::Ready) if m.changes.is_empty() => {
                let _ = writeln!(s, "  in sync");
            }
            (None, State::Ready) => {
                let _ = writeln!(s, "  Ready");
            }
            (None, state) => {
                let _ = writeln!(s, "  {state}");
            }
        }
        if let Some(r) = &m.released {
            let _ = writeln!(s, "  release {}: {r}", r.reason());
        }
        if let Some(e) = &m.release_error {
            let _ = writeln!(s, "  release call failed: {e}");
        }
    }
    for (mount, changes) in &r.cleanups {
        match mount {
            Some(m) => {
                let _ = writeln!(s, "{m} (manifest removed)");
            }
            None => {
                let _ = writeln!(s, "leftover permissions");
            }
        }
        render_outcomes(&mut s, changes);
    }
    if !r.after_deploy.is_empty() {
        let _ = writeln!(s, "after the deployment");
        render_outcomes(&mut s, &r.after_deploy);
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let (mut create, mut update, mut delete) = (0, 0, 0);
    for c in r.all_changes().filter(|c| c.error.is_none()) {
        match c.change.kind() {
            ChangeKind::Create => create += 1,
            ChangeKind::Update => update += 1,
            ChangeKind::Delete => delete += 1,
        }
    }
    let failed_mounts = r.mounts.iter().filter(|m| m.state == State::Failed).count();
    match mode {
        Mode::Plan => {
            let deploy = if r.deploy_pending {
                "a new deployment of the stage would follow"
            } else {
                "no deployment needed"
            };
            let _ = writeln!(
                s,
                "Plan: {create} to create, {update} to update, {delete} to delete; {deploy}. {} mount(s), {failed_mounts} blocked, {} invalid manifest(s).",
                r.mounts.len(),
                r.invalid.len()
            );
        }
        Mode::Apply => {
            let deploy = match (&r.deployment, &r.deploy_error) {
                (_, Some(e)) => format!("deployment FAILED: {e}"),
                (Some(id), None) => format!("deployed {id}"),
                (None, None) => "no deployment needed".into(),
            };
            let _ = writeln!(
                s,
                "Applied: {create} created, {update} updated, {delete} deleted, {} failed; {deploy}. {} mount(s), {failed_mounts} failed, {} invalid manifest(s). ({:.1}s)",
                r.failed_changes(),
                r.mounts.len(),
                r.invalid.len(),
                r.duration.as_secs_f64()
            );
        }
    }
    s
}
