//! A folder of manifests (not recursive). Hidden files (including Kubernetes
//! ConfigMap `..data` directories), editor leftovers and non-manifest files
//! are ignored; symlinks are followed only when they stay inside the folder.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{build_snapshot, FileEntry, NameMemory, Snapshot, SourceError};
use crate::manifest::{self, MAX_MANIFEST_BYTES};

/// Reads every manifest in `dir` (not recursive).
pub fn load_dir(dir: &Path, memory: &mut NameMemory) -> Result<Snapshot, SourceError> {
    let err = |source| SourceError::Folder {
        dir: dir.to_path_buf(),
        source,
    };
    let root = dir.canonicalize().map_err(err)?;
    let entries = std::fs::read_dir(&root).map_err(err)?;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    let mut unnamed: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(err)?;
        let raw = entry.file_name();
        let Some(name) = raw.to_str().map(str::to_string) else {
            // Never skip silently: a manifest we cannot name might be a live mount.
            let lossy = raw.to_string_lossy().to_string();
            if manifest::is_manifest_file_name(&lossy) {
                unnamed.push(lossy);
            }
            continue;
        };
        if manifest::is_manifest_file_name(&name) {
            names.push((name, entry.path()));
        }
    }
    names.sort();

    let mut entries = names
        .into_iter()
        .filter_map(|(name, path)| {
            let shown = dir.join(&name);
            match read_inside(&root, &path) {
                Ok(Some(b)) => Some(FileEntry {
                    shown,
                    content: Ok(b),
                }),
                Ok(None) => None, // a directory named like a manifest
                Err(message) => Some(FileEntry {
                    shown,
                    content: Err(message),
                }),
            }
        })
        .collect::<Vec<_>>();
    for lossy in unnamed {
        entries.push(FileEntry {
            shown: dir.join(lossy),
            content: Err("has a file name that is not UTF-8; rename it".into()),
        });
    }
    Ok(build_snapshot(entries, memory))
}

/// Reads a file that must resolve to a regular file inside `root`, refusing
/// anything over the size cap. `Ok(None)` for directories.
fn read_inside(root: &Path, path: &Path) -> Result<Option<Vec<u8>>, String> {
    let target = path.canonicalize().map_err(|e| describe_io(&e, path))?;
    if !target.starts_with(root) {
        return Err(format!(
            "is a symlink to {}, outside the manifest folder; only links that stay inside it are followed",
            target.display()
        ));
    }
    let meta = std::fs::metadata(&target).map_err(|e| describe_io(&e, path))?;
    if meta.is_dir() {
        return Ok(None);
    }
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "file is {} bytes; manifests are limited to {MAX_MANIFEST_BYTES} bytes",
            meta.len()
        ));
    }
    let file = std::fs::File::open(&target).map_err(|e| describe_io(&e, path))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| describe_io(&e, path))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!(
            "file grew past {MAX_MANIFEST_BYTES} bytes while being read"
        ));
    }
    Ok(Some(bytes))
}

fn describe_io(e: &std::io::Error, path: &Path) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            if path.symlink_metadata().is_ok() {
                "is a symlink whose target does not exist".into()
            } else {
                "vanished while being read".into()
            }
        }
        std::io::ErrorKind::PermissionDenied => "cannot be read: permission denied".into(),
        _ if e.raw_os_error() == Some(40) => "is a symlink loop".into(),
        _ => format!("cannot be read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: accounts\nspec:\n  path: /accounts\n  function: account-service\n";

    #[test]
    fn ignores_other_files_and_reads_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("README.md"), "hi").unwrap();
        std::fs::write(dir.path().join(".a.yaml.swp"), "junk").unwrap();
        std::fs::write(dir.path().join("a.yaml~"), "junk").unwrap();
        let mut mem = NameMemory::new();
        let snap = load_dir(dir.path(), &mut mem).unwrap();
        assert_eq!(snap.mounts.len(), 1);
        assert!(snap.errors.is_empty());
        assert_eq!(snap.files, 1);
    }

    #[test]
    fn invalid_file_retains_its_name_or_holds_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, GOOD).unwrap();
        let mut mem = NameMemory::new();
        load_dir(dir.path(), &mut mem).unwrap();
        // Broken so badly the name cannot be read: memory keeps it.
        std::fs::write(&p, "{{{{").unwrap();
        let snap = load_dir(dir.path(), &mut mem).unwrap();
        assert!(snap.retained.contains("accounts"));
        assert!(!snap.hold_orphans);
        // A fresh process has no memory: deletions are held back.
        let snap = load_dir(dir.path(), &mut NameMemory::new()).unwrap();
        assert!(snap.hold_orphans);
        // A semantic error still shows the name.
        std::fs::write(&p, GOOD.replace("/accounts", "/a//b")).unwrap();
        let snap = load_dir(dir.path(), &mut NameMemory::new()).unwrap();
        assert!(snap.retained.contains("accounts"));
        assert!(!snap.hold_orphans);
    }

    #[test]
    fn missing_folder_is_an_error_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        assert!(load_dir(&gone, &mut NameMemory::new()).is_err());
    }

    #[test]
    fn symlinks_outside_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.yaml"), GOOD).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.yaml"), dir.path().join("x.yaml"))
            .unwrap();
        std::os::unix::fs::symlink(dir.path().join("loop.yaml"), dir.path().join("loop.yaml"))
            .unwrap();
        let snap = load_dir(dir.path(), &mut NameMemory::new()).unwrap();
        assert!(snap.mounts.is_empty());
        assert_eq!(snap.errors.len(), 2, "{:?}", snap.errors);
        assert!(snap.errors.iter().any(|e| e.message.contains("outside")));
        assert!(snap.errors.iter().any(|e| e.message.contains("loop")));
        assert!(snap.hold_orphans);
    }

    #[test]
    fn configmap_layout_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_11_24");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("a.yaml"), GOOD).unwrap();
        std::os::unix::fs::symlink("..2026_11_24", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.yaml", dir.path().join("a.yaml")).unwrap();
        let snap = load_dir(dir.path(), &mut NameMemory::new()).unwrap();
        assert_eq!(snap.mounts.len(), 1, "{:?}", snap.errors);
    }
}
