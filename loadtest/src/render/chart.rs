//! The charts: load vs capacity, latency over time, and one load panel per autoscaling profile.
//!
//! Each chart is drawn once, generically over plotters' [`DrawingBackend`], into an SVG string
//! and an RGB bitmap encoded as PNG. Text in both is laid out with the bundled DejaVu Sans
//! (ab_glyph), so PNGs need no system fonts.
//!
//! plotters cannot put classes on SVG elements, and the HTML report's tests and styles need
//! them (`series-offered`, `scaling-event`, …). Every classed thing is therefore drawn in a
//! colour used by nothing else, and [`tag_svg`] adds the class to each element of that
//! colour. Legend swatches use a colour one unit away ([`legend_colour`]), invisible to the
//! eye, so that only data elements carry a class.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

use super::format::{escape_html, ms, target_name, LatencyStatistic};
use super::RenderError;
use crate::report::{RunReport, ScalingEvent, TimelinePoint};

/// DejaVu Sans 2.37 (licence in `loadtest/assets/DejaVuSans-LICENSE.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family charts ask for; the bundled font is registered under it, and browsers showing
/// the SVG substitute their own sans-serif.
const FONT: &str = "sans-serif";

/// Something drawn in its own colour whose SVG elements get `class`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    /// The class the SVG elements get.
    pub class: &'static str,
    /// Legend text.
    pub label: &'static str,
    /// The colour only this mark uses.
    pub colour: RGBColor,
}

const fn mark(class: &'static str, label: &'static str, (r, g, b): (u8, u8, u8)) -> Mark {
    Mark {
        class,
        label,
        colour: RGBColor(r, g, b),
    }
}

// Colour-blind-safe hues (Okabe–Ito), each used by one mark only.
const OFFERED: Mark = mark("series-offered", "offered req/s", (0x00, 0x72, 0xB2));
const ACHIEVED: Mark = mark("series-achieved", "achieved req/s", (0x00, 0x9E, 0x73));
const ERRORS: Mark = mark("series-errors", "errors/s", (0xD6, 0x27, 0x28));
const DESIRED: Mark = mark("series-desired", "desired tasks", (0xE6, 0x9F, 0x00));
const RUNNING: Mark = mark("series-running", "running tasks", (0xCC, 0x79, 0xA7));
const HEALTHY: Mark = mark(
    "series-healthy",
    "healthy tasks (supply)",
    (0x2B, 0x2B, 0x2B),
);
const DEMAND: Mark = mark("series-demand", "demand in tasks", (0x8C, 0x56, 0x4B));
const EVENT: Mark = mark("scaling-event", "scaling event (#)", (0x88, 0x88, 0x88));
const P50: Mark = mark("series-p50", "p50", (0x56, 0xB4, 0xE9));
const P90: Mark = mark("series-p90", "p90", (0x00, 0x9E, 0x70));
const P99: Mark = mark("series-p99", "p99", (0xE6, 0x9F, 0x02));
const MAX: Mark = mark("series-max", "max", (0xD5, 0x5E, 0x00));
const SLO: Mark = mark("series-slo", "SLO: p99 limit", (0xB2, 0x22, 0x22));

const LOAD_MARKS: &[Mark] = &[
    OFFERED, ACHIEVED, ERRORS, DESIRED, RUNNING, HEALTHY, DEMAND, EVENT,
];
const LATENCY_MARKS: &[Mark] = &[P50, P90, P99, MAX, SLO, EVENT];

