//! §1 of notebook `03_generalization`: under- and overfitting. Polynomials of growing
//! degree fitted by least squares to a few noisy samples of a smooth curve: training error
//! falls with every degree, test error falls and then climbs.

use super::{mean_squared_error, min_norm_least_squares};
use crate::Error;
use ndarray::{Array1, Array2};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Noisy samples `y = sin(3x) + ε`, `ε ~ N(0, noise²)`, with `x` uniform on `[-1, 1]`: a
/// training set and a test set drawn the same way (§1).
#[derive(Clone, Debug, PartialEq)]
pub struct NoisyCurve {
    pub train_x: Vec<f64>,
    pub train_y: Vec<f64>,
    pub test_x: Vec<f64>,
    pub test_y: Vec<f64>,
}

/// The noiseless curve the samples of [`noisy_curve`] scatter around.
pub fn true_curve(x: f64) -> f64 {
    (3.0 * x).sin()
}

/// `n_train` and `n_test` noisy samples of [`true_curve`]; equal seeds give equal samples.
pub fn noisy_curve(
    n_train: usize,
    n_test: usize,
    noise: f64,
    seed: u64,
) -> Result<NoisyCurve, Error> {
    if n_train == 0 || n_test == 0 || !(noise.is_finite() && noise >= 0.0) {
        return Err(Error::InvalidArgument {
            what: "a noisy curve",
            expected: "at least one training and one test sample, and a finite noise ≥ 0",
            got: format!("{n_train} training, {n_test} test samples, noise {noise}"),
        });
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, noise).expect("noise checked finite and ≥ 0");
    let mut draw = |n: usize| -> (Vec<f64>, Vec<f64>) {
        (0..n)
            .map(|_| {
                let x = rng.gen_range(-1.0..=1.0);
                (x, true_curve(x) + normal.sample(&mut rng))
            })
            .unzip()
    };
    let (train_x, train_y) = draw(n_train);
    let (test_x, test_y) = draw(n_test);
    Ok(NoisyCurve {
        train_x,
        train_y,
        test_x,
        test_y,
    })
}

/// The Legendre polynomials `P₀(x) … P_degree(x)` of each `x`, one row per `x`: a
/// polynomial basis that stays well conditioned on `[-1, 1]`, unlike `1, x, x², …`.
/// Built by Bonnet's recursion `(k+1)·P_{k+1} = (2k+1)·x·P_k − k·P_{k−1}`.
pub fn legendre_features(x: &[f64], degree: usize) -> Array2<f64> {
    let mut features = Array2::zeros((x.len(), degree + 1));
    for (i, &xi) in x.iter().enumerate() {
        let (mut previous, mut current) = (0.0, 1.0);
        for k in 0..=degree {
            features[[i, k]] = current;
            let kf = k as f64;
            let next = ((2.0 * kf + 1.0) * xi * current - kf * previous) / (kf + 1.0);
            (previous, current) = (current, next);
        }
    }
    features
}

/// A polynomial of one degree fitted to a [`NoisyCurve`]'s training samples (§1).
#[derive(Clone, Debug, PartialEq)]
pub struct PolynomialFit {
    pub degree: usize,
    /// Coefficients of `P₀ … P_degree`.
    pub coefficients: Vec<f64>,
    pub train_error: f64,
    pub test_error: f64,
}

impl PolynomialFit {
    /// The fitted polynomial at each `x`.
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        let w = Array1::from(self.coefficients.clone());
        legendre_features(x, self.degree).dot(&w).to_vec()
    }
}

