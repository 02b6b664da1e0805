//! Curves and points on axes: training curves, 2-D data and embeddings, decision regions.

use super::{
    bad_input, check_finite, padded_range, tick_labels, Figure, CLASS_COLORS, LABELS, TITLE,
};
use crate::data::Points2d;
use crate::Error;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One or more series against their index (a training curve: value per step), with a
/// legend when there are several.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[f64])],
) -> Result<Figure, Error> {
    check_series(title, series)?;
    let (lo, hi) = padded_range(series.iter().flat_map(|(_, s)| s.iter().copied()));
    let (points, x) = against_index(series);
    lines(title, (x_label, y_label), &points, x, linear_axis(lo, hi))
}

/// [`line_chart`] with a logarithmic value axis: losses that fall by orders of magnitude
/// stay readable to the end. Every value must be positive.
pub fn line_chart_log(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[f64])],
) -> Result<Figure, Error> {
    check_series(title, series)?;
    check_positive(title, series, "step", "use line_chart")?;
    let y = log_axis(series.iter().flat_map(|(_, s)| s.iter().copied()));
    let (points, x) = against_index(series);
    lines(title, (x_label, y_label), &points, x, y)
}

/// A named curve through `(x, y)` points, ready to draw.
type Curve<'a> = (&'a str, Vec<(f64, f64)>);

/// How an axis of an [`xy_chart`] is scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Logarithmic: every value on the axis must be positive.
    Log,
}

/// Curves through `(x, y)` points, each axis linear or logarithmic (`scales` is `[x, y]`),
/// with a legend when there are several: a quantity against a learning rate, a variance
/// against the batch size on log-log axes.
pub fn xy_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    scales: [Scale; 2],
    series: &[(&str, &[[f64; 2]])],
) -> Result<Figure, Error> {
    for axis in 0..2 {
        let values: Vec<(&str, Vec<f64>)> = series
            .iter()
            .map(|(name, points)| (*name, points.iter().map(|p| p[axis]).collect()))
            .collect();
        let views: Vec<(&str, &[f64])> = values.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        check_series(title, &views)?;
        if scales[axis] == Scale::Log {
            let what = ["x", "y"][axis];
            check_positive(title, &views, what, "use Scale::Linear")?;
        }
    }
    let points: Vec<Curve> = series
        .iter()
        .map(|(name, p)| (*name, p.iter().map(|p| (p[0], p[1])).collect()))
        .collect();
    let along = |axis: usize| {
        series
            .iter()
            .flat_map(move |(_, p)| p.iter().map(move |p| p[axis]))
    };
    let linear = |axis: usize| {
        let (lo, hi) = padded_range(along(axis));
        linear_axis(lo, hi)
    };
    let labels = (x_label, y_label);
    match scales {
        [Scale::Linear, Scale::Linear] => lines(title, labels, &points, linear(0), linear(1)),
        [Scale::Linear, Scale::Log] => lines(title, labels, &points, linear(0), log_axis(along(1))),
        [Scale::Log, Scale::Linear] => lines(title, labels, &points, log_axis(along(0)), linear(1)),
        [Scale::Log, Scale::Log] => lines(
            title,
            labels,
            &points,
            log_axis(along(0)),
            log_axis(along(1)),
        ),
    }
}

/// One axis of a chart: its coordinates, about how many labels to write, and how.
struct Axis<R> {
    range: R,
    labels: usize,
    format: Box<dyn Fn(&f64) -> String>,
}

/// A linear axis over `[lo, hi]`, labelled with the decimals its ticks need.
fn linear_axis(lo: f64, hi: f64) -> Axis<RangedCoordf64> {
    Axis {
        range: RangedCoordf64::from(lo..hi),
        labels: 10,
        format: Box::new(tick_labels(lo, hi)),
    }
}

