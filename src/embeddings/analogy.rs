//! §2: analogies by vector offset, `a : b :: c : ?` answered by the word nearest to
//! `b − a + c` (Mikolov, Yih & Zweig, 2013), or by 3CosMul (Levy & Goldberg, 2014).

use crate::data::{Analogy, Embeddings};
use crate::Error;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use std::collections::HashMap;

/// How a candidate word `d` is scored against a question `a : b :: c : ?`, all vectors of
/// unit length (notebook `06_embeddings`, §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// cos(d, b − a + c), the standard rule (Mikolov et al., 2013). The query's length is
    /// the same for every `d`, so this ranks the words as cos(d, b) − cos(d, a) + cos(d, c).
    CosAdd,
    /// cos′(d, b) · cos′(d, c) / (cos′(d, a) + ε) with cos′ = (cos + 1) / 2 and ε = 0.001
    /// (Levy & Goldberg, 2014): one large similarity can no longer outvote the others.
    CosMul,
    /// cos(d, c) alone, ignoring `a` and `b`: the baseline that shows how much the offset adds
    /// (Linzen, 2016).
    OnlyC,
}

impl Rule {
    /// Every rule, in the order above.
    pub const ALL: [Rule; 3] = [Rule::CosAdd, Rule::CosMul, Rule::OnlyC];

    /// The rule's name as papers write it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::CosAdd => "3CosAdd",
            Rule::CosMul => "3CosMul",
            Rule::OnlyC => "only c",
        }
    }

    /// The score of a candidate from its cosines with `a`, `b` and `c`.
    pub fn score(self, cos_a: f32, cos_b: f32, cos_c: f32) -> f32 {
        const EPSILON: f32 = 1e-3;
        let shifted = |cos: f32| (cos + 1.0) / 2.0;
        match self {
            Rule::CosAdd => cos_b - cos_a + cos_c,
            Rule::CosMul => shifted(cos_b) * shifted(cos_c) / (shifted(cos_a) + EPSILON),
            Rule::OnlyC => cos_c,
        }
    }
}

/// Answers analogy questions against a whole vocabulary (notebook `06_embeddings`, §2).
///
/// The fast path behind the rule written out in the notebook: the cosines of every query
/// word with every word of the vocabulary are one matrix product of unit vectors,
/// `(query words, dim) × (dim, vocabulary)`, computed once; each question then only adds
/// (or multiplies) three rows of it and takes the best word.
pub struct Solver {
    /// The table with unit vectors.
    unit: Embeddings,
    /// The questions' words as rows of the table, `None` when one is not in the vocabulary.
    questions: Vec<Option<[usize; 4]>>,
    /// Each question's section of the analogy set.
    sections: Vec<String>,
    /// For each table row used as `a`, `b` or `c`, its row in `cosines`.
    slot: HashMap<usize, usize>,
    /// `(query words, vocabulary)`: the cosine of each query word with every word.
    cosines: Array2<f32>,
}

impl Solver {
    /// Prepares `questions` against `embeddings`: finds their words and computes the cosines.
    pub fn new(embeddings: &Embeddings, questions: &[Analogy]) -> Solver {
        let sections = questions.iter().map(|q| q.section.clone()).collect();
        let questions: Vec<Option<[usize; 4]>> = questions
            .iter()
            .map(|q| {
                let rows: Vec<usize> = q
                    .words
                    .iter()
                    .filter_map(|w| embeddings.index_of(w))
                    .collect();
                rows.try_into().ok()
            })
            .collect();
        let mut query_rows: Vec<usize> = questions
            .iter()
            .flatten()
            .flat_map(|q| q[..3].to_vec())
            .collect();
        query_rows.sort_unstable();
        query_rows.dedup();
        let slot = query_rows
            .iter()
            .enumerate()
            .map(|(s, &row)| (row, s))
            .collect();
        let unit = embeddings.normalized();
        let dim = unit.dim();
        let all = ArrayView2::from_shape((unit.len(), dim), unit.vectors()).expect("(len, dim)");
        let queries =
            Array2::from_shape_fn((query_rows.len(), dim), |(s, j)| unit.row(query_rows[s])[j]);
        let cosines = queries.dot(&all.t());
        Solver {
            unit,
            questions,
            sections,
            slot,
            cosines,
        }
    }

    /// How many questions have all four words in the vocabulary.
    pub fn covered(&self) -> usize {
        self.questions.iter().flatten().count()
    }

    /// The answer to every question under `rule`: `None` for a question not covered. With
    /// `exclude_query`, the question's own words `a`, `b` and `c` cannot be the answer (the
    /// standard evaluation); without it, they can.
    pub fn answers(&self, rule: Rule, exclude_query: bool) -> Vec<Option<usize>> {
        self.questions
            .par_iter()
            .map(|q| q.map(|[a, b, c, _]| self.best(rule, [a, b, c], exclude_query)))
            .collect()
    }

    /// The best-scoring word for the question `a : b :: c : ?`.
    fn best(&self, rule: Rule, [a, b, c]: [usize; 3], exclude_query: bool) -> usize {
        let row = |w: usize| self.cosines.row(self.slot[&w]);
        let (cos_a, cos_b, cos_c) = (row(a), row(b), row(c));
        let mut best = (usize::MAX, f32::NEG_INFINITY);
        for d in 0..self.unit.len() {
            if exclude_query && (d == a || d == b || d == c) {
                continue;
            }
            let score = rule.score(cos_a[d], cos_b[d], cos_c[d]);
            if score > best.1 {
                best = (d, score);
            }
        }
        best.0
    }

