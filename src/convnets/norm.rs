//! §5: batch normalisation (Ioffe & Szegedy, 2015) against layer normalisation (Ba, Kiros
//! & Hinton, 2016), and what "Rethinking batch norm" (Wu & Johnson, 2021) says about BN's
//! batch dependence and its running statistics.
//!
//! For a batch of conv features `(B, C, H, W)`, batch norm computes one mean and variance
//! per channel over `(B, H, W)`, so each example's output depends on the rest of its
//! batch, and evaluation needs population statistics instead; layer norm computes one
//! mean and variance per example over `(C, H, W)` and behaves the same in training and
//! evaluation.

use crate::data::{ImageSet, MiniBatches};
use crate::nn::builders::{
    BatchNorm2D, Bias2D, Conv2D, Flatten2D, LayerNorm2D, MaxPool2D, ReLU, Unflatten2D,
};
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{accuracy, evaluate, fit_classifier, Classifier, History, Loss, TrainConfig};
use crate::Error;
use dfdx::prelude::*;

/// A small CNN for 14×14 images with normalisation layer `N` after each of its three
/// convolutions (`Bias2D<16>` for none: the normalisers bring their own shift).
pub type NormNet<N> = (
    Unflatten2D<1, 14, 14>,                           // 196 → 1×14×14
    (Conv2D<1, 16, 3, 1, 1>, N, ReLU, MaxPool2D<2>),  // → 16×14×14 → 16×7×7
    (Conv2D<16, 16, 3, 1, 1>, N, ReLU, MaxPool2D<2>), // → 16×7×7 → 16×3×3
    (Conv2D<16, 16, 3, 1, 1>, N, ReLU),               // → 16×3×3
    (Flatten2D<144>, Linear<144, 10>),                // → 10 logits
);

/// [`NormNet`] with batch normalisation, built.
pub type BatchNormNet = <NormNet<BatchNorm2D<16>> as BuildOnDevice<Cpu, f32>>::Built;
/// [`NormNet`] with layer normalisation, built.
pub type LayerNormNet = <NormNet<LayerNorm2D<16>> as BuildOnDevice<Cpu, f32>>::Built;
/// [`NormNet`] without normalisation, built.
pub type UnnormalisedNet = <NormNet<Bias2D<16>> as BuildOnDevice<Cpu, f32>>::Built;

/// Which normalisation the convolutions get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    None,
    Batch,
    Layer,
}

impl Norm {
    pub const ALL: [Norm; 3] = [Norm::None, Norm::Batch, Norm::Layer];

    pub fn name(self) -> &'static str {
        match self {
            Norm::None => "no normalisation",
            Norm::Batch => "batch norm",
            Norm::Layer => "layer norm",
        }
    }
}

/// A trained [`NormNet`], whichever its normalisation (boxed: the nets differ in size).
#[derive(Clone, Debug)]
pub enum TrainedNet {
    None(Box<UnnormalisedNet>),
    Batch(Box<BatchNormNet>),
    Layer(Box<LayerNormNet>),
}

impl TrainedNet {
    /// Test accuracy in evaluation mode: batch norm normalises with its running statistics.
    pub fn accuracy(&self, test: &ImageSet) -> Result<f32, Error> {
        let tests = MiniBatches::<196>::from_images(&Cpu::default(), test, 500, 0)?;
        let (_, accuracy) = match self {
            TrainedNet::None(net) => evaluate(net.as_ref(), &tests, Loss::CrossEntropy)?,
            TrainedNet::Batch(net) => evaluate(net.as_ref(), &tests, Loss::CrossEntropy)?,
            TrainedNet::Layer(net) => evaluate(net.as_ref(), &tests, Loss::CrossEntropy)?,
        };
        Ok(accuracy)
    }

