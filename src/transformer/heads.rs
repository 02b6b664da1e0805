//! Taught in notebook `05_attention` §3; `06_embeddings` §6 builds BERT from it.
//!
//! Multi-head attention written step by step (split, attend,
//! concatenate, project) on the weights of dfdx's [`MultiHeadAttention`], so the two can be
//! compared, plus the masks dfdx's layer does not take.

use super::scaled::attend;
use super::{Heads, Mask, Seqs};
use crate::nn::{linear, swap_middle_axes};
use crate::Error;
use dfdx::nn::builders as builder;
use dfdx::nn::modules::MultiHeadAttention;
use dfdx::prelude::*;

/// dfdx's multi-head attention with `H` heads over `M`-dimensional tokens, built on the
/// CPU: four `M × M` projections `w_q`, `w_k`, `w_v`, `w_o` (Vaswani et al., 2017, §3.2.2).
pub type Mha<const M: usize, const H: usize> = MultiHeadAttention<M, H, M, M, f32, Cpu>;

/// Multi-head attention of the queries `q` (batch, queries, M) over the keys and values
/// `kv` (batch, keys, M): project, split the `M` dimensions into `H` heads of `M / H`,
/// attend in each head separately with the 1/√(M/H) scale, concatenate the heads, project.
/// Returns the output (batch, queries, M) and the weights (batch, H, queries, keys).
///
/// `kv` carries no tape: for self-attention pass a tape-less clone of `q` (its gradient
/// still flows, dfdx matches gradients by tensor id), for cross-attention the encoder's
/// output with its tape moved onto `q`.
pub fn multi_head<const M: usize, const H: usize, T: Tape<f32, Cpu> + Merge<T>>(
    mha: &Mha<M, H>,
    q: Seqs<M, T>,
    kv: Seqs<M>,
    mask: Option<&Mask>,
) -> Result<(Seqs<M, T>, Heads), Error> {
    let (b, s1, _) = *q.shape();
    let (b2, s2, _) = *kv.shape();
    if b2 != b {
        return Err(Error::ShapeMismatch {
            what: "the keys' batch",
            expected: format!("the queries' batch {b}"),
            got: b2.to_string(),
        });
    }
    let d = M / H;
    // Project, then split: (b, s, M) → (b, s, H, d) → (b, H, s, d).
    let split = |x: Seqs<M, T>, s: usize| -> Result<Heads<T>, Error> {
        swap_middle_axes(x.try_reshape_like(&(b, s, H, d))?)
    };
    let qh = split(linear(&mha.w_q, q)?, s1)?;
    let kh = split(linear(&mha.w_k, kv.retaped::<T>())?, s2)?;
    let vh = split(linear(&mha.w_v, kv.retaped::<T>())?, s2)?;
    let (out, weights) = attend(qh, kh, vh, mask, 1.0 / (d as f32).sqrt())?;
    // Concatenate: (b, H, s1, d) → (b, s1, H, d) → (b, s1, M); then project.
    let out = swap_middle_axes(out)?.try_reshape_like(&(b, s1, Const::<M>))?;
    Ok((linear(&mha.w_o, out)?, weights))
}

/// Self-attention: [`multi_head`] with queries, keys and values all from `x`.
pub fn self_attention<const M: usize, const H: usize, T: Tape<f32, Cpu> + Merge<T>>(
    mha: &Mha<M, H>,
    x: Seqs<M, T>,
    mask: Option<&Mask>,
) -> Result<(Seqs<M, T>, Heads), Error> {
    let kv = x.retaped::<NoneTape>();
    multi_head(mha, x, kv, mask)
}

/// The model dimension of the attention examples of §2 and §3.
pub const EXAMPLE_DIM: usize = 32;

/// A freshly initialised dfdx attention layer of 4 heads over 32 dimensions (§2).
pub fn example_layer(seed: u64) -> Mha<EXAMPLE_DIM, 4> {
    Cpu::seed_from_u64(seed).build_module::<builder::MultiHeadAttention<EXAMPLE_DIM, 4>, f32>()
}

/// `batch` sequences of `len` random tokens (unit normal entries), (batch, len, 32).
pub fn random_tokens(batch: usize, len: usize, seed: u64) -> Seqs<EXAMPLE_DIM> {
    Cpu::seed_from_u64(seed).sample_normal_like(&(batch, len, Const::<EXAMPLE_DIM>))
}

/// The largest absolute difference between [`self_attention`] and dfdx's own
/// `MultiHeadAttention::forward` on the same random weights and inputs (§3): zero up to
/// rounding if the step-by-step version is the same computation.
pub fn difference_from_dfdx(batch: usize, seq: usize, seed: u64) -> Result<f32, Error> {
    let mha = example_layer(seed);
    let x = random_tokens(batch, seq, seed + 1);
    let ours = self_attention(&mha, x.clone(), None)?.0.as_vec();
    let theirs = mha.try_forward(x)?.as_vec();
    Ok(max_abs_difference(&ours, &theirs))
}

/// The largest absolute difference between two equally long lists.
pub fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_by_step_equals_dfdx() {
        assert!(difference_from_dfdx(3, 7, 0).unwrap() < 1e-5);
    }
}
