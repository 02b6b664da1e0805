//! BERT's masked language modelling (Devlin, Chang, Lee & Toutanova, 2019), notebook
//! `06_embeddings` §6: a transformer encoder reads a window of words in which some were
//! hidden, and predicts each hidden word from the words on *both* sides of it. The blocks
//! are the shared [`crate::transformer`]'s, taught in notebook `05_attention`; the tokens
//! are Austen's words, with `[UNK]` for the rare ones ([`Chapters::with_unknown`]).

use super::corpus::Chapters;
use super::{DIM, VOCAB};
use crate::data::Vocab;
use crate::nn::linear;
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{argmax, fit, Drawn, Evaluation, History, Measured, Objective, TrainConfig};
use crate::transformer::model::TokenModel;
use crate::transformer::scaled::causal_mask;
use crate::transformer::{ids, masked_cross_entropy, Ids, Logits};
use crate::Error;
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The words of §6's vocabulary, `[UNK]` (id 0) included: the chapters are read with
/// `Chapters::with_unknown(text, WORDS, 10)`, and the one id left, [`MASK`], is `[MASK]`.
pub const WORDS: usize = VOCAB - 1;
/// The id of `[MASK]`, the last of the model's [`VOCAB`] tokens.
pub const MASK: usize = VOCAB - 1;
/// Words per window (BERT reads up to 512 WordPiece tokens).
pub const SEQ: usize = 16;
/// Heads, feed-forward width and blocks of the encoder (its width is [`DIM`]).
pub const HEADS: usize = 4;
pub const FF: usize = 128;
pub const LAYERS: usize = 2;
/// Windows per training batch, training steps, and held-out evaluations during training.
pub const BATCH: usize = 64;
pub const STEPS: usize = 1200;
pub const EVALUATIONS: usize = 4;
/// The chosen positions of a batch are scored in groups of this many (see
/// `MlmNet::at_chosen`).
const PAD_TO: usize = 16;

/// BERT's masking rule (§3.1 of the paper): each token is selected with probability
/// `select`; a selected token is replaced by `[MASK]` with probability `mask`, by a random
/// token with probability `random`, and otherwise kept, and the model must predict every
/// selected token. The replacements teach a model that any token may need fixing, since
/// `[MASK]` never appears when it is used later. (Selection here is a coin per token, as in
/// Hugging Face's collator; BERT's code picked exactly 15% of each sequence.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Masking {
    pub select: f64,
    pub mask: f64,
    pub random: f64,
}

/// A batch of masked windows: the ids the model reads, and the target of every position
/// (`None` where the token was not selected).
pub type Masked = (Vec<usize>, Vec<Option<usize>>);

impl Masking {
    /// The paper's 15%, and of those 80% `[MASK]`, 10% random, 10% kept.
    pub const BERT: Masking = Masking {
        select: 0.15,
        mask: 0.8,
        random: 0.1,
    };

    /// `tokens` with the rule applied. The random draws come in a fixed order (selection,
    /// then the kind of replacement, then the random token), which §6's cell repeats.
    pub fn apply(&self, tokens: &[usize], rng: &mut impl Rng) -> Masked {
        let mut inputs = tokens.to_vec();
        let mut targets = vec![None; tokens.len()];
        for (i, &token) in tokens.iter().enumerate() {
            if rng.gen_range(0.0..1.0) >= self.select {
                continue;
            }
            targets[i] = Some(token);
            let kind: f64 = rng.gen_range(0.0..1.0);
            if kind < self.mask {
                inputs[i] = MASK;
            } else if kind < self.mask + self.random {
                inputs[i] = rng.gen_range(0..MASK);
            }
        }
        (inputs, targets)
    }
}

/// What a model may read around the word it predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Both sides: BERT's encoder, no attention mask.
    Bidirectional,
    /// The left side only (and the position itself): a causal mask, as in GPT.
    LeftToRight,
}

/// The weights of [`Mlm`].
pub type MlmNet<E, D> = TokenModel<VOCAB, SEQ, LAYERS, DIM, HEADS, FF, E, D>;

/// A small BERT: word and learned position embeddings, [`LAYERS`] pre-norm encoder blocks
/// of [`HEADS`] heads over [`DIM`] dimensions, and a linear head over the vocabulary,
/// applied only at the positions to predict (as BERT's code does).
#[derive(Clone, Debug)]
pub struct Mlm {
    pub net: MlmNet<f32, Cpu>,
    pub direction: Direction,
}

