//! The file watcher: re-read a targets file when it changes, and every `bounds.max` anyway.
//!
//! The watch is on the file's directory, not the file: editors and config-management tools
//! replace a file by writing a new one and renaming it over the old, which a watch on the old
//! inode would never see. Events settle for [`SETTLE`] before the re-read, so a burst of writes
//! is read once, complete. A file that cannot be read or parsed keeps the last known targets.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{OnFailure, Reporter, ResolutionResult};
use crate::TtlBounds;

/// Quiet time after the last change event before the file is re-read.
pub(super) const SETTLE: Duration = Duration::from_millis(200);

/// The watch task for a file source.
pub(super) async fn run(
    path: PathBuf,
    default_port: u16,
    bounds: TtlBounds,
    mut reporter: Reporter,
) {
    let (changes, mut changed) = mpsc::unbounded_channel();
    // Kept alive for the task's life; dropping it (when the task is aborted) stops watching.
    let _watcher = watch_directory(&path, changes, &reporter);
    let safety_net = bounds.max.max(bounds.min);
    loop {
        reread(&path, default_port, safety_net, &mut reporter).await;
        tokio::select! {
            () = tokio::time::sleep(safety_net) => continue,
            Some(()) = changed.recv() => {}
        }
        // Settle: wait until no event has arrived for SETTLE.
        loop {
            tokio::select! {
                () = tokio::time::sleep(SETTLE) => break,
                Some(()) = changed.recv() => {}
            }
        }
    }
}

/// Starts a `notify` watch on `path`'s directory that sends `()` for every event touching the
/// file. Returns `None` (and logs) when the directory cannot be watched; the periodic re-read
/// still runs.
fn watch_directory(
    path: &Path,
    changes: mpsc::UnboundedSender<()>,
    reporter: &Reporter,
) -> Option<RecommendedWatcher> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name: Option<OsString> = path.file_name().map(OsString::from);
    let handler = move |event: notify::Result<Event>| {
        let relevant = match &event {
            // An error may mean lost events: re-read to be sure.
            Err(_) => true,
            Ok(event) => touches(event, file_name.as_deref()),
        };
        if relevant {
            let _ = changes.send(());
        }
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher
            .watch(&directory, RecursiveMode::NonRecursive)
            .map(|()| watcher)
    });
    match watched {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(
                target_group = %reporter.target_group,
                source = %reporter.source,
                directory = %directory.display(),
                %error,
                "cannot watch the targets file's directory; re-reading it every max_refresh_seconds only"
            );
            None
        }
    }
}

/// Whether `event` may have changed the file named `file_name`: any event naming it (or
/// naming nothing, such as a rescan), except plain reads, which our own re-reads cause.
fn touches(event: &Event, file_name: Option<&std::ffi::OsStr>) -> bool {
    let read_only = matches!(
        event.kind,
        EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write)
    );
    !read_only
        && (event.paths.is_empty()
            || event
                .paths
                .iter()
                .any(|changed| changed.file_name() == file_name))
}

/// Reads and parses the file once, and reports the outcome; the next read is due in `wait`
/// unless the file changes first.
async fn reread(path: &Path, default_port: u16, wait: Duration, reporter: &mut Reporter) {
    let targets = read_targets(path, default_port).await;
    reporter.schedule(wait);
    match targets {
        Ok(targets) => reporter.success(targets),
        Err(error) => reporter.failure(ResolutionResult::Error, &error, OnFailure::Keep),
    }
}

