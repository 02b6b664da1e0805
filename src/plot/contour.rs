//! A function of two variables as filled level bands, with paths drawn over it: the
//! routes optimizers take across a loss surface.

use super::charts::draw_legend;
use super::images::{image_element, png_data_url, Pixels};
use super::{bad_input, check_finite, tick_labels, Figure, CLASS_COLORS, LABELS, TITLE};
use crate::Error;
use plotters::prelude::*;

/// The number of level bands.
const BANDS: usize = 12;
/// A colour no other element uses: the placeholder the bands' picture replaces.
const PLACEHOLDER: RGBColor = RGBColor(1, 2, 3);

/// `f` over `x_range × y_range` as 12 filled level bands, dark where `f` is low and
/// light where it is high (pastel viridis, purple to yellow), with each named path drawn
/// over it: a hollow black circle at its first point, a filled one at its last (a one-point
/// path is just that dot), and a legend.
///
/// The bands hold equal shares of the plotted area (their edges are quantiles of `f` on the
/// grid), so a narrow valley and a steep wall read alike whatever the scale of `f`. A path
/// is drawn up to its first point outside the ranges: a diverging run leaves the picture.
pub fn contour(
    title: &str,
    (x_label, y_label): (&str, &str),
    x_range: [f64; 2],
    y_range: [f64; 2],
    f: &dyn Fn([f64; 2]) -> f64,
    paths: &[(&str, &[[f64; 2]])],
) -> Result<Figure, Error> {
    for (axis, [lo, hi]) in [("x", x_range), ("y", y_range)] {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            let problem = format!("the {axis} range [{lo}, {hi}] is not an interval: give [low, high] with low < high");
            return Err(bad_input(title, problem));
        }
    }
    for (name, points) in paths {
        if points.is_empty() {
            return Err(bad_input(title, format!("path {name:?} has no points")));
        }
    }
    let inside = |p: &[f64; 2]| {
        (x_range[0]..=x_range[1]).contains(&p[0]) && (y_range[0]..=y_range[1]).contains(&p[1])
    };
    let mut picture = None;
    let mut figure = Figure::draw(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, TITLE)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range[0]..x_range[1], y_range[0]..y_range[1])
            .map_err(|e| e.to_string())?;
        let (x_tick, y_tick) = (
            tick_labels(x_range[0], x_range[1]),
            tick_labels(y_range[0], y_range[1]),
        );
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&x_tick)
            .y_label_formatter(&y_tick)
            .label_style(LABELS)
            .draw()
            .map_err(|e| e.to_string())?;
        // Held in place under the paths; replaced by the bands' picture once drawn.
        let corners = [(x_range[0], y_range[0]), (x_range[1], y_range[1])];
        chart
            .draw_series([Rectangle::new(corners, PLACEHOLDER.filled())])
            .map_err(|e| e.to_string())?;
        picture = Some(chart.plotting_area().get_pixel_range());
        for (i, (name, points)) in paths.iter().enumerate() {
            let color = CLASS_COLORS[i % CLASS_COLORS.len()];
            let shown: Vec<(f64, f64)> = points
                .iter()
                .take_while(|p| inside(p))
                .map(|p| (p[0], p[1]))
                .collect();
            let (Some(&first), Some(&last)) = (shown.first(), shown.last()) else {
                continue;
            };
            chart
                .draw_series(LineSeries::new(shown, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            let ends = [
                Circle::new(first, 5, BLACK.stroke_width(2)),
                Circle::new(last, 5, color.filled()),
            ];
            chart.draw_series(ends).map_err(|e| e.to_string())?;
        }
        if !paths.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    })?;
    let (xs, ys) = picture.ok_or_else(|| Error::Plot("the chart was not drawn".into()))?;
    // One grid cell per 2 × 2 pixels; row 0 is the top of the picture, the largest y.
    let (cols, rows) = ((xs.len() / 2).max(2), (ys.len() / 2).max(2));
    let mut values = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let y = y_range[1] - (r as f64 + 0.5) / rows as f64 * (y_range[1] - y_range[0]);
        for c in 0..cols {
            let x = x_range[0] + (c as f64 + 0.5) / cols as f64 * (x_range[1] - x_range[0]);
            values.push(f([x, y]));
        }
    }
    check_finite(title, "the function on the grid", &values)?;
    let bands = level_bands(&values, BANDS);
    let rgb = bands.iter().flat_map(|&band| {
        let RGBColor(r, g, b) = ViridisRGB.get_color(band as f32 / (BANDS - 1) as f32);
        // Pastel, so the paths over it stand out.
        [r, g, b].map(|c| (0.45 * f64::from(c) + 0.55 * 255.0).round() as u8)
    });
    let url = png_data_url(&Pixels::Rgb(rgb.collect()), rows, cols, 1)?;
    let image = image_element(
        xs.start as usize,
        ys.start as usize,
        xs.len(),
        ys.len(),
        &url,
    );
    figure.svg = replace_placeholder(&figure.svg, &image)
        .ok_or_else(|| Error::Plot("the placeholder of the level bands is missing".into()))?;
    Ok(figure)
}

