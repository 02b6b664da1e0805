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

use crate::nn::tape::record;
use crate::nn::values;
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

/// The mean cross-entropy of `logits` (batch, seq, V) over the positions that have a
/// target; `targets` holds one entry per position, `None` where nothing is predicted.
///
/// One recorded op: per position `log Σ exp(x) − x[target]`, computed around the row's
/// maximum so that `exp` cannot overflow; its gradient is `(softmax(x) − one_hot(target))`
/// over the number of targets, and zero where there is none. (dfdx's log-softmax, one-hot
/// product and sum took eight passes over the logits, 7% of the LM's step.)
pub fn masked_cross_entropy<const V: usize, T: Tape<f32, Cpu>>(
    logits: Logits<V, T>,
    targets: &[Option<usize>],
) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
    let (b, s, _) = *logits.shape();
    if targets.len() != b * s || targets.iter().flatten().any(|&t| t >= V) {
        return Err(Error::ShapeMismatch {
            what: "the targets",
            expected: format!("{} entries, each below {V}", b * s),
            got: format!("{} entries", targets.len()),
        });
    }
    let counted = targets.iter().flatten().count().max(1) as f32;
    let (logits, tape) = logits.try_contiguous()?.split_tape();
    let mut softmax = values(&logits);
    let mut total = 0.0f64;
    for (row, target) in softmax.chunks_exact_mut(V).zip(targets) {
        let Some(target) = *target else { continue };
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let picked = row[target];
        row.iter_mut().for_each(|x| *x = (*x - max).exp());
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|p| *p /= sum);
        total += (max + sum.ln() - picked) as f64;
    }
    let targets = targets.to_vec();
    let loss = vec![(total / counted as f64) as f32];
    Ok(record(&logits, [], tape, loss, (), move |g, gx, []| {
        let scale = g[0] / counted;
        let rows = gx.chunks_exact_mut(V).zip(softmax.chunks_exact(V));
        for ((gx, p), target) in rows.zip(&targets) {
            let Some(target) = *target else { continue };
            gx.iter_mut().zip(p).for_each(|(gx, p)| *gx += scale * p);
            gx[target] -= scale;
        }
    })?)
}

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
/// row-major, ready for [`crate::plot::heatmap`].
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

    #[test]
    fn masked_positions_do_not_count_in_the_loss() {
        let dev = Cpu::default();
        let logits: Tensor<(usize, usize, Const<3>), f32, Cpu> =
            dev.tensor_from_vec(vec![0.0, 0.0, 0.0, 5.0, 0.0, 0.0], (1, 2, Const::<3>));
        let both = masked_cross_entropy(logits.clone(), &[Some(0), Some(0)]).unwrap();
        let first = masked_cross_entropy(logits, &[Some(0), None]).unwrap();
        assert!((first.array() - 3f32.ln()).abs() < 1e-5);
        assert!(both.array() < first.array());
    }

    /// The fused op against the same loss from dfdx's ops: log-softmax, times the one-hot
    /// targets, summed, over the number of targets; value and gradient.
    #[test]
    fn the_loss_and_its_gradient_match_dfdx_log_softmax() {
        let dev = Cpu::seed_from_u64(0);
        let logits: Logits<5> = dev.sample_normal_like(&(2, 3, Const));
        let logits = logits * 4.0;
        let targets = [Some(4), None, Some(0), Some(2), Some(2), None];
        let ours = masked_cross_entropy(logits.leaky_trace(), &targets).unwrap();
        let mut one_hot = vec![0.0; 30];
        for (i, t) in targets.iter().enumerate() {
            if let Some(t) = t {
                one_hot[i * 5 + t] = -0.25;
            }
        }
        let one_hot: Logits<5> = dev.tensor_from_vec(one_hot, (2, 3, Const));
        let theirs = (logits.leaky_trace().log_softmax::<Axis<2>>() * one_hot).sum();
        let (a, b): (f32, f32) = (ours.array(), theirs.array());
        assert!((a - b).abs() < 1e-5, "{a} against {b}");
        let (ours, theirs) = (ours.backward(), theirs.backward());
        let (ours, theirs) = (ours.get(&logits).as_vec(), theirs.get(&logits).as_vec());
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-6, "{ours:?} against {theirs:?}");
        }
    }
}
