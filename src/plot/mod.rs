//! Figures for the notebooks, drawn with plotters as SVG.
//!
//! A [`Figure`] shows itself inline in a notebook (evcxr's `evcxr_display` protocol) and
//! saves itself as an `.svg` file from plain Rust, so the two uses share one drawing.
//! evcxr keeps one output per MIME type per cell: a cell shows one figure, so a cell that
//! wants several plots composes them with [`Figure::grid`].
//!
//! - [`charts`]: curves and points ([`line_chart`], [`line_chart_log`], [`xy_chart`],
//!   [`scatter`], [`decision_boundary`]).
//! - [`images`]: pictures in a grid ([`image_grid`], [`image_grid_diverging`]).
//! - [`heatmap`](mod@heatmap): a matrix as colours with a colour bar ([`heatmap()`]).
//! - [`contour`](mod@contour): a function of two variables as level bands, with paths over
//!   it ([`contour()`]).
//! - [`arrows`]: labelled points joined by arrows ([`arrow_map`]).
//! - [`panels`]: several figures in one ([`Figure::grid`]).
//!
//! Every function checks its input first and returns [`Error::FigureInput`] saying what
//! is wrong, rather than drawing a blank or misleading figure.

pub mod arrows;
pub mod charts;
pub mod contour;
pub mod heatmap;
pub mod images;
pub mod panels;

pub use arrows::arrow_map;
pub use charts::{decision_boundary, line_chart, line_chart_log, scatter, xy_chart, Scale};
pub use contour::contour;
pub use heatmap::heatmap;
pub use images::{image_grid, image_grid_diverging};

use crate::Error;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The standard figure size in pixels, (width, height).
const SIZE: (u32, u32) = (640, 420);
const TITLE: (&str, u32) = ("sans-serif", 24);
const LABELS: (&str, u32) = ("sans-serif", 16);

/// Class colours (the tab10 palette), readable on white and for most colour vision.
pub const CLASS_COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
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

/// The error for input a figure cannot show honestly.
fn bad_input(title: &str, problem: impl Into<String>) -> Error {
    Error::FigureInput {
        title: title.to_owned(),
        problem: problem.into(),
    }
}

/// Fails on the first NaN or infinite value, naming `what` holds it and where.
fn check_finite<'a>(
    title: &str,
    what: &str,
    values: impl IntoIterator<Item = &'a f64>,
) -> Result<(), Error> {
    match values.into_iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((i, v)) => Err(bad_input(
            title,
            format!("{what} has {v} at index {i}; drop or clip non-finite values first"),
        )),
        None => Ok(()),
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
    // 5% of the span; a constant series (an accuracy stuck at 1.0) gets 5% of its size,
    // or ±0.5 around zero, instead of an axis a billionth wide.
    let pad = ((hi - lo) * 0.05).max(hi.abs().max(lo.abs()) * 0.05);
    let pad = if pad > 0.0 { pad } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Tick labels for an axis over `[lo, hi]`: as many decimals as its ticks need (about ten
/// ticks), and never `-0.0`, which plotters' own labels show for a tiny negative.
fn tick_labels(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let step = ((hi - lo) / 10.0).abs().max(1e-12);
    let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
    move |v: &f64| {
        let label = format!("{v:.decimals$}");
        match label.strip_prefix('-') {
            Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_owned(),
            _ => label,
        }
    }
}

/// A colour as SVG writes it, `#RRGGBB`.
#[cfg(test)]
fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

/// Checks that `svg` is well-formed XML with one root element: every tag closed in order,
/// quoted attributes, and `&` only in entities. A test helper: no XML parser is a
/// dependency, and this catches what composing SVG text by hand can break.
#[cfg(test)]
fn assert_well_formed(svg: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = svg.trim();
    while let Some(start) = rest.find('<') {
        check_entities(&rest[..start]);
        rest = &rest[start..];
        let end = tag_end(rest).unwrap_or_else(|| panic!("unclosed tag at {:.60}", rest));
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name.trim()), "mismatched </{name}>");
            continue;
        }
        let name = tag.split_whitespace().next().unwrap_or("");
        assert!(!name.is_empty(), "a tag without a name: <{tag}>");
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        check_entities(tag);
        if open.is_empty() {
            roots += 1;
        }
        if !tag.ends_with('/') {
            open.push(name);
        }
    }
    check_entities(rest);
    assert!(open.is_empty(), "unclosed elements: {open:?}");
    assert_eq!(roots, 1, "an XML document has exactly one root element");
}

