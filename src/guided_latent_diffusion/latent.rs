//! §4: latent diffusion (Rombach et al., 2022). An autoencoder is trained first to squeeze
//! each digit into a small grid of latent values and back; the denoiser then learns the
//! latents rather than the pixels, and its samples are decoded at the end. The encoder
//! outputs a Gaussian per latent value, and a small KL term towards `N(0, 1)` keeps the
//! latent space smooth and of a bounded scale (the paper's "KL-reg" autoencoder).

use crate::data::MiniBatches;
use crate::nn;
use crate::nn::builders::{Bias2D, Conv2D, ConvTranspose2D, ReLU};
use crate::optim::{Method, OptimizerConfig};
use crate::runtime::{device, hot_pool};
use crate::train::{fit, History, Measured, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use num_traits::Float;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::uniform::SampleUniform;
use rand_distr::StandardNormal;

/// MNIST's side, and the side the autoencoder reads: MNIST with a 2-pixel border of
/// background, as LeNet read it, so that two halvings divide it.
pub const MNIST_SIDE: usize = 28;
pub const PADDED: usize = 32;
/// The downsampling factor `f` and the latent grid: 4 channels of 8×8, 256 values for the
/// 784 pixels.
pub const FACTOR: usize = 4;
pub const SIDE: usize = PADDED / FACTOR;
pub const CHANNELS: usize = 4;
/// Values in one latent.
pub const LATENT: usize = CHANNELS * SIDE * SIDE;

type Conv<const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, E, D> =
    nn::Conv2D<I, O, K, S, P, 1, 1, E, D>;
type Bias<const C: usize, E, D> = nn::Bias2D<C, E, D>;
type Up<const I: usize, const O: usize, E, D> = nn::ConvTranspose2D<I, O, 2, 2, 0, 1, E, D>;

/// Encoder: two stride-2 3×3 convolutions (32×32 → 16×16 → 8×8, 16 and 32 channels), then
/// 1×1 convolutions to the mean and the log-variance of each of the 4×8×8 latent values.
/// Decoder: a 3×3 convolution, two 2×2 transposed convolutions back to 32×32, and a 3×3
/// convolution to each pixel's logit. Notebook `10_guided_latent_diffusion` §4.
#[derive(Clone, Debug)]
pub struct Autoencoder<E: Dtype = f32, D: Storage<E> = Cpu> {
    encoder: Encoder<E, D>,
    mean: (Conv<32, CHANNELS, 1, 1, 0, E, D>, Bias<CHANNELS, E, D>),
    log_var: (Conv<32, CHANNELS, 1, 1, 0, E, D>, Bias<CHANNELS, E, D>),
    decoder: Decoder<E, D>,
}

/// 32×32 → 16×16 → 8×8, 16 then 32 channels.
type Encoder<E, D> = (
    (Conv<1, 16, 3, 2, 1, E, D>, Bias<16, E, D>, nn::ReLU),
    (Conv<16, 32, 3, 2, 1, E, D>, Bias<32, E, D>, nn::ReLU),
);
/// 8×8 → 16×16 → 32×32, then each pixel's logit.
type Decoder<E, D> = (
    (Conv<CHANNELS, 32, 3, 1, 1, E, D>, Bias<32, E, D>, nn::ReLU),
    (Up<32, 16, E, D>, Bias<16, E, D>, nn::ReLU),
    (Up<16, 16, E, D>, Bias<16, E, D>, nn::ReLU),
    (Conv<16, 1, 3, 1, 1, E, D>, Bias<1, E, D>),
);

/// Built on the CPU with weights drawn from `seed`.
pub fn autoencoder(seed: u64) -> Autoencoder {
    let dev = device(seed);
    Autoencoder {
        encoder: dev.build_module::<(
            (Conv2D<1, 16, 3, 2, 1>, Bias2D<16>, ReLU),
            (Conv2D<16, 32, 3, 2, 1>, Bias2D<32>, ReLU),
        ), f32>(),
        mean: dev.build_module::<(Conv2D<32, CHANNELS, 1>, Bias2D<CHANNELS>), f32>(),
        log_var: dev.build_module::<(Conv2D<32, CHANNELS, 1>, Bias2D<CHANNELS>), f32>(),
        decoder: dev.build_module::<(
            (Conv2D<CHANNELS, 32, 3, 1, 1>, Bias2D<32>, ReLU),
            (ConvTranspose2D<32, 16, 2, 2>, Bias2D<16>, ReLU),
            (ConvTranspose2D<16, 16, 2, 2>, Bias2D<16>, ReLU),
            (Conv2D<16, 1, 3, 1, 1>, Bias2D<1>),
        ), f32>(),
    }
}

type Pixels<T = NoneTape> = Tensor<(usize, usize, usize, usize), f32, Cpu, T>;
type Latents<T = NoneTape> = nn::Images<usize, Const<CHANNELS>, T>;

/// `KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − ln σ²)` for each latent value, averaged over
/// all of them. Notebook `10_guided_latent_diffusion` §4.
pub fn kl_to_standard<T: Tape<f32, Cpu> + Merge<T>>(
    mean: Latents<T>,
    log_var: Latents<T>,
) -> Tensor<Rank0, f32, Cpu, T> {
    let variance = log_var.with_empty_tape().exp();
    ((mean.square() + variance - log_var - 1.0) * 0.5).mean()
}

/// 28×28 images (flattened, pixels in `0..=1`) framed by 2 pixels of background to 32×32.
pub fn pad(images: &[f32]) -> Vec<f32> {
    let border = (PADDED - MNIST_SIDE) / 2;
    let mut padded = Vec::with_capacity(images.len() / 784 * PADDED * PADDED);
    for image in images.chunks(MNIST_SIDE * MNIST_SIDE) {
        let mut frame = vec![0.0f32; PADDED * PADDED];
        for (row, pixels) in image.chunks(MNIST_SIDE).enumerate() {
            frame[(row + border) * PADDED + border..][..MNIST_SIDE].copy_from_slice(pixels);
        }
        padded.extend(frame);
    }
    padded
}

/// The middle 28×28 of 32×32 images: [`pad`] undone.
pub fn crop(images: &[f32]) -> Vec<f32> {
    let border = (PADDED - MNIST_SIDE) / 2;
    images
        .chunks(PADDED * PADDED)
        .flat_map(|frame| {
            (0..MNIST_SIDE).flat_map(move |row| {
                frame[(row + border) * PADDED + border..][..MNIST_SIDE].to_vec()
            })
        })
        .collect()
}

impl Autoencoder {
    /// The mean and log-variance of each latent value of padded images.
    fn encode_gaussian<T: Tape<f32, Cpu> + Merge<T>>(
        &self,
        padded: Pixels<T>,
    ) -> (Latents<T>, Latents<T>) {
        let h = self.encoder.forward(padded);
        (
            self.mean.forward(h.with_empty_tape()),
            self.log_var.forward(h),
        )
    }

    /// The latent means of 28×28 images (flattened, pixels in `0..=1`): `n × 256` values,
    /// 500 images at a time.
    pub fn encode(&self, images: &[f32]) -> Vec<f32> {
        let _pool = hot_pool();
        let dev = Cpu::default();
        images
            .chunks(500 * MNIST_SIDE * MNIST_SIDE)
            .flat_map(|chunk| {
                let n = chunk.len() / (MNIST_SIDE * MNIST_SIDE);
                let x = dev.tensor_from_vec(pad(chunk), (n, 1, PADDED, PADDED));
                self.encode_gaussian(x).0.as_vec()
            })
            .collect()
    }

    /// The decoder's pixel logits of latents, 32×32.
    fn decode_logits<T: Tape<f32, Cpu> + Merge<T>>(&self, latents: Latents<T>) -> Pixels<T> {
        let logits = self.decoder.forward(latents);
        let shape = *logits.shape();
        logits.reshape_like(&(shape.0, shape.1.size(), shape.2, shape.3))
    }

    /// 28×28 images (pixels in `0..=1`) decoded from latents (`n × 256` values).
    pub fn decode(&self, latents: &[f32]) -> Vec<f32> {
        let _pool = hot_pool();
        let dev = Cpu::default();
        let padded: Vec<f32> = latents
            .chunks(500 * LATENT)
            .flat_map(|chunk| {
                let n = chunk.len() / LATENT;
                let z = dev.tensor_from_vec(chunk.to_vec(), (n, Const::<CHANNELS>, SIDE, SIDE));
                self.decode_logits(z).sigmoid().as_vec()
            })
            .collect();
        crop(&padded)
    }
}

/// How the autoencoder is trained: Adam on a cosine schedule over shuffled mini-batches,
/// the KL term weighted by `kl_weight` against the per-pixel cross-entropy.
#[derive(Clone, Copy, Debug)]
pub struct AutoencoderSettings {
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub kl_weight: f32,
    pub seed: u64,
}

impl AutoencoderSettings {
    /// `epochs` passes at batch `batch`, Adam at `lr`, KL weight `kl_weight`.
    pub fn new(epochs: usize, batch: usize, lr: f64, kl_weight: f32, seed: u64) -> Self {
        AutoencoderSettings {
            epochs,
            batch,
            optimizer: Method::Adam.at(lr),
            kl_weight,
            seed,
        }
    }
}

/// Trains `model` on 28×28 `images` (pixels in `0..=1`) to minimise the mean binary
/// cross-entropy of each pixel given a latent drawn from the encoder's Gaussian (the
/// reparameterisation of Kingma & Welling) plus `kl_weight` × [`kl_to_standard`].
/// Notebook `10_guided_latent_diffusion` §4.
pub fn train_autoencoder(
    model: &mut Autoencoder,
    images: &[f32],
    settings: &AutoencoderSettings,
) -> Result<History, Error> {
    let pixels = MNIST_SIDE * MNIST_SIDE;
    if images.is_empty() || !images.len().is_multiple_of(pixels) {
        return Err(Error::InvalidArgument {
            what: "the autoencoder's training images",
            expected: "whole 28×28 images, at least one",
            got: format!("{} values", images.len()),
        });
    }
    let dev = device(settings.seed);
    let mut adam = settings.optimizer.build(model);
    let padded = pad(images);
    let n = images.len() / pixels;
    let labels = vec![0usize; n];
    let batches = MiniBatches::<{ PADDED * PADDED }>::new(
        &dev,
        padded,
        labels,
        settings.batch,
        settings.seed ^ 0xae,
    )?;
    let steps = settings.epochs * batches.batches_per_epoch();
    let mut rng = StdRng::seed_from_u64(settings.seed ^ 0x2ea1);
    let kl_weight = settings.kl_weight;
    let objective =
        |m: &mut Autoencoder, (x, _): crate::data::Batch<{ PADDED * PADDED }>, grads| {
            let n = x.shape().0;
            let x = x.reshape_like(&(n, 1, PADDED, PADDED));
            let (mean, log_var) = m.encode_gaussian(x.clone().traced(grads));
            let noise: Vec<f32> = (0..n * LATENT)
                .map(|_| rand::Rng::sample(&mut rng, StandardNormal))
                .collect();
            let noise = dev.tensor_from_vec(noise, (n, Const::<CHANNELS>, SIDE, SIDE));
            let spread = (log_var.with_empty_tape() * 0.5).exp();
            let z = mean.with_empty_tape() + spread * noise;
            let reconstruction = m.decode_logits(z).bce_with_logits(x).mean();
            let loss = reconstruction + kl_to_standard(mean, log_var) * kl_weight;
            Ok::<Measured, Error>(Measured::loss(loss))
        };
    let config = TrainConfig::cosine(steps, batches.batches_per_epoch(), settings.optimizer.lr);
    fit(model, adam.as_mut(), &batches, objective, &config)
}

impl<E, D> TensorCollection<E, D> for Autoencoder<E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Autoencoder<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("encoder", |s| &s.encoder, |s| &mut s.encoder),
                Self::module("mean", |s| &s.mean, |s| &mut s.mean),
                Self::module("log_var", |s| &s.log_var, |s| &mut s.log_var),
                Self::module("decoder", |s| &s.decoder, |s| &mut s.decoder),
            ),
            |(encoder, mean, log_var, decoder)| Autoencoder {
                encoder,
                mean,
                log_var,
                decoder,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kl_term_is_the_closed_form_and_zero_at_the_prior() {
        let dev = Cpu::default();
        let shape = (1, Const::<CHANNELS>, SIDE, SIDE);
        let zeros = || dev.tensor_from_vec(vec![0.0f32; LATENT], shape);
        assert!(kl_to_standard(zeros(), zeros()).array().abs() < 1e-7);
        let mut mean = vec![0.0f32; LATENT];
        let mut log_var = vec![0.0f32; LATENT];
        (mean[0], log_var[1]) = (2.0, 1.0);
        let kl = kl_to_standard(
            dev.tensor_from_vec(mean, shape),
            dev.tensor_from_vec(log_var, shape),
        )
        .array();
        let by_hand = (0.5 * 4.0 + 0.5 * (1f32.exp() - 1.0 - 1.0)) / LATENT as f32;
        assert!((kl - by_hand).abs() < 1e-6, "{kl} against {by_hand}");
    }

    #[test]
    fn padding_frames_the_digit_and_cropping_recovers_it() {
        let image: Vec<f32> = (0..784).map(|i| (i % 7) as f32 / 7.0).collect();
        let padded = pad(&image);
        assert_eq!(padded.len(), PADDED * PADDED);
        assert_eq!((padded[0], padded[2 * PADDED + 2]), (0.0, image[0]));
        assert_eq!(crop(&padded), image);
        let net = autoencoder(0);
        let latents = net.encode(&image);
        assert_eq!(latents.len(), LATENT);
        let back = net.decode(&latents);
        assert!(back.len() == 784 && back.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}
