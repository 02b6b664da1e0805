//! Notebook `00_tour`: the course's tools on one small, real problem.

use crate::data::{ImageSet, MiniBatches};
use crate::models::digits_mlp;
pub use crate::models::DigitsMlp;
use crate::optim::{Method, ScheduledOptimizer};
use crate::train::{fit_classifier, Classifier, History, TrainConfig};
use crate::Error;
use dfdx::prelude::*;

/// Trains a freshly initialised [`DigitsMlp`] with Adam at learning rate `lr` (batches of
/// 32) on `train` for `config.epochs` epochs, evaluating on `held_out` after each; all
/// randomness (initial weights, batch order) comes from `seed`. Notebook `00_tour` §6
/// trains it, §7 compares it with [`train_digits_linear`].
pub fn train_digits_mlp(
    train: &ImageSet,
    held_out: &ImageSet,
    lr: f64,
    config: &TrainConfig,
    seed: u64,
) -> Result<History, Error> {
    let mut model = digits_mlp(seed);
    let mut adam = Method::Adam.at(lr).build(&model);
    train_digits(&mut model, adam.as_mut(), train, held_out, config, seed)
}

/// Softmax regression on the 64 pixels (multinomial logistic regression; Cox, 1966): one
/// linear layer gives each digit a score, and the softmax of the scores its probability.
/// No hidden layer, so its decision boundaries are hyperplanes in pixel space. Notebook
/// `00_tour` §7 runs it as the baseline the [`DigitsMlp`] must beat.
pub type DigitsLinear = Linear<64, 10>;

/// Trains a freshly initialised [`DigitsLinear`] with Adam at learning rate `lr` (batches
/// of 32, as [`train_digits_mlp`]) on `train` for `config.epochs` epochs, evaluating on
/// `held_out` after each; initial weights and batch order come from `seed`. Notebook
/// `00_tour` §7 chooses `lr` and the epochs on a validation split with it.
pub fn train_digits_linear(
    train: &ImageSet,
    held_out: &ImageSet,
    lr: f64,
    config: &TrainConfig,
    seed: u64,
) -> Result<History, Error> {
    let mut model = Cpu::seed_from_u64(seed).build_module::<DigitsLinear, f32>();
    let mut adam = Method::Adam.at(lr).build(&model);
    train_digits(&mut model, adam.as_mut(), train, held_out, config, seed)
}

/// The signature [`train_digits_mlp`] and [`train_digits_linear`] share, so that notebook
/// `00_tour` §7 passes either to the same model-selection code.
pub type TrainDigits = fn(&ImageSet, &ImageSet, f64, &TrainConfig, u64) -> Result<History, Error>;

/// Any digits classifier through [`fit_classifier`], on batches of 32 shuffled from `seed`.
fn train_digits<M: Classifier<64, 10>>(
    model: &mut M,
    optimizer: &mut dyn ScheduledOptimizer<M, f32>,
    train: &ImageSet,
    held_out: &ImageSet,
    config: &TrainConfig,
    seed: u64,
) -> Result<History, Error> {
    let dev = Cpu::default();
    let train = MiniBatches::<64>::from_images(&dev, train, 32, seed)?;
    let held_out = MiniBatches::<64>::from_images(&dev, held_out, 256, seed)?;
    fit_classifier(model, optimizer, &train, &held_out, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;

    #[test]
    fn the_digits_mlp_learns_the_digits() {
        let (train, test) = digits().unwrap().split(0.2, 0).unwrap();
        let history =
            train_digits_mlp(&train, &test, 1e-3, &TrainConfig::new(20).quiet(), 0).unwrap();
        let last = history.last().unwrap();
        assert!(last.test_accuracy > 0.9, "{last:?}");
    }

    #[test]
    fn softmax_regression_learns_the_digits() {
        let (train, test) = digits().unwrap().split(0.2, 0).unwrap();
        let config = TrainConfig::new(20).quiet();
        let history = train_digits_linear(&train, &test, 3e-2, &config, 0).unwrap();
        let last = history.last().unwrap();
        assert!(last.test_accuracy > 0.9, "{last:?}");
    }
}
