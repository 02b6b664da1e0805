//! Notebook `05_attention` §6: the encoder-decoder transformer (Vaswani et al., 2017,
//! §3.1) on a sequence-to-sequence toy task, reversing digit strings. The encoder reads
//! the whole source; the decoder writes the output one token at a time, attending to its
//! own earlier outputs (causal self-attention) and to the encoder's output
//! (cross-attention).

use super::tagger::Curve;
use super::tasks::{reversals, BOS, VOCAB};
use crate::nn::{linear, LayerNorm1D};
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{argmax, fit, Drawn, Measured, TrainConfig};
use crate::transformer::blocks::{DecoderBlock, Layout, Stack};
use crate::transformer::positions::add_sinusoidal;
use crate::transformer::scaled::causal_mask;
use crate::transformer::{ids, masked_cross_entropy, Heads, Ids, Logits, Seqs};
use crate::Error;
use dfdx::nn::builders as builder;
use dfdx::nn::modules::{Embedding, Linear};
use dfdx::prelude::*;
use num_traits::Float;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::uniform::SampleUniform;
use std::collections::HashSet;

/// Token dimension, heads and feed-forward width of the encoder-decoder.
pub const DIM: usize = 64;
pub const HEADS: usize = 4;
pub const FF: usize = 128;
/// The length of the digit strings reversed.
pub const LEN: usize = 8;
/// Training batches and their size.
pub const STEPS: usize = 600;
pub const BATCH: usize = 32;

/// The weights of [`Seq2Seq`]: one encoder block, one decoder block.
#[derive(Clone, Debug)]
pub struct Seq2SeqNet<E: Dtype, D: Storage<E>> {
    pub source: Embedding<VOCAB, DIM, E, D>,
    pub target: Embedding<VOCAB, DIM, E, D>,
    pub encoder: Stack<1, DIM, HEADS, FF, E, D>,
    pub encoder_norm: LayerNorm1D<DIM, E, D>,
    pub decoder: DecoderBlock<DIM, HEADS, FF, E, D>,
    pub decoder_norm: LayerNorm1D<DIM, E, D>,
    pub head: Linear<DIM, VOCAB, E, D>,
}

/// A one-block encoder-decoder transformer (pre-norm, sinusoidal positions) over the
/// digits: `DIM` = 64, `HEADS` = 4.
#[derive(Clone, Debug)]
pub struct Seq2Seq {
    pub net: Seq2SeqNet<f32, Cpu>,
}

/// A trained [`Seq2Seq`] with what §6 measures.
#[derive(Clone, Debug)]
pub struct Reversal {
    pub model: Seq2Seq,
    pub curve: Curve,
    /// The share of held-out strings reversed exactly, every digit right.
    pub exact_match: f32,
    /// The held-out strings (none of them seen in training).
    pub tested: usize,
}

impl Seq2Seq {
    pub fn new(seed: u64) -> Self {
        let dev = device(seed);
        Seq2Seq {
            net: Seq2SeqNet {
                source: dev.build_module::<builder::Embedding<VOCAB, DIM>, f32>(),
                target: dev.build_module::<builder::Embedding<VOCAB, DIM>, f32>(),
                encoder: Stack::new(&dev),
                encoder_norm: dev.build_module::<crate::nn::builders::LayerNorm1D<DIM>, f32>(),
                decoder: DecoderBlock::new(&dev),
                decoder_norm: dev.build_module::<crate::nn::builders::LayerNorm1D<DIM>, f32>(),
                head: dev.build_module::<builder::Linear<DIM, VOCAB>, f32>(),
            },
        }
    }

    /// Teacher forcing: the decoder reads `BOS` and the true target shifted right, and
    /// learns the next token at every position at once. The loss of one training step of
    /// [`train_reversal`], on the tape of `grads`; public so that the benchmarks can time
    /// that step.
    pub fn loss(
        &self,
        sources: &[usize],
        targets: &[usize],
        grads: Gradients<f32, Cpu>,
    ) -> Result<Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>, Error> {
        self.net.loss(sources, targets, grads)
    }

