//! Status documents for pipelines: after every pass the daemon writes one
//! JSON document per manifest (its conditions, see `reconcile::status`) to
//! `--status-dir` (replaced atomically: written beside, then renamed) or
//! `--status-prefix` (one object each; a tenant's under its own
//! sub-prefix, as its manifests are). A document goes when its manifest
//! does. Writing runs in a task of its own, fed the latest documents: it
//! never holds a pass up, and a failure is logged and tried again with the
//! next pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::aws::s3::S3Objects;
use crate::errors::chain;
use crate::reconcile::status::{during_outage, statuses, ManifestStatus, Transitions};
use crate::reconcile::PassReport;
use crate::source::{S3Location, Snapshot, Source};

/// Where status documents go.
pub enum StatusTarget {
    Dir(PathBuf),
    S3 {
        objects: S3Objects,
        location: S3Location,
    },
}

/// The name of a manifest's status document: its key in the source with
/// `.status.json` after it (`accounts/api.yaml.status.json`, a tenant's in
/// its own sub-folder). A key that could lead anywhere else (a leading `/`,
/// an empty, `.` or `..` segment, a backslash or a control character) gets
/// no document: the reason is returned instead.
pub fn document_name(key: &str) -> Result<String, String> {
    let bad = key.starts_with('/')
        || key.is_empty()
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        || key.chars().any(|c| c == '\\' || c.is_control());
    if bad {
        return Err(format!(
            "the manifest key {:?} has an empty, '.' or '..' segment or a leading '/', so it gets no status document",
            key
        ));
    }
    Ok(format!("{key}.status.json"))
}

