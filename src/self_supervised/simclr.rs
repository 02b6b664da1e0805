//! §3: SimCLR (Chen, Kornblith, Norouzi & Hinton, 2020). Two random views of every image go
//! through one encoder `f` and a projection head `g`; NT-Xent pulls each view's projection
//! towards its partner's and away from the batch's other `2B − 2` views. The representation
//! kept is `f`'s output, before the head.

use super::losses::nt_xent;
use super::probe::Features;
use super::{features, Encoder, EncoderNet, Pretraining, Projector, PIXELS};
use crate::data::ImageSet;
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{fit, Drawn, History, Measured};
use crate::Error;
use dfdx::prelude::*;

/// The network SimCLR trains: the encoder, then the projection head.
pub type SimClrNet = <(Encoder, Projector) as BuildOnDevice<Cpu, f32>>::Built;

/// SimCLR's softmax temperature. The paper tried 0.05–1 (its Table 5: 0.1 best at its
/// batch sizes on ImageNet, 0.5 on CIFAR-10); 0.2 probed best here among 0.1, 0.2 and 0.5.
pub const TEMPERATURE: f32 = 0.2;

/// A SimCLR encoder and its head, trained: notebook `07_self_supervised` §3.
#[derive(Clone, Debug)]
pub struct SimClr {
    pub net: SimClrNet,
}

impl SimClr {
    /// Pre-trains a fresh network (initialised from `settings.seed`) on `pool`'s images,
    /// their labels unused, minimising NT-Xent at `temperature`.
    pub fn train(
        pool: &ImageSet,
        settings: &Pretraining,
        temperature: f32,
    ) -> Result<(SimClr, History), Error> {
        let mut net = device(settings.seed).build_module::<(Encoder, Projector), f32>();
        let mut adam = Method::Adam.at(settings.lr).build(&net);
        let views = Drawn::new(super::EPOCH, settings.views(pool)?);
        let objective =
            |net: &mut SimClrNet, x: Tensor<(usize, Const<PIXELS>), f32, Cpu>, grads| {
                Ok(Measured::loss(nt_xent(
                    net.forward_mut(x.traced(grads)),
                    temperature,
                )?))
            };
        let history = fit(
            &mut net,
            adam.as_mut(),
            views,
            objective,
            &settings.config(),
        )?;
        Ok((SimClr { net }, history))
    }

    /// The encoder alone: the representation SimCLR keeps.
    pub fn encoder(&self) -> &EncoderNet {
        &self.net.0
    }

    /// The representation of every image (`f`'s output, 128 wide).
    pub fn representation(&self, images: &ImageSet) -> Result<Features, Error> {
        features(self.encoder(), images)
    }

    /// The projection of every image (`g(f(x))`, 64 wide): what the loss saw.
    pub fn projection(&self, images: &ImageSet) -> Result<Features, Error> {
        features(&self.net, images)
    }
}
