//! §1–2: the forward process q(x_t | x_0) and the noise schedules that drive it.
//!
//! DDPM (Ho, Jain & Abbeel, 2020) noises data with a Markov chain of `T` Gaussian steps,
//! `x_t = √(1 − β_t) x_{t−1} + √β_t ε`. Because each step is Gaussian, `t` of them compose
//! into one: `x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε` with `ᾱ_t = Π_{s ≤ t} (1 − β_s)`, so training
//! can jump to any `t` in one draw. The schedule (the `β_t`) decides how fast the signal
//! fades: linearly growing `β` (Ho et al.), or `ᾱ_t` shaped as a squared cosine (Nichol &
//! Dhariwal, 2021).

use crate::Error;
use rand::Rng;
use rand_distr::StandardNormal;

/// The `β_t` of a diffusion of `T` steps and the `ᾱ_t` they give, for `t = 1..=T`.
/// Notebook `09_diffusion` §2.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    /// `β_t` at index `t − 1`.
    pub betas: Vec<f64>,
    /// `ᾱ_t = Π_{s ≤ t} (1 − β_s)` at index `t − 1`.
    pub alpha_bars: Vec<f64>,
}

/// The cosine schedule's cap on `β_t`, from Nichol & Dhariwal: without it the last steps'
/// `β_t` approach 1 as `ᾱ_t` reaches 0.
pub const MAX_BETA: f64 = 0.999;

impl NoiseSchedule {
    /// `β_t` growing linearly from `first` at `t = 1` to `last` at `t = steps`.
    pub fn linear(steps: usize, first: f64, last: f64) -> Result<NoiseSchedule, Error> {
        let span = (steps.max(2) - 1) as f64;
        let betas = (0..steps)
            .map(|i| first + (last - first) * i as f64 / span)
            .collect();
        NoiseSchedule::from_betas(betas)
    }

    /// Ho et al.'s schedule: `T = 1000`, `β` from 10⁻⁴ to 0.02.
    pub fn ho() -> NoiseSchedule {
        NoiseSchedule::linear(1000, 1e-4, 0.02).expect("valid betas")
    }

    /// `ᾱ_t = f(t)/f(0)` with `f(t) = cos²(π/2 · (t/T + s)/(1 + s))`, and
    /// `β_t = 1 − ᾱ_t/ᾱ_{t−1}` capped at [`MAX_BETA`]. The offset `s` keeps `β_1` from being
    /// vanishingly small.
    pub fn cosine(steps: usize, offset: f64) -> Result<NoiseSchedule, Error> {
        let f = |t: usize| {
            let phase = (t as f64 / steps as f64 + offset) / (1.0 + offset);
            (phase * std::f64::consts::FRAC_PI_2).cos().powi(2)
        };
        let betas = (1..=steps)
            .map(|t| (1.0 - f(t) / f(t - 1)).min(MAX_BETA))
            .collect();
        NoiseSchedule::from_betas(betas)
    }

    /// Nichol & Dhariwal's schedule: `T = 1000`, `s = 0.008`.
    pub fn nichol_dhariwal() -> NoiseSchedule {
        NoiseSchedule::cosine(1000, 0.008).expect("valid betas")
    }

    /// The schedule of the given `β_t` (each in `(0, 1)`).
    pub fn from_betas(betas: Vec<f64>) -> Result<NoiseSchedule, Error> {
        if betas.is_empty() || betas.iter().any(|b| !(*b > 0.0 && *b < 1.0)) {
            return Err(Error::InvalidArgument {
                what: "a noise schedule's betas",
                expected: "at least one step, every beta strictly between 0 and 1",
                got: format!("{} steps, from {:?}", betas.len(), betas.first()),
            });
        }
        let alpha_bars = betas
            .iter()
            .scan(1.0, |product, beta| {
                *product *= 1.0 - beta;
                Some(*product)
            })
            .collect();
        Ok(NoiseSchedule { betas, alpha_bars })
    }

    /// `T`, the number of steps.
    pub fn steps(&self) -> usize {
        self.betas.len()
    }

    /// `β_t`, for `t` in `1..=T`.
    pub fn beta(&self, t: usize) -> f64 {
        self.betas[t - 1]
    }

    /// `ᾱ_t`, with `ᾱ_0 = 1` (no noise yet).
    pub fn alpha_bar(&self, t: usize) -> f64 {
        if t == 0 {
            1.0
        } else {
            self.alpha_bars[t - 1]
        }
    }

    /// The noise's standard deviation in `x_t`: `√(1 − ᾱ_t)`.
    pub fn sigma(&self, t: usize) -> f64 {
        (1.0 - self.alpha_bar(t)).sqrt()
    }

    /// The log signal-to-noise ratio of `x_t`: `ln(ᾱ_t / (1 − ᾱ_t))`.
    pub fn log_snr(&self, t: usize) -> f64 {
        let a = self.alpha_bar(t);
        (a / (1.0 - a)).ln()
    }