    /// Greedy decoding: from `BOS`, append the most likely next token `LEN` times.
    /// Returns the outputs (row-major) and the cross-attention of the last step
    /// (batch, HEADS, LEN, LEN): where each output position looked in the source.
    pub fn translate(&self, sources: &[usize]) -> Result<(Vec<usize>, Heads), Error> {
        let b = sources.len() / LEN;
        let memory = self.net.encode(ids(sources, b, LEN)?)?;
        let mut prefix = vec![vec![BOS]; b];
        let mut cross = None;
        for t in 1..=LEN {
            let flat: Vec<usize> = prefix.iter().flatten().copied().collect();
            let (logits, weights) = self.net.decode(&memory, ids(&flat, b, t)?)?;
            let logits = logits.as_vec();
            for (i, row) in prefix.iter_mut().enumerate() {
                let last = &logits[(i * t + t - 1) * VOCAB..(i * t + t) * VOCAB];
                row.push(argmax(last));
            }
            cross = Some(weights);
        }
        // The last step re-read the whole prefix: its weights cover every output position.
        let cross = cross.ok_or(Error::InvalidArgument {
            what: "the output length",
            expected: "at least 1",
            got: LEN.to_string(),
        })?;
        Ok((prefix.iter().flat_map(|r| r[1..].to_vec()).collect(), cross))
    }
}

impl Seq2SeqNet<f32, Cpu> {
    /// The encoder's output (batch, source length, DIM) for the source ids.
    fn encode<T: Tape<f32, Cpu> + Merge<T>>(&self, source: Ids<T>) -> Result<Seqs<DIM, T>, Error> {
        let net = self;
        let x = net.source.try_forward(source)?;
        let x = add_sinusoidal(x)?;
        let (x, _) = net.encoder.forward(x, None, Layout::FULL)?;
        Ok(net.encoder_norm.try_forward(x)?)
    }

    /// Logits (batch, t, VOCAB) for the next token after each of the decoder's inputs
    /// `prefix` (batch, t), given the encoder's `memory`; and the cross-attention weights
    /// (batch, HEADS, t, source length).
    fn decode<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        memory: &Seqs<DIM>,
        prefix: Ids<T>,
    ) -> Result<(Logits<VOCAB, T>, Heads), Error> {
        let net = self;
        let (b, t) = *prefix.shape();
        let y = net.target.try_forward(prefix)?;
        let y = add_sinusoidal(y)?;
        let (y, cross) = net
            .decoder
            .forward(y, memory, &causal_mask(b, t), Layout::FULL)?;
        let y = net.decoder_norm.try_forward(y)?;
        Ok((linear(&net.head, y)?, cross))
    }

    /// See [`Seq2Seq::loss`].
    fn loss(
        &self,
        sources: &[usize],
        targets: &[usize],
        grads: Gradients<f32, Cpu>,
    ) -> Result<Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>, Error> {
        let b = sources.len() / LEN;
        let memory = self.encode(ids(sources, b, LEN)?.traced(grads))?;
        let (memory, tape) = memory.split_tape();
        let prefix = ids(&shift_right(targets), b, LEN)?.put_tape(tape);
        let (logits, _) = self.decode(&memory, prefix)?;
        let labels: Vec<Option<usize>> = targets.iter().map(|&t| Some(t)).collect();
        masked_cross_entropy(logits, &labels)
    }
}

/// `BOS` followed by all but the last token of each row of `targets`.
fn shift_right(targets: &[usize]) -> Vec<usize> {
    targets
        .chunks(LEN)
        .flat_map(|t| std::iter::once(BOS).chain(t[..LEN - 1].iter().copied()))
        .collect()
}

