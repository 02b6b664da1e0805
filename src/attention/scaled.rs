//! Notebook `05_attention` §1–§2: scaled dot-product attention, written out, with the
//! masks that hide future or padding positions.
//!
//! Attention (Vaswani et al., 2017, eq. 1) is `softmax(Q Kᵀ / √d) V`: every query scores
//! every key by a dot product, the scores become weights by a softmax over the keys, and
//! the output is the weighted mean of the values. Queries and keys may come from the same
//! sequence (self-attention) or from two (cross-attention, §2): the function is the same.

use super::{Heads, Mask};
use crate::nn::matmul::{matmul, Mat};
use crate::nn::tape::{output_buffer, param, record};
use crate::nn::{chunks_per_task, values};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// What a masked score becomes: large enough that its weight is 0 after the softmax, finite
/// so that a row with every key masked stays a number instead of NaN.
pub const MASKED: f32 = -1e9;

/// Scaled dot-product attention over heads: `q` is (batch, heads, queries, d), `k`
/// (batch, heads, keys, d), `v` (batch, heads, keys, d_v). Returns the outputs
/// (batch, heads, queries, d_v) and the attention weights (batch, heads, queries, keys),
/// each row summing to 1. `mask` (batch, queries, keys) is added to the scores before the
/// softmax ([`MASKED`] hides a key); `scale` multiplies the scores (1/√d in the paper).
pub fn attend<T: Tape<f32, Cpu> + Merge<T>>(
    q: Heads<T>,
    k: Heads<T>,
    v: Heads<T>,
    mask: Option<&Mask>,
    scale: f32,
) -> Result<(Heads<T>, Heads), Error> {
    let (b, h, s1, d) = *q.shape();
    let (_, _, s2, _) = *k.shape();
    if *k.shape() != (b, h, s2, d) || v.shape().0 != b || v.shape().1 != h || v.shape().2 != s2 {
        return Err(Error::ShapeMismatch {
            what: "queries, keys and values",
            expected: format!(
                "(batch, heads, ·, d) with as many values as keys: q {:?}",
                q.shape()
            ),
            got: format!("k {:?}, v {:?}", k.shape(), v.shape()),
        });
    }
    let mask = match mask {
        Some(mask) => {
            check_mask(mask, (b, s1, s2))?;
            Some(values(mask))
        }
        None => None,
    };
    let dv = v.shape().3;
    let (q, tape) = q.try_contiguous()?.split_tape();
    let (k, k_tape) = k.try_contiguous()?.split_tape();
    let (v, v_tape) = v.try_contiguous()?.split_tape();
    let (qs, ks, vs) = (values(&q), values(&k), values(&v));
    let per_task = chunks_per_task(s1 * s2);

    let mut weights = vec![0.0; b * h * s1 * s2];
    let mut out = output_buffer(q.device(), b * h * s1 * dv)?;
    weights
        .par_chunks_mut(s1 * s2)
        .zip(out.par_chunks_mut(s1 * dv))
        .enumerate()
        .with_min_len(per_task)
        .for_each(|(i, (p, out))| {
            // Scores Q·Kᵀ (s1 × s2): one per query and key; then each row's weights.
            matmul(p, head(&qs, s1, d, i), head(&ks, s2, d, i).t(), false, 1);
            for (row, scores) in p.chunks_exact_mut(s2).enumerate() {
                let mask = mask.as_ref().map(|m| &m[((i / h) * s1 + row) * s2..][..s2]);
                softmax(scores, scale, mask);
            }
            // Outputs P·V (s1 × dv): each query's weighted mean of the values.
            matmul(out, Mat::rows(p, s1, s2), head(&vs, s2, dv, i), false, 1);
        });
    let seen = q
        .device()
        .try_tensor_from_vec(weights.clone(), (b, h, s1, s2))?;
    let tape = tape.merge(k_tape).merge(v_tape);
    let out = record(
        &q,
        [param(&k), param(&v)],
        tape,
        out,
        (b, h, s1, dv),
        move |g, gq, [gk, gv]| {
            gq.par_chunks_mut(s1 * d)
                .zip(gk.par_chunks_mut(s2 * d).zip(gv.par_chunks_mut(s2 * dv)))
                .enumerate()
                .with_min_len(per_task)
                .for_each(|(i, (gq, (gk, gv)))| {
                    let (p, g) = (head(&weights, s1, s2, i), head(g, s1, dv, i));
                    // Through O = P·V: ∂L/∂V = Pᵀ·∂L/∂O and ∂L/∂P = ∂L/∂O·Vᵀ.
                    matmul(gv, p.t(), g, true, 1);
                    let mut gp = vec![0.0; s1 * s2];
                    matmul(&mut gp, g, head(&vs, s2, dv, i).t(), false, 1);
                    // Through the softmax, row by row: ∂L/∂s = scale·P ⊙ (∂L/∂P − Σ ∂L/∂P ⊙ P).
                    let p = &weights[i * s1 * s2..][..s1 * s2];
                    for (gp, p) in gp.chunks_exact_mut(s2).zip(p.chunks_exact(s2)) {
                        let dot: f32 = gp.iter().zip(p).map(|(g, p)| g * p).sum();
                        gp.iter_mut()
                            .zip(p)
                            .for_each(|(g, p)| *g = scale * p * (*g - dot));
                    }
                    // Through the scores Q·Kᵀ: ∂L/∂Q = ∂L/∂s·K and ∂L/∂K = ∂L/∂sᵀ·Q.
                    let gs = Mat::rows(&gp, s1, s2);
                    matmul(gq, gs, head(&ks, s2, d, i), true, 1);
                    matmul(gk, gs.t(), head(&qs, s1, d, i), true, 1);
                });
        },
    )?;
    Ok((out, seen))
}

