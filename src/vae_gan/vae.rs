//! §2–3: the variational autoencoder (Kingma & Welling, 2014). An encoder maps an image `x`
//! to a Gaussian `q(z|x) = N(μ, diag σ²)` over a latent code; a decoder maps a code to one
//! Bernoulli probability per pixel, `p(x|z)`; the prior is `p(z) = N(0, I)`. Both are
//! trained together by maximising the evidence lower bound
//! `ELBO = E_q[ln p(x|z)] − KL(q(z|x) ‖ p(z))`, whose gradient reaches the encoder through
//! the reparameterization `z = μ + σ ⊙ ε`, `ε ~ N(0, I)`. The importance-weighted bound
//! (Burda, Grosse & Salakhutdinov, 2016) tightens the ELBO towards `ln p(x)` with `k` draws.

use super::{binarize_with, check_images, draw_images, log_mean_exp, EPOCH, PIXELS, SIDE};
use crate::cache;
use crate::data::ImageSet;
use crate::nn::builders::{Bias2D, Conv2D, ConvTranspose2D, Flatten2D, ReLU, Unflatten2D};
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{fit, Drawn, Evaluation, History, Measured, Objective, TrainConfig};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The width of the encoder's and decoder's fully connected layer.
pub const HIDDEN: usize = 128;
/// `ln 2π`, the Gaussian densities' constant.
const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// The encoder up to the two heads: two stride-2 4×4 convolutions, then a fully connected
/// layer. 784 → 128.
pub type Trunk = (
    Unflatten2D<1, SIDE, SIDE>,                    // 784 → 1×28×28
    (Conv2D<1, 16, 4, 2, 1>, Bias2D<16>, ReLU),    // → 16×14×14
    (Conv2D<16, 32, 4, 2, 1>, Bias2D<32>, ReLU),   // → 32×7×7
    (Flatten2D<1568>, Linear<1568, HIDDEN>, ReLU), // → 128
);

/// The decoder: the trunk mirrored, transposed convolutions growing 7×7 to 28×28. Its output
/// is one logit per pixel, `ln(p / (1 − p))` of the pixel being on.
pub type Decoder<const L: usize> = (
    (Linear<L, HIDDEN>, ReLU, Linear<HIDDEN, 1568>, ReLU), // L → 1568
    Unflatten2D<32, 7, 7>,                                 // → 32×7×7
    (ConvTranspose2D<32, 16, 4, 2, 1>, Bias2D<16>, ReLU),  // → 16×14×14
    (ConvTranspose2D<16, 1, 4, 2, 1>, Bias2D<1>),          // → 1×28×28
    Flatten2D<PIXELS>,                                     // → 784 logits
);

/// The whole VAE with an `L`-dimensional latent code: the trunk, the heads for `μ` and
/// `ln σ²`, the decoder.
pub type VaeArch<const L: usize> = (Trunk, Linear<HIDDEN, L>, Linear<HIDDEN, L>, Decoder<L>);

/// [`VaeArch`] built on the CPU.
pub type VaeNet<const L: usize> = <VaeArch<L> as BuildOnDevice<Cpu, f32>>::Built;

type Pixels<T = NoneTape> = Tensor<(usize, Const<PIXELS>), f32, Cpu, T>;
type Codes<const L: usize, T = NoneTape> = Tensor<(usize, Const<L>), f32, Cpu, T>;

