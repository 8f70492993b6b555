//! Where manifests come from, and the [`Snapshot`] one read of a source
//! makes: the valid mounts, the problems, and what must be kept because a
//! file could not be read.
//!
//! It never guesses: a source that cannot be listed is an error (never "no
//! manifests"), and a file that cannot be read or parsed keeps the routes of
//! the mount it last described.
//!
//! - [`dir`]: a folder on disk (watched by the controller);
//! - [`s3`]: objects under an S3 prefix (polled by the controller).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::aws::AwsError;
use crate::manifest::{self, ErrorKind, ManifestError, Mount};

pub mod dir;
pub mod s3;

pub use dir::load_dir;
pub use s3::{S3Location, S3Source};

/// A source that could not be read as a whole. The pass is skipped: nothing
/// is ever deleted because a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The folder could not be listed.
    #[error("cannot read the manifest folder {}", dir.display())]
    Folder {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The S3 listing failed.
    #[error("listing {location} failed")]
    Listing {
        location: String,
        #[source]
        source: Box<AwsError>,
    },
}

/// Where manifests come from.
pub enum Source {
    Dir(PathBuf),
    S3(Box<S3Source>),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => d.display().to_string(),
            Source::S3(s) => s.describe(),
        }
    }

    /// Reads the whole source once.
    pub async fn load(&mut self, memory: &mut NameMemory) -> Result<Snapshot, SourceError> {
        match self {
            Source::Dir(d) => load_dir(d, memory),
            Source::S3(s) => s.load(memory).await,
        }
    }
}

/// Everything one read of the folder found.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Valid manifests, sorted by file path (duplicates not yet resolved).
    pub mounts: Vec<Mount>,
    /// Files that are unreadable or invalid.
    pub errors: Vec<ManifestError>,
    /// Mount names of invalid files, where the name could still be read (or
    /// was remembered from an earlier valid version): their routes stay.
    pub retained: BTreeSet<String>,
    /// A file failed and its mount name is unknown: nothing may be deleted.
    pub hold_orphans: bool,
    /// Short content hash of the manifest files: changes when any of them does.
    pub revision: String,
    /// Manifest files seen (valid or not).
    pub files: usize,
}

/// Remembers the last valid mount name of every file, so that a file that
/// turns invalid keeps its routes even when its new content hides the name.
pub type NameMemory = BTreeMap<PathBuf, String>;

/// One manifest file as a source delivers it.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// The name shown in messages (a path, or s3://bucket/key).
    pub shown: PathBuf,
    /// The bytes, or why they could not be had.
    pub content: Result<Vec<u8>, String>,
}

/// Parses a set of files into a snapshot. Used by every source.
pub fn build_snapshot(mut entries: Vec<FileEntry>, memory: &mut NameMemory) -> Snapshot {
    entries.sort_by(|a, b| a.shown.cmp(&b.shown));
    let mut snap = Snapshot::default();
    let mut hasher = Sha256::new();
    for entry in entries {
        let shown = entry.shown;
        let name = shown.display().to_string();
        snap.files += 1;
        let bytes = match entry.content {
            Ok(b) => b,
            Err(message) => {
                hasher.update(name.as_bytes());
                hasher.update(b"\0unreadable\0");
                snap.errors.push(ManifestError {
                    file: shown.clone(),
                    position: None,
                    field: None,
                    message,
                    kind: ErrorKind::Unreadable,
                });
                retain(&mut snap, memory, &shown, None);
                continue;
            }
        };
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(&bytes);
        hasher.update(b"\0");
        match manifest::parse(&shown, &bytes) {
            Ok(m) => {
                memory.insert(shown.clone(), m.name.clone());
                snap.mounts.push(m);
            }
            Err(errors) => {
                let salvaged = manifest::salvage_name(&bytes);
                snap.errors.extend(errors);
                retain(&mut snap, memory, &shown, salvaged);
            }
        }
    }
    // Forget files that are gone: their mounts really were removed.
    let present: BTreeSet<PathBuf> = snap
        .mounts
        .iter()
        .map(|m| m.file.clone())
        .chain(snap.errors.iter().map(|e| e.file.clone()))
        .collect();
    memory.retain(|p, _| present.contains(p));
    snap.revision = hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    snap
}

fn retain(snap: &mut Snapshot, memory: &NameMemory, file: &Path, salvaged: Option<String>) {
    let remembered = memory.get(file).cloned();
    let mut known = false;
    for name in [salvaged, remembered].into_iter().flatten() {
        snap.retained.insert(name);
        known = true;
    }
    if !known {
        snap.hold_orphans = true;
    }
}
