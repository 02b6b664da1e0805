//! Notebook `05_attention`: attention and transformers, built up piece by piece after
//! "Attention is all you need" (Vaswani et al., 2017).
//!
//! One module per idea: [`scaled`] (§1–§2, scaled dot-product attention and masks),
//! [`heads`] (§3, multi-head attention, checked against dfdx's), [`positions`] (§4,
//! sinusoidal and learned positional encodings), [`blocks`] (§5, feed-forward, residuals,
//! layer norm), [`tasks`] (the toy sequences), [`tagger`] (an encoder that labels every
//! position, trained in §3–§5), [`seq2seq`] (§6, encoder-decoder on string reversal) and
//! [`lm`] (§7, a character-level language model on Jane Austen).
//!
//! Shapes: the model dimension `M` and the number of heads `H` are compile-time constants;
//! the batch and the sequence length are run-time sizes, so one model reads sequences of
//! any length (§4 tests lengths it never saw).

pub mod blocks;
pub mod heads;
pub mod lm;
pub mod positions;
pub mod scaled;
pub mod seq2seq;
pub mod tagger;
pub mod tasks;

use crate::Error;
use dfdx::prelude::*;

/// A batch of sequences of `M`-dimensional tokens: (batch, sequence, M).
pub type Seqs<const M: usize, T = NoneTape> = Tensor<(usize, usize, Const<M>), f32, Cpu, T>;
/// Per-head tensors: (batch, heads, sequence, head dimension), or attention weights
/// (batch, heads, queries, keys).
pub type Heads<T = NoneTape> = Tensor<(usize, usize, usize, usize), f32, Cpu, T>;
/// An additive attention mask (batch, queries, keys): 0 where a query may look,
/// [`scaled::MASKED`] where it may not.
pub type Mask = Tensor<(usize, usize, usize), f32, Cpu>;
/// Token ids (batch, sequence).
pub type Ids<T = NoneTape> = Tensor<(usize, usize), usize, Cpu, T>;
/// Scores over a vocabulary of `V` tokens at every position: (batch, sequence, V).
pub type Logits<const V: usize, T = NoneTape> = Tensor<(usize, usize, Const<V>), f32, Cpu, T>;

/// The mean cross-entropy over the positions that have a target (`None` where nothing is
/// predicted), and its readable version from dfdx's log-softmax: `nn`'s ops, which the
/// tagger, the encoder-decoder and the language model train with (§3–§7).
pub use crate::nn::{masked_cross_entropy, masked_cross_entropy_reference};

/// Token ids as a tensor (batch, seq).
pub fn ids(tokens: &[usize], batch: usize, len: usize) -> Result<Ids, Error> {
    if tokens.len() != batch * len {
        return Err(Error::ShapeMismatch {
            what: "the token ids",
            expected: format!("batch × length = {}", batch * len),
            got: tokens.len().to_string(),
        });
    }
    Ok(Cpu::default().tensor_from_vec(tokens.to_vec(), (batch, len)))
}

/// The attention map of example `example`, head `head`: a (queries × keys) matrix,
/// row-major, ready for [`crate::plot::heatmap()`].
pub fn attention_map(weights: &Heads, example: usize, head: usize) -> Result<Vec<f64>, Error> {
    let (b, h, s1, s2) = *weights.shape();
    if example >= b || head >= h {
        return Err(Error::InvalidArgument {
            what: "the example and head of an attention map",
            expected: "below the batch size and the number of heads",
            got: format!("example {example} of {b}, head {head} of {h}"),
        });
    }
    let all = weights.as_vec();
    let start = (example * h + head) * s1 * s2;
    Ok(all[start..start + s1 * s2]
        .iter()
        .map(|&w| w as f64)
        .collect())
}

/// The attention map of example `example` averaged over its heads (queries × keys).
pub fn head_average(weights: &Heads, example: usize) -> Result<Vec<f64>, Error> {
    let heads = weights.shape().1;
    let mut mean = attention_map(weights, example, 0)?;
    for head in 1..heads {
        for (m, w) in mean.iter_mut().zip(attention_map(weights, example, head)?) {
            *m += w;
        }
    }
    Ok(mean.iter().map(|m| m / heads as f64).collect())
}

/// The mean weight that each query `i` of a square `n × n` map puts on key `key(i)`: how
/// sharply a head follows a pattern (1: only there, 1/n: evenly spread).
pub fn mean_weight_on(map: &[f64], n: usize, key: impl Fn(usize) -> usize) -> f64 {
    (0..n).map(|i| map[i * n + key(i) % n]).sum::<f64>() / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_on_a_pattern_reads_the_map() {
        let identity = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(mean_weight_on(&identity, 2, |i| i), 1.0);
        assert_eq!(mean_weight_on(&identity, 2, |i| 1 - i), 0.0);
    }
}