impl Mlm {
    pub fn new(direction: Direction, seed: u64) -> Mlm {
        Mlm {
            net: MlmNet::new(&device(seed)),
            direction,
        }
    }

    /// Scores over the vocabulary (1, positions, VOCAB) at the selected positions `at` of
    /// the ids `x` (batch, n ≤ SEQ), counted row-major over the batch.
    pub fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
        at: &[usize],
    ) -> Result<Logits<VOCAB, T>, Error> {
        self.net.forward(x, at, self.direction)
    }

    /// [`Mlm::new`] trained for `steps` Adam steps on batches of [`BATCH`] random windows of
    /// the training chapters, masked afresh by [`Masking::BERT`], with its held-out loss and
    /// accuracy on `held_out` measured [`EVALUATIONS`] times. The settings are notebook
    /// `05_attention`'s character model's (Adam at 3e-3, warm-up over the first tenth,
    /// then half a cosine down to a tenth), not tuned here.
    pub fn train(
        direction: Direction,
        chapters: &Chapters,
        held_out: &HeldOutMasks,
        steps: usize,
        seed: u64,
    ) -> Result<(Mlm, History), Error> {
        let mut model = Mlm::new(direction, seed);
        let text: Vec<usize> = chapters.train.concat();
        if text.len() < 2 * SEQ {
            return Err(Error::InvalidArgument {
                what: "the training chapters of a masked language model",
                expected: "at least two windows of words",
                got: format!("{} words", text.len()),
            });
        }
        let schedule = Schedule::Cosine {
            lr: 3e-3,
            warmup: 0.1,
            floor: 0.1,
        };
        let mut adam = Method::Adam.at(schedule.peak()).build(&model.net);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0b3a_7000);
        let batches = Drawn::new((steps / EVALUATIONS).max(1), || {
            let mut tokens = Vec::with_capacity(BATCH * SEQ);
            for _ in 0..BATCH {
                let start = rng.gen_range(0..=text.len() - SEQ);
                tokens.extend_from_slice(&text[start..start + SEQ]);
            }
            Masking::BERT.apply(&tokens, &mut rng)
        });
        let config = TrainConfig::new(EVALUATIONS).schedule(schedule).quiet();
        let objective = MaskedWords {
            direction,
            held_out,
        };
        let history = fit(&mut model.net, adam.as_mut(), batches, objective, &config)?;
        Ok((model, history))
    }

    /// The `k` most likely words at each `[MASK]` of `words` (at most [`SEQ`] of them; a
    /// word outside the vocabulary reads as `[UNK]`), with their probabilities.
    pub fn fill(
        &self,
        vocab: &Vocab,
        words: &[&str],
        k: usize,
    ) -> Result<Vec<Vec<(String, f32)>>, Error> {
        let tokens: Vec<usize> = words
            .iter()
            .map(|&w| if w == "[MASK]" { MASK } else { vocab.id(w) })
            .collect();
        let at: Vec<usize> = (0..tokens.len()).filter(|&i| tokens[i] == MASK).collect();
        let logits = self.forward(ids(&tokens, 1, tokens.len())?, &at)?.as_vec();
        Ok(logits
            .chunks_exact(VOCAB)
            .map(|row| top_words(row, &vocab.words, k))
            .collect())
    }
}

