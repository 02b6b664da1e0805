//! Optimizer settings every section shares: the update rule ([`Method`]) with its
//! hyperparameters, the learning rate, weight decay and one schedule type ([`Schedule`]),
//! gathered in [`OptimizerConfig`]; and [`ScheduledOptimizer`], a dfdx optimizer whose
//! learning rate the training loop ([`crate::train`]) sets step by step. Notebook
//! `02_optimization` teaches them (§1 and §3 the methods, §4 weight decay, §5 schedules).

use crate::Error;
use dfdx::optim::{
    Adam, AdamConfig, Momentum, Optimizer, RMSprop, RMSpropConfig, Sgd, SgdConfig, WeightDecay,
};
use dfdx::prelude::*;
use std::f64::consts::PI;

/// A dfdx optimizer for model `M` whose learning rate can be read and set: what the
/// training loop takes, so that a [`Schedule`] can drive it, and what a
/// `Box<dyn ScheduledOptimizer<M, E>>` holds when the method is chosen at run time.
pub trait ScheduledOptimizer<M, E: Dtype>: Optimizer<M, Cpu, E> {
    fn learning_rate(&self) -> f64;
    fn set_learning_rate(&mut self, lr: f64);
}

/// dfdx's optimizers keep their learning rate in `cfg.lr`.
macro_rules! scheduled_dfdx_optimizer {
    ($($optimizer:ident),*) => {$(
        impl<M, E: Dtype> ScheduledOptimizer<M, E> for $optimizer<M, E, Cpu>
        where
            $optimizer<M, E, Cpu>: Optimizer<M, Cpu, E>,
        {
            fn learning_rate(&self) -> f64 {
                self.cfg.lr
            }
            fn set_learning_rate(&mut self, lr: f64) {
                self.cfg.lr = lr;
            }
        }
    )*};
}

scheduled_dfdx_optimizer!(Sgd, Adam, RMSprop);

/// The update rules the course compares (notebook `02_optimization` §1, §3), all dfdx's,
/// with their usual hyperparameters; the learning rate and weight decay come from an
/// [`OptimizerConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Stochastic gradient descent (Robbins & Monro, 1951): `p ← p − lr·g`.
    Sgd,
    /// Heavy-ball momentum (Polyak, 1964), as dfdx and PyTorch write it: `v ← β·v + g`,
    /// `p ← p − lr·v`, with β = 0.9.
    Momentum,
    /// RMSprop (Tieleman & Hinton, 2012): the gradient divided by the root of a running
    /// mean of its squares (α = 0.9). dfdx starts that mean at 1, as TensorFlow does.
    RMSprop,
    /// Adam (Kingma & Ba, 2015): momentum over RMSprop's scaling, both averages
    /// bias-corrected, β = (0.9, 0.999).
    Adam,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Sgd, Method::Momentum, Method::RMSprop, Method::Adam];

    pub fn name(&self) -> &'static str {
        match self {
            Method::Sgd => "SGD",
            Method::Momentum => "momentum",
            Method::RMSprop => "RMSprop",
            Method::Adam => "Adam",
        }
    }

    /// This method at learning rate `lr`, without weight decay or a schedule.
    pub const fn at(self, lr: f64) -> OptimizerConfig {
        OptimizerConfig {
            method: self,
            lr,
            weight_decay: None,
            schedule: None,
            betas: None,
        }
    }
}

/// How a model is optimized: the method, its learning rate, weight decay and, when the
/// rate should move, a schedule (whose rates then replace `lr`).
///
/// ```
/// use mustknow::optim::{Method, Schedule};
/// let adam = Method::Adam.at(3e-3).schedule(Schedule::Cosine { lr: 3e-3, warmup: 0.1, floor: 0.1 });
/// assert_eq!(adam.lr, 3e-3);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OptimizerConfig {
    pub method: Method,
    pub lr: f64,
    pub weight_decay: Option<WeightDecay>,
    /// The learning rate of each step; `None`: `lr` throughout.
    pub schedule: Option<Schedule>,
    /// Adam's `(β₁, β₂)`; `None`: (0.9, 0.999).
    pub betas: Option<[f64; 2]>,
}

impl OptimizerConfig {
    /// With weight decay: an L2 penalty or decoupled decay (notebook `02_optimization` §4).
    pub fn weight_decay(mut self, decay: WeightDecay) -> OptimizerConfig {
        self.weight_decay = Some(decay);
        self
    }