/// A logarithmic axis over the values, padded by a factor (equal room at both ends).
/// Across a decade or more only powers of ten are labelled; within one, 1 to 9 of its tenths.
fn log_axis(values: impl Iterator<Item = f64> + Clone) -> Axis<LogCoord<f64>> {
    let lo = values.clone().fold(f64::MAX, f64::min) / 1.25;
    let hi = values.fold(f64::MIN, f64::max) * 1.25;
    Axis {
        range: LogCoord::from((lo..hi).log_scale()),
        labels: if (hi / lo).log10() < 1.0 { 10 } else { 4 },
        format: Box::new(one_digit),
    }
}

/// A log axis's tick `d·10ᵏ` as written: one significant digit, without the float noise
/// of `0.30000000000000004`; in scientific notation (`1e-11`, `5e25`) beyond 10⁻⁴ to 10⁵,
/// where a row of zeros (or float noise, `10000000000000000905969664`) would be unreadable.
fn one_digit(v: &f64) -> String {
    let exponent = v.abs().log10().floor();
    if !(-4.0..=5.0).contains(&exponent) {
        return format!("{v:.0e}");
    }
    let decimals = (-exponent).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Each series as `(index, value)` points, and the index axis, labelled with whole numbers.
fn against_index<'a>(series: &[(&'a str, &[f64])]) -> (Vec<Curve<'a>>, Axis<RangedCoordf64>) {
    let steps = series
        .iter()
        .map(|(_, s)| s.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let points = series
        .iter()
        .map(|(name, values)| {
            let indexed = values.iter().enumerate().map(|(i, &v)| (i as f64, v));
            (*name, indexed.collect())
        })
        .collect();
    let axis = Axis {
        range: RangedCoordf64::from(0f64..(steps - 1) as f64),
        labels: 10,
        format: Box::new(|x: &f64| format!("{x:.0}")),
    };
    (points, axis)
}

/// Refuses what would draw an empty or misleading chart: no series, an empty one, NaN.
fn check_series(title: &str, series: &[(&str, &[f64])]) -> Result<(), Error> {
    if series.is_empty() {
        return Err(bad_input(
            title,
            "no series to draw: pass at least one (name, values)",
        ));
    }
    for (name, values) in series {
        if values.is_empty() {
            return Err(bad_input(title, format!("series {name:?} has no values")));
        }
        check_finite(title, &format!("series {name:?}"), *values)?;
    }
    Ok(())
}

/// Refuses values a log axis cannot show, naming the series, where, and what to do.
fn check_positive(
    title: &str,
    series: &[(&str, &[f64])],
    position: &str,
    instead: &str,
) -> Result<(), Error> {
    for (name, values) in series {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, &v)| v <= 0.0) {
            let problem = format!("series {name:?} has {v} at {position} {i}; a log scale needs values above 0: {instead}");
            return Err(bad_input(title, problem));
        }
    }
    Ok(())
}

/// Draws checked `(x, y)` series on the axes `x` and `y`, linear or logarithmic.
fn lines<X, Y>(
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Curve],
    x: Axis<X>,
    y: Axis<Y>,
) -> Result<Figure, Error>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let legend = emptiest_corner(&x.range, &y.range, series);
    Figure::draw(title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, TITLE)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x.range, y.range)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_labels(x.labels)
            .y_labels(y.labels)
            .x_label_formatter(&x.format)
            .y_label_formatter(&y.format)
            .label_style(LABELS)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = CLASS_COLORS[i % CLASS_COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if series.len() > 1 {
            draw_legend(&mut chart, legend)?;
        }
        Ok(())
    })
}

