//! §2–4: a noise predictor told what to draw. An encoder turns each condition (a label, a
//! prompt, or `∅`) into one vector, which the U-Net adds to its time embedding
//! ([`TimeUNet::forward_conditioned`]); trained with the condition dropped at random
//! ([`super::drop_conditions`]), the one network predicts both `ε(x, c)` and `ε(x, ∅)`.

use super::text::TextEncoder;
use super::{drop_conditions, latent, Prompt};
use crate::denoising::ddpm::{noisy_batch_rows, CHUNK};
use crate::denoising::schedule::NoiseSchedule;
use crate::denoising::unet::{embedded_times, time_unet_of, TimeUNet, SIDE, TIME};
use crate::denoising::{fit_drawn, DenoiserSettings, NoisyBatch, Rows};
use crate::runtime::device;
use crate::train::{History, Measured};
use crate::Error;
use dfdx::nn::modules::Embedding;
use dfdx::prelude::*;
use num_traits::Float;
use rand::rngs::StdRng;
use rand_distr::uniform::SampleUniform;
use std::fmt::Debug;

/// The digits' ten labels and `∅`, the label of no label.
pub const LABELS: usize = 11;
/// The label encoder's `∅`.
pub const NO_LABEL: usize = 10;

/// What turns conditions into the vectors a [`Conditional`] U-Net adds to its time
/// embedding.
pub trait Encoder {
    /// The condition that means "no condition".
    fn null(&self) -> Prompt;

    /// An error naming the first condition this encoder cannot read.
    fn check(&self, prompts: &[Prompt]) -> Result<(), Error>;

    /// One [`TIME`]-wide vector per (checked) prompt, recorded on `tape`.
    fn encode<T: Tape<f32, Cpu> + Merge<T> + Debug>(
        &self,
        prompts: &[Prompt],
        tape: T,
    ) -> Tensor<(usize, Const<TIME>), f32, Cpu, T>;
}

/// A learned vector for each digit label and one for `∅` (as ADM's class embedding).
#[derive(Clone, Debug)]
pub struct LabelEncoder<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub table: Embedding<LABELS, TIME, E, D>,
}

impl Encoder for LabelEncoder {
    fn null(&self) -> Prompt {
        vec![NO_LABEL]
    }

    fn check(&self, prompts: &[Prompt]) -> Result<(), Error> {
        match prompts.iter().find(|p| p.len() != 1 || p[0] >= LABELS) {
            Some(bad) => Err(Error::InvalidArgument {
                what: "a label condition",
                expected: "one token, a digit 0–9 or 10 for ∅",
                got: format!("{bad:?}"),
            }),
            None => Ok(()),
        }
    }

    fn encode<T: Tape<f32, Cpu> + Merge<T> + Debug>(
        &self,
        prompts: &[Prompt],
        tape: T,
    ) -> Tensor<(usize, Const<TIME>), f32, Cpu, T> {
        let labels: Vec<usize> = prompts.iter().map(|p| p[0]).collect();
        let n = labels.len();
        let ids = self.table.weight.device().tensor_from_vec(labels, (n,));
        self.table.forward(ids.put_tape(tape))
    }
}

impl<E, D> TensorCollection<E, D> for LabelEncoder<E, D>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = LabelEncoder<E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::module("table", |s| &s.table, |s| &mut s.table),
            |table| LabelEncoder { table },
        )
    }
}

/// A [`TimeUNet`] for `C`-channel `S×S` inputs and the encoder of its conditions.
#[derive(Clone, Debug)]
pub struct Conditional<Enc, const C: usize, const S: usize, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub unet: TimeUNet<C, S, E, D>,
    pub encoder: Enc,
}

/// §1–2: 14×14 digits told their label.
pub type LabelUNet = Conditional<LabelEncoder, 1, SIDE>;
/// §3: the autoencoder's 4×8×8 latents told their label.
pub type LatentUNet = Conditional<LabelEncoder, { latent::CHANNELS }, { latent::SIDE }>;
/// §4: the autoencoder's latents told a prompt.
pub type TextUNet = Conditional<TextEncoder, { latent::CHANNELS }, { latent::SIDE }>;

/// A label-conditioned U-Net for `C`-channel `S×S` inputs, weights drawn from `seed`.
pub fn label_unet<const C: usize, const S: usize>(seed: u64) -> Conditional<LabelEncoder, C, S> {
    let dev = device(seed ^ 0x1abe1);
    let table = dev.build_module::<dfdx::nn::builders::Embedding<LABELS, TIME>, f32>();
    Conditional {
        unet: time_unet_of(seed),
        encoder: LabelEncoder { table },
    }
}

/// §1–2's network, weights drawn from `seed`.
pub fn pixel_label_unet(seed: u64) -> LabelUNet {
    label_unet(seed)
}