/// Refuses a status target inside the manifest source: its documents
/// would be read back as manifests.
pub fn check_outside_source(target: &StatusTarget, source: &Source) -> Result<(), String> {
    match (target, source) {
        (StatusTarget::Dir(status), Source::Dir(manifests)) => {
            let (status, manifests) = (resolved(status), resolved(manifests));
            if status.starts_with(&manifests) {
                return Err(format!(
                    "--status-dir {} is inside the manifest folder {}: its documents would be read as manifests; choose a folder outside it",
                    status.display(),
                    manifests.display()
                ));
            }
            Ok(())
        }
        (StatusTarget::S3 { location, .. }, Source::S3(s3)) => {
            let source = s3.location();
            if location.bucket == source.bucket && location.prefix.starts_with(&source.prefix) {
                return Err(format!(
                    "--status-prefix s3://{}/{} is inside the manifest source s3://{}/{}: its documents would be read as manifests; choose a prefix outside it",
                    location.bucket, location.prefix, source.bucket, source.prefix
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A path with its longest existing part resolved (links followed), the
/// rest as given: where a folder that may not exist yet would be.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut at = absolute.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return absolute,
        }
    }
}

/// Feeds the writer task.
pub struct StatusWriter {
    latest: watch::Sender<Arc<BTreeMap<String, String>>>,
    transitions: Transitions,
    /// Keys refused a document, reported once each.
    refused: BTreeSet<String>,
    /// What the last pass that observed AWS found, to keep through an outage.
    last: Vec<ManifestStatus>,
}

impl StatusWriter {
    /// Starts the writer task. Every `refresh` (the resync interval) it
    /// also puts back documents that went missing or were changed (a folder
    /// removed, an object deleted by hand).
    pub fn start(target: StatusTarget, refresh: std::time::Duration) -> StatusWriter {
        let (latest, rx) = watch::channel(Arc::new(BTreeMap::new()));
        tokio::spawn(write_loop(target, rx, refresh));
        StatusWriter {
            latest,
            transitions: Transitions::default(),
            refused: BTreeSet::new(),
            last: Vec::new(),
        }
    }

    /// Hands the documents of a pass to the writer (at once; the writing
    /// happens in the background).
    pub fn publish(&mut self, report: &PassReport, snap: &Snapshot) {
        // A pass that could not observe AWS knows nothing new of the
        // mounts: their documents stay, with the failure in `Programmed`.
        let now = match (&report.fatal, report.fatal_reason) {
            (Some(message), reason) => {
                let present: BTreeSet<String> = snap
                    .keys
                    .values()
                    .map(|p| p.display().to_string())
                    .collect();
                during_outage(
                    &self.last,
                    &present,
                    reason.unwrap_or(crate::plan::Reason::AwsError),
                    message,
                )
            }
            (None, _) => {
                self.last = statuses(report);
                self.last.clone()
            }
        };
        self.emit(&now, snap);
    }

    /// Hands the documents again with the releases' standing as a release
    /// tick found it (the rest as the last pass found it).
    pub fn update_releases(
        &mut self,
        outcomes: &BTreeMap<crate::manifest::MountId, crate::reconcile::release::ReleaseOutcome>,
        snap: &Snapshot,
    ) {
        let mut changed = false;
        for s in &mut self.last {
            let Some(name) = &s.name else { continue };
            let id = crate::manifest::MountId {
                tenant: s.tenant.clone(),
                name: name.clone(),
            };
            if let Some(o) = outcomes.get(&id) {
                let condition = Some(o.status.condition());
                if s.released != condition {
                    s.released = condition;
                    if let Some((_, weight)) = &mut s.release {
                        *weight = o.status.weight();
                    }
                    changed = true;
                }
            }
        }
        if changed {
            let now = self.last.clone();
            self.emit(&now, snap);
        }
    }

    fn emit(&mut self, now: &[ManifestStatus], snap: &Snapshot) {
        let key_of: BTreeMap<String, &String> = snap
            .keys
            .iter()
            .map(|(key, shown)| (shown.display().to_string(), key))
            .collect();
        let docs = self.transitions.documents(now, SystemTime::now());
        let mut named: BTreeMap<String, String> = BTreeMap::new();
        for (shown, doc) in docs {
            let Some(key) = key_of.get(&shown) else {
                continue;
            };
            let name = match document_name(key) {
                Ok(name) => name,
                Err(why) => {
                    if self.refused.insert(key.to_string()) {
                        tracing::warn!(manifest = %shown, "{why}");
                    }
                    continue;
                }
            };
            let Ok(mut text) = serde_json::to_string_pretty(&doc) else {
                continue;
            };
            text.push('\n');
            named.insert(name, text);
        }
        let _ = self.latest.send(Arc::new(named));
    }
}

async fn write_loop(
    target: StatusTarget,
    mut rx: watch::Receiver<Arc<BTreeMap<String, String>>>,
    refresh: std::time::Duration,
) {
    // What is out there now, as far as this process wrote it.
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = tokio::time::Instant::now();
    loop {
        // A new set of documents, or the time to check what is out there.
        let changed = tokio::select! {
            r = rx.changed() => {
                if r.is_err() {
                    return;
                }
                true
            }
            _ = tokio::time::sleep_until(checked + refresh) => false,
        };
        let docs = if changed {
            rx.borrow_and_update().clone()
        } else {
            rx.borrow().clone()
        };
        // At least once a refresh, nothing written is taken on trust: a
        // document removed or changed since (its folder removed, an object
        // deleted) is written again.
        if tokio::time::Instant::now() >= checked + refresh {
            checked = tokio::time::Instant::now();
            let mut stale = Vec::new();
            for (name, text) in written.iter() {
                if !on_target(&target, name, text).await {
                    stale.push(name.clone());
                }
            }
            if !stale.is_empty() {
                tracing::info!(
                    documents = stale.len(),
                    "status documents missing or changed; writing them again"
                );
            }
            for name in stale {
                written.remove(&name);
            }
        }
        for (name, text) in docs.iter() {
            if written.get(name) == Some(text) {
                continue;
            }
            match write(&target, name, text).await {
                Ok(()) => {
                    written.insert(name.clone(), text.clone());
                }
                Err(e) => {
                    tracing::warn!(document = %name, error = %e, "could not write a status document; the next pass tries again")
                }
            }
        }
        let gone: Vec<String> = written
            .keys()
            .filter(|n| !docs.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            match remove(&target, &name).await {
                Ok(()) => {
                    written.remove(&name);
                }
                Err(e) => {
                    tracing::warn!(document = %name, error = %e, "could not remove a status document")
                }
            }
        }
    }
}

/// Whether the target holds `text` under `name`. A folder is read back; an
/// object store is not (a read costs what a write does): its documents
/// are simply written again.
async fn on_target(target: &StatusTarget, name: &str, text: &str) -> bool {
    match target {
        StatusTarget::Dir(dir) => std::fs::read_to_string(dir.join(name)).is_ok_and(|t| t == text),
        StatusTarget::S3 { .. } => false,
    }
}

async fn write(target: &StatusTarget, name: &str, text: &str) -> Result<(), String> {
    match target {
        StatusTarget::Dir(dir) => {
            let (dir, name, text) = (dir.clone(), name.to_string(), text.to_string());
            tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &text))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
        StatusTarget::S3 { objects, location } => objects
            .put(
                &location.bucket,
                &format!("{}{name}", location.prefix),
                text.as_bytes().to_vec(),
            )
            .await
            .map_err(|e| chain(&e)),
    }
}

/// Reads one status document (for `apimount wait`): `None` when there is none.
pub async fn read(target: &StatusTarget, name: &str) -> Result<Option<String>, String> {
    match target {
        StatusTarget::Dir(dir) => match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", dir.join(name).display())),
        },
        StatusTarget::S3 { objects, location } => {
            let key = format!("{}{name}", location.prefix);
            match objects.get(&location.bucket, &key, READ_LIMIT).await {
                Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(e) if e.kind == crate::aws::AwsErrorKind::NotFound => Ok(None),
                Err(e) => Err(chain(&e)),
            }
        }
    }
}

/// The most of a status document `wait` reads (they are a few hundred bytes).
const READ_LIMIT: u64 = 1 << 20;

async fn remove(target: &StatusTarget, name: &str) -> Result<(), String> {
    match target {
        StatusTarget::Dir(dir) => match std::fs::remove_file(dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        },
        StatusTarget::S3 { objects, location } => objects
            .delete(&location.bucket, &format!("{}{name}", location.prefix))
            .await
            .map_err(|e| chain(&e)),
    }
}

/// Writes `dir/name` so that a reader sees the old or the new document,
/// never half of one: a hidden file beside it, then a rename over it.
fn write_atomically(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let path = dir.join(name);
    let parent = path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_stays_where_its_key_says() {
        let table: &[(&str, Option<&str>)] = &[
            ("a.yaml", Some("a.yaml.status.json")),
            ("payments/a.yaml", Some("payments/a.yaml.status.json")),
            ("m/../x.yaml", None),
            ("../x.yaml", None),
            ("m//x.yaml", None),
            ("/etc/x.yaml", None),
            ("./x.yaml", None),
            ("m/./x.yaml", None),
            ("m/", None),
            ("", None),
            ("a\\..\\x.yaml", None),
            ("a\nb.yaml", None),
        ];
        for (key, want) in table {
            assert_eq!(document_name(key).ok().as_deref(), *want, "{key:?}");
        }
    }

    #[test]
    fn a_status_folder_inside_the_manifest_folder_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let manifests = root.path().join("m");
        std::fs::create_dir(&manifests).unwrap();
        std::os::unix::fs::symlink(&manifests, root.path().join("link")).unwrap();
        let source = Source::Dir(manifests.clone());
        let table: &[(PathBuf, bool)] = &[
            (root.path().join("status"), true),
            (manifests.join("status"), false),
            (manifests.clone(), false),
            // Through a link, and not yet existing.
            (root.path().join("link/new/deeper"), false),
            (manifests.join("../status"), true),
        ];
        for (dir, ok) in table {
            let got = check_outside_source(&StatusTarget::Dir(dir.clone()), &source);
            assert_eq!(got.is_ok(), *ok, "{}: {got:?}", dir.display());
        }
    }
}
