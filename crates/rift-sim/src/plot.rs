//! PNG plots of the congestion-control scenarios: sending rate against capacity on top, bottleneck
//! queuing delay below, on one time axis.
//!
//! Drawing is pure Rust (plotters' bitmap backend and PNG encoder) and the text uses DejaVu Sans
//! embedded from the `dejavu` crate, so plotting needs no system library or installed font.

use crate::scenario::{capacity_steps_with_baselines, run, Controller, Scenario, ScenarioResult};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Size of every plot, pixels.
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 800;

/// Span of the centred moving average applied to the per-interval send rates.
const SMOOTHING: Duration = Duration::from_millis(500);

/// Queuing delay axis: log scale between these, ms; smaller values are drawn at the floor.
const QUEUE_FLOOR_MS: f64 = 0.1;
const QUEUE_CEIL_MS: f64 = 1000.0;

const FONT: &str = "sans-serif";

/// Colours for the series, in order: blue, red, green, orange, purple.
const PALETTE: [RGBColor; 5] = [
    RGBColor(31, 100, 200),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];
const CAPACITY: RGBColor = RGBColor(0, 0, 0);
const GUIDE: RGBColor = RGBColor(150, 150, 150);

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("plotting failed: {0}")]
    Draw(String),
    #[error("font could not be registered: {0}")]
    Font(String),
    #[error("nothing to plot: {0}")]
    Empty(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Draw(e.to_string())
    }
}

/// Registers DejaVu Sans as plotters' "sans-serif" (every style falls back to it), once per
/// process.
fn fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "DejaVu Sans".to_string())
    })
    .clone()
    .map_err(PlotError::Font)
}

/// One line of a panel.
struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

/// What the two panels of a plot show.
struct Figure {
    title: String,
    rate_caption: String,
    queue_caption: String,
    duration: f64,
    /// Times to mark with a vertical guide (capacity steps, flow starts).
    marks: Vec<f64>,
    rates: Vec<Line>,
    /// Drawn dashed, after the rates.
    references: Vec<Line>,
    queues: Vec<Line>,
}

/// DELTA and the baselines on the capacity-step trace: one run per controller, all on the same
/// trace (the first run's scenario gives the capacity and the title).
pub fn plot_capacity_steps(
    runs: &[(Scenario, ScenarioResult)],
    path: &Path,
) -> Result<(), PlotError> {
    let (s0, _) = runs.first().ok_or(PlotError::Empty("no runs"))?;
    let mut rates = Vec::new();
    let mut queues = Vec::new();
    for (k, (s, r)) in runs.iter().enumerate() {
        let label = s
            .flows
            .first()
            .map_or_else(|| s.name.clone(), |f| describe_controller(&f.controller));
        let color = PALETTE[k % PALETTE.len()];
        rates.push(Line {
            label: label.clone(),
            color,
            width: 2,
            points: send_rate(s, r, 0),
        });
        queues.push(Line {
            label,
            color,
            width: 2,
            points: queue_delay(r),
        });
    }
    let steps: Vec<String> = std::iter::once(s0.forward.rate_bps)
        .chain(s0.capacity_steps.iter().map(|(_, c)| *c))
        .map(mbps)
        .collect();
    let at: Vec<String> = s0.capacity_steps.iter().map(|(t, _)| secs(*t)).collect();
    let fig = Figure {
        title: format!(
            "Capacity steps {} Mbit/s (at {} s), {}",
            steps.join(" → "),
            at.join(", "),
            describe_path(s0)
        ),
        rate_caption: format!(
            "Sending rate per controller ({} ms centred moving average) and bottleneck capacity",
            SMOOTHING.as_millis()
        ),
        queue_caption: queue_caption(s0, runs.len() > 1),
        duration: s0.duration.as_secs_f64(),
        marks: s0
            .capacity_steps
            .iter()
            .map(|(t, _)| t.as_secs_f64())
            .collect(),
        references: vec![capacity_line(s0)],
        rates,
        queues,
    };
    draw(&fig, path)
}