/// §3's network, weights drawn from `seed`.
pub fn latent_label_unet(seed: u64) -> LatentUNet {
    label_unet(seed)
}

/// §4's network: §3's latent U-Net (a copy) told prompts through `encoder`.
pub fn text_unet(denoiser: &LatentUNet, encoder: TextEncoder) -> TextUNet {
    Conditional {
        unet: denoiser.unet.clone(),
        encoder,
    }
}

impl LabelEncoder {
    /// The learned vector of each label, then `∅`'s: [`LABELS`] rows of [`TIME`] values.
    pub fn vectors(&self) -> Vec<f32> {
        self.table.weight.as_vec()
    }
}

/// A conditional noise predictor as samplers take it (`&dyn`, compiled once in the crate).
pub trait ConditionalPredictor {
    /// The values in one example.
    fn dim(&self) -> usize;
    /// The condition that means "no condition".
    fn null(&self) -> Prompt;
    /// An error naming the first condition the model cannot read.
    fn check(&self, prompts: &[Prompt]) -> Result<(), Error>;
    /// `ε̂(x, t, c)` for the examples `x` (flattened) at times `t` given (checked) `prompts`.
    fn predict_given(&self, x: &[f32], t: &[f32], prompts: &[Prompt]) -> Vec<f32>;
}

impl<Enc, const C: usize, const S: usize> Conditional<Enc, C, S> {
    /// The U-Net's multiply-adds per example and forward pass
    /// ([`TimeUNet::multiply_adds`]); the encoder's are a few thousand more.
    pub fn multiply_adds(&self) -> usize {
        TimeUNet::<C, S>::multiply_adds()
    }
}

impl<Enc: Encoder, const C: usize, const S: usize> Conditional<Enc, C, S> {
    /// `ε̂` for every row of `x` at times `t` given `prompts`, on `x`'s tape.
    pub fn predict<T: Tape<f32, Cpu> + Merge<T> + Debug>(
        &self,
        x: Rows<T>,
        t: &[f32],
        prompts: &[Prompt],
    ) -> Rows<T> {
        let n = t.len();
        let embedding = embedded_times(x.device(), t);
        let condition = self.encoder.encode(prompts, T::default());
        let images = x.reshape_like(&(n, Const::<C>, S, S));
        let eps = self
            .unet
            .forward_conditioned(images, embedding, Some(condition));
        eps.reshape_like(&(n, C * S * S))
    }
}

impl<Enc: Encoder, const C: usize, const S: usize> ConditionalPredictor for Conditional<Enc, C, S> {
    fn dim(&self) -> usize {
        C * S * S
    }

    fn null(&self) -> Prompt {
        self.encoder.null()
    }

    fn check(&self, prompts: &[Prompt]) -> Result<(), Error> {
        self.encoder.check(prompts)
    }

    fn predict_given(&self, x: &[f32], t: &[f32], prompts: &[Prompt]) -> Vec<f32> {
        let dim = self.dim();
        let dev = Cpu::default();
        x.chunks(CHUNK * dim)
            .zip(t.chunks(CHUNK).zip(prompts.chunks(CHUNK)))
            .flat_map(|(x, (t, prompts))| {
                let x = dev.tensor_from_vec(x.to_vec(), (t.len(), dim));
                self.predict(x, t, prompts).as_vec()
            })
            .collect()
    }
}

/// A batch of [`NoisyBatch`] with each example's condition.
struct ConditionedBatch {
    noisy: NoisyBatch,
    prompts: Vec<Prompt>,
}

