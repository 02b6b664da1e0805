//! The course's one training loop: mini-batch gradient descent on any dfdx model, for
//! any loss ([`fit`]). Every model the crate trains goes through it, from notebook
//! `00_tour`'s MLP to notebook `05_attention`'s language model; notebook `00_tour` §3
//! introduces it.
//!
//! A run is a model, an optimizer whose learning rate can be set
//! ([`ScheduledOptimizer`]), where the batches come from
//! ([`Batches`]), what is minimised ([`Objective`]: the loss of a batch, and optionally an
//! evaluation after each epoch and a hook after each update) and how long and loud to run
//! ([`TrainConfig`]). The loop sets the learning rate from the schedule, stops at the first
//! loss that is not finite, reports progress, and records every step and epoch
//! ([`History`]). It is compiled once with the crate, so a notebook cell that trains a
//! model compiles nothing heavy of its own.
//!
//! ```
//! use mustknow::optim::Method;
//! use mustknow::prelude::*;
//! use mustknow::train::{fit, Drawn, Measured};
//!
//! // Fit y = 3x with one weight and a bias, on 8 points drawn afresh at every step.
//! let dev = Cpu::seed_from_u64(0);
//! let mut model = dev.build_module::<Linear<1, 1>, f32>();
//! let mut sgd = Method::Sgd.at(0.3).build(&model);
//! let points = Drawn::new(20, || dev.sample_normal_like(&(8, Const::<1>)));
//! type X = Tensor<(usize, Const<1>), f32, Cpu>;
//! let objective = |m: &mut dfdx::nn::modules::Linear<1, 1, f32, Cpu>, x: X, grads| -> Result<Measured, Error> {
//!     let y = x.clone() * 3.0;
//!     Ok(Measured::loss(mse_loss(m.forward(x.traced(grads)), y)))
//! };
//! let history = fit(&mut model, sgd.as_mut(), points, objective, &TrainConfig::new(10).quiet())?;
//! assert!(history.steps.last().unwrap().loss < 1e-4);
//! # Ok::<(), Error>(())
//! ```

mod classify;
mod history;
mod params;
mod progress;

pub use classify::{accuracy, argmax, evaluate, fit_classifier, Classification, Classifier, Loss};
pub use history::{EpochRecord, History, StepRecord};
pub(crate) use params::flat_gradients;
pub use params::{gradients, norm, parameters, set_parameters};

use crate::data::{Batch, MiniBatches};
use crate::optim::{Schedule, ScheduledOptimizer};
use crate::runtime::{hot_pool, release_cache};
use crate::Error;
use dfdx::optim::OptimizerUpdateError;
use dfdx::prelude::*;
use progress::Progress;

/// A condition checked after every epoch, e.g. "test accuracy reached 98%".
pub type StopCondition = Box<dyn Fn(&EpochRecord) -> bool>;

/// How long to train and what to report. The batches and their order belong to the
/// [`Batches`]; the initial weights come from the device the model was built on
/// ([`crate::runtime::device`]).
pub struct TrainConfig {
    pub epochs: usize,
    /// The learning rate of every step; `None` leaves the optimizer's own.
    pub schedule: Option<Schedule>,
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
            schedule: None,
            log_every: 0,
            quiet: false,
            stop_when: None,
        }
    }

    /// A quiet run of at least `steps` steps in epochs of `per_epoch` (so `steps` rounded up
    /// to whole epochs), on a cosine schedule peaking at `lr` after 5% warm-up and ending at
    /// 5% of it: how notebooks 07 and 08 train their models.
    pub fn cosine(steps: usize, per_epoch: usize, lr: f64) -> TrainConfig {
        let schedule = Schedule::Cosine {
            lr,
            warmup: 0.05,
            floor: 0.05,
        };
        TrainConfig::new(steps.div_ceil(per_epoch).max(1))
            .schedule(schedule)
            .quiet()
    }

    /// Sets the optimizer's learning rate from `schedule` before each update, over the
    /// run's `epochs × batches per epoch` steps.
    pub fn schedule(mut self, schedule: Schedule) -> TrainConfig {
        self.schedule = Some(schedule);
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

/// Where a run's batches come from: how many make an epoch, and epoch `epoch`'s (from 1).
pub trait Batches {
    type Batch;
    fn per_epoch(&self) -> usize;
    fn epoch(&mut self, epoch: usize) -> Result<impl Iterator<Item = Self::Batch> + '_, Error>;
}

/// A labelled data set, shuffled afresh every epoch.
impl<const F: usize> Batches for &MiniBatches<F> {
    type Batch = Batch<F>;

    fn per_epoch(&self) -> usize {
        self.batches_per_epoch()
    }

    fn epoch(&mut self, epoch: usize) -> Result<impl Iterator<Item = Batch<F>> + '_, Error> {
        Ok(MiniBatches::epoch(self, epoch))
    }
}

