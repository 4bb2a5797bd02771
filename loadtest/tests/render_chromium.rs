//! The report files as a person gets them: valid PNGs and SVGs on disk, and `report.html`
//! loaded by headless Chromium with the chart elements in the DOM it built.
//!
//! Needs a Chromium binary (Debian package `chromium`; `scripts/test.sh` installs it, or point
//! `SCALEGATE_CHROMIUM` at one). Without one the browser test fails with a message, unless
//! `SCALEGATE_SKIP_CHROMIUM=1`.

#[path = "fixtures/run_report.rs"]
mod fixture;

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scalegate_loadtest::render::{write_comparison_files, write_report_files};

/// How long Chromium may take to load and serialize one page.
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn charts_are_valid_non_trivial_images() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_report_files(&fixture::step_run(), dir.path()).unwrap();
    for png in ["load.png", "latency.png"] {
        let (width, height, colours) = decode_png(&dir.path().join(png));
        assert!(width >= 800 && height >= 400, "{png} is {width}×{height}");
        assert!(colours >= 16, "{png} has only {colours} colours");
    }
    for svg in ["load.svg", "latency.svg"] {
        let text = std::fs::read_to_string(dir.path().join(svg)).unwrap();
        assert!(text.starts_with("<svg ") && text.trim_end().ends_with("</svg>"));
        assert!(text.len() > 10_000, "{svg} is {} bytes", text.len());
    }
    assert!(paths.contains(&dir.path().join("report.html")));
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_report_files(&fixture::step_run(), dir.path()).unwrap();
    let dom = dump_dom(&browser, &dir.path().join("report.html"), dir.path());

    for id in fixture::REPORT_IDS {
        assert!(dom.contains(&format!("id=\"{id}\"")), "no #{id} in the DOM");
    }
    assert!(
        dom.contains("<svg id=\"chart-load\""),
        "the load chart is an inline <svg>"
    );
    assert!(dom.contains("<svg id=\"chart-latency\""));
    assert_eq!(
        dom.matches("class=\"scaling-event\"").count(),
        2 * fixture::STEP_RUN_EVENTS,
        "each event marked on both charts"
    );
    for class in fixture::LOAD_SERIES.iter().chain(&fixture::LATENCY_SERIES) {
        assert!(dom.contains(&format!("class=\"{class}\"")), "no .{class}");
    }
    // The hostile cause stayed text: no element was made of it.
    assert!(
        !dom.contains("<script"),
        "markup from the report became DOM"
    );
    assert!(dom.contains("alarm &lt;script&gt;alert(1)&lt;/script&gt; &amp;"));
}

#[test]
fn the_comparison_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs = vec![
        ("fast".to_string(), fixture::step_run()),
        ("aws".to_string(), fixture::plain_run()),
    ];
    write_comparison_files(&runs, dir.path()).unwrap();
    let (width, height, _) = decode_png(&dir.path().join("comparison.png"));
    assert!(width > height, "panels side by side: {width}×{height}");
    let dom = dump_dom(&browser, &dir.path().join("comparison.html"), dir.path());
    assert!(dom.contains("<svg id=\"chart-comparison\""));
    assert!(dom.contains("id=\"comparison\""));
    assert_eq!(dom.matches("class=\"scaling-event\"").count(), 2);
    assert!(dom.contains("<td>fast</td>") && dom.contains("<td>aws</td>"));
}

/// Width, height and number of distinct colours of a PNG (fully decoded, so corrupt data
/// fails here).
fn decode_png(path: &Path) -> (u32, u32, usize) {
    let file = BufReader::new(File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let colours: HashSet<&[u8]> = pixels[..frame.buffer_size()].chunks(channels).collect();
    (frame.width, frame.height, colours.len())
}

/// The Chromium binary, or `None` (after saying why) when the test should be skipped.
/// Panics when none is found and skipping was not asked for.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SCALEGATE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file());
    if found.is_none() {
        let message = "no Chromium found (chromium, chromium-browser, google-chrome on PATH, or \
                       SCALEGATE_CHROMIUM): install the Debian package `chromium` \
                       (scripts/test.sh does)";
        if std::env::var("SCALEGATE_SKIP_CHROMIUM").as_deref() == Ok("1") {
            eprintln!("skipping: {message}");
        } else {
            panic!("{message}, or set SCALEGATE_SKIP_CHROMIUM=1 to skip this test");
        }
    }
    found
}

/// The DOM Chromium built from `page`, serialized. Output goes to a file rather than a pipe
/// so that polling for exit cannot deadlock on a full pipe.
fn dump_dom(browser: &Path, page: &Path, scratch: &Path) -> String {
    let dom_path = scratch.join("dom.html");
    let log_path = scratch.join("chromium.log");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(File::create(&dom_path).unwrap())
        .stderr(File::create(&log_path).unwrap())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {}: {error}", browser.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium did not finish within {BROWSER_DEADLINE:?}; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    assert!(
        status.success() && dom.contains("</html>"),
        "Chromium exited with {status}; log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    dom
}