/// Head `i`'s `n × width` matrix in a `(batch·heads, n, width)` buffer: attention works
/// one head at a time (batch·heads of them, in parallel).
fn head(x: &[f32], n: usize, width: usize, i: usize) -> Mat<'_> {
    Mat::rows(&x[i * n * width..][..n * width], n, width)
}

/// Turns one row of raw scores into weights, in place: scaled, masked (added), then
/// softmax, `exp(s − max) / Σ exp(s − max)` (the max subtracted so no `exp` overflows).
fn softmax(scores: &mut [f32], scale: f32, mask: Option<&[f32]>) {
    for (j, s) in scores.iter_mut().enumerate() {
        *s = *s * scale + mask.map_or(0.0, |m| m[j]);
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = exp_or_zero(*s - max);
        sum += *s;
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

/// `exp(x)`, which is 0 in `f32` below −104: returned at once there, since the library's
/// `exp` takes a slow path (its underflow handling) for every masked score, half of a
/// causal model's.
fn exp_or_zero(x: f32) -> f32 {
    if x < -104.0 {
        0.0
    } else {
        x.exp()
    }
}

fn check_mask(mask: &Mask, expected: (usize, usize, usize)) -> Result<(), Error> {
    if *mask.shape() != expected {
        return Err(Error::ShapeMismatch {
            what: "the attention mask",
            expected: format!("(batch, queries, keys) = {expected:?}"),
            got: format!("{:?}", mask.shape()),
        });
    }
    Ok(())
}

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
    fn the_shortcut_exp_is_the_library_exp_to_the_bit() {
        for i in 0..=40_000 {
            let x = -120.0 + i as f32 * 1e-3;
            assert_eq!(exp_or_zero(x).to_bits(), x.exp().to_bits(), "at {x}");
        }
        assert_eq!(exp_or_zero(MASKED), 0.0);
    }

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

    /// The fused op against attention written with dfdx's ops (matmul, scale, mask,
    /// softmax, matmul): outputs, weights, and the gradients of queries, keys and values.
    #[test]
    fn matches_attention_built_from_dfdx_ops() {
        let dev = Cpu::seed_from_u64(0);
        let (b, h, s1, s2, d, dv) = (2, 3, 4, 5, 6, 7);
        let q: Heads = dev.sample_normal_like(&(b, h, s1, d));
        let k: Heads = dev.sample_normal_like(&(b, h, s2, d));
        let v: Heads = dev.sample_normal_like(&(b, h, s2, dv));
        let r: Heads = dev.sample_normal_like(&(b, h, s1, dv));
        let mask = padding_mask(&[3, 5], s1, s2).unwrap();
        let (out, weights) = attend(
            q.leaky_trace(),
            k.leaky_trace(),
            v.leaky_trace(),
            Some(&mask),
            0.4,
        )
        .unwrap();
        let scores = q
            .leaky_trace()
            .matmul(k.leaky_trace().permute::<_, Axes4<0, 1, 3, 2>>())
            * 0.4
            + mask.broadcast_like::<_, Axis<1>>(&(b, h, s1, s2));
        let expected_weights = scores.softmax::<Axis<3>>();
        let expected = expected_weights.retaped::<NoneTape>().matmul(v.clone());
        let close = |a: Vec<f32>, e: Vec<f32>, what: &str| {
            assert_eq!(a.len(), e.len(), "{what}");
            for (a, e) in a.iter().zip(&e) {
                assert!(
                    (a - e).abs() < 1e-5 * (1.0 + e.abs()),
                    "{what}: {a} against {e}"
                );
            }
        };
        close(out.as_vec(), expected.as_vec(), "outputs");
        close(weights.as_vec(), expected_weights.as_vec(), "weights");
        let expected = expected_weights.matmul(v.leaky_trace());
        let g = (out * r.clone()).sum().backward();
        let e = (expected * r).sum().backward();
        close(g.get(&q).as_vec(), e.get(&q).as_vec(), "∂/∂q");
        close(g.get(&k).as_vec(), e.get(&k).as_vec(), "∂/∂k");
        close(g.get(&v).as_vec(), e.get(&v).as_vec(), "∂/∂v");
        assert!(
            g.get(&k).as_vec().iter().any(|&x| x != 0.0),
            "keys get a gradient"
        );
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
