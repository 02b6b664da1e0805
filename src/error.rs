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
    #[error("MUSTKNOW_SEED={0:?} is not a seed: set it to a whole number such as 7, or unset it")]
    BadSeed(String),
    #[error("could not draw the figure: {0}")]
    Plot(String),
    #[error("could not write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
