//! Renders pass results for a person at a terminal: one line per change, a
//! line per problem, a summary at the end.

use std::fmt::Write;

use crate::manifest::ManifestError;
use crate::reconcile::{Mode, PassReport};
use crate::status::State;

/// Renders manifest problems, one per line.
pub fn render_invalid(errors: &[ManifestError]) -> String {
    let mut s = String::new();
    for e in errors {
        let _ = writeln!(s, "error: {e}");
    }
    s
}

/// One line per change, with its failure if it failed.
fn render_outcomes(s: &mut String, changes: &[crate::reconcile::ChangeOutcome]) {
    for c in changes {
        match &c.error {
            None => {
                let _ = writeln!(s, "  {}", c.change);
            }
            Some(e) => {
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
        let _ = writeln!(s, "{} ({} -> {})", m.name, m.path, m.function);
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
            crate::plan::ChangeKind::Create => create += 1,
            crate::plan::ChangeKind::Update => update += 1,
            crate::plan::ChangeKind::Delete => delete += 1,
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

/// One row per mount and per rejected manifest, as `apimount status` shows them.
struct Row {
    manifest: String,
    name: String,
    path: String,
    function: String,
    state: String,
    reason: String,
    message: String,
}

fn rows(r: &PassReport) -> Vec<Row> {
    let mut out = Vec::new();
    for m in &r.mounts {
        let state = match (m.state, r.deploy_pending) {
            // In sync but the stage does not serve it yet.
            (State::Ready, true) => State::Progressing,
            (s, _) => s,
        };
        out.push(Row {
            manifest: m.file.clone(),
            name: m.name.clone(),
            path: m.path.clone(),
            function: m.function.clone(),
            state: state.to_string(),
            reason: m
                .problem
                .as_ref()
                .map(|p| p.reason.to_string())
                .unwrap_or_else(|| {
                    if state == State::Progressing {
                        "ChangesPending".into()
                    } else {
                        String::new()
                    }
                }),
            message: m
                .problem
                .as_ref()
                .map(|p| p.message.clone())
                .unwrap_or_default(),
        });
    }
    for e in &r.invalid {
        out.push(Row {
            manifest: e.file.display().to_string(),
            name: String::new(),
            path: String::new(),
            function: String::new(),
            state: State::Failed.to_string(),
            reason: crate::reconcile::invalid_reason(e).to_string(),
            message: e.to_string(),
        });
    }
    out
}

/// The status table.
pub fn render_status(r: &PassReport) -> String {
    let rows = rows(r);
    let headers = ["MANIFEST", "PATH", "FUNCTION", "STATE", "REASON"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            [
                row.manifest.clone(),
                row.path.clone(),
                row.function.clone(),
                row.state.clone(),
                row.reason.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            widths[i] = widths[i].max(v.len());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, vals: [&str; 5]| {
        let mut l = String::new();
        for (i, v) in vals.iter().enumerate() {
            let _ = write!(l, "{:<w$}  ", v, w = widths[i]);
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(&mut s, headers);
    for c in &cells {
        line(&mut s, [&c[0], &c[1], &c[2], &c[3], &c[4]]);
    }
    for row in rows.iter().filter(|r| !r.message.is_empty()) {
        let who = if row.name.is_empty() {
            row.manifest.as_str()
        } else {
            row.name.as_str()
        };
        let _ = writeln!(s, "\n{who}: {}", row.message);
    }
    s
}

/// The status as JSON for scripts.
pub fn status_json(r: &PassReport, owner: &str) -> String {
    let mounts: Vec<serde_json::Value> = rows(r)
        .into_iter()
        .map(|row| {
            serde_json::json!({
                "manifest": row.manifest,
                "name": row.name,
                "path": row.path,
                "function": row.function,
                "state": row.state,
                "reason": row.reason,
                "message": row.message,
            })
        })
        .collect();
    let v = serde_json::json!({
        "owner": owner,
        "revision": r.revision,
        "deployPending": r.deploy_pending,
        "mounts": mounts,
    });
    let mut s = serde_json::to_string_pretty(&v).expect("json");
    s.push('\n');
    s
}

/// The whole route tree of the API, with who serves each method.
pub fn render_tree(r: &PassReport, owner: &str) -> String {
    use crate::model::Ownership;
    let mut s = String::new();
    let Some(api) = &r.api else {
        return s;
    };
    for res in api.resources.values() {
        let depth = if res.path == "/" {
            0
        } else {
            res.path.matches('/').count()
        };
        let name = if res.path == "/" {
            "/".to_string()
        } else {
            format!("/{}", res.path.rsplit('/').next().unwrap_or(""))
        };
        let _ = writeln!(s, "{}{}", "  ".repeat(depth), name);
        for (verb, m) in &res.methods {
            let who = match m.ownership() {
                Ownership::Apimount { owner: o, mount } if o == owner => {
                    format!("mount {mount} (this owner)")
                }
                Ownership::Apimount { owner: o, mount } => {
                    format!("mount {mount} of owner {o}")
                }
                Ownership::Foreign => format!(
                    "foreign{}",
                    m.operation_name
                        .as_deref()
                        .map(|o| format!(" (operationName {o})"))
                        .unwrap_or_default()
                ),
            };
            let target = m
                .integration
                .as_ref()
                .and_then(|i| i.uri.as_deref())
                .map(|u| {
                    crate::model::ResolvedFunction::from_integration_uri(u)
                        .map(|f| f.name)
                        .unwrap_or_else(|| u.to_string())
                })
                .unwrap_or_else(|| "(no integration)".into());
            let _ = writeln!(
                s,
                "{}{verb:<7} -> {target:<24} {who}",
                "  ".repeat(depth + 1)
            );
        }
    }
    s
}
