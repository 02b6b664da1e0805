//! Notebook `05_attention`: attention and transformers, built up piece by piece after
//! "Attention is all you need" (Vaswani et al., 2017).
//!
//! The pieces themselves live in the shared [`crate::transformer`] module, since notebook
//! `06_embeddings` builds BERT from them too: [`scaled`] (§1–§2, scaled dot-product
//! attention and masks), [`heads`] (§3, multi-head attention, checked against dfdx's),
//! [`positions`] (§4, sinusoidal and learned positional encodings), [`blocks`] (§5,
//! feed-forward, residuals, layer norm). Here are the section's own: [`tasks`] (the toy
//! sequences), [`tagger`] (an encoder that labels every position, trained in §3–§5),
//! [`seq2seq`] (§6, encoder-decoder on string reversal), [`lm`] (§7, a character-level
//! language model on Jane Austen), and the attention-map readers below.
//!
//! [`scaled`]: crate::transformer::scaled
//! [`heads`]: crate::transformer::heads
//! [`positions`]: crate::transformer::positions
//! [`blocks`]: crate::transformer::blocks

pub mod lm;
pub mod seq2seq;
pub mod tagger;
pub mod tasks;

use crate::transformer::Heads;
use crate::Error;
use dfdx::prelude::*;

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