    /// `steps` times from `T` down to 1, evenly spaced, for samplers that skip steps (the
    /// full chain when `steps = T`).
    pub fn strided(&self, steps: usize) -> Vec<usize> {
        let steps = steps.clamp(1, self.steps());
        let t = |i: usize| (i * self.steps()).div_ceil(steps).max(1);
        (1..=steps).rev().map(t).collect()
    }

    /// `x_t` in one jump from `x_0`, with the noise `eps` given:
    /// `√ᾱ_t x_0 + √(1 − ᾱ_t) ε`. Notebook `09_diffusion` §1.
    pub fn noised(&self, x0: &[f32], eps: &[f32], t: usize) -> Vec<f32> {
        let (signal, noise) = (self.alpha_bar(t).sqrt() as f32, self.sigma(t) as f32);
        x0.iter()
            .zip(eps)
            .map(|(x, e)| signal * x + noise * e)
            .collect()
    }

    /// `x_t` by running the chain: `t` steps of `x ← √(1 − β_s) x + √β_s ε`, each with fresh
    /// noise. Distributed as [`NoiseSchedule::noised`] with fresh `ε`. Notebook
    /// `09_diffusion` §1.
    pub fn chain(&self, x0: &[f32], t: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mut x = x0.to_vec();
        for &beta in &self.betas[..t] {
            let (keep, add) = ((1.0 - beta).sqrt() as f32, beta.sqrt() as f32);
            for v in &mut x {
                *v = keep * *v + add * rng.sample::<f32, _>(StandardNormal);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn the_linear_schedule_matches_values_computed_by_hand() {
        let ho = NoiseSchedule::ho();
        assert_eq!(ho.steps(), 1000);
        assert!((ho.beta(1) - 1e-4).abs() < 1e-15 && (ho.beta(1000) - 0.02).abs() < 1e-15);
        // ln ᾱ_t = Σ ln(1 − β_s): summed here in closed-form pieces instead of a running
        // product.
        let log_bar = |t: usize| {
            (0..t)
                .map(|i| (1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)).ln())
                .sum::<f64>()
        };
        for t in [1, 250, 500, 1000] {
            assert!((ho.alpha_bar(t).ln() - log_bar(t)).abs() < 1e-9, "t = {t}");
        }
        // ᾱ_500 ≈ exp(−Σβ) to second order: Σβ over 500 steps ≈ 2.5.
        assert!(
            (ho.alpha_bar(500) - 0.0786).abs() < 2e-3,
            "{}",
            ho.alpha_bar(500)
        );
        assert!(ho.alpha_bar(1000) < 1e-4);
    }

    #[test]
    fn the_cosine_schedule_follows_its_squared_cosine() {
        let cosine = NoiseSchedule::nichol_dhariwal();
        let f = |t: f64| {
            (((t / 1000.0 + 0.008) / 1.008) * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        for t in [1, 100, 500, 900] {
            let expected = f(t as f64) / f(0.0);
            assert!((cosine.alpha_bar(t) - expected).abs() < 1e-9, "t = {t}");
        }
        assert!(
            (cosine.alpha_bar(500) - 0.4938).abs() < 1e-3,
            "{}",
            cosine.alpha_bar(500)
        );
        assert_eq!(cosine.beta(1000), MAX_BETA);
        assert!(
            cosine.log_snr(1) > cosine.log_snr(500) && cosine.log_snr(500) > cosine.log_snr(999)
        );
    }

    #[test]
    fn a_schedule_rejects_impossible_betas() {
        assert!(NoiseSchedule::from_betas(vec![]).is_err());
        assert!(NoiseSchedule::from_betas(vec![0.1, 1.0]).is_err());
        assert!(NoiseSchedule::linear(10, 0.0, 0.1).is_err());
    }

    #[test]
    fn strided_times_run_from_t_down_to_one() {
        let ho = NoiseSchedule::ho();
        assert_eq!(ho.strided(4), [1000, 750, 500, 250]);
        assert_eq!(ho.strided(1000), (1..=1000).rev().collect::<Vec<_>>());
        assert_eq!(ho.strided(3), [1000, 667, 334]);
    }

    #[test]
    fn the_chain_and_the_closed_form_agree_in_mean_and_variance() {
        let schedule = NoiseSchedule::linear(200, 1e-3, 0.05).unwrap();
        let (n, t, x0) = (20_000, 120, 1.5f32);
        let mut rng = StdRng::seed_from_u64(3);
        let chained = schedule.chain(&vec![x0; n], t, &mut rng);
        let mean = chained.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = chained
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let a = schedule.alpha_bar(t);
        assert!((mean - a.sqrt() * 1.5).abs() < 0.03, "{mean}");
        assert!((var - (1.0 - a)).abs() < 0.03, "{var}");
        let jumped = schedule.noised(&[x0], &[0.5], t)[0] as f64;
        assert!((jumped - (a.sqrt() * 1.5 + (1.0 - a).sqrt() * 0.5)).abs() < 1e-5);
    }
}
