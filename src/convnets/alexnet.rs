//! §3: AlexNet (Krizhevsky, Sutskever & Hinton, 2012) in miniature on Fashion-MNIST: its
//! three ingredients, one at a time. ReLU trains faster than saturating tanh or sigmoid;
//! dropout in the classifier and augmented images (random crops and flips) fight
//! overfitting.

use super::smoothed;
use crate::data::{Batch, ImageSet, MiniBatches};
use crate::nn::builders::{Bias2D, Conv2D, Flatten2D, MaxPool2D, ReLU, Unflatten2D};
use crate::optim::{Method, ScheduledOptimizer};
use crate::runtime::device;
use crate::train::{
    evaluate, fit, parameters, set_parameters, Batches, Classification, Classifier, Evaluation,
    History, Loss, Measured, Objective, StepRecord, TrainConfig,
};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// AlexNet's layout at 1/100 of its width for 28×28 grey images: two convolution stages
/// (5×5 then 3×3, each convolution, bias, activation `A`, 2×2 max pooling) and a classifier
/// with one hidden layer and dropout (p = 0.5, as in the paper). AlexNet has five
/// convolutions, three dense layers of up to 4,096 units and 60 million parameters; this
/// one has about 210,000. Shapes per example in the comments.
pub type MiniAlexNet<A> = (
    Unflatten2D<1, 28, 28>,                                 // 784 → 1×28×28
    (Conv2D<1, 16, 5, 1, 2>, Bias2D<16>, A, MaxPool2D<2>),  // → 16×28×28 → 16×14×14
    (Conv2D<16, 32, 3, 1, 1>, Bias2D<32>, A, MaxPool2D<2>), // → 32×14×14 → 32×7×7
    Flatten2D<1568>,                                        // → 1568
    (Linear<1568, 128>, A, Dropout, Linear<128, 10>),       // → 128 → 10 logits
);

/// [`MiniAlexNet`] with ReLU, as AlexNet has it.
pub type MiniAlexNetRelu = <MiniAlexNet<ReLU> as BuildOnDevice<Cpu, f32>>::Built;

/// The activation function between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    pub const ALL: [Activation; 3] = [Activation::Relu, Activation::Tanh, Activation::Sigmoid];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "ReLU",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        }
    }
}

/// The paper's optimizer: SGD with momentum 0.9 and learning rate 0.01 (its weight decay
/// left out), on batches of 64.
const BATCH: usize = 64;

fn paper_sgd<M: TensorCollection<f32, Cpu> + 'static>(
    model: &M,
) -> Box<dyn ScheduledOptimizer<M, f32>> {
    Method::Momentum.at(0.01).build(model)
}

/// Trains a fresh [`MiniAlexNet`] with `activation` for `epochs` epochs of `train`,
/// dropout off (this race is about the activation), and returns what every step measured.
pub fn activation_race(
    train: &ImageSet,
    activation: Activation,
    epochs: usize,
    seed: u64,
) -> Result<History, Error> {
    match activation {
        Activation::Relu => race::<ReLU>(train, epochs, seed),
        Activation::Tanh => race::<Tanh>(train, epochs, seed),
        Activation::Sigmoid => race::<Sigmoid>(train, epochs, seed),
    }
}

fn race<A>(train: &ImageSet, epochs: usize, seed: u64) -> Result<History, Error>
where
    A: BuildOnDevice<Cpu, f32>,
    MiniAlexNet<A>: BuildOnDevice<Cpu, f32>,
    <MiniAlexNet<A> as BuildOnDevice<Cpu, f32>>::Built: Classifier<784, 10> + 'static,
{
    let dev = device(seed);
    let mut model = dev.build_module::<MiniAlexNet<A>, f32>();
    he_init(&mut model)?;
    let mut sgd = paper_sgd(&model);
    let batches = MiniBatches::<784>::from_images(&dev, train, BATCH, seed)?;
    // The race is read from the training steps: nothing to evaluate.
    let objective = Classification::<784, 10> {
        test: None,
        loss: Loss::CrossEntropy,
    };
    let config = TrainConfig::new(epochs).quiet();
    fit(&mut model, sgd.as_mut(), &batches, objective, &config)
}

/// Rescales every parameter from the layers' default, uniform in ±1/√fan_in, to He et
/// al.'s (2015) uniform in ±√(6/fan_in): a variance of 2/fan_in, which keeps the signal's
/// size through ReLU layers. The default's smaller start stalls ReLU nets for a few
/// hundred steps before they learn at all.
fn he_init<M: TensorCollection<f32, Cpu>>(model: &mut M) -> Result<(), Error> {
    let gain = 6f32.sqrt();
    let scaled: Vec<f32> = parameters(model).iter().map(|v| v * gain).collect();
    set_parameters(model, &scaled)
}

