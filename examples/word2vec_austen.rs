//! Notebook 06 §4 from plain Rust: skip-gram with negative sampling trained on Jane
//! Austen's novels, judged on held-out chapters.
//!
//! `cargo run --release --example word2vec_austen [SEED]` trains for about half a minute on
//! 2 cores, prints the held-out AUC beside the frequency baseline's, and the nearest words
//! of a few of Austen's.

use mustknow::data::austen;
use mustknow::embeddings::corpus::Chapters;
use mustknow::embeddings::word2vec::{frequency_scores, HeldOutPairs, Sgns};
use mustknow::embeddings::VOCAB;
use mustknow::Error;

fn main() -> Result<(), Error> {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let chapters = Chapters::new(&austen()?, VOCAB, 10)?;
    let (model, _) = Sgns::AUSTEN.train_austen(&chapters, seed)?;
    let held_out = HeldOutPairs::new(&chapters, &Sgns::AUSTEN, 20_000, seed)?;
    println!(
        "held-out AUC: skip-gram {:.4}, frequency of the context {:.4}",
        held_out.auc(|pairs| model.scores(pairs)),
        held_out.auc(frequency_scores(&chapters.counts()))
    );
    let vectors = model.embeddings(&chapters.vocab.words)?;
    for word in ["elizabeth", "sister", "letter", "morning"] {
        let near: Vec<&str> = vectors
            .nearest(vectors.vector_of(word)?, 8, &[word])?
            .into_iter()
            .map(|(w, _)| w)
            .collect();
        println!("{word}: {}", near.join(", "));
    }
    Ok(())
}
