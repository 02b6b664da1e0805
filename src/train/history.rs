//! What a training run measured: one record per optimizer step and one per epoch, as
//! vectors for plotting and as polars tables.

use crate::Error;
use polars::df;
use polars::prelude::DataFrame;

/// What one optimizer step measured on its mini-batch, before the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    pub epoch: usize,
    /// Counted from 1 over the whole run.
    pub step: usize,
    /// The learning rate the update used.
    pub lr: f64,
    pub loss: f32,
    /// The fraction of the batch classified right; NaN for a step that classifies nothing.
    pub accuracy: f32,
}

/// Means over an epoch's steps, and the model evaluated on held-out examples after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Steps taken so far, this epoch's included.
    pub step: usize,
    pub train_loss: f32,
    /// NaN where the steps measured no accuracy, as below where evaluation did not.
    pub train_accuracy: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    /// The Euclidean norm of all trainable parameters after the epoch.
    pub weight_norm: f32,
}

/// Everything a run measured; equal seeds give bit-identical histories.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub steps: Vec<StepRecord>,
    pub epochs: Vec<EpochRecord>,
}

impl History {
    /// The last epoch's record, if any epoch finished.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// `(epoch, measure(epoch's record))` for every epoch: a curve for [`xy_chart`](crate::plot::xy_chart).
    pub fn per_epoch(&self, measure: fn(&EpochRecord) -> f32) -> Vec<[f64; 2]> {
        let point = |e: &EpochRecord| [e.epoch as f64, f64::from(measure(e))];
        self.epochs.iter().map(point).collect()
    }

    /// The training loss of every step.
    pub fn losses(&self) -> Vec<f32> {
        self.steps.iter().map(|s| s.loss).collect()
    }

    /// One row per step: epoch, step, learning rate, loss, accuracy.
    pub fn steps_frame(&self) -> Result<DataFrame, Error> {
        let s = &self.steps;
        let frame = df!(
            "epoch" => s.iter().map(|r| r.epoch as u32).collect::<Vec<_>>(),
            "step" => s.iter().map(|r| r.step as u32).collect::<Vec<_>>(),
            "lr" => s.iter().map(|r| r.lr).collect::<Vec<_>>(),
            "loss" => s.iter().map(|r| r.loss).collect::<Vec<_>>(),
            "accuracy" => s.iter().map(|r| r.accuracy).collect::<Vec<_>>(),
        );
        frame.map_err(|e| Error::Table(e.to_string()))
    }

    /// One row per epoch: training means, held-out evaluation and the weights' norm.
    pub fn epochs_frame(&self) -> Result<DataFrame, Error> {
        let e = &self.epochs;
        let frame = df!(
            "epoch" => e.iter().map(|r| r.epoch as u32).collect::<Vec<_>>(),
            "step" => e.iter().map(|r| r.step as u32).collect::<Vec<_>>(),
            "train_loss" => e.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
            "train_accuracy" => e.iter().map(|r| r.train_accuracy).collect::<Vec<_>>(),
            "test_loss" => e.iter().map(|r| r.test_loss).collect::<Vec<_>>(),
            "test_accuracy" => e.iter().map(|r| r.test_accuracy).collect::<Vec<_>>(),
            "weight_norm" => e.iter().map(|r| r.weight_norm).collect::<Vec<_>>(),
        );
        frame.map_err(|e| Error::Table(e.to_string()))
    }
}
