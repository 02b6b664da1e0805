//! §1: cosine similarity, and how a vector's length tracks its word's frequency.

use crate::data::Embeddings;
use crate::Error;

/// The mean vector length of the words in each of `bins` equal runs of frequency ranks
/// (the table is in frequency order), as `[mean rank, mean length]` with ranks from 1:
/// notebook `06_embeddings`, §1, draws it.
pub fn norm_by_frequency(embeddings: &Embeddings, bins: usize) -> Result<Vec<[f64; 2]>, Error> {
    let n = embeddings.len();
    if bins == 0 || bins > n {
        return Err(Error::InvalidArgument {
            what: "the number of frequency bins",
            expected: "between 1 and the number of words",
            got: format!("{bins} bins for {n} words"),
        });
    }
    let norms = embeddings.norms();
    Ok((0..bins)
        .map(|b| {
            let (start, end) = (b * n / bins, (b + 1) * n / bins);
            let mean =
                |values: &mut dyn Iterator<Item = f64>| values.sum::<f64>() / (end - start) as f64;
            [
                mean(&mut (start..end).map(|r| (r + 1) as f64)),
                mean(&mut norms[start..end].iter().map(|&x| x as f64)),
            ]
        })
        .collect())
}

/// The mean frequency rank (from 1) of `words`, with the rank of a word not in the table
/// counted as the table's length: how frequent a list of neighbours is (§1).
pub fn mean_rank(embeddings: &Embeddings, words: &[&str]) -> f64 {
    let rank = |w: &&str| embeddings.index_of(w).map_or(embeddings.len(), |i| i + 1) as f64;
    words.iter().map(rank).sum::<f64>() / words.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_average_ranks_and_lengths() {
        let words = ["a", "b", "c", "d"].map(String::from).to_vec();
        let table =
            Embeddings::new(words, vec![3.0, 4.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0], 2).unwrap();
        assert_eq!(
            norm_by_frequency(&table, 2).unwrap(),
            [[1.5, 3.0], [3.5, 1.0]]
        );
        assert!(norm_by_frequency(&table, 5).is_err());
        assert_eq!(
            mean_rank(&table, &["a", "d", "zzz"]),
            (1.0 + 4.0 + 4.0) / 3.0
        );
    }
}
