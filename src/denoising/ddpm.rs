//! §4–6: denoising diffusion probabilistic models (Ho, Jain & Abbeel, 2020). Training
//! (their Algorithm 1): take a data point, a uniform step `t` and Gaussian noise `ε`, noise
//! the point in one jump, and regress `ε` from the result. Sampling (Algorithm 2): start
//! from pure noise and walk the chain back, removing the predicted noise a step at a time.
//! DDIM (Song, Meng & Ermon, 2021) walks back deterministically and can skip steps.

use super::schedule::NoiseSchedule;
use super::{fit_denoiser, DenoiserSettings, NoisePredictor, NoisyBatch};
use crate::runtime::hot_pool;
use crate::train::History;
use crate::Error;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

/// `n` standard normal values.
pub fn normal(n: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

/// One training batch of Algorithm 1: `batch` rows of `data` (examples of `dim` values,
/// flattened), each with a uniform `t` in `1..=T` and fresh noise, noised in one jump.
/// Notebook `09_diffusion` §4.
pub fn noisy_batch(
    data: &[f32],
    dim: usize,
    schedule: &NoiseSchedule,
    batch: usize,
    rng: &mut impl Rng,
) -> NoisyBatch {
    noisy_batch_rows(data, dim, schedule, batch, rng).0
}

/// [`noisy_batch`] and the rows of `data` it drew, so that each example's label can go
/// with it. Notebook `10_guided_latent_diffusion` §1–4.
pub fn noisy_batch_rows(
    data: &[f32],
    dim: usize,
    schedule: &NoiseSchedule,
    batch: usize,
    rng: &mut impl Rng,
) -> (NoisyBatch, Vec<usize>) {
    let examples = data.len() / dim;
    let (mut x, mut t, mut eps, mut rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..batch {
        let row = rng.gen_range(0..examples);
        let step = rng.gen_range(1..=schedule.steps());
        let noise = normal(dim, rng);
        x.extend(schedule.noised(&data[row * dim..][..dim], &noise, step));
        t.push(step as f32);
        eps.extend(noise);
        rows.push(row);
    }
    (NoisyBatch { x, t, eps }, rows)
}

/// DDPM's "simple" loss of `model` on `batch`: the mean over all values of `(ε − ε̂)²`.
/// Notebook `09_diffusion` §4.
pub fn simple_loss(model: &dyn NoisePredictor, batch: &NoisyBatch) -> f64 {
    let predicted = model.predict_values(&batch.x, &batch.t);
    let squares = predicted
        .iter()
        .zip(&batch.eps)
        .map(|(p, e)| ((p - e) as f64).powi(2));
    squares.sum::<f64>() / batch.eps.len() as f64
}

/// Trains `model` on `data` (examples of `model.dim()` values, flattened) with Algorithm 1.
pub fn train_ddpm<M>(
    model: &mut M,
    data: &[f32],
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error>
where
    M: NoisePredictor + dfdx::prelude::TensorCollection<f32, dfdx::prelude::Cpu> + 'static,
{
    let dim = model.dim();
    if data.len() < dim || !data.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument {
            what: "the training data of a DDPM",
            expected: "whole examples of the model's size, at least one",
            got: format!("{} values for examples of {dim}", data.len()),
        });
    }
    fit_denoiser(model, settings, |rng, batch| {
        noisy_batch(data, dim, schedule, batch, rng)
    })
}

/// One step back from time `t` to an earlier time `s` (`s = t − 1` in the full chain, 0
/// at the end) given the predicted noise: Algorithm 2's
/// `x_s = (x_t − β/√(1 − ᾱ_t) · ε̂)/√(1 − β) + √β · z`, with `β = 1 − ᾱ_t/ᾱ_s` (which is
/// `β_t` when `s = t − 1`) and no added noise on the last step. Notebook `09_diffusion` §4.
pub fn ancestral_step(
    schedule: &NoiseSchedule,
    x: &[f32],
    eps: &[f32],
    t: usize,
    s: usize,
    z: &[f32],
) -> Vec<f32> {
    let beta = 1.0 - schedule.alpha_bar(t) / schedule.alpha_bar(s);
    let shrink = (beta / schedule.sigma(t)) as f32;
    let (scale, spread) = ((1.0 - beta).sqrt().recip() as f32, beta.sqrt() as f32);
    let noise = if s == 0 { 0.0 } else { spread };
    x.iter()
        .zip(eps)
        .zip(z)
        .map(|((x, e), z)| scale * (x - shrink * e) + noise * z)
        .collect()
}

/// One deterministic DDIM step (η = 0) from `t` to `s`: estimate the clean data
/// `x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t`, then re-noise it to level `s` with the same `ε̂`:
/// `x_s = √ᾱ_s x̂₀ + √(1 − ᾱ_s) ε̂`. Notebook `09_diffusion` §6.
pub fn ddim_step(schedule: &NoiseSchedule, x: &[f32], eps: &[f32], t: usize, s: usize) -> Vec<f32> {
    ddim_step_within(schedule, x, eps, t, s, f32::INFINITY)
}

/// [`ddim_step`] with `x̂₀` clipped to `[−bound, bound]`, as Ho et al.'s and Nichol &
/// Dhariwal's code clip it to the data's range. Where `ᾱ_t` is tiny (the cosine
/// schedule's `ᾱ_T ≈ 2·10⁻⁹`), dividing by `√ᾱ_t` magnifies the network's error in `ε̂`
/// thousands of times, and the clip keeps the estimate on the data. Notebook
/// `09_diffusion` §6.
pub fn ddim_step_within(
    schedule: &NoiseSchedule,
    x: &[f32],
    eps: &[f32],
    t: usize,
    s: usize,
    bound: f32,
) -> Vec<f32> {
    let (a_t, a_s) = (schedule.alpha_bar(t), schedule.alpha_bar(s));
    let (from_t, to_s) = ((1.0 - a_t).sqrt() as f32, (1.0 - a_s).sqrt() as f32);
    let (unscale, rescale) = (a_t.sqrt().recip() as f32, a_s.sqrt() as f32);
    x.iter()
        .zip(eps)
        .map(|(x, e)| {
            let x0 = (unscale * (x - from_t * e)).clamp(-bound, bound);
            rescale * x0 + to_s * e
        })
        .collect()
}

/// How to walk the chain back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Algorithm 2, stochastic: fresh noise at every step.
    Ancestral,
    /// DDIM with η = 0: deterministic given the starting noise.
    Ddim,
    /// DDIM with the clean-data estimate clipped to `[−bound, bound]`
    /// ([`ddim_step_within`]).
    ClippedDdim(f32),
}

