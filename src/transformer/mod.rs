//! The transformer's pieces, shared by the notebooks that train transformers: taught in
//! notebook `05_attention` (§1–§5) and reused for BERT in `06_embeddings` §6. One module
//! per idea: [`scaled`] (scaled dot-product attention and masks), [`heads`] (multi-head
//! attention, checked against dfdx's), [`positions`] (sinusoidal and learned positional
//! encodings), [`blocks`] (feed-forward, residuals, layer norm, encoder and decoder blocks),
//! [`model`] (embeddings, blocks and a head: the language models' whole layout).
//!
//! Shapes: the model dimension `M` and the number of heads `H` are compile-time constants;
//! the batch and the sequence length are run-time sizes, so one model reads sequences of
//! any length (`05_attention` §4 tests lengths it never saw).

pub mod blocks;
pub mod heads;
pub mod model;
pub mod positions;
pub mod scaled;

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
/// models of `05_attention` §3–§7 and `06_embeddings` §6 train with.
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
