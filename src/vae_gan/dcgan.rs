//! §5: a deep convolutional GAN (DCGAN; Radford, Metz & Chintala, 2016) on MNIST. The
//! paper's recipe, scaled down: strided convolutions instead of pooling, transposed
//! convolutions to grow the generator's images, batch normalisation in the generator,
//! ReLU in the generator and leaky ReLU (slope 0.2) in the discriminator, Adam with
//! β₁ = 0.5.

use super::gan::{Adversarial, GeneratorLoss};
use super::{check_images, draw_images, EPOCH, PIXELS, SIDE};
use crate::cache;
use crate::data::ImageSet;
use crate::nn::builders::{
    BatchNorm2D, Bias2D, Conv2D, ConvTranspose2D, Flatten2D, LeakyReLU, ReLU, Unflatten2D,
};
use crate::optim::{Method, OptimizerConfig};
use crate::runtime::device;
use crate::train::{fit, Drawn, History, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

/// The width of the generator's noise `z`.
pub const NOISE: usize = 64;

/// The generator: noise to a 28×28 image with pixels in `0..1`.
pub type Generator = (
    (Linear<NOISE, 1568>, ReLU),                               // z → 1568
    Unflatten2D<32, 7, 7>,                                     // → 32×7×7
    (ConvTranspose2D<32, 16, 4, 2, 1>, BatchNorm2D<16>, ReLU), // → 16×14×14
    (ConvTranspose2D<16, 1, 4, 2, 1>, Bias2D<1>),              // → 1×28×28
    (Flatten2D<PIXELS>, Sigmoid),                              // → 784 pixels
);

/// The discriminator: an image to the logit of its being real. Its leaky ReLUs have the
/// paper's slope, 0.2.
pub type Discriminator = (
    Unflatten2D<1, SIDE, SIDE>,                           // 784 → 1×28×28
    (Conv2D<1, 16, 4, 2, 1>, Bias2D<16>, LeakyReLU<20>),  // → 16×14×14
    (Conv2D<16, 32, 4, 2, 1>, Bias2D<32>, LeakyReLU<20>), // → 32×7×7
    (Flatten2D<1568>, Linear<1568, 1>),                   // → 1 logit
);

/// Both players, built on the CPU.
pub type DcganNet = <(Generator, Discriminator) as BuildOnDevice<Cpu, f32>>::Built;

/// Where [`Dcgan::train`] keeps a DCGAN trained on these images with these settings.
fn cache_file(train: &ImageSet, settings: &DcganSettings) -> std::path::PathBuf {
    super::cache_file::<DcganNet>("dcgan", settings, &[train])
}

/// How the DCGAN is trained: notebook `08_vae_gan` §5.
#[derive(Clone, Copy, Debug)]
pub struct DcganSettings {
    /// Rounds of the game (one step for each player).
    pub rounds: usize,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub seed: u64,
}

impl DcganSettings {
    /// 700 rounds of 64 images, Adam at 10⁻³ with β₁ = 0.5 (the paper: 2·10⁻⁴, for
    /// tens of thousands of rounds).
    pub fn new(seed: u64) -> DcganSettings {
        DcganSettings {
            rounds: 700,
            batch: 64,
            optimizer: Method::Adam.at(1e-3).betas(0.5, 0.999),
            seed,
        }
    }

    /// The same settings for `rounds` rounds (run in whole epochs of [`EPOCH`] steps, so
    /// rounded up to a multiple of 25).
    pub fn rounds(self, rounds: usize) -> DcganSettings {
        DcganSettings { rounds, ..self }
    }
}

/// A DCGAN, trained or not: notebook `08_vae_gan` §5.
#[derive(Clone, Debug)]
pub struct Dcgan {
    pub players: DcganNet,
}

impl Dcgan {
    /// Both players freshly initialised from `seed`: the untrained baseline.
    pub fn untrained(seed: u64) -> Dcgan {
        Dcgan {
            players: device(seed).build_module::<(Generator, Discriminator), f32>(),
        }
    }

    /// Plays the game on `train`'s images (grey levels, `0..=1`) with the non-saturating
    /// generator loss. The trained players are kept in the crate's cache for
    /// [`Dcgan::cached`].
    pub fn train(train: &ImageSet, settings: &DcganSettings) -> Result<(Dcgan, History), Error> {
        check_images(train)?;
        let Dcgan { mut players } = Dcgan::untrained(settings.seed);
        let mut adam = settings.optimizer.build(&players);
        let mut rng = StdRng::seed_from_u64(settings.seed);
        let (dev, batch) = (device(settings.seed), settings.batch);
        let real = Drawn::new(EPOCH, || {
            dev.tensor_from_vec(
                draw_images(train, batch, &mut rng),
                (batch, Const::<PIXELS>),
            )
        });
        let game = Adversarial::<NOISE>::new(GeneratorLoss::NonSaturating);
        let config = TrainConfig::new((2 * settings.rounds).div_ceil(EPOCH)).quiet();
        let history = fit(&mut players, adam.as_mut(), real, game, &config)?;
        cache::save(&players, &cache_file(train, settings))?;
        Ok((Dcgan { players }, history))
    }

    /// The DCGAN an earlier [`Dcgan::train`] on these images with these settings left in
    /// the crate's cache ([`crate::cache`]), if there is one: notebook `09_diffusion` §5
    /// compares it with diffusion without training it again.
    pub fn cached(train: &ImageSet, settings: &DcganSettings) -> Option<Dcgan> {
        let fresh = Dcgan::untrained(settings.seed).players;
        let players = cache::load(fresh, &cache_file(train, settings))?;
        Some(Dcgan { players })
    }

    /// `n` generated images (flattened, pixels in `0..1`), the generator in evaluation
    /// mode (batch normalisation with its running statistics).
    pub fn sample(&self, n: usize, seed: u64) -> Vec<f32> {
        let z: Tensor<(usize, Const<NOISE>), f32, Cpu> =
            device(seed).sample_normal_like(&(n, Const));
        self.players.0.forward(z).as_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generators_frozen_judge_is_the_discriminator() {
        let mut gan = Dcgan::untrained(3);
        let x: Tensor<(usize, Const<PIXELS>), f32, Cpu> =
            Cpu::default().sample_uniform_like(&(4, Const));
        let judge = gan.players.1.to_device(&Cpu::default());
        let (a, b) = (
            gan.players.1.forward_mut(x.clone()).as_vec(),
            judge.forward(x).as_vec(),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn a_few_rounds_train_both_players_and_sample_images() {
        let images = crate::data::mnist().unwrap();
        let train = images.subset(&(0..500).collect::<Vec<_>>());
        let before = Dcgan::untrained(0);
        let (gan, history) = Dcgan::train(&train, &DcganSettings::new(0).rounds(25)).unwrap();
        assert_eq!(history.steps.len(), 50);
        let (g0, g1) = (
            crate::train::parameters(&before.players.0),
            crate::train::parameters(&gan.players.0),
        );
        assert_ne!(g0, g1, "the generator moved");
        let samples = gan.sample(4, 1);
        assert_eq!(samples.len(), 4 * PIXELS);
        assert!(samples.iter().all(|&p| (0.0..=1.0).contains(&p)));
        let cached = Dcgan::cached(&train, &DcganSettings::new(0).rounds(25)).unwrap();
        assert_eq!(
            cached.sample(4, 1),
            samples,
            "the cache holds the trained players"
        );
        assert!(Dcgan::cached(&train, &DcganSettings::new(9).rounds(25)).is_none());
    }
}