/// Notebook `08_vae_gan` §2: the negative ELBO of a batch, in nats per image. The
/// reconstruction term `−ln p(x|z)` (binary cross-entropy of the decoder's logits) is
/// *summed* over the 784 pixels and the KL term `½ Σ (μ² + σ² − 1 − ln σ²)` over the latent
/// dimensions; both are then averaged over the batch. Averaging over pixels instead would
/// weigh the KL term 784 times more than the likelihood says.
pub fn negative_elbo<const L: usize, T>(
    logits: Pixels<T>,
    x: Pixels,
    mu: Codes<L, T>,
    log_var: Codes<L, T>,
) -> Tensor<Rank0, f32, Cpu, T>
where
    T: Tape<f32, Cpu> + Merge<T> + Merge<NoneTape>,
{
    let reconstruction = logits.bce_with_logits(x).sum::<(usize,), Axis<1>>();
    let kl = ((mu.square() + log_var.retaped::<T>().exp() - log_var - 1.0) * 0.5)
        .sum::<(usize,), Axis<1>>();
    (reconstruction + kl).mean()
}

/// How a VAE is trained: Adam on a cosine schedule, fresh binarised images every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VaeSettings {
    pub steps: usize,
    pub batch: usize,
    /// Adam's peak learning rate (a cosine schedule with 5% warm-up follows it).
    pub lr: f64,
    pub seed: u64,
}

impl VaeSettings {
    /// The course's settings: 1,200 steps of 64 images (about ten passes over 7,500),
    /// Adam at 2·10⁻³.
    pub fn new(seed: u64) -> VaeSettings {
        VaeSettings {
            steps: 1200,
            batch: 64,
            lr: 2e-3,
            seed,
        }
    }

    /// The same settings for `steps` steps (run in whole epochs of [`EPOCH`] steps, so
    /// rounded up to a multiple of 50).
    pub fn steps(self, steps: usize) -> VaeSettings {
        VaeSettings { steps, ..self }
    }

    fn config(&self) -> TrainConfig {
        TrainConfig::cosine(self.steps, EPOCH, self.lr)
    }
}

/// The ELBO's two terms for one image, in nats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ElboTerms {
    /// `−ln p(x|z)` at one draw of `z`.
    pub reconstruction: f64,
    /// `KL(q(z|x) ‖ p(z))`, in closed form.
    pub kl: f64,
}

impl ElboTerms {
    /// The negative ELBO: the two terms added.
    pub fn total(&self) -> f64 {
        self.reconstruction + self.kl
    }
}

/// The variances of two unbiased estimators of `∇_μ E_q[ln p(x|z)]` on one image:
/// notebook `08_vae_gan` §2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradientVariance {
    /// Of `∇_z ln p(x|z)` at `z = μ + σε` (the reparameterization trick), summed over the
    /// latent dimensions.
    pub reparameterization: f64,
    /// Of `ln p(x|z) · ∇_μ ln q(z|x) = ln p(x|z) · (z − μ)/σ²` (the score function, or
    /// REINFORCE, estimator; Williams, 1992), summed over the latent dimensions.
    pub score_function: f64,
}

impl GradientVariance {
    /// How many times noisier the score-function estimator is.
    pub fn ratio(&self) -> f64 {
        self.score_function / self.reparameterization
    }
}

/// Where [`Vae::train`] keeps a VAE trained on these images with these settings.
fn cache_file<const L: usize>(
    train: &ImageSet,
    validation: &ImageSet,
    settings: &VaeSettings,
) -> std::path::PathBuf {
    super::cache_file::<VaeArch<L>>("vae", settings, &[train, validation])
}

/// A trained VAE with an `L`-dimensional latent code: notebook `08_vae_gan` §2–3
/// (`L = 16` for the likelihoods and interpolations, `L = 2` for the latent map).
#[derive(Clone, Debug)]
pub struct Vae<const L: usize> {
    pub net: VaeNet<L>,
}

/// The training objective: each batch's negative ELBO, and after every epoch the
/// negative ELBO of a fixed binarisation of the validation images.
struct Training<'a, const L: usize> {
    validation: &'a [f32],
    seed: u64,
}

