//! Scaled dot-product attention (Vaswani et al., 2017, eq. 1), `softmax(Q Kᵀ·scale + mask) V`,
//! as one op with a hand-derived backward pass, and [`attend_reference`], the same from
//! dfdx's ops. Notebook `05_attention` §1–§2 teaches it (`transformer::scaled`).

use super::matmul::{matmul, Mat};
use super::op::{chunks_per_task, output_buffer, param, record, shape_error, values};
use crate::Error;
use dfdx::prelude::*;
use rayon::prelude::*;

/// (batch, heads, sequence, head dimension), or attention weights (batch, heads, queries,
/// keys).
type Heads<T = NoneTape> = Tensor<(usize, usize, usize, usize), f32, Cpu, T>;
/// An additive mask (batch, queries, keys).
type Mask = Tensor<(usize, usize, usize), f32, Cpu>;

/// Scaled dot-product attention over heads: `q` is (batch, heads, queries, d), `k`
/// (batch, heads, keys, d), `v` (batch, heads, keys, d_v). Returns the outputs
/// (batch, heads, queries, d_v) and the attention weights (batch, heads, queries, keys),
/// each row summing to 1. `mask` (batch, queries, keys) is added to the scores before the
/// softmax (a large negative entry, `transformer::scaled::MASKED`, hides a key); `scale`
/// multiplies the scores (1/√d in the paper). One op: the scores, the softmax and the
/// weighted sum per head, and their gradients, where dfdx's ops take a pass each.
/// [`attend_reference`] is the readable version; notebook `05_attention` §1–§2.
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
        return Err(shape_error(
            "queries, keys and values",
            format!(
                "(batch, heads, ·, d) with as many values as keys: q {:?}",
                q.shape()
            ),
            format!("k {:?}, v {:?}", k.shape(), v.shape()),
        ));
    }
    let mask = match mask {
        Some(mask) if *mask.shape() != (b, s1, s2) => {
            return Err(shape_error(
                "the attention mask",
                format!("(batch, queries, keys) = {:?}", (b, s1, s2)),
                format!("{:?}", mask.shape()),
            ))
        }
        mask => mask.map(values),
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
    // A copy in a buffer from the cache: a tensor made from a fresh vector would go into
    // the cache when dropped, and nothing takes buffers of its size back out, so every
    // step would leave one there (see `op::output_buffer`).
    let mut seen = output_buffer(q.device(), weights.len())?;
    seen.copy_from_slice(&weights);
    let seen = q.device().try_tensor_from_vec(seen, (b, h, s1, s2))?;
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

/// The readable version of [`attend`], from dfdx's ops: the scores `q·kᵀ`, scaled, the
/// mask added to every head, a softmax over the keys, and the weighted sum of the values.
/// The same arguments and results (shapes are not checked: dfdx panics on a mismatch).
/// Notebook `05_attention` §1.
pub fn attend_reference<T: Tape<f32, Cpu> + Merge<T>>(
    q: Heads<T>,
    k: Heads<T>,
    v: Heads<T>,
    mask: Option<&Mask>,
    scale: f32,
) -> (Heads<T>, Heads) {
    let (b, h, s1, _) = *q.shape();
    let s2 = k.shape().2;
    let mut scores = q.matmul(k.permute::<_, Axes4<0, 1, 3, 2>>()) * scale;
    if let Some(mask) = mask {
        scores = scores + mask.clone().broadcast_like::<_, Axis<1>>(&(b, h, s1, s2));
    }
    let weights = scores.softmax::<Axis<3>>();
    let seen = weights.retaped::<NoneTape>();
    (weights.matmul(v), seen)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32;

    #[test]
    fn the_shortcut_exp_is_the_library_exp_to_the_bit() {
        for i in 0..=40_000 {
            let x = -120.0 + i as f32 * 1e-3;
            assert_eq!(exp_or_zero(x).to_bits(), x.exp().to_bits(), "at {x}");
        }
        assert_eq!(exp_or_zero(-1e9), 0.0);
    }

    /// The fused op against its reference: outputs, weights, and the gradients of
    /// queries, keys and values, with the keys past each sequence's length masked.
    #[test]
    fn matches_the_reference_in_values_and_gradients() {
        let dev = Cpu::seed_from_u64(0);
        let (b, h, s1, s2, d, dv) = (2, 3, 4, 5, 6, 7);
        let q: Heads = dev.sample_normal_like(&(b, h, s1, d));
        let k: Heads = dev.sample_normal_like(&(b, h, s2, d));
        let v: Heads = dev.sample_normal_like(&(b, h, s2, dv));
        let r: Heads = dev.sample_normal_like(&(b, h, s1, dv));
        let lengths = [3, 5];
        let mask = (0..b * s1 * s2)
            .map(|i| {
                if i % s2 >= lengths[i / (s1 * s2)] {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        let mask = dev.tensor_from_vec(mask, (b, s1, s2));
        let (out, weights) = attend(
            q.leaky_trace(),
            k.leaky_trace(),
            v.leaky_trace(),
            Some(&mask),
            0.4,
        )
        .unwrap();
        let (expected, expected_weights) = attend_reference(
            q.leaky_trace(),
            k.leaky_trace(),
            v.leaky_trace(),
            Some(&mask),
            0.4,
        );
        assert_close_f32("outputs", &out.as_vec(), &expected.as_vec(), 1e-5);
        assert_close_f32(
            "weights",
            &weights.as_vec(),
            &expected_weights.as_vec(),
            1e-5,
        );
        let g = (out * r.clone()).sum().backward();
        let e = (expected * r).sum().backward();
        for (what, x) in [("∂/∂q", &q), ("∂/∂k", &k), ("∂/∂v", &v)] {
            assert_close_f32(what, &g.get(x).as_vec(), &e.get(x).as_vec(), 1e-5);
        }
        assert!(
            g.get(&k).as_vec().iter().any(|&x| x != 0.0),
            "keys get a gradient"
        );
    }
}
