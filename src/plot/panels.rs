//! Several figures as panels of one: evcxr shows one SVG per cell, so a cell that compares
//! plots (train against test, before against after) composes them into a single figure.

use super::{bad_input, Figure, TITLE};
use crate::display::escape;
use crate::Error;
use std::fmt::Write;

const TITLE_BAND: usize = 44;

impl Figure {
    /// `figures` in a grid of `columns`, under an overall `title`, as one figure.
    ///
    /// Each figure's own `<svg>` is nested unchanged at its offset inside the outer one
    /// (SVG allows `<svg x=".." y="..">` inside `<svg>`), so every panel keeps its own
    /// coordinates and fonts. Each panel sits centred in a cell as large as the largest.
    pub fn grid(title: &str, figures: &[Figure], columns: usize) -> Result<Figure, Error> {
        if figures.is_empty() || columns == 0 {
            let problem = format!(
                "{} figures in {columns} columns: pass at least one figure and one column",
                figures.len()
            );
            return Err(bad_input(title, problem));
        }
        let sizes = figures
            .iter()
            .map(|f| {
                svg_size(&f.svg).ok_or_else(|| {
                    bad_input(
                        title,
                        format!("panel {:?} is not an SVG with a width and height", f.title),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let columns = columns.min(figures.len());
        let rows = figures.len().div_ceil(columns);
        let cell_w = sizes.iter().map(|s| s.0).max().unwrap_or(0);
        let cell_h = sizes.iter().map(|s| s.1).max().unwrap_or(0);
        let (total_w, total_h) = (columns * cell_w, TITLE_BAND + rows * cell_h);

        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg width="{total_w}" height="{total_h}" viewBox="0 0 {total_w} {total_h}" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="{total_w}" height="{total_h}" fill="#FFFFFF"/>
<text x="{}" y="32" text-anchor="middle" font-family="{}" font-size="{:.1}" font-weight="bold">{}</text>
"##,
            total_w / 2,
            TITLE.0,
            TITLE.1 as f32 / 1.24,
            escape(title)
        );
        for (i, (figure, (w, h))) in figures.iter().zip(&sizes).enumerate() {
            let x = (i % columns) * cell_w + (cell_w - w) / 2;
            let y = TITLE_BAND + (i / columns) * cell_h + (cell_h - h) / 2;
            svg.push_str(&place(&figure.svg, x, y));
        }
        svg.push_str("</svg>\n");
        Ok(Figure {
            title: title.to_owned(),
            svg,
        })
    }
}

/// The `width` and `height` of the root `<svg>` element, in pixels.
fn svg_size(svg: &str) -> Option<(usize, usize)> {
    let start = svg.find("<svg")?;
    let tag = &svg[start..start + svg[start..].find('>')?];
    let attribute = |name: &str| -> Option<usize> {
        let value = tag
            .split(&format!(" {name}=\""))
            .nth(1)?
            .split('"')
            .next()?;
        value
            .trim_end_matches("px")
            .parse::<f64>()
            .ok()
            .map(|v| v.ceil() as usize)
    };
    Some((attribute("width")?, attribute("height")?))
}

/// The SVG text with its root element moved to `(x, y)` and any XML declaration dropped,
/// ready to nest in another `<svg>`.
fn place(svg: &str, x: usize, y: usize) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    let rest = &svg[start + "<svg".len()..];
    let mut placed = format!("<svg x=\"{x}\" y=\"{y}\"{rest}");
    if !placed.ends_with('\n') {
        placed.push('\n');
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::super::{assert_well_formed, has_text, heatmap, image_grid, line_chart};
    use super::*;

    fn panels() -> Vec<Figure> {
        let loss = line_chart("Loss", "step", "loss", &[("train", &[3.0, 1.0])]).unwrap();
        let accuracy = line_chart("Accuracy", "step", "%", &[("train", &[50.0, 90.0])]).unwrap();
        let matrix = heatmap("Confusion", &[5.0, 1.0, 0.0, 4.0], 2, 2, &[], &[]).unwrap();
        let digit = [0.5f32; 9];
        let images = image_grid("Digits", &[&digit], 3, 3, &["a".to_string()], 1).unwrap();
        vec![loss, accuracy, matrix, images]
    }

    #[test]
    fn a_grid_nests_every_panel_under_one_title() {
        let fig = Figure::grid("Training <run 1>", &panels(), 2).unwrap();
        for title in ["Loss", "Accuracy", "Confusion"] {
            assert!(has_text(&fig.svg, title), "no panel {title:?}");
        }
        assert!(fig.svg.contains(">Digits</text>"));
        assert!(fig.svg.contains(">Training &lt;run 1&gt;</text>"));
        // The outer svg and one per panel.
        assert_eq!(fig.svg.matches("<svg").count(), 1 + 4);
        assert_eq!(svg_size(&fig.svg), Some((2 * 640, TITLE_BAND + 2 * 420)));
        assert!(fig.svg.contains(r#"<svg x="640" y="44""#));
        assert_well_formed(&fig.svg);
    }

    #[test]
    fn grids_nest() {
        let inner = Figure::grid("Inner", &panels()[..2], 2).unwrap();
        let outer = Figure::grid("Outer", &[inner, panels().remove(2)], 1).unwrap();
        assert_eq!(outer.svg.matches("<svg").count(), 1 + 1 + 2 + 1);
        assert_well_formed(&outer.svg);
    }

    #[test]
    fn more_columns_than_figures_makes_one_row() {
        let fig = Figure::grid("Two", &panels()[..2], 5).unwrap();
        assert_eq!(svg_size(&fig.svg), Some((2 * 640, TITLE_BAND + 420)));
    }

    #[test]
    fn a_grid_refuses_no_figures_or_columns_and_non_svg() {
        assert!(Figure::grid("None", &[], 2).is_err());
        assert!(Figure::grid("Zero", &panels(), 0).is_err());
        let text = Figure {
            title: "text".into(),
            svg: "hello".into(),
        };
        let err = Figure::grid("Bad", &[text], 1).unwrap_err();
        assert!(err.to_string().contains("not an SVG"), "{err}");
    }
}
