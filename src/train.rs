//! The training loop the course's classifiers share: mini-batch gradient descent on a dfdx
//! model, a history of what every step and epoch measured, and guards that stop a run
//! with a clear error instead of training on NaN.
//!
//! The loop is written once here, compiled once with the crate, so a notebook cell that
//! trains a model compiles nothing heavy of its own. [`parameters`], [`set_parameters`] and
//! [`gradients`] read a model's weights and gradients as one flat vector, for experiments
//! that compare trajectories or write an update rule by hand.

use crate::data::{one_hot, MiniBatches};
use crate::Error;
use dfdx::optim::{Adam, RMSprop, Sgd};
use dfdx::prelude::*;
use dfdx::tensor::CpuError;
use indicatif::{ProgressBar, ProgressStyle};
use polars::df;
use polars::prelude::DataFrame;
use std::io::IsTerminal;

/// A condition checked after every epoch, e.g. "test accuracy reached 98%".
pub type StopCondition = Box<dyn Fn(&EpochRecord) -> bool>;

/// A learning rate for each optimizer step, given the step's index from 0.
pub type LearningRates = Box<dyn Fn(usize) -> f64>;

/// How long to train, on which loss, and what to report. The batch size and the seed of
/// the shuffling belong to the [`MiniBatches`]; the initial weights come from the device
/// the model was built on (`Cpu::seed_from_u64`).
pub struct TrainConfig {
    pub epochs: usize,
    /// The loss minimised; the test loss of each epoch is the same loss.
    pub loss: Loss,
    /// The learning rate of every step; `None` leaves the optimizer's own.
    pub schedule: Option<LearningRates>,
    /// In a notebook, print a progress line every this many steps (0: only per epoch).
    pub log_every: usize,
    /// Print nothing: for sweeps that train many models.
    pub quiet: bool,
    /// Stop after the first epoch that meets this condition.
    pub stop_when: Option<StopCondition>,
}

impl TrainConfig {
    pub fn new(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            loss: Loss::CrossEntropy,
            schedule: None,
            log_every: 0,
            quiet: false,
            stop_when: None,
        }
    }

    pub fn loss(mut self, loss: Loss) -> TrainConfig {
        self.loss = loss;
        self
    }

    /// Sets the optimizer's learning rate to `schedule(step)` before each step (step 0 first).
    pub fn schedule(mut self, schedule: impl Fn(usize) -> f64 + 'static) -> TrainConfig {
        self.schedule = Some(Box::new(schedule));
        self
    }

    pub fn quiet(mut self) -> TrainConfig {
        self.quiet = true;
        self
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

    /// One row per epoch: training means, held-out evaluation and the weights' norm.
    pub fn epochs_frame(&self) -> Result<DataFrame, Error> {
        let e = &self.epochs;
        let frame = df!(
            "epoch" => e.iter().map(|r| r.epoch as u32).collect::<Vec<_>>(),
            "train_loss" => e.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
            "train_accuracy" => e.iter().map(|r| r.train_accuracy).collect::<Vec<_>>(),
            "test_loss" => e.iter().map(|r| r.test_loss).collect::<Vec<_>>(),
            "test_accuracy" => e.iter().map(|r| r.test_accuracy).collect::<Vec<_>>(),
            "weight_norm" => e.iter().map(|r| r.weight_norm).collect::<Vec<_>>(),
        );
        frame.map_err(|e| Error::Table(e.to_string()))
    }
}

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

/// An optimizer whose learning rate the training loop can set before each step, so that
/// a schedule can drive it ([`TrainConfig::schedule`]; notebook `02_optimization` §5).
pub trait LearningRate {
    fn set_learning_rate(&mut self, lr: f64);
}

/// A dfdx optimizer for model `M` whose learning rate can be set: what the training loop
/// takes, and what a `Box<dyn Trainer<M, E>>` holds when the optimizer is chosen at run time.
pub trait Trainer<M, E: Dtype>: Optimizer<M, Cpu, E> + LearningRate {}

impl<M, E: Dtype, O: Optimizer<M, Cpu, E> + LearningRate> Trainer<M, E> for O {}

impl<M, E: Dtype> LearningRate for Sgd<M, E, Cpu> {
    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }
}

impl<M, E: Dtype> LearningRate for Adam<M, E, Cpu> {
    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }
}

