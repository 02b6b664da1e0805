//! word2vec's skip-gram with negative sampling (Mikolov, Sutskever, Chen, Corrado & Dean,
//! 2013), notebook `06_embeddings` §4: every word has a centre vector `v` and a context
//! vector `u`; a true (word, context) pair should score `σ(u·v)` near 1, and `k` words drawn
//! from the noise distribution near 0.

use super::corpus::{keep_probabilities, skipgram_pairs, Chapters, Noise};
use super::{DIM, VOCAB};
use crate::data::Embeddings;
use crate::nn::embedding_dots;
use crate::optim::{Method, OptimizerConfig};
use crate::runtime::device;
use crate::train::{fit, Batches, History, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_distr::Uniform;

/// The two tables of skip-gram (§4), one row per word of a `W`-word vocabulary: `centre`
/// holds `v`, the vectors kept as the word embeddings; `context` holds `u`. As in word2vec's
/// code, `v` starts uniform in ±0.5/D and `u` at zero. (dfdx's trainable tensors need
/// compile-time shapes, hence a vocabulary of a fixed size, [`Chapters::new`].)
#[derive(Clone, Debug)]
pub struct SkipGram<const W: usize, const D: usize, E: Dtype = f32, Dev: Storage<E> = Cpu> {
    pub centre: Tensor<Rank2<W, D>, E, Dev>,
    pub context: Tensor<Rank2<W, D>, E, Dev>,
}

/// §4's model: [`VOCAB`] words × [`DIM`] dimensions.
pub type AustenSkipGram = SkipGram<VOCAB, DIM>;

/// The loss and gradients of one (word, context, negatives) example (§4's mechanism).
#[derive(Clone, Debug, PartialEq)]
pub struct ExampleGradients {
    /// −log σ(u_o·v) − Σ_k log σ(−u_k·v).
    pub loss: f32,
    /// ∂loss/∂v of the centre word.
    pub centre: Vec<f32>,
    /// ∂loss/∂u of the true context, then of each negative.
    pub contexts: Vec<Vec<f32>>,
}

impl<const W: usize, const D: usize> SkipGram<W, D, f32, Cpu> {
    pub fn new(dev: &Cpu) -> SkipGram<W, D, f32, Cpu> {
        let bound = 0.5 / D as f32;
        SkipGram {
            centre: dev.sample(Uniform::new(-bound, bound)),
            context: dev.zeros(),
        }
    }

    /// The mean skip-gram loss of a batch: each centre word with its row of `contexts`,
    /// the true context first and the negatives after it. Each example's loss is the sum
    /// of 1 + k binary cross-entropies, with label 1 for the true context and 0 for the
    /// negatives; dfdx's `binary_cross_entropy_with_logits_loss` averages them, so the
    /// mean is scaled back by 1 + k. The scores `u·v` come from
    /// [`embedding_dots`], one op in place of dfdx's gathers,
    /// broadcast, product and sum (`embedding_dots_reference`).
    pub fn loss<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        centres: Tensor<(usize,), usize, Cpu, T>,
        contexts: &[usize],
    ) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
        let dev = centres.device().clone();
        let b = centres.shape().0;
        let k1 = contexts.len() / b.max(1);
        let (centres, tape) = centres.split_tape();
        let scores = embedding_dots(
            self.centre.clone().put_tape(tape),
            &self.context,
            &centres.as_vec(),
            contexts,
        )?;
        let labels = (0..b * k1)
            .map(|i| if i % k1 == 0 { 1.0 } else { 0.0 })
            .collect();
        let labels = dev.tensor_from_vec(labels, (b, k1));
        Ok(binary_cross_entropy_with_logits_loss(scores, labels) * k1 as f32)
    }

    /// The loss and its gradients for one example, by dfdx's autodiff through
    /// [`SkipGram::loss`]: what §4's hand-written gradient is checked against. The
    /// context and negatives must be distinct words (a repeated word's gradients add up
    /// in its one row).
    pub fn example_gradients(
        &self,
        centre: usize,
        context: usize,
        negatives: &[usize],
    ) -> Result<ExampleGradients, Error> {
        let dev = self.centre.device().clone();
        let rows: Vec<usize> = std::iter::once(context)
            .chain(negatives.iter().copied())
            .collect();
        let grads = self.alloc_grads();
        let centres = dev.tensor_from_vec(vec![centre], (1,)).traced(grads);
        let loss = self.loss(centres, &rows)?;
        let value = loss.array();
        let grads = loss.backward();
        let row = |t: &Tensor<Rank2<W, D>, f32, Cpu>, i: usize| {
            grads.get(t).as_vec()[i * D..(i + 1) * D].to_vec()
        };
        Ok(ExampleGradients {
            loss: value,
            centre: row(&self.centre, centre),
            contexts: rows.iter().map(|&r| row(&self.context, r)).collect(),
        })
    }

    /// The centre vectors as a table of word vectors with `words` (the vocabulary, in id
    /// order), for nearest neighbours and analogies.
    pub fn embeddings(&self, words: &[String]) -> Result<Embeddings, Error> {
        Embeddings::new(words.to_vec(), self.centre.as_vec(), D)
    }

    /// `u_c · v_w` for each (word, context) pair: the score the model is trained to push
    /// up for true pairs and down for negatives.
    pub fn scores(&self, pairs: &[(u32, u32)]) -> Vec<f32> {
        let (v, u, d) = (self.centre.as_vec(), self.context.as_vec(), D);
        pairs
            .iter()
            .map(|&(w, c)| {
                let (w, c) = (w as usize * d, c as usize * d);
                v[w..w + d]
                    .iter()
                    .zip(&u[c..c + d])
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect()
    }
}

/// The same loss and gradients as [`SkipGram::example_gradients`], written out: with
/// σ the logistic function, s_o = u_o·v and s_k = u_k·v,
/// loss = −log σ(s_o) − Σ_k log σ(−s_k);
/// ∂/∂u_o = (σ(s_o) − 1) v, ∂/∂u_k = σ(s_k) v, ∂/∂v = (σ(s_o) − 1) u_o + Σ_k σ(s_k) u_k.
pub fn example_gradients_reference(
    v: &[f32],
    u_context: &[f32],
    u_negatives: &[Vec<f32>],
) -> ExampleGradients {
    let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let mut rows: Vec<(&[f32], f32)> = vec![(u_context, 1.0)];
    rows.extend(u_negatives.iter().map(|u| (u.as_slice(), 0.0)));
    let (mut loss, mut centre, mut contexts) = (0.0, vec![0.0; v.len()], Vec::new());
    for (u, label) in rows {
        let p = sigmoid(dot(u, v));
        loss -= if label == 1.0 { p.ln() } else { (1.0 - p).ln() };
        let error = p - label; // ∂loss/∂s
        centre.iter_mut().zip(u).for_each(|(g, x)| *g += error * x);
        contexts.push(v.iter().map(|x| error * x).collect());
    }
    ExampleGradients {
        loss,
        centre,
        contexts,
    }
}

/// How §4 trains skip-gram: the window, the negatives per pair, the subsampling
/// threshold, the noise distribution's power, and the optimizer. (The vectors' dimension
/// is the model's type parameter.)
#[derive(Clone, Debug)]
pub struct Sgns {
    /// The largest window; each centre draws its own from 1..=window.
    pub window: usize,
    /// Negatives per true pair (k).
    pub negatives: usize,
    /// The subsampling threshold t ([`keep_probabilities`]); word2vec's default is 1e-3.
    pub subsample: f64,
    /// Negatives are drawn ∝ count^power; word2vec's ¾.
    pub power: f64,
    pub batch: usize,
    pub epochs: usize,
    pub optimizer: OptimizerConfig,
}

impl Sgns {
    /// The settings of notebook `06_embeddings` §4: word2vec's defaults (window 5, 5
    /// negatives, t = 1e-3, the ¾ power), with Adam on batches of 4,096 pairs for 2 passes
    /// in place of word2vec's one pair at a time with a decaying rate: the whole vocabulary
    /// is updated densely through the course's training loop, and 2 passes fit the
    /// notebook's time budget.
    pub const AUSTEN: Sgns = Sgns {
        window: 5,
        negatives: 5,
        subsample: 1e-3,
        power: 0.75,
        batch: 4096,
        epochs: 2,
        optimizer: Method::Adam.at(1e-2),
    };

    /// What these settings draw from `chapters`' training counts: each word's chance of
    /// surviving subsampling, and the noise distribution of the negatives.
    pub fn sampling(&self, chapters: &Chapters) -> Result<Sampling, Error> {
        let counts = chapters.counts();
        Ok(Sampling {
            keep: keep_probabilities(&counts, self.subsample),
            noise: Noise::new(&counts, self.power)?,
        })
    }

    /// §4's run: [`Sgns::train`] for an [`AustenSkipGram`], compiled once with the crate
    /// rather than in the notebook cell that calls it.
    pub fn train_austen(
        &self,
        chapters: &Chapters,
        seed: u64,
    ) -> Result<(AustenSkipGram, History), Error> {
        self.train(chapters, seed)
    }

    /// Skip-gram trained on the training chapters with these settings, and its history.
    pub fn train<const W: usize, const D: usize>(
        &self,
        chapters: &Chapters,
        seed: u64,
    ) -> Result<(SkipGram<W, D>, History), Error> {
        if chapters.vocab.len() > W {
            return Err(Error::InvalidArgument {
                what: "the vocabulary's size",
                expected: "at most the model's W rows",
                got: chapters.vocab.len().to_string(),
            });
        }
        let dev = device(seed);
        let mut model = SkipGram::<W, D>::new(&dev);
        let mut optimizer = self.optimizer.build(&model);
        let batches = PairBatches::new(self, chapters, seed)?;
        let objective = |m: &mut SkipGram<W, D>,
                         (centres, contexts): (Vec<usize>, Vec<usize>),
                         grads|
         -> Result<Measured, Error> {
            let centres = dev
                .tensor_from_vec(centres.clone(), (centres.len(),))
                .traced(grads);
            Ok(Measured::loss(m.loss(centres, &contexts)?))
        };
        let mut config = TrainConfig::new(self.epochs).log_every(200);
        config.schedule = self.optimizer.schedule;
        let history = fit(&mut model, optimizer.as_mut(), batches, objective, &config)?;
        Ok((model, history))
    }
}

/// Subsampling's keep probabilities and the noise distribution, by word id ([`Sgns::sampling`]).
pub struct Sampling {
    pub keep: Vec<f64>,
    pub noise: Noise,
}

/// Skip-gram's batches: the pairs of a fresh pass over the training chapters every epoch
/// (new subsampling, new windows), shuffled, each with its negatives.
struct PairBatches<'a> {
    settings: &'a Sgns,
    chapters: &'a Chapters,
    sampling: Sampling,
    rng: StdRng,
    per_epoch: usize,
}

