//! Toy datasets generated from a seed, for lessons that need a picture more than realism.

use crate::Error;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::f64::consts::PI;

/// Points in the plane, each with a class label.
#[derive(Clone, Debug, PartialEq)]
pub struct Points2d {
    pub xy: Vec<[f64; 2]>,
    pub labels: Vec<usize>,
}

impl Points2d {
    pub fn len(&self) -> usize {
        self.xy.len()
    }

    pub fn is_empty(&self) -> bool {
        self.xy.is_empty()
    }
}

/// Two interleaving half circles, the classic non-linearly separable toy problem
/// (scikit-learn's `make_moons`): `n` points, half per moon (label 0 the upper moon, 1 the
/// lower), each jittered by Gaussian noise of standard deviation `noise`.
pub fn two_moons(n: usize, noise: f64, seed: u64) -> Result<Points2d, Error> {
    let bad_noise = || Error::InvalidArgument {
        what: "the noise of two_moons",
        expected: "a finite standard deviation ≥ 0, such as 0.1",
        got: noise.to_string(),
    };
    if !(noise >= 0.0 && noise.is_finite()) {
        return Err(bad_noise());
    }
    let jitter = Normal::new(0.0, noise).map_err(|_| bad_noise())?;
    let mut rng = StdRng::seed_from_u64(seed);
    let upper = n - n / 2;
    let along = |i: usize, count: usize| PI * i as f64 / (count.max(2) - 1) as f64;
    let mut xy = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let (x, y, label) = if i < upper {
            let t = along(i, upper);
            (t.cos(), t.sin(), 0)
        } else {
            let t = along(i - upper, n - upper);
            (1.0 - t.cos(), 0.5 - t.sin(), 1)
        };
        xy.push([x + jitter.sample(&mut rng), y + jitter.sample(&mut rng)]);
        labels.push(label);
    }
    Ok(Points2d { xy, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moons_are_balanced_and_seeded() {
        let moons = two_moons(101, 0.1, 7).unwrap();
        assert_eq!(moons.len(), 101);
        assert_eq!(moons.labels.iter().filter(|&&l| l == 1).count(), 50);
        assert_eq!(moons, two_moons(101, 0.1, 7).unwrap());
        assert_ne!(moons, two_moons(101, 0.1, 8).unwrap());
    }

    #[test]
    fn negative_noise_is_an_error_naming_the_value() {
        let err = two_moons(10, -0.1, 0).unwrap_err();
        assert!(err.to_string().contains("but got -0.1"), "{err}");
    }

    #[test]
    fn without_noise_points_lie_on_their_half_circles() {
        let moons = two_moons(40, 0.0, 0).unwrap();
        for (&[x, y], &label) in moons.xy.iter().zip(&moons.labels) {
            let (cx, cy) = if label == 0 { (0.0, 0.0) } else { (1.0, 0.5) };
            let r = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
            assert!((r - 1.0).abs() < 1e-12);
        }
    }
}
