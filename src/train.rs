//! The training loop the course's classifiers share: mini-batch gradient descent on a dfdx
//! model, a history of what every step and epoch measured, and guards that stop a run
//! with a clear error instead of training on NaN.
//!
//! The loop is written once here, compiled once with the crate, so a notebook cell that
//! trains a model compiles nothing heavy of its own.

use crate::data::{one_hot, MiniBatches};
use crate::Error;
use dfdx::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use polars::df;
use polars::prelude::DataFrame;
use std::io::IsTerminal;

/// A condition checked after every epoch, e.g. "test accuracy reached 98%".
pub type StopCondition = Box<dyn Fn(&EpochRecord) -> bool>;

/// How long to train and what to report. The batch size and the seed of the shuffling
/// belong to the [`MiniBatches`]; the initial weights come from the device the model was
/// built on (`Cpu::seed_from_u64`).
pub struct TrainConfig {
    pub epochs: usize,
    /// In a notebook, print a progress line every this many steps (0: only per epoch).
    pub log_every: usize,
    /// Stop after the first epoch that meets this condition.
    pub stop_when: Option<StopCondition>,
}

impl TrainConfig {
    pub fn new(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            log_every: 0,
            stop_when: None,
        }
    }

    pub fn log_every(mut self, steps: usize) -> TrainConfig {
        self.log_every = steps;
        self
    }

    pub fn stop_when(mut self, condition: impl Fn(&EpochRecord) -> bool + 'static) -> TrainConfig {
        self.stop_when = Some(Box::new(condition));
        self
    }
}

/// What one optimizer step measured on its mini-batch, before the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    pub epoch: usize,
    pub step: usize,
    pub loss: f32,
    pub accuracy: f32,
}

/// Means over an epoch's steps, and the model evaluated on the held-out examples after it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
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

    /// One row per step: epoch, step, loss, accuracy.
    pub fn steps_frame(&self) -> Result<DataFrame, Error> {
        let s = &self.steps;
        let frame = df!(
            "epoch" => s.iter().map(|r| r.epoch as u32).collect::<Vec<_>>(),
            "step" => s.iter().map(|r| r.step as u32).collect::<Vec<_>>(),
            "loss" => s.iter().map(|r| r.loss).collect::<Vec<_>>(),
            "accuracy" => s.iter().map(|r| r.accuracy).collect::<Vec<_>>(),
        );
        frame.map_err(|e| Error::Table(e.to_string()))
    }

    /// One row per epoch: training means and held-out evaluation.
    pub fn epochs_frame(&self) -> Result<DataFrame, Error> {
        let e = &self.epochs;
        let frame = df!(
            "epoch" => e.iter().map(|r| r.epoch as u32).collect::<Vec<_>>(),
            "train_loss" => e.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
            "train_accuracy" => e.iter().map(|r| r.train_accuracy).collect::<Vec<_>>(),
            "test_loss" => e.iter().map(|r| r.test_loss).collect::<Vec<_>>(),
            "test_accuracy" => e.iter().map(|r| r.test_accuracy).collect::<Vec<_>>(),
        );
        frame.map_err(|e| Error::Table(e.to_string()))
    }
}

/// A dfdx classifier from `F` features to `C` logits: trainable with a tape (`forward_mut`,
/// so dropout and batch norm are in training mode) and evaluable without one (`forward`).
pub trait Classifier<const F: usize, const C: usize>:
    ModuleMut<
        Tensor<(usize, Const<F>), f32, Cpu, OwnedTape<f32, Cpu>>,
        Output = Tensor<(usize, Const<C>), f32, Cpu, OwnedTape<f32, Cpu>>,
    > + Module<Tensor<(usize, Const<F>), f32, Cpu>, Output = Tensor<(usize, Const<C>), f32, Cpu>>
    + ZeroGrads<f32, Cpu>
{
}

impl<M, const F: usize, const C: usize> Classifier<F, C> for M where
    M: ModuleMut<
            Tensor<(usize, Const<F>), f32, Cpu, OwnedTape<f32, Cpu>>,
            Output = Tensor<(usize, Const<C>), f32, Cpu, OwnedTape<f32, Cpu>>,
        > + Module<Tensor<(usize, Const<F>), f32, Cpu>, Output = Tensor<(usize, Const<C>), f32, Cpu>>
        + ZeroGrads<f32, Cpu>
{
}

