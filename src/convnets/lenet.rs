//! LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998), the network that read cheques: two
//! convolution + pooling stages find strokes and then parts of digits, three dense layers
//! classify them.

use crate::data::{ImageSet, MiniBatches};
use crate::nn::builders::{Conv2D, Flatten2D, MaxPool2D, Unflatten2D};
use crate::train::{fit_classifier, History, TrainConfig};
use crate::Error;
use dfdx::optim::{Adam, AdamConfig};
use dfdx::prelude::*;

/// A LeNet-style network for 28×28 MNIST digits: LeNet-5's layout (two 5×5 convolution
/// and pooling stages, three dense layers) with today's parts: more channels, batch
/// normalisation (Ioffe & Szegedy, 2015), ReLU, max pooling and dropout (Srivastava et al.,
/// 2014). It takes flat pixels, as the course's mini-batches give them; shapes per example
/// in the comments.
pub type LeNet = (
    Unflatten2D<1, 28, 28>,                                        // 784 → 1×28×28
    (Conv2D<1, 16, 5, 1, 2>, BatchNorm2D<16>, ReLU, MaxPool2D<2>), // → 16×28×28 → 16×14×14
    (Conv2D<16, 32, 5>, BatchNorm2D<32>, ReLU, MaxPool2D<2>),      // → 32×10×10 → 32×5×5
    Flatten2D<800>,                                                // → 800
    (
        Linear<800, 120>,
        ReLU,
        Dropout,
        Linear<120, 84>,
        ReLU,
        Linear<84, 10>,
    ), // → 10 logits
);

/// Trains a freshly initialised [`LeNet`] with Adam (learning rate 1e-3, batches of 32)
/// on `train` for `epochs` epochs, evaluating on `test` after each; initial weights and
/// batch order come from `seed`.
pub fn train_lenet(
    train: &ImageSet,
    test: &ImageSet,
    config: &TrainConfig,
    seed: u64,
) -> Result<History, Error> {
    let dev = Cpu::seed_from_u64(seed);
    let mut model = dev.build_module::<LeNet, f32>();
    let mut adam = Adam::new(
        &model,
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let train = MiniBatches::<784>::from_images(&dev, train, 32, seed)?;
    let test = MiniBatches::<784>::from_images(&dev, test, 500, seed)?;
    fit_classifier(&mut model, &mut adam, &train, &test, config)
}