/// Where the tag at the start of `text` ends: its `>` outside quoted attribute values.
#[cfg(test)]
fn tag_end(text: &str) -> Option<usize> {
    let mut quoted = false;
    text.char_indices().find_map(|(i, c)| match c {
        '"' => {
            quoted = !quoted;
            None
        }
        '>' if !quoted => Some(i),
        _ => None,
    })
}

#[cfg(test)]
fn check_entities(text: &str) {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "a bare & at {entity:.20}"
        );
    }
}

/// Whether plotters drew `text` as a text element (it writes the text on its own line).
#[cfg(test)]
fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">\n{text}\n</text>"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_palette_has_ten_distinct_colours() {
        let mut hexes: Vec<String> = CLASS_COLORS.iter().map(|&c| hex(c)).collect();
        hexes.sort();
        hexes.dedup();
        assert_eq!(hexes.len(), 10);
    }

    #[test]
    fn tick_labels_have_the_decimals_their_range_needs() {
        assert_eq!(tick_labels(-1.0, 1.0)(&0.5), "0.5");
        assert_eq!(tick_labels(-1.0, 1.0)(&-0.00001), "0.0");
        assert_eq!(tick_labels(0.0, 90.0)(&80.0), "80");
        assert_eq!(tick_labels(0.0, 0.05)(&0.025), "0.025");
    }

    #[test]
    fn the_well_formedness_check_catches_broken_svg() {
        assert_well_formed(r#"<svg a="1"><g><text>a &amp; b</text></g><rect/></svg>"#);
        for broken in [
            "<svg><g></svg>",
            "<svg></svg><svg></svg>",
            "<svg><text>a & b</text></svg>",
            r#"<svg a="1></svg>"#,
        ] {
            let caught = std::panic::catch_unwind(|| assert_well_formed(broken)).is_err();
            assert!(caught, "{broken} passed the check");
        }
    }

    /// Writes one of each figure to `$TMPDIR/mustknow-gallery/` to look at:
    /// `cargo test --release --lib plot::tests::gallery -- --ignored`, then open the SVGs
    /// (or `rsvg-convert x.svg -o x.png`).
    #[test]
    #[ignore]
    fn gallery() {
        let dir = std::env::temp_dir().join("mustknow-gallery");
        std::fs::create_dir_all(&dir).unwrap();
        let moons = crate::data::two_moons(200, 0.1, 0).unwrap();
        let train: Vec<f64> = (0..100)
            .map(|i| 2.0 * (-(i as f64) / 20.0).exp() + 0.01)
            .collect();
        let test: Vec<f64> = train.iter().map(|v| v * 1.3 + 0.02).collect();
        let series = [("train", &train[..]), ("test", &test[..])];
        let loss = line_chart("Loss", "step", "loss", &series).unwrap();
        let log = line_chart_log("Loss (log)", "step", "loss", &series).unwrap();
        let points = scatter("Two moons", "x₁", "x₂", &moons, &["upper", "lower"]).unwrap();
        let boundary = decision_boundary("x > 0.5", &moons, &|p| p[0] - 0.5).unwrap();
        let digits: Vec<Vec<f32>> = (0..10)
            .map(|d| {
                let c = 14.0 + (d as f32 - 4.5) * 2.0;
                (0..28 * 28)
                    .map(|k| {
                        let (r, x) = ((k / 28) as f32, (k % 28) as f32);
                        let ring = (((r - 14.0).powi(2) + (x - c).powi(2)).sqrt() - 8.0).abs();
                        (1.0 - ring / 2.5).max(0.0)
                    })
                    .collect()
            })
            .collect();
        let images: Vec<&[f32]> = digits.iter().map(|d| d.as_slice()).collect();
        let captions: Vec<String> = (0..10).map(|d| format!("label {d}")).collect();
        let grid = image_grid("Samples", &images, 28, 28, &captions, 5).unwrap();
        let filters: Vec<Vec<f32>> = (0..8)
            .map(|f| {
                (0..25)
                    .map(|k| ((k + f) as f32 * 0.7).sin() * 0.3)
                    .collect()
            })
            .collect();
        let filter_refs: Vec<&[f32]> = filters.iter().map(|f| f.as_slice()).collect();
        let filter_captions: Vec<String> = (0..8).map(|f| format!("filter {f}")).collect();
        let learned =
            image_grid_diverging("Filters", &filter_refs, 5, 5, &filter_captions, 8).unwrap();
        let classes: Vec<String> = ["T-shirt", "trouser", "pullover", "dress", "coat"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let confusion: Vec<f64> = (0..25)
            .map(|k| {
                if k % 6 == 0 {
                    90.0 - k as f64
                } else {
                    (k * 7 % 11) as f64
                }
            })
            .collect();
        let matrix = heatmap("Confusion", &confusion, 5, 5, &classes, &classes).unwrap();
        let tokens: Vec<String> = "the cat sat on the mat because it was warm"
            .split(' ')
            .map(String::from)
            .collect();
        let n = tokens.len();
        let attention: Vec<f64> = (0..n * n)
            .map(|k| {
                if k % n <= k / n {
                    1.0 / (1 + k / n) as f64
                } else {
                    0.0
                }
            })
            .collect();
        let attend = heatmap("Attention", &attention, n, n, &tokens, &tokens).unwrap();
        let big: Vec<f64> = (0..64 * 64)
            .map(|k| ((k % 64) as f64 * 0.1).sin())
            .collect();
        let large = heatmap("64 × 64", &big, 64, 64, &[], &[]).unwrap();
        let rosenbrock = |p: [f64; 2]| (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2);
        let route: Vec<[f64; 2]> = (0..=20)
            .map(|i| {
                let t = i as f64 / 20.0;
                [-1.5 + 2.5 * t, 2.0 - 1.0 * t * t]
            })
            .collect();
        let surface = contour(
            "Rosenbrock",
            ("x", "y"),
            [-2.0, 2.0],
            [-1.0, 3.0],
            &rosenbrock,
            &[("route", &route), ("minimum", &[[1.0, 1.0]])],
        )
        .unwrap();
        let measured: Vec<[f64; 2]> = [1.0f64, 4.0, 16.0, 64.0, 256.0]
            .iter()
            .map(|&b| [b, 4.8 / b * (1.0 + 0.1 * b.ln().sin())])
            .collect();
        let theory: Vec<[f64; 2]> = measured.iter().map(|p| [p[0], 4.8 / p[0]]).collect();
        let noise = xy_chart(
            "Gradient noise",
            "batch size",
            "variance",
            [Scale::Log, Scale::Log],
            &[("measured", &measured), ("4.8 / B", &theory)],
        )
        .unwrap();
        let fixed: Vec<[f64; 2]> = [8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
            .iter()
            .map(|&b| [b, 0.011 * b])
            .collect();
        let scaled: Vec<[f64; 2]> = fixed.iter().map(|p| [p[0], 0.08]).collect();
        let batches = xy_chart(
            "Batch sizes",
            "batch size",
            "loss",
            [Scale::Log, Scale::Log],
            &[("fixed", &fixed), ("scaled", &scaled)],
        )
        .unwrap();
        let panels =
            Figure::grid("Training", &[loss.clone(), log.clone(), matrix.clone()], 2).unwrap();
        for (name, fig) in [
            ("loss", loss),
            ("log", log),
            ("scatter", points),
            ("boundary", boundary),
            ("images", grid),
            ("filters", learned),
            ("confusion", matrix),
            ("attention", attend),
            ("large", large),
            ("contour", surface),
            ("noise", noise),
            ("batches", batches),
            ("panels", panels),
        ] {
            fig.save(dir.join(format!("{name}.svg"))).unwrap();
        }
    }
}