/// The colour legend swatches use: one unit of blue away from the mark's, so they look the
/// same but are not tagged as data.
fn legend_colour(colour: RGBColor) -> RGBColor {
    RGBColor(colour.0, colour.1, colour.2 ^ 1)
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A chart the renderer can draw on any backend.
pub(super) trait Chart {
    /// Pixel size of the SVG and the PNG.
    fn size(&self) -> (u32, u32);
    /// The id the inlined `<svg>` gets in the HTML report.
    fn id(&self) -> &'static str;
    /// What the chart shows, for its `<title>` (screen readers, tooltips).
    fn title(&self) -> String;
    /// The marks whose elements get classes.
    fn marks(&self) -> &'static [Mark];
    /// Draws the chart.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// A chart as SVG text (tagged, with id and title) and PNG bytes.
pub(super) struct Rendered {
    /// A standalone SVG document, also fit to inline in HTML.
    pub svg: String,
    /// The same chart as a PNG.
    pub png: Vec<u8>,
}

/// Draws `chart` to SVG and PNG.
pub(super) fn render(chart: &impl Chart) -> Result<Rendered, RenderError> {
    register_bundled_font()?;
    let (width, height) = chart.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        chart.draw(&root).map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    let svg = tag_svg(&svg, chart.id(), &chart.title(), chart.marks());

    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let bitmap = BitMapBackend::with_buffer(&mut pixels, (width, height));
        let root = RoundJoins(bitmap).into_drawing_area();
        chart.draw(&root).map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    let png = encode_png(&pixels, width, height)?;
    Ok(Rendered { svg, png })
}

/// A bitmap backend that strokes wide paths segment by segment, with round joins. plotters
/// turns a whole wide path into one polygon with unlimited miter joins, which throws spikes
/// far off the plot wherever noisy per-second data turns sharply. (SVG viewers apply a miter
/// limit themselves.)
struct RoundJoins<B>(B);

impl<B: DrawingBackend> DrawingBackend for RoundJoins<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_pixel(point, color)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        if style.stroke_width() <= 1 {
            return self.0.draw_path(path, style);
        }
        let mut points: Vec<BackendCoord> = path.into_iter().collect();
        points.dedup();
        for pair in points.windows(2) {
            self.0.draw_path(pair.iter().copied(), style)?;
        }
        let radius = style.stroke_width() / 2;
        for &joint in points.iter().skip(1).take(points.len().saturating_sub(2)) {
            self.0.draw_circle(joint, radius, style, true)?;
        }
        Ok(())
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.fill_polygon(vertices, style)
    }
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_text(text, style, pos)
    }
    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        self.0.estimate_text_size(text, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }
}

fn chart_error(error: impl std::fmt::Display) -> RenderError {
    RenderError::Chart(error.to_string())
}

/// Registers the bundled font with plotters once per process; SVG layout needs it too.
fn register_bundled_font() -> Result<(), RenderError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered =
        *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    registered.then_some(()).ok_or(RenderError::Font)
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, RenderError> {
    let png_error = |error: png::EncodingError| RenderError::Png(error.to_string());
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Balanced);
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(rgb).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(png)
}

/// Gives the root `<svg>` an id, a class and a `<title>`, and every shape drawn in a mark's
/// colour the mark's class. Relies on plotters writing one element per line.
pub(super) fn tag_svg(svg: &str, id: &str, title: &str, marks: &[Mark]) -> String {
    let painted_by: Vec<([String; 2], &str)> = marks
        .iter()
        .map(|mark| {
            let RGBColor(r, g, b) = mark.colour;
            let colour = format!("\"#{r:02X}{g:02X}{b:02X}\"");
            (
                [format!("stroke={colour}"), format!("fill={colour}")],
                mark.class,
            )
        })
        .collect();
    let mut tagged = String::with_capacity(svg.len() + svg.len() / 8);
    for line in svg.lines() {
        if let Some(rest) = line.strip_prefix("<svg ") {
            let _ = writeln!(
                tagged,
                "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-labelledby=\"{id}-title\" \
                 {rest}\n<title id=\"{id}-title\">{}</title>",
                escape_html(title)
            );
            continue;
        }
        let shape = ["<line ", "<polyline ", "<rect ", "<polygon ", "<circle "]
            .iter()
            .find(|tag| line.starts_with(**tag));
        let class = shape.and_then(|_| {
            painted_by.iter().find_map(|(paints, class)| {
                let painted = paints.iter().any(|paint| line.contains(paint.as_str()));
                painted.then_some(*class)
            })
        });
        match (shape, class) {
            (Some(tag), Some(class)) => {
                let _ = writeln!(tagged, "{tag}class=\"{class}\" {}", &line[tag.len()..]);
            }
            _ => {
                tagged.push_str(line);
                tagged.push('\n');
            }
        }
    }
    tagged
}

/// Load vs capacity over one run.
pub(super) struct LoadChart<'a>(pub &'a RunReport);

impl Chart for LoadChart<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 560)
    }
    fn id(&self) -> &'static str {
        "chart-load"
    }
    fn title(&self) -> String {
        format!("Load vs capacity: {}", target_name(self.0))
    }
    fn marks(&self) -> &'static [Mark] {
        LOAD_MARKS
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let frame = LoadFrame::covering([self.0]);
        draw_load(root, self.0, &frame, &self.title(), Detail::Full)
    }
}

