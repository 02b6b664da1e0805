//! Notebook `02_optimization`: what gradient descent does with the gradients, and the
//! optimizers, losses, schedules and batch sizes that make it work.
//!
//! One module per section: [`descent`] (§1, paths on 2-D surfaces), [`losses`] (§2,
//! squared error, cross-entropy and the triplet loss), [`optimizers`] (§3, Adam's update
//! written out), [`weight_decay`] (§4, L2 against decoupled decay), [`batch_size`] (§6,
//! gradient noise and the linear scaling rule). The methods compared and the learning-rate
//! schedules of §5 are the course's shared optimizer settings, in [`crate::optim`].
//!
//! Here, what the sections share: one training run of the digits MLP
//! ([`DigitsMlp`](crate::models::DigitsMlp)) on the 8×8 digits ([`Run`]), alone or as a
//! learning-rate sweep ([`Sweep`]), with the rate chosen on a validation split carved from
//! the training data ([`select_on_validation`]).

pub mod batch_size;
pub mod descent;
pub mod losses;
pub mod optimizers;
pub mod weight_decay;

use crate::data::{one_hot, ImageSet, MiniBatches};
pub use crate::models::{digits_mlp, DigitsMlpNet as Mlp};
use crate::optim::{Method, OptimizerConfig, Schedule, ScheduledOptimizer};
use crate::train::{fit, gradients, parameters, Classification, History, Loss, TrainConfig};
use crate::Error;
use dfdx::optim::WeightDecay;
use dfdx::prelude::*;

/// The gradient of the mean `loss` of `model` over the images at `rows` (repeats allowed),
/// with respect to every weight, flat in the order of [`parameters`]: the push one batch
/// gives (§2, §6).
pub fn gradient(
    model: &Mlp,
    images: &ImageSet,
    rows: &[usize],
    loss: Loss,
) -> Result<Vec<f32>, Error> {
    check_digits(images)?;
    if rows.is_empty() || rows.iter().any(|&r| r >= images.len()) {
        return Err(Error::InvalidArgument {
            what: "the rows of a batch",
            expected: "at least one, each below the number of images",
            got: format!("{} rows for {} images", rows.len(), images.len()),
        });
    }
    let dev = Cpu::default();
    let batch = images.subset(rows);
    let x = dev.tensor_from_vec(batch.pixels, (rows.len(), Const::<64>));
    let targets = one_hot::<10>(&dev, &batch.labels)?;
    let logits = model.forward(x.traced(model.alloc_grads()));
    gradients(model, &loss.of(logits, targets).backward())
}

/// Fails unless `images` are 8×8 (the digits), as the models here expect.
fn check_digits(images: &ImageSet) -> Result<(), Error> {
    if images.pixels_per_image() == 64 && images.pixels.len() == 64 * images.len() {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        what: "the images",
        expected: "8×8 digits, 64 pixels each".to_owned(),
        got: format!(
            "{}×{} images, {} pixels for {} images",
            images.height,
            images.width,
            images.pixels.len(),
            images.len()
        ),
    })
}

/// One way to train the digits [`Mlp`]: the optimizer settings (method, learning rate or
/// a schedule of them, weight decay), the loss, the batch size and the number of epochs.
/// Every section of notebook `02_optimization` after the first trains with it.
#[derive(Clone, Debug)]
pub struct Run {
    pub optimizer: OptimizerConfig,
    pub loss: Loss,
    pub batch_size: usize,
    pub epochs: usize,
}

/// What a [`Run`] measured, and the weights it ended with.
#[derive(Clone, Debug, PartialEq)]
pub struct Trained {
    pub lr: f64,
    pub history: History,
    /// Every trainable number of the model after the last step ([`parameters`]).
    pub weights: Vec<f32>,
}

impl Trained {
    /// The mean training loss over the last epoch.
    pub fn final_train_loss(&self) -> f32 {
        self.history.last().map_or(f32::INFINITY, |e| e.train_loss)
    }

    /// The test accuracy after the last epoch.
    pub fn final_test_accuracy(&self) -> f32 {
        self.history.last().map_or(0.0, |e| e.test_accuracy)
    }

    /// The training loss of every step.
    pub fn step_losses(&self) -> Vec<f64> {
        self.history
            .steps
            .iter()
            .map(|s| f64::from(s.loss))
            .collect()
    }

