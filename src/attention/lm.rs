//! Notebook `05_attention` §7: a decoder-only transformer language model (the GPT
//! layout: Radford et al., 2018) on Jane Austen's novels, one character at a time. Every
//! position predicts the next character; a causal mask keeps it from reading ahead.

use super::blocks::{Layout, Stack};
use super::positions::add_learned;
use super::scaled::causal_mask;
use super::tagger::Curve;
use super::{ids, masked_cross_entropy, Ids, Logits};
use crate::data::CharCorpus;
use crate::nn::{linear, LayerNorm1D};
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{fit, Drawn, Evaluation, Measured, Objective, TrainConfig};
use crate::Error;
use dfdx::nn::builders as builder;
use dfdx::nn::modules::{Embedding, Linear};
use dfdx::prelude::*;
use num_traits::Float;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::uniform::SampleUniform;

/// Room for this many distinct characters (Austen's text has 81).
pub const CHARS: usize = 96;
/// Token dimension, heads, feed-forward width and blocks.
pub const DIM: usize = 64;
pub const HEADS: usize = 4;
pub const FF: usize = 128;
pub const LAYERS: usize = 2;
/// The characters the model reads at once.
pub const CONTEXT: usize = 32;
/// Training steps, the validation loss measured every tenth of them, and windows per batch.
pub const STEPS: usize = 450;
pub const EVALUATIONS: usize = 10;
pub const BATCH: usize = 32;
/// The share of the text, at its end, held out for validation.
pub const VALIDATION: f64 = 0.1;

/// The weights of [`CharLm`].
#[derive(Clone, Debug)]
pub struct CharLmNet<E: Dtype, D: Storage<E>> {
    pub tokens: Embedding<CHARS, DIM, E, D>,
    pub positions: Embedding<CONTEXT, DIM, E, D>,
    pub stack: Stack<LAYERS, DIM, HEADS, FF, E, D>,
    pub norm: LayerNorm1D<DIM, E, D>,
    pub head: Linear<DIM, CHARS, E, D>,
}

/// A character-level, decoder-only transformer: learned positions, `LAYERS` pre-norm
/// blocks of `HEADS` heads, causal self-attention, `CONTEXT` characters of context.
#[derive(Clone, Debug)]
pub struct CharLm {
    pub net: CharLmNet<f32, Cpu>,
}

/// The text split for language modelling: character ids, training part first.
#[derive(Clone, Debug)]
pub struct Split {
    pub corpus: CharCorpus,
    /// Where validation starts in `corpus.tokens`.
    pub boundary: usize,
}

impl Split {
    /// The last [`VALIDATION`] share of `text` held out (a contiguous stretch, so no
    /// sentence is in both parts).
    pub fn new(text: &str) -> Result<Split, Error> {
        let corpus = CharCorpus::new(text);
        if corpus.chars.len() > CHARS || corpus.tokens.len() < 100 * CONTEXT {
            return Err(Error::InvalidArgument {
                what: "the text of a character model",
                expected: "at most 96 distinct characters and at least 3200 characters",
                got: format!("{} distinct of {}", corpus.chars.len(), corpus.tokens.len()),
            });
        }
        let boundary = (corpus.tokens.len() as f64 * (1.0 - VALIDATION)) as usize;
        Ok(Split { corpus, boundary })
    }

    pub fn train(&self) -> &[usize] {
        &self.corpus.tokens[..self.boundary]
    }

    pub fn validation(&self) -> &[usize] {
        &self.corpus.tokens[self.boundary..]
    }

    /// The baseline that ignores context: the cross-entropy (nats per character) on the
    /// validation text of the training text's character frequencies.
    pub fn unigram_loss(&self) -> f32 {
        let mut counts = vec![1.0f64; self.corpus.chars.len()];
        for &t in self.train() {
            counts[t] += 1.0;
        }
        let total: f64 = counts.iter().sum();
        let nll: f64 = self
            .validation()
            .iter()
            .map(|&t| -(counts[t] / total).ln())
            .sum();
        (nll / self.validation().len() as f64) as f32
    }
}

/// Character ids and, one character later, the targets: a batch of windows of the text.
type Windows = (Vec<usize>, Vec<Option<usize>>);

