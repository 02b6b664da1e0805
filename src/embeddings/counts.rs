//! Counting instead of predicting (notebook `06_embeddings` §5): a word–context
//! co-occurrence matrix of the training chapters, turned into vectors two ways: positive
//! pointwise mutual information factorised by a truncated SVD (Levy, Goldberg & Dagan,
//! 2015), and GloVe's weighted least squares on the log counts (Pennington, Socher &
//! Manning, 2014).

use crate::data::Embeddings;
use crate::nn::embedding_dots;
use crate::optim::{Method, OptimizerConfig};
use crate::runtime::device;
use crate::train::{fit, Batches, History, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use linfa_linalg::lobpcg::{Order, TruncatedSvd};
use ndarray::{Array2, Axis as NdAxis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_distr::Uniform;

/// How often each word (row) has each context (column) within `window` words of it in
/// `chapters`, a context at distance d counting (window − d + 1) / window: the weight
/// word2vec's dynamic window gives it on average (§4), so the three methods of §5 see the
/// same contexts. Symmetric; windows stay inside a chapter.
pub fn cooccurrences(chapters: &[Vec<usize>], vocab: usize, window: usize) -> Array2<f32> {
    let mut counts = Array2::<f32>::zeros((vocab, vocab));
    for chapter in chapters {
        for (i, &w) in chapter.iter().enumerate() {
            for d in 1..=window.min(chapter.len() - 1 - i) {
                let c = chapter[i + d];
                let weight = (window - d + 1) as f32 / window as f32;
                counts[[w, c]] += weight;
                counts[[c, w]] += weight;
            }
        }
    }
    counts
}

/// Positive PMI: `max(0, log P(w, c) / (P(w) P_α(c)))`, 0 where the pair never occurs,
/// with the context distribution smoothed by the power `alpha` (Levy et al., 2015, use
/// ¾ as word2vec's noise does: it lowers the PMI of rare contexts, which is otherwise
/// inflated).
pub fn ppmi(counts: &Array2<f32>, alpha: f32) -> Array2<f32> {
    let total: f32 = counts.sum();
    let rows = counts.sum_axis(NdAxis(1));
    let smoothed = counts.sum_axis(NdAxis(0)).mapv(|c| c.powf(alpha));
    let smoothed_total: f32 = smoothed.sum();
    let mut out = counts.clone();
    for ((w, c), x) in out.indexed_iter_mut() {
        if *x > 0.0 {
            let pmi =
                (*x / total).ln() - (rows[w] / total).ln() - (smoothed[c] / smoothed_total).ln();
            *x = pmi.max(0.0);
        }
    }
    out
}

/// The words' vectors from the rank-`dim` truncated SVD of `matrix` (linfa-linalg's
/// LOBPCG): `U_dim Σ_dim^½`, splitting the singular values evenly between words and
/// contexts (Levy et al., 2015, found this better than `U Σ`). Returns the vectors and
/// the singular values, largest first.
pub fn svd_vectors(
    matrix: &Array2<f32>,
    dim: usize,
    seed: u64,
) -> Result<(Array2<f32>, Vec<f32>), Error> {
    let svd =
        TruncatedSvd::new_with_rng(matrix.clone(), Order::Largest, StdRng::seed_from_u64(seed))
            .precision(1e-3)
            .maxiter(200)
            .decompose(dim)
            .map_err(|e| Error::InvalidArgument {
                what: "the truncated SVD",
                expected: "to converge",
                got: e.to_string(),
            })?;
    let (u, sigma, _) = svd.values_vectors();
    let mut vectors = u;
    for (mut column, s) in vectors.columns_mut().into_iter().zip(&sigma) {
        column *= s.sqrt();
    }
    Ok((vectors, sigma.to_vec()))
}

/// Rows of `vectors` as a table of word vectors for `words`.
pub fn embeddings(words: &[String], vectors: &Array2<f32>) -> Result<Embeddings, Error> {
    Embeddings::new(
        words.to_vec(),
        vectors.iter().copied().collect(),
        vectors.ncols(),
    )
}

/// GloVe's weighting of a pair seen `x` times: (x / x_max)^¾, capped at 1, so that rare,
/// noisy pairs count little and frequent ones do not dominate (x_max = 100 in the paper).
pub fn glove_weight(x: f32, x_max: f32) -> f32 {
    (x / x_max).powf(0.75).min(1.0)
}

/// GloVe's parameters for a `W`-word vocabulary: word vectors `w` and context vectors `w̃`
/// with a bias each. The paper keeps `w + w̃` as the embedding.
#[derive(Clone, Debug)]
pub struct Glove<const W: usize, const D: usize, E: Dtype = f32, Dev: Storage<E> = Cpu> {
    pub word: Tensor<Rank2<W, D>, E, Dev>,
    pub context: Tensor<Rank2<W, D>, E, Dev>,
    pub word_bias: Tensor<Rank1<W>, E, Dev>,
    pub context_bias: Tensor<Rank1<W>, E, Dev>,
}

/// §5's GloVe: [`VOCAB`](super::VOCAB) words × [`DIM`](super::DIM) dimensions.
pub type AustenGlove = Glove<{ super::VOCAB }, { super::DIM }>;

/// A batch of non-zero co-occurrences: rows, columns and counts.
pub type Pairs = (Vec<usize>, Vec<usize>, Vec<f32>);

impl<const W: usize, const D: usize> Glove<W, D, f32, Cpu> {
    /// As the paper's code: every value uniform in ±0.5/D.
    pub fn new(dev: &Cpu) -> Glove<W, D, f32, Cpu> {
        let bound = 0.5 / D as f32;
        let u = Uniform::new(-bound, bound);
        Glove {
            word: dev.sample(u),
            context: dev.sample(u),
            word_bias: dev.sample(u),
            context_bias: dev.sample(u),
        }
    }

    /// The mean of `f(x) (w_i·w̃_j + b_i + b̃_j − log x)²` over a batch, the dot products
    /// by [`embedding_dots`].
    pub fn loss<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        rows: Tensor<(usize,), usize, Cpu, T>,
        (columns, counts): (&[usize], &[f32]),
        x_max: f32,
    ) -> Result<Tensor<Rank0, f32, Cpu, T>, Error> {
        let dev = rows.device().clone();
        let n = counts.len();
        let (rows, tape) = rows.split_tape();
        let word = self.word.clone().put_tape(tape);
        let dots = embedding_dots(word, &self.context, &rows.as_vec(), columns)?
            .try_reshape_like(&(n,))?;
        let b = self.word_bias.retaped::<T>().try_gather(rows)?;
        let columns = dev.tensor_from_vec(columns.to_vec(), (n,));
        let bc = self.context_bias.retaped::<T>().try_gather(columns)?;
        let log_x = dev.tensor_from_vec(counts.iter().map(|x| x.ln()).collect(), (n,));
        let weight = dev.tensor_from_vec(
            counts.iter().map(|&x| glove_weight(x, x_max)).collect(),
            (n,),
        );
        let error = dots + b + bc - log_x;
        Ok((error.square() * weight).mean())
    }

    /// `w + w̃` for every word, as a table of word vectors.
    pub fn embeddings(&self, words: &[String]) -> Result<Embeddings, Error> {
        let sum = (self.word.clone() + self.context.clone()).as_vec();
        Embeddings::new(words.to_vec(), sum, D)
    }
}

/// How §5 trains GloVe.
#[derive(Clone, Debug)]
pub struct GloveSettings {
    pub x_max: f32,
    pub batch: usize,
    pub epochs: usize,
    pub optimizer: OptimizerConfig,
}

impl GloveSettings {
    /// The settings of notebook `06_embeddings` §5 (the paper: x_max 100, AdaGrad at 0.05).
    pub const AUSTEN: GloveSettings = GloveSettings {
        x_max: 100.0,
        batch: 8192,
        epochs: 10,
        optimizer: Method::Adam.at(1e-2),
    };

    /// §5's run: [`GloveSettings::train`] for an [`AustenGlove`], compiled once with the
    /// crate rather than in the notebook cell that calls it.
    pub fn train_austen(
        &self,
        counts: &Array2<f32>,
        seed: u64,
    ) -> Result<(AustenGlove, History), Error> {
        self.train(counts, seed)
    }

    /// GloVe fitted to the non-zero entries of `counts`, with its history.
    pub fn train<const W: usize, const D: usize>(
        &self,
        counts: &Array2<f32>,
        seed: u64,
    ) -> Result<(Glove<W, D>, History), Error> {
        if counts.nrows() != W {
            return Err(Error::ShapeMismatch {
                what: "the co-occurrence matrix",
                expected: format!("{W} rows, the model's vocabulary"),
                got: format!("{} rows", counts.nrows()),
            });
        }
        let dev = device(seed);
        let mut model = Glove::<W, D>::new(&dev);
        let mut optimizer = self.optimizer.build(&model);
        let entries: Vec<(usize, usize, f32)> = counts
            .indexed_iter()
            .filter(|(_, &x)| x > 0.0)
            .map(|((i, j), &x)| (i, j, x))
            .collect();
        let batches = Entries {
            entries,
            batch: self.batch,
            rng: StdRng::seed_from_u64(seed ^ 0x910e),
        };
        let x_max = self.x_max;
        let objective =
            |m: &mut Glove<W, D>, (rows, columns, xs): Pairs, grads| -> Result<Measured, Error> {
                let rows = dev
                    .tensor_from_vec(rows.clone(), (rows.len(),))
                    .traced(grads);
                Ok(Measured::loss(m.loss(rows, (&columns, &xs), x_max)?))
            };
        let mut config = TrainConfig::new(self.epochs);
        config.schedule = self.optimizer.schedule;
        let history = fit(&mut model, optimizer.as_mut(), batches, objective, &config)?;
        Ok((model, history))
    }
}

/// The non-zero co-occurrences, shuffled every epoch.
struct Entries {
    entries: Vec<(usize, usize, f32)>,
    batch: usize,
    rng: StdRng,
}

impl Batches for Entries {
    type Batch = Pairs;

    fn per_epoch(&self) -> usize {
        self.entries.len().div_ceil(self.batch)
    }

    fn epoch(&mut self, _epoch: usize) -> Result<impl Iterator<Item = Pairs> + '_, Error> {
        self.entries.shuffle(&mut self.rng);
        Ok(self.entries.chunks(self.batch).map(|chunk| {
            let rows = chunk.iter().map(|e| e.0).collect();
            let columns = chunk.iter().map(|e| e.1).collect();
            let counts = chunk.iter().map(|e| e.2).collect();
            (rows, columns, counts)
        }))
    }
}

