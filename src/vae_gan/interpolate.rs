//! §3: paths between two points: straight lines in latent space, arcs on the sphere where
//! a Gaussian prior's samples live, and cross-fades in pixel space for comparison.

/// Notebook `08_vae_gan` §3: the point a fraction `t` of the way along the straight line
/// from `a` to `b`, `(1 − t)·a + t·b`. In pixel space this is a cross-fade: two digits
/// superimposed, each at partial ink.
pub fn lerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (1.0 - t) * x + t * y)
        .collect()
}

/// Notebook `08_vae_gan` §3: spherical linear interpolation (Shoemake, 1985; White, 2016,
/// *Sampling generative networks*): the point a fraction `t` of the way along the arc from
/// `a` to `b` through the angle `Ω` between them,
/// `sin((1 − t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b`.
///
/// Samples of `N(0, I_d)` concentrate near the sphere of radius `√d`, and the straight
/// line's midpoint of two of them has norm near `√(d/2)`: a point the prior almost never
/// draws. The arc keeps the norm of its ends. For (nearly) parallel ends, where
/// `sin Ω` vanishes, the arc is the straight line.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let cosine = (dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)).clamp(-1.0, 1.0);
    let omega = cosine.acos();
    if omega.sin() < 1e-6 {
        return lerp(a, b, t);
    }
    let (wa, wb) = (
        ((1.0 - t) * omega).sin() / omega.sin(),
        (t * omega).sin() / omega.sin(),
    );
    a.iter().zip(b).map(|(&x, &y)| wa * x + wb * y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_start_and_end_at_their_ends() {
        let (a, b) = ([1.0, 2.0, -1.0], [0.5, -1.0, 3.0]);
        for path in [lerp, slerp] {
            for (t, end) in [(0.0, a), (1.0, b)] {
                let p = path(&a, &b, t);
                assert!(
                    p.iter().zip(end).all(|(x, y)| (x - y).abs() < 1e-5),
                    "{p:?}"
                );
            }
        }
    }

    #[test]
    fn the_arc_between_orthogonal_unit_vectors_keeps_unit_norm() {
        let (a, b) = ([1.0, 0.0], [0.0, 1.0]);
        let mid = slerp(&a, &b, 0.5);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (mid[0] - h).abs() < 1e-6 && (mid[1] - h).abs() < 1e-6,
            "{mid:?}"
        );
        assert_eq!(lerp(&a, &b, 0.5), [0.5, 0.5]);
        assert_eq!(slerp(&a, &a, 0.3), lerp(&a, &a, 0.3));
    }
}