/// Batches drawn afresh at every step (random windows of a text, random sequences of a
/// task): an "epoch" is `per_epoch` draws, the interval between evaluations.
pub struct Drawn<D> {
    per_epoch: usize,
    draw: D,
}

impl<D> Drawn<D> {
    pub fn new(per_epoch: usize, draw: D) -> Drawn<D> {
        Drawn { per_epoch, draw }
    }
}

impl<B, D: FnMut() -> B> Batches for Drawn<D> {
    type Batch = B;

    fn per_epoch(&self) -> usize {
        self.per_epoch
    }

    fn epoch(&mut self, _epoch: usize) -> Result<impl Iterator<Item = B> + '_, Error> {
        Ok((0..self.per_epoch).map(|_| (self.draw)()))
    }
}

/// What a run minimises over model `M` and batches `B`. A closure
/// `|model: &mut M, batch: B, grads| -> Result<Measured, Error>` is one; a struct
/// implementing the trait can also evaluate the model after each epoch and act after each
/// update (an exponential moving average of the weights, as BYOL's and DINO's targets).
pub trait Objective<M, B> {
    /// The loss of `batch`, recorded on a tape that starts from `grads` (put it on the
    /// input with `x.traced(grads)`); with the batch's accuracy when there is one.
    fn loss(
        &mut self,
        model: &mut M,
        batch: B,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error>;

    /// The model on held-out data after each epoch; `None`: nothing to evaluate.
    fn evaluate(&mut self, _model: &M) -> Result<Option<Evaluation>, Error> {
        Ok(None)
    }

    /// Called after every optimizer update.
    fn after_update(&mut self, _model: &mut M) -> Result<(), Error> {
        Ok(())
    }
}

impl<M, B, F> Objective<M, B> for F
where
    F: FnMut(&mut M, B, Gradients<f32, Cpu>) -> Result<Measured, Error>,
{
    fn loss(
        &mut self,
        model: &mut M,
        batch: B,
        grads: Gradients<f32, Cpu>,
    ) -> Result<Measured, Error> {
        self(model, batch, grads)
    }
}

/// A batch's loss, still on its tape, and what else the step measured.
pub struct Measured {
    pub loss: Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>,
    pub accuracy: Option<f32>,
}

impl Measured {
    pub fn loss(loss: Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>) -> Measured {
        Measured {
            loss,
            accuracy: None,
        }
    }

    pub fn with_accuracy(self, accuracy: f32) -> Measured {
        Measured {
            accuracy: Some(accuracy),
            ..self
        }
    }
}

/// The model measured on held-out data ([`Objective::evaluate`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f32,
    pub accuracy: Option<f32>,
}

/// Steps between two emptyings of the device's tensor cache ([`release_cache`]). The
/// cache takes in every buffer a step frees, but gives back only buffers of a size an op
/// asks for again: a tensor made from a fresh vector (a batch of data, an index tensor)
/// stays in it for good, so without a periodic emptying memory grows with the steps. Each
/// emptying costs one step's fresh pages, a hundredth of a step per step.
const RELEASE_CACHE_EVERY: usize = 100;

/// Trains `model` with `optimizer` on `batches` for `config.epochs` epochs, minimising
/// `objective`: for each batch, the loss on a tape, its gradient, the learning rate of the
/// step (from `config.schedule`, else the optimizer's own), one update; after each epoch,
/// the objective's evaluation and the weights' norm. The device's buffers kept for reuse
/// are handed back every 100 steps and at the end ([`crate::runtime::release_cache`]).
///
/// Fails with [`Error::NotFinite`] at the first step whose loss (or evaluation) is NaN or
/// infinite, naming the epoch and step, rather than carrying on with a ruined model.
pub fn fit<M, O, S>(
    model: &mut M,
    optimizer: &mut O,
    mut batches: S,
    mut objective: impl Objective<M, S::Batch>,
    config: &TrainConfig,
) -> Result<History, Error>
where
    M: TensorCollection<f32, Cpu>,
    O: ScheduledOptimizer<M, f32> + ?Sized,
    S: Batches,
{
    let _pool = hot_pool();
    let per_epoch = batches.per_epoch();
    let rates = match config.schedule {
        Some(schedule) => schedule.learning_rates(config.epochs * per_epoch)?,
        None => Vec::new(),
    };
    let progress = Progress::new(config, per_epoch);
    let mut grads = model.alloc_grads();
    let mut history = History::default();
    for epoch in 1..=config.epochs {
        let first = history.steps.len();
        for batch in batches.epoch(epoch)? {
            let step = history.steps.len() + 1;
            let measured = objective.loss(model, batch, grads)?;
            let loss = measured.loss.array();
            ensure_finite("training loss", loss, epoch, step)?;
            if let Some(&lr) = rates.get(step - 1).or(rates.last()) {
                optimizer.set_learning_rate(lr);
            }
            grads = measured.loss.backward();
            update(optimizer, model, &grads)?;
            model.zero_grads(&mut grads);
            objective.after_update(model)?;
            let record = StepRecord {
                epoch,
                step,
                lr: optimizer.learning_rate(),
                loss,
                accuracy: measured.accuracy.unwrap_or(f32::NAN),
            };
            progress.step(&record);
            history.steps.push(record);
            if step.is_multiple_of(RELEASE_CACHE_EVERY) {
                release_cache(model);
            }
        }
        let record = epoch_record(model, &mut objective, epoch, &history.steps[first..])?;
        progress.epoch(&record);
        history.epochs.push(record);
        if config.stop_when.as_ref().is_some_and(|stop| stop(&record)) {
            break;
        }
    }
    progress.finish();
    drop(grads);
    release_cache(model);
    Ok(history)
}