/// Several flows sharing one bottleneck: each flow's sending rate, the capacity and the fair
/// share on top, the shared queue's delay below.
pub fn plot_three_flows(s: &Scenario, r: &ScenarioResult, path: &Path) -> Result<(), PlotError> {
    if s.flows.is_empty() {
        return Err(PlotError::Empty("scenario has no flows"));
    }
    let rates = s
        .flows
        .iter()
        .enumerate()
        .map(|(i, f)| Line {
            label: format!(
                "flow {} ({}, from {} s)",
                i + 1,
                describe_controller(&f.controller),
                secs(f.start)
            ),
            color: PALETTE[i % PALETTE.len()],
            width: 2,
            points: send_rate(s, r, i),
        })
        .collect();
    let mut labels: Vec<&str> = s.flows.iter().map(|f| f.controller.label()).collect();
    labels.dedup();
    let starts: Vec<String> = s.flows.iter().map(|f| secs(f.start)).collect();
    let caps: Vec<String> = std::iter::once(s.forward.rate_bps)
        .chain(s.capacity_steps.iter().map(|(_, c)| *c))
        .map(mbps)
        .collect();
    let fig = Figure {
        title: format!(
            "{} {} flows sharing {} Mbit/s, starting at {} s, {}",
            s.flows.len(),
            labels.join("/"),
            caps.join(" → "),
            starts.join(", "),
            describe_path(s)
        ),
        rate_caption: format!(
            "Sending rate per flow ({} ms centred moving average), capacity and fair share",
            SMOOTHING.as_millis()
        ),
        queue_caption: queue_caption(s, false),
        duration: s.duration.as_secs_f64(),
        marks: s
            .flows
            .iter()
            .map(|f| f.start.as_secs_f64())
            .chain(s.capacity_steps.iter().map(|(t, _)| t.as_secs_f64()))
            .filter(|t| *t > 0.0)
            .collect(),
        references: vec![capacity_line(s), fair_share_line(s)],
        rates,
        queues: vec![Line {
            label: "bottleneck queue (all flows)".into(),
            color: CAPACITY,
            width: 2,
            points: queue_delay(r),
        }],
    };
    draw(&fig, path)
}

/// Runs the capacity-step scenario for DELTA and the two baselines, and the three-flow scenario,
/// and writes `delta-capacity-steps.png` and `delta-three-flows.png` into `dir` (created if
/// missing). Returns the paths written.
pub fn render_all(dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir)?;
    let runs = capacity_steps_with_baselines();
    let steps = dir.join("delta-capacity-steps.png");
    plot_capacity_steps(&runs, &steps)?;
    let s = Scenario::three_flows();
    let r = run(&s);
    let three = dir.join("delta-three-flows.png");
    plot_three_flows(&s, &r, &three)?;
    Ok(vec![steps, three])
}

fn draw(fig: &Figure, path: &Path) -> Result<(), PlotError> {
    fonts()?;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(&fig.title, (FONT, 24))?;
    let split = body.dim_in_pixel().1 as i32 * 56 / 100;
    let (upper, lower) = body.split_vertically(split);
    draw_rates(&upper, fig)?;
    draw_queues(&lower, fig)?;
    root.present()?;
    Ok(())
}

/// Left margin shared by both panels so their time axes line up.
const Y_LABEL_AREA: u32 = 80;

fn draw_rates<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let top = fig
        .rates
        .iter()
        .chain(&fig.references)
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    // Headroom above the data for the legend.
    let ymax = (top * 1.35).ceil();
    let mut chart = ChartBuilder::on(area)
        .caption(&fig.rate_caption, (FONT, 18))
        .margin_left(10)
        .margin_right(30)
        .margin_top(5)
        .x_label_area_size(0)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(0f64..fig.duration, 0f64..ymax)?;
    chart
        .configure_mesh()
        .y_desc("sending rate, Mbit/s")
        .y_label_formatter(&|v| format_num(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    for &t in &fig.marks {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(t, 0.0), (t, ymax)],
            4,
            4,
            GUIDE.stroke_width(1),
        )))?;
    }
    draw_lines(&mut chart, &fig.rates, &fig.references)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    Ok(())
}

