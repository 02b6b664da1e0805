//! Datasets: toy data generated from a seed, and the real datasets of `data/`, each
//! checked against its sha256 when first read (see `data/README.md` for the credits).
//!
//! The files live in `$MUSTKNOW_DATA`, else in the crate's `data/` folder; each loader is a
//! free function ([`mnist`]) reading from there and a [`DataDir`] method for any other folder.
//! [`MiniBatches`], [`one_hot`] and [`Standardizer`] turn the data into dfdx tensors.

mod batches;
mod embeddings;
mod files;
mod images;
mod synthetic;
mod tables;
mod text;
mod verify;

pub use batches::{one_hot, Batch, MiniBatches, Standardizer};
pub use embeddings::{analogies, glove, Analogy, Embeddings, Measure};
pub use files::{sha256_hex, DataDir, DataFile, FILES};
pub use images::{block_means, digits, fashion_mnist, mnist, ImageSet, FASHION_CLASSES};
pub use synthetic::{two_moons, Points2d};
pub use tables::{class_labels, feature_matrix, iris, wine};
pub use text::{austen, words, CharCorpus, Vocab, WordCorpus};
pub use verify::Check;