impl<const L: usize> Objective<VaeNet<L>, Pixels> for Training<'_, L> {
    fn loss(
        &mut self,
        net: &mut VaeNet<L>,
        x: Pixels,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        Ok(Measured::loss(training_loss(net, x, grads)))
    }

    fn evaluate(&mut self, net: &VaeNet<L>) -> Result<Option<Evaluation>, Error> {
        let vae = Vae { net: net.clone() };
        let terms = vae.elbo_terms(self.validation, self.seed)?;
        Ok(Some(Evaluation {
            loss: mean(terms.iter().map(ElboTerms::total)) as f32,
            accuracy: None,
        }))
    }
}

/// Notebook `08_vae_gan` §2: one training step's loss on a batch of binary images `x`, on a
/// tape starting from `grads`: encode, draw `z` by [`reparameterize`] with fresh noise from
/// `x`'s device, decode, [`negative_elbo`].
pub fn training_loss<const L: usize>(
    net: &VaeNet<L>,
    x: Pixels,
    grads: Gradients<f32, Cpu>,
) -> Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>> {
    let (mu, log_var) = encode_on(net, x.clone().traced(grads));
    let eps: Codes<L> = x.device().sample_normal_like(mu.shape());
    let z = reparameterize(mu.retaped(), log_var.retaped(), eps);
    let logits = net.3.forward(z);
    negative_elbo(logits, x, mu, log_var)
}

/// Notebook `08_vae_gan` §2: the reparameterization trick, `z = μ + σ ⊙ ε` with
/// `σ = exp(½ ln σ²)`: a draw of `q(z|x)` that is a differentiable function of the
/// encoder's outputs, the noise `ε ~ N(0, I)` drawn outside the model.
pub fn reparameterize<const L: usize, T: Tape<f32, Cpu> + Merge<T>>(
    mu: Codes<L, T>,
    log_var: Codes<L, T>,
    eps: Codes<L>,
) -> Codes<L, T> {
    mu + (log_var * 0.5).exp() * eps
}

/// The encoder's two heads on `x`'s tape: `(μ, ln σ²)`.
fn encode_on<const L: usize, T: Tape<f32, Cpu> + Merge<T>>(
    net: &VaeNet<L>,
    x: Pixels<T>,
) -> (Codes<L, T>, Codes<L, T>) {
    let h = net.0.forward(x);
    (net.1.forward(h.retaped()), net.2.forward(h))
}

impl<const L: usize> Vae<L> {
    /// Trains a fresh VAE (initialised from `settings.seed`) on binarised `train` images,
    /// binarised afresh at every step; the negative ELBO of `validation` (binarised once)
    /// is recorded after every epoch of [`EPOCH`] steps as the test loss. The trained
    /// weights are kept in the crate's cache for [`Vae::cached`].
    pub fn train(
        train: &ImageSet,
        validation: &ImageSet,
        settings: &VaeSettings,
    ) -> Result<(Vae<L>, History), Error> {
        check_images(train)?;
        check_images(validation)?;
        let dev = device(settings.seed);
        let mut net = dev.build_module::<VaeArch<L>, f32>();
        let mut adam = Method::Adam.at(settings.lr).build(&net);
        let mut rng = StdRng::seed_from_u64(settings.seed);
        let batch = settings.batch;
        let held_out = super::binarize(&validation.pixels, settings.seed + 1);
        let batches = Drawn::new(EPOCH, || {
            let grey = draw_images(train, batch, &mut rng);
            dev.tensor_from_vec(binarize_with(&grey, &mut rng), (batch, Const::<PIXELS>))
        });
        let objective = Training::<L> {
            validation: &held_out,
            seed: settings.seed,
        };
        let history = fit(
            &mut net,
            adam.as_mut(),
            batches,
            objective,
            &settings.config(),
        )?;
        cache::save(&net, &cache_file::<L>(train, validation, settings))?;
        Ok((Vae { net }, history))
    }