    /// Test accuracy when the test images come in batches of `batch` and batch norm
    /// normalises each batch with that batch's own statistics, as in training. The net's
    /// running statistics are left as they were. Layer norm and no normalisation do not
    /// look at the batch, so for them this is [`TrainedNet::accuracy`].
    pub fn accuracy_with_batch_statistics(
        &self,
        test: &ImageSet,
        batch: usize,
    ) -> Result<f32, Error> {
        let TrainedNet::Batch(net) = self else {
            return self.accuracy(test);
        };
        let mut net = net.as_ref().clone();
        let tests = MiniBatches::<196>::from_images(&Cpu::default(), test, batch, 0)?;
        let mut correct = 0.0;
        for (x, labels) in tests.epoch(0) {
            let logits = net.forward_mut(x.leaky_trace());
            correct += accuracy(&logits.as_vec(), &labels, 10) * labels.len() as f32;
        }
        Ok(correct / test.len().max(1) as f32)
    }
}

/// Trains a fresh [`NormNet`] with `norm` for `epochs` epochs of `train` with SGD
/// (momentum 0.9, learning rate `lr`) in batches of 64, evaluating on `test` after each
/// epoch. Returns what it measured and the trained net.
pub fn train_norm(
    train: &ImageSet,
    test: &ImageSet,
    norm: Norm,
    epochs: usize,
    lr: f64,
    seed: u64,
) -> Result<(History, TrainedNet), Error> {
    let dev = device(seed);
    Ok(match norm {
        Norm::None => {
            let mut net = dev.build_module::<NormNet<Bias2D<16>>, f32>();
            (
                fit_sgd(&mut net, train, test, epochs, lr, seed)?,
                TrainedNet::None(Box::new(net)),
            )
        }
        Norm::Batch => {
            let (history, net) = train_batch_norm(train, test, epochs, lr, 0.1, seed)?;
            (history, TrainedNet::Batch(Box::new(net)))
        }
        Norm::Layer => {
            let mut net = dev.build_module::<NormNet<LayerNorm2D<16>>, f32>();
            (
                fit_sgd(&mut net, train, test, epochs, lr, seed)?,
                TrainedNet::Layer(Box::new(net)),
            )
        }
    })
}

/// [`train_norm`] for batch norm, with the running statistics' momentum set: after each
/// training batch, running ← (1 − momentum)·running + momentum·batch statistic (dfdx's
/// and PyTorch's default momentum is 0.1: the last ten or so batches count).
pub fn train_batch_norm(
    train: &ImageSet,
    test: &ImageSet,
    epochs: usize,
    lr: f64,
    momentum: f64,
    seed: u64,
) -> Result<(History, BatchNormNet), Error> {
    let dev = device(seed);
    let mut net = dev.build_module::<NormNet<BatchNorm2D<16>>, f32>();
    set_momentum(&mut net, momentum);
    let history = fit_sgd(&mut net, train, test, epochs, lr, seed)?;
    Ok((history, net))
}

fn fit_sgd<M: Classifier<196, 10> + 'static>(
    model: &mut M,
    train: &ImageSet,
    test: &ImageSet,
    epochs: usize,
    lr: f64,
    seed: u64,
) -> Result<History, Error> {
    let dev = Cpu::default();
    let train = MiniBatches::<196>::from_images(&dev, train, 64, seed)?;
    let test = MiniBatches::<196>::from_images(&dev, test, 500, seed)?;
    let config = TrainConfig::new(epochs).quiet();
    let mut sgd = Method::Momentum.at(lr).build(model);
    fit_classifier(model, sgd.as_mut(), &train, &test, &config)
}

/// Test loss and accuracy of a batch-norm net with two kinds of population statistics.
#[derive(Clone, Copy, Debug)]
pub struct PreciseBn {
    /// With the exponential moving averages kept during training.
    pub ema: (f32, f32),
    /// With the statistics re-estimated after training.
    pub precise: (f32, f32),
    /// How far the moving averages of the first layer's means were from the re-estimated
    /// ones, relative to the re-estimated ones' size (summed over channels).
    pub mean_gap: f32,
}

