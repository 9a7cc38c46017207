//! Watching the files a version is read from: a change is reported once
//! the files have been quiet for the debounce time (editors and copy tools
//! write in several steps). Only writes, creations, renames and removals of
//! the named files count; reading them (ours included, on every reload)
//! raises access events that must not look like a change.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

/// Calls `quiet` after each burst of changes to `files`, for as long as the
/// returned watcher lives; `None` when nothing can be watched.
pub(super) fn watch<F, Fut>(
    files: &[PathBuf],
    debounce: Duration,
    mut quiet: F,
) -> Option<notify::RecommendedWatcher>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let names: Vec<PathBuf> = files.iter().map(|f| canonical(f)).collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
            && event.paths.iter().any(|p| names.contains(&canonical(p)))
        {
            let _ = tx.send(());
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP"))
    .ok()?;
    let mut dirs: Vec<&Path> = files
        .iter()
        .filter_map(|f| f.parent())
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch a folder; reload with SIGHUP");
        }
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Quiet for `debounce`: every new event restarts the wait.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            quiet().await;
        }
    });
    Some(watcher)
}

fn canonical(p: &Path) -> PathBuf {
    // A file being replaced may briefly not exist: fall back to its parent.
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        let name = p.file_name().map(PathBuf::from).unwrap_or_default();
        p.parent()
            .and_then(|d| {
                std::fs::canonicalize(if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                })
                .ok()
            })
            .map_or_else(|| p.to_owned(), |d| d.join(name))
    })
}
