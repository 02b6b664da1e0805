//! Notebook `05_attention` §7: a decoder-only transformer language model (the GPT
//! layout: Radford et al., 2018) on Jane Austen's novels, one character at a time. Every
//! position predicts the next character; a causal mask keeps it from reading ahead.

use super::tagger::Curve;
use crate::data::CharCorpus;
use crate::nn::linear;
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{fit, Drawn, Evaluation, Measured, Objective, TrainConfig};
use crate::transformer::model::TokenModel;
use crate::transformer::scaled::causal_mask;
use crate::transformer::{ids, masked_cross_entropy, Ids, Logits};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Room for this many distinct characters (Austen's text has 81).
pub const CHARS: usize = 96;
/// Token dimension, heads, feed-forward width and blocks.
pub const DIM: usize = 64;
pub const HEADS: usize = 4;
pub const FF: usize = 128;
pub const LAYERS: usize = 2;
/// The characters the model reads at once.
pub const CONTEXT: usize = 32;
/// The notebook's training steps (an argument of [`CharLm::train`]), the validation loss
/// measured every tenth of them, and windows per batch.
pub const STEPS: usize = 1500;
pub const EVALUATIONS: usize = 10;
pub const BATCH: usize = 32;
/// The share of the text, at its end, held out for validation.
pub const VALIDATION: f64 = 0.1;

/// The weights of [`CharLm`].
pub type CharLmNet<E, D> = TokenModel<CHARS, CONTEXT, LAYERS, DIM, HEADS, FF, E, D>;

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

    /// §7's count baseline of order `n` (2: bigram, 3: trigram): [`NGram::fit`] with its
    /// smoothing `k` chosen from [`SMOOTHING`] on a tuning part carved from the end of the
    /// training text (the last [`VALIDATION`] share of it), then refitted on the whole
    /// training text and measured on the validation text, which chose nothing.
    pub fn ngram_baseline(&self, n: usize) -> Result<Baseline, Error> {
        let vocab = self.corpus.chars.len();
        let train = self.train();
        let cut = (train.len() as f64 * (1.0 - VALIDATION)) as usize;
        let (fit, tune) = train.split_at(cut);
        let counts = NGram::fit(fit, vocab, n)?;
        let (mut k, mut tuning_loss) = (SMOOTHING[0], f64::INFINITY);
        for &candidate in &SMOOTHING {
            let loss = counts.loss(tune, candidate);
            if loss < tuning_loss {
                (k, tuning_loss) = (candidate, loss);
            }
        }
        let loss = NGram::fit(train, vocab, n)?.loss(self.validation(), k);
        Ok(Baseline {
            n,
            k,
            tuning_loss: tuning_loss as f32,
            loss: loss as f32,
        })
    }
}

/// The add-k smoothing constants [`Split::ngram_baseline`] chooses from.
pub const SMOOTHING: [f64; 7] = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0];

/// A count baseline of §7, measured: its order, the smoothing chosen on the tuning part of
/// the training text, its loss there, and its loss on the validation text (nats per
/// character).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Baseline {
    pub n: usize,
    pub k: f64,
    pub tuning_loss: f32,
    pub loss: f32,
}

/// A character n-gram model by counting (notebook `05_attention` §7, the baseline a
/// transformer must beat): the next character's probability given the `n − 1` before it
/// is `(count(context, c) + k) / (count(context) + k·V)`, add-k smoothing over `V`
/// characters (Jurafsky & Martin, *Speech and Language Processing*, ch. 3). `n = 1` is
/// the unigram model.
#[derive(Clone, Debug)]
pub struct NGram {
    pub n: usize,
    pub vocab: usize,
    /// `count(context, c)` at `context · V + c`, a context read as a base-`V` number.
    counts: Vec<u32>,
    /// `count(context)`: how often each context is followed by any character.
    totals: Vec<u32>,
}

impl NGram {
    /// Counts every `n`-character stretch of `tokens` (ids below `vocab`).
    pub fn fit(tokens: &[usize], vocab: usize, n: usize) -> Result<NGram, Error> {
        let contexts = vocab.checked_pow(n.saturating_sub(1) as u32);
        let Some(contexts) = contexts.filter(|&c| n >= 1 && c * vocab <= 1 << 26) else {
            return Err(Error::InvalidArgument {
                what: "the order of an n-gram model",
                expected: "at least 1, with vocab^n at most 2^26 counts",
                got: format!("n = {n} over {vocab} characters"),
            });
        };
        let mut counts = vec![0u32; contexts * vocab];
        let mut totals = vec![0u32; contexts];
        for gram in tokens.windows(n) {
            let context = gram[..n - 1].iter().fold(0, |a, &t| a * vocab + t);
            counts[context * vocab + gram[n - 1]] += 1;
            totals[context] += 1;
        }
        Ok(NGram {
            n,
            vocab,
            counts,
            totals,
        })
    }

