//! Task output, like ECS's `awslogs` driver: every line a task writes to stdout or stderr is
//! re-emitted through `tracing` with the task's ID, service and stream, and appended to the
//! task's log file `<log_dir>/<service>/<task-id>.log` (one file per task, as CloudWatch has one
//! log stream per task), each line prefixed with its UTC timestamp and stream.
//!
//! Memory is bounded: a line is cut at the configured length (the rest is counted and
//! dropped, and the kept part ends with a marker saying how much was dropped), and lines reach
//! the file writer through a bounded channel. A writer that falls behind blocks the readers,
//! the pipe fills, and the task blocks on its next write, as Docker's default blocking log mode
//! does; nothing grows without limit.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Lines waiting for the file writer, per task. With 16 KiB lines that is at most 1 MiB.
pub(crate) const LINE_QUEUE: usize = 64;

/// The `tracing` target of task output, so that it can be filtered on its own
/// (`RUST_LOG=info,task=warn`).
pub const TASK_OUTPUT_TARGET: &str = "task";

/// Which stream a line came from. `Scalegate` lines are the runtime's own notes in the task's
/// log (started, exited), so the file tells the whole story of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
    Scalegate,
}

impl Stream {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Scalegate => "scalegate",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of task output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub at: SystemTime,
    pub stream: Stream,
    pub text: String,
}

/// Who a line belongs to, for the `tracing` fields.
#[derive(Debug, Clone)]
pub(crate) struct TaskLabels {
    pub task_id: Arc<str>,
    pub service: Arc<str>,
}

/// Where a task's log file lives: `<log_dir>/<service>/<task-id>.log`. Public so that the admin
/// API can point at (or serve) it.
pub fn log_file_path(log_dir: &Path, service: &str, task_id: &str) -> PathBuf {
    log_dir.join(service).join(format!("{task_id}.log"))
}

/// Reads `reader` line by line until end of file, emitting each line through `tracing` and
/// sending it to the file writer. Lines longer than `max_line_bytes` are cut and marked; bytes
/// that are not UTF-8 are replaced. Ends quietly if the writer is gone.
pub(crate) async fn pump_lines<R: AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    max_line_bytes: usize,
    labels: TaskLabels,
    sink: mpsc::Sender<LogLine>,
) {
    let mut reader = BufReader::with_capacity(8 * 1024, reader);
    let mut line = LineAssembler::new(max_line_bytes);
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(chunk) => chunk,
            Err(error) => {
                tracing::warn!(
                    task_id = %labels.task_id,
                    service = %labels.service,
                    stream = stream.as_str(),
                    "cannot read task output: {error}"
                );
                break;
            }
        };
        if chunk.is_empty() {
            break;
        }
        let (consumed, complete) = match chunk.iter().position(|&byte| byte == b'\n') {
            Some(newline) => {
                line.push(&chunk[..newline]);
                (newline + 1, true)
            }
            None => {
                line.push(chunk);
                (chunk.len(), false)
            }
        };
        reader.consume(consumed);
        if complete && !emit(line.take(), stream, &labels, &sink).await {
            return;
        }
    }
    // A last line without a newline still counts.
    if !line.is_empty() {
        emit(line.take(), stream, &labels, &sink).await;
    }
}

async fn emit(
    text: String,
    stream: Stream,
    labels: &TaskLabels,
    sink: &mpsc::Sender<LogLine>,
) -> bool {
    tracing::info!(
        target: TASK_OUTPUT_TARGET,
        task_id = %labels.task_id,
        service = %labels.service,
        stream = stream.as_str(),
        "{text}"
    );
    sink.send(LogLine {
        at: SystemTime::now(),
        stream,
        text,
    })
    .await
    .is_ok()
}

/// Collects one line's bytes up to a limit, counting what it drops.
struct LineAssembler {
    kept: Vec<u8>,
    dropped: usize,
    limit: usize,
}

