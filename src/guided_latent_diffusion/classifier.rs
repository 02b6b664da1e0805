//! §1: a classifier of noised digits. Classifier guidance needs `∇ log p(y | x_t)` at every
//! step of the reverse chain, where `x_t` is mostly noise, so the classifier is trained on
//! digits noised exactly as the forward process noises them and is told the time, as the
//! denoiser is (Dhariwal & Nichol, 2021, §4: the downsampling half of their U-Net).

use crate::denoising::ddpm::noisy_batch_rows;
use crate::denoising::schedule::NoiseSchedule;
use crate::denoising::unet::{add_time, embedded_times, EMBEDDING, SIDE, TIME};
use crate::denoising::{fit_drawn, DenoiserSettings, NoisyBatch};
use crate::nn;
use crate::nn::builders::{AvgPool2D, Bias2D, Conv2D, ReLU};
use crate::runtime::{device, hot_pool};
use crate::train::{History, Measured};
use crate::Error;
use dfdx::nn::modules::Linear;
use dfdx::prelude::*;
use num_traits::Float;
use rand::rngs::StdRng;
use rand_distr::uniform::SampleUniform;
use std::fmt::Debug;

/// The ten digits.
pub const CLASSES: usize = 10;
const PIXELS: usize = SIDE * SIDE;

type Conv3<const I: usize, const O: usize, E, D> = nn::Conv2D<I, O, 3, 1, 1, 1, 1, E, D>;
type Bias<const C: usize, E, D> = nn::Bias2D<C, E, D>;

/// Three 3×3 convolutions (16, 32, 64 channels; 14×14, 7×7, 3×3) with the time's MLP
/// added after the first two, and a linear layer from the last 64×3×3 maps to the ten
/// digits' logits. About 35k parameters. Notebook `10_guided_latent_diffusion` §1.
#[derive(Clone, Debug)]
pub struct NoisyClassifier<E: Dtype = f32, D: Storage<E> = Cpu> {
    time: (Linear<EMBEDDING, TIME, E, D>, nn::ReLU),
    conv1: (Conv3<1, 16, E, D>, Bias<16, E, D>),
    time1: Linear<TIME, 16, E, D>,
    conv2: (
        nn::ReLU,
        nn::AvgPool2D<2, 2, 0>,
        Conv3<16, 32, E, D>,
        Bias<32, E, D>,
    ),
    time2: Linear<TIME, 32, E, D>,
    conv3: (
        nn::ReLU,
        nn::AvgPool2D<2, 2, 0>,
        Conv3<32, 64, E, D>,
        Bias<64, E, D>,
        nn::ReLU,
    ),
    head: Linear<{ 64 * 3 * 3 }, CLASSES, E, D>,
}

/// Built on the CPU with weights drawn from `seed`.
pub fn noisy_classifier(seed: u64) -> NoisyClassifier {
    let dev = device(seed);
    NoisyClassifier {
        time: dev.build_module::<(dfdx::nn::builders::Linear<EMBEDDING, TIME>, ReLU), f32>(),
        conv1: dev.build_module::<(Conv2D<1, 16, 3, 1, 1>, Bias2D<16>), f32>(),
        time1: dev.build_module::<dfdx::nn::builders::Linear<TIME, 16>, f32>(),
        conv2: dev.build_module::<(
            ReLU,
            AvgPool2D<2, 2, 0>,
            Conv2D<16, 32, 3, 1, 1>,
            Bias2D<32>,
        ), f32>(),
        time2: dev.build_module::<dfdx::nn::builders::Linear<TIME, 32>, f32>(),
        conv3: dev.build_module::<(
            ReLU,
            AvgPool2D<2, 2, 0>,
            Conv2D<32, 64, 3, 1, 1>,
            Bias2D<64>,
            ReLU,
        ), f32>(),
        head: dev.build_module::<dfdx::nn::builders::Linear<{ 64 * 3 * 3 }, CLASSES>, f32>(),
    }
}

impl NoisyClassifier {
    /// The logits `(n, 10)` of the noised digits `x` (rows of 14×14) at times `t`.
    pub fn logits<T: Tape<f32, Cpu> + Merge<T> + Debug>(
        &self,
        x: Tensor<(usize, usize), f32, Cpu, T>,
        t: &[f32],
    ) -> Tensor<(usize, Const<CLASSES>), f32, Cpu, T> {
        let n = t.len();
        let embedding = embedded_times(x.device(), t);
        let time = self.time.forward(embedding);
        let images = x.reshape_like(&(n, Const::<1>, SIDE, SIDE));
        let h = add_time(
            self.conv1.forward(images),
            self.time1.forward(time.with_empty_tape()),
        );
        let h = add_time(self.conv2.forward(h), self.time2.forward(time));
        let maps = self
            .conv3
            .forward(h)
            .reshape_like(&(n, Const::<{ 64 * 3 * 3 }>));
        self.head.forward(maps)
    }

    /// `Σ_i log p(y_i | x_i)` of the batch, on `x`'s tape: the loss with a minus sign,
    /// and what classifier guidance differentiates.
    fn log_likelihood<T: Tape<f32, Cpu> + Merge<T> + Debug>(
        &self,
        x: Tensor<(usize, usize), f32, Cpu, T>,
        t: &[f32],
        classes: &[usize],
    ) -> Tensor<Rank0, f32, Cpu, T> {
        let mut picks = vec![0.0f32; classes.len() * CLASSES];
        for (i, &y) in classes.iter().enumerate() {
            picks[i * CLASSES + y] = 1.0;
        }
        let logits = self.logits(x, t);
        let picks = logits.device().tensor_from_vec(picks, *logits.shape());
        (logits.log_softmax::<Axis<1>>() * picks).sum()
    }