/// Latency percentiles over one run.
pub(super) struct LatencyChart<'a>(pub &'a RunReport);

impl Chart for LatencyChart<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 480)
    }
    fn id(&self) -> &'static str {
        "chart-latency"
    }
    fn title(&self) -> String {
        format!("Latency from intended send time: {}", target_name(self.0))
    }
    fn marks(&self) -> &'static [Mark] {
        LATENCY_MARKS
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        draw_latency(root, self.0, &self.title())
    }
}

/// One load panel per autoscaling profile, on shared axes.
pub(super) struct ComparisonChart<'a>(pub &'a [(String, RunReport)]);

impl ComparisonChart<'_> {
    /// Panels per row.
    fn columns(&self) -> usize {
        self.0.len().clamp(1, 2)
    }
    fn rows(&self) -> usize {
        self.0.len().div_ceil(self.columns()).max(1)
    }
}

impl Chart for ComparisonChart<'_> {
    fn size(&self) -> (u32, u32) {
        (self.columns() as u32 * 700, 40 + self.rows() as u32 * 440)
    }
    fn id(&self) -> &'static str {
        "chart-comparison"
    }
    fn title(&self) -> String {
        match self.0.first() {
            Some((_, report)) => format!(
                "Autoscaling profiles compared: {} against {}",
                report.setup.schedule,
                target_name(report)
            ),
            None => "Autoscaling profiles compared".to_string(),
        }
    }
    fn marks(&self) -> &'static [Mark] {
        LOAD_MARKS
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let body = root.titled(&self.title(), (FONT, 20))?;
        let frame = LoadFrame::covering(self.0.iter().map(|(_, report)| report));
        let panels = body.split_evenly((self.rows(), self.columns()));
        for ((profile, report), panel) in self.0.iter().zip(&panels) {
            let title = match &report.elasticity {
                Some(e) => format!(
                    "{profile}: θ_U {:.2}, τ_U {:.0}%, {:.0} task·s",
                    e.metrics.under_provisioning_accuracy,
                    e.metrics.under_provisioning_timeshare * 100.0,
                    e.metrics.task_seconds
                ),
                None => profile.clone(),
            };
            draw_load(panel, report, &frame, &title, Detail::Compact)?;
        }
        Ok(())
    }
}

/// How much a load chart shows: everything, or the essentials for a small panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    Full,
    Compact,
}

impl Detail {
    fn font_size(self) -> u32 {
        match self {
            Detail::Full => 14,
            Detail::Compact => 12,
        }
    }
}

/// Axis ranges of load charts; shared by the panels of a comparison so they compare.
#[derive(Debug, Clone, PartialEq)]
struct LoadFrame {
    seconds: f64,
    rate_max: f64,
    tasks_max: f64,
    /// Whether any run has task counts (else no right axis).
    show_tasks: bool,
    /// When all runs share a per-task capacity, the two axes are scaled so that one task
    /// sits at the height of the requests it serves: demand then overlays offered load.
    capacity_per_task: Option<f64>,
}

impl LoadFrame {
    fn covering<'r>(reports: impl IntoIterator<Item = &'r RunReport>) -> LoadFrame {
        let mut frame = LoadFrame {
            seconds: 1.0,
            rate_max: 1.0,
            tasks_max: 1.0,
            show_tasks: false,
            capacity_per_task: None,
        };
        let mut capacities = Vec::new();
        for report in reports {
            frame.seconds = frame.seconds.max(run_seconds(report));
            for point in &report.timeline {
                let busiest = point.offered.max(point.achieved).max(point.errors);
                frame.rate_max = frame.rate_max.max(busiest as f64);
                for tasks in task_counts(point).into_iter().flatten() {
                    frame.show_tasks = true;
                    frame.tasks_max = frame.tasks_max.max(f64::from(tasks));
                }
            }
            capacities.push(report.elasticity.as_ref().map(|e| e.capacity_per_task));
        }
        let shared_capacity = match capacities.split_first() {
            Some((Some(first), rest)) if rest.iter().all(|c| *c == Some(*first)) => Some(*first),
            _ => None,
        };
        if let Some(capacity) = shared_capacity.filter(|c| *c > 0.0 && frame.show_tasks) {
            frame.tasks_max = frame.tasks_max.max(frame.rate_max / capacity);
            frame.rate_max = frame.tasks_max * capacity;
            frame.capacity_per_task = Some(capacity);
        }
        // Headroom for the legend in the upper left.
        frame.rate_max *= 1.3;
        frame.tasks_max *= 1.3;
        frame
    }

    /// How many primary-axis units one task is.
    fn task_scale(&self) -> f64 {
        self.rate_max / self.tasks_max
    }
}

