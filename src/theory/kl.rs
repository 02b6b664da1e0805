//! §2: fitting one Gaussian to a two-mode mixture by minimising KL(p‖q) or KL(q‖p). Every
//! integral is a sum over a fine grid (the densities are one-dimensional and smooth), so
//! the fits are deterministic and their end points can be checked against the theory:
//! the forward direction matches moments, the reverse one sits on a mode.

pub use crate::gaussian::Normal;

/// A mixture of Gaussians, `Σ wᵢ N(μᵢ, σᵢ²)` (notebook `11_theory`, §2).
#[derive(Clone, Debug, PartialEq)]
pub struct Mixture {
    /// `(weight, component)`; the weights sum to 1.
    pub components: Vec<(f64, Normal)>,
}

impl Mixture {
    /// `½ N(−a, 1) + ½ N(a, 1)`: two unit modes `2a` apart, mean 0 and variance `1 + a²`.
    /// The notebook's target is `a = 2` (variance 5), then `a = 3`.
    pub fn two_modes(a: f64) -> Mixture {
        Mixture {
            components: vec![(0.5, Normal::new(-a, 1.0)), (0.5, Normal::new(a, 1.0))],
        }
    }

    pub fn density(&self, x: f64) -> f64 {
        self.components.iter().map(|(w, g)| w * g.density(x)).sum()
    }

    pub fn log_density(&self, x: f64) -> f64 {
        self.density(x).max(f64::MIN_POSITIVE).ln()
    }

    /// `d log p / dx`, the score the reverse fit follows.
    pub fn score(&self, x: f64) -> f64 {
        let slope: f64 = self
            .components
            .iter()
            .map(|(w, g)| w * g.density(x) * (g.mean - x) / (g.std * g.std))
            .sum();
        slope / self.density(x).max(f64::MIN_POSITIVE)
    }

    pub fn mean(&self) -> f64 {
        self.components.iter().map(|(w, g)| w * g.mean).sum()
    }

    /// The mixture's variance: the mean of the components' second moments less the mean².
    pub fn variance(&self) -> f64 {
        let second: f64 = self
            .components
            .iter()
            .map(|(w, g)| w * (g.std * g.std + g.mean * g.mean))
            .sum();
        second - self.mean() * self.mean()
    }
}

/// The grid every integral is summed on: `POINTS` points evenly spaced over ±`REACH`,
/// far beyond where any density here has mass.
const REACH: f64 = 14.0;
const POINTS: usize = 8001;

/// The grid's points and the width each stands for.
pub fn grid() -> (Vec<f64>, f64) {
    let dx = 2.0 * REACH / (POINTS - 1) as f64;
    ((0..POINTS).map(|i| -REACH + i as f64 * dx).collect(), dx)
}

/// `∫ f(x) dx` on the grid.
fn integral(f: impl Fn(f64) -> f64) -> f64 {
    let (xs, dx) = grid();
    xs.into_iter().map(f).sum::<f64>() * dx
}

/// The entropy `H(p) = −∫ p log p`, in nats.
pub fn entropy(p: &Mixture) -> f64 {
    integral(|x| {
        let px = p.density(x);
        -px * p.log_density(x)
    })
}

/// The cross-entropy `H(p, q) = −∫ p log q`, in nats: the expected negative
/// log-likelihood of `q` on data from `p`, what maximum likelihood minimises.
pub fn cross_entropy(p: &Mixture, q: Normal) -> f64 {
    integral(|x| -p.density(x) * q.log_density(x))
}

/// The forward divergence `KL(p‖q) = ∫ p log(p/q)`, in nats.
pub fn kl_forward(p: &Mixture, q: Normal) -> f64 {
    integral(|x| {
        let px = p.density(x);
        px * (p.log_density(x) - q.log_density(x))
    })
}

/// The reverse divergence `KL(q‖p) = ∫ q log(q/p)`, in nats.
pub fn kl_reverse(p: &Mixture, q: Normal) -> f64 {
    integral(|x| {
        let qx = q.density(x);
        qx * (q.log_density(x) - p.log_density(x))
    })
}

/// Which divergence a fit minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `KL(p‖q)`: mode-covering, the direction of maximum likelihood.
    Forward,
    /// `KL(q‖p)`: mode-seeking, the direction of variational inference.
    Reverse,
}

impl Direction {
    pub fn divergence(self, p: &Mixture, q: Normal) -> f64 {
        match self {
            Direction::Forward => kl_forward(p, q),
            Direction::Reverse => kl_reverse(p, q),
        }
    }

    /// The gradient of the divergence with respect to `(μ, log σ)` of `q`.
    ///
    /// Forward: only `−∫ p log q` depends on `q`, so `∂/∂μ = −∫ p (x − μ)/σ²` and
    /// `∂/∂log σ = ∫ p (1 − (x − μ)²/σ²)`. Reverse, written with `x = μ + σz`, `z ~ N(0, 1)`
    /// (the reparameterization): `KL = −log σ + const − E_z[log p(μ + σz)]`, so
    /// `∂/∂μ = −E_z[s(x)]` and `∂/∂log σ = −1 − E_z[s(x) σ z]`, with `s` the score of `p`.
    pub fn gradient(self, p: &Mixture, q: Normal) -> [f64; 2] {
        let (mu, sigma) = (q.mean, q.std);
        match self {
            Direction::Forward => [
                integral(|x| -p.density(x) * (x - mu) / (sigma * sigma)),
                integral(|x| p.density(x) * (1.0 - (x - mu) * (x - mu) / (sigma * sigma))),
            ],
            Direction::Reverse => {
                let standard = Normal::new(0.0, 1.0);
                [
                    integral(|z| -standard.density(z) * p.score(mu + sigma * z)),
                    -1.0 - integral(|z| standard.density(z) * p.score(mu + sigma * z) * sigma * z),
                ]
            }
        }
    }
}

