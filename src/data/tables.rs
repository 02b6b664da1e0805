//! Small classic tables as polars `DataFrame`s: Fisher's iris and the wine recognition data.
//!
//! Both files are scikit-learn's copies, whose first line is not a header but
//! `rows,features,class names...`; it is checked against the table and names the classes.

use super::files::{DataDir, DataFile, IRIS, WINE};
use crate::Error;
use polars::prelude::*;

/// Fisher's iris (1936): 150 flowers × (sepal_length, sepal_width, petal_length,
/// petal_width in cm, species), used from the first classical-ML notebook onwards.
pub fn iris() -> Result<DataFrame, Error> {
    DataDir::from_env().iris()
}

/// The wine recognition data (Aeberhard and Forina, UCI): 178 wines × (13 chemical
/// measurements named as in scikit-learn, class `class_0..class_2`).
pub fn wine() -> Result<DataFrame, Error> {
    DataDir::from_env().wine()
}

const IRIS_COLUMNS: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

const WINE_COLUMNS: [&str; 13] = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
];

impl DataDir {
    /// [`iris`] from this folder.
    pub fn iris(&self) -> Result<DataFrame, Error> {
        self.sklearn_csv(&IRIS, &IRIS_COLUMNS, "species")
    }

    /// [`wine`] from this folder.
    pub fn wine(&self) -> Result<DataFrame, Error> {
        self.sklearn_csv(&WINE, &WINE_COLUMNS, "class")
    }

    /// Reads a scikit-learn CSV: the `rows,features,classes...` line, then rows of float
    /// features and a class index, which becomes the class name in `class_column`.
    fn sklearn_csv(
        &self,
        file: &DataFile,
        features: &[&str],
        class_column: &str,
    ) -> Result<DataFrame, Error> {
        let bytes = self.read(file)?;
        let bad = |problem: String| self.bad_format(file, problem);
        let split = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        let (rows, classes) = sklearn_header(&bytes[..split], features.len()).map_err(bad)?;
        let body = bytes.get(split + 1..).unwrap_or_default();
        let table = numeric_rows(body, features.len() + 1, 2).map_err(bad)?;
        if table.len() != rows {
            return Err(bad(format!(
                "the first line promises {rows} rows, the file has {}",
                table.len()
            )));
        }

        let column = |j: usize| table.iter().map(|row| row[j]).collect::<Vec<f64>>();
        let mut columns: Vec<Column> = features
            .iter()
            .enumerate()
            .map(|(j, &name)| Column::new(name.into(), column(j)))
            .collect();
        let names = class_names_of(&column(features.len()), &classes).map_err(bad)?;
        columns.push(Column::new(class_column.into(), names));
        DataFrame::new(columns).map_err(|e| bad(e.to_string()))
    }
}

/// The rows of a headerless CSV of numbers, each `width` fields long. `first_line` is the
/// file line `body` starts on, so that a problem names the line a reader finds it on.
pub(super) fn numeric_rows(
    body: &[u8],
    width: usize,
    first_line: u64,
) -> Result<Vec<Vec<f64>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let line = first_line + record.position().map_or(0, |p| p.line() - 1);
        if record.len() != width {
            return Err(format!(
                "line {line} should have {width} values, it has {}",
                record.len()
            ));
        }
        let number = |(j, field): (usize, &str)| {
            field
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("line {line}, column {}: {field:?} is not a number", j + 1))
        };
        rows.push(
            record
                .iter()
                .enumerate()
                .map(number)
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(rows)
}

/// Parses `rows,features,class names...`, checking the feature count.
fn sklearn_header(line: &[u8], features: usize) -> Result<(usize, Vec<String>), String> {
    let line = String::from_utf8_lossy(line);
    let fields: Vec<&str> = line.trim().split(',').collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<usize>().ok());
    match (number(0), number(1)) {
        (Some(rows), Some(n)) if n == features && fields.len() > 2 => {
            Ok((rows, fields[2..].iter().map(|s| s.to_string()).collect()))
        }
        _ => Err(format!(
            "line 1 should be `rows,{features},class names...`, got {:?}",
            line.trim()
        )),
    }
}

/// `value` as an integer, when it is a whole number in `0..=max`.
pub(super) fn whole_number(value: f64, max: usize) -> Option<usize> {
    (value.fract() == 0.0 && (0.0..=max as f64).contains(&value)).then_some(value as usize)
}

/// Each row's class name, from its class index.
fn class_names_of(targets: &[f64], classes: &[String]) -> Result<Vec<String>, String> {
    targets
        .iter()
        .enumerate()
        .map(|(row, &t)| {
            let class = whole_number(t, classes.len()).and_then(|t| classes.get(t));
            class.cloned().ok_or_else(|| {
                format!(
                    "line {}: class {t} is not one of the {} classes",
                    row + 2,
                    classes.len()
                )
            })
        })
        .collect()
}