impl<M, E: Dtype> LearningRate for RMSprop<M, E, Cpu> {
    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
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

/// The device a model trains on: seeded (its initial weights and dropout masks come from
/// `seed`), reusing freed tensor buffers instead of asking the system for fresh pages at
/// every step, and driven from one of rayon's threads ([`join_thread_pool`]).
pub fn device(seed: u64) -> Cpu {
    join_thread_pool();
    let dev = Cpu::seed_from_u64(seed);
    dev.enable_cache();
    dev
}

/// Makes the calling thread one of the threads of rayon's global pool, when the pool has
/// not started yet (later calls do nothing). A parallel op started from outside the pool
/// hands its work over and sleeps until it is done, so every op costs two thread wake-ups;
/// from inside, the thread does a share itself and the pool's other thread takes the rest.
/// On two cores that is a fifth of a character-LM training step. The pool keeps its
/// size (`RAYON_NUM_THREADS`, else one thread per core), this thread counted.
pub fn join_thread_pool() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means the pool started already, without this thread: ops still run
        // on it, with the hand-over.
        let _ = rayon::ThreadPoolBuilder::new()
            .use_current_thread()
            .build_global();
    });
}

/// Joins rayon's pool ([`join_thread_pool`]) and, while the returned guard lives, keeps
/// the pool's other threads polling for work instead of going to sleep. Training loops hold
/// one.
///
/// A training step runs dozens of parallel ops with sequential work between them (dfdx's
/// own ops, copies). Between two ops an idle rayon thread yields a few dozen times and then
/// sleeps; waking it takes longer (on a virtual machine, a tenth of a millisecond and more)
/// than the share of an op it was woken for, so the calling thread did most ops alone.
/// PyTorch's OpenMP threads spin between ops too. The polling threads yield their cores
/// between polls, and the numbers do not change: every op splits its work the same way
/// whichever thread runs it.
pub fn hot_pool() -> HotPool {
    use std::sync::atomic::{AtomicBool, Ordering};
    join_thread_pool();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Only from inside the pool: a polling job could otherwise land on a thread that joined
    // the pool from elsewhere (another test's thread) and hold it up until the guard drops.
    if let Some(caller) = rayon::current_thread_index() {
        let polling = stop.clone();
        rayon::spawn_broadcast(move |thread| {
            if thread.index() == caller {
                return;
            }
            while !polling.load(Ordering::Relaxed) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
        });
    }
    HotPool { stop }
}

/// See [`hot_pool`]; dropping it lets the pool's threads sleep again.
pub struct HotPool {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HotPool {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Trains `model` with `optimizer` to classify `train`'s examples (by default cross-entropy
/// on the logits; see [`TrainConfig`] for the loss and a learning-rate schedule),
/// evaluating on `test` after every epoch.
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
    O: Optimizer<M, Cpu, f32> + LearningRate + ?Sized,
{
    let _pool = hot_pool();
    let dev = Cpu::default();
    let progress = Progress::new(config, train.batches_per_epoch());
    let mut grads = model.alloc_grads();
    let mut history = History::default();
    for epoch in 1..=config.epochs {
        let first = history.steps.len();
        for (x, labels) in train.epoch(epoch) {
            let targets = one_hot::<C>(&dev, &labels)?;
            let logits = model.forward_mut(x.traced(grads));
            let accuracy = accuracy(&logits.as_vec(), &labels, C);
            let loss = config.loss.of(logits, targets);
            let record = StepRecord {
                epoch,
                step: history.steps.len() + 1,
                loss: loss.array(),
                accuracy,
            };
            ensure_finite("training loss", record.loss, epoch, record.step)?;
            grads = loss.backward();
            if let Some(schedule) = &config.schedule {
                optimizer.set_learning_rate(schedule(record.step - 1));
            }
            optimizer
                .update(model, &grads)
                .map_err(|e| Error::Optimizer(format!("{e:?}")))?;
            model.zero_grads(&mut grads);
            progress.step(&record);
            history.steps.push(record);
        }
        let epoch_steps = &history.steps[first..];
        let (test_loss, test_accuracy) = evaluate(model, test, config.loss)?;
        ensure_finite("test loss", test_loss, epoch, history.steps.len())?;
        let record = EpochRecord {
            epoch,
            train_loss: mean(epoch_steps.iter().map(|s| s.loss)),
            train_accuracy: mean(epoch_steps.iter().map(|s| s.accuracy)),
            test_loss,
            test_accuracy,
            weight_norm: norm(&parameters(model)),
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

/// Every trainable number of `model`, tensor by tensor in dfdx's visiting order (for a
/// `Linear`: the weight row by row, then the bias).
pub fn parameters<M: TensorCollection<f32, Cpu>>(model: &M) -> Vec<f32> {
    let mut flat = Flatten(Vec::new());
    let walked = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut flat,
    });
    match walked {
        Ok(_) => flat.0,
        Err(never) => match never {},
    }
}

/// Overwrites the trainable numbers of `model` with `values`, in the order of
/// [`parameters`]. The tensors keep their identity, so an optimizer's state still fits them.
pub fn set_parameters<M: TensorCollection<f32, Cpu>>(
    model: &mut M,
    values: &[f32],
) -> Result<(), Error> {
    let count = model.num_trainable_params();
    if values.len() != count {
        return Err(Error::ShapeMismatch {
            what: "the parameter values",
            expected: format!("{count}, one per trainable number of the model"),
            got: values.len().to_string(),
        });
    }
    let walked = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut Overwrite(values),
    });
    match walked {
        Ok(_) => Ok(()),
        Err(never) => match never {},
    }
}

/// The gradient of every trainable number of `model` in `grads`, in the order of
/// [`parameters`]; a tensor that `grads` holds no gradient for counts as zero.
pub fn gradients<M: TensorCollection<f32, Cpu>>(
    model: &M,
    grads: &Gradients<f32, Cpu>,
) -> Result<Vec<f32>, Error> {
    flat_gradients(model, grads).map_err(Error::Device)
}

/// [`gradients`] with dfdx's error, for code that reports errors as dfdx does.
pub(crate) fn flat_gradients<M: TensorCollection<f32, Cpu>>(
    model: &M,
    grads: &Gradients<f32, Cpu>,
) -> Result<Vec<f32>, CpuError> {
    let mut read = ReadGradients {
        grads: grads.clone(),
        flat: Vec::new(),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut read,
    })?;
    Ok(read.flat)
}

