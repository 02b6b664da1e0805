//! Datasets: generated toy data now; the real datasets in `data/` come with their loaders.

mod synthetic;

pub use synthetic::{two_moons, Points2d};
