//! §6: the baseline the field measures itself against: the same encoder trained with
//! labels, but only the few labelled images, with the same augmentations.

use super::augment::Augment;
use super::probe::{Features, CLASSES};
use super::{check_images, features, Encoder, EncoderNet, PIXELS, REPRESENTATION, SIDE};
use crate::data::{ImageSet, MiniBatches};
use crate::optim::{Method, Schedule};
use crate::runtime::device;
use crate::train::{
    evaluate, fit, Classification, Drawn, Evaluation, Loss, Measured, Objective, TrainConfig,
};
use crate::Error;
use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The encoder with a linear classifier on top.
pub type Classifier = (Encoder, Linear<REPRESENTATION, CLASSES>);
pub type ClassifierNet = <Classifier as BuildOnDevice<Cpu, f32>>::Built;

/// Notebook `07_self_supervised` §6: the encoder trained on the few labels, as the
/// validation images chose it.
#[derive(Clone, Debug)]
pub struct Supervised {
    /// The network at the epoch (of 50 steps) with the best validation accuracy.
    pub net: ClassifierNet,
    /// Validation accuracy after each epoch.
    pub validation: Vec<f32>,
}

type Batch = (Tensor<(usize, Const<PIXELS>), f32, Cpu>, Vec<usize>);

struct EarlyStopping<'a> {
    validation: &'a MiniBatches<PIXELS>,
    best: &'a mut Option<(f32, ClassifierNet)>,
    curve: &'a mut Vec<f32>,
}

impl Objective<ClassifierNet, Batch> for EarlyStopping<'_> {
    fn loss(
        &mut self,
        net: &mut ClassifierNet,
        batch: Batch,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        // The course's classification step, with its accuracy: only the evaluation differs.
        let mut step = Classification::<PIXELS, CLASSES> {
            test: None,
            loss: Loss::CrossEntropy,
        };
        step.loss(net, batch, grads)
    }

    /// Keeps the network whenever its validation accuracy is the best so far.
    fn evaluate(&mut self, net: &ClassifierNet) -> Result<Option<Evaluation>, Error> {
        let (loss, accuracy) = evaluate(net, self.validation, Loss::CrossEntropy)?;
        self.curve.push(accuracy);
        if self.best.as_ref().is_none_or(|(best, _)| accuracy > *best) {
            *self.best = Some((accuracy, net.clone()));
        }
        Ok(Some(Evaluation {
            loss,
            accuracy: Some(accuracy),
        }))
    }
}

impl Supervised {
    /// Trains a fresh encoder and classifier (initialised from `seed`) on `labelled`'s
    /// images, a new augmented view of 64 of them at every step, for `steps` Adam steps
    /// (cosine schedule from 2·10⁻³), keeping the epoch the `validation` images prefer.
    pub fn train(
        labelled: &ImageSet,
        validation: &ImageSet,
        augment: Augment,
        steps: usize,
        seed: u64,
    ) -> Result<Supervised, Error> {
        check_images(labelled)?;
        augment.check()?;
        let dev = device(seed);
        let mut net = dev.build_module::<Classifier, f32>();
        let mut adam = Method::Adam.at(2e-3).build(&net);
        let mut rng = StdRng::seed_from_u64(seed);
        let batches = Drawn::new(super::EPOCH, || -> Batch {
            let picked: Vec<usize> = (0..64).map(|_| rng.gen_range(0..labelled.len())).collect();
            let views = picked
                .iter()
                .flat_map(|&i| augment.view(labelled.image(i), SIDE, &mut rng));
            let x = dev.tensor_from_vec(views.collect(), (picked.len(), Const::<PIXELS>));
            (x, picked.iter().map(|&i| labelled.labels[i]).collect())
        });
        let validation = MiniBatches::from_images(&dev, validation, 500, seed)?;
        let (mut best, mut curve) = (None, Vec::new());
        let objective = EarlyStopping {
            validation: &validation,
            best: &mut best,
            curve: &mut curve,
        };
        let schedule = Schedule::Cosine {
            lr: 2e-3,
            warmup: 0.05,
            floor: 0.05,
        };
        let config = TrainConfig::new(steps.div_ceil(super::EPOCH).max(1))
            .schedule(schedule)
            .quiet();
        fit(&mut net, adam.as_mut(), batches, objective, &config)?;
        let (_, net) = best.expect("fit evaluates after every epoch, and there is at least one");
        Ok(Supervised {
            net,
            validation: curve,
        })
    }

    pub fn encoder(&self) -> &EncoderNet {
        &self.net.0
    }

    /// The representation of every image (the encoder's output, before the classifier).
    pub fn representation(&self, images: &ImageSet) -> Result<Features, Error> {
        features(self.encoder(), images)
    }

    /// The classifier's own accuracy on `images`.
    pub fn accuracy(&self, images: &ImageSet) -> Result<f32, Error> {
        let tests = MiniBatches::<PIXELS>::from_images(&Cpu::default(), images, 500, 0)?;
        Ok(evaluate(&self.net, &tests, Loss::CrossEntropy)?.1)
    }
}
