//! mustknow: the machine-learning must-knows, taught as Rust notebooks and checked.
//!
//! One module per notebook section (`backprop` is `notebooks/01_backprop.ipynb`), plus
//! small shared modules: [`data`], [`plot`], [`seed`]. Notebooks start with
//! `use mustknow::prelude::*;`.

pub mod backprop;
pub mod data;
pub mod display;
mod error;
pub mod plot;
pub mod seed;

pub use error::Error;

/// What every notebook imports.
pub mod prelude {
    pub use crate::data::{two_moons, Points2d};
    pub use crate::plot::{decision_boundary, line_chart, Figure};
    pub use crate::seed::notebook_seed;
    pub use crate::Error;
    pub use rand::{rngs::StdRng, Rng, SeedableRng};
}