fn task_counts(point: &TimelinePoint) -> [Option<u32>; 4] {
    [
        point.desired_tasks,
        point.running_tasks,
        point.healthy_tasks,
        point.demand_tasks,
    ]
}

/// The run's length on the chart: its duration, its timeline and its events all fit.
fn run_seconds(report: &RunReport) -> f64 {
    let timeline_end = report
        .timeline
        .last()
        .map_or(0.0, |p| p.second as f64 + 1.0);
    let last_event = report
        .scaling_events
        .iter()
        .map(|e| e.at_second)
        .fold(0.0, f64::max);
    report
        .duration_seconds
        .max(timeline_end)
        .max(last_event)
        .max(1.0)
}

/// How a per-second value is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A point mid-second, joined by straight lines (rates, latencies).
    Midpoint,
    /// Flat over the second, with vertical steps (task counts).
    Step,
}

/// The continuous stretches of a per-second series: a second without a value, or a missing
/// second, breaks the line rather than bridging it.
fn segments(
    timeline: &[TimelinePoint],
    shape: Shape,
    value: impl Fn(&TimelinePoint) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous_second: Option<u64> = None;
    for point in timeline {
        let Some(y) = value(point) else {
            previous_second = None;
            continue;
        };
        let contiguous = previous_second.is_some_and(|s| s + 1 == point.second);
        if !contiguous {
            segments.push(Vec::new());
        }
        let segment = segments.last_mut().expect("pushed above");
        let x = point.second as f64;
        match shape {
            Shape::Midpoint => segment.push((x + 0.5, y)),
            Shape::Step => segment.extend([(x, y), (x + 1.0, y)]),
        }
        previous_second = Some(point.second);
    }
    segments
}

/// How a series' line looks.
#[derive(Debug, Clone, Copy)]
struct Stroke {
    width: u32,
    dashed: bool,
}

const THIN: Stroke = Stroke {
    width: 1,
    dashed: false,
};
const NORMAL: Stroke = Stroke {
    width: 2,
    dashed: false,
};
const BOLD: Stroke = Stroke {
    width: 3,
    dashed: false,
};
const DASHED: Stroke = Stroke {
    width: 2,
    dashed: true,
};

type Chart2d<'a, DB, Y> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>;

/// Draws one series' segments in the mark's colour and adds it to the legend; nothing (not
/// even a legend entry) when it has no data.
fn draw_lines<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart2d<'a, DB, Y>,
    segments: Vec<Vec<(f64, f64)>>,
    mark: Mark,
    stroke: Stroke,
) -> DrawResult<DB> {
    if segments.is_empty() {
        return Ok(());
    }
    let style = mark.colour.stroke_width(stroke.width);
    let annotation = if stroke.dashed {
        chart.draw_series(
            segments
                .into_iter()
                .map(|segment| DashedPathElement::new(segment, 7, 4, style)),
        )?
    } else {
        chart.draw_series(
            segments
                .into_iter()
                .map(|segment| PathElement::new(segment, style)),
        )?
    };
    let swatch = legend_colour(mark.colour).stroke_width(stroke.width);
    let gap = if stroke.dashed { 6 } else { 0 };
    annotation.label(mark.label).legend(move |(x, y)| {
        EmptyElement::at((x, y))
            + PathElement::new(vec![(0, 0), (7, 0)], swatch)
            + PathElement::new(vec![(7 + gap, 0), (20, 0)], swatch)
    });
    Ok(())
}

