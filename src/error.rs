//! The crate's error type: every failure says what went wrong and how to fix it.

/// Errors returned by the crate's functions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} should be {expected}, but got {got}")]
    ShapeMismatch {
        what: &'static str,
        expected: String,
        got: String,
    },
    #[error("{what} should be {expected}, but got {got}")]
    InvalidArgument {
        what: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("MUSTKNOW_SEED={0:?} is not a seed: set it to a whole number such as 7, or unset it")]
    BadSeed(String),
    #[error("{quantity} is {value} at epoch {epoch}, step {step}: lower the learning rate, or look for NaN or infinite values in the inputs")]
    NotFinite {
        quantity: &'static str,
        value: f32,
        epoch: usize,
        step: usize,
    },
    #[error("the optimizer could not update the model: {0}")]
    Optimizer(String),
    #[error("the tensor device failed: {0}")]
    Device(String),
    #[error("could not build the table: {0}")]
    Table(String),
    #[error("could not draw the figure: {0}")]
    Plot(String),
    #[error("could not write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("data file {} is missing: restore it from the repository (`git checkout -- data/{name}`)", path.display())]
    DataMissing {
        name: String,
        path: std::path::PathBuf,
    },
    #[error("data file {} is corrupt: its sha256 is {got} but should be {expected}; restore it from the repository (`git checkout -- data/{name}`)", path.display())]
    DataChecksum {
        name: String,
        path: std::path::PathBuf,
        expected: String,
        got: String,
    },
    #[error("data file {} is not in the expected format: {problem}; restore it from the repository (`git checkout -- data/{name}`)", path.display())]
    DataFormat {
        name: String,
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("could not read data file {}: {source}", path.display())]
    DataRead {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("column {column:?} of the table cannot be used: {problem}")]
    TableColumn { column: String, problem: String },
    #[error("cannot draw the figure {title:?}: {problem}")]
    FigureInput { title: String, problem: String },
}