fn draw_queues<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&fig.queue_caption, (FONT, 18))
        .margin_left(10)
        .margin_right(30)
        .margin_bottom(10)
        .x_label_area_size(50)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(
            0f64..fig.duration,
            // A hair below the floor so its tick is labelled.
            (QUEUE_FLOOR_MS * 0.99..QUEUE_CEIL_MS).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("time, s")
        .x_label_formatter(&|v| format_num(*v))
        .y_desc("queuing delay, ms (log scale)")
        .y_label_formatter(&|v| format_num(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    for &t in &fig.marks {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(t, QUEUE_FLOOR_MS), (t, QUEUE_CEIL_MS)],
            4,
            4,
            GUIDE.stroke_width(1),
        )))?;
    }
    let lines: Vec<Line> = fig
        .queues
        .iter()
        .map(|l| Line {
            label: l.label.clone(),
            color: l.color,
            width: l.width,
            points: l
                .points
                .iter()
                .map(|&(t, q)| (t, q.clamp(QUEUE_FLOOR_MS, QUEUE_CEIL_MS)))
                .collect(),
        })
        .collect();
    // Same colours as the rate panel, whose legend names them.
    draw_lines(&mut chart, &lines, &[])?;
    Ok(())
}

/// Draws `lines` and then `dashed` over them, the first of each on top (drawn last), and registers
/// the legend entries in the given order.
fn draw_lines<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    lines: &[Line],
    dashed: &[Line],
) -> Result<(), PlotError>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    for l in lines.iter().rev() {
        chart.draw_series(LineSeries::new(
            l.points.iter().copied(),
            l.color.stroke_width(l.width),
        ))?;
    }
    for l in dashed.iter().rev() {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            l.points.clone(),
            10,
            5,
            l.color.stroke_width(l.width),
        )))?;
    }
    // Legend entries: empty series carrying only the label, in order.
    for l in lines.iter().chain(dashed) {
        let style = l.color.stroke_width(l.width + 1);
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label(l.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    Ok(())
}

/// Flow `i`'s send rate, Mbit/s, from its start on, smoothed by a centred moving average.
fn send_rate(s: &Scenario, r: &ScenarioResult, i: usize) -> Vec<(f64, f64)> {
    let start = s.flows.get(i).map_or(0.0, |f| f.start.as_secs_f64());
    let rows: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .filter(|x| x.t > start)
        .filter_map(|x| x.send_bps.get(i).map(|b| (x.t, *b as f64 / 1e6)))
        .collect();
    let window = (SMOOTHING.as_secs_f64() / s.sample_every.as_secs_f64()).round() as usize;
    let half = window / 2;
    (0..rows.len())
        .map(|k| {
            let w = &rows[k.saturating_sub(half)..(k + half + 1).min(rows.len())];
            (
                rows[k].0,
                w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64,
            )
        })
        .collect()
}

/// Largest queuing delay per timeline interval, ms.
fn queue_delay(r: &ScenarioResult) -> Vec<(f64, f64)> {
    r.timeline.iter().map(|x| (x.t, x.queue_ms)).collect()
}

/// The capacity as a step line, Mbit/s.
fn capacity_line(s: &Scenario) -> Line {
    let end = s.duration.as_secs_f64();
    Line {
        label: "capacity".into(),
        color: CAPACITY,
        width: 2,
        points: step_points(&capacity_changes(s), end, |c| c as f64 / 1e6),
    }
}

/// Capacity divided by the number of flows that have started, Mbit/s.
fn fair_share_line(s: &Scenario) -> Line {
    let mut times: Vec<Duration> = s.flows.iter().map(|f| f.start).collect();
    times.extend(s.capacity_steps.iter().map(|(t, _)| *t));
    times.push(Duration::ZERO);
    times.sort();
    times.dedup();
    let changes: Vec<(f64, f64)> = times
        .iter()
        .filter_map(|&t| {
            let n = s.flows.iter().filter(|f| f.start <= t).count();
            (n > 0).then(|| (t.as_secs_f64(), s.capacity_at(t) as f64 / 1e6 / n as f64))
        })
        .collect();
    Line {
        label: "fair share".into(),
        color: GUIDE,
        width: 2,
        points: step_points(&changes, s.duration.as_secs_f64(), |v| v),
    }
}

fn capacity_changes(s: &Scenario) -> Vec<(f64, u64)> {
    let mut steps: Vec<(f64, u64)> = std::iter::once((0.0, s.forward.rate_bps))
        .chain(s.capacity_steps.iter().map(|(t, c)| (t.as_secs_f64(), *c)))
        .collect();
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    steps
}

/// (time, value) changes as the corners of a step line ending at `end`.
fn step_points<V: Copy>(changes: &[(f64, V)], end: f64, f: impl Fn(V) -> f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (k, &(t, v)) in changes.iter().enumerate() {
        let until = changes.get(k + 1).map_or(end, |n| n.0);
        out.push((t, f(v)));
        out.push((until, f(v)));
    }
    out
}

fn queue_caption(s: &Scenario, per_run: bool) -> String {
    format!(
        "Bottleneck queuing delay, largest per {} ms ({}below {} ms drawn at {} ms)",
        s.sample_every.as_millis(),
        if per_run { "colours as above; " } else { "" },
        format_num(QUEUE_FLOOR_MS),
        format_num(QUEUE_FLOOR_MS)
    )
}

/// "50 ms one-way, 300 ms drop-tail queue".
fn describe_path(s: &Scenario) -> String {
    let queue = match s.queue_time {
        Some(q) => format!("{} ms drop-tail queue", q.as_millis()),
        None if s.forward.queue_bytes == usize::MAX => "unlimited queue".into(),
        None => format!("{} kB drop-tail queue", s.forward.queue_bytes / 1000),
    };
    format!("{} ms one-way, {queue}", s.forward.delay.as_millis())
}

fn describe_controller(c: &Controller) -> String {
    match c {
        Controller::Delta(_) => "DELTA".into(),
        Controller::Fixed(bps) => format!("fixed {} Mbit/s", mbps(*bps)),
        Controller::LossAbr(bps) => format!("loss-ABR (from {} Mbit/s)", mbps(*bps)),
    }
}

/// Bit/s as Mbit/s without trailing zeros: 2_500_000 → "2.5".
fn mbps(bps: u64) -> String {
    trim(format!("{:.3}", bps as f64 / 1e6))
}

fn secs(d: Duration) -> String {
    trim(format!("{:.3}", d.as_secs_f64()))
}

/// Axis numbers without trailing zeros: 10.0 → "10", 0.1 → "0.1".
fn format_num(v: f64) -> String {
    trim(format!("{v:.3}"))
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
        const SIG: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
        if bytes.len() < 24 || bytes[..8] != SIG || &bytes[12..16] != b"IHDR" {
            return None;
        }
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Some((be(&bytes[16..20]), be(&bytes[20..24])))
    }

    #[test]
    fn render_all_writes_both_pngs_and_labels_read_well() {
        let dir = std::env::temp_dir().join(format!("rift-sim-plot-{}", std::process::id()));
        let paths = render_all(&dir).expect("render");
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["delta-capacity-steps.png", "delta-three-flows.png"]);
        for p in &paths {
            let bytes = std::fs::read(p).expect("read png");
            assert_eq!(png_size(&bytes), Some((WIDTH, HEIGHT)), "{}", p.display());
            // A blank canvas compresses to almost nothing; a drawn plot does not.
            assert!(
                bytes.len() > 20_000,
                "{}: {} bytes",
                p.display(),
                bytes.len()
            );
        }
        std::fs::remove_dir_all(&dir).ok();

        assert_eq!(mbps(2_500_000), "2.5");
        assert_eq!(mbps(10_000_000), "10");
        assert_eq!(format_num(0.1), "0.1");
        assert_eq!(format_num(10.0), "10");
        assert_eq!(
            step_points(&[(0.0, 1.0), (2.0, 3.0)], 5.0, |v| v),
            [(0.0, 1.0), (2.0, 1.0), (2.0, 3.0), (5.0, 3.0)]
        );
        let s = Scenario::capacity_steps(Controller::delta());
        assert_eq!(describe_path(&s), "50 ms one-way, 300 ms drop-tail queue");
    }
}