/// The corner whose legend-sized box the curves' points visit least, upper right on a
/// tie: where a legend covers the least data. Points are placed by the axes themselves,
/// so a log axis counts in decades.
fn emptiest_corner<X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    x: &X,
    y: &Y,
    series: &[Curve],
) -> SeriesLabelPosition {
    const SCALE: i32 = 1000;
    let (box_w, box_h) = (300, 350); // about a legend's size, in thousandths of the plot
    let points: Vec<(i32, i32)> = series
        .iter()
        .flat_map(|(_, p)| {
            p.iter()
                .map(|(px, py)| (x.map(px, (0, SCALE)), y.map(py, (0, SCALE))))
        })
        .collect();
    let corners = [
        (SeriesLabelPosition::UpperRight, SCALE, SCALE),
        (SeriesLabelPosition::UpperLeft, 0, SCALE),
        (SeriesLabelPosition::LowerRight, SCALE, 0),
        (SeriesLabelPosition::LowerLeft, 0, 0),
    ];
    let crowding = |&(_, cx, cy): &(SeriesLabelPosition, i32, i32)| {
        let inside = |&&(u, v): &&(i32, i32)| (u - cx).abs() < box_w && (v - cy).abs() < box_h;
        points.iter().filter(inside).count()
    };
    corners
        .into_iter()
        .min_by_key(crowding)
        .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

/// A chart on linear axes over `x` × `y` with the course's caption, margins and tick
/// labels and no minor grid lines: the frame [`scatter`] and
/// [`arrow_map`](super::arrow_map) share.
pub(super) fn linear_frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    (x_label, y_label): (&str, &str),
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, TITLE)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(|e| e.to_string())?;
    let (x_tick, y_tick) = (tick_labels(x_lo, x_hi), tick_labels(y_lo, y_hi));
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .label_style(LABELS)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// The series' legend, in the `position` given, over a mostly opaque white box.
pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(LABELS)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Points coloured by class with a legend naming the classes: 2-D data, or an embedding
/// projected to 2-D. `class_names[k]` names label `k`; empty names the classes `class k`.
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &Points2d,
    class_names: &[&str],
) -> Result<Figure, Error> {
    check_points(title, points)?;
    let classes = points.labels.iter().max().map_or(0, |&k| k + 1);
    if !class_names.is_empty() && classes > class_names.len() {
        let problem = format!(
            "label {} has no name: {} class names given; pass one per class, or none",
            classes - 1,
            class_names.len()
        );
        return Err(bad_input(title, problem));
    }
    let name = |k: usize| {
        class_names
            .get(k)
            .map_or(format!("class {k}"), |n| n.to_string())
    };
    let (x_lo, x_hi) = padded_range(points.xy.iter().map(|p| p[0]));
    let (y_lo, y_hi) = padded_range(points.xy.iter().map(|p| p[1]));
    // Many points: smaller and see-through, so dense regions read as dense.
    let (radius, opacity) = if points.len() > 500 {
        (2, 0.6)
    } else {
        (4, 0.85)
    };
    Figure::draw(title, |root| {
        let mut chart = linear_frame(root, title, (x_label, y_label), (x_lo, x_hi), (y_lo, y_hi))?;
        for k in 0..classes {
            let color = CLASS_COLORS[k % CLASS_COLORS.len()];
            let dots = points
                .xy
                .iter()
                .zip(&points.labels)
                .filter(|(_, &label)| label == k)
                .map(|(&[x, y], _)| Circle::new((x, y), radius, color.mix(opacity).filled()));
            chart
                .draw_series(dots)
                .map_err(|e| e.to_string())?
                .label(name(k))
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        if classes > 1 {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
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
    check_points(title, points)?;
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
        let (x_tick, y_tick) = (tick_labels(x_lo, x_hi), tick_labels(y_lo, y_hi));
        chart
            .configure_mesh()
            .disable_mesh()
            .x_label_formatter(&x_tick)
            .y_label_formatter(&y_tick)
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

/// Refuses points that would plot wrongly: none, a label count that does not match, NaN.
fn check_points(title: &str, points: &Points2d) -> Result<(), Error> {
    if points.is_empty() {
        return Err(bad_input(title, "no points to draw"));
    }
    if points.labels.len() != points.xy.len() {
        let problem = format!(
            "{} points but {} labels; give each point one label",
            points.xy.len(),
            points.labels.len()
        );
        return Err(bad_input(title, problem));
    }
    check_finite(title, "the points", points.xy.iter().flatten())
}

#[cfg(test)]
mod tests {
    use super::super::{assert_well_formed, has_text, hex};
    use super::*;
    use crate::data::two_moons;

    #[test]
    fn a_line_chart_has_a_path_per_series_and_a_legend() {
        let (a, b) = ([3.0, 2.0, 1.5], [1.0, 0.5, 0.2]);
        let fig = line_chart("Loss falls", "step", "loss", &[("train", &a), ("test", &b)]).unwrap();
        assert!(fig.svg.starts_with("<svg"));
        for text in ["Loss falls", "train", "test", "step", "loss"] {
            assert!(has_text(&fig.svg, text), "no text {text:?} in the figure");
        }
        assert!(fig.svg.matches("<polyline").count() >= 2);
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn one_series_needs_no_legend() {
        let fig = line_chart("Loss", "step", "loss", &[("train", &[3.0, 2.0])]).unwrap();
        assert!(!has_text(&fig.svg, "train"));
    }

    #[test]
    fn a_log_chart_spans_orders_of_magnitude() {
        let loss: Vec<f64> = (0..50).map(|i| 10f64.powf(-(i as f64) / 10.0)).collect();
        let fig = line_chart_log("Loss", "step", "loss", &[("train", &loss)]).unwrap();
        assert!(fig.svg.contains("<polyline"));
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn a_log_chart_refuses_zero() {
        let err = line_chart_log("Loss", "step", "loss", &[("train", &[1.0, 0.0])]).unwrap_err();
        assert!(err.to_string().contains("log scale"), "{err}");
    }

    #[test]
    fn an_xy_chart_draws_points_on_log_axes() {
        let batch: Vec<[f64; 2]> = [1.0, 4.0, 16.0, 64.0]
            .iter()
            .map(|&b| [b, 1.0 / b])
            .collect();
        let fig = xy_chart(
            "Noise",
            "batch size",
            "variance",
            [Scale::Log, Scale::Log],
            &[("measured", &batch), ("1/B", &batch)],
        )
        .unwrap();
        for text in ["Noise", "batch size", "variance", "measured", "1/B"] {
            assert!(has_text(&fig.svg, text), "no text {text:?} in the figure");
        }
        assert!(fig.svg.matches("<polyline").count() >= 2);
        assert_well_formed(&fig.svg);
        let linear = xy_chart(
            "L",
            "x",
            "y",
            [Scale::Linear; 2],
            &[("a", &[[-1.0, 0.0], [1.0, 2.0]])],
        );
        assert!(linear.is_ok());
    }

    #[test]
    fn the_legend_goes_to_the_corner_the_curves_leave_empty() {
        let (x, y) = (linear_axis(0.0, 10.0).range, linear_axis(0.0, 10.0).range);
        let rising: Curve = ("rising", (0..=10).map(|i| (i as f64, i as f64)).collect());
        let falling: Curve = (
            "falling",
            (0..=10).map(|i| (i as f64, 10.0 - i as f64)).collect(),
        );
        let corner = |series: &[Curve]| emptiest_corner(&x, &y, series);
        assert_eq!(
            corner(std::slice::from_ref(&rising)),
            SeriesLabelPosition::UpperLeft
        );
        assert_eq!(corner(&[falling]), SeriesLabelPosition::UpperRight);
        let high: Curve = ("high", (0..=10).map(|i| (i as f64, 9.5)).collect());
        assert_eq!(corner(&[rising, high]), SeriesLabelPosition::LowerRight);
    }

    #[test]
    fn log_ticks_have_one_significant_digit() {
        for (v, text) in [
            (0.30000000000000004, "0.3"),
            (70.00000001, "70"),
            (1.0, "1"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (100_000.0, "100000"),
            (1e-11, "1e-11"),
            (1e25, "1e25"), // as an f64, 10000000000000000905969664
            (5e-7, "5e-7"),
        ] {
            assert_eq!(one_digit(&v), text);
        }
        // Within a decade the tenths are labelled; over several, only powers of ten.
        assert_eq!(log_axis([0.3, 0.8].into_iter()).labels, 10);
        assert_eq!(log_axis([0.07, 2.0].into_iter()).labels, 4);
        let fig = xy_chart(
            "B",
            "batch",
            "loss",
            [Scale::Log; 2],
            &[("s", &[[8.0, 0.08], [256.0, 2.0]])],
        )
        .unwrap();
        assert!(!fig.svg.contains("0000000"), "float noise in a tick label");
    }

    #[test]
    fn an_xy_chart_refuses_what_its_axes_cannot_show() {
        let zero_x: &[[f64; 2]] = &[[0.0, 1.0], [1.0, 2.0]];
        let err =
            xy_chart("Z", "x", "y", [Scale::Log, Scale::Linear], &[("s", zero_x)]).unwrap_err();
        assert!(
            err.to_string().contains("has 0 at x 0") && err.to_string().contains("Scale::Linear"),
            "{err}"
        );
        let nan: &[[f64; 2]] = &[[1.0, f64::NAN]];
        let err = xy_chart("N", "x", "y", [Scale::Linear; 2], &[("s", nan)]).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
        assert!(xy_chart("E", "x", "y", [Scale::Linear; 2], &[]).is_err());
    }

    #[test]
    fn line_charts_refuse_empty_and_nan_series() {
        let nan = [1.0, f64::NAN];
        for (series, says) in [
            (&[][..], "no series"),
            (&[("train", &[][..])][..], "no values"),
            (&[("train", &nan[..])][..], "NaN at index 1"),
        ] {
            let err = line_chart("Loss", "step", "loss", series).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
            assert!(err.to_string().contains("\"Loss\""), "{err}");
        }
    }

    #[test]
    fn a_scatter_colours_points_by_class_with_named_legend() {
        let points = two_moons(30, 0.1, 0).unwrap();
        let fig = scatter("Moons", "x1", "x2", &points, &["upper", "lower"]).unwrap();
        // 30 points and one legend marker per class.
        assert_eq!(fig.svg.matches("<circle").count(), 30 + 2);
        for text in ["Moons", "x1", "x2", "upper", "lower"] {
            assert!(has_text(&fig.svg, text), "no text {text:?} in the figure");
        }
        for color in &CLASS_COLORS[..2] {
            assert!(
                fig.svg.contains(&hex(*color)),
                "no {} in the figure",
                hex(*color)
            );
        }
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn a_scatter_names_unnamed_classes_by_number() {
        let points = Points2d {
            xy: vec![[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]],
            labels: vec![0, 2, 1],
        };
        let fig = scatter("Three", "a", "b", &points, &[]).unwrap();
        for text in ["class 0", "class 1", "class 2"] {
            assert!(has_text(&fig.svg, text), "no text {text:?} in the figure");
        }
    }

    #[test]
    fn a_scatter_refuses_bad_points() {
        let nan = Points2d {
            xy: vec![[0.0, f64::NAN]],
            labels: vec![0],
        };
        let unlabelled = Points2d {
            xy: vec![[0.0, 0.0], [1.0, 1.0]],
            labels: vec![0],
        };
        let empty = Points2d {
            xy: vec![],
            labels: vec![],
        };
        let unnamed = Points2d {
            xy: vec![[0.0, 0.0], [1.0, 1.0]],
            labels: vec![0, 2],
        };
        for (points, says) in [
            (&nan, "NaN"),
            (&unlabelled, "2 points but 1 labels"),
            (&empty, "no points"),
            (&unnamed, "label 2 has no name"),
        ] {
            let err = scatter("S", "x", "y", points, &["a", "b"]).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn a_decision_boundary_colours_both_regions() {
        let points = two_moons(20, 0.1, 0).unwrap();
        let fig = decision_boundary("x > 0.5", &points, &|p| p[0] - 0.5).unwrap();
        assert!(fig.svg.matches("<rect").count() >= 50 * 50);
        assert_eq!(fig.svg.matches("<circle").count(), 20);
        for color in &CLASS_COLORS[..2] {
            assert!(
                fig.svg.contains(&hex(*color)),
                "no {} in the figure",
                hex(*color)
            );
        }
        assert_well_formed(&fig.svg);
    }
}
