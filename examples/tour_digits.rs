//! Notebook 00's training run from plain Rust: the digits MLP with the course's loop.
//!
//! `cargo run --release --example tour_digits [SEED]` shows a progress bar in a terminal,
//! prints the epoch table, and writes `target/tour_digits_loss.svg`.

use mustknow::data::digits;
use mustknow::prelude::*;
use mustknow::tour::train_digits_mlp;

fn main() -> Result<(), Error> {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (train, test) = digits()?.split(0.2, seed)?;
    let history = train_digits_mlp(&train, &test, 1e-3, &TrainConfig::new(30), seed)?;
    println!("{}", history.epochs_frame()?);

    let curve = |f: fn(&mustknow::train::EpochRecord) -> f32| {
        history
            .epochs
            .iter()
            .map(|e| f(e) as f64)
            .collect::<Vec<_>>()
    };
    let (train_loss, test_loss) = (curve(|e| e.train_loss), curve(|e| e.test_loss));
    line_chart(
        "Digits MLP: loss per epoch",
        "epoch",
        "cross-entropy",
        &[("train", &train_loss), ("test", &test_loss)],
    )?
    .save("target/tour_digits_loss.svg")?;
    println!("loss curves written to target/tour_digits_loss.svg");
    Ok(())
}
