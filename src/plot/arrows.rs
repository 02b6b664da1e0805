//! Labelled points joined by arrows: word vectors projected to 2-D with the offsets of a
//! relation drawn (country → capital), as in word2vec's figures.

use super::charts::{draw_legend, linear_frame};
use super::{bad_input, check_finite, padded_range, Figure, CLASS_COLORS};
use crate::Error;
use plotters::prelude::*;

/// Points with a text label each and an arrow for each `[from, to]` pair of point indices:
/// tails in one colour, heads in another, named in the legend by `ends` (`["country",
/// "capital"]`); points in no arrow are grey. Notebook `06_embeddings`, §3, draws its PCA
/// maps with it.
pub fn arrow_map(
    title: &str,
    (x_label, y_label): (&str, &str),
    labels: &[String],
    points: &[[f64; 2]],
    arrows: &[[usize; 2]],
    ends: [&str; 2],
) -> Result<Figure, Error> {
    check(title, labels, points, arrows)?;
    let (x_lo, x_hi) = padded_range(points.iter().map(|p| p[0]));
    let (y_lo, y_hi) = padded_range(points.iter().map(|p| p[1]));
    // Room on the right for the labels and on top for the legend.
    let (x_hi, y_hi) = (x_hi + 0.15 * (x_hi - x_lo), y_hi + 0.2 * (y_hi - y_lo));
    let role = |i: usize| {
        arrows
            .iter()
            .find_map(|a| a.iter().position(|&end| end == i))
    };
    Figure::draw(title, |root| {
        let mut chart = linear_frame(root, title, (x_label, y_label), (x_lo, x_hi), (y_lo, y_hi))?;
        // Pixels per unit along each axis, to draw arrowheads of the same size everywhere.
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let scale = (
            (xs.end - xs.start) as f64 / (x_hi - x_lo),
            (ys.end - ys.start) as f64 / (y_hi - y_lo),
        );
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(arrows.iter().map(|&[from, to]| {
                PathElement::new(
                    vec![tuple(points[from]), tuple(points[to])],
                    grey.stroke_width(1),
                )
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(arrows.iter().map(|&[from, to]| {
                EmptyElement::at(tuple(points[to]))
                    + Polygon::new(head(points[from], points[to], scale), grey.filled())
            }))
            .map_err(|e| e.to_string())?;
        for (k, name) in ends.iter().enumerate() {
            let color = CLASS_COLORS[k];
            let dots = points
                .iter()
                .enumerate()
                .filter(|(i, _)| role(*i) == Some(k))
                .map(|(_, &p)| Circle::new(tuple(p), 4, color.filled()));
            chart
                .draw_series(dots)
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        let others = points
            .iter()
            .enumerate()
            .filter(|(i, _)| role(*i).is_none())
            .map(|(_, &p)| Circle::new(tuple(p), 3, grey.filled()));
        chart.draw_series(others).map_err(|e| e.to_string())?;
        chart
            .draw_series(labels.iter().zip(points).map(|(label, &p)| {
                EmptyElement::at(tuple(p)) + Text::new(label.clone(), (6, -8), ("sans-serif", 13))
            }))
            .map_err(|e| e.to_string())?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

fn tuple(p: [f64; 2]) -> (f64, f64) {
    (p[0], p[1])
}

/// An arrowhead at `to` pointing away from `from`, in pixels relative to `to`.
fn head(from: [f64; 2], to: [f64; 2], (sx, sy): (f64, f64)) -> Vec<(i32, i32)> {
    // Pixel y grows downwards.
    let (dx, dy) = ((to[0] - from[0]) * sx, -(to[1] - from[1]) * sy);
    let length = dx.hypot(dy).max(1e-9);
    let (ux, uy) = (dx / length, dy / length);
    let (back, side) = (9.0, 4.0);
    let corner = |s: f64| {
        (
            (-back * ux - s * uy).round() as i32,
            (-back * uy + s * ux).round() as i32,
        )
    };
    vec![(0, 0), corner(side), corner(-side)]
}

/// Refuses input the map cannot draw honestly: mismatched lengths, NaN, arrows to nowhere.
fn check(
    title: &str,
    labels: &[String],
    points: &[[f64; 2]],
    arrows: &[[usize; 2]],
) -> Result<(), Error> {
    if points.is_empty() {
        return Err(bad_input(title, "no points to draw"));
    }
    if labels.len() != points.len() {
        let problem = format!(
            "{} points but {} labels; give each point one label",
            points.len(),
            labels.len()
        );
        return Err(bad_input(title, problem));
    }
    check_finite(title, "the points", points.iter().flatten())?;
    match arrows.iter().flatten().find(|&&i| i >= points.len()) {
        Some(i) => Err(bad_input(
            title,
            format!(
                "an arrow ends at point {i}, but there are {} points",
                points.len()
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_well_formed, has_text, hex};
    use super::*;

    fn words() -> Vec<String> {
        ["france", "paris", "italy", "rome", "cat"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn a_map_labels_every_point_and_colours_the_arrow_ends() {
        let points = [[0.0, 0.0], [1.0, 1.0], [0.0, -1.0], [1.2, 0.1], [-1.0, 0.5]];
        let fig = arrow_map(
            "Capitals",
            ("PC 1", "PC 2"),
            &words(),
            &points,
            &[[0, 1], [2, 3]],
            ["country", "capital"],
        )
        .unwrap();
        assert_well_formed(&fig.svg);
        for word in words() {
            assert!(has_text(&fig.svg, &word), "{word} is not labelled");
        }
        assert!(has_text(&fig.svg, "country") && has_text(&fig.svg, "capital"));
        for color in &CLASS_COLORS[..2] {
            assert!(fig.svg.contains(&hex(*color)));
        }
        // Two arrowheads.
        assert_eq!(fig.svg.matches("<polygon").count(), 2);
    }

    #[test]
    fn an_arrowhead_points_along_its_arrow() {
        // An arrow to the right: the head's corners lie behind its tip, on either side.
        let head = head([0.0, 0.0], [1.0, 0.0], (100.0, 100.0));
        assert_eq!(head, [(0, 0), (-9, 4), (-9, -4)]);
    }

    #[test]
    fn bad_input_is_refused() {
        let points = [[0.0, 0.0], [1.0, f64::NAN]];
        let two = words()[..2].to_vec();
        assert!(arrow_map("t", ("x", "y"), &two, &points, &[], ["a", "b"]).is_err());
        let points = [[0.0, 0.0], [1.0, 1.0]];
        assert!(arrow_map("t", ("x", "y"), &two, &points, &[[0, 2]], ["a", "b"]).is_err());
        assert!(arrow_map("t", ("x", "y"), &words(), &points, &[], ["a", "b"]).is_err());
    }
}