/// One step of a fit: where `q` was and its divergence there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitStep {
    pub step: usize,
    pub q: Normal,
    pub divergence: f64,
}

/// Fits `q` to `p` by `steps` steps of gradient descent on `(μ, log σ)` at learning rate
/// `lr`, from `start`; returns every step, the start first (notebook `11_theory`, §2).
/// Two numbers are fitted by plain gradient descent, written out: there is no network
/// here for the course's training loop to drive.
pub fn fit_gaussian(
    p: &Mixture,
    direction: Direction,
    start: Normal,
    lr: f64,
    steps: usize,
) -> Vec<FitStep> {
    let mut q = start;
    let mut path = Vec::with_capacity(steps + 1);
    for step in 0..=steps {
        path.push(FitStep {
            step,
            q,
            divergence: direction.divergence(p, q),
        });
        let [d_mean, d_log_std] = direction.gradient(p, q);
        q = Normal::new(q.mean - lr * d_mean, (q.std.ln() - lr * d_log_std).exp());
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gaussian::kl_normal;

    fn single(mean: f64, std: f64) -> Mixture {
        Mixture {
            components: vec![(1.0, Normal::new(mean, std))],
        }
    }

    #[test]
    fn the_grid_integrals_match_closed_forms() {
        let (p, q) = (Normal::new(0.3, 0.8), Normal::new(-1.0, 1.7));
        let forward = kl_forward(&single(0.3, 0.8), q);
        assert!((forward - kl_normal(p, q)).abs() < 1e-9, "{forward}");
        let reverse = kl_reverse(&single(0.3, 0.8), q);
        assert!((reverse - kl_normal(q, p)).abs() < 1e-9, "{reverse}");
        let h = entropy(&single(0.0, 2.0));
        assert!(
            (h - (0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * 4.0).ln())).abs()
                < 1e-9
        );
        let mixture = Mixture::two_modes(2.0);
        assert!(mixture.mean().abs() < 1e-12 && (mixture.variance() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn cross_entropy_is_entropy_plus_kl() {
        let (p, q) = (Mixture::two_modes(2.0), Normal::new(0.5, 1.3));
        let gap = cross_entropy(&p, q) - entropy(&p) - kl_forward(&p, q);
        assert!(gap.abs() < 1e-10, "{gap}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let p = Mixture::two_modes(2.0);
        let q = Normal::new(0.7, 1.4);
        let h = 1e-5;
        for direction in [Direction::Forward, Direction::Reverse] {
            let [d_mean, d_log_std] = direction.gradient(&p, q);
            let at = |mean: f64, log_std: f64| {
                direction.divergence(&p, Normal::new(mean, log_std.exp()))
            };
            let (m, l) = (q.mean, q.std.ln());
            let numeric_mean = (at(m + h, l) - at(m - h, l)) / (2.0 * h);
            let numeric_log_std = (at(m, l + h) - at(m, l - h)) / (2.0 * h);
            assert!(
                (d_mean - numeric_mean).abs() < 1e-6,
                "{direction:?}: {d_mean} vs {numeric_mean}"
            );
            assert!(
                (d_log_std - numeric_log_std).abs() < 1e-6,
                "{direction:?}: {d_log_std} vs {numeric_log_std}"
            );
        }
    }

    #[test]
    fn both_fits_recover_a_single_gaussian_and_differ_on_two_modes() {
        let target = single(1.0, 0.5);
        for direction in [Direction::Forward, Direction::Reverse] {
            let end = fit_gaussian(&target, direction, Normal::new(-1.0, 2.0), 0.1, 600);
            let q = end.last().unwrap().q;
            assert!(
                (q.mean - 1.0).abs() < 1e-3 && (q.std - 0.5).abs() < 1e-3,
                "{direction:?}: {q:?}"
            );
        }
        let p = Mixture::two_modes(2.0);
        let forward = fit_gaussian(&p, Direction::Forward, Normal::new(1.0, 0.5), 0.2, 400);
        let q = forward.last().unwrap().q;
        assert!(
            q.mean.abs() < 1e-3 && (q.std - 5f64.sqrt()).abs() < 1e-3,
            "{q:?}"
        );
        // Modes 4 apart: the reverse fit is narrower than the forward one but still spans
        // both, from any start; 6 apart, it settles on one mode.
        for start in [Normal::new(2.0, 1.0), Normal::new(1.0, 3.0)] {
            let q = fit_gaussian(&p, Direction::Reverse, start, 0.2, 400)
                .last()
                .unwrap()
                .q;
            assert!(q.mean.abs() < 1e-3 && (1.5..2.2).contains(&q.std), "{q:?}");
        }
        let apart = Mixture::two_modes(3.0);
        let q = fit_gaussian(&apart, Direction::Reverse, Normal::new(2.0, 1.0), 0.2, 400)
            .last()
            .unwrap()
            .q;
        assert!(
            (q.mean - 3.0).abs() < 0.05 && (q.std - 1.0).abs() < 0.05,
            "{q:?}"
        );
    }
}
