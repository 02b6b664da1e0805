//! The machinery of denoising diffusion, taught in notebook `09_diffusion` and reused by
//! `10_guided_latent_diffusion`: the noise schedules ([`schedule`]), DDPM's training batch,
//! ancestral and DDIM sampling ([`ddpm`]), the time-aware U-Net ([`unet`]), and the
//! [`NoisePredictor`] every denoiser is and the course's one loop for training it
//! ([`fit_denoiser`]).

pub mod ddpm;
pub mod schedule;
pub mod unet;

use crate::optim::{Method, OptimizerConfig};
use crate::runtime::device;
use crate::train::{fit, Drawn, History, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

/// A batch of examples flattened row after row.
pub type Rows<T> = Tensor<(usize, usize), f32, Cpu, T>;

/// A network that predicts the noise in its input: `ε̂(x, t)` for a batch of noised
/// examples `x` (one row each) at time values `t` (one each, fed through
/// [`time_embedding`]). Samplers take it as `&dyn NoisePredictor`, so that they are
/// compiled once in the crate rather than in every notebook cell that calls them.
/// Notebook `09_diffusion` §3–5.
pub trait NoisePredictor {
    /// The values in one example (2 for a point, the pixels of an image).
    fn dim(&self) -> usize;

    /// `ε̂` for every row of `x`, on `x`'s tape.
    fn predict<T: Tape<f32, Cpu> + Merge<T> + std::fmt::Debug>(
        &self,
        x: Rows<T>,
        t: &[f32],
    ) -> Rows<T>
    where
        Self: Sized;

    /// `ε̂` for the examples `x` (flattened) at the time values `t`, without a tape.
    fn predict_values(&self, x: &[f32], t: &[f32]) -> Vec<f32>;
}

/// [`NoisePredictor::predict_values`] by way of [`NoisePredictor::predict`].
pub fn predict_untaped(model: &impl NoisePredictor, x: &[f32], t: &[f32]) -> Vec<f32> {
    let x = Cpu::default().tensor_from_vec(x.to_vec(), (t.len(), model.dim()));
    model.predict(x, t).as_vec()
}

/// The sinusoidal embedding of each time value in `t` (Vaswani et al.'s positions, as DDPM
/// embeds its steps): `dim/2` sines then `dim/2` cosines of `t · 10000^(−k/(dim/2))`,
/// `dim` values per time, one after another. Notebook `09_diffusion` §5.
pub fn time_embedding(t: &[f32], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let frequencies: Vec<f32> = (0..half)
        .map(|k| (-(10_000f32.ln()) * k as f32 / half as f32).exp())
        .collect();
    t.iter()
        .flat_map(|&t| {
            let sines = frequencies.iter().map(move |f| (t * f).sin());
            sines.chain(frequencies.iter().map(move |f| (t * f).cos()))
        })
        .collect()
}

/// Noised examples, their time values and the noise that was added: what a denoiser is
/// trained to recover.
#[derive(Clone, Debug)]
pub struct NoisyBatch {
    pub x: Vec<f32>,
    pub t: Vec<f32>,
    pub eps: Vec<f32>,
}

/// How a denoiser is trained: steps of Adam on fresh noisy batches, on the course's
/// cosine learning-rate schedule.
#[derive(Clone, Copy, Debug)]
pub struct DenoiserSettings {
    pub steps: usize,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub seed: u64,
}

impl DenoiserSettings {
    /// `steps` steps of Adam at `lr` on batches of `batch`.
    pub fn new(steps: usize, batch: usize, lr: f64, seed: u64) -> DenoiserSettings {
        DenoiserSettings {
            steps,
            batch,
            optimizer: Method::Adam.at(lr),
            seed,
        }
    }
}

/// Steps between records of a denoiser's training run.
const EPOCH: usize = 50;

/// Trains `model` to predict the noise of the batches `draw` makes (from a generator
/// seeded with `settings.seed`), minimising the mean squared error `‖ε̂ − ε‖²`: DDPM's
/// "simple" loss and, with `ε̂ = −σ·score`, denoising score matching weighted by `σ²`.
pub fn fit_denoiser<M>(
    model: &mut M,
    settings: &DenoiserSettings,
    draw: impl FnMut(&mut StdRng, usize) -> NoisyBatch,
) -> Result<History, Error>
where
    M: NoisePredictor + TensorCollection<f32, Cpu> + 'static,
{
    let dev = device(settings.seed);
    let objective = |m: &mut M, b: NoisyBatch, grads| -> Result<Measured, Error> {
        let (n, dim) = (b.t.len(), m.dim());
        let x = dev.tensor_from_vec(b.x, (n, dim)).traced(grads);
        let eps = dev.tensor_from_vec(b.eps, (n, dim));
        Ok(Measured::loss(mse_loss(m.predict(x, &b.t), eps)))
    };
    fit_drawn(model, settings, 0xd1ff, draw, objective)
}

/// Trains `model` with `settings`' Adam on the course's cosine schedule, on batches of
/// `settings.batch` that `draw` makes afresh at every step (from a generator seeded with
/// `settings.seed ^ stream`), minimising `loss`: the one loop ([`fit`]) as every network
/// of notebooks `09_diffusion` and `10_guided_latent_diffusion` runs it.
pub fn fit_drawn<M, B>(
    model: &mut M,
    settings: &DenoiserSettings,
    stream: u64,
    mut draw: impl FnMut(&mut StdRng, usize) -> B,
    loss: impl FnMut(&mut M, B, Gradients<f32, Cpu>) -> Result<Measured, Error>,
) -> Result<History, Error>
where
    M: TensorCollection<f32, Cpu> + 'static,
{
    let mut adam = settings.optimizer.build(model);
    let mut rng = StdRng::seed_from_u64(settings.seed ^ stream);
    let batch = settings.batch;
    let batches = Drawn::new(EPOCH, || draw(&mut rng, batch));
    let config = TrainConfig::cosine(settings.steps, EPOCH, settings.optimizer.lr);
    fit(model, adam.as_mut(), batches, loss, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_embedding_is_sines_then_cosines_at_falling_frequencies() {
        let e = time_embedding(&[0.0, 3.0], 8);
        assert_eq!(e.len(), 16);
        assert_eq!(&e[..8], &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        assert!((e[8] - 3f32.sin()).abs() < 1e-6 && (e[12] - 3f32.cos()).abs() < 1e-6);
        assert!(
            (e[9] - (3.0 * 0.1f32).sin()).abs() < 1e-6,
            "10000^(−1/4) = 0.1"
        );
    }
}