/// The first step after which the mean training error of the last `window` batches is at
/// most `error`: the paper's "steps to 25% training error".
pub fn steps_to_error(steps: &[StepRecord], error: f32, window: usize) -> Option<usize> {
    smoothed(steps, window, |s| 1.0 - s.accuracy)
        .iter()
        .position(|&[_, e]| e <= f64::from(error))
        .map(|i| i + window)
}

/// What [`train_regularised`] turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regularisation {
    /// Dropout (p = 0.5) after the classifier's hidden layer.
    pub dropout: bool,
    /// A fresh random crop and flip of every training image each epoch ([`augment`]).
    pub augment: bool,
}

/// What [`train_regularised`] measured: the loop's history (whose `train_accuracy` is the
/// mean over each epoch's batches as trained, dropout on and images augmented) and, after
/// each epoch, the accuracy on the training images as they are, in evaluation mode
/// (dropout off): the training accuracy to set against the test accuracy (notebook
/// `04_convnets` §3).
pub struct RegularisedRun {
    pub history: History,
    pub train_accuracy: Vec<f32>,
}

impl RegularisedRun {
    /// `(epoch, accuracy on the un-augmented training images, dropout off)` per epoch.
    pub fn train_curve(&self) -> Vec<[f64; 2]> {
        let point = |(i, &a): (usize, &f32)| [(i + 1) as f64, f64::from(a)];
        self.train_accuracy.iter().enumerate().map(point).collect()
    }

    /// The last epoch's `(training accuracy, test accuracy)`, both in evaluation mode.
    pub fn last(&self) -> (f64, f64) {
        let train = self.train_accuracy.last().map_or(f32::NAN, |&a| a);
        let test = self.history.last().map_or(f32::NAN, |e| e.test_accuracy);
        (f64::from(train), f64::from(test))
    }

    /// The generalisation gap after the last epoch: training minus test accuracy.
    pub fn gap(&self) -> f64 {
        let (train, test) = self.last();
        train - test
    }
}

/// Trains a ReLU [`MiniAlexNet`] for `epochs` epochs with the paper's optimizer, with or
/// without dropout and augmentation, evaluating on `test` and on the training images after
/// each epoch. Returns the run and the trained model (its first layer's filters are worth
/// a look).
pub fn train_regularised(
    train: &ImageSet,
    test: &ImageSet,
    regularisation: Regularisation,
    epochs: usize,
    seed: u64,
) -> Result<(RegularisedRun, MiniAlexNetRelu), Error> {
    let dev = device(seed);
    let mut model = dev.build_module::<MiniAlexNet<ReLU>, f32>();
    he_init(&mut model)?;
    if !regularisation.dropout {
        model.4 .2.p = 0.0;
    }
    let mut sgd = paper_sgd(&model);
    let test = MiniBatches::<784>::from_images(&dev, test, 500, seed)?;
    let mut train_accuracy = Vec::new();
    let objective = AlsoOnTraining {
        classification: Classification {
            test: Some(&test),
            loss: Loss::CrossEntropy,
        },
        train: MiniBatches::from_images(&dev, train, 500, seed)?,
        accuracy: &mut train_accuracy,
    };
    let batches = EpochImages {
        train,
        augment: regularisation.augment,
        seed,
        dev,
        current: None,
    };
    let config = TrainConfig::new(epochs).quiet();
    let history = fit(&mut model, sgd.as_mut(), batches, objective, &config)?;
    let run = RegularisedRun {
        history,
        train_accuracy,
    };
    Ok((run, model))
}

/// [`Classification`], and after each epoch the model's accuracy on `train` in evaluation
/// mode (dropout off), appended to `accuracy`.
struct AlsoOnTraining<'a> {
    classification: Classification<'a, 784, 10>,
    train: MiniBatches<784>,
    accuracy: &'a mut Vec<f32>,
}

impl<M: Classifier<784, 10>> Objective<M, Batch<784>> for AlsoOnTraining<'_> {
    fn loss(
        &mut self,
        model: &mut M,
        batch: Batch<784>,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        self.classification.loss(model, batch, grads)
    }

    fn evaluate(&mut self, model: &M) -> Result<Option<Evaluation>, Error> {
        let (_, accuracy) = evaluate(model, &self.train, Loss::CrossEntropy)?;
        self.accuracy.push(accuracy);
        self.classification.evaluate(model)
    }
}