/// The file's targets, or why they could not be had (with `file:line:column` for a parse
/// error).
async fn read_targets(path: &Path, default_port: u16) -> Result<BTreeSet<SocketAddr>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    scalegate_config::parse_target_list(&text, path, default_port)
        .map(|targets| targets.into_iter().collect())
        .map_err(|errors| errors.to_string().replace('\n', "; "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use super::super::{spawn, WatchSpec};
    use super::*;
    use crate::{DiscoveryMetrics, FailurePolicy, ResolverSpec, SourceSpec, TargetUpdate};

    fn spec(path: &Path, max: Duration) -> WatchSpec {
        WatchSpec {
            source: SourceSpec::File(path.to_path_buf()),
            resolver: ResolverSpec::System,
            bounds: TtlBounds {
                min: Duration::from_millis(100),
                max,
            },
            failure: FailurePolicy::default(),
            family: scalegate_config::AddressFamily::Any,
            query_timeout: Duration::from_secs(1),
            default_port: 8080,
        }
    }

    /// Writes `text` to `path` the way editors do: a new file renamed over the old one.
    fn replace(path: &Path, text: &str) {
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, path).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_writes_renames_and_keeps_targets_through_parse_errors() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("targets.yaml");
        std::fs::write(&path, "- 10.0.0.1:80\n- 10.0.0.2\n").unwrap();
        let metrics = DiscoveryMetrics::unregistered();
        // A long safety net: every change below must be seen through notify.
        let spec = spec(&path, Duration::from_secs(3600));
        let mut watch = spawn(spec, "files", BTreeSet::new(), metrics.clone());
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.1:80", "10.0.0.2:8080"]))
        );

        // Written in place.
        std::fs::write(&path, "- 10.0.0.1:80\n- 10.0.0.3:80\n").unwrap();
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Remove(addrs(&["10.0.0.2:8080"]))
        );
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.3:80"]))
        );

        // A parse error keeps the targets and says where the error is.
        std::fs::write(&path, "- 10.0.0.1:80\n- nope\n").unwrap();
        eventually("the parse error to be reported", || {
            watch.status().last_result == Some("error")
        })
        .await;
        let status = watch.status();
        let error = status.last_error.unwrap();
        assert!(error.contains("targets.yaml:2:3"), "{error}");
        assert_eq!(status.targets, addrs(&["10.0.0.1:80", "10.0.0.3:80"]));
        assert_eq!(status.consecutive_failures, 1);
        assert_eq!(kept(&metrics, "files"), 1);
        assert_eq!(counter(&metrics, "files", "error"), 1);

        // Replaced by rename, as editors do, in JSON this time.
        replace(&path, r#"{"targets": ["10.0.0.4:80"]}"#);
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Remove(addrs(&["10.0.0.1:80", "10.0.0.3:80"]))
        );
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.4:80"]))
        );
        let status = watch.status();
        assert_eq!(status.last_result, Some("success"));
        assert_eq!(status.consecutive_failures, 0);
        assert!(status.last_success_unix_seconds.is_some());
        assert!(status.next_refresh_in_seconds.unwrap() > 3000.0);

        // Removed: keep the last known targets.
        std::fs::remove_file(&path).unwrap();
        eventually("the missing file to be reported", || {
            watch.status().last_result == Some("error")
        })
        .await;
        assert!(watch.status().last_error.unwrap().contains("cannot read"));
        assert_eq!(watch.status().targets, addrs(&["10.0.0.4:80"]));
        assert_eq!(
            metrics.targets.with_label_values(&["files"]).get(),
            1,
            "the gauge shows the kept targets"
        );
        let add = metrics.target_updates.with_label_values(&["files", "add"]);
        let remove = metrics
            .target_updates
            .with_label_values(&["files", "remove"]);
        assert_eq!((add.get(), remove.get()), (4, 3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rereads_on_the_safety_net_without_events() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("targets.json");
        let metrics = DiscoveryMetrics::unregistered();
        // The file does not exist yet: the first read fails, later ones find it.
        let spec = spec(&path, Duration::from_millis(300));
        let initial: BTreeSet<SocketAddr> = addrs(&["10.0.0.9:80"]).into_iter().collect();
        let mut watch = spawn(spec, "late", initial, metrics.clone());
        eventually("a failed read", || counter(&metrics, "late", "error") >= 1).await;
        assert_eq!(watch.status().targets, addrs(&["10.0.0.9:80"]));
        std::fs::write(&path, r#"["10.0.0.9:80", "10.0.0.8:80"]"#).unwrap();
        // Diffed against the initial membership: only the new address is added.
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.8:80"]))
        );
        let successes = counter(&metrics, "late", "success");
        eventually("periodic re-reads", || {
            counter(&metrics, "late", "success") >= successes + 2
        })
        .await;
    }

    #[test]
    fn only_events_that_may_change_the_file_count() {
        use notify::event::{CreateKind, ModifyKind};
        let name = Some(std::ffi::OsStr::new("t.yaml"));
        let event = |kind: EventKind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        assert!(touches(
            &event(EventKind::Modify(ModifyKind::Any), "/d/t.yaml"),
            name
        ));
        assert!(touches(
            &event(EventKind::Create(CreateKind::File), "/d/t.yaml"),
            name
        ));
        assert!(!touches(
            &event(EventKind::Modify(ModifyKind::Any), "/d/other.yaml"),
            name
        ));
        assert!(!touches(
            &event(EventKind::Access(AccessKind::Read), "/d/t.yaml"),
            name
        ));
        assert!(touches(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/d/t.yaml"
            ),
            name
        ));
        assert!(touches(&Event::new(EventKind::Other), name));
    }
}