    /// `∇_x log p(y | x_t)` for each (checked) example of `x` at its time and class:
    /// the direction classifier guidance pushes the sample. Notebook
    /// `10_guided_latent_diffusion` §1.
    pub fn log_prob_gradient(&self, x: &[f32], t: &[f32], classes: &[usize]) -> Vec<f32> {
        let x = Cpu::default().tensor_from_vec(x.to_vec(), (t.len(), PIXELS));
        let traced = x.leaky_trace();
        let grads = self.log_likelihood(traced, t, classes).backward();
        grads.get(&x).as_vec()
    }

    /// The share of `x` (rows of 14×14) at times `t` classified as `classes`.
    pub fn accuracy(&self, x: &[f32], t: &[f32], classes: &[usize]) -> f64 {
        let _pool = hot_pool();
        let x = Cpu::default().tensor_from_vec(x.to_vec(), (t.len(), PIXELS));
        let logits = self.logits(x, t).as_vec();
        let right = logits
            .chunks(CLASSES)
            .zip(classes)
            .filter(|(row, &y)| crate::train::argmax(row) == y)
            .count();
        right as f64 / classes.len().max(1) as f64
    }

    /// An error unless every class is a digit and examples have the classifier's 196
    /// values.
    pub fn check(&self, classes: &[usize], dim: usize) -> Result<(), Error> {
        if dim != PIXELS || classes.iter().any(|&y| y >= CLASSES) {
            return Err(Error::InvalidArgument {
                what: "the samples a noisy classifier guides",
                expected: "14×14 digits, each asked to be a class 0–9",
                got: format!("{dim} values, classes {classes:?}"),
            });
        }
        Ok(())
    }
}

/// Trains `model` to name the digits `data` (rows of 14×14 in `[−1, 1]`, with `labels`)
/// noised to a uniform time of `schedule`, by cross-entropy. Notebook
/// `10_guided_latent_diffusion` §1.
pub fn train_classifier(
    model: &mut NoisyClassifier,
    data: &[f32],
    labels: &[usize],
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    if data.len() != labels.len() * PIXELS || labels.iter().any(|&y| y >= CLASSES) {
        return Err(Error::InvalidArgument {
            what: "the training data of a noisy classifier",
            expected: "14×14 digits, one label 0–9 each",
            got: format!("{} values, {} labels", data.len(), labels.len()),
        });
    }
    let dev = device(settings.seed);
    let draw = |rng: &mut StdRng, batch| {
        let (noisy, rows) = noisy_batch_rows(data, PIXELS, schedule, batch, rng);
        let classes: Vec<usize> = rows.iter().map(|&r| labels[r]).collect();
        (noisy, classes)
    };
    let objective = |m: &mut NoisyClassifier,
                     (noisy, classes): (NoisyBatch, Vec<usize>),
                     grads|
     -> Result<Measured, Error> {
        let n = classes.len();
        let x = dev.tensor_from_vec(noisy.x, (n, PIXELS)).traced(grads);
        let loss = m.log_likelihood(x, &noisy.t, &classes) * (-1.0 / n as f32);
        Ok(Measured::loss(loss))
    };
    fit_drawn(model, settings, 0xc1a5, draw, objective)
}

impl<E, D> TensorCollection<E, D> for NoisyClassifier<E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = NoisyClassifier<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                (
                    Self::module("time", |s| &s.time, |s| &mut s.time),
                    Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                    Self::module("time1", |s| &s.time1, |s| &mut s.time1),
                    Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                ),
                (
                    Self::module("time2", |s| &s.time2, |s| &mut s.time2),
                    Self::module("conv3", |s| &s.conv3, |s| &mut s.conv3),
                    Self::module("head", |s| &s.head, |s| &mut s.head),
                ),
            ),
            |((time, conv1, time1, conv2), (time2, conv3, head))| NoisyClassifier {
                time,
                conv1,
                time1,
                conv2,
                time2,
                conv3,
                head,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoising::ddpm::normal;
    use rand::SeedableRng;

    #[test]
    fn the_guidance_gradient_is_the_log_probabilitys_slope() {
        let net = noisy_classifier(3);
        let mut rng = StdRng::seed_from_u64(1);
        let x = normal(2 * PIXELS, &mut rng);
        let (t, classes) = ([100.0, 700.0], [4, 9]);
        let gradient = net.log_prob_gradient(&x, &t, &classes);
        let log_p = |x: &[f32]| -> f64 {
            let xs = Cpu::default().tensor_from_vec(x.to_vec(), (2, PIXELS));
            net.log_likelihood(xs, &t, &classes).array() as f64
        };
        for i in [0, 77, PIXELS + 150] {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += 1e-2;
            down[i] -= 1e-2;
            let slope = (log_p(&up) - log_p(&down)) / 2e-2;
            assert!(
                (slope - gradient[i] as f64).abs() < 2e-3 + 0.05 * slope.abs(),
                "pixel {i}: {slope} against {}",
                gradient[i]
            );
        }
        assert!(net.check(&[10], PIXELS).is_err() && net.check(&[1], 4).is_err());
    }
}