/// Trains `model` with `optimizer` to classify `train`'s examples (cross-entropy on the
/// logits), evaluating on `test` after every epoch.
///
/// Fails with [`Error::NotFinite`] at the first step whose loss is NaN or infinite,
/// naming the epoch and step, rather than carrying on with a ruined model.
pub fn fit_classifier<M, O, const F: usize, const C: usize>(
    model: &mut M,
    optimizer: &mut O,
    train: &MiniBatches<F>,
    test: &MiniBatches<F>,
    config: &TrainConfig,
) -> Result<History, Error>
where
    M: Classifier<F, C>,
    O: Optimizer<M, Cpu, f32>,
{
    let dev = Cpu::default();
    let progress = Progress::new(config.epochs, train.batches_per_epoch(), config.log_every);
    let mut grads = model.alloc_grads();
    let mut history = History::default();
    for epoch in 1..=config.epochs {
        let first = history.steps.len();
        for (x, labels) in train.epoch(epoch) {
            let targets = one_hot::<C>(&dev, &labels)?;
            let logits = model.forward_mut(x.traced(grads));
            let accuracy = accuracy(&logits.as_vec(), &labels, C);
            let loss = cross_entropy_with_logits_loss(logits, targets);
            let record = StepRecord {
                epoch,
                step: history.steps.len() + 1,
                loss: loss.array(),
                accuracy,
            };
            ensure_finite("training loss", record.loss, epoch, record.step)?;
            grads = loss.backward();
            optimizer
                .update(model, &grads)
                .map_err(|e| Error::Optimizer(format!("{e:?}")))?;
            model.zero_grads(&mut grads);
            progress.step(&record);
            history.steps.push(record);
        }
        let epoch_steps = &history.steps[first..];
        let (test_loss, test_accuracy) = evaluate(model, test)?;
        ensure_finite("test loss", test_loss, epoch, history.steps.len())?;
        let record = EpochRecord {
            epoch,
            train_loss: mean(epoch_steps.iter().map(|s| s.loss)),
            train_accuracy: mean(epoch_steps.iter().map(|s| s.accuracy)),
            test_loss,
            test_accuracy,
        };
        progress.epoch(&record);
        history.epochs.push(record);
        if config.stop_when.as_ref().is_some_and(|stop| stop(&record)) {
            break;
        }
    }
    progress.finish();
    Ok(history)
}

/// Mean cross-entropy and accuracy of `model` on every example of `examples`, without a tape.
pub fn evaluate<M, const F: usize, const C: usize>(
    model: &M,
    examples: &MiniBatches<F>,
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
        loss_sum += cross_entropy_with_logits_loss(logits, targets).array() * labels.len() as f32;
    }
    let n = examples.len().max(1) as f32;
    Ok((loss_sum / n, correct / n))
}

/// The fraction of rows of `logits` (row-major, `classes` wide) whose largest entry is at
/// the label's index.
pub fn accuracy(logits: &[f32], labels: &[usize], classes: usize) -> f32 {
    let argmax =
        |row: &[f32]| (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best });
    let correct = logits
        .chunks(classes.max(1))
        .zip(labels)
        .filter(|(row, &label)| argmax(row) == label)
        .count();
    correct as f32 / labels.len().max(1) as f32
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, n) = values.fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f32
}

fn ensure_finite(
    quantity: &'static str,
    value: f32,
    epoch: usize,
    step: usize,
) -> Result<(), Error> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::NotFinite {
            quantity,
            value,
            epoch,
            step,
        })
    }
}

/// Progress: a bar in a terminal; in a notebook (stdout is not a terminal) a short line
/// every `log_every` steps and after about ten evenly spaced epochs, since stdout streams
/// into the cell.
struct Progress {
    bar: Option<ProgressBar>,
    log_every: usize,
    epochs: usize,
}

