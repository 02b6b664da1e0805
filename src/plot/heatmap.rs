//! A matrix drawn as coloured cells with a colour bar: attention maps, confusion matrices.

use super::images::{image_element, png_data_url, Pixels};
use super::{bad_input, check_finite, tick_labels, Figure, SIZE, TITLE};
use crate::Error;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const CENTER: Pos = Pos {
    h_pos: HPos::Center,
    v_pos: VPos::Center,
};

/// Up to this many rows and columns, each cell also shows its value as text.
const ANNOTATE_UP_TO: usize = 12;
/// Beyond this many rows or columns, only every k-th label is written, so they stay apart.
const MAX_LABELS: usize = 16;
/// The width of the colour bar's drawing area, its value labels included.
const BAR_AREA: u32 = 96;

/// `values` (`rows × cols`, row-major) as cells coloured by the viridis map, row 0 on
/// top, with a colour bar showing the scale. `row_labels` and `col_labels` name the rows
/// and columns (empty: numbered from 0). Matrices up to 12 × 12 show each value in its cell.
pub fn heatmap(
    title: &str,
    values: &[f64],
    rows: usize,
    cols: usize,
    row_labels: &[String],
    col_labels: &[String],
) -> Result<Figure, Error> {
    check_matrix(title, values, rows, cols, row_labels, col_labels)?;
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    // A constant matrix still needs a scale: centre it in a unit range.
    let (lo, hi) = if hi - lo > 1e-12 {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    let to_unit = |v: f64| ((v - lo) / (hi - lo)) as f32;
    let row_names = names(row_labels, rows);
    let col_names = names(col_labels, cols);
    let longest = |names: &[String]| names.iter().map(|n| n.chars().count()).max().unwrap_or(1);
    // Room for the longest label at about 8 px a character (16 px sans-serif).
    let row_area = (longest(&row_names) as u32 * 8 + 16).clamp(30, 160);
    let annotate = rows <= ANNOTATE_UP_TO && cols <= ANNOTATE_UP_TO;
    // Column labels wider than a cell (roughly) are turned upright so they cannot overlap.
    let cell_guess = (SIZE.0 - BAR_AREA - row_area) / cols as u32;
    let upright = longest(&col_names) as u32 * 8 > cell_guess.max(1);
    let col_area = if upright {
        (longest(&col_names) as u32 * 8 + 16).clamp(30, 120)
    } else {
        32
    };

    // Where the cells go, in pixels, when they go in as one picture (see below).
    let mut picture_at = None;
    let mut figure = Figure::draw(title, |root| {
        let body = root.titled(title, TITLE).map_err(|e| e.to_string())?;
        let (main, bar) = body.split_horizontally(SIZE.0 - BAR_AREA);
        let mut chart = ChartBuilder::on(&main)
            .margin(10)
            .x_label_area_size(col_area)
            .y_label_area_size(row_area)
            .build_cartesian_2d(0f64..cols as f64, 0f64..rows as f64)
            .map_err(|e| e.to_string())?;
        if annotate {
            draw_cells(&mut chart, values, (rows, cols), &to_unit)?;
        } else {
            picture_at = Some(chart.plotting_area().get_pixel_range());
        }
        // Labels by hand, at cell centres: plotters' mesh puts ticks at round numbers.
        let label = |anchor: Pos| ("sans-serif", 16).into_font().color(&BLACK).pos(anchor);
        for r in ticks(rows) {
            let (x, y) = chart.backend_coord(&(0.0, (rows - r) as f64 - 0.5));
            let style = label(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(row_names[r].clone(), (x - 6, y), style))
                .map_err(|e| e.to_string())?;
        }
        for c in ticks(cols) {
            let (x, y) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
            let text = col_names[c].clone();
            let element = if upright {
                let style =
                    label(Pos::new(HPos::Right, VPos::Center)).transform(FontTransform::Rotate270);
                Text::new(text, (x, y + 6), style)
            } else {
                Text::new(text, (x, y + 6), label(Pos::new(HPos::Center, VPos::Top)))
            };
            root.draw(&element).map_err(|e| e.to_string())?;
        }
        colour_bar(&bar, lo, hi, col_area)
    })?;
    // A large matrix goes in as one PNG, not a rectangle per cell: 128 × 128 attention
    // weights would otherwise be 16384 elements and megabytes of SVG.
    if let Some((xs, ys)) = picture_at {
        let rgb = values.iter().flat_map(|&v| {
            let RGBColor(r, g, b) = ViridisRGB.get_color(to_unit(v));
            [r, g, b]
        });
        let (width, height) = (xs.len(), ys.len());
        let zoom = width.div_ceil(cols).max(height.div_ceil(rows)).clamp(1, 4);
        let url = png_data_url(&Pixels::Rgb(rgb.collect()), rows, cols, zoom)?;
        let image = image_element(xs.start as usize, ys.start as usize, width, height, &url);
        let end = figure.svg.rfind("</svg>").unwrap_or(figure.svg.len());
        figure.svg.insert_str(end, &format!("{image}\n"));
    }
    Ok(figure)
}

/// Draws each cell as a rectangle with its value written in it, row 0 on top.
fn draw_cells(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    values: &[f64],
    (rows, cols): (usize, usize),
    to_unit: &dyn Fn(f64) -> f32,
) -> Result<(), String> {
    // Row r spans y from rows - r - 1 to rows - r.
    let cells = values.iter().enumerate().map(|(k, &v)| {
        let (r, c) = (k / cols, k % cols);
        let y = (rows - 1 - r) as f64;
        let color = ViridisRGB.get_color(to_unit(v));
        Rectangle::new([(c as f64, y), (c as f64 + 1.0, y + 1.0)], color.filled())
    });
    chart.draw_series(cells).map_err(|e| e.to_string())?;
    let whole = values.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e9);
    let widest = values.iter().map(|&v| cell_text(v, whole).len()).max();
    let (width, height) = chart.plotting_area().dim_in_pixel();
    let (cell_w, cell_h) = (width as f64 / cols as f64, height as f64 / rows as f64);
    // Pixels of font that fit a cell: 45% of its height, its width at 0.62 em a character;
    // plotters draws text at 1/1.24 of the size it is given.
    let font = (cell_h * 0.45).min(cell_w / (0.62 * widest.unwrap_or(1) as f64 + 0.5));
    let size = font.clamp(8.0, 16.0) * 1.24;
    let texts = values.iter().enumerate().map(|(k, &v)| {
        let (r, c) = (k / cols, k % cols);
        let center = (c as f64 + 0.5, (rows - r) as f64 - 0.5);
        // Viridis is dark below the middle: white text there, black above.
        let ink = if to_unit(v) < 0.6 { WHITE } else { BLACK };
        let style = ("sans-serif", size).into_font().color(&ink).pos(CENTER);
        Text::new(cell_text(v, whole), center, style)
    });
    chart.draw_series(texts).map_err(|e| e.to_string())?;
    Ok(())
}

