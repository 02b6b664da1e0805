//! §2: InfoNCE as a lower bound on mutual information (van den Oord, Li & Vinyals, 2018;
//! Poole et al., 2019). For a batch of `N` pairs `(xᵢ, yᵢ)` and a critic `f`, the loss
//! `L = InfoNCE(f(xᵢ, yⱼ))` satisfies `I(X; Y) ≥ ln N − L`: the estimate can never exceed
//! `ln N`, however much information the pairs share. On correlated Gaussians the true
//! value is known, so the bound can be watched from both sides.

use super::losses::info_nce;
use crate::nn::builders::ReLU;
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{fit, Drawn, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The dimension of `x` and of `y`.
pub const DIM: usize = 10;

/// Notebook `07_self_supervised` §2: pairs of `DIM`-dimensional Gaussians, `y = ρ·x + √(1 − ρ²)·ε`, coordinate by
/// coordinate, with `ρ` set so that `I(X; Y)` is `information` nats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CorrelatedGaussians {
    pub rho: f64,
}

impl CorrelatedGaussians {
    /// The pairs that share `information` nats: `I = −(DIM/2)·ln(1 − ρ²)`, so
    /// `ρ = √(1 − exp(−2I/DIM))`.
    pub fn with_information(information: f64) -> Result<CorrelatedGaussians, Error> {
        if !(information.is_finite() && information >= 0.0) {
            return Err(Error::InvalidArgument {
                what: "the mutual information",
                expected: "a finite number of nats ≥ 0",
                got: information.to_string(),
            });
        }
        Ok(CorrelatedGaussians {
            rho: (1.0 - (-2.0 * information / DIM as f64).exp()).sqrt(),
        })
    }

    /// The mutual information in nats, in closed form.
    pub fn information(&self) -> f64 {
        -(DIM as f64) / 2.0 * (1.0 - self.rho * self.rho).ln()
    }

    /// `n` pairs: the `x`s and the `y`s, each `(n, DIM)`.
    pub fn sample(&self, n: usize, rng: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
        let noise = (1.0 - self.rho * self.rho).sqrt();
        let (mut xs, mut ys) = (Vec::with_capacity(n * DIM), Vec::with_capacity(n * DIM));
        for _ in 0..n * DIM {
            let x: f64 = StandardNormal.sample(rng);
            let e: f64 = StandardNormal.sample(rng);
            xs.push(x as f32);
            ys.push((self.rho * x + noise * e) as f32);
        }
        (xs, ys)
    }
}

/// One side of the separable critic `f(x, y) = g(x)·h(y)`: an MLP to 32 numbers.
pub type Side = (Linear<DIM, 64>, ReLU, Linear<64, 64>, ReLU, Linear<64, 32>);
pub type CriticNet = <(Side, Side) as BuildOnDevice<Cpu, f32>>::Built;

type Pairs = (
    Tensor<(usize, Const<DIM>), f32, Cpu>,
    Tensor<(usize, Const<DIM>), f32, Cpu>,
);

/// The `N × N` scores `g(xᵢ)·h(yⱼ)` of a batch, on the tape that starts at `grads`.
fn scores(
    critic: &mut CriticNet,
    (x, y): Pairs,
    grads: Gradients<f32, Cpu>,
) -> Tensor<(usize, usize), f32, Cpu, OwnedTape<f32, Cpu>> {
    let (gx, tape) = critic.0.forward_mut(x.traced(grads)).split_tape();
    let (hy, tape) = critic.1.forward_mut(y.put_tape(tape)).split_tape();
    gx.put_tape(tape).matmul(hy.permute::<_, Axes2<1, 0>>())
}

/// A critic trained on batches of `n` pairs and its estimate of the information.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub batch: usize,
    pub truth: f64,
    /// `ln N − L`, averaged over 20 fresh batches after training.
    pub estimate: f64,
    /// The estimate's standard error over those batches.
    pub standard_error: f64,
}

/// Notebook `07_self_supervised` §2: trains a fresh critic (from `seed`) for `steps` Adam steps on batches of `n` pairs that
/// share `information` nats, then measures `ln N − L` on 20 fresh batches.
pub fn estimate(information: f64, n: usize, steps: usize, seed: u64) -> Result<Estimate, Error> {
    if n < 2 {
        return Err(Error::InvalidArgument {
            what: "InfoNCE's batch",
            expected: "at least 2 pairs",
            got: n.to_string(),
        });
    }
    let pairs = CorrelatedGaussians::with_information(information)?;
    let dev = device(seed);
    let mut critic = dev.build_module::<(Side, Side), f32>();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = move || -> Pairs {
        let (x, y) = pairs.sample(n, &mut rng);
        (
            dev.tensor_from_vec(x, (n, Const)),
            dev.tensor_from_vec(y, (n, Const)),
        )
    };
    let diagonal: Vec<usize> = (0..n).collect();
    let objective = |critic: &mut CriticNet, batch: Pairs, grads| -> Result<Measured, Error> {
        Ok(Measured::loss(info_nce(
            scores(critic, batch, grads),
            &diagonal,
        )?))
    };
    let mut adam = Method::Adam.at(2e-3).build(&critic);
    let config = TrainConfig::new(1)
        .schedule(Schedule::Cosine {
            lr: 2e-3,
            warmup: 0.05,
            floor: 0.05,
        })
        .quiet();
    fit(
        &mut critic,
        adam.as_mut(),
        Drawn::new(steps, &mut draw),
        objective,
        &config,
    )?;
    let ln_n = (n as f64).ln();
    let estimates: Vec<f64> = (0..20)
        .map(|_| -> Result<f64, Error> {
            let (x, y) = draw();
            let s = critic
                .0
                .forward(x)
                .matmul(critic.1.forward(y).permute::<_, Axes2<1, 0>>());
            Ok(ln_n - f64::from(info_nce(s, &diagonal)?.array()))
        })
        .collect::<Result<_, _>>()?;
    let mean = estimates.iter().sum::<f64>() / 20.0;
    let variance = estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / 19.0;
    Ok(Estimate {
        batch: n,
        truth: pairs.information(),
        estimate: mean,
        standard_error: (variance / 20.0).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pairs_share_the_information_asked_for() {
        let pairs = CorrelatedGaussians::with_information(2.5).unwrap();
        assert!((pairs.information() - 2.5).abs() < 1e-9);
        let (x, y) = pairs.sample(20_000, &mut StdRng::seed_from_u64(0));
        let correlation =
            x.iter().zip(&y).map(|(a, b)| f64::from(a * b)).sum::<f64>() / x.len() as f64;
        assert!(
            (correlation - pairs.rho).abs() < 0.01,
            "{correlation} against ρ = {}",
            pairs.rho
        );
    }
}
