//! §3–4: a 2-D Gaussian mixture, the data whose noised density, and so whose score, is
//! known in closed form at every noise level; and the distances that say how close a
//! set of samples is to it.

use crate::Error;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, WeightedIndex};

/// A mixture of isotropic Gaussians in the plane. Notebook `09_diffusion` §3.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixture {
    pub means: Vec<[f64; 2]>,
    pub weights: Vec<f64>,
    /// Each component's standard deviation, the same along both axes.
    pub stds: Vec<f64>,
}

impl Mixture {
    /// Five components on a circle of radius 2, standard deviation 0.25, with unequal
    /// weights 0.35, 0.25, 0.2, 0.12 and 0.08: the unequal weights are what plain Langevin
    /// dynamics gets wrong and annealing gets right (Song & Ermon, 2019, §3.2).
    pub fn pentagon() -> Mixture {
        let means = (0..5)
            .map(|k| {
                let angle = std::f64::consts::TAU * k as f64 / 5.0 + std::f64::consts::FRAC_PI_2;
                [2.0 * angle.cos(), 2.0 * angle.sin()]
            })
            .collect();
        Mixture {
            means,
            weights: vec![0.35, 0.25, 0.2, 0.12, 0.08],
            stds: vec![0.25; 5],
        }
    }

    /// The law of `scale · x + noise · ε` for `x` from this mixture and `ε` standard normal:
    /// again a mixture, of `N(scale · μ_k, scale² σ_k² + noise²)`. DDPM's `x_t` is
    /// `scale = √ᾱ_t`, `noise = √(1 − ᾱ_t)`; Song & Ermon's is `scale = 1`, `noise = σ`.
    pub fn noised(&self, scale: f64, noise: f64) -> Mixture {
        Mixture {
            means: self
                .means
                .iter()
                .map(|m| [scale * m[0], scale * m[1]])
                .collect(),
            weights: self.weights.clone(),
            stds: self
                .stds
                .iter()
                .map(|s| (scale * scale * s * s + noise * noise).sqrt())
                .collect(),
        }
    }

    /// `n` points, flattened `x, y, x, y, …`.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let pick = WeightedIndex::new(&self.weights).expect("positive weights");
        (0..n)
            .flat_map(|_| {
                let k = pick.sample(rng);
                let mut draw = || self.stds[k] * rng.sample::<f64, _>(StandardNormal);
                [
                    (self.means[k][0] + draw()) as f32,
                    (self.means[k][1] + draw()) as f32,
                ]
            })
            .collect()
    }

    /// Each component's posterior probability given the point `x` (its "responsibility").
    fn responsibilities(&self, x: [f64; 2]) -> Vec<f64> {
        let log_terms: Vec<f64> = (0..self.means.len())
            .map(|k| {
                let v = self.stds[k] * self.stds[k];
                let d2 = (x[0] - self.means[k][0]).powi(2) + (x[1] - self.means[k][1]).powi(2);
                self.weights[k].ln() - v.ln() - d2 / (2.0 * v)
            })
            .collect();
        let top = log_terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let terms: Vec<f64> = log_terms.iter().map(|l| (l - top).exp()).collect();
        let total: f64 = terms.iter().sum();
        terms.iter().map(|t| t / total).collect()
    }

    /// The score `∇ₓ ln p(x)`: the responsibilities' average of each component's
    /// `−(x − μ_k)/σ_k²`.
    pub fn score(&self, x: [f64; 2]) -> [f64; 2] {
        let r = self.responsibilities(x);
        let mut s = [0.0; 2];
        for (k, r) in r.iter().enumerate() {
            let v = self.stds[k] * self.stds[k];
            for d in 0..2 {
                s[d] -= r * (x[d] - self.means[k][d]) / v;
            }
        }
        s
    }

    /// [`Mixture::score`] at every point of `points` (flattened), flattened the same way.
    pub fn scores(&self, points: &[f32]) -> Vec<f32> {
        points
            .chunks(2)
            .flat_map(|p| self.score([p[0] as f64, p[1] as f64]).map(|v| v as f32))
            .collect()
    }

    /// The index of the component whose mean is nearest each point of `points`.
    pub fn nearest_components(&self, points: &[f32]) -> Vec<usize> {
        points
            .chunks(2)
            .map(|p| {
                let d2 = |m: &[f64; 2]| (p[0] as f64 - m[0]).powi(2) + (p[1] as f64 - m[1]).powi(2);
                (0..self.means.len())
                    .min_by(|&a, &b| d2(&self.means[a]).total_cmp(&d2(&self.means[b])))
                    .expect("at least one component")
            })
            .collect()
    }

    /// The share of `points` nearest each component: the weights a sampler reproduced.
    pub fn shares(&self, points: &[f32]) -> Vec<f64> {
        let mut counts = vec![0.0; self.means.len()];
        let nearest = self.nearest_components(points);
        for &k in &nearest {
            counts[k] += 1.0;
        }
        counts
            .iter()
            .map(|c| c / nearest.len().max(1) as f64)
            .collect()
    }

    /// The total variation between [`Mixture::shares`] of `points` and the weights:
    /// half the summed absolute differences, 0 for perfect weights.
    pub fn weight_error(&self, points: &[f32]) -> f64 {
        let shares = self.shares(points);
        shares
            .iter()
            .zip(&self.weights)
            .map(|(s, w)| (s - w).abs())
            .sum::<f64>()
            / 2.0
    }
}

