//! §3: 2-D maps of word vectors by PCA (linfa-reduction), and how parallel the offsets of
//! one relation (country → capital, male → female) are.

use crate::data::{Analogy, Embeddings};
use crate::Error;
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_reduction::Pca;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The distinct word pairs `(a, b)` and `(c, d)` of one section of the analogy set, in
/// order of first appearance, both words in the vocabulary: `(athens, greece)` …
pub fn pairs(embeddings: &Embeddings, questions: &[Analogy], section: &str) -> Vec<[String; 2]> {
    let mut pairs: Vec<[String; 2]> = Vec::new();
    for q in questions.iter().filter(|q| q.section == section) {
        let [a, b, c, d] = q.words.clone();
        for pair in [[a, b], [c, d]] {
            let known = pair.iter().all(|w| embeddings.index_of(w).is_some());
            if known && !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }
    pairs
}

/// `n` pairs of distinct words drawn uniformly from the whole vocabulary: the baseline
/// for how parallel unrelated offsets are.
pub fn random_pairs(embeddings: &Embeddings, n: usize, seed: u64) -> Vec<[String; 2]> {
    let mut rng = StdRng::seed_from_u64(seed);
    let words = embeddings.words();
    (0..n)
        .map(|_| {
            let a = rng.gen_range(0..words.len());
            let b = (a + rng.gen_range(1..words.len())) % words.len();
            [words[a].clone(), words[b].clone()]
        })
        .collect()
}

/// The offsets `second − first` of `pairs`, one vector each.
pub fn offsets(embeddings: &Embeddings, pairs: &[[String; 2]]) -> Result<Vec<Vec<f32>>, Error> {
    pairs
        .iter()
        .map(|[from, to]| {
            let (from, to) = (embeddings.vector_of(from)?, embeddings.vector_of(to)?);
            Ok(to.iter().zip(from).map(|(t, f)| t - f).collect())
        })
        .collect()
}

/// The mean cosine over all pairs of distinct vectors: 1 when they are all parallel,
/// about 0 for random directions.
pub fn mean_pairwise_cosine(vectors: &[Vec<f32>]) -> Result<f64, Error> {
    if vectors.len() < 2 {
        return Err(Error::InvalidArgument {
            what: "a mean pairwise cosine",
            expected: "at least two vectors",
            got: vectors.len().to_string(),
        });
    }
    let norm = |v: &[f32]| v.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
    let (mut total, mut count) = (0.0, 0);
    for (i, u) in vectors.iter().enumerate() {
        for v in &vectors[i + 1..] {
            let dot: f64 = u.iter().zip(v).map(|(x, y)| (x * y) as f64).sum();
            total += dot / (norm(u) * norm(v)).max(f64::MIN_POSITIVE);
            count += 1;
        }
    }
    Ok(total / count as f64)
}

/// The vectors of `words` as the rows of an `(words, dim)` matrix of `f64`, as linfa
/// takes them.
pub fn matrix(embeddings: &Embeddings, words: &[String]) -> Result<Array2<f64>, Error> {
    let mut rows = Array2::zeros((words.len(), embeddings.dim()));
    for (mut row, word) in rows.rows_mut().into_iter().zip(words) {
        for (x, &v) in row.iter_mut().zip(embeddings.vector_of(word)?) {
            *x = v as f64;
        }
    }
    Ok(rows)
}

/// A 2-D map of some words: linfa-reduction's PCA fitted on their vectors, and each word's
/// coordinates on the first two principal components (notebook `06_embeddings`, §3).
pub struct Map {
    pub words: Vec<String>,
    /// `[PC 1, PC 2]` of each word.
    pub points: Vec<[f64; 2]>,
    /// The fitted PCA: its singular values and explained-variance ratios.
    pub pca: Pca<f64>,
}

/// Fits a 2-component PCA on the vectors of `words` and projects them.
pub fn pca_map(embeddings: &Embeddings, words: &[String]) -> Result<Map, Error> {
    let records = matrix(embeddings, words)?;
    let pca = Pca::params(2)
        .fit(&DatasetBase::from(records.clone()))
        .map_err(|e| Error::InvalidArgument {
            what: "a PCA map",
            expected: "at least two words with distinct vectors",
            got: e.to_string(),
        })?;
    let projected: Array2<f64> = pca.predict(&records);
    let points = projected.rows().into_iter().map(|r| [r[0], r[1]]).collect();
    Ok(Map {
        words: words.to_vec(),
        points,
        pca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Embeddings {
        let words = ["paris", "france", "rome", "italy", "cat"]
            .map(String::from)
            .to_vec();
        #[rustfmt::skip]
        let vectors = vec![
            1.0, 1.0, 0.0,
            0.0, 1.0, 0.0,
            1.0, 0.0, 1.0,
            0.0, 0.0, 1.0,
            0.3, -2.0, 0.5,
        ];
        Embeddings::new(words, vectors, 3).unwrap()
    }

    #[test]
    fn pairs_are_distinct_and_known_and_their_offsets_parallel() {
        let q = |w: [&str; 4]| Analogy {
            section: "capitals".into(),
            words: w.map(String::from),
        };
        let questions = [
            q(["paris", "france", "rome", "italy"]),
            q(["rome", "italy", "paris", "france"]),
            q(["rome", "italy", "oslo", "norway"]),
        ];
        let found = pairs(&table(), &questions, "capitals");
        assert_eq!(
            found,
            [["paris", "france"], ["rome", "italy"]].map(|p| p.map(String::from))
        );
        assert!(pairs(&table(), &questions, "family").is_empty());
        let offsets = offsets(&table(), &found).unwrap();
        assert_eq!(offsets, [vec![-1.0, 0.0, 0.0], vec![-1.0, 0.0, 0.0]]);
        assert!((mean_pairwise_cosine(&offsets).unwrap() - 1.0).abs() < 1e-12);
        let opposite = [vec![1.0, 0.0], vec![-1.0, 0.0], vec![0.0, 2.0]];
        assert!((mean_pairwise_cosine(&opposite).unwrap() - (-1.0 / 3.0)).abs() < 1e-12);
        assert!(mean_pairwise_cosine(&offsets[..1]).is_err());
    }

    #[test]
    fn random_pairs_are_seeded_and_never_a_word_with_itself() {
        let a = random_pairs(&table(), 50, 3);
        assert_eq!(a, random_pairs(&table(), 50, 3));
        assert_ne!(a, random_pairs(&table(), 50, 4));
        assert!(a.iter().all(|[x, y]| x != y));
    }

    #[test]
    fn the_map_keeps_the_spread_of_a_plane() {
        // Points on a plane in 3-d: two components hold all the variance.
        let words: Vec<String> = ["paris", "france", "rome", "italy"]
            .map(String::from)
            .to_vec();
        let map = pca_map(&table(), &words).unwrap();
        let centred = matrix(&table(), &words).unwrap() - map.pca.mean();
        let spread = |m: &Array2<f64>| m.iter().map(|x| x * x).sum::<f64>();
        let kept: f64 = map.points.iter().map(|p| p[0] * p[0] + p[1] * p[1]).sum();
        assert!(
            (kept - spread(&centred)).abs() < 1e-6,
            "{kept} vs {}",
            spread(&centred)
        );
        assert!(pca_map(&table(), &["nowhere".to_owned()]).is_err());
    }
}
