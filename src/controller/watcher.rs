//! The folder watch: any change in the manifest folder (or a watcher error
//! or overflow) wakes the loop; the pass then reads the whole folder.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

/// The folder cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}", dir.display())]
pub struct WatchError {
    dir: PathBuf,
    #[source]
    source: notify::Error,
}

/// Watches `dir` (not recursively), sending a wake-up for every event but
/// reads. The watch lasts as long as the returned watcher.
pub fn watch_dir(
    dir: &Path,
    wake: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, WatchError> {
    use notify::{RecursiveMode, Watcher};
    let err = |source| WatchError {
        dir: dir.to_path_buf(),
        source,
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
    .map_err(err)?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(err)?;
    Ok(watcher)
}
