//! Notebook `09_diffusion`: generative models that learn to undo noise.
//!
//! - [`schedule`]: §1–2, the forward process `q(x_t | x_0)` in one jump and step by step,
//!   and the linear (Ho et al., 2020) and cosine (Nichol & Dhariwal, 2021) noise schedules.
//! - [`mixture`]: §3–4, a 2-D Gaussian mixture whose noised score is known in closed form,
//!   and the MMD that measures samples against it.
//! - [`score`]: §3, denoising score matching (Vincent, 2011) at several noise levels and
//!   annealed Langevin sampling (Song & Ermon, 2019).
//! - [`ddpm`]: §4–6, the DDPM training objective and its ancestral sampler (Ho et al.,
//!   2020), and deterministic DDIM sampling with fewer steps (Song, Meng & Ermon, 2021).
//! - [`points`] and [`unet`]: the noise-predicting networks, an MLP for 2-D points and a
//!   small U-Net with a sinusoidal time embedding for images.
//!
//! Every network here predicts the noise `ε` that was added, from the noised input and the
//! noise level ([`NoisePredictor`]); a score is `−ε̂/σ`. All of them train through the
//! course's one loop ([`fit_denoiser`]). Image samples are judged by the shared
//! [`crate::yardstick`].

pub mod mixture;
pub mod points;
pub mod score;

// The machinery notebook 10 builds on lives in the shared `denoising` module; its paths
// are this notebook's too.
pub use crate::denoising::{
    ddpm, fit_denoiser, predict_untaped, schedule, time_embedding, unet, DenoiserSettings,
    NoisePredictor, NoisyBatch, Rows,
};