impl<'a> PairBatches<'a> {
    fn new(
        settings: &'a Sgns,
        chapters: &'a Chapters,
        seed: u64,
    ) -> Result<PairBatches<'a>, Error> {
        let sampling = settings.sampling(chapters)?;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0005_e9a5);
        // The pairs of a pass vary a little between epochs; the first sets the epoch's length.
        let pairs = skipgram_pairs(&chapters.train, settings.window, &sampling.keep, &mut rng);
        Ok(PairBatches {
            settings,
            chapters,
            per_epoch: pairs.len() / settings.batch,
            sampling,
            rng,
        })
    }
}

impl Batches for PairBatches<'_> {
    type Batch = (Vec<usize>, Vec<usize>);

    fn per_epoch(&self) -> usize {
        self.per_epoch
    }

    fn epoch(&mut self, _epoch: usize) -> Result<impl Iterator<Item = Self::Batch> + '_, Error> {
        let Sampling { keep, noise } = &self.sampling;
        let rng = &mut self.rng;
        let mut pairs = skipgram_pairs(&self.chapters.train, self.settings.window, keep, rng);
        pairs.shuffle(rng);
        let (batch, k) = (self.settings.batch, self.settings.negatives);
        let steps = self.per_epoch.min(pairs.len() / batch);
        Ok((0..steps).map(move |i| {
            let chunk = &pairs[i * batch..(i + 1) * batch];
            let centres = chunk.iter().map(|&(w, _)| w as usize).collect();
            let mut contexts = Vec::with_capacity(batch * (k + 1));
            for &(_, c) in chunk {
                contexts.push(c as usize);
                contexts.extend((0..k).map(|_| noise.sample(rng)));
            }
            (centres, contexts)
        }))
    }
}

