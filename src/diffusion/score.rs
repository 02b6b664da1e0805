//! §3: denoising score matching (Vincent, 2011) and annealed Langevin dynamics (Song &
//! Ermon, 2019). The score `∇ₓ ln p(x)` of data blurred by Gaussian noise of scale `σ` is
//! what a denoiser learns: regressing the added noise `ε` from `x̃ = x + σ ε` gives
//! `ε̂(x̃) = E[ε | x̃] = −σ ∇ ln p_σ(x̃)`. With scores at a ladder of noise levels,
//! Langevin dynamics samples by following them from coarse to fine.

use super::ddpm::normal;
use super::points::PointDenoiser;
use super::{fit_denoiser, DenoiserSettings, NoisePredictor, NoisyBatch};
use crate::runtime::hot_pool;
use crate::train::History;
use crate::Error;
use rand::Rng;

/// A ladder of noise scales `σ_1 > … > σ_L`, geometric as in Song & Ermon. Notebook
/// `09_diffusion` §3.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseLevels {
    pub sigmas: Vec<f64>,
}

/// The time value the network reads for level `i` of `levels` levels: spread over the
/// same `0..1000` range as DDPM's steps, so one time embedding serves both.
pub fn level_time(i: usize, levels: usize) -> f32 {
    1000.0 * (i as f32 + 0.5) / levels as f32
}

impl NoiseLevels {
    /// `levels` scales from `largest` down to `smallest`, a constant ratio apart.
    pub fn geometric(largest: f64, smallest: f64, levels: usize) -> Result<NoiseLevels, Error> {
        if levels < 2 || !(largest > smallest && smallest > 0.0) {
            return Err(Error::InvalidArgument {
                what: "a ladder of noise levels",
                expected: "at least two levels, largest > smallest > 0",
                got: format!("{levels} levels from {largest} to {smallest}"),
            });
        }
        let ratio = (smallest / largest).powf(1.0 / (levels - 1) as f64);
        let sigmas = (0..levels)
            .map(|i| largest * ratio.powi(i as i32))
            .collect();
        Ok(NoiseLevels { sigmas })
    }

    pub fn len(&self) -> usize {
        self.sigmas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigmas.is_empty()
    }

