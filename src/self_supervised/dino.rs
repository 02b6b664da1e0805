//! §5: DINO (Caron et al., 2021): self-distillation with no labels. A student and a teacher
//! of one architecture each map a view to a softmax over `K` outputs; the student learns to
//! match the teacher's distribution for the other view, and the teacher is an exponential
//! moving average of the student. Two operations on the teacher's outputs keep it from
//! collapsing: **centering** (subtract a running mean of its logits, so no output can win
//! for every image) and **sharpening** (a teacher temperature below the student's, so the
//! distribution cannot stay uniform).

use super::collapse::{entropies, Entropies};
use super::probe::Features;
use super::{ema, features, swap_halves, Encoder, EncoderNet, Pretraining, PIXELS, REPRESENTATION};
use crate::data::ImageSet;
use crate::nn::builders::{LayerNorm1D, ReLU};
use crate::optim::Method;
use crate::runtime::device;
use crate::train::{fit, Drawn, Evaluation, History, Measured, Objective};
use crate::Error;
use dfdx::prelude::*;

/// The number of outputs of DINO's head (65,536 in the paper).
pub const OUTPUTS: usize = 64;

/// DINO's head: an MLP from the representation to `K` logits.
pub type Head = (
    Linear<REPRESENTATION, REPRESENTATION>,
    LayerNorm1D<REPRESENTATION>,
    ReLU,
    Linear<REPRESENTATION, OUTPUTS>,
);
pub type Student = (Encoder, Head);
pub type StudentNet = <Student as BuildOnDevice<Cpu, f32>>::Built;

/// The student's temperature, the paper's 0.1.
pub const STUDENT_TEMPERATURE: f32 = 0.1;

/// Which of DINO's parts a run keeps (notebook `07_self_supervised` §5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    /// Subtract the running centre from the teacher's logits.
    pub centering: bool,
    /// The teacher's temperature: the paper's 0.04 sharpens; the student's 0.1 does not.
    pub teacher_temperature: f32,
}

impl Variant {
    pub const FULL: Variant = Variant {
        centering: true,
        teacher_temperature: 0.04,
    };
    pub const NO_CENTERING: Variant = Variant {
        centering: false,
        teacher_temperature: 0.04,
    };
    pub const NO_SHARPENING: Variant = Variant {
        centering: true,
        teacher_temperature: STUDENT_TEMPERATURE,
    };

    pub fn name(&self) -> String {
        let centering = if self.centering {
            "centering"
        } else {
            "no centering"
        };
        format!("{centering}, teacher τ = {}", self.teacher_temperature)
    }
}

/// The teacher's moving-average rate, the paper's starting 0.996 (it then rises to 1 over a
/// run of 10⁵ steps and more; ours is 500).
pub const TEACHER_MOMENTUM: f32 = 0.996;
/// The centre's moving-average rate, the paper's 0.9.
pub const CENTER_MOMENTUM: f32 = 0.9;

/// Notebook `07_self_supervised` §5: a trained DINO pair, with the teacher's entropies after every 50 steps.
#[derive(Clone, Debug)]
pub struct Dino {
    pub student: StudentNet,
    pub teacher: StudentNet,
    pub center: Vec<f32>,
    pub variant: Variant,
    /// The teacher's [`Entropies`] on the monitor images, per epoch.
    pub entropies: Vec<Entropies>,
}

/// The teacher's distributions: `softmax((logits − center) / temperature)`, row by row
/// (notebook `07_self_supervised` §5 writes it out).
pub fn teacher_probabilities(logits: &[f32], center: &[f32], temperature: f32) -> Vec<f32> {
    logits
        .chunks(center.len())
        .flat_map(|row| {
            let shifted: Vec<f32> = row
                .iter()
                .zip(center)
                .map(|(l, c)| (l - c) / temperature)
                .collect();
            let max = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = shifted.iter().map(|s| (s - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            exp.into_iter().map(move |e| e / sum)
        })
        .collect()
}

struct DinoObjective<'a> {
    teacher: &'a mut StudentNet,
    center: &'a mut Vec<f32>,
    variant: Variant,
    monitor: &'a ImageSet,
    entropies: &'a mut Vec<Entropies>,
}

type Views = Tensor<(usize, Const<PIXELS>), f32, Cpu>;

impl Objective<StudentNet, Views> for DinoObjective<'_> {
    /// The cross-entropy between the teacher's distribution for one view and the student's
    /// for the other, both ways round; then the centre moves towards the batch's mean.
    fn loss(
        &mut self,
        student: &mut StudentNet,
        x: Views,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        let rows = x.shape().0;
        let logits = self.teacher.forward(x.clone());
        let teacher = teacher_probabilities(
            &logits.as_vec(),
            self.center,
            self.variant.teacher_temperature,
        );
        let teacher = swap_halves(
            x.device()
                .tensor_from_vec(teacher, (rows, Const::<OUTPUTS>)),
        );
        let log_student =
            (student.forward_mut(x.traced(grads)) / STUDENT_TEMPERATURE).log_softmax::<Axis<1>>();
        let loss = (log_student * teacher).sum::<Rank0, _>().negate() / rows as f32;
        if self.variant.centering {
            let mean = logits.mean::<Rank1<OUTPUTS>, _>().as_vec();
            self.center
                .iter_mut()
                .zip(mean)
                .for_each(|(c, m)| *c = CENTER_MOMENTUM * *c + (1.0 - CENTER_MOMENTUM) * m);
        }
        Ok(Measured::loss(loss))
    }

    fn after_update(&mut self, student: &mut StudentNet) -> Result<(), Error> {
        ema(self.teacher, student, TEACHER_MOMENTUM)
    }

    fn evaluate(&mut self, _student: &StudentNet) -> Result<Option<Evaluation>, Error> {
        let logits = features(&*self.teacher, self.monitor)?;
        let p = teacher_probabilities(
            &logits.values,
            self.center,
            self.variant.teacher_temperature,
        );
        self.entropies.push(entropies(&p, OUTPUTS));
        Ok(None)
    }
}

impl Dino {
    /// Pre-trains a fresh student on `pool`'s images (labels unused), the teacher starting
    /// as a copy of it and the centre at zero; `monitor`'s images feed the entropies.
    pub fn train(
        pool: &ImageSet,
        monitor: &ImageSet,
        settings: &Pretraining,
        variant: Variant,
    ) -> Result<(Dino, History), Error> {
        let mut student = device(settings.seed).build_module::<Student, f32>();
        let mut adam = Method::Adam.at(settings.lr).build(&student);
        let views = Drawn::new(super::EPOCH, settings.views(pool)?);
        let (mut teacher, mut center, mut entropies) =
            (student.clone(), vec![0.0; OUTPUTS], Vec::new());
        let objective = DinoObjective {
            teacher: &mut teacher,
            center: &mut center,
            variant,
            monitor,
            entropies: &mut entropies,
        };
        let history = fit(
            &mut student,
            adam.as_mut(),
            views,
            objective,
            &settings.config(),
        )?;
        Ok((
            Dino {
                student,
                teacher,
                center,
                variant,
                entropies,
            },
            history,
        ))
    }

    /// The teacher's encoder: the representation DINO keeps (the paper evaluates the
    /// teacher, which is the better of the two).
    pub fn encoder(&self) -> &EncoderNet {
        &self.teacher.0
    }

    pub fn representation(&self, images: &ImageSet) -> Result<Features, Error> {
        features(self.encoder(), images)
    }
}
