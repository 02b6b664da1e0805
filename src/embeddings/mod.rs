//! Notebook `06_embeddings`: word vectors and the geometry they hold, on GloVe's
//! pre-trained vectors (Pennington, Socher & Manning, 2014; the table and its
//! nearest-neighbour search are [`crate::data::Embeddings`]), and vectors trained here on
//! Jane Austen's novels.
//!
//! - [`similarity`]: §1, cosine similarity, and why not the raw dot product.
//! - [`analogy`]: §2, analogies by vector offset over the whole analogy set (3CosAdd,
//!   3CosMul).
//! - [`pca`]: §3, 2-D maps by PCA (linfa) and how parallel the offsets of a relation are.
//! - [`corpus`]: §4–5, Austen's chapters as training and held-out word ids, subsampling
//!   and the noise distribution.
//! - [`word2vec`]: §4, skip-gram with negative sampling.
//! - [`counts`]: §5, co-occurrence counts, PPMI with a truncated SVD, and GloVe.
//! - [`bert`]: §6, BERT's masked language modelling, on the shared
//!   [`crate::transformer`] blocks.

pub mod analogy;
pub mod bert;
pub mod corpus;
pub mod counts;
pub mod pca;
pub mod similarity;
pub mod word2vec;

/// The vocabulary §4 and §5 train on, `<unk>` included: Austen's 4,095 most frequent words
/// (§6 keeps one word fewer, for `[MASK]`).
pub const VOCAB: usize = 4096;
/// The dimension of the vectors §4 and §5 train, and of §6's encoder.
pub const DIM: usize = 64;
