//! Notebook `02_optimization` §6: the batch size, as the noise of the mini-batch gradient
//! ([`gradient_noise`]) and as a knob that needs the learning rate scaled with it
//! ([`linear_scaling`]; Goyal et al., 2017).

use super::{digits_mlp, gradient, Run, Trained};
use crate::data::ImageSet;
use crate::optim::Method;
use crate::train::Loss;
use crate::Error;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// How noisy the mini-batch gradient is at each batch size, for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientNoise {
    pub batch_sizes: Vec<usize>,
    /// `E‖g_B − g‖²` at each batch size: the mean over draws of the squared distance between
    /// the gradient of a random batch and the gradient of the whole training set.
    pub variance: Vec<f64>,
    /// `tr Σ = mean over examples of ‖g_i − g‖²`: the one-example variance, computed exactly.
    /// Batches drawn with replacement have `E‖g_B − g‖² = tr Σ / B`.
    pub per_example: f64,
}

impl GradientNoise {
    /// The slope of log(variance) against log(batch size), by least squares: −1 for 1/B.
    pub fn slope(&self) -> f64 {
        let xs: Vec<f64> = self.batch_sizes.iter().map(|&b| (b as f64).ln()).collect();
        let ys: Vec<f64> = self.variance.iter().map(|v| v.ln()).collect();
        let n = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        cov / var
    }

    /// The prediction `tr Σ / B` at each batch size.
    pub fn predicted(&self) -> Vec<f64> {
        self.batch_sizes
            .iter()
            .map(|&b| self.per_example / b as f64)
            .collect()
    }
}

/// [`GradientNoise`] of the cross-entropy gradient of [`digits_mlp`]`(seed)` on `images`,
/// with `draws` batches (drawn with replacement, from `seed`) at each batch size.
pub fn gradient_noise(
    images: &ImageSet,
    batch_sizes: &[usize],
    draws: usize,
    seed: u64,
) -> Result<GradientNoise, Error> {
    if images.is_empty() || draws == 0 || batch_sizes.is_empty() || batch_sizes.contains(&0) {
        return Err(Error::InvalidArgument {
            what: "the gradient-noise experiment",
            expected: "images, at least one draw, and batch sizes of at least 1",
            got: format!(
                "{} images, {draws} draws, batch sizes {batch_sizes:?}",
                images.len()
            ),
        });
    }
    let model = digits_mlp(seed);
    let everything: Vec<usize> = (0..images.len()).collect();
    let full = gradient(&model, images, &everything, Loss::CrossEntropy)?;
    let distance = |g: &[f32]| -> f64 {
        g.iter()
            .zip(&full)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum()
    };
    let mut per_example = 0.0;
    for i in 0..images.len() {
        per_example +=
            distance(&gradient(&model, images, &[i], Loss::CrossEntropy)?) / images.len() as f64;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut variance = Vec::with_capacity(batch_sizes.len());
    for &b in batch_sizes {
        let mut sum = 0.0;
        for _ in 0..draws {
            let rows: Vec<usize> = (0..b).map(|_| rng.gen_range(0..images.len())).collect();
            sum += distance(&gradient(&model, images, &rows, Loss::CrossEntropy)?);
        }
        variance.push(sum / draws as f64);
    }
    Ok(GradientNoise {
        batch_sizes: batch_sizes.to_vec(),
        variance,
        per_example,
    })
}

/// The runs of a batch-size sweep at a fixed number of epochs: at each batch size, once at
/// `base_lr` and once at `base_lr · B / base_batch` (the linear scaling rule).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSweep {
    pub batch_sizes: Vec<usize>,
    pub fixed_lr: Vec<Trained>,
    pub scaled_lr: Vec<Trained>,
}

/// `method` on the digits for `epochs` epochs at each of `batch_sizes`, with the learning
/// rate fixed at `base_lr` and scaled linearly from `base_lr` at `base_batch` (Goyal et
/// al., 2017), testing on `test` (notebook §6).
#[allow(clippy::too_many_arguments)]
pub fn linear_scaling(
    method: Method,
    base_lr: f64,
    base_batch: usize,
    batch_sizes: &[usize],
    epochs: usize,
    train: &ImageSet,
    test: &ImageSet,
    seed: u64,
) -> Result<BatchSweep, Error> {
    if base_batch == 0 {
        return Err(Error::InvalidArgument {
            what: "the base batch size",
            expected: "at least 1",
            got: "0".to_owned(),
        });
    }
    let mut sweep = BatchSweep {
        batch_sizes: batch_sizes.to_vec(),
        fixed_lr: Vec::new(),
        scaled_lr: Vec::new(),
    };
    for &b in batch_sizes {
        let run = Run::new(method, base_lr).epochs(epochs).batch_size(b);
        sweep.fixed_lr.push(run.train(train, test, seed)?);
        let scaled = run.at(base_lr * b as f64 / base_batch as f64);
        sweep.scaled_lr.push(scaled.train(train, test, seed)?);
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;

    #[test]
    fn the_noise_falls_as_one_over_the_batch_size() {
        let images = digits().unwrap().subset(&(0..300).collect::<Vec<_>>());
        let noise = gradient_noise(&images, &[1, 4, 16, 64], 60, 0).unwrap();
        let slope = noise.slope();
        assert!((slope + 1.0).abs() < 0.15, "{slope} {noise:?}");
        for (measured, predicted) in noise.variance.iter().zip(noise.predicted()) {
            assert!(
                (measured / predicted - 1.0).abs() < 0.3,
                "{measured} vs {predicted}"
            );
        }
    }

    #[test]
    fn the_slope_of_an_exact_power_law_is_its_exponent() {
        let noise = GradientNoise {
            batch_sizes: vec![1, 2, 4, 8],
            variance: vec![8.0, 4.0, 2.0, 1.0],
            per_example: 8.0,
        };
        assert!((noise.slope() + 1.0).abs() < 1e-12);
        assert_eq!(noise.predicted(), noise.variance);
    }

    #[test]
    fn bad_noise_experiments_are_errors() {
        let images = digits().unwrap().subset(&[0, 1, 2]);
        assert!(gradient_noise(&images, &[0, 2], 5, 0).is_err());
        assert!(gradient_noise(&images, &[2], 0, 0).is_err());
        assert!(gradient_noise(&images.subset(&[]), &[2], 5, 0).is_err());
    }

    #[test]
    fn a_batch_sweep_scales_the_learning_rate_with_the_batch() {
        let (train, test) = digits().unwrap().split(0.2, 0).unwrap();
        let sweep = linear_scaling(Method::Sgd, 0.05, 16, &[16, 64], 1, &train, &test, 0).unwrap();
        let lrs: Vec<f64> = sweep.scaled_lr.iter().map(|t| t.lr).collect();
        assert_eq!(lrs, [0.05, 0.2]);
        assert_eq!(sweep.fixed_lr[0], sweep.scaled_lr[0]);
        assert_eq!(
            sweep.fixed_lr[1].history.steps.len(),
            1438usize.div_ceil(64)
        );
        assert!(linear_scaling(Method::Sgd, 0.05, 0, &[16], 1, &train, &test, 0).is_err());
    }
}
