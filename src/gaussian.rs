//! The univariate normal distribution and the KL divergence between two of them in closed
//! form: taught in notebook `08_vae_gan` §1, and the model that notebook `11_theory` §2
//! fits to a mixture.

use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// A univariate Gaussian `N(mean, std²)`: notebook `08_vae_gan` §1 (and `11_theory` §2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normal {
    pub mean: f64,
    pub std: f64,
}

impl Normal {
    pub fn new(mean: f64, std: f64) -> Normal {
        Normal { mean, std }
    }

    /// `ln p(x)`.
    pub fn log_density(&self, x: f64) -> f64 {
        let z = (x - self.mean) / self.std;
        -0.5 * z * z - self.std.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
    }

    /// `p(x)`.
    pub fn density(&self, x: f64) -> f64 {
        self.log_density(x).exp()
    }

    /// `n` draws, `mean + std · ε` with `ε ~ N(0, 1)`.
    pub fn draw(&self, n: usize, rng: &mut StdRng) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let e: f64 = StandardNormal.sample(rng);
                self.mean + self.std * e
            })
            .collect()
    }
}

/// Notebook `08_vae_gan` §1: `KL(p‖q) = ln(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½`,
/// in nats. Not symmetric: a broad `q` pays little for a narrow `p`, not the reverse.
pub fn kl_normal(p: Normal, q: Normal) -> f64 {
    (q.std / p.std).ln() + (p.std.powi(2) + (p.mean - q.mean).powi(2)) / (2.0 * q.std.powi(2)) - 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_form_is_zero_for_equal_gaussians_and_known_otherwise() {
        let p = Normal::new(1.0, 2.0);
        assert_eq!(kl_normal(p, p), 0.0);
        // N(0, 1) against N(1, 1): half the squared distance of the means.
        assert!((kl_normal(Normal::new(0.0, 1.0), Normal::new(1.0, 1.0)) - 0.5).abs() < 1e-12);
        // N(0, 1) against N(0, 2²): ln 2 + 1/8 − 1/2.
        let broad = kl_normal(Normal::new(0.0, 1.0), Normal::new(0.0, 2.0));
        assert!((broad - (2f64.ln() - 0.375)).abs() < 1e-12);
        let narrow = kl_normal(Normal::new(0.0, 2.0), Normal::new(0.0, 1.0));
        assert!(narrow > 2.0 * broad, "{narrow} vs {broad}: asymmetric");
    }
}
