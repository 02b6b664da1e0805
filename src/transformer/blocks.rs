//! Taught in notebook `05_attention` §5; `06_embeddings` §6 builds BERT from it.
//!
//! The transformer block. Attention, then a position-wise
//! feed-forward network, each wrapped in a residual connection and a layer norm
//! (Vaswani et al., 2017, §3.1; He et al., 2016, for residuals; Ba, Kiros & Hinton, 2016,
//! for layer norm). Which of these a block uses is a run-time [`Layout`], so the ablation
//! compares one trained type with its pieces switched off.

use super::heads::{multi_head, self_attention};
use super::{Heads, Mask, Seqs};
use crate::nn::{linear, LayerNorm1D};
use crate::Error;
use dfdx::nn::builders as builder;
use dfdx::nn::modules::{Linear, MultiHeadAttention, TransformerEncoderBlock};
use dfdx::prelude::*;
use num_traits::Float;
use rand_distr::uniform::SampleUniform;

/// Where a block normalises (Xiong et al., 2020, compare the two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// No layer norm at all.
    None,
    /// `x + f(norm(x))`: the residual path stays an identity, as in GPT-2.
    Pre,
    /// `norm(x + f(x))`: the original transformer's, and dfdx's, order.
    Post,
}

/// Which pieces a block uses: the ablation of §5 switches them off one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub residual: bool,
    pub norm: Norm,
    pub feed_forward: bool,
}

impl Layout {
    /// Everything on, pre-norm: the layout the trained models of §3, §4, §6 and §7 use.
    pub const FULL: Layout = Layout {
        residual: true,
        norm: Norm::Pre,
        feed_forward: true,
    };
}

/// One encoder block: self-attention with `H` heads over `M`-dimensional tokens, then a
/// feed-forward network `M → F → M` with ReLU applied to every position alike.
#[derive(Clone, Debug)]
pub struct Block<const M: usize, const H: usize, const F: usize, E: Dtype, D: Storage<E>> {
    pub attn: MultiHeadAttention<M, H, M, M, E, D>,
    pub norm1: LayerNorm1D<M, E, D>,
    pub ff1: Linear<M, F, E, D>,
    pub ff2: Linear<F, M, E, D>,
    pub norm2: LayerNorm1D<M, E, D>,
}

/// A decoder block: causal self-attention, cross-attention to the encoder's output, then
/// the feed-forward network (§6).
#[derive(Clone, Debug)]
pub struct DecoderBlock<const M: usize, const H: usize, const F: usize, E: Dtype, D: Storage<E>> {
    pub block: Block<M, H, F, E, D>,
    pub cross: MultiHeadAttention<M, H, M, M, E, D>,
    pub norm_cross: LayerNorm1D<M, E, D>,
}

/// `L` blocks applied in turn: the depth is part of the type, so dfdx's optimisers can
/// walk the weights.
#[derive(Clone, Debug)]
pub struct Stack<
    const L: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    E: Dtype,
    D: Storage<E>,
> {
    pub blocks: Vec<Block<M, H, F, E, D>>,
}

/// A residual sub-layer `f` around `x` as the layout says: `x + f(norm(x))` (pre-norm),
/// `norm(x + f(x))` (post-norm), without the `x +` when residuals are off.
fn sublayer<const M: usize, T: Tape<f32, Cpu> + Merge<T>>(
    x: Seqs<M, T>,
    norm: &LayerNorm1D<M, f32, Cpu>,
    layout: Layout,
    f: impl FnOnce(Seqs<M, T>) -> Result<Seqs<M, T>, Error>,
) -> Result<Seqs<M, T>, Error> {
    let (x, tape) = x.split_tape();
    let input = x.clone().put_tape(tape);
    let y = match layout.norm {
        Norm::Pre => f(norm.try_forward(input)?)?,
        _ => f(input)?,
    };
    let y = if layout.residual { y.try_add(x)? } else { y };
    Ok(match layout.norm {
        Norm::Post => norm.try_forward(y)?,
        _ => y,
    })
}