/// Vertical markers at each scaling event, numbered as in the report's table.
fn draw_scaling_events<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart2d<'a, DB, Y>,
    events: &[ScalingEvent],
    y_range: Range<f64>,
    detail: Detail,
) -> DrawResult<DB> {
    // Numbered by their place in the report's table; activities from before the run (the
    // admin API may return some) are off the chart.
    let shown: Vec<(usize, f64)> = events
        .iter()
        .enumerate()
        .map(|(index, event)| (index + 1, event.at_second))
        .filter(|(_, at)| *at >= 0.0 && at.is_finite())
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    let style = EVENT.colour.stroke_width(1);
    chart
        .draw_series(
            shown.iter().map(|&(_, at)| {
                PathElement::new(vec![(at, y_range.start), (at, y_range.end)], style)
            }),
        )?
        .label(EVENT.label)
        .legend(move |(x, y)| {
            PathElement::new(
                vec![(x + 10, y - 6), (x + 10, y + 6)],
                legend_colour(EVENT.colour).stroke_width(1),
            )
        });
    // Numbers only where they do not run into the previous one.
    let seconds_per_pixel = {
        let x = chart.x_range();
        let width = chart.plotting_area().dim_in_pixel().0.max(1);
        (x.end - x.start) / f64::from(width)
    };
    let mut free_from = f64::NEG_INFINITY;
    let numbered: Vec<(usize, f64)> = shown
        .into_iter()
        .filter(|&(number, at)| {
            let fits = at >= free_from;
            if fits {
                let label_pixels = 9.0 * number.to_string().len() as f64 + 10.0;
                free_from = at + label_pixels * seconds_per_pixel;
            }
            fits
        })
        .collect();
    let number_style = (FONT, detail.font_size()).into_font().color(&BLACK);
    chart.draw_series(numbered.into_iter().map(|(number, at)| {
        EmptyElement::at((at, y_range.end))
            + Text::new(number.to_string(), (3, 2), number_style.clone())
    }))?;
    Ok(())
}

/// Draws the legend, or — when the run gave the chart nothing to show — says so in the middle
/// of the plot (`centre`, in data coordinates) instead of drawing an empty legend box.
fn finish_chart<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart2d<'a, DB, Y>,
    has_data: bool,
    centre: (f64, f64),
    detail: Detail,
) -> DrawResult<DB> {
    if !has_data {
        let style = (FONT, detail.font_size() + 4)
            .into_font()
            .color(&BLACK.mix(0.6))
            .pos(Pos::new(HPos::Center, VPos::Center));
        chart.draw_series([Text::new("no requests were measured", centre, style)])?;
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, detail.font_size()))
        .draw()
}

/// Tick labels: whole numbers without decimals, fractions with one.
fn format_tick(value: &f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn draw_load<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &RunReport,
    frame: &LoadFrame,
    title: &str,
    detail: Detail,
) -> DrawResult<DB> {
    let text = detail.font_size();
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FONT, text + 6))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64);
    if frame.show_tasks {
        builder.right_y_label_area_size(60);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..frame.seconds, 0f64..frame.rate_max)?
        .set_secondary_coord(0f64..frame.seconds, 0f64..frame.tasks_max);
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("requests per second")
        .x_label_formatter(&format_tick)
        .y_label_formatter(&format_tick)
        .label_style((FONT, text))
        .axis_desc_style((FONT, text))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    if frame.show_tasks {
        let tasks_desc = match frame.capacity_per_task {
            Some(capacity) => format!("tasks (1 task = {capacity:.0} req/s)"),
            None => "tasks".to_string(),
        };
        // Whole tasks: at most one label per task.
        let labels = (frame.tasks_max.floor() as usize + 1).clamp(2, 11);
        chart
            .configure_secondary_axes()
            .y_desc(tasks_desc)
            .y_labels(labels)
            .y_label_formatter(&format_tick)
            .label_style((FONT, text))
            .axis_desc_style((FONT, text))
            .draw()?;
    }

    let timeline = &report.timeline;
    let errors: Vec<&TimelinePoint> = timeline.iter().filter(|p| p.errors > 0).collect();
    if !errors.is_empty() {
        let bar = ERRORS.colour.mix(0.7).filled();
        chart
            .draw_series(errors.iter().map(|p| {
                let x = p.second as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.9, p.errors as f64)], bar)
            }))?
            .label(ERRORS.label)
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x + 4, y - 5), (x + 16, y + 5)],
                    legend_colour(ERRORS.colour).mix(0.7).filled(),
                )
            });
    }
    draw_scaling_events(
        &mut chart,
        &report.scaling_events,
        0.0..frame.rate_max,
        detail,
    )?;

    // Task counts are drawn on the primary axis, scaled: both axes then share one drawing
    // pass and one legend, and the right axis only labels the scale.
    let scale = frame.task_scale();
    let tasks = |count: fn(&TimelinePoint) -> Option<u32>| {
        segments(timeline, Shape::Step, move |p| {
            count(p).map(|n| f64::from(n) * scale)
        })
    };
    if detail == Detail::Full {
        draw_lines(&mut chart, tasks(|p| p.desired_tasks), DESIRED, THIN)?;
        draw_lines(&mut chart, tasks(|p| p.running_tasks), RUNNING, THIN)?;
    }
    draw_lines(&mut chart, tasks(|p| p.demand_tasks), DEMAND, DASHED)?;
    draw_lines(&mut chart, tasks(|p| p.healthy_tasks), HEALTHY, BOLD)?;

    let rate = |count: fn(&TimelinePoint) -> u64| {
        segments(timeline, Shape::Midpoint, move |p| Some(count(p) as f64))
    };
    draw_lines(&mut chart, rate(|p| p.offered), OFFERED, NORMAL)?;
    draw_lines(&mut chart, rate(|p| p.achieved), ACHIEVED, NORMAL)?;
    let has_data = !timeline.is_empty() || !report.scaling_events.is_empty();
    let centre = (frame.seconds / 2.0, frame.rate_max / 2.0);
    finish_chart(&mut chart, has_data, centre, detail)
}

