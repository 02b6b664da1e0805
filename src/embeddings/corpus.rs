//! Austen's novels as training text for word vectors (notebook `06_embeddings` §4–5): words
//! numbered by a vocabulary, chapter by chapter, with every tenth chapter held out.

use crate::data::{words, Vocab};
use crate::Error;
use rand::distributions::Distribution;
use rand::Rng;
use rand_distr::WeightedAliasIndex;

/// A text's chapters as word ids, split into training and held-out chapters. The
/// vocabulary comes from the training chapters only; words outside it are dropped (as
/// word2vec drops them), so a window never holds an `<unk>`.
#[derive(Clone, Debug)]
pub struct Chapters {
    pub vocab: Vocab,
    pub train: Vec<Vec<usize>>,
    pub held_out: Vec<Vec<usize>>,
}

impl Chapters {
    /// Splits `text` at its chapter headings (`CHAPTER 12`, `Chapter 3`), holds out every
    /// `held_out_every`-th chapter and keeps the `vocab_size − 1` most frequent words of
    /// the rest (plus `<unk>`, id 0, which never occurs in the chapters).
    pub fn new(text: &str, vocab_size: usize, held_out_every: usize) -> Result<Chapters, Error> {
        Chapters::split(text, vocab_size, held_out_every, false)
    }

    /// As [`Chapters::new`], but every word outside the vocabulary stays in the chapters as
    /// `<unk>` (BERT's `[UNK]`, §6): a masked language model reads the text as it is, and
    /// dropping words would join phrases that were never side by side.
    pub fn with_unknown(
        text: &str,
        vocab_size: usize,
        held_out_every: usize,
    ) -> Result<Chapters, Error> {
        Chapters::split(text, vocab_size, held_out_every, true)
    }

    fn split(
        text: &str,
        vocab_size: usize,
        held_out_every: usize,
        keep_unknown: bool,
    ) -> Result<Chapters, Error> {
        if held_out_every < 2 {
            return Err(Error::InvalidArgument {
                what: "held_out_every",
                expected: "at least 2 (1 would hold out every chapter)",
                got: held_out_every.to_string(),
            });
        }
        let chapters: Vec<Vec<String>> = split_chapters(text).into_iter().map(words).collect();
        let is_held_out = |i: usize| i % held_out_every == held_out_every - 1;
        let train_words: Vec<String> = chapters
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_held_out(*i))
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        let vocab = Vocab::most_frequent(&train_words, vocab_size);
        let ids = |c: &Vec<String>| -> Vec<usize> {
            c.iter()
                .map(|w| vocab.id(w))
                .filter(|&id| keep_unknown || id != Vocab::UNK)
                .collect()
        };
        let (mut train, mut held_out) = (Vec::new(), Vec::new());
        for (i, chapter) in chapters.iter().enumerate() {
            if is_held_out(i) {
                &mut held_out
            } else {
                &mut train
            }
            .push(ids(chapter));
        }
        Ok(Chapters {
            vocab,
            train,
            held_out,
        })
    }

    /// The number of training tokens (in-vocabulary words of the training chapters).
    pub fn train_tokens(&self) -> usize {
        self.train.iter().map(Vec::len).sum()
    }

    /// How often each word occurs in the training chapters, by id: the vocabulary's
    /// counts, with `<unk>`'s 0 (its words were dropped from the chapters).
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = self.vocab.counts.clone();
        counts[Vocab::UNK] = 0;
        counts
    }
}

/// `text` cut before each line that is a chapter heading: `CHAPTER` or `Chapter` and a
/// number (Arabic or Roman). What precedes the first heading is a chapter of its own.
pub fn split_chapters(text: &str) -> Vec<&str> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && is_heading(line.trim()) {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts.push(text.len());
    starts.windows(2).map(|w| &text[w[0]..w[1]]).collect()
}

fn is_heading(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    matches!(parts.next(), Some("CHAPTER" | "Chapter"))
        && parts
            .next()
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit() || "IVXLC".contains(c)))
        && parts.next().is_none()
}

/// word2vec's subsampling of frequent words (Mikolov et al., 2013b, §2.3, in the form of
/// the released code): each occurrence of a word of relative frequency `f` is kept with
/// probability `min(1, √(t/f) + t/f)`. Words far above frequency `t` ("the", "of") lose most
/// of their occurrences; they say little about their neighbours.
pub fn keep_probabilities(counts: &[usize], t: f64) -> Vec<f64> {
    let total: usize = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                return 0.0;
            }
            let ratio = t / (c as f64 / total as f64);
            (ratio.sqrt() + ratio).min(1.0)
        })
        .collect()
}

/// The distribution negatives are drawn from (§4): each word with probability proportional
/// to its count raised to `power` (word2vec: ¾, which lifts rare words above their share).
pub struct Noise {
    table: WeightedAliasIndex<f64>,
    pub probabilities: Vec<f64>,
}

