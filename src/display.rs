//! Tables in notebooks: polars `DataFrame`s and small metric tables rendered as HTML.
//!
//! evcxr shows a cell's final value by calling `value.evcxr_display()`, and a trait method
//! in scope counts: with [`Show`] imported, a `DataFrame` or a [`Table`] ending a cell
//! appears as a compact HTML table (numbers to 4 significant digits, right-aligned; at most
//! [`MAX_ROWS`] rows and a line saying how many more; the shape under it).

use crate::Error;
use polars::prelude::{AnyValue, DataFrame};
use std::fmt::Write;

/// At most this many rows are shown; a line under them counts the rest.
pub const MAX_ROWS: usize = 20;

/// A value shown as an HTML table in a notebook.
pub trait Show {
    /// The value as one HTML `<table>`, styled inline (notebook front-ends differ in CSS).
    fn to_html(&self) -> String;

    /// Shows the value in a notebook: evcxr calls this on a cell's final value.
    fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.to_html()
        );
    }
}

/// One cell of a [`Table`]: text, or a number shown to 4 significant digits.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Integer(i64),
    /// A missing value, shown as a grey `null`.
    Missing,
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::Text(text)
    }
}

impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        Cell::Number(v)
    }
}

impl From<f32> for Cell {
    fn from(v: f32) -> Cell {
        Cell::Number(v.into())
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Cell {
        Cell::Integer(v)
    }
}

impl From<usize> for Cell {
    fn from(v: usize) -> Cell {
        i64::try_from(v).map_or(Cell::Number(v as f64), Cell::Integer)
    }
}

impl Cell {
    fn is_numeric(&self) -> bool {
        matches!(self, Cell::Number(_) | Cell::Integer(_))
    }

    /// The cell as a `<td>`: numbers right-aligned in digits of equal width.
    fn td(&self) -> String {
        let (text, style) = match self {
            Cell::Text(text) => (escape(text), "text-align:left"),
            Cell::Number(v) => (four_digits(*v), NUMBER),
            Cell::Integer(v) => (v.to_string(), NUMBER),
            Cell::Missing => ("null".into(), "text-align:left;color:#999"),
        };
        format!("<td style=\"{CELL};{style}\">{text}</td>")
    }

    /// A polars value as a cell: floats and integers stay numbers, the rest text.
    fn from_any(value: &AnyValue) -> Cell {
        match value {
            AnyValue::Null => Cell::Missing,
            AnyValue::Float32(v) => Cell::Number((*v).into()),
            AnyValue::Float64(v) => Cell::Number(*v),
            v if v.is_integer() => v
                .extract::<i64>()
                .map_or(Cell::Text(v.to_string()), Cell::Integer),
            v => Cell::Text(v.get_str().map_or_else(|| v.to_string(), str::to_owned)),
        }
    }
}

/// A small table built in code, for metrics: `Table::new(&["model", "loss"])` then
/// `.row([Cell::from("mlp"), 0.231.into()])?` for each row.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// The table with one more row, which must have one cell per column.
    pub fn row<C: Into<Cell>>(
        mut self,
        cells: impl IntoIterator<Item = C>,
    ) -> Result<Table, Error> {
        let cells: Vec<Cell> = cells.into_iter().map(Into::into).collect();
        if cells.len() != self.headers.len() {
            return Err(Error::ShapeMismatch {
                what: "a table row",
                expected: format!(
                    "{} cells, one per column {:?}",
                    self.headers.len(),
                    self.headers
                ),
                got: format!("{} cells", cells.len()),
            });
        }
        self.rows.push(cells);
        Ok(self)
    }
}

impl Show for Table {
    fn to_html(&self) -> String {
        let heads = self.headers.iter().enumerate().map(|(c, name)| {
            // A column is numeric when its cells are: right-align its header with them.
            let numeric = !self.rows.is_empty() && self.rows.iter().all(|r| r[c].is_numeric());
            Head {
                name: name.clone(),
                dtype: None,
                numeric,
            }
        });
        let shown = self.rows.iter().take(MAX_ROWS).cloned();
        html_table(heads.collect(), shown.collect(), self.rows.len())
    }
}

impl Show for DataFrame {
    fn to_html(&self) -> String {
        let columns = self.get_columns();
        let heads = columns.iter().map(|c| Head {
            name: c.name().to_string(),
            dtype: Some(c.dtype().to_string()),
            numeric: c.dtype().is_primitive_numeric(),
        });
        let shown = (0..self.height().min(MAX_ROWS)).map(|i| {
            let cell = |c: &polars::prelude::Column| {
                c.get(i)
                    .map_or_else(|e| Cell::Text(e.to_string()), |v| Cell::from_any(&v))
            };
            columns.iter().map(cell).collect()
        });
        html_table(heads.collect(), shown.collect(), self.height())
    }
}

/// A column header: its name, its type if known, and whether it holds numbers.
struct Head {
    name: String,
    dtype: Option<String>,
    numeric: bool,
}

const CELL: &str = "padding:2px 10px;border:none";
const NUMBER: &str = "text-align:right;font-variant-numeric:tabular-nums";

