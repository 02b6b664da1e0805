//! mustknow: the machine-learning must-knows, taught as Rust notebooks and checked.
//!
//! One module per notebook section (`tour` is `notebooks/00_tour.ipynb`, `backprop` is
//! `01_backprop`, `optimization` is `02_optimization`, `generalization` is
//! `03_generalization`, `convnets` is `04_convnets`, `attention` is `05_attention`,
//! `embeddings` is `06_embeddings`, `self_supervised` is `07_self_supervised`, `vae_gan`
//! is `08_vae_gan`, `diffusion` is `09_diffusion`, `guided_latent_diffusion` is
//! `10_guided_latent_diffusion`, `theory` is `11_theory`), plus small shared modules: [`data`] (datasets and mini-batches),
//! [`models`] (models more than one notebook trains), [`optim`] (optimizer settings and
//! learning-rate schedules), [`train`] (the one training loop), [`transformer`] (attention
//! and the transformer's blocks, taught in `05_attention` and reused in `06_embeddings` and
//! `10_guided_latent_diffusion`), [`denoising`] (noise schedules, DDPM's and DDIM's samplers
//! and the time-aware U-Net, taught in `09_diffusion` and reused in
//! `10_guided_latent_diffusion`),
//! [`gaussian`] (the normal distribution and its KL divergence, taught in `08_vae_gan` and
//! reused in `11_theory`), [`cache`] (trained weights kept between runs), [`yardstick`] (the measure of
//! generated digits that notebooks `08_vae_gan`, `09_diffusion` and
//! `10_guided_latent_diffusion` share), [`runtime`] (the device and
//! thread pool training runs on), [`nn`] (layers and fused ops for dfdx on stable Rust),
//! [`plot`] (figures), [`display`] (tables), [`seed`]. A section's module uses the shared
//! ones and never another section's. Notebooks start with
//! `use mustknow::prelude::*;`.

pub mod attention;
pub mod backprop;
pub mod cache;
pub mod convnets;
pub mod data;
pub mod denoising;
pub mod diffusion;
pub mod display;
pub mod embeddings;
mod error;
pub mod gaussian;
pub mod generalization;
pub mod guided_latent_diffusion;
pub mod models;
pub mod nn;
pub mod optim;
pub mod optimization;
pub mod plot;
pub mod runtime;
pub mod seed;
pub mod self_supervised;
#[cfg(test)]
pub(crate) mod testing;
pub mod theory;
pub mod tour;
pub mod train;
pub mod transformer;
pub mod vae_gan;
pub mod yardstick;

pub use error::Error;
// The libraries notebooks use directly (evcxr sees only crates loaded with `:dep`).
pub use dfdx;
pub use linfa;
pub use linfa_linalg;
pub use linfa_reduction;
pub use ndarray;
pub use plotters;
pub use polars;
pub use rand_distr;

/// What every notebook imports.
pub mod prelude {
    pub use crate::data::{two_moons, ImageSet, MiniBatches, Points2d, Standardizer};
    pub use crate::display::{Show, Table};
    pub use crate::nn::builders::*;
    // Ours, not dfdx's: the same layers as fused ops (see `nn`).
    pub use crate::nn::builders::{BatchNorm2D, Bias2D, LayerNorm1D, LeakyReLU, ReLU, Residual};
    pub use crate::optim::{Method, Schedule};
    pub use crate::plot::{
        arrow_map, contour, decision_boundary, heatmap, image_grid, line_chart, line_chart_log,
        scatter, xy_chart, Figure, Scale,
    };
    pub use crate::seed::notebook_seed;
    pub use crate::train::{fit, fit_classifier, TrainConfig};
    pub use crate::Error;
    pub use dfdx::prelude::*;
    pub use rand::{rngs::StdRng, Rng, SeedableRng};
}