/// The epoch's means over its steps, the objective's evaluation and the weights' norm.
fn epoch_record<M: TensorCollection<f32, Cpu>, B>(
    model: &M,
    objective: &mut impl Objective<M, B>,
    epoch: usize,
    steps: &[StepRecord],
) -> Result<EpochRecord, Error> {
    let step = steps.last().map_or(0, |s| s.step);
    let evaluation = objective.evaluate(model)?;
    if let Some(e) = evaluation {
        ensure_finite("test loss", e.loss, epoch, step)?;
    }
    Ok(EpochRecord {
        epoch,
        step,
        train_loss: mean(steps.iter().map(|s| s.loss)),
        train_accuracy: mean(steps.iter().map(|s| s.accuracy)),
        test_loss: evaluation.map_or(f32::NAN, |e| e.loss),
        test_accuracy: evaluation.and_then(|e| e.accuracy).unwrap_or(f32::NAN),
        weight_norm: norm(&parameters(model)),
    })
}

/// One update of `model` from `grads`. A tensor that took no part in the loss (a frozen
/// target network, a position table a run does not use) keeps its values.
fn update<M, O: ScheduledOptimizer<M, f32> + ?Sized>(
    optimizer: &mut O,
    model: &mut M,
    grads: &Gradients<f32, Cpu>,
) -> Result<(), Error> {
    match optimizer.update(model, grads) {
        Ok(()) | Err(OptimizerUpdateError::UnusedParams(_)) => Ok(()),
        Err(e) => Err(Error::Optimizer(format!("{e:?}"))),
    }
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, n) = values.fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f32
}

