//! Notebook `06_embeddings`: word vectors and the geometry they hold, on GloVe's
//! pre-trained vectors (Pennington, Socher & Manning, 2014; the table and its
//! nearest-neighbour search are [`crate::data::Embeddings`]).
//!
//! - [`similarity`]: §1, cosine similarity, and why not the raw dot product.
//! - [`analogy`]: §2, analogies by vector offset over the whole analogy set (3CosAdd,
//!   3CosMul).
//! - [`pca`]: §3, 2-D maps by PCA (linfa) and how parallel the offsets of a relation are.

pub mod analogy;
pub mod pca;
pub mod similarity;
