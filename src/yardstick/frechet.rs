//! The Fréchet distance between two sets of features, each summarised by a Gaussian
//! (Heusel et al., 2017, who computed it in Inception-v3's features and named it FID; here
//! the features are the yardstick classifier's, so the numbers are not comparable with
//! published FIDs).

use crate::Error;
use linfa_linalg::eigh::{EigValsh, Eigh};
use ndarray::{Array1, Array2, Axis};

/// A Gaussian fitted to a set of feature vectors: their mean and (unbiased, `n − 1`)
/// covariance. Notebook `08_vae_gan` §5 fits one to real and one to generated images'
/// features before comparing them with [`frechet_distance`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    /// The mean feature vector, `(d,)`.
    pub mean: Array1<f64>,
    /// The covariance, `(d, d)`, symmetric and positive semi-definite.
    pub covariance: Array2<f64>,
}

impl Gaussian {
    /// The mean and covariance of `features`' rows (`(n, d)`, `n ≥ 2`, finite).
    pub fn fit(features: &Array2<f64>) -> Result<Gaussian, Error> {
        check_features("the features a Gaussian is fitted to", features, 2)?;
        let n = features.nrows() as f64;
        let mean = features.mean_axis(Axis(0)).expect("at least two rows");
        let centred = features - &mean;
        let covariance = centred.t().dot(&centred) / (n - 1.0);
        Ok(Gaussian { mean, covariance })
    }

    /// The number of features, `d`.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// The Fréchet (2-Wasserstein) distance between two Gaussians, squared:
/// `‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½)` (Dowson & Landau, 1982; Heusel et al., 2017's
/// FID when the Gaussians are fitted to Inception-v3 features; the yardstick fits them to
/// its own classifier's). Notebook `08_vae_gan` §5.
///
/// `Σa Σb` is not symmetric, but it is similar to `Σa^½ Σb Σa^½`, which is symmetric
/// and positive semi-definite: the trace of the square root is the sum of the square
/// roots of that matrix's eigenvalues, found with linfa-linalg's symmetric
/// eigendecomposition. Rounding can leave tiny negative eigenvalues; they count as 0.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64, Error> {
    if a.dim() != b.dim() {
        return Err(Error::ShapeMismatch {
            what: "the second Gaussian's dimension",
            expected: format!("the first's, {}", a.dim()),
            got: b.dim().to_string(),
        });
    }
    let mean_gap = (&a.mean - &b.mean).mapv(|d| d * d).sum();
    let root_a = square_root(&a.covariance)?;
    let inner = root_a.dot(&b.covariance).dot(&root_a);
    // The product is symmetric in exact arithmetic; averaging it with its transpose
    // removes the rounding that would otherwise break the symmetric solver's assumption.
    let inner = (&inner + &inner.t()) / 2.0;
    let eigenvalues = inner.eigvalsh().map_err(not_converged)?;
    let trace_root: f64 = eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();
    let distance =
        mean_gap + a.covariance.diag().sum() + b.covariance.diag().sum() - 2.0 * trace_root;
    // Equal Gaussians give 0 up to rounding, which can come out a hair below it.
    Ok(distance.max(0.0))
}

/// The Fréchet distance between the Gaussians fitted to `real` and `generated` features
/// (`(n, d)` each, `n ≥ 2`): [`Gaussian::fit`] then [`frechet_distance`].
/// Notebook `08_vae_gan` §5.
pub fn frechet(real: &Array2<f64>, generated: &Array2<f64>) -> Result<f64, Error> {
    frechet_distance(&Gaussian::fit(real)?, &Gaussian::fit(generated)?)
}

/// The symmetric square root `V diag(√λ) Vᵀ` of a symmetric positive semi-definite matrix.
fn square_root(matrix: &Array2<f64>) -> Result<Array2<f64>, Error> {
    let (eigenvalues, vectors) = matrix.eigh().map_err(not_converged)?;
    let roots = eigenvalues.mapv(|l| l.max(0.0).sqrt());
    Ok((&vectors * &roots).dot(&vectors.t()))
}

fn not_converged(e: linfa_linalg::LinalgError) -> Error {
    Error::InvalidArgument {
        what: "the eigendecomposition of a covariance matrix",
        expected: "to converge",
        got: e.to_string(),
    }
}