/// The HTML for `heads` over the `shown` rows of a table of `total` rows.
fn html_table(heads: Vec<Head>, shown: Vec<Vec<Cell>>, total: usize) -> String {
    let mut html = String::from(
        "<table style=\"border-collapse:collapse;font-family:sans-serif;font-size:13px;margin:0\">\n",
    );
    let _ = writeln!(
        html,
        "<caption style=\"caption-side:bottom;text-align:left;color:#777;font-size:12px;padding-top:4px\">{} × {}</caption>",
        plural(total, "row"),
        plural(heads.len(), "column")
    );
    html.push_str("<thead><tr>");
    for head in &heads {
        let align = if head.numeric { "right" } else { "left" };
        let dtype = head.dtype.as_deref().map_or(String::new(), |t| {
            format!(
                "<br><span style=\"color:#999;font-weight:normal;font-size:11px\">{}</span>",
                escape(t)
            )
        });
        let _ = write!(
            html,
            "<th style=\"{CELL};text-align:{align};border-bottom:1px solid #888\">{}{dtype}</th>",
            escape(&head.name)
        );
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in shown.iter().enumerate() {
        let shade = if i % 2 == 1 {
            " style=\"background:#f5f5f5\""
        } else {
            ""
        };
        let _ = write!(html, "<tr{shade}>");
        row.iter().for_each(|cell| html.push_str(&cell.td()));
        html.push_str("</tr>\n");
    }
    if total > shown.len() {
        let more = plural(total - shown.len(), "more row");
        let _ = writeln!(
            html,
            "<tr><td colspan=\"{}\" style=\"{CELL};color:#777;font-style:italic\">… {more}</td></tr>",
            heads.len().max(1),
        );
    }
    html.push_str("</tbody>\n</table>");
    html
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `v` to 4 significant digits: fixed point from 0.001 to 99999, scientific outside.
pub fn four_digits(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to 4 digits, so 9.99995 counts as 10.00, not 9.999.
    let scientific = format!("{v:.3e}");
    let exponent: i32 = scientific
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-3..5).contains(&exponent) {
        let decimals = (3 - exponent).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        scientific
    }
}

/// `text` with the characters that HTML and XML treat specially written as entities.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::df;

    #[test]
    fn numbers_have_four_significant_digits() {
        let cases = [
            (0.123456, "0.1235"),
            (1.0, "1.000"),
            (-12.3456, "-12.35"),
            (1234.56, "1235"),
            (0.00123456, "0.001235"),
            (9.99995, "10.00"),
            (123456.0, "1.235e5"),
            (0.0000123, "1.230e-5"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, text) in cases {
            assert_eq!(four_digits(v), text, "{v}");
        }
    }

    #[test]
    fn a_data_frame_shows_headers_types_and_formatted_numbers() {
        let df = df!("loss" => &[0.123456, 2.0], "name <b>" => &["a&b", "c"], "n" => &[1i64, 2])
            .unwrap();
        let html = df.to_html();
        assert!(html.starts_with("<table"));
        for text in [
            "loss",
            "f64",
            "name &lt;b&gt;",
            "str",
            "n",
            "i64",
            "0.1235",
            "2.000",
            "a&amp;b",
        ] {
            assert!(html.contains(text), "no {text:?} in {html}");
        }
        assert!(!html.contains("<b>"), "unescaped header");
        assert!(html.contains("2 rows × 3 columns"));
        assert!(
            html.contains(&format!("{NUMBER}\">0.1235<")),
            "numbers right-aligned"
        );
        assert!(!html.contains("more row"));
    }

    #[test]
    fn a_long_data_frame_shows_its_head_and_counts_the_rest() {
        let xs: Vec<f64> = (0..25).map(f64::from).collect();
        let df = df!("x" => &xs).unwrap();
        let html = df.to_html();
        assert_eq!(html.matches("<tr").count(), 1 + MAX_ROWS + 1);
        assert!(html.contains("… 5 more rows"));
        assert!(html.contains("25 rows × 1 column<"));
    }

    #[test]
    fn nulls_show_as_null() {
        let df = df!("x" => &[Some(1.5), None]).unwrap();
        assert!(df.to_html().contains(">null</td>"));
    }

    #[test]
    fn a_table_holds_text_and_numbers() {
        let table = Table::new(&["model", "test loss", "params"])
            .row([Cell::from("mlp"), 0.23456.into(), 1200usize.into()])
            .unwrap()
            .row([Cell::from("cnn <small>"), 0.1.into(), 800usize.into()])
            .unwrap();
        let html = table.to_html();
        for text in [
            "model",
            "test loss",
            "params",
            "mlp",
            "0.2346",
            "0.1000",
            "1200",
            "cnn &lt;small&gt;",
        ] {
            assert!(html.contains(text), "no {text:?} in {html}");
        }
        assert!(html.contains("2 rows × 3 columns"));
        assert!(
            html.contains("text-align:right;border-bottom"),
            "numeric header right-aligned"
        );
    }

    #[test]
    fn a_table_row_must_fit_the_headers() {
        let err = Table::new(&["model", "loss"]).row([1.0]).unwrap_err();
        assert!(err.to_string().contains("2 cells"), "{err}");
    }
}
