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
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::aws::AwsError;
use crate::manifest::tenants::TenantPolicy;
use crate::manifest::{self, ErrorKind, ManifestError, Mount, MountId, MAX_MANIFEST_BYTES};

pub mod dir;
pub mod s3;

pub use dir::load_dir;
pub use s3::{S3Location, S3Source};

/// Most manifest files one read takes from one folder (a tenant's, or a
/// single-tenant source's; the benchmark runs a thousand mounts); more are
/// reported and not read.
pub const MAX_SOURCE_FILES: usize = 5000;
/// Most bytes one read takes from one folder, smallest files first: a
/// manifest is a few hundred bytes, so real manifests are read even beside
/// junk.
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;
/// Files over the caps named in a folder's summary; the rest are counted.
const OVER_CAPS_NAMED: usize = 5;

/// The caps of one folder's read, in files and bytes.
#[derive(Default)]
pub(crate) struct Budget {
    files: usize,
    bytes: u64,
}

impl Budget {
    /// Takes a file of `size` bytes, unless that would go over a cap.
    pub(crate) fn take(&mut self, size: u64) -> bool {
        if self.files >= MAX_SOURCE_FILES
            || self.bytes + size.min(MAX_MANIFEST_BYTES) > MAX_SOURCE_BYTES
        {
            return false;
        }
        self.files += 1;
        self.bytes += size.min(MAX_MANIFEST_BYTES);
        true
    }
}

/// A manifest file a listing found, not read yet.
#[derive(Debug, Clone)]
pub(crate) struct Listed<T> {
    pub size: u64,
    pub shown: PathBuf,
    pub key: String,
    pub placement: Placement,
    /// What the source needs to read it.
    pub item: T,
}

/// Which listed files are read: each folder (a tenant's, or the source's
/// own level) has its own caps, taken smallest file first, so one tenant's
/// folder at its caps cannot push another's manifests out of the read.
/// Returns the files to read and those over their folder's caps.
pub(crate) fn within_caps<T>(mut found: Vec<Listed<T>>) -> (Vec<Listed<T>>, Vec<Unread>) {
    found.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.key.cmp(&b.key)));
    let mut budgets: BTreeMap<Option<String>, Budget> = BTreeMap::new();
    let (mut read, mut over) = (Vec::new(), Vec::new());
    for f in found {
        if budgets
            .entry(f.placement.tenant())
            .or_default()
            .take(f.size)
        {
            read.push(f);
        } else {
            over.push(Unread {
                shown: f.shown,
                key: f.key,
                placement: f.placement,
            });
        }
    }
    (read, over)
}

/// A manifest file over its folder's caps: not read, reported once per
/// folder with the others, and it keeps what it made (see [`build_snapshot`]).
#[derive(Debug, Clone)]
pub struct Unread {
    pub shown: PathBuf,
    pub key: String,
    pub placement: Placement,
}

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

/// How a source is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Layout {
    /// One folder (or prefix) of manifests: single-tenant mode.
    #[default]
    Flat,
    /// One sub-folder (or sub-prefix) of manifests per tenant of the policy;
    /// a manifest anywhere else is reported and never applied.
    Tenants(BTreeSet<String>),
}

impl Layout {
    /// The layout a tenant policy asks for.
    pub fn of(tenancy: Option<&TenantPolicy>) -> Layout {
        match tenancy {
            None => Layout::Flat,
            Some(p) => Layout::Tenants(p.tenants.iter().map(|t| t.name.clone()).collect()),
        }
    }
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

