//! §4: BYOL (Grill et al., 2020): no negatives. An online network (encoder, projector,
//! predictor) learns to predict, from one view, a target network's projection of the other
//! view; the target is an exponential moving average of the online encoder and projector,
//! and gets no gradient. Nothing in the loss forbids mapping every image to one point: the
//! predictor and the slowly moving target are what keep it from happening, and the
//! ablations measure it.

use super::collapse::normalized_std;
use super::losses::normalize_rows;
use super::probe::Features;
use super::{
    ema, features, swap_halves, Encoder, EncoderNet, Pretraining, PIXELS, PROJECTION,
    REPRESENTATION,
};
use crate::data::ImageSet;
use crate::nn::builders::ReLU;
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{fit, Drawn, Evaluation, History, Measured, Objective};
use crate::Error;
use dfdx::nn::builders::BatchNorm1D;
use dfdx::prelude::*;

/// BYOL's projector and predictor: MLPs with batch normalisation between their layers, as
/// in the paper (with layer norm instead, every run here collapsed within 50 steps).
pub type Mlp<const I: usize, const O: usize> = (
    Linear<I, REPRESENTATION>,
    BatchNorm1D<REPRESENTATION>,
    ReLU,
    Linear<REPRESENTATION, O>,
);

/// The target network's shape, and the online network's without its predictor.
pub type Backbone = (Encoder, Mlp<REPRESENTATION, PROJECTION>);
/// The online network: backbone, then the predictor.
pub type Online = (Backbone, Mlp<PROJECTION, PROJECTION>);

pub type BackboneNet = <Backbone as BuildOnDevice<Cpu, f32>>::Built;
pub type OnlineNet = <Online as BuildOnDevice<Cpu, f32>>::Built;

/// Which parts of BYOL a run keeps (the paper's Table 5 ablations; notebook
/// `07_self_supervised` §4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    /// The online network predicts the target's projection through the predictor; without
    /// it, the projection itself must match.
    pub predictor: bool,
    /// The target's moving-average rate `τ`: 0 copies the online network at every step
    /// (a stop-gradient copy), 1 keeps the target at its random initial weights.
    pub tau: f32,
}

impl Variant {
    /// The method: predictor, and a target that moves at the paper's base rate `τ = 0.996`
    /// (it averages the online network over its last 250 steps or so).
    pub const FULL: Variant = Variant {
        predictor: true,
        tau: 0.996,
    };
    pub const NO_PREDICTOR: Variant = Variant {
        predictor: false,
        tau: 0.996,
    };
    /// Neither predictor nor moving average: the target is the online network itself,
    /// behind a stop-gradient.
    pub const NEITHER: Variant = Variant {
        predictor: false,
        tau: 0.0,
    };
    /// A fixed random target (`τ = 1`).
    pub const FIXED_TARGET: Variant = Variant {
        predictor: true,
        tau: 1.0,
    };

    pub fn name(&self) -> String {
        let predictor = if self.predictor {
            "predictor"
        } else {
            "no predictor"
        };
        format!("{predictor}, τ = {}", self.tau)
    }
}

/// Notebook `07_self_supervised` §4: a trained BYOL online network, with its collapse monitor after every 50 steps.
#[derive(Clone, Debug)]
pub struct Byol {
    pub net: OnlineNet,
    pub variant: Variant,
    /// [`normalized_std`] of the online projections of the monitor images, per epoch.
    pub stds: Vec<f32>,
}

struct ByolObjective<'a> {
    target: BackboneNet,
    variant: Variant,
    monitor: &'a ImageSet,
    stds: &'a mut Vec<f32>,
}

type Views = Tensor<(usize, Const<PIXELS>), f32, Cpu>;

impl Objective<OnlineNet, Views> for ByolObjective<'_> {
    /// `2 − 2·cos(prediction of view 1, target projection of view 2)`, both ways round.
    fn loss(
        &mut self,
        net: &mut OnlineNet,
        x: Views,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        // Batch statistics in the target too, as in the paper (its running ones are not averaged).
        let (targets, _) = self
            .target
            .forward_mut(x.clone().leaky_trace())
            .split_tape();
        let targets = swap_halves(targets);
        let projected = net.0.forward_mut(x.traced(grads));
        let online = match self.variant.predictor {
            true => net.1.forward_mut(projected),
            false => projected,
        };
        let cosine = (normalize_rows(online) * normalize_rows(targets)).sum::<(usize,), Axis<1>>();
        Ok(Measured::loss((cosine * -2.0 + 2.0).mean()))
    }

    fn after_update(&mut self, net: &mut OnlineNet) -> Result<(), Error> {
        ema(&mut self.target, &net.0, self.variant.tau)
    }

    fn evaluate(&mut self, net: &OnlineNet) -> Result<Option<Evaluation>, Error> {
        let projections = features(&net.0, self.monitor)?;
        self.stds
            .push(normalized_std(&projections.values, PROJECTION));
        Ok(None)
    }
}

impl Byol {
    /// Pre-trains a fresh online network on `pool`'s images (labels unused), its target
    /// starting as a copy of it; `monitor`'s images feed the collapse monitor.
    pub fn train(
        pool: &ImageSet,
        monitor: &ImageSet,
        settings: &Pretraining,
        variant: Variant,
    ) -> Result<(Byol, History), Error> {
        let mut net = device(settings.seed).build_module::<Online, f32>();
        let mut adam = Method::Adam.at(settings.lr).build(&net);
        let views = Drawn::new(super::EPOCH, settings.views(pool)?);
        let mut stds = Vec::new();
        let target = net.0.clone();
        let objective = ByolObjective {
            target,
            variant,
            monitor,
            stds: &mut stds,
        };
        let history = fit(
            &mut net,
            adam.as_mut(),
            views,
            objective,
            &settings.config(),
        )?;
        Ok((Byol { net, variant, stds }, history))
    }

    pub fn encoder(&self) -> &EncoderNet {
        &self.net.0 .0
    }

    /// The representation of every image (the online encoder's output).
    pub fn representation(&self, images: &ImageSet) -> Result<Features, Error> {
        features(self.encoder(), images)
    }
}
