//! Pre-trained word vectors (GloVe) and the word2vec analogy questions that test them.

use super::files::{DataDir, ANALOGIES, GLOVE};
use crate::Error;
use std::collections::HashMap;

/// GloVe's 50-dimensional vectors of the 20,000 most frequent words (Pennington, Socher
/// and Manning, 2014), used from the word-embedding notebook onwards.
pub fn glove() -> Result<Embeddings, Error> {
    DataDir::from_env().glove()
}

/// The word-analogy questions of word2vec (Mikolov et al., 2013): 19,544 in 14 sections.
pub fn analogies() -> Result<Vec<Analogy>, Error> {
    DataDir::from_env().analogies()
}

/// A table of word vectors, `(len, dim)` row-major, in the file's (frequency) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    words: Vec<String>,
    index: HashMap<String, usize>,
    vectors: Vec<f32>,
    dim: usize,
    /// Each vector's length, kept so a nearest-neighbour search is one dot product a word.
    norms: Vec<f32>,
}

impl Embeddings {
    /// A table from its words and their row-major `(words.len(), dim)` vectors.
    pub fn new(words: Vec<String>, vectors: Vec<f32>, dim: usize) -> Result<Embeddings, Error> {
        if vectors.len() != words.len() * dim {
            return Err(Error::ShapeMismatch {
                what: "the number of vector components",
                expected: format!("{} words × {dim}", words.len()),
                got: vectors.len().to_string(),
            });
        }
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        let norms = vectors
            .chunks(dim.max(1))
            .map(|v| dot(v, v).sqrt())
            .collect();
        Ok(Embeddings {
            words,
            index,
            vectors,
            dim,
            norms,
        })
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The number of components of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The words, most frequent first.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The vector of `word`, if it is in the table.
    pub fn vector(&self, word: &str) -> Option<&[f32]> {
        let i = *self.index.get(word)?;
        Some(&self.vectors[i * self.dim..(i + 1) * self.dim])
    }

    /// The vector of `word`, or an error naming it when it is not in the table.
    pub fn vector_of(&self, word: &str) -> Result<&[f32], Error> {
        self.vector(word).ok_or_else(|| Error::InvalidArgument {
            what: "a word",
            expected: "one in the table's vocabulary",
            got: word.to_owned(),
        })
    }

    /// The position of `word` in the table (its frequency rank, from 0), if it is there.
    pub fn index_of(&self, word: &str) -> Option<usize> {
        self.index.get(word).copied()
    }

    /// The vector of the `i`-th word.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// All vectors, `(len, dim)` row-major.
    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    /// Each vector's Euclidean length, in the table's order.
    pub fn norms(&self) -> &[f32] {
        &self.norms
    }

    /// The same words with every vector divided by its length (a zero vector stays zero):
    /// on unit vectors a dot product is the cosine (notebook `06_embeddings`, §1).
    pub fn normalized(&self) -> Embeddings {
        let vectors = self
            .vectors
            .chunks(self.dim.max(1))
            .zip(&self.norms)
            .flat_map(|(v, &n)| v.iter().map(move |x| x / n.max(f32::MIN_POSITIVE)))
            .collect();
        Embeddings::new(self.words.clone(), vectors, self.dim).expect("same shape")
    }

    /// The `k` words whose vectors are closest to `query` by cosine similarity, most
    /// similar first, leaving out `exclude` (the words a query was built from).
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        exclude: &[&str],
    ) -> Result<Vec<(&str, f32)>, Error> {
        self.nearest_by(Measure::Cosine, query, k, exclude)
    }

    /// The `k` words closest to `query` by `measure`, closest first with their scores
    /// (higher is closer), leaving out `exclude`. Notebook `06_embeddings`, §1, compares
    /// the measures.
    pub fn nearest_by(
        &self,
        measure: Measure,
        query: &[f32],
        k: usize,
        exclude: &[&str],
    ) -> Result<Vec<(&str, f32)>, Error> {
        if query.len() != self.dim {
            return Err(Error::ShapeMismatch {
                what: "the query vector",
                expected: format!("{} values, the embeddings' dimension", self.dim),
                got: format!("{} values", query.len()),
            });
        }
        let query_norm = dot(query, query).sqrt();
        let score = |v: &[f32], norm: f32| match measure {
            Measure::Cosine => dot(v, query) / (norm * query_norm).max(f32::MIN_POSITIVE),
            Measure::Dot => dot(v, query),
            Measure::Euclidean => -v
                .iter()
                .zip(query)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
        };
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .chunks(self.dim.max(1))
            .zip(&self.norms)
            .enumerate()
            .filter(|(i, _)| !exclude.contains(&self.words[*i].as_str()))
            .map(|(i, (v, &norm))| (i, score(v, norm)))
            .collect();
        let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1);
        if scored.len() > k {
            scored.select_nth_unstable_by(k, by_score);
            scored.truncate(k);
        }
        scored.sort_by(by_score);
        Ok(scored
            .into_iter()
            .map(|(i, s)| (self.words[i].as_str(), s))
            .collect())
    }
}

/// How [`Embeddings::nearest_by`] scores a word against a query (notebook
/// `06_embeddings`, §1): higher is closer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// The cosine of the angle between the vectors: their lengths do not count.
    Cosine,
    /// The raw dot product: long vectors score high against everything.
    Dot,
    /// Minus the Euclidean distance.
    Euclidean,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One analogy question, `a : b :: c : d` ("athens greece baghdad iraq"): `d` should be