/// The course's one guard against training on NaN: an error naming the quantity, its
/// value, and the epoch and step where it appeared.
pub fn ensure_finite(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{one_hot, two_moons};
    use crate::optim::Method;
    use dfdx::nn::modules;

    type Net = (Linear<2, 16>, ReLU, Linear<16, 2>);

    fn moons(n: usize, seed: u64, batch_size: usize) -> MiniBatches<2> {
        let points = two_moons(n, 0.1, seed).unwrap();
        let features = points.xy.iter().flatten().map(|&v| v as f32).collect();
        MiniBatches::new(&Cpu::default(), features, points.labels, batch_size, seed).unwrap()
    }

    fn run(seed: u64, batch_size: usize, config: &TrainConfig) -> Result<History, Error> {
        let dev = Cpu::seed_from_u64(seed);
        let mut model = dev.build_module::<Net, f32>();
        let mut adam = Method::Adam.at(0.02).build(&model);
        let (train, test) = (
            moons(200, seed, batch_size),
            moons(100, seed + 1, batch_size),
        );
        fit_classifier(&mut model, adam.as_mut(), &train, &test, config)
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
        assert_eq!(last.step, 30 * 7);
        assert!(
            last.train_loss < history.epochs[0].train_loss / 3.0,
            "{:?}",
            history.epochs[0]
        );
        assert!(history.steps.iter().all(|s| s.lr == 0.02));
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
        let mut sgd = Method::Sgd.at(1e30).build(&model);
        let examples = moons(64, 0, 16);
        let config = TrainConfig::new(2);
        let err =
            fit_classifier(&mut model, sgd.as_mut(), &examples, &examples, &config).unwrap_err();
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
        assert_eq!(steps.shape(), (8, 5));
        let epochs = history.epochs_frame().unwrap();
        let curve = history.per_epoch(|e| e.test_accuracy);
        assert_eq!(curve[1], [2.0, f64::from(history.epochs[1].test_accuracy)]);
        assert_eq!(
            epochs.get_column_names(),
            [
                "epoch",
                "step",
                "train_loss",
                "train_accuracy",
                "test_loss",
                "test_accuracy",
                "weight_norm"
            ]
        );
        assert_eq!(history.losses().len(), 8);
    }

    #[test]
    fn a_schedule_sets_the_learning_rate_of_every_step() {
        let train = moons(64, 3, 16);
        let run = |config: &TrainConfig| {
            let dev = Cpu::seed_from_u64(3);
            let mut model = dev.build_module::<Net, f32>();
            let before = parameters(&model);
            let mut sgd = Method::Sgd.at(1e-2).build(&model);
            let history = fit_classifier(&mut model, sgd.as_mut(), &train, &train, config).unwrap();
            (before, parameters(&model), history)
        };
        let (before, after, _) = run(&TrainConfig::new(2).schedule(Schedule::Constant { lr: 0.0 }));
        assert_eq!(before, after, "a learning rate of 0 moves nothing");
        let (_, _, unscheduled) = run(&TrainConfig::new(2));
        let (_, _, constant) = run(&TrainConfig::new(2).schedule(Schedule::Constant { lr: 1e-2 }));
        assert_eq!(
            unscheduled, constant,
            "a constant schedule at the optimizer's own rate"
        );
        // Step decay to 0 over two epochs of 4 steps: the first epoch at 0.5, the second
        // frozen, so the weights end where one epoch at 0.5 leaves them.
        let decay = Schedule::Step {
            lr: 0.5,
            factor: 0.0,
        };
        let (_, decayed, history) = run(&TrainConfig::new(2).schedule(decay));
        let rates: Vec<f64> = history.steps.iter().map(|s| s.lr).collect();
        assert_eq!(rates, [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
        let (_, one_epoch, _) = run(&TrainConfig::new(1).schedule(Schedule::Constant { lr: 0.5 }));
        assert_eq!(decayed, one_epoch);
        assert_ne!(decayed, before);
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
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1, "the first of equal maxima");
    }

    /// An online network and an exponential moving average of it (BYOL's target, Grill et
    /// al. 2020): the online one learns to match the target's output on each batch; the
    /// target receives no gradient and follows the online weights after every update.
    struct FollowTheTarget<'a> {
        tau: f32,
        updates: &'a mut usize,
    }

    type Pair = (
        modules::Linear<2, 2, f32, Cpu>,
        modules::Linear<2, 2, f32, Cpu>,
    );
    type Points = Tensor<(usize, Const<2>), f32, Cpu>;

    impl Objective<Pair, Points> for FollowTheTarget<'_> {
        fn loss(
            &mut self,
            (online, target): &mut Pair,
            x: Points,
            grads: Gradients<f32, Cpu>,
        ) -> Result<Measured, Error> {
            let aim = target.forward(x.clone());
            Ok(Measured::loss(mse_loss(
                online.forward(x.traced(grads)),
                aim,
            )))
        }

        fn after_update(&mut self, (online, target): &mut Pair) -> Result<(), Error> {
            *self.updates += 1;
            target.ema(online, self.tau);
            Ok(())
        }
    }

    #[test]
    fn a_two_network_step_trains_one_and_moves_the_other_after_each_update() {
        let dev = Cpu::seed_from_u64(0);
        let mut pair: Pair = dev.build_module::<(Linear<2, 2>, Linear<2, 2>), f32>();
        let start = (parameters(&pair.0), parameters(&pair.1));
        let mut adam = Method::Adam.at(1e-2).build::<Pair, f32>(&pair);
        let points = Drawn::new(10, || dev.sample_normal_like(&(16, Const::<2>)));
        let mut updates = 0;
        let objective = FollowTheTarget {
            tau: 0.9,
            updates: &mut updates,
        };
        let config = TrainConfig::new(5).quiet();
        let history = fit(&mut pair, adam.as_mut(), points, objective, &config).unwrap();
        assert_eq!(updates, 50);
        let gap =
            |a: &[f32], b: &[f32]| norm(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>());
        let (online, target) = (parameters(&pair.0), parameters(&pair.1));
        assert!(
            gap(&online, &target) < 0.2 * gap(&start.0, &start.1),
            "the two meet"
        );
        assert_ne!(
            target, start.1,
            "the target moved without a gradient of its own"
        );
        assert!(
            history.losses()[49] < 0.1 * history.losses()[0],
            "{:?}",
            history.losses()
        );
        assert!(
            history.epochs.iter().all(|e| e.test_loss.is_nan()),
            "nothing to evaluate"
        );
    }
}
