//! LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998), the network that read cheques: two
//! convolution + pooling stages find strokes and then parts of digits, three dense layers
//! classify them.

use crate::data::{ImageSet, MiniBatches};
use crate::nn::builders::{BatchNorm2D, Conv2D, Flatten2D, MaxPool2D, ReLU, Unflatten2D};
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{fit_classifier, History, TrainConfig};
use crate::Error;
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

/// Trains a freshly initialised [`LeNet`] for `epochs` epochs with Adam (batches of 32)
/// and a learning rate that falls from 2e-3 to 0 along half a cosine (Loshchilov & Hutter,
/// 2017; notebook 02 §5), evaluating on `test` after each. Initial weights, dropout and
/// batch order come from `seed`.
pub fn train_lenet(
    train: &ImageSet,
    test: &ImageSet,
    epochs: usize,
    seed: u64,
) -> Result<History, Error> {
    let dev = device(seed);
    let mut model = dev.build_module::<LeNet, f32>();
    let cosine = Schedule::Cosine {
        lr: 2e-3,
        warmup: 0.0,
        floor: 0.0,
    };
    let mut adam = Method::Adam.at(cosine.peak()).build(&model);
    let train = MiniBatches::<784>::from_images(&dev, train, 32, seed)?;
    let test = MiniBatches::<784>::from_images(&dev, test, 500, seed)?;
    let config = TrainConfig::new(epochs).schedule(cosine);
    fit_classifier(&mut model, adam.as_mut(), &train, &test, &config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mnist;

    #[test]
    fn lenet_reaches_98_percent_on_mnist() {
        let (train, test) = mnist().unwrap().split(0.2, 0).unwrap();
        assert_eq!((train.len(), test.len()), (8000, 2000));
        let history = train_lenet(&train, &test, 10, 0).unwrap();
        let last = history.last().unwrap();
        assert!(last.test_accuracy >= 0.98, "{last:?}");
    }
}