/// Refuses a matrix that does not match its shape or labels, or holds NaN.
fn check_matrix(
    title: &str,
    values: &[f64],
    rows: usize,
    cols: usize,
    row_labels: &[String],
    col_labels: &[String],
) -> Result<(), Error> {
    if rows == 0 || cols == 0 {
        return Err(bad_input(
            title,
            format!("a {rows} × {cols} matrix has no cells"),
        ));
    }
    if values.len() != rows * cols {
        let problem = format!(
            "{} values for a {rows} × {cols} matrix ({} cells)",
            values.len(),
            rows * cols
        );
        return Err(bad_input(title, problem));
    }
    for (labels, count, what) in [(row_labels, rows, "row"), (col_labels, cols, "column")] {
        if !labels.is_empty() && labels.len() != count {
            let problem = format!(
                "{} {what} labels for {count} {what}s; give one each, or none",
                labels.len()
            );
            return Err(bad_input(title, problem));
        }
    }
    check_finite(title, "the matrix", values)
}

/// The given labels, or the indices `0..count` when there are none.
fn names(labels: &[String], count: usize) -> Vec<String> {
    if labels.is_empty() {
        (0..count).map(|i| i.to_string()).collect()
    } else {
        labels.to_vec()
    }
}

/// The cells to label along an axis of `count` cells: every k-th, at most [`MAX_LABELS`].
fn ticks(count: usize) -> impl Iterator<Item = usize> {
    (0..count).step_by(count.div_ceil(MAX_LABELS))
}

