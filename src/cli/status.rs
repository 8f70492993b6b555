//! `apimount status`: each mount's state against the live gateway, as a
//! table, as JSON for scripts, or as the whole route tree with who serves
//! each path.

use std::fmt::Write;

use crate::plan::model::ResolvedFunction;
use crate::plan::names::Ownership;
use crate::plan::route_options::tree_notes;
use crate::plan::State;
use crate::reconcile::status::{statuses, Transitions};
use crate::reconcile::{invalid_reason, PassReport};

/// One row per mount and per rejected manifest, as `apimount status` shows them.
struct Row {
    manifest: String,
    name: String,
    tenant: Option<String>,
    path: String,
    function: String,
    state: String,
    reason: String,
    message: String,
    /// Where the mount's release stands (`Progressing 10%`), if it has one.
    release: String,
    release_message: String,
}

fn rows(r: &PassReport) -> Vec<Row> {
    let mut out = Vec::new();
    for m in &r.mounts {
        let state = match (m.state, r.stage_behind) {
            // In sync but the stage does not serve it yet.
            (State::Ready, true) => State::Progressing,
            (s, _) => s,
        };
        out.push(Row {
            manifest: m.file.clone(),
            name: m.name.clone(),
            tenant: m.tenant.clone(),
            path: m.path.clone(),
            function: m.function.clone(),
            state: state.to_string(),
            reason: m
                .problem
                .as_ref()
                .map(|p| p.reason.to_string())
                .unwrap_or_else(|| {
                    if state == State::Progressing {
                        crate::plan::conditions::PENDING.into()
                    } else {
                        String::new()
                    }
                }),
            message: m
                .problem
                .as_ref()
                .map(|p| p.message.clone())
                .unwrap_or_default(),
            release: m
                .released
                .as_ref()
                .map(|r| match r.version() {
                    Some(v) => format!("{} {v} {}%", r.reason(), r.weight()),
                    None => r.reason().to_string(),
                })
                .unwrap_or_default(),
            release_message: m
                .released
                .as_ref()
                .filter(|r| !r.is_promoted())
                .map(|r| r.to_string())
                .unwrap_or_default(),
        });
    }
    for e in &r.invalid {
        out.push(Row {
            manifest: e.file.display().to_string(),
            name: String::new(),
            tenant: None,
            path: String::new(),
            function: String::new(),
            state: State::Failed.to_string(),
            reason: invalid_reason(e).to_string(),
            message: e.to_string(),
            release: String::new(),
            release_message: String::new(),
        });
    }
    out
}

/// The status table.
pub fn render_status(r: &PassReport) -> String {
    let rows = rows(r);
    // The tenant column only under a tenant policy.
    let tenants = rows.iter().any(|row| row.tenant.is_some());
    let mut headers = vec!["MANIFEST"];
    if tenants {
        headers.push("TENANT");
    }
    headers.extend(["PATH", "FUNCTION", "STATE", "REASON"]);
    // The release column only when a mount releases.
    let releases = rows.iter().any(|row| !row.release.is_empty());
    if releases {
        headers.push("RELEASE");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut c = vec![row.manifest.clone()];
            if tenants {
                c.push(row.tenant.clone().unwrap_or_default());
            }
            c.extend([
                row.path.clone(),
                row.function.clone(),
                row.state.clone(),
                row.reason.clone(),
            ]);
            if releases {
                c.push(row.release.clone());
            }
            c
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            widths[i] = widths[i].max(v.len());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, vals: &[&str]| {
        let mut l = String::new();
        for (i, v) in vals.iter().enumerate() {
            let _ = write!(l, "{:<w$}  ", v, w = widths[i]);
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(&mut s, &headers);
    for c in &cells {
        let vals: Vec<&str> = c.iter().map(String::as_str).collect();
        line(&mut s, &vals);
    }
    for row in rows.iter().filter(|r| !r.message.is_empty()) {
        let who = match (&row.tenant, row.name.is_empty()) {
            (_, true) => row.manifest.clone(),
            (Some(t), false) => format!("{t}/{}", row.name),
            (None, false) => row.name.clone(),
        };
        let _ = writeln!(s, "\n{who}: {}", row.message);
    }
    for row in rows.iter().filter(|r| !r.release_message.is_empty()) {
        let who = match &row.tenant {
            Some(t) => format!("{t}/{}", row.name),
            None => row.name.clone(),
        };
        let _ = writeln!(s, "\n{who}: release {}", row.release_message);
    }
    s
}

/// The status as JSON for scripts: the status document of every manifest
/// (see `reconcile::status`), as `apimount run --status-dir` writes them.
pub fn status_json(r: &PassReport, owner: &str) -> String {
    let docs: Vec<serde_json::Value> = Transitions::default()
        .documents(&statuses(r), std::time::SystemTime::now())
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let v = serde_json::json!({
        "owner": owner,
        "revision": r.revision,
        "deployPending": r.deploy_pending,
        "mounts": docs,
    });
    let mut s = serde_json::to_string_pretty(&v).expect("json");
    s.push('\n');
    s
}

/// The whole route tree of the API, with who serves each method.
pub fn render_tree(r: &PassReport, owner: &str) -> String {
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
                Ownership::Apimount(mk) => {
                    let tenant = mk
                        .mount
                        .tenant
                        .as_deref()
                        .map(|t| format!("tenant {t}, "))
                        .unwrap_or_default();
                    let whose = if mk.owner == owner {
                        "this owner".to_string()
                    } else {
                        format!("owner {}", mk.owner)
                    };
                    format!("mount {} ({tenant}{whose})", mk.mount.name)
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
                    ResolvedFunction::from_integration_uri(u)
                        .map(|f| match &r.api_account {
                            Some(api) if *api != f.account => {
                                format!("{} (account {})", f.name, f.account)
                            }
                            _ => f.name,
                        })
                        .unwrap_or_else(|| u.to_string())
                })
                .unwrap_or_else(|| match m.integration.as_ref() {
                    Some(i) if i.kind == "MOCK" => "(MOCK)".into(),
                    _ => "(no integration)".into(),
                });
            let notes = tree_notes(&res.path, verb, m, r.stage_settings.as_ref());
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join("; "))
            };
            let _ = writeln!(
                s,
                "{}{verb:<7} -> {target:<24} {who}{notes}",
                "  ".repeat(depth + 1)
            );
        }
    }
    s
}
