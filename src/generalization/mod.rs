//! Notebook `03_generalization`: why a model that fits its training data can still fail on
//! new data, and why very large models often do not.
//!
//! One module per section: [`capacity`] (§1, under- and overfitting as polynomial degree
//! grows).
//!
//! Here, what the sections share: minimum-norm least squares ([`min_norm_least_squares`]),
//! solved with linfa's SVD (§1 and the double-descent section).

pub mod capacity;

use crate::Error;
use linfa_linalg::svd::SVD;
use ndarray::{Array1, Array2};

/// The minimum-norm solution `w` of `min ‖a·w − b‖²`: `w = V Σ⁺ Uᵀ b` from linfa-linalg's
/// SVD of `a` (rows: examples, columns: features; `b`: one column per target). Singular
/// values below `1e-10 ×` the largest count as zero, so an underdetermined system
/// (more features than examples) gets the interpolating `w` of least norm. Notebook
/// `03_generalization` §1 fits polynomials with it.
pub fn min_norm_least_squares(a: &Array2<f64>, b: &Array2<f64>) -> Result<Array2<f64>, Error> {
    if a.nrows() == 0 || a.ncols() == 0 || b.nrows() != a.nrows() {
        return Err(Error::ShapeMismatch {
            what: "a least-squares problem",
            expected: "a non-empty matrix and targets with one row per matrix row".to_owned(),
            got: format!("{:?} matrix, {:?} targets", a.dim(), b.dim()),
        });
    }
    if a.iter().chain(b.iter()).any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "a least-squares problem",
            expected: "finite numbers only",
            got: "NaN or infinity".to_owned(),
        });
    }
    let (u, sigma, vt) = a.svd(true, true).map_err(|e| Error::InvalidArgument {
        what: "the SVD of a least-squares matrix",
        expected: "to converge",
        got: e.to_string(),
    })?;
    let (u, vt) = (u.expect("asked for U"), vt.expect("asked for Vᵀ"));
    let cutoff = sigma.iter().fold(0.0_f64, |m, &s| m.max(s)) * 1e-10;
    let inverse: Array1<f64> = sigma.mapv(|s| if s > cutoff { 1.0 / s } else { 0.0 });
    // Uᵀb: (rank, targets), scaled row by row by Σ⁺, then back through V: (features, targets).
    let projected = u.t().dot(b) * &inverse.insert_axis(ndarray::Axis(1));
    Ok(vt.t().dot(&projected))
}

/// The mean squared error between two equally shaped arrays (every entry counts).
pub fn mean_squared_error(predicted: &Array2<f64>, target: &Array2<f64>) -> f64 {
    let diff = predicted - target;
    diff.iter().map(|d| d * d).sum::<f64>() / diff.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn least_squares_solves_a_square_system_and_fits_an_overdetermined_one() {
        let a = array![[2.0, 1.0], [1.0, 3.0]];
        let b = array![[5.0], [10.0]];
        let w = min_norm_least_squares(&a, &b).unwrap();
        assert!(
            (w[[0, 0]] - 1.0).abs() < 1e-9 && (w[[1, 0]] - 3.0).abs() < 1e-9,
            "{w}"
        );
        // A line through three points that are not collinear: the normal equations' answer.
        let a = array![[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]];
        let b = array![[0.0], [1.0], [3.0]];
        let w = min_norm_least_squares(&a, &b).unwrap();
        let normal = array![[-1.0 / 6.0], [1.5]];
        assert!(mean_squared_error(&w, &normal) < 1e-18, "{w}");
    }

    #[test]
    fn an_underdetermined_system_gets_the_interpolant_of_least_norm() {
        // One equation, two unknowns: x + y = 2 → the least-norm answer is (1, 1).
        let w = min_norm_least_squares(&array![[1.0, 1.0]], &array![[2.0]]).unwrap();
        assert!(mean_squared_error(&w, &array![[1.0], [1.0]]) < 1e-18, "{w}");
        // A repeated column: rank-deficient, still the least-norm split.
        let a = array![[1.0, 1.0], [2.0, 2.0]];
        let w = min_norm_least_squares(&a, &array![[2.0], [4.0]]).unwrap();
        assert!(mean_squared_error(&w, &array![[1.0], [1.0]]) < 1e-18, "{w}");
    }

    #[test]
    fn bad_least_squares_problems_are_errors() {
        let empty = Array2::<f64>::zeros((0, 2));
        assert!(min_norm_least_squares(&empty, &Array2::zeros((0, 1))).is_err());
        assert!(min_norm_least_squares(&array![[1.0]], &array![[1.0], [2.0]]).is_err());
        assert!(min_norm_least_squares(&array![[f64::NAN]], &array![[1.0]]).is_err());
    }
}
