//! What the crate's tests share: seeded inputs, central finite differences to hold a
//! gradient against, and comparisons that name the first index that differs.

use rand::{rngs::StdRng, Rng, SeedableRng};

/// `n` values uniform in [-1, 1), the same for the same seed.
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// ∂f/∂xᵢ for every i by central differences, (f(x + εeᵢ) − f(x − εeᵢ)) / 2ε. Exact, up
/// to rounding, for functions linear in x (a convolution in its image or its kernels), so
/// a large ε keeps rounding small.
pub fn finite_differences(x: &[f32], eps: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + eps;
            let up = f(&probe);
            probe[i] = x[i] - eps;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * eps as f64)
        })
        .collect()
}

/// Fails with the first index where `got` and `expected` differ by more than `tol`.
pub fn assert_close(what: &str, got: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g as f64 - e).abs() <= tol * (1.0 + e.abs()),
            "{what}[{i}]: got {g}, expected {e}"
        );
    }
}

/// Σ out · r: a loss whose gradient with respect to `out` is the fixed random `r`, so a
/// wrong entry anywhere in a backward pass shows.
pub fn weighted_sum(out: &[f32], r: &[f32]) -> f64 {
    out.iter().zip(r).map(|(&o, &r)| o as f64 * r as f64).sum()
}

/// [`assert_close`] against values computed in `f32` (another op's, dfdx's).
pub fn assert_close_f32(what: &str, got: &[f32], expected: &[f32], tol: f64) {
    let expected: Vec<f64> = expected.iter().map(|&e| e as f64).collect();
    assert_close(what, got, &expected, tol);
}
