//! Notebook `07_self_supervised`: representations learned from unlabelled images, judged
//! by how well a few labels then classify them.
//!
//! - [`losses`]: §1–3, the contrastive pair and triplet losses, InfoNCE and NT-Xent.
//! - [`infonce`]: §2, InfoNCE as a lower bound on mutual information, on correlated
//!   Gaussians whose mutual information is known.
//! - [`augment`]: §3, the random views.
//! - [`simclr`]: §3, SimCLR (Chen et al., 2020).
//! - [`byol`]: §4, BYOL (Grill et al., 2020), its target network an exponential moving
//!   average ([`ema`]).
//! - [`dino`]: §5, DINO (Caron et al., 2021), self-distillation with centering and
//!   sharpening.
//! - [`collapse`]: §4–5, the monitors that tell a collapsed representation from a healthy
//!   one.
//! - [`probe`]: §3–6, k-NN and linear-probe accuracy with few labels.
//! - [`supervised`]: §6, the same encoder trained on the few labels alone.
//!
//! Every method trains the same [`Encoder`], a small convnet, on Fashion-MNIST: on MNIST a
//! random convnet's features already classify most digits, which leaves little room to see
//! what a method adds.

pub mod augment;
pub mod byol;
pub mod collapse;
pub mod dino;
pub mod infonce;
pub mod losses;
pub mod probe;
pub mod simclr;
pub mod supervised;

use crate::data::{fashion_mnist, ImageSet};
use crate::nn::builders::{Conv2D, Flatten2D, LayerNorm2D, ReLU, Unflatten2D};
use crate::train::{parameters, set_parameters, TrainConfig};
use crate::Error;
use augment::Augment;
use dfdx::prelude::*;
use probe::{Features, CLASSES};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

/// An image's side: Fashion-MNIST's 28 pixels.
pub const SIDE: usize = 28;
/// An image's pixels, flattened.
pub const PIXELS: usize = SIDE * SIDE;
/// The width of the representation the probes read, the encoder's output.
pub const REPRESENTATION: usize = 128;
/// The width of the projection heads' outputs, where the losses are computed.
pub const PROJECTION: usize = 64;

/// The encoder every method of notebook `07_self_supervised` trains: three stride-2 3×3 convolutions with layer
/// normalisation (which behaves the same in training and evaluation, and couples no two
/// images of a batch, so a method cannot cheat through batch statistics), then a linear map
/// to the 128-wide representation. About 180,000 weights.
pub type Encoder = (
    Unflatten2D<1, SIDE, SIDE>,                            // 784 → 1×28×28
    (Conv2D<1, 16, 3, 2, 1>, LayerNorm2D<16>, ReLU),       // → 16×14×14
    (Conv2D<16, 32, 3, 2, 1>, LayerNorm2D<32>, ReLU),      // → 32×7×7
    (Conv2D<32, 64, 3, 2, 1>, LayerNorm2D<64>, ReLU),      // → 64×4×4
    (Flatten2D<1024>, Linear<1024, REPRESENTATION>, ReLU), // → 128
);

/// [`Encoder`] built on the CPU.
pub type EncoderNet = <Encoder as BuildOnDevice<Cpu, f32>>::Built;

/// Notebook `07_self_supervised` §3: a projection head, the MLP between the representation and the loss (SimCLR's `g`).
pub type Projector = (
    Linear<REPRESENTATION, REPRESENTATION>,
    ReLU,
    Linear<REPRESENTATION, PROJECTION>,
);

/// Notebook `07_self_supervised` §3–6: the images of one experiment, all from Fashion-MNIST's 10,000 test images (the data the
/// course ships), split once by a seed: 7,000 for pre-training without labels (the few
/// labelled images are drawn from them too), 1,000 labelled for validation, 2,000 for the
/// test.
#[derive(Clone, Debug)]
pub struct Splits {
    pub pool: ImageSet,
    pub validation: ImageSet,
    pub test: ImageSet,
}

impl Splits {
    pub fn fashion(seed: u64) -> Result<Splits, Error> {
        let images = fashion_mnist()?;
        let (rest, test) = images.split(0.2, seed)?;
        let (pool, validation) = rest.split(0.125, seed + 1)?;
        Ok(Splits {
            pool,
            validation,
            test,
        })
    }