impl<const W: usize, const D: usize, E: Dtype, Dev: Device<E>> TensorCollection<E, Dev>
    for Glove<W, D, E, Dev>
{
    type To<E2: Dtype, D2: Device<E2>> = Glove<W, D, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, Dev>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "word",
                    |s| &s.word,
                    |s| &mut s.word,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "context",
                    |s| &s.context,
                    |s| &mut s.context,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "word_bias",
                    |s| &s.word_bias,
                    |s| &mut s.word_bias,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "context_bias",
                    |s| &s.context_bias,
                    |s| &mut s.context_bias,
                    TensorOptions::reset_to_zeros(),
                ),
            ),
            |(word, context, word_bias, context_bias)| Glove {
                word,
                context,
                word_bias,
                context_bias,
            },
        )
    }
}

/// How much two tables of word vectors agree: for each of `words`, the share of its `k`
/// nearest neighbours in `a` that are also among its `k` nearest in `b`, averaged.
pub fn neighbour_overlap(
    a: &Embeddings,
    b: &Embeddings,
    words: &[&str],
    k: usize,
) -> Result<f64, Error> {
    let mut total = 0.0;
    for &word in words {
        let near = |e: &Embeddings| -> Result<Vec<String>, Error> {
            Ok(e.nearest(e.vector_of(word)?, k, &[word])?
                .into_iter()
                .map(|(w, _)| w.to_string())
                .collect())
        };
        let (na, nb) = (near(a)?, near(b)?);
        total += na.iter().filter(|w| nb.contains(w)).count() as f64 / k as f64;
    }
    Ok(total / words.len() as f64)
}