/// `batch` random windows of `CONTEXT + 1` characters of `tokens`: the inputs and, one
/// character later, the targets.
fn windows(tokens: &[usize], batch: usize, rng: &mut StdRng) -> Windows {
    let mut inputs = Vec::with_capacity(batch * CONTEXT);
    let mut targets = Vec::with_capacity(batch * CONTEXT);
    for _ in 0..batch {
        let start = rng.gen_range(0..tokens.len() - CONTEXT - 1);
        inputs.extend_from_slice(&tokens[start..start + CONTEXT]);
        targets.extend(
            tokens[start + 1..start + CONTEXT + 1]
                .iter()
                .map(|&t| Some(t)),
        );
    }
    (inputs, targets)
}

impl CharLm {
    pub fn new(seed: u64) -> Self {
        let dev = device(seed);
        CharLm {
            net: CharLmNet {
                tokens: dev.build_module::<builder::Embedding<CHARS, DIM>, f32>(),
                positions: dev.build_module::<builder::Embedding<CONTEXT, DIM>, f32>(),
                stack: Stack::new(&dev),
                norm: dev.build_module::<crate::nn::builders::LayerNorm1D<DIM>, f32>(),
                head: dev.build_module::<builder::Linear<DIM, CHARS>, f32>(),
            },
        }
    }

    /// Next-character logits (batch, n, CHARS) for the ids `x` (batch, n ≤ CONTEXT).
    pub fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
    ) -> Result<Logits<CHARS, T>, Error> {
        self.net.forward(x)
    }

    /// Trains on random windows of the training text for `STEPS` Adam steps, the learning
    /// rate warming up over the first tenth to 3e-3 and then falling along half a cosine to
    /// a tenth of that (the paper warms up too). The curve records every step's loss; the
    /// validation points are (steps taken, validation loss), before training and after
    /// every `STEPS / EVALUATIONS` steps.
    pub fn train(&mut self, split: &Split, seed: u64) -> Result<(Curve, Vec<[f64; 2]>), Error> {
        let mut rng = StdRng::seed_from_u64(seed);
        let schedule = Schedule::Cosine {
            lr: 3e-3,
            warmup: 0.1,
            floor: 0.1,
        };
        let mut adam = Method::Adam.at(schedule.peak()).build(&self.net);
        let batches = Drawn::new(STEPS / EVALUATIONS, || {
            windows(split.train(), BATCH, &mut rng)
        });
        let before = self.validation_loss(split, seed)?;
        let objective = NextCharacter { split, seed };
        let config = TrainConfig::new(EVALUATIONS).schedule(schedule).quiet();
        let history = fit(&mut self.net, adam.as_mut(), batches, objective, &config)?;
        let after = history
            .epochs
            .iter()
            .map(|e| [e.step as f64, e.test_loss as f64]);
        let validation = std::iter::once([0.0, before as f64]).chain(after).collect();
        let curve = Curve {
            name: "training".into(),
            losses: history.losses(),
        };
        Ok((curve, validation))
    }

    /// The mean cross-entropy (nats per character) on 256 fixed windows of the
    /// validation text.
    pub fn validation_loss(&self, split: &Split, seed: u64) -> Result<f32, Error> {
        self.net.validation_loss(split, seed)
    }

    /// `length` characters continuing `prompt`, each drawn from the softmax of the logits
    /// divided by `temperature` (low: safe and repetitive; high: varied and garbled).
    pub fn sample(
        &self,
        split: &Split,
        prompt: &str,
        length: usize,
        temperature: f32,
        seed: u64,
    ) -> Result<String, Error> {
        let corpus = &split.corpus;
        let mut tokens: Vec<usize> = prompt
            .chars()
            .map(|c| {
                corpus.index.get(&c).copied().ok_or(Error::InvalidArgument {
                    what: "a prompt character",
                    expected: "one that occurs in the text",
                    got: format!("{c:?}"),
                })
            })
            .collect::<Result<_, _>>()?;
        if tokens.is_empty() || temperature <= 0.0 || temperature.is_nan() {
            return Err(Error::InvalidArgument {
                what: "the prompt and temperature",
                expected: "a non-empty prompt and a temperature above 0",
                got: format!("{prompt:?} at {temperature}"),
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..length {
            let window = &tokens[tokens.len().saturating_sub(CONTEXT)..];
            let logits = self.forward(ids(window, 1, window.len())?)?.as_vec();
            let last = &logits[(window.len() - 1) * CHARS..window.len() * CHARS];
            tokens.push(draw(&last[..corpus.chars.len()], temperature, &mut rng));
        }
        Ok(corpus.decode(&tokens))
    }
}

/// An index drawn from softmax(`logits` / `temperature`).
fn draw(logits: &[f32], temperature: f32, rng: &mut StdRng) -> usize {
    let top = logits.iter().copied().fold(f32::MIN, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| (((l - top) / temperature) as f64).exp())
        .collect();
    let mut u = rng.gen::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

impl CharLmNet<f32, Cpu> {
    /// See [`CharLm::forward`].
    fn forward<T: Tape<f32, Cpu> + Merge<T>>(&self, x: Ids<T>) -> Result<Logits<CHARS, T>, Error> {
        let (b, n) = *x.shape();
        let h = self.tokens.try_forward(x)?;
        let h = add_learned(h, &self.positions)?;
        let (h, _) = self
            .stack
            .forward(h, Some(&causal_mask(b, n)), Layout::FULL)?;
        linear(&self.head, self.norm.try_forward(h)?)
    }

    /// See [`CharLm::validation_loss`].
    fn validation_loss(&self, split: &Split, seed: u64) -> Result<f32, Error> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0a11_da7a);
        let mut total = 0.0;
        for _ in 0..4 {
            let (inputs, targets) = windows(split.validation(), 64, &mut rng);
            let logits = self.forward(ids(&inputs, 64, CONTEXT)?)?;
            total += masked_cross_entropy(logits, &targets)?.array();
        }
        Ok(total / 4.0)
    }
}

/// What [`CharLm::train`] minimises: the next-character cross-entropy on windows of the
/// training text, with the validation loss after every epoch.
struct NextCharacter<'a> {
    split: &'a Split,
    seed: u64,
}