    /// How far this run went from `other`, a run of the same length on the same model.
    pub fn gap(&self, other: &Trained) -> Result<Gap, Error> {
        let (a, b) = (self, other);
        if a.history.steps.len() != b.history.steps.len() || a.weights.len() != b.weights.len() {
            return Err(Error::ShapeMismatch {
                what: "the other run",
                expected: format!(
                    "{} steps and {} weights, as this one",
                    a.history.steps.len(),
                    a.weights.len()
                ),
                got: format!(
                    "{} steps and {} weights",
                    b.history.steps.len(),
                    b.weights.len()
                ),
            });
        }
        let largest = |values: &mut dyn Iterator<Item = f64>| values.fold(0.0, f64::max);
        let (la, lb) = (a.step_losses(), b.step_losses());
        let loss = largest(&mut la.iter().zip(&lb).map(|(x, y)| (x - y).abs()));
        let scale = largest(&mut a.weights.iter().map(|w| f64::from(w.abs())));
        let pairs = a.weights.iter().zip(&b.weights);
        let moved = largest(&mut pairs.map(|(x, y)| f64::from(x - y).abs()));
        Ok(Gap {
            loss,
            weights: moved / scale.max(f64::MIN_POSITIVE),
        })
    }
}

/// How far apart two runs went ([`Trained::gap`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// The largest difference between their training losses at the same step.
    pub loss: f64,
    /// The largest difference between their final weights, relative to the largest weight.
    pub weights: f64,
}

impl Run {
    /// `method` at learning rate `lr`, cross-entropy, batches of 32, 10 epochs, no decay.
    pub fn new(method: Method, lr: f64) -> Run {
        Run {
            optimizer: method.at(lr),
            loss: Loss::CrossEntropy,
            batch_size: 32,
            epochs: 10,
        }
    }

    pub fn epochs(mut self, epochs: usize) -> Run {
        self.epochs = epochs;
        self
    }

    pub fn batch_size(mut self, batch_size: usize) -> Run {
        self.batch_size = batch_size;
        self
    }

    pub fn weight_decay(mut self, decay: WeightDecay) -> Run {
        self.optimizer = self.optimizer.weight_decay(decay);
        self
    }

    pub fn loss(mut self, loss: Loss) -> Run {
        self.loss = loss;
        self
    }

    /// Follows `schedule` over the run's steps (and reports its peak as the run's `lr`).
    pub fn schedule(mut self, schedule: Schedule) -> Run {
        self.optimizer = self.optimizer.schedule(schedule);
        self
    }

    /// The same run at another learning rate.
    pub fn at(&self, lr: f64) -> Run {
        Run {
            optimizer: self.optimizer.at(lr),
            ..self.clone()
        }
    }

    /// Trains a fresh [`digits_mlp`]`(seed)` on `train`, testing on `test` after each epoch;
    /// the batches are shuffled with `seed` too.
    pub fn train(&self, train: &ImageSet, test: &ImageSet, seed: u64) -> Result<Trained, Error> {
        self.train_from(digits_mlp(seed), train, test, seed)
    }

    /// [`Run::train`] starting from `model` rather than a fresh one.
    pub fn train_from(
        &self,
        model: Mlp,
        train: &ImageSet,
        test: &ImageSet,
        seed: u64,
    ) -> Result<Trained, Error> {
        let mut optimizer = self.optimizer.build(&model);
        self.train_with(model, optimizer.as_mut(), train, test, seed)
    }

    /// [`Run::train_from`] with an optimizer of one's own (the run's method and weight
    /// decay are then unused; its learning rate or schedule drives the optimizer).
    pub fn train_with(
        &self,
        mut model: Mlp,
        optimizer: &mut dyn ScheduledOptimizer<Mlp, f32>,
        train: &ImageSet,
        test: &ImageSet,
        seed: u64,
    ) -> Result<Trained, Error> {
        let lr = self.optimizer.lr;
        if !(lr.is_finite() && lr >= 0.0 && self.epochs > 0) {
            return Err(Error::InvalidArgument {
                what: "a training run",
                expected: "a finite learning rate ≥ 0 and at least one epoch",
                got: format!("learning rate {lr} for {} epochs", self.epochs),
            });
        }
        let dev = Cpu::default();
        let batches = MiniBatches::<64>::from_images(&dev, train, self.batch_size, seed)?;
        let test = MiniBatches::<64>::from_images(&dev, test, 512, seed)?;
        let mut config = TrainConfig::new(self.epochs).quiet();
        config.schedule = self.optimizer.schedule;
        optimizer.set_learning_rate(lr);
        let objective = Classification::<64, 10> {
            test: Some(&test),
            loss: self.loss,
        };
        let history = fit(&mut model, optimizer, &batches, objective, &config)?;
        Ok(Trained {
            lr,
            history,
            weights: parameters(&model),
        })
    }

    /// This run at each learning rate of `lrs`, and which was best by `criterion`. Choose
    /// by [`Criterion::ValidationAccuracy`] only with a validation split as `test`
    /// ([`select_on_validation`]); never with the test split.
    pub fn sweep(
        &self,
        lrs: &[f64],
        criterion: Criterion,
        train: &ImageSet,
        test: &ImageSet,
        seed: u64,
    ) -> Result<Sweep, Error> {
        let runs = lrs
            .iter()
            .map(|&lr| self.at(lr).train(train, test, seed))
            .collect::<Result<Vec<_>, _>>()?;
        Sweep::new(runs, criterion)
    }
}