/// `table` with its vectors dealt out to the words at random: the chance level of
/// [`neighbour_overlap`], measured rather than assumed.
pub fn shuffled(table: &Embeddings, seed: u64) -> Result<Embeddings, Error> {
    let mut order: Vec<usize> = (0..table.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let vectors = order
        .iter()
        .flat_map(|&i| table.row(i).iter().copied())
        .collect();
    Embeddings::new(table.words().to_vec(), vectors, table.dim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooccurrences_weight_by_distance_within_a_window_of_two() {
        // "a b a": (a,b) at distance 1 twice, (a,a) at distance 2 once.
        let counts = cooccurrences(&[vec![0, 1, 0]], 2, 2);
        assert_eq!(counts[[0, 1]], 2.0);
        assert_eq!(counts[[1, 0]], 2.0);
        assert_eq!(counts[[0, 0]], 2.0 * 0.5);
        assert_eq!(counts[[1, 1]], 0.0);
    }

    #[test]
    fn ppmi_matches_a_hand_computation() {
        // Counts [[0, 2], [2, 1]], total 5; α = 1: PMI(0,1) = ln((2/5) / ((2/5)(3/5))) = ln(5/3).
        let counts = ndarray::array![[0.0f32, 2.0], [2.0, 1.0]];
        let p = ppmi(&counts, 1.0);
        assert!((p[[0, 1]] - (5.0f32 / 3.0).ln()).abs() < 1e-6, "{p}");
        // PMI(1,1) = ln((1/5) / ((3/5)(3/5))) < 0, clipped to 0; a zero count stays 0.
        assert_eq!(p[[1, 1]], 0.0);
        assert_eq!(p[[0, 0]], 0.0);
    }

    #[test]
    fn svd_vectors_reproduce_a_low_rank_matrix() {
        // 3 x xᵀ + y yᵀ for orthonormal x, y in 30 dimensions, plus 0.01 I (LOBPCG needs a
        // matrix of full rank): singular values 3.01 and 1.01, and U Σ^½ (U Σ^½)ᵀ is the
        // matrix up to the 0.01 I.
        let n = 30;
        let x =
            ndarray::Array1::from_shape_fn(n, |i| if i < 10 { 1.0f32 } else { 0.0 }) / 10f32.sqrt();
        let y = ndarray::Array1::from_shape_fn(n, |i| if i >= 20 { 1.0f32 } else { 0.0 })
            / 10f32.sqrt();
        let outer = |v: &ndarray::Array1<f32>| {
            v.view()
                .insert_axis(NdAxis(1))
                .dot(&v.view().insert_axis(NdAxis(0)))
        };
        let a = outer(&x) * 3.0 + outer(&y) + ndarray::Array2::<f32>::eye(n) * 0.01;
        let (v, sigma) = svd_vectors(&a, 2, 0).unwrap();
        assert!(
            (sigma[0] - 3.01).abs() < 1e-3 && (sigma[1] - 1.01).abs() < 1e-3,
            "{sigma:?}"
        );
        let back = v.dot(&v.t());
        assert!((back - &a).iter().all(|e| e.abs() < 0.011));
    }

    #[test]
    fn glove_fits_log_counts_of_a_small_matrix() {
        let counts = ndarray::array![[0.0f32, 50.0, 5.0], [50.0, 0.0, 20.0], [5.0, 20.0, 1.0]];
        let settings = GloveSettings {
            batch: 7,
            epochs: 300,
            optimizer: Method::Adam.at(3e-2),
            ..GloveSettings::AUSTEN
        };
        let (_, history) = settings.train::<3, 4>(&counts, 0).unwrap();
        let losses = history.losses();
        assert!(
            losses.last().unwrap() < &(losses[0] / 100.0),
            "{} -> {}",
            losses[0],
            losses.last().unwrap()
        );
    }

    #[test]
    fn identical_tables_overlap_fully() {
        let words: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let e = Embeddings::new(words, vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9], 2).unwrap();
        assert_eq!(neighbour_overlap(&e, &e, &["a", "c"], 2).unwrap(), 1.0);
        let dealt = shuffled(&e, 0).unwrap();
        let mut rows: Vec<&[f32]> = (0..4).map(|i| dealt.row(i)).collect();
        rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut original: Vec<&[f32]> = (0..4).map(|i| e.row(i)).collect();
        original.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(rows, original, "the same vectors, dealt to other words");
    }
}
