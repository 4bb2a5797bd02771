//! Hot reload: on SIGHUP or when the config file changes, validate the new file completely and
//! apply it; a bad file is logged and counted, and the running config keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::App;

/// Quiet period after a file event before reloading, so an editor's several writes (or a
/// write then rename) become one reload.
const SETTLE: Duration = Duration::from_millis(200);

/// Starts watching `path` and SIGHUP; the returned task runs until aborted.
///
/// The SIGHUP handler and the file watcher are installed before this returns, so a SIGHUP
/// sent as soon as scalegate reports it is listening reloads rather than kills the process
/// (SIGHUP's default action).
///
/// `admin` is the admin listener's settings as started: the admin server is not rebuilt on
/// reload, so a change to them is reported rather than silently ignored.
pub fn spawn(
    path: PathBuf,
    app: Arc<App>,
    admin: scalegate_config::Admin,
    profile: Option<scalegate_config::TimingProfile>,
) -> JoinHandle<()> {
    let (events, mut triggers) = mpsc::channel::<&'static str>(16);
    let watcher = watch_file(&path, events.clone());
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("SIGHUP handler installs");
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            let cause = tokio::select! {
                _ = hangup.recv() => "SIGHUP",
                Some(cause) = triggers.recv() => {
                    // Let a burst of file events settle into one reload.
                    while let Ok(Some(_)) = tokio::time::timeout(SETTLE, triggers.recv()).await {}
                    cause
                }
            };
            if cause == "SIGHUP" {
                // logrotate convention: SIGHUP also reopens the access-log file.
                app.proxy.reopen_access_log();
            }
            reload(&path, &app, &admin, profile, cause).await;
        }
    })
}

async fn reload(
    path: &std::path::Path,
    app: &App,
    admin: &scalegate_config::Admin,
    profile: Option<scalegate_config::TimingProfile>,
    cause: &str,
) {
    let metrics = &app.metrics;
    match crate::load_with(Some(path), profile) {
        Ok(config) => match app.apply(&config).await {
            Ok(()) => {
                metrics.record_reload(true);
                if config.admin != *admin {
                    tracing::warn!("admin settings (address, token) changed: they take effect at the next restart");
                }
                tracing::info!(%cause, file = %path.display(), "config reloaded");
            }
            Err(error) => {
                metrics.record_reload(false);
                tracing::error!(%cause, file = %path.display(), error = format!("{error:#}"), "config reload failed; the previous config keeps serving");
            }
        },
        Err(errors) => {
            metrics.record_reload(false);
            for error in &errors.0 {
                tracing::error!(%cause, error = %error, "config reload rejected; the previous config keeps serving");
            }
        }
    }
}

/// Watches the file's directory (editors replace files by rename, which a watch on the file
/// itself would lose) and reports events that concern the file.
fn watch_file(
    path: &std::path::Path,
    events: mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    let file_name = path.file_name()?.to_owned();
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let concerns_file = event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(file_name.as_os_str()));
            let changes = matches!(
                event.kind,
                notify::EventKind::Create(_) | notify::EventKind::Modify(_)
            );
            if concerns_file && changes {
                let _ = events.try_send("file change");
            }
        }
    })
    .map_err(|error| tracing::warn!(%error, "cannot watch the config file; reload with SIGHUP"))
    .ok()?;
    if let Err(error) = watcher.watch(&directory, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(%error, "cannot watch the config file; reload with SIGHUP");
        return None;
    }
    Some(watcher)
}