impl LineAssembler {
    fn new(limit: usize) -> Self {
        LineAssembler {
            kept: Vec::new(),
            dropped: 0,
            limit: limit.max(1),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len());
        let keep = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..keep]);
        self.dropped += bytes.len() - keep;
    }

    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.dropped == 0
    }

    /// The line so far as text, and a fresh start for the next one.
    fn take(&mut self) -> String {
        if self.kept.last() == Some(&b'\r') && self.dropped == 0 {
            self.kept.pop();
        }
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.dropped > 0 {
            use fmt::Write as _;
            let _ = write!(text, " …[line truncated: {} more bytes]", self.dropped);
        }
        self.kept.clear();
        // A long line's buffer goes back to a small one, so one long line does not pin memory.
        self.kept.shrink_to(256);
        self.dropped = 0;
        text
    }
}

/// Appends lines to the task's log file until every sender is gone. Write errors are reported
/// once and the lines dropped, so that a full disk never blocks the task's output.
pub(crate) async fn write_log_file(
    file: tokio::fs::File,
    path: PathBuf,
    mut lines: mpsc::Receiver<LogLine>,
) {
    let mut file = tokio::io::BufWriter::new(file);
    let mut failed = false;
    let mut formatted = String::new();
    while let Some(line) = lines.recv().await {
        if failed {
            continue;
        }
        formatted.clear();
        formatted.push_str(&rfc3339_millis(line.at));
        formatted.push(' ');
        formatted.push_str(line.stream.as_str());
        formatted.push(' ');
        formatted.push_str(&line.text);
        formatted.push('\n');
        let mut result = file.write_all(formatted.as_bytes()).await;
        // Flush when nothing else is waiting, so the file is current without a write per line
        // under bursts.
        if result.is_ok() && lines.is_empty() {
            result = file.flush().await;
        }
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), "cannot write task log file: {error}");
            failed = true;
        }
    }
    if !failed {
        let _ = file.flush().await;
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, the timestamp at the start of every log file line
/// (jiff, already here for scheduled actions, formats it).
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let timestamp = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{timestamp:.3}")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn labels() -> TaskLabels {
        TaskLabels {
            task_id: "t1".into(),
            service: "web".into(),
        }
    }

    async fn lines_of(input: &[u8], limit: usize) -> Vec<String> {
        let (sender, mut receiver) = mpsc::channel(LINE_QUEUE);
        let input = input.to_vec();
        let pump = tokio::spawn(async move {
            pump_lines(&input[..], Stream::Stdout, limit, labels(), sender).await;
        });
        let mut lines = Vec::new();
        while let Some(line) = receiver.recv().await {
            assert_eq!(line.stream, Stream::Stdout);
            lines.push(line.text);
        }
        pump.await.unwrap();
        lines
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_last_unterminated_one() {
        assert_eq!(
            lines_of(b"one\ntwo\r\n\nthree", 100).await,
            ["one", "two", "", "three"]
        );
        assert!(lines_of(b"", 100).await.is_empty());
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_marked() {
        let mut input = vec![b'x'; 50_000];
        input.extend_from_slice(b"\nshort\n");
        let lines = lines_of(&input, 1000).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(&"x".repeat(1000)));
        assert!(lines[0].ends_with(" …[line truncated: 49000 more bytes]"));
        assert_eq!(lines[1], "short");
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(lines_of(b"a\xffb\n", 100).await, ["a\u{fffd}b"]);
    }

    #[tokio::test]
    async fn file_lines_carry_timestamp_and_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let file = tokio::fs::File::create(&path).await.unwrap();
        let (sender, receiver) = mpsc::channel(LINE_QUEUE);
        let writer = tokio::spawn(write_log_file(file, path.clone(), receiver));
        sender
            .send(LogLine {
                at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                stream: Stream::Stderr,
                text: "boom".into(),
            })
            .await
            .unwrap();
        drop(sender);
        writer.await.unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, "2023-11-14T22:13:20.123Z stderr boom\n");
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day, and the last millisecond of a year.
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH + Duration::from_secs(1_709_164_800)),
            "2024-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH + Duration::from_millis(1_735_689_599_999)),
            "2024-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn log_files_are_per_service_and_task() {
        assert_eq!(
            log_file_path(Path::new("/var/log/sg"), "web", "abc"),
            Path::new("/var/log/sg/web/abc.log")
        );
    }
}