impl MlmNet<f32, Cpu> {
    /// See [`Mlm::forward`].
    fn forward<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
        at: &[usize],
        direction: Direction,
    ) -> Result<Logits<VOCAB, T>, Error> {
        let (b, n) = *x.shape();
        let dev = x.device().clone();
        let mask = match direction {
            Direction::Bidirectional => None,
            Direction::LeftToRight => Some(causal_mask(b, n)),
        };
        let h = self.hidden(x, mask.as_ref())?;
        let picked = h
            .try_reshape_like(&(b * n, Const::<DIM>))?
            .try_gather(dev.tensor_from_vec(at.to_vec(), (at.len(),)))?;
        let logits = linear(&self.head, self.norm.try_forward(picked)?)?;
        Ok(logits.try_reshape_like(&(1, at.len(), Const::<VOCAB>))?)
    }

    /// The scores at the chosen positions of a masked batch whose ids are `x` (on a tape
    /// or not), and the targets there.
    fn at_chosen<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
        targets: &[Option<usize>],
        direction: Direction,
    ) -> Result<(Logits<VOCAB, T>, Vec<Option<usize>>), Error> {
        let (mut at, mut picked): (Vec<usize>, Vec<Option<usize>>) = targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_some())
            .map(|(i, &t)| (i, t))
            .unzip();
        // The count of chosen words varies from batch to batch, and dfdx's tensor cache
        // keeps the buffers of every size it meets until training ends: rounded up to a
        // multiple of PAD_TO (rows that score position 0 and predict nothing) it takes a
        // few sizes instead of dozens.
        let padded = at.len().next_multiple_of(PAD_TO);
        at.resize(padded, 0);
        picked.resize(padded, None);
        Ok((self.forward(x, &at, direction)?, picked))
    }

    /// The mean cross-entropy over the chosen positions of a masked batch whose ids are
    /// `x`: what §6 trains (and `make bench` times) the masked language model on.
    pub fn loss<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        x: Ids<T>,
        targets: &[Option<usize>],
        direction: Direction,
    ) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
        let (logits, picked) = self.at_chosen(x, targets, direction)?;
        masked_cross_entropy(logits, &picked)
    }

    /// See [`HeldOutMasks::score`].
    fn score(&self, held_out: &HeldOutMasks, direction: Direction) -> Result<Evaluation, Error> {
        let (inputs, targets) = &held_out.masked;
        let (mut nll, mut right, mut count) = (0.0f64, 0usize, 0usize);
        let chunk = EVALUATION_BATCH * SEQ;
        for (x, t) in inputs.chunks(chunk).zip(targets.chunks(chunk)) {
            let x = ids(x, x.len() / SEQ, SEQ)?;
            let (logits, picked) = self.at_chosen(x, t, direction)?;
            let values = logits.as_vec();
            let mean = masked_cross_entropy(logits, &picked)?.array() as f64;
            // The padding's rows come last and predict nothing.
            let picked: Vec<usize> = picked.into_iter().flatten().collect();
            nll += mean * picked.len() as f64;
            count += picked.len();
            right += values
                .chunks_exact(VOCAB)
                .zip(&picked)
                .filter(|(row, &t)| argmax(row) == t)
                .count();
        }
        Ok(Evaluation {
            loss: (nll / count.max(1) as f64) as f32,
            accuracy: Some(right as f32 / count.max(1) as f32),
        })
    }
}

/// The `k` words with the largest scores in `row` (`[MASK]` never among them), with their
/// softmax probabilities.
fn top_words(row: &[f32], words: &[String], k: usize) -> Vec<(String, f32)> {
    let top = row.iter().copied().fold(f32::MIN, f32::max);
    let total: f32 = row.iter().map(|&s| (s - top).exp()).sum();
    let mut order: Vec<usize> = (0..words.len().min(MASK)).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| (words[i].clone(), (row[i] - top).exp() / total))
        .collect()
}

/// Held-out chapters cut into windows of [`SEQ`] words and masked once, from a seed, so
/// that every model and baseline is scored on the same selected positions.
#[derive(Clone, Debug)]
pub struct HeldOutMasks {
    pub windows: usize,
    pub masked: Masked,
}

/// Windows per forward pass when scoring.
const EVALUATION_BATCH: usize = 256;

impl HeldOutMasks {
    /// Every whole window of [`SEQ`] words of each held-out chapter, masked by `masking`.
    pub fn new(chapters: &Chapters, masking: Masking, seed: u64) -> HeldOutMasks {
        let tokens: Vec<usize> = chapters
            .held_out
            .iter()
            .flat_map(|c| c.chunks_exact(SEQ).flatten().copied())
            .collect();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0de1_d0e5);
        HeldOutMasks {
            windows: tokens.len() / SEQ,
            masked: masking.apply(&tokens, &mut rng),
        }
    }

    /// The selected positions' targets.
    pub fn targets(&self) -> Vec<usize> {
        self.masked.1.iter().flatten().copied().collect()
    }

    /// The mean cross-entropy (nats per word) and the top-1 accuracy of `model` at the
    /// selected positions.
    pub fn score(&self, model: &Mlm) -> Result<Evaluation, Error> {
        model.net.score(self, model.direction)
    }

    /// The baselines that ignore context, from the training chapters' word counts: the
    /// accuracy of always answering the most frequent word, and the cross-entropy of the
    /// unigram distribution (add-one smoothed) at the selected positions.
    pub fn baselines(&self, chapters: &Chapters) -> Baselines {
        let mut counts = vec![1.0f64; MASK];
        for &t in chapters.train.iter().flatten() {
            counts[t] += 1.0;
        }
        let total: f64 = counts.iter().sum();
        let targets = self.targets();
        let n = targets.len().max(1) as f64;
        let most_frequent = (0..MASK)
            .max_by(|&a, &b| counts[a].total_cmp(&counts[b]))
            .unwrap_or(0);
        Baselines {
            most_frequent,
            most_frequent_accuracy: targets.iter().filter(|&&t| t == most_frequent).count() as f64
                / n,
            unigram_loss: targets
                .iter()
                .map(|&t| -(counts[t] / total).ln())
                .sum::<f64>()
                / n,
        }
    }
}