/// Checks that `features` has at least `min_rows` rows, at least one column, and only
/// finite values: NaN would otherwise flow silently into every distance.
pub(super) fn check_features(
    what: &'static str,
    features: &Array2<f64>,
    min_rows: usize,
) -> Result<(), Error> {
    if features.nrows() < min_rows || features.ncols() == 0 {
        return Err(Error::ShapeMismatch {
            what,
            expected: format!("at least {min_rows} rows of at least one feature"),
            got: format!("{} × {}", features.nrows(), features.ncols()),
        });
    }
    if let Some(bad) = features.iter().find(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument {
            what,
            expected: "finite numbers only",
            got: bad.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array};
    use rand::{rngs::StdRng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    /// `n` correlated 6-dimensional points: normal noise through a fixed mixing matrix,
    /// so the covariance is not diagonal.
    fn correlated(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let noise = Array::from_shape_fn((n, 6), |_| normal.sample(&mut rng));
        let mixing = Array::from_shape_fn((6, 6), |(i, j)| 1.0 / (1.0 + (i + 2 * j) as f64));
        noise.dot(&mixing)
    }

    #[test]
    fn a_set_is_at_distance_zero_from_itself() {
        let x = correlated(500, 0);
        let d = frechet(&x, &x).unwrap();
        assert!(d.abs() < 1e-6, "{d}");
    }

    #[test]
    fn shifting_a_set_by_c_moves_it_by_the_squared_length_of_c() {
        let x = correlated(500, 1);
        let c = array![0.5, -1.0, 2.0, 0.0, 0.25, -0.75];
        let shifted = &x + &c;
        let d = frechet(&x, &shifted).unwrap();
        let expected = c.mapv(|v| v * v).sum();
        assert!((d - expected).abs() < 1e-6, "{d} against {expected}");
    }

    #[test]
    fn diagonal_covariances_give_the_sum_of_squared_standard_deviation_gaps() {
        // With commuting (here diagonal) covariances, (Σa Σb)^½ = diag(σa σb), so the
        // trace term is Σ σa² + σb² − 2 σa σb = Σ (σa − σb)².
        let (sa, sb) = ([1.0, 2.0, 0.5], [3.0, 1.0, 0.5]);
        let gaussian = |mean: Array1<f64>, sigma: [f64; 3]| Gaussian {
            mean,
            covariance: Array2::from_diag(&Array1::from_iter(sigma.map(|s| s * s))),
        };
        let a = gaussian(array![0.0, 1.0, 2.0], sa);
        let b = gaussian(array![1.0, 1.0, 0.0], sb);
        let expected = 1.0 + 4.0 + (2.0 * 2.0 + 1.0 * 1.0 + 0.0);
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - expected).abs() < 1e-9, "{d} against {expected}");
    }

    #[test]
    fn non_commuting_covariances_match_the_two_by_two_closed_form() {
        // For a 2×2 matrix with eigenvalues λ₁, λ₂ ≥ 0, tr(M^½) = √λ₁ + √λ₂ =
        // √(tr M + 2 √det M); with M = Σa Σb, det M = det Σa · det Σb.
        let a = Gaussian {
            mean: array![0.0, 0.0],
            covariance: array![[2.0, 0.8], [0.8, 1.0]],
        };
        let b = Gaussian {
            mean: array![0.0, 0.0],
            covariance: array![[1.0, -0.3], [-0.3, 0.5]],
        };
        let det = |m: &Array2<f64>| m[[0, 0]] * m[[1, 1]] - m[[0, 1]] * m[[1, 0]];
        let product = a.covariance.dot(&b.covariance);
        let trace_root =
            (product.diag().sum() + 2.0 * (det(&a.covariance) * det(&b.covariance)).sqrt()).sqrt();
        let expected = a.covariance.diag().sum() + b.covariance.diag().sum() - 2.0 * trace_root;
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - expected).abs() < 1e-9, "{d} against {expected}");
    }

    #[test]
    fn mismatched_or_unusable_features_are_errors() {
        let x = correlated(10, 2);
        let narrower = x.slice(ndarray::s![.., ..3]).to_owned();
        let message = frechet(&x, &narrower).unwrap_err().to_string();
        assert!(message.contains("dimension"), "{message}");
        let one_row = x.slice(ndarray::s![..1, ..]).to_owned();
        assert!(Gaussian::fit(&one_row).is_err());
        let mut with_nan = x.clone();
        with_nan[[3, 2]] = f64::NAN;
        let message = Gaussian::fit(&with_nan).unwrap_err().to_string();
        assert!(message.contains("NaN"), "{message}");
    }
}