impl<const M: usize, const H: usize, const F: usize> Block<M, H, F, f32, Cpu> {
    /// A freshly initialised block (dfdx's default initialisations).
    pub fn new(dev: &Cpu) -> Self {
        Block {
            attn: dev.build_module::<builder::MultiHeadAttention<M, H>, f32>(),
            norm1: dev.build_module::<crate::nn::builders::LayerNorm1D<M>, f32>(),
            ff1: dev.build_module::<builder::Linear<M, F>, f32>(),
            ff2: dev.build_module::<builder::Linear<F, M>, f32>(),
            norm2: dev.build_module::<crate::nn::builders::LayerNorm1D<M>, f32>(),
        }
    }

    /// The block on `x` (batch, seq, M); returns the attention weights too.
    pub fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Seqs<M, T>,
        mask: Option<&Mask>,
        layout: Layout,
    ) -> Result<(Seqs<M, T>, Heads), Error> {
        let mut weights = None;
        let x = sublayer(x, &self.norm1, layout, |x| {
            let (y, w) = self_attention(&self.attn, x, mask)?;
            weights = Some(w);
            Ok(y)
        })?;
        let x = self.feed_forward(x, layout)?;
        let weights = weights.ok_or(Error::InvalidArgument {
            what: "the attention sub-layer",
            expected: "run once",
            got: "not run".into(),
        })?;
        Ok((x, weights))
    }

    fn feed_forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Seqs<M, T>,
        layout: Layout,
    ) -> Result<Seqs<M, T>, Error> {
        if !layout.feed_forward {
            return Ok(x);
        }
        sublayer(x, &self.norm2, layout, |x| {
            let hidden = linear(&self.ff1, x)?.try_relu()?;
            linear(&self.ff2, hidden)
        })
    }

    /// The same weights as dfdx's `TransformerEncoderBlock` (post-norm, residuals,
    /// feed-forward): its `forward` and ours with [`Norm::Post`] must agree (§5).
    pub fn from_dfdx(b: &TransformerEncoderBlock<M, H, F, f32, Cpu>) -> Self {
        Block {
            attn: b.self_attn.clone(),
            norm1: LayerNorm1D::from_dfdx(&b.norm1),
            ff1: b.ff.0 .0.clone(),
            ff2: b.ff.0 .2.clone(),
            norm2: LayerNorm1D::from_dfdx(&b.norm2),
        }
    }
}

impl<const M: usize, const H: usize, const F: usize> DecoderBlock<M, H, F, f32, Cpu> {
    pub fn new(dev: &Cpu) -> Self {
        DecoderBlock {
            block: Block::new(dev),
            cross: dev.build_module::<builder::MultiHeadAttention<M, H>, f32>(),
            norm_cross: dev.build_module::<crate::nn::builders::LayerNorm1D<M>, f32>(),
        }
    }

    /// The block on the target prefix `x` (batch, t, M) given the encoder's `memory`
    /// (batch, s, M, without tape: its tape travels on `x`). Returns the cross-attention
    /// weights (batch, H, t, s).
    pub fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Seqs<M, T>,
        memory: &Seqs<M>,
        causal: &Mask,
        layout: Layout,
    ) -> Result<(Seqs<M, T>, Heads), Error> {
        let b = &self.block;
        let x = sublayer(x, &b.norm1, layout, |x| {
            Ok(self_attention(&b.attn, x, Some(causal))?.0)
        })?;
        let mut weights = None;
        let x = sublayer(x, &self.norm_cross, layout, |x| {
            let (y, w) = multi_head(&self.cross, x, memory.clone(), None)?;
            weights = Some(w);
            Ok(y)
        })?;
        let x = b.feed_forward(x, layout)?;
        let weights = weights.ok_or(Error::InvalidArgument {
            what: "the cross-attention sub-layer",
            expected: "run once",
            got: "not run".into(),
        })?;
        Ok((x, weights))
    }
}

impl<const L: usize, const M: usize, const H: usize, const F: usize> Stack<L, M, H, F, f32, Cpu> {
    pub fn new(dev: &Cpu) -> Self {
        Stack {
            blocks: (0..L).map(|_| Block::new(dev)).collect(),
        }
    }