/// the word nearest to `b - a + c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analogy {
    /// The section heading, such as `capital-common-countries`.
    pub section: String,
    /// The four words, lower-cased like GloVe's vocabulary (gensim's evaluation does the same).
    pub words: [String; 4],
}

impl DataDir {
    /// [`glove`] from this folder.
    pub fn glove(&self) -> Result<Embeddings, Error> {
        let text = self.read(&GLOVE)?;
        let text = String::from_utf8_lossy(&text);
        let mut words = Vec::new();
        let mut vectors = Vec::new();
        let mut dim = None;
        for (n, line) in text.lines().enumerate() {
            let bad =
                |problem: String| self.bad_format(&GLOVE, format!("line {}: {problem}", n + 1));
            let mut fields = line.split(' ');
            let word = fields.next().unwrap_or_default();
            let before = vectors.len();
            for field in fields {
                let x: f32 = field
                    .parse()
                    .map_err(|_| bad(format!("{field:?} is not a number")))?;
                vectors.push(x);
            }
            let got = vectors.len() - before;
            match dim {
                None if got > 0 => dim = Some(got),
                Some(d) if d == got => {}
                _ => {
                    return Err(bad(format!(
                        "{got} numbers after {word:?}, expected {}",
                        dim.unwrap_or(50)
                    )))
                }
            }
            words.push(word.to_owned());
        }
        Embeddings::new(words, vectors, dim.unwrap_or(0))
    }

    /// [`analogies`] from this folder.
    pub fn analogies(&self) -> Result<Vec<Analogy>, Error> {
        let text = self.read(&ANALOGIES)?;
        let text = String::from_utf8_lossy(&text);
        let mut section = None;
        let mut questions = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let bad =
                |problem: &str| self.bad_format(&ANALOGIES, format!("line {}: {problem}", n + 1));
            if let Some(name) = line.strip_prefix(": ") {
                section = Some(name.trim().to_owned());
                continue;
            }
            let section = section
                .clone()
                .ok_or_else(|| bad("a question before the first `: section` line"))?;
            let words: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
            let words: [String; 4] = words
                .try_into()
                .map_err(|_| bad("expected four words `a b c d`"))?;
            questions.push(Analogy { section, words });
        }
        Ok(questions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn glove_has_20000_words_of_50_dims_and_france_is_near_french() {
        let glove = glove().unwrap();
        assert_eq!((glove.len(), glove.dim()), (20_000, 50));
        assert_eq!(glove.words()[0], "the");
        let france = glove.vector("france").unwrap();
        let near: Vec<&str> = glove
            .nearest(france, 5, &["france"])
            .unwrap()
            .iter()
            .map(|n| n.0)
            .collect();
        assert!(near.contains(&"french"), "{near:?}");
        assert!(!near.contains(&"france"));
    }

    #[test]
    fn king_minus_man_plus_woman_is_queen() {
        let glove = glove().unwrap();
        let [king, man, woman] = ["king", "man", "woman"].map(|w| glove.vector(w).unwrap());
        let query: Vec<f32> = (0..50).map(|i| king[i] - man[i] + woman[i]).collect();
        let best = glove.nearest(&query, 1, &["king", "man", "woman"]).unwrap();
        assert_eq!(best[0].0, "queen");
    }

    #[test]
    fn nearest_ranks_by_cosine() {
        let words = ["a", "b", "c"].map(String::from).to_vec();
        let table = Embeddings::new(words, vec![1.0, 0.0, 1.0, 1.0, 0.0, 3.0], 2).unwrap();
        let near = table.nearest(&[1.0, 0.1], 3, &[]).unwrap();
        assert_eq!(
            near.iter().map(|n| n.0).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!((near[1].1 - (1.1 / (2f32.sqrt() * 1.01f32.sqrt()))).abs() < 1e-6);
        assert!(Embeddings::new(vec!["a".into()], vec![1.0], 2).is_err());
        assert!(table.nearest(&[1.0], 3, &[]).is_err());
    }

    #[test]
    fn the_measures_rank_by_cosine_dot_and_distance() {
        let words = ["a", "b", "c"].map(String::from).to_vec();
        let table = Embeddings::new(words, vec![1.0, 0.0, 3.0, 3.0, 0.2, 0.5], 2).unwrap();
        let order = |measure| {
            let near = table.nearest_by(measure, &[1.0, 0.1], 3, &[]).unwrap();
            near.iter().map(|n| n.0).collect::<Vec<_>>()
        };
        assert_eq!(order(Measure::Cosine), ["a", "b", "c"]);
        assert_eq!(order(Measure::Dot), ["b", "a", "c"]);
        assert_eq!(order(Measure::Euclidean), ["a", "c", "b"]);
        let unit = table.normalized();
        assert!(unit.norms().iter().all(|n| (n - 1.0).abs() < 1e-6));
        assert_eq!(unit.index_of("c"), Some(2));
        assert!((unit.row(1)[0] - 1.0 / 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn analogies_are_19544_questions_in_14_sections() {
        let questions = analogies().unwrap();
        assert_eq!(questions.len(), 19_544);
        let sections: HashSet<&str> = questions.iter().map(|q| q.section.as_str()).collect();
        assert_eq!(sections.len(), 14);
        assert_eq!(questions[0].section, "capital-common-countries");
        assert_eq!(questions[0].words, ["athens", "greece", "baghdad", "iraq"]);
    }
}
