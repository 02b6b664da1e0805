//! Taught in notebook `05_attention` §1–§2; `06_embeddings` §6 builds BERT from it.
//!
//! Scaled dot-product attention, written out, with the
//! masks that hide future or padding positions.
//!
//! Attention (Vaswani et al., 2017, eq. 1) is `softmax(Q Kᵀ / √d) V`: every query scores
//! every key by a dot product, the scores become weights by a softmax over the keys, and
//! the output is the weighted mean of the values. Queries and keys may come from the same
//! sequence (self-attention) or from two (cross-attention, §2): the function is the same.

use super::{Heads, Mask};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Scaled dot-product attention, `softmax(q·kᵀ·scale + mask)·v`, and its readable
/// version from dfdx's ops: `nn`'s ops, which every attention layer of the course runs.
pub use crate::nn::{attend, attend_reference};

/// What a masked score becomes: large enough that its weight is 0 after the softmax, finite
/// so that a row with every key masked stays a number instead of NaN.
pub const MASKED: f32 = -1e9;

/// The causal mask (batch, n, n): query `i` sees keys `0..=i` only, so a language model
/// cannot read the token it must predict.
pub fn causal_mask(batch: usize, n: usize) -> Mask {
    let one: Vec<f32> = (0..n * n)
        .map(|k| if k % n > k / n { MASKED } else { 0.0 })
        .collect();
    let all = one.iter().copied().cycle().take(batch * n * n).collect();
    Cpu::default().tensor_from_vec(all, (batch, n, n))
}

/// The padding mask (batch, queries, keys): sequence `b` has `lengths[b]` real keys and
/// the rest is padding, which no query may attend to.
pub fn padding_mask(lengths: &[usize], queries: usize, keys: usize) -> Result<Mask, Error> {
    if let Some(&bad) = lengths.iter().find(|&&l| l == 0 || l > keys) {
        return Err(Error::InvalidArgument {
            what: "a sequence length in a padding mask",
            expected: "between 1 and the number of keys",
            got: format!("{bad} with {keys} keys"),
        });
    }
    let values = lengths
        .iter()
        .flat_map(|&l| (0..queries * keys).map(move |k| if k % keys >= l { MASKED } else { 0.0 }))
        .collect();
    Ok(Cpu::default().tensor_from_vec(values, (lengths.len(), queries, keys)))
}

/// Random queries, keys and values with unit-variance entries, (1, 1, n, d) each: what a
/// freshly initialised layer sees, for looking at one attention map.
pub fn random_qkv(n: usize, d: usize, seed: u64) -> (Heads, Heads, Heads) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dev = Cpu::default();
    let mut draw = || {
        let values: Vec<f32> = (0..n * d).map(|_| rng.sample(StandardNormal)).collect();
        dev.tensor_from_vec(values, (1, 1, n, d))
    };
    (draw(), draw(), draw())
}

/// What the 1/√d scale protects against, at one key dimension `d` (§1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Saturation {
    pub d: usize,
    /// The mean largest attention weight of a query: 1/keys is uniform, 1 is one-hot.
    pub max_weight: f32,
    /// The mean size (L2 norm) of the gradient reaching a query's scores, per query.
    pub score_gradient: f32,
}

/// Attention over `keys` random keys, averaged over `queries` random queries, at key
/// dimension `d`, with or without the 1/√d scale (§1). Unit-variance queries and keys
/// give dot products of variance `d`: unscaled, the softmax saturates as `d` grows, its
/// largest weight tends to 1 and the gradient through it to 0.
pub fn saturation(
    d: usize,
    keys: usize,
    queries: usize,
    scaled: bool,
    seed: u64,
) -> Result<Saturation, Error> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dev = Cpu::default();
    let mut normals =
        |count: usize| -> Vec<f32> { (0..count).map(|_| rng.sample(StandardNormal)).collect() };
    let q: Heads = dev.tensor_from_vec(normals(queries * d), (1, 1, queries, d));
    let k: Heads = dev.tensor_from_vec(normals(keys * d), (1, 1, keys, d));
    let scale = if scaled { 1.0 / (d as f32).sqrt() } else { 1.0 };
    let kt = k.permute::<_, Axes4<0, 1, 3, 2>>();
    let scores = q.matmul(kt) * scale;
    let shape = *scores.shape();
    // The gradient of a random linear read-out of the weights with respect to the scores:
    // how much a change of score can move what attention returns.
    let readout = dev.tensor_from_vec(normals(queries * keys), shape);
    let weights = scores.leaky_trace().softmax::<Axis<3>>();
    let max_weight = weights
        .retaped::<NoneTape>()
        .max::<_, Axis<3>>()
        .mean::<Rank0, _>()
        .array();
    let grads = (weights * readout).sum().backward();
    let g = grads.get(&scores).as_vec();
    let score_gradient = g
        .chunks(keys)
        .map(|row| row.iter().map(|x| x * x).sum::<f32>().sqrt())
        .sum::<f32>()
        / queries as f32;
    Ok(Saturation {
        d,
        max_weight,
        score_gradient,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_a_softmax_over_the_keys_and_masks_hide_keys() {
        let (q, k, v) = random_qkv(5, 4, 0);
        let (out, w) = attend(q, k, v, Some(&causal_mask(1, 5)), 0.5).unwrap();
        assert_eq!(*out.shape(), (1, 1, 5, 4));
        let w = w.as_vec();
        for (i, row) in w.chunks(5).enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(
                row[i + 1..].iter().all(|&x| x == 0.0),
                "row {i} sees the future"
            );
        }
    }

    #[test]
    fn padding_hides_the_keys_past_each_length() {
        let m = padding_mask(&[2, 3], 1, 3).unwrap().as_vec();
        assert_eq!(m, vec![0.0, 0.0, MASKED, 0.0, 0.0, 0.0]);
        assert!(padding_mask(&[4], 1, 3).is_err());
    }

    #[test]
    fn without_the_scale_large_dimensions_saturate() {
        let scaled = saturation(256, 16, 64, true, 1).unwrap();
        let raw = saturation(256, 16, 64, false, 1).unwrap();
        assert!(
            raw.max_weight > 0.9 && scaled.max_weight < 0.6,
            "{raw:?} {scaled:?}"
        );
        assert!(
            raw.score_gradient < scaled.score_gradient,
            "{raw:?} {scaled:?}"
        );
    }
}
