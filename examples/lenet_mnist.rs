//! A LeNet-style CNN on MNIST from plain Rust: the course's own convolution and pooling layers,
//! mixed with dfdx's, trained with dfdx's Adam on an 8,000 / 2,000 split of MNIST's test
//! set (the part of MNIST the course ships).
//!
//! `cargo run --release --example lenet_mnist [SEED] [EPOCHS]`

use mustknow::convnets::train_lenet;
use mustknow::data::mnist;
use mustknow::prelude::*;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let seed = args.next().transpose().ok().flatten().unwrap_or(0);
    let epochs = args.next().transpose().ok().flatten().unwrap_or(10) as usize;
    let (train, test) = mnist()?.split(0.2, seed)?;
    println!(
        "LeNet on MNIST: {} training, {} test images, seed {seed}",
        train.len(),
        test.len()
    );
    let start = std::time::Instant::now();
    let history = train_lenet(&train, &test, epochs, seed)?;
    println!("{}", history.epochs_frame()?);
    let last = history.last().expect("at least one epoch");
    println!(
        "test accuracy {:.4} after {} epochs, {:.1} s",
        last.test_accuracy,
        history.epochs.len(),
        start.elapsed().as_secs_f32()
    );
    Ok(())
}