/// §4's held-out test: (word, context) pairs from the held-out chapters, drawn as in
/// training (subsampled, dynamic window), and for each a negative: the same word with a
/// context drawn from the noise distribution. A model that learned what words keep
/// company scores the true pairs higher ([`auc`]).
pub struct HeldOutPairs {
    pub positives: Vec<(u32, u32)>,
    pub negatives: Vec<(u32, u32)>,
}

impl HeldOutPairs {
    /// At most `n` pairs, with `settings`' window, subsampling and noise.
    pub fn new(
        chapters: &Chapters,
        settings: &Sgns,
        n: usize,
        seed: u64,
    ) -> Result<HeldOutPairs, Error> {
        let Sampling { keep, noise } = settings.sampling(chapters)?;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0004_e1d0);
        let mut positives = skipgram_pairs(&chapters.held_out, settings.window, &keep, &mut rng);
        positives.shuffle(&mut rng);
        positives.truncate(n);
        let negatives = positives
            .iter()
            .map(|&(w, _)| (w, noise.sample(&mut rng) as u32))
            .collect();
        Ok(HeldOutPairs {
            positives,
            negatives,
        })
    }

    /// The AUC of `score` on these pairs.
    pub fn auc(&self, score: impl Fn(&[(u32, u32)]) -> Vec<f32>) -> f64 {
        auc(&score(&self.positives), &score(&self.negatives))
    }
}