    /// The VAE an earlier [`Vae::train`] on these images with these settings left in the
    /// crate's cache ([`crate::cache`]), if there is one: notebook `09_diffusion` §5
    /// compares it with diffusion without training it again.
    pub fn cached(
        train: &ImageSet,
        validation: &ImageSet,
        settings: &VaeSettings,
    ) -> Option<Vae<L>> {
        let path = cache_file::<L>(train, validation, settings);
        let net = cache::load(Cpu::default().build_module::<VaeArch<L>, f32>(), &path)?;
        Some(Vae { net })
    }

    /// `(μ, ln σ²)` of `q(z|x)` for every image of `images` (flattened, `n × 784`), each
    /// flattened `n × L`.
    pub fn encode(&self, images: &[f32]) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let (mut mu, mut log_var) = (Vec::new(), Vec::new());
        for chunk in chunks(images)? {
            let (m, v) = encode_on(&self.net, chunk);
            mu.extend(m.as_vec());
            log_var.extend(v.as_vec());
        }
        Ok((mu, log_var))
    }

    /// The decoder's pixel probabilities `p(x|z)` for every code of `codes` (`n × L`).
    pub fn decode(&self, codes: &[f32]) -> Result<Vec<f32>, Error> {
        Ok(self
            .decode_logits(codes)?
            .iter()
            .map(|&l| sigmoid(l))
            .collect())
    }

    fn decode_logits(&self, codes: &[f32]) -> Result<Vec<f32>, Error> {
        if codes.is_empty() || !codes.len().is_multiple_of(L) {
            return Err(Error::ShapeMismatch {
                what: "the latent codes",
                expected: format!("a non-empty whole number of {L}-dimensional codes"),
                got: format!("{} values", codes.len()),
            });
        }
        let dev = Cpu::default();
        let mut logits = Vec::with_capacity(codes.len() / L * PIXELS);
        for chunk in codes.chunks(500 * L) {
            let z = dev.tensor_from_vec(chunk.to_vec(), (chunk.len() / L, Const::<L>));
            logits.extend(self.net.3.forward(z).as_vec());
        }
        Ok(logits)
    }

    /// `n` samples: codes drawn from the prior `N(0, I)` and decoded to pixel
    /// probabilities (the usual way to show a Bernoulli VAE's samples: the mean image, not a
    /// noisy binary draw).
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<f32>, Error> {
        self.decode(&standard_normal(n * L, seed))
    }

    /// The ELBO's terms for every image of `images` (binary or grey values in `0..=1`,
    /// `n × 784`), each at one draw of `z` from `q(z|x)` seeded by `seed`.
    pub fn elbo_terms(&self, images: &[f32], seed: u64) -> Result<Vec<ElboTerms>, Error> {
        let (mu, log_var) = self.encode(images)?;
        let z = draw::<L>(&mu, &log_var, 1, seed);
        let logits = self.decode_logits(&z.as_vec())?;
        Ok((0..mu.len() / L)
            .map(|i| ElboTerms {
                reconstruction: -log_likelihood(&logits[i * PIXELS..][..PIXELS], image(images, i)),
                kl: kl_to_prior(&mu[i * L..][..L], &log_var[i * L..][..L]),
            })
            .collect())
    }

    /// Notebook `08_vae_gan` §2: the importance-weighted bound on `ln p(x)` with `k` draws
    /// of `q(z|x)` (Burda et al., 2016), `ln (1/k) Σ p(x, z_i) / q(z_i|x)`, for every image
    /// of `images` (binary, `n × 784`). `k = 1` is the ELBO; the bound rises towards
    /// `ln p(x)` as `k` grows.
    pub fn importance_weighted(
        &self,
        images: &[f32],
        k: usize,
        seed: u64,
    ) -> Result<Vec<f64>, Error> {
        if k == 0 {
            return Err(Error::InvalidArgument {
                what: "the number of importance samples",
                expected: "at least 1",
                got: k.to_string(),
            });
        }
        let (mu, log_var) = self.encode(images)?;
        (0..mu.len() / L)
            .map(|i| {
                let (m, v) = (&mu[i * L..][..L], &log_var[i * L..][..L]);
                let (z, eps) = draw_with_noise::<L>(m, v, k, seed + i as u64);
                let (z, eps) = (z.as_vec(), eps.as_vec());
                let logits = self.decode_logits(&z)?;
                let log_weights: Vec<f64> = (0..k)
                    .map(|j| {
                        log_likelihood(&logits[j * PIXELS..][..PIXELS], image(images, i))
                            + log_standard_normal(&z[j * L..][..L])
                            - log_posterior(&eps[j * L..][..L], v)
                    })
                    .collect();
                Ok(log_mean_exp(&log_weights))
            })
            .collect()
    }

    /// Notebook `08_vae_gan` §2: the variances of the reparameterization and score-function
    /// estimators of `∇_μ E_q[ln p(x|z)]` for one binary image, each from `samples` draws.
    pub fn gradient_variance(
        &self,
        image: &[f32],
        samples: usize,
        seed: u64,
    ) -> Result<GradientVariance, Error> {
        let (mu, log_var) = self.encode(image)?;
        if mu.len() != L || samples < 2 {
            return Err(Error::InvalidArgument {
                what: "the gradient-variance experiment",
                expected: "one 784-pixel image and at least 2 samples",
                got: format!("{} values and {samples} samples", image.len()),
            });
        }
        let var: Vec<f32> = log_var.iter().map(|v| v.exp()).collect();
        let z_leaf = draw(&mu, &log_var, samples, seed);
        let z = z_leaf.as_vec();
        let x = z_leaf
            .device()
            .tensor_from_vec(image.repeat(samples), (samples, Const::<PIXELS>));
        let log_p = -self.net.3.forward(z_leaf.leaky_trace()).bce_with_logits(x);
        let log_p = log_p.sum::<(usize,), Axis<1>>();
        let values = log_p.as_vec();
        let pathwise = log_p.sum().backward().get(&z_leaf).as_vec();
        let score: Vec<f32> = (0..samples * L)
            .map(|j| values[j / L] * (z[j] - mu[j % L]) / var[j % L])
            .collect();
        Ok(GradientVariance {
            reparameterization: summed_variance(&pathwise, L),
            score_function: summed_variance(&score, L),
        })
    }
}

