//! Notebook 01 from plain Rust: train micrograd's MLP on two moons, save the figures.
//!
//! `cargo run --release --example backprop_moons [SEED]` writes `target/backprop_moons_*.svg`.

use mustknow::backprop::{self, Mlp};
use mustknow::prelude::*;

fn main() -> Result<(), Error> {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let moons = two_moons(100, 0.1, seed)?;
    let mlp = Mlp::new(&[2, 16, 16, 1], &mut StdRng::seed_from_u64(seed))?;
    let history = backprop::train(&mlp, &moons, 100, 1e-4);
    let last = history.last().expect("trained for at least one step");
    println!(
        "seed {seed}: final loss {:.4}, training accuracy {:.2}",
        last.loss, last.accuracy
    );

    let losses: Vec<f64> = history.iter().map(|s| s.loss).collect();
    line_chart("Hinge loss per step", "step", "loss", &[("loss", &losses)])?
        .save("target/backprop_moons_loss.svg")?;
    decision_boundary("Decision regions", &moons, &|p| backprop::score(&mlp, p))?
        .save("target/backprop_moons_regions.svg")?;
    println!(
        "figures written to target/backprop_moons_loss.svg and target/backprop_moons_regions.svg"
    );
    Ok(())
}