/// What makes one run of a sweep better than another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// The lowest mean training loss over the last epoch: how well it optimized.
    TrainLoss,
    /// The highest accuracy after the last epoch on the held-out images the runs were
    /// evaluated on ([`Trained::final_test_accuracy`]), which must be a validation split
    /// carved from the training data ([`select_on_validation`]), never the test split.
    ValidationAccuracy,
}

/// A learning rate chosen on a validation split, and the run retrained at it.
#[derive(Clone, Debug, PartialEq)]
pub struct Selected {
    /// Every rate trained on the rest of the training split, evaluated on the validation split.
    pub sweep: Sweep,
    /// The chosen rate retrained on the whole training split, evaluated on the test split.
    pub chosen: Trained,
}

/// Model selection that never looks at the test set: carves `validation_fraction` of `train`
/// off as a validation split (seeded), trains `train_at(lr, rest, validation)` at each rate of
/// `lrs` and picks the best by `criterion`, then retrains that rate once as
/// `train_at(lr, train, test)` for the numbers reported.
pub fn select_on_validation(
    lrs: &[f64],
    criterion: Criterion,
    validation_fraction: f64,
    train: &ImageSet,
    test: &ImageSet,
    seed: u64,
    train_at: impl Fn(f64, &ImageSet, &ImageSet) -> Result<Trained, Error>,
) -> Result<Selected, Error> {
    let (rest, validation) = train.split(validation_fraction, seed)?;
    let runs = lrs
        .iter()
        .map(|&lr| train_at(lr, &rest, &validation))
        .collect::<Result<Vec<_>, _>>()?;
    let sweep = Sweep::new(runs, criterion)?;
    let chosen = train_at(sweep.best().lr, train, test)?;
    Ok(Selected { sweep, chosen })
}

/// The runs of a learning-rate sweep, and the index of the best.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub runs: Vec<Trained>,
    pub best: usize,
}

impl Sweep {
    /// The best of `runs` by `criterion`; NaN never wins, and ties go to the first.
    pub fn new(runs: Vec<Trained>, criterion: Criterion) -> Result<Sweep, Error> {
        let score = |t: &Trained| match criterion {
            Criterion::TrainLoss => t.final_train_loss(),
            Criterion::ValidationAccuracy => -t.final_test_accuracy(),
        };
        let best = (0..runs.len())
            .filter(|&i| !score(&runs[i]).is_nan())
            .reduce(|a, b| {
                if score(&runs[b]) < score(&runs[a]) {
                    b
                } else {
                    a
                }
            })
            .ok_or(Error::InvalidArgument {
                what: "the runs of a sweep",
                expected: "at least one that measured a number",
                got: format!("{} runs", runs.len()),
            })?;
        Ok(Sweep { runs, best })
    }

