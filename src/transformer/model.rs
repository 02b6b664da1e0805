//! The whole-model layout of notebook `05_attention` §7's character language model (GPT's,
//! Radford et al., 2018) and of `06_embeddings` §6's BERT: token and learned position
//! embeddings, a stack of pre-norm blocks, a final layer norm and a linear head over the
//! vocabulary. The two differ only in the attention mask and where the head is applied.

use super::blocks::{Layout, Stack};
use super::positions::add_learned;
use super::{Ids, Mask, Seqs};
use crate::nn::LayerNorm1D;
use crate::Error;
use dfdx::nn::builders as builder;
use dfdx::nn::modules::{Embedding, Linear};
use dfdx::prelude::*;
use num_traits::Float;
use rand_distr::uniform::SampleUniform;

/// A transformer over a vocabulary of `V` tokens, reading at most `P` of them at once:
/// `L` pre-norm blocks of `H` heads over `M` dimensions with feed-forward width `F`.
#[derive(Clone, Debug)]
pub struct TokenModel<
    const V: usize,
    const P: usize,
    const L: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    E: Dtype,
    D: Storage<E>,
> {
    pub tokens: Embedding<V, M, E, D>,
    pub positions: Embedding<P, M, E, D>,
    pub stack: Stack<L, M, H, F, E, D>,
    pub norm: LayerNorm1D<M, E, D>,
    pub head: Linear<M, V, E, D>,
}

impl<
        const V: usize,
        const P: usize,
        const L: usize,
        const M: usize,
        const H: usize,
        const F: usize,
    > TokenModel<V, P, L, M, H, F, f32, Cpu>
{
    /// A freshly initialised model (dfdx's default initialisations).
    pub fn new(dev: &Cpu) -> Self {
        TokenModel {
            tokens: dev.build_module::<builder::Embedding<V, M>, f32>(),
            positions: dev.build_module::<builder::Embedding<P, M>, f32>(),
            stack: Stack::new(dev),
            norm: dev.build_module::<crate::nn::builders::LayerNorm1D<M>, f32>(),
            head: dev.build_module::<builder::Linear<M, V>, f32>(),
        }
    }

    /// The ids `x` (batch, n ≤ P) embedded, positions added, through every block with
    /// attention limited by `mask`: the vectors the final norm and head read.
    pub fn hidden<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
        mask: Option<&Mask>,
    ) -> Result<Seqs<M, T>, Error> {
        let h = add_learned(self.tokens.try_forward(x)?, &self.positions)?;
        Ok(self.stack.forward(h, mask, Layout::FULL)?.0)
    }
}

impl<
        const V: usize,
        const P: usize,
        const L: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        E,
        D: Device<E>,
    > TensorCollection<E, D> for TokenModel<V, P, L, M, H, F, E, D>
where
    E: Dtype + Float + SampleUniform,
{
    type To<E2: Dtype, D2: Device<E2>> = TokenModel<V, P, L, M, H, F, E2, D2>;

    fn iter_tensors<W: ModuleVisitor<Self, E, D>>(
        visitor: &mut W,
    ) -> Result<Option<Self::To<W::E2, W::D2>>, W::Err> {
        visitor.visit_fields(
            (
                Self::module("tokens", |s| &s.tokens, |s| &mut s.tokens),
                Self::module("positions", |s| &s.positions, |s| &mut s.positions),
                Self::module("stack", |s| &s.stack, |s| &mut s.stack),
                Self::module("norm", |s| &s.norm, |s| &mut s.norm),
                Self::module("head", |s| &s.head, |s| &mut s.head),
            ),
            |(tokens, positions, stack, norm, head)| TokenModel {
                tokens,
                positions,
                stack,
                norm,
                head,
            },
        )
    }
}