/// §6's context-free baselines, measured on the held-out masked positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Baselines {
    /// The id of the training text's most frequent word.
    pub most_frequent: usize,
    pub most_frequent_accuracy: f64,
    /// Nats per word.
    pub unigram_loss: f64,
}

/// What [`Mlm::train`] minimises: the cross-entropy at the selected positions, with the
/// held-out score after every evaluation interval.
struct MaskedWords<'a> {
    direction: Direction,
    held_out: &'a HeldOutMasks,
}

impl Objective<MlmNet<f32, Cpu>, Masked> for MaskedWords<'_> {
    fn loss(
        &mut self,
        net: &mut MlmNet<f32, Cpu>,
        batch: Masked,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        let (inputs, targets) = batch;
        let x = ids(&inputs, BATCH, SEQ)?.traced(grads);
        Ok(Measured::loss(net.loss(x, &targets, self.direction)?))
    }

    fn evaluate(&mut self, net: &MlmNet<f32, Cpu>) -> Result<Option<Evaluation>, Error> {
        Ok(Some(net.score(self.held_out, self.direction)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_selects_15_percent_and_replaces_80_10_10() {
        let tokens: Vec<usize> = (0..200_000).map(|i| 1 + i % 1000).collect();
        let (inputs, targets) = Masking::BERT.apply(&tokens, &mut StdRng::seed_from_u64(0));
        let selected: Vec<usize> = (0..tokens.len())
            .filter(|&i| targets[i].is_some())
            .collect();
        let share = |n: usize, of: usize| n as f64 / of as f64;
        assert!((share(selected.len(), tokens.len()) - 0.15).abs() < 0.005);
        let masked = selected.iter().filter(|&&i| inputs[i] == MASK).count();
        let kept = selected.iter().filter(|&&i| inputs[i] == tokens[i]).count();
        assert!((share(masked, selected.len()) - 0.8).abs() < 0.01);
        // A random replacement equals the original 1 time in 4,095: counted as kept.
        assert!((share(kept, selected.len()) - 0.1).abs() < 0.01);
        for i in 0..tokens.len() {
            match targets[i] {
                Some(t) => assert_eq!(t, tokens[i]),
                None => assert_eq!(inputs[i], tokens[i]),
            }
        }
    }

    #[test]
    fn left_to_right_cannot_read_ahead_and_bidirectional_can() {
        let probe = |direction, later: usize| {
            let model = Mlm::new(direction, 0);
            let x = ids(&[5, MASK, 7, later], 1, 4).unwrap();
            model.forward(x, &[1]).unwrap().as_vec()
        };
        let left = Direction::LeftToRight;
        assert_eq!(probe(left, 8), probe(left, 9));
        let both = Direction::Bidirectional;
        assert_ne!(probe(both, 8), probe(both, 9));
    }

    #[test]
    fn baselines_count_the_training_words() {
        let text = "CHAPTER 1\n\na a a b\n\nCHAPTER 2\n\na b\n";
        let chapters = Chapters::with_unknown(text, 10, 2).unwrap();
        let a = chapters.vocab.id("a");
        let held_out = HeldOutMasks {
            windows: 1,
            masked: (vec![MASK; 2], vec![Some(a), Some(chapters.vocab.id("b"))]),
        };
        let b = held_out.baselines(&chapters);
        assert_eq!((b.most_frequent, b.most_frequent_accuracy), (a, 0.5));
        // Add-one counts over MASK = 4,095 words: "a" 4, "b" 2, "chapter" 2, "1" 2.
        let total = (MASK + 6) as f64;
        let expected = -((4.0 / total).ln() + (2.0 / total).ln()) / 2.0;
        assert!((b.unigram_loss - expected).abs() < 1e-9);
    }
}