/// §6: trains a [`Seq2Seq`] to reverse strings of `LEN` digits for `STEPS` steps, then
/// greedily reverses `held_out` fresh strings that never occurred in training.
pub fn train_reversal(seed: u64, held_out: usize) -> Result<Reversal, Error> {
    let mut model = Seq2Seq::new(seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let schedule = Schedule::Cosine {
        lr: 3e-3,
        warmup: 0.1,
        floor: 0.1,
    };
    let mut adam = Method::Adam.at(schedule.peak()).build(&model.net);
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let batches = Drawn::new(STEPS, || {
        let (sources, targets) = reversals(BATCH, LEN, &mut rng);
        seen.extend(sources.chunks(LEN).map(<[usize]>::to_vec));
        (sources, targets)
    });
    let objective = |net: &mut Seq2SeqNet<f32, Cpu>,
                     (sources, targets): (Vec<usize>, Vec<usize>),
                     grads|
     -> Result<Measured, Error> {
        Ok(Measured::loss(net.loss(&sources, &targets, grads)?))
    };
    let config = TrainConfig::new(1).schedule(schedule).quiet();
    let history = fit(&mut model.net, adam.as_mut(), batches, objective, &config)?;
    let (sources, targets) = reversals(held_out, LEN, &mut rng);
    let fresh: Vec<usize> = (0..held_out)
        .filter(|&i| !seen.contains(&sources[i * LEN..(i + 1) * LEN]))
        .collect();
    let pick = |all: &[usize]| -> Vec<usize> {
        fresh
            .iter()
            .flat_map(|&i| all[i * LEN..(i + 1) * LEN].to_vec())
            .collect()
    };
    let (sources, targets) = (pick(&sources), pick(&targets));
    let (outputs, _) = model.translate(&sources)?;
    let exact = outputs
        .chunks(LEN)
        .zip(targets.chunks(LEN))
        .filter(|(o, t)| o == t)
        .count();
    Ok(Reversal {
        model,
        curve: Curve {
            name: "encoder-decoder".into(),
            losses: history.losses(),
        },
        exact_match: exact as f32 / fresh.len().max(1) as f32,
        tested: fresh.len(),
    })
}

impl<E, D: Device<E>> TensorCollection<E, D> for Seq2SeqNet<E, D>
where
    E: Dtype + Float + SampleUniform,
{
    type To<E2: Dtype, D2: Device<E2>> = Seq2SeqNet<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                // dfdx visits at most six fields at once: the embeddings go as a pair.
                (
                    Self::module("source", |s| &s.source, |s| &mut s.source),
                    Self::module("target", |s| &s.target, |s| &mut s.target),
                ),
                Self::module("encoder", |s| &s.encoder, |s| &mut s.encoder),
                Self::module("encoder_norm", |s| &s.encoder_norm, |s| &mut s.encoder_norm),
                Self::module("decoder", |s| &s.decoder, |s| &mut s.decoder),
                Self::module("decoder_norm", |s| &s.decoder_norm, |s| &mut s.decoder_norm),
                Self::module("head", |s| &s.head, |s| &mut s.head),
            ),
            |((source, target), encoder, encoder_norm, decoder, decoder_norm, head)| Seq2SeqNet {
                source,
                target,
                encoder,
                encoder_norm,
                decoder,
                decoder_norm,
                head,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_forcing_shifts_the_target_right() {
        let t: Vec<usize> = (0..LEN).collect();
        let s = shift_right(&t);
        assert_eq!(s[0], BOS);
        assert_eq!(s[1..], t[..LEN - 1]);
    }

    #[test]
    fn an_untrained_model_translates_to_the_right_shape() {
        let model = Seq2Seq::new(0);
        let (out, cross) = model.translate(&[1; 2 * LEN]).unwrap();
        assert_eq!(out.len(), 2 * LEN);
        assert_eq!(*cross.shape(), (2, HEADS, LEN, LEN));
    }
}
