//! A folder of manifests (not recursive). Hidden files (including Kubernetes
//! ConfigMap `..data` directories), editor leftovers and non-manifest files
//! are ignored; symlinks are followed only when they stay inside the folder
//! (under a tenant policy: inside the file's own tenant folder, and a tenant
//! folder that is a link must lead inside the manifest folder and to no
//! other tenant's folder).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{
    build_snapshot, within_caps, FileEntry, Layout, Listed, NameMemory, Placement, Snapshot,
    SourceError,
};
use crate::manifest::{self, MAX_MANIFEST_BYTES};

/// Reads every manifest of a folder source: the folder's own manifests
/// (single-tenant), or those of each tenant's sub-folder.
pub fn load_dir(
    dir: &Path,
    layout: &Layout,
    memory: &mut NameMemory,
) -> Result<Snapshot, SourceError> {
    let err = |source| SourceError::Folder {
        dir: dir.to_path_buf(),
        source,
    };
    let root = dir.canonicalize().map_err(err)?;
    let listing = list(&root).map_err(err)?;
    let mut entries = Vec::new();
    let mut files = Vec::new();
    match layout {
        Layout::Flat => manifest_files(dir, "", &listing, &Placement::Flat, &root, &mut files),
        Layout::Tenants(tenants) => {
            manifest_files(dir, "", &listing, &Placement::TopLevel, &root, &mut files);
            let folders = tenant_folders(&root, &listing, tenants);
            for item in &listing {
                let Ok(name) = &item.name else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let shown = dir.join(name);
                let prefix = format!("{name}/");
                if tenants.contains(name) {
                    let placement = Placement::Tenant(name.clone());
                    let folder = match folders.get(name) {
                        Some(Ok(folder)) => folder,
                        Some(Err(why)) => {
                            // Its manifests are unknown: the tenant's removals are held.
                            entries.push(FileEntry {
                                shown,
                                key: prefix,
                                placement,
                                content: Err(why.clone()),
                            });
                            continue;
                        }
                        None => continue, // not a folder
                    };
                    match list(folder) {
                        Ok(inner) => {
                            manifest_files(&shown, &prefix, &inner, &placement, folder, &mut files)
                        }
                        // Its manifests are unknown: the tenant's removals are held.
                        Err(e) => entries.push(FileEntry {
                            shown,
                            key: prefix,
                            placement,
                            content: Err(format!("is a tenant's folder that cannot be read: {e}")),
                        }),
                    }
                } else if !is_dir_inside(&root, &item.path)
                    || item
                        .path
                        .canonicalize()
                        .is_ok_and(|t| folders.values().any(|f| f.as_ref().is_ok_and(|f| *f == t)))
                {
                    // Not a folder, or the real folder behind a tenant's link.
                    continue;
                } else if let Ok(inner) = list(&item.path) {
                    for f in inner.iter().filter(|f| f.is_manifest()) {
                        let file = f.shown_name();
                        entries.push(FileEntry {
                            shown: shown.join(&file),
                            key: format!("{prefix}{file}"),
                            placement: Placement::Elsewhere,
                            content: Err(String::new()),
                        });
                    }
                }
            }
        }
    }
    let (read, over_caps) = within_caps(files);
    entries.extend(read.into_iter().filter_map(read_one));
    Ok(build_snapshot(entries, over_caps, memory))
}

/// Where each tenant's folder really is, or why it is refused: a tenant
/// folder that is a link must lead to a folder inside the manifest folder
/// (not the folder itself) that is neither another tenant's folder nor
/// inside or around one, so no tenant reads another's files. Entries that
/// are not folders are left out.
fn tenant_folders(
    root: &Path,
    listing: &[Item],
    tenants: &std::collections::BTreeSet<String>,
) -> BTreeMap<String, Result<PathBuf, String>> {
    let mut real: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    for item in listing {
        let Ok(name) = &item.name else { continue };
        if !tenants.contains(name) {
            continue;
        }
        let is_link = item
            .path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        match item.path.canonicalize() {
            Ok(target) if target.is_dir() => {
                real.insert(name.clone(), (target, is_link));
            }
            Ok(_) => {}
            Err(_) if is_link => {
                real.insert(name.clone(), (PathBuf::new(), true));
            }
            Err(_) => {}
        }
    }
    let mut out = BTreeMap::new();
    for (name, (target, is_link)) in &real {
        if !is_link {
            out.insert(name.clone(), Ok(target.clone()));
            continue;
        }
        let inside = |t: &PathBuf| t.starts_with(root) && t != root;
        // Another tenant's folder (or a link some other tenant could use)
        // at, inside or around the target; links that lead nowhere usable
        // are refused on their own and shadow nothing.
        let shared = real.iter().any(|(other, (t, _))| {
            other != name
                && inside(t)
                && (t == target || t.starts_with(target) || target.starts_with(t))
        });
        let inside = inside(target);
        let verdict = if inside && !shared {
            Ok(target.clone())
        } else {
            Err(format!(
                "is a link that does not lead to a folder of tenant '{name}''s own inside the manifest folder; it is not read, and the tenant's routes stay as they are until it does"
            ))
        };
        out.insert(name.clone(), verdict);
    }
    out
}

