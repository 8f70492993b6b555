//! Status documents for pipelines: after every pass the daemon writes one
//! JSON document per manifest (its conditions, see `reconcile::status`) to
//! `--status-dir` (replaced atomically: written beside, then renamed) or
//! `--status-prefix` (one object each; a tenant's under its own
//! sub-prefix, as its manifests are). A document goes when its manifest
//! does. Writing runs in a task of its own, fed the latest documents: it
//! never holds a pass up, and a failure is logged and tried again with the
//! next pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::aws::s3::S3Objects;
use crate::errors::chain;
use crate::reconcile::status::{statuses, Transitions};
use crate::reconcile::PassReport;
use crate::source::{S3Location, Snapshot};

/// Where status documents go.
pub enum StatusTarget {
    Dir(PathBuf),
    S3 {
        objects: S3Objects,
        location: S3Location,
    },
}

/// The name of a manifest's status document: its key in the source with
/// `.status.json` after it (`accounts/api.yaml.status.json`).
pub fn document_name(key: &str) -> String {
    format!("{key}.status.json")
}

/// Feeds the writer task.
pub struct StatusWriter {
    latest: watch::Sender<Arc<BTreeMap<String, String>>>,
    transitions: Transitions,
}

impl StatusWriter {
    /// Starts the writer task.
    pub fn start(target: StatusTarget) -> StatusWriter {
        let (latest, rx) = watch::channel(Arc::new(BTreeMap::new()));
        tokio::spawn(write_loop(target, rx));
        StatusWriter {
            latest,
            transitions: Transitions::default(),
        }
    }

    /// Hands the documents of a pass to the writer (at once; the writing
    /// happens in the background).
    pub fn publish(&mut self, report: &PassReport, snap: &Snapshot) {
        let key_of: BTreeMap<String, &String> = snap
            .keys
            .iter()
            .map(|(key, shown)| (shown.display().to_string(), key))
            .collect();
        let docs = self
            .transitions
            .documents(&statuses(report), SystemTime::now());
        let named: BTreeMap<String, String> = docs
            .into_iter()
            .filter_map(|(shown, doc)| {
                let key = key_of.get(&shown)?;
                let mut text = serde_json::to_string_pretty(&doc).ok()?;
                text.push('\n');
                Some((document_name(key), text))
            })
            .collect();
        let _ = self.latest.send(Arc::new(named));
    }
}

async fn write_loop(target: StatusTarget, mut rx: watch::Receiver<Arc<BTreeMap<String, String>>>) {
    // What is out there now, as far as this process wrote it.
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    while rx.changed().await.is_ok() {
        let docs = rx.borrow_and_update().clone();
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
