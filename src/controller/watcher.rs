//! The folder watch: any change in the manifest folder or the tenant
//! policy's folder (or a watcher error or overflow) wakes the loop; the pass
//! then reads everything again.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

/// A folder cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}", dir.display())]
pub struct WatchError {
    dir: PathBuf,
    #[source]
    source: notify::Error,
}

/// Watches the manifest folder (with its tenant sub-folders, recursively,
/// when `recursive`) and the `others` folders on their own (the tenant
/// policy's), sending a wake-up for every event but reads. The watch lasts
/// as long as the returned watcher.
pub fn watch(
    manifests: &Path,
    recursive: bool,
    others: &[&Path],
    wake: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, WatchError> {
    use notify::{RecursiveMode, Watcher};
    let err = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |source| WatchError { dir, source }
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => {}
            // Any other event, an error or an overflow: rescan (the pass reads everything).
            _ => {
                let _ = wake.try_send(());
            }
        }
    })
    .map_err(err(manifests))?;
    let mode = if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    watcher.watch(manifests, mode).map_err(err(manifests))?;
    for dir in others {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(err(dir))?;
    }
    Ok(watcher)
}