/// The latency chart's y range (ms, log scale): all percentiles drawn and the SLO fit.
fn latency_range(report: &RunReport) -> Range<f64> {
    let latencies = report.timeline.iter().filter_map(|p| p.latency.as_ref());
    let slo = report.elasticity.as_ref().map(|e| e.slo_p99_ms);
    let lowest = latencies
        .clone()
        .map(|l| l.p50_ms)
        .chain(slo)
        .filter(|ms| *ms > 0.0)
        .reduce(f64::min);
    let highest = latencies
        .map(|l| l.max_ms.max(l.p99_ms))
        .chain(slo)
        .reduce(f64::max);
    match (lowest, highest) {
        (Some(low), Some(high)) => {
            let low = (low * 0.7).max(0.001);
            // Headroom for the legend; at least a decade so the log axis has labels.
            low..(high * 3.0).max(low * 10.0)
        }
        _ => 0.1..100.0,
    }
}

fn draw_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    report: &RunReport,
    title: &str,
) -> DrawResult<DB> {
    let detail = Detail::Full;
    let text = detail.font_size();
    let seconds = run_seconds(report);
    let range = latency_range(report);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, text + 6))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..seconds, range.clone().log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency (ms, log scale)")
        .x_label_formatter(&format_tick)
        .y_label_formatter(&|y| format_axis_ms(*y))
        .label_style((FONT, text))
        .axis_desc_style((FONT, text))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    draw_scaling_events(&mut chart, &report.scaling_events, range.clone(), detail)?;
    if let Some(elasticity) = &report.elasticity {
        let slo = elasticity.slo_p99_ms;
        draw_lines(
            &mut chart,
            vec![vec![(0.0, slo), (seconds, slo)]],
            SLO,
            DASHED,
        )?;
    }
    let floor = range.start;
    let percentiles: [(Mark, LatencyStatistic); 4] = [
        (MAX, |l| l.max_ms),
        (P99, |l| l.p99_ms),
        (P90, |l| l.p90_ms),
        (P50, |l| l.p50_ms),
    ];
    for (mark, percentile) in percentiles {
        let series = segments(&report.timeline, Shape::Midpoint, |p| {
            p.latency.as_ref().map(|l| percentile(l).max(floor))
        });
        let stroke = if mark.class == P99.class {
            BOLD
        } else {
            NORMAL
        };
        draw_lines(&mut chart, series, mark, stroke)?;
    }
    let has_data = report.timeline.iter().any(|p| p.latency.is_some())
        || report.elasticity.is_some()
        || !report.scaling_events.is_empty();
    let centre = (seconds / 2.0, (range.start * range.end).sqrt());
    finish_chart(&mut chart, has_data, centre, detail)
}