impl Noise {
    pub fn new(counts: &[usize], power: f64) -> Result<Noise, Error> {
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(power)).collect();
        let total: f64 = weights.iter().sum();
        let table =
            WeightedAliasIndex::new(weights.clone()).map_err(|e| Error::InvalidArgument {
                what: "word counts for the noise distribution",
                expected: "some positive counts",
                got: e.to_string(),
            })?;
        Ok(Noise {
            table,
            probabilities: weights.iter().map(|w| w / total).collect(),
        })
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        self.table.sample(rng)
    }
}

/// The (word, context) pairs of one pass over `chapters` in skip-gram's scheme: each kept
/// token is a centre word, and its contexts are the kept tokens at most `b` positions away,
/// `b` drawn uniformly from 1..=`window` for each centre (word2vec's dynamic window, which
/// weights a context at distance d by (window − d + 1) / window on average). `keep` gives
/// each word's probability of surviving subsampling; pass all ones for none.
pub fn skipgram_pairs(
    chapters: &[Vec<usize>],
    window: usize,
    keep: &[f64],
    rng: &mut impl Rng,
) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    for chapter in chapters {
        let kept: Vec<usize> = chapter
            .iter()
            .copied()
            .filter(|&w| rng.gen::<f64>() < keep[w])
            .collect();
        for (i, &centre) in kept.iter().enumerate() {
            let b = rng.gen_range(1..=window);
            let neighbours = kept[i.saturating_sub(b)..(i + b + 1).min(kept.len())].iter();
            let offsets = i.saturating_sub(b)..;
            for (j, &context) in offsets.zip(neighbours) {
                if j != i {
                    pairs.push((centre as u32, context as u32));
                }
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const TEXT: &str = "Title\n\nCHAPTER 1\n\nthe cat sat\n\nCHAPTER 2\n\nthe dog sat\n\nChapter III\n\nthe cat ran\nCHAPTER ONE is not a heading\n";

    #[test]
    fn chapters_split_at_headings_and_every_nth_is_held_out() {
        assert_eq!(split_chapters(TEXT).len(), 4);
        let chapters = Chapters::new(TEXT, 100, 2).unwrap();
        // Chapters 0 ("title") and 2 train; 1 and 3 are held out.
        assert_eq!(chapters.train.len(), 2);
        assert_eq!(chapters.held_out.len(), 2);
        let v = |w: &str| chapters.vocab.id(w);
        assert_eq!(
            chapters.train[1],
            [v("chapter"), v("2"), v("the"), v("dog"), v("sat")]
        );
        // "cat" occurs only in held-out chapters: not in the vocabulary, dropped there.
        assert_eq!(v("cat"), Vocab::UNK);
        assert!(!chapters.held_out[0].contains(&Vocab::UNK));
        assert_eq!(chapters.train_tokens(), 6);
        let with_unknown = Chapters::with_unknown(TEXT, 100, 2).unwrap();
        // Held-out chapter 1, "CHAPTER 1 the cat sat": "1" and "cat" are unknown.
        let unk = Vocab::UNK;
        assert_eq!(
            with_unknown.held_out[0],
            [v("chapter"), unk, v("the"), unk, v("sat")]
        );
    }

    #[test]
    fn subsampling_keeps_rare_words_and_thins_frequent_ones() {
        // Frequencies 0, 0.99 and 0.01, against a threshold of 0.01.
        let keep = keep_probabilities(&[0, 9900, 100], 1e-2);
        assert_eq!(keep[0], 0.0);
        assert!(
            (keep[1] - (0.01f64 / 0.99).sqrt() - 0.01 / 0.99).abs() < 1e-12,
            "{keep:?}"
        );
        assert_eq!(keep[2], 1.0);
    }

    #[test]
    fn noise_follows_the_three_quarter_power() {
        let noise = Noise::new(&[0, 16, 1], 0.75).unwrap();
        assert!((noise.probabilities[1] / noise.probabilities[2] - 8.0).abs() < 1e-9);
        let mut rng = StdRng::seed_from_u64(0);
        let ones = (0..9000).filter(|_| noise.sample(&mut rng) == 1).count();
        assert!(
            (7700..8300).contains(&ones),
            "{ones} of 9000, expected 8000"
        );
    }

    #[test]
    fn pairs_stay_inside_the_window_and_the_chapter() {
        let mut rng = StdRng::seed_from_u64(1);
        let chapters = vec![vec![1, 2, 3, 4, 5], vec![6, 7]];
        let pairs = skipgram_pairs(&chapters, 2, &[1.0; 8], &mut rng);
        for &(c, x) in &pairs {
            assert!(c != x && (c as i32 - x as i32).abs() <= 2, "{c} {x}");
            assert_eq!(c >= 6, x >= 6, "a pair crosses chapters: {c} {x}");
        }
        // Neighbours at distance 1 are always contexts.
        assert!(pairs.contains(&(3, 4)) && pairs.contains(&(7, 6)));
    }
}
