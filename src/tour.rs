//! Notebook `00_tour`: the course's tools on one small, real problem.

use crate::data::{ImageSet, MiniBatches};
use crate::nn::ReLU;
use crate::train::{fit_classifier, History, TrainConfig};
use crate::Error;
use dfdx::optim::{Adam, AdamConfig};
use dfdx::prelude::*;

/// A small MLP for the 8×8 digits: 64 pixels → 64 ReLU units → 10 logits, one per digit.
/// The shapes are part of the type, so the compiler checks how the layers connect.
pub type DigitsMlp = (Linear<64, 64>, ReLU, Linear<64, 10>);

/// Trains a freshly initialised [`DigitsMlp`] with Adam (learning rate 1e-3, batches of
/// 32) on `train` for `epochs` epochs, evaluating on `test` after each; all randomness
/// (initial weights, batch order) comes from `seed`.
pub fn train_digits_mlp(
    train: &ImageSet,
    test: &ImageSet,
    epochs: usize,
    seed: u64,
) -> Result<History, Error> {
    let dev = Cpu::seed_from_u64(seed);
    let mut model = dev.build_module::<DigitsMlp, f32>();
    let mut adam = Adam::new(
        &model,
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let train = MiniBatches::<64>::from_images(&dev, train, 32, seed)?;
    let test = MiniBatches::<64>::from_images(&dev, test, 256, seed)?;
    fit_classifier(
        &mut model,
        &mut adam,
        &train,
        &test,
        &TrainConfig::new(epochs),
    )
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
