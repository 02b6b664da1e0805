//! Classification on the shared loop: the losses a classifier trains on, the
//! [`Classification`] objective (a step's loss and accuracy, the held-out evaluation after
//! each epoch) and [`fit_classifier`], the call every classifier of the course trains with.

use super::{fit, Evaluation, Measured, Objective, TrainConfig};
use crate::data::{one_hot, Batch, MiniBatches};
use crate::optim::ScheduledOptimizer;
use crate::Error;
use dfdx::prelude::*;

/// The loss a classifier is trained on, computed from its logits and one-hot targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loss {
    /// Cross-entropy of the softmax of the logits: `-ln p(label)`, averaged over the batch.
    #[default]
    CrossEntropy,
    /// The squared error between the softmax probabilities and the one-hot target, summed
    /// over classes and averaged over the batch (the Brier score; Brier, 1950). Notebook
    /// `02_optimization` §2 shows why it learns slowly when the softmax saturates.
    SquaredError,
}

impl Loss {
    /// The batch's mean loss, on whatever tape the logits carry.
    pub fn of<T: Tape<f32, Cpu>, const C: usize>(
        self,
        logits: Tensor<(usize, Const<C>), f32, Cpu, T>,
        targets: Tensor<(usize, Const<C>), f32, Cpu>,
    ) -> Tensor<Rank0, f32, Cpu, T> {
        match self {
            Loss::CrossEntropy => cross_entropy_with_logits_loss(logits, targets),
            Loss::SquaredError => (logits.softmax::<Axis<1>>() - targets)
                .square()
                .sum::<(usize,), Axis<1>>()
                .mean(),
        }
    }
}

/// A dfdx classifier from `F` features to `C` logits: trainable with a tape (`forward_mut`,
/// so dropout and batch norm are in training mode) and evaluable without one (`forward`).
pub trait Classifier<const F: usize, const C: usize>:
    ModuleMut<
        Tensor<(usize, Const<F>), f32, Cpu, OwnedTape<f32, Cpu>>,
        Output = Tensor<(usize, Const<C>), f32, Cpu, OwnedTape<f32, Cpu>>,
    > + Module<Tensor<(usize, Const<F>), f32, Cpu>, Output = Tensor<(usize, Const<C>), f32, Cpu>>
    + TensorCollection<f32, Cpu>
{
}

impl<M, const F: usize, const C: usize> Classifier<F, C> for M where
    M: ModuleMut<
            Tensor<(usize, Const<F>), f32, Cpu, OwnedTape<f32, Cpu>>,
            Output = Tensor<(usize, Const<C>), f32, Cpu, OwnedTape<f32, Cpu>>,
        > + Module<Tensor<(usize, Const<F>), f32, Cpu>, Output = Tensor<(usize, Const<C>), f32, Cpu>>
        + TensorCollection<f32, Cpu>
{
}

/// Training a [`Classifier`] with `C` classes: `loss` on each mini-batch, the batch's
/// accuracy beside it, and after every epoch the same loss and accuracy on `test` (when
/// there is a test set: a run read from its steps alone needs none).
pub struct Classification<'a, const F: usize, const C: usize> {
    pub test: Option<&'a MiniBatches<F>>,
    pub loss: Loss,
}

impl<M: Classifier<F, C>, const F: usize, const C: usize> Objective<M, Batch<F>>
    for Classification<'_, F, C>
{
    fn loss(
        &mut self,
        model: &mut M,
        (x, labels): Batch<F>,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        let targets = one_hot::<C>(x.device(), &labels)?;
        let logits = model.forward_mut(x.traced(grads));
        let accuracy = accuracy(&logits.as_vec(), &labels, C);
        Ok(Measured::loss(self.loss.of(logits, targets)).with_accuracy(accuracy))
    }

    fn evaluate(&mut self, model: &M) -> Result<Option<Evaluation>, Error> {
        let Some(test) = self.test else {
            return Ok(None);
        };
        let (loss, accuracy) = evaluate(model, test, self.loss)?;
        Ok(Some(Evaluation {
            loss,
            accuracy: Some(accuracy),
        }))
    }
}

/// Trains `model` with `optimizer` to classify `train`'s examples by cross-entropy,
/// evaluating on `test` after every epoch ([`Classification`] for another loss).
///
/// Fails with [`Error::NotFinite`] at the first step whose loss is NaN or infinite,
/// naming the epoch and step, rather than carrying on with a ruined model.
pub fn fit_classifier<M, O, const F: usize, const C: usize>(
    model: &mut M,
    optimizer: &mut O,
    train: &MiniBatches<F>,
    test: &MiniBatches<F>,
    config: &TrainConfig,
) -> Result<super::History, Error>
where
    M: Classifier<F, C>,
    O: ScheduledOptimizer<M, f32> + ?Sized,
{
    let objective = Classification::<F, C> {
        test: Some(test),
        loss: Loss::CrossEntropy,
    };
    fit(model, optimizer, train, objective, config)
}

/// Mean `loss` and accuracy of `model` on every example of `examples`, without a tape.
pub fn evaluate<M, const F: usize, const C: usize>(
    model: &M,
    examples: &MiniBatches<F>,
    loss: Loss,
) -> Result<(f32, f32), Error>
where
    M: Module<Tensor<(usize, Const<F>), f32, Cpu>, Output = Tensor<(usize, Const<C>), f32, Cpu>>,
{
    let dev = Cpu::default();
    let (mut loss_sum, mut correct) = (0.0, 0.0);
    for (x, labels) in examples.epoch(0) {
        let targets = one_hot::<C>(&dev, &labels)?;
        let logits = model.forward(x);
        correct += accuracy(&logits.as_vec(), &labels, C) * labels.len() as f32;
        loss_sum += loss.of(logits, targets).array() * labels.len() as f32;
    }
    let n = examples.len().max(1) as f32;
    Ok((loss_sum / n, correct / n))
}

/// The index of the largest entry of `row` (the first, on ties): a classifier's prediction.
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best })
}

/// The fraction of rows of `logits` (row-major, `classes` wide) whose largest entry is at
/// the label's index.
pub fn accuracy(logits: &[f32], labels: &[usize], classes: usize) -> f32 {
    let correct = logits
        .chunks(classes.max(1))
        .zip(labels)
        .filter(|(row, &label)| argmax(row) == label)
        .count();
    correct as f32 / labels.len().max(1) as f32
}
