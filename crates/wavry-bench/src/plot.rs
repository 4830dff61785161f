//! The latency distributions side by side: the cumulative distribution of event latency (left)
//! and frame latency (right) of every measured pipeline and path, on a log time axis so Wavry's
//! milliseconds and a buffering pipeline's hundreds of milliseconds read on one plot.
//!
//! Pure Rust drawing (plotters' bitmap backend) with DejaVu Sans embedded, as rift-sim's plots.

use crate::glass::Measured;
use plotters::prelude::*;
use plotters::style::register_font;
use std::path::Path;
use std::sync::OnceLock;

const WIDTH: u32 = 1600;
/// Height of one network path's row of two panels.
const ROW_HEIGHT: u32 = 420;
const FONT: &str = "sans-serif";
const MIN_MS: f64 = 1.0;
const MAX_MS: f64 = 1000.0;

/// Colours by pipeline: Wavry blue, GStreamer green, ffmpeg red; lighter for each later size.
fn colour(pipeline: &str, shade: usize) -> RGBColor {
    let base = match pipeline {
        "wavry" => (31, 100, 200),
        "gstreamer" => (44, 160, 44),
        "ffmpeg" => (214, 39, 40),
        _ => (120, 120, 120),
    };
    let lift = |c: u8| (c as usize + (255 - c as usize) * shade.min(3) / 5) as u8;
    RGBColor(lift(base.0), lift(base.1), lift(base.2))
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("plotting failed: {0}")]
    Draw(String),
    #[error("the font could not be registered")]
    Font,
    #[error("nothing to plot")]
    Empty,
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Draw(e.to_string())
    }
}

fn fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    ok.then_some(()).ok_or(PlotError::Font)
}

/// (latency, cumulative fraction) steps of `v`, clamped to the axis.
fn cdf(v: &[f64]) -> Vec<(f64, f64)> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    s.iter()
        .enumerate()
        .map(|(i, &x)| (x.clamp(MIN_MS, MAX_MS), (i + 1) as f64 / n))
        .collect()
}

/// Which of a run's latency samples a panel shows.
type Samples = fn(&Measured) -> &Vec<f64>;

/// Draw every run's event and frame latency distributions into a PNG at `path`: a row per
/// network path, event latency left and frame latency right, a line per pipeline and size.
pub fn plot_latency(runs: &[Measured], title: &str, path: &Path) -> Result<(), PlotError> {
    if runs.iter().all(|r| r.latency.frame_ms.is_empty()) {
        return Err(PlotError::Empty);
    }
    fonts()?;
    // Paths and sizes in the order first seen.
    let mut paths: Vec<&str> = Vec::new();
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for r in runs {
        if !paths.contains(&r.path.as_str()) {
            paths.push(&r.path);
        }
        if !sizes.contains(&(r.width, r.height)) {
            sizes.push((r.width, r.height));
        }
    }
    let height = ROW_HEIGHT * paths.len() as u32 + 50;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 26))?;
    let cells = root.split_evenly((paths.len(), 2));
    let pick: [(&str, Samples); 2] = [
        ("event latency", |m| &m.latency.event_ms),
        ("frame latency", |m| &m.latency.frame_ms),
    ];
    for (i, cell) in cells.iter().enumerate() {
        let (net, (what, values)) = (paths[i / 2], pick[i % 2]);
        let mut chart = ChartBuilder::on(cell)
            .caption(format!("{what}, {net}"), (FONT, 19))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((MIN_MS..MAX_MS).log_scale(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("milliseconds (log scale)")
            .y_desc("fraction at or below")
            .label_style((FONT, 14))
            .draw()?;
        let most = runs
            .iter()
            .filter(|r| r.path == net)
            .map(|r| r.latency.frame_ms.len())
            .max()
            .unwrap_or(0);
        for r in runs
            .iter()
            .filter(|r| r.path == net && !values(r).is_empty())
        {
            let shade = sizes
                .iter()
                .position(|s| *s == (r.width, r.height))
                .unwrap_or(0);
            let c = colour(r.pipeline, shade);
            // A pipeline that showed garbage, or little, says so: its curve alone looks fine.
            let shown = r.latency.frame_ms.len();
            let label = if r.latency.corrupt > 0 || 2 * shown < most {
                format!(
                    "{} {}x{}: {shown} values, {} corrupt",
                    r.pipeline, r.width, r.height, r.latency.corrupt
                )
            } else {
                format!("{} {}x{}", r.pipeline, r.width, r.height)
            };
            chart
                .draw_series(LineSeries::new(cdf(values(r)), c.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavry_scene::probe::Latency;

    #[test]
    fn cdf_is_monotone_and_ends_at_one() {
        let c = cdf(&[5.0, 1.0, 3.0, f64::NAN, 2000.0]);
        assert_eq!(c.len(), 4);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert_eq!(c.last(), Some(&(MAX_MS, 1.0)));
    }

    #[test]
    fn a_plot_is_written() {
        let dir = std::env::temp_dir().join(format!("wavry-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("latency.png");
        let run = |pipeline, ms: f64| Measured {
            pipeline,
            path: "loopback".into(),
            width: 1280,
            height: 720,
            latency: Latency {
                event_ms: (0..100).map(|i| ms + i as f64 * 0.1).collect(),
                frame_ms: (0..100).map(|i| ms / 2.0 + i as f64 * 0.1).collect(),
                ..Latency::default()
            },
            stages: None,
        };
        plot_latency(&[run("wavry", 20.0), run("gstreamer", 30.0)], "test", &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            plot_latency(&[], "empty", &dir.join("x.png")),
            Err(PlotError::Empty)
        ));
    }
}
