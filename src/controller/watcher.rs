//! The folder watch: any change in the manifest folder or the tenant
//! policy's folder (or a watcher error or overflow) wakes the loop; the pass
//! then reads everything again.
//!
//! A watch is on a folder, not on its name: when the folder is deleted and
//! made again, or `--manifests` is a symlink pointed elsewhere, the old
//! watch sees nothing more. So the folder's parent is watched too (for
//! events about the folder's own name), and [`FolderWatch::follow`] re-arms
//! the watch whenever the folder found under the name is not the one
//! watched. When it cannot be armed (the folder is gone), the loop polls
//! until it can.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// A folder cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}", dir.display())]
pub struct WatchError {
    dir: PathBuf,
    #[source]
    source: notify::Error,
}

/// Which folder a path names now (links followed): device and inode.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// The watch of the manifest folder (with its tenant sub-folders,
/// recursively, when `recursive`) and of `others` (the tenant policy's
/// folder), kept on the folders their names lead to.
pub struct FolderWatch {
    folder: PathBuf,
    recursive: bool,
    others: Vec<PathBuf>,
    wake: mpsc::Sender<()>,
    watcher: Option<notify::RecommendedWatcher>,
    /// The folder the watch is on.
    watched: Option<(u64, u64)>,
    /// Set when the watched folder itself was removed: the watch is dead,
    /// even if a new folder under the name has the old one's inode number.
    lost: Arc<AtomicBool>,
}

/// What [`FolderWatch::follow`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The watch is on the folder the name leads to.
    Same,
    /// The folder was replaced: the watch is on the new one now.
    Rearmed,
}

impl FolderWatch {
    /// Arms the watch; fails when the folder cannot be watched.
    pub fn start(
        folder: &Path,
        recursive: bool,
        others: &[&Path],
        wake: mpsc::Sender<()>,
    ) -> Result<FolderWatch, WatchError> {
        let mut w = FolderWatch {
            folder: folder.to_path_buf(),
            recursive,
            others: others.iter().map(|p| p.to_path_buf()).collect(),
            wake,
            watcher: None,
            watched: None,
            lost: Arc::new(AtomicBool::new(false)),
        };
        w.arm()?;
        Ok(w)
    }

    /// Whether a watch is in place.
    pub fn armed(&self) -> bool {
        self.watcher.is_some()
    }

    /// Re-arms the watch when the name leads to another folder than the one
    /// watched (or none was); an error when it cannot (the watch is then
    /// off, and the caller polls).
    pub fn follow(&mut self) -> Result<Followed, WatchError> {
        if self.watcher.is_some()
            && !self.lost.load(Ordering::Relaxed)
            && self.watched.is_some()
            && identity(&self.folder) == self.watched
        {
            return Ok(Followed::Same);
        }
        self.arm().map(|()| Followed::Rearmed)
    }

    /// Arms the watch again, whatever it was on (SIGHUP).
    pub fn rearm(&mut self) -> Result<(), WatchError> {
        self.arm()
    }

    fn arm(&mut self) -> Result<(), WatchError> {
        use notify::{RecursiveMode, Watcher};
        self.watcher = None;
        self.watched = None;
        let err = |dir: &Path| {
            let dir = dir.to_path_buf();
            move |source| WatchError { dir, source }
        };
        let wake = self.wake.clone();
        self.lost.store(false, Ordering::Relaxed);
        let lost = self.lost.clone();
        // Events in the parent folder matter only when about the folder's
        // own name (removed, made again, a link pointed elsewhere).
        let folder = self.folder.clone();
        let parent = self
            .folder
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf);
        let watched_dirs: Vec<PathBuf> = std::iter::once(self.folder.clone())
            .chain(self.others.iter().cloned())
            .collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(e) = &event {
                    let gone = matches!(e.kind, notify::EventKind::Remove(_));
                    if gone && e.paths.contains(&folder) {
                        lost.store(true, Ordering::Relaxed);
                    }
                }
                match event {
                    Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => {}
                    Ok(e)
                        if !e.paths.is_empty()
                            && e.paths.iter().all(|p| {
                                parent.as_deref() == p.parent()
                                    && p.file_name() != folder.file_name()
                                    && !watched_dirs.iter().any(|d| p.starts_with(d))
                            }) => {}
                    // Any other event, an error or an overflow: rescan (the pass reads everything).
                    _ => {
                        let _ = wake.try_send(());
                    }
                }
            })
            .map_err(err(&self.folder))?;
        let mode = if self.recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        let before = identity(&self.folder);
        watcher
            .watch(&self.folder, mode)
            .map_err(err(&self.folder))?;
        for dir in &self.others {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(err(dir))?;
        }
        if let Some(parent) = self.folder.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Best effort: without it, a replaced folder is noticed at the
            // next look (a heartbeat) instead of at once.
            let _ = watcher.watch(parent, RecursiveMode::NonRecursive);
        }
        self.watched = before.filter(|b| identity(&self.folder) == Some(*b));
        self.watcher = Some(watcher);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn woken(rx: &mut mpsc::Receiver<()>) -> bool {
        let got = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .is_ok();
        // Let the burst finish, then empty the channel.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
        got
    }

    #[tokio::test]
    async fn the_watch_follows_a_folder_made_again_and_a_link_pointed_elsewhere() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = root.path().join("b");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let link = root.path().join("manifests");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let mut w = FolderWatch::start(&link, false, &[], tx).unwrap();
        assert_eq!(w.follow().unwrap(), Followed::Same);
        std::fs::write(a.join("x.yaml"), "x").unwrap();
        assert!(woken(&mut rx).await, "a change in the folder wakes");

        // The link pointed elsewhere: the parent's watch wakes, and follow re-arms.
        let tmp = root.path().join("manifests.tmp");
        std::os::unix::fs::symlink(&b, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        assert!(woken(&mut rx).await, "the link's replacement wakes");
        assert_eq!(w.follow().unwrap(), Followed::Rearmed);
        std::fs::write(b.join("y.yaml"), "y").unwrap();
        assert!(woken(&mut rx).await, "a change in the new folder wakes");
        // A sibling of the folder changing does not.
        std::fs::write(root.path().join("unrelated"), "u").unwrap();
        assert!(
            !woken(&mut rx).await,
            "a sibling's change is not the folder's"
        );

        // Removed and made again at once (the new folder may even get the
        // old one's inode number): the watch is dead, and follow re-arms.
        std::fs::remove_file(&link).unwrap();
        std::fs::create_dir(&link).unwrap();
        assert!(woken(&mut rx).await);
        assert_eq!(w.follow().unwrap(), Followed::Rearmed);
        std::fs::write(link.join("w.yaml"), "w").unwrap();
        assert!(
            woken(&mut rx).await,
            "a change in the folder made again wakes"
        );
        std::fs::remove_dir_all(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        assert!(woken(&mut rx).await);
        assert_eq!(w.follow().unwrap(), Followed::Rearmed);

        // The folder removed: cannot be armed until it is back.
        std::fs::remove_file(&link).unwrap();
        assert!(w.follow().is_err());
        assert!(!w.armed());
        std::fs::create_dir(&link).unwrap();
        assert_eq!(w.follow().unwrap(), Followed::Rearmed);
        std::fs::write(link.join("z.yaml"), "z").unwrap();
        assert!(
            woken(&mut rx).await,
            "a change in the folder made again wakes"
        );
    }
}