/// The Euclidean norm of a vector.
pub fn norm(values: &[f32]) -> f32 {
    values.iter().map(|v| v * v).sum::<f32>().sqrt()
}

/// Appends each trainable tensor's values.
struct Flatten(Vec<f32>);

impl TensorVisitor<f32, Cpu> for Flatten {
    type Viewer = ViewTensorRef;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        t: &Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        if opts.do_gradient_update {
            self.0.extend(t.as_vec());
        }
        Ok(None)
    }
}

/// Copies successive slices of its values into each trainable tensor.
struct Overwrite<'a>(&'a [f32]);

impl TensorVisitor<f32, Cpu> for Overwrite<'_> {
    type Viewer = ViewTensorMut;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        t: &mut Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        if opts.do_gradient_update {
            let (head, rest) = self.0.split_at(t.shape().num_elements());
            t.copy_from(head);
            self.0 = rest;
        }
        Ok(None)
    }
}

/// Appends each trainable tensor's gradient, zeros where there is none.
struct ReadGradients {
    grads: Gradients<f32, Cpu>,
    flat: Vec<f32>,
}

impl TensorVisitor<f32, Cpu> for ReadGradients {
    type Viewer = ViewTensorRef;
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        t: &Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        if opts.do_gradient_update {
            self.flat.extend(self.grads.get_or_alloc_mut(t)?.iter());
        }
        Ok(None)
    }
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
/// into the cell; nothing at all when the run is quiet.
struct Progress {
    bar: Option<ProgressBar>,
    log_every: usize,
    epochs: usize,
    quiet: bool,
}

impl Progress {
    fn new(config: &TrainConfig, steps_per_epoch: usize) -> Progress {
        let bar = (!config.quiet && std::io::stderr().is_terminal()).then(|| {
            let style =
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {msg} [{elapsed}<{eta}]")
                    .expect("a valid template");
            ProgressBar::new((config.epochs * steps_per_epoch) as u64).with_style(style)
        });
        Progress {
            bar,
            log_every: config.log_every,
            epochs: config.epochs,
            quiet: config.quiet,
        }
    }