/// How a listed file is read: its path (`None` when the name is not UTF-8)
/// and the folder its content must lie in.
struct ToRead {
    path: Option<PathBuf>,
    allowed: PathBuf,
}

/// Reads one file within the caps. A file over the caps was reported by
/// [`within_caps`] and is not read: a folder filled with junk neither
/// exhausts memory nor keeps the real manifests, which are small, from
/// being read.
fn read_one(f: Listed<ToRead>) -> Option<FileEntry> {
    let content = match &f.item.path {
        // Never skip silently: a manifest we cannot name might be a live mount.
        None => Err("has a file name that is not UTF-8; rename it".to_string()),
        Some(path) => match read_inside(&f.item.allowed, path, &f.placement) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => return None, // a directory named like a manifest
            Err(message) => Err(message),
        },
    };
    Some(FileEntry {
        shown: f.shown,
        key: f.key,
        placement: f.placement,
        content,
    })
}

/// One entry of a folder.
struct Item {
    /// The entry's name, or its lossy form when it is not UTF-8.
    name: Result<String, String>,
    path: PathBuf,
}

impl Item {
    fn shown_name(&self) -> String {
        match &self.name {
            Ok(n) | Err(n) => n.clone(),
        }
    }

    fn is_manifest(&self) -> bool {
        manifest::is_manifest_file_name(&self.shown_name())
    }
}

fn list(dir: &Path) -> std::io::Result<Vec<Item>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let raw = entry.file_name();
        let name = raw
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| raw.to_string_lossy().to_string());
        out.push(Item {
            name,
            path: entry.path(),
        });
    }
    out.sort_by_key(Item::shown_name);
    Ok(out)
}

/// Whether `path` is a folder inside `root` (following links that stay inside).
fn is_dir_inside(root: &Path, path: &Path) -> bool {
    path.canonicalize()
        .is_ok_and(|target| target.starts_with(root) && target.is_dir())
}

/// The manifest files of one folder listing, as `placement`; their content
/// must lie in `allowed`.
fn manifest_files(
    shown_dir: &Path,
    key_prefix: &str,
    listing: &[Item],
    placement: &Placement,
    allowed: &Path,
    files: &mut Vec<Listed<ToRead>>,
) {
    for item in listing.iter().filter(|i| i.is_manifest()) {
        let file = item.shown_name();
        let path = item.name.is_ok().then(|| item.path.clone());
        let size = path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        files.push(Listed {
            size,
            shown: shown_dir.join(&file),
            key: format!("{key_prefix}{file}"),
            placement: placement.clone(),
            item: ToRead {
                path,
                allowed: allowed.to_path_buf(),
            },
        });
    }
}

/// Reads a file that must be a regular file inside `allowed` (the manifest
/// folder, or under a tenant policy the file's tenant folder), refusing
/// anything over the size cap. `Ok(None)` for directories. The checks are
/// made on the opened handle, not the path, so a link swapped in between
/// cannot lead out of the folder; the file is opened without blocking, so a
/// FIFO or a device cannot hold the read up. A refusal never names where a
/// link leads: that may be another tenant's file.
fn read_inside(
    allowed: &Path,
    path: &Path,
    placement: &Placement,
) -> Result<Option<Vec<u8>>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| describe_io(&e, path))?;
    let meta = file.metadata().map_err(|e| describe_io(&e, path))?;
    // Where the handle leads is checked first: a link to a folder outside
    // is refused like a link to a file outside, not skipped as a folder.
    let target = opened_path(&file, path)?;
    if !target.starts_with(allowed) {
        let folder = match placement {
            Placement::Tenant(t) => format!("the folder of tenant '{t}'"),
            _ => "the manifest folder".to_string(),
        };
        return Err(format!(
            "is a symlink that leads outside {folder}; only links that stay inside it are followed"
        ));
    }
    if meta.is_dir() {
        return Ok(None);
    }
    if !meta.is_file() {
        return Err("is not a regular file (a FIFO, socket or device); it is not read".into());
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "file is {} bytes; manifests are limited to {MAX_MANIFEST_BYTES} bytes",
            meta.len()
        ));
    }
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

