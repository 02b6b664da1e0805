//! Text for language models: Jane Austen's novels, split into words or characters and
//! numbered by a vocabulary.

use super::files::{DataDir, AUSTEN};
use crate::Error;
use std::collections::HashMap;

/// Jane Austen's six novels as one UTF-8 text (about 4 million characters, 718k words),
/// used from the first language-model notebook onwards.
pub fn austen() -> Result<String, Error> {
    DataDir::from_env().austen()
}

impl DataDir {
    /// [`austen`] from this folder.
    pub fn austen(&self) -> Result<String, Error> {
        let bytes = self.read(&AUSTEN)?;
        String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            self.bad_format(&AUSTEN, format!("byte {at} is not valid UTF-8"))
        })
    }
}

/// The words of `text`, lower-cased: letters and digits, with apostrophes kept inside a
/// word (`don't`, `elinor's`) and every other character a separator.
pub fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if c == '\'' && !word.is_empty() && chars.peek().is_some_and(|n| n.is_alphanumeric())
        {
            word.push(c);
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A word vocabulary: id 0 is [`Vocab::UNK`], the others in descending frequency
/// (ties alphabetical).
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    pub words: Vec<String>,
    pub index: HashMap<String, usize>,
    /// How often each word occurs; `<unk>`'s count is the total of the words it replaced.
    pub counts: Vec<usize>,
}

impl Vocab {
    /// The id of `<unk>`, which stands for every word seen fewer than `min_count` times.
    pub const UNK: usize = 0;

    /// The vocabulary of `words`, keeping the words seen at least `min_count` times.
    pub fn new(words: &[String], min_count: usize) -> Vocab {
        Vocab::keeping(words, |_, count| count >= min_count)
    }

    /// The vocabulary of the `size − 1` most frequent of `words`, plus `<unk>`: a size
    /// fixed in advance, as a model with compile-time shapes needs.
    pub fn most_frequent(words: &[String], size: usize) -> Vocab {
        Vocab::keeping(words, |rank, _| rank + 1 < size)
    }

    /// The vocabulary of the words that `keep(rank, count)` accepts, ranked by frequency.
    fn keeping(words: &[String], keep: impl Fn(usize, usize) -> bool) -> Vocab {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for word in words {
            *counts.entry(word).or_default() += 1;
        }
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let (kept, rare): (Vec<_>, Vec<_>) = ranked
            .into_iter()
            .enumerate()
            .partition(|&(rank, (_, count))| keep(rank, count));
        let words: Vec<String> = std::iter::once("<unk>")
            .chain(kept.iter().map(|(_, (w, _))| *w))
            .map(str::to_owned)
            .collect();
        let counts = std::iter::once(rare.iter().map(|(_, (_, c))| c).sum())
            .chain(kept.iter().map(|(_, (_, c))| *c))
            .collect();
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        Vocab {
            words,
            index,
            counts,
        }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of `word`, or [`Vocab::UNK`] when it is not in the vocabulary.
    pub fn id(&self, word: &str) -> usize {
        self.index.get(word).copied().unwrap_or(Self::UNK)
    }
}

/// A text as word ids: the word-level corpus of the language-model notebooks.
#[derive(Clone, Debug, PartialEq)]
pub struct WordCorpus {
    pub vocab: Vocab,
    pub tokens: Vec<usize>,
}

impl WordCorpus {
    /// Splits `text` into [`words`] and numbers them; words seen fewer than `min_count`
    /// times become `<unk>`, which keeps the vocabulary (and the output layer) small.
    pub fn new(text: &str, min_count: usize) -> WordCorpus {
        let words = words(text);
        let vocab = Vocab::new(&words, min_count);
        let tokens = words.iter().map(|w| vocab.id(w)).collect();
        WordCorpus { vocab, tokens }
    }

    /// The words of `tokens`, separated by spaces.
    pub fn decode(&self, tokens: &[usize]) -> String {
        let words: Vec<&str> = tokens
            .iter()
            .map(|&t| self.vocab.words[t].as_str())
            .collect();
        words.join(" ")
    }
}

/// A text as character ids, for character-level language models: `chars` sorted, so the
/// same text always gets the same ids.
#[derive(Clone, Debug, PartialEq)]
pub struct CharCorpus {
    pub chars: Vec<char>,
    pub index: HashMap<char, usize>,
    pub tokens: Vec<usize>,
}

impl CharCorpus {
    pub fn new(text: &str) -> CharCorpus {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        let index: HashMap<char, usize> = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let tokens = text.chars().map(|c| index[&c]).collect();
        CharCorpus {
            chars,
            index,
            tokens,
        }
    }

    /// The text of `tokens`.
    pub fn decode(&self, tokens: &[usize]) -> String {
        tokens.iter().map(|&t| self.chars[t]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_inner_apostrophes_and_drop_punctuation() {
        let text = "\"Don't,\" said _Elinor's_ sister--'twas 1811!";
        assert_eq!(
            words(text),
            ["don't", "said", "elinor's", "sister", "twas", "1811"]
        );
    }

    #[test]
    fn rare_words_become_unk_and_ids_follow_frequency() {
        let corpus = WordCorpus::new("the cat saw the dog and the cat", 2);
        assert_eq!(corpus.vocab.words, ["<unk>", "the", "cat"]);
        assert_eq!(corpus.vocab.counts, [3, 3, 2]);
        assert_eq!(corpus.tokens, [1, 2, 0, 1, 0, 0, 1, 2]);
        assert_eq!(corpus.decode(&corpus.tokens[..3]), "the cat <unk>");
        assert_eq!(corpus.vocab.id("zebra"), Vocab::UNK);
    }

    #[test]
    fn a_vocabulary_of_fixed_size_keeps_the_most_frequent_words() {
        let words = super::words("the cat saw the dog and the cat");
        let vocab = Vocab::most_frequent(&words, 3);
        assert_eq!(vocab.words, ["<unk>", "the", "cat"]);
        assert_eq!(vocab.counts, [3, 3, 2]);
    }

    #[test]
    fn characters_round_trip() {
        let corpus = CharCorpus::new("hello, world");
        assert_eq!(corpus.chars.len(), 9);
        assert_eq!(corpus.decode(&corpus.tokens), "hello, world");
    }

    #[test]
    fn austen_is_six_novels_of_about_718k_words() {
        let text = austen().unwrap();
        assert!(text.starts_with("SENSE AND SENSIBILITY"));
        let corpus = WordCorpus::new(&text, 5);
        assert!(
            (700_000..740_000).contains(&corpus.tokens.len()),
            "{}",
            corpus.tokens.len()
        );
        assert_eq!(corpus.vocab.words[1..4], ["the", "to", "and"]);
        let unk = corpus.vocab.counts[Vocab::UNK];
        assert_eq!(
            corpus.tokens.iter().filter(|&&t| t == Vocab::UNK).count(),
            unk
        );
        let chars = CharCorpus::new(&text);
        assert!(chars.chars.len() < 100, "{:?}", chars.chars);
        assert_eq!(chars.tokens.len(), text.chars().count());
    }
}