/// `images` as tensors of at most 500 images.
fn chunks(images: &[f32]) -> Result<impl Iterator<Item = Pixels> + '_, Error> {
    if images.is_empty() || !images.len().is_multiple_of(PIXELS) {
        return Err(Error::ShapeMismatch {
            what: "the images",
            expected: format!("a non-empty whole number of {SIDE}×{SIDE} images, flattened"),
            got: format!("{} values", images.len()),
        });
    }
    let dev = Cpu::default();
    Ok(images
        .chunks(500 * PIXELS)
        .map(move |c| dev.tensor_from_vec(c.to_vec(), (c.len() / PIXELS, Const::<PIXELS>))))
}

fn image(images: &[f32], i: usize) -> &[f32] {
    &images[i * PIXELS..][..PIXELS]
}

/// `ln p(x|z)` of the Bernoulli decoder from its logits: `Σ x·l − softplus(l)`.
fn log_likelihood(logits: &[f32], x: &[f32]) -> f64 {
    logits
        .iter()
        .zip(x)
        .map(|(&l, &x)| f64::from(x * l) - softplus(f64::from(l)))
        .sum()
}

fn softplus(l: f64) -> f64 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

fn sigmoid(l: f32) -> f32 {
    1.0 / (1.0 + (-l).exp())
}

/// `KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − ln σ²)`.
fn kl_to_prior(mu: &[f32], log_var: &[f32]) -> f64 {
    mu.iter()
        .zip(log_var)
        .map(|(&m, &v)| 0.5 * f64::from(m * m + v.exp() - 1.0 - v))
        .sum()
}