impl Progress {
    fn new(epochs: usize, steps_per_epoch: usize, log_every: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style =
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {msg} [{elapsed}<{eta}]")
                    .expect("a valid template");
            ProgressBar::new((epochs * steps_per_epoch) as u64).with_style(style)
        });
        Progress {
            bar,
            log_every,
            epochs,
        }
    }

    fn step(&self, record: &StepRecord) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("loss {:.4}", record.loss));
                bar.inc(1);
            }
            None if self.log_every > 0 && record.step.is_multiple_of(self.log_every) => {
                println!(
                    "epoch {} step {}: loss {:.4}, batch accuracy {:.3}",
                    record.epoch, record.step, record.loss, record.accuracy
                );
            }
            None => {}
        }
    }

    fn epoch(&self, r: &EpochRecord) {
        let last = r.epoch == self.epochs;
        if self.bar.is_none() && !last && !r.epoch.is_multiple_of(self.epochs.div_ceil(10)) {
            return;
        }
        let line = format!(
            "epoch {}: train loss {:.4}, accuracy {:.3} | test loss {:.4}, accuracy {:.3}",
            r.epoch, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::two_moons;
    use dfdx::optim::{Adam, AdamConfig, Sgd, SgdConfig};

    type Net = (Linear<2, 16>, ReLU, Linear<16, 2>);

    fn moons(n: usize, seed: u64, batch_size: usize) -> MiniBatches<2> {
        let points = two_moons(n, 0.1, seed).unwrap();
        let features = points.xy.iter().flatten().map(|&v| v as f32).collect();
        MiniBatches::new(&Cpu::default(), features, points.labels, batch_size, seed).unwrap()
    }

    fn run(seed: u64, batch_size: usize, config: &TrainConfig) -> Result<History, Error> {
        let dev = Cpu::seed_from_u64(seed);
        let mut model = dev.build_module::<Net, f32>();
        let mut adam = Adam::new(
            &model,
            AdamConfig {
                lr: 0.02,
                ..Default::default()
            },
        );
        let (train, test) = (
            moons(200, seed, batch_size),
            moons(100, seed + 1, batch_size),
        );
        fit_classifier(&mut model, &mut adam, &train, &test, config)
    }

    #[test]
    fn a_classifier_learns_and_the_history_records_every_step() {
        let history = run(0, 32, &TrainConfig::new(30)).unwrap();
        assert_eq!(
            history.steps.len(),
            30 * 7,
            "200 examples in batches of 32: 7 steps an epoch"
        );
        assert_eq!(history.epochs.len(), 30);
        let last = history.last().unwrap();
        assert!(last.test_accuracy > 0.95, "{last:?}");
        assert!(
            last.train_loss < history.epochs[0].train_loss / 3.0,
            "{:?}",
            history.epochs[0]
        );
    }

    #[test]
    fn the_same_seed_gives_bit_identical_histories() {
        let config = TrainConfig::new(3);
        assert_eq!(run(5, 16, &config).unwrap(), run(5, 16, &config).unwrap());
        assert_ne!(run(5, 16, &config).unwrap(), run(6, 16, &config).unwrap());
    }

    #[test]
    fn stopping_early_ends_after_the_first_epoch_that_meets_the_condition() {
        let config = TrainConfig::new(50).stop_when(|epoch| epoch.test_accuracy >= 0.8);
        let history = run(1, 32, &config).unwrap();
        assert!(history.epochs.len() < 50);
        assert!(history.last().unwrap().test_accuracy >= 0.8);
        assert!(history.epochs[..history.epochs.len() - 1]
            .iter()
            .all(|e| e.test_accuracy < 0.8));
    }

    #[test]
    fn a_diverging_run_stops_with_an_error_naming_the_step() {
        // A NaN in the inputs would not do: ReLU (max(x, 0)) turns NaN into 0. A learning
        // rate of 1e30 does: the weights overflow and the loss becomes NaN.
        let dev = Cpu::seed_from_u64(0);
        let mut model = dev.build_module::<Net, f32>();
        let mut sgd = Sgd::new(
            &model,
            SgdConfig {
                lr: 1e30,
                ..Default::default()
            },
        );
        let examples = moons(64, 0, 16);
        let err = fit_classifier(
            &mut model,
            &mut sgd,
            &examples,
            &examples,
            &TrainConfig::new(2),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("training loss is NaN at epoch 1, step "),
            "{message}"
        );
    }

    #[test]
    fn histories_convert_to_data_frames() {
        let history = run(2, 50, &TrainConfig::new(2)).unwrap();
        let steps = history.steps_frame().unwrap();
        assert_eq!(steps.shape(), (8, 4));
        let epochs = history.epochs_frame().unwrap();
        assert_eq!(
            epochs.get_column_names(),
            [
                "epoch",
                "train_loss",
                "train_accuracy",
                "test_loss",
                "test_accuracy"
            ]
        );
    }

    #[test]
    fn accuracy_counts_the_argmax_matches() {
        let logits = [0.1, 0.9, 0.8, 0.2, 0.5, 0.4];
        assert_eq!(accuracy(&logits, &[1, 0, 1], 2), 2.0 / 3.0);
    }
}