/// "Precise BN" (Wu & Johnson §3): evaluates `net` with its moving averages, then with
/// every batch-norm layer's statistics re-estimated from `batches` batches of 64 training
/// images ([`reestimate_statistics`]). `net` itself is left as it was.
pub fn precise_bn(
    net: &BatchNormNet,
    train: &ImageSet,
    test: &ImageSet,
    batches: usize,
    seed: u64,
) -> Result<PreciseBn, Error> {
    let tests = MiniBatches::<196>::from_images(&Cpu::default(), test, 500, seed)?;
    let ema = evaluate(net, &tests, Loss::CrossEntropy)?;
    let mut precise_net = net.clone();
    reestimate_statistics(&mut precise_net, train, batches, seed)?;
    let precise = evaluate(&precise_net, &tests, Loss::CrossEntropy)?;
    let (before, after) = (
        net.1 .1.running_mean.as_vec(),
        precise_net.1 .1.running_mean.as_vec(),
    );
    let scale = after.iter().map(|v| v.abs()).sum::<f32>().max(1e-12);
    let gap = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (b - a).abs())
        .sum::<f32>();
    Ok(PreciseBn {
        ema,
        precise,
        mean_gap: gap / scale,
    })
}

fn set_momentum(net: &mut BatchNormNet, momentum: f64) {
    net.1 .1.momentum = momentum;
    net.2 .1.momentum = momentum;
    net.3 .1.momentum = momentum;
}

/// Replaces every batch-norm layer's running statistics by their average over `batches`
/// batches of 64 training images, passed through the net in training mode: at the k-th
/// batch the momentum is 1/k, which turns the moving average into the plain mean. The
/// weights do not change (no optimizer step); the momentum is put back afterwards.
pub fn reestimate_statistics(
    net: &mut BatchNormNet,
    train: &ImageSet,
    batches: usize,
    seed: u64,
) -> Result<(), Error> {
    let momentum = net.1 .1.momentum;
    let data = MiniBatches::<196>::from_images(&Cpu::default(), train, 64, seed ^ 0x5eed)?;
    let all = (1..).flat_map(|epoch| data.epoch(epoch));
    for (k, (x, _)) in all.take(batches).enumerate() {
        set_momentum(net, 1.0 / (k + 1) as f64);
        net.forward_mut(x.leaky_trace());
    }
    set_momentum(net, momentum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> ImageSet {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(seed);
        ImageSet {
            pixels: (0..n * 196).map(|_| rng.gen::<f32>()).collect(),
            labels: (0..n).map(|i| i % 10).collect(),
            height: 14,
            width: 14,
            class_names: (0..10).map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn every_norm_trains() {
        for norm in Norm::ALL {
            let (history, net) = train_norm(&noise(70, 0), &noise(4, 1), norm, 1, 0.01, 0).unwrap();
            assert_eq!(history.steps.len(), 2);
            let test = noise(6, 2);
            let accuracy = net.accuracy(&test).unwrap();
            let batch_stats = net.accuracy_with_batch_statistics(&test, 2).unwrap();
            if norm == Norm::Batch {
                let TrainedNet::Batch(bn) = &net else {
                    unreachable!()
                };
                let precise = precise_bn(bn, &noise(70, 0), &test, 2, 0).unwrap();
                assert_eq!(precise.ema.1, accuracy);
            } else {
                assert_eq!(accuracy, batch_stats);
            }
        }
    }

    #[test]
    fn reestimated_statistics_are_the_mean_over_the_batches() {
        let dev = Cpu::seed_from_u64(0);
        let mut model = dev.build_module::<NormNet<BatchNorm2D<16>>, f32>();
        // Sixty-four identical images: every batch gives the same statistics, and their
        // mean over batches is that batch's, whatever the running averages held before.
        let mut same = noise(1, 3);
        same = same.subset(&[0; 64]);
        reestimate_statistics(&mut model, &same, 3, 0).unwrap();
        let x = dev.tensor_from_vec(same.pixels.clone(), (64, Const::<196>));
        let conv = model.1 .0.forward(model.0.forward(x));
        let per_channel = conv.mean::<(Const<16>,), Axes3<0, 2, 3>>().as_vec();
        let running = model.1 .1.running_mean.as_vec();
        for (a, b) in per_channel.iter().zip(&running) {
            assert!((a - b).abs() < 1e-4, "{per_channel:?} vs {running:?}");
        }
    }
}
