//! The yardstick's classifier: a small convolutional network trained once from a fixed
//! seed on [`Digits`]' training images, and kept as safetensors under `target/cache` so
//! that later runs (and every notebook) load the same weights instead of retraining.

use super::{Digits, FEATURES, PIXELS};
use crate::data::MiniBatches;
use crate::nn::builders::{BatchNorm2D, Conv2D, Flatten2D, MaxPool2D, ReLU, Unflatten2D};
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{fit_classifier, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use std::path::PathBuf;

/// The feature extractor: two convolution stages and a dense layer, ending in the
/// [`FEATURES`] penultimate activations the Fréchet distance and precision/recall are
/// computed from. Shapes per image in the comments. Notebook `08_vae_gan` §5.
pub type Body = (
    Unflatten2D<1, 28, 28>,                                        // 784 → 1×28×28
    (Conv2D<1, 16, 5, 1, 2>, BatchNorm2D<16>, ReLU, MaxPool2D<2>), // → 16×28×28 → 16×14×14
    (Conv2D<16, 32, 5>, BatchNorm2D<32>, ReLU, MaxPool2D<2>),      // → 32×10×10 → 32×5×5
    Flatten2D<800>,                                                // → 800
    (Linear<800, FEATURES>, ReLU),                                 // → 128 features
);

/// The whole classifier: [`Body`] and a linear layer from its features to 10 logits,
/// trained for 2 epochs (Adam, cosine schedule from 2·10⁻³, batches of 32, seed 0) to
/// about 98.5% on [`Digits`]' test images. Notebook `08_vae_gan` §5.
pub type Net = (Body, Linear<FEATURES, 10>);
pub(super) type Built = <Net as BuildOnDevice<Cpu, f32>>::Built;

/// The recipe, fixed so that every run trains the same network: the seed of the
/// initial weights and batch order, epochs, batch size and Adam's peak learning rate.
const SEED: u64 = 0;
const EPOCHS: usize = 2;
const BATCH: usize = 32;
const LR: f64 = 2e-3;

/// Trains [`Net`] from [`SEED`] on `digits.train` with Adam and a cosine schedule,
/// quietly (a notebook sees only the few seconds it takes).
pub(super) fn train(digits: &Digits) -> Result<Built, Error> {
    let dev = device(SEED);
    let mut net = dev.build_module::<Net, f32>();
    let cosine = Schedule::Cosine {
        lr: LR,
        warmup: 0.0,
        floor: 0.0,
    };
    let mut adam = Method::Adam.at(cosine.peak()).build(&net);
    let train = MiniBatches::<PIXELS>::from_images(&dev, &digits.train, BATCH, SEED)?;
    let test = MiniBatches::<PIXELS>::from_images(&dev, &digits.test, 500, SEED)?;
    let config = TrainConfig::new(EPOCHS).schedule(cosine).quiet();
    fit_classifier(&mut net, adam.as_mut(), &train, &test, &config)?;
    Ok(net)
}

/// `<crate>/target/cache/yardstick-v1-<recipe>.safetensors` ([`crate::cache::path`]),
/// where `<recipe>` is a digest of the network's type and the training recipe. Notebook
/// `08_vae_gan` §5 (delete the file to retrain).
pub fn cache_path() -> PathBuf {
    let recipe = format!(
        "{} seed={SEED} epochs={EPOCHS} batch={BATCH} lr={LR}",
        std::any::type_name::<Net>()
    );
    crate::cache::path("yardstick-v1", &recipe)
}