/// Trains `model` with DDPM's loss on `data` (examples of `C·S·S` values, flattened), each
/// example's condition drawn by `prompt(row, rng)`, dropped to `∅` with probability
/// `dropout`. Notebook `10_guided_latent_diffusion` §2–4.
pub fn fit_conditional<Enc, const C: usize, const S: usize>(
    model: &mut Conditional<Enc, C, S>,
    data: &[f32],
    prompt: &dyn Fn(usize, &mut StdRng) -> Prompt,
    dropout: f64,
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error>
where
    Enc: Encoder + TensorCollection<f32, Cpu> + Clone + 'static,
{
    let dim = C * S * S;
    if data.len() < dim || !data.len().is_multiple_of(dim) {
        return Err(Error::InvalidArgument {
            what: "the training data of a conditional DDPM",
            expected: "whole examples of the model's size, at least one",
            got: format!("{} values for examples of {dim}", data.len()),
        });
    }
    let null = model.encoder.null();
    let dev = device(settings.seed);
    let draw = |rng: &mut StdRng, batch| {
        let (noisy, rows) = noisy_batch_rows(data, dim, schedule, batch, rng);
        let prompts = rows.iter().map(|&row| prompt(row, rng)).collect();
        let prompts = drop_conditions(prompts, &null, dropout, rng);
        ConditionedBatch { noisy, prompts }
    };
    let objective =
        |m: &mut Conditional<Enc, C, S>, b: ConditionedBatch, grads| -> Result<Measured, Error> {
            m.encoder.check(&b.prompts)?;
            let n = b.noisy.t.len();
            let x = dev.tensor_from_vec(b.noisy.x, (n, dim)).traced(grads);
            let eps = dev.tensor_from_vec(b.noisy.eps, (n, dim));
            let predicted = m.predict(x, &b.noisy.t, &b.prompts);
            Ok(Measured::loss(mse_loss(predicted, eps)))
        };
    fit_drawn(model, settings, 0xc0d, draw, objective)
}

/// [`fit_conditional`] for §1–2's U-Net, on digits `data` with `labels`, compiled here so
/// that a notebook cell compiles no training loop.
pub fn train_labels(
    model: &mut LabelUNet,
    data: &[f32],
    labels: &[usize],
    dropout: f64,
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    fit_labels(model, data, labels, dropout, schedule, settings)
}

/// [`fit_conditional`] for §3's latent U-Net, on latents `data` with `labels`.
pub fn train_latent_labels(
    model: &mut LatentUNet,
    data: &[f32],
    labels: &[usize],
    dropout: f64,
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    fit_labels(model, data, labels, dropout, schedule, settings)
}

/// Each example told its label.
fn fit_labels<const C: usize, const S: usize>(
    model: &mut Conditional<LabelEncoder, C, S>,
    data: &[f32],
    labels: &[usize],
    dropout: f64,
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    let prompt = |row: usize, _: &mut StdRng| vec![labels[row]];
    fit_conditional(model, data, &prompt, dropout, schedule, settings)
}

/// [`fit_conditional`] for §4's U-Net: each latent told one of `phrasings` of its label
/// (token ids, `phrasings[label]` the list for that digit), drawn at random every time.
pub fn train_text(
    model: &mut TextUNet,
    data: &[f32],
    labels: &[usize],
    phrasings: &[Vec<Prompt>],
    dropout: f64,
    schedule: &NoiseSchedule,
    settings: &DenoiserSettings,
) -> Result<History, Error> {
    use rand::seq::SliceRandom;
    if labels
        .iter()
        .any(|&l| phrasings.get(l).is_none_or(|p| p.is_empty()))
    {
        return Err(Error::InvalidArgument {
            what: "the prompts of a text-conditioned DDPM",
            expected: "at least one phrasing for every label in the data",
            got: format!("phrasings for {} labels", phrasings.len()),
        });
    }
    let prompt = |row: usize, rng: &mut StdRng| {
        phrasings[labels[row]]
            .choose(rng)
            .expect("checked non-empty")
            .clone()
    };
    fit_conditional(model, data, &prompt, dropout, schedule, settings)
}

impl<Enc, const C: usize, const S: usize, E, D> TensorCollection<E, D>
    for Conditional<Enc, C, S, E, D>
where
    Enc: TensorCollection<E, D>,
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Conditional<Enc::To<E2, D2>, C, S, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("unet", |s| &s.unet, |s| &mut s.unet),
                Self::module("encoder", |s| &s.encoder, |s| &mut s.encoder),
            ),
            |(unet, encoder)| Conditional { unet, encoder },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denoising::ddpm::normal;
    use rand::SeedableRng;

    #[test]
    fn the_label_reaches_the_prediction_and_every_block_learns_from_it() {
        let net = label_unet::<1, SIDE>(0);
        let mut rng = StdRng::seed_from_u64(0);
        let x = normal(SIDE * SIDE, &mut rng);
        let x2 = [x.clone(), x.clone()].concat();
        let eps = net.predict_given(&x2, &[500.0, 500.0], &[vec![3], vec![NO_LABEL]]);
        assert_ne!(
            eps[..SIDE * SIDE],
            eps[SIDE * SIDE..],
            "the label changes ε̂"
        );
        let grads = net.alloc_grads();
        let xs = Cpu::default()
            .tensor_from_vec(x2, (2, SIDE * SIDE))
            .traced(grads);
        let grads = net
            .predict(xs, &[10.0, 900.0], &[vec![3], vec![7]])
            .square()
            .mean()
            .backward();
        let table = crate::train::gradients(&net.encoder, &grads).unwrap();
        let rows_moved: Vec<usize> = (0..LABELS)
            .filter(|r| table[r * TIME..][..TIME].iter().any(|g| *g != 0.0))
            .collect();
        assert_eq!(rows_moved, vec![3, 7], "only the labels used learn");
        assert!(net.check(&[vec![11]]).is_err() && net.check(&[vec![1, 2]]).is_err());
    }
}