    /// `per_class` labelled images of every class, drawn from the pool with `seed`.
    pub fn few_labels(&self, per_class: usize, seed: u64) -> Result<ImageSet, Error> {
        let mut order: Vec<usize> = (0..self.pool.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut taken = [0; CLASSES];
        let picked: Vec<usize> = order
            .into_iter()
            .filter(|&i| {
                let class = self.pool.labels[i];
                let keep = taken[class] < per_class;
                taken[class] += usize::from(keep);
                keep
            })
            .collect();
        if taken.iter().any(|&t| t < per_class) {
            return Err(Error::InvalidArgument {
                what: "the labels per class",
                expected: "no more than the pool holds of its rarest class",
                got: per_class.to_string(),
            });
        }
        Ok(self.pool.subset(&picked))
    }
}

/// Notebook `07_self_supervised` §3–6: a representation scored with one labelled set: `per_class` labels of every class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probed {
    pub per_class: usize,
    /// Test accuracy of the k-NN vote ([`probe::knn_accuracy`]).
    pub knn: f32,
    /// Test accuracy of the linear probe ([`probe::linear_probe`]).
    pub linear: f32,
}

impl Splits {
    /// Scores the representation `represent` gives each image with every labelled set of
    /// `labelled` (the probe's weight decay chosen on the validation images).
    pub fn probe(
        &self,
        labelled: &[ImageSet],
        represent: &dyn Fn(&ImageSet) -> Result<Features, Error>,
        seed: u64,
    ) -> Result<Vec<Probed>, Error> {
        let (validation, test) = (represent(&self.validation)?, represent(&self.test)?);
        labelled
            .iter()
            .map(|few| {
                let train = represent(few)?;
                Ok(Probed {
                    per_class: few.len() / CLASSES,
                    knn: probe::knn_accuracy(&train, &test)?,
                    linear: probe::linear_probe(&train, &validation, &test, seed)?.test,
                })
            })
            .collect()
    }
}

/// The pixels of `images` as [`Features`]: the raw-pixel baseline of notebook
/// `07_self_supervised` §3 and §6.
pub fn pixels(images: &ImageSet) -> Features {
    Features {
        values: images.pixels.clone(),
        dim: images.pixels_per_image(),
        labels: images.labels.clone(),
    }
}

/// What `model` maps each image of `images` to, 500 images at a time, without a tape: the
/// frozen representations notebook `07_self_supervised` probes.
pub fn features<M, const D: usize>(model: &M, images: &ImageSet) -> Result<Features, Error>
where
    M: Module<
        Tensor<(usize, Const<PIXELS>), f32, Cpu>,
        Output = Tensor<(usize, Const<D>), f32, Cpu>,
    >,
{
    check_images(images)?;
    let dev = Cpu::default();
    let mut values = Vec::with_capacity(images.len() * D);
    for chunk in images.pixels.chunks(500 * PIXELS) {
        let x = dev.tensor_from_vec(chunk.to_vec(), (chunk.len() / PIXELS, Const::<PIXELS>));
        values.extend(model.forward(x).as_vec());
    }
    Ok(Features {
        values,
        dim: D,
        labels: images.labels.clone(),
    })
}

/// A freshly initialised [`Encoder`]: the random-encoder baseline of notebook
/// `07_self_supervised` §3 and §6, and every method's starting point for equal seeds.
pub fn random_encoder(seed: u64) -> EncoderNet {
    Cpu::seed_from_u64(seed).build_module::<Encoder, f32>()
}

/// Notebook `07_self_supervised` §4–5: an exponential moving average of the weights: `target ← m·target + (1 − m)·online`,
/// weight by weight. BYOL's and DINO's targets follow their online networks so; `m = 0`
/// copies the online network, `m = 1` leaves the target as it was.
pub fn ema<M: TensorCollection<f32, Cpu>>(target: &mut M, online: &M, m: f32) -> Result<(), Error> {
    let online = parameters(online);
    let mut mixed = parameters(target);
    if mixed.len() != online.len() {
        return Err(Error::ShapeMismatch {
            what: "the moving average's networks",
            expected: format!("{} weights, as the target has", mixed.len()),
            got: online.len().to_string(),
        });
    }
    mixed
        .iter_mut()
        .zip(&online)
        .for_each(|(t, o)| *t = m * *t + (1.0 - m) * o);
    set_parameters(target, &mixed)
}