/// A value as written in its cell: counts whole, others to two decimals or three digits.
fn cell_text(v: f64, whole: bool) -> String {
    if whole || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A vertical bar of the colour map from `lo` (bottom) to `hi` (top) with a value axis,
/// its bottom `bottom` pixels left empty so that it lines up with the matrix beside it.
fn colour_bar(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    lo: f64,
    hi: f64,
    bottom: u32,
) -> Result<(), String> {
    const STEPS: usize = 64;
    let mut bar = ChartBuilder::on(area)
        .margin_top(10)
        .margin_bottom(10)
        .margin_right(4)
        .x_label_area_size(bottom)
        .right_y_label_area_size(56)
        .build_cartesian_2d(0f64..1f64, lo..hi)
        .map_err(|e| e.to_string())?;
    let tick = tick_labels(lo, hi);
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| e.to_string())?;
    let step = (hi - lo) / STEPS as f64;
    let strips = (0..STEPS).map(|i| {
        let y = lo + i as f64 * step;
        let color = ViridisRGB.get_color((i as f32 + 0.5) / STEPS as f32);
        Rectangle::new([(0.0, y), (1.0, y + step)], color.filled())
    });
    bar.draw_series(strips).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{assert_well_formed, has_text};
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_small_heatmap_shows_labels_values_and_a_colour_bar() {
        let confusion = [50.0, 2.0, 0.0, 3.0, 45.0, 4.0, 1.0, 6.0, 40.0];
        let classes = labels(&["cat", "dog", "bird"]);
        let fig = heatmap("Confusion", &confusion, 3, 3, &classes, &classes).unwrap();
        for text in ["Confusion", "cat", "dog", "bird", "50", "45", "6"] {
            assert!(has_text(&fig.svg, text), "no text {text:?} in the figure");
        }
        // 9 cells, 64 colour-bar strips, the background.
        assert!(fig.svg.matches("<rect").count() >= 9 + 64);
        // The smallest and largest cells: viridis's dark purple and yellow.
        for color in ["#440154", "#FEE825"] {
            assert!(fig.svg.contains(color), "no {color} in the figure");
        }
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn a_large_heatmap_shows_no_values_and_fewer_labels() {
        let n = 40;
        let values: Vec<f64> = (0..n * n).map(|k| (k % 7) as f64 / 7.0).collect();
        let fig = heatmap("Attention", &values, n, n, &[], &[]).unwrap();
        // The cells as one picture, not 1600 rectangles.
        assert_eq!(fig.svg.matches("<image").count(), 1);
        assert!(fig.svg.matches("<rect").count() < 100);
        assert!(!has_text(&fig.svg, "0.14"));
        assert!(has_text(&fig.svg, "0"));
        assert!(
            !has_text(&fig.svg, "1"),
            "every label written at 40 columns"
        );
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn a_constant_heatmap_still_draws() {
        let fig = heatmap("Flat", &[0.5; 4], 2, 2, &[], &[]).unwrap();
        assert!(has_text(&fig.svg, "0.50"));
    }

    #[test]
    fn a_heatmap_refuses_mismatched_input() {
        let two = labels(&["a", "b"]);
        let cases: [(&[f64], usize, &[String], &str); 4] = [
            (&[1.0; 5], 2, &[], "5 values for a 2 × 2 matrix"),
            (&[1.0; 4], 2, &two[..1], "1 row labels for 2 rows"),
            (&[1.0, f64::NAN, 1.0, 1.0], 2, &[], "NaN at index 1"),
            (&[], 0, &[], "has no cells"),
        ];
        for (values, rows, row_labels, says) in cases {
            let err = heatmap("H", values, rows, 2, row_labels, &[]).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