/// The mean over points of the cosine similarity between two fields of 2-D vectors
/// (flattened): 1 when every learned score points where the true one does. Notebook
/// `09_diffusion` §3.
pub fn mean_cosine(a: &[f32], b: &[f32]) -> f64 {
    let cosines = a.chunks(2).zip(b.chunks(2)).map(|(u, v)| {
        let dot = (u[0] * v[0] + u[1] * v[1]) as f64;
        let norms = ((u[0].hypot(u[1])) * (v[0].hypot(v[1]))) as f64;
        if norms > 0.0 {
            dot / norms
        } else {
            0.0
        }
    });
    cosines.sum::<f64>() / (a.len() / 2).max(1) as f64
}

/// The squared maximum mean discrepancy between two sets of 2-D points (flattened),
/// with the Gaussian kernel `exp(−|x − y|²/(2h²))`: the unbiased estimate of Gretton et
/// al. (2012), whose mean is 0 when both sets come from one distribution (so it can come
/// out slightly negative). Notebook `09_diffusion` §4.
pub fn mmd2(a: &[f32], b: &[f32], bandwidth: f64) -> Result<f64, Error> {
    let (n, m) = (a.len() / 2, b.len() / 2);
    if n < 2 || m < 2 || !a.len().is_multiple_of(2) || !b.len().is_multiple_of(2) {
        return Err(Error::InvalidArgument {
            what: "the two point sets of an MMD",
            expected: "at least two 2-D points each, flattened x, y, x, y, …",
            got: format!("{} and {} values", a.len(), b.len()),
        });
    }
    let k = |p: &[f32], q: &[f32]| {
        let d2 = (p[0] - q[0]).powi(2) as f64 + (p[1] - q[1]).powi(2) as f64;
        (-d2 / (2.0 * bandwidth * bandwidth)).exp()
    };
    let within = |s: &[f32]| {
        let points: Vec<&[f32]> = s.chunks(2).collect();
        let mut sum = 0.0;
        for i in 0..points.len() {
            for j in 0..points.len() {
                if i != j {
                    sum += k(points[i], points[j]);
                }
            }
        }
        sum / (points.len() * (points.len() - 1)) as f64
    };
    let across: f64 = a
        .chunks(2)
        .map(|p| b.chunks(2).map(|q| k(p, q)).sum::<f64>())
        .sum::<f64>()
        / (n * m) as f64;
    Ok(within(a) + within(b) - 2.0 * across)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn the_closed_form_score_matches_finite_differences_of_the_log_density() {
        let mixture = Mixture::pentagon().noised(0.8, 0.6);
        let log_p = |x: [f64; 2]| {
            (0..5)
                .map(|k| {
                    let v = mixture.stds[k].powi(2);
                    let d2 =
                        (x[0] - mixture.means[k][0]).powi(2) + (x[1] - mixture.means[k][1]).powi(2);
                    mixture.weights[k] * (-d2 / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v)
                })
                .sum::<f64>()
                .ln()
        };
        for x in [[0.3, -0.2], [1.5, 1.0], [-2.0, 0.4]] {
            let s = mixture.score(x);
            let h = 1e-5;
            let dx = (log_p([x[0] + h, x[1]]) - log_p([x[0] - h, x[1]])) / (2.0 * h);
            let dy = (log_p([x[0], x[1] + h]) - log_p([x[0], x[1] - h])) / (2.0 * h);
            assert!(
                (s[0] - dx).abs() < 1e-5 && (s[1] - dy).abs() < 1e-5,
                "{s:?} {dx} {dy}"
            );
        }
    }

    #[test]
    fn samples_reproduce_the_weights_and_the_mmd_tells_sets_apart() {
        let mixture = Mixture::pentagon();
        let mut rng = StdRng::seed_from_u64(0);
        let (a, b) = (
            mixture.sample(2000, &mut rng),
            mixture.sample(500, &mut rng),
        );
        assert!(
            mixture.weight_error(&a) < 0.03,
            "{}",
            mixture.weight_error(&a)
        );
        let wide = mixture.noised(1.0, 1.0).sample(500, &mut rng);
        let (same, different) = (mmd2(&a, &b, 0.5).unwrap(), mmd2(&a, &wide, 0.5).unwrap());
        assert!(same.abs() < 0.01 && different > 0.05, "{same} {different}");
        assert!(mmd2(&a, &b[..2], 0.5).is_err());
        let scores = mixture.scores(&a);
        let flipped: Vec<f32> = scores.iter().map(|s| -s).collect();
        assert!((mean_cosine(&scores, &scores) - 1.0).abs() < 1e-6);
        assert!((mean_cosine(&scores, &flipped) + 1.0).abs() < 1e-6);
    }
}