/// `ln N(z; 0, I)`.
fn log_standard_normal(z: &[f32]) -> f64 {
    z.iter().map(|&z| -0.5 * (f64::from(z * z) + LN_2PI)).sum()
}

/// `ln q(z|x)` at `z = μ + σ ⊙ ε`: `Σ −½ (ε² + ln σ² + ln 2π)`.
fn log_posterior(eps: &[f32], log_var: &[f32]) -> f64 {
    eps.iter()
        .zip(log_var)
        .map(|(&e, &v)| -0.5 * (f64::from(e * e + v) + LN_2PI))
        .sum()
}

/// `k` draws of `q(z|x)` for each of the codes' distributions `(μ, ln σ²)` (each `n × L`):
/// `(n·k) × L`, image by image.
fn draw<const L: usize>(mu: &[f32], log_var: &[f32], k: usize, seed: u64) -> Codes<L> {
    draw_with_noise(mu, log_var, k, seed).0
}

/// [`draw`], with the noise `ε` it used.
fn draw_with_noise<const L: usize>(
    mu: &[f32],
    log_var: &[f32],
    k: usize,
    seed: u64,
) -> (Codes<L>, Codes<L>) {
    let repeat = |v: &[f32]| -> Vec<f32> { v.chunks(L).flat_map(|c| c.repeat(k)).collect() };
    let rows = mu.len() / L * k;
    let dev = Cpu::default();
    let eps = dev.tensor_from_vec(standard_normal(rows * L, seed), (rows, Const::<L>));
    let at = |v: &[f32]| dev.tensor_from_vec(repeat(v), (rows, Const::<L>));
    (reparameterize(at(mu), at(log_var), eps.clone()), eps)
}

