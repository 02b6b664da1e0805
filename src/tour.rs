//! Notebook `00_tour`: the course's tools on one small, real problem.

use crate::data::{ImageSet, MiniBatches};
use crate::models::digits_mlp;
pub use crate::models::DigitsMlp;
use crate::optim::Method;
use crate::train::{fit_classifier, History, TrainConfig};
use crate::Error;
use dfdx::prelude::*;

/// Trains a freshly initialised [`DigitsMlp`] with Adam (learning rate 1e-3, batches of
/// 32) on `train` for `epochs` epochs, evaluating on `test` after each; all randomness
/// (initial weights, batch order) comes from `seed`.
pub fn train_digits_mlp(
    train: &ImageSet,
    test: &ImageSet,
    epochs: usize,
    seed: u64,
) -> Result<History, Error> {
    let dev = Cpu::default();
    let mut model = digits_mlp(seed);
    let mut adam = Method::Adam.at(1e-3).build(&model);
    let train = MiniBatches::<64>::from_images(&dev, train, 32, seed)?;
    let test = MiniBatches::<64>::from_images(&dev, test, 256, seed)?;
    let config = TrainConfig::new(epochs);
    fit_classifier(&mut model, adam.as_mut(), &train, &test, &config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;

    #[test]
    fn the_digits_mlp_learns_the_digits() {
        let (train, test) = digits().unwrap().split(0.2, 0).unwrap();
        let history = train_digits_mlp(&train, &test, 20, 0).unwrap();
        let last = history.last().unwrap();
        assert!(last.test_accuracy > 0.9, "{last:?}");
    }
}