    /// Follows `schedule` over the run's steps; its peak becomes `lr`.
    pub fn schedule(mut self, schedule: Schedule) -> OptimizerConfig {
        self.lr = schedule.peak();
        self.schedule = Some(schedule);
        self
    }

    /// With Adam's averaging constants `(β₁, β₂)`: GANs train with β₁ = 0.5 (Radford et
    /// al., 2016), notebook `08_vae_gan` §4–5.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> OptimizerConfig {
        self.betas = Some([beta1, beta2]);
        self
    }

    /// The same settings at another learning rate.
    pub fn at(self, lr: f64) -> OptimizerConfig {
        OptimizerConfig { lr, ..self }
    }

    /// dfdx's optimizer for `model` with these settings (the schedule is the training
    /// loop's to follow: [`crate::train::TrainConfig::schedule`]).
    pub fn build<M: 'static, E: Dtype>(&self, model: &M) -> Box<dyn ScheduledOptimizer<M, E>>
    where
        Sgd<M, E, Cpu>: ScheduledOptimizer<M, E>,
        RMSprop<M, E, Cpu>: ScheduledOptimizer<M, E>,
        Adam<M, E, Cpu>: ScheduledOptimizer<M, E>,
    {
        let (lr, weight_decay) = (self.lr, self.weight_decay);
        let sgd = |momentum| SgdConfig {
            lr,
            momentum,
            weight_decay,
        };
        match self.method {
            Method::Sgd => Box::new(Sgd::new(model, sgd(None))),
            Method::Momentum => Box::new(Sgd::new(model, sgd(Some(Momentum::Classic(0.9))))),
            Method::RMSprop => Box::new(RMSprop::new(
                model,
                RMSpropConfig {
                    lr,
                    weight_decay,
                    ..Default::default()
                },
            )),
            Method::Adam => Box::new(Adam::new(
                model,
                AdamConfig {
                    lr,
                    weight_decay,
                    betas: self.betas.unwrap_or(AdamConfig::default().betas),
                    ..Default::default()
                },
            )),
        }
    }
}

/// How the learning rate moves over a run of `steps` steps (notebook `02_optimization` §5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// `lr` at every step.
    Constant { lr: f64 },
    /// Step decay, as in ResNet's training (He, Zhang, Ren & Sun, 2016): `lr`, multiplied
    /// by `factor` at half and again at three quarters of the run.
    Step { lr: f64, factor: f64 },
    /// A linear warm-up from 0 over the first `warmup` fraction of the steps (Goyal et al.,
    /// 2017), then half a cosine from `lr` down to `floor · lr` (Loshchilov & Hutter, 2017,
    /// SGDR without restarts; `floor` 0 goes all the way down). Transformers warm up too
    /// (Vaswani et al., 2017, §5.3).
    Cosine { lr: f64, warmup: f64, floor: f64 },
}