fn standard_normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// The variance of each of `dim` coordinates over the rows of `rows` (`n × dim`), summed.
fn summed_variance(rows: &[f32], dim: usize) -> f64 {
    (0..dim)
        .map(|d| {
            let column: Vec<f64> = rows
                .iter()
                .skip(d)
                .step_by(dim)
                .map(|&v| f64::from(v))
                .collect();
            super::kl::mean_and_error(&column).standard_error.powi(2) * column.len() as f64
        })
        .sum()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    sum / f64::from(n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(got: f64, expected: f64, tol: f64) {
        assert!(
            (got - expected).abs() <= tol * expected.abs().max(1.0),
            "{got} vs {expected}"
        );
    }

    fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        standard_normal(n, seed).iter().map(|v| v * scale).collect()
    }

    #[test]
    fn the_negative_elbo_sums_pixels_and_latents_then_averages_images() {
        let dev = Cpu::default();
        let (logits, mu, log_var) = (
            random(3 * PIXELS, 1, 2.0),
            random(3 * 4, 2, 1.0),
            random(3 * 4, 3, 0.5),
        );
        let x = super::super::binarize(&vec![0.4; 3 * PIXELS], 4);
        let loss = negative_elbo::<4, NoneTape>(
            dev.tensor_from_vec(logits.clone(), (3, Const)),
            dev.tensor_from_vec(x.clone(), (3, Const)),
            dev.tensor_from_vec(mu.clone(), (3, Const)),
            dev.tensor_from_vec(log_var.clone(), (3, Const)),
        );
        let by_hand = (0..3)
            .map(|i| {
                -log_likelihood(&logits[i * PIXELS..][..PIXELS], &x[i * PIXELS..][..PIXELS])
                    + kl_to_prior(&mu[i * 4..][..4], &log_var[i * 4..][..4])
            })
            .sum::<f64>()
            / 3.0;
        assert_close(f64::from(loss.array()), by_hand, 1e-5);
    }

    #[test]
    fn reparameterized_draws_have_the_encoders_mean_and_variance() {
        let (mu, log_var) = ([1.0, -2.0], [4f32.ln(), 0.25f32.ln()]);
        let z = draw::<2>(&mu, &log_var, 40_000, 5).as_vec();
        for d in 0..2 {
            let column: Vec<f64> = z.iter().skip(d).step_by(2).map(|&v| f64::from(v)).collect();
            let estimate = super::super::kl::mean_and_error(&column);
            let std = (estimate.standard_error.powi(2) * column.len() as f64).sqrt();
            assert!((estimate.value - f64::from(mu[d])).abs() < 4.0 * estimate.standard_error);
            let expected = f64::from(0.5 * log_var[d]).exp();
            assert!((std / expected - 1.0).abs() < 0.02, "{std} vs {expected}");
        }
    }

    /// `z ~ N(0, 1)`, `x | z ~ N(z, 1)`: `p(x) = N(0, 2)` and the posterior is
    /// `N(x/2, 1/2)`. With a proposal `q` off the posterior the bound sits below `ln p(x)`
    /// and rises with `k`; with the posterior itself every weight equals `p(x)`.
    #[test]
    fn the_importance_weighted_bound_rises_to_a_known_likelihood() {
        let x = 1.5f64;
        let exact = -0.25 * x * x - 0.5 * (2.0 * LN_2PI.exp()).ln();
        let bound = |q_mean: f32, q_log_var: f32, k: usize, seed: u64| {
            let (z, eps) = draw_with_noise::<1>(&[q_mean], &[q_log_var], k, seed);
            let weights: Vec<f64> = z
                .as_vec()
                .iter()
                .zip(eps.as_vec())
                .map(|(&z, e)| {
                    let log_likelihood = -0.5 * ((x - f64::from(z)).powi(2) + LN_2PI);
                    log_likelihood + log_standard_normal(&[z]) - log_posterior(&[e], &[q_log_var])
                })
                .collect();
            log_mean_exp(&weights)
        };
        let average = |k: usize| (0..200).map(|s| bound(0.0, 0.0, k, s)).sum::<f64>() / 200.0;
        let (one, ten, hundred) = (average(1), average(10), average(100));
        assert!(
            one < ten && ten < hundred && hundred < exact,
            "{one} {ten} {hundred} {exact}"
        );
        assert!(exact - hundred < 0.1 * (exact - one));
        assert_close(bound(0.75, 0.5f32.ln(), 3, 0), exact, 1e-5);
    }

    #[test]
    fn a_short_run_lowers_the_negative_elbo_and_the_bounds_order() {
        let images = crate::data::mnist().unwrap();
        let (train, validation) = images
            .subset(&(0..600).collect::<Vec<_>>())
            .split(1.0 / 6.0, 0)
            .unwrap();
        let settings = VaeSettings::new(0).steps(100);
        let (vae, history) = Vae::<4>::train(&train, &validation, &settings).unwrap();
        let curve = history.per_epoch(|e| e.test_loss);
        assert!(curve[1][1] < 0.8 * curve[0][1] + 0.2 * 543.0, "{curve:?}");
        let x = super::super::binarize(&validation.pixels[..20 * PIXELS], 1);
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        let (k1, k20) = (
            mean(vae.importance_weighted(&x, 1, 2).unwrap()),
            mean(vae.importance_weighted(&x, 20, 2).unwrap()),
        );
        assert!(k20 > k1, "{k1} vs {k20}");
        let variance = vae.gradient_variance(&x[..PIXELS], 200, 3).unwrap();
        assert!(variance.ratio() > 10.0, "{variance:?}");
        assert_eq!(vae.sample(3, 0).unwrap().len(), 3 * PIXELS);
        let cached = Vae::<4>::cached(&train, &validation, &settings).unwrap();
        assert_eq!(cached.sample(3, 0).unwrap(), vae.sample(3, 0).unwrap());
        assert!(Vae::<4>::cached(&train, &validation, &settings.steps(50)).is_none());
    }
}