/// The named numeric columns of a table as a row-major `(rows, columns.len())` `f32`
/// matrix, the form [`MiniBatches`](super::MiniBatches) and
/// [`Standardizer`](super::Standardizer) take.
pub fn feature_matrix(table: &DataFrame, columns: &[&str]) -> Result<Vec<f32>, Error> {
    let width = columns.len();
    let mut matrix = vec![0.0; table.height() * width];
    for (j, &name) in columns.iter().enumerate() {
        let problem = |problem: String| Error::TableColumn {
            column: name.to_owned(),
            problem,
        };
        let column = table.column(name).map_err(|e| problem(e.to_string()))?;
        let values = column
            .cast(&DataType::Float32)
            .map_err(|e| problem(e.to_string()))?;
        let values = values.f32().map_err(|e| problem(e.to_string()))?;
        for (i, value) in values.iter().enumerate() {
            matrix[i * width + j] =
                value.ok_or_else(|| problem(format!("row {i} has no value")))?;
        }
    }
    Ok(matrix)
}

/// A table's string class column as label indices, with the class names in sorted order
/// (`labels[i]` indexes the names).
pub fn class_labels(table: &DataFrame, column: &str) -> Result<(Vec<usize>, Vec<String>), Error> {
    let problem = |problem: String| Error::TableColumn {
        column: column.to_owned(),
        problem,
    };
    let values = table.column(column).map_err(|e| problem(e.to_string()))?;
    let values = values.str().map_err(|e| problem(e.to_string()))?;
    let names: Vec<&str> = values
        .iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| problem("some rows have no class".to_owned()))?;
    let mut classes: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    classes.sort();
    classes.dedup();
    let labels = names
        .iter()
        .map(|name| {
            classes
                .binary_search_by(|c| c.as_str().cmp(name))
                .unwrap_or(0)
        })
        .collect();
    Ok((labels, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iris_is_150_flowers_of_3_species() {
        let table = iris().unwrap();
        assert_eq!(table.shape(), (150, 5));
        let names: Vec<&str> = table
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names[..4], IRIS_COLUMNS);
        assert_eq!(names[4], "species");
        let (labels, classes) = class_labels(&table, "species").unwrap();
        assert_eq!(classes, ["setosa", "versicolor", "virginica"]);
        assert_eq!((labels[0], labels[149]), (0, 2));
        let features = feature_matrix(&table, &IRIS_COLUMNS).unwrap();
        assert_eq!(features[..4], [5.1, 3.5, 1.4, 0.2]);
    }

    #[test]
    fn wine_is_178_wines_of_13_measurements() {
        let table = wine().unwrap();
        assert_eq!(table.shape(), (178, 14));
        assert_eq!(table.get_column_names()[12].as_str(), "proline");
        let (labels, classes) = class_labels(&table, "class").unwrap();
        assert_eq!(classes, ["class_0", "class_1", "class_2"]);
        assert_eq!(labels.iter().filter(|&&l| l == 0).count(), 59);
        let features = feature_matrix(&table, &WINE_COLUMNS).unwrap();
        assert_eq!((features.len(), features[12]), (178 * 13, 1065.0));
    }

    #[test]
    fn a_bad_first_line_is_reported() {
        assert!(sklearn_header(b"150,4,a,b,c", 4).is_ok());
        let problem = sklearn_header(b"5.1,3.5,1.4,0.2,0", 4).unwrap_err();
        assert!(problem.contains("line 1"), "{problem}");
    }

    #[test]
    fn a_bad_row_names_its_line_and_column() {
        assert_eq!(
            numeric_rows(b"1,2\n3.5,-4\n", 2, 2).unwrap(),
            [[1.0, 2.0], [3.5, -4.0]]
        );
        let problem = numeric_rows(b"1,2\n3,x\n", 2, 2).unwrap_err();
        assert!(problem.contains("line 3, column 2"), "{problem}");
        let problem = numeric_rows(b"1,2\n3\n", 2, 2).unwrap_err();
        assert!(
            problem.contains("line 3 should have 2 values, it has 1"),
            "{problem}"
        );
        let classes = ["a".to_owned(), "b".to_owned()];
        assert_eq!(class_names_of(&[1.0, 0.0], &classes).unwrap(), ["b", "a"]);
        let problem = class_names_of(&[0.0, 2.0], &classes).unwrap_err();
        assert!(problem.contains("line 3: class 2"), "{problem}");
        assert!(class_names_of(&[0.5], &classes).is_err());
    }

    #[test]
    fn an_unknown_column_is_named() {
        let table = iris().unwrap();
        let err = feature_matrix(&table, &["petal_area"]).unwrap_err();
        assert!(err.to_string().contains("petal_area"), "{err}");
    }
}