    /// A denoising batch: `batch` points of `data` (2-D, flattened), each at a uniform
    /// level `i`, plus `σ_i ε`.
    pub fn noisy_batch(&self, data: &[f32], batch: usize, rng: &mut impl Rng) -> NoisyBatch {
        let (mut x, mut t, mut eps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..batch {
            let row = rng.gen_range(0..data.len() / 2);
            let level = rng.gen_range(0..self.len());
            let noise = normal(2, rng);
            let sigma = self.sigmas[level] as f32;
            x.extend([
                data[2 * row] + sigma * noise[0],
                data[2 * row + 1] + sigma * noise[1],
            ]);
            t.push(level_time(level, self.len()));
            eps.extend(noise);
        }
        NoisyBatch { x, t, eps }
    }

    /// The learned score at level `level` of every point of `x`: `−ε̂/σ`.
    pub fn score(&self, model: &dyn NoisePredictor, x: &[f32], level: usize) -> Vec<f32> {
        let t = vec![level_time(level, self.len()); x.len() / 2];
        let sigma = self.sigmas[level] as f32;
        model
            .predict_values(x, &t)
            .iter()
            .map(|e| -e / sigma)
            .collect()
    }
}

/// Denoising score matching at every level at once: trains `model` to predict the noise
/// of [`NoiseLevels::noisy_batch`]es of `data`. Its loss, `‖ε̂ − ε‖²`, is Vincent's
/// `σ²‖s(x̃) + ε/σ‖²` with `s = −ε̂/σ`: the `σ²` weighting Song & Ermon use so that every
/// level counts alike ([`dsm_loss`]).
pub fn train_score(
    model: &mut PointDenoiser,
    data: &[f32],
    levels: &NoiseLevels,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    fit_denoiser(model, settings, |rng, batch| {
        levels.noisy_batch(data, batch, rng)
    })
}

/// Vincent's denoising score matching loss at scale `sigma`, weighted by `σ²`: the mean
/// over all values of `(σ·s + ε)²`, for scores `score` at the noised points and the noise
/// `eps` that was added. Minimised by the score of the noised data. Notebook
/// `09_diffusion` §3.
pub fn dsm_loss(score: &[f32], eps: &[f32], sigma: f64) -> f64 {
    let terms = score
        .iter()
        .zip(eps)
        .map(|(s, e)| (sigma * *s as f64 + *e as f64).powi(2));
    terms.sum::<f64>() / eps.len() as f64
}

/// Langevin dynamics through the levels `path` (indices into `levels`, coarse to fine):
/// at level `i`, `steps` moves `x ← x + (α_i/2)·s(x, σ_i) + √α_i·z` with step size
/// `α_i = step · σ_i²/σ_L²` (Song & Ermon's Algorithm 1). `score(x, i)` gives the score at
/// level `i`. Annealing runs every level; plain Langevin runs only the last. Notebook
/// `09_diffusion` §3.
pub fn langevin(
    score: impl Fn(&[f32], usize) -> Vec<f32>,
    levels: &NoiseLevels,
    path: &[usize],
    steps: usize,
    step: f64,
    start: Vec<f32>,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let _pool = hot_pool();
    let finest = levels.sigmas[levels.len() - 1];
    let mut x = start;
    for &level in path {
        let alpha = step * (levels.sigmas[level] / finest).powi(2);
        let (drift, spread) = ((alpha / 2.0) as f32, alpha.sqrt() as f32);
        for _ in 0..steps {
            let s = score(&x, level);
            let z = normal(x.len(), rng);
            for ((x, s), z) in x.iter_mut().zip(&s).zip(&z) {
                *x += drift * s + spread * z;
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::mixture::Mixture;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn the_dsm_loss_is_least_at_the_noised_datas_score() {
        // Data N(0, s²) in the plane noised by σ: the score is −x̃/(s² + σ²), and the
        // σ²-weighted loss at it is s²/(s² + σ²) per value.
        let (s, sigma) = (0.5f64, 0.8f64);
        let data = Mixture {
            means: vec![[0.0, 0.0]],
            weights: vec![1.0],
            stds: vec![s],
        };
        let mut rng = StdRng::seed_from_u64(0);
        let x = data.sample(50_000, &mut rng);
        let eps = normal(x.len(), &mut rng);
        let noised: Vec<f32> = x
            .iter()
            .zip(&eps)
            .map(|(x, e)| x + sigma as f32 * e)
            .collect();
        let loss_at = |factor: f64| {
            let score: Vec<f32> = noised
                .iter()
                .map(|v| (-factor * *v as f64 / (s * s + sigma * sigma)) as f32)
                .collect();
            dsm_loss(&score, &eps, sigma)
        };
        let optimum = s * s / (s * s + sigma * sigma);
        assert!(
            (loss_at(1.0) - optimum).abs() < 0.01,
            "{} {optimum}",
            loss_at(1.0)
        );
        assert!(loss_at(0.8) > loss_at(1.0) && loss_at(1.2) > loss_at(1.0));
    }

    #[test]
    fn geometric_levels_keep_a_constant_ratio() {
        let levels = NoiseLevels::geometric(4.0, 0.04, 5).unwrap();
        assert_eq!(levels.len(), 5);
        assert!((levels.sigmas[2] - 0.4).abs() < 1e-12);
        assert!(NoiseLevels::geometric(0.1, 1.0, 5).is_err());
    }

    #[test]
    fn annealed_langevin_with_the_true_score_recovers_the_weights_plain_langevin_does_not() {
        let mixture = Mixture::pentagon();
        let levels = NoiseLevels::geometric(3.0, 0.1, 10).unwrap();
        let true_score =
            |x: &[f32], level: usize| mixture.noised(1.0, levels.sigmas[level]).scores(x);
        let mut rng = StdRng::seed_from_u64(1);
        let start: Vec<f32> = (0..1600).map(|_| rng.gen_range(-4.0..4.0)).collect();
        let every: Vec<usize> = (0..10).collect();
        let annealed = langevin(
            true_score,
            &levels,
            &every,
            60,
            5e-4,
            start.clone(),
            &mut rng,
        );
        let plain = langevin(true_score, &levels, &[9; 10], 60, 5e-4, start, &mut rng);
        let (good, bad) = (
            mixture.weight_error(&annealed),
            mixture.weight_error(&plain),
        );
        assert!(good < 0.06 && bad > 0.1, "annealed {good}, plain {bad}");
    }
}