/// Where an opened file really is: the kernel's name for the handle (Linux
/// `/proc/self/fd`), or the canonical path where that is not available.
fn opened_path(file: &std::fs::File, path: &Path) -> Result<PathBuf, String> {
    use std::os::fd::AsRawFd;
    let by_handle = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    match std::fs::read_link(&by_handle) {
        Ok(p) => Ok(p),
        Err(_) => path.canonicalize().map_err(|e| describe_io(&e, path)),
    }
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

    fn id(name: &str) -> crate::manifest::MountId {
        crate::manifest::MountId {
            tenant: None,
            name: name.into(),
        }
    }

    const GOOD: &str = "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: accounts\nspec:\n  path: /accounts\n  function: account-service\n";

    #[test]
    fn ignores_other_files_and_reads_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("README.md"), "hi").unwrap();
        std::fs::write(dir.path().join(".a.yaml.swp"), "junk").unwrap();
        std::fs::write(dir.path().join("a.yaml~"), "junk").unwrap();
        let mut mem = NameMemory::new();
        let snap = load_dir(dir.path(), &Layout::Flat, &mut mem).unwrap();
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
        load_dir(dir.path(), &Layout::Flat, &mut mem).unwrap();
        // Broken so badly the name cannot be read: memory keeps it.
        std::fs::write(&p, "{{{{").unwrap();
        let snap = load_dir(dir.path(), &Layout::Flat, &mut mem).unwrap();
        assert!(snap.retained.contains(&id("accounts")));
        assert!(snap.held.is_empty());
        // A fresh process has no memory: deletions are held back.
        let snap = load_dir(dir.path(), &Layout::Flat, &mut NameMemory::new()).unwrap();
        assert!(snap.held.contains(&None));
        // A semantic error still shows the name.
        std::fs::write(&p, GOOD.replace("/accounts", "/a//b")).unwrap();
        let snap = load_dir(dir.path(), &Layout::Flat, &mut NameMemory::new()).unwrap();
        assert!(snap.retained.contains(&id("accounts")));
        assert!(snap.held.is_empty());
    }

    #[test]
    fn missing_folder_is_an_error_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        assert!(load_dir(&gone, &Layout::Flat, &mut NameMemory::new()).is_err());
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
        let snap = load_dir(dir.path(), &Layout::Flat, &mut NameMemory::new()).unwrap();
        assert!(snap.mounts.is_empty());
        assert_eq!(snap.errors.len(), 2, "{:?}", snap.errors);
        assert!(snap.errors.iter().any(|e| e.message.contains("outside")));
        assert!(snap.errors.iter().any(|e| e.message.contains("loop")));
        assert!(snap.held.contains(&None));
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        let fifo = dir.path().join("fifo.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
        let snap = load_dir(dir.path(), &Layout::Flat, &mut NameMemory::new()).unwrap();
        assert_eq!(snap.mounts.len(), 1);
        let messages: Vec<String> = snap.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages
                .iter()
                .any(|m| m.contains("fifo.yaml") && m.contains("not a regular file")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("zero.yaml") && m.contains("leads outside the manifest folder")),
            "{messages:?}"
        );
    }

    #[test]
    fn the_caps_bound_files_and_bytes() {
        use super::super::{Budget, MAX_SOURCE_BYTES};
        let mut b2 = Budget::default();
        let mut taken = 0;
        while b2.take(MAX_MANIFEST_BYTES) {
            taken += 1;
        }
        assert_eq!(taken as u64, MAX_SOURCE_BYTES / MAX_MANIFEST_BYTES);
        assert!(b2.take(0), "an empty file still fits");
        // The figures the README and the over-caps message give.
        assert_eq!(MAX_SOURCE_BYTES, 16 << 20);
        assert_eq!(super::super::MAX_SOURCE_FILES, 5000);
    }

    #[test]
    fn under_a_policy_links_stay_inside_their_tenants_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for t in ["a", "b"] {
            std::fs::create_dir(root.join(t)).unwrap();
        }
        std::fs::write(root.join("b/secret.yaml"), GOOD).unwrap();
        std::fs::write(root.join("a/own.yaml"), GOOD.replace("accounts", "own")).unwrap();
        // A link in a's folder to b's manifest, and one to a's own.
        std::os::unix::fs::symlink("../b/secret.yaml", root.join("a/0-peek.yaml")).unwrap();
        std::os::unix::fs::symlink("own.yaml", root.join("a/alias.yaml")).unwrap();
        // Tenant folders that are links: c to b's folder, d to the root,
        // e to a folder of its own inside the root.
        std::fs::create_dir(root.join("e-real")).unwrap();
        std::fs::write(root.join("e-real/e.yaml"), GOOD.replace("accounts", "e")).unwrap();
        std::os::unix::fs::symlink("b", root.join("c")).unwrap();
        std::os::unix::fs::symlink(".", root.join("d")).unwrap();
        std::os::unix::fs::symlink("e-real", root.join("e")).unwrap();
        // f leads to a folder around g's: neither may read the other's.
        std::fs::create_dir_all(root.join("outer/inner")).unwrap();
        std::fs::write(root.join("outer/o.yaml"), GOOD.replace("accounts", "o")).unwrap();
        std::os::unix::fs::symlink("outer", root.join("f")).unwrap();
        std::os::unix::fs::symlink("outer/inner", root.join("g")).unwrap();
        // A folder of no tenant behind a link that leads outside the root:
        // nothing of it is listed, not even its files' names.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("elsewhere.yaml"), GOOD).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("z-out")).unwrap();
        let layout = Layout::Tenants(["a", "b", "c", "d", "e", "f", "g"].map(String::from).into());
        let snap = load_dir(root, &layout, &mut NameMemory::new()).unwrap();
        let errors: Vec<String> = snap.errors.iter().map(|e| e.to_string()).collect();
        // e's real folder is read as e's, not reported as a folder of no tenant.
        assert!(!errors.iter().any(|e| e.contains("e-real")), "{errors:?}");
        assert!(
            !errors.iter().any(|e| e.contains("elsewhere.yaml")),
            "{errors:?}"
        );
        let peek = errors
            .iter()
            .find(|e| e.contains("0-peek.yaml"))
            .expect("the link into b is refused");
        assert!(
            peek.contains("leads outside the folder of tenant 'a'") && !peek.contains("secret"),
            "says nothing of where it leads: {peek}"
        );
        for t in ["c", "d", "f", "g"] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(&format!("/{t}:"))
                        && e.contains("does not lead to a folder")),
                "{t}: {errors:?}"
            );
            assert!(
                snap.held.contains(&Some(t.to_string())),
                "{t}'s removals held"
            );
        }
        let read: Vec<(Option<&str>, &str)> = snap
            .mounts
            .iter()
            .map(|m| (m.tenant.as_deref(), m.name.as_str()))
            .collect();
        // b's manifest is read once, as b's; a's link to its own file is followed.
        assert_eq!(
            read,
            vec![
                (Some("a"), "own"),
                (Some("a"), "own"),
                (Some("b"), "accounts"),
                (Some("e"), "e")
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn a_broken_file_in_no_tenants_folder_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("a")).unwrap();
        std::fs::write(root.join("a/own.yaml"), GOOD).unwrap();
        // At the top level, unreadable as YAML and without a name to salvage.
        std::fs::write(root.join("stray.yaml"), "{{{{").unwrap();
        // And a valid one: never applied, its name keeps what it made.
        std::fs::write(root.join("top.yaml"), GOOD.replace("accounts", "top")).unwrap();
        let layout = Layout::Tenants(["a".to_string()].into());
        let snap = load_dir(root, &layout, &mut NameMemory::new()).unwrap();
        assert!(snap.held.is_empty(), "{:?}", snap.held);
        let mounts: Vec<(Option<&str>, &str)> = snap
            .mounts
            .iter()
            .map(|m| (m.tenant.as_deref(), m.name.as_str()))
            .collect();
        assert_eq!(mounts, vec![(Some("a"), "accounts")]);
        assert!(snap.retained.contains(&id("top")), "{:?}", snap.retained);
        let top = snap
            .errors
            .iter()
            .find(|e| e.file.ends_with("top.yaml"))
            .expect("the top-level file is reported");
        assert_eq!(top.kind, crate::manifest::ErrorKind::Misplaced, "{top}");
        let stray = snap
            .errors
            .iter()
            .find(|e| e.file.ends_with("stray.yaml"))
            .expect("the stray file is reported");
        assert_eq!(stray.kind, crate::manifest::ErrorKind::Misplaced, "{stray}");
    }

    #[test]
    fn a_link_to_nothing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("gone.yaml", dir.path().join("dangling.yaml")).unwrap();
        let snap = load_dir(dir.path(), &Layout::Flat, &mut NameMemory::new()).unwrap();
        let messages: Vec<String> = snap.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            messages.iter().any(|m| m.contains("dangling.yaml")
                && m.contains("symlink whose target does not exist")),
            "{messages:?}"
        );
    }

    #[test]
    fn configmap_layout_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_11_24");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("a.yaml"), GOOD).unwrap();
        std::os::unix::fs::symlink("..2026_11_24", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.yaml", dir.path().join("a.yaml")).unwrap();
        let snap = load_dir(dir.path(), &Layout::Flat, &mut NameMemory::new()).unwrap();
        assert_eq!(snap.mounts.len(), 1, "{:?}", snap.errors);
    }
}