/// The baseline that ignores the centre word: a pair's score is the log of its context's
/// training count. True contexts are drawn ∝ count, negatives ∝ count^¾, so frequency
/// alone beats chance; the model must beat this.
pub fn frequency_scores(counts: &[usize]) -> impl Fn(&[(u32, u32)]) -> Vec<f32> + '_ {
    move |pairs| {
        pairs
            .iter()
            .map(|&(_, c)| (counts[c as usize] as f32).max(1.0).ln())
            .collect()
    }
}

/// The area under the ROC curve of scores for true pairs against scores for negatives:
/// the probability that a random true pair outscores a random negative (ties count half).
/// 0.5 is chance.
pub fn auc(positives: &[f32], negatives: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney: the sum of the positives' ranks, ties given their mean rank.
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < all.len() {
        let j = i + all[i..].iter().take_while(|x| x.0 == all[i].0).count();
        let mean_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += mean_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (p, n) = (positives.len() as f64, negatives.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

impl<const W: usize, const D: usize, E: Dtype, Dev: Device<E>> TensorCollection<E, Dev>
    for SkipGram<W, D, E, Dev>
{
    type To<E2: Dtype, D2: Device<E2>> = SkipGram<W, D, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, Dev>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "centre",
                    |s| &s.centre,
                    |s| &mut s.centre,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "context",
                    |s| &s.context,
                    |s| &mut s.context,
                    TensorOptions::reset_to_zeros(),
                ),
            ),
            |(centre, context)| SkipGram { centre, context },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close_f32 as close;

    #[test]
    fn autodiff_gradients_match_the_written_out_ones() {
        let dev = Cpu::seed_from_u64(3);
        let mut model = SkipGram::<10, 6>::new(&dev);
        model.context = dev.sample_normal() * 0.5;
        let got = model.example_gradients(2, 7, &[1, 4, 9]).unwrap();
        let (v, u) = (model.centre.as_vec(), model.context.as_vec());
        let row = |t: &[f32], i: usize| t[i * 6..(i + 1) * 6].to_vec();
        let negatives: Vec<Vec<f32>> = [1, 4, 9].iter().map(|&i| row(&u, i)).collect();
        let want = example_gradients_reference(&row(&v, 2), &row(&u, 7), &negatives);
        close("loss", &[got.loss], &[want.loss], 1e-5);
        close("dv", &got.centre, &want.centre, 1e-5);
        for (g, w) in got.contexts.iter().zip(&want.contexts) {
            close("du", g, w, 1e-5);
        }
    }

    #[test]
    fn auc_is_one_for_separated_scores_a_half_for_ties_and_counts_pairs() {
        assert_eq!(auc(&[2.0, 3.0], &[0.0, 1.0]), 1.0);
        assert_eq!(auc(&[1.0, 1.0], &[1.0]), 0.5);
        // Of the 4 (positive, negative) pairs, 3 are ordered right.
        assert_eq!(auc(&[1.0, 3.0], &[0.0, 2.0]), 0.75);
    }

    #[test]
    fn training_separates_true_pairs_from_noise_on_a_repetitive_text() {
        // Two topics that never mix: words 1-4 and 5-8.
        let text = "CHAPTER 1\n".to_string() + &"a b c d a c b d e f g h e g f h ".repeat(300);
        let chapters = Chapters::new(&text, 9, 1000).unwrap();
        let settings = Sgns {
            epochs: 2,
            batch: 64,
            subsample: 1.0,
            optimizer: Method::Adam.at(1e-2),
            ..Sgns::AUSTEN
        };
        let (model, history) = settings.train::<9, 8>(&chapters, 0).unwrap();
        assert!(history.losses().last().unwrap() < &history.losses()[0]);
        let v = |w: &str| chapters.vocab.id(w) as u32;
        let same = model.scores(&[(v("a"), v("b")), (v("e"), v("f"))]);
        let across = model.scores(&[(v("a"), v("f")), (v("e"), v("b"))]);
        assert!(
            same.iter().all(|s| across.iter().all(|a| s > a)),
            "{same:?} vs {across:?}"
        );
    }
}