    fn step(&self, record: &StepRecord) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("loss {:.4}", record.loss));
                bar.inc(1);
            }
            None if !self.quiet
                && self.log_every > 0
                && record.step.is_multiple_of(self.log_every) =>
            {
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
        let thinned = !last && !r.epoch.is_multiple_of(self.epochs.div_ceil(10));
        if self.quiet || (self.bar.is_none() && thinned) {
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
        let curve = history.per_epoch(|e| e.test_accuracy);
        assert_eq!(curve[1], [2.0, f64::from(history.epochs[1].test_accuracy)]);
        assert_eq!(
            epochs.get_column_names(),
            [
                "epoch",
                "train_loss",
                "train_accuracy",
                "test_loss",
                "test_accuracy",
                "weight_norm"
            ]
        );
    }

    #[test]
    fn a_schedule_sets_the_learning_rate_of_every_step() {
        let train = moons(64, 3, 16);
        let run = |config: &TrainConfig| {
            let dev = Cpu::seed_from_u64(3);
            let mut model = dev.build_module::<Net, f32>();
            let before = parameters(&model);
            let mut sgd = Sgd::new(&model, SgdConfig::default());
            let history = fit_classifier(&mut model, &mut sgd, &train, &train, config).unwrap();
            (before, parameters(&model), history)
        };
        let (before, after, _) = run(&TrainConfig::new(2).schedule(|_| 0.0));
        assert_eq!(before, after, "a learning rate of 0 moves nothing");
        let (_, _, unscheduled) = run(&TrainConfig::new(2));
        let (_, _, constant) = run(&TrainConfig::new(2).schedule(|_| 1e-2));
        assert_eq!(unscheduled, constant, "SgdConfig's default is 1e-2");
        // Only the first step moves: the loss changes between steps 1 and 2, then stays.
        let (_, _, once) = run(&TrainConfig::new(1).schedule(|s| if s == 0 { 0.5 } else { 0.0 }));
        let losses: Vec<f32> = once.steps.iter().map(|s| s.loss).collect();
        let again = run(&TrainConfig::new(1).schedule(|_| 0.0)).2;
        assert_eq!(losses[0], again.steps[0].loss);
        assert_ne!(losses[1], again.steps[1].loss);
    }

    #[test]
    fn the_squared_error_sums_over_classes_and_averages_over_the_batch() {
        let dev = Cpu::default();
        // Logits (0, 0): probabilities (1/2, 1/2); target (1, 0): (1/2)² + (1/2)² = 1/2.
        // Logits (ln 3, 0): (3/4, 1/4); target (0, 1): (3/4)² + (3/4)² = 9/8.
        let logits = dev.tensor_from_vec(vec![0.0, 0.0, 3f32.ln(), 0.0], (2, Const::<2>));
        let targets = one_hot::<2>(&dev, &[0, 1]).unwrap();
        let loss = Loss::SquaredError
            .of(logits.clone(), targets.clone())
            .array();
        assert!((loss - (0.5 + 9.0 / 8.0) / 2.0).abs() < 1e-6, "{loss}");
        let ce = Loss::CrossEntropy.of(logits, targets).array();
        assert!((ce - (2f32.ln() + 4f32.ln()) / 2.0).abs() < 1e-6, "{ce}");
    }

    #[test]
    fn parameters_read_and_write_every_trainable_number_in_order() {
        let dev = Cpu::seed_from_u64(0);
        let mut model = dev.build_module::<Net, f32>();
        let flat = parameters(&model);
        assert_eq!(flat.len(), 2 * 16 + 16 + 16 * 2 + 2);
        assert_eq!(flat[..32], model.0.weight.as_vec()[..]);
        assert_eq!(flat[32..48], model.0.bias.as_vec()[..]);
        let doubled: Vec<f32> = flat.iter().map(|v| 2.0 * v).collect();
        set_parameters(&mut model, &doubled).unwrap();
        assert_eq!(parameters(&model), doubled);
        assert_eq!(model.2.bias.as_vec(), doubled[flat.len() - 2..]);
        let err = set_parameters(&mut model, &flat[1..]).unwrap_err();
        assert!(err.to_string().contains("should be 82"), "{err}");
        assert!((norm(&[3.0, 4.0]) - 5.0).abs() < 1e-6);
    }

    #[test]
    fn gradients_follow_the_parameter_order_and_missing_ones_are_zero() {
        let dev = Cpu::seed_from_u64(0);
        let model = dev.build_module::<Net, f32>();
        let x: Tensor<Rank2<3, 2>, f32, Cpu> = dev.sample_normal();
        let grads = model
            .forward(x.traced(model.alloc_grads()))
            .square()
            .mean()
            .backward();
        let flat = gradients(&model, &grads).unwrap();
        assert_eq!(flat.len(), parameters(&model).len());
        assert_eq!(flat[..32], grads.get(&model.0.weight).as_vec()[..]);
        assert_eq!(flat[80..], grads.get(&model.2.bias).as_vec()[..]);
        assert!(flat.iter().any(|g| g.abs() > 1e-4));
        let none = gradients(&model, &Gradients::leaky()).unwrap();
        assert_eq!(none, vec![0.0; flat.len()]);
    }

    #[test]
    fn each_epoch_records_the_weight_norm() {
        let history = run(4, 32, &TrainConfig::new(3).quiet()).unwrap();
        let norms: Vec<f32> = history.epochs.iter().map(|e| e.weight_norm).collect();
        assert!(norms.iter().all(|&n| n > 0.1), "{norms:?}");
        assert_ne!(norms[0], norms[2], "training moves the weights");
    }

    #[test]
    fn accuracy_counts_the_argmax_matches() {
        let logits = [0.1, 0.9, 0.8, 0.2, 0.5, 0.4];
        assert_eq!(accuracy(&logits, &[1, 0, 1], 2), 2.0 / 3.0);
    }
}