    /// Reads the whole source once, laid out as `tenancy` says (one folder
    /// per tenant) or flat without a policy.
    pub async fn load(
        &mut self,
        tenancy: Option<&Arc<TenantPolicy>>,
        memory: &mut NameMemory,
    ) -> Result<Snapshot, SourceError> {
        let layout = Layout::of(tenancy.map(|p| p.as_ref()));
        let mut snap = match self {
            // Folder reads block: they run off the async worker threads.
            Source::Dir(d) => {
                let (dir, mut names) = (d.clone(), std::mem::take(memory));
                let (read, names) = tokio::task::spawn_blocking(move || {
                    let read = load_dir(&dir, &layout, &mut names);
                    (read, names)
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                *memory = names;
                read?
            }
            Source::S3(s) => s.load(&layout, memory).await?,
        };
        snap.tenancy = tenancy.cloned();
        Ok(snap)
    }
}

/// Everything one read of a source found.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Valid manifests, sorted by file path (duplicates not yet resolved).
    pub mounts: Vec<Mount>,
    /// Files that are unreadable, invalid or misplaced.
    pub errors: Vec<ManifestError>,
    /// Mounts of invalid (or misplaced) files, where the name could still be
    /// read or was remembered from an earlier valid version: their routes stay.
    pub retained: BTreeSet<MountId>,
    /// Tenants (`None` in a single-tenant source) with a file that could not
    /// be read under a known name: none of their routes may be removed. A
    /// file outside every tenant's folder holds nothing.
    pub held: BTreeSet<Option<String>>,
    /// Short content hash of the manifest files: changes when any of them does.
    pub revision: String,
    /// Manifest files seen (valid or not, misplaced included).
    pub files: usize,
    /// Manifest files per tenant (`None` in a single-tenant source),
    /// misplaced ones not counted.
    pub files_by_tenant: BTreeMap<Option<String>, usize>,
    /// Every file's key within the source, with its shown name: which file
    /// holds a live mount is told by the key (see `plan::names::source_tag`).
    pub keys: BTreeMap<String, PathBuf>,
    /// The tenant policy the source was read under, if any.
    pub tenancy: Option<Arc<TenantPolicy>>,
}

/// Remembers the last valid mount of every file, so that a file that turns
/// invalid keeps its routes even when its new content hides the name.
pub type NameMemory = BTreeMap<PathBuf, MountId>;

/// Where a file lies in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A single-tenant source's folder.
    Flat,
    /// The folder of this tenant.
    Tenant(String),
    /// Directly in a tenant source's top folder: read (its name keeps the
    /// routes made before the policy), reported, never applied.
    TopLevel,
    /// In a folder of no tenant: reported, not read.
    Elsewhere,
}

impl Placement {
    /// The tenant whose folder it is in, if any.
    pub fn tenant(&self) -> Option<String> {
        match self {
            Placement::Tenant(t) => Some(t.clone()),
            _ => None,
        }
    }
}

/// One manifest file as a source delivers it.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// The name shown in messages (a path, or s3://bucket/key).
    pub shown: PathBuf,
    /// The key within the source: the path below the folder or prefix.
    pub key: String,
    pub placement: Placement,
    /// The bytes, or why they could not be had.
    pub content: Result<Vec<u8>, String>,
}