impl Objective<CharLmNet<f32, Cpu>, Windows> for NextCharacter<'_> {
    fn loss(
        &mut self,
        net: &mut CharLmNet<f32, Cpu>,
        (inputs, targets): Windows,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        let x = ids(&inputs, BATCH, CONTEXT)?.traced(grads);
        Ok(Measured::loss(masked_cross_entropy(
            net.forward(x)?,
            &targets,
        )?))
    }

    fn evaluate(&mut self, net: &CharLmNet<f32, Cpu>) -> Result<Option<Evaluation>, Error> {
        Ok(Some(Evaluation {
            loss: net.validation_loss(self.split, self.seed)?,
            accuracy: None,
        }))
    }
}

impl<E, D: Device<E>> TensorCollection<E, D> for CharLmNet<E, D>
where
    E: Dtype + Float + SampleUniform,
{
    type To<E2: Dtype, D2: Device<E2>> = CharLmNet<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("tokens", |s| &s.tokens, |s| &mut s.tokens),
                Self::module("positions", |s| &s.positions, |s| &mut s.positions),
                Self::module("stack", |s| &s.stack, |s| &mut s.stack),
                Self::module("norm", |s| &s.norm, |s| &mut s.norm),
                Self::module("head", |s| &s.head, |s| &mut s.head),
            ),
            |(tokens, positions, stack, norm, head)| CharLmNet {
                tokens,
                positions,
                stack,
                norm,
                head,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Split {
        Split::new(&"abcab cab ".repeat(400)).unwrap()
    }

    #[test]
    fn the_unigram_baseline_is_the_entropy_of_the_character_frequencies() {
        let split = Split::new(&"ab".repeat(2000)).unwrap();
        assert!((split.unigram_loss() - 2f32.ln()).abs() < 1e-2);
    }

    #[test]
    fn a_causal_model_cannot_read_ahead() {
        let lm = CharLm::new(0);
        let a = lm
            .forward(ids(&[1, 2, 3, 4], 1, 4).unwrap())
            .unwrap()
            .as_vec();
        let b = lm
            .forward(ids(&[1, 2, 9, 9], 1, 4).unwrap())
            .unwrap()
            .as_vec();
        assert_eq!(a[..2 * CHARS], b[..2 * CHARS]);
        assert_ne!(a[2 * CHARS..], b[2 * CHARS..]);
    }

    #[test]
    fn sampling_is_seeded_and_rejects_unknown_characters() {
        let split = toy();
        let lm = CharLm::new(0);
        let one = lm.sample(&split, "ab", 10, 1.0, 3).unwrap();
        assert_eq!(one, lm.sample(&split, "ab", 10, 1.0, 3).unwrap());
        assert_eq!(one.chars().count(), 12);
        assert!(lm.sample(&split, "z", 5, 1.0, 0).is_err());
    }
}