/// Pre-training's settings, shared by notebook `07_self_supervised`'s three methods (§3–5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pretraining {
    pub steps: usize,
    /// Images per step (each gives two views).
    pub batch: usize,
    /// Adam's peak learning rate (a cosine schedule with 5% warm-up follows it).
    pub lr: f64,
    pub augment: Augment,
    pub seed: u64,
}

impl Pretraining {
    /// The course's settings: 500 steps of 96 images (about 7 passes over the pool), Adam
    /// at 2·10⁻³, SimCLR's augmentations.
    pub fn new(seed: u64) -> Pretraining {
        Pretraining {
            steps: 500,
            batch: 96,
            lr: 2e-3,
            augment: Augment::simclr(),
            seed,
        }
    }

    /// The same settings for `steps` steps.
    pub fn steps(self, steps: usize) -> Pretraining {
        Pretraining { steps, ..self }
    }

    /// The same settings with `augment`'s views.
    pub fn augment(self, augment: Augment) -> Pretraining {
        Pretraining { augment, ..self }
    }

    /// An endless source of batches of two views: `batch` images drawn from `pool`, their
    /// first views then their second, as one `(2·batch, 784)` tensor.
    fn views<'a>(
        &self,
        pool: &'a ImageSet,
    ) -> Result<impl FnMut() -> Tensor<(usize, Const<PIXELS>), f32, Cpu> + 'a, Error> {
        check_images(pool)?;
        self.augment.check()?;
        let (augment, batch) = (self.augment, self.batch);
        let mut rng = StdRng::seed_from_u64(self.seed);
        let dev = Cpu::default();
        Ok(move || {
            let picked: Vec<&[f32]> = (0..batch)
                .map(|_| pool.image(rng.gen_range(0..pool.len())))
                .collect();
            let both = augment.pairs(&picked, SIDE, &mut rng);
            dev.tensor_from_vec(both, (2 * batch, Const::<PIXELS>))
        })
    }

    /// The run's length in epochs of [`EPOCH`] steps (`steps` rounded up), quiet, on a
    /// cosine schedule with 5% warm-up down to 5% of the peak.
    fn config(&self) -> TrainConfig {
        TrainConfig::cosine(self.steps, EPOCH, self.lr)
    }
}

/// Rows `i` and `i + B` of a `2B`-row batch exchanged: each view's partner in its place
/// (BYOL's and DINO's targets for the other view).
fn swap_halves<const D: usize>(
    x: Tensor<(usize, Const<D>), f32, Cpu>,
) -> Tensor<(usize, Const<D>), f32, Cpu> {
    let (rows, half) = (x.shape().0, x.shape().0 / 2 * D);
    let mut values = x.as_vec();
    values.rotate_left(half);
    x.device().tensor_from_vec(values, (rows, Const::<D>))
}

/// Steps between two records of a run's monitors (an "epoch" of drawn batches).
pub const EPOCH: usize = 50;

fn check_images(images: &ImageSet) -> Result<(), Error> {
    images.check_side(SIDE, "MNIST or Fashion-MNIST")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moving_average_mixes_weights() {
        let (mut target, online) = (random_encoder(0), random_encoder(1));
        let (before, o) = (parameters(&target), parameters(&online));
        ema(&mut target, &online, 0.9).unwrap();
        let after = parameters(&target);
        let worst = (0..after.len())
            .map(|i| (after[i] - (0.9 * before[i] + 0.1 * o[i])).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-6, "a weight is {worst} off the average");
        ema(&mut target, &online, 0.0).unwrap();
        assert_eq!(parameters(&target), o);
    }

    #[test]
    fn few_labels_are_balanced() {
        let splits = Splits::fashion(0).unwrap();
        assert_eq!(
            (
                splits.pool.len(),
                splits.validation.len(),
                splits.test.len()
            ),
            (7000, 1000, 2000)
        );
        let few = splits.few_labels(10, 3).unwrap();
        let mut counts = [0; CLASSES];
        few.labels.iter().for_each(|&l| counts[l] += 1);
        assert_eq!(counts, [10; CLASSES]);
        assert!(splits.few_labels(5000, 3).is_err());
    }
}