    /// The score `rule` gives `word` as the answer to question `q`, from the solver's
    /// cosines: the notebook compares its own rule with this. `None` when `q` is not covered
    /// or `word` is not in the vocabulary.
    pub fn score(&self, rule: Rule, q: usize, word: &str) -> Option<f32> {
        let [a, b, c, _] = self.questions.get(q).copied().flatten()?;
        let d = self.unit.index_of(word)?;
        let row = |w: usize| self.cosines[[self.slot[&w], d]];
        Some(rule.score(row(a), row(b), row(c)))
    }

    /// The fraction of correct `answers` (from [`Solver::answers`]) among the covered
    /// questions of the sections `keep` selects.
    pub fn accuracy(
        &self,
        answers: &[Option<usize>],
        keep: impl Fn(&str) -> bool,
    ) -> Result<f64, Error> {
        let scored: Vec<bool> = self
            .questions
            .iter()
            .zip(answers)
            .zip(&self.sections)
            .filter(|(_, section)| keep(section))
            .filter_map(|((q, answer), _)| Some(q.as_ref()?[3] == (*answer)?))
            .collect();
        if scored.is_empty() {
            return Err(Error::InvalidArgument {
                what: "an analogy accuracy",
                expected: "at least one covered question in the sections kept",
                got: "none".to_owned(),
            });
        }
        Ok(scored.iter().filter(|&&c| c).count() as f64 / scored.len() as f64)
    }
}

/// Whether a section of the analogy set tests syntax (`gram1-adjective-to-adverb` …) rather
/// than meaning (`capital-common-countries` …): word2vec's set names them so.
pub fn is_syntactic(section: &str) -> bool {
    section.starts_with("gram")
}

/// The sections in the order they first appear.
pub fn sections(questions: &[Analogy]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for q in questions {
        if names.last() != Some(&q.section.as_str()) && !names.contains(&q.section.as_str()) {
            names.push(&q.section);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six 3-d words where `man : woman :: king : queen` holds by the offset, while the
    /// word nearest to `king` is `emperor`.
    fn tiny() -> (Embeddings, Vec<Analogy>) {
        let words = ["man", "woman", "king", "queen", "apple", "emperor"]
            .map(String::from)
            .to_vec();
        #[rustfmt::skip]
        let vectors = vec![
            1.0, 0.0, 0.0,
            1.0, 0.6, 0.0,
            1.0, 0.0, 0.8,
            1.0, 0.6, 0.8,
            0.0, -1.0, 0.1,
            1.0, -0.1, 0.8,
        ];
        let table = Embeddings::new(words, vectors, 3).unwrap();
        let question = |w: [&str; 4]| Analogy {
            section: "family".into(),
            words: w.map(String::from),
        };
        let questions = vec![
            question(["man", "woman", "king", "queen"]),
            question(["man", "woman", "king", "prince"]),
        ];
        (table, questions)
    }

    #[test]
    fn the_offset_finds_queen_where_only_c_finds_emperor() {
        let (table, questions) = tiny();
        let solver = Solver::new(&table, &questions);
        assert_eq!(solver.covered(), 1);
        let word = |a: &[Option<usize>]| a[0].map(|i| table.words()[i].as_str());
        for rule in [Rule::CosAdd, Rule::CosMul] {
            let answers = solver.answers(rule, true);
            assert_eq!(word(&answers), Some("queen"), "{rule:?}");
            assert_eq!(answers[1], None);
            assert_eq!(solver.accuracy(&answers, |_| true).unwrap(), 1.0);
            assert!(solver.accuracy(&answers, |s| s == "capitals").is_err());
        }
        assert_eq!(word(&solver.answers(Rule::OnlyC, true)), Some("emperor"));
        // Without exclusion, c is its own nearest word.
        assert_eq!(word(&solver.answers(Rule::CosAdd, false)), Some("queen"));
        assert_eq!(word(&solver.answers(Rule::OnlyC, false)), Some("king"));
        let only_c = solver.answers(Rule::OnlyC, true);
        assert_eq!(solver.accuracy(&only_c, |s| s == "family").unwrap(), 0.0);
    }

    #[test]
    fn scores_follow_the_papers_formulas() {
        assert!((Rule::CosAdd.score(0.5, 0.25, 1.0) - 0.75).abs() < 1e-6);
        let mul = 0.625 * 1.0 / (0.75 + 1e-3);
        assert!((Rule::CosMul.score(0.5, 0.25, 1.0) - mul).abs() < 1e-6);
        let (table, questions) = tiny();
        let solver = Solver::new(&table, &questions);
        let u = |w: &str| {
            let v = table.vector(w).unwrap();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let cos = |x: &str, y: &str| u(x).iter().zip(u(y)).map(|(a, b)| a * b).sum::<f32>();
        let expected = cos("queen", "woman") - cos("queen", "man") + cos("queen", "king");
        assert!((solver.score(Rule::CosAdd, 0, "queen").unwrap() - expected).abs() < 1e-6);
        assert_eq!(solver.score(Rule::CosAdd, 1, "queen"), None);
    }

    #[test]
    fn sections_keep_their_order_and_kinds() {
        let q = |s: &str| Analogy {
            section: s.into(),
            words: ["a", "b", "c", "d"].map(String::from),
        };
        let questions = [
            q("capital-world"),
            q("capital-world"),
            q("gram1-x"),
            q("capital-world"),
        ];
        assert_eq!(sections(&questions), ["capital-world", "gram1-x"]);
        assert!(is_syntactic("gram1-x") && !is_syntactic("family"));
    }
}
