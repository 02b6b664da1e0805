//! §1: the Kullback–Leibler divergence `KL(p‖q) = E_p[ln p(x) − ln q(x)]` (Kullback &
//! Leibler, 1951), between two Gaussians: in closed form, and as a Monte-Carlo average
//! over samples of `p`, which is how a VAE meets it when no closed form exists.

use rand::{rngs::StdRng, SeedableRng};

// The Gaussian and its closed-form KL are shared with notebook `11_theory` §2.
pub use crate::gaussian::{kl_normal, Normal};

/// A Monte-Carlo estimate and its standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub standard_error: f64,
}

/// Notebook `08_vae_gan` §1: `KL(p‖q)` as the mean of `ln p(x) − ln q(x)` over `samples`
/// draws of `p`, with the standard error of that mean.
pub fn kl_monte_carlo(p: Normal, q: Normal, samples: usize, seed: u64) -> Estimate {
    let mut rng = StdRng::seed_from_u64(seed);
    let terms: Vec<f64> = p
        .draw(samples, &mut rng)
        .into_iter()
        .map(|x| p.log_density(x) - q.log_density(x))
        .collect();
    mean_and_error(&terms)
}

/// The mean of `values` and its standard error (sample std / √n).
pub fn mean_and_error(values: &[f64]) -> Estimate {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Estimate {
        value: mean,
        standard_error: (variance / n).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monte_carlo_estimate_agrees_with_the_closed_form() {
        let (p, q) = (Normal::new(0.0, 1.0), Normal::new(1.0, 1.5));
        let estimate = kl_monte_carlo(p, q, 100_000, 3);
        let exact = kl_normal(p, q);
        assert!(
            (estimate.value - exact).abs() < 4.0 * estimate.standard_error,
            "{estimate:?} vs {exact}"
        );
        assert!(estimate.standard_error < 0.01);
    }
}
