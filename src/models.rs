//! Models that more than one notebook trains, so that no section imports another's.

use crate::nn::ReLU;
use dfdx::prelude::*;

/// A small MLP for the 8×8 digits: 64 pixels → 64 ReLU units → 10 logits, one per digit.
/// The shapes are part of the type, so the compiler checks how the layers connect.
/// Notebook `00_tour` trains it first; notebook `02_optimization` compares optimizers,
/// losses, schedules and batch sizes on it.
pub type DigitsMlp = (Linear<64, 64>, ReLU, Linear<64, 10>);

/// [`DigitsMlp`] built on the CPU with `f32` weights.
pub type DigitsMlpNet = <DigitsMlp as BuildOnDevice<Cpu, f32>>::Built;

/// A freshly initialised [`DigitsMlp`]: equal seeds give equal weights.
pub fn digits_mlp(seed: u64) -> DigitsMlpNet {
    Cpu::seed_from_u64(seed).build_module::<DigitsMlp, f32>()
}