/// Least-squares polynomials of each degree in `degrees` fitted to `data`'s training
/// samples, each with its mean squared error on the training and the test samples (§1).
pub fn polynomial_sweep(data: &NoisyCurve, degrees: &[usize]) -> Result<Vec<PolynomialFit>, Error> {
    let column = |y: &[f64]| Array2::from_shape_vec((y.len(), 1), y.to_vec());
    let bad = |e: ndarray::ShapeError| Error::InvalidArgument {
        what: "a noisy curve",
        expected: "as many y as x",
        got: e.to_string(),
    };
    let train_y = column(&data.train_y).map_err(bad)?;
    let test_y = column(&data.test_y).map_err(bad)?;
    if data.train_x.len() != train_y.nrows() || data.test_x.len() != test_y.nrows() {
        return Err(Error::ShapeMismatch {
            what: "a noisy curve",
            expected: "as many y as x in each set".to_owned(),
            got: format!(
                "{} x and {} y for training, {} x and {} y for testing",
                data.train_x.len(),
                train_y.nrows(),
                data.test_x.len(),
                test_y.nrows()
            ),
        });
    }
    degrees
        .iter()
        .map(|&degree| {
            let train = legendre_features(&data.train_x, degree);
            let w = min_norm_least_squares(&train, &train_y)?;
            let test = legendre_features(&data.test_x, degree);
            Ok(PolynomialFit {
                degree,
                coefficients: w.column(0).to_vec(),
                train_error: mean_squared_error(&train.dot(&w), &train_y),
                test_error: mean_squared_error(&test.dot(&w), &test_y),
            })
        })
        .collect()
}

/// The index of the smallest test error in a sweep (the first, on ties).
pub fn best_degree(fits: &[PolynomialFit]) -> Option<usize> {
    (0..fits.len()).reduce(|a, b| {
        if fits[b].test_error < fits[a].test_error {
            b
        } else {
            a
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legendre_features_match_the_closed_forms() {
        let x = [-0.5, 0.3, 1.0];
        let f = legendre_features(&x, 3);
        for (i, &xi) in x.iter().enumerate() {
            let closed = [
                1.0,
                xi,
                (3.0 * xi * xi - 1.0) / 2.0,
                (5.0 * xi.powi(3) - 3.0 * xi) / 2.0,
            ];
            for k in 0..4 {
                assert!((f[[i, k]] - closed[k]).abs() < 1e-12, "P{k}({xi})");
            }
        }
    }

    #[test]
    fn a_polynomial_is_recovered_exactly_from_noiseless_samples() {
        let mut data = noisy_curve(12, 20, 0.0, 0).unwrap();
        let cubic = |x: f64| 2.0 - x + 0.5 * x.powi(3);
        data.train_y = data.train_x.iter().map(|&x| cubic(x)).collect();
        data.test_y = data.test_x.iter().map(|&x| cubic(x)).collect();
        let fits = polynomial_sweep(&data, &[1, 3, 5]).unwrap();
        assert!(fits[0].train_error > 1e-3);
        for fit in &fits[1..] {
            assert!(fit.train_error < 1e-20 && fit.test_error < 1e-20, "{fit:?}");
        }
        let at = fits[1].predict(&[0.2]);
        assert!((at[0] - cubic(0.2)).abs() < 1e-10);
    }

    #[test]
    fn the_sweep_underfits_then_overfits_for_many_seeds() {
        for seed in 0..10 {
            let data = noisy_curve(15, 200, 0.3, seed).unwrap();
            let degrees: Vec<usize> = (0..=12).collect();
            let fits = polynomial_sweep(&data, &degrees).unwrap();
            let best = best_degree(&fits).unwrap();
            assert!(
                best > 0 && best < degrees.len() - 1,
                "seed {seed}: best {best}"
            );
            assert!(
                fits.windows(2)
                    .all(|w| w[1].train_error <= w[0].train_error + 1e-12),
                "seed {seed}: training error must not rise"
            );
        }
    }

    #[test]
    fn bad_curves_are_errors() {
        assert!(noisy_curve(0, 5, 0.1, 0).is_err());
        assert!(noisy_curve(5, 5, f64::NAN, 0).is_err());
        let mut data = noisy_curve(5, 5, 0.1, 0).unwrap();
        data.train_y.pop();
        assert!(polynomial_sweep(&data, &[1]).is_err());
    }
}