/// Samples and the states the reverse chain passed through.
#[derive(Clone, Debug)]
pub struct Samples {
    /// The final `x_0`, flattened.
    pub x: Vec<f32>,
    /// `(t, x_t)` at each time asked to be kept.
    pub snapshots: Vec<(usize, Vec<f32>)>,
}

/// `n` samples from `model` by walking back through the times `times` (from
/// [`NoiseSchedule::strided`]: the full chain or fewer steps), starting from standard
/// normal noise drawn from `seed`; keeps `x_t` for every `t` in `keep`. Large batches are
/// predicted in chunks of `chunk` examples. Notebook `09_diffusion` §4–6.
pub fn sample(
    model: &dyn NoisePredictor,
    schedule: &NoiseSchedule,
    sampler: Sampler,
    times: &[usize],
    n: usize,
    seed: u64,
    keep: &[usize],
) -> Samples {
    let chain = Chain {
        schedule: schedule.clone(),
        sampler,
        times: times.to_vec(),
    };
    let mut eps = |x: &[f32], t: usize| predict_in_chunks(model, x, t as f32);
    chain.walk(&mut eps, n * model.dim(), seed, keep)
}

/// A way back through the chain: the schedule, the sampler and the times visited.
#[derive(Clone, Debug)]
pub struct Chain {
    pub schedule: NoiseSchedule,
    pub sampler: Sampler,
    pub times: Vec<usize>,
}

impl Chain {
    /// `sampler` through `steps` times of `schedule`, evenly strided
    /// ([`NoiseSchedule::strided`]).
    pub fn strided(schedule: &NoiseSchedule, sampler: Sampler, steps: usize) -> Chain {
        Chain {
            schedule: schedule.clone(),
            sampler,
            times: schedule.strided(steps),
        }
    }