/// The training images of each epoch, in batches of [`BATCH`]: augmented afresh when
/// `augment` is on ([`augment`]), shuffled with a seed of the epoch's own.
struct EpochImages<'a> {
    train: &'a ImageSet,
    augment: bool,
    seed: u64,
    dev: Cpu,
    current: Option<MiniBatches<784>>,
}

impl Batches for EpochImages<'_> {
    type Batch = Batch<784>;

    fn per_epoch(&self) -> usize {
        self.train.len().div_ceil(BATCH)
    }

    fn epoch(&mut self, epoch: usize) -> Result<impl Iterator<Item = Batch<784>> + '_, Error> {
        let seed = self.seed.wrapping_mul(1000).wrapping_add(epoch as u64);
        let images = if self.augment {
            augment(self.train, seed)?
        } else {
            self.train.clone()
        };
        let batches = MiniBatches::<784>::from_images(&self.dev, &images, BATCH, seed)?;
        Ok(self.current.insert(batches).epoch(1))
    }
}

/// AlexNet's augmentation for small grey images: each image shifted by up to 2 pixels in
/// each direction (a random 28×28 crop of the image padded with 2 black pixels) and
/// mirrored left–right with probability ½. AlexNet took 224×224 crops of 256×256 images.
pub fn augment(images: &ImageSet, seed: u64) -> Result<ImageSet, Error> {
    const SHIFT: isize = 2;
    let (h, w) = (images.height, images.width);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(images.pixels.len());
    for i in 0..images.len() {
        let image = images.image(i);
        let (dy, dx) = (rng.gen_range(-SHIFT..=SHIFT), rng.gen_range(-SHIFT..=SHIFT));
        let flip = rng.gen_bool(0.5);
        for r in 0..h as isize {
            for c in 0..w as isize {
                let c = if flip { w as isize - 1 - c } else { c };
                let (sr, sc) = (r + dy, c + dx);
                let inside = (0..h as isize).contains(&sr) && (0..w as isize).contains(&sc);
                pixels.push(if inside {
                    image[sr as usize * w + sc as usize]
                } else {
                    0.0
                });
            }
        }
    }
    Ok(ImageSet {
        pixels,
        ..images.clone()
    })
}

/// The first convolution's 16 learned 5×5 filters, each row-major: what the network looks
/// for in the pixels (notebook `04_convnets` §3).
pub fn first_layer_filters(model: &MiniAlexNetRelu) -> Vec<Vec<f32>> {
    model
        .1
         .0
        .weight
        .as_vec()
        .chunks(25)
        .map(<[f32]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_set() -> ImageSet {
        ImageSet {
            pixels: (0..2 * 28 * 28).map(|v| (v % 28) as f32 / 28.0).collect(),
            labels: vec![0, 1],
            height: 28,
            width: 28,
            class_names: (0..10).map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn augmentation_shifts_and_flips_but_keeps_the_shape() {
        let set = tiny_set();
        let a = augment(&set, 0).unwrap();
        assert_eq!(a.pixels.len(), set.pixels.len());
        assert_eq!(a.labels, set.labels);
        assert_ne!(a.pixels, set.pixels);
        assert_eq!(augment(&set, 0).unwrap(), a, "seeded");
    }

    #[test]
    fn steps_to_error_reads_the_smoothed_curve() {
        let steps: Vec<StepRecord> = [0.2, 0.4, 0.8, 0.9]
            .iter()
            .enumerate()
            .map(|(i, &accuracy)| StepRecord {
                epoch: 1,
                step: i + 1,
                lr: 0.01,
                loss: 0.0,
                accuracy,
            })
            .collect();
        assert_eq!(
            steps_to_error(&steps, 0.5, 2),
            Some(3),
            "errors 0.7, 0.4, 0.15"
        );
        assert_eq!(steps_to_error(&steps, 0.1, 2), None);
    }

    #[test]
    fn a_few_steps_of_each_activation_run() {
        let history = activation_race(&tiny_set(), Activation::Tanh, 2, 0).unwrap();
        assert_eq!(history.steps.len(), 2);
        let (run, model) = train_regularised(
            &tiny_set(),
            &tiny_set(),
            Regularisation {
                dropout: true,
                augment: true,
            },
            1,
            0,
        )
        .unwrap();
        assert_eq!(run.history.epochs.len(), 1);
        assert_eq!(run.train_accuracy.len(), 1);
        assert_eq!(first_layer_filters(&model).len(), 16);
    }
}