    /// The blocks in turn; returns the attention weights of every block.
    pub fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        mut x: Seqs<M, T>,
        mask: Option<&Mask>,
        layout: Layout,
    ) -> Result<(Seqs<M, T>, Vec<Heads>), Error> {
        let mut maps = Vec::with_capacity(L);
        for block in &self.blocks {
            let (y, w) = block.forward(x, mask, layout)?;
            x = y;
            maps.push(w);
        }
        Ok((x, maps))
    }
}

impl<const M: usize, const H: usize, const F: usize, E, D: Device<E>> TensorCollection<E, D>
    for Block<M, H, F, E, D>
where
    E: Dtype + Float + SampleUniform,
{
    type To<E2: Dtype, D2: Device<E2>> = Block<M, H, F, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("attn", |s| &s.attn, |s| &mut s.attn),
                Self::module("norm1", |s| &s.norm1, |s| &mut s.norm1),
                Self::module("ff1", |s| &s.ff1, |s| &mut s.ff1),
                Self::module("ff2", |s| &s.ff2, |s| &mut s.ff2),
                Self::module("norm2", |s| &s.norm2, |s| &mut s.norm2),
            ),
            |(attn, norm1, ff1, ff2, norm2)| Block {
                attn,
                norm1,
                ff1,
                ff2,
                norm2,
            },
        )
    }
}

impl<const M: usize, const H: usize, const F: usize, E, D: Device<E>> TensorCollection<E, D>
    for DecoderBlock<M, H, F, E, D>
where
    E: Dtype + Float + SampleUniform,
{
    type To<E2: Dtype, D2: Device<E2>> = DecoderBlock<M, H, F, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("block", |s| &s.block, |s| &mut s.block),
                Self::module("cross", |s| &s.cross, |s| &mut s.cross),
                Self::module("norm_cross", |s| &s.norm_cross, |s| &mut s.norm_cross),
            ),
            |(block, cross, norm_cross)| DecoderBlock {
                block,
                cross,
                norm_cross,
            },
        )
    }
}

impl<const L: usize, const M: usize, const H: usize, const F: usize, E, D: Device<E>>
    TensorCollection<E, D> for Stack<L, M, H, F, E, D>
where
    E: Dtype + Float + SampleUniform,
{
    type To<E2: Dtype, D2: Device<E2>> = Stack<L, M, H, F, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let names: Vec<String> = (0..L).map(|i| format!("block{i}")).collect();
        let fields: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Self::module(name, move |s| &s.blocks[i], move |s| &mut s.blocks[i]))
            .collect();
        visitor.visit_fields(fields, |blocks| Stack { blocks })
    }
}

/// The largest absolute difference between dfdx's `TransformerEncoderBlock` and our
/// [`Block`] with its weights in the post-norm [`Layout`] (§5).
pub fn difference_from_dfdx_block(seed: u64) -> Result<f32, Error> {
    let dev = Cpu::seed_from_u64(seed);
    let theirs = dev.build_module::<builder::TransformerEncoderBlock<32, 4, 64>, f32>();
    let ours = Block::from_dfdx(&theirs);
    let x: Seqs<32> = dev.sample_normal_like(&(3, 7, Const::<32>));
    let post = Layout {
        norm: Norm::Post,
        ..Layout::FULL
    };
    let a = ours.forward(x.clone(), None, post)?.0.as_vec();
    let b = theirs.try_forward(x)?.as_vec();
    Ok(super::heads::max_abs_difference(&a, &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_norm_block_equals_dfdx_encoder_block() {
        assert!(difference_from_dfdx_block(0).unwrap() < 1e-5);
    }

    #[test]
    fn a_stack_exposes_every_block_to_the_optimizer() {
        let dev = Cpu::default();
        let stack = Stack::<3, 8, 2, 16, f32, Cpu>::new(&dev);
        let one = Block::<8, 2, 16, f32, Cpu>::new(&dev);
        assert_eq!(stack.num_trainable_params(), 3 * one.num_trainable_params());
    }
}