/// Axis labels for milliseconds: no trailing zeros, seconds above 10 s.
fn format_axis_ms(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0} s", value / 1000.0)
    } else if value >= 1.0 {
        format!("{value:.0}")
    } else {
        let text = ms(value);
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(second: u64, healthy: Option<u32>) -> TimelinePoint {
        TimelinePoint {
            second,
            healthy_tasks: healthy,
            ..TimelinePoint::default()
        }
    }

    #[test]
    fn every_mark_colour_belongs_to_one_mark_and_no_legend_swatch() {
        let rgb = |RGBColor(r, g, b): RGBColor| (r, g, b);
        let marks: Vec<Mark> = LOAD_MARKS.iter().chain(LATENCY_MARKS).copied().collect();
        let mut owners = std::collections::HashMap::new();
        for mark in &marks {
            let owner = owners.entry(rgb(mark.colour)).or_insert(mark.class);
            assert_eq!(*owner, mark.class, "two marks share a colour");
            assert_ne!(rgb(mark.colour), (0, 0, 0), "black is for axes and text");
            assert_ne!(rgb(mark.colour), (255, 255, 255), "white is the background");
        }
        for mark in &marks {
            let swatch = rgb(legend_colour(mark.colour));
            assert!(
                !owners.contains_key(&swatch),
                "{} swatch is tagged",
                mark.class
            );
        }
    }

    #[test]
    fn segments_break_at_gaps_and_missing_seconds() {
        let timeline = [
            point(0, Some(1)),
            point(1, Some(2)),
            point(2, None),
            point(3, Some(2)),
            point(5, Some(3)),
        ];
        let healthy = |p: &TimelinePoint| p.healthy_tasks.map(f64::from);
        assert_eq!(
            segments(&timeline, Shape::Step, healthy),
            vec![
                vec![(0.0, 1.0), (1.0, 1.0), (1.0, 2.0), (2.0, 2.0)],
                vec![(3.0, 2.0), (4.0, 2.0)],
                vec![(5.0, 3.0), (6.0, 3.0)],
            ]
        );
        assert_eq!(
            segments(&timeline, Shape::Midpoint, healthy),
            vec![
                vec![(0.5, 1.0), (1.5, 2.0)],
                vec![(3.5, 2.0)],
                vec![(5.5, 3.0)]
            ]
        );
    }

    #[test]
    fn tagging_classes_data_elements_only() {
        let svg = "<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\n\
            <polyline fill=\"none\" opacity=\"1\" stroke=\"#0072B2\" stroke-width=\"2\" points=\"0,0 1,1 \"/>\n\
            <polyline fill=\"none\" opacity=\"1\" stroke=\"#0072B3\" stroke-width=\"2\" points=\"0,0 1,1 \"/>\n\
            <rect x=\"0\" y=\"0\" width=\"1\" height=\"1\" opacity=\"0.7\" fill=\"#D62728\" stroke=\"none\"/>\n\
            <text x=\"0\" y=\"0\" fill=\"#0072B2\">\n1\n</text>\n</svg>\n";
        let tagged = tag_svg(svg, "chart-x", "A <title>", LOAD_MARKS);
        assert!(tagged.starts_with("<svg id=\"chart-x\" class=\"chart\""));
        assert!(tagged.contains("<title id=\"chart-x-title\">A &lt;title&gt;</title>"));
        assert_eq!(tagged.matches("class=\"series-offered\"").count(), 1);
        assert!(tagged.contains("<rect class=\"series-errors\" x=\"0\""));
        assert!(tagged.contains("<text x=\"0\""), "text is never tagged");
    }

    #[test]
    fn one_task_sits_at_the_height_of_its_capacity() {
        let mut report = RunReport::default();
        report.timeline = (0..10)
            .map(|second| TimelinePoint {
                second,
                offered: 200,
                healthy_tasks: Some(2),
                demand_tasks: Some(4),
                ..TimelinePoint::default()
            })
            .collect();
        report.elasticity = Some(crate::report::ElasticityReport {
            capacity_per_task: 50.0,
            capacity_source: "given".to_string(),
            metrics: Default::default(),
            slo_violation_seconds: 0,
            slo_p99_ms: 100.0,
            recoveries: Vec::new(),
        });
        let frame = LoadFrame::covering([&report]);
        assert!(frame.show_tasks);
        assert!((frame.task_scale() - 50.0).abs() < 1e-9);
        assert!(frame.rate_max >= 200.0 && frame.tasks_max >= 4.0);

        report.elasticity = None;
        let frame = LoadFrame::covering([&report]);
        assert_eq!(frame.capacity_per_task, None);
        assert!(frame.rate_max >= 200.0 && frame.tasks_max >= 4.0);
    }

    #[test]
    fn axis_milliseconds_read_naturally() {
        assert_eq!(format_axis_ms(0.5), "0.5");
        assert_eq!(format_axis_ms(0.01), "0.01");
        assert_eq!(format_axis_ms(250.0), "250");
        assert_eq!(format_axis_ms(20_000.0), "20 s");
    }
}