    /// The mean cross-entropy (nats per character) of `tokens` from their `n`-th on, each
    /// predicted from the `n − 1` before it, with add-`k` smoothing.
    pub fn loss(&self, tokens: &[usize], k: f64) -> f64 {
        let (v, n) = (self.vocab, self.n);
        let nll: f64 = tokens
            .windows(n)
            .map(|gram| {
                let context = gram[..n - 1].iter().fold(0, |a, &t| a * v + t);
                let count = self.counts[context * v + gram[n - 1]] as f64;
                -((count + k) / (self.totals[context] as f64 + k * v as f64)).ln()
            })
            .sum();
        nll / tokens.windows(n).len().max(1) as f64
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
            net: CharLmNet::new(&dev),
        }
    }

    /// Next-character logits (batch, n, CHARS) for the ids `x` (batch, n ≤ CONTEXT).
    pub fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
    ) -> Result<Logits<CHARS, T>, Error> {
        self.net.forward(x)
    }

    /// Trains on random windows of the training text for `steps` Adam steps (the notebook
    /// takes [`STEPS`]; at least [`EVALUATIONS`]), the learning
    /// rate warming up over the first tenth to 3e-3 and then falling along half a cosine to
    /// a tenth of that (the paper warms up too). The curve records every step's loss; the
    /// validation points are (steps taken, validation loss), before training and after
    /// every `steps / EVALUATIONS` steps.
    pub fn train(
        &mut self,
        split: &Split,
        steps: usize,
        seed: u64,
    ) -> Result<(Curve, Vec<[f64; 2]>), Error> {
        let mut rng = StdRng::seed_from_u64(seed);
        let schedule = Schedule::Cosine {
            lr: 3e-3,
            warmup: 0.1,
            floor: 0.1,
        };
        let mut adam = Method::Adam.at(schedule.peak()).build(&self.net);
        let batches = Drawn::new((steps / EVALUATIONS).max(1), || {
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
        let h = self.hidden(x, Some(&causal_mask(b, n)))?;
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
    fn a_unigram_ngram_is_the_unigram_baseline() {
        let split = toy();
        let vocab = split.corpus.chars.len();
        let one = NGram::fit(split.train(), vocab, 1).unwrap();
        let loss = one.loss(split.validation(), 1.0) as f32;
        assert!((loss - split.unigram_loss()).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn on_a_periodic_text_the_bigram_is_near_perfect_and_the_unigram_is_not() {
        // "abcd" repeated: each character fixes the next, but all four are equally common.
        let split = Split::new(&"abcd".repeat(1000)).unwrap();
        let bigram = split.ngram_baseline(2).unwrap();
        assert!(bigram.loss < 0.01, "{bigram:?}");
        assert_eq!(bigram.k, SMOOTHING[0], "no smoothing is needed");
        assert!((split.unigram_loss() - 4f32.ln()).abs() < 1e-2);
    }

    #[test]
    fn a_trigram_sees_what_a_bigram_cannot() {
        // After "b" comes "a" or "c" equally often; after "ab" always "c", after "cb" "a".
        let split = Split::new(&"abcb".repeat(1000)).unwrap();
        let (two, three) = (
            split.ngram_baseline(2).unwrap(),
            split.ngram_baseline(3).unwrap(),
        );
        assert!(three.loss < 0.01, "{three:?}");
        assert!((two.loss - 2f32.ln() / 2.0).abs() < 0.01, "{two:?}");
    }

    #[test]
    fn smoothing_is_chosen_on_the_training_text_alone() {
        // The training text alternates "ab"; the validation text is all "a", which a bigram
        // of the training text calls nearly impossible. Chosen on the validation text, the
        // largest k would win; chosen on the training text's tuning part, the smallest does.
        let split = Split::new(&format!("{}{}", "ab".repeat(1800), "a".repeat(400))).unwrap();
        let counts = NGram::fit(split.train(), 2, 2).unwrap();
        let (small, large) = (SMOOTHING[0], SMOOTHING[SMOOTHING.len() - 1]);
        assert!(counts.loss(split.validation(), large) < counts.loss(split.validation(), small));
        let bigram = split.ngram_baseline(2).unwrap();
        assert_eq!(bigram.k, small, "{bigram:?}");
        assert!(bigram.tuning_loss < 0.01 && bigram.loss > 1.0, "{bigram:?}");
    }

    #[test]
    fn orders_out_of_range_are_refused() {
        assert!(NGram::fit(&[0, 1], 2, 0).is_err());
        assert!(NGram::fit(&[0, 1], 96, 5).is_err());
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