/// Parses a set of files into a snapshot, with the files that were over
/// their folder's caps. Used by every source.
pub fn build_snapshot(
    mut entries: Vec<FileEntry>,
    mut over_caps: Vec<Unread>,
    memory: &mut NameMemory,
) -> Snapshot {
    entries.sort_by(|a, b| a.shown.cmp(&b.shown));
    over_caps.sort_by(|a, b| a.shown.cmp(&b.shown));
    let mut snap = Snapshot::default();
    let mut hasher = Sha256::new();
    // Files over the caps keep the routes they made (by remembered name,
    // else by holding their tenant's removals), and are reported once per
    // folder: a count and the first few names.
    let mut unread_kept: BTreeSet<PathBuf> = BTreeSet::new();
    let mut summaries: BTreeMap<Option<String>, (PathBuf, Vec<String>)> = BTreeMap::new();
    for u in over_caps {
        let tenant = u.placement.tenant();
        snap.files += 1;
        snap.keys.insert(u.key.clone(), u.shown.clone());
        hasher.update(u.shown.display().to_string().as_bytes());
        hasher.update(b"\0over caps\0");
        if matches!(u.placement, Placement::Flat | Placement::Tenant(_)) {
            *snap.files_by_tenant.entry(tenant.clone()).or_default() += 1;
            retain(&mut snap, memory, &u.shown, tenant.clone(), None);
            unread_kept.insert(u.shown.clone());
        }
        let folder = u.shown.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = u
            .shown
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        summaries
            .entry(tenant)
            .or_insert_with(|| (folder, Vec::new()))
            .1
            .push(name);
    }
    for (tenant, (folder, names)) in summaries {
        let whose = match &tenant {
            Some(t) => format!("the folder of tenant '{t}'"),
            None => "one folder".to_string(),
        };
        let named: Vec<&str> = names
            .iter()
            .take(OVER_CAPS_NAMED)
            .map(String::as_str)
            .collect();
        let more = match names.len().saturating_sub(OVER_CAPS_NAMED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        snap.errors.push(ManifestError {
            file: folder,
            position: None,
            field: None,
            message: format!(
                "{} manifest files not read: one read takes at most {MAX_SOURCE_FILES} files and {} MiB from {whose}, smallest first ({}{more}); what they made stays until they are read",
                names.len(),
                MAX_SOURCE_BYTES / (1024 * 1024),
                named.join(", ")
            ),
            kind: ErrorKind::Unreadable,
        });
    }
    for entry in entries {
        let shown = entry.shown;
        let name = shown.display().to_string();
        let tenant = entry.placement.tenant();
        let applied = matches!(entry.placement, Placement::Flat | Placement::Tenant(_));
        snap.files += 1;
        snap.keys.insert(entry.key.clone(), shown.clone());
        if applied {
            *snap.files_by_tenant.entry(tenant.clone()).or_default() += 1;
        }
        let misplaced = |snap: &mut Snapshot| {
            snap.errors.push(ManifestError {
                file: shown.clone(),
                position: None,
                field: None,
                message: "is outside the folder of every tenant of the tenant policy, so it is never applied; move it into its tenant's folder".into(),
                kind: ErrorKind::Misplaced,
            })
        };
        if entry.placement == Placement::Elsewhere {
            hasher.update(name.as_bytes());
            hasher.update(b"\0elsewhere\0");
            misplaced(&mut snap);
            continue;
        }
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
                if applied {
                    retain(&mut snap, memory, &shown, tenant, None);
                }
                continue;
            }
        };
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(&bytes);
        hasher.update(b"\0");
        match manifest::parse(&shown, &bytes) {
            Ok(m) if !applied => {
                // Its name keeps the routes it made before the policy.
                snap.retained.insert(m.id());
                misplaced(&mut snap);
            }
            Ok(mut m) => {
                m.set_tenant(tenant);
                m.key = entry.key;
                memory.insert(shown.clone(), m.id());
                snap.mounts.push(m);
            }
            Err(_) if !applied => {
                if let Some(name) = manifest::salvage_name(&bytes) {
                    snap.retained.insert(MountId { tenant: None, name });
                }
                misplaced(&mut snap);
            }
            Err(errors) => {
                let salvaged = manifest::salvage_name(&bytes).map(|name| MountId {
                    tenant: tenant.clone(),
                    name,
                });
                snap.errors.extend(errors);
                retain(&mut snap, memory, &shown, tenant, salvaged);
            }
        }
    }
    // Forget files that are gone: their mounts really were removed.
    let present: BTreeSet<PathBuf> = snap
        .mounts
        .iter()
        .map(|m| m.file.clone())
        .chain(snap.errors.iter().map(|e| e.file.clone()))
        .chain(unread_kept)
        .collect();
    memory.retain(|p, _| present.contains(p));
    snap.revision = hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    snap
}

/// Keeps the routes of a file that failed: under the name it still shows
/// or had last time, else by holding its tenant's removals.
fn retain(
    snap: &mut Snapshot,
    memory: &NameMemory,
    file: &Path,
    tenant: Option<String>,
    salvaged: Option<MountId>,
) {
    let remembered = memory.get(file).cloned();
    let mut known = false;
    for id in [salvaged, remembered].into_iter().flatten() {
        snap.retained.insert(id);
        known = true;
    }
    if !known {
        snap.held.insert(tenant);
    }
}