/// The band, `0..bands`, of each value: band edges are the quantiles `k / bands` of the
/// values, so each band holds about the same number of them.
fn level_bands(values: &[f64], bands: usize) -> Vec<usize> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edges: Vec<f64> = (1..bands)
        .map(|k| sorted[k * sorted.len() / bands])
        .collect();
    values
        .iter()
        .map(|v| edges.partition_point(|edge| edge <= v))
        .collect()
}

/// `svg` with the placeholder rectangle (the one element filled with [`PLACEHOLDER`])
/// replaced by `element`.
fn replace_placeholder(svg: &str, element: &str) -> Option<String> {
    let RGBColor(r, g, b) = PLACEHOLDER;
    let marker = svg.find(&format!("fill=\"#{r:02X}{g:02X}{b:02X}\""))?;
    let start = svg[..marker].rfind("<rect")?;
    let end = marker + svg[marker..].find("/>")? + 2;
    Some(format!("{}{element}{}", &svg[..start], &svg[end..]))
}

#[cfg(test)]
mod tests {
    use super::super::{assert_well_formed, has_text};
    use super::*;

    fn bowl(p: [f64; 2]) -> f64 {
        p[0] * p[0] + 10.0 * p[1] * p[1]
    }

    #[test]
    fn a_contour_has_the_bands_picture_under_the_paths_and_a_legend() {
        let path = [[-1.0, 1.0], [-0.5, 0.2], [0.0, 0.0]];
        let fig = contour(
            "Bowl",
            ("x", "y"),
            [-2.0, 2.0],
            [-1.5, 1.5],
            &bowl,
            &[("descent", &path), ("minimum", &[[0.0, 0.0]])],
        )
        .unwrap();
        assert_eq!(fig.svg.matches("<image").count(), 1);
        assert!(!fig.svg.contains("#010203"), "the placeholder is replaced");
        let image_at = fig.svg.find("<image").unwrap();
        let path_at = fig.svg.find(&super::super::hex(CLASS_COLORS[0])).unwrap();
        assert!(
            image_at < path_at,
            "the bands are drawn first, under the paths"
        );
        for text in ["Bowl", "descent", "minimum", "x", "y"] {
            assert!(has_text(&fig.svg, text), "no text {text:?} in the figure");
        }
        // Two end markers for the path, two (the same point) for the one-point path.
        assert_eq!(fig.svg.matches("<circle").count(), 4);
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn bands_hold_equal_shares_and_rise_with_the_value() {
        let values: Vec<f64> = (0..120).map(|i| ((i * 37) % 120) as f64).collect();
        let bands = level_bands(&values, 12);
        for band in 0..12 {
            assert_eq!(bands.iter().filter(|&&b| b == band).count(), 10);
        }
        let (lo, hi) = (
            values.iter().position(|&v| v == 0.0),
            values.iter().position(|&v| v == 119.0),
        );
        assert_eq!((bands[lo.unwrap()], bands[hi.unwrap()]), (0, 11));
    }

    #[test]
    fn a_path_stops_where_it_leaves_the_picture() {
        let diverging = [[0.5, 0.5], [1.0, -1.0], [5.0, 5.0], [0.0, 0.0]];
        let fig = contour(
            "D",
            ("x", "y"),
            [-2.0, 2.0],
            [-2.0, 2.0],
            &bowl,
            &[("gd", &diverging)],
        )
        .unwrap();
        // Drawn: the first two points only, so the last marker sits at (1, -1), not (0, 0).
        let inside = contour(
            "D",
            ("x", "y"),
            [-2.0, 2.0],
            [-2.0, 2.0],
            &bowl,
            &[("gd", &diverging[..2])],
        )
        .unwrap();
        assert_eq!(fig.svg, inside.svg);
    }

    #[test]
    fn a_contour_refuses_bad_ranges_empty_paths_and_nan() {
        let draw = |x_range, path: &[[f64; 2]], f: &dyn Fn([f64; 2]) -> f64| {
            contour("C", ("x", "y"), x_range, [-1.0, 1.0], f, &[("p", path)]).unwrap_err()
        };
        let origin = [[0.0, 0.0]];
        let cases = [
            (draw([1.0, -1.0], &origin, &bowl), "not an interval"),
            (draw([-1.0, 1.0], &[], &bowl), "has no points"),
            (draw([-1.0, 1.0], &origin, &|p| p[0].ln()), "NaN"),
        ];
        for (err, says) in cases {
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