    pub fn best(&self) -> &Trained {
        &self.runs[self.best]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::digits;

    fn small_digits() -> (ImageSet, ImageSet) {
        let all = digits().unwrap();
        let (train, test) = all.split(0.2, 0).unwrap();
        let first = |set: &ImageSet, n: usize| set.subset(&(0..n).collect::<Vec<_>>());
        (first(&train, 320), first(&test, 100))
    }

    #[test]
    fn every_method_trains_the_mlp() {
        let (train, test) = small_digits();
        for (method, lr) in Method::ALL.iter().zip([0.5, 0.05, 0.01, 0.01]) {
            let trained = Run::new(*method, lr)
                .epochs(10)
                .train(&train, &test, 0)
                .unwrap();
            let first = trained.history.epochs[0].train_loss;
            assert!(
                trained.final_train_loss() < first / 2.0,
                "{}: {:?}",
                method.name(),
                trained.history.epochs
            );
            assert_eq!(trained.weights.len(), 64 * 64 + 64 + 64 * 10 + 10);
        }
    }

    #[test]
    fn a_run_is_reproducible_and_its_schedule_drives_it() {
        let (train, test) = small_digits();
        let run = Run::new(Method::Sgd, 0.1).epochs(2);
        assert_eq!(
            run.train(&train, &test, 1).unwrap(),
            run.train(&train, &test, 1).unwrap()
        );
        let scheduled = run
            .clone()
            .schedule(Schedule::Constant { lr: 0.1 })
            .train(&train, &test, 1)
            .unwrap();
        assert_eq!(
            scheduled,
            run.train(&train, &test, 1).unwrap(),
            "a constant schedule is the lr"
        );
        let frozen = run
            .clone()
            .schedule(Schedule::Constant { lr: 0.0 })
            .train(&train, &test, 1)
            .unwrap();
        assert_eq!(frozen.weights, parameters(&digits_mlp(1)));
        assert!(run
            .schedule(Schedule::Constant { lr: -1.0 })
            .train(&train, &test, 1)
            .is_err());
    }

    #[test]
    fn the_gap_between_runs_is_zero_for_equal_runs_and_refused_for_unequal_lengths() {
        let (train, test) = small_digits();
        let one = Run::new(Method::Sgd, 0.1)
            .epochs(1)
            .train(&train, &test, 0)
            .unwrap();
        let two = Run::new(Method::Sgd, 0.1)
            .epochs(2)
            .train(&train, &test, 0)
            .unwrap();
        assert!(one.gap(&two).is_err());
        assert_eq!(
            one.gap(&one).unwrap(),
            Gap {
                loss: 0.0,
                weights: 0.0
            }
        );
        let other = Run::new(Method::Sgd, 0.1)
            .epochs(1)
            .train(&train, &test, 1)
            .unwrap();
        let g = one.gap(&other).unwrap();
        assert!(g.loss > 0.0 && g.weights > 0.01, "{g:?}");
    }

    #[test]
    fn a_run_without_steps_or_with_a_bad_rate_is_an_error() {
        let (train, test) = small_digits();
        for run in [
            Run::new(Method::Sgd, f64::NAN),
            Run::new(Method::Sgd, -0.1),
            Run::new(Method::Sgd, 0.1).epochs(0),
            Run::new(Method::Sgd, 0.1).batch_size(0),
        ] {
            assert!(run.train(&train, &test, 0).is_err(), "{run:?}");
        }
    }

    #[test]
    fn a_gradient_is_the_mean_of_its_rows_and_bad_rows_or_images_are_errors() {
        let (train, _) = small_digits();
        let model = digits_mlp(0);
        let ce = Loss::CrossEntropy;
        let both = gradient(&model, &train, &[3, 7], ce).unwrap();
        let (a, b) = (
            gradient(&model, &train, &[3], ce).unwrap(),
            gradient(&model, &train, &[7], ce).unwrap(),
        );
        assert_eq!(both.len(), parameters(&model).len());
        assert!(both
            .iter()
            .zip(a.iter().zip(&b))
            .all(|(m, (x, y))| (m - (x + y) / 2.0).abs() < 1e-5));
        assert!(gradient(&model, &train, &[], ce).is_err());
        assert!(gradient(&model, &train, &[train.len()], ce).is_err());
        let big = ImageSet {
            pixels: vec![0.0; 2 * 784],
            labels: vec![0, 1],
            height: 28,
            width: 28,
            class_names: train.class_names.clone(),
        };
        let err = gradient(&model, &big, &[0], ce).unwrap_err();
        assert!(err.to_string().contains("8×8"), "{err}");
    }

    #[test]
    fn a_sweep_keeps_the_best_run() {
        let (train, test) = small_digits();
        let sweep = Run::new(Method::Sgd, 0.0)
            .epochs(2)
            .sweep(&[1e-4, 0.1, 1e-3], Criterion::TrainLoss, &train, &test, 0)
            .unwrap();
        assert_eq!(sweep.best().lr, 0.1);
        assert_eq!(sweep.runs.len(), 3);
        assert!(Sweep::new(vec![], Criterion::ValidationAccuracy).is_err());
    }

    #[test]
    fn selection_never_sees_the_test_split_and_retrains_on_all_of_train() {
        let (train, test) = small_digits();
        let calls = std::cell::RefCell::new(Vec::new());
        let selected = select_on_validation(
            &[1e-4, 0.1, 1e-3],
            Criterion::ValidationAccuracy,
            0.25,
            &train,
            &test,
            0,
            |lr, fit, held_out| {
                calls.borrow_mut().push((lr, fit.clone(), held_out.clone()));
                Run::new(Method::Sgd, lr).epochs(2).train(fit, held_out, 0)
            },
        )
        .unwrap();
        let calls = calls.into_inner();
        let (rest, validation) = train.split(0.25, 0).unwrap();
        assert_eq!((rest.len(), validation.len()), (240, 80));
        for (_, fit, held_out) in &calls[..3] {
            assert_eq!(
                (fit, held_out),
                (&rest, &validation),
                "the sweep sees no test image"
            );
        }
        assert_eq!(selected.sweep.best().lr, 0.1);
        assert_eq!(calls.len(), 4);
        assert_eq!((calls[3].0, &calls[3].1, &calls[3].2), (0.1, &train, &test));
        let retrained = Run::new(Method::Sgd, 0.1)
            .epochs(2)
            .train(&train, &test, 0)
            .unwrap();
        assert_eq!(selected.chosen, retrained);
    }
}