impl Schedule {
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant { .. } => "constant",
            Schedule::Step { .. } => "step decay",
            Schedule::Cosine { .. } => "cosine with warm-up",
        }
    }

    /// The largest learning rate it reaches.
    pub fn peak(&self) -> f64 {
        match *self {
            Schedule::Constant { lr } | Schedule::Step { lr, .. } | Schedule::Cosine { lr, .. } => {
                lr
            }
        }
    }

    /// The learning rate of each of `steps` steps.
    pub fn learning_rates(&self, steps: usize) -> Result<Vec<f64>, Error> {
        let valid = match *self {
            Schedule::Constant { .. } => true,
            Schedule::Step { factor, .. } => (0.0..=1.0).contains(&factor),
            Schedule::Cosine { warmup, floor, .. } => {
                (0.0..1.0).contains(&warmup) && (0.0..=1.0).contains(&floor)
            }
        };
        let lr = self.peak();
        if !(valid && lr.is_finite() && lr >= 0.0 && steps > 0) {
            return Err(Error::InvalidArgument {
                what: "a learning-rate schedule",
                expected: "a learning rate ≥ 0, a step factor in [0, 1], a warm-up fraction in [0, 1), a floor in [0, 1], and at least one step",
                got: format!("{self:?} over {steps} steps"),
            });
        }
        Ok((0..steps).map(|step| self.rate(step, steps)).collect())
    }

    /// Step `step`'s rate (from 0) of a run of `steps`, checked by [`Schedule::learning_rates`].
    fn rate(&self, step: usize, steps: usize) -> f64 {
        let (t, n) = (step as f64, steps as f64);
        match *self {
            Schedule::Constant { lr } => lr,
            Schedule::Step { lr, factor } => {
                let drops = usize::from(t >= 0.5 * n) + usize::from(t >= 0.75 * n);
                lr * factor.powi(drops as i32)
            }
            Schedule::Cosine { lr, warmup, floor } => {
                let warm = (warmup * n).round();
                if t < warm {
                    lr * (t + 1.0) / warm
                } else {
                    let progress = (t - warm) / (n - warm).max(1.0);
                    lr * (floor + (1.0 - floor) * 0.5 * (1.0 + (PI * progress).cos()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(lr: f64, warmup: f64, floor: f64) -> Schedule {
        Schedule::Cosine { lr, warmup, floor }
    }

    #[test]
    fn a_constant_schedule_is_constant() {
        let lrs = Schedule::Constant { lr: 0.3 }.learning_rates(5).unwrap();
        assert_eq!(lrs, vec![0.3; 5]);
        assert_eq!(cosine(0.3, 0.1, 0.0).peak(), 0.3);
    }

    #[test]
    fn step_decay_drops_at_half_and_three_quarters() {
        let lrs = Schedule::Step {
            lr: 1.0,
            factor: 0.1,
        }
        .learning_rates(8)
        .unwrap();
        let expected = [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01];
        assert!(
            lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12),
            "{lrs:?}"
        );
    }

    #[test]
    fn cosine_warms_up_linearly_then_falls_to_zero() {
        let lrs = cosine(1.0, 0.1, 0.0).learning_rates(100).unwrap();
        assert!(
            (lrs[0] - 0.1).abs() < 1e-12 && (lrs[9] - 1.0).abs() < 1e-12,
            "{:?}",
            &lrs[..10]
        );
        assert!((lrs[10] - 1.0).abs() < 1e-12);
        // Half-way through the cosine part (step 10 + 45), the rate is half.
        assert!((lrs[55] - 0.5).abs() < 1e-12, "{}", lrs[55]);
        assert!(lrs[99] < 1e-3 && lrs[10..].windows(2).all(|w| w[1] <= w[0]));
        let no_warmup = cosine(2.0, 0.0, 0.0).learning_rates(3).unwrap();
        assert_eq!(no_warmup[0], 2.0);
    }

    #[test]
    fn cosine_to_a_floor_ends_at_the_floor() {
        let lrs = cosine(1.0, 0.1, 0.1).learning_rates(100).unwrap();
        assert!((lrs[10] - 1.0).abs() < 1e-12);
        // Half-way through the cosine part, half-way between the peak and the floor.
        assert!((lrs[55] - 0.55).abs() < 1e-12, "{}", lrs[55]);
        assert!((lrs[99] - 0.1).abs() < 1e-3 && lrs.iter().all(|&r| r > 0.099));
    }

    #[test]
    fn a_bad_schedule_is_an_error() {
        for bad in [
            Schedule::Constant { lr: -1.0 },
            Schedule::Step {
                lr: 1.0,
                factor: 2.0,
            },
            cosine(1.0, 1.0, 0.0),
            cosine(1.0, 0.1, 1.5),
        ] {
            assert!(bad.learning_rates(10).is_err(), "{bad:?}");
        }
        assert!(Schedule::Constant { lr: 1.0 }.learning_rates(0).is_err());
    }

    #[test]
    fn a_config_builds_its_method_at_its_rate() {
        let model: Tensor<Rank1<3>, f32, Cpu> = Cpu::default().zeros();
        for method in Method::ALL {
            let optimizer = method.at(0.25).build::<_, f32>(&model);
            assert_eq!(optimizer.learning_rate(), 0.25, "{}", method.name());
        }
        let scheduled = Method::Sgd.at(1.0).schedule(Schedule::Constant { lr: 0.5 });
        assert_eq!(scheduled.lr, 0.5);
        let mut sgd = scheduled.build::<_, f32>(&model);
        sgd.set_learning_rate(0.125);
        assert_eq!(sgd.learning_rate(), 0.125);
    }
}
