//! Figures for the notebooks, drawn with plotters as SVG.
//!
//! A [`Figure`] shows itself inline in a notebook (evcxr's `evcxr_display` protocol) and
//! saves itself as an `.svg` file from plain Rust, so the two uses share one drawing.
//! evcxr keeps one output per MIME type per cell: a cell shows one figure.

use crate::data::Points2d;
use crate::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (640, 420);
const TITLE: (&str, u32) = ("sans-serif", 24);
const LABELS: (&str, u32) = ("sans-serif", 16);

/// Class colours (the tab10 palette), readable on white and for most colour vision.
pub const CLASS_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// A drawn figure: its title and its SVG text.
#[derive(Clone, Debug)]
pub struct Figure {
    pub title: String,
    pub svg: String,
}

impl Figure {
    /// Draws a figure of the standard size onto an SVG canvas.
    fn draw(
        title: &str,
        paint: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    ) -> Result<Figure, Error> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(|e| Error::Plot(e.to_string()))?;
            paint(&root).map_err(Error::Plot)?;
            root.present().map_err(|e| Error::Plot(e.to_string()))?;
        }
        Ok(Figure {
            title: title.to_owned(),
            svg,
        })
    }

    /// Writes the figure as an SVG file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        std::fs::write(path, &self.svg).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Shows the figure in a notebook: evcxr calls this on a cell's final value.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            self.svg
        );
        println!(
            "EVCXR_BEGIN_CONTENT text/plain\nFigure: {}\nEVCXR_END_CONTENT",
            self.title
        );
    }
}

/// The range `[min, max]` of the finite values, widened by 5% on each side.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// One or more series against their index (a training curve: value per step), with a legend.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[f64])],
) -> Result<Figure, Error> {
    let steps = series
        .iter()
        .map(|(_, s)| s.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let (y_lo, y_hi) = padded_range(series.iter().flat_map(|(_, s)| s.iter().copied()));
    Figure::draw(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, TITLE)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..(steps - 1) as f64, y_lo..y_hi)
            .map_err(|e| e.to_string())?;
        let whole = |x: &f64| format!("{x:.0}");
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&whole)
            .label_style(LABELS)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = CLASS_COLORS[i % CLASS_COLORS.len()];
            let points = values.iter().enumerate().map(|(x, &y)| (x as f64, y));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font(LABELS)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// Points coloured by class over the regions a classifier assigns to each class.
///
/// `score` maps a point to a real number, positive for class 1; it is a `&dyn Fn` so a
/// notebook cell passing a closure compiles no plotting code of its own.
pub fn decision_boundary(
    title: &str,
    points: &Points2d,
    score: &dyn Fn([f64; 2]) -> f64,
) -> Result<Figure, Error> {
    const CELLS: usize = 50;
    let (x_lo, x_hi) = padded_range(points.xy.iter().map(|p| p[0]));
    let (y_lo, y_hi) = padded_range(points.xy.iter().map(|p| p[1]));
    let (dx, dy) = ((x_hi - x_lo) / CELLS as f64, (y_hi - y_lo) / CELLS as f64);
    Figure::draw(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, TITLE)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .label_style(LABELS)
            .draw()
            .map_err(|e| e.to_string())?;
        let regions = (0..CELLS * CELLS).map(|k| {
            let (x, y) = (
                x_lo + (k % CELLS) as f64 * dx,
                y_lo + (k / CELLS) as f64 * dy,
            );
            let class = usize::from(score([x + dx / 2.0, y + dy / 2.0]) > 0.0);
            Rectangle::new(
                [(x, y), (x + dx, y + dy)],
                CLASS_COLORS[class].mix(0.25).filled(),
            )
        });
        chart.draw_series(regions).map_err(|e| e.to_string())?;
        let dots = points
            .xy
            .iter()
            .zip(&points.labels)
            .map(|(&[x, y], &label)| {
                Circle::new((x, y), 4, CLASS_COLORS[label % CLASS_COLORS.len()].filled())
            });
        chart.draw_series(dots).map_err(|e| e.to_string())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::two_moons;

    #[test]
    fn a_line_chart_has_a_path_per_series_and_a_legend() {
        let (a, b) = ([3.0, 2.0, 1.5], [1.0, 0.5, 0.2]);
        let fig = line_chart("Loss falls", "step", "loss", &[("train", &a), ("test", &b)]).unwrap();
        assert!(fig.svg.starts_with("<svg"));
        for text in ["Loss falls", "train", "test", "step", "loss"] {
            assert!(
                fig.svg.contains(&format!(">\n{text}\n</text>")),
                "no text {text:?} in the figure"
            );
        }
        assert!(fig.svg.matches("<polyline").count() >= 2);
    }

    #[test]
    fn a_decision_boundary_colours_both_regions() {
        let points = two_moons(20, 0.1, 0);
        let fig = decision_boundary("x > 0.5", &points, &|p| p[0] - 0.5).unwrap();
        assert!(fig.svg.matches("<rect").count() >= 50 * 50);
        assert_eq!(fig.svg.matches("<circle").count(), 20);
        for color in &CLASS_COLORS[..2] {
            let hex = format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2);
            assert!(fig.svg.contains(&hex), "no {hex} in the figure");
        }
    }

    #[test]
    fn a_figure_saves_as_svg() {
        let path = std::env::temp_dir().join("mustknow-plot-test.svg");
        let fig = line_chart("t", "x", "y", &[("a", &[1.0, 2.0])]).unwrap();
        fig.save(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), fig.svg);
    }

    #[test]
    fn saving_into_a_missing_folder_names_the_path() {
        let fig = line_chart("t", "x", "y", &[("a", &[1.0])]).unwrap();
        let err = fig.save("/nonexistent-folder/fig.svg").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-folder/fig.svg"),
            "{err}"
        );
    }
}