    /// Walks back from `values` standard normal values drawn from `seed`, the noise of
    /// the whole batch at time `t` predicted by `eps(x_t, t)`; keeps `x_t` for every `t`
    /// in `keep`. [`sample`] predicts with a network; notebook
    /// `10_guided_latent_diffusion` guides the prediction and walks the same chain.
    pub fn walk(
        &self,
        eps: &mut dyn FnMut(&[f32], usize) -> Vec<f32>,
        values: usize,
        seed: u64,
        keep: &[usize],
    ) -> Samples {
        let _pool = hot_pool();
        let (schedule, times) = (&self.schedule, &self.times);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = normal(values, &mut rng);
        let mut snapshots = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            if keep.contains(&t) {
                snapshots.push((t, x.clone()));
            }
            let s = times.get(i + 1).copied().unwrap_or(0);
            let eps = eps(&x, t);
            x = match self.sampler {
                Sampler::Ancestral => {
                    ancestral_step(schedule, &x, &eps, t, s, &normal(values, &mut rng))
                }
                Sampler::Ddim => ddim_step(schedule, &x, &eps, t, s),
                Sampler::ClippedDdim(bound) => ddim_step_within(schedule, &x, &eps, t, s, bound),
            };
        }
        if keep.contains(&0) {
            snapshots.push((0, x.clone()));
        }
        Samples { x, snapshots }
    }
}

/// Examples predicted per call while sampling: enough to keep the cores busy, few enough
/// that a U-Net's activations stay small.
pub const CHUNK: usize = 256;

fn predict_in_chunks(model: &dyn NoisePredictor, x: &[f32], t: f32) -> Vec<f32> {
    let dim = model.dim();
    x.chunks(CHUNK * dim)
        .flat_map(|chunk| model.predict_values(chunk, &vec![t; chunk.len() / dim]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ancestral_step_is_algorithm_two() {
        let schedule = NoiseSchedule::ho();
        let (x, eps, z) = ([0.3f32, -1.2], [0.5f32, 0.1], [1.0f32, -2.0]);
        let t = 400;
        let (beta, a) = (schedule.beta(t), schedule.alpha_bar(t));
        let by_hand: Vec<f32> = (0..2)
            .map(|i| {
                let mean =
                    (x[i] as f64 - beta / (1.0 - a).sqrt() * eps[i] as f64) / (1.0 - beta).sqrt();
                (mean + beta.sqrt() * z[i] as f64) as f32
            })
            .collect();
        let step = ancestral_step(&schedule, &x, &eps, t, t - 1, &z);
        assert!(
            step.iter().zip(&by_hand).all(|(a, b)| (a - b).abs() < 1e-6),
            "{step:?} {by_hand:?}"
        );
        let last = ancestral_step(&schedule, &x, &eps, 1, 0, &z);
        let clean = ancestral_step(&schedule, &x, &eps, 1, 0, &[0.0, 0.0]);
        assert_eq!(last, clean, "no noise is added on the last step");
    }

    #[test]
    fn with_the_true_noise_ddim_recovers_the_data_and_keeps_noised_data_on_its_level() {
        let schedule = NoiseSchedule::ho();
        let (x0, eps) = ([0.7f32, -0.4], [1.3f32, 0.2]);
        let xt = schedule.noised(&x0, &eps, 600);
        let back = ddim_step(&schedule, &xt, &eps, 600, 0);
        assert!(
            back.iter().zip(&x0).all(|(a, b)| (a - b).abs() < 1e-4),
            "{back:?}"
        );
        let mid = ddim_step(&schedule, &xt, &eps, 600, 200);
        let expected = schedule.noised(&x0, &eps, 200);
        assert!(mid.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-4));
        let clipped = ddim_step_within(&schedule, &xt, &eps, 600, 0, 0.5);
        assert!(
            (clipped[0] - 0.5).abs() < 1e-6 && (clipped[1] + 0.4).abs() < 1e-4,
            "x̂₀ clipped to ±0.5: {clipped:?}"
        );
    }
}
